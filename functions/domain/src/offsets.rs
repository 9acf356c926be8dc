//! Sets of Kafka offsets as sorted, disjoint, non-adjacent inclusive intervals.
//!
//! A consumer that processes a partition in order adds one interval after another, and adjacent
//! intervals merge, so the normal case is a single interval however many batches were applied. Out
//! of order application (a second mapping started at `LATEST`, a consumer-group reset, a re-driven
//! batch, a partial replay) adds intervals that merge again once the gaps are filled.
//!
//! Text form (stored in DynamoDB): `"0-41,50-99"`, a single offset as `"7"`.

use std::fmt;

use thiserror::Error;

/// Inclusive `[first, last]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OffsetRange {
    pub first: i64,
    pub last: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct OffsetSet {
    /// Sorted by `first`; no two overlap or touch.
    ranges: Vec<OffsetRange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("not an offset interval list ({0:?}): expected e.g. \"0-41,50-99\"")]
pub struct OffsetSetParseError(String);

impl OffsetSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every offset up to and including `last` (how a legacy high-water mark reads).
    pub fn up_to(last: i64) -> Self {
        Self::from_range(0, last)
    }

    pub fn from_range(first: i64, last: i64) -> Self {
        let mut set = Self::new();
        set.insert_range(first, last);
        set
    }

    pub fn from_offsets(offsets: impl IntoIterator<Item = i64>) -> Self {
        let mut set = Self::new();
        for offset in offsets {
            set.insert(offset);
        }
        set
    }

    pub fn ranges(&self) -> &[OffsetRange] {
        &self.ranges
    }

    /// Number of disjoint intervals.
    pub fn interval_count(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, offset: i64) -> bool {
        let at = self.ranges.partition_point(|r| r.last < offset);
        self.ranges.get(at).is_some_and(|r| r.first <= offset)
    }

    pub fn insert(&mut self, offset: i64) {
        self.insert_range(offset, offset);
    }

    /// Adds `first..=last` (nothing when `first > last`), merging what it overlaps or touches.
    pub fn insert_range(&mut self, first: i64, last: i64) {
        if first > last {
            return;
        }
        // The first range that ends at or after `first - 1` may touch or overlap the new one.
        let start = self.ranges.partition_point(|r| r.last < first.saturating_sub(1));
        let mut merged = OffsetRange { first, last };
        let mut end = start;
        while let Some(r) = self.ranges.get(end) {
            if r.first > last.saturating_add(1) {
                break;
            }
            merged.first = merged.first.min(r.first);
            merged.last = merged.last.max(r.last);
            end += 1;
        }
        self.ranges.splice(start..end, [merged]);
    }

    pub fn parse(text: &str) -> Result<Self, OffsetSetParseError> {
        let bad = || OffsetSetParseError(text.chars().take(64).collect());
        let mut set = Self::new();
        if text.is_empty() {
            return Ok(set);
        }
        for part in text.split(',') {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (a, b),
                None => (part, part),
            };
            let first: i64 = first.parse().map_err(|_| bad())?;
            let last: i64 = last.parse().map_err(|_| bad())?;
            if first < 0 || first > last {
                return Err(bad());
            }
            set.insert_range(first, last);
        }
        Ok(set)
    }
}

impl fmt::Display for OffsetSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if r.first == r.last {
                write!(f, "{}", r.first)?;
            } else {
                write!(f, "{}-{}", r.first, r.last)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_ranges_merge_into_one_and_gaps_close_when_filled() {
        let mut set = OffsetSet::new();
        set.insert_range(0, 99);
        set.insert_range(100, 199);
        assert_eq!(set.to_string(), "0-199");
        set.insert_range(300, 399);
        set.insert(250);
        assert_eq!(set.to_string(), "0-199,250,300-399");
        set.insert_range(200, 249);
        set.insert_range(251, 299);
        assert_eq!(set.to_string(), "0-399");
        assert_eq!(set.interval_count(), 1);
        set.insert_range(10, 20);
        assert_eq!(set.to_string(), "0-399");
    }

    #[test]
    fn membership() {
        let set = OffsetSet::parse("0-41,50-99").unwrap();
        assert!(set.contains(0) && set.contains(41) && set.contains(50) && set.contains(99));
        assert!(!set.contains(42) && !set.contains(49) && !set.contains(100) && !set.contains(-1));
        assert!(OffsetSet::up_to(6).contains(0) && !OffsetSet::up_to(6).contains(7));
        assert!(OffsetSet::new().is_empty());
    }

    #[test]
    fn text_form_round_trips_and_rejects_garbage() {
        for text in ["", "7", "0-41,50-99", "9223372036854775806-9223372036854775807"] {
            assert_eq!(OffsetSet::parse(text).unwrap().to_string(), text);
        }
        for bad in ["a", "5-3", "-1", "1-", ",", "1,,2"] {
            assert!(OffsetSet::parse(bad).is_err(), "{bad}");
        }
        // Overlapping or unsorted input is normalised.
        assert_eq!(OffsetSet::parse("5-9,0-5").unwrap().to_string(), "0-9");
    }

    /// Deterministic xorshift.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn any_insertion_order_gives_the_same_set_as_a_plain_bitmap() {
        for seed in 1..=300u64 {
            let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            let mut set = OffsetSet::new();
            let mut bitmap = [false; 64];
            for _ in 0..(next(&mut rng) % 20) {
                let a = (next(&mut rng) % 64) as i64;
                let b = (a + (next(&mut rng) % 6) as i64).min(63);
                set.insert_range(a, b);
                for o in a..=b {
                    bitmap[o as usize] = true;
                }
            }
            for (o, &applied) in bitmap.iter().enumerate() {
                assert_eq!(set.contains(o as i64), applied, "seed {seed} offset {o}");
            }
            // Canonical: disjoint, non-adjacent, sorted.
            for pair in set.ranges().windows(2) {
                assert!(pair[0].last + 1 < pair[1].first, "seed {seed}: {set}");
            }
            assert_eq!(OffsetSet::parse(&set.to_string()).unwrap(), set);
        }
    }
}
