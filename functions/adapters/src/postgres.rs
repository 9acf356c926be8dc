//! PostgreSQL as the domain's [`StoreEventTable`]: `sales` and `inventory` (names from the
//! contract), one row per record, unique on `(topic, partition, "offset")`.
//!
//! - Inserts are one `INSERT … SELECT FROM UNNEST(…) ON CONFLICT DO NOTHING` per table and batch,
//!   in one transaction: a replayed batch inserts nothing and changes nothing.
//! - Money arrives as exact hundredths and is bound as decimal text cast to `NUMERIC(12,2)` /
//!   `NUMERIC(5,2)`; event times as epoch microseconds added to the epoch, exactly.
//! - [`PostgresStoreTable::connect`] only checks the schema version: the migrations and the
//!   application role's grants are applied at deploy time (`crate::postgres_schema`, run by
//!   db-admin), so the consumer's role needs no DDL rights.
//! - A broken connection is dropped and re-opened on the next call (credentials are re-read from
//!   Secrets Manager then, which also follows a rotation).
//! - TLS (`PG_TLS=require`) verifies the server against the webpki roots plus the trust store
//!   named by `SSL_CERT_FILE`/`SSL_CERT_DIR` (point it at the RDS CA bundle for direct RDS
//!   connections; RDS Proxy certificates chain to the Amazon roots already included).

use std::sync::Arc;
use std::time::Duration;

use pipeline_domain::consume::ports::{StoreEventRow, StoreEventTable};
use pipeline_domain::model::{format_hundredths, StoreEventType};
use pipeline_domain::ports::PortError;
use serde::Deserialize;
use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::postgres_schema::{check_schema, TableNames};
use crate::secrets::JsonSecrets;

const COMPONENT: &str = "postgresql";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgTls {
    /// Encrypt and verify the server certificate and host name.
    Require,
    Disable,
}

/// Where and how to connect. Fields left `None` are taken from the secret, if one is named.
#[derive(Debug, Clone)]
pub struct PgSettings {
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Secrets Manager id of an RDS-style secret `{username, password, host, port, dbname}`.
    pub secret_id: Option<String>,
    pub tls: PgTls,
    pub application_name: String,
}

/// The RDS secret layout; `port` may be a number or a string.
#[derive(Deserialize)]
struct RdsSecret {
    username: Option<String>,
    password: Option<String>,
    host: Option<String>,
    port: Option<PortValue>,
    dbname: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortValue {
    Number(u16),
    Text(String),
}

pub(crate) fn rejected(message: impl Into<String>) -> PortError {
    PortError::Rejected {
        component: COMPONENT,
        message: message.into(),
    }
}

/// Opens connections, resolving credentials each time.
#[derive(Clone)]
pub struct PgConnector {
    settings: PgSettings,
    secrets: Option<JsonSecrets>,
    tls: Option<MakeRustlsConnect>,
}

impl PgConnector {
    /// `secrets` is needed only when `settings.secret_id` is set.
    pub fn new(settings: PgSettings, secrets: Option<JsonSecrets>) -> Result<Self, PortError> {
        if settings.secret_id.is_some() && secrets.is_none() {
            return Err(rejected(
                "a database secret is configured but no Secrets Manager client",
            ));
        }
        let tls = match settings.tls {
            PgTls::Require => Some(MakeRustlsConnect::new(tls_client_config()?)),
            PgTls::Disable => None,
        };
        Ok(Self {
            settings,
            secrets,
            tls,
        })
    }

    async fn config(&self) -> Result<tokio_postgres::Config, PortError> {
        let s = &self.settings;
        let secret: Option<RdsSecret> = match (&s.secret_id, &self.secrets) {
            (Some(id), Some(secrets)) => Some(secrets.get(id).await?),
            _ => None,
        };
        let from_secret = |pick: fn(&RdsSecret) -> Option<String>| secret.as_ref().and_then(pick);
        let host = s
            .host
            .clone()
            .or_else(|| from_secret(|x| x.host.clone()))
            .ok_or_else(|| rejected("no database host (PG_HOST or the secret's host)"))?;
        let user = s
            .user
            .clone()
            .or_else(|| from_secret(|x| x.username.clone()))
            .ok_or_else(|| rejected("no database user (PG_USER or the secret's username)"))?;
        let database = s
            .database
            .clone()
            .or_else(|| from_secret(|x| x.dbname.clone()))
            .ok_or_else(|| rejected("no database name (PG_DATABASE or the secret's dbname)"))?;
        let port = match (s.port, secret.as_ref().and_then(|x| x.port.as_ref())) {
            (Some(port), _) => port,
            (None, Some(PortValue::Number(port))) => *port,
            (None, Some(PortValue::Text(text))) => text
                .parse()
                .map_err(|_| rejected(format!("secret port {text:?} is not a port number")))?,
            (None, None) => 5432,
        };
        let password = s.password.clone().or_else(|| from_secret(|x| x.password.clone()));

        let mut config = tokio_postgres::Config::new();
        config
            .host(&host)
            .port(port)
            .user(&user)
            .dbname(&database)
            .application_name(&s.application_name)
            .connect_timeout(Duration::from_secs(5))
            .keepalives(true)
            .ssl_mode(match s.tls {
                PgTls::Require => SslMode::Require,
                PgTls::Disable => SslMode::Disable,
            });
        if let Some(password) = password {
            config.password(password);
        }
        Ok(config)
    }

