// The Lambda service future nests the Kafka connection, rustls and the SDK signer deeply enough to need this.
#![recursion_limit = "256"]

use pipeline_lambda_edge::custom_resource;
use topic_admin::adapters::kafka_admin::KafkaConnector;
use topic_admin::event::Request;
use topic_admin::handler::{handle, VisibilityWait};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let connector = KafkaConnector::new(std::env::var("AWS_REGION").ok());
    custom_resource::run(|payload| {
        let connector = connector.clone();
        async move {
            let request = Request::from_value(payload)?;
            Ok::<_, lambda_runtime::Error>(handle(request, &connector, VisibilityWait::default()).await?)
        }
    })
    .await
}
