//! Avro binary encoding without `apache_avro::types::Value`: the primitives of the Avro 1.11
//! specification's "Binary Encoding" section, and [`JsonEncodePlan`], a schema compiled once and
//! then used to write JSON events straight to bytes.
//!
//! `apache-avro` stays the reference: the tests in `avro_write/tests.rs` compare every byte these
//! writers produce with what `apache-avro` writes for the same datum. The producer uses them
//! because building a `Value` tree per record (and a path string per field) was half of its time.

use apache_avro::Schema;
use serde_json::Value as Json;

use crate::schema::JsonToAvroError;

/// `long` and `int`: zig-zag, then base-128 varint, low groups first.
pub fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
    while zigzag >= 0x80 {
        out.push((zigzag as u8) | 0x80);
        zigzag >>= 7;
    }
    out.push(zigzag as u8);
}

/// `double`: eight bytes, IEEE 754 little-endian.
pub fn write_double(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// `boolean`: one byte, 0 or 1.
pub fn write_boolean(out: &mut Vec<u8>, value: bool) {
    out.push(u8::from(value));
}

/// `bytes`: a `long` length, then the bytes.
pub fn write_bytes(out: &mut Vec<u8>, value: &[u8]) {
    write_long(out, value.len() as i64);
    out.extend_from_slice(value);
}

/// `string`: a `long` length, then the UTF-8 bytes.
pub fn write_string(out: &mut Vec<u8>, value: &str) {
    write_bytes(out, value.as_bytes());
}

/// Where a value sits in the event, rendered only when an error names it (as
/// [`crate::schema::json_to_avro`] names it: `a.b`, `a[]`).
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Items(&'a Path<'a>),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Field(parent, name) => {
                let parent = parent.render();
                if parent.is_empty() {
                    (*name).to_string()
                } else {
                    format!("{parent}.{name}")
                }
            }
            Path::Items(parent) => format!("{}[]", parent.render()),
        }
    }
}

/// One schema node, with names resolved and nothing left to look up while writing.
#[derive(Debug, Clone)]
enum Node {
    Null,
    Boolean,
    Long,
    Double,
    String,
    Array(Box<Node>),
    Record(Vec<(String, Node)>),
    Union(Vec<Node>),
    /// A type schema inference never produces; writing it fails as `json_to_avro` does.
    Unsupported(String),
}

/// A schema compiled once for writing JSON events: the same mapping and the same errors as
/// [`crate::schema::json_to_avro`] followed by `apache-avro`'s writer, without the `Value` tree.
#[derive(Debug, Clone)]
pub struct JsonEncodePlan {
    root: Node,
}

impl JsonEncodePlan {
    pub fn compile(schema: &Schema) -> Self {
        Self {
            root: compile(schema),
        }
    }

    /// Appends the Avro encoding of `event` to `out`; on error `out` is as it was.
    pub fn encode(&self, event: &Json, out: &mut Vec<u8>) -> Result<(), JsonToAvroError> {
        let start = out.len();
        let result = write(&self.root, event, &Path::Root, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    /// The encoding of `event` as a new buffer.
    pub fn encode_to_vec(&self, event: &Json) -> Result<Vec<u8>, JsonToAvroError> {
        let mut out = Vec::with_capacity(64);
        self.encode(event, &mut out)?;
        Ok(out)
    }
}

fn compile(schema: &Schema) -> Node {
    match schema {
        Schema::Null => Node::Null,
        Schema::Boolean => Node::Boolean,
        Schema::Long => Node::Long,
        Schema::Double => Node::Double,
        Schema::String => Node::String,
        Schema::Array(array) => Node::Array(Box::new(compile(&array.items))),
        Schema::Record(record) => Node::Record(
            record
                .fields
                .iter()
                .map(|field| (field.name.clone(), compile(&field.schema)))
                .collect(),
        ),
        Schema::Union(union) => Node::Union(union.variants().iter().map(compile).collect()),
        other => Node::Unsupported(format!("schema type {other:?} is not produced by inference")),
    }
}

fn write(node: &Node, value: &Json, path: &Path<'_>, out: &mut Vec<u8>) -> Result<(), JsonToAvroError> {
    let mismatch = |expected: &str| {
        let rendered = path.render();
        JsonToAvroError {
            path: if rendered.is_empty() {
                "<event>".into()
            } else {
                rendered
            },
            problem: format!(
                "expected {expected}, got a JSON {}",
                crate::schema::json_kind(value)
            ),
        }
    };
    match node {
        Node::Null => match value {
            Json::Null => Ok(()),
            _ => Err(mismatch("null")),
        },
        Node::Boolean => {
            let b = value.as_bool().ok_or_else(|| mismatch("a boolean"))?;
            write_boolean(out, b);
            Ok(())
        }
        Node::Long => {
            let n = value.as_i64().ok_or_else(|| mismatch("an integer"))?;
            write_long(out, n);
            Ok(())
        }
        Node::Double => {
            let n = value.as_f64().ok_or_else(|| mismatch("a number"))?;
            write_double(out, n);
            Ok(())
        }
        Node::String => {
            let s = value.as_str().ok_or_else(|| mismatch("a string"))?;
            write_string(out, s);
            Ok(())
        }
        Node::Array(items) => {
            let values = value.as_array().ok_or_else(|| mismatch("an array"))?;
            // One block holding every item, then the empty block that ends the array.
            if !values.is_empty() {
                write_long(out, values.len() as i64);
                let item_path = Path::Items(path);
                for item in values {
                    write(items, item, &item_path, out)?;
                }
            }
            write_long(out, 0);
            Ok(())
        }
        Node::Record(fields) => {
            let object = value.as_object().ok_or_else(|| mismatch("an object"))?;
            if let Some(unknown) = object.keys().find(|k| !fields.iter().any(|(name, _)| name == *k)) {
                return Err(JsonToAvroError {
                    path: Path::Field(path, unknown).render(),
                    problem: "not in the schema".into(),
                });
            }
            for (name, field) in fields {
                let field_value = object.get(name).unwrap_or(&Json::Null);
                write(field, field_value, &Path::Field(path, name), out)?;
            }
            Ok(())
        }
        Node::Union(variants) => {
            let start = out.len();
            let mut last_error = None;
            for (index, variant) in variants.iter().enumerate() {
                write_long(out, index as i64);
                match write(variant, value, path, out) {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        out.truncate(start);
                        last_error = Some(e);
                    }
                }
            }
            Err(last_error.unwrap_or_else(|| mismatch("a value of an empty union")))
        }
        Node::Unsupported(problem) => Err(JsonToAvroError {
            path: path.render(),
            problem: problem.clone(),
        }),
    }
}

#[cfg(test)]
mod tests;