    /// A new connection; its driver task runs until the connection closes.
    pub async fn connect(&self) -> Result<Client, PortError> {
        let config = self.config().await?;
        let client = match &self.tls {
            Some(tls) => {
                let (client, connection) = config.connect(tls.clone()).await.map_err(classify)?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "postgresql connection closed");
                    }
                });
                client
            }
            None => {
                let (client, connection) = config.connect(NoTls).await.map_err(classify)?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "postgresql connection closed");
                    }
                });
                client
            }
        };
        Ok(client)
    }
}

/// Roots: webpki's Mozilla set, plus whatever `SSL_CERT_FILE`/`SSL_CERT_DIR` or the system store
/// hold (that is how an RDS CA bundle is added). The ring provider is chosen explicitly because
/// other crates in the process enable rustls' aws-lc-rs provider too.
fn tls_client_config() -> Result<rustls::ClientConfig, PortError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::debug!(%error, "some system certificates could not be loaded");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    tracing::debug!(added, ignored, "extra trust anchors for postgresql");
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| rejected(format!("TLS configuration: {e}")))
        .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
}

/// Connection loss, resource exhaustion, serialization failures, shutdowns and failed logins
/// (a rotated password is re-read on reconnect) are transient; anything else is a rejection.
pub(crate) fn classify(error: tokio_postgres::Error) -> PortError {
    let message = match error.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => error.to_string(),
    };
    let transient = match error.code() {
        None => true,
        Some(code) => {
            let code = code.code();
            ["08", "40", "53", "57", "58"]
                .iter()
                .any(|class| code.starts_with(class))
                || code == "28P01"
        }
    };
    if transient {
        PortError::Transient {
            component: COMPONENT,
            message,
        }
    } else {
        PortError::Rejected {
            component: COMPONENT,
            message,
        }
    }
}

pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The store-event tables.
pub struct PostgresStoreTable {
    connector: PgConnector,
    client: tokio::sync::Mutex<Option<Client>>,
    names: TableNames,
}

impl PostgresStoreTable {
    /// Connects and checks that the schema is at least the version this code needs; fails with
    /// an error telling the operator to deploy otherwise.
    pub async fn connect(
        connector: PgConnector,
        sales_table: impl Into<String>,
        inventory_table: impl Into<String>,
    ) -> Result<Self, PortError> {
        let table = Self {
            connector,
            client: tokio::sync::Mutex::new(None),
            names: TableNames::new(sales_table, inventory_table),
        };
        table.check_schema().await?;
        Ok(table)
    }

    /// The schema version found (at least `postgres_schema::schema_version()`).
    pub async fn check_schema(&self) -> Result<i32, PortError> {
        let mut guard = self.client.lock().await;
        let client = Self::ready(&self.connector, &mut guard).await?;
        let result = check_schema(client).await;
        Self::forget_if_broken(&mut guard, &result);
        result
    }

