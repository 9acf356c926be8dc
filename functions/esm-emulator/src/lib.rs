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
pub mod redrive;
pub mod retry;
pub mod status;

pub use config::{MappingConfig, MappingSettings};
pub use engine::{EngineError, Mapping, StopFlag};

use std::time::Duration;

use adapters::kafka::{KafkaRangeReader, KafkaSource};
use adapters::lambda::LambdaInvoker;
use adapters::sqs::{SqsDestination, SqsFailureQueue};
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

/// Where a redrive reads and what it invokes.
#[derive(Debug, Clone)]
pub struct RedriveTarget {
    pub queue_url: String,
    pub bootstrap_servers: String,
    pub function_name: String,
    /// How long to wait for the next record of a range before calling it incomplete.
    pub read_idle_timeout: Duration,
    /// Messages received stay hidden from other readers this long.
    pub visibility_timeout_secs: i32,
}

/// Connects the real adapters and redrives the on-failure queue once (see [`redrive`]).
pub async fn run_redrive(
    target: &RedriveTarget,
    endpoints: &Endpoints,
    settings: &redrive::RedriveSettings,
) -> Result<redrive::RedriveOutcome, String> {
    let mut reader = KafkaRangeReader::connect(&target.bootstrap_servers, target.read_idle_timeout)
        .map_err(|e| e.to_string())?;
    let invoker = LambdaInvoker::new(
        endpoints.invoke_endpoint.as_deref(),
        &endpoints.region,
        &target.function_name,
        endpoints.invoke_timeout,
    )
    .await;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(endpoints.region.clone()))
        .load()
        .await;
    let queue = SqsFailureQueue::new(&sdk, &target.queue_url, target.visibility_timeout_secs);
    redrive::redrive(&queue, &mut reader, &invoker, settings)
        .await
        .map_err(|e| e.to_string())
}
