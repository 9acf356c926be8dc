//! What the producer is asked to do, the defaults filled from the clock and configuration, and
//! the bounds every request is checked against before any work is done.

use pipeline_contracts::contracts;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use uuid::Uuid;

use super::{invalid, ProduceError};
use crate::simulate::ValueFormat;
use crate::wire::Compression;

/// Namespace of request fingerprints (a fixed, arbitrary UUID).
const FINGERPRINT_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a7e_43b5_4d0e_9a51_7c3e_8b20_d4f9);

/// Compression of Avro bodies inside the Glue frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyCompression {
    #[default]
    None,
    Zlib,
}

impl From<BodyCompression> for Compression {
    fn from(value: BodyCompression) -> Self {
        match value {
            BodyCompression::None => Compression::None,
            BodyCompression::Zlib => Compression::Zlib,
        }
    }
}

fn yes() -> bool {
    true
}

/// What the producer function is asked to do; JSON tagged by `"action"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProduceRequest {
    /// `devices` devices, `readings_per_device` readings each, keyed by device id.
    SimulateSensors {
        devices: u32,
        readings_per_device: u32,
        seed: u64,
        /// Event time of the first reading; default: now, rounded down to `interval_ms`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_time_ms: Option<i64>,
        /// Default 1000.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_ms: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<ValueFormat>,
        #[serde(default)]
        compression: BodyCompression,
    },
    /// `count` store events, `malformed_share` of them deliberately broken, keyed by store.
    SimulateStoreEvents {
        count: u32,
        #[serde(default)]
        malformed_share: f64,
        seed: u64,
        /// Timestamp of the first event, epoch microseconds; default: now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_time_micros: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<ValueFormat>,
        #[serde(default)]
        compression: BodyCompression,
    },
    /// Explicit JSON events: infer their schema, register or reuse it, encode, publish.
    PublishEvents {
        /// Default: the contract's explicit-events topic (as configured).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        /// Registry schema name and Avro record name (may be dotted: `com.example.Order`).
        schema_name: String,
        events: Vec<Json>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<ValueFormat>,
        #[serde(default)]
        compression: BodyCompression,
        /// Register a new version when no identical one exists (default). When false, only an
        /// existing identical version is used (GetSchemaByDefinition), otherwise nothing is sent.
        #[serde(default = "yes")]
        auto_register: bool,
        /// A top-level field whose string or integer value becomes the record key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_field: Option<String>,
    },
}

impl ProduceRequest {
    pub fn action(&self) -> &'static str {
        match self {
            ProduceRequest::SimulateSensors { .. } => "simulate_sensors",
            ProduceRequest::SimulateStoreEvents { .. } => "simulate_store_events",
            ProduceRequest::PublishEvents { .. } => "publish_events",
        }
    }
}

/// Bounds that keep one invocation inside Lambda's memory, time and payload limits.
pub mod limits {
    /// Records one simulation may produce.
    pub const MAX_SIMULATED_RECORDS: u64 = 100_000;
    pub const MAX_DEVICES: u32 = 10_000;
    pub const MAX_INTERVAL_MS: i64 = 24 * 60 * 60 * 1000;
    pub const MAX_EXPLICIT_EVENTS: usize = 10_000;
    /// Per explicit event, as compact JSON; keeps each record far below Kafka's 1 MB default and
    /// the consumer's value limit.
    pub const MAX_EVENT_BYTES: usize = 128 * 1024;
    /// All explicit events of one request, as compact JSON.
    pub const MAX_EVENTS_TOTAL_BYTES: usize = 4 * 1024 * 1024;
}

/// The topics and defaults the service works with (from the configuration; names from the contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSettings {
    pub sensor_topic: String,
    pub store_topic: String,
    pub explicit_topic: String,
    pub default_format: ValueFormat,
}

impl ProducerSettings {
    /// The contract's topic names, Avro by default.
    pub fn from_contract() -> Self {
        let topics = &contracts().topics;
        Self {
            sensor_topic: topics
                .first_carrying(pipeline_contracts::Payload::SensorReading)
                .name
                .clone(),
            store_topic: topics
                .first_carrying(pipeline_contracts::Payload::StoreEvent)
                .name
                .clone(),
            explicit_topic: topics
                .first_carrying(pipeline_contracts::Payload::Explicit)
                .name
                .clone(),
            default_format: ValueFormat::Avro,
        }
    }
}

