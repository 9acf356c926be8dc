//! Redrive: what the pipeline does after a mapping skipped a batch.
//!
//! When a batch keeps failing, AWS (and this emulator) sends its metadata to the on-failure
//! destination and moves on: topic, partition and the first and last offset per partition
//! (`KafkaBatchInfo.recordsInfo`), never the records. [`redrive`] reads those messages, reads
//! exactly those offset ranges from Kafka again, and invokes the function with them in events of
//! the mapping's shape, split under the 6 MB payload cap. The consumer applies each record at most
//! once whatever the order (window items keep the offsets they applied, the other sinks are keyed by
//! record coordinates), so a redrive after the mapping has moved on, or a redrive run twice, is
//! exact. A message is deleted only after every one of its records was delivered; anything that
//! fails leaves it on the queue for the next run, with the reason in the outcome.

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;
use tracing::{info, warn};

use crate::batch::{BatchAssembler, Offer};
use crate::event::{EncodedRecord, EventEnvelope, EventSource, PolledRecord};
use crate::ports::{FailureQueue, InvokeError, InvokeOutcome, Invoker, RangeReader};

/// One partition's part of a skipped batch: `first..=last`, both offsets of records it held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SkippedRange {
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What an on-failure message says about the skipped batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedBatch {
    pub condition: String,
    pub source: EventSource,
    pub bootstrap_servers: String,
    pub ranges: Vec<SkippedRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RedriveError {
    #[error("not an on-failure record of a Kafka event source: {0}")]
    NotAFailureRecord(String),
    #[error(
        "the broker returned {got} record(s) of {topic}-{partition} offsets {first}..={last} \
         (first {first_read:?}, last {last_read:?}): both ends were records of the skipped batch, \
         so they should still be there. Has retention deleted them, or was the topic re-created? \
         (tansu has once returned nothing to a fresh reader of an old topic)"
    )]
    Incomplete {
        topic: String,
        partition: i32,
        first: i64,
        last: i64,
        got: usize,
        first_read: Option<i64>,
        last_read: Option<i64>,
    },
    #[error("reading {topic}-{partition}: {message}")]
    Read {
        topic: String,
        partition: i32,
        message: String,
    },
    #[error(
        "record {topic}-{partition}@{offset} alone makes a {event_size}-byte event, over the \
         {cap}-byte invoke payload limit: no invocation can carry it"
    )]
    TooLarge {
        topic: String,
        partition: i32,
        offset: i64,
        event_size: usize,
        cap: usize,
    },
    #[error("the function failed ({function_error}): {message}")]
    Function { function_error: String, message: String },
    #[error("invoking the function: {0}")]
    Invoke(String),
}

/// Parses an on-failure message. `recordsInfo` keys are `topic-partition`; topic names may hold
/// hyphens, the partition is what follows the last one.
pub fn parse_failure_record(body: &str) -> Result<SkippedBatch, RedriveError> {
    let bad = |what: &str| RedriveError::NotAFailureRecord(what.to_string());
    let value: Value = serde_json::from_str(body).map_err(|e| bad(&format!("not JSON: {e}")))?;
    let condition = value["requestContext"]["condition"]
        .as_str()
        .ok_or_else(|| bad("no requestContext.condition"))?
        .to_string();
    let info = &value["KafkaBatchInfo"];
    let records_info = info["recordsInfo"]
        .as_object()
        .ok_or_else(|| bad("no KafkaBatchInfo.recordsInfo"))?;
    let offset = |v: &Value, name: &str, key: &str| -> Result<i64, RedriveError> {
        v[name]
            .as_str()
            .and_then(|s| s.parse().ok())
            .or_else(|| v[name].as_i64())
            .ok_or_else(|| bad(&format!("{key}: {name} is not an offset")))
    };
    let mut ranges = Vec::with_capacity(records_info.len());
    for (key, v) in records_info {
        let (topic, partition) = key
            .rsplit_once('-')
            .and_then(|(t, p)| Some((t, p.parse::<i32>().ok()?)))
            .filter(|(t, _)| !t.is_empty())
            .ok_or_else(|| bad(&format!("recordsInfo key {key:?} is not topic-partition")))?;
        let first_offset = offset(v, "firstRecordOffset", key)?;
        let last_offset = offset(v, "lastRecordOffset", key)?;
        if first_offset < 0 || last_offset < first_offset {
            return Err(bad(&format!("{key}: offsets {first_offset}..={last_offset}")));
        }
        ranges.push(SkippedRange {
            topic: topic.to_string(),
            partition,
            first_offset,
            last_offset,
        });
    }
    if ranges.is_empty() {
        return Err(bad("recordsInfo is empty"));
    }
    let source = match info["eventSourceArn"].as_str() {
        Some(arn) if !arn.is_empty() => EventSource::Msk {
            cluster_arn: arn.to_string(),
        },
        _ => EventSource::SelfManaged,
    };
    Ok(SkippedBatch {
        condition,
        source,
        bootstrap_servers: info["bootstrapServers"].as_str().unwrap_or_default().to_string(),
        ranges,
    })
}

