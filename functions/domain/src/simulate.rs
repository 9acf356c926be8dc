//! Deterministic simulators for the producer: sensor fleets and store events.
//!
//! Everything derives from a seed (ChaCha8), so a test can re-run a simulation to know exactly
//! what was produced, including which store events are deliberately malformed and how. Each
//! device draws from its own ChaCha stream, so a device's readings do not depend on how many
//! other devices are simulated.

use apache_avro::types::Value;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{SensorReading, StoreEvent, StoreEventType};
use crate::payload::{
    encode_avro, reader_schema, store_event_to_avro, store_event_to_json, PayloadError, StoreEventAvroWriter,
};
use crate::wire::{frame, Compression};

/// How record values are written: Glue-framed Avro through the registry, or plain JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueFormat {
    Avro,
    Json,
}

impl ValueFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueFormat::Avro => "avro",
            ValueFormat::Json => "json",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "avro" => Some(ValueFormat::Avro),
            "json" => Some(ValueFormat::Json),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sensors

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorSimulation {
    pub devices: u32,
    pub readings_per_device: u32,
    pub seed: u64,
    /// Event time of every device's first reading, epoch milliseconds.
    pub start_time_ms: i64,
    /// Event-time distance between two readings of one device.
    pub interval_ms: i64,
}

/// The device id (and record key) of device number `index`. (This shape spreads small fleets
/// evenly over partitions under Kafka's murmur2; `device-00001`-style ids pile onto two of four.)
pub fn device_id(index: u32) -> String {
    format!("sensor-{index:03}")
}

/// Readings ordered as a fleet emits them: reading 0 of every device, then reading 1, and so on.
/// Temperatures follow a bounded random walk per device (steps of at most ±0.5 °C, in hundredths);
/// humidity walks too (steps of at most ±1 %, in tenths). Event time advances by `interval_ms`.
pub fn simulate_sensor_readings(sim: &SensorSimulation) -> Vec<SensorReading> {
    let devices = sim.devices as usize;
    let per_device = sim.readings_per_device as usize;
    let mut walks: Vec<(ChaCha8Rng, f64, f64)> = (0..sim.devices)
        .map(|index| {
            let mut rng = ChaCha8Rng::seed_from_u64(sim.seed);
            rng.set_stream(u64::from(index));
            let temperature = rng.random_range(1500..=2500) as f64 / 100.0;
            let humidity = rng.random_range(300..=700) as f64 / 10.0;
            (rng, temperature, humidity)
        })
        .collect();
    let mut readings = Vec::with_capacity(devices.saturating_mul(per_device));
    for step in 0..per_device {
        for (index, (rng, temperature, humidity)) in walks.iter_mut().enumerate() {
            if step > 0 {
                let t_step = rng.random_range(-50..=50) as f64 / 100.0;
                *temperature = round_to(temperature_clamp(*temperature + t_step), 100.0);
                let h_step = rng.random_range(-10..=10) as f64 / 10.0;
                *humidity = round_to((*humidity + h_step).clamp(0.0, 100.0), 10.0);
            }
            readings.push(SensorReading {
                device_id: device_id(index as u32),
                event_time: sim.start_time_ms + step as i64 * sim.interval_ms,
                temperature: *temperature,
                humidity: Some(*humidity),
            });
        }
    }
    readings
}

fn temperature_clamp(t: f64) -> f64 {
    t.clamp(-30.0, 50.0)
}

fn round_to(value: f64, scale: f64) -> f64 {
    (value * scale).round() / scale
}

// ---------------------------------------------------------------------------------------------
// Store events

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoreSimulation {
    pub count: u32,
    /// Share of events, 0.0..=1.0, that are deliberately malformed.
    pub malformed_share: f64,
    pub seed: u64,
    /// Timestamp of the first event, epoch microseconds.
    pub start_time_micros: i64,
}

