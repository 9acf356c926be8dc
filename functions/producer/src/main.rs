use std::sync::Arc;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use pipeline_lambda_edge::function_name;
use pipeline_lambda_edge::logging::init_tracing;
use producer::app::{build, error_type, handle};
use producer::config::ProducerConfig;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = init_tracing()
        .and_then(|_| ProducerConfig::from_env())
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    let producer = Arc::new(
        build(&config, &sdk)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?,
    );
    let function_name = function_name("producer");
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let producer = producer.clone();
        let function_name = function_name.clone();
        async move {
            handle(&producer, event.payload, &function_name)
                .await
                .map_err(|error| Diagnostic {
                    error_type: error_type(&error).into(),
                    error_message: error.to_string(),
                })
        }
    }))
    .await
}
