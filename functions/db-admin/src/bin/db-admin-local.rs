//! The local stack's deploy-time step: applies the migrations as the local admin and sets up the
//! consumer's role, exactly as the `db-admin` custom resource does on AWS. Prints one JSON line.

use clap::Parser;
use db_admin::adapters::{contract_tables, APPLICATION_NAME};
use pipeline_adapters::postgres::{PgConnector, PgSettings, PgTls};
use pipeline_adapters::postgres_schema::{provision, AppRole};

#[derive(Parser)]
#[command(about = "Apply the PostgreSQL migrations and set up the consumer's least-privilege role")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 5432)]
    port: u16,
    #[arg(long)]
    database: String,
    /// A role that owns the database (the local admin).
    #[arg(long)]
    admin_user: String,
    #[arg(long, env = "DB_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// The application role to create or update.
    #[arg(long)]
    role: String,
    #[arg(long, env = "DB_ADMIN_ROLE_PASSWORD", hide_env_values = true)]
    role_password: String,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let connector = PgConnector::new(
        PgSettings {
            host: Some(args.host),
            port: Some(args.port),
            database: Some(args.database),
            user: Some(args.admin_user),
            password: args.admin_password,
            secret_id: None,
            tls: PgTls::Disable,
            application_name: APPLICATION_NAME.into(),
        },
        None,
    )?;
    let mut client = connector.connect().await?;
    let done = provision(
        &mut client,
        &contract_tables(),
        &AppRole {
            name: args.role,
            password: args.role_password,
        },
    )
    .await?;
    println!(
        "{}",
        serde_json::json!({
            "database": done.database, "role": done.role,
            "applied": done.applied, "schema_version": done.schema_version,
        })
    );
    Ok(())
}
