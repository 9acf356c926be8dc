//! `esm-redrive`: replays the batches a mapping skipped. Reads the on-failure queue, re-reads
//! exactly the offset ranges each message names from Kafka and invokes the function with them;
//! a message is deleted once all of its records were delivered. Prints the outcome as JSON.
//!
//! Exit code 0 when every message was redriven, 1 when some stay on the queue (listed with the
//! reason in `failed`), 2 when the queue, the broker or the function could not be reached at all.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use esm_emulator::redrive::RedriveSettings;
use esm_emulator::{run_redrive, Endpoints, RedriveTarget};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Redrive the batches a Kafka event source mapping sent to its on-failure queue"
)]
struct Cli {
    /// The mapping's on-failure destination (SQS queue URL).
    #[arg(long)]
    queue_url: String,
    #[arg(long, env = "KAFKA_BOOTSTRAP_SERVERS")]
    bootstrap_servers: String,
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
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    region: String,
    /// Records per invocation (the mapping's BatchSize).
    #[arg(long, default_value_t = 100)]
    batch_size: usize,
    /// Invoke payload cap in bytes (Lambda's synchronous limit is 6 MiB).
    #[arg(long, default_value_t = esm_emulator::config::MAX_INVOKE_PAYLOAD_BYTES)]
    max_payload_bytes: usize,
    /// Handle at most this many messages.
    #[arg(long)]
    max_messages: Option<usize>,
    /// Seconds to wait for the next record of a range before calling it incomplete.
    #[arg(long, default_value_t = 15)]
    read_idle_timeout_secs: u64,
    /// Seconds a received message stays hidden from other readers.
    #[arg(long, default_value_t = 900)]
    visibility_timeout_secs: i32,
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
    let cli = Cli::parse();
    if !(1..=esm_emulator::config::MAX_INVOKE_PAYLOAD_BYTES).contains(&cli.max_payload_bytes)
        || !(1..=esm_emulator::config::MAX_BATCH_SIZE).contains(&cli.batch_size)
    {
        eprintln!(
            "esm-redrive: --batch-size must be 1..={} and --max-payload-bytes 1..={}",
            esm_emulator::config::MAX_BATCH_SIZE,
            esm_emulator::config::MAX_INVOKE_PAYLOAD_BYTES
        );
        return ExitCode::from(2);
    }
    let target = RedriveTarget {
        queue_url: cli.queue_url,
        bootstrap_servers: cli.bootstrap_servers,
        function_name: cli.function_name,
        read_idle_timeout: Duration::from_secs(cli.read_idle_timeout_secs),
        visibility_timeout_secs: cli.visibility_timeout_secs,
    };
    let endpoints = Endpoints {
        invoke_endpoint: (!cli.aws).then_some(cli.invoke_endpoint),
        invoke_timeout: Duration::from_secs(cli.invoke_timeout_secs),
        region: cli.region,
        // An operator tool: its own calls go where the SDK points them.
        aws_endpoint: None,
    };
    let settings = RedriveSettings {
        max_payload_bytes: cli.max_payload_bytes,
        batch_size: cli.batch_size,
        // The events carry the servers the mapping named, as the skipped batch did.
        bootstrap_servers: None,
        max_messages: cli.max_messages,
        unavailable_attempts: 5,
        unavailable_backoff: Duration::from_secs(1),
    };
    match run_redrive(&target, &endpoints, &settings).await {
        Ok(outcome) => {
            println!("{}", serde_json::to_string(&outcome).unwrap_or_default());
            if outcome.failed.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(message) => {
            eprintln!("esm-redrive: {message}");
            ExitCode::from(2)
        }
    }
}