/// Both ends of a skipped range were records, so a complete re-read starts at `first` and ends at
/// `last`; gaps between are allowed (compaction, transaction markers).
pub fn check_complete(range: &SkippedRange, records: &[PolledRecord]) -> Result<(), RedriveError> {
    let first_read = records.first().map(|r| r.offset);
    let last_read = records.last().map(|r| r.offset);
    if first_read == Some(range.first_offset) && last_read == Some(range.last_offset) {
        return Ok(());
    }
    Err(RedriveError::Incomplete {
        topic: range.topic.clone(),
        partition: range.partition,
        first: range.first_offset,
        last: range.last_offset,
        got: records.len(),
        first_read,
        last_read,
    })
}

/// How one run went; printed as JSON by `esm-redrive`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedriveOutcome {
    /// Messages whose records were all delivered (and which were deleted).
    pub redriven: usize,
    pub records: usize,
    pub invocations: usize,
    /// Messages left on the queue, with the reason.
    pub failed: Vec<FailedMessage>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedMessage {
    pub ranges: Vec<SkippedRange>,
    pub error: String,
}

#[derive(Debug, Clone)]
pub struct RedriveSettings {
    /// The invoke payload cap (Lambda's synchronous limit is 6 MB).
    pub max_payload_bytes: usize,
    /// Records per invocation, as the mapping's `BatchSize`.
    pub batch_size: usize,
    /// Bootstrap servers written into the events; by default those of the failure record.
    pub bootstrap_servers: Option<String>,
    /// Stop after this many messages (all of them when `None`).
    pub max_messages: Option<usize>,
    /// Attempts when the invoke endpoint is unavailable (throttled, unreachable).
    pub unavailable_attempts: u32,
    pub unavailable_backoff: Duration,
}

/// Redrives the queue until it has no visible message (or `max_messages` were handled).
pub async fn redrive<Q, R, I>(
    queue: &Q,
    reader: &mut R,
    invoker: &I,
    settings: &RedriveSettings,
) -> Result<RedriveOutcome, crate::ports::DestinationError>
where
    Q: FailureQueue,
    R: RangeReader,
    I: Invoker,
{
    let mut outcome = RedriveOutcome::default();
    // A message that failed becomes visible again after the queue's visibility timeout; one run
    // tries each message once and ends when it only sees messages it already tried.
    let mut seen = std::collections::HashSet::new();
    loop {
        let budget = settings
            .max_messages
            .map_or(10, |m| m.saturating_sub(seen.len()).min(10));
        if budget == 0 {
            break;
        }
        let messages = queue.receive(budget).await?;
        let fresh: Vec<_> = messages.into_iter().filter(|m| !seen.contains(&m.id)).collect();
        if fresh.is_empty() {
            break;
        }
        for message in fresh {
            seen.insert(message.id.clone());
            let skipped = match parse_failure_record(&message.body) {
                Ok(skipped) => skipped,
                Err(error) => {
                    warn!(%error, "left on the queue");
                    outcome.failed.push(FailedMessage {
                        ranges: Vec::new(),
                        error: error.to_string(),
                    });
                    continue;
                }
            };
            match redrive_one(&skipped, reader, invoker, settings, &mut outcome).await {
                Ok(()) => {
                    queue.delete(&message.receipt).await?;
                    outcome.redriven += 1;
                    info!(ranges = ?skipped.ranges, "redriven and deleted from the queue");
                }
                Err(error) => {
                    warn!(%error, ranges = ?skipped.ranges, "redrive failed; the message stays on the queue");
                    outcome.failed.push(FailedMessage {
                        ranges: skipped.ranges.clone(),
                        error: error.to_string(),
                    });
                }
            }
        }
    }
    Ok(outcome)
}

