//! `esm-emulator`: runs one Kafka event source mapping against a Lambda Invoke API endpoint.
//!
//! Reports go to stdout as JSON lines (`{"type":"batch"|"status","data":{...}}`), logs to stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use esm_emulator::adapters::mapping_api;
use esm_emulator::adapters::report::JsonLinesReporter;
use esm_emulator::config::ErrorHandlingSettings;
use esm_emulator::faults::{FaultPlan, INJECTED_CRASH_EXIT_CODE};
use esm_emulator::{run_mapping_served, Endpoints, EngineError, MappingSettings, ServeOptions, StopFlag};
use tracing::{error, info};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Local Lambda Kafka event source mapping (aws:kafka / SelfManagedKafka)"
)]
struct Cli {
    /// Topic to read.
    #[arg(long)]
    topic: String,
    /// Consumer group of this mapping (one per mapping, as on AWS).
    #[arg(long)]
    consumer_group: String,
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    bootstrap_servers: String,
    /// TRIM_HORIZON or LATEST; used only for partitions the group has not committed yet.
    #[arg(long, default_value = "TRIM_HORIZON")]
    starting_position: String,
    /// BatchSize, 1..=10000 (AWS default 100).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// MaximumBatchingWindowInSeconds (fractions allowed; AWS default for Kafka is 0.5).
    #[arg(long, default_value_t = 0.5)]
    batching_window_secs: f64,
    /// Invoke payload cap in bytes (Lambda's synchronous limit is 6 MiB).
    #[arg(long, default_value_t = esm_emulator::config::MAX_INVOKE_PAYLOAD_BYTES)]
    max_payload_bytes: usize,
    /// MaximumRetryAttempts: -1 retries forever, else 0..=10000.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    maximum_retry_attempts: i64,
    /// Provisioned mode: required by the four error-handling controls below, as on AWS.
    #[arg(long)]
    provisioned_mode: bool,
    /// MaximumRecordAgeInSeconds: -1 (infinite) or 60..=604800; older records go to the
    /// on-failure destination unprocessed.
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    maximum_record_age_secs: i64,
    /// BisectBatchOnFunctionError: a failed batch is split in two and each half retried.
    #[arg(long)]
    bisect_batch_on_function_error: bool,
    /// FunctionResponseTypes ReportBatchItemFailures: honour the function's partial-batch response.
    #[arg(long)]
    report_batch_item_failures: bool,
    #[arg(long, default_value_t = 500)]
    retry_initial_backoff_ms: u64,
    #[arg(long, default_value_t = 30_000)]
    retry_max_backoff_ms: u64,
    /// MSK cluster ARN: emit `aws:kafka` events; without it events are `SelfManagedKafka`.
    #[arg(long)]
    msk_cluster_arn: Option<String>,
    /// Function name (or ARN) to invoke.
    #[arg(long)]
    function_name: String,
    /// Lambda Invoke API endpoint; `cargo lambda watch` listens on http://127.0.0.1:9000.
    #[arg(long, env = "ESM_INVOKE_ENDPOINT", default_value = "http://127.0.0.1:9000")]
    invoke_endpoint: String,
    /// Use the real AWS Lambda endpoint instead of --invoke-endpoint.
    #[arg(long)]
    aws: bool,
    #[arg(long, default_value_t = 900)]
    invoke_timeout_secs: u64,
    /// On-failure destination: SQS queue URL.
    #[arg(long)]
    on_failure_queue_url: Option<String>,
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// Keep the latest status (per-partition lag, counters) in this JSON file.
    #[arg(long)]
    status_file: Option<PathBuf>,
    /// Also print every status refresh on stdout, not only batches.
    #[arg(long)]
    print_status: bool,
    /// Answer the Lambda API's ListEventSourceMappings / GetEventSourceMapping for this mapping
    /// here (loopback only), e.g. 127.0.0.1:43190; point an AWS client's Lambda endpoint at it.
    #[arg(long, value_name = "ADDRESS:PORT")]
    mapping_api_address: Option<std::net::SocketAddr>,
    /// When the brokers or the topic cannot be reached at start, keep retrying at this interval
    /// (as an AWS mapping does, reporting the problem) instead of exiting.
    #[arg(long, value_name = "SECONDS")]
    retry_connect_secs: Option<f64>,
    /// Exit once every partition has been caught up for this many seconds.
    #[arg(long)]
    exit_when_idle_secs: Option<f64>,
    /// Invoke every batch twice with the identical payload before committing it.
    #[arg(
        long,
        help_heading = "Fault injection (fault tests only; never on by default)"
    )]
    fault_deliver_twice: bool,
    /// Exit with code 86 after this many delivered batches, leaving the last one uncommitted
    /// (the function has written its sinks; the restarted mapping delivers the batch again).
    #[arg(
        long,
        value_name = "N",
        help_heading = "Fault injection (fault tests only; never on by default)"
    )]
    fault_crash_after_batches: Option<u64>,
    /// After each committed batch, with this probability, re-invoke a random contiguous part of
    /// one of the last 8 delivered batches.
    #[arg(
        long,
        value_name = "P",
        default_value_t = 0.0,
        help_heading = "Fault injection (fault tests only; never on by default)"
    )]
    fault_replay_probability: f64,
    /// Seed of the random replay choices.
    #[arg(
        long,
        value_name = "SEED",
        default_value_t = 0,
        help_heading = "Fault injection (fault tests only; never on by default)"
    )]
    fault_seed: u64,
    /// Deliver the value of the record at PARTITION:OFFSET as text that is not base64
    /// (repeatable, or comma-separated).
    #[arg(long, value_name = "PARTITION:OFFSET", value_delimiter = ',', value_parser = esm_emulator::faults::parse_coordinates, help_heading = "Fault injection (fault tests only; never on by default)")]
    fault_corrupt_value: Vec<(i32, i64)>,
}

