// The Lambda service future nests the Kafka connection, rustls and the SDK signer deeply enough to need this.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;
use topic_admin::adapters::kafka_admin::KafkaConnector;
use topic_admin::event::Request;
use topic_admin::handler::{handle, VisibilityWait};
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

    let connector = KafkaConnector::new(std::env::var("AWS_REGION").ok());
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let connector = connector.clone();
        async move {
            let request = Request::from_value(event.payload)?;
            let response = handle(request, &connector, VisibilityWait::default()).await?;
            Ok::<Value, Error>(serde_json::to_value(response)?)
        }
    }))
    .await
}
