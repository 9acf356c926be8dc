//! Sample ESM events made by our own producer service, for tests and measurements (test
//! support: behind the `testing` feature). The benchmark's sensor batches have this shape:
//! simulated readings keyed by device, each with its `event-id` header, in a `SelfManagedKafka`
//! event grouped by `topic-partition`.

use std::collections::BTreeMap;

use base64::Engine as _;
use pipeline_contracts::{contracts, Payload};
use uuid::Uuid;

use super::{signed_header_values, EventSource, KafkaEvent, KafkaRecord, RawHeader, TimestampType};
use crate::produce::fakes::{InMemoryPublisher, InMemoryRegistry};
use crate::produce::{
    BodyCompression, Delivery, OutgoingRecord, ProduceError, ProduceRequest, ProducerService,
    ProducerSettings,
};
use crate::simulate::ValueFormat;

/// Event time of every device's first reading: 2026-01-01T00:00:00Z, on a window boundary.
pub const START_TIME_MS: i64 = 1_767_225_600_000;

/// The MSK cluster ARN and bootstrap broker sample events of [`EventSource::Msk`] carry, in the
/// formats AWS documents (the broker label is the cluster name without its hyphens).
pub const MSK_CLUSTER_ARN: &str =
    "arn:aws:kafka:us-east-1:123456789012:cluster/pipeline/00000000-0000-0000-0000-000000000000-1";
pub const MSK_BOOTSTRAP_SERVER: &str = "b-1.pipeline.w7j4hk.c2.kafka.us-east-1.amazonaws.com:9098";
/// The bootstrap server sample events of [`EventSource::SelfManagedKafka`] carry (the local broker).
pub const SELF_MANAGED_BOOTSTRAP_SERVER: &str = "127.0.0.1:19092";

/// A record as the mapping delivers it: key and value base64-encoded (a `None` value is a
/// tombstone), headers as given.
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

/// An event of `source` holding `records`, grouped by `topic-partition` in the order given.
pub fn event(source: EventSource, records: impl IntoIterator<Item = KafkaRecord>) -> KafkaEvent {
    let mut grouped: BTreeMap<String, Vec<KafkaRecord>> = BTreeMap::new();
    for r in records {
        grouped
            .entry(format!("{}-{}", r.topic, r.partition))
            .or_default()
            .push(r);
    }
    let (arn, servers) = match source {
        EventSource::Msk => (Some(MSK_CLUSTER_ARN.to_string()), MSK_BOOTSTRAP_SERVER),
        EventSource::SelfManagedKafka => (None, SELF_MANAGED_BOOTSTRAP_SERVER),
    };
    KafkaEvent {
        event_source: source,
        event_source_arn: arn,
        bootstrap_servers: Some(servers.to_string()),
        records: grouped,
    }
}

/// The ESM record for a published record: base64 key and value, headers as signed bytes.
pub fn esm_record(topic: &str, delivery: &Delivery, record: &OutgoingRecord) -> KafkaRecord {
    let headers = record
        .headers
        .iter()
        .map(|(name, value)| BTreeMap::from([(name.clone(), signed_header_values(value))]))
        .collect();
    self::record(
        topic,
        delivery.partition,
        delivery.offset,
        record.timestamp_ms,
        record.key.as_deref(),
        Some(&record.value),
        Some(headers),
    )
}

/// A `SelfManagedKafka` event holding `records`, grouped by `topic-partition` in offset order.
pub fn esm_event(topic: &str, records: &[(Delivery, OutgoingRecord)]) -> KafkaEvent {
    let mut records: Vec<_> = records
        .iter()
        .map(|(delivery, record)| esm_record(topic, delivery, record))
        .collect();
    records.sort_by_key(|r| (r.partition, r.offset));
    event(EventSource::SelfManagedKafka, records)
}

/// A sample event and the writer schemas its Avro values are framed with.
pub struct SampleBatch {
    pub event: KafkaEvent,
    pub schemas: BTreeMap<Uuid, String>,
}

/// `devices` × `readings_per_device` simulated sensor readings in one event, on the contract's
/// sensor topic (in-memory publisher and registry).
pub async fn sensor_batch(
    devices: u32,
    readings_per_device: u32,
    format: ValueFormat,
) -> Result<SampleBatch, ProduceError> {
    let topic = contracts().topics.first_carrying(Payload::SensorReading);
    let service = ProducerService::new(
        InMemoryPublisher::new(topic.partitions as i32),
        InMemoryRegistry::default(),
        ProducerSettings::from_contract(),
    );
    let request = ProduceRequest::SimulateSensors {
        devices,
        readings_per_device,
        seed: 20_260_101,
        start_time_ms: Some(START_TIME_MS),
        interval_ms: Some(1_000),
        format: Some(format),
        compression: BodyCompression::None,
    };
    let summary = service.handle(request, START_TIME_MS).await?;
    let schemas = summary
        .schema_versions
        .iter()
        .filter_map(|used| {
            let definition = service.registry().definition(used.version_id)?;
            Some((used.version_id, definition))
        })
        .collect();
    Ok(SampleBatch {
        event: esm_event(&topic.name, &service.publisher().published(&topic.name)),
        schemas,
    })
}
