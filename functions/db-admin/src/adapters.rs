//! The PostgreSQL provisioner: reads both secrets from Secrets Manager, connects as the master
//! user and runs `pipeline_adapters::postgres_schema::provision`.

use pipeline_adapters::postgres::{PgConnector, PgSettings, PgTls};
use pipeline_adapters::postgres_schema::{provision, AppRole, Provisioned, TableNames};
use pipeline_adapters::secrets::JsonSecrets;
use pipeline_contracts::contracts;
use pipeline_domain::ports::PortError;
use serde::Deserialize;

use crate::event::SchemaProperties;
use crate::ports::SchemaProvisioner;

/// Shown in `pg_stat_activity` and the RDS connection log.
pub const APPLICATION_NAME: &str = "pipeline-db-admin";

/// The application role's secret: what RDS Proxy also reads (`username`, `password`).
#[derive(Deserialize)]
struct RoleSecret {
    username: String,
    password: String,
}

pub struct PgProvisioner {
    secrets: JsonSecrets,
}

impl PgProvisioner {
    pub fn new(secrets: JsonSecrets) -> Self {
        Self { secrets }
    }
}

/// The contract's store-event tables.
pub fn contract_tables() -> TableNames {
    let c = contracts();
    TableNames::new(&c.postgres.sales_table, &c.postgres.inventory_table)
}

impl SchemaProvisioner for PgProvisioner {
    async fn provision(&self, properties: &SchemaProperties) -> Result<Provisioned, PortError> {
        let role: RoleSecret = self.secrets.get(&properties.app_secret_id).await?;
        let settings = PgSettings {
            host: properties.host.clone(),
            port: properties.port,
            database: properties.database.clone(),
            user: None,
            password: None,
            secret_id: Some(properties.master_secret_id.clone()),
            tls: if properties.tls {
                PgTls::Require
            } else {
                PgTls::Disable
            },
            application_name: APPLICATION_NAME.into(),
        };
        let connector = PgConnector::new(settings, Some(self.secrets.clone()))?;
        let mut client = connector.connect().await?;
        provision(
            &mut client,
            &contract_tables(),
            &AppRole {
                name: role.username,
                password: role.password,
            },
        )
        .await
    }
}
