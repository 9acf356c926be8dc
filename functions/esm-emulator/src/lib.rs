//! A local, faithful stand-in for the AWS Lambda Kafka event source mapping (MSK and self-managed).
//!
//! The pure core (event encoding, batch assembly under the 6 MB cap, retry policy, failure records)
//! is separate from the edges (rdkafka, the Lambda Invoke API, SQS), which live in [`adapters`].

pub mod adapters;
pub mod aws_api;
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

use std::sync::{Arc, Mutex};
use std::time::Duration;

use adapters::kafka::{KafkaRangeReader, KafkaSource};
use adapters::lambda::LambdaInvoker;
use adapters::sqs::{SqsDestination, SqsFailureQueue};
use faults::FaultPlan;
use ports::SourceError;
use status::{MappingStatus, Reporter, SharedStatus, SharingReporter};

/// Where the edges are.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// Lambda Invoke API base URL; `None` means AWS.
    pub invoke_endpoint: Option<String>,
    pub invoke_timeout: Duration,
    pub region: String,
    /// Endpoint of the mapping's own AWS calls (its on-failure destination); `None` means the
    /// SDK's default (`AWS_ENDPOINT_URL`, else AWS). The integration tests point it at the
    /// recording endpoint acting as the mappings of the consumer.
    pub aws_endpoint: Option<String>,
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
    run_mapping_served(config, endpoints, reporter, stop, faults, ServeOptions::default()).await
}

/// How a long-running mapping behaves beyond the mapping itself.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// Answer the Lambda API's mapping reads here ([`aws_api`]).
    pub api: Option<tokio::net::TcpListener>,
    /// Keep trying to reach the brokers and the topic at this interval, as an AWS mapping does
    /// (it stays `Enabled` and reports the problem in `LastProcessingResult`); `None` fails at once.
    pub retry_connect_every: Option<Duration>,
}

/// [`run_mapping_with_faults`], optionally serving the mapping API and retrying the first connection.
pub async fn run_mapping_served<R: Reporter>(
    config: MappingConfig,
    endpoints: &Endpoints,
    reporter: R,
    stop: StopFlag,
    faults: FaultPlan,
    options: ServeOptions,
) -> Result<MappingStatus, EngineError> {
    let shared: SharedStatus = Arc::new(Mutex::new(MappingStatus::starting(
        &config.topic,
        &config.consumer_group,
        &config.function_name,
    )));
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let api = options.api.map(|listener| {
        let description = aws_api::MappingDescription::from_config(&config, started);
        tokio::spawn(adapters::mapping_api::serve(
            listener,
            description,
            shared.clone(),
        ))
    });
    let mut reporter = SharingReporter::new(reporter, shared);
    let result = async {
        let Some(source) = connect(&config, options.retry_connect_every, &mut reporter, &stop).await? else {
            let mut status =
                MappingStatus::starting(&config.topic, &config.consumer_group, &config.function_name);
            status.state = status::MappingState::Stopped;
            return Ok(status);
        };
        let invoker = LambdaInvoker::new(
            endpoints.invoke_endpoint.as_deref(),
            &endpoints.region,
            &config.function_name,
            endpoints.invoke_timeout,
        )
        .await;
        let destination = match &config.on_failure_queue_url {
            Some(url) => {
                let mut loader = pipeline_msk_auth::sdk_config_loader()
                    .region(aws_config::Region::new(endpoints.region.clone()));
                if let Some(url) = &endpoints.aws_endpoint {
                    loader = loader.endpoint_url(url);
                }
                let sdk = loader.load().await;
                Some(SqsDestination::new(&sdk, url, &config.consumer_group))
            }
            None => None,
        };
        Mapping::new(config, source, invoker, destination, &mut reporter, stop)
            .with_faults(faults)
            .run()
            .await
    }
    .await;
    if let Some(api) = api {
        api.abort();
    }
    result
}

/// Connects to the topic; with a retry interval, keeps trying (reporting why it cannot) until it
/// connects or a stop is requested (`None`).
async fn connect<R: Reporter>(
    config: &MappingConfig,
    retry_every: Option<Duration>,
    reporter: &mut R,
    stop: &StopFlag,
) -> Result<Option<KafkaSource>, EngineError> {
    let mut status = MappingStatus::starting(&config.topic, &config.consumer_group, &config.function_name);
    loop {
        let error = match KafkaSource::connect(config) {
            Ok(source) => return Ok(Some(source)),
            Err(error) => error,
        };
        let Some(every) = retry_every else {
            return Err(error.into());
        };
        tracing::warn!(%error, retry_in = ?every, "cannot start polling; retrying like an AWS mapping does");
        status.state = status::MappingState::Connecting;
        status.last_processing_result = match &error {
            SourceError::TopicNotFound { topic, servers } => {
                status::ProcessingResult::TopicNotFound(format!("{topic} is not on {servers}"))
            }
            SourceError::Kafka(message) => status::ProcessingResult::ConnectionError(message.clone()),
        };
        reporter.status(&status);
        let until = tokio::time::Instant::now() + every;
        while tokio::time::Instant::now() < until {
            if stop.is_stopped() {
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
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
    let sdk = pipeline_msk_auth::sdk_config_loader()
        .region(aws_config::Region::new(endpoints.region.clone()))
        .load()
        .await;
    let queue = SqsFailureQueue::new(&sdk, &target.queue_url, target.visibility_timeout_secs);
    redrive::redrive(&queue, &mut reader, &invoker, settings)
        .await
        .map_err(|e| e.to_string())
}
