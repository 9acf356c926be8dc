//! Property tests: every byte the direct writers produce equals what apache-avro writes for the
//! same datum, over random values of every schema in `contracts/` and of inferred schemas.

use apache_avro::Schema;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value as Json};

use super::*;
use crate::model::{SensorReading, StoreEvent, StoreEventType};
use crate::payload::{
    encode_avro, sensor_to_avro, store_event_to_avro, AvroEncoder, SensorAvroWriter, StoreEventAvroWriter,
};
use crate::schema::{infer_record_schema, json_to_avro};

const CASES: usize = 3_000;

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Short strings over ASCII, multi-byte UTF-8 and the empty string; sometimes long enough that
/// the length takes two varint bytes.
fn text(rng: &mut ChaCha8Rng) -> String {
    const ALPHABET: &[char] = &['a', 'Z', '0', '-', ' ', '"', 'é', '€', '𝄞', '\u{0}', '\\'];
    let len = match rng.random_range(0..10) {
        0 => 0,
        1 => rng.random_range(64..300),
        _ => rng.random_range(1..12),
    };
    (0..len).map(|_| *ALPHABET.choose(rng).unwrap_or(&'a')).collect()
}

fn long(rng: &mut ChaCha8Rng) -> i64 {
    match rng.random_range(0..6) {
        0 => *[0, -1, 1, 63, -64, 64, i64::MIN, i64::MAX]
            .choose(rng)
            .unwrap_or(&0),
        1 => rng.random_range(-200..200),
        _ => rng.random(),
    }
}

fn int(rng: &mut ChaCha8Rng) -> i32 {
    match rng.random_range(0..4) {
        0 => *[0, -1, i32::MIN, i32::MAX].choose(rng).unwrap_or(&0),
        _ => rng.random(),
    }
}

fn double(rng: &mut ChaCha8Rng) -> f64 {
    match rng.random_range(0..6) {
        0 => *[
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
        ]
        .choose(rng)
        .unwrap_or(&0.0),
        1 => f64::NAN,
        _ => rng.random_range(-1e6..1e6),
    }
}

fn reading(rng: &mut ChaCha8Rng) -> SensorReading {
    SensorReading {
        device_id: text(rng),
        event_time: long(rng),
        temperature: double(rng),
        humidity: rng.random_bool(0.7).then(|| double(rng)),
    }
}

fn store_event(rng: &mut ChaCha8Rng) -> StoreEvent {
    let request_id = match rng.random_range(0..4) {
        0 => text(rng),
        1 => uuid::Uuid::from_u128(rng.random())
            .hyphenated()
            .to_string()
            .to_uppercase(),
        2 => uuid::Uuid::from_u128(rng.random()).simple().to_string(),
        _ => uuid::Uuid::from_u128(rng.random()).to_string(),
    };
    StoreEvent {
        request_id,
        event_type: if rng.random_bool(0.5) {
            StoreEventType::Sales
        } else {
            StoreEventType::Inventory
        },
        store_id: int(rng),
        cust_id: int(rng),
        category: text(rng),
        sku: long(rng),
        price_cents: long(rng),
        qty: int(rng),
        discount_hundredths: long(rng),
        gift_wrap: rng.random_bool(0.5),
        variant: text(rng),
        priority_shipping: rng.random_bool(0.5),
        ts_micros: long(rng),
        contact_me: rng.random_bool(0.5).then(|| text(rng)),
    }
}

fn parse(text: &str) -> Schema {
    Schema::parse_str(text).unwrap()
}

