//! The PostgreSQL schema and who may use it: the one home of the migrations, the application
//! role's privileges, and the version check the consumer makes at connect.
//!
//! - [`provision`] runs as the database owner (the RDS master user at deploy time, the local
//!   admin locally): in one transaction, under an advisory lock, it applies the migrations not yet
//!   recorded in `schema_migrations`, creates or updates the application login role and sets its
//!   privileges to exactly [`privilege_plan`]. Repeating it changes nothing but the password hash.
//! - [`check_schema`] is all the consumer does: it refuses to start on a database whose schema is
//!   older than its code, telling the operator to deploy.
//! - The password is sent as a SCRAM-SHA-256 verifier computed here, so the plaintext never
//!   reaches the server (nor its statement log).
//!
//! CDK hashes this file into the schema custom resource's properties (cdk/lib/constructs/
//! database-schema.ts), so a new migration or a changed grant re-runs the deploy-time step.

use std::fmt;

use pipeline_domain::ports::PortError;
use tokio_postgres::Client;

use crate::postgres::{classify, quote_ident, rejected};

/// Key of the advisory lock that serialises provisioning within one database (any fixed number
/// works; this one spells "pipeline-migrations" loosely in hex).
const MIGRATION_LOCK_KEY: i64 = 0x7069_7065_6d69_6772;

/// The schema the migrations create their tables in (the first existing schema of the default
/// search path for an owner without a schema of its own name).
pub const SCHEMA: &str = "public";

/// Records which migrations a database has.
pub const MIGRATIONS_TABLE: &str = "schema_migrations";

/// The store-event tables (names from the contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableNames {
    pub sales: String,
    pub inventory: String,
}

impl TableNames {
    pub fn new(sales: impl Into<String>, inventory: impl Into<String>) -> Self {
        Self {
            sales: sales.into(),
            inventory: inventory.into(),
        }
    }

    fn store_event_tables(&self) -> [&str; 2] {
        [&self.sales, &self.inventory]
    }
}

/// One schema change, applied once per database.
struct Migration {
    version: i32,
    description: &'static str,
    sql: fn(&TableNames) -> String,
}

fn store_event_table_ddl(table: &str) -> String {
    let t = quote_ident(table);
    let constraint = quote_ident(&format!("{table}_record_key"));
    let index = quote_ident(&format!("{table}_event_time_idx"));
    format!(
        r#"CREATE TABLE IF NOT EXISTS {t} (
    "topic" text NOT NULL,
    "partition" integer NOT NULL,
    "offset" bigint NOT NULL,
    "request_id" text NOT NULL,
    "store_id" integer NOT NULL,
    "cust_id" integer NOT NULL,
    "category" text NOT NULL,
    "sku" bigint NOT NULL,
    "price" numeric(12,2) NOT NULL,
    "qty" integer NOT NULL,
    "discount" numeric(5,2) NOT NULL,
    "gift_wrap" boolean NOT NULL,
    "variant" text NOT NULL,
    "priority_shipping" boolean NOT NULL,
    "event_time" timestamptz NOT NULL,
    "contact_me" text,
    CONSTRAINT {constraint} UNIQUE ("topic", "partition", "offset")
);
CREATE INDEX IF NOT EXISTS {index} ON {t} ("event_time");"#
    )
}

const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "sales and inventory tables, unique per record",
    sql: |names| {
        format!(
            "{}\n{}",
            store_event_table_ddl(&names.sales),
            store_event_table_ddl(&names.inventory)
        )
    },
}];

/// The newest migration this code knows; the consumer needs at least this version.
pub fn schema_version() -> i32 {
    MIGRATIONS.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The columns the consumer's `ON CONFLICT ("topic", "partition", "offset") DO NOTHING` names:
/// PostgreSQL checks SELECT on a conflict target's columns, besides INSERT on the table.
const RECORD_KEY_COLUMNS: [&str; 3] = ["topic", "partition", "offset"];

/// The application login role and its password (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct AppRole {
    pub name: String,
    pub password: String,
}

impl fmt::Debug for AppRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppRole")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Checks a role name before it goes into DDL: PostgreSQL's unquoted identifier rules (which the
/// RDS secret and RDS Proxy also expect), at most 63 bytes, and not a reserved `pg_` name.
pub fn validate_role_name(name: &str) -> Result<(), PortError> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !starts_well || !rest_ok || name.len() > 63 {
        return Err(rejected(format!(
            "role name {name:?} must be 1-63 characters of a-z, 0-9 and _, not starting with a digit"
        )));
    }
    if name.starts_with("pg_") {
        return Err(rejected(format!(
            "role name {name:?}: names starting with pg_ are reserved by PostgreSQL"
        )));
    }
    Ok(())
}

