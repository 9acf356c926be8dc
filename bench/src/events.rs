//! The benchmark batches, made by our own producer service so they hold exactly what the pipeline
//! carries: simulated sensor readings (fixed seed, fixed start time), keyed by device, partitioned
//! with murmur2 like the Kafka publisher, each with its `event-id` header, wrapped in the
//! `SelfManagedKafka` event the event source mapping delivers.
//!
//! Avro values are framed with a schema version id: a fixed name-derived id ([`FixedIdRegistry`])
//! unless a real registry is passed in, so the consumer running against the local stack can
//! resolve it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use pipeline_adapters::kafka::partition_for_key;
use pipeline_contracts::{contracts, Compatibility};
// The ESM shape of published records: one home, the domain's test support.
pub use pipeline_domain::event::sample::{esm_event, esm_record};
use pipeline_domain::event::KafkaEvent;
use pipeline_domain::ports::PortError;
use pipeline_domain::produce::{
    BodyCompression, Delivery, EventPublisher, OutgoingRecord, ProduceRequest, ProducerService,
    ProducerSettings, PublishError, RegisteredVersion, RegistryWriteError, SchemaRegistryWriter,
};
use pipeline_domain::simulate::ValueFormat;
use uuid::Uuid;

/// Event time of every device's first reading: 2026-01-01T00:00:00Z, on a window boundary.
pub const START_TIME_MS: i64 = 1_767_225_600_000;
/// One reading per device per second.
pub const INTERVAL_MS: i64 = 1_000;
pub const SEED: u64 = 20_260_101;
/// The Lambda synchronous payload limit, which the event source mapping fills at most.
pub use pipeline_domain::limits::LAMBDA_MAX_INVOKE_PAYLOAD_BYTES as PAYLOAD_CAP_BYTES;

/// A publisher that only records: partition by murmur2 of the key (as the Kafka adapter does),
/// offsets counted per partition from 0.
pub struct CapturePublisher {
    partitions: i32,
    log: Mutex<Vec<(Delivery, OutgoingRecord)>>,
}

impl CapturePublisher {
    pub fn new(partitions: i32) -> Self {
        Self {
            partitions,
            log: Mutex::new(Vec::new()),
        }
    }

    /// Everything published so far, in publish order.
    pub fn take(&self) -> Vec<(Delivery, OutgoingRecord)> {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl EventPublisher for CapturePublisher {
    async fn publish(
        &self,
        _topic: &str,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<Delivery>, PublishError> {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        let mut next: HashMap<i32, i64> = HashMap::new();
        for (delivery, _) in log.iter() {
            next.insert(delivery.partition, delivery.offset + 1);
        }
        let mut round_robin = 0;
        let deliveries = records
            .into_iter()
            .map(|record| {
                let partition = match &record.key {
                    Some(key) => partition_for_key(key, self.partitions),
                    None => {
                        round_robin = (round_robin + 1) % self.partitions;
                        round_robin
                    }
                };
                let offset = next.entry(partition).or_insert(0);
                let delivery = Delivery {
                    partition,
                    offset: *offset,
                };
                *offset += 1;
                log.push((delivery, record));
                delivery
            })
            .collect();
        Ok(deliveries)
    }
}

/// A registry that answers every schema with an id derived from its name and definition.
pub struct FixedIdRegistry;

impl FixedIdRegistry {
    pub fn id(schema_name: &str, definition: &str) -> Uuid {
        Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            format!("pipeline-bench:{schema_name}:{definition}").as_bytes(),
        )
    }
}

impl SchemaRegistryWriter for FixedIdRegistry {
    async fn find_version(
        &self,
        schema_name: &str,
        definition: &str,
    ) -> Result<Option<RegisteredVersion>, PortError> {
        Ok(Some(RegisteredVersion {
            version_id: Self::id(schema_name, definition),
            version_number: Some(1),
            newly_registered: false,
        }))
    }

    async fn register_or_reuse(
        &self,
        schema_name: &str,
        definition: &str,
        _compatibility_if_new: Compatibility,
    ) -> Result<RegisteredVersion, RegistryWriteError> {
        Ok(RegisteredVersion {
            version_id: Self::id(schema_name, definition),
            version_number: Some(1),
            newly_registered: false,
        })
    }
}

/// One benchmark batch: the event as the consumer receives it.
pub struct BenchEvent {
    pub name: String,
    pub format: ValueFormat,
    pub event: KafkaEvent,
    /// Schema version ids used by the Avro values, with their definitions.
    pub schemas: BTreeMap<Uuid, String>,
}

/// The produce request of the benchmark fleet.
pub fn sensor_request(devices: u32, readings_per_device: u32, format: ValueFormat) -> ProduceRequest {
    ProduceRequest::SimulateSensors {
        devices,
        readings_per_device,
        seed: SEED,
        start_time_ms: Some(START_TIME_MS),
        interval_ms: Some(INTERVAL_MS),
        format: Some(format),
        compression: BodyCompression::None,
    }
}

/// Runs our producer service on `request` with a capturing publisher and returns what it would
/// have published, with the schema versions it used.
pub async fn produce_records<R: SchemaRegistryWriter>(
    registry: R,
    request: ProduceRequest,
) -> anyhow::Result<(Vec<(Delivery, OutgoingRecord)>, BTreeMap<Uuid, String>)> {
    let partitions = contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::SensorReading)
        .partitions as i32;
    let service = ProducerService::new(
        CapturePublisher::new(partitions),
        registry,
        ProducerSettings::from_contract(),
    );
    let summary = service.handle(request, START_TIME_MS).await?;
    let mut schemas = BTreeMap::new();
    for used in &summary.schema_versions {
        let definition = contracts()
            .schemas
            .get(&used.schema_name)
            .map(|s| s.latest_text().to_string())
            .ok_or_else(|| anyhow::anyhow!("no contract schema {}", used.schema_name))?;
        schemas.insert(used.version_id, definition);
    }
    Ok((service.publisher().take(), schemas))
}

/// `devices` × `readings_per_device` sensor readings in one event.
pub async fn sensor_event<R: SchemaRegistryWriter>(
    registry: R,
    name: &str,
    devices: u32,
    readings_per_device: u32,
    format: ValueFormat,
) -> anyhow::Result<BenchEvent> {
    let (records, schemas) =
        produce_records(registry, sensor_request(devices, readings_per_device, format)).await?;
    let topic = &contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::SensorReading)
        .name;
    Ok(BenchEvent {
        name: name.to_string(),
        format,
        event: esm_event(topic, &records),
        schemas,
    })
}