#[test]
fn every_contract_schema_is_written_byte_for_byte_as_apache_avro_writes_it() {
    let contracts = pipeline_contracts::contracts();
    let mut checked = 0;
    let (mut encoded, mut refused) = (0, 0);
    for (name, contract) in &contracts.schemas {
        for (version, text) in contract.version_texts().into_iter().enumerate() {
            let schema = parse(text);
            let encoder = AvroEncoder::new(&schema).unwrap();
            let mut rng = rng(version as u64 + 1);
            match name.as_str() {
                "SensorReading" => {
                    let writer = SensorAvroWriter::for_schema(&schema).unwrap();
                    for _ in 0..CASES {
                        let r = reading(&mut rng);
                        let mut ours = Vec::new();
                        writer.write(&r, &mut ours);
                        let reference = encoder.encode(sensor_to_avro(&r, &schema)).unwrap();
                        assert_eq!(ours, reference, "{name} v{}: {r:?}", version + 1);
                    }
                }
                "StoreEvent" => {
                    let writer = StoreEventAvroWriter::for_schema(&schema).unwrap();
                    for _ in 0..CASES {
                        let e = store_event(&mut rng);
                        let mut ours = vec![0xAA];
                        let written = writer.write(&e, &mut ours).map(|()| ours[1..].to_vec());
                        match (written, encoder.encode(store_event_to_avro(&e))) {
                            (Ok(ours), Ok(reference)) => {
                                assert_eq!(ours, reference, "{name} v{}: {e:?}", version + 1);
                                encoded += 1;
                            }
                            (Err(_), Err(_)) => {
                                assert_eq!(ours, [0xAA], "a refused datum leaves the buffer as it was");
                                refused += 1;
                            }
                            (ours, reference) => panic!("{e:?}: {ours:?} vs {reference:?}"),
                        }
                    }
                }
                other => panic!("contract schema {other} has no direct writer: add one and cover it here"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "every committed version is covered ({checked})");
    assert!(
        encoded > CASES / 2 && refused > 0,
        "{encoded} store events encoded, {refused} refused"
    );
}

#[test]
fn a_writer_refuses_a_schema_whose_layout_it_does_not_know() {
    let renamed = r#"{"type": "record", "name": "SensorReading", "fields": [
        {"name": "device", "type": "string"},
        {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "temperature", "type": "double"}]}"#;
    let retyped = r#"{"type": "record", "name": "SensorReading", "fields": [
        {"name": "device_id", "type": "string"},
        {"name": "event_time", "type": "long"},
        {"name": "temperature", "type": "double"}]}"#;
    let humidity_not_null_first = r#"{"type": "record", "name": "SensorReading", "fields": [
        {"name": "device_id", "type": "string"},
        {"name": "event_time", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "temperature", "type": "double"},
        {"name": "humidity", "type": ["double", "null"]}]}"#;
    for text in [renamed, retyped, humidity_not_null_first] {
        let err = SensorAvroWriter::for_schema(&parse(text)).unwrap_err();
        assert!(err.to_string().contains("SensorReading"), "{err}");
    }
    let sensor = parse(pipeline_contracts::contracts().schemas["SensorReading"].latest_text());
    assert!(StoreEventAvroWriter::for_schema(&sensor).is_err());
}

/// A random JSON value of depth at most `depth`: every shape inference handles.
fn json_value(rng: &mut ChaCha8Rng, depth: usize) -> Json {
    let leaf = depth == 0;
    match rng.random_range(0..if leaf { 5 } else { 8 }) {
        0 => Json::Null,
        1 => Json::Bool(rng.random_bool(0.5)),
        2 => json!(long(rng)),
        3 => {
            let d = rng.random_range(-1e9..1e9);
            json!(d)
        }
        4 => Json::String(text(rng)),
        5 => {
            let len = *[0usize, 0, 1, 3].choose(rng).unwrap_or(&0);
            Json::Array((0..len).map(|_| json_value(rng, depth - 1)).collect())
        }
        _ => Json::Object(json_object(rng, depth - 1)),
    }
}

fn json_object(rng: &mut ChaCha8Rng, depth: usize) -> Map<String, Json> {
    let fields = rng.random_range(0..5);
    (0..fields)
        .map(|i| (format!("f{i}"), json_value(rng, depth)))
        .collect()
}

/// Events of one shape: the same skeleton with fresh leaves, some fields dropped (optional) and
/// some set to null, so inference makes unions with null.
fn events_like(rng: &mut ChaCha8Rng, skeleton: &Map<String, Json>, count: usize) -> Vec<Json> {
    fn refill(rng: &mut ChaCha8Rng, value: &Json) -> Json {
        match value {
            Json::Null => Json::Null,
            Json::Bool(_) => Json::Bool(rng.random_bool(0.5)),
            Json::Number(n) if n.is_i64() => json!(long(rng)),
            Json::Number(_) => json!(rng.random_range(-1e9..1e9)),
            Json::String(_) => Json::String(text(rng)),
            Json::Array(items) => match items.first() {
                // An array keeps its item shape; its length varies, down to empty.
                Some(first) => Json::Array((0..rng.random_range(0..4)).map(|_| refill(rng, first)).collect()),
                None => Json::Array(Vec::new()),
            },
            Json::Object(fields) => {
                let mut out = Map::new();
                for (k, v) in fields {
                    if rng.random_bool(0.1) {
                        continue;
                    }
                    let v = if rng.random_bool(0.1) {
                        Json::Null
                    } else {
                        refill(rng, v)
                    };
                    out.insert(k.clone(), v);
                }
                Json::Object(out)
            }
        }
    }
    let skeleton = Json::Object(skeleton.clone());
    (0..count).map(|_| refill(rng, &skeleton)).collect()
}

