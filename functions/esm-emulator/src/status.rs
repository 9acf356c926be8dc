//! What the emulator reports: one line per batch and a periodic status with per-partition lag.
//! Both are JSON; the status is also kept in a file that the pipeline command polls.

use serde::Serialize;

use crate::batch::PartitionSpan;
use crate::ports::PartitionLag;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MappingState {
    Starting,
    /// The brokers cannot be reached or the topic does not exist; the mapping keeps trying.
    Connecting,
    Polling,
    Retrying,
    Idle,
    Stopped,
}

impl MappingState {
    /// The mapping's `State` in the Lambda API's vocabulary (Creating, Enabling, Enabled, Disabling,
    /// Disabled, Updating, Deleting: API_EventSourceMappingConfiguration in the Lambda API
    /// reference). AWS keeps a mapping that cannot reach its brokers or topic `Enabled` and reports
    /// the problem in `LastProcessingResult`, so `Connecting` is `Enabled` too.
    pub fn aws_state(self) -> &'static str {
        match self {
            MappingState::Starting => "Creating",
            MappingState::Connecting
            | MappingState::Polling
            | MappingState::Retrying
            | MappingState::Idle => "Enabled",
            MappingState::Stopped => "Disabled",
        }
    }
}

/// What the last poll or invocation came to, as the Lambda API's `LastProcessingResult` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "detail")]
pub enum ProcessingResult {
    /// Nothing was polled yet.
    NoRecordsProcessed,
    Ok,
    /// The function returned an error (retried, then sent to the on-failure destination).
    FunctionCallFailed,
    /// The brokers did not answer (metadata, commit or lag reads failed).
    ConnectionError(String),
    TopicNotFound(String),
}

impl ProcessingResult {
    /// The text AWS shows: "No records processed", "OK", "PROBLEM: Function call failed",
    /// "PROBLEM: Connection error. ..." and "PROBLEM: Topic not found. ..." (GetEventSourceMapping;
    /// Lambda developer guide, "Troubleshooting Kafka event source mapping errors"). AWS does not
    /// document a fixed wording after the first sentence; ours names the cause.
    pub fn aws_text(&self) -> String {
        match self {
            ProcessingResult::NoRecordsProcessed => "No records processed".into(),
            ProcessingResult::Ok => "OK".into(),
            ProcessingResult::FunctionCallFailed => "PROBLEM: Function call failed".into(),
            ProcessingResult::ConnectionError(detail) => {
                format!("PROBLEM: Connection error. Please check your event source connection configuration. {detail}")
            }
            ProcessingResult::TopicNotFound(detail) => {
                format!("PROBLEM: Topic not found. Please make sure the topic exists. {detail}")
            }
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub invocations: u64,
    pub function_errors: u64,
    pub unavailable_errors: u64,
    pub batches_delivered: u64,
    pub records_delivered: u64,
    pub batches_discarded: u64,
    pub records_discarded: u64,
    pub records_too_large: u64,
    /// Older than `MaximumRecordAgeInSeconds`: sent to the on-failure destination uninvoked.
    pub records_expired: u64,
    /// Answers with `batchItemFailures` (ReportBatchItemFailures).
    pub partial_batch_responses: u64,
    /// Failed batches split in two (BisectBatchOnFunctionError).
    pub bisections: u64,
    /// Fault injection (tests only): duplicate invocations, partial replays, corrupted values.
    pub injected_duplicates: u64,
    pub injected_replays: u64,
    pub injected_corruptions: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MappingStatus {
    pub topic: String,
    pub consumer_group: String,
    pub function_name: String,
    pub state: MappingState,
    pub last_processing_result: ProcessingResult,
    pub counters: Counters,
    pub partitions: Vec<PartitionLag>,
    pub total_lag: i64,
    pub updated_at: String,
}

impl MappingStatus {
    /// The status of a mapping that has not connected yet.
    pub fn starting(topic: &str, consumer_group: &str, function_name: &str) -> Self {
        Self {
            topic: topic.to_string(),
            consumer_group: consumer_group.to_string(),
            function_name: function_name.to_string(),
            state: MappingState::Starting,
            last_processing_result: ProcessingResult::NoRecordsProcessed,
            counters: Counters::default(),
            partitions: Vec::new(),
            total_lag: 0,
            updated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum BatchOutcome {
    Delivered,
    /// Retries exhausted; sent to the on-failure destination (if any) and committed.
    Discarded,
    /// A single record over the payload cap; sent to the on-failure destination and committed.
    TooLarge,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpanReport {
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub count: usize,
}

impl From<&PartitionSpan> for SpanReport {
    fn from(s: &PartitionSpan) -> Self {
        Self {
            topic: s.topic.clone(),
            partition: s.partition,
            first_offset: s.first_offset,
            last_offset: s.last_offset,
            count: s.count,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchReport {
    pub outcome: BatchOutcome,
    pub records: usize,
    pub payload_bytes: usize,
    pub attempts: u32,
    pub partitions: Vec<SpanReport>,
}

/// Where reports go. The engine calls it synchronously; implementations must not block for long.
pub trait Reporter: Send {
    fn batch(&mut self, report: &BatchReport);
    fn status(&mut self, status: &MappingStatus);
}

/// Collects reports in memory (tests, embedding).
#[derive(Debug, Default, Clone)]
pub struct MemoryReporter {
    pub batches: Vec<BatchReport>,
    pub statuses: Vec<MappingStatus>,
}

impl Reporter for MemoryReporter {
    fn batch(&mut self, report: &BatchReport) {
        self.batches.push(report.clone());
    }
    fn status(&mut self, status: &MappingStatus) {
        self.statuses.push(status.clone());
    }
}

impl<R: Reporter> Reporter for &mut R {
    fn batch(&mut self, report: &BatchReport) {
        (**self).batch(report);
    }
    fn status(&mut self, status: &MappingStatus) {
        (**self).status(status);
    }
}

/// The latest status, shared with readers on other tasks (the mapping API).
pub type SharedStatus = std::sync::Arc<std::sync::Mutex<MappingStatus>>;

/// Passes every report on and keeps the latest status in a [`SharedStatus`].
pub struct SharingReporter<R> {
    inner: R,
    shared: SharedStatus,
}

impl<R: Reporter> SharingReporter<R> {
    pub fn new(inner: R, shared: SharedStatus) -> Self {
        Self { inner, shared }
    }
}

impl<R: Reporter> Reporter for SharingReporter<R> {
    fn batch(&mut self, report: &BatchReport) {
        self.inner.batch(report);
    }
    fn status(&mut self, status: &MappingStatus) {
        // A poisoned lock only means a reader panicked; the status itself is still whole.
        let mut shared = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *shared = status.clone();
        drop(shared);
        self.inner.status(status);
    }
}
