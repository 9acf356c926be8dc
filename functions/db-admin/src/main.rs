use std::sync::Arc;

use db_admin::adapters::PgProvisioner;
use db_admin::event::Request;
use db_admin::handler::handle;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use pipeline_adapters::secrets::JsonSecrets;
use serde_json::Value;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<(), Error> {
    // JSON lines so Lambda's JSON log format and level filtering understand them.
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_current_span(false)
        .with_target(false)
        .init();

    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    let provisioner = Arc::new(PgProvisioner::new(JsonSecrets::new(
        aws_sdk_secretsmanager::Client::new(&sdk),
    )));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let provisioner = provisioner.clone();
        async move {
            let request = Request::from_value(event.payload)?;
            let response = handle(request, provisioner.as_ref()).await?;
            Ok::<Value, Error>(serde_json::to_value(response)?)
        }
    }))
    .await
}
