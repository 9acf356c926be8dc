//! A bounds check over an Avro binary datum, run before apache-avro decodes it.
//!
//! apache-avro decodes nested values by recursion and materialises every array item, and its own
//! limit is per allocation (512 MiB). Two kinds of small input therefore exhaust a function: a
//! datum of a recursive schema nested as deep as its body is long (two bytes a level for a linked
//! list: the stack overflows), and an array or map of zero-width items (`null`, empty records)
//! whose block count claims hundreds of millions of items in five bytes. This walk reads the
//! datum the way the decoder would, without building values, and refuses it when it nests deeper
//! than [`MAX_DEPTH`] or holds more than [`MAX_ITEMS`] array items and map entries in total.

use std::collections::HashMap;

use apache_avro::schema::{InnerDecimalSchema, Name, UuidSchema};
use apache_avro::Schema;

/// Nesting levels (records, arrays, maps, unions). A consumer document stores at most 32.
pub const MAX_DEPTH: usize = 64;

/// Array items plus map entries in one datum. A stored explicit event is at most 350 KiB of JSON,
/// so it cannot hold more than about 175 000 values.
pub const MAX_ITEMS: u64 = 256 * 1024;

/// Why a datum was refused before decoding.
pub fn check(body: &[u8], schema: &Schema) -> Result<(), String> {
    let mut named = HashMap::new();
    collect_named(schema, &mut named);
    let mut walk = Walk {
        rest: body,
        named,
        items: 0,
    };
    walk.value(schema, 0)
}

fn collect_named<'a>(schema: &'a Schema, named: &mut HashMap<&'a Name, &'a Schema>) {
    match schema {
        Schema::Record(record) => {
            named.insert(&record.name, schema);
            record.fields.iter().for_each(|f| collect_named(&f.schema, named));
        }
        Schema::Enum(e) => {
            named.insert(&e.name, schema);
        }
        Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => {
            named.insert(&f.name, schema);
        }
        Schema::Decimal(d) => {
            if let InnerDecimalSchema::Fixed(f) = &d.inner {
                named.insert(&f.name, schema);
            }
        }
        Schema::Array(array) => collect_named(&array.items, named),
        Schema::Map(map) => collect_named(&map.types, named),
        Schema::Union(union) => union.variants().iter().for_each(|v| collect_named(v, named)),
        _ => {}
    }
}

struct Walk<'a, 'b> {
    rest: &'b [u8],
    named: HashMap<&'a Name, &'a Schema>,
    items: u64,
}

