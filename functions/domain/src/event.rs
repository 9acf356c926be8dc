//! The event a Lambda Kafka event source mapping delivers, for Amazon MSK (`aws:kafka`) and
//! self-managed Kafka (`SelfManagedKafka`), in the shape AWS documents.
//!
//! Parsing the envelope is strict (a malformed envelope is the ESM's fault and fails the
//! invocation), while everything inside a record (base64, header bytes, the value itself) is kept
//! raw here and decoded per record, so one bad record can be set aside without failing the batch.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::RecordCoordinates;

#[cfg(any(test, feature = "testing"))]
pub mod sample;
pub mod view;

/// What the batch loop reads of one ESM record, whether it was parsed into owned strings
/// ([`KafkaRecord`]) or borrowed from the invocation body ([`view::RecordView`]). Every per-record
/// step takes this, so both forms run through the same code.
pub trait EsmRecord {
    fn topic(&self) -> &str;
    fn partition(&self) -> i32;
    fn offset(&self) -> i64;
    fn timestamp(&self) -> i64;
    fn timestamp_type(&self) -> TimestampType;
    /// Base64 as delivered.
    fn key(&self) -> Option<&str>;
    /// Base64 as delivered.
    fn value(&self) -> Option<&str>;
    /// The headers in the ESM's shape; built only when a record is set aside.
    fn raw_headers(&self) -> Option<Vec<RawHeader>>;

    fn coordinates(&self) -> RecordCoordinates {
        RecordCoordinates {
            topic: self.topic().to_string(),
            partition: self.partition(),
            offset: self.offset(),
        }
    }

    /// The decoded value bytes.
    fn value_bytes(&self) -> Result<Vec<u8>, RecordFieldError> {
        let encoded = self.value().ok_or(RecordFieldError::NullValue)?;
        decode_base64("value", encoded)
    }
}

/// One ESM event as the batch loop walks it: records partition by partition (in `topic-partition`
/// key order), each partition in the order delivered.
pub trait EsmBatch {
    type Record: EsmRecord;
    fn records(&self) -> impl Iterator<Item = &Self::Record>;
    fn record_count(&self) -> usize;
}

impl EsmBatch for KafkaEvent {
    type Record = KafkaRecord;
    fn records(&self) -> impl Iterator<Item = &KafkaRecord> {
        KafkaEvent::records(self)
    }
    fn record_count(&self) -> usize {
        KafkaEvent::record_count(self)
    }
}

