//! The record sent to the on-failure destination when a batch is discarded, in the shape AWS
//! documents for SQS/SNS destinations of Kafka event sources (`requestContext`, `responseContext`,
//! `KafkaBatchInfo.recordsInfo` keyed by `topic-partition`, offsets as strings, ISO timestamps).
//! `emulatorDetail` is this emulator's addition: the last error and numeric coordinates, so a reader
//! need not split `topic-partition` keys or parse offset strings.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use crate::batch::PartitionSpan;
use crate::event::{partition_key, EventEnvelope};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCondition {
    RetryAttemptsExhausted,
    MaximumPayloadSizeExceeded,
    /// Older than `MaximumRecordAgeInSeconds` (the condition name the stream sources use).
    RecordAgeExceeded,
}

impl FailureCondition {
    fn as_str(self) -> &'static str {
        match self {
            FailureCondition::RetryAttemptsExhausted => "RetryAttemptsExhausted",
            FailureCondition::MaximumPayloadSizeExceeded => "MaximumPayloadSizeExceeded",
            FailureCondition::RecordAgeExceeded => "RecordAgeExceeded",
        }
    }
}

/// The last response of a failed invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastResponse {
    pub status_code: u16,
    pub function_error: String,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct FailureInput<'a> {
    pub request_id: String,
    pub function_arn: &'a str,
    pub condition: FailureCondition,
    pub invoke_count: u32,
    /// `None` when the function was never invoked (payload too large).
    pub response: Option<LastResponse>,
    pub now: DateTime<Utc>,
    pub envelope: &'a EventEnvelope,
    pub payload_size: usize,
    pub spans: &'a [PartitionSpan],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext<'a> {
    request_id: &'a str,
    function_arn: &'a str,
    condition: &'static str,
    approximate_invoke_count: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponseContext<'a> {
    status_code: u16,
    executed_version: &'static str,
    /// Absent when the function returned normally (a partial-batch response kept failing).
    #[serde(skip_serializing_if = "str::is_empty")]
    function_error: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordsInfo {
    first_record_offset: String,
    last_record_offset: String,
    first_record_timestamp: String,
    last_record_timestamp: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KafkaBatchInfo<'a> {
    batch_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_source_arn: Option<&'a str>,
    bootstrap_servers: &'a str,
    payload_size: usize,
    records_info: BTreeMap<String, RecordsInfo>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DetailPartition<'a> {
    topic: &'a str,
    partition: i32,
    first_offset: i64,
    last_offset: i64,
    count: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EmulatorDetail<'a> {
    error: Option<&'a str>,
    partitions: Vec<DetailPartition<'a>>,
}

#[derive(Serialize)]
struct FailureRecord<'a> {
    #[serde(rename = "requestContext")]
    request_context: RequestContext<'a>,
    #[serde(rename = "responseContext")]
    response_context: Option<ResponseContext<'a>>,
    version: &'static str,
    timestamp: String,
    #[serde(rename = "KafkaBatchInfo")]
    kafka_batch_info: KafkaBatchInfo<'a>,
    #[serde(rename = "emulatorDetail")]
    emulator_detail: EmulatorDetail<'a>,
}

