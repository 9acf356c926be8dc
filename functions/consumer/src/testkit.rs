//! Building ESM events from encoded records, the way the event source mapping delivers them, and
//! the `cargo lambda invoke` fixtures in `functions/consumer/events/`. Used by the fixture
//! generator (`examples/generate_events.rs`) and the tests.

use std::collections::BTreeMap;

use pipeline_contracts::contracts;
use pipeline_domain::event::{signed_header_values, EventSource, KafkaEvent, KafkaRecord};
use pipeline_domain::model::{SensorReading, StoreEvent, StoreEventType};
use pipeline_domain::payload::{encode_avro, sensor_to_avro, store_event_to_avro, store_event_to_json};
use pipeline_domain::wire::{frame, Compression};
use uuid::Uuid;

/// Records and events as the mapping delivers them (one home: the domain's test support).
pub use pipeline_domain::event::sample::{event, record};

/// The invocation body Lambda would send for `event`.
pub fn body(event: &KafkaEvent) -> Vec<u8> {
    serde_json::to_vec(event).expect("a KafkaEvent always serializes")
}

/// Glue schema version ids the Avro fixtures are framed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FixtureSchemaIds {
    pub sensor_v1: Uuid,
    pub sensor_v2: Uuid,
    pub store_v1: Uuid,
    pub explicit_order: Uuid,
}

/// The writer schema of the explicit-event fixtures (not a contract schema: explicit events bring
/// their own, as the producer infers and registers them).
pub const EXPLICIT_ORDER_SCHEMA: &str = r#"{"type":"record","name":"ExplicitOrder","namespace":"com.example.explicit","fields":[{"name":"order_id","type":"string"},{"name":"amount","type":"double"},{"name":"items","type":{"type":"array","items":"string"}},{"name":"express","type":"boolean"}]}"#;

/// Registry subject of [`EXPLICIT_ORDER_SCHEMA`].
pub const EXPLICIT_ORDER_SCHEMA_NAME: &str = "ExplicitOrder";

impl FixtureSchemaIds {
    /// Stable placeholder ids (UUID v5 of the schema file), used by the committed fixtures.
    pub fn placeholders() -> Self {
        let id = |name: &str| {
            Uuid::new_v5(
                &Uuid::NAMESPACE_URL,
                format!("pipeline-fixture:{name}").as_bytes(),
            )
        };
        Self {
            sensor_v1: id("schemas/sensor_reading.v1.avsc"),
            sensor_v2: id("schemas/sensor_reading.v2.avsc"),
            store_v1: id("schemas/store_event.v1.avsc"),
            explicit_order: id(EXPLICIT_ORDER_SCHEMA_NAME),
        }
    }

    /// (id, definition) pairs, e.g. to load an in-memory registry.
    pub fn definitions(&self) -> Vec<(Uuid, &'static str)> {
        let text = |path| pipeline_contracts::schema_text(path).unwrap_or_default();
        vec![
            (self.sensor_v1, text("schemas/sensor_reading.v1.avsc")),
            (self.sensor_v2, text("schemas/sensor_reading.v2.avsc")),
            (self.store_v1, text("schemas/store_event.v1.avsc")),
            (self.explicit_order, EXPLICIT_ORDER_SCHEMA),
        ]
    }
}

/// One fixture file: its name under `functions/consumer/events/`, the event, and how many of its
/// records must come out as poison.
pub struct Fixture {
    pub file_name: String,
    pub event: KafkaEvent,
    pub expected_poison: usize,
}

const FIXTURE_EPOCH_MS: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn avro(schema_text: &str, value: apache_avro::types::Value) -> Vec<u8> {
    // Fixture data is fixed and valid for its schema; a failure here is a bug in this file.
    let schema = apache_avro::Schema::parse_str(schema_text).expect("fixture schema parses");
    encode_avro(value, &schema).expect("fixture datum matches its schema")
}

fn sensor_records(ids: &FixtureSchemaIds, avro_framed: bool) -> Vec<KafkaRecord> {
    let topic = &contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::SensorReading)
        .name;
    let v1 = pipeline_contracts::schema_text("schemas/sensor_reading.v1.avsc").unwrap_or_default();
    let v2 = pipeline_contracts::schema_text("schemas/sensor_reading.v2.avsc").unwrap_or_default();
    let mut records = Vec::new();
    for device in 0..3i64 {
        for k in 0..4i64 {
            let reading = SensorReading {
                device_id: format!("device-{device}"),
                event_time: FIXTURE_EPOCH_MS + k * 15_000 + device * 1_000,
                temperature: 20.0 + device as f64 + k as f64 * 0.25,
                humidity: (device != 1).then_some(45.5),
            };
            let value = if avro_framed {
                // Device 1 writes with v1 (no humidity); the others with v2, device 2 zlib-compressed.
                let (id, text, compression) = match device {
                    1 => (ids.sensor_v1, v1, Compression::None),
                    2 => (ids.sensor_v2, v2, Compression::Zlib),
                    _ => (ids.sensor_v2, v2, Compression::None),
                };
                let schema = apache_avro::Schema::parse_str(text).expect("contract schema parses");
                frame(id, &avro(text, sensor_to_avro(&reading, &schema)), compression)
            } else {
                serde_json::to_vec(&reading).expect("serializable")
            };
            records.push(record(
                topic,
                device as i32,
                if avro_framed { 110 } else { 100 } + k,
                reading.event_time + 5,
                Some(reading.device_id.as_bytes()),
                Some(&value),
                None,
            ));
        }
    }
    records
}

