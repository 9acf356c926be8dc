use std::sync::Arc;

use consumer::app::{build, handle, init_tracing};
use consumer::config::ConsumerConfig;
use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use pipeline_adapters::glue::{glue_client, GlueSchemaRegistry};
use pipeline_contracts::contracts;
use pipeline_domain::consume::batch::BatchError;
use pipeline_domain::event::KafkaEvent;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing(&std::env::var(&contracts().env_vars.log_level).unwrap_or_else(|_| "info".into()));
    let config =
        ConsumerConfig::from_env().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    let schemas = GlueSchemaRegistry::new(
        glue_client(&sdk, config.registry_role_arn.as_deref()).await,
        &config.registry_name,
    );
    let consumer = Arc::new(
        build(&config, &sdk, schemas)
            .await
            .inspect_err(|e| tracing::error!(error = %e, "cold start failed"))?,
    );
    let function_name: Arc<str> = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .unwrap_or_else(|_| "consumer".into())
        .into();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<KafkaEvent>| {
        let consumer = consumer.clone();
        let function_name = function_name.clone();
        async move {
            handle(&consumer, &event.payload, &function_name)
                .await
                .map_err(|error| Diagnostic {
                    error_type: match error {
                        BatchError::SchemaRegistry(_) => "SchemaRegistryUnavailable",
                        BatchError::Sinks(_) => "SinkFailed",
                    }
                    .into(),
                    error_message: error.to_string(),
                })
        }
    }))
    .await
}
