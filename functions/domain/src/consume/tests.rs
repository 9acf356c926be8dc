//! Unit tests of the per-record handler and of the batch loop over the in-memory fakes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use apache_avro::Schema;
use base64::Engine as _;
use pipeline_contracts::{contracts, schema_text, Payload};
use serde_json::json;
use uuid::Uuid;

use super::batch::{BatchError, ConsumerService, ConsumerSettings, RetryPolicy, Sinks, SINK_WINDOWS};
use super::fakes::*;
use super::ports::PoisonMessage;
use super::*;
use crate::event::{EventSource, KafkaEvent, KafkaRecord};
use crate::model::{StoreEvent, StoreEventType};
use crate::payload::{encode_avro, sensor_to_avro, store_event_to_avro, store_event_to_json};
use crate::ports::{InMemorySchemaSource, SchemaSource};
use crate::window::{WindowAggregate, WindowSpec};
use crate::wire::{frame, Compression};

mod concurrent_archive;
mod exactness;
mod fast_path;
mod recreated_topic;
mod whole_consumer_property;

const SELF_MANAGED_EXAMPLE: &str = include_str!("../../tests/fixtures/self_managed_kafka_event.json");
const MSK_EXAMPLE: &str = include_str!("../../tests/fixtures/msk_event.json");

const SENSOR_V1: Uuid = Uuid::from_u128(0x5e05_0001);
const SENSOR_V2: Uuid = Uuid::from_u128(0x5e05_0002);
const STORE_V1: Uuid = Uuid::from_u128(0x570e_0001);
const EXPLICIT_V1: Uuid = Uuid::from_u128(0x6e0e_0001);
const WRONG_TYPES: Uuid = Uuid::from_u128(0xbad_0001);
const NOT_REGISTERED: Uuid = Uuid::from_u128(0xdead);

const EXPLICIT_SCHEMA: &str = r#"{"type":"record","name":"Order","fields":[
    {"name":"order_id","type":"string"},{"name":"amount","type":"double"},
    {"name":"tags","type":{"type":"array","items":"string"}}]}"#;
const WRONG_TYPES_SCHEMA: &str = r#"{"type":"record","name":"SensorReading","fields":[
    {"name":"device_id","type":"string"},{"name":"event_time","type":"long"},
    {"name":"temperature","type":"string"}]}"#;

fn sensor_topic() -> &'static str {
    &contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::SensorReading)
        .name
}
fn store_topic() -> &'static str {
    &contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::StoreEvent)
        .name
}
fn explicit_topic() -> &'static str {
    &contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::Explicit)
        .name
}

fn schema_of(path: &str) -> Schema {
    Schema::parse_str(schema_text(path).unwrap()).unwrap()
}

fn registry() -> InMemorySchemaSource {
    let registry = InMemorySchemaSource::default();
    registry.insert(SENSOR_V1, schema_text("schemas/sensor_reading.v1.avsc").unwrap());
    registry.insert(SENSOR_V2, schema_text("schemas/sensor_reading.v2.avsc").unwrap());
    registry.insert(STORE_V1, schema_text("schemas/store_event.v1.avsc").unwrap());
    registry.insert(EXPLICIT_V1, EXPLICIT_SCHEMA);
    registry.insert(WRONG_TYPES, WRONG_TYPES_SCHEMA);
    registry
}