fn store_records(ids: &FixtureSchemaIds, avro_framed: bool) -> Vec<KafkaRecord> {
    let topic = &contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::StoreEvent)
        .name;
    let text = pipeline_contracts::schema_text("schemas/store_event.v1.avsc").unwrap_or_default();
    (0..4i64)
        .map(|n| {
            let event = StoreEvent {
                request_id: Uuid::from_u128(0xf557_0d0f_5389_4bce_98c3_7ed5_380e_ef00 + n as u128)
                    .to_string(),
                event_type: if n % 2 == 0 {
                    StoreEventType::Sales
                } else {
                    StoreEventType::Inventory
                },
                store_id: 6,
                cust_id: 206 + n as i32,
                category: "Camera".into(),
                sku: 100_657 + n,
                price_cents: 252 + n * 1000,
                qty: 18,
                discount_hundredths: 820,
                gift_wrap: n % 2 == 0,
                variant: "red".into(),
                priority_shipping: true,
                ts_micros: (FIXTURE_EPOCH_MS + n * 60_000) * 1000 + 938,
                contact_me: (n == 0).then(|| "ops@example.com".into()),
            };
            let value = if avro_framed {
                frame(
                    ids.store_v1,
                    &avro(text, store_event_to_avro(&event)),
                    Compression::None,
                )
            } else {
                serde_json::to_vec(&store_event_to_json(&event)).expect("serializable")
            };
            let partition = (n % 2) as i32;
            let offset = if avro_framed { 50 } else { 40 } + n;
            record(
                topic,
                partition,
                offset,
                FIXTURE_EPOCH_MS + n,
                None,
                Some(&value),
                None,
            )
        })
        .collect()
}

fn explicit_records(ids: &FixtureSchemaIds, avro_framed: bool) -> Vec<KafkaRecord> {
    use apache_avro::types::Value;
    let topic = &contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::Explicit)
        .name;
    (0..3i64)
        .map(|n| {
            let value = if avro_framed {
                let datum = Value::Record(vec![
                    ("order_id".into(), Value::String(format!("order-{n}"))),
                    ("amount".into(), Value::Double(19.5 + n as f64)),
                    ("items".into(), Value::Array(vec![Value::String("sku-1".into())])),
                    ("express".into(), Value::Boolean(n == 1)),
                ]);
                frame(
                    ids.explicit_order,
                    &avro(EXPLICIT_ORDER_SCHEMA, datum),
                    Compression::None,
                )
            } else {
                serde_json::to_vec(&serde_json::json!({
                    "order_id": format!("order-{n}"),
                    "amount": 19.5 + n as f64,
                    "items": ["sku-1"],
                    "express": n == 1,
                }))
                .expect("serializable")
            };
            let offset = if avro_framed { 17 } else { 7 } + n;
            record(
                topic,
                0,
                offset,
                FIXTURE_EPOCH_MS + n,
                Some(b"orders"),
                Some(&value),
                None,
            )
        })
        .collect()
}

/// The seed producers' own JSON, as they send it (Python `json.dumps`): seed S1's sensor readings
/// (integer device id, naive ISO `timestamp`, integer temperature) and seed S3's store events
/// (`sale_event`, naive ISO `ts`). The consumer reads them through the mapping documented in
/// `functions/consumer/README.md` ("Seed payloads").
fn seed_records() -> Vec<KafkaRecord> {
    let sensors = &contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::SensorReading)
        .name;
    let stores = &contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::StoreEvent)
        .name;
    let s1: [&[u8]; 3] = [
        br#"{"device_id": 1, "timestamp": "2023-05-10T12:00:00.123456", "temperature": 27}"#,
        br#"{"device_id": 1, "timestamp": "2023-05-10T12:00:20.500000", "temperature": 28}"#,
        br#"{"device_id": 2, "timestamp": "2023-05-10T12:00:05.000001", "temperature": 19}"#,
    ];
    let s3: [&[u8]; 2] = [
        br#"{"request_id": "9a1c3f52-7d4e-4b8a-8f60-2c5d1e7b9a34", "event_type": "sale_event", "store_id": 3, "cust_id": 512, "category": "Laptops", "sku": 18832, "price": 899.99, "qty": 1, "discount": 5.5, "gift_wrap": false, "variant": "black", "priority_shipping": true, "ts": "2023-05-10T12:01:02.345678", "contact_me": "github.com/miztiik"}"#,
        br#"{"request_id": "0c7e2b19-5f3a-4d6c-9e81-7a4b3c2d1e0f", "event_type": "inventory_event", "store_id": 3, "cust_id": 0, "category": "Laptops", "sku": 18832, "price": 899.99, "qty": 25, "discount": 0, "gift_wrap": false, "variant": "black", "priority_shipping": false, "ts": "2023-05-10T12:05:00.000000", "contact_me": "github.com/miztiik"}"#,
    ];
    let seed_epoch_ms = 1_683_720_000_000; // 2023-05-10T12:00:00Z
    s1.iter()
        .enumerate()
        .map(|(n, value)| record(sensors, 0, 300 + n as i64, seed_epoch_ms, None, Some(value), None))
        .chain(
            s3.iter()
                .enumerate()
                .map(|(n, value)| record(stores, 1, 300 + n as i64, seed_epoch_ms, None, Some(value), None)),
        )
        .collect()
}

