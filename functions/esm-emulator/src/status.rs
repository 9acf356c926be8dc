//! What the emulator reports: one line per batch and a periodic status with per-partition lag.
//! Both are JSON; the status is also kept in a file that the pipeline command polls.

use serde::Serialize;

use crate::batch::PartitionSpan;
use crate::ports::PartitionLag;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum MappingState {
    Starting,
    Polling,
    Retrying,
    Idle,
    Stopped,
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
    pub counters: Counters,
    pub partitions: Vec<PartitionLag>,
    pub total_lag: i64,
    pub updated_at: String,
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
