//! Building ESM events from encoded records, the way the event source mapping delivers them.
//! Used by the fixture generator (`examples/generate_events.rs`) and the integration tests.

use std::collections::BTreeMap;

use base64::Engine as _;
use pipeline_domain::event::{EventSource, KafkaEvent, KafkaRecord, RawHeader, TimestampType};

/// A record with key and value base64-encoded; `None` value is a tombstone.
pub fn record(
    topic: &str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: Option<Vec<RawHeader>>,
) -> KafkaRecord {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    KafkaRecord {
        topic: topic.to_string(),
        partition,
        offset,
        timestamp,
        timestamp_type: TimestampType::CreateTime,
        key: key.map(encode),
        value: value.map(encode),
        headers,
    }
}

/// An event of `source` holding `records`, grouped by `topic-partition` in the given order.
pub fn event(source: EventSource, records: impl IntoIterator<Item = KafkaRecord>) -> KafkaEvent {
    let mut grouped: BTreeMap<String, Vec<KafkaRecord>> = BTreeMap::new();
    for r in records {
        grouped
            .entry(format!("{}-{}", r.topic, r.partition))
            .or_default()
            .push(r);
    }
    let (arn, servers) = match source {
        EventSource::Msk => (
            Some("arn:aws:kafka:us-east-1:123456789012:cluster/pipeline/00000000-0000-0000-0000-000000000000-1".to_string()),
            "b-1.pipeline.kafka.us-east-1.amazonaws.com:9098",
        ),
        EventSource::SelfManagedKafka => (None, "127.0.0.1:19092"),
    };
    KafkaEvent {
        event_source: source,
        event_source_arn: arn,
        bootstrap_servers: Some(servers.to_string()),
        records: grouped,
    }
}