/// Fills defaults that depend on the clock or the configuration, so the fingerprint (and the
/// records) of a request are fully determined by the resolved request.
pub(super) fn resolve_defaults(
    request: ProduceRequest,
    now_ms: i64,
    default_format: ValueFormat,
) -> ProduceRequest {
    match request {
        ProduceRequest::SimulateSensors {
            devices,
            readings_per_device,
            seed,
            start_time_ms,
            interval_ms,
            format,
            compression,
        } => {
            let interval = interval_ms.unwrap_or(1_000);
            let start = start_time_ms.unwrap_or_else(|| {
                if interval > 0 {
                    now_ms - now_ms.rem_euclid(interval)
                } else {
                    now_ms
                }
            });
            ProduceRequest::SimulateSensors {
                devices,
                readings_per_device,
                seed,
                start_time_ms: Some(start),
                interval_ms: Some(interval),
                format: Some(format.unwrap_or(default_format)),
                compression,
            }
        }
        ProduceRequest::SimulateStoreEvents {
            count,
            malformed_share,
            seed,
            start_time_micros,
            format,
            compression,
        } => ProduceRequest::SimulateStoreEvents {
            count,
            malformed_share,
            seed,
            start_time_micros: Some(start_time_micros.unwrap_or(now_ms.saturating_mul(1_000))),
            format: Some(format.unwrap_or(default_format)),
            compression,
        },
        ProduceRequest::PublishEvents {
            topic,
            schema_name,
            events,
            format,
            compression,
            auto_register,
            key_field,
        } => ProduceRequest::PublishEvents {
            topic,
            schema_name,
            events,
            format: Some(format.unwrap_or(default_format)),
            compression,
            auto_register,
            key_field,
        },
    }
}

pub(super) fn fingerprint(request: &ProduceRequest) -> Uuid {
    // Serialising the request cannot fail (plain data, string keys).
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    Uuid::new_v5(&FINGERPRINT_NAMESPACE, &canonical)
}

/// Kafka's legal topic names: 1..=249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Checks every bound before any work is done.
pub fn validate(request: &ProduceRequest, settings: &ProducerSettings) -> Result<(), ProduceError> {
    use limits::*;
    match request {
        ProduceRequest::SimulateSensors {
            devices,
            readings_per_device,
            start_time_ms,
            interval_ms,
            ..
        } => {
            if *devices == 0 || *devices > MAX_DEVICES {
                return Err(invalid(format!(
                    "devices must be 1..={MAX_DEVICES}, got {devices}"
                )));
            }
            if *readings_per_device == 0 {
                return Err(invalid("readings_per_device must be at least 1"));
            }
            let total = u64::from(*devices) * u64::from(*readings_per_device);
            if total > MAX_SIMULATED_RECORDS {
                return Err(invalid(format!(
                    "{devices} devices x {readings_per_device} readings = {total} records, more than {MAX_SIMULATED_RECORDS} per request"
                )));
            }
            if let Some(interval) = interval_ms {
                if *interval <= 0 || *interval > MAX_INTERVAL_MS {
                    return Err(invalid(format!(
                        "interval_ms must be 1..={MAX_INTERVAL_MS}, got {interval}"
                    )));
                }
            }
            if let Some(start) = start_time_ms {
                let last = interval_ms
                    .unwrap_or(1_000)
                    .checked_mul(i64::from(*readings_per_device))
                    .and_then(|span| start.checked_add(span));
                if *start < 0 || last.is_none() {
                    return Err(invalid(format!("start_time_ms {start} is out of range")));
                }
            }
        }
        ProduceRequest::SimulateStoreEvents {
            count,
            malformed_share,
            start_time_micros,
            ..
        } => {
            if *count == 0 || u64::from(*count) > MAX_SIMULATED_RECORDS {
                return Err(invalid(format!(
                    "count must be 1..={MAX_SIMULATED_RECORDS}, got {count}"
                )));
            }
            if !malformed_share.is_finite() || !(0.0..=1.0).contains(malformed_share) {
                return Err(invalid(format!(
                    "malformed_share must be within 0..=1, got {malformed_share}"
                )));
            }
            if let Some(start) = start_time_micros {
                if *start < 0 || start.checked_add(i64::from(*count) * 1_000_000).is_none() {
                    return Err(invalid(format!("start_time_micros {start} is out of range")));
                }
            }
        }
        ProduceRequest::PublishEvents {
            topic,
            events,
            key_field,
            ..
        } => {
            if events.is_empty() {
                return Err(invalid("events must not be empty"));
            }
            if events.len() > MAX_EXPLICIT_EVENTS {
                return Err(invalid(format!(
                    "{} events, more than {MAX_EXPLICIT_EVENTS} per request",
                    events.len()
                )));
            }
            let mut total = 0usize;
            for (index, event) in events.iter().enumerate() {
                let size = serde_json::to_vec(event).map(|v| v.len()).unwrap_or(usize::MAX);
                if size > MAX_EVENT_BYTES {
                    return Err(invalid(format!(
                        "event {index} is {size} bytes of JSON, more than {MAX_EVENT_BYTES}"
                    )));
                }
                total = total.saturating_add(size);
            }
            if total > MAX_EVENTS_TOTAL_BYTES {
                return Err(invalid(format!(
                    "events total {total} bytes of JSON, more than {MAX_EVENTS_TOTAL_BYTES}"
                )));
            }
            if let Some(topic) = topic {
                if !valid_topic_name(topic) {
                    return Err(invalid(format!("{topic:?} is not a valid Kafka topic name")));
                }
                // Those topics carry fixed payloads: explicit events there would be poison.
                if topic == &settings.sensor_topic || topic == &settings.store_topic {
                    return Err(invalid(format!(
                        "topic {topic:?} carries a fixed payload; publish explicit events to {:?} or another topic",
                        settings.explicit_topic
                    )));
                }
            }
            if let Some(field) = key_field {
                if field.is_empty() {
                    return Err(invalid("key_field must not be empty"));
                }
            }
        }
    }
    Ok(())
}