fn resolved() -> WriterSchemas {
    let mut schemas = WriterSchemas::new();
    for (id, text) in [
        (SENSOR_V1, schema_text("schemas/sensor_reading.v1.avsc").unwrap()),
        (SENSOR_V2, schema_text("schemas/sensor_reading.v2.avsc").unwrap()),
        (STORE_V1, schema_text("schemas/store_event.v1.avsc").unwrap()),
        (EXPLICIT_V1, EXPLICIT_SCHEMA),
        (WRONG_TYPES, WRONG_TYPES_SCHEMA),
    ] {
        schemas.insert(
            id,
            WriterSchema::Found(Arc::new(Schema::parse_str(text).unwrap())),
        );
    }
    schemas.insert(NOT_REGISTERED, WriterSchema::NotFound);
    schemas
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A record keyed `key-{offset}`, with a timestamp that follows its offset.
fn record(topic: &str, partition: i32, offset: i64, value: Option<&[u8]>) -> KafkaRecord {
    crate::event::sample::record(
        topic,
        partition,
        offset,
        1_700_000_000_000 + offset,
        Some(format!("key-{offset}").as_bytes()),
        value,
        None,
    )
}

fn event_of(records: impl IntoIterator<Item = KafkaRecord>) -> KafkaEvent {
    crate::event::sample::event(EventSource::SelfManagedKafka, records)
}

fn reading(device: &str, event_time: i64, temperature: f64) -> SensorReading {
    SensorReading {
        device_id: device.into(),
        event_time,
        temperature,
        humidity: None,
    }
}

fn sensor_avro(reading: &SensorReading, id: Uuid, path: &str, compression: Compression) -> Vec<u8> {
    let schema = schema_of(path);
    frame(
        id,
        &encode_avro(sensor_to_avro(reading, &schema), &schema).unwrap(),
        compression,
    )
}

fn store_event(n: i64, event_type: StoreEventType) -> StoreEvent {
    StoreEvent {
        request_id: Uuid::from_u128(n as u128).to_string(),
        event_type,
        store_id: (n % 7) as i32,
        cust_id: 100 + n as i32,
        category: "Camera".into(),
        sku: 100_000 + n,
        price_cents: 199 + n,
        qty: 1 + (n % 5) as i32,
        discount_hundredths: 250,
        gift_wrap: n % 2 == 0,
        variant: "red".into(),
        priority_shipping: n % 3 == 0,
        ts_micros: 1_700_000_000_000_000 + n * 3_600_000_000,
        contact_me: (n % 4 == 0).then(|| "someone@example.com".into()),
    }
}

fn store_avro(event: &StoreEvent) -> Vec<u8> {
    let schema = schema_of("schemas/store_event.v1.avsc");
    frame(
        STORE_V1,
        &encode_avro(store_event_to_avro(event), &schema).unwrap(),
        Compression::None,
    )
}

fn poison_kind(result: Result<Decoded, Box<Poison>>) -> (&'static str, String) {
    match result {
        Err(p) => (p.reason.kind(), p.reason.to_string()),
        Ok(d) => panic!("expected poison, decoded {d:?}"),
    }
}

// ------------------------------------------------------------------------------------------------
// The per-record handler

#[test]
fn documented_examples_are_routed_by_topic_and_never_dropped() {
    for example in [SELF_MANAGED_EXAMPLE, MSK_EXAMPLE] {
        let event: KafkaEvent = serde_json::from_str(example).unwrap();
        let record = event.records().next().unwrap();
        let routes = TopicRoutes::from_contract();
        // "mytopic" is not one of ours: poison with the topic named in the reason.
        let (kind, reason) = poison_kind(decode_record(
            record,
            routes.payload_for(&record.topic),
            &resolved(),
        ));
        assert_eq!(kind, "unknown_topic");
        assert!(reason.contains("mytopic"), "{reason}");
        // Routed as explicit events, the documented JSON value is a document.
        let decoded = decode_record(record, Some(Payload::Explicit), &resolved()).unwrap();
        let Decoded::Explicit(explicit) = decoded else {
            panic!()
        };
        assert_eq!(explicit.document, json!({"key": "value"}));
        assert_eq!(explicit.key_base64.as_deref(), Some("cmVjb3JkS2V5"));
        assert_eq!(explicit.coordinates.offset, 15);
        // Routed as sensor readings, it lacks the fields: the reason names the first missing one.
        let (kind, reason) = poison_kind(decode_record(record, Some(Payload::SensorReading), &resolved()));
        assert_eq!(kind, "bad_field");
        assert!(reason.contains("device_id"), "{reason}");
    }
}

/// One record of every poison kind the per-record handler knows: (case, record, payload of its
/// topic, expected [`PoisonReason::kind`]). Offsets are distinct, all on partition 0.
fn poison_cases() -> Vec<(&'static str, KafkaRecord, Option<Payload>, &'static str)> {
    let s = Some(Payload::SensorReading);
    let good = reading("dev-1", 1_700_000_000_000, 21.5);
    let good_avro = sensor_avro(
        &good,
        SENSOR_V1,
        "schemas/sensor_reading.v1.avsc",
        Compression::None,
    );
    let mut bad_base64 = record(sensor_topic(), 0, 1, None);
    bad_base64.value = Some("not*base64!".into());
    let mut unsupported = good_avro.clone();
    unsupported[1] = 0x04;
    let mut unknown_id = good_avro.clone();
    unknown_id[2..18].copy_from_slice(NOT_REGISTERED.as_bytes());
    let mut unlisted_id = good_avro.clone();
    unlisted_id[2..18].copy_from_slice(Uuid::from_u128(77).as_bytes());
    let truncated_body = &good_avro[..good_avro.len() - 3];
    let mut corrupt_zlib = sensor_avro(
        &good,
        SENSOR_V1,
        "schemas/sensor_reading.v1.avsc",
        Compression::Zlib,
    );
    let tail = corrupt_zlib.len() - 1;
    corrupt_zlib[19..tail].iter_mut().for_each(|b| *b = 0xff);
    let wrong_types_schema = Schema::parse_str(WRONG_TYPES_SCHEMA).unwrap();
    let wrong_types_avro = frame(
        WRONG_TYPES,
        &encode_avro(
            apache_avro::types::Value::Record(vec![
                ("device_id".into(), apache_avro::types::Value::String("d".into())),
                ("event_time".into(), apache_avro::types::Value::Long(1)),
                (
                    "temperature".into(),
                    apache_avro::types::Value::String("warm".into()),
                ),
            ]),
            &wrong_types_schema,
        )
        .unwrap(),
        Compression::None,
    );
    let oversized = vec![b' '; MAX_VALUE_BYTES + 10];

    vec![
        ("bad base64", bad_base64, s, "bad_base64"),
        ("null value", record(sensor_topic(), 0, 2, None), s, "null_value"),
        (
            "empty value",
            record(sensor_topic(), 0, 3, Some(b"")),
            s,
            "empty_value",
        ),
        (
            "bad JSON",
            record(sensor_topic(), 0, 4, Some(b"{\"device_id\": ")),
            s,
            "bad_json",
        ),
        (
            "JSON array",
            record(sensor_topic(), 0, 5, Some(b"[1,2]")),
            s,
            "not_a_record",
        ),
        (
            "unknown wire byte",
            record(sensor_topic(), 0, 6, Some(b"\x00\x01\x02")),
            s,
            "unknown_wire_format",
        ),
        (
            "plain text",
            record(sensor_topic(), 0, 7, Some(b"hello")),
            s,
            "unknown_wire_format",
        ),
        (
            "truncated Glue header",
            record(sensor_topic(), 0, 8, Some(&good_avro[..10])),
            s,
            "truncated_header",
        ),
        (
            "unsupported compression",
            record(sensor_topic(), 0, 9, Some(&unsupported)),
            s,
            "unsupported_compression",
        ),
        (
            "registry says not found",
            record(sensor_topic(), 0, 10, Some(&unknown_id)),
            s,
            "unknown_schema_version",
        ),
        (
            "id never resolved",
            record(sensor_topic(), 0, 11, Some(&unlisted_id)),
            s,
            "unknown_schema_version",
        ),
        (
            "truncated Avro body",
            record(sensor_topic(), 0, 12, Some(truncated_body)),
            s,
            "bad_avro",
        ),
        (
            "corrupt zlib body",
            record(sensor_topic(), 0, 13, Some(&corrupt_zlib)),
            s,
            "bad_compressed_body",
        ),
        (
            "Avro field of the wrong type",
            record(sensor_topic(), 0, 14, Some(&wrong_types_avro)),
            s,
            "bad_field",
        ),
        (
            "JSON field of the wrong type",
            record(
                sensor_topic(),
                0,
                15,
                Some(br#"{"device_id":true,"event_time":1,"temperature":1.5}"#),
            ),
            s,
            "bad_field",
        ),
        (
            "over the size limit",
            record(sensor_topic(), 0, 16, Some(&oversized)),
            s,
            "too_large",
        ),
        (
            "unrouted topic",
            record("other-topic", 0, 17, Some(b"{}")),
            None,
            "unknown_topic",
        ),
    ]
}

#[test]
fn every_edge_case_is_poison_with_its_own_reason() {
    let cases = poison_cases();
    let schemas = resolved();
    for (name, record, payload, expected) in cases {
        let poison = decode_record(&record, payload, &schemas).expect_err(name);
        assert_eq!(poison.reason.kind(), expected, "{name}: {}", poison.reason);
        // Coordinates and the raw value travel with the poison, exactly as delivered.
        assert_eq!(poison.coordinates, record.coordinates(), "{name}");
        assert_eq!(poison.raw.value, record.value, "{name}");
        assert_eq!(poison.raw.key, record.key, "{name}");
    }
}

#[test]
fn field_errors_name_the_field() {
    let schemas = resolved();
    let s = Some(Payload::SensorReading);
    let json_case = record(
        sensor_topic(),
        0,
        1,
        Some(br#"{"device_id":true,"event_time":1,"temperature":1.5}"#),
    );
    assert!(poison_kind(decode_record(&json_case, s, &schemas))
        .1
        .contains("\"device_id\""));
    let wrong_schema = Schema::parse_str(WRONG_TYPES_SCHEMA).unwrap();
    let value = apache_avro::types::Value::Record(vec![
        ("device_id".into(), apache_avro::types::Value::String("d".into())),
        ("event_time".into(), apache_avro::types::Value::Long(1)),
        (
            "temperature".into(),
            apache_avro::types::Value::String("warm".into()),
        ),
    ]);
    let avro = frame(
        WRONG_TYPES,
        &encode_avro(value, &wrong_schema).unwrap(),
        Compression::None,
    );
    let avro_case = record(sensor_topic(), 0, 2, Some(&avro));
    assert!(poison_kind(decode_record(&avro_case, s, &schemas))
        .1
        .contains("\"temperature\""));
}

#[test]
fn valid_values_decode_in_every_wire_form() {
    let schemas = resolved();
    let with_humidity = SensorReading {
        humidity: Some(55.5),
        ..reading("dev-2", 1_700_000_000_500, -4.25)
    };
    let forms: Vec<(Vec<u8>, SensorReading)> = vec![
        (serde_json::to_vec(&with_humidity).unwrap(), with_humidity.clone()),
        (
            sensor_avro(
                &with_humidity,
                SENSOR_V2,
                "schemas/sensor_reading.v2.avsc",
                Compression::None,
            ),
            with_humidity.clone(),
        ),
        (
            sensor_avro(
                &with_humidity,
                SENSOR_V2,
                "schemas/sensor_reading.v2.avsc",
                Compression::Zlib,
            ),
            with_humidity.clone(),
        ),
        (
            sensor_avro(
                &with_humidity,
                SENSOR_V1,
                "schemas/sensor_reading.v1.avsc",
                Compression::None,
            ),
            SensorReading {
                humidity: None,
                ..with_humidity.clone()
            },
        ),
    ];
    for (i, (value, expected)) in forms.into_iter().enumerate() {
        let r = record(sensor_topic(), 1, i as i64, Some(&value));
        let decoded = decode_record(&r, Some(Payload::SensorReading), &schemas).unwrap();
        assert_eq!(
            decoded,
            Decoded::Sensor {
                coordinates: r.coordinates(),
                reading: expected
            },
            "form {i}"
        );
    }

    let store = store_event(4, StoreEventType::Sales);
    for value in [
        store_avro(&store),
        serde_json::to_vec(&store_event_to_json(&store)).unwrap(),
    ] {
        let r = record(store_topic(), 0, 9, Some(&value));
        let decoded = decode_record(&r, Some(Payload::StoreEvent), &schemas).unwrap();
        assert_eq!(
            decoded,
            Decoded::Store {
                coordinates: r.coordinates(),
                event: store.clone()
            }
        );
    }

    let explicit_schema = Schema::parse_str(EXPLICIT_SCHEMA).unwrap();
    let order = apache_avro::types::Value::Record(vec![
        ("order_id".into(), apache_avro::types::Value::String("o-1".into())),
        ("amount".into(), apache_avro::types::Value::Double(12.5)),
        (
            "tags".into(),
            apache_avro::types::Value::Array(vec![apache_avro::types::Value::String("x".into())]),
        ),
    ]);
    let framed = frame(
        EXPLICIT_V1,
        &encode_avro(order, &explicit_schema).unwrap(),
        Compression::Zlib,
    );
    let r = record(explicit_topic(), 1, 3, Some(&framed));
    let Decoded::Explicit(explicit) = decode_record(&r, Some(Payload::Explicit), &schemas).unwrap() else {
        panic!()
    };
    assert_eq!(
        explicit.document,
        json!({"order_id": "o-1", "amount": 12.5, "tags": ["x"]})
    );
    assert_eq!(explicit.schema_version_id, Some(EXPLICIT_V1));
    assert_eq!(explicit.format, ValueFormat::GlueAvro);
    assert_eq!(glue_schema_version_id(&r), Some(EXPLICIT_V1));
    assert_eq!(
        glue_schema_version_id(&record(explicit_topic(), 0, 0, Some(b"{}"))),
        None
    );
}

#[test]
fn values_a_sink_would_reject_are_poison_up_front() {
    let schemas = resolved();
    let mut cases: Vec<(StoreEvent, &str)> = Vec::new();
    let mut e = store_event(1, StoreEventType::Sales);
    e.price_cents = 1_000_000_000_000;
    cases.push((e, "price"));
    let mut e = store_event(1, StoreEventType::Sales);
    e.discount_hundredths = -100_000;
    cases.push((e, "discount"));
    let mut e = store_event(1, StoreEventType::Inventory);
    e.category = "Cam\0era".into();
    cases.push((e, "category"));
    let mut e = store_event(1, StoreEventType::Inventory);
    e.ts_micros = i64::MIN;
    cases.push((e, "ts"));
    for (event, field) in cases {
        let value = serde_json::to_vec(&store_event_to_json(&event)).unwrap();
        let (kind, reason) = poison_kind(decode_record(
            &record(store_topic(), 0, 1, Some(&value)),
            Some(Payload::StoreEvent),
            &schemas,
        ));
        assert_eq!(kind, "bad_field");
        assert!(reason.contains(&format!("\"{field}\"")), "{reason}");
    }
    // The largest price NUMERIC(12,2) holds is fine.
    let mut e = store_event(1, StoreEventType::Sales);
    e.price_cents = 999_999_999_999;
    let value = serde_json::to_vec(&store_event_to_json(&e)).unwrap();
    assert!(decode_record(
        &record(store_topic(), 0, 1, Some(&value)),
        Some(Payload::StoreEvent),
        &schemas
    )
    .is_ok());

    for document in [r#"{"x": 1e300}"#, r#"{"": 1}"#, r#"{"a": 1e-200}"#] {
        let r = record(explicit_topic(), 0, 1, Some(document.as_bytes()));
        let (kind, _) = poison_kind(decode_record(&r, Some(Payload::Explicit), &schemas));
        assert_eq!(kind, "bad_field", "{document}");
    }
    let deep = format!("{}1{}", "[".repeat(40), "]".repeat(40));
    let r = record(explicit_topic(), 0, 1, Some(deep.as_bytes()));
    assert_eq!(
        poison_kind(decode_record(&r, Some(Payload::Explicit), &schemas)).0,
        "bad_field"
    );
    let long_device = serde_json::to_vec(&reading(&"d".repeat(2000), 1, 1.0)).unwrap();
    let r = record(sensor_topic(), 0, 1, Some(&long_device));
    assert_eq!(
        poison_kind(decode_record(&r, Some(Payload::SensorReading), &schemas)).0,
        "bad_field"
    );
}

// ------------------------------------------------------------------------------------------------
// The batch loop

type FakeService = ConsumerService<
    InMemorySchemaSource,
    InMemoryWindowStore,
    InMemoryObjectStore,
    InMemoryStoreEventTable,
    InMemoryExplicitEventStore,
    InMemoryPoisonSink,
>;

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
    }
}

fn service() -> FakeService {
    service_with(TopicRoutes::from_contract(), |_| {})
}

fn service_tuned(tune: impl FnOnce(&mut ConsumerSettings)) -> FakeService {
    service_with(TopicRoutes::from_contract(), tune)
}

fn service_with_routes(routes: TopicRoutes) -> FakeService {
    service_with(routes, |_| {})
}

fn service_with(routes: TopicRoutes, tune: impl FnOnce(&mut ConsumerSettings)) -> FakeService {
    let mut settings = ConsumerSettings::new(
        routes,
        WindowSpec::from_seconds(60).unwrap(),
        contracts().bucket.store_events_prefix.clone(),
    );
    settings.retry = fast_retry();
    // These tests use small synthetic event times; the plausibility bound has its own tests.
    settings.event_times = None;
    tune(&mut settings);
    ConsumerService::new(
        registry(),
        Sinks {
            windows: InMemoryWindowStore::default(),
            archive: InMemoryObjectStore::default(),
            table: InMemoryStoreEventTable::default(),
            explicit: InMemoryExplicitEventStore::default(),
            poison: InMemoryPoisonSink::default(),
        },
        settings,
    )
}

#[derive(Debug, PartialEq)]
struct Snapshot {
    windows: BTreeMap<crate::window::WindowKey, WindowAggregate>,
    objects: BTreeMap<String, Vec<u8>>,
    rows: BTreeMap<RecordCoordinates, StoreEvent>,
    explicit: BTreeMap<RecordCoordinates, ExplicitEvent>,
    poison: Vec<PoisonMessage>,
}

fn snapshot(service: &FakeService) -> Snapshot {
    let sinks = service.sinks();
    Snapshot {
        windows: sinks.windows.snapshot(),
        objects: sinks.archive.snapshot(),
        rows: sinks.table.snapshot(),
        explicit: sinks.explicit.snapshot(),
        poison: {
            let mut p = sinks.poison.snapshot();
            p.sort_by_key(|m| m.coordinates());
            p
        },
    }
}

/// Deterministic xorshift for reproducible random batches.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A stream of records over all topics and several partitions, with some poison mixed in.
fn stream(seed: u64, len: usize) -> Vec<KafkaRecord> {
    let mut rng = Rng::new(seed);
    let mut next_offset: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut out = Vec::new();
    for i in 0..len {
        let kind = rng.below(10);
        let (topic, partition, value): (&str, i32, Option<Vec<u8>>) = match kind {
            0..=4 => {
                let device = rng.below(6);
                let reading = reading(
                    &format!("dev-{device}"),
                    1_700_000_000_000 + rng.below(300_000) as i64 - 60_000,
                    (rng.below(60_000) as f64) / 1000.0 - 20.0 + 0.0001,
                );
                let value = match rng.below(3) {
                    0 => serde_json::to_vec(&reading).unwrap(),
                    1 => sensor_avro(
                        &reading,
                        SENSOR_V1,
                        "schemas/sensor_reading.v1.avsc",
                        Compression::None,
                    ),
                    _ => sensor_avro(
                        &reading,
                        SENSOR_V2,
                        "schemas/sensor_reading.v2.avsc",
                        Compression::Zlib,
                    ),
                };
                // Keyed by device: one device stays on one partition.
                (sensor_topic(), (device % 3) as i32, Some(value))
            }
            5..=7 => {
                let event = store_event(
                    i as i64,
                    if rng.below(2) == 0 {
                        StoreEventType::Sales
                    } else {
                        StoreEventType::Inventory
                    },
                );
                let value = if rng.below(2) == 0 {
                    store_avro(&event)
                } else {
                    serde_json::to_vec(&store_event_to_json(&event)).unwrap()
                };
                (store_topic(), rng.below(2) as i32, Some(value))
            }
            8 => (
                explicit_topic(),
                rng.below(2) as i32,
                Some(format!(r#"{{"n": {i}, "label": "e{i}"}}"#).into_bytes()),
            ),
            _ => {
                let garbage: Option<Vec<u8>> = match rng.below(3) {
                    0 => Some(b"\x03\x00short".to_vec()),
                    1 => None,
                    _ => Some(b"{not json".to_vec()),
                };
                (sensor_topic(), rng.below(3) as i32, garbage)
            }
        };
        let offset = next_offset.entry((topic.to_string(), partition)).or_insert(0);
        // Offsets are sparse sometimes (compaction, transaction markers).
        *offset += 1 + rng.below(2) as i64;
        out.push(record(topic, partition, *offset, value.as_deref()));
    }
    out
}

/// Splits a stream into in-order batches per partition, the way the ESM delivers them.
fn batches(records: &[KafkaRecord], rng: &mut Rng) -> Vec<Vec<KafkaRecord>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let end = (at + 1 + rng.below(25) as usize).min(records.len());
        out.push(records[at..end].to_vec());
        at = end;
    }
    out
}

/// The ESM's behaviour: redeliver a failed batch until it succeeds.
async fn deliver(service: &FakeService, batch: Vec<KafkaRecord>) {
    let event = event_of(batch);
    for _ in 0..50 {
        if service.process(&event).await.is_ok() {
            return;
        }
    }
    panic!("batch never succeeded");
}

/// Aggregates computed straight from the records, without the domain merge.
fn expected_windows(records: &[KafkaRecord]) -> BTreeMap<(String, i64), (u64, i128, i64, i64)> {
    let mut out: BTreeMap<(String, i64), (u64, i128, i64, i64)> = BTreeMap::new();
    for r in records.iter().filter(|r| r.topic == sensor_topic()) {
        let Ok(bytes) = r.value_bytes() else { continue };
        let reading = if bytes.first() == Some(&b'{') {
            match serde_json::from_slice::<SensorReading>(&bytes) {
                Ok(reading) => reading,
                Err(_) => continue,
            }
        } else {
            let Ok(WireValue::GlueAvro(frame)) = classify(&bytes) else {
                continue;
            };
            let schema = if frame.schema_version_id == SENSOR_V1 {
                schema_of("schemas/sensor_reading.v1.avsc")
            } else {
                schema_of("schemas/sensor_reading.v2.avsc")
            };
            let Ok(body) = frame.avro_body() else { continue };
            let decoded = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
                .build()
                .and_then(|reader| reader.read_value(&mut &body[..]));
            match decoded {
                Ok(apache_avro::types::Value::Record(fields)) => {
                    let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
                    let (
                        Some(apache_avro::types::Value::String(device_id)),
                        Some(apache_avro::types::Value::TimestampMillis(event_time)),
                        Some(apache_avro::types::Value::Double(temperature)),
                    ) = (get("device_id"), get("event_time"), get("temperature"))
                    else {
                        continue;
                    };
                    reading(&device_id, event_time, temperature)
                }
                _ => continue,
            }
        };
        let start = reading.event_time.div_euclid(60_000) * 60_000;
        let milli = (reading.temperature * 1000.0).round() as i64;
        let entry = out
            .entry((reading.device_id.clone(), start))
            .or_insert((0, 0, i64::MAX, i64::MIN));
        entry.0 += 1;
        entry.1 += i128::from(milli);
        entry.2 = entry.2.min(milli);
        entry.3 = entry.3.max(milli);
    }
    out
}

/// The repository's contract with one more topic of an existing payload kind, as a team would add it.
fn contract_with_a_fourth_topic() -> pipeline_contracts::Contracts {
    let mut raw: serde_json::Value = serde_json::from_str(pipeline_contracts::PIPELINE_JSON).unwrap();
    let mut extra = raw["topics"]["sensorReadings"].clone();
    extra["name"] = "sensor-readings-eu".into();
    extra["envVar"] = "SENSOR_EU_TOPIC".into();
    extra["consumerGroup"] = "pipeline-sensor-readings-eu".into();
    raw["topics"]["sensorReadingsEu"] = extra;
    pipeline_contracts::Contracts::from_json(&raw.to_string()).unwrap()
}

#[tokio::test]
async fn a_fourth_topic_of_an_existing_payload_kind_is_routed_to_that_kinds_sink() {
    let contract = contract_with_a_fourth_topic();
    let routes =
        TopicRoutes::from_topics(contract.topics.all().map(|t| (t.name.clone(), t.payload))).unwrap();
    assert_eq!(
        routes.payload_for("sensor-readings-eu"),
        Some(Payload::SensorReading)
    );
    let service = service_with_routes(routes);
    let good = reading("dev-eu", 1_700_000_010_000, 21.5);
    let records = vec![
        record(
            "sensor-readings-eu",
            0,
            1,
            Some(&serde_json::to_vec(&good).unwrap()),
        ),
        record(
            sensor_topic(),
            0,
            1,
            Some(&serde_json::to_vec(&reading("dev-1", 1_700_000_010_000, 20.0)).unwrap()),
        ),
    ];
    let summary = service.process(&event_of(records)).await.unwrap();
    assert_eq!(summary.poison, 0, "{:?}", summary.poison_by_reason);
    assert_eq!(summary.sensor_readings, 2);
    let state = snapshot(&service);
    let eu = state.windows.values().find(|a| a.device_id == "dev-eu").unwrap();
    assert_eq!(eu.count, 1);
    assert_eq!(eu.applied.keys().collect::<Vec<_>>(), ["sensor-readings-eu-0"]);
}

#[test]
fn one_topic_routed_to_two_payload_kinds_is_refused() {
    let conflict = TopicRoutes::from_topics([
        ("t".to_string(), Payload::SensorReading),
        ("t".to_string(), Payload::Explicit),
    ])
    .unwrap_err();
    assert_eq!(conflict.topic, "t");
    assert!(TopicRoutes::from_topics([
        ("t".to_string(), Payload::StoreEvent),
        ("t".to_string(), Payload::StoreEvent),
    ])
    .is_ok());
}

#[tokio::test]
async fn poison_in_one_partition_does_not_block_the_rest_and_loses_nothing() {
    let service = service();
    let good = reading("dev-1", 1_700_000_010_000, 20.0);
    let records = vec![
        record(sensor_topic(), 0, 5, Some(&serde_json::to_vec(&good).unwrap())),
        record(sensor_topic(), 0, 6, Some(b"{broken")),
        record(
            sensor_topic(),
            0,
            7,
            Some(&serde_json::to_vec(&reading("dev-1", 1_700_000_020_000, 22.0)).unwrap()),
        ),
        record(
            sensor_topic(),
            1,
            3,
            Some(&serde_json::to_vec(&reading("dev-2", 1_700_000_010_000, 5.0)).unwrap()),
        ),
        record(
            store_topic(),
            2,
            40,
            Some(&store_avro(&store_event(1, StoreEventType::Sales))),
        ),
        record(store_topic(), 2, 41, Some(b"\x07garbage")),
        record("unlisted", 0, 1, Some(b"{}")),
    ];
    let mut with_headers = records.clone();
    with_headers[1].headers = Some(vec![BTreeMap::from([("h".to_string(), vec![-61, -87])])]);
    let summary = service.process(&event_of(with_headers.clone())).await.unwrap();
    assert_eq!(summary.records, 7);
    assert_eq!(summary.poison, 3);
    assert_eq!(summary.sensor_readings, 3);
    assert_eq!(summary.store_events, 1);
    assert_eq!(summary.windows_written, 2);
    assert_eq!(
        summary.poison_by_reason,
        BTreeMap::from([
            ("bad_json".into(), 1),
            ("unknown_topic".into(), 1),
            ("unknown_wire_format".into(), 1)
        ])
    );

    let state = snapshot(&service);
    let dev1 = state.windows.values().find(|a| a.device_id == "dev-1").unwrap();
    assert_eq!((dev1.count, dev1.sum_milli), (2, 42_000));
    assert_eq!(dev1.applied[&format!("{}-0", sensor_topic())].to_string(), "5,7");
    assert_eq!(state.rows.len(), 1);
    assert_eq!(state.objects.len(), 1);
    let poison = &state.poison;
    assert_eq!(poison.len(), 3);
    let broken = poison.iter().find(|m| m.offset == 6).unwrap();
    assert_eq!((broken.topic.as_str(), broken.partition), (sensor_topic(), 0));
    assert_eq!(broken.reason_kind, "bad_json");
    assert_eq!(broken.value_base64.as_deref(), Some(b64(b"{broken").as_str()));
    assert_eq!(broken.headers, with_headers[1].headers);
    assert_eq!(broken.deduplication_id(), format!("{}-0-6", sensor_topic()));
    assert_eq!(broken.group_id(), format!("{}-0", sensor_topic()));

    // Replay: nothing changes, nothing is written again.
    let before = snapshot(&service);
    let puts = service.sinks().archive.puts();
    let again = service.process(&event_of(with_headers)).await.unwrap();
    assert_eq!(snapshot(&service), before);
    assert_eq!(again.windows_written, 0);
    assert_eq!(again.archive_objects_written, 0);
    assert_eq!(again.rows_inserted, 0);
    assert_eq!(service.sinks().archive.puts(), puts);
}

#[tokio::test]
async fn whole_and_random_partial_replays_leave_every_sink_identical() {
    for seed in 1..=12u64 {
        let records = stream(seed, 220);
        let mut rng = Rng::new(seed + 1000);

        let reference = service();
        deliver(&reference, records.clone()).await;
        let expected = snapshot(&reference);

        // Independent ground truth for the windows.
        let truth = expected_windows(&records);
        let actual: BTreeMap<_, _> = expected
            .windows
            .values()
            .map(|a| {
                (
                    (a.device_id.clone(), a.window_start_ms),
                    (a.count, a.sum_milli, a.min_milli, a.max_milli),
                )
            })
            .collect();
        assert_eq!(actual, truth, "seed {seed}: windows differ from the raw records");

        let subject = service();
        let delivered = batches(&records, &mut rng);
        for (i, batch) in delivered.iter().enumerate() {
            deliver(&subject, batch.clone()).await;
            // Replay an earlier batch whole, then a random part of one (not necessarily contiguous).
            let earlier = &delivered[rng.below(i as u64 + 1) as usize];
            deliver(&subject, earlier.clone()).await;
            let part: Vec<KafkaRecord> = delivered[rng.below(i as u64 + 1) as usize]
                .iter()
                .filter(|_| rng.below(2) == 0)
                .cloned()
                .collect();
            if !part.is_empty() {
                deliver(&subject, part).await;
            }
        }
        assert_eq!(snapshot(&subject), expected, "seed {seed}");
        // The ledgers too: what a partial answer committed is never delivered again, so it must
        // be entered before the answer, or the lowest mark stays above it for good.
        assert_eq!(
            subject.sinks().explicit.ledgers(),
            reference.sinks().explicit.ledgers(),
            "seed {seed}: ledgers"
        );
    }
}

#[tokio::test]
async fn batches_that_fail_half_way_converge_on_redelivery() {
    for seed in 1..=8u64 {
        let records = stream(seed + 50, 200);
        let reference = service();
        deliver(&reference, records.clone()).await;
        let expected = snapshot(&reference);

        let subject = service();
        let sinks = subject.sinks();
        sinks.windows.faults.fail_randomly(seed, 300);
        sinks.archive.faults.fail_randomly(seed + 1, 300);
        sinks.table.faults.fail_randomly(seed + 2, 300);
        sinks.explicit.faults.fail_randomly(seed + 3, 300);
        sinks.poison.faults.fail_randomly(seed + 4, 300);
        let mut rng = Rng::new(seed);
        for batch in batches(&records, &mut rng) {
            deliver(&subject, batch).await;
        }
        assert_eq!(snapshot(&subject), expected, "seed {seed}");
    }
}

#[tokio::test]
async fn transient_sink_errors_are_retried_then_fail_the_invocation() {
    let service = service();
    let records = stream(7, 60);
    // Two transient failures fit into three attempts.
    service.sinks().windows.faults.fail_next(2);
    service.process(&event_of(records.clone())).await.unwrap();

    let service2 = self::service();
    service2.sinks().windows.faults.fail_always();
    let error = service2.process(&event_of(records.clone())).await.unwrap_err();
    let BatchError::Sinks(failures) = &error else {
        panic!("{error}")
    };
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].sink, SINK_WINDOWS);
    assert!(failures[0].error.is_transient());
    // The other sinks did their part; the redelivery after recovery completes the batch.
    assert!(!service2.sinks().table.snapshot().is_empty());
    assert!(service2.sinks().windows.snapshot().is_empty());
    service2.sinks().windows.faults.clear();
    service2.process(&event_of(records)).await.unwrap();
    assert_eq!(snapshot(&service2), snapshot(&service));
}

