//! Unit tests of the producer service over the in-memory fakes.

use std::collections::BTreeMap;

use pipeline_contracts::contracts;
use serde_json::Value as Json;

use super::fakes::{InMemoryPublisher, InMemoryRegistry};
use super::*;
use crate::payload::{decode_avro, sensor_from_avro, sensor_from_json, store_event_from_json};
use crate::simulate::MalformedKind;
use crate::wire::Compression;
use crate::wire::{classify, WireValue};
use serde_json::json;

const NOW: i64 = 1_700_000_123_456;

fn service() -> ProducerService<InMemoryPublisher, InMemoryRegistry> {
    ProducerService::new(
        InMemoryPublisher::new(4),
        InMemoryRegistry::default(),
        ProducerSettings::from_contract(),
    )
}

fn parse(value: Json) -> ProduceRequest {
    serde_json::from_value(value).unwrap()
}

#[test]
fn requests_parse_from_tagged_json_with_defaults() {
    let r = parse(json!({"action": "simulate_sensors", "devices": 3, "readings_per_device": 2, "seed": 1}));
    assert_eq!(
        r,
        ProduceRequest::SimulateSensors {
            devices: 3,
            readings_per_device: 2,
            seed: 1,
            start_time_ms: None,
            interval_ms: None,
            format: None,
            compression: BodyCompression::None
        }
    );
    let r = parse(
        json!({"action": "publish_events", "schema_name": "Order", "events": [{"a": 1}], "format": "json"}),
    );
    assert!(matches!(
        r,
        ProduceRequest::PublishEvents {
            auto_register: true,
            format: Some(ValueFormat::Json),
            ..
        }
    ));
    for bad in [
        json!({"action": "simulate_sensors", "devices": 3, "readings_per_device": 2, "seed": 1, "colour": "red"}),
        json!({"action": "delete_everything"}),
        json!({"devices": 3}),
        json!({"action": "simulate_store_events", "count": -1, "seed": 1}),
        json!({"action": "simulate_sensors", "devices": 3, "readings_per_device": 2, "seed": 1, "format": "xml"}),
    ] {
        assert!(
            serde_json::from_value::<ProduceRequest>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn sensor_simulation_publishes_framed_avro_keyed_by_device() {
    let service = service();
    let request = parse(json!({
        "action": "simulate_sensors", "devices": 4, "readings_per_device": 5, "seed": 9,
        "start_time_ms": 1_000_000, "interval_ms": 500, "compression": "zlib"
    }));
    let summary = service.handle(request, NOW).await.unwrap();
    assert_eq!(summary.produced["sensor_reading"], 20);
    assert_eq!(summary.format, ValueFormat::Avro);
    assert_eq!(summary.schema_versions.len(), 1);
    let version = summary.schema_versions[0].version_id;
    let definition = service.registry().definition(version).unwrap();
    assert_eq!(definition, contracts().schemas["SensorReading"].latest_text());
    let published = service.publisher().published(&service.settings().sensor_topic);
    assert_eq!(published.len(), 20);
    let writer = apache_avro::Schema::parse_str(&definition).unwrap();
    let mut partition_of_key: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
    for (delivery, record) in &published {
        let WireValue::GlueAvro(frame) = classify(&record.value).unwrap() else {
            panic!("not framed")
        };
        assert_eq!(frame.schema_version_id, version);
        assert_eq!(frame.compression, Compression::Zlib);
        let reading = sensor_from_avro(decode_avro(&frame.avro_body().unwrap(), &writer).unwrap()).unwrap();
        assert_eq!(record.key.as_deref(), Some(reading.device_id.as_bytes()));
        assert_eq!(record.timestamp_ms, reading.event_time);
        let previous = partition_of_key.insert(record.key.clone().unwrap(), delivery.partition);
        assert!(previous.is_none() || previous == Some(delivery.partition));
    }
    let total: u64 = summary.partitions[&service.settings().sensor_topic]
        .values()
        .map(|r| r.count)
        .sum();
    assert_eq!(total, 20);
}

#[tokio::test]
async fn same_request_same_records_and_event_ids() {
    let request = parse(
        json!({"action": "simulate_sensors", "devices": 2, "readings_per_device": 3, "seed": 4, "format": "json"}),
    );
    let a = service();
    let b = service();
    let sa = a.handle(request.clone(), NOW).await.unwrap();
    let sb = b.handle(request, NOW).await.unwrap();
    assert_eq!(sa.request_fingerprint, sb.request_fingerprint);
    let topic = &a.settings().sensor_topic;
    let ra: Vec<OutgoingRecord> = a
        .publisher()
        .published(topic)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let rb: Vec<OutgoingRecord> = b
        .publisher()
        .published(topic)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    assert_eq!(ra, rb);
    let ids: std::collections::BTreeSet<&[u8]> = ra.iter().map(|r| r.headers[0].1.as_slice()).collect();
    assert_eq!(ids.len(), ra.len(), "event ids are unique within a request");
    // JSON values are what the consumer parses.
    for r in &ra {
        sensor_from_json(&r.value).unwrap();
    }
    // A different clock gives a different default start time, hence a different fingerprint.
    let c = service();
    let request = parse(
        json!({"action": "simulate_sensors", "devices": 2, "readings_per_device": 3, "seed": 4, "format": "json"}),
    );
    let sc = c.handle(request, NOW + 3_600_000).await.unwrap();
    assert_ne!(sc.request_fingerprint, sa.request_fingerprint);
}

#[tokio::test]
async fn store_simulation_counts_types_and_malformed_kinds() {
    let service = service();
    let request = parse(
        json!({"action": "simulate_store_events", "count": 100, "malformed_share": 0.2, "seed": 3, "format": "json"}),
    );
    let summary = service.handle(request, NOW).await.unwrap();
    assert_eq!(summary.malformed, 20);
    assert_eq!(summary.total_records(), 100);
    assert_eq!(
        summary.malformed_by_kind.keys().cloned().collect::<Vec<_>>(),
        MalformedKind::for_format(ValueFormat::Json)
            .iter()
            .map(|k| k.as_str().to_string())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    let published = service.publisher().published(&service.settings().store_topic);
    let decodable = published
        .iter()
        .filter(
            |(_, r)| matches!(classify(&r.value), Ok(WireValue::Json(j)) if store_event_from_json(j).is_ok()),
        )
        .count() as u64;
    assert_eq!(decodable, summary.produced.values().sum::<u64>());
    assert!(
        summary.schema_versions.is_empty(),
        "JSON does not touch the registry"
    );
}

#[tokio::test]
async fn explicit_events_register_then_reuse_then_refuse_an_incompatible_change() {
    let service = service();
    let first = parse(
        json!({"action": "publish_events", "schema_name": "Order", "key_field": "id",
        "events": [{"id": "o-1", "amount": 2.5}, {"id": "o-2", "amount": 3, "coupon": "X"}]}),
    );
    let summary = service.handle(first.clone(), NOW).await.unwrap();
    assert!(summary.schema_versions[0].newly_registered);
    assert_eq!(summary.produced["Order"], 2);
    let again = service.handle(first, NOW).await.unwrap();
    assert!(!again.schema_versions[0].newly_registered);
    assert_eq!(
        again.schema_versions[0].version_id,
        summary.schema_versions[0].version_id
    );
    let topic = service.settings().explicit_topic.clone();
    assert_eq!(service.publisher().published(&topic).len(), 4);
    assert_eq!(
        service.publisher().published(&topic)[0].1.key.as_deref(),
        Some(&b"o-1"[..])
    );

    // `amount` becomes a string: a BACKWARD-incompatible change. Nothing is published.
    let breaking = parse(json!({"action": "publish_events", "schema_name": "Order",
        "events": [{"id": "o-3", "amount": "3.10"}]}));
    let err = service.handle(breaking, NOW).await.unwrap_err();
    let message = err.to_string();
    assert!(
        matches!(
            err,
            ProduceError::Registry(RegistryWriteError::Incompatible { .. })
        ),
        "{message}"
    );
    assert!(
        message.contains("Order") && message.contains("BACKWARD"),
        "{message}"
    );
    assert_eq!(service.publisher().published(&topic).len(), 4);
    assert_eq!(service.registry().versions("Order").len(), 1);

    // Without auto-registration an unknown shape is refused, a known one is reused.
    let unknown = parse(
        json!({"action": "publish_events", "schema_name": "Order", "auto_register": false,
        "events": [{"id": "o-4", "amount": 1.0, "note": "new field"}]}),
    );
    assert!(matches!(
        service.handle(unknown, NOW).await.unwrap_err(),
        ProduceError::SchemaNotRegistered { .. }
    ));
    assert_eq!(service.publisher().published(&topic).len(), 4);
}

#[tokio::test]
async fn oversized_and_invalid_requests_are_refused_before_anything_is_published() {
    let service = service();
    let big_string = "x".repeat(limits::MAX_EVENT_BYTES);
    let cases = [
        json!({"action": "simulate_sensors", "devices": 1000, "readings_per_device": 1000, "seed": 1}),
        json!({"action": "simulate_sensors", "devices": 0, "readings_per_device": 1, "seed": 1}),
        json!({"action": "simulate_sensors", "devices": 1, "readings_per_device": 1, "seed": 1, "interval_ms": 0}),
        json!({"action": "simulate_store_events", "count": 10, "malformed_share": 1.5, "seed": 1}),
        json!({"action": "simulate_store_events", "count": 0, "seed": 1}),
        json!({"action": "publish_events", "schema_name": "E", "events": []}),
        json!({"action": "publish_events", "schema_name": "E", "events": [{"big": big_string}]}),
        json!({"action": "publish_events", "schema_name": "E", "events": [{"a": 1}], "topic": "sensor-readings"}),
        json!({"action": "publish_events", "schema_name": "E", "events": [{"a": 1}], "topic": "bad topic!"}),
        json!({"action": "publish_events", "schema_name": "E", "events": [{"a": 1}, {"a": "x"}]}),
        json!({"action": "publish_events", "schema_name": "E", "events": [{"a": 1}], "key_field": "missing"}),
        json!({"action": "publish_events", "schema_name": "9E", "events": [{"a": 1}]}),
    ];
    for case in cases {
        let err = service.handle(parse(case.clone()), NOW).await.unwrap_err();
        assert!(!err.is_transient(), "{case}: {err}");
    }
    for topic in ["sensor-readings", "store-events", "explicit-events"] {
        assert!(service.publisher().published(topic).is_empty());
    }
    assert!(service.registry().versions("E").is_empty());
}

#[tokio::test]
async fn a_partial_publish_failure_reports_what_was_delivered() {
    let service = service();
    service.publisher().fail_next_publish_after(3);
    let request = parse(
        json!({"action": "simulate_sensors", "devices": 2, "readings_per_device": 4, "seed": 1, "format": "json"}),
    );
    let err = service.handle(request, NOW).await.unwrap_err();
    assert!(err.is_transient());
    let ProduceError::Publish(publish) = &err else {
        panic!("{err}")
    };
    assert_eq!(publish.delivered_count(), 3);
    assert!(err.to_string().contains("5 of 8"), "{err}");
}

#[test]
fn offset_ranges_summarise_per_partition() {
    let ranges = offset_ranges(&[
        Delivery {
            partition: 1,
            offset: 7,
        },
        Delivery {
            partition: 0,
            offset: 3,
        },
        Delivery {
            partition: 1,
            offset: 5,
        },
    ]);
    assert_eq!(
        ranges[&1],
        OffsetRange {
            first: 5,
            last: 7,
            count: 2
        }
    );
    assert_eq!(
        ranges[&0],
        OffsetRange {
            first: 3,
            last: 3,
            count: 1
        }
    );
}

#[test]
fn event_ids_are_deterministic_and_distinct_across_a_large_generated_set() {
    let mut seen = std::collections::HashSet::new();
    let fingerprints: Vec<uuid::Uuid> = (0..1_000u64)
        .map(|request| uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, &request.to_be_bytes()))
        .collect();
    for fingerprint in &fingerprints {
        for index in 0..1_000 {
            let id = event_id(*fingerprint, index);
            assert_eq!(id, event_id(*fingerprint, index), "deterministic");
            assert!(seen.insert(id), "{fingerprint} record {index} repeats an id");
        }
    }
    // One request at the record limit.
    let largest = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"largest request");
    for index in 0..limits::MAX_SIMULATED_RECORDS as usize {
        assert!(
            seen.insert(event_id(largest, index)),
            "record {index} repeats an id"
        );
    }
    // The header is the id as text, a version-8 UUID of the RFC variant.
    let id = event_id(fingerprints[0], 7);
    assert_eq!(id.get_version_num(), 8);
    assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
    assert_eq!(event_id_header(fingerprints[0], 7), id.to_string().into_bytes());
}