/// The largest batch of the fleet's readings (in production order) whose event JSON fits in
/// `cap_bytes`, as the event source mapping fills a batch up to the payload limit.
pub async fn capped_event<R: SchemaRegistryWriter>(
    registry: R,
    name: &str,
    devices: u32,
    cap_bytes: usize,
    format: ValueFormat,
) -> anyhow::Result<BenchEvent> {
    let topic = &contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::SensorReading)
        .name;
    // Enough readings to overfill the cap (Avro values are the smaller ones, ~230 bytes per record).
    let readings_per_device = (cap_bytes / 200 / devices as usize + 1).min(100_000 / devices as usize) as u32;
    let (records, schemas) =
        produce_records(registry, sensor_request(devices, readings_per_device, format)).await?;
    let sizes: Vec<usize> = records
        .iter()
        .map(|(d, r)| serde_json::to_vec(&esm_record(topic, d, r)).map_or(0, |v| v.len() + 1))
        .collect();
    // Envelope and per-partition keys: a few hundred bytes.
    let mut budget = cap_bytes.saturating_sub(512);
    let mut take = 0;
    for size in &sizes {
        if *size > budget {
            break;
        }
        budget -= size;
        take += 1;
    }
    loop {
        let event = esm_event(topic, &records[..take]);
        let len = serde_json::to_vec(&event)?.len();
        if len <= cap_bytes || take == 0 {
            return Ok(BenchEvent {
                name: name.to_string(),
                format,
                event,
                schemas,
            });
        }
        take -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(future)
    }

    #[test]
    fn batches_are_deterministic_keyed_and_contiguous_per_partition() {
        for format in [ValueFormat::Json, ValueFormat::Avro] {
            let first = run(sensor_event(FixedIdRegistry, "t", 20, 5, format)).unwrap();
            let again = run(sensor_event(FixedIdRegistry, "t", 20, 5, format)).unwrap();
            assert_eq!(
                serde_json::to_vec(&first.event).unwrap(),
                serde_json::to_vec(&again.event).unwrap()
            );
            assert_eq!(first.event.record_count(), 100);
            assert_eq!(
                first.event.records.len(),
                4,
                "20 devices spread over the 4 partitions"
            );
            for (key, records) in &first.event.records {
                assert!(
                    records.iter().enumerate().all(|(i, r)| r.offset == i as i64),
                    "{key}"
                );
                let partition = records[0].partition;
                for r in records {
                    let device = r.key_bytes().unwrap().unwrap();
                    assert_eq!(partition_for_key(&device, 4), partition);
                    assert_eq!(r.header_bytes().unwrap()[0].0, "event-id");
                }
            }
            assert_eq!(first.schemas.len(), usize::from(format == ValueFormat::Avro));
        }
    }

    #[test]
    fn a_capped_batch_fills_the_cap_without_exceeding_it() {
        let cap = 64 * 1024;
        let batch = run(capped_event(FixedIdRegistry, "t", 10, cap, ValueFormat::Json)).unwrap();
        let len = serde_json::to_vec(&batch.event).unwrap().len();
        let one_record = len / batch.event.record_count();
        assert!(
            len <= cap && len + 2 * one_record > cap,
            "{len} bytes for a cap of {cap}"
        );
    }

    #[tokio::test]
    async fn every_record_is_aggregated_by_the_consumer() {
        for format in [ValueFormat::Json, ValueFormat::Avro] {
            let batch = sensor_event(FixedIdRegistry, "t", 10, 120, format).await.unwrap();
            let consumer = crate::cpu::fake_consumer(&batch.schemas).await.unwrap();
            let bytes = serde_json::to_vec(&batch.event).unwrap();
            let summary = consumer.process_body(&bytes).await.unwrap();
            crate::cpu::check_summary(&summary, 1200).unwrap();
            // 120 one-second readings from a window boundary: two windows per device.
            assert_eq!(summary.windows_written, 20);
        }
    }
}
