//! The consumer side of the pipeline.
//!
//! [`decode_record`] is the pure per-record step: one ESM record, the payload its topic carries and
//! the already-resolved writer schemas in, a [`Decoded`] value or a [`Poison`] out. It never fails
//! the batch and never panics on input; every way a record can be unusable becomes a
//! [`PoisonReason`]. The batch loop ([`batch`]) does everything with side effects around it:
//! schema lookups, fan-out to the sinks, retries.
//!
//! Besides decoding, the handler checks that a value fits every sink it is headed for (NUMERIC
//! precision, text without NUL, DynamoDB number range and nesting, sizes). A value a sink would
//! reject must become poison here: if it reached the sink it would fail the batch on every retry
//! and block its partition.

pub mod archive;
pub mod batch;
#[cfg(any(test, feature = "testing"))]
pub mod fakes;
pub mod ledger;
pub mod ports;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use apache_avro::Schema;
use base64::Engine as _;
use pipeline_contracts::{contracts, Payload};
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use thiserror::Error;
use uuid::Uuid;

use crate::dynamodb_item::{explicit_event_item, fits_item_limit, item_size};
use crate::event::{EsmRecord, RawHeader, RecordFieldError, TimestampType};
use crate::model::{RecordCoordinates, SensorReading, StoreEvent};
use crate::payload::{
    avro_to_json, decode_avro, sensor_from_avro, sensor_from_json, store_event_from_avro,
    store_event_from_json, PayloadError,
};
use crate::window::WindowError;
use crate::wire::{classify, WireError, WireValue, GLUE_HEADER_LEN, GLUE_HEADER_VERSION};

pub use crate::limits::MAX_RECORD_VALUE_BYTES as MAX_VALUE_BYTES;
use crate::limits::{
    DYNAMODB_MAX_ITEM_BYTES, DYNAMODB_MAX_NESTING_DEPTH, DYNAMODB_MAX_PARTITION_KEY_BYTES,
    MAX_ARCHIVE_LINE_BYTES, MAX_POISON_REASON_BYTES,
};

/// Device ids are the window table's partition key; half of DynamoDB's limit leaves room for any
/// future prefix.
const MAX_DEVICE_ID_BYTES: usize = DYNAMODB_MAX_PARTITION_KEY_BYTES / 2;

/// Which payload each topic carries. Every payload kind has a sink, so every routed topic is
/// consumed; a topic the ESM delivers that is not routed here is poison (`unknown_topic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRoutes {
    routes: BTreeMap<String, Payload>,
}

/// Two topic entries that cannot both be routed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("topic {topic:?} is routed to both {first:?} and {second:?}")]
pub struct ConflictingRoute {
    pub topic: String,
    pub first: Payload,
    pub second: Payload,
}

impl TopicRoutes {
    /// Routes each named topic to its payload kind. The same topic twice with the same kind is
    /// one route; with two kinds it is refused, because its records could go to only one sink.
    pub fn from_topics(
        topics: impl IntoIterator<Item = (String, Payload)>,
    ) -> Result<Self, ConflictingRoute> {
        let mut routes = BTreeMap::new();
        for (topic, payload) in topics {
            match routes.get(&topic) {
                Some(&first) if first != payload => {
                    return Err(ConflictingRoute {
                        topic,
                        first,
                        second: payload,
                    })
                }
                _ => {
                    routes.insert(topic, payload);
                }
            }
        }
        Ok(Self { routes })
    }

    /// The topics and payloads of `contracts/pipeline.json` (its tests check names are unique).
    pub fn from_contract() -> Self {
        let topics = &contracts().topics;
        Self {
            routes: topics.all().map(|t| (t.name.clone(), t.payload)).collect(),
        }
    }

    pub fn payload_for(&self, topic: &str) -> Option<Payload> {
        self.routes.get(topic).copied()
    }

    pub fn topics(&self) -> impl Iterator<Item = (&str, Payload)> {
        self.routes.iter().map(|(t, p)| (t.as_str(), *p))
    }
}

/// A writer schema as the registry answered for one version id.
#[derive(Debug, Clone)]
pub enum WriterSchema {
    Found(Arc<Schema>),
    /// The registry does not know the id: the record can never be decoded.
    NotFound,
    /// The registry returned a definition that does not parse as Avro.
    Unusable(String),
    /// The version holds JSON Schema or Protobuf data (the Glue header is the same for all three).
    NotAvro(String),
    /// The version is not AVAILABLE (PENDING, FAILURE, DELETING): its data cannot be trusted.
    NotAvailable(String),
}

