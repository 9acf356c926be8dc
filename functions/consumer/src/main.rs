use std::sync::Arc;

use consumer::app::{build, handle, handle_partial, ConsumerAnswer};
use consumer::config::ConsumerConfig;
use lambda_runtime::Diagnostic;
use pipeline_adapters::glue::{glue_client, GlueSchemaRegistry};
use pipeline_lambda_edge::function_name;
use pipeline_lambda_edge::logging::init_tracing;
use pipeline_lambda_edge::raw_body::run_on_bytes;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = init_tracing()
        .and_then(|_| ConsumerConfig::from_env())
        .inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
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
    let function_name = function_name("consumer");
    let report_batch_item_failures = config.report_batch_item_failures;
    // The body is parsed by the consumer itself (borrowed, no path tracking), not by the runtime.
    run_on_bytes(move |body, _context| {
        let consumer = consumer.clone();
        let function_name = function_name.clone();
        async move {
            let answer = if report_batch_item_failures {
                handle_partial(&consumer, &body, &function_name).await
            } else {
                handle(&consumer, &body, &function_name)
                    .await
                    .map(ConsumerAnswer::Processed)
            };
            answer.map_err(|error| Diagnostic {
                error_type: error.error_type().into(),
                error_message: error.to_string(),
            })
        }
    })
    .await
}
