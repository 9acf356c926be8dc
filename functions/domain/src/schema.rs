//! Avro schemas for the registry: inference from explicit JSON events, and the compatibility
//! rules of the Glue Schema Registry.
//!
//! Inference turns a set of JSON objects into one record schema that can encode every one of them:
//!
//! | JSON seen                                   | Avro type                                  |
//! |---------------------------------------------|--------------------------------------------|
//! | string / boolean                            | `string` / `boolean`                       |
//! | integer (fits 64 bits)                      | `long`                                     |
//! | number with a fraction, or ints mixed with it| `double`                                  |
//! | `null` next to another type                 | `["null", T]` with default `null`          |
//! | object                                      | nested record named `<Parent>_<field>`     |
//! | array                                       | `array` of the merged element type         |
//! | field missing in some events                | `["null", T]` with default `null`          |
//! | only `null` / only empty arrays             | `null` / `array` of `null`                 |
//!
//! Fields are sorted by name and the definition text is produced by this module (never by a
//! map whose order depends on crate features), so the same events always yield byte-identical
//! definitions: that is what lets `GetSchemaByDefinition` find an existing version again.
//! Two different kinds for one field (say a string here and a number there) are refused, naming
//! the field, rather than widened into a union that consumers would have to guess about.
//!
//! The Glue registry checks compatibility itself on AWS; moto does not, so the producer checks it
//! here with apache-avro's schema resolution before registering ([`check_compatibility`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use apache_avro::schema_compatibility::{Compatibility as Resolution, SchemaCompatibility};
use apache_avro::types::Value;
use apache_avro::Schema;
use serde_json::Value as Json;
use thiserror::Error;

pub use pipeline_contracts::Compatibility;

// ---------------------------------------------------------------------------------------------
// Compatibility

/// The registry's name of a compatibility mode.
pub fn mode_name(mode: Compatibility) -> &'static str {
    match mode {
        Compatibility::None => "NONE",
        Compatibility::Disabled => "DISABLED",
        Compatibility::Backward => "BACKWARD",
        Compatibility::BackwardAll => "BACKWARD_ALL",
        Compatibility::Forward => "FORWARD",
        Compatibility::ForwardAll => "FORWARD_ALL",
        Compatibility::Full => "FULL",
        Compatibility::FullAll => "FULL_ALL",
    }
}

/// Parses a registry name of a compatibility mode (`"BACKWARD"`, ...).
pub fn parse_mode(name: &str) -> Option<Compatibility> {
    serde_json::from_value(Json::String(name.to_string())).ok()
}

/// Which existing versions a new version must be checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionsToCheck {
    /// `NONE`: nothing to check. (`DISABLED` refuses before any check.)
    Nothing,
    /// `BACKWARD`, `FORWARD`, `FULL`: only the latest version.
    Latest,
    /// The `_ALL` modes: every existing version.
    All,
}

pub fn versions_to_check(mode: Compatibility) -> VersionsToCheck {
    match mode {
        Compatibility::None | Compatibility::Disabled => VersionsToCheck::Nothing,
        Compatibility::Backward | Compatibility::Forward | Compatibility::Full => VersionsToCheck::Latest,
        Compatibility::BackwardAll | Compatibility::ForwardAll | Compatibility::FullAll => {
            VersionsToCheck::All
        }
    }
}

/// An existing registered version of a schema.
#[derive(Debug, Clone, Copy)]
pub struct ExistingVersion<'a> {
    pub version_number: i64,
    pub schema: &'a Schema,
}

/// Which way a read fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadDirection {
    /// The new schema, as a reader, cannot read data written with the old one (breaks BACKWARD).
    NewCannotReadOld,
    /// The old schema, as a reader, cannot read data written with the new one (breaks FORWARD).
    OldCannotReadNew,
}

impl std::fmt::Display for ReadDirection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReadDirection::NewCannotReadOld => "the new schema cannot read data written with",
            ReadDirection::OldCannotReadNew => "data written with the new schema cannot be read by",
        })
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CompatibilityError {
    #[error("compatibility mode DISABLED refuses every new version")]
    VersioningDisabled,
    #[error("incompatible under {mode}: {direction} version {version}: {reason}")]
    Incompatible {
        mode: &'static str,
        version: i64,
        direction: ReadDirection,
        reason: String,
    },
}