/// A registry that is down for the first `failures` lookups.
struct FlakyRegistry {
    inner: InMemorySchemaSource,
    failures: AtomicU32,
}

impl SchemaSource for FlakyRegistry {
    async fn schema_version(&self, version_id: Uuid) -> Result<crate::ports::SchemaVersion, PortError> {
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(PortError::Transient {
                component: "schema registry",
                message: "throttled".into(),
            });
        }
        self.inner.schema_version(version_id).await
    }
}

use crate::ports::PortError;

#[tokio::test]
async fn a_registry_outage_fails_the_batch_instead_of_poisoning_it() {
    let flaky = |failures| {
        let mut settings = ConsumerSettings::new(
            TopicRoutes::from_contract(),
            WindowSpec::from_seconds(60).unwrap(),
            "p/",
        );
        settings.retry = fast_retry();
        settings.event_times = None;
        ConsumerService::new(
            FlakyRegistry {
                inner: registry(),
                failures: AtomicU32::new(failures),
            },
            Sinks {
                windows: InMemoryWindowStore::default(),
                archive: InMemoryObjectStore::default(),
                table: InMemoryStoreEventTable::default(),
                explicit: InMemoryExplicitEventStore::default(),
                poison: InMemoryPoisonSink::default(),
            },
            settings,
        )
    };
    let good = sensor_avro(
        &reading("d", 1, 1.0),
        SENSOR_V1,
        "schemas/sensor_reading.v1.avsc",
        Compression::None,
    );
    let event = event_of([record(sensor_topic(), 0, 1, Some(&good))]);

    let down = flaky(100);
    let error = down.process(&event).await.unwrap_err();
    assert!(
        matches!(error, BatchError::SchemaRegistry(PortError::Transient { .. })),
        "{error}"
    );
    assert!(
        down.sinks().poison.snapshot().is_empty(),
        "an outage must not poison records"
    );
    assert!(down.sinks().windows.snapshot().is_empty());

    let recovering = flaky(2);
    let summary = recovering.process(&event).await.unwrap();
    assert_eq!((summary.poison, summary.windows_written), (0, 1));
    // The schema is cached: the next batch needs no lookup even if the registry is down again.
    recovering
        .schema_cache()
        .source()
        .failures
        .store(100, Ordering::SeqCst);
    let event2 = event_of([record(sensor_topic(), 0, 2, Some(&good))]);
    assert_eq!(recovering.process(&event2).await.unwrap().windows_written, 1);

    // "Not found" is an answer, not an outage: the record is poison and the batch succeeds.
    let mut unknown = good.clone();
    unknown[2..18].copy_from_slice(NOT_REGISTERED.as_bytes());
    let event3 = event_of([record(sensor_topic(), 0, 3, Some(&unknown))]);
    let summary = flaky(0).process(&event3).await.unwrap();
    assert_eq!(summary.poison_by_reason["unknown_schema_version"], 1);
}

