use std::sync::Arc;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use pipeline_contracts::contracts;
use producer::app::{build, error_type, handle, init_tracing};
use producer::config::ProducerConfig;
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing(&std::env::var(&contracts().env_vars.log_level).unwrap_or_else(|_| "info".into()));
    let config =
        ProducerConfig::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    let producer = Arc::new(
        build(&config, &sdk)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?,
    );
    let function_name: Arc<str> = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .unwrap_or_else(|_| "producer".into())
        .into();
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