async fn redrive_one<R: RangeReader, I: Invoker>(
    skipped: &SkippedBatch,
    reader: &mut R,
    invoker: &I,
    settings: &RedriveSettings,
    outcome: &mut RedriveOutcome,
) -> Result<(), RedriveError> {
    let bootstrap = settings
        .bootstrap_servers
        .clone()
        .unwrap_or_else(|| skipped.bootstrap_servers.clone());
    let envelope = EventEnvelope::new(skipped.source.clone(), bootstrap);
    let mut assembler = BatchAssembler::new(envelope, settings.batch_size.max(1), settings.max_payload_bytes);
    // Read everything first: nothing is invoked unless every range came back whole.
    let mut records = Vec::new();
    for range in &skipped.ranges {
        let read = reader
            .read_range(
                &range.topic,
                range.partition,
                range.first_offset,
                range.last_offset,
            )
            .await
            .map_err(|e| RedriveError::Read {
                topic: range.topic.clone(),
                partition: range.partition,
                message: e.to_string(),
            })?;
        check_complete(range, &read)?;
        records.extend(read);
    }
    for record in records.iter().map(EncodedRecord::encode) {
        let record = match assembler.offer(record) {
            Offer::Added => continue,
            Offer::TooLarge { record, event_size } => return Err(too_large(&record, event_size, settings)),
            Offer::Full(record) => record,
        };
        invoke(invoker, &assembler.take().render(assembler.envelope()), settings).await?;
        outcome.invocations += 1;
        // An empty batch takes any record that fits the cap on its own (the batch size is >= 1).
        match assembler.offer(record) {
            Offer::Added => {}
            Offer::TooLarge { record, event_size } => return Err(too_large(&record, event_size, settings)),
            Offer::Full(record) => {
                return Err(RedriveError::Invoke(format!(
                    "record {}-{}@{} does not fit an empty batch",
                    record.topic, record.partition, record.offset
                )))
            }
        }
    }
    if !assembler.is_empty() {
        invoke(invoker, &assembler.take().render(assembler.envelope()), settings).await?;
        outcome.invocations += 1;
    }
    outcome.records += records.len();
    Ok(())
}

fn too_large(record: &EncodedRecord, event_size: usize, settings: &RedriveSettings) -> RedriveError {
    RedriveError::TooLarge {
        topic: record.topic.clone(),
        partition: record.partition,
        offset: record.offset,
        event_size,
        cap: settings.max_payload_bytes,
    }
}