/// The statements that set the application role's privileges to exactly what the consumer's
/// statements need, revoking anything else first (so a hand-made grant does not survive a
/// deployment). Run inside one transaction after the migrations.
///
/// The consumer makes three kinds of statement: `INSERT … ON CONFLICT ("topic", "partition",
/// "offset") DO NOTHING` into each store-event table (INSERT, plus SELECT on the three key
/// columns) and `SELECT max(version) FROM schema_migrations` at connect (SELECT on `version`).
/// Beyond that: CONNECT on the database and USAGE on the schema. No CREATE anywhere, no TEMPORARY,
/// no ownership, no UPDATE, DELETE or TRUNCATE, nothing on other tables. PostgreSQL 14 and older
/// give PUBLIC CREATE on `public`, and every version gives PUBLIC TEMPORARY on a new database;
/// both are revoked from PUBLIC (the owner keeps them).
pub fn privilege_plan(database: &str, role: &str, names: &TableNames) -> Vec<String> {
    let db = quote_ident(database);
    let r = quote_ident(role);
    let schema = quote_ident(SCHEMA);
    let key_columns = RECORD_KEY_COLUMNS
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let mut plan = vec![
        format!("REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC"),
        format!("REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC"),
        format!("REVOKE ALL ON DATABASE {db} FROM {r}"),
        format!("REVOKE ALL ON SCHEMA {schema} FROM {r}"),
        format!("REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {r}"),
        format!("REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {r}"),
        format!("REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {schema} FROM {r}"),
        format!("GRANT CONNECT ON DATABASE {db} TO {r}"),
        format!("GRANT USAGE ON SCHEMA {schema} TO {r}"),
    ];
    for table in names.store_event_tables() {
        let t = format!("{schema}.{}", quote_ident(table));
        plan.push(format!("GRANT INSERT ON TABLE {t} TO {r}"));
        plan.push(format!("GRANT SELECT ({key_columns}) ON TABLE {t} TO {r}"));
    }
    plan.push(format!(
        "GRANT SELECT (\"version\") ON TABLE {schema}.{} TO {r}",
        quote_ident(MIGRATIONS_TABLE)
    ));
    plan
}

/// Role attributes: a plain login role. NOINHERIT so a later membership grants nothing silently.
fn role_attributes() -> &'static str {
    "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
}

/// A single-quoted SQL literal (standard_conforming_strings, on by default since 9.1).
fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Creates the role if it is missing, then sets its attributes and password either way. Two
/// provisioning runs in different databases may race on CREATE ROLE; the loser's duplicate is
/// caught (savepoint of the PL/pgSQL block) and it only alters.
fn role_statements(role: &AppRole) -> Result<[String; 2], PortError> {
    validate_role_name(&role.name)?;
    if role.password.is_empty() {
        return Err(rejected(format!("role {}: the password is empty", role.name)));
    }
    let r = quote_ident(&role.name);
    let verifier = postgres_protocol::password::scram_sha_256(role.password.as_bytes());
    let create = format!(
        "DO $provision$ BEGIN CREATE ROLE {r} {}; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $provision$",
        role_attributes()
    );
    let alter = format!(
        "ALTER ROLE {r} {} PASSWORD {}",
        role_attributes(),
        quote_literal(&verifier)
    );
    Ok([create, alter])
}

/// What [`provision`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provisioned {
    pub database: String,
    pub role: String,
    /// Migrations applied by this run (empty when the schema was current).
    pub applied: Vec<i32>,
    pub schema_version: i32,
}

/// Applies pending migrations and sets up the application role, in one transaction. Must run as
/// the database owner (or a role with CREATEROLE that owns the schema).
pub async fn provision(
    client: &mut Client,
    names: &TableNames,
    role: &AppRole,
) -> Result<Provisioned, PortError> {
    let role_sql = role_statements(role)?;
    // Concurrent GRANT/ALTER ROLE on the same catalog row from another database fails with
    // "tuple concurrently updated" (the advisory lock is per database); everything here is
    // idempotent, so such a run is simply repeated.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match provision_once(client, names, role, &role_sql).await {
            Err(PortError::Transient { message, .. }) if attempt < 5 => {
                tracing::info!(attempt, %message, "provisioning raced another run; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(50 * attempt)).await;
            }
            other => return other,
        }
    }
}

