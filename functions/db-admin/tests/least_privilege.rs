//! Provisioning against the real local PostgreSQL, and what the application role may then do:
//! exactly the consumer's statements (its `PostgresStoreTable`: the schema check at connect and
//! `INSERT … ON CONFLICT DO NOTHING`, replayed), and nothing else: no CREATE (tables, temporary
//! tables, schemas), no DROP, DELETE, UPDATE or TRUNCATE, no reading other columns or tables.
//!
//! Needs `PG_HOST`, `PG_PORT` and the local admin `PIPELINE_PG_ADMIN_USER` /
//! `PIPELINE_PG_ADMIN_PASSWORD` (source `.local/stack.env`); without them the tests skip, unless
//! `PIPELINE_REQUIRE_STACK=1`. Each test uses its own database and role and removes them.

use db_admin::adapters::contract_tables;
use pipeline_adapters::postgres::{PgConnector, PgSettings, PgTls, PostgresStoreTable};
use pipeline_adapters::postgres_schema::{provision, schema_version, AppRole};
use pipeline_contracts::contracts;
use pipeline_domain::consume::ports::{StoreEventRow, StoreEventTable};
use pipeline_domain::model::{RecordCoordinates, StoreEvent, StoreEventType};
use pipeline_domain::ports::PortError;

const ADMIN_USER: &str = "PIPELINE_PG_ADMIN_USER";
const ADMIN_PASSWORD: &str = "PIPELINE_PG_ADMIN_PASSWORD";

fn available(test: &str) -> bool {
    ["PG_HOST", "PG_PORT", ADMIN_USER].iter().all(|var| match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => true,
        _ if std::env::var("PIPELINE_REQUIRE_STACK").as_deref() == Ok("1") => {
            panic!("{test}: {var} is not set and PIPELINE_REQUIRE_STACK=1 (source .local/stack.env)")
        }
        _ => {
            eprintln!("SKIP {test}: {var} is not set (run scripts/local-stack.sh up and source .local/stack.env)");
            false
        }
    })
}

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_default()
}

fn settings(database: &str, user: &str, password: Option<String>) -> PgSettings {
    PgSettings {
        host: Some(env("PG_HOST")),
        port: Some(env("PG_PORT").parse().expect("PG_PORT is a port")),
        database: Some(database.into()),
        user: Some(user.into()),
        password: password.filter(|p| !p.is_empty()),
        secret_id: None,
        tls: PgTls::Disable,
        application_name: "least-privilege-test".into(),
    }
}

async fn connect(settings: PgSettings) -> tokio_postgres::Client {
    PgConnector::new(settings, None)
        .expect("connector")
        .connect()
        .await
        .expect("postgres reachable")
}

async fn admin(database: &str) -> tokio_postgres::Client {
    connect(settings(database, &env(ADMIN_USER), Some(env(ADMIN_PASSWORD)))).await
}

/// A fresh database and role name for one test; `drop` removes both.
struct Scratch {
    database: String,
    role: AppRole,
}

impl Scratch {
    async fn new() -> Self {
        let id = &uuid::Uuid::new_v4().simple().to_string()[..12];
        let scratch = Self {
            database: format!("dbadmin_{id}"),
            role: AppRole {
                name: format!("consumer_{id}"),
                password: format!("pw-{id}-'quoted'"),
            },
        };
        admin("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE \"{}\"", scratch.database))
            .await
            .expect("create database");
        scratch
    }

    async fn provision(&self) -> Result<pipeline_adapters::postgres_schema::Provisioned, PortError> {
        let mut client = admin(&self.database).await;
        provision(&mut client, &contract_tables(), &self.role).await
    }

    fn as_role(&self) -> PgSettings {
        settings(&self.database, &self.role.name, Some(self.role.password.clone()))
    }

    async fn drop(self) {
        let pg = admin("postgres").await;
        pg.batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.database
        ))
        .await
        .expect("drop database");
        pg.batch_execute(&format!("DROP ROLE IF EXISTS \"{}\"", self.role.name))
            .await
            .expect("drop role");
    }
}

