//! The event a Lambda Kafka event source mapping sends, built byte for byte so its size is known
//! exactly before the invoke: the 6 MB cap applies to the serialized event.
//!
//! Shape (AWS Lambda developer guide, MSK and self-managed Kafka event sources):
//! `{"eventSource":"aws:kafka"|"SelfManagedKafka", "eventSourceArn" (MSK only), "bootstrapServers",
//!   "records": {"<topic>-<partition>": [{topic, partition, offset, timestamp, timestampType,
//!   key (base64, omitted when absent), value (base64), headers: [{name: [signed bytes]}]}]}}`

use base64::Engine as _;
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;

/// Which of the two documented event flavours to emit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventSource {
    /// Amazon MSK: `eventSource` is `aws:kafka` and the event names the cluster ARN.
    Msk { cluster_arn: String },
    /// Self-managed Apache Kafka: `eventSource` is `SelfManagedKafka`.
    SelfManaged,
}

impl EventSource {
    pub fn name(&self) -> &'static str {
        match self {
            EventSource::Msk { .. } => "aws:kafka",
            EventSource::SelfManaged => "SelfManagedKafka",
        }
    }

    pub fn cluster_arn(&self) -> Option<&str> {
        match self {
            EventSource::Msk { cluster_arn } => Some(cluster_arn),
            EventSource::SelfManaged => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
    NoTimestampType,
}

impl TimestampType {
    pub fn as_str(self) -> &'static str {
        match self {
            TimestampType::CreateTime => "CREATE_TIME",
            TimestampType::LogAppendTime => "LOG_APPEND_TIME",
            TimestampType::NoTimestampType => "NO_TIMESTAMP_TYPE",
        }
    }
}

/// A record as read from the broker, before it is encoded for the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolledRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch; -1 when the broker reports none.
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    /// In broker order; a header without a value is sent as an empty byte list.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// The `records` map key for a partition: `topic-partition`.
pub fn partition_key(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// One record already serialized to its JSON object, with the coordinates the batch needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub json: Vec<u8>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RecordJson<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    timestamp_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    value: Option<String>,
    headers: Vec<HeaderJson<'a>>,
}

/// A header is a single-entry object whose value is the bytes as signed (Java) byte values.
struct HeaderJson<'a> {
    name: &'a str,
    bytes: &'a [u8],
}

impl Serialize for HeaderJson<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let signed: Vec<i8> = self.bytes.iter().map(|&b| b as i8).collect();
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry(self.name, &signed)?;
        map.end()
    }
}

impl EncodedRecord {
    pub fn encode(record: &PolledRecord) -> Self {
        let b64 = |bytes: &Vec<u8>| base64::engine::general_purpose::STANDARD.encode(bytes);
        let json = RecordJson {
            topic: &record.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            timestamp_type: record.timestamp_type.as_str(),
            key: record.key.as_ref().map(b64),
            value: record.value.as_ref().map(b64),
            headers: record
                .headers
                .iter()
                .map(|(name, value)| HeaderJson {
                    name,
                    bytes: value.as_deref().unwrap_or_default(),
                })
                .collect(),
        };
        Self {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            // Serializing plain strings, integers and byte lists cannot fail.
            json: serde_json::to_vec(&json).unwrap_or_default(),
        }
    }
}

/// The fixed parts of every event of one mapping, pre-rendered.
#[derive(Debug, Clone)]
pub struct EventEnvelope {
    pub source: EventSource,
    pub bootstrap_servers: String,
    prefix: Vec<u8>,
}

const SUFFIX: &[u8] = b"}}";

impl EventEnvelope {
    pub fn new(source: EventSource, bootstrap_servers: impl Into<String>) -> Self {
        let bootstrap_servers = bootstrap_servers.into();
        let mut prefix = b"{\"eventSource\":".to_vec();
        prefix.extend(json_string(source.name()));
        if let Some(arn) = source.cluster_arn() {
            prefix.extend(b",\"eventSourceArn\":");
            prefix.extend(json_string(arn));
        }
        prefix.extend(b",\"bootstrapServers\":");
        prefix.extend(json_string(&bootstrap_servers));
        prefix.extend(b",\"records\":{");
        Self {
            source,
            bootstrap_servers,
            prefix,
        }
    }

    /// Size of an event with no records.
    pub fn empty_size(&self) -> usize {
        self.prefix.len() + SUFFIX.len()
    }

    /// Extra bytes a new partition group adds before its first record: `,"key":[]`.
    pub fn group_overhead(key: &str, is_first_group: bool) -> usize {
        usize::from(!is_first_group) + json_string(key).len() + 3
    }

