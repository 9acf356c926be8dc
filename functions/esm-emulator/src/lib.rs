//! A local, faithful stand-in for the AWS Lambda Kafka event source mapping (MSK and self-managed).
//!
//! The pure core (event encoding, batch assembly under the 6 MB cap, retry policy, failure records)
//! is separate from the edges (rdkafka, the Lambda Invoke API, SQS), which live in [`adapters`].

pub mod adapters;
pub mod batch;
pub mod config;
pub mod engine;
pub mod event;
pub mod failure;
pub mod faults;
pub mod ports;
pub mod retry;
pub mod status;

pub use config::{MappingConfig, MappingSettings};
pub use engine::{EngineError, Mapping, StopFlag};

use std::time::Duration;

use adapters::kafka::KafkaSource;
use adapters::lambda::LambdaInvoker;
use adapters::sqs::SqsDestination;
use faults::FaultPlan;
use status::{MappingStatus, Reporter};

/// Where the edges are.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Lambda Invoke API base URL; `None` means AWS.
    pub invoke_endpoint: Option<String>,
    pub invoke_timeout: Duration,
    pub region: String,
}

/// Connects the real adapters and runs one mapping until it stops.
pub async fn run_mapping<R: Reporter>(
    config: MappingConfig,
    endpoints: &Endpoints,
    reporter: R,
    stop: StopFlag,
) -> Result<MappingStatus, EngineError> {
    run_mapping_with_faults(config, endpoints, reporter, stop, FaultPlan::default()).await
}

/// [`run_mapping`] with deliberate faults (fault tests only; see [`faults`]).
pub async fn run_mapping_with_faults<R: Reporter>(
    config: MappingConfig,
    endpoints: &Endpoints,
    reporter: R,
    stop: StopFlag,
    faults: FaultPlan,
) -> Result<MappingStatus, EngineError> {
    let source = KafkaSource::connect(&config)?;
    let invoker = LambdaInvoker::new(
        endpoints.invoke_endpoint.as_deref(),
        &endpoints.region,
        &config.function_name,
        endpoints.invoke_timeout,
    )
    .await;
    let destination = match &config.on_failure_queue_url {
        Some(url) => {
            let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(endpoints.region.clone()))
                .load()
                .await;
            Some(SqsDestination::new(&sdk, url, &config.consumer_group))
        }
        None => None,
    };
    Mapping::new(config, source, invoker, destination, reporter, stop)
        .with_faults(faults)
        .run()
        .await
}