/// How a deliberately malformed store event is broken. Every kind makes the consumer's decoding
/// fail (so each one is a poison record), whatever the format:
///
/// | kind              | JSON value                         | Avro value                                 |
/// |-------------------|------------------------------------|--------------------------------------------|
/// | wrong_field_type  | `"qty": "eighteen"`                | a JSON text where the Avro body should be  |
/// | truncated         | first half of the document         | first half of the Avro body                |
/// | missing_field     | no `sku`                           | body ends before its last two fields       |
/// | unknown_event_type| `"event_type": "refund_event"`     | enum index 5 (the schema has 2 symbols)    |
/// | bad_framing       | a 0x00 byte before the document    | compression byte 0x07 in the Glue header   |
/// | unknown_schema_id | (not used for JSON)                | a schema version id no registry knows      |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MalformedKind {
    WrongFieldType,
    Truncated,
    MissingField,
    UnknownEventType,
    BadFraming,
    UnknownSchemaId,
}

impl MalformedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MalformedKind::WrongFieldType => "wrong_field_type",
            MalformedKind::Truncated => "truncated",
            MalformedKind::MissingField => "missing_field",
            MalformedKind::UnknownEventType => "unknown_event_type",
            MalformedKind::BadFraming => "bad_framing",
            MalformedKind::UnknownSchemaId => "unknown_schema_id",
        }
    }

    /// The kinds a format can carry, in the order they are handed out.
    pub fn for_format(format: ValueFormat) -> &'static [MalformedKind] {
        const JSON: &[MalformedKind] = &[
            MalformedKind::WrongFieldType,
            MalformedKind::Truncated,
            MalformedKind::MissingField,
            MalformedKind::UnknownEventType,
            MalformedKind::BadFraming,
        ];
        const AVRO: &[MalformedKind] = &[
            MalformedKind::WrongFieldType,
            MalformedKind::Truncated,
            MalformedKind::MissingField,
            MalformedKind::UnknownEventType,
            MalformedKind::BadFraming,
            MalformedKind::UnknownSchemaId,
        ];
        match format {
            ValueFormat::Json => JSON,
            ValueFormat::Avro => AVRO,
        }
    }
}

/// One simulated store event: a valid one, or a deliberately broken rendering of `base`.
#[derive(Debug, Clone, PartialEq)]
pub enum SimulatedStoreEvent {
    Valid(StoreEvent),
    Malformed { kind: MalformedKind, base: StoreEvent },
}

impl SimulatedStoreEvent {
    pub fn event(&self) -> &StoreEvent {
        match self {
            SimulatedStoreEvent::Valid(event) => event,
            SimulatedStoreEvent::Malformed { base, .. } => base,
        }
    }

    pub fn malformed_kind(&self) -> Option<MalformedKind> {
        match self {
            SimulatedStoreEvent::Valid(_) => None,
            SimulatedStoreEvent::Malformed { kind, .. } => Some(*kind),
        }
    }

    /// The record key: the store, so one store's events stay in order on one partition.
    pub fn key(&self) -> String {
        store_key(self.event().store_id)
    }
}

/// The record key of a store's events (zero-padded: it spreads ten stores over four partitions
/// under murmur2, where `store-1`..`store-10` use only two).
pub fn store_key(store_id: i32) -> String {
    format!("store-{store_id:03}")
}

/// How many of `count` events a share makes malformed (rounded to the nearest event).
pub fn malformed_count(count: u32, share: f64) -> u32 {
    ((f64::from(count) * share.clamp(0.0, 1.0)).round() as u32).min(count)
}

const CATEGORIES: &[&str] = &[
    "Books",
    "Camera",
    "Garden",
    "Groceries",
    "Laptops",
    "Shoes",
    "Toys",
];
const VARIANTS: &[&str] = &["black", "blue", "green", "red", "white"];

/// `count` events, a sales/inventory mix (about 60/40), exactly
/// [`malformed_count`]`(count, malformed_share)` of them malformed, at seeded positions, with
/// kinds handed out in [`MalformedKind::for_format`] order.
pub fn simulate_store_events(sim: &StoreSimulation, format: ValueFormat) -> Vec<SimulatedStoreEvent> {
    let mut rng = ChaCha8Rng::seed_from_u64(sim.seed);
    let events: Vec<StoreEvent> = (0..sim.count)
        .map(|index| random_store_event(&mut rng, sim.start_time_micros, index))
        .collect();
    let mut positions: Vec<usize> = (0..events.len()).collect();
    positions.shuffle(&mut rng);
    let broken = malformed_count(sim.count, sim.malformed_share) as usize;
    let mut broken_positions = positions[..broken].to_vec();
    broken_positions.sort_unstable();
    let kinds = MalformedKind::for_format(format);
    let mut simulated: Vec<SimulatedStoreEvent> =
        events.into_iter().map(SimulatedStoreEvent::Valid).collect();
    for (nth, position) in broken_positions.into_iter().enumerate() {
        let base = simulated[position].event().clone();
        simulated[position] = SimulatedStoreEvent::Malformed {
            kind: kinds[nth % kinds.len()],
            base,
        };
    }
    simulated
}