fn row(offset: i64, event_type: StoreEventType) -> StoreEventRow {
    StoreEventRow {
        coordinates: RecordCoordinates {
            topic: contracts()
                .topics
                .first_carrying(pipeline_contracts::Payload::StoreEvent)
                .name
                .clone(),
            partition: 2,
            offset,
        },
        event: StoreEvent {
            request_id: format!("req-{offset}"),
            event_type,
            store_id: 17,
            cust_id: 4242,
            category: "Electronics".into(),
            sku: 100_200_300,
            price_cents: 129_999,
            qty: 2,
            discount_hundredths: 1_050,
            gift_wrap: false,
            variant: "black".into(),
            priority_shipping: true,
            ts_micros: 1_764_547_200_000_000,
            contact_me: None,
        },
    }
}

/// The SQLSTATE of a statement run as the role, or `None` if it succeeded.
async fn refused(client: &tokio_postgres::Client, sql: &str) -> Option<String> {
    client
        .batch_execute(sql)
        .await
        .err()
        .map(|e| e.code().map_or_else(|| e.to_string(), |c| c.code().to_string()))
}

#[tokio::test]
async fn the_role_does_what_the_consumer_does_and_nothing_else() {
    let test = "the_role_does_what_the_consumer_does_and_nothing_else";
    if !available(test) {
        return;
    }
    let scratch = Scratch::new().await;
    let first = scratch.provision().await.expect("provision");
    assert_eq!(first.applied, vec![1]);
    assert_eq!(first.schema_version, schema_version());

    // The consumer's own adapter, as the role: connect (schema check), insert, replay.
    let c = contracts();
    let table = PostgresStoreTable::connect(
        PgConnector::new(scratch.as_role(), None).unwrap(),
        &c.postgres.sales_table,
        &c.postgres.inventory_table,
    )
    .await
    .expect("the role passes the schema check");
    let rows = [
        row(10, StoreEventType::Sales),
        row(11, StoreEventType::Inventory),
        row(12, StoreEventType::Sales),
    ];
    assert_eq!(table.insert(&rows).await.expect("insert as the role"), 3);
    assert_eq!(
        table.insert(&rows).await.expect("replay as the role"),
        0,
        "ON CONFLICT DO NOTHING"
    );
    assert_eq!(table.check_schema().await.unwrap(), 1);

    let role = connect(scratch.as_role()).await;
    let sales = format!("\"{}\"", c.postgres.sales_table);
    let inventory = format!("\"{}\"", c.postgres.inventory_table);
    // Allowed: exactly the consumer's statement shapes.
    assert_eq!(
        refused(&role, "SELECT max(version) FROM schema_migrations").await,
        None
    );
    assert_eq!(
        refused(
            &role,
            &format!("SELECT \"topic\", \"partition\", \"offset\" FROM {sales}")
        )
        .await,
        None
    );
    // Refused (42501 insufficient_privilege): everything else.
    for sql in [
        "CREATE TABLE public.intruder (id int)".to_string(),
        "CREATE TABLE intruder (id int)".to_string(),
        "CREATE TEMPORARY TABLE intruder (id int)".to_string(),
        "CREATE SCHEMA intruder".to_string(),
        format!("DROP TABLE {sales}"),
        format!("ALTER TABLE {sales} ADD COLUMN x int"),
        format!("DELETE FROM {sales}"),
        format!("UPDATE {inventory} SET qty = 0"),
        format!("TRUNCATE {inventory}"),
        format!("SELECT * FROM {sales}"),
        format!("SELECT \"cust_id\" FROM {inventory}"),
        "SELECT * FROM schema_migrations".to_string(),
        "INSERT INTO schema_migrations (version, description) VALUES (99, 'x')".to_string(),
        "DELETE FROM schema_migrations".to_string(),
        format!("CREATE INDEX intruder ON {sales} (qty)"),
    ] {
        assert_eq!(refused(&role, &sql).await.as_deref(), Some("42501"), "{sql}");
    }
    let attributes = admin(&scratch.database)
        .await
        .query_one(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls, rolcanlogin
             FROM pg_roles WHERE rolname = $1",
            &[&scratch.role.name],
        )
        .await
        .unwrap();
    let flags: Vec<bool> = (0..7).map(|i| attributes.get(i)).collect();
    assert_eq!(flags, vec![false, false, false, false, false, false, true]);
    let owned: i64 = admin(&scratch.database)
        .await
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles WHERE rolname = $1)",
            &[&scratch.role.name],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owned, 0, "the role owns nothing");
    drop((table, role));
    scratch.drop().await;
}

