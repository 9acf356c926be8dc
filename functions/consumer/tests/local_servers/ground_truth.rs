//! The produced stream (valid records and every poison kind) and what the sinks must hold after it,
//! computed from the records themselves.

use std::collections::{BTreeMap, BTreeSet};

use apache_avro::Schema;
use consumer::testkit;
use pipeline_contracts::{contracts, schema_text};
use pipeline_domain::event::{EventSource, KafkaEvent, KafkaRecord};
use pipeline_domain::model::{SensorReading, StoreEvent, StoreEventType};
use pipeline_domain::payload::{encode_avro, sensor_to_avro, store_event_to_avro, store_event_to_json};
use pipeline_domain::wire::{frame, Compression};
use serde_json::{json, Value as Json};
use uuid::Uuid;

use crate::environment::Rng;
use crate::resources::{SchemaIds, ORDER_SCHEMA};

#[derive(Default)]
pub struct Produced {
    pub records: Vec<KafkaRecord>,
    /// Valid readings with their (topic-partition, offset).
    pub readings: Vec<(String, i64, SensorReading)>,
    pub store_events: Vec<(String, i32, i64, StoreEvent)>,
    pub explicit: Vec<(String, i32, i64, Json)>,
    /// (topic, partition, offset) → expected reason kind.
    pub poison: BTreeMap<(String, i32, i64), &'static str>,
}

pub struct Offsets(pub BTreeMap<(String, i32), i64>);
impl Offsets {
    pub fn next(&mut self, topic: &str, partition: i32) -> i64 {
        let start = if topic
            == contracts()
                .topics
                .first_carrying(pipeline_contracts::Payload::StoreEvent)
                .name
            && partition == 0
        {
            990 // crosses an archive block boundary
        } else {
            0
        };
        let offset = self.0.entry((topic.to_string(), partition)).or_insert(start);
        *offset += 1;
        *offset
    }
}

pub fn schema(path: &str) -> Schema {
    Schema::parse_str(schema_text(path).unwrap()).unwrap()
}

