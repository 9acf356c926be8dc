//! Mapping between the wire payloads (Avro datums, JSON documents) and the domain types.
//!
//! Avro values are decoded with the writer's schema and resolved against the newest committed
//! reader schema from the contracts, so data written with any compatible version arrives in one
//! shape. Every problem is a [`PayloadError`] that names the field; nothing here panics on input.

use std::sync::OnceLock;

use apache_avro::types::Value;
use apache_avro::Schema;
use serde_json::Value as Json;
use thiserror::Error;

use crate::model::{format_hundredths, parse_hundredths, SensorReading, StoreEvent, StoreEventType};

#[derive(Debug, Clone, Error, PartialEq)]
pub enum PayloadError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("invalid Avro: {0}")]
    Avro(String),
    #[error("field {field:?}: {problem}")]
    Field { field: &'static str, problem: String },
    #[error("payload is a {found}, expected a record/object")]
    NotARecord { found: &'static str },
}

fn field_error(field: &'static str, problem: impl Into<String>) -> PayloadError {
    PayloadError::Field {
        field,
        problem: problem.into(),
    }
}

/// The newest committed schema of each contract payload, parsed once.
pub fn reader_schema(name: &str) -> Option<&'static Schema> {
    static SENSOR: OnceLock<Schema> = OnceLock::new();
    static STORE: OnceLock<Schema> = OnceLock::new();
    let (cell, key) = match name {
        "SensorReading" => (&SENSOR, "SensorReading"),
        "StoreEvent" => (&STORE, "StoreEvent"),
        _ => return None,
    };
    Some(cell.get_or_init(|| {
        let text = pipeline_contracts::contracts().schemas[key].latest_text();
        Schema::parse_str(text).expect("committed schemas are validated by the contracts tests")
    }))
}

/// Decodes an Avro body with the schema it was written with.
///
/// Evolution is handled by the field-by-name mapping below (optional fields may be absent), not by
/// apache-avro's schema resolution: its resolver rejects decimals encoded in the minimal number of
/// bytes, which is exactly how other Glue serializers (Java) write them.
///
/// The datum is first checked against [`crate::avro_bounds`] (nesting depth, item count), so a
/// small value cannot overflow the stack or exhaust memory while apache-avro decodes it.
pub fn decode_avro(body: &[u8], writer: &Schema) -> Result<Value, PayloadError> {
    crate::avro_bounds::check(body, writer).map_err(PayloadError::Avro)?;
    let mut cursor = body;
    let value = apache_avro::reader::datum::GenericDatumReader::builder(writer)
        .build()
        .and_then(|reader| reader.read_value(&mut cursor))
        .map_err(|e| PayloadError::Avro(e.to_string()))?;
    if !cursor.is_empty() {
        return Err(PayloadError::Avro(format!(
            "{} trailing bytes after the datum",
            cursor.len()
        )));
    }
    Ok(value)
}

/// Encodes a value with `schema` (validated against it first).
pub fn encode_avro(value: Value, schema: &Schema) -> Result<Vec<u8>, PayloadError> {
    AvroEncoder::new(schema)?.encode(value)
}

/// Encodes many values with one schema. Building the writer resolves the schema's names, which
/// costs about as much as encoding a small record, so a loop builds it once.
pub struct AvroEncoder<'s> {
    writer: apache_avro::writer::datum::GenericDatumWriter<'s>,
}

impl<'s> AvroEncoder<'s> {
    pub fn new(schema: &'s Schema) -> Result<Self, PayloadError> {
        apache_avro::writer::datum::GenericDatumWriter::builder(schema)
            .build()
            .map(|writer| Self { writer })
            .map_err(|e| PayloadError::Avro(e.to_string()))
    }

    /// Encodes `value` (validated against the schema first).
    pub fn encode(&self, value: Value) -> Result<Vec<u8>, PayloadError> {
        self.writer
            .write_value_to_vec(value)
            .map_err(|e| PayloadError::Avro(e.to_string()))
    }
}

// ---------------------------------------------------------------------------------------------
// Contract datums straight to bytes

/// The field layout of a record schema, one short name per field type (`null|double`,
/// `enum[a,b]`), to check that a hand-written writer matches the schema it claims to write.
fn record_layout(schema: &Schema) -> Option<Vec<(String, String)>> {
    fn kind(schema: &Schema) -> String {
        match schema {
            Schema::Null => "null".into(),
            Schema::Boolean => "boolean".into(),
            Schema::Int => "int".into(),
            Schema::Long => "long".into(),
            Schema::Double => "double".into(),
            Schema::String => "string".into(),
            Schema::Uuid(apache_avro::schema::UuidSchema::String) => "uuid".into(),
            Schema::TimestampMillis => "timestamp-millis".into(),
            Schema::TimestampMicros => "timestamp-micros".into(),
            Schema::Decimal(d) if matches!(d.inner, apache_avro::schema::InnerDecimalSchema::Bytes) => {
                "decimal-bytes".into()
            }
            Schema::Enum(e) => format!("enum[{}]", e.symbols.join(",")),
            Schema::Union(u) => u.variants().iter().map(kind).collect::<Vec<_>>().join("|"),
            other => format!("{other:?}"),
        }
    }
    match schema {
        Schema::Record(record) => Some(
            record
                .fields
                .iter()
                .map(|f| (f.name.clone(), kind(&f.schema)))
                .collect(),
        ),
        _ => None,
    }
}