pub type WriterSchemas = HashMap<Uuid, WriterSchema>;

/// The schema version id of a Glue-framed value, read from the first 24 base64 characters only,
/// so the batch loop can resolve every id before decoding.
pub fn glue_schema_version_id<R: EsmRecord + ?Sized>(record: &R) -> Option<Uuid> {
    let encoded = record.value()?;
    let prefix = encoded.get(..GLUE_HEADER_LEN.div_ceil(3) * 4)?;
    // Into a stack buffer: this runs for every record of every batch.
    let mut header = [0u8; GLUE_HEADER_LEN.div_ceil(3) * 3];
    let decoded = base64::engine::general_purpose::STANDARD
        .decode_slice(prefix, &mut header)
        .ok()?;
    if decoded < GLUE_HEADER_LEN || header[0] != GLUE_HEADER_VERSION {
        return None;
    }
    let id: [u8; 16] = header[2..GLUE_HEADER_LEN].try_into().ok()?;
    Some(Uuid::from_bytes(id))
}

/// The record exactly as the ESM delivered it, so a poison record loses nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawRecord {
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    /// Base64 as received (possibly invalid: that may be why the record is poison).
    pub key: Option<String>,
    pub value: Option<String>,
    pub headers: Option<Vec<RawHeader>>,
}

impl RawRecord {
    fn of<R: EsmRecord + ?Sized>(record: &R) -> Self {
        Self {
            timestamp: record.timestamp(),
            timestamp_type: record.timestamp_type(),
            key: record.key().map(str::to_string),
            value: record.value().map(str::to_string),
            headers: record.raw_headers(),
        }
    }
}

/// Why a record was set aside.
#[derive(Debug, PartialEq, Error)]
pub enum PoisonReason {
    #[error("topic {0:?} is not routed to any payload (expected one of the configured topics)")]
    UnknownTopic(String),
    #[error("value is not valid base64: {0}")]
    BadBase64(String),
    #[error("value is null (tombstone)")]
    NullValue,
    #[error("value of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("{0}")]
    Wire(WireError),
    #[error("schema version {0} is unknown to the schema registry")]
    UnknownSchemaVersion(Uuid),
    #[error("schema version {id} is not a usable Avro schema: {problem}")]
    UnusableSchema { id: Uuid, problem: String },
    #[error("schema version {id} holds {format} data; this consumer reads AVRO only")]
    UnsupportedSchemaFormat { id: Uuid, format: String },
    #[error("schema version {id} has status {status}, not AVAILABLE")]
    SchemaVersionNotAvailable { id: Uuid, status: String },
    /// Names the bounds, not the clock: a redelivery or a redrive of the record days later sends
    /// the same poison message.
    #[error(
        "{field} {event_time_ms} ms is before {earliest_ms} ms or more than {max_ahead_ms} ms after \
         the invocation started"
    )]
    ImplausibleEventTime {
        field: &'static str,
        event_time_ms: i64,
        earliest_ms: i64,
        max_ahead_ms: i64,
    },
    #[error("{0}")]
    Payload(PayloadError),
    #[error("{0}")]
    Window(WindowError),
}

impl PoisonReason {
    /// A short stable code, for metrics and for filtering the failure queue.
    pub fn kind(&self) -> &'static str {
        match self {
            PoisonReason::UnknownTopic(_) => "unknown_topic",
            PoisonReason::BadBase64(_) => "bad_base64",
            PoisonReason::NullValue => "null_value",
            PoisonReason::TooLarge { .. } => "too_large",
            PoisonReason::Wire(WireError::Empty) => "empty_value",
            PoisonReason::Wire(WireError::UnknownFormat(_)) => "unknown_wire_format",
            PoisonReason::Wire(WireError::TruncatedHeader(_)) => "truncated_header",
            PoisonReason::Wire(WireError::UnsupportedCompression(_)) => "unsupported_compression",
            PoisonReason::Wire(WireError::InflatedTooLarge { .. }) => "too_large",
            PoisonReason::Wire(WireError::Inflate(_)) => "bad_compressed_body",
            PoisonReason::UnknownSchemaVersion(_) => "unknown_schema_version",
            PoisonReason::UnusableSchema { .. } => "unusable_schema",
            PoisonReason::UnsupportedSchemaFormat { .. } => "unsupported_schema_format",
            PoisonReason::SchemaVersionNotAvailable { .. } => "schema_version_not_available",
            PoisonReason::ImplausibleEventTime { .. } => "implausible_event_time",
            PoisonReason::Payload(PayloadError::Json(_)) => "bad_json",
            PoisonReason::Payload(PayloadError::Avro(_)) => "bad_avro",
            PoisonReason::Payload(PayloadError::Field { .. }) => "bad_field",
            PoisonReason::Payload(PayloadError::NotARecord { .. }) => "not_a_record",
            PoisonReason::Window(_) => "unplaceable_in_window",
        }
    }

    /// The reason as sent to the failure queue and logged: at most [`MAX_POISON_REASON_BYTES`],
    /// cut at a character boundary. Our own messages never quote the record's value; the cut bounds
    /// what libraries (Avro, JSON, base64) say.
    pub fn message(&self) -> String {
        let mut text = self.to_string();
        if text.len() > MAX_POISON_REASON_BYTES {
            const ELLIPSIS: &str = "…";
            let mut end = MAX_POISON_REASON_BYTES - ELLIPSIS.len();
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push_str(ELLIPSIS);
        }
        text
    }
}

