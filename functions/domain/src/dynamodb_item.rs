//! DynamoDB items as plain values, and DynamoDB's item-size formula over them.
//!
//! The explicit-event item is built here, once: the decoder measures it to turn what DynamoDB
//! would refuse into poison, the in-memory fake and the DynamoDB adapter refuse the same items,
//! and the adapter only translates these values into the SDK's.

use std::collections::BTreeMap;

use pipeline_contracts::Table;
use serde_json::Value as Json;

use crate::consume::{ExplicitEvent, ValueFormat};
use crate::limits::DYNAMODB_MAX_ITEM_BYTES;

/// One DynamoDB attribute value. Numbers keep DynamoDB's wire form: a decimal string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    S(String),
    N(String),
    B(Vec<u8>),
    Bool(bool),
    Null,
    L(Vec<AttributeValue>),
    M(BTreeMap<String, AttributeValue>),
    Ss(Vec<String>),
    Ns(Vec<String>),
    Bs(Vec<Vec<u8>>),
}

pub type Item = BTreeMap<String, AttributeValue>;

/// Non-key attribute names of an explicit-event item (keys come from `tables.explicitEvents`).
pub mod explicit_attr {
    pub const TOPIC: &str = "topic";
    pub const PARTITION: &str = "partition";
    pub const TIMESTAMP: &str = "timestamp";
    pub const FORMAT: &str = "format";
    pub const KEY: &str = "key";
    pub const SCHEMA_VERSION_ID: &str = "schema_version_id";
    pub const PAYLOAD: &str = "payload";
}

/// The item of an explicit event: keys from `table` (`source` = `topic-partition`, `offset`), then
/// `topic`, `partition`, `timestamp`, `format`, the optional `key` (base64 as delivered) and
/// `schema_version_id`, and `payload`, the document as native DynamoDB types.
pub fn explicit_event_item(event: &ExplicitEvent, table: &Table) -> Item {
    let c = &event.coordinates;
    let mut item = Item::from([
        (
            table.partition_key.clone(),
            AttributeValue::S(c.topic_partition()),
        ),
        (table.sort_key.clone(), AttributeValue::N(c.offset.to_string())),
        (explicit_attr::TOPIC.into(), AttributeValue::S(c.topic.clone())),
        (
            explicit_attr::PARTITION.into(),
            AttributeValue::N(c.partition.to_string()),
        ),
        (
            explicit_attr::TIMESTAMP.into(),
            AttributeValue::N(event.timestamp_ms.to_string()),
        ),
        (
            explicit_attr::FORMAT.into(),
            AttributeValue::S(
                match event.format {
                    ValueFormat::GlueAvro => "glue_avro",
                    ValueFormat::Json => "json",
                }
                .into(),
            ),
        ),
        (explicit_attr::PAYLOAD.into(), json_to_attribute(&event.document)),
    ]);
    if let Some(key) = &event.key_base64 {
        item.insert(explicit_attr::KEY.into(), AttributeValue::S(key.clone()));
    }
    if let Some(id) = event.schema_version_id {
        item.insert(
            explicit_attr::SCHEMA_VERSION_ID.into(),
            AttributeValue::S(id.to_string()),
        );
    }
    item
}

/// JSON as native DynamoDB types. The decoder has already refused numbers DynamoDB cannot hold,
/// empty attribute names and documents nested too deep.
pub fn json_to_attribute(value: &Json) -> AttributeValue {
    match value {
        Json::Null => AttributeValue::Null,
        Json::Bool(b) => AttributeValue::Bool(*b),
        Json::Number(n) => AttributeValue::N(n.to_string()),
        Json::String(s) => AttributeValue::S(s.clone()),
        Json::Array(items) => AttributeValue::L(items.iter().map(json_to_attribute).collect()),
        Json::Object(map) => AttributeValue::M(
            map.iter()
                .map(|(k, v)| (k.clone(), json_to_attribute(v)))
                .collect(),
        ),
    }
}

/// The size DynamoDB counts for an item, by the formula of the DynamoDB developer guide, "Item
/// sizes and formats": for every attribute, the UTF-8 length of its name plus the size of its value.
pub fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + attribute_size(value))
        .sum()
}

/// Whether DynamoDB accepts an item of this size (at most 400 KB).
pub fn fits_item_limit(size: usize) -> bool {
    size <= DYNAMODB_MAX_ITEM_BYTES
}

/// The size of one value: strings their UTF-8 length, binary its length, numbers one byte per two
/// significant digits plus one, null and booleans one byte, lists and maps 3 bytes plus one byte
/// per element plus their elements (a map element's name included), sets the sum of their elements.
pub fn attribute_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.len(),
        AttributeValue::Bool(_) | AttributeValue::Null => 1,
        AttributeValue::L(items) => 3 + items.iter().map(|v| 1 + attribute_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + attribute_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(items) => items.iter().map(String::len).sum(),
        AttributeValue::Ns(items) => items.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(items) => items.iter().map(Vec::len).sum(),
    }
}