async fn invoke<I: Invoker>(
    invoker: &I,
    payload: &[u8],
    settings: &RedriveSettings,
) -> Result<(), RedriveError> {
    let mut attempt = 0;
    loop {
        match invoker.invoke(payload.to_vec()).await {
            // A partial-batch answer means records are still unstored: the range stays queued.
            Ok(InvokeOutcome::Success { response }) => {
                return match pipeline_domain::batch_response::KafkaBatchResponse::parse_resume_points(
                    &response,
                ) {
                    Ok(None) => Ok(()),
                    Ok(Some(_)) | Err(_) => Err(RedriveError::Function {
                        function_error: String::new(),
                        message: format!(
                            "partial batch response: {}",
                            String::from_utf8_lossy(&response)
                                .chars()
                                .take(2_000)
                                .collect::<String>()
                        ),
                    }),
                };
            }
            Ok(InvokeOutcome::FunctionError {
                function_error,
                message,
                ..
            }) => {
                return Err(RedriveError::Function {
                    function_error,
                    message,
                })
            }
            Err(InvokeError::Unavailable(message)) if attempt + 1 < settings.unavailable_attempts => {
                attempt += 1;
                warn!(%message, attempt, "invoke endpoint unavailable; retrying");
                tokio::time::sleep(settings.unavailable_backoff * attempt).await;
            }
            Err(InvokeError::Unavailable(message) | InvokeError::Fatal(message)) => {
                return Err(RedriveError::Invoke(message))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use chrono::{DateTime, Utc};

    use super::*;
    use crate::batch::PartitionSpan;
    use crate::event::TimestampType;
    use crate::failure::{failure_record, FailureCondition, FailureInput, LastResponse};
    use crate::ports::{DestinationError, QueuedFailure, SourceError};

    const MSK_ARN: &str =
        "arn:aws:kafka:us-east-1:123456789012:cluster/demo-cluster-1/6357e0b2-0e6a-4b86-a0b4-70df934c2e31-5";
    const BROKERS: &str = "b-1.democluster1.w7j4hk.c2.kafka.us-east-1.amazonaws.com:9098";

    fn span(topic: &str, partition: i32, first: i64, last: i64) -> PartitionSpan {
        PartitionSpan {
            topic: topic.into(),
            partition,
            first_offset: first,
            last_offset: last,
            first_timestamp: 1_764_547_200_000,
            last_timestamp: 1_764_547_201_000,
            count: (last - first + 1) as usize,
        }
    }

    /// The message the engine itself writes when it skips a batch.
    fn skipped_message(spans: &[PartitionSpan]) -> String {
        let envelope = EventEnvelope::new(
            EventSource::Msk {
                cluster_arn: MSK_ARN.into(),
            },
            BROKERS,
        );
        failure_record(&FailureInput {
            request_id: "req".into(),
            function_arn: "arn:aws-cn:lambda:cn-north-1:123456789012:function:consumer",
            condition: FailureCondition::RetryAttemptsExhausted,
            invoke_count: 11,
            response: Some(LastResponse {
                status_code: 200,
                function_error: "Unhandled".into(),
                message: "window aggregates: throttled".into(),
            }),
            now: DateTime::<Utc>::from_timestamp_millis(1_764_547_300_000).unwrap(),
            envelope: &envelope,
            payload_size: 4096,
            spans,
        })
    }

    #[test]
    fn the_engines_failure_record_parses_back_to_its_ranges() {
        let body = skipped_message(&[
            span("store-events", 2, 10, 19),
            span("sensor-readings-v2", 0, 7, 7),
        ]);
        let skipped = parse_failure_record(&body).unwrap();
        assert_eq!(skipped.condition, "RetryAttemptsExhausted");
        assert_eq!(
            skipped.source,
            EventSource::Msk {
                cluster_arn: MSK_ARN.into()
            }
        );
        assert_eq!(skipped.bootstrap_servers, BROKERS);
        assert_eq!(
            skipped.ranges,
            vec![
                SkippedRange {
                    topic: "sensor-readings-v2".into(),
                    partition: 0,
                    first_offset: 7,
                    last_offset: 7
                },
                SkippedRange {
                    topic: "store-events".into(),
                    partition: 2,
                    first_offset: 10,
                    last_offset: 19
                },
            ]
        );
        for bad in [
            "{}",
            "not json",
            r#"{"requestContext":{"condition":"RetryAttemptsExhausted"},"KafkaBatchInfo":{"recordsInfo":{"nopartition":{"firstRecordOffset":"1","lastRecordOffset":"2"}}}}"#,
            r#"{"requestContext":{"condition":"RetryAttemptsExhausted"},"KafkaBatchInfo":{"recordsInfo":{"t-0":{"firstRecordOffset":"5","lastRecordOffset":"2"}}}}"#,
        ] {
            assert!(
                matches!(parse_failure_record(bad), Err(RedriveError::NotAFailureRecord(_))),
                "{bad}"
            );
        }
    }

    fn polled(topic: &str, partition: i32, offset: i64) -> PolledRecord {
        PolledRecord {
            topic: topic.into(),
            partition,
            offset,
            timestamp: 1_764_547_200_000 + offset,
            timestamp_type: TimestampType::CreateTime,
            key: Some(format!("k{offset}").into_bytes()),
            value: Some(format!("{{\"n\":{offset}}}").into_bytes()),
            headers: vec![("origin".into(), Some(vec![0xc3, 0xa9]))],
        }
    }

    #[derive(Default)]
    struct Log {
        records: BTreeMap<(String, i32), Vec<PolledRecord>>,
        reads: Vec<(String, i32, i64, i64)>,
    }

    impl RangeReader for Log {
        async fn read_range(
            &mut self,
            topic: &str,
            partition: i32,
            first: i64,
            last: i64,
        ) -> Result<Vec<PolledRecord>, SourceError> {
            self.reads.push((topic.into(), partition, first, last));
            Ok(self
                .records
                .get(&(topic.to_string(), partition))
                .map(|rs| {
                    rs.iter()
                        .filter(|r| (first..=last).contains(&r.offset))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default())
        }
    }

    #[derive(Default, Clone)]
    struct Function {
        payloads: Arc<Mutex<Vec<Value>>>,
        fail: Arc<Mutex<bool>>,
    }

    impl Invoker for Function {
        async fn invoke(&self, payload: Vec<u8>) -> Result<InvokeOutcome, InvokeError> {
            self.payloads
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&payload).unwrap());
            if *self.fail.lock().unwrap() {
                return Ok(InvokeOutcome::FunctionError {
                    status_code: 200,
                    function_error: "Unhandled".into(),
                    message: "still down".into(),
                });
            }
            Ok(InvokeOutcome::Success { response: Vec::new() })
        }
    }

    #[derive(Default)]
    struct Queue {
        visible: Mutex<Vec<QueuedFailure>>,
        deleted: Mutex<Vec<String>>,
    }

    impl FailureQueue for Queue {
        async fn receive(&self, max: usize) -> Result<Vec<QueuedFailure>, DestinationError> {
            // A visibility timeout of zero: every message not deleted comes back at once.
            let visible = self.visible.lock().unwrap();
            Ok(visible.iter().take(max).cloned().collect())
        }
        async fn delete(&self, receipt: &str) -> Result<(), DestinationError> {
            self.visible.lock().unwrap().retain(|m| m.receipt != receipt);
            self.deleted.lock().unwrap().push(receipt.to_string());
            Ok(())
        }
    }

    fn settings() -> RedriveSettings {
        RedriveSettings {
            max_payload_bytes: 6 * 1024 * 1024,
            batch_size: 100,
            bootstrap_servers: None,
            max_messages: None,
            unavailable_attempts: 3,
            unavailable_backoff: Duration::from_millis(1),
        }
    }

    fn delivered(function: &Function) -> Vec<(String, i64)> {
        let mut out = Vec::new();
        for event in function.payloads.lock().unwrap().iter() {
            for (key, records) in event["records"].as_object().unwrap() {
                for r in records.as_array().unwrap() {
                    out.push((key.clone(), r["offset"].as_i64().unwrap()));
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn exactly_the_skipped_ranges_are_read_again_invoked_and_the_message_deleted() {
        let mut log = Log::default();
        log.records.insert(
            ("store-events".into(), 2),
            (0..40).map(|o| polled("store-events", 2, o)).collect(),
        );
        log.records.insert(
            ("sensor-readings".into(), 0),
            // A gap at 8 (a transaction marker): allowed inside a range.
            [5, 6, 7, 9]
                .iter()
                .map(|&o| polled("sensor-readings", 0, o))
                .collect(),
        );
        let queue = Queue::default();
        queue.visible.lock().unwrap().push(QueuedFailure {
            id: "m-1".into(),
            receipt: "r-1".into(),
            body: skipped_message(&[span("store-events", 2, 10, 19), span("sensor-readings", 0, 6, 9)]),
        });
        let function = Function::default();
        let mut s = settings();
        s.batch_size = 6;
        let outcome = redrive(&queue, &mut log, &function, &s).await.unwrap();
        assert_eq!(outcome.redriven, 1);
        assert_eq!(outcome.records, 13);
        assert_eq!(outcome.invocations, 3, "13 records at 6 per event");
        assert!(outcome.failed.is_empty());
        assert_eq!(*queue.deleted.lock().unwrap(), vec!["r-1".to_string()]);
        let mut got = delivered(&function);
        got.sort();
        let mut want: Vec<(String, i64)> = [6, 7, 9]
            .iter()
            .map(|&o| ("sensor-readings-0".to_string(), o))
            .chain((10..20).map(|o| ("store-events-2".to_string(), o)))
            .collect();
        want.sort();
        assert_eq!(got, want);
        // The events are the mapping's: MSK source, cluster ARN, the record's bootstrap servers.
        let first = &function.payloads.lock().unwrap()[0];
        assert_eq!(first["eventSource"], "aws:kafka");
        assert_eq!(first["eventSourceArn"], MSK_ARN);
        assert_eq!(first["bootstrapServers"], BROKERS);
        let record = &first["records"].as_object().unwrap().values().next().unwrap()[0];
        assert_eq!(record["headers"][0]["origin"], serde_json::json!([-61, -87]));
    }

    #[tokio::test]
    async fn a_range_the_broker_does_not_return_is_a_clear_error_and_the_message_stays() {
        let mut log = Log::default();
        // Nothing at all, as tansu once answered a fresh reader of an old topic.
        let queue = Queue::default();
        queue.visible.lock().unwrap().push(QueuedFailure {
            id: "m-2".into(),
            receipt: "r-2".into(),
            body: skipped_message(&[span("store-events", 1, 0, 4)]),
        });
        let function = Function::default();
        let outcome = redrive(&queue, &mut log, &function, &settings()).await.unwrap();
        assert_eq!(outcome.redriven, 0);
        assert!(queue.deleted.lock().unwrap().is_empty(), "kept for the next run");
        assert!(function.payloads.lock().unwrap().is_empty(), "nothing invoked");
        let error = &outcome.failed[0].error;
        assert!(
            error.contains("returned 0 record(s) of store-events-1 offsets 0..=4"),
            "{error}"
        );

        // Part of the range (retention deleted the start): also refused.
        log.records.insert(
            ("store-events".into(), 1),
            (3..5).map(|o| polled("store-events", 1, o)).collect(),
        );
        queue.visible.lock().unwrap().push(QueuedFailure {
            id: "m-3".into(),
            receipt: "r-3".into(),
            body: skipped_message(&[span("store-events", 1, 0, 4)]),
        });
        let outcome = redrive(&queue, &mut log, &function, &settings()).await.unwrap();
        // Both messages (the first one came back), each tried once in this run.
        assert_eq!(outcome.failed.len(), 2, "{:?}", outcome.failed);
        assert!(
            outcome.failed[0].error.contains("first Some(3)"),
            "{:?}",
            outcome.failed
        );
        assert!(queue.deleted.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_function_that_still_fails_leaves_the_message_on_the_queue() {
        let mut log = Log::default();
        log.records
            .insert(("t".into(), 0), (0..3).map(|o| polled("t", 0, o)).collect());
        let queue = Queue::default();
        queue.visible.lock().unwrap().push(QueuedFailure {
            id: "m-4".into(),
            receipt: "r-4".into(),
            body: skipped_message(&[span("t", 0, 0, 2)]),
        });
        let function = Function::default();
        *function.fail.lock().unwrap() = true;
        let outcome = redrive(&queue, &mut log, &function, &settings()).await.unwrap();
        assert_eq!(outcome.redriven, 0);
        assert!(outcome.failed[0].error.contains("still down"));
        assert!(queue.deleted.lock().unwrap().is_empty());
    }
}