    async fn ready<'a>(
        connector: &PgConnector,
        slot: &'a mut Option<Client>,
    ) -> Result<&'a mut Client, PortError> {
        if slot.as_ref().is_some_and(Client::is_closed) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(connector.connect().await?);
        }
        slot.as_mut().ok_or_else(|| rejected("no connection"))
    }

    /// Drops the connection after a transient error, so the next call reconnects.
    fn forget_if_broken<T>(slot: &mut Option<Client>, result: &Result<T, PortError>) {
        if matches!(result, Err(e) if e.is_transient()) {
            *slot = None;
        }
    }

    fn insert_sql(table: &str) -> String {
        format!(
            r#"INSERT INTO {} ("topic", "partition", "offset", "request_id", "store_id", "cust_id", "category",
    "sku", "price", "qty", "discount", "gift_wrap", "variant", "priority_shipping", "event_time", "contact_me")
SELECT u.topic, u.part, u.off, u.request_id, u.store_id, u.cust_id, u.category, u.sku,
    u.price::numeric(12,2), u.qty, u.discount::numeric(5,2), u.gift_wrap, u.variant, u.priority_shipping,
    timestamptz 'epoch' + u.ts_micros * interval '1 microsecond', u.contact_me
FROM UNNEST($1::text[], $2::int4[], $3::int8[], $4::text[], $5::int4[], $6::int4[], $7::text[], $8::int8[],
    $9::text[], $10::int4[], $11::text[], $12::bool[], $13::text[], $14::bool[], $15::int8[], $16::text[])
    AS u(topic, part, off, request_id, store_id, cust_id, category, sku, price, qty, discount, gift_wrap,
         variant, priority_shipping, ts_micros, contact_me)
ON CONFLICT ("topic", "partition", "offset") DO NOTHING"#,
            quote_ident(table)
        )
    }

    async fn insert_with(&self, client: &mut Client, rows: &[StoreEventRow]) -> Result<u64, PortError> {
        let tx = client.transaction().await.map_err(classify)?;
        let mut inserted = 0;
        for (event_type, table) in [
            (StoreEventType::Sales, &self.names.sales),
            (StoreEventType::Inventory, &self.names.inventory),
        ] {
            let selected: Vec<&StoreEventRow> =
                rows.iter().filter(|r| r.event.event_type == event_type).collect();
            if selected.is_empty() {
                continue;
            }
            let columns = Columns::of(&selected);
            inserted += tx
                .execute(&Self::insert_sql(table), &columns.params())
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(inserted)
    }
}

/// Column arrays for UNNEST.
struct Columns {
    topic: Vec<String>,
    partition: Vec<i32>,
    offset: Vec<i64>,
    request_id: Vec<String>,
    store_id: Vec<i32>,
    cust_id: Vec<i32>,
    category: Vec<String>,
    sku: Vec<i64>,
    price: Vec<String>,
    qty: Vec<i32>,
    discount: Vec<String>,
    gift_wrap: Vec<bool>,
    variant: Vec<String>,
    priority_shipping: Vec<bool>,
    ts_micros: Vec<i64>,
    contact_me: Vec<Option<String>>,
}

impl Columns {
    fn of(rows: &[&StoreEventRow]) -> Self {
        Self {
            topic: rows.iter().map(|r| r.coordinates.topic.clone()).collect(),
            partition: rows.iter().map(|r| r.coordinates.partition).collect(),
            offset: rows.iter().map(|r| r.coordinates.offset).collect(),
            request_id: rows.iter().map(|r| r.event.request_id.clone()).collect(),
            store_id: rows.iter().map(|r| r.event.store_id).collect(),
            cust_id: rows.iter().map(|r| r.event.cust_id).collect(),
            category: rows.iter().map(|r| r.event.category.clone()).collect(),
            sku: rows.iter().map(|r| r.event.sku).collect(),
            price: rows
                .iter()
                .map(|r| format_hundredths(r.event.price_cents))
                .collect(),
            qty: rows.iter().map(|r| r.event.qty).collect(),
            discount: rows
                .iter()
                .map(|r| format_hundredths(r.event.discount_hundredths))
                .collect(),
            gift_wrap: rows.iter().map(|r| r.event.gift_wrap).collect(),
            variant: rows.iter().map(|r| r.event.variant.clone()).collect(),
            priority_shipping: rows.iter().map(|r| r.event.priority_shipping).collect(),
            ts_micros: rows.iter().map(|r| r.event.ts_micros).collect(),
            contact_me: rows.iter().map(|r| r.event.contact_me.clone()).collect(),
        }
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 16] {
        [
            &self.topic,
            &self.partition,
            &self.offset,
            &self.request_id,
            &self.store_id,
            &self.cust_id,
            &self.category,
            &self.sku,
            &self.price,
            &self.qty,
            &self.discount,
            &self.gift_wrap,
            &self.variant,
            &self.priority_shipping,
            &self.ts_micros,
            &self.contact_me,
        ]
    }
}

impl StoreEventTable for PostgresStoreTable {
    async fn insert(&self, rows: &[StoreEventRow]) -> Result<u64, PortError> {
        let mut guard = self.client.lock().await;
        let client = Self::ready(&self.connector, &mut guard).await?;
        let result = self.insert_with(client, rows).await;
        Self::forget_if_broken(&mut guard, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("sales"), "\"sales\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert!(PostgresStoreTable::insert_sql("inventory").starts_with("INSERT INTO \"inventory\""));
    }

    #[test]
    fn tls_configuration_builds_with_roots() {
        assert!(tls_client_config().is_ok());
    }
}