impl EsmRecord for KafkaRecord {
    fn topic(&self) -> &str {
        &self.topic
    }
    fn partition(&self) -> i32 {
        self.partition
    }
    fn offset(&self) -> i64 {
        self.offset
    }
    fn timestamp(&self) -> i64 {
        self.timestamp
    }
    fn timestamp_type(&self) -> TimestampType {
        self.timestamp_type
    }
    fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
    fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }
    fn raw_headers(&self) -> Option<Vec<RawHeader>> {
        self.headers.clone()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventSource {
    #[serde(rename = "aws:kafka")]
    Msk,
    #[serde(rename = "SelfManagedKafka")]
    SelfManagedKafka,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaEvent {
    pub event_source: EventSource,
    /// The MSK cluster ARN; only `aws:kafka` events carry it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// Records grouped by `topic-partition`; one event may carry several partitions.
    pub records: BTreeMap<String, Vec<KafkaRecord>>,
}

impl KafkaEvent {
    /// All records, partition by partition, each partition in offset order as delivered.
    pub fn records(&self) -> impl Iterator<Item = &KafkaRecord> {
        self.records.values().flatten()
    }

    pub fn record_count(&self) -> usize {
        self.records.values().map(Vec::len).sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TimestampType {
    CreateTime,
    LogAppendTime,
    NoTimestampType,
}

/// One record header as the ESM sends it: a single-entry map from name to signed byte values.
pub type RawHeader = BTreeMap<String, Vec<i16>>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    /// Base64; absent or null for records produced without a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Base64; null for tombstones.
    #[serde(default)]
    pub value: Option<String>,
    /// Absent when the producer set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<RawHeader>>,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RecordFieldError {
    #[error("{field} is not valid base64: {reason}")]
    BadBase64 { field: &'static str, reason: String },
    #[error("value is null (tombstone or empty record)")]
    NullValue,
    #[error("header {name:?} has byte {byte} outside -128..=255")]
    BadHeaderByte { name: String, byte: i16 },
}

impl KafkaRecord {
    pub fn coordinates(&self) -> RecordCoordinates {
        EsmRecord::coordinates(self)
    }

    /// The decoded value bytes.
    pub fn value_bytes(&self) -> Result<Vec<u8>, RecordFieldError> {
        EsmRecord::value_bytes(self)
    }

    /// The decoded key bytes, `None` when the record has no key.
    pub fn key_bytes(&self) -> Result<Option<Vec<u8>>, RecordFieldError> {
        self.key.as_deref().map(|k| decode_base64("key", k)).transpose()
    }

    /// Headers as (name, bytes); signed values (negative for bytes >= 0x80) map back to raw bytes.
    pub fn header_bytes(&self) -> Result<Vec<(String, Vec<u8>)>, RecordFieldError> {
        let mut out = Vec::new();
        for header in self.headers.iter().flatten() {
            for (name, values) in header {
                let bytes = values
                    .iter()
                    .map(|&b| match b {
                        -128..=-1 => Ok((b + 256) as u8),
                        0..=255 => Ok(b as u8),
                        _ => Err(RecordFieldError::BadHeaderByte {
                            name: name.clone(),
                            byte: b,
                        }),
                    })
                    .collect::<Result<Vec<u8>, _>>()?;
                out.push((name.clone(), bytes));
            }
        }
        Ok(out)
    }
}

/// Encodes header bytes the way the ESM does: as signed Java bytes.
pub fn signed_header_values(bytes: &[u8]) -> Vec<i16> {
    bytes.iter().map(|&b| b as i8 as i16).collect()
}

fn decode_base64(field: &'static str, encoded: &str) -> Result<Vec<u8>, RecordFieldError> {
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| RecordFieldError::BadBase64 {
            field,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The self-managed Kafka example event from the AWS Lambda developer guide.
    const SELF_MANAGED_EXAMPLE: &str = include_str!("../tests/fixtures/self_managed_kafka_event.json");
    /// The Amazon MSK example event from the AWS Lambda developer guide.
    const MSK_EXAMPLE: &str = include_str!("../tests/fixtures/msk_event.json");

    #[test]
    fn parses_the_documented_self_managed_example() {
        let event: KafkaEvent = serde_json::from_str(SELF_MANAGED_EXAMPLE).unwrap();
        assert_eq!(event.event_source, EventSource::SelfManagedKafka);
        assert!(event.bootstrap_servers.is_some());
        let record = event.records().next().unwrap();
        assert_eq!(record.topic, "mytopic");
        assert_eq!(record.timestamp_type, TimestampType::CreateTime);
        assert_eq!(record.value_bytes().unwrap(), br#"{"key":"value"}"#);
        assert_eq!(record.key_bytes().unwrap().as_deref(), Some(&b"recordKey"[..]));
        let headers = record.header_bytes().unwrap();
        assert_eq!(headers[0], ("headerKey".to_string(), b"headerValue".to_vec()));
    }

    #[test]
    fn parses_the_documented_msk_example() {
        let event: KafkaEvent = serde_json::from_str(MSK_EXAMPLE).unwrap();
        assert_eq!(event.event_source, EventSource::Msk);
        assert!(event
            .event_source_arn
            .as_deref()
            .unwrap()
            .starts_with("arn:aws:kafka:"));
        assert_eq!(event.record_count(), 1);
    }

    #[test]
    fn many_partitions_null_key_missing_headers_and_negative_header_bytes() {
        let json = r#"{
            "eventSource": "SelfManagedKafka",
            "bootstrapServers": "127.0.0.1:9092",
            "records": {
                "t-0": [{"topic":"t","partition":0,"offset":5,"timestamp":1,"timestampType":"CREATE_TIME","key":null,"value":"e30="}],
                "t-1": [{"topic":"t","partition":1,"offset":9,"timestamp":2,"timestampType":"LOG_APPEND_TIME","value":"e30=",
                         "headers":[{"h":[-61,-87]},{"empty":[]}]}]
            }
        }"#;
        let event: KafkaEvent = serde_json::from_str(json).unwrap();
        assert_eq!(event.record_count(), 2);
        let records: Vec<_> = event.records().collect();
        assert_eq!(records[0].key_bytes().unwrap(), None);
        assert!(records[0].header_bytes().unwrap().is_empty());
        let headers = records[1].header_bytes().unwrap();
        assert_eq!(headers[0].1, "é".as_bytes());
        assert_eq!(headers[1].1, Vec::<u8>::new());
        assert_eq!(signed_header_values("é".as_bytes()), vec![-61, -87]);
    }

    #[test]
    fn bad_fields_are_per_record_errors() {
        let mut record: KafkaRecord = serde_json::from_str(
            r#"{"topic":"t","partition":0,"offset":1,"timestamp":1,"timestampType":"CREATE_TIME","value":"%%%"}"#,
        )
        .unwrap();
        assert!(matches!(
            record.value_bytes(),
            Err(RecordFieldError::BadBase64 { field: "value", .. })
        ));
        record.value = None;
        assert_eq!(record.value_bytes(), Err(RecordFieldError::NullValue));
        record.headers = Some(vec![RawHeader::from([("h".to_string(), vec![300])])]);
        assert!(matches!(
            record.header_bytes(),
            Err(RecordFieldError::BadHeaderByte { byte: 300, .. })
        ));
    }

    #[test]
    fn serializes_back_to_the_documented_field_names() {
        let event: KafkaEvent = serde_json::from_str(SELF_MANAGED_EXAMPLE).unwrap();
        let back = serde_json::to_value(&event).unwrap();
        assert_eq!(back["eventSource"], "SelfManagedKafka");
        let record = &back["records"]["mytopic-0"][0];
        assert_eq!(record["timestampType"], "CREATE_TIME");
        assert!(record["headers"][0]["headerKey"].is_array());
    }
}
