//! DynamoDB items as plain values, and DynamoDB's item-size formula over them.
//!
//! The explicit-event and window items are built here, once: the decoder measures the first to
//! turn what DynamoDB would refuse into poison, the window merge measures the second, the
//! in-memory fakes and the DynamoDB adapter refuse the same items, and the adapter only translates
//! these values into the SDK's. [`batch_write_requests`] splits writes into the BatchWriteItem
//! requests both the adapter and the fake send.

use std::collections::BTreeMap;

use pipeline_contracts::Table;
use serde_json::Value as Json;

use crate::consume::{ExplicitEvent, ValueFormat};
use crate::limits::{
    DYNAMODB_BATCH_WRITE_MAX_BYTES, DYNAMODB_BATCH_WRITE_MAX_ITEMS, DYNAMODB_MAX_ITEM_BYTES,
};
use crate::window::{format_milli, WindowAggregate};

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

/// Non-key attribute names of a window item (keys come from `tables.windowAggregates`).
pub mod window_attr {
    pub const WINDOW_END: &str = "window_end";
    pub const COUNT: &str = "count";
    pub const SUM: &str = "sum";
    pub const MIN: &str = "min";
    pub const MAX: &str = "max";
    pub const AVG: &str = "avg";
    pub const FIRST_EVENT_TIME: &str = "first_event_time";
    pub const LAST_EVENT_TIME: &str = "last_event_time";
    pub const OFFSETS: &str = "offsets";
}

/// The item of a window aggregate: keys from `table` (`device_id`, `window_start`), then the
/// [`window_attr`] numbers and `offsets`, a map from `topic-partition` to its applied offsets as
/// merged intervals in text (`"0-41,50-99"`).
pub fn window_item(a: &WindowAggregate, table: &Table) -> Item {
    let n = AttributeValue::N;
    Item::from([
        (
            table.partition_key.clone(),
            AttributeValue::S(a.device_id.clone()),
        ),
        (table.sort_key.clone(), n(a.window_start_ms.to_string())),
        (window_attr::WINDOW_END.into(), n(a.window_end_ms.to_string())),
        (window_attr::COUNT.into(), n(a.count.to_string())),
        (window_attr::SUM.into(), n(format_milli(a.sum_milli))),
        (window_attr::MIN.into(), n(format_milli(a.min_milli.into()))),
        (window_attr::MAX.into(), n(format_milli(a.max_milli.into()))),
        (window_attr::AVG.into(), n(format_milli(a.average_milli()))),
        (
            window_attr::FIRST_EVENT_TIME.into(),
            n(a.first_event_time_ms.to_string()),
        ),
        (
            window_attr::LAST_EVENT_TIME.into(),
            n(a.last_event_time_ms.to_string()),
        ),
        (
            window_attr::OFFSETS.into(),
            AttributeValue::M(
                a.applied
                    .iter()
                    .map(|(tp, offsets)| (tp.clone(), AttributeValue::S(offsets.to_string())))
                    .collect(),
            ),
        ),
    ])
}

/// Why a set of items cannot be written with BatchWriteItem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchWriteError {
    #[error("item {name} is {size} bytes, over DynamoDB's {DYNAMODB_MAX_ITEM_BYTES}-byte item limit")]
    ItemTooLarge { name: String, size: usize },
    #[error(
        "a BatchWriteItem request of {items} items and {bytes} bytes exceeds DynamoDB's \
         {DYNAMODB_BATCH_WRITE_MAX_ITEMS} items or {DYNAMODB_BATCH_WRITE_MAX_BYTES} bytes"
    )]
    RequestTooLarge { items: usize, bytes: usize },
}

// 25 items of at most 400 KB are 10 MB: a request of valid items never reaches BatchWriteItem's
// 16 MB, so counting items is enough once each item is within its limit.
const _: () =
    assert!(DYNAMODB_BATCH_WRITE_MAX_ITEMS * DYNAMODB_MAX_ITEM_BYTES <= DYNAMODB_BATCH_WRITE_MAX_BYTES);

/// Splits items (each with a name for errors) into BatchWriteItem requests of at most 25 items,
/// in order. An item over 400 KB is refused before anything is sent, as DynamoDB refuses the whole
/// request that holds one.
pub fn batch_write_requests<T>(items: Vec<(Item, T)>) -> Result<Vec<Vec<Item>>, BatchWriteError>
where
    T: std::fmt::Display,
{
    for (item, name) in &items {
        let size = item_size(item);
        if !fits_item_limit(size) {
            return Err(BatchWriteError::ItemTooLarge {
                name: name.to_string(),
                size,
            });
        }
    }
    let mut requests: Vec<Vec<Item>> = Vec::new();
    for (item, _) in items {
        match requests.last_mut() {
            Some(request) if request.len() < DYNAMODB_BATCH_WRITE_MAX_ITEMS => request.push(item),
            _ => requests.push(vec![item]),
        }
    }
    Ok(requests)
}

/// What DynamoDB checks of one BatchWriteItem request: at most 25 items, 16 MB, 400 KB per item.
pub fn check_batch_write_request(items: &[Item]) -> Result<(), BatchWriteError> {
    let mut bytes = 0;
    for item in items {
        let size = item_size(item);
        if !fits_item_limit(size) {
            return Err(BatchWriteError::ItemTooLarge {
                name: "in the request".into(),
                size,
            });
        }
        bytes += size;
    }
    if items.len() > DYNAMODB_BATCH_WRITE_MAX_ITEMS || bytes > DYNAMODB_BATCH_WRITE_MAX_BYTES {
        return Err(BatchWriteError::RequestTooLarge {
            items: items.len(),
            bytes,
        });
    }
    Ok(())
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