fn random_store_event(rng: &mut ChaCha8Rng, start_micros: i64, index: u32) -> StoreEvent {
    let mut id = [0u8; 16];
    rng.fill(&mut id);
    let event_type = if rng.random_bool(0.6) {
        StoreEventType::Sales
    } else {
        StoreEventType::Inventory
    };
    StoreEvent {
        request_id: uuid::Builder::from_random_bytes(id).into_uuid().to_string(),
        event_type,
        store_id: rng.random_range(1..=10),
        cust_id: rng.random_range(100..=999),
        category: CATEGORIES[rng.random_range(0..CATEGORIES.len())].to_string(),
        sku: rng.random_range(100_000..=999_999),
        price_cents: rng.random_range(100..=99_999),
        qty: rng.random_range(1..=20),
        discount_hundredths: rng.random_range(0..=5_000),
        gift_wrap: rng.random_bool(0.2),
        variant: VARIANTS[rng.random_range(0..VARIANTS.len())].to_string(),
        priority_shipping: rng.random_bool(0.3),
        ts_micros: start_micros + i64::from(index) * 1_000_000 + rng.random_range(0..1_000_000),
        contact_me: rng
            .random_bool(0.3)
            .then(|| format!("customer-{}@example.com", rng.random_range(1..=500))),
    }
}

/// The value bytes of a store event in `format`; Avro values are framed with `schema_version_id`
/// (the registered `StoreEvent` version). Malformed events get their broken rendering.
pub fn render_store_event(
    simulated: &SimulatedStoreEvent,
    format: ValueFormat,
    schema_version_id: Uuid,
    compression: Compression,
) -> Result<Vec<u8>, PayloadError> {
    match simulated {
        SimulatedStoreEvent::Valid(event) => match format {
            ValueFormat::Json => Ok(json_bytes(&store_event_to_json(event))),
            ValueFormat::Avro => Ok(frame(schema_version_id, &store_avro_body(event)?, compression)),
        },
        SimulatedStoreEvent::Malformed { kind, base } => {
            render_malformed(*kind, base, format, schema_version_id)
        }
    }
}

fn store_schema() -> Result<&'static apache_avro::Schema, PayloadError> {
    reader_schema("StoreEvent")
        .ok_or_else(|| PayloadError::Avro("no StoreEvent schema in the contracts".into()))
}

fn store_avro_body(event: &StoreEvent) -> Result<Vec<u8>, PayloadError> {
    // The layout check runs once; the contract's schema does not change in a process.
    static WRITER: std::sync::OnceLock<Result<StoreEventAvroWriter, PayloadError>> =
        std::sync::OnceLock::new();
    let writer = WRITER
        .get_or_init(|| store_schema().and_then(StoreEventAvroWriter::for_schema))
        .clone()?;
    let mut body = Vec::with_capacity(128);
    writer.write(event, &mut body)?;
    Ok(body)
}