#[tokio::test]
async fn a_lost_write_race_is_re_read_and_re_merged() {
    let service = service();
    let first = event_of([record(
        sensor_topic(),
        0,
        1,
        Some(&serde_json::to_vec(&reading("d", 1_000, 10.0)).unwrap()),
    )]);
    service.process(&first).await.unwrap();
    let stored = service.sinks().windows.snapshot().into_values().next().unwrap();

    // Another invocation (say, of partition 1) adds a reading between our read and our write.
    let mut other = stored.clone();
    other.count += 1;
    other.sum_milli += 30_000;
    other.max_milli = 30_000;
    other.applied.insert(
        format!("{}-1", sensor_topic()),
        crate::offsets::OffsetSet::from_offsets([9]),
    );
    service.sinks().windows.interfere(other);

    let second = event_of([record(
        sensor_topic(),
        0,
        2,
        Some(&serde_json::to_vec(&reading("d", 2_000, 20.0)).unwrap()),
    )]);
    service.process(&second).await.unwrap();
    let merged = service.sinks().windows.snapshot().into_values().next().unwrap();
    assert_eq!(merged.count, 3);
    assert_eq!(merged.sum_milli, 60_000);
    assert_eq!(merged.applied.len(), 2);
}

#[tokio::test]
async fn readings_outside_the_window_range_are_poison() {
    let service = service();
    let event = event_of([
        record(
            sensor_topic(),
            0,
            1,
            Some(&serde_json::to_vec(&reading("d", i64::MAX, 1.0)).unwrap()),
        ),
        record(
            sensor_topic(),
            0,
            2,
            Some(&serde_json::to_vec(&reading("d", 5, 1.0)).unwrap()),
        ),
    ]);
    let summary = service.process(&event).await.unwrap();
    assert_eq!(summary.poison_by_reason["unplaceable_in_window"], 1);
    assert_eq!(summary.sensor_readings, 1);
    assert_eq!(service.sinks().poison.snapshot()[0].offset, 1);
}