#[tokio::test]
async fn provisioning_again_applies_nothing_and_takes_back_hand_made_grants() {
    let test = "provisioning_again_applies_nothing_and_takes_back_hand_made_grants";
    if !available(test) {
        return;
    }
    let scratch = Scratch::new().await;
    scratch.provision().await.expect("provision");
    let sales = format!("\"{}\"", contracts().postgres.sales_table);
    admin(&scratch.database)
        .await
        .batch_execute(&format!(
            "GRANT DELETE, UPDATE ON {sales} TO \"{0}\"; GRANT CREATE ON SCHEMA public TO \"{0}\"",
            scratch.role.name
        ))
        .await
        .unwrap();
    let again = scratch.provision().await.expect("provision again");
    assert!(again.applied.is_empty(), "no migration twice");
    let role = connect(scratch.as_role()).await;
    assert_eq!(
        refused(&role, &format!("DELETE FROM {sales}")).await.as_deref(),
        Some("42501")
    );
    assert_eq!(
        refused(&role, "CREATE TABLE intruder (id int)").await.as_deref(),
        Some("42501")
    );
    drop(role);
    scratch.drop().await;
}

#[tokio::test]
async fn a_changed_password_takes_effect_and_the_old_one_stops_working() {
    let test = "a_changed_password_takes_effect_and_the_old_one_stops_working";
    if !available(test) {
        return;
    }
    let mut scratch = Scratch::new().await;
    scratch.provision().await.expect("provision");
    let old = scratch.as_role();
    scratch.role.password.push_str("-rotated");
    scratch
        .provision()
        .await
        .expect("provision with the new password");
    connect(scratch.as_role()).await;
    let error = PgConnector::new(old, None).unwrap().connect().await.unwrap_err();
    assert!(error.to_string().contains("28P01"), "{error}");
    scratch.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_apply_each_migration_once() {
    let test = "concurrent_runs_apply_each_migration_once";
    if !available(test) {
        return;
    }
    let scratch = Scratch::new().await;
    let runs = futures::future::join_all((0..4).map(|_| scratch.provision())).await;
    let mut applied = Vec::new();
    for run in runs {
        applied.extend(run.expect("every run succeeds").applied);
    }
    assert_eq!(
        applied,
        vec![1],
        "one run applied the migration, the others found it"
    );
    let unique: i64 = admin(&scratch.database)
        .await
        .query_one(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'u' AND conrelid = to_regclass($1)",
            &[&contracts().postgres.sales_table],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(unique, 1, "(topic, partition, offset) is unique");
    scratch.drop().await;
}

#[tokio::test]
async fn the_consumer_refuses_an_unprovisioned_database_and_says_to_deploy() {
    let test = "the_consumer_refuses_an_unprovisioned_database_and_says_to_deploy";
    if !available(test) {
        return;
    }
    let scratch = Scratch::new().await;
    let c = contracts();
    let admin_settings = settings(&scratch.database, &env(ADMIN_USER), Some(env(ADMIN_PASSWORD)));
    let error = PostgresStoreTable::connect(
        PgConnector::new(admin_settings, None).unwrap(),
        &c.postgres.sales_table,
        &c.postgres.inventory_table,
    )
    .await
    .err()
    .expect("no schema, no start");
    let message = error.to_string();
    assert!(!error.is_transient(), "{message}");
    assert!(
        message.contains("schema_migrations") && message.contains("deploy consumer-stack"),
        "{message}"
    );
    let tables: i64 = admin(&scratch.database)
        .await
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "the consumer created nothing, even as the admin");
    scratch.drop().await;
}