fn check_layout(name: &str, schema: &Schema, expected: &[(&str, &str)]) -> Result<(), PayloadError> {
    let layout = record_layout(schema).unwrap_or_default();
    let matches = layout.len() == expected.len()
        && layout
            .iter()
            .zip(expected)
            .all(|((field, kind), (want_field, want_kind))| field == want_field && kind == want_kind);
    if matches {
        Ok(())
    } else {
        Err(PayloadError::Avro(format!(
            "the {name} schema's fields {layout:?} are not the layout its writer knows ({expected:?})"
        )))
    }
}

const SENSOR_V1_LAYOUT: [(&str, &str); 3] = [
    ("device_id", "string"),
    ("event_time", "timestamp-millis"),
    ("temperature", "double"),
];

/// Writes `SensorReading` datums straight to Avro bytes, for any committed version of its
/// schema (v1, or v2 with `humidity`); the same bytes as [`sensor_to_avro`] through apache-avro.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorAvroWriter {
    with_humidity: bool,
}

impl SensorAvroWriter {
    /// Checks that `schema` has one of the layouts this writer knows.
    pub fn for_schema(schema: &Schema) -> Result<Self, PayloadError> {
        let with_humidity = schema_has_field(schema, "humidity");
        let mut expected = SENSOR_V1_LAYOUT.to_vec();
        if with_humidity {
            expected.push(("humidity", "null|double"));
        }
        check_layout("SensorReading", schema, &expected)?;
        Ok(Self { with_humidity })
    }

    pub fn write(&self, reading: &SensorReading, out: &mut Vec<u8>) {
        use crate::avro_write::{write_double, write_long, write_string};
        write_string(out, &reading.device_id);
        write_long(out, reading.event_time);
        write_double(out, reading.temperature);
        if self.with_humidity {
            match reading.humidity {
                Some(h) => {
                    write_long(out, 1);
                    write_double(out, h);
                }
                None => write_long(out, 0),
            }
        }
    }
}

const STORE_EVENT_LAYOUT: [(&str, &str); 14] = [
    ("request_id", "uuid"),
    ("event_type", "enum[sales_event,inventory_event]"),
    ("store_id", "int"),
    ("cust_id", "int"),
    ("category", "string"),
    ("sku", "long"),
    ("price", "decimal-bytes"),
    ("qty", "int"),
    ("discount", "decimal-bytes"),
    ("gift_wrap", "boolean"),
    ("variant", "string"),
    ("priority_shipping", "boolean"),
    ("ts", "timestamp-micros"),
    ("contact_me", "null|string"),
];

/// Writes `StoreEvent` datums straight to Avro bytes; the same bytes as [`store_event_to_avro`]
/// through apache-avro.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreEventAvroWriter(());

impl StoreEventAvroWriter {
    /// Checks that `schema` has the layout this writer knows.
    pub fn for_schema(schema: &Schema) -> Result<Self, PayloadError> {
        check_layout("StoreEvent", schema, &STORE_EVENT_LAYOUT)?;
        Ok(Self(()))
    }