/// Checks a new version against the existing ones (oldest first) as the registry would under
/// `mode`. Pure; the registry adapter calls it before `RegisterSchemaVersion`.
///
/// A resolution that apache-avro calls only *partial* (an enum or union that does not cover
/// every case the other side may send) counts as incompatible, because some data would fail to
/// decode.
pub fn check_compatibility(
    mode: Compatibility,
    new: &Schema,
    existing: &[ExistingVersion<'_>],
) -> Result<(), CompatibilityError> {
    if mode == Compatibility::Disabled {
        return Err(CompatibilityError::VersioningDisabled);
    }
    let to_check: &[ExistingVersion<'_>] = match versions_to_check(mode) {
        VersionsToCheck::Nothing => &[],
        VersionsToCheck::Latest => existing.last().map(std::slice::from_ref).unwrap_or(&[]),
        VersionsToCheck::All => existing,
    };
    let (backward, forward) = match mode {
        Compatibility::Backward | Compatibility::BackwardAll => (true, false),
        Compatibility::Forward | Compatibility::ForwardAll => (false, true),
        Compatibility::Full | Compatibility::FullAll => (true, true),
        Compatibility::None | Compatibility::Disabled => (false, false),
    };
    for old in to_check {
        if backward {
            can_read(old.schema, new).map_err(|reason| CompatibilityError::Incompatible {
                mode: mode_name(mode),
                version: old.version_number,
                direction: ReadDirection::NewCannotReadOld,
                reason,
            })?;
        }
        if forward {
            can_read(new, old.schema).map_err(|reason| CompatibilityError::Incompatible {
                mode: mode_name(mode),
                version: old.version_number,
                direction: ReadDirection::OldCannotReadNew,
                reason,
            })?;
        }
    }
    Ok(())
}

fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Resolution::Full) => Ok(()),
        Ok(Resolution::Partial) => Err(match partial_field(writer, reader) {
            Some(path) => format!(
                "field {path:?} is only partially compatible: the reader's enum or union does not cover every value the writer may send"
            ),
            None => "only partially compatible: an enum or union does not cover every value the writer may send"
                .to_string(),
        }),
        Err(e) => Err(e.to_string()),
    }
}