#[test]
fn poison_ids_fit_sqs_limits() {
    let long_topic = "t".repeat(200);
    let poison = decode_record(
        &record(&long_topic, 3, 9, Some(b"x")),
        None,
        &WriterSchemas::new(),
    )
    .unwrap_err();
    let message = PoisonMessage::from_poison(&poison);
    assert!(message.deduplication_id().len() <= 128);
    assert!(message.group_id().len() <= 128);
    let ids: BTreeSet<String> = (0..3)
        .map(|o| {
            let mut m = message.clone();
            m.offset = o;
            m.deduplication_id()
        })
        .collect();
    assert_eq!(ids.len(), 3, "digests stay distinct per offset");
}

mod limits;

/// A mapping with ReportBatchItemFailures: a partial answer has the named partitions delivered
/// again from their offsets, the rest committed; any other failure retries the whole batch.
/// Returns how many partial answers it took.
async fn deliver_partially(service: &FakeService, batch: Vec<KafkaRecord>) -> usize {
    let mut event = event_of(batch);
    let mut partial_answers = 0;
    for _ in 0..50 {
        let failure = match service.process_reporting(&event).await {
            Ok(_) => return partial_answers,
            Err(failure) => failure,
        };
        if let Some(response) = failure.partial_response() {
            partial_answers += 1;
            let from: BTreeMap<String, i64> = response
                .batch_item_failures
                .iter()
                .map(|f| (f.item_identifier.partition.clone(), f.item_identifier.offset))
                .collect();
            let rest: Vec<KafkaRecord> = event
                .records()
                .filter(|r| {
                    from.get(&r.coordinates().topic_partition())
                        .is_some_and(|o| r.offset >= *o)
                })
                .cloned()
                .collect();
            assert!(!rest.is_empty(), "a partial answer names records of the batch");
            event = event_of(rest);
        }
    }
    panic!("batch never succeeded");
}