    /// Appends the datum to `out`; on error `out` is as it was.
    pub fn write(&self, event: &StoreEvent, out: &mut Vec<u8>) -> Result<(), PayloadError> {
        use crate::avro_write::{write_boolean, write_bytes, write_long, write_string};
        // A request id that parses as a UUID is written in its canonical form, as apache-avro
        // writes a `Value::Uuid`; any other string as it is, if it has at least the 32 characters
        // apache-avro's validation asks of a string UUID.
        match uuid::Uuid::parse_str(&event.request_id) {
            Ok(id) => write_string(
                out,
                id.hyphenated().encode_lower(&mut uuid::Uuid::encode_buffer()),
            ),
            Err(_) if event.request_id.len() >= 32 => write_string(out, &event.request_id),
            Err(_) => {
                return Err(field_error(
                    "request_id",
                    format!(
                        "not a UUID and {} bytes, shorter than a string UUID's 32",
                        event.request_id.len()
                    ),
                ))
            }
        }
        write_long(
            out,
            match event.event_type {
                StoreEventType::Sales => 0,
                StoreEventType::Inventory => 1,
            },
        );
        write_long(out, i64::from(event.store_id));
        write_long(out, i64::from(event.cust_id));
        write_string(out, &event.category);
        write_long(out, event.sku);
        write_bytes(out, &i64_to_decimal_bytes_array(event.price_cents));
        write_long(out, i64::from(event.qty));
        write_bytes(out, &i64_to_decimal_bytes_array(event.discount_hundredths));
        write_boolean(out, event.gift_wrap);
        write_string(out, &event.variant);
        write_boolean(out, event.priority_shipping);
        write_long(out, event.ts_micros);
        match &event.contact_me {
            Some(c) => {
                write_long(out, 1);
                write_string(out, c);
            }
            None => write_long(out, 0),
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Avro value access

struct Fields(Vec<(String, Value)>);

impl Fields {
    fn from_value(value: Value) -> Result<Self, PayloadError> {
        match value {
            Value::Record(fields) => Ok(Fields(fields)),
            other => Err(PayloadError::NotARecord {
                found: avro_kind(&other),
            }),
        }
    }

    fn take(&mut self, field: &'static str) -> Result<Value, PayloadError> {
        let index = self
            .0
            .iter()
            .position(|(name, _)| name == field)
            .ok_or_else(|| field_error(field, "missing"))?;
        Ok(unwrap_union(self.0.swap_remove(index).1))
    }

    fn string(&mut self, field: &'static str) -> Result<String, PayloadError> {
        match self.take(field)? {
            Value::String(s) | Value::Enum(_, s) => Ok(s),
            Value::Uuid(u) => Ok(u.to_string()),
            other => Err(field_error(
                field,
                format!("expected string, got {}", avro_kind(&other)),
            )),
        }
    }

    fn optional_string(&mut self, field: &'static str) -> Result<Option<String>, PayloadError> {
        match self.take(field)? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Err(field_error(
                field,
                format!("expected string or null, got {}", avro_kind(&other)),
            )),
        }
    }

    fn long(&mut self, field: &'static str) -> Result<i64, PayloadError> {
        match self.take(field)? {
            Value::Long(v) => Ok(v),
            Value::Int(v) => Ok(v.into()),
            other => Err(field_error(
                field,
                format!("expected long, got {}", avro_kind(&other)),
            )),
        }
    }

    /// A point in time in `unit`, converted from whatever unit the writer's logical type says
    /// (`timestamp-millis`/`-micros`/`-nanos` and their `local-` forms, read as UTC). A plain long
    /// or int is taken to be in `unit` already.
    fn timestamp(&mut self, field: &'static str, unit: TimeUnit) -> Result<i64, PayloadError> {
        let (value, written) = match self.take(field)? {
            Value::Long(v) => (v, unit),
            Value::Int(v) => (v.into(), unit),
            Value::TimestampMillis(v) | Value::LocalTimestampMillis(v) => (v, TimeUnit::Millis),
            Value::TimestampMicros(v) | Value::LocalTimestampMicros(v) => (v, TimeUnit::Micros),
            Value::TimestampNanos(v) | Value::LocalTimestampNanos(v) => (v, TimeUnit::Nanos),
            other => {
                return Err(field_error(
                    field,
                    format!("expected a timestamp, got {}", avro_kind(&other)),
                ))
            }
        };
        written
            .convert(value, unit)
            .ok_or_else(|| field_error(field, "timestamp overflows 64 bits in the target unit"))
    }

    fn int(&mut self, field: &'static str) -> Result<i32, PayloadError> {
        match self.take(field)? {
            Value::Int(v) => Ok(v),
            other => Err(field_error(
                field,
                format!("expected int, got {}", avro_kind(&other)),
            )),
        }
    }

    fn double(&mut self, field: &'static str) -> Result<f64, PayloadError> {
        let v = match self.take(field)? {
            Value::Double(v) => v,
            Value::Float(v) => v.into(),
            other => {
                return Err(field_error(
                    field,
                    format!("expected double, got {}", avro_kind(&other)),
                ))
            }
        };
        finite(field, v)
    }

    fn optional_double(&mut self, field: &'static str) -> Result<Option<f64>, PayloadError> {
        match self.take(field) {
            Err(PayloadError::Field { .. }) => Ok(None),
            Err(e) => Err(e),
            Ok(Value::Null) => Ok(None),
            Ok(Value::Double(v)) => finite(field, v).map(Some),
            Ok(Value::Float(v)) => finite(field, v.into()).map(Some),
            Ok(other) => Err(field_error(
                field,
                format!("expected double or null, got {}", avro_kind(&other)),
            )),
        }
    }

    fn boolean(&mut self, field: &'static str) -> Result<bool, PayloadError> {
        match self.take(field)? {
            Value::Boolean(v) => Ok(v),
            other => Err(field_error(
                field,
                format!("expected boolean, got {}", avro_kind(&other)),
            )),
        }
    }

    fn hundredths(&mut self, field: &'static str) -> Result<i64, PayloadError> {
        match self.take(field)? {
            Value::Decimal(d) => {
                let bytes: Vec<u8> = (&d)
                    .try_into()
                    .map_err(|e: apache_avro::Error| field_error(field, e.to_string()))?;
                decimal_bytes_to_i64(&bytes)
                    .ok_or_else(|| field_error(field, "decimal does not fit in 64 bits"))
            }
            other => Err(field_error(
                field,
                format!("expected decimal, got {}", avro_kind(&other)),
            )),
        }
    }
}

/// Units of Avro timestamp logical types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeUnit {
    Millis,
    Micros,
    Nanos,
}

impl TimeUnit {
    fn per_second(self) -> i64 {
        match self {
            TimeUnit::Millis => 1_000,
            TimeUnit::Micros => 1_000_000,
            TimeUnit::Nanos => 1_000_000_000,
        }
    }

    /// `value` in `self` as `target`, flooring towards the past when the target is coarser.
    fn convert(self, value: i64, target: TimeUnit) -> Option<i64> {
        let (from, to) = (self.per_second(), target.per_second());
        if from >= to {
            Some(value.div_euclid(from / to))
        } else {
            value.checked_mul(to / from)
        }
    }
}

fn finite(field: &'static str, v: f64) -> Result<f64, PayloadError> {
    if v.is_finite() {
        Ok(v)
    } else {
        Err(field_error(field, "not a finite number"))
    }
}

fn unwrap_union(value: Value) -> Value {
    match value {
        Value::Union(_, inner) => *inner,
        other => other,
    }
}

fn avro_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int(_) => "int",
        Value::Long(_) => "long",
        Value::Float(_) => "float",
        Value::Double(_) => "double",
        Value::Bytes(_) | Value::Fixed(..) => "bytes",
        Value::String(_) => "string",
        Value::Enum(..) => "enum",
        Value::Union(..) => "union",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Record(_) => "record",
        Value::Decimal(_) | Value::BigDecimal(_) => "decimal",
        Value::Uuid(_) => "uuid",
        _ => "logical value",
    }
}

