//! Wiring of the consumer: adapters built from the configuration, and the invocation handler the
//! Lambda runtime (and the integration tests) call.

use std::time::Instant;

use pipeline_adapters::dynamodb::{DynamoExplicitEventStore, DynamoWindowStore};
use pipeline_adapters::postgres::{PgConnector, PostgresStoreTable};
use pipeline_adapters::s3::S3Objects;
use pipeline_adapters::secrets::JsonSecrets;
use pipeline_adapters::sqs::SqsPoisonSink;
use pipeline_contracts::contracts;
use pipeline_domain::batch_response::KafkaBatchResponse;
use pipeline_domain::consume::batch::{
    BatchError, BatchSummary, BodyFailure, ConsumerService, ConsumerSettings, MalformedEvent, Sinks,
};
use pipeline_domain::consume::ports::{
    ExplicitEventStore, ObjectStore, PartitionLedgerStore, PoisonSink, StoreEventTable, WindowStore,
};
use pipeline_domain::ports::{PortError, SchemaSource};
use pipeline_lambda_edge::emf::{emit, now_ms};
use serde::Serialize;
use thiserror::Error;

use crate::config::ConsumerConfig;
use crate::metrics::{emf_document, InvocationMetrics};

/// The consumer as deployed: AWS and PostgreSQL adapters behind the domain's batch loop.
pub type Consumer<S> = ConsumerService<
    S,
    DynamoWindowStore,
    S3Objects,
    PostgresStoreTable,
    DynamoExplicitEventStore,
    SqsPoisonSink,
>;

#[derive(Debug, Error)]
pub enum StartupError {
    #[error("PostgreSQL sink could not start: {0}")]
    Postgres(PortError),
}

/// S3 clients address buckets path-style when an endpoint override (moto) is configured;
/// virtual-hosted style otherwise, as AWS recommends.
pub fn s3_client(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Builds every adapter and checks the PostgreSQL schema version (cold start; the schema is
/// applied at deploy time).
pub async fn build<S: SchemaSource>(
    config: &ConsumerConfig,
    sdk: &aws_config::SdkConfig,
    schemas: S,
) -> Result<Consumer<S>, StartupError> {
    let c = contracts();
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let objects = S3Objects::new(s3_client(sdk), &config.store_events_bucket);
    let secrets = config
        .postgres
        .secret_id
        .as_ref()
        .map(|_| JsonSecrets::new(aws_sdk_secretsmanager::Client::new(sdk)));
    let connector = PgConnector::new(config.postgres.clone(), secrets).map_err(StartupError::Postgres)?;
    let table = PostgresStoreTable::connect(connector, &c.postgres.sales_table, &c.postgres.inventory_table)
        .await
        .map_err(StartupError::Postgres)?;
    let sinks = Sinks {
        windows: DynamoWindowStore::new(
            dynamodb.clone(),
            &config.aggregates_table,
            &c.tables.window_aggregates,
        ),
        archive: objects.clone(),
        table,
        explicit: DynamoExplicitEventStore::new(
            dynamodb,
            &config.explicit_events_table,
            &c.tables.explicit_events,
        ),
        poison: SqsPoisonSink::new(
            aws_sdk_sqs::Client::new(sdk),
            &config.poison_queue_url,
            objects,
            &c.bucket.oversize_poison_prefix,
        ),
    };
    let settings = ConsumerSettings::new(config.routes(), config.window, &c.bucket.store_events_prefix);
    Ok(ConsumerService::new(schemas, sinks, settings))
}

/// The invocation response: the batch summary and how long it took.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ConsumerResponse {
    #[serde(flatten)]
    pub summary: BatchSummary,
    pub duration_ms: u64,
}

/// What the consumer answers a mapping with `ReportBatchItemFailures`: the batch summary when
/// everything was stored, else exactly the documented partial-batch response (no other fields, so
/// Lambda reads it as AWS documents and nothing else).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ConsumerAnswer {
    Processed(ConsumerResponse),
    RedeliverFrom(KafkaBatchResponse),
}

/// Why an invocation fails (the mapping then retries the batch).
#[derive(Debug, Error)]
pub enum InvocationError {
    #[error(transparent)]
    Malformed(MalformedEvent),
    #[error(transparent)]
    Batch(BatchError),
}

impl InvocationError {
    /// The Lambda error type the invocation reports.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "MalformedEvent",
            Self::Batch(BatchError::SchemaRegistry(_)) => "SchemaRegistryUnavailable",
            Self::Batch(BatchError::Sinks(_)) => "SinkFailed",
        }
    }
}

