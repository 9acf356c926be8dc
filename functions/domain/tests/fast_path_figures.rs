//! CPU figures of the consumer's two paths on the benchmark's sensor batch (10,000 readings of
//! 100 devices, JSON and Avro values), side by side in one run, with the scan floor:
//!
//!   cargo test --release -p pipeline-domain --features testing --test fast_path_figures -- --ignored --nocapture
//!
//! general: `serde_json` into the owned `KafkaEvent`, then `process` (what the handler did before
//! `process_body`, without `lambda_runtime`'s path tracking); fast: `process_body` on the bytes;
//! floor: `serde_json` scanning the body into `IgnoredAny` (validates, builds nothing). Each figure
//! is the best of several runs on fresh in-memory sinks; `decode fast` is the per-record step
//! alone over the borrowed records. Ignored in the normal suite: figures from
//! a debug build mean nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use pipeline_domain::consume::fakes::{consumer_with_schemas, contract_settings, FakeConsumer};
use pipeline_domain::consume::{decode_record, TopicRoutes};
use pipeline_domain::event::sample::sensor_batch;
use pipeline_domain::event::view::EventView;
use pipeline_domain::event::{EsmRecord, KafkaEvent};
use pipeline_domain::ports::InMemorySchemaSource;
use pipeline_domain::simulate::ValueFormat;
use serde::de::IgnoredAny;
use uuid::Uuid;

const RUNS: usize = 15;

fn consumer(
    rt: &tokio::runtime::Runtime,
    schemas: &BTreeMap<Uuid, String>,
) -> FakeConsumer<InMemorySchemaSource> {
    let consumer = consumer_with_schemas(schemas, contract_settings());
    // Warm the schema cache, as a warm Lambda's is.
    rt.block_on(
        consumer
            .schema_cache()
            .resolve(schemas.keys().copied(), &consumer.settings().retry),
    )
    .unwrap();
    consumer
}

/// The best of `RUNS` timings of `run`, each after an untimed `setup`.
fn best_of<T>(mut setup: impl FnMut() -> T, mut run: impl FnMut(T)) -> Duration {
    (0..RUNS)
        .map(|_| {
            let input = setup();
            let started = Instant::now();
            run(input);
            started.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[test]
#[ignore = "a measurement: run with --release --ignored --nocapture"]
fn fast_path_figures() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    println!("| batch | bytes | general ms | fast ms | general/fast | floor ms | fast/floor | parse general ms | parse fast ms | decode fast ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for format in [ValueFormat::Json, ValueFormat::Avro] {
        let sample = rt.block_on(sensor_batch(100, 100, format)).unwrap();
        let body = serde_json::to_vec(&sample.event).unwrap();
        let records = sample.event.record_count();
        assert_eq!(records, 10_000);
        let general = best_of(
            || consumer(&rt, &sample.schemas),
            |consumer| {
                let event: KafkaEvent = serde_json::from_slice(&body).unwrap();
                let summary = rt.block_on(consumer.process(&event)).unwrap();
                assert_eq!(summary.sensor_readings, records);
            },
        );
        let fast = best_of(
            || consumer(&rt, &sample.schemas),
            |consumer| {
                let summary = rt.block_on(consumer.process_body(&body)).unwrap();
                assert_eq!(summary.sensor_readings, records);
            },
        );
        let floor = best_of(
            || (),
            |()| {
                serde_json::from_slice::<IgnoredAny>(&body).unwrap();
            },
        );
        let parse_general = best_of(
            || (),
            |()| {
                serde_json::from_slice::<KafkaEvent>(&body).unwrap();
            },
        );
        let parse_fast = best_of(
            || (),
            |()| {
                EventView::parse(&body).unwrap();
            },
        );
        // The per-record step alone, on the borrowed records (schemas resolved once, as the
        // batch loop does before decoding).
        let view = EventView::parse(&body).unwrap();
        let warm = consumer(&rt, &sample.schemas);
        let resolved = rt
            .block_on(
                warm.schema_cache()
                    .resolve(sample.schemas.keys().copied(), &warm.settings().retry),
            )
            .unwrap();
        let routes = TopicRoutes::from_contract();
        let decode_fast = best_of(
            || (),
            |()| {
                for record in view.records() {
                    decode_record(record, routes.payload_for(record.topic()), &resolved).unwrap();
                }
            },
        );
        println!(
            "| sensors-10k {} | {} | {:.2} | {:.2} | {:.2}x | {:.2} | {:.2}x | {:.2} | {:.2} | {:.2} |",
            format.as_str(),
            body.len(),
            ms(general),
            ms(fast),
            general.as_secs_f64() / fast.as_secs_f64(),
            ms(floor),
            fast.as_secs_f64() / floor.as_secs_f64(),
            ms(parse_general),
            ms(parse_fast),
            ms(decode_fast),
        );
    }
}