#[tokio::test]
async fn partial_batch_responses_under_random_sink_outages_store_exactly_what_a_clean_run_does() {
    for seed in [3u64, 17, 29, 41] {
        let records = stream(seed, 220);
        let reference = service();
        deliver(&reference, records.clone()).await;
        let expected = snapshot(&reference);

        // Small chunks: a failure part-way leaves earlier chunks stored.
        let subject = service_tuned(|s| s.max_chunk_bytes = 2_000);
        let sinks = subject.sinks();
        sinks.windows.faults.fail_randomly(seed, 300);
        sinks.archive.faults.fail_randomly(seed + 1, 300);
        sinks.table.faults.fail_randomly(seed + 2, 300);
        sinks.explicit.faults.fail_randomly(seed + 3, 300);
        sinks.poison.faults.fail_randomly(seed + 4, 300);
        let mut rng = Rng::new(seed);
        let mut partial_answers = 0;
        for batch in batches(&records, &mut rng) {
            partial_answers += deliver_partially(&subject, batch).await;
        }
        assert!(
            partial_answers > 0,
            "seed {seed}: no partial answer was exercised"
        );
        assert_eq!(snapshot(&subject), expected, "seed {seed}");
    }
}

#[tokio::test]
async fn a_poison_queue_outage_redelivers_only_the_partition_holding_poison() {
    let topic = explicit_topic();
    let mut records: Vec<KafkaRecord> = (1..=4)
        .map(|o| record(topic, 0, o, Some(format!(r#"{{"n": {o}}}"#).as_bytes())))
        .collect();
    records.push(record(topic, 1, 7, Some(br#"{"n": 7}"#)));
    records.push(record(topic, 1, 8, Some(b"{not json")));
    records.push(record(topic, 1, 9, Some(br#"{"n": 9}"#)));
    let service = service();
    service.sinks().poison.faults.fail_always();
    let failure = service
        .process_reporting(&event_of(records.clone()))
        .await
        .unwrap_err();
    assert!(matches!(failure.error, BatchError::Sinks(_)), "{}", failure.error);
    let response = failure
        .partial_response()
        .expect("a sink failure after some records were stored");
    assert_eq!(
        serde_json::to_value(&response).unwrap(),
        json!({ "batchItemFailures": [
            { "itemIdentifier": { "partition": format!("{topic}-1"), "offset": 8 } }
        ] })
    );
    // Everything else is stored: the explicit events of both partitions.
    assert_eq!(service.sinks().explicit.snapshot().len(), 6);
    // The whole-batch answer still fails the invocation, as before.
    assert!(service.process(&event_of(records)).await.is_err());
}

#[tokio::test]
async fn a_registry_outage_fails_the_whole_batch_not_a_partial_answer() {
    let mut settings = ConsumerSettings::new(
        TopicRoutes::from_contract(),
        WindowSpec::from_seconds(60).unwrap(),
        "p/",
    );
    settings.retry = fast_retry();
    settings.event_times = None;
    let service = ConsumerService::new(
        FlakyRegistry {
            inner: registry(),
            failures: AtomicU32::new(u32::MAX),
        },
        Sinks {
            windows: InMemoryWindowStore::default(),
            archive: InMemoryObjectStore::default(),
            table: InMemoryStoreEventTable::default(),
            explicit: InMemoryExplicitEventStore::default(),
            poison: InMemoryPoisonSink::default(),
        },
        settings,
    );
    let value = sensor_avro(
        &reading("dev-1", 1_700_000_000_000, 20.5),
        SENSOR_V1,
        "schemas/sensor_reading.v1.avsc",
        Compression::None,
    );
    let failure = service
        .process_reporting(&event_of([record(sensor_topic(), 0, 1, Some(&value))]))
        .await
        .unwrap_err();
    assert!(matches!(failure.error, BatchError::SchemaRegistry(_)));
    assert_eq!(failure.partial_response(), None);
}

/// What a partial answer commits is never delivered again, so it must be in the ledger before
/// the answer: otherwise the partition's lowest mark stays above those records for good.
#[tokio::test]
async fn a_partial_answer_enters_what_it_commits_in_the_ledger() {
    let records = stream(7, 160);
    let event = event_of(records);
    let first_offsets: BTreeMap<String, i64> = event
        .records
        .iter()
        .map(|(key, records)| (key.clone(), records[0].offset))
        .collect();
    for seed in 1..400u64 {
        let subject = service_tuned(|s| s.max_chunk_bytes = 2_000);
        subject.sinks().windows.faults.fail_randomly(seed, 350);
        let Err(failure) = subject.process_reporting(&event).await else {
            continue;
        };
        let Some(partial) = failure.partial_response() else {
            continue;
        };
        let resume: BTreeMap<String, i64> = partial
            .batch_item_failures
            .iter()
            .map(|f| (f.item_identifier.partition.clone(), f.item_identifier.offset))
            .collect();
        let ledgers = subject.sinks().explicit.ledgers();
        let committed_something = first_offsets
            .iter()
            .any(|(key, first)| resume.get(key).is_none_or(|from| from > first));
        if !committed_something {
            continue;
        }
        for (key, first) in &first_offsets {
            if resume.get(key).is_none_or(|from| from > first) {
                let ledger = ledgers
                    .get(key)
                    .unwrap_or_else(|| panic!("seed {seed}: {key} committed but has no ledger"));
                assert_eq!(ledger.lowest.offset, *first, "seed {seed}: {key}");
            }
        }
        return;
    }
    panic!("no seed gave a partial answer that commits part of the batch");
}