/// Big-endian two's complement (Avro decimal bytes) to i64.
fn decimal_bytes_to_i64(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() {
        return Some(0);
    }
    let negative = bytes[0] & 0x80 != 0;
    let significant: &[u8] = {
        let pad = if negative { 0xff } else { 0x00 };
        let skip = bytes
            .iter()
            .take_while(|&&b| b == pad)
            .count()
            .min(bytes.len() - 1);
        &bytes[skip..]
    };
    if significant.len() > 8 {
        return None;
    }
    let mut buf = if negative { [0xffu8; 8] } else { [0u8; 8] };
    buf[8 - significant.len()..].copy_from_slice(significant);
    Some(i64::from_be_bytes(buf))
}

/// Always eight bytes: apache-avro validates that the byte length can hold the schema's precision
/// (up to 18 digits here), whatever the value.
fn i64_to_decimal_bytes(value: i64) -> Vec<u8> {
    i64_to_decimal_bytes_array(value).to_vec()
}

/// A decimal's unscaled value as eight big-endian two's-complement bytes.
fn i64_to_decimal_bytes_array(value: i64) -> [u8; 8] {
    value.to_be_bytes()
}

// ---------------------------------------------------------------------------------------------
// SensorReading

pub fn sensor_from_avro(value: Value) -> Result<SensorReading, PayloadError> {
    let mut f = Fields::from_value(value)?;
    let reading = SensorReading {
        device_id: f.string("device_id")?,
        event_time: f.timestamp("event_time", TimeUnit::Millis)?,
        temperature: f.double("temperature")?,
        humidity: f.optional_double("humidity")?,
    };
    validate_sensor(reading)
}

/// A datum for `schema`, which may be any committed `SensorReading` version.
pub fn sensor_to_avro(reading: &SensorReading, schema: &Schema) -> Value {
    let mut fields = vec![
        ("device_id".to_string(), Value::String(reading.device_id.clone())),
        (
            "event_time".to_string(),
            Value::TimestampMillis(reading.event_time),
        ),
        ("temperature".to_string(), Value::Double(reading.temperature)),
    ];
    if schema_has_field(schema, "humidity") {
        let humidity = match reading.humidity {
            Some(h) => Value::Union(1, Box::new(Value::Double(h))),
            None => Value::Union(0, Box::new(Value::Null)),
        };
        fields.push(("humidity".to_string(), humidity));
    }
    Value::Record(fields)
}

/// The shape nearly every sensor value has, deserialised without building a JSON tree. It accepts
/// exactly what the general path below accepts with the same result (integers for `event_time`,
/// any number for `temperature`, `humidity` absent, null or a number, other fields ignored);
/// whatever it refuses (duplicate keys included) goes through the general path, which names the
/// problem or applies its last-key-wins rule.
#[derive(serde::Deserialize)]
struct SensorJson<'a> {
    #[serde(borrow)]
    device_id: std::borrow::Cow<'a, str>,
    event_time: i64,
    temperature: f64,
    #[serde(default)]
    humidity: Option<f64>,
}

pub fn sensor_from_json(bytes: &[u8]) -> Result<SensorReading, PayloadError> {
    if let Ok(usual) = serde_json::from_slice::<SensorJson<'_>>(bytes) {
        return validate_sensor(SensorReading {
            device_id: usual.device_id.into_owned(),
            event_time: usual.event_time,
            temperature: usual.temperature,
            humidity: usual.humidity,
        });
    }
    sensor_from_json_tree(bytes)
}

/// The general path: any JSON document, each problem named. It also reads the seed producer S1's
/// shape, `{"device_id": 1, "timestamp": "2023-05-10T12:00:00.123456", "temperature": 27}`: an
/// integer `device_id` is rendered as its decimal string, and without `event_time` the time is
/// `timestamp`, an ISO-8601 date-time (UTC when it has no offset, floored to the millisecond) or
/// integer epoch milliseconds.
fn sensor_from_json_tree(bytes: &[u8]) -> Result<SensorReading, PayloadError> {
    let mut object = json_object(bytes)?;
    let device_id = match json_take(&mut object, "device_id")? {
        Json::String(s) => s,
        Json::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        other => {
            return Err(field_error(
                "device_id",
                format!("expected a string or an integer, got {}", json_kind(&other)),
            ))
        }
    };
    let event_time = if object.contains_key("event_time") {
        json_i64(&mut object, "event_time")?
    } else {
        match json_take(&mut object, "timestamp").map_err(|_| field_error("event_time", "missing"))? {
            Json::Number(n) => n
                .as_i64()
                .ok_or_else(|| field_error("timestamp", "expected integer epoch milliseconds"))?,
            Json::String(s) => parse_iso_micros(&s)
                .map(|micros| micros.div_euclid(1000))
                .ok_or_else(|| {
                    field_error(
                        "timestamp",
                        format!("not an ISO-8601 date-time ({} bytes)", s.len()),
                    )
                })?,
            other => {
                return Err(field_error(
                    "timestamp",
                    format!("expected a date-time, got {}", json_kind(&other)),
                ))
            }
        }
    };
    let reading = SensorReading {
        device_id,
        event_time,
        temperature: json_f64(&mut object, "temperature")?,
        humidity: match object.remove("humidity") {
            None | Some(Json::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .ok_or_else(|| field_error("humidity", "expected a number or null"))?,
            ),
        },
    };
    validate_sensor(reading)
}

