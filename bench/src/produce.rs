//! Figure 3: producer records/s to the local broker. Ours is the producer service as the Lambda
//! runs it (simulate, encode — Glue-framed Avro through the registry, or JSON — and publish with
//! the rskafka publisher); the baseline is a Python confluent-kafka producer sending the records
//! ours sent, byte for byte (`--dump`, read by bench/python/seed_baseline.py).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use pipeline_adapters::glue::{glue_client, GlueSchemaRegistry};
use pipeline_adapters::kafka::{KafkaPublisher, KafkaSettings};
use pipeline_domain::produce::{EventPublisher, ProducerService, ProducerSettings};
use pipeline_domain::simulate::ValueFormat;

use crate::events::{produce_records, sensor_request};
use crate::timing::Timing;

pub async fn registry(sdk: &aws_config::SdkConfig) -> GlueSchemaRegistry {
    let c = pipeline_contracts::contracts();
    let name = std::env::var(&c.env_vars.registry_name).unwrap_or_else(|_| c.schema_registry.name.clone());
    GlueSchemaRegistry::new(glue_client(sdk, None).await, &name)
}

pub fn bootstrap_servers() -> anyhow::Result<Vec<String>> {
    let c = pipeline_contracts::contracts();
    let servers = std::env::var(&c.env_vars.kafka_bootstrap_servers).map_err(|_| {
        anyhow::anyhow!(
            "{} is not set: source the local stack's env",
            c.env_vars.kafka_bootstrap_servers
        )
    })?;
    Ok(servers.split(',').map(str::to_string).collect())
}

pub struct ProduceFigures {
    pub records: u64,
    pub timing: Timing,
    /// CPU time of this process per request (the broker runs elsewhere).
    pub cpu: Timing,
    /// The same request into a publisher that only records: simulation, encoding and framing
    /// (and the registry lookup), without the broker.
    pub prepare_only: Timing,
    /// Publishing the prepared records of one request through the Kafka adapter.
    pub publish_only: Timing,
}

/// `runs` identical requests of `devices` × `readings_per_device` readings through one warm
/// producer (clients connected, as in a warm Lambda).
pub async fn measure(
    sdk: &aws_config::SdkConfig,
    format: ValueFormat,
    devices: u32,
    readings_per_device: u32,
    runs: usize,
) -> anyhow::Result<ProduceFigures> {
    let publisher = KafkaPublisher::connect(&KafkaSettings::plaintext(bootstrap_servers()?)).await?;
    let service = ProducerService::new(publisher, registry(sdk).await, ProducerSettings::from_contract());
    // Warm-up: metadata, partition connections, the registry's schema.
    service
        .handle(sensor_request(devices, 1, format), crate::events::START_TIME_MS)
        .await?;
    let mut samples = Vec::new();
    let mut cpu = Vec::new();
    let mut records = 0;
    for _ in 0..runs.max(1) {
        let cpu_before = crate::timing::process_cpu_time();
        let started = Instant::now();
        let summary = service
            .handle(
                sensor_request(devices, readings_per_device, format),
                crate::events::START_TIME_MS,
            )
            .await?;
        samples.push(started.elapsed());
        cpu.push(crate::timing::process_cpu_time().saturating_sub(cpu_before));
        records = summary.total_records();
    }
    let registry = registry(sdk).await;
    let mut prepare = Vec::new();
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        let (captured, _) = produce_records(
            registry.clone(),
            sensor_request(devices, readings_per_device, format),
        )
        .await?;
        drop(captured);
        prepare.push(started.elapsed());
    }
    let (prepared, _) = produce_records(
        registry.clone(),
        sensor_request(devices, readings_per_device, format),
    )
    .await?;
    let outgoing: Vec<_> = prepared.into_iter().map(|(_, record)| record).collect();
    let topic = &pipeline_contracts::contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::SensorReading)
        .name;
    let mut publish = Vec::new();
    for _ in 0..runs.max(1) {
        let batch = outgoing.clone();
        let started = Instant::now();
        service.publisher().publish(topic, batch).await?;
        publish.push(started.elapsed());
    }
    Ok(ProduceFigures {
        records,
        timing: Timing::from_samples(samples),
        cpu: Timing::from_samples(cpu),
        prepare_only: Timing::from_samples(prepare),
        publish_only: Timing::from_samples(publish),
    })
}

/// Writes the records one request publishes (same request, same bytes) for the Python producer:
/// per record the timestamp (i64 BE), then key, value and `event-id` header, each u32-BE
/// length-prefixed.
pub async fn dump(
    sdk: &aws_config::SdkConfig,
    format: ValueFormat,
    devices: u32,
    readings_per_device: u32,
    path: &Path,
) -> anyhow::Result<usize> {
    let (records, _) = produce_records(
        registry(sdk).await,
        sensor_request(devices, readings_per_device, format),
    )
    .await?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (_, record) in &records {
        let event_id = record
            .headers
            .iter()
            .find(|(name, _)| name == pipeline_domain::produce::EVENT_ID_HEADER)
            .map(|(_, v)| v.as_slice())
            .unwrap_or_default();
        out.write_all(&record.timestamp_ms.to_be_bytes())?;
        for field in [record.key.as_deref().unwrap_or_default(), &record.value, event_id] {
            out.write_all(&(field.len() as u32).to_be_bytes())?;
            out.write_all(field)?;
        }
    }
    out.flush()?;
    Ok(records.len())
}

/// Where the producer's time goes without the broker, per request of `devices` ×
/// `readings_per_device`: the simulation, the value encoding of every reading, and the `event-id`
/// header of every record.
pub struct PrepareBreakdown {
    pub simulate: Timing,
    pub encode: Timing,
    pub event_ids: Timing,
}

pub fn prepare_breakdown(
    format: ValueFormat,
    devices: u32,
    readings_per_device: u32,
    runs: usize,
) -> anyhow::Result<PrepareBreakdown> {
    use pipeline_domain::payload::{reader_schema, SensorAvroWriter};
    use pipeline_domain::simulate::{simulate_sensor_readings, SensorSimulation};
    use pipeline_domain::wire::{frame_with, Compression};
    let simulation = SensorSimulation {
        devices,
        readings_per_device,
        seed: crate::events::SEED,
        start_time_ms: crate::events::START_TIME_MS,
        interval_ms: crate::events::INTERVAL_MS,
    };
    let simulate = crate::timing::best_of(runs, || Ok(()), |()| Ok(simulate_sensor_readings(&simulation)))?;
    let readings = simulate_sensor_readings(&simulation);
    let schema = reader_schema("SensorReading").ok_or_else(|| anyhow::anyhow!("no SensorReading schema"))?;
    let id = uuid::Uuid::nil();
    let encode = crate::timing::best_of(
        runs,
        || Ok(()),
        |()| {
            // As the producer service does it: the writer checked once per request.
            let writer = SensorAvroWriter::for_schema(schema)?;
            readings
                .iter()
                .map(|r| match format {
                    ValueFormat::Json => Ok(serde_json::to_vec(r)?),
                    ValueFormat::Avro => Ok(frame_with(id, Compression::None, 48, |body| {
                        writer.write(r, body)
                    })),
                })
                .collect::<anyhow::Result<Vec<_>>>()
        },
    )?;
    let event_ids = crate::timing::best_of(
        runs,
        || Ok(()),
        |()| {
            Ok((0..readings.len())
                .map(|i| pipeline_domain::produce::event_id_header(id, i))
                .collect::<Vec<_>>())
        },
    )?;
    Ok(PrepareBreakdown {
        simulate,
        encode,
        event_ids,
    })
}