/// Handles one invocation body for a mapping without `ReportBatchItemFailures` (on-demand mode,
/// and the default): processes it, logs the outcome and prints the EMF metrics line. An `Err`
/// fails the invocation, so the ESM redelivers the whole batch.
pub async fn handle<S, W, A, T, G, P>(
    consumer: &ConsumerService<S, W, A, T, G, P>,
    body: &[u8],
    function_name: &str,
) -> Result<ConsumerResponse, InvocationError>
where
    S: SchemaSource,
    W: WindowStore,
    A: ObjectStore,
    T: StoreEventTable,
    G: ExplicitEventStore + PartitionLedgerStore,
    P: PoisonSink,
{
    run(consumer, body, function_name)
        .await
        .map_err(invocation_failed)
}

/// The error that fails the invocation, logged once for the batch (the refused body was logged
/// where it was parsed).
fn invocation_failed(failure: BodyFailure) -> InvocationError {
    match failure {
        BodyFailure::Malformed(malformed) => InvocationError::Malformed(malformed),
        BodyFailure::Batch { records, failure } => {
            tracing::error!(error = %failure.error, records, "batch failed; the event source mapping will retry it");
            InvocationError::Batch(failure.error)
        }
    }
}

/// Handles one invocation body for a mapping with `ReportBatchItemFailures`: when a sink fails
/// after part of the batch was stored, answers with each partition's first unstored offset, so the
/// mapping commits what was stored and delivers the rest again. A failure before anything was
/// stored (the registry, or the first chunk's sinks) still fails the invocation.
pub async fn handle_partial<S, W, A, T, G, P>(
    consumer: &ConsumerService<S, W, A, T, G, P>,
    body: &[u8],
    function_name: &str,
) -> Result<ConsumerAnswer, InvocationError>
where
    S: SchemaSource,
    W: WindowStore,
    A: ObjectStore,
    T: StoreEventTable,
    G: ExplicitEventStore + PartitionLedgerStore,
    P: PoisonSink,
{
    match run(consumer, body, function_name).await {
        Ok(response) => Ok(ConsumerAnswer::Processed(response)),
        Err(BodyFailure::Batch { records, failure }) => match failure.partial_response() {
            Some(partial) => {
                tracing::warn!(
                    error = %failure.error,
                    records,
                    unstored = failure.unstored.len(),
                    redeliver_from = ?partial.batch_item_failures.iter().map(|f| (&f.item_identifier.partition, f.item_identifier.offset)).collect::<Vec<_>>(),
                    "batch partly stored; the event source mapping delivers the rest again"
                );
                Ok(ConsumerAnswer::RedeliverFrom(partial))
            }
            None => Err(invocation_failed(BodyFailure::Batch { records, failure })),
        },
        Err(malformed) => Err(invocation_failed(malformed)),
    }
}

/// Processes one body, logs a success and prints the EMF metrics line for either outcome.
async fn run<S, W, A, T, G, P>(
    consumer: &ConsumerService<S, W, A, T, G, P>,
    body: &[u8],
    function_name: &str,
) -> Result<ConsumerResponse, BodyFailure>
where
    S: SchemaSource,
    W: WindowStore,
    A: ObjectStore,
    T: StoreEventTable,
    G: ExplicitEventStore + PartitionLedgerStore,
    P: PoisonSink,
{
    let started = Instant::now();
    let result = consumer.process_body(body).await;
    let elapsed = started.elapsed();
    let duration_ms = elapsed.as_secs_f64() * 1000.0;
    let metrics = match &result {
        Ok(summary) => InvocationMetrics::from_summary(summary, duration_ms),
        Err(BodyFailure::Batch { records, failure }) => InvocationMetrics {
            records: *records,
            batch_failures: 1,
            ..InvocationMetrics::from_summary(&failure.summary, duration_ms)
        },
        Err(BodyFailure::Malformed(malformed)) => {
            tracing::error!(error = %malformed, body_bytes = body.len(), "invocation body refused");
            InvocationMetrics {
                batch_failures: 1,
                duration_ms,
                ..InvocationMetrics::default()
            }
        }
    };
    emit(&emf_document(
        &contracts().project,
        function_name,
        &metrics,
        now_ms(),
    ));
    let summary = result?;
    tracing::info!(
        records = summary.records,
        poison = summary.poison,
        windows_written = summary.windows_written,
        rows_inserted = summary.rows_inserted,
        archive_objects_written = summary.archive_objects_written,
        duration_ms = elapsed.as_millis() as u64,
        "batch processed"
    );
    Ok(ConsumerResponse {
        summary,
        duration_ms: elapsed.as_millis() as u64,
    })
}