/// A record that cannot be processed, with everything needed to inspect or replay it.
#[derive(Debug, PartialEq)]
pub struct Poison {
    pub coordinates: RecordCoordinates,
    pub reason: PoisonReason,
    pub raw: RawRecord,
}

/// How a value was encoded on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueFormat {
    GlueAvro,
    Json,
}

/// An explicit event, decoded with its writer schema into a JSON document.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplicitEvent {
    pub coordinates: RecordCoordinates,
    /// Kafka record timestamp, epoch ms.
    pub timestamp_ms: i64,
    /// The record key, base64 as delivered.
    pub key_base64: Option<String>,
    pub format: ValueFormat,
    pub schema_version_id: Option<Uuid>,
    pub document: Json,
}

/// A usable record.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Sensor {
        coordinates: RecordCoordinates,
        reading: SensorReading,
    },
    Store {
        coordinates: RecordCoordinates,
        event: StoreEvent,
    },
    Explicit(ExplicitEvent),
}

impl Decoded {
    pub fn coordinates(&self) -> &RecordCoordinates {
        match self {
            Decoded::Sensor { coordinates, .. } | Decoded::Store { coordinates, .. } => coordinates,
            Decoded::Explicit(event) => &event.coordinates,
        }
    }
}

/// Decodes one record. `payload` is what the record's topic carries (`None`: the topic is not
/// routed); `schemas` must hold every Glue schema version id of the batch (see
/// [`glue_schema_version_id`]); an id missing from it is treated as unknown.
pub fn decode_record<R: EsmRecord + ?Sized>(
    record: &R,
    payload: Option<Payload>,
    schemas: &WriterSchemas,
) -> Result<Decoded, Box<Poison>> {
    decode_inner(record, payload, schemas).map_err(|reason| {
        Box::new(Poison {
            coordinates: record.coordinates(),
            reason,
            raw: RawRecord::of(record),
        })
    })
}