fn validate_sensor(reading: SensorReading) -> Result<SensorReading, PayloadError> {
    if reading.device_id.trim().is_empty() {
        return Err(field_error("device_id", "must not be empty"));
    }
    if !(-273.15..=1000.0).contains(&reading.temperature) {
        return Err(field_error(
            "temperature",
            format!("{} °C is not a physical reading", reading.temperature),
        ));
    }
    Ok(reading)
}

// ---------------------------------------------------------------------------------------------
// StoreEvent

pub fn store_event_from_avro(value: Value) -> Result<StoreEvent, PayloadError> {
    let mut f = Fields::from_value(value)?;
    let event_type = parse_event_type(f.string("event_type")?)?;
    Ok(StoreEvent {
        request_id: f.string("request_id")?,
        event_type,
        store_id: f.int("store_id")?,
        cust_id: f.int("cust_id")?,
        category: f.string("category")?,
        sku: f.long("sku")?,
        price_cents: f.hundredths("price")?,
        qty: f.int("qty")?,
        discount_hundredths: f.hundredths("discount")?,
        gift_wrap: f.boolean("gift_wrap")?,
        variant: f.string("variant")?,
        priority_shipping: f.boolean("priority_shipping")?,
        ts_micros: f.timestamp("ts", TimeUnit::Micros)?,
        contact_me: f.optional_string("contact_me")?,
    })
}

/// The seed producer S3 writes `sale_event` (its README says `sales_event`, our symbol): both are
/// sales. The symbol is never quoted back: reasons do not carry record contents.
fn parse_event_type(symbol: String) -> Result<StoreEventType, PayloadError> {
    const SEED_SALES_ALIAS: &str = "sale_event";
    if symbol == SEED_SALES_ALIAS {
        return Ok(StoreEventType::Sales);
    }
    StoreEventType::from_symbol(&symbol).ok_or_else(|| {
        field_error(
            "event_type",
            format!(
                "unknown symbol ({} bytes), expected sales_event, sale_event or inventory_event",
                symbol.len()
            ),
        )
    })
}

pub fn store_event_to_avro(event: &StoreEvent) -> Value {
    let uuid_value = match uuid::Uuid::parse_str(&event.request_id) {
        Ok(u) => Value::Uuid(u),
        Err(_) => Value::String(event.request_id.clone()),
    };
    let symbol_index = match event.event_type {
        StoreEventType::Sales => 0,
        StoreEventType::Inventory => 1,
    };
    Value::Record(vec![
        ("request_id".into(), uuid_value),
        (
            "event_type".into(),
            Value::Enum(symbol_index, event.event_type.as_str().into()),
        ),
        ("store_id".into(), Value::Int(event.store_id)),
        ("cust_id".into(), Value::Int(event.cust_id)),
        ("category".into(), Value::String(event.category.clone())),
        ("sku".into(), Value::Long(event.sku)),
        (
            "price".into(),
            Value::Decimal(i64_to_decimal_bytes(event.price_cents).into()),
        ),
        ("qty".into(), Value::Int(event.qty)),
        (
            "discount".into(),
            Value::Decimal(i64_to_decimal_bytes(event.discount_hundredths).into()),
        ),
        ("gift_wrap".into(), Value::Boolean(event.gift_wrap)),
        ("variant".into(), Value::String(event.variant.clone())),
        (
            "priority_shipping".into(),
            Value::Boolean(event.priority_shipping),
        ),
        ("ts".into(), Value::TimestampMicros(event.ts_micros)),
        (
            "contact_me".into(),
            match &event.contact_me {
                Some(c) => Value::Union(1, Box::new(Value::String(c.clone()))),
                None => Value::Union(0, Box::new(Value::Null)),
            },
        ),
    ])
}

/// Parses the JSON form: money as a number or a decimal string, `ts` as epoch microseconds or an
/// ISO-8601 date-time (UTC when it carries no offset, as the seed producer writes it).
pub fn store_event_from_json(bytes: &[u8]) -> Result<StoreEvent, PayloadError> {
    let mut o = json_object(bytes)?;
    let event_type = parse_event_type(json_string(&mut o, "event_type")?)?;
    Ok(StoreEvent {
        request_id: json_string(&mut o, "request_id")?,
        event_type,
        store_id: json_i32(&mut o, "store_id")?,
        cust_id: json_i32(&mut o, "cust_id")?,
        category: json_string(&mut o, "category")?,
        sku: json_i64(&mut o, "sku")?,
        price_cents: json_hundredths(&mut o, "price")?,
        qty: json_i32(&mut o, "qty")?,
        discount_hundredths: json_hundredths(&mut o, "discount")?,
        gift_wrap: json_bool(&mut o, "gift_wrap")?,
        variant: json_string(&mut o, "variant")?,
        priority_shipping: json_bool(&mut o, "priority_shipping")?,
        ts_micros: json_timestamp_micros(&mut o, "ts")?,
        contact_me: match o.remove("contact_me") {
            None | Some(Json::Null) => None,
            Some(Json::String(s)) => Some(s),
            Some(_) => return Err(field_error("contact_me", "expected a string or null")),
        },
    })
}

/// The JSON form the producer writes and S3 stores: money as exact decimal strings.
pub fn store_event_to_json(event: &StoreEvent) -> Json {
    serde_json::json!({
        "request_id": event.request_id,
        "event_type": event.event_type.as_str(),
        "store_id": event.store_id,
        "cust_id": event.cust_id,
        "category": event.category,
        "sku": event.sku,
        "price": format_hundredths(event.price_cents),
        "qty": event.qty,
        "discount": format_hundredths(event.discount_hundredths),
        "gift_wrap": event.gift_wrap,
        "variant": event.variant,
        "priority_shipping": event.priority_shipping,
        "ts": event.ts_micros,
        "contact_me": event.contact_me,
    })
}