async fn provision_once(
    client: &mut Client,
    names: &TableNames,
    role: &AppRole,
    role_sql: &[String; 2],
) -> Result<Provisioned, PortError> {
    let tx = client.transaction().await.map_err(classify_provisioning)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .map_err(classify_provisioning)?;
    let database: String = tx
        .query_one("SELECT current_database()", &[])
        .await
        .map_err(classify_provisioning)?
        .get(0);
    let applied = migrate_in(&tx, names).await?;
    for statement in role_sql {
        tx.batch_execute(statement).await.map_err(classify_provisioning)?;
    }
    for statement in privilege_plan(&database, &role.name, names) {
        tx.batch_execute(&statement)
            .await
            .map_err(classify_provisioning)?;
    }
    tx.commit().await.map_err(classify_provisioning)?;
    tracing::info!(%database, role = %role.name, ?applied, "schema and application role provisioned");
    Ok(Provisioned {
        database,
        role: role.name.clone(),
        applied,
        schema_version: schema_version(),
    })
}

async fn migrate_in(tx: &tokio_postgres::Transaction<'_>, names: &TableNames) -> Result<Vec<i32>, PortError> {
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (
            version integer PRIMARY KEY,
            description text NOT NULL,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
        quote_ident(MIGRATIONS_TABLE)
    ))
    .await
    .map_err(classify)?;
    let applied: Vec<i32> = tx
        .query(
            &format!("SELECT version FROM {}", quote_ident(MIGRATIONS_TABLE)),
            &[],
        )
        .await
        .map_err(classify)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut newly = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        tx.batch_execute(&(migration.sql)(names))
            .await
            .map_err(classify)?;
        tx.execute(
            &format!(
                "INSERT INTO {} (version, description) VALUES ($1, $2)",
                quote_ident(MIGRATIONS_TABLE)
            ),
            &[&migration.version, &migration.description],
        )
        .await
        .map_err(classify)?;
        tracing::info!(
            version = migration.version,
            migration.description,
            "applied migration"
        );
        newly.push(migration.version);
    }
    Ok(newly)
}

/// Like [`classify`], and "tuple concurrently updated" (XX000, a concurrent catalog update) is
/// transient too.
fn classify_provisioning(error: tokio_postgres::Error) -> PortError {
    let concurrent = error
        .as_db_error()
        .is_some_and(|db| db.code().code() == "XX000" && db.message().contains("concurrently"));
    match classify(error) {
        PortError::Rejected { component, message } if concurrent => {
            PortError::Transient { component, message }
        }
        other => other,
    }
}