fn decode_inner<R: EsmRecord + ?Sized>(
    record: &R,
    payload: Option<Payload>,
    schemas: &WriterSchemas,
) -> Result<Decoded, PoisonReason> {
    let payload = payload.ok_or_else(|| PoisonReason::UnknownTopic(record.topic().to_string()))?;
    let encoded_len = record.value().map_or(0, str::len);
    // Refuse before decoding, so an oversized value costs no memory.
    let decoded_len_estimate = encoded_len / 4 * 3;
    if decoded_len_estimate > MAX_VALUE_BYTES {
        return Err(PoisonReason::TooLarge {
            size: decoded_len_estimate,
            limit: MAX_VALUE_BYTES,
        });
    }
    let bytes = record.value_bytes().map_err(|e| match e {
        RecordFieldError::BadBase64 { reason, .. } => PoisonReason::BadBase64(reason),
        RecordFieldError::NullValue => PoisonReason::NullValue,
        other => PoisonReason::BadBase64(other.to_string()),
    })?;
    let wire = classify(&bytes).map_err(PoisonReason::Wire)?;
    let coordinates = record.coordinates();
    match payload {
        Payload::SensorReading => {
            let reading = match &wire {
                WireValue::Json(json) => sensor_from_json(json),
                WireValue::GlueAvro(frame) => {
                    let schema = writer_schema(schemas, frame.schema_version_id)?;
                    let body = frame.avro_body().map_err(PoisonReason::Wire)?;
                    decode_avro(&body, &schema).and_then(sensor_from_avro)
                }
            }
            .and_then(check_reading_fits_sinks)
            .map_err(PoisonReason::Payload)?;
            Ok(Decoded::Sensor { coordinates, reading })
        }
        Payload::StoreEvent => {
            let event = match &wire {
                WireValue::Json(json) => store_event_from_json(json),
                WireValue::GlueAvro(frame) => {
                    let schema = writer_schema(schemas, frame.schema_version_id)?;
                    let body = frame.avro_body().map_err(PoisonReason::Wire)?;
                    decode_avro(&body, &schema).and_then(store_event_from_avro)
                }
            }
            .and_then(check_store_event_fits_sinks)
            .map_err(PoisonReason::Payload)?;
            // Bounding each line bounds each archive block (BLOCK_OFFSETS lines at most).
            let line = archive::line_bytes(&coordinates, &event);
            if line > MAX_ARCHIVE_LINE_BYTES {
                return Err(PoisonReason::TooLarge {
                    size: line,
                    limit: MAX_ARCHIVE_LINE_BYTES,
                });
            }
            Ok(Decoded::Store { coordinates, event })
        }
        Payload::Explicit => {
            let (format, schema_version_id, document) = match &wire {
                WireValue::Json(json) => (
                    ValueFormat::Json,
                    None,
                    serde_json::from_slice::<Json>(json)
                        .map_err(|e| PoisonReason::Payload(PayloadError::Json(e.to_string())))?,
                ),
                WireValue::GlueAvro(frame) => {
                    let schema = writer_schema(schemas, frame.schema_version_id)?;
                    let body = frame.avro_body().map_err(PoisonReason::Wire)?;
                    let value = decode_avro(&body, &schema).map_err(PoisonReason::Payload)?;
                    (
                        ValueFormat::GlueAvro,
                        Some(frame.schema_version_id),
                        avro_to_json(&value),
                    )
                }
            };
            check_document_fits_dynamodb(&document).map_err(PoisonReason::Payload)?;
            let event = ExplicitEvent {
                coordinates,
                timestamp_ms: record.timestamp(),
                key_base64: record.key().map(str::to_string),
                format,
                schema_version_id,
                document,
            };
            let size = item_size(&explicit_event_item(&event, &contracts().tables.explicit_events));
            if !fits_item_limit(size) {
                return Err(PoisonReason::TooLarge {
                    size,
                    limit: DYNAMODB_MAX_ITEM_BYTES,
                });
            }
            Ok(Decoded::Explicit(event))
        }
    }
}

/// The event times the consumer accepts, relative to the invocation's clock. A reading or store
/// event stamped before 2000-01-01T00:00:00Z or more than a day after the invocation started is a
/// producer bug (a wrong unit, an unset clock); it would open a window or archive date nobody looks
/// at, so it becomes `implausible_event_time` poison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTimeBounds {
    pub earliest_ms: i64,
    pub max_ahead_ms: i64,
}

impl Default for EventTimeBounds {
    fn default() -> Self {
        Self {
            earliest_ms: 946_684_800_000,
            max_ahead_ms: 24 * 3600 * 1000,
        }
    }
}

/// Checks a decoded record's event time against `bounds` at `now_ms` (epoch ms). Explicit events
/// carry no event time of ours and always pass.
pub fn check_event_time(
    decoded: &Decoded,
    bounds: &EventTimeBounds,
    now_ms: i64,
) -> Result<(), PoisonReason> {
    let (field, event_time_ms) = match decoded {
        Decoded::Sensor { reading, .. } => ("event_time", reading.event_time),
        Decoded::Store { event, .. } => ("ts", event.ts_micros.div_euclid(1000)),
        Decoded::Explicit(_) => return Ok(()),
    };
    let latest_ms = now_ms.saturating_add(bounds.max_ahead_ms);
    if (bounds.earliest_ms..=latest_ms).contains(&event_time_ms) {
        Ok(())
    } else {
        Err(PoisonReason::ImplausibleEventTime {
            field,
            event_time_ms,
            earliest_ms: bounds.earliest_ms,
            max_ahead_ms: bounds.max_ahead_ms,
        })
    }
}