pub fn produce(ids: SchemaIds, seed: u64) -> Produced {
    let c = contracts();
    let sensor_topic = c
        .topics
        .first_carrying(pipeline_contracts::Payload::SensorReading)
        .name
        .as_str();
    let store_topic = c
        .topics
        .first_carrying(pipeline_contracts::Payload::StoreEvent)
        .name
        .as_str();
    let explicit_topic = c
        .topics
        .first_carrying(pipeline_contracts::Payload::Explicit)
        .name
        .as_str();
    let v1 = schema("schemas/sensor_reading.v1.avsc");
    let v2 = schema("schemas/sensor_reading.v2.avsc");
    let store_schema = schema("schemas/store_event.v1.avsc");
    let order_schema = Schema::parse_str(ORDER_SCHEMA).unwrap();
    let mut rng = Rng::new(seed);
    let mut offsets = Offsets(BTreeMap::new());
    let mut out = Produced::default();
    let mut temperatures = [20.0f64; 8];
    let base_time = 1_767_225_540_000i64; // 2025-12-31T23:59:00Z: windows and dates cross midnight

    for i in 0..420i64 {
        let ts = base_time + i * 700;
        match rng.below(20) {
            0..=10 => {
                let device = rng.below(8) as usize;
                temperatures[device] += (rng.below(2001) as f64 - 1000.0) / 1000.0 + 0.00037;
                let reading = SensorReading {
                    device_id: format!("device-{device}"),
                    event_time: ts - rng.below(90_000) as i64,
                    temperature: temperatures[device],
                    humidity: (device % 2 == 0).then_some(40.0 + device as f64),
                };
                let partition = (device % 4) as i32;
                let mut expected = reading.clone();
                let value = match rng.below(3) {
                    0 => serde_json::to_vec(&reading).unwrap(),
                    1 => {
                        // v1 has no humidity field.
                        expected.humidity = None;
                        frame(
                            ids.sensor_v1,
                            &encode_avro(sensor_to_avro(&reading, &v1), &v1).unwrap(),
                            Compression::None,
                        )
                    }
                    _ => frame(
                        ids.sensor_v2,
                        &encode_avro(sensor_to_avro(&reading, &v2), &v2).unwrap(),
                        Compression::Zlib,
                    ),
                };
                let offset = offsets.next(sensor_topic, partition);
                out.readings
                    .push((format!("{sensor_topic}-{partition}"), offset, expected));
                out.records.push(testkit::record(
                    sensor_topic,
                    partition,
                    offset,
                    ts,
                    Some(reading.device_id.as_bytes()),
                    Some(&value),
                    None,
                ));
            }
            11..=15 => {
                let event = StoreEvent {
                    request_id: Uuid::from_u64_pair(seed, i as u64).to_string(),
                    event_type: if rng.below(2) == 0 {
                        StoreEventType::Sales
                    } else {
                        StoreEventType::Inventory
                    },
                    store_id: rng.below(10) as i32,
                    cust_id: 200 + rng.below(100) as i32,
                    category: ["Camera", "Laptops", "Books"][rng.below(3) as usize].into(),
                    sku: 100_000 + rng.below(1000) as i64,
                    price_cents: rng.below(99_999_999) as i64 - 10,
                    qty: 1 + rng.below(20) as i32,
                    discount_hundredths: rng.below(9999) as i64,
                    gift_wrap: rng.below(2) == 0,
                    variant: ["red", "blue"][rng.below(2) as usize].into(),
                    priority_shipping: rng.below(2) == 0,
                    ts_micros: ts * 1000 + rng.below(1000) as i64,
                    contact_me: (rng.below(3) == 0).then(|| "ops@example.com".to_string()),
                };
                let partition = rng.below(2) as i32;
                let value = if rng.below(2) == 0 {
                    frame(
                        ids.store_v1,
                        &encode_avro(store_event_to_avro(&event), &store_schema).unwrap(),
                        Compression::None,
                    )
                } else {
                    serde_json::to_vec(&store_event_to_json(&event)).unwrap()
                };
                let offset = offsets.next(store_topic, partition);
                out.store_events
                    .push((store_topic.to_string(), partition, offset, event));
                out.records.push(testkit::record(
                    store_topic,
                    partition,
                    offset,
                    ts,
                    None,
                    Some(&value),
                    None,
                ));
            }
            16..=17 => {
                let partition = rng.below(2) as i32;
                let offset = offsets.next(explicit_topic, partition);
                let document = json!({
                    "order_id": format!("o-{i}"),
                    "amount": (rng.below(100_000) as f64) / 100.0,
                    "count": rng.below(50),
                    "tags": ["a", format!("t{}", i % 3)],
                    "note": if i % 2 == 0 { Json::Null } else { json!("rush") },
                });
                let value = if rng.below(2) == 0 {
                    let avro = apache_avro::types::Value::Record(vec![
                        (
                            "order_id".into(),
                            apache_avro::types::Value::String(document["order_id"].as_str().unwrap().into()),
                        ),
                        (
                            "amount".into(),
                            apache_avro::types::Value::Double(document["amount"].as_f64().unwrap()),
                        ),
                        (
                            "count".into(),
                            apache_avro::types::Value::Long(document["count"].as_i64().unwrap()),
                        ),
                        (
                            "tags".into(),
                            apache_avro::types::Value::Array(
                                document["tags"]
                                    .as_array()
                                    .unwrap()
                                    .iter()
                                    .map(|t| apache_avro::types::Value::String(t.as_str().unwrap().into()))
                                    .collect(),
                            ),
                        ),
                        (
                            "note".into(),
                            match document["note"].as_str() {
                                Some(n) => apache_avro::types::Value::Union(
                                    1,
                                    Box::new(apache_avro::types::Value::String(n.into())),
                                ),
                                None => apache_avro::types::Value::Union(
                                    0,
                                    Box::new(apache_avro::types::Value::Null),
                                ),
                            },
                        ),
                    ]);
                    frame(
                        ids.order_v1,
                        &encode_avro(avro, &order_schema).unwrap(),
                        Compression::Zlib,
                    )
                } else {
                    serde_json::to_vec(&document).unwrap()
                };
                out.explicit
                    .push((explicit_topic.to_string(), partition, offset, document));
                out.records.push(testkit::record(
                    explicit_topic,
                    partition,
                    offset,
                    ts,
                    Some(b"order"),
                    Some(&value),
                    None,
                ));
            }
            _ => {
                let (topic, partition, value, kind): (&str, i32, Option<Vec<u8>>, &'static str) =
                    match rng.below(7) {
                        0 => (
                            sensor_topic,
                            3,
                            Some(b"{\"device_id\": \"device-3\", ".to_vec()),
                            "bad_json",
                        ),
                        1 => (
                            store_topic,
                            1,
                            Some(vec![0x03, 0x00, 0x01, 0x02]),
                            "truncated_header",
                        ),
                        2 => {
                            let mut framed = frame(ids.order_v1, b"\x02", Compression::None);
                            framed[2..18].copy_from_slice(Uuid::from_u64_pair(7, 7).as_bytes());
                            (explicit_topic, 0, Some(framed), "unknown_schema_version")
                        }
                        3 => (sensor_topic, 1, None, "null_value"),
                        4 => (
                            store_topic,
                            0,
                            Some(br#"{"request_id":"x","event_type":"refund_event"}"#.to_vec()),
                            "bad_field",
                        ),
                        5 => (
                            sensor_topic,
                            2,
                            Some(b"\x7fnot a format".to_vec()),
                            "unknown_wire_format",
                        ),
                        _ => (explicit_topic, 1, Some(vec![b' '; 300 * 1024]), "too_large"),
                    };
                let offset = offsets.next(topic, partition);
                out.poison.insert((topic.to_string(), partition, offset), kind);
                let headers = Some(vec![BTreeMap::from([("trace".to_string(), vec![-61, -87, 65])])]);
                out.records.push(testkit::record(
                    topic,
                    partition,
                    offset,
                    ts,
                    Some(b"k"),
                    value.as_deref(),
                    headers,
                ));
            }
        }
    }
    // Records the ESM would never route here, and a value that is not base64 at all.
    let offset = offsets.next("unrouted-topic", 0);
    out.poison
        .insert(("unrouted-topic".into(), 0, offset), "unknown_topic");
    out.records.push(testkit::record(
        "unrouted-topic",
        0,
        offset,
        base_time,
        None,
        Some(b"{}"),
        None,
    ));
    let offset = offsets.next(sensor_topic, 0);
    out.poison.insert((sensor_topic.into(), 0, offset), "bad_base64");
    let mut bad = testkit::record(sensor_topic, 0, offset, base_time, None, None, None);
    bad.value = Some("%%% not base64".into());
    out.records.push(bad);
    out
}

/// Consecutive slices of the stream as ESM events, alternating MSK and self-managed envelopes.
pub fn batches(records: &[KafkaRecord], rng: &mut Rng) -> Vec<KafkaEvent> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let end = (at + 20 + rng.below(60) as usize).min(records.len());
        let source = if out.len() % 2 == 0 {
            EventSource::SelfManagedKafka
        } else {
            EventSource::Msk
        };
        out.push(testkit::event(source, records[at..end].iter().cloned()));
        at = end;
    }
    out
}