fn iso_millis(epoch_millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(epoch_millis)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// Renders the failure record as JSON text.
pub fn failure_record(input: &FailureInput<'_>) -> String {
    let record = FailureRecord {
        request_context: RequestContext {
            request_id: &input.request_id,
            function_arn: input.function_arn,
            condition: input.condition.as_str(),
            approximate_invoke_count: input.invoke_count,
        },
        response_context: input.response.as_ref().map(|r| ResponseContext {
            status_code: r.status_code,
            executed_version: "$LATEST",
            function_error: &r.function_error,
        }),
        version: "1.0",
        timestamp: input.now.to_rfc3339_opts(SecondsFormat::Millis, true),
        kafka_batch_info: KafkaBatchInfo {
            batch_size: input.spans.iter().map(|s| s.count).sum(),
            event_source_arn: input.envelope.source.cluster_arn(),
            bootstrap_servers: &input.envelope.bootstrap_servers,
            payload_size: input.payload_size,
            records_info: input
                .spans
                .iter()
                .map(|s| {
                    (
                        partition_key(&s.topic, s.partition),
                        RecordsInfo {
                            first_record_offset: s.first_offset.to_string(),
                            last_record_offset: s.last_offset.to_string(),
                            first_record_timestamp: iso_millis(s.first_timestamp),
                            last_record_timestamp: iso_millis(s.last_timestamp),
                        },
                    )
                })
                .collect(),
        },
        emulator_detail: EmulatorDetail {
            error: input.response.as_ref().map(|r| r.message.as_str()),
            partitions: input
                .spans
                .iter()
                .map(|s| DetailPartition {
                    topic: &s.topic,
                    partition: s.partition,
                    first_offset: s.first_offset,
                    last_offset: s.last_offset,
                    count: s.count,
                })
                .collect(),
        },
    };
    serde_json::to_string(&record).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventSource;
    use serde_json::{json, Value};

    fn spans() -> Vec<PartitionSpan> {
        vec![PartitionSpan {
            topic: "store-events".into(),
            partition: 1,
            first_offset: 10,
            last_offset: 19,
            first_timestamp: 1_573_691_884_835,
            last_timestamp: 1_573_691_885_580,
            count: 10,
        }]
    }

    #[test]
    fn exhausted_retries_record_matches_the_documented_shape() {
        let envelope = EventEnvelope::new(
            EventSource::Msk {
                cluster_arn: "arn:aws:kafka:us-east-1:123456789012:cluster/c/1".into(),
            },
            "b-1:9098",
        );
        let spans = spans();
        let text = failure_record(&FailureInput {
            request_id: "req-1".into(),
            function_arn: "arn:aws:lambda:us-east-1:000000000000:function:consumer",
            condition: FailureCondition::RetryAttemptsExhausted,
            invoke_count: 3,
            response: Some(LastResponse {
                status_code: 200,
                function_error: "Unhandled".into(),
                message: "boom".into(),
            }),
            now: DateTime::<Utc>::from_timestamp_millis(1_573_691_886_021).unwrap(),
            envelope: &envelope,
            payload_size: 2048,
            spans: &spans,
        });
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(value["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(
            value["responseContext"],
            json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"})
        );
        assert_eq!(value["version"], "1.0");
        assert_eq!(value["timestamp"], "2019-11-14T00:38:06.021Z");
        let info = &value["KafkaBatchInfo"];
        assert_eq!(info["batchSize"], 10);
        assert_eq!(
            info["eventSourceArn"],
            "arn:aws:kafka:us-east-1:123456789012:cluster/c/1"
        );
        assert_eq!(info["payloadSize"], 2048);
        assert_eq!(
            info["recordsInfo"]["store-events-1"],
            json!({"firstRecordOffset": "10", "lastRecordOffset": "19",
                   "firstRecordTimestamp": "2019-11-14T00:38:04.835Z", "lastRecordTimestamp": "2019-11-14T00:38:05.580Z"})
        );
        assert_eq!(value["emulatorDetail"]["error"], "boom");
        assert_eq!(value["emulatorDetail"]["partitions"][0]["lastOffset"], 19);
    }

    #[test]
    fn too_large_record_has_null_response_context() {
        let envelope = EventEnvelope::new(EventSource::SelfManaged, "127.0.0.1:19092");
        let spans = spans();
        let text = failure_record(&FailureInput {
            request_id: "req-2".into(),
            function_arn: "arn",
            condition: FailureCondition::MaximumPayloadSizeExceeded,
            invoke_count: 0,
            response: None,
            now: Utc::now(),
            envelope: &envelope,
            payload_size: 7_000_000,
            spans: &spans,
        });
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["responseContext"], Value::Null);
        assert_eq!(value["requestContext"]["condition"], "MaximumPayloadSizeExceeded");
        assert!(value["KafkaBatchInfo"].get("eventSourceArn").is_none());
    }
}