/// One record per way a value can be poison, spread over several partitions and topics.
fn poison_records(ids: &FixtureSchemaIds) -> Vec<KafkaRecord> {
    let sensors = &contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::SensorReading)
        .name;
    let stores = &contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::StoreEvent)
        .name;
    let explicit = &contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::Explicit)
        .name;
    let headers = Some(vec![BTreeMap::from([(
        "origin".to_string(),
        signed_header_values("café".as_bytes()),
    )])]);
    let mut unsupported = frame(ids.sensor_v2, b"\x02", Compression::None);
    unsupported[1] = 0x04;
    let unknown_id = frame(Uuid::from_u128(0xdead_beef), b"\x02", Compression::None);
    let mut records = vec![
        record(
            sensors,
            0,
            200,
            FIXTURE_EPOCH_MS,
            None,
            Some(b"{\"device_id\": \"device-0\", "),
            headers,
        ),
        record(sensors, 1, 200, FIXTURE_EPOCH_MS, None, None, None),
        record(sensors, 2, 200, FIXTURE_EPOCH_MS, None, Some(b""), None),
        record(sensors, 0, 201, FIXTURE_EPOCH_MS, None, Some(b"\x7fELF"), None),
        record(
            sensors,
            1,
            201,
            FIXTURE_EPOCH_MS,
            None,
            Some(&[0x03, 0x00, 0x12, 0x34]),
            None,
        ),
        record(sensors, 2, 201, FIXTURE_EPOCH_MS, None, Some(&unsupported), None),
        record(explicit, 1, 50, FIXTURE_EPOCH_MS, None, Some(&unknown_id), None),
        record(
            sensors,
            0,
            202,
            FIXTURE_EPOCH_MS,
            None,
            Some(br#"{"device_id":"device-0","event_time":"noon","temperature":21.5}"#),
            None,
        ),
        record(
            stores,
            1,
            60,
            FIXTURE_EPOCH_MS,
            None,
            Some(br#"{"request_id":"r","event_type":"refund_event"}"#),
            None,
        ),
        record(
            "not-a-pipeline-topic",
            0,
            1,
            FIXTURE_EPOCH_MS,
            None,
            Some(b"{}"),
            None,
        ),
    ];
    let mut bad_base64 = record(stores, 0, 60, FIXTURE_EPOCH_MS, None, None, None);
    bad_base64.value = Some("not*base64!".into());
    records.push(bad_base64);
    records
}

/// Every fixture, in both envelopes (`aws:kafka` and `SelfManagedKafka`).
pub fn fixtures(ids: &FixtureSchemaIds) -> Vec<Fixture> {
    let mut sets: Vec<(&str, Vec<KafkaRecord>, usize)> = vec![
        ("sensor-readings-json", sensor_records(ids, false), 0),
        ("sensor-readings-avro", sensor_records(ids, true), 0),
        ("store-events-json", store_records(ids, false), 0),
        ("store-events-avro", store_records(ids, true), 0),
        ("explicit-events-json", explicit_records(ids, false), 0),
        ("explicit-events-avro", explicit_records(ids, true), 0),
        ("seed-payloads", seed_records(), 0),
    ];
    let mixed: Vec<KafkaRecord> = sets.iter().flat_map(|(_, r, _)| r.iter().cloned()).collect();
    let poison = poison_records(ids);
    let poison_count = poison.len();
    sets.push(("poison", poison, poison_count));
    // Everything at once, plus one poison record: the rest of the batch must still succeed.
    let mut mixed_with_poison = mixed;
    mixed_with_poison.extend(poison_records(ids).into_iter().take(1));
    sets.push(("mixed-with-poison", mixed_with_poison, 1));

    let mut out = Vec::new();
    for (name, records, expected_poison) in sets {
        for (source, suffix) in [
            (EventSource::Msk, "msk"),
            (EventSource::SelfManagedKafka, "self-managed"),
        ] {
            out.push(Fixture {
                file_name: format!("{name}.{suffix}.json"),
                event: event(source.clone(), records.iter().cloned()),
                expected_poison,
            });
        }
    }
    out
}

/// The file content of a fixture: pretty JSON with a trailing newline.
pub fn fixture_json(fixture: &Fixture) -> String {
    let mut text = serde_json::to_string_pretty(&fixture.event).expect("events serialize");
    text.push('\n');
    text
}
