//! The store-event archive layout: deterministic gzip NDJSON blocks.
//!
//! Events are grouped into blocks by event type, event date (UTC), topic, partition and a fixed
//! range of [`BLOCK_OFFSETS`] offsets; a block is one object at
//! `<prefix>event_type=<type>/date=<yyyy-mm-dd>/<topic>-<partition>-<block start>.ndjson.gz`.
//! Writing a block reads the stored object, takes the union by offset and writes the lines back
//! sorted by offset, gzip-compressed with a fixed header (no name, mtime 0) and level. The bytes
//! are therefore a function of the set of events in the block only: replaying a batch, whole or
//! in part, rewrites identical objects or (when nothing is new) writes nothing.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use thiserror::Error;

use super::ports::StoreEventRow;
use crate::model::{RecordCoordinates, StoreEvent, StoreEventType};
use crate::payload::store_event_to_json;

/// Offsets per archive block.
pub const BLOCK_OFFSETS: i64 = 1000;

pub const CONTENT_TYPE: &str = "application/gzip";

/// Refuse to inflate stored blocks beyond this.
const MAX_BLOCK_BYTES: u64 = 64 * 1024 * 1024;

// A block holds at most BLOCK_OFFSETS lines and the decoder refuses longer lines, so no block the
// consumer writes can grow past what it reads back.
const _: () =
    assert!((BLOCK_OFFSETS as u64) * (crate::limits::MAX_ARCHIVE_LINE_BYTES as u64 + 1) <= MAX_BLOCK_BYTES);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArchiveError {
    #[error("stored archive object is not valid gzip NDJSON: {0}")]
    Corrupt(String),
    #[error("event time {0} µs has no calendar date")]
    NoDate(i64),
}

/// One archive object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockId {
    pub event_type: StoreEventType,
    /// `yyyy-mm-dd`, UTC.
    pub date: String,
    pub topic: String,
    pub partition: i32,
    pub block_start: i64,
}

impl BlockId {
    pub fn object_key(&self, prefix: &str) -> String {
        format!(
            "{prefix}event_type={}/date={}/{}-{}-{}.ndjson.gz",
            self.event_type.as_str(),
            self.date,
            self.topic,
            self.partition,
            self.block_start
        )
    }
}

/// One NDJSON line: the record's coordinates and the event in its JSON form (money as exact
/// decimal strings, `ts` as epoch microseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveLine {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub event: Json,
}

fn line_of(coordinates: &RecordCoordinates, event: &StoreEvent) -> ArchiveLine {
    ArchiveLine {
        topic: coordinates.topic.clone(),
        partition: coordinates.partition,
        offset: coordinates.offset,
        event: store_event_to_json(event),
    }
}

/// The length of the record's archive line, newline excluded.
pub fn line_bytes(coordinates: &RecordCoordinates, event: &StoreEvent) -> usize {
    serde_json::to_vec(&line_of(coordinates, event)).map_or(usize::MAX, |v| v.len())
}

/// Groups rows into blocks; within a block, lines are keyed by offset.
pub fn group_into_blocks(
    rows: &[StoreEventRow],
) -> Result<BTreeMap<BlockId, BTreeMap<i64, ArchiveLine>>, ArchiveError> {
    let mut blocks: BTreeMap<BlockId, BTreeMap<i64, ArchiveLine>> = BTreeMap::new();
    for row in rows {
        let date = chrono::DateTime::from_timestamp_micros(row.event.ts_micros)
            .ok_or(ArchiveError::NoDate(row.event.ts_micros))?
            .format("%Y-%m-%d")
            .to_string();
        let id = BlockId {
            event_type: row.event.event_type,
            date,
            topic: row.coordinates.topic.clone(),
            partition: row.coordinates.partition,
            block_start: row.coordinates.offset.div_euclid(BLOCK_OFFSETS) * BLOCK_OFFSETS,
        };
        blocks
            .entry(id)
            .or_default()
            .insert(row.coordinates.offset, line_of(&row.coordinates, &row.event));
    }
    Ok(blocks)
}

/// The new object bytes for a block, or `None` when the stored object already holds every line.
/// Lines already stored win over new ones with the same offset (they are the same record).
pub fn merge_block(
    stored: Option<&[u8]>,
    new_lines: &BTreeMap<i64, ArchiveLine>,
) -> Result<Option<Vec<u8>>, ArchiveError> {
    let mut lines: BTreeMap<i64, ArchiveLine> = match stored {
        Some(bytes) => decode_block(bytes)?
            .into_iter()
            .map(|line| (line.offset, line))
            .collect(),
        None => BTreeMap::new(),
    };
    let before = lines.len();
    for (offset, line) in new_lines {
        lines.entry(*offset).or_insert_with(|| line.clone());
    }
    if stored.is_some() && lines.len() == before {
        return Ok(None);
    }
    Ok(Some(encode_block(lines.values())))
}