// ---------------------------------------------------------------------------------------------
// Generic records

/// Converts any decoded Avro value to JSON, for storing explicit events as documents.
/// Logical types become their natural JSON: timestamps stay numbers, decimals become strings.
pub fn avro_to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => Json::from(*i),
        Value::Long(l)
        | Value::TimeMicros(l)
        | Value::TimestampMillis(l)
        | Value::TimestampMicros(l)
        | Value::LocalTimestampMillis(l)
        | Value::LocalTimestampMicros(l)
        | Value::TimestampNanos(l)
        | Value::LocalTimestampNanos(l) => Json::from(*l),
        Value::Float(f) => serde_json::Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number),
        Value::Double(d) => serde_json::Number::from_f64(*d).map_or(Json::Null, Json::Number),
        Value::Bytes(b) | Value::Fixed(_, b) => Json::String(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            b,
        )),
        Value::String(s) | Value::Enum(_, s) => Json::String(s.clone()),
        Value::Uuid(u) => Json::String(u.to_string()),
        Value::Union(_, inner) => avro_to_json(inner),
        Value::Array(items) => Json::Array(items.iter().map(avro_to_json).collect()),
        Value::Map(map) => Json::Object(map.iter().map(|(k, v)| (k.clone(), avro_to_json(v))).collect()),
        Value::Record(fields) => {
            Json::Object(fields.iter().map(|(k, v)| (k.clone(), avro_to_json(v))).collect())
        }
        Value::Decimal(d) => match <Vec<u8>>::try_from(d) {
            Ok(bytes) => match decimal_bytes_to_i64(&bytes) {
                Some(unscaled) => Json::String(unscaled.to_string()),
                None => Json::String(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    bytes,
                )),
            },
            Err(_) => Json::Null,
        },
        Value::BigDecimal(d) => Json::String(d.to_string()),
        Value::Duration(d) => serde_json::json!({
            "months": u32::from(d.months()),
            "days": u32::from(d.days()),
            "millis": u32::from(d.millis()),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// JSON access

fn json_object(bytes: &[u8]) -> Result<serde_json::Map<String, Json>, PayloadError> {
    match serde_json::from_slice::<Json>(bytes) {
        Ok(Json::Object(map)) => Ok(map),
        Ok(other) => Err(PayloadError::NotARecord {
            found: json_kind(&other),
        }),
        Err(e) => Err(PayloadError::Json(e.to_string())),
    }
}

fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

fn json_take(o: &mut serde_json::Map<String, Json>, field: &'static str) -> Result<Json, PayloadError> {
    o.remove(field).ok_or_else(|| field_error(field, "missing"))
}

fn json_string(o: &mut serde_json::Map<String, Json>, field: &'static str) -> Result<String, PayloadError> {
    match json_take(o, field)? {
        Json::String(s) => Ok(s),
        other => Err(field_error(
            field,
            format!("expected a string, got {}", json_kind(&other)),
        )),
    }
}

fn json_i64(o: &mut serde_json::Map<String, Json>, field: &'static str) -> Result<i64, PayloadError> {
    let value = json_take(o, field)?;
    value
        .as_i64()
        .ok_or_else(|| field_error(field, format!("expected an integer, got {}", json_kind(&value))))
}

fn json_i32(o: &mut serde_json::Map<String, Json>, field: &'static str) -> Result<i32, PayloadError> {
    let wide = json_i64(o, field)?;
    i32::try_from(wide).map_err(|_| field_error(field, format!("{wide} does not fit in 32 bits")))
}

fn json_f64(o: &mut serde_json::Map<String, Json>, field: &'static str) -> Result<f64, PayloadError> {
    let value = json_take(o, field)?;
    value
        .as_f64()
        .ok_or_else(|| field_error(field, format!("expected a number, got {}", json_kind(&value))))
}

fn json_bool(o: &mut serde_json::Map<String, Json>, field: &'static str) -> Result<bool, PayloadError> {
    match json_take(o, field)? {
        Json::Bool(b) => Ok(b),
        other => Err(field_error(
            field,
            format!("expected a boolean, got {}", json_kind(&other)),
        )),
    }
}

fn json_hundredths(o: &mut serde_json::Map<String, Json>, field: &'static str) -> Result<i64, PayloadError> {
    let text = match json_take(o, field)? {
        Json::Number(n) => n.to_string(),
        Json::String(s) => s,
        other => {
            return Err(field_error(
                field,
                format!("expected a decimal, got {}", json_kind(&other)),
            ))
        }
    };
    parse_hundredths(&text).ok_or_else(|| {
        field_error(
            field,
            format!("not a decimal with at most 2 places ({} bytes)", text.len()),
        )
    })
}

fn json_timestamp_micros(
    o: &mut serde_json::Map<String, Json>,
    field: &'static str,
) -> Result<i64, PayloadError> {
    match json_take(o, field)? {
        Json::Number(n) => n
            .as_i64()
            .ok_or_else(|| field_error(field, "expected integer epoch microseconds")),
        Json::String(s) => parse_iso_micros(&s)
            .ok_or_else(|| field_error(field, format!("not an ISO-8601 date-time ({} bytes)", s.len()))),
        other => Err(field_error(
            field,
            format!("expected a timestamp, got {}", json_kind(&other)),
        )),
    }
}

fn parse_iso_micros(text: &str) -> Option<i64> {
    if let Ok(with_offset) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(with_offset.timestamp_micros());
    }
    // Naive times (no offset) are UTC; Python's isoformat() and str() separators both occur.
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|format| chrono::NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc().timestamp_micros())
}