    /// Renders the event. Groups are `(records key, records)` in the order they appear.
    pub fn render<'a>(&self, groups: impl IntoIterator<Item = (&'a str, &'a [EncodedRecord])>) -> Vec<u8> {
        let mut out = self.prefix.clone();
        for (index, (key, records)) in groups.into_iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.extend(json_string(key));
            out.extend(b":[");
            for (position, record) in records.iter().enumerate() {
                if position > 0 {
                    out.push(b',');
                }
                out.extend(&record.json);
            }
            out.push(b']');
        }
        out.extend(SUFFIX);
        out
    }
}

fn json_string(text: &str) -> Vec<u8> {
    serde_json::to_vec(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn record(partition: i32, offset: i64) -> PolledRecord {
        PolledRecord {
            topic: "sensor-readings".into(),
            partition,
            offset,
            timestamp: 1_700_000_000_123,
            timestamp_type: TimestampType::CreateTime,
            key: Some(b"device-1".to_vec()),
            value: Some(br#"{"t":21.5}"#.to_vec()),
            headers: vec![
                ("trace".into(), Some("é\x01".as_bytes().to_vec())),
                ("empty".into(), None),
            ],
        }
    }

    #[test]
    fn record_json_has_the_documented_field_names_and_types() {
        let encoded = EncodedRecord::encode(&record(3, 42));
        let value: Value = serde_json::from_slice(&encoded.json).unwrap();
        assert_eq!(
            value,
            json!({
                "topic": "sensor-readings",
                "partition": 3,
                "offset": 42,
                "timestamp": 1_700_000_000_123_i64,
                "timestampType": "CREATE_TIME",
                "key": "ZGV2aWNlLTE=",
                "value": "eyJ0IjoyMS41fQ==",
                "headers": [{"trace": [-61, -87, 1]}, {"empty": []}]
            })
        );
    }

    #[test]
    fn absent_key_is_omitted_and_null_value_stays_null() {
        let mut r = record(0, 1);
        r.key = None;
        r.value = None;
        r.headers.clear();
        r.timestamp_type = TimestampType::LogAppendTime;
        let value: Value = serde_json::from_slice(&EncodedRecord::encode(&r).json).unwrap();
        assert!(value.get("key").is_none());
        assert_eq!(value["value"], Value::Null);
        assert_eq!(value["headers"], json!([]));
        assert_eq!(value["timestampType"], "LOG_APPEND_TIME");
    }

    #[test]
    fn msk_and_self_managed_envelopes() {
        let msk = EventEnvelope::new(
            EventSource::Msk {
                cluster_arn: "arn:aws:kafka:eu-west-1:111122223333:cluster/c/1".into(),
            },
            "b-1:9098",
        );
        let event: Value = serde_json::from_slice(&msk.render([])).unwrap();
        assert_eq!(
            event,
            json!({"eventSource": "aws:kafka", "eventSourceArn": "arn:aws:kafka:eu-west-1:111122223333:cluster/c/1",
                   "bootstrapServers": "b-1:9098", "records": {}})
        );
        let smk = EventEnvelope::new(EventSource::SelfManaged, "127.0.0.1:19092");
        let event: Value = serde_json::from_slice(&smk.render([])).unwrap();
        assert_eq!(event["eventSource"], "SelfManagedKafka");
        assert!(event.get("eventSourceArn").is_none());
        assert_eq!(smk.empty_size(), smk.render([]).len());
    }

    #[test]
    fn rendered_event_is_keyed_by_topic_partition_and_parses_with_the_consumer_model() {
        let envelope = EventEnvelope::new(EventSource::SelfManaged, "127.0.0.1:19092");
        let p0 = [
            EncodedRecord::encode(&record(0, 7)),
            EncodedRecord::encode(&record(0, 8)),
        ];
        let p2 = [EncodedRecord::encode(&record(2, 1))];
        let bytes = envelope.render([("sensor-readings-0", &p0[..]), ("sensor-readings-2", &p2[..])]);
        let event: pipeline_domain::event::KafkaEvent = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(event.record_count(), 3);
        let offsets: Vec<i64> = event.records["sensor-readings-0"]
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(offsets, vec![7, 8]);
        let first = &event.records["sensor-readings-0"][0];
        assert_eq!(first.key_bytes().unwrap().as_deref(), Some(&b"device-1"[..]));
        assert_eq!(first.header_bytes().unwrap()[0].1, "é\x01".as_bytes());
    }
}
