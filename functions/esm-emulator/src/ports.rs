//! The edges the mapping engine talks to. Adapters implement them against rdkafka, the Lambda
//! Invoke API and SQS; tests use in-memory fakes.

use std::future::Future;
use std::time::Duration;

use thiserror::Error;

use crate::event::PolledRecord;

/// Committed position and end of one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionLag {
    pub partition: i32,
    /// Next offset the group will read (its committed offset); `None` before the first commit.
    pub committed: Option<i64>,
    pub high_watermark: i64,
    pub lag: i64,
}

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("kafka: {0}")]
    Kafka(String),
    /// The brokers answered, but the topic is not in their metadata.
    #[error("topic {topic} not found on {servers}")]
    TopicNotFound { topic: String, servers: String },
}

pub trait RecordSource: Send {
    /// The next record, or `None` when none arrived within `timeout`.
    fn next_record(
        &mut self,
        timeout: Duration,
    ) -> impl Future<Output = Result<Option<PolledRecord>, SourceError>> + Send;

    /// Commits, for each (topic, partition), the next offset to read.
    fn commit(
        &mut self,
        next_offsets: &[(String, i32, i64)],
    ) -> impl Future<Output = Result<(), SourceError>> + Send;

    /// Per-partition committed offsets and high watermarks.
    fn lag(&mut self) -> impl Future<Output = Result<Vec<PartitionLag>, SourceError>> + Send;
}

/// A completed invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvokeOutcome {
    /// The function returned; `response` is what it answered (a partial-batch response, maybe).
    Success { response: Vec<u8> },
    /// The function ran and failed (X-Amz-Function-Error), or the endpoint answered 4xx/5xx.
    FunctionError {
        status_code: u16,
        function_error: String,
        message: String,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum InvokeError {
    /// The endpoint could not be reached or throttled us: retried without counting an attempt,
    /// as AWS does not count its own service errors against the function.
    #[error("invoke endpoint unavailable: {0}")]
    Unavailable(String),
    /// Retrying cannot help (e.g. the function does not exist): the mapping stops uncommitted.
    #[error("invoke rejected: {0}")]
    Fatal(String),
}

pub trait Invoker: Send + Sync {
    fn invoke(&self, payload: Vec<u8>) -> impl Future<Output = Result<InvokeOutcome, InvokeError>> + Send;
}

#[derive(Debug, Error)]
#[error("on-failure destination: {0}")]
pub struct DestinationError(pub String);

pub trait FailureDestination: Send + Sync {
    /// Sends one failure record; `deduplication_id` is stable for the same batch.
    fn send(
        &self,
        body: String,
        deduplication_id: String,
    ) -> impl Future<Output = Result<(), DestinationError>> + Send;
}

/// Reads a partition's records again, for a redrive.
pub trait RangeReader: Send {
    /// The records of `topic`/`partition` from `first` through `last`, in offset order: as many
    /// as the broker returns before a timeout, so the caller can tell an incomplete range.
    fn read_range(
        &mut self,
        topic: &str,
        partition: i32,
        first: i64,
        last: i64,
    ) -> impl Future<Output = Result<Vec<PolledRecord>, SourceError>> + Send;
}

/// One message of the on-failure queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedFailure {
    /// Stable across receives (SQS MessageId).
    pub id: String,
    /// What deletes it (SQS receipt handle).
    pub receipt: String,
    pub body: String,
}

/// The on-failure queue, read side.
pub trait FailureQueue: Send + Sync {
    /// Up to `max` messages (at most 10, SQS's limit per ReceiveMessage), each then hidden from
    /// other readers for the queue's visibility timeout.
    fn receive(
        &self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<QueuedFailure>, DestinationError>> + Send;

    fn delete(&self, receipt: &str) -> impl Future<Output = Result<(), DestinationError>> + Send;
}
