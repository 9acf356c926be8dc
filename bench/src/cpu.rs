//! Figure 1: the consumer's CPU path per batch (event parse + decode + aggregate) with the sinks
//! replaced by the domain's in-memory fakes, against a bare `serde_json` parse of the same bytes.
//!
//! "Ours" is exactly what the Lambda does per invocation: `ConsumerService::process_body` on the
//! invocation body as bytes (the borrowed parse, `pipeline_lambda_edge::raw_body` hands the body
//! over untouched), whose window writes land in `InMemoryWindowStore`. "Through the runtime's
//! parse" is what it did before: `lambda_runtime`'s typed deserialisation (`serde_path_to_error`
//! over `serde_json`) and `ConsumerService::process`. Writer schemas are resolved before timing,
//! as in a warm Lambda whose schema cache is filled.

use std::collections::BTreeMap;

use pipeline_domain::consume::batch::BatchSummary;
use pipeline_domain::consume::fakes::{self, consumer_with_schemas, contract_settings};
use pipeline_domain::consume::{decode_record, glue_schema_version_id};
use pipeline_domain::event::view::EventView;
use pipeline_domain::event::{EsmBatch, EsmRecord, KafkaEvent};
use pipeline_domain::ports::InMemorySchemaSource;
use pipeline_domain::window::group_readings;
use serde::de::IgnoredAny;
use uuid::Uuid;

use crate::timing::{best_of, Timing};

pub type FakeConsumer = fakes::FakeConsumer<InMemorySchemaSource>;

/// A consumer on in-memory sinks whose schema cache already holds `schemas`.
pub async fn fake_consumer(schemas: &BTreeMap<Uuid, String>) -> anyhow::Result<FakeConsumer> {
    let consumer = consumer_with_schemas(schemas, contract_settings());
    consumer
        .schema_cache()
        .resolve(schemas.keys().copied(), &consumer.settings().retry)
        .await?;
    Ok(consumer)
}

/// The payload as `lambda_runtime` deserialises it.
pub fn parse_like_the_runtime(bytes: &[u8]) -> anyhow::Result<KafkaEvent> {
    let deserializer = &mut serde_json::Deserializer::from_slice(bytes);
    Ok(serde_path_to_error::deserialize(deserializer)?)
}

/// Fails unless every record was decoded and aggregated: a benchmark of poison is no benchmark.
pub fn check_summary(summary: &BatchSummary, records: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        summary.records == records && summary.sensor_readings == records && summary.poison == 0,
        "the consumer did not aggregate every record: {summary:?}"
    );
    anyhow::ensure!(summary.windows_written > 0, "no window written: {summary:?}");
    Ok(())
}

pub struct CpuFigures {
    /// Parse + decode + aggregate as the Lambda does it: `process_body` on fakes.
    pub ours: Timing,
    /// The same through the runtime's typed parse and `process` (the path before `process_body`).
    pub through_runtime_parse: Timing,
    /// `serde_json::from_slice::<serde_json::Value>`.
    pub bare_value_parse: Timing,
    /// `serde_json::from_slice::<IgnoredAny>`: a validating scan that builds nothing, the floor.
    pub bare_scan: Timing,
    /// Breakdown of ours: the borrowed envelope parse.
    pub envelope_parse: Timing,
    /// The runtime's typed parse, with its path tracking.
    pub envelope_parse_runtime: Timing,
    pub decode_only: Timing,
    pub group_only: Timing,
    pub windows_written: u64,
}

pub fn measure(
    rt: &tokio::runtime::Runtime,
    bytes: &[u8],
    records: usize,
    schemas: &BTreeMap<Uuid, String>,
    runs: usize,
) -> anyhow::Result<CpuFigures> {
    let mut windows_written = 0;
    let ours = best_of(
        runs,
        || rt.block_on(fake_consumer(schemas)),
        |consumer| {
            let summary = rt
                .block_on(consumer.process_body(bytes))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            check_summary(&summary, records)?;
            windows_written = summary.windows_written;
            Ok(())
        },
    )?;
    let through_runtime_parse = best_of(
        runs,
        || rt.block_on(fake_consumer(schemas)),
        |consumer| {
            let event = parse_like_the_runtime(bytes)?;
            let summary = rt.block_on(consumer.process(&event))?;
            check_summary(&summary, records)?;
            Ok(())
        },
    )?;
    let bare_value_parse = best_of(
        runs,
        || Ok(()),
        |()| Ok(serde_json::from_slice::<serde_json::Value>(bytes)?),
    )?;
    let bare_scan = best_of(
        runs,
        || Ok(()),
        |()| Ok(serde_json::from_slice::<IgnoredAny>(bytes)?),
    )?;
    let envelope_parse = best_of(runs, || Ok(()), |()| Ok(EventView::parse(bytes)?.record_count()))?;
    let envelope_parse_runtime = best_of(runs, || Ok(()), |()| parse_like_the_runtime(bytes))?;

    let event = EventView::parse(bytes)?;
    let consumer = rt.block_on(fake_consumer(schemas))?;
    let resolved = rt.block_on(consumer.schema_cache().resolve(
        EsmBatch::records(&event).filter_map(glue_schema_version_id),
        &consumer.settings().retry,
    ))?;
    let routes = &consumer.settings().routes;
    let decode = || {
        EsmBatch::records(&event)
            .map(|r| decode_record(r, routes.payload_for(r.topic()), &resolved))
            .collect::<Vec<_>>()
    };
    let decode_only = best_of(runs, || Ok(()), |()| Ok(decode()))?;
    let readings: Vec<_> = decode()
        .into_iter()
        .filter_map(|d| match d {
            Ok(pipeline_domain::consume::Decoded::Sensor { coordinates, reading }) => {
                Some((coordinates, reading))
            }
            _ => None,
        })
        .collect();
    let window = consumer.settings().window;
    let group_only = best_of(
        runs,
        || Ok(()),
        |()| Ok(group_readings(window, readings.iter().map(|(c, r)| (c, r)))),
    )?;
    Ok(CpuFigures {
        ours,
        through_runtime_parse,
        bare_value_parse,
        bare_scan,
        envelope_parse,
        envelope_parse_runtime,
        decode_only,
        group_only,
        windows_written,
    })
}
