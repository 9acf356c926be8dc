//! Sample ESM events made by our own producer service, for tests and measurements (test
//! support: behind the `testing` feature). The benchmark's sensor batches have this shape:
//! simulated readings keyed by device, each with its `event-id` header, in a `SelfManagedKafka`
//! event grouped by `topic-partition`.

use std::collections::BTreeMap;

use base64::Engine as _;
use pipeline_contracts::{contracts, Payload};
use uuid::Uuid;

use super::{signed_header_values, EventSource, KafkaEvent, KafkaRecord, TimestampType};
use crate::produce::fakes::{InMemoryPublisher, InMemoryRegistry};
use crate::produce::{
    BodyCompression, Delivery, OutgoingRecord, ProduceError, ProduceRequest, ProducerService,
    ProducerSettings,
};
use crate::simulate::ValueFormat;

/// Event time of every device's first reading: 2026-01-01T00:00:00Z, on a window boundary.
pub const START_TIME_MS: i64 = 1_767_225_600_000;

/// The ESM record for a published record: base64 key and value, headers as signed bytes.
pub fn esm_record(topic: &str, delivery: &Delivery, record: &OutgoingRecord) -> KafkaRecord {
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    KafkaRecord {
        topic: topic.to_string(),
        partition: delivery.partition,
        offset: delivery.offset,
        timestamp: record.timestamp_ms,
        timestamp_type: TimestampType::CreateTime,
        key: record.key.as_deref().map(encode),
        value: Some(encode(&record.value)),
        headers: Some(
            record
                .headers
                .iter()
                .map(|(name, value)| BTreeMap::from([(name.clone(), signed_header_values(value))]))
                .collect(),
        ),
    }
}

/// A `SelfManagedKafka` event holding `records`, grouped by `topic-partition` in offset order.
pub fn esm_event(topic: &str, records: &[(Delivery, OutgoingRecord)]) -> KafkaEvent {
    let mut grouped: BTreeMap<String, Vec<KafkaRecord>> = BTreeMap::new();
    for (delivery, record) in records {
        grouped
            .entry(format!("{topic}-{}", delivery.partition))
            .or_default()
            .push(esm_record(topic, delivery, record));
    }
    for partition in grouped.values_mut() {
        partition.sort_by_key(|r| r.offset);
    }
    KafkaEvent {
        event_source: EventSource::SelfManagedKafka,
        event_source_arn: None,
        bootstrap_servers: Some("b-1.democluster1.w7j4hk.c2.kafka.us-east-1.amazonaws.com:9092".into()),
        records: grouped,
    }
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