fn schema_has_field(schema: &Schema, field: &str) -> bool {
    matches!(schema, Schema::Record(record) if record.fields.iter().any(|f| f.name == field))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(path: &str) -> Schema {
        Schema::parse_str(pipeline_contracts::schema_text(path).unwrap()).unwrap()
    }

    #[test]
    fn the_sensor_json_fast_path_agrees_with_the_general_path() {
        let inputs = [
            r#"{"device_id":"sensor-001","event_time":1767225600000,"temperature":21.5,"humidity":40.1}"#,
            r#"{"device_id":"sensor-001","event_time":1767225600000,"temperature":21.5}"#,
            r#"{"device_id":"sensor-001","event_time":1767225600000,"temperature":21.5,"humidity":null}"#,
            r#"{"temperature":-3,"humidity":1,"event_time":-5,"device_id":"sénsor","extra":[1,{"a":2}]}"#,
            r#"{"device_id":"a","event_time":1,"temperature":1,"device_id":"b"}"#,
            r#"{"device_id":"a","event_time":1,"temperature":1,"temperature":2000}"#,
            r#"{"device_id":"a","event_time":1.0,"temperature":1}"#,
            r#"{"device_id":"a","event_time":18446744073709551615,"temperature":1}"#,
            r#"{"device_id":"a","event_time":1,"temperature":"1"}"#,
            r#"{"device_id":"a","event_time":1,"temperature":1,"humidity":"wet"}"#,
            r#"{"device_id":"  ","event_time":1,"temperature":1}"#,
            r#"{"device_id":null,"event_time":1,"temperature":1}"#,
            r#"{"device_id":"a","event_time":1,"temperature":1e999}"#,
            r#"{"device_id":"a","event_time":1}"#,
            r#"{"device_id":"a","event_time":1,"temperature":1} trailing"#,
            r#"[1,2]"#,
            r#""text""#,
            r#"{"device_id":"a","event_time":1,"temperature":1"#,
        ];
        for input in inputs {
            assert_eq!(
                sensor_from_json(input.as_bytes()),
                sensor_from_json_tree(input.as_bytes()),
                "{input}"
            );
        }
        assert_eq!(
            sensor_from_json(inputs[4].as_bytes()).unwrap().device_id,
            "b",
            "a repeated key: the last one wins, as in the general path"
        );
    }

    fn sample_store_event() -> StoreEvent {
        StoreEvent {
            request_id: "f5570d0f-5389-4bce-98c3-7ed5380eefb2".into(),
            event_type: StoreEventType::Inventory,
            store_id: 6,
            cust_id: 206,
            category: "Camera".into(),
            sku: 100_657,
            price_cents: 252,
            qty: 18,
            discount_hundredths: 820,
            gift_wrap: true,
            variant: "red".into(),
            priority_shipping: true,
            ts_micros: 1_619_355_160_938_937,
            contact_me: None,
        }
    }

    #[test]
    fn v1_sensor_data_is_read_as_v2_with_no_humidity() {
        let v1 = schema("schemas/sensor_reading.v1.avsc");
        let reading = SensorReading {
            device_id: "d-1".into(),
            event_time: 1_700_000_000_123,
            temperature: 21.5,
            humidity: None,
        };
        let body = encode_avro(sensor_to_avro(&reading, &v1), &v1).unwrap();
        let value = decode_avro(&body, &v1).unwrap();
        assert_eq!(sensor_from_avro(value).unwrap(), reading);
    }

    #[test]
    fn v2_sensor_round_trips_with_humidity() {
        let v2 = reader_schema("SensorReading").unwrap();
        let reading = SensorReading {
            device_id: "d-2".into(),
            event_time: 5,
            temperature: -3.25,
            humidity: Some(40.5),
        };
        let body = encode_avro(sensor_to_avro(&reading, v2), v2).unwrap();
        assert_eq!(
            sensor_from_avro(decode_avro(&body, v2).unwrap()).unwrap(),
            reading
        );
    }

    #[test]
    fn store_event_round_trips_through_avro_with_exact_money() {
        let schema = reader_schema("StoreEvent").unwrap();
        let mut event = sample_store_event();
        event.price_cents = -123_456_789;
        event.contact_me = Some("someone@example.com".into());
        let body = encode_avro(store_event_to_avro(&event), schema).unwrap();
        let back = store_event_from_avro(decode_avro(&body, schema).unwrap()).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn store_event_round_trips_through_json_and_accepts_the_seed_shape() {
        let event = sample_store_event();
        let json = serde_json::to_vec(&store_event_to_json(&event)).unwrap();
        assert_eq!(store_event_from_json(&json).unwrap(), event);
        let seed_shaped =
            br#"{"request_id":"f5570d0f-5389-4bce-98c3-7ed5380eefb2","event_type":"inventory_event",
            "store_id":6,"cust_id":206,"category":"Camera","sku":100657,"price":2.52,"qty":18,"discount":8.2,
            "gift_wrap":true,"variant":"red","priority_shipping":true,"ts":"2021-04-25T12:52:40.938937",
            "contact_me":"github.com/miztiik"}"#;
        let parsed = store_event_from_json(seed_shaped).unwrap();
        assert_eq!(parsed.price_cents, 252);
        assert_eq!(parsed.discount_hundredths, 820);
        assert_eq!(parsed.ts_micros, 1_619_355_160_938_937);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err =
            sensor_from_json(br#"{"device_id":"d","event_time":"yesterday","temperature":1}"#).unwrap_err();
        assert!(
            matches!(
                err,
                PayloadError::Field {
                    field: "event_time",
                    ..
                }
            ),
            "{err}"
        );
        let err = sensor_from_json(br#"{"device_id":"d","event_time":1}"#).unwrap_err();
        assert_eq!(
            err,
            PayloadError::Field {
                field: "temperature",
                problem: "missing".into()
            }
        );
        let err = sensor_from_json(b"[1,2]").unwrap_err();
        assert_eq!(err, PayloadError::NotARecord { found: "array" });
        let err = sensor_from_json(b"{not json").unwrap_err();
        assert!(matches!(err, PayloadError::Json(_)));
        let err = store_event_from_json(br#"{"event_type":"refund_event"}"#).unwrap_err();
        assert!(
            matches!(
                err,
                PayloadError::Field {
                    field: "event_type",
                    ..
                }
            ),
            "{err}"
        );
        let err = sensor_from_json(br#"{"device_id":"d","event_time":1,"temperature":5000}"#).unwrap_err();
        assert!(
            matches!(
                err,
                PayloadError::Field {
                    field: "temperature",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn avro_written_with_another_record_is_rejected_not_misread() {
        let store = reader_schema("StoreEvent").unwrap();
        let body = encode_avro(store_event_to_avro(&sample_store_event()), store).unwrap();
        // Decoding store-event bytes as if they were sensor readings must fail cleanly.
        let sensor = reader_schema("SensorReading").unwrap();
        let result = decode_avro(&body, sensor).map(sensor_from_avro);
        assert!(!matches!(result, Ok(Ok(_))));
        // Truncated bodies are errors too.
        assert!(decode_avro(&body[..body.len() / 2], store).is_err());
    }

    #[test]
    fn decimal_bytes_round_trip_and_minimal_encodings_from_other_writers_decode() {
        for v in [
            0i64,
            1,
            -1,
            127,
            128,
            -128,
            -129,
            255,
            256,
            i64::MAX,
            i64::MIN,
            123_456,
        ] {
            let bytes = i64_to_decimal_bytes(v);
            assert_eq!(decimal_bytes_to_i64(&bytes), Some(v), "{v} -> {bytes:?}");
        }
        assert_eq!(decimal_bytes_to_i64(&[0x00, 0x80]), Some(128));
        assert_eq!(decimal_bytes_to_i64(&[0xff]), Some(-1));
        assert_eq!(decimal_bytes_to_i64(&[0x01, 0, 0, 0, 0, 0, 0, 0, 0]), None);
        // A Java writer encodes 2.52 in the fewest bytes; decoding must not depend on our width.
        let store = reader_schema("StoreEvent").unwrap();
        let Value::Record(mut fields) = store_event_to_avro(&sample_store_event()) else {
            unreachable!()
        };
        for (name, value) in fields.iter_mut() {
            if name == "price" {
                *value = Value::Decimal(vec![0x00, 0xfc].into());
            }
        }
        let mut body = Vec::new();
        for (name, value) in &fields {
            let field_schema = match store {
                Schema::Record(r) => &r.fields.iter().find(|f| &f.name == name).unwrap().schema,
                _ => unreachable!(),
            };
            let encoded = match (name.as_str(), value) {
                ("price", Value::Decimal(_)) => {
                    // Avro bytes: zig-zag length 2 (0x04), then the two value bytes.
                    vec![0x04, 0x00, 0xfc]
                }
                _ => encode_avro(value.clone(), field_schema).unwrap(),
            };
            body.extend_from_slice(&encoded);
        }
        let decoded = store_event_from_avro(decode_avro(&body, store).unwrap()).unwrap();
        assert_eq!(decoded.price_cents, 252);
    }

    #[test]
    fn datums_that_would_exhaust_the_decoder_are_refused_before_decoding() {
        let linked = Schema::parse_str(
            r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","Node"]}]}"#,
        )
        .unwrap();
        // Two bytes a level: deep enough to overflow any thread's stack if it were decoded.
        let mut body = [0x02u8, 0x02].repeat(100_000);
        body.extend_from_slice(&[0x02, 0x00]);
        let err = decode_avro(&body, &linked).unwrap_err();
        assert!(err.to_string().contains("deeper than"), "{err}");
        // A shallow datum of the same recursive schema decodes.
        assert!(decode_avro(&[0x02, 0x02, 0x04, 0x00], &linked).is_ok());
        // Four bytes claiming 8 million nulls.
        let nulls = Schema::parse_str(r#"{"type":"array","items":"null"}"#).unwrap();
        let err = decode_avro(&[0x80, 0xc8, 0xd0, 0x07, 0x00], &nulls).unwrap_err();
        assert!(err.to_string().contains("array items"), "{err}");
    }

    #[test]
    fn generic_avro_becomes_plain_json() {
        let value = Value::Record(vec![
            ("a".into(), Value::Union(1, Box::new(Value::String("x".into())))),
            ("b".into(), Value::Array(vec![Value::Long(1), Value::Null])),
            ("c".into(), Value::Double(f64::NAN)),
        ]);
        assert_eq!(
            avro_to_json(&value),
            serde_json::json!({"a":"x","b":[1,null],"c":null})
        );
    }
}
