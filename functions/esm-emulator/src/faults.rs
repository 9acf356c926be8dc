//! Fault injection for the fault tests (`scripts/faults.sh`); everything here is off by default and
//! no real event source mapping does any of it on purpose. Each fault is something the consumer
//! must survive because AWS may do it anyway: deliver a batch again, lose a commit after the
//! function has written its sinks, replay part of an old batch, or hand over a malformed event.

use std::collections::BTreeSet;

use crate::event::EncodedRecord;

/// Exit code of a process that crashed on purpose (`--fault-crash-after-batches`), so a test
/// driver can tell an injected crash from a real failure.
pub const INJECTED_CRASH_EXIT_CODE: u8 = 86;

/// What the value of a record is replaced with under `corrupt_values`: not base64 at all.
pub const CORRUPT_VALUE: &str = "%%% not base64 %%%";

/// How many delivered batches are kept as candidates for a partial replay.
pub const REPLAY_HISTORY: usize = 8;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultPlan {
    /// Invoke every batch a second time, with the identical payload, before committing it.
    pub deliver_twice: bool,
    /// Stop the process after this many batches were delivered, before committing the last one.
    pub crash_after_batches: Option<u64>,
    /// After each committed batch, with this probability, re-invoke a random contiguous sub-range
    /// (per partition) of one of the last [`REPLAY_HISTORY`] delivered batches.
    pub replay_probability: f64,
    /// Seed of the replay choices, so a failing run can be repeated.
    pub seed: u64,
    /// (partition, offset) of records whose value is delivered as [`CORRUPT_VALUE`].
    pub corrupt_values: BTreeSet<(i32, i64)>,
}

impl FaultPlan {
    pub fn is_active(&self) -> bool {
        self != &FaultPlan::default()
    }

    pub fn rng(&self) -> FaultRng {
        FaultRng::new(self.seed)
    }

    /// The record as it should be delivered: its value replaced when it is marked as corrupt.
    pub fn apply(&self, record: EncodedRecord) -> EncodedRecord {
        if !self.corrupt_values.contains(&(record.partition, record.offset)) {
            return record;
        }
        corrupt_value(record)
    }
}

/// Replaces the record's `value` with text that is not base64, keeping everything else.
pub fn corrupt_value(mut record: EncodedRecord) -> EncodedRecord {
    if let Ok(serde_json::Value::Object(mut object)) = serde_json::from_slice(&record.json) {
        object.insert("value".into(), serde_json::Value::String(CORRUPT_VALUE.into()));
        if let Ok(json) = serde_json::to_vec(&object) {
            record.json = json;
        }
    }
    record
}

/// A small seeded generator (SplitMix64): fault choices only need to be repeatable, not strong.
#[derive(Debug, Clone)]
pub struct FaultRng(u64);

impl FaultRng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    /// Uniform in `[low, high)`; `low` when the range is empty.
    pub fn below(&mut self, low: usize, high: usize) -> usize {
        if high <= low {
            return low;
        }
        low + (self.next_u64() % (high - low) as u64) as usize
    }
}

/// Parses `PARTITION:OFFSET`.
pub fn parse_coordinates(text: &str) -> Result<(i32, i64), String> {
    let (partition, offset) = text
        .split_once(':')
        .ok_or_else(|| format!("expected PARTITION:OFFSET, got {text:?}"))?;
    let partition = partition
        .trim()
        .parse()
        .map_err(|e| format!("partition in {text:?}: {e}"))?;
    let offset = offset
        .trim()
        .parse()
        .map_err(|e| format!("offset in {text:?}: {e}"))?;
    Ok((partition, offset))
}

/// A random non-empty selection of contiguous ranges, one per group (some groups may get an
/// empty range), for a partial replay of a batch whose groups have these lengths.
pub fn pick_ranges(rng: &mut FaultRng, lengths: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut ranges: Vec<std::ops::Range<usize>> = lengths
        .iter()
        .map(|&len| {
            if len == 0 || rng.chance(0.3) {
                return 0..0;
            }
            let start = rng.below(0, len);
            let end = rng.below(start + 1, len + 1);
            start..end
        })
        .collect();
    if ranges.iter().all(|r| r.is_empty()) {
        if let Some((index, &len)) = lengths.iter().enumerate().find(|(_, &len)| len > 0) {
            let start = rng.below(0, len);
            ranges[index] = start..start + 1;
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{PolledRecord, TimestampType};

    fn record(offset: i64) -> EncodedRecord {
        EncodedRecord::encode(&PolledRecord {
            topic: "t".into(),
            partition: 1,
            offset,
            timestamp: 5,
            timestamp_type: TimestampType::CreateTime,
            key: Some(b"k".to_vec()),
            value: Some(b"{\"a\":1}".to_vec()),
            headers: vec![],
        })
    }

    #[test]
    fn only_marked_records_are_corrupted_and_the_rest_of_the_record_is_kept() {
        let plan = FaultPlan {
            corrupt_values: BTreeSet::from([(1, 7)]),
            ..FaultPlan::default()
        };
        assert!(plan.is_active());
        assert_eq!(plan.apply(record(6)), record(6));
        let corrupted = plan.apply(record(7));
        let json: serde_json::Value = serde_json::from_slice(&corrupted.json).unwrap();
        assert_eq!(json["value"], CORRUPT_VALUE);
        assert_eq!(json["offset"], 7);
        assert_eq!(json["key"], "aw==");
        assert_eq!(corrupted.offset, 7);
    }

    #[test]
    fn default_plan_does_nothing() {
        assert!(!FaultPlan::default().is_active());
        assert_eq!(FaultPlan::default().apply(record(1)), record(1));
    }

    #[test]
    fn the_generator_is_repeatable_and_spread() {
        let mut a = FaultRng::new(3);
        let mut b = FaultRng::new(3);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        assert_eq!(xs, (0..5).map(|_| b.next_u64()).collect::<Vec<_>>());
        let hits = (0..10_000).filter(|_| a.chance(0.25)).count();
        assert!((2_000..3_000).contains(&hits), "{hits}");
        assert!((0..1000).all(|_| a.below(3, 7) >= 3 && a.below(3, 7) < 7));
        assert_eq!(a.below(4, 4), 4);
    }

    #[test]
    fn coordinates_parse() {
        assert_eq!(parse_coordinates("2:15"), Ok((2, 15)));
        assert!(parse_coordinates("2").is_err());
        assert!(parse_coordinates("x:1").is_err());
    }

    #[test]
    fn picked_ranges_are_in_bounds_and_never_all_empty() {
        let mut rng = FaultPlan::default().rng();
        for _ in 0..500 {
            let lengths = [0, 3, 1, 10];
            let ranges = pick_ranges(&mut rng, &lengths);
            assert_eq!(ranges.len(), lengths.len());
            assert!(ranges.iter().any(|r| !r.is_empty()));
            for (range, len) in ranges.iter().zip(lengths) {
                assert!(range.end <= len);
            }
        }
        assert_eq!(pick_ranges(&mut rng, &[0, 0]), vec![0..0, 0..0]);
    }
}