/// Decimal text of milli-units, computed here independently of the domain's formatter.
pub fn milli_text(value: i128) -> String {
    let negative = value < 0;
    let abs = value.abs();
    let mut text = format!("{}.{:03}", abs / 1000, abs % 1000);
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    if negative {
        format!("-{text}")
    } else {
        text
    }
}

pub fn hundredths_text(value: i64) -> String {
    format!(
        "{}{}.{:02}",
        if value < 0 { "-" } else { "" },
        value.abs() / 100,
        value.abs() % 100
    )
}

/// `{0,1,2,5}` as `"0-2,5"`: the applied offsets as the window item stores them.
pub fn consecutive_runs(offsets: &BTreeSet<i64>) -> String {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &o in offsets {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == o => *last = o,
            _ => runs.push((o, o)),
        }
    }
    runs.iter()
        .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
        .collect::<Vec<_>>()
        .join(",")
}

/// Every expected window item, attribute by attribute, as canonical strings.
pub fn expected_window_items(produced: &Produced) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    struct Acc {
        count: u64,
        sum: i128,
        min: i64,
        max: i64,
        first: i64,
        last: i64,
        offsets: BTreeMap<String, BTreeSet<i64>>,
    }
    let mut windows: BTreeMap<(String, i64), Acc> = BTreeMap::new();
    for (tp, offset, r) in &produced.readings {
        let start = r.event_time.div_euclid(60_000) * 60_000;
        let milli = (r.temperature * 1000.0).round() as i64;
        let acc = windows.entry((r.device_id.clone(), start)).or_insert(Acc {
            count: 0,
            sum: 0,
            min: i64::MAX,
            max: i64::MIN,
            first: i64::MAX,
            last: i64::MIN,
            offsets: BTreeMap::new(),
        });
        acc.count += 1;
        acc.sum += i128::from(milli);
        acc.min = acc.min.min(milli);
        acc.max = acc.max.max(milli);
        acc.first = acc.first.min(r.event_time);
        acc.last = acc.last.max(r.event_time);
        acc.offsets.entry(tp.clone()).or_default().insert(*offset);
    }
    windows
        .into_iter()
        .map(|((device, start), a)| {
            let count = i128::from(a.count);
            let avg = if a.sum >= 0 {
                (2 * a.sum + count) / (2 * count)
            } else {
                (2 * a.sum - count) / (2 * count)
            };
            let offsets = a
                .offsets
                .iter()
                .map(|(tp, o)| format!("{tp}={}", consecutive_runs(o)))
                .collect::<Vec<_>>()
                .join(",");
            let attrs = BTreeMap::from([
                ("device_id".to_string(), device.clone()),
                ("window_start".to_string(), start.to_string()),
                ("window_end".to_string(), (start + 60_000).to_string()),
                ("count".to_string(), a.count.to_string()),
                ("sum".to_string(), milli_text(a.sum)),
                ("min".to_string(), milli_text(a.min.into())),
                ("max".to_string(), milli_text(a.max.into())),
                ("avg".to_string(), milli_text(avg)),
                ("first_event_time".to_string(), a.first.to_string()),
                ("last_event_time".to_string(), a.last.to_string()),
                ("offsets".to_string(), offsets),
            ]);
            ((device, start.to_string()), attrs)
        })
        .collect()
}