/// Gzip NDJSON with a fixed header: same lines in, same bytes out.
pub fn encode_block<'a>(lines: impl IntoIterator<Item = &'a ArchiveLine>) -> Vec<u8> {
    let mut ndjson = Vec::new();
    for line in lines {
        // Serializing plain structs and JSON values into a Vec cannot fail.
        serde_json::to_writer(&mut ndjson, line).expect("in-memory JSON serialization");
        ndjson.push(b'\n');
    }
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::new(6));
    encoder.write_all(&ndjson).expect("in-memory write");
    encoder.finish().expect("in-memory write")
}

pub fn decode_block(bytes: &[u8]) -> Result<Vec<ArchiveLine>, ArchiveError> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_BLOCK_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| ArchiveError::Corrupt(e.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(partition: i32, offset: i64, event_type: StoreEventType, ts_micros: i64) -> StoreEventRow {
        StoreEventRow {
            coordinates: RecordCoordinates {
                topic: "store-events".into(),
                partition,
                offset,
            },
            event: StoreEvent {
                request_id: format!("r-{offset}"),
                event_type,
                store_id: 1,
                cust_id: 2,
                category: "Camera".into(),
                sku: 3,
                price_cents: 1999,
                qty: 1,
                discount_hundredths: 50,
                gift_wrap: false,
                variant: "red".into(),
                priority_shipping: true,
                ts_micros,
                contact_me: None,
            },
        }
    }

    const DAY: i64 = 86_400_000_000;

    #[test]
    fn keys_follow_type_date_topic_partition_and_block() {
        let rows = [
            row(0, 999, StoreEventType::Sales, 0),
            row(0, 1000, StoreEventType::Sales, 0),
            row(0, 1001, StoreEventType::Inventory, DAY),
            row(3, 5, StoreEventType::Sales, -1),
        ];
        let keys: Vec<String> = group_into_blocks(&rows)
            .unwrap()
            .keys()
            .map(|id| id.object_key("store-events/"))
            .collect();
        assert_eq!(
            keys,
            vec![
                "store-events/event_type=sales_event/date=1969-12-31/store-events-3-0.ndjson.gz",
                "store-events/event_type=sales_event/date=1970-01-01/store-events-0-0.ndjson.gz",
                "store-events/event_type=sales_event/date=1970-01-01/store-events-0-1000.ndjson.gz",
                "store-events/event_type=inventory_event/date=1970-01-02/store-events-0-1000.ndjson.gz",
            ]
        );
    }

    #[test]
    fn union_by_offset_is_order_independent_and_replays_write_nothing() {
        let rows: Vec<StoreEventRow> = (0..10).map(|o| row(0, o, StoreEventType::Sales, 0)).collect();
        let all = group_into_blocks(&rows).unwrap();
        let (_, all_lines) = all.iter().next().unwrap();
        let whole = merge_block(None, all_lines).unwrap().unwrap();

        let first = group_into_blocks(&rows[5..])
            .unwrap()
            .into_values()
            .next()
            .unwrap();
        let second = group_into_blocks(&rows[..7])
            .unwrap()
            .into_values()
            .next()
            .unwrap();
        let stored = merge_block(None, &first).unwrap().unwrap();
        let merged = merge_block(Some(&stored), &second).unwrap().unwrap();
        assert_eq!(merged, whole, "bytes depend only on the set of lines");
        assert_eq!(merge_block(Some(&merged), all_lines).unwrap(), None);

        let lines = decode_block(&merged).unwrap();
        assert_eq!(
            lines.iter().map(|l| l.offset).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert_eq!(lines[3].event["price"], "19.99");
        // Fixed gzip header: magic, deflate, no flags, mtime 0.
        assert_eq!(&merged[..8], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn corrupt_objects_are_reported_not_overwritten() {
        let line = group_into_blocks(&[row(0, 1, StoreEventType::Sales, 0)]).unwrap();
        let (_, lines) = line.iter().next().unwrap();
        assert!(matches!(
            merge_block(Some(b"not gzip"), lines),
            Err(ArchiveError::Corrupt(_))
        ));
    }
}