/// Significant digits (leading and trailing zeros trimmed, sign and exponent not counted), one byte
/// per two of them rounded up, plus one.
fn number_size(text: &str) -> usize {
    let mantissa = text.split(['e', 'E']).next().unwrap_or_default();
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len().max(1);
    significant.div_ceil(2) + 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RecordCoordinates;
    use pipeline_contracts::contracts;

    #[test]
    fn each_type_is_sized_by_the_documented_formula() {
        assert_eq!(attribute_size(&AttributeValue::S("héllo".into())), 6);
        assert_eq!(attribute_size(&AttributeValue::B(vec![0; 7])), 7);
        assert_eq!(attribute_size(&AttributeValue::Null), 1);
        assert_eq!(attribute_size(&AttributeValue::Bool(false)), 1);
        for (number, size) in [
            ("0", 2),
            ("7", 2),
            ("12", 2),
            ("123", 3),
            ("-123", 3),
            ("1000", 2),
            ("0.00125", 3),
            ("1.5E+10", 2),
            ("12345678901234567890123456789012345678", 20),
        ] {
            assert_eq!(
                attribute_size(&AttributeValue::N(number.into())),
                size,
                "{number}"
            );
        }
        let list = AttributeValue::L(vec![AttributeValue::N("1".into()), AttributeValue::Null]);
        assert_eq!(attribute_size(&list), 3 + (1 + 2) + (1 + 1));
        let map = AttributeValue::M(BTreeMap::from([("ab".into(), AttributeValue::S("xyz".into()))]));
        assert_eq!(attribute_size(&map), 3 + 1 + 2 + 3);
        assert_eq!(
            attribute_size(&AttributeValue::Ss(vec!["a".into(), "bc".into()])),
            3
        );
        assert_eq!(
            attribute_size(&AttributeValue::Ns(vec!["1".into(), "123".into()])),
            5
        );
        assert_eq!(attribute_size(&AttributeValue::Bs(vec![vec![1], vec![2, 3]])), 3);
        let item = Item::from([
            ("id".into(), AttributeValue::S("abc".into())),
            ("n".into(), AttributeValue::N("42".into())),
        ]);
        assert_eq!(item_size(&item), 2 + 3 + 1 + 2);
    }

    fn event(key: Option<String>, document: Json) -> ExplicitEvent {
        ExplicitEvent {
            coordinates: RecordCoordinates {
                topic: "explicit-events".into(),
                partition: 3,
                offset: 41,
            },
            timestamp_ms: 1_700_000_000_000,
            key_base64: key,
            format: ValueFormat::Json,
            schema_version_id: None,
            document,
        }
    }

    #[test]
    fn the_item_counts_every_attribute_keys_and_the_kafka_key_included() {
        let table = &contracts().tables.explicit_events;
        let bare = item_size(&explicit_event_item(&event(None, Json::Null), table));
        let expected_bare = table.partition_key.len() + "explicit-events-3".len()
            + table.sort_key.len() + 2
            + "topic".len() + "explicit-events".len()
            + "partition".len() + 2
            + "timestamp".len() + 2 // 1700000000000 has two significant digits
            + "format".len() + "json".len()
            + "payload".len() + 1;
        assert_eq!(bare, expected_bare);
        let keyed = item_size(&explicit_event_item(
            &event(Some("a2V5".into()), Json::Null),
            table,
        ));
        assert_eq!(keyed, bare + "key".len() + 4);
    }

    #[test]
    fn small_ints_and_long_keys_cross_the_limit_the_json_size_hides() {
        let table = &contracts().tables.explicit_events;
        // 170,000 one-digit numbers: 340 KB of JSON, about 510 KB as an item.
        let ints = Json::Array(vec![Json::from(7); 170_000]);
        assert!(serde_json::to_vec(&ints).unwrap().len() < 350 * 1024);
        let size = item_size(&explicit_event_item(&event(None, ints), table));
        assert!(size > 510_000 && !fits_item_limit(size), "{size}");
        // A 310 KB Kafka key is 413 KB as base64, with a tiny document.
        let key = "A".repeat(310_000usize.div_ceil(3) * 4);
        let size = item_size(&explicit_event_item(&event(Some(key), Json::Null), table));
        assert!(!fits_item_limit(size), "{size}");
    }

    #[test]
    fn the_limit_is_inclusive() {
        let table = &contracts().tables.explicit_events;
        let bare = item_size(&explicit_event_item(
            &event(None, Json::String(String::new())),
            table,
        ));
        let at = "x".repeat(DYNAMODB_MAX_ITEM_BYTES - bare);
        let size = item_size(&explicit_event_item(
            &event(None, Json::String(at.clone())),
            table,
        ));
        assert_eq!(size, DYNAMODB_MAX_ITEM_BYTES);
        assert!(fits_item_limit(size));
        let over = format!("{at}x");
        let size = item_size(&explicit_event_item(&event(None, Json::String(over)), table));
        assert!(!fits_item_limit(size));
    }
}