impl<'a> Walk<'a, '_> {
    fn value(&mut self, schema: &'a Schema, depth: usize) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(format!("datum nests deeper than {MAX_DEPTH} levels"));
        }
        match schema {
            Schema::Null => Ok(()),
            Schema::Boolean => self.skip(1),
            Schema::Int
            | Schema::Long
            | Schema::Enum(_)
            | Schema::Date
            | Schema::TimeMillis
            | Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos => self.varint().map(drop),
            Schema::Float => self.skip(4),
            Schema::Double => self.skip(8),
            Schema::Bytes
            | Schema::String
            | Schema::BigDecimal
            | Schema::Uuid(UuidSchema::String | UuidSchema::Bytes) => self.length_prefixed(),
            Schema::Decimal(d) => match &d.inner {
                InnerDecimalSchema::Bytes => self.length_prefixed(),
                InnerDecimalSchema::Fixed(f) => self.skip(f.size),
            },
            Schema::Fixed(f) | Schema::Duration(f) | Schema::Uuid(UuidSchema::Fixed(f)) => self.skip(f.size),
            Schema::Union(union) => {
                let index = self.varint()?;
                let variant = usize::try_from(index)
                    .ok()
                    .and_then(|i| union.variants().get(i))
                    .ok_or_else(|| format!("union index {index} out of range"))?;
                self.value(variant, depth + 1)
            }
            Schema::Record(record) => record
                .fields
                .iter()
                .try_for_each(|field| self.value(&field.schema, depth + 1)),
            Schema::Array(array) => self.blocks(depth, |walk| walk.value(&array.items, depth + 1)),
            Schema::Map(map) => self.blocks(depth, |walk| {
                walk.length_prefixed()?;
                walk.value(&map.types, depth + 1)
            }),
            Schema::Ref { name } => {
                let definition = *self
                    .named
                    .get(name)
                    .ok_or_else(|| format!("schema reference {} is not defined", name.fullname(None)))?;
                self.value(definition, depth)
            }
        }
    }

    /// Array or map blocks: a count (negative: followed by the block's byte size), 0 at the end.
    fn blocks(
        &mut self,
        depth: usize,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        if depth + 1 > MAX_DEPTH {
            return Err(format!("datum nests deeper than {MAX_DEPTH} levels"));
        }
        loop {
            let count = self.varint()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                self.varint()?;
            }
            let count = count.unsigned_abs();
            self.items = self.items.saturating_add(count);
            if self.items > MAX_ITEMS {
                return Err(format!(
                    "datum holds more than {MAX_ITEMS} array items and map entries"
                ));
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }

    fn length_prefixed(&mut self) -> Result<(), String> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
        self.skip(len)
    }

    fn skip(&mut self, n: usize) -> Result<(), String> {
        if n > self.rest.len() {
            return Err(format!(
                "datum truncated: {n} bytes needed, {} left",
                self.rest.len()
            ));
        }
        self.rest = &self.rest[n..];
        Ok(())
    }

    /// A zig-zag varint of at most 10 bytes.
    fn varint(&mut self) -> Result<i64, String> {
        let mut raw: u64 = 0;
        for (i, &byte) in self.rest.iter().take(10).enumerate() {
            raw |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                self.rest = &self.rest[i + 1..];
                return Ok((raw >> 1) as i64 ^ -((raw & 1) as i64));
            }
        }
        Err("datum truncated or has an over-long integer".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> Schema {
        Schema::parse_str(text).unwrap()
    }

    #[test]
    fn varints_read_like_avro() {
        for (bytes, value) in [
            (&[0x00][..], 0i64),
            (&[0x01], -1),
            (&[0x02], 1),
            (&[0x7f], -64),
            (&[0x80, 0x01], 64),
            (
                &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                i64::MAX,
            ),
            (
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                i64::MIN,
            ),
        ] {
            let mut walk = Walk {
                rest: bytes,
                named: HashMap::new(),
                items: 0,
            };
            assert_eq!(walk.varint(), Ok(value), "{bytes:02x?}");
            assert!(walk.rest.is_empty());
        }
    }

    #[test]
    fn deep_recursive_datums_are_refused_and_shallow_ones_pass() {
        let linked = schema(
            r#"{"type":"record","name":"Node","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","Node"]}]}"#,
        );
        let list = |depth: usize| {
            let mut body = [0x02u8, 0x02].repeat(depth);
            body.extend_from_slice(&[0x02, 0x00]);
            body
        };
        assert_eq!(check(&list(10), &linked), Ok(()));
        let err = check(&list(100_000), &linked).unwrap_err();
        assert!(err.contains("deeper than 64"), "{err}");
    }

    #[test]
    fn zero_width_item_bombs_are_refused() {
        let nulls = schema(r#"{"type":"array","items":"null"}"#);
        // One block claiming 8 million nulls in four bytes (apache-avro would build them all: four
        // such blocks took a second and 440 MB).
        let err = check(&[0x80, 0xc8, 0xd0, 0x07, 0x00], &nulls).unwrap_err();
        assert!(err.contains("more than"), "{err}");
        // Many blocks that together exceed the budget.
        let mut body = [0x80u8, 0x80, 0x02].repeat(9); // 9 blocks of 16384 items
        body.extend_from_slice(&[0x80, 0x80, 0x10]); // then 131072 more
        assert!(check(&body, &nulls).is_err());
        assert_eq!(check(&[0x06, 0x00], &nulls), Ok(()));
    }

    #[test]
    fn contract_datums_pass() {
        let store = crate::payload::reader_schema("StoreEvent").unwrap();
        let event = crate::model::StoreEvent {
            request_id: "f5570d0f-5389-4bce-98c3-7ed5380eefb2".into(),
            event_type: crate::model::StoreEventType::Sales,
            store_id: 1,
            cust_id: 2,
            category: "c".into(),
            sku: 3,
            price_cents: 252,
            qty: 4,
            discount_hundredths: 5,
            gift_wrap: false,
            variant: "v".into(),
            priority_shipping: true,
            ts_micros: 6,
            contact_me: Some("x".into()),
        };
        let body = crate::payload::encode_avro(crate::payload::store_event_to_avro(&event), store).unwrap();
        assert_eq!(check(&body, store), Ok(()));
        assert!(check(&body[..body.len() - 1], store).is_err());
    }
}