fn seconds(value: f64, name: &str) -> Result<Duration, RunError> {
    Duration::try_from_secs_f64(value).map_err(|e| RunError::Failed(format!("{name}: {e}")))
}

enum RunError {
    Failed(String),
    /// `--fault-crash-after-batches` fired.
    InjectedCrash(u64),
}

async fn run(cli: Cli) -> Result<(), RunError> {
    if !(0.0..=1.0).contains(&cli.fault_replay_probability) {
        return Err(RunError::Failed(format!(
            "--fault-replay-probability must be within 0..=1, got {}",
            cli.fault_replay_probability
        )));
    }
    let faults = FaultPlan {
        deliver_twice: cli.fault_deliver_twice,
        crash_after_batches: cli.fault_crash_after_batches.filter(|n| *n > 0),
        replay_probability: cli.fault_replay_probability,
        seed: cli.fault_seed,
        corrupt_values: cli.fault_corrupt_value.iter().copied().collect(),
    };
    let settings = MappingSettings {
        topic: cli.topic,
        consumer_group: cli.consumer_group,
        bootstrap_servers: cli.bootstrap_servers,
        starting_position: cli.starting_position,
        batch_size: cli.batch_size,
        batching_window: seconds(cli.batching_window_secs, "--batching-window-secs")?,
        max_payload_bytes: cli.max_payload_bytes,
        max_retry_attempts: cli.maximum_retry_attempts,
        initial_backoff: Duration::from_millis(cli.retry_initial_backoff_ms),
        max_backoff: Duration::from_millis(cli.retry_max_backoff_ms),
        msk_cluster_arn: cli.msk_cluster_arn,
        function_name: cli.function_name,
        region: cli.region.clone(),
        on_failure_queue_url: cli.on_failure_queue_url,
        exit_when_idle: cli
            .exit_when_idle_secs
            .map(|s| seconds(s, "--exit-when-idle-secs"))
            .transpose()?,
        error_handling: ErrorHandlingSettings {
            provisioned: cli.provisioned_mode,
            max_record_age_secs: cli.maximum_record_age_secs,
            bisect_batch_on_function_error: cli.bisect_batch_on_function_error,
            report_batch_item_failures: cli.report_batch_item_failures,
        },
    };
    let config = settings
        .validate()
        .map_err(|e| RunError::Failed(format!("invalid mapping: {e}")))?;
    let api = match cli.mapping_api_address {
        Some(address) => {
            let listener = mapping_api::bind(address)
                .await
                .map_err(|e| RunError::Failed(e.to_string()))?;
            info!(%address, "serving the Lambda event source mapping reads");
            Some(listener)
        }
        None => None,
    };
    let options = ServeOptions {
        api,
        retry_connect_every: cli
            .retry_connect_secs
            .map(|s| seconds(s, "--retry-connect-secs"))
            .transpose()?
            .filter(|d| !d.is_zero()),
    };
    let endpoints = Endpoints {
        invoke_endpoint: (!cli.aws).then_some(cli.invoke_endpoint),
        invoke_timeout: Duration::from_secs(cli.invoke_timeout_secs),
        region: cli.region,
        aws_endpoint: None,
    };
    let stop = StopFlag::default();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(error) => {
                error!(%error, "cannot listen for SIGTERM");
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        info!("stop requested; finishing without committing unfinished work");
        on_signal.stop();
    });
    let reporter = JsonLinesReporter::new(cli.status_file, cli.print_status);
    let status = match run_mapping_served(config, &endpoints, reporter, stop, faults, options).await {
        Ok(status) => status,
        Err(EngineError::InjectedCrash { batches }) => return Err(RunError::InjectedCrash(batches)),
        Err(other) => return Err(RunError::Failed(other.to_string())),
    };
    info!(
        records = status.counters.records_delivered,
        lag = status.total_lag,
        "mapping stopped"
    );
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,rdkafka=warn".into()),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(RunError::InjectedCrash(batches)) => {
            eprintln!("esm-emulator: injected crash after {batches} delivered batch(es); the last one is not committed");
            ExitCode::from(INJECTED_CRASH_EXIT_CODE)
        }
        Err(RunError::Failed(message)) => {
            error!("esm-emulator: {message}");
            eprintln!("esm-emulator: {message}");
            ExitCode::FAILURE
        }
    }
}