/// What the consumer checks at connect: the schema exists and is at least [`schema_version`].
/// The errors name the fix, since the consumer cannot apply migrations itself.
pub async fn check_schema(client: &Client) -> Result<i32, PortError> {
    let deploy = "the schema is applied at deploy time by db-admin: deploy consumer-stack \
                  (locally: scripts/local-stack.sh up)";
    let row = client
        .query_one(
            &format!("SELECT max(version) FROM {}", quote_ident(MIGRATIONS_TABLE)),
            &[],
        )
        .await
        .map_err(|e| match e.code().map(|c| c.code().to_string()).as_deref() {
            Some("42P01") => rejected(format!("the database has no {MIGRATIONS_TABLE} table; {deploy}")),
            Some("42501") => rejected(format!(
                "this role may not read {MIGRATIONS_TABLE}; its grants are set at deploy time by db-admin: deploy consumer-stack"
            )),
            _ => classify(e),
        })?;
    let found: Option<i32> = row.get(0);
    let needed = schema_version();
    match found {
        Some(version) if version >= needed => Ok(version),
        found => Err(rejected(format!(
            "the database schema is at version {}, this consumer needs {needed}; {deploy}",
            found.map_or_else(|| "none".to_string(), |v| v.to_string())
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> TableNames {
        TableNames::new("sales", "inventory")
    }

    #[test]
    fn the_plan_grants_exactly_what_the_consumer_uses() {
        let plan = privilege_plan("pipeline", "pipeline_consumer", &names());
        let grants: Vec<&String> = plan.iter().filter(|s| s.starts_with("GRANT")).collect();
        assert_eq!(
            grants,
            vec![
                "GRANT CONNECT ON DATABASE \"pipeline\" TO \"pipeline_consumer\"",
                "GRANT USAGE ON SCHEMA \"public\" TO \"pipeline_consumer\"",
                "GRANT INSERT ON TABLE \"public\".\"sales\" TO \"pipeline_consumer\"",
                "GRANT SELECT (\"topic\", \"partition\", \"offset\") ON TABLE \"public\".\"sales\" TO \"pipeline_consumer\"",
                "GRANT INSERT ON TABLE \"public\".\"inventory\" TO \"pipeline_consumer\"",
                "GRANT SELECT (\"topic\", \"partition\", \"offset\") ON TABLE \"public\".\"inventory\" TO \"pipeline_consumer\"",
                "GRANT SELECT (\"version\") ON TABLE \"public\".\"schema_migrations\" TO \"pipeline_consumer\"",
            ]
        );
        for forbidden in [
            "CREATE ",
            "UPDATE",
            "DELETE",
            "TRUNCATE",
            "ALL PRIVILEGES",
            "OWNER",
            "WITH GRANT",
        ] {
            assert!(
                grants.iter().all(|g| !g.contains(forbidden)),
                "{forbidden} is never granted"
            );
        }
    }

    #[test]
    fn the_plan_revokes_everything_else_before_granting() {
        let plan = privilege_plan("pipeline", "pipeline_consumer", &names());
        let first_grant = plan.iter().position(|s| s.starts_with("GRANT")).unwrap();
        assert!(plan[..first_grant].iter().all(|s| s.starts_with("REVOKE")));
        for object in [
            "ON DATABASE \"pipeline\" FROM \"pipeline_consumer\"",
            "ON SCHEMA \"public\" FROM \"pipeline_consumer\"",
            "ON ALL TABLES IN SCHEMA \"public\" FROM \"pipeline_consumer\"",
            "ON ALL SEQUENCES IN SCHEMA \"public\" FROM \"pipeline_consumer\"",
            "ON ALL FUNCTIONS IN SCHEMA \"public\" FROM \"pipeline_consumer\"",
        ] {
            assert!(plan.contains(&format!("REVOKE ALL {object}")), "{object}");
        }
        assert!(plan.contains(&"REVOKE CREATE ON SCHEMA \"public\" FROM PUBLIC".to_string()));
        assert!(plan.contains(&"REVOKE TEMPORARY ON DATABASE \"pipeline\" FROM PUBLIC".to_string()));
    }

    #[test]
    fn names_are_quoted_in_the_plan() {
        let plan = privilege_plan(
            "odd\"db",
            "pipeline_consumer",
            &TableNames::new("sa\"les", "inventory"),
        );
        assert!(
            plan.contains(&"GRANT CONNECT ON DATABASE \"odd\"\"db\" TO \"pipeline_consumer\"".to_string())
        );
        assert!(plan.contains(
            &"GRANT INSERT ON TABLE \"public\".\"sa\"\"les\" TO \"pipeline_consumer\"".to_string()
        ));
    }

    #[test]
    fn role_names_follow_postgres_identifier_rules() {
        for good in ["pipeline_consumer", "_a", "a1", &"a".repeat(63)] {
            assert!(validate_role_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1abc",
            "Pipeline",
            "pipe-line",
            "pipe line",
            "a\"b",
            "pg_consumer",
            &"a".repeat(64),
        ] {
            assert!(validate_role_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_role_gets_a_login_without_powers_and_a_scram_verifier_not_the_password() {
        let role = AppRole {
            name: "pipeline_consumer".into(),
            password: "it's-a-secret".into(),
        };
        let [create, alter] = role_statements(&role).unwrap();
        for sql in [&create, &alter] {
            assert!(
                sql.contains("LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS")
            );
            assert!(!sql.contains("it's-a-secret") && !sql.contains("it''s-a-secret"));
        }
        assert!(create.contains("EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL"));
        assert!(alter.contains("PASSWORD 'SCRAM-SHA-256$4096:"), "{alter}");
        assert!(!format!("{role:?}").contains("secret"));
        let empty = AppRole {
            name: "pipeline_consumer".into(),
            password: String::new(),
        };
        assert!(role_statements(&empty).is_err());
    }

    #[test]
    fn literals_double_single_quotes() {
        assert_eq!(quote_literal("a'b"), "'a''b'");
    }

    #[test]
    fn the_schema_version_is_the_newest_migration() {
        assert_eq!(schema_version(), 1);
        let mut versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
        versions.dedup();
        assert_eq!(versions.len(), MIGRATIONS.len(), "versions are unique");
    }
}