/// The first field (dotted path through nested records) whose resolution is only partial, so
/// the error can name it; apache-avro reports partial resolutions without a location.
fn partial_field(writer: &Schema, reader: &Schema) -> Option<String> {
    let (Schema::Record(w), Schema::Record(r)) = (writer, reader) else {
        return None;
    };
    r.fields.iter().find_map(|reader_field| {
        let writer_field = w.fields.iter().find(|f| f.name == reader_field.name)?;
        match SchemaCompatibility::can_read(&writer_field.schema, &reader_field.schema) {
            Ok(Resolution::Partial) => {
                Some(match partial_field(&writer_field.schema, &reader_field.schema) {
                    Some(inner) => format!("{}.{inner}", reader_field.name),
                    None => reader_field.name.clone(),
                })
            }
            _ => None,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Inference

/// Bounds that keep one request from producing an absurd schema.
pub const MAX_NESTING_DEPTH: usize = 16;
pub const MAX_FIELDS: usize = 1_000;

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum InferenceError {
    #[error("no events to infer a schema from")]
    NoEvents,
    #[error("event {index} is a JSON {found}, expected an object")]
    NotAnObject { index: usize, found: &'static str },
    #[error("schema name {0:?} is not a valid Avro name (letters, digits and _, dot-separated, not starting with a digit)")]
    InvalidSchemaName(String),
    #[error("field {path:?}: key {key:?} is not a valid Avro field name (letters, digits and _, not starting with a digit)")]
    InvalidFieldName { path: String, key: String },
    #[error("field {path:?} is a {first} in one event and a {second} in another; one field needs one type")]
    ConflictingTypes {
        path: String,
        first: &'static str,
        second: &'static str,
    },
    #[error("field {path:?}: integer {value} does not fit in a 64-bit long")]
    IntegerOutOfRange { path: String, value: String },
    #[error("events nest deeper than {MAX_NESTING_DEPTH} levels at {path:?}")]
    TooDeep { path: String },
    #[error("an object has more than {MAX_FIELDS} distinct fields")]
    TooManyFields,
    #[error("the inferred definition is not valid Avro: {0}")]
    InvalidDefinition(String),
}

/// The inferred type of one JSON position, merged over every event.
#[derive(Debug, Clone, PartialEq)]
enum Shape {
    /// Nothing seen yet (elements of arrays that were always empty).
    Nothing,
    Null,
    Boolean,
    Long,
    Double,
    String,
    Array(Box<Shape>),
    Record(RecordShape),
    /// `["null", T]`; `T` is never `Null`, `Nothing` or itself nullable.
    Nullable(Box<Shape>),
}

#[derive(Debug, Clone, PartialEq, Default)]
struct RecordShape {
    /// How many objects were merged here, to tell which fields were missing from some.
    objects: usize,
    fields: BTreeMap<String, FieldShape>,
}

#[derive(Debug, Clone, PartialEq)]
struct FieldShape {
    shape: Shape,
    present_in: usize,
}

impl Shape {
    fn kind(&self) -> &'static str {
        match self {
            Shape::Nothing => "nothing",
            Shape::Null => "null",
            Shape::Boolean => "boolean",
            Shape::Long => "integer",
            Shape::Double => "number",
            Shape::String => "string",
            Shape::Array(_) => "array",
            Shape::Record(_) => "object",
            Shape::Nullable(inner) => inner.kind(),
        }
    }

    fn nullable(self) -> Shape {
        match self {
            Shape::Nothing | Shape::Null => Shape::Null,
            already @ Shape::Nullable(_) => already,
            other => Shape::Nullable(Box::new(other)),
        }
    }
}

fn shape_of(value: &Json, path: &str, depth: usize) -> Result<Shape, InferenceError> {
    if depth > MAX_NESTING_DEPTH {
        return Err(InferenceError::TooDeep {
            path: path.to_string(),
        });
    }
    Ok(match value {
        Json::Null => Shape::Null,
        Json::Bool(_) => Shape::Boolean,
        Json::String(_) => Shape::String,
        Json::Number(n) => {
            if n.is_i64() {
                Shape::Long
            } else if n.is_u64() {
                return Err(InferenceError::IntegerOutOfRange {
                    path: path.to_string(),
                    value: n.to_string(),
                });
            } else {
                Shape::Double
            }
        }
        Json::Array(items) => {
            let mut merged = Shape::Nothing;
            let item_path = format!("{path}[]");
            for item in items {
                let shape = shape_of(item, &item_path, depth + 1)?;
                merged = merge(merged, shape, &item_path)?;
            }
            Shape::Array(Box::new(merged))
        }
        Json::Object(map) => {
            let mut record = RecordShape {
                objects: 1,
                fields: BTreeMap::new(),
            };
            for (key, field_value) in map {
                let field_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if !is_avro_name(key) {
                    return Err(InferenceError::InvalidFieldName {
                        path: field_path,
                        key: key.clone(),
                    });
                }
                let shape = shape_of(field_value, &field_path, depth + 1)?;
                record
                    .fields
                    .insert(key.clone(), FieldShape { shape, present_in: 1 });
            }
            if record.fields.len() > MAX_FIELDS {
                return Err(InferenceError::TooManyFields);
            }
            Shape::Record(record)
        }
    })
}

fn merge(a: Shape, b: Shape, path: &str) -> Result<Shape, InferenceError> {
    use Shape::*;
    Ok(match (a, b) {
        (Nothing, other) | (other, Nothing) => other,
        (Null, Null) => Null,
        (Null, other) | (other, Null) => other.nullable(),
        (Nullable(x), Nullable(y)) => merge(*x, *y, path)?.nullable(),
        (Nullable(x), other) | (other, Nullable(x)) => merge(*x, other, path)?.nullable(),
        (Boolean, Boolean) => Boolean,
        (String, String) => String,
        (Long, Long) => Long,
        (Long, Double) | (Double, Long) | (Double, Double) => Double,
        (Array(x), Array(y)) => Array(Box::new(merge(*x, *y, &format!("{path}[]"))?)),
        (Record(x), Record(y)) => Record(merge_records(x, y, path)?),
        (x, y) => {
            return Err(InferenceError::ConflictingTypes {
                path: if path.is_empty() {
                    "<event>".into()
                } else {
                    path.to_string()
                },
                first: x.kind(),
                second: y.kind(),
            })
        }
    })
}

fn merge_records(mut a: RecordShape, b: RecordShape, path: &str) -> Result<RecordShape, InferenceError> {
    a.objects += b.objects;
    for (name, field) in b.fields {
        let field_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path}.{name}")
        };
        match a.fields.remove(&name) {
            Some(existing) => {
                let shape = merge(existing.shape, field.shape, &field_path)?;
                a.fields.insert(
                    name,
                    FieldShape {
                        shape,
                        present_in: existing.present_in + field.present_in,
                    },
                );
            }
            None => {
                a.fields.insert(name, field);
            }
        }
    }
    if a.fields.len() > MAX_FIELDS {
        return Err(InferenceError::TooManyFields);
    }
    Ok(a)
}

/// An inferred record schema: its exact definition text (what gets registered and looked up)
/// and the parsed schema (what encodes the events).
#[derive(Debug, Clone)]
pub struct InferredSchema {
    pub name: String,
    pub definition: String,
    pub schema: Schema,
}

/// Infers one record schema named `schema_name` (optionally dotted: `com.example.Order`) that
/// encodes every event.
pub fn infer_record_schema(schema_name: &str, events: &[Json]) -> Result<InferredSchema, InferenceError> {
    if !is_avro_fullname(schema_name) {
        return Err(InferenceError::InvalidSchemaName(schema_name.to_string()));
    }
    if events.is_empty() {
        return Err(InferenceError::NoEvents);
    }
    let mut merged = Shape::Nothing;
    for (index, event) in events.iter().enumerate() {
        if !event.is_object() {
            return Err(InferenceError::NotAnObject {
                index,
                found: json_kind(event),
            });
        }
        let shape = shape_of(event, "", 0)?;
        merged = merge(merged, shape, "")?;
    }
    let Shape::Record(record) = merged else {
        // Every event is an object, so the merge of their shapes is a record.
        return Err(InferenceError::NoEvents);
    };
    let (namespace, name) = match schema_name.rsplit_once('.') {
        Some((ns, n)) => (Some(ns), n),
        None => (None, schema_name),
    };
    let mut definition = String::new();
    write_record(&mut definition, name, namespace, &record);
    let schema =
        Schema::parse_str(&definition).map_err(|e| InferenceError::InvalidDefinition(e.to_string()))?;
    Ok(InferredSchema {
        name: schema_name.to_string(),
        definition,
        schema,
    })
}

fn write_record(out: &mut String, name: &str, namespace: Option<&str>, record: &RecordShape) {
    out.push_str("{\"type\":\"record\",\"name\":");
    push_json_string(out, name);
    if let Some(ns) = namespace {
        out.push_str(",\"namespace\":");
        push_json_string(out, ns);
    }
    out.push_str(",\"fields\":[");
    for (i, (field_name, field)) in record.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let shape = if field.present_in < record.objects {
            field.shape.clone().nullable()
        } else {
            field.shape.clone()
        };
        out.push_str("{\"name\":");
        push_json_string(out, field_name);
        out.push_str(",\"type\":");
        write_type(out, &format!("{name}_{field_name}"), &shape);
        if matches!(shape, Shape::Nullable(_) | Shape::Null) {
            out.push_str(",\"default\":null");
        }
        out.push('}');
    }
    out.push_str("]}");
}

fn write_type(out: &mut String, nested_name: &str, shape: &Shape) {
    match shape {
        Shape::Nothing | Shape::Null => out.push_str("\"null\""),
        Shape::Boolean => out.push_str("\"boolean\""),
        Shape::Long => out.push_str("\"long\""),
        Shape::Double => out.push_str("\"double\""),
        Shape::String => out.push_str("\"string\""),
        Shape::Array(items) => {
            out.push_str("{\"type\":\"array\",\"items\":");
            write_type(out, &format!("{nested_name}_item"), items);
            out.push('}');
        }
        // Nested records inherit the enclosing namespace; their names follow the field path, so
        // they are unique within the schema.
        Shape::Record(record) => write_record(out, nested_name, None, record),
        Shape::Nullable(inner) => {
            out.push_str("[\"null\",");
            write_type(out, nested_name, inner);
            out.push(']');
        }
    }
}

fn push_json_string(out: &mut String, text: &str) {
    // Names are validated Avro names, but escape anyway so the text is always valid JSON.
    let _ = write!(out, "{}", Json::String(text.to_string()));
}

fn is_avro_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_avro_fullname(name: &str) -> bool {
    name.len() <= 255 && name.split('.').all(is_avro_name)
}

pub(crate) fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding explicit events with their (inferred) schema

#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("field {path:?}: {problem}")]
pub struct JsonToAvroError {
    pub path: String,
    pub problem: String,
}

/// Converts one JSON event into an Avro value of `schema` (a record schema such as
/// [`InferredSchema::schema`]). Missing fields become `null`, which the schema allows exactly
/// where inference saw them missing.
pub fn json_to_avro(event: &Json, schema: &Schema) -> Result<Value, JsonToAvroError> {
    convert(event, schema, "")
}

fn convert(value: &Json, schema: &Schema, path: &str) -> Result<Value, JsonToAvroError> {
    let mismatch = |expected: &str| JsonToAvroError {
        path: if path.is_empty() {
            "<event>".into()
        } else {
            path.to_string()
        },
        problem: format!("expected {expected}, got a JSON {}", json_kind(value)),
    };
    match schema {
        Schema::Null => match value {
            Json::Null => Ok(Value::Null),
            _ => Err(mismatch("null")),
        },
        Schema::Boolean => value
            .as_bool()
            .map(Value::Boolean)
            .ok_or_else(|| mismatch("a boolean")),
        Schema::Long => value
            .as_i64()
            .map(Value::Long)
            .ok_or_else(|| mismatch("an integer")),
        Schema::Double => value
            .as_f64()
            .map(Value::Double)
            .ok_or_else(|| mismatch("a number")),
        Schema::String => value
            .as_str()
            .map(|s| Value::String(s.to_string()))
            .ok_or_else(|| mismatch("a string")),
        Schema::Array(array) => {
            let items = value.as_array().ok_or_else(|| mismatch("an array"))?;
            let item_path = format!("{path}[]");
            items
                .iter()
                .map(|item| convert(item, &array.items, &item_path))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Schema::Record(record) => {
            let object = value.as_object().ok_or_else(|| mismatch("an object"))?;
            if let Some(unknown) = object
                .keys()
                .find(|k| !record.fields.iter().any(|f| &f.name == *k))
            {
                return Err(JsonToAvroError {
                    path: join(path, unknown),
                    problem: "not in the schema".into(),
                });
            }
            record
                .fields
                .iter()
                .map(|field| {
                    let field_value = object.get(&field.name).unwrap_or(&Json::Null);
                    convert(field_value, &field.schema, &join(path, &field.name))
                        .map(|v| (field.name.clone(), v))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Record)
        }
        Schema::Union(union) => {
            let mut last_error = None;
            for (index, variant) in union.variants().iter().enumerate() {
                match convert(value, variant, path) {
                    Ok(v) => return Ok(Value::Union(index as u32, Box::new(v))),
                    Err(e) => last_error = Some(e),
                }
            }
            Err(last_error.unwrap_or_else(|| mismatch("a value of an empty union")))
        }
        other => Err(JsonToAvroError {
            path: path.to_string(),
            problem: format!("schema type {other:?} is not produced by inference"),
        }),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Schema {
        Schema::parse_str(text).unwrap()
    }

    fn field_types(definition: &str) -> Vec<(String, Json)> {
        let doc: Json = serde_json::from_str(definition).unwrap();
        doc["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (f["name"].as_str().unwrap().to_string(), f["type"].clone()))
            .collect()
    }

    #[test]
    fn every_committed_version_is_compatible_with_its_predecessor_under_its_mode() {
        let contracts = pipeline_contracts::contracts();
        assert!(!contracts.schemas.is_empty());
        for (name, contract) in &contracts.schemas {
            let parsed: Vec<Schema> = contract.version_texts().iter().map(|t| parse(t)).collect();
            for (index, new) in parsed.iter().enumerate().skip(1) {
                let existing: Vec<ExistingVersion<'_>> = parsed[..index]
                    .iter()
                    .enumerate()
                    .map(|(i, schema)| ExistingVersion {
                        version_number: i as i64 + 1,
                        schema,
                    })
                    .collect();
                if let Err(e) = check_compatibility(contract.compatibility, new, &existing) {
                    panic!("{name} version {} breaks its contract: {e}", index + 1);
                }
            }
        }
    }

    #[test]
    fn sensor_reading_v2_is_backward_but_dropping_the_default_is_not() {
        let sensor = &pipeline_contracts::contracts().schemas["SensorReading"];
        let texts = sensor.version_texts();
        let v1 = parse(texts[0]);
        let v2 = parse(texts[1]);
        let old = [ExistingVersion {
            version_number: 1,
            schema: &v1,
        }];
        assert_eq!(check_compatibility(Compatibility::Backward, &v2, &old), Ok(()));
        let no_default = parse(&texts[1].replace(", \"default\": null", ""));
        let err = check_compatibility(Compatibility::Backward, &no_default, &old).unwrap_err();
        let CompatibilityError::Incompatible {
            mode,
            version,
            direction,
            reason,
        } = &err
        else {
            panic!("{err}")
        };
        assert_eq!(
            (*mode, *version, *direction),
            ("BACKWARD", 1, ReadDirection::NewCannotReadOld)
        );
        assert!(reason.contains("humidity"), "{reason}");
        assert!(err.to_string().contains("BACKWARD"), "{err}");
        // NONE accepts it, DISABLED refuses anything.
        assert_eq!(
            check_compatibility(Compatibility::None, &no_default, &old),
            Ok(())
        );
        assert_eq!(
            check_compatibility(Compatibility::Disabled, &v2, &old),
            Err(CompatibilityError::VersioningDisabled)
        );
    }

    const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    const V2_ADD_OPTIONAL: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":["null","long"],"default":null}]}"#;
    const V3_ADD_REQUIRED: &str =
        r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"c","type":"long"}]}"#;
    const V4_DROP_A: &str =
        r#"{"type":"record","name":"R","fields":[{"name":"b","type":["null","long"],"default":null}]}"#;

    fn versions(schemas: &[Schema]) -> Vec<ExistingVersion<'_>> {
        schemas
            .iter()
            .enumerate()
            .map(|(i, schema)| ExistingVersion {
                version_number: i as i64 + 1,
                schema,
            })
            .collect()
    }

    #[test]
    fn each_mode_checks_the_right_direction() {
        let v1 = parse(V1);
        let existing = [v1];
        let old = versions(&existing);
        let add_required = parse(V3_ADD_REQUIRED);
        let drop_a = parse(V4_DROP_A);
        // Adding a required field: old data lacks it → breaks BACKWARD; old readers ignore it → FORWARD ok.
        assert!(check_compatibility(Compatibility::Backward, &add_required, &old).is_err());
        assert_eq!(
            check_compatibility(Compatibility::Forward, &add_required, &old),
            Ok(())
        );
        assert!(check_compatibility(Compatibility::Full, &add_required, &old).is_err());
        // Dropping a required field: the new reader ignores it → BACKWARD ok; old readers need it → FORWARD breaks.
        assert_eq!(
            check_compatibility(Compatibility::Backward, &drop_a, &old),
            Ok(())
        );
        let err = check_compatibility(Compatibility::Forward, &drop_a, &old).unwrap_err();
        assert!(
            matches!(
                err,
                CompatibilityError::Incompatible {
                    direction: ReadDirection::OldCannotReadNew,
                    ..
                }
            ),
            "{err}"
        );
        assert!(check_compatibility(Compatibility::Full, &drop_a, &old).is_err());
        // Adding an optional field is fine every way.
        let add_optional = parse(V2_ADD_OPTIONAL);
        for mode in [
            Compatibility::Backward,
            Compatibility::Forward,
            Compatibility::Full,
        ] {
            assert_eq!(check_compatibility(mode, &add_optional, &old), Ok(()), "{mode:?}");
        }
    }

    #[test]
    fn all_modes_check_every_version_and_plain_modes_only_the_latest() {
        // v1 {a}, v2 {b?}: v3 {b?} without `a` reads v2 but, under FORWARD, v1 readers need `a`.
        let existing = [parse(V1), parse(V4_DROP_A)];
        let old = versions(&existing);
        let v3 = parse(
            V4_DROP_A
                .replace("\"name\":\"b\"", "\"name\":\"b\",\"doc\":\"same\"")
                .as_str(),
        );
        assert_eq!(check_compatibility(Compatibility::Forward, &v3, &old), Ok(()));
        let err = check_compatibility(Compatibility::ForwardAll, &v3, &old).unwrap_err();
        assert!(
            matches!(err, CompatibilityError::Incompatible { version: 1, .. }),
            "{err}"
        );
        assert!(check_compatibility(Compatibility::FullAll, &v3, &old).is_err());
        // BACKWARD_ALL: a reader requiring `a` cannot read v2 data, which lacks it.
        let needs_a = parse(V1);
        assert_eq!(
            check_compatibility(Compatibility::Backward, &needs_a, &old[..1]),
            Ok(())
        );
        let err = check_compatibility(Compatibility::BackwardAll, &needs_a, &old).unwrap_err();
        assert!(
            matches!(err, CompatibilityError::Incompatible { version: 2, .. }),
            "{err}"
        );
        // Nothing registered yet: nothing to be incompatible with.
        assert_eq!(check_compatibility(Compatibility::FullAll, &needs_a, &[]), Ok(()));
    }

    #[test]
    fn partial_resolutions_count_as_incompatible() {
        let two = parse(r#"{"type":"enum","name":"E","symbols":["A","B"]}"#);
        let one = parse(r#"{"type":"enum","name":"E","symbols":["A"]}"#);
        let old = [ExistingVersion {
            version_number: 1,
            schema: &two,
        }];
        // A reader with fewer symbols cannot read everything the old writer may have written.
        assert!(check_compatibility(Compatibility::Backward, &one, &old).is_err());
        // Inside a record the error names the field.
        let optional = parse(
            r#"{"type":"record","name":"R","fields":[{"name":"h","type":["null","double"],"default":null}]}"#,
        );
        let required = parse(r#"{"type":"record","name":"R","fields":[{"name":"h","type":"double"}]}"#);
        let old = [ExistingVersion {
            version_number: 3,
            schema: &optional,
        }];
        let err = check_compatibility(Compatibility::Backward, &required, &old).unwrap_err();
        assert!(err.to_string().contains("field \"h\""), "{err}");
    }

    #[test]
    fn mode_names_round_trip() {
        for mode in [
            Compatibility::None,
            Compatibility::Disabled,
            Compatibility::Backward,
            Compatibility::BackwardAll,
            Compatibility::Forward,
            Compatibility::ForwardAll,
            Compatibility::Full,
            Compatibility::FullAll,
        ] {
            assert_eq!(parse_mode(mode_name(mode)), Some(mode));
        }
        assert_eq!(parse_mode("SIDEWAYS"), None);
    }

    #[test]
    fn inference_maps_json_types_to_avro_types() {
        let events = [json!({
            "s": "x", "i": 3, "f": 1.5, "b": true, "n": null,
            "obj": {"inner": 1}, "arr": [1, 2], "empty": []
        })];
        let inferred = infer_record_schema("com.example.Order", &events).unwrap();
        assert_eq!(
            field_types(&inferred.definition),
            vec![
                ("arr".into(), json!({"type":"array","items":"long"})),
                ("b".into(), json!("boolean")),
                ("empty".into(), json!({"type":"array","items":"null"})),
                ("f".into(), json!("double")),
                ("i".into(), json!("long")),
                ("n".into(), json!("null")),
                (
                    "obj".into(),
                    json!({"type":"record","name":"Order_obj","fields":[{"name":"inner","type":"long"}]})
                ),
                ("s".into(), json!("string")),
            ]
        );
        let doc: Json = serde_json::from_str(&inferred.definition).unwrap();
        assert_eq!(doc["name"], "Order");
        assert_eq!(doc["namespace"], "com.example");
        match &inferred.schema {
            Schema::Record(r) => assert_eq!(r.name.fullname(None), "com.example.Order"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn inference_merges_events_nulls_missing_fields_and_number_kinds() {
        let events = [
            json!({"id": 1, "price": 2, "note": "a", "tags": [], "nested": {"x": 1}}),
            json!({"id": 2, "price": 2.5, "note": null, "tags": ["t"], "nested": {"y": "z"}}),
            json!({"id": 3, "price": 3, "extra": true, "tags": [null, "u"]}),
        ];
        let inferred = infer_record_schema("Thing", &events).unwrap();
        let types: BTreeMap<String, Json> = field_types(&inferred.definition).into_iter().collect();
        assert_eq!(types["id"], json!("long"));
        assert_eq!(types["price"], json!("double"));
        assert_eq!(types["note"], json!(["null", "string"]));
        assert_eq!(types["extra"], json!(["null", "boolean"]));
        assert_eq!(types["tags"], json!({"type":"array","items":["null","string"]}));
        assert_eq!(
            types["nested"],
            json!(["null", {"type":"record","name":"Thing_nested","fields":[
                {"name":"x","type":["null","long"],"default":null},
                {"name":"y","type":["null","string"],"default":null}]}])
        );
        let doc: Json = serde_json::from_str(&inferred.definition).unwrap();
        let defaults: Vec<bool> = doc["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.get("default") == Some(&Json::Null))
            .collect();
        // extra, id, nested, note, price, tags
        assert_eq!(defaults, vec![true, false, true, true, false, false]);
        // Every event encodes with the inferred schema and decodes back to the same data.
        for event in &events {
            let value = json_to_avro(event, &inferred.schema).unwrap();
            let body = crate::payload::encode_avro(value, &inferred.schema).unwrap();
            let back =
                crate::payload::avro_to_json(&crate::payload::decode_avro(&body, &inferred.schema).unwrap());
            assert_contained(event, &back, "");
        }
    }

    /// Every value of `original` is in `decoded` (which may add nulls for absent fields); numbers
    /// compare by value, since a long may come back as a double.
    fn assert_contained(original: &Json, decoded: &Json, path: &str) {
        match (original, decoded) {
            (Json::Object(o), Json::Object(d)) => {
                for (key, value) in o {
                    assert_contained(value, d.get(key).unwrap_or(&Json::Null), &format!("{path}.{key}"));
                }
            }
            (Json::Array(o), Json::Array(d)) => {
                assert_eq!(o.len(), d.len(), "{path}");
                for (a, b) in o.iter().zip(d) {
                    assert_contained(a, b, &format!("{path}[]"));
                }
            }
            (Json::Number(a), b) => assert_eq!(a.as_f64(), b.as_f64(), "{path}"),
            (a, b) => assert_eq!(a, b, "{path}"),
        }
    }

    #[test]
    fn inference_is_deterministic_whatever_the_key_order_or_event_order() {
        let a = [json!({"b": 1, "a": "x"}), json!({"a": "y", "c": 2.0})];
        let b = [json!({"c": 2.0, "a": "y"}), json!({"a": "x", "b": 1})];
        let first = infer_record_schema("E", &a).unwrap().definition;
        assert_eq!(first, infer_record_schema("E", &b).unwrap().definition);
        assert_eq!(first, infer_record_schema("E", &a).unwrap().definition);
    }

    #[test]
    fn inference_refuses_what_it_cannot_represent_and_says_where() {
        let err = infer_record_schema("E", &[json!({"a": 1}), json!({"a": "one"})]).unwrap_err();
        assert_eq!(
            err,
            InferenceError::ConflictingTypes {
                path: "a".into(),
                first: "integer",
                second: "string"
            }
        );
        let err = infer_record_schema("E", &[json!({"o": {"bad-key": 1}})]).unwrap_err();
        assert!(
            matches!(err, InferenceError::InvalidFieldName { ref path, .. } if path == "o.bad-key"),
            "{err}"
        );
        assert_eq!(
            infer_record_schema("E", &[json!({"a": 1}), json!([1])]).unwrap_err(),
            InferenceError::NotAnObject {
                index: 1,
                found: "array"
            }
        );
        assert_eq!(
            infer_record_schema("E", &[]).unwrap_err(),
            InferenceError::NoEvents
        );
        assert!(matches!(
            infer_record_schema("1bad", &[json!({})]).unwrap_err(),
            InferenceError::InvalidSchemaName(_)
        ));
        assert!(matches!(
            infer_record_schema("E", &[json!({"big": u64::MAX})]).unwrap_err(),
            InferenceError::IntegerOutOfRange { .. }
        ));
        let mut deep = json!(1);
        for _ in 0..(MAX_NESTING_DEPTH + 2) {
            deep = json!({ "d": deep });
        }
        assert!(matches!(
            infer_record_schema("E", &[deep]).unwrap_err(),
            InferenceError::TooDeep { .. }
        ));
    }

    #[test]
    fn an_evolved_event_set_is_backward_compatible_with_the_first() {
        let v1 = infer_record_schema("Order", &[json!({"id": 1, "amount": 2.5})]).unwrap();
        let v2 = infer_record_schema(
            "Order",
            &[
                json!({"id": 1, "amount": 2.5}),
                json!({"id": 2, "amount": 1, "coupon": "X"}),
            ],
        )
        .unwrap();
        let old = [ExistingVersion {
            version_number: 1,
            schema: &v1.schema,
        }];
        assert_eq!(
            check_compatibility(Compatibility::Backward, &v2.schema, &old),
            Ok(())
        );
        let v3 = infer_record_schema("Order", &[json!({"id": "one", "amount": 2.5})]).unwrap();
        assert!(check_compatibility(Compatibility::Backward, &v3.schema, &old).is_err());
    }

    #[test]
    fn json_to_avro_refuses_values_that_do_not_fit() {
        let inferred = infer_record_schema("E", &[json!({"a": 1})]).unwrap();
        let err = json_to_avro(&json!({"a": "x"}), &inferred.schema).unwrap_err();
        assert_eq!(err.path, "a");
        let err = json_to_avro(&json!({"a": 1, "z": 2}), &inferred.schema).unwrap_err();
        assert_eq!(err.path, "z");
    }
}