fn writer_schema(schemas: &WriterSchemas, id: Uuid) -> Result<Arc<Schema>, PoisonReason> {
    match schemas.get(&id) {
        Some(WriterSchema::Found(schema)) => Ok(schema.clone()),
        Some(WriterSchema::Unusable(problem)) => Err(PoisonReason::UnusableSchema {
            id,
            problem: problem.clone(),
        }),
        Some(WriterSchema::NotAvro(format)) => Err(PoisonReason::UnsupportedSchemaFormat {
            id,
            format: format.clone(),
        }),
        Some(WriterSchema::NotAvailable(status)) => Err(PoisonReason::SchemaVersionNotAvailable {
            id,
            status: status.clone(),
        }),
        Some(WriterSchema::NotFound) | None => Err(PoisonReason::UnknownSchemaVersion(id)),
    }
}

fn invalid(field: &'static str, problem: impl Into<String>) -> PayloadError {
    PayloadError::Field {
        field,
        problem: problem.into(),
    }
}

fn check_reading_fits_sinks(reading: SensorReading) -> Result<SensorReading, PayloadError> {
    if reading.device_id.len() > MAX_DEVICE_ID_BYTES {
        return Err(invalid(
            "device_id",
            format!("{} bytes, at most {MAX_DEVICE_ID_BYTES}", reading.device_id.len()),
        ));
    }
    Ok(reading)
}

/// `NUMERIC(12,2)` holds |x| < 10^10, i.e. fewer than 10^12 hundredths; `NUMERIC(5,2)` 10^5.
const MAX_PRICE_HUNDREDTHS: i64 = 1_000_000_000_000;
const MAX_DISCOUNT_HUNDREDTHS: i64 = 100_000;

fn check_store_event_fits_sinks(event: StoreEvent) -> Result<StoreEvent, PayloadError> {
    if event.price_cents.unsigned_abs() >= MAX_PRICE_HUNDREDTHS as u64 {
        return Err(invalid("price", "exceeds decimal(12,2)"));
    }
    if event.discount_hundredths.unsigned_abs() >= MAX_DISCOUNT_HUNDREDTHS as u64 {
        return Err(invalid("discount", "exceeds decimal(5,2)"));
    }
    for (field, text) in [
        ("request_id", Some(&event.request_id)),
        ("category", Some(&event.category)),
        ("variant", Some(&event.variant)),
        ("contact_me", event.contact_me.as_ref()),
    ] {
        if text.is_some_and(|t| t.contains('\0')) {
            return Err(invalid(field, "contains a NUL character"));
        }
    }
    if event.request_id.trim().is_empty() {
        return Err(invalid("request_id", "must not be empty"));
    }
    // Years 1..=9999: a four-digit date for the archive prefix, and inside PostgreSQL's range.
    let in_range = chrono::DateTime::from_timestamp_micros(event.ts_micros)
        .is_some_and(|t| (1..=9999).contains(&chrono::Datelike::year(&t)));
    if !in_range {
        return Err(invalid(
            "ts",
            format!("{} µs is outside years 1..=9999", event.ts_micros),
        ));
    }
    Ok(event)
}

/// DynamoDB numbers: at most 38 significant digits, magnitude in [1e-130, 1e126); nesting at most
/// 32 levels. The item size is checked on the whole item (see [`crate::dynamodb_item`]).
fn check_document_fits_dynamodb(document: &Json) -> Result<(), PayloadError> {
    fn walk(value: &Json, depth: usize) -> Result<(), PayloadError> {
        if depth > DYNAMODB_MAX_NESTING_DEPTH {
            return Err(invalid(
                "document",
                format!("nested deeper than {DYNAMODB_MAX_NESTING_DEPTH} levels"),
            ));
        }
        match value {
            Json::Number(n) => {
                if let Some(f) = n.as_f64().filter(|_| !n.is_i64() && !n.is_u64()) {
                    let magnitude = f.abs();
                    if magnitude != 0.0 && !(1e-130..1e126).contains(&magnitude) {
                        return Err(invalid(
                            "document",
                            format!("number {n} is outside DynamoDB's range"),
                        ));
                    }
                }
                Ok(())
            }
            Json::Array(items) => items.iter().try_for_each(|v| walk(v, depth + 1)),
            Json::Object(map) => map.iter().try_for_each(|(k, v)| {
                if k.is_empty() {
                    return Err(invalid("document", "an attribute name is empty"));
                }
                walk(v, depth + 1)
            }),
            Json::Null | Json::Bool(_) | Json::String(_) => Ok(()),
        }
    }
    walk(document, 1)?;
    Ok(())
}

#[cfg(test)]
mod tests;