fn reference(event: &Json, schema: &Schema) -> Result<Vec<u8>, String> {
    let value = json_to_avro(event, schema).map_err(|e| e.to_string())?;
    encode_avro(value, schema).map_err(|e| e.to_string())
}

#[test]
fn inferred_schemas_are_written_byte_for_byte_as_apache_avro_writes_them() {
    let mut rng = rng(42);
    let mut encoded = 0;
    let mut refused = 0;
    for round in 0..400 {
        let skeleton = json_object(&mut rng, 3);
        let events = events_like(&mut rng, &skeleton, 8);
        let Ok(inferred) = infer_record_schema("com.example.Generated", &events) else {
            continue;
        };
        let plan = JsonEncodePlan::compile(&inferred.schema);
        // The events it was inferred from, then events of other shapes: whatever apache-avro
        // writes or refuses, the plan writes the same bytes or refuses with the same error.
        let strangers: Vec<Json> = (0..4)
            .map(|_| Json::Object(json_object(&mut rng, 2)))
            .chain(std::iter::once(json!([1, 2])))
            .collect();
        for event in events.iter().chain(&strangers) {
            let mut out = vec![0xAA];
            let ours = plan.encode(event, &mut out).map(|()| out[1..].to_vec());
            match (ours, reference(event, &inferred.schema)) {
                (Ok(ours), Ok(expected)) => {
                    assert_eq!(
                        ours, expected,
                        "round {round}: {event} with {}",
                        inferred.definition
                    );
                    encoded += 1;
                }
                (Err(ours), Err(expected)) => {
                    assert_eq!(ours.to_string(), expected, "round {round}: {event}");
                    assert_eq!(out, [0xAA], "a refused event leaves the buffer as it was");
                    refused += 1;
                }
                (ours, expected) => {
                    panic!(
                        "round {round}: {event} with {}: {ours:?} vs {expected:?}",
                        inferred.definition
                    )
                }
            }
        }
    }
    assert!(
        encoded > 2_000 && refused > 200,
        "{encoded} encoded, {refused} refused"
    );
}

#[test]
fn unions_nulls_nested_records_and_empty_arrays_are_written_as_apache_avro_writes_them() {
    let events = vec![
        json!({"id": 1, "tags": [], "nested": {"a": [{"b": null}], "c": 2.5}, "maybe": null}),
        json!({"id": -7, "tags": ["x", ""], "nested": {"a": [], "c": 1}, "maybe": "yes"}),
        json!({"id": 0, "nested": {"a": [{"b": true}, {"b": null}], "c": -0.0}}),
    ];
    let inferred = infer_record_schema("Order", &events).unwrap();
    let plan = JsonEncodePlan::compile(&inferred.schema);
    for event in &events {
        assert_eq!(
            plan.encode_to_vec(event).unwrap(),
            reference(event, &inferred.schema).unwrap(),
            "{event}"
        );
    }
    let bad = json!({"id": 1, "nested": {"a": [{"b": "text"}], "c": 1}});
    let err = plan.encode_to_vec(&bad).unwrap_err();
    assert_eq!(err.path, "nested.a[].b");
    assert_eq!(err.to_string(), reference(&bad, &inferred.schema).unwrap_err());
}

#[test]
fn primitives_match_the_specification_examples() {
    // The Avro specification's "Binary Encoding" examples for long, and a string.
    for (value, bytes) in [
        (0i64, vec![0x00]),
        (-1, vec![0x01]),
        (1, vec![0x02]),
        (-2, vec![0x03]),
        (2, vec![0x04]),
        (-64, vec![0x7f]),
        (64, vec![0x80, 0x01]),
    ] {
        let mut out = Vec::new();
        write_long(&mut out, value);
        assert_eq!(out, bytes, "{value}");
    }
    let mut out = Vec::new();
    write_string(&mut out, "foo");
    assert_eq!(out, [0x06, 0x66, 0x6f, 0x6f]);
}