fn json_bytes(value: &serde_json::Value) -> Vec<u8> {
    // Serialising a serde_json::Value cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// Encoded length of the named fields of a StoreEvent datum, in schema order, up to `field`.
fn avro_prefix_len(event: &StoreEvent, up_to_field: &str) -> Result<usize, PayloadError> {
    let schema = store_schema()?;
    let apache_avro::Schema::Record(record) = schema else {
        return Err(PayloadError::Avro("StoreEvent is not a record".into()));
    };
    let Value::Record(values) = store_event_to_avro(event) else {
        return Err(PayloadError::Avro("StoreEvent datum is not a record".into()));
    };
    let mut length = 0;
    for field in &record.fields {
        if field.name == up_to_field {
            return Ok(length);
        }
        let value = values
            .iter()
            .find(|(name, _)| name == &field.name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| PayloadError::Avro(format!("datum lacks {}", field.name)))?;
        length += encode_avro(value, &field.schema)?.len();
    }
    Err(PayloadError::Avro(format!(
        "StoreEvent has no field {up_to_field}"
    )))
}

fn render_malformed(
    kind: MalformedKind,
    base: &StoreEvent,
    format: ValueFormat,
    schema_version_id: Uuid,
) -> Result<Vec<u8>, PayloadError> {
    let json = store_event_to_json(base);
    match format {
        ValueFormat::Json => {
            let mut object = json;
            let bytes = match kind {
                MalformedKind::WrongFieldType => {
                    object["qty"] = serde_json::Value::String("eighteen".into());
                    json_bytes(&object)
                }
                MalformedKind::Truncated => {
                    let full = json_bytes(&object);
                    full[..full.len() / 2].to_vec()
                }
                MalformedKind::MissingField => {
                    if let Some(map) = object.as_object_mut() {
                        map.remove("sku");
                    }
                    json_bytes(&object)
                }
                MalformedKind::UnknownEventType => {
                    object["event_type"] = serde_json::Value::String("refund_event".into());
                    json_bytes(&object)
                }
                MalformedKind::BadFraming | MalformedKind::UnknownSchemaId => {
                    let mut bytes = vec![0x00];
                    bytes.extend_from_slice(&json_bytes(&object));
                    bytes
                }
            };
            Ok(bytes)
        }
        ValueFormat::Avro => {
            let body = store_avro_body(base)?;
            let bytes = match kind {
                MalformedKind::WrongFieldType => {
                    frame(schema_version_id, &json_bytes(&json), Compression::None)
                }
                MalformedKind::Truncated => {
                    frame(schema_version_id, &body[..body.len() / 2], Compression::None)
                }
                MalformedKind::MissingField => {
                    // Cut before `ts`: a body lacking only the trailing null union was observed to
                    // still decode with apache-avro 0.22, so drop two fields.
                    let before_ts = avro_prefix_len(base, "ts")?;
                    frame(schema_version_id, &body[..before_ts], Compression::None)
                }
                MalformedKind::UnknownEventType => {
                    let at = avro_prefix_len(base, "event_type")?;
                    let mut patched = body;
                    // Zig-zag varint of 5: one byte, 0x0a. The schema's symbols are indexes 0 and 1.
                    patched[at] = 0x0a;
                    frame(schema_version_id, &patched, Compression::None)
                }
                MalformedKind::BadFraming => {
                    let mut framed = frame(schema_version_id, &body, Compression::None);
                    framed[1] = 0x07;
                    framed
                }
                MalformedKind::UnknownSchemaId => {
                    let unknown = Uuid::new_v5(&Uuid::NAMESPACE_OID, base.request_id.as_bytes());
                    frame(unknown, &body, Compression::None)
                }
            };
            Ok(bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::{decode_avro, store_event_from_avro, store_event_from_json};
    use crate::wire::{classify, WireValue};

    const SENSORS: SensorSimulation = SensorSimulation {
        devices: 5,
        readings_per_device: 40,
        seed: 7,
        start_time_ms: 1_700_000_000_000,
        interval_ms: 15_000,
    };

    #[test]
    fn sensor_simulation_is_deterministic_and_per_device_independent() {
        let a = simulate_sensor_readings(&SENSORS);
        assert_eq!(a, simulate_sensor_readings(&SENSORS));
        assert_eq!(a.len(), 200);
        let other_seed = simulate_sensor_readings(&SensorSimulation { seed: 8, ..SENSORS });
        assert_ne!(a, other_seed);
        // Device 2 walks the same way with 3 devices or with 5.
        let fewer = simulate_sensor_readings(&SensorSimulation {
            devices: 3,
            ..SENSORS
        });
        let device_2 = |rs: &[SensorReading]| -> Vec<SensorReading> {
            rs.iter()
                .filter(|r| r.device_id == device_id(2))
                .cloned()
                .collect()
        };
        assert_eq!(device_2(&a), device_2(&fewer));
    }

    #[test]
    fn sensor_readings_walk_in_bounded_steps_at_the_requested_event_times() {
        let readings = simulate_sensor_readings(&SENSORS);
        for device in 0..SENSORS.devices {
            let own: Vec<&SensorReading> = readings
                .iter()
                .filter(|r| r.device_id == device_id(device))
                .collect();
            assert_eq!(own.len(), 40);
            for (step, pair) in own.windows(2).enumerate() {
                assert!((pair[1].temperature - pair[0].temperature).abs() <= 0.5 + 1e-9);
                assert_eq!(
                    pair[0].event_time,
                    SENSORS.start_time_ms + step as i64 * SENSORS.interval_ms
                );
                assert_eq!(pair[1].event_time - pair[0].event_time, SENSORS.interval_ms);
            }
            assert!(own.iter().all(|r| (-30.0..=50.0).contains(&r.temperature)));
            assert!(own
                .iter()
                .all(|r| matches!(r.humidity, Some(h) if (0.0..=100.0).contains(&h))));
            // Hundredths, so the consumer's exact milli-degree sums see no float noise.
            assert!(own
                .iter()
                .all(|r| ((r.temperature * 100.0).round() - r.temperature * 100.0).abs() < 1e-6));
        }
        // The walk really moves.
        assert!(readings.windows(2).any(|w| w[0].temperature != w[1].temperature));
    }

    const STORE: StoreSimulation = StoreSimulation {
        count: 200,
        malformed_share: 0.15,
        seed: 42,
        start_time_micros: 1_700_000_000_000_000,
    };

    #[test]
    fn store_simulation_marks_exactly_the_requested_share_and_every_kind() {
        for format in [ValueFormat::Json, ValueFormat::Avro] {
            let events = simulate_store_events(&STORE, format);
            assert_eq!(events, simulate_store_events(&STORE, format));
            assert_eq!(events.len(), 200);
            let malformed: Vec<MalformedKind> = events.iter().filter_map(|e| e.malformed_kind()).collect();
            assert_eq!(malformed.len(), 30);
            for kind in MalformedKind::for_format(format) {
                assert!(malformed.contains(kind), "{format:?} lacks {kind:?}");
            }
            let sales = events
                .iter()
                .filter(|e| e.event().event_type == StoreEventType::Sales)
                .count();
            assert!((80..=160).contains(&sales), "{sales} sales of 200");
        }
        assert_eq!(malformed_count(10, 0.0), 0);
        assert_eq!(malformed_count(10, 1.0), 10);
        assert_eq!(malformed_count(3, 0.5), 2);
    }

    /// What the consumer does with a value: classify it, look its schema up, decode it.
    fn consumer_decodes(bytes: &[u8], known_id: Uuid) -> Result<StoreEvent, String> {
        match classify(bytes).map_err(|e| e.to_string())? {
            WireValue::Json(json) => store_event_from_json(json).map_err(|e| e.to_string()),
            WireValue::GlueAvro(frame) => {
                if frame.schema_version_id != known_id {
                    return Err("unknown schema id".into());
                }
                let body = frame.avro_body().map_err(|e| e.to_string())?;
                let value = decode_avro(&body, store_schema().unwrap()).map_err(|e| e.to_string())?;
                store_event_from_avro(value).map_err(|e| e.to_string())
            }
        }
    }

    #[test]
    fn valid_events_decode_and_every_malformed_rendering_fails_to_decode() {
        let id = Uuid::from_u128(0xfeed);
        for format in [ValueFormat::Json, ValueFormat::Avro] {
            for compression in [Compression::None, Compression::Zlib] {
                for simulated in simulate_store_events(&StoreSimulation { count: 300, ..STORE }, format) {
                    let bytes = render_store_event(&simulated, format, id, compression).unwrap();
                    let decoded = consumer_decodes(&bytes, id);
                    match &simulated {
                        SimulatedStoreEvent::Valid(event) => {
                            assert_eq!(decoded.as_ref(), Ok(event), "{format:?}")
                        }
                        SimulatedStoreEvent::Malformed { kind, .. } => {
                            assert!(decoded.is_err(), "{format:?} {kind:?} decoded: {decoded:?}")
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn formats_parse_case_insensitively() {
        assert_eq!(ValueFormat::parse("AVRO"), Some(ValueFormat::Avro));
        assert_eq!(ValueFormat::parse(" json "), Some(ValueFormat::Json));
        assert_eq!(ValueFormat::parse("xml"), None);
    }
}
