//! Event-time tumbling windows over sensor readings: assignment, per-batch grouping and the
//! idempotent merge into a stored aggregate.
//!
//! # Exactness
//! Temperatures are aggregated as whole milli-degrees (`i64`, sums in `i128`), so a merge is plain
//! integer arithmetic: the result depends only on *which* readings were applied, never on their
//! order or on how they were split into batches. Aggregates therefore have a resolution of
//! 0.001 °C; the stored decimal strings ([`format_milli`]) are exact renderings of those integers.
//!
//! # Idempotency
//! Every aggregate carries, per `topic-partition`, the set of offsets already applied to it
//! ([`OffsetSet`], merged intervals). [`merge`] applies a reading only when its offset is not in
//! that set and reports [`MergeOutcome::Unchanged`] when nothing is new, so the caller skips the
//! write and a replayed batch (whole, or any part of one already applied) leaves the stored item
//! untouched. Nothing relies on the order in which batches arrive: a batch below offsets already
//! applied (a second mapping started at `LATEST`, a consumer-group reset, a re-driven batch)
//! applies exactly the readings that are new.
//!
//! The set holds the offsets of the readings applied to the item, nothing else, so the stored item
//! is a function of the set of readings only, whatever the batching, order or replays (the fault
//! tests compare items byte for byte with a clean run). Consecutive offsets form one interval: a
//! device that has its partition to itself is one interval; readings interleaved with other
//! devices' records are one interval each. An item keeps at most [`MAX_OFFSET_INTERVALS`]
//! intervals over all partitions; a write that would exceed it is refused with
//! [`MergeError::TooFragmented`] and the batch fails (the `BatchFailures` alarm fires), so nothing
//! is dropped silently. The item itself, measured with DynamoDB's item-size formula
//! ([`crate::dynamodb_item::window_item`]), must stay within DynamoDB's 400 KB: the interval bound
//! keeps the `offsets` text under 160 KiB, but each partition is a map entry named
//! `topic-partition` (a topic name may take 249 bytes), so readings of one device spread over
//! many partitions of long-named topics could pass it. A merge whose item would exceed 400 KB is
//! refused with [`MergeError::ItemTooLarge`] and fails the batch in the same way, before DynamoDB
//! would refuse the write. The stored `count` doubles as the optimistic-concurrency token: it grows
//! with every effective write, so "count unchanged" is a safe condition for the next write.
//!
//! # Window size
//! An item's size is `window_end - window_start`. [`merge`] refuses ([`MergeError::SizeChanged`])
//! to add readings to an item of another size than the configured one: readings already counted
//! in items of the old size would be counted again in the new, larger or smaller, windows.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::dynamodb_item::{fits_item_limit, item_size, window_item};
use crate::limits::DYNAMODB_MAX_ITEM_BYTES;
use crate::model::{RecordCoordinates, SensorReading};
use crate::offsets::OffsetSet;

/// Most offset intervals one item keeps, over all partitions: one device's readings in one window
/// (68 per second for a 60 s window when every reading is its own interval). The text form of an
/// interval takes at most 40 bytes (two 19-digit offsets), so the `offsets` attribute stays under
/// 160 KiB, well inside DynamoDB's 400 KB item limit ("Service, account, and table quotas in
/// Amazon DynamoDB"); with offsets below 10^12 it is under 56 KiB.
pub const MAX_OFFSET_INTERVALS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Error)]
pub enum WindowError {
    #[error("window size must be at least one second")]
    ZeroSize,
    #[error("window size of {0} seconds is too large")]
    SizeTooLarge(u64),
    #[error("event time {event_time} ms lies outside the representable window range")]
    EventTimeOutOfRange { event_time: i64 },
    #[error("temperature {0} cannot be expressed in milli-degrees")]
    TemperatureOutOfRange(f64),
}

/// Why [`merge`] refused to write; the batch fails rather than lose or double-count a reading.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MergeError {
    #[error(
        "window {device_id}@{window_start_ms} is stored with a size of {stored_ms} ms but the \
         consumer is configured for {configured_ms} ms (WINDOW_SECONDS changed); merging would \
         count readings twice. Point the consumer at a new table for the new size"
    )]
    SizeChanged {
        device_id: String,
        window_start_ms: i64,
        stored_ms: i64,
        configured_ms: i64,
    },
    #[error(
        "window {device_id}@{window_start_ms} would hold {intervals} offset intervals, more than \
         {MAX_OFFSET_INTERVALS}"
    )]
    TooFragmented {
        device_id: String,
        window_start_ms: i64,
        intervals: usize,
    },
    #[error(
        "window {device_id}@{window_start_ms} would be a {size}-byte item, over DynamoDB's \
         {DYNAMODB_MAX_ITEM_BYTES}-byte item limit"
    )]
    ItemTooLarge {
        device_id: String,
        window_start_ms: i64,
        size: usize,
    },
}

/// The tumbling window length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    size_ms: i64,
}

/// One window: `[start_ms, end_ms)` in epoch milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowBounds {
    pub start_ms: i64,
    /// Exclusive.
    pub end_ms: i64,
}

impl WindowSpec {
    /// Windows of `seconds` seconds, aligned to the Unix epoch.
    pub fn from_seconds(seconds: u64) -> Result<Self, WindowError> {
        if seconds == 0 {
            return Err(WindowError::ZeroSize);
        }
        // A year is far beyond any sensible aggregation window; the bound keeps `end` arithmetic safe.
        const MAX_SECONDS: u64 = 366 * 24 * 3600;
        if seconds > MAX_SECONDS {
            return Err(WindowError::SizeTooLarge(seconds));
        }
        Ok(Self {
            size_ms: seconds as i64 * 1000,
        })
    }

    pub fn size_ms(&self) -> i64 {
        self.size_ms
    }

    /// The window holding `event_time_ms`. Floor division, so times before the epoch land in the
    /// window that starts at or before them (e.g. -1 ms falls in `[-size, 0)`).
    pub fn assign(&self, event_time_ms: i64) -> Result<WindowBounds, WindowError> {
        let out_of_range = WindowError::EventTimeOutOfRange {
            event_time: event_time_ms,
        };
        let start_ms = event_time_ms
            .div_euclid(self.size_ms)
            .checked_mul(self.size_ms)
            .ok_or(out_of_range.clone())?;
        let end_ms = start_ms.checked_add(self.size_ms).ok_or(out_of_range)?;
        Ok(WindowBounds { start_ms, end_ms })
    }
}

/// Identity of one aggregate: the table's partition and sort key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WindowKey {
    pub device_id: String,
    pub window_start_ms: i64,
}

/// One reading as it enters a window.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Contribution {
    /// `topic-partition` of the record.
    pub topic_partition: String,
    pub offset: i64,
    pub event_time_ms: i64,
    pub milli_degrees: i64,
}

/// The readings of one batch that fall into one window, not yet merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWindow {
    pub key: WindowKey,
    pub bounds: WindowBounds,
    pub contributions: Vec<Contribution>,
}

/// A stored window aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowAggregate {
    pub device_id: String,
    pub window_start_ms: i64,
    /// Exclusive.
    pub window_end_ms: i64,
    pub count: u64,
    pub sum_milli: i128,
    pub min_milli: i64,
    pub max_milli: i64,
    pub first_event_time_ms: i64,
    pub last_event_time_ms: i64,
    /// Offsets applied to this aggregate, per `topic-partition`.
    pub applied: BTreeMap<String, OffsetSet>,
}

impl WindowAggregate {
    pub fn key(&self) -> WindowKey {
        WindowKey {
            device_id: self.device_id.clone(),
            window_start_ms: self.window_start_ms,
        }
    }

    pub fn size_ms(&self) -> i64 {
        self.window_end_ms.saturating_sub(self.window_start_ms)
    }

    /// Mean in milli-degrees, rounded half away from zero; a pure function of sum and count, so it
    /// is as reproducible as they are.
    pub fn average_milli(&self) -> i128 {
        let count = i128::from(self.count.max(1));
        let doubled = 2 * self.sum_milli;
        if doubled >= 0 {
            (doubled + count) / (2 * count)
        } else {
            (doubled - count) / (2 * count)
        }
    }
}

/// What [`merge`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// Every contribution was already applied: write nothing.
    Unchanged,
    /// The new aggregate, and how many contributions were applied.
    Updated {
        aggregate: WindowAggregate,
        applied: usize,
    },
}

/// Whole milli-degrees, rounded to nearest. Physical readings are validated upstream; this only
/// refuses values that cannot be represented at all.
pub fn to_milli_degrees(celsius: f64) -> Result<i64, WindowError> {
    let scaled = (celsius * 1000.0).round();
    // 2^62 keeps sums of millions of readings far from i128 limits and converts exactly.
    if !scaled.is_finite() || scaled.abs() > 4.6e18 {
        return Err(WindowError::TemperatureOutOfRange(celsius));
    }
    Ok(scaled as i64)
}

/// Groups one batch's readings by (device, window). Readings whose window cannot be computed are
/// returned separately with their reason, so the caller can set them aside as poison.
pub fn group_readings<'a>(
    spec: WindowSpec,
    readings: impl IntoIterator<Item = (&'a RecordCoordinates, &'a SensorReading)>,
) -> (Vec<PendingWindow>, Vec<(RecordCoordinates, WindowError)>) {
    // Keyed by the borrowed device id (same order as `WindowKey`): the owned key is built once
    // per window, and the `topic-partition` string once per run of one partition's readings.
    let mut windows: BTreeMap<(&'a str, i64), PendingWindow> = BTreeMap::new();
    let mut rejected = Vec::new();
    let mut partition: Option<(&'a RecordCoordinates, String)> = None;
    for (coordinates, reading) in readings {
        let placed = spec
            .assign(reading.event_time)
            .and_then(|bounds| to_milli_degrees(reading.temperature).map(|milli| (bounds, milli)));
        let (bounds, milli_degrees) = match placed {
            Ok(placed) => placed,
            Err(error) => {
                rejected.push((coordinates.clone(), error));
                continue;
            }
        };
        let topic_partition = match &partition {
            Some((last, text))
                if last.partition == coordinates.partition && last.topic == coordinates.topic =>
            {
                text.clone()
            }
            _ => partition
                .insert((coordinates, coordinates.topic_partition()))
                .1
                .clone(),
        };
        windows
            .entry((reading.device_id.as_str(), bounds.start_ms))
            .or_insert_with(|| PendingWindow {
                key: WindowKey {
                    device_id: reading.device_id.clone(),
                    window_start_ms: bounds.start_ms,
                },
                bounds,
                contributions: Vec::new(),
            })
            .contributions
            .push(Contribution {
                topic_partition,
                offset: coordinates.offset,
                event_time_ms: reading.event_time,
                milli_degrees,
            });
    }
    (windows.into_values().collect(), rejected)
}

/// Applies the pending contributions whose offsets the stored aggregate has not applied yet.
///
/// The decision uses the offsets as stored *before* this batch, so several readings of one
/// partition in one batch all apply; duplicates of one record inside a batch apply once.
pub fn merge(
    existing: Option<&WindowAggregate>,
    pending: &PendingWindow,
) -> Result<MergeOutcome, MergeError> {
    if let Some(stored) = existing {
        let configured_ms = pending.bounds.end_ms - pending.bounds.start_ms;
        if stored.size_ms() != configured_ms {
            return Err(MergeError::SizeChanged {
                device_id: stored.device_id.clone(),
                window_start_ms: stored.window_start_ms,
                stored_ms: stored.size_ms(),
                configured_ms,
            });
        }
    }
    let stored_offsets = existing.map(|a| &a.applied);
    let mut fresh: Vec<&Contribution> = pending
        .contributions
        .iter()
        .filter(|c| {
            !stored_offsets
                .and_then(|applied| applied.get(&c.topic_partition))
                .is_some_and(|offsets| offsets.contains(c.offset))
        })
        .collect();
    fresh.sort_by(|a, b| (&a.topic_partition, a.offset).cmp(&(&b.topic_partition, b.offset)));
    fresh.dedup_by(|a, b| a.topic_partition == b.topic_partition && a.offset == b.offset);
    let Some(first) = fresh.first() else {
        return Ok(MergeOutcome::Unchanged);
    };

    let mut aggregate = match existing {
        Some(stored) => stored.clone(),
        None => WindowAggregate {
            device_id: pending.key.device_id.clone(),
            window_start_ms: pending.bounds.start_ms,
            window_end_ms: pending.bounds.end_ms,
            count: 0,
            sum_milli: 0,
            min_milli: first.milli_degrees,
            max_milli: first.milli_degrees,
            first_event_time_ms: first.event_time_ms,
            last_event_time_ms: first.event_time_ms,
            applied: BTreeMap::new(),
        },
    };
    for contribution in &fresh {
        aggregate.count += 1;
        aggregate.sum_milli += i128::from(contribution.milli_degrees);
        aggregate.min_milli = aggregate.min_milli.min(contribution.milli_degrees);
        aggregate.max_milli = aggregate.max_milli.max(contribution.milli_degrees);
        aggregate.first_event_time_ms = aggregate.first_event_time_ms.min(contribution.event_time_ms);
        aggregate.last_event_time_ms = aggregate.last_event_time_ms.max(contribution.event_time_ms);
        aggregate
            .applied
            .entry(contribution.topic_partition.clone())
            .or_default()
            .insert(contribution.offset);
    }
    let intervals: usize = aggregate.applied.values().map(OffsetSet::interval_count).sum();
    if intervals > MAX_OFFSET_INTERVALS {
        return Err(MergeError::TooFragmented {
            device_id: aggregate.device_id.clone(),
            window_start_ms: aggregate.window_start_ms,
            intervals,
        });
    }
    let size = item_size(&window_item(
        &aggregate,
        &pipeline_contracts::contracts().tables.window_aggregates,
    ));
    if !fits_item_limit(size) {
        return Err(MergeError::ItemTooLarge {
            device_id: aggregate.device_id.clone(),
            window_start_ms: aggregate.window_start_ms,
            size,
        });
    }
    Ok(MergeOutcome::Updated {
        aggregate,
        applied: fresh.len(),
    })
}

/// Exact decimal rendering of milli-units in canonical form (no trailing zeros, no exponent):
/// `21500` → `"21.5"`, `-125` → `"-0.125"`, `0` → `"0"`.
pub fn format_milli(value: i128) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let magnitude = value.unsigned_abs();
    let whole = magnitude / 1000;
    let fraction = magnitude % 1000;
    if fraction == 0 {
        return format!("{sign}{whole}");
    }
    let digits = format!("{fraction:03}");
    format!("{sign}{whole}.{}", digits.trim_end_matches('0'))
}

/// Parses a decimal number (optionally with an exponent, as stores may normalise numbers) into
/// milli-units, exactly. `None` when the text is not a number or has sub-milli precision.
pub fn parse_milli(text: &str) -> Option<i128> {
    let text = text.trim();
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], text[at + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (negative, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // value = all_digits * 10^(exponent - fraction.len()); we want value * 1000.
    let all_digits = format!("{whole}{fraction}");
    let all_digits = all_digits.trim_start_matches('0');
    let scale = i64::from(exponent) - fraction.len() as i64 + 3;
    let (significant, scale) = if scale < 0 {
        let cut = usize::try_from(-scale).ok()?;
        if cut > all_digits.len() {
            // Only zeros may be dropped.
            return if all_digits.is_empty() { Some(0) } else { None };
        }
        let (kept, dropped) = all_digits.split_at(all_digits.len() - cut);
        if dropped.bytes().any(|b| b != b'0') {
            return None;
        }
        (kept, 0u32)
    } else {
        (all_digits, u32::try_from(scale).ok()?)
    };
    let mut value: i128 = if significant.is_empty() {
        0
    } else {
        significant.parse().ok()?
    };
    if value != 0 {
        value = value.checked_mul(10i128.checked_pow(scale)?)?;
    }
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(seconds: u64) -> WindowSpec {
        WindowSpec::from_seconds(seconds).unwrap()
    }

    fn coords(partition: i32, offset: i64) -> RecordCoordinates {
        RecordCoordinates {
            topic: "sensor-readings".into(),
            partition,
            offset,
        }
    }

    fn reading(device: &str, event_time: i64, temperature: f64) -> SensorReading {
        SensorReading {
            device_id: device.into(),
            event_time,
            temperature,
            humidity: None,
        }
    }

    #[test]
    fn assignment_floors_including_before_the_epoch_and_at_edges() {
        let s = spec(60);
        let cases = [
            (0, 0, 60_000),
            (59_999, 0, 60_000),
            (60_000, 60_000, 120_000),
            (-1, -60_000, 0),
            (-60_000, -60_000, 0),
            (-60_001, -120_000, -60_000),
            (1_700_000_012_345, 1_699_999_980_000, 1_700_000_040_000),
        ];
        for (t, start, end) in cases {
            assert_eq!(
                s.assign(t).unwrap(),
                WindowBounds {
                    start_ms: start,
                    end_ms: end
                },
                "{t}"
            );
        }
        // The window of i64::MIN would start before i64::MIN; the one of i64::MAX would end after it.
        assert_eq!(
            spec(1).assign(i64::MIN),
            Err(WindowError::EventTimeOutOfRange { event_time: i64::MIN })
        );
        let lowest = (i64::MIN.div_euclid(1000) + 1) * 1000;
        assert_eq!(spec(1).assign(lowest).unwrap().start_ms, lowest);
        assert_eq!(
            spec(1).assign(i64::MAX),
            Err(WindowError::EventTimeOutOfRange { event_time: i64::MAX })
        );
        assert_eq!(WindowSpec::from_seconds(0), Err(WindowError::ZeroSize));
        assert!(WindowSpec::from_seconds(10_000_000_000).is_err());
    }

    #[test]
    fn grouping_splits_by_device_and_window_and_rejects_unplaceable_readings() {
        let c = [coords(0, 1), coords(0, 2), coords(1, 7), coords(0, 3)];
        let r = [
            reading("a", 10, 20.0),
            reading("a", 70_000, 21.0),
            reading("b", 11, 22.0),
            reading("a", i64::MAX, 1.0),
        ];
        let (windows, rejected) = group_readings(spec(60), c.iter().zip(r.iter()));
        assert_eq!(windows.len(), 3);
        assert_eq!(rejected.len(), 1);
        assert_eq!(rejected[0].0, coords(0, 3));
        let a0 = &windows[0];
        assert_eq!(a0.key.device_id, "a");
        assert_eq!(a0.key.window_start_ms, 0);
        assert_eq!(a0.contributions[0].topic_partition, "sensor-readings-0");
        assert_eq!(a0.contributions[0].milli_degrees, 20_000);
    }

    #[test]
    fn merge_aggregates_and_skips_what_the_watermarks_cover() {
        let c = [coords(0, 5), coords(0, 6), coords(1, 2)];
        let r = [
            reading("d", 1000, 20.5),
            reading("d", 500, 19.25),
            reading("d", 9000, -1.0),
        ];
        let (windows, _) = group_readings(spec(60), c.iter().zip(r.iter()));
        let MergeOutcome::Updated { aggregate, applied } = merge(None, &windows[0]).unwrap() else {
            panic!("first merge must update")
        };
        assert_eq!(applied, 3);
        assert_eq!(aggregate.count, 3);
        assert_eq!(aggregate.sum_milli, 38_750);
        assert_eq!((aggregate.min_milli, aggregate.max_milli), (-1000, 20_500));
        assert_eq!(
            (aggregate.first_event_time_ms, aggregate.last_event_time_ms),
            (500, 9000)
        );
        assert_eq!(aggregate.window_end_ms, 60_000);
        assert_eq!(aggregate.average_milli(), 12_917);
        assert_eq!(
            aggregate.applied,
            BTreeMap::from([
                ("sensor-readings-0".into(), OffsetSet::from_range(5, 6)),
                ("sensor-readings-1".into(), OffsetSet::from_offsets([2]))
            ])
        );
        // Replaying the same pending window changes nothing.
        assert_eq!(
            merge(Some(&aggregate), &windows[0]).unwrap(),
            MergeOutcome::Unchanged
        );

        // A later record of partition 0 applies; one of partition 1 already applied does not.
        let c2 = [coords(0, 9), coords(1, 2)];
        let r2 = [reading("d", 100, 30.0), reading("d", 100, 99.0)];
        let (later, _) = group_readings(spec(60), c2.iter().zip(r2.iter()));
        let MergeOutcome::Updated {
            aggregate: next,
            applied,
        } = merge(Some(&aggregate), &later[0]).unwrap()
        else {
            panic!("must update")
        };
        assert_eq!(applied, 1);
        assert_eq!(next.count, 4);
        assert_eq!(next.max_milli, 30_000);
        assert_eq!(next.applied["sensor-readings-0"].to_string(), "5-6,9");
        assert_eq!(next.applied["sensor-readings-1"].to_string(), "2");
    }

    #[test]
    fn duplicates_inside_one_batch_apply_once() {
        let c = [coords(0, 5), coords(0, 5)];
        let r = [reading("d", 1, 1.0), reading("d", 1, 1.0)];
        let (windows, _) = group_readings(spec(60), c.iter().zip(r.iter()));
        let MergeOutcome::Updated { aggregate, applied } = merge(None, &windows[0]).unwrap() else {
            panic!()
        };
        assert_eq!((applied, aggregate.count), (1, 1));
    }

    fn pending(spec_seconds: u64, items: &[(i32, i64, i64)]) -> PendingWindow {
        let c: Vec<_> = items.iter().map(|&(p, o, _)| coords(p, o)).collect();
        let r: Vec<_> = items.iter().map(|&(_, _, t)| reading("d", t, 1.0)).collect();
        let (mut windows, _) = group_readings(spec(spec_seconds), c.iter().zip(r.iter()));
        assert_eq!(windows.len(), 1);
        windows.remove(0)
    }

    #[test]
    fn readings_below_offsets_already_applied_are_applied_once_in_any_order() {
        // Offsets 10..=19 first (a mapping that started at LATEST), then 0..=9 (a re-driven
        // batch, a group reset), then all of it again.
        let late = pending(60, &(10..20).map(|o| (0, o, o)).collect::<Vec<_>>());
        let early = pending(60, &(0..10).map(|o| (0, o, o)).collect::<Vec<_>>());
        let MergeOutcome::Updated { aggregate, .. } = merge(None, &late).unwrap() else {
            panic!()
        };
        assert_eq!(aggregate.applied["sensor-readings-0"].to_string(), "10-19");
        let MergeOutcome::Updated { aggregate, applied } = merge(Some(&aggregate), &early).unwrap() else {
            panic!("the earlier offsets were never applied: they must apply now")
        };
        assert_eq!((applied, aggregate.count), (10, 20));
        assert_eq!(aggregate.applied["sensor-readings-0"].to_string(), "0-19");
        let all = pending(60, &(0..20).map(|o| (0, o, o)).collect::<Vec<_>>());
        assert_eq!(merge(Some(&aggregate), &all).unwrap(), MergeOutcome::Unchanged);
    }

    #[test]
    fn a_window_stored_with_another_size_is_never_merged_into() {
        let minute = pending(60, &[(0, 1, 1_000)]);
        let MergeOutcome::Updated { aggregate, .. } = merge(None, &minute).unwrap() else {
            panic!()
        };
        // WINDOW_SECONDS becomes 300: a reading at 241 s falls into [0, 300 s), the same key.
        let five = pending(300, &[(0, 2, 241_000)]);
        assert_eq!(
            merge(Some(&aggregate), &five),
            Err(MergeError::SizeChanged {
                device_id: "d".into(),
                window_start_ms: 0,
                stored_ms: 60_000,
                configured_ms: 300_000
            })
        );
    }

    #[test]
    fn the_offset_intervals_of_an_item_are_bounded_and_refused_beyond() {
        // Every other offset: each reading is its own interval.
        let at_limit: Vec<_> = (0..MAX_OFFSET_INTERVALS as i64).map(|i| (0, 2 * i, 1)).collect();
        let MergeOutcome::Updated { aggregate, .. } = merge(None, &pending(60, &at_limit)).unwrap() else {
            panic!()
        };
        assert_eq!(
            aggregate.applied["sensor-readings-0"].interval_count(),
            MAX_OFFSET_INTERVALS
        );
        // A reading that fills a gap merges two intervals: still fine.
        let filler = pending(60, &[(0, 1, 1)]);
        let MergeOutcome::Updated {
            aggregate: filled, ..
        } = merge(Some(&aggregate), &filler).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            filled.applied["sensor-readings-0"].interval_count(),
            MAX_OFFSET_INTERVALS - 1
        );
        // One more separate interval, on another partition, is refused rather than dropped.
        let over = pending(60, &[(1, 5, 1), (1, 7, 1)]);
        assert!(matches!(
            merge(Some(&filled), &over),
            Err(MergeError::TooFragmented { intervals, .. }) if intervals == MAX_OFFSET_INTERVALS + 1
        ));
    }

    #[test]
    fn window_items_are_measured_by_dynamodbs_formula_and_refused_past_400_kb() {
        let table = &pipeline_contracts::contracts().tables.window_aggregates;
        // One device's readings spread over many partitions of a topic with a long name: each
        // partition is an entry of the item's `offsets` map.
        let topic = "t".repeat(240);
        let pending_of = |device: &str| PendingWindow {
            key: WindowKey {
                device_id: device.into(),
                window_start_ms: 0,
            },
            bounds: WindowBounds {
                start_ms: 0,
                end_ms: 60_000,
            },
            contributions: (0..1_600)
                .map(|p| Contribution {
                    topic_partition: format!("{topic}-{p}"),
                    offset: 7,
                    event_time_ms: 1,
                    milli_degrees: 1,
                })
                .collect(),
        };
        let size_of = |device: &str| match merge(None, &pending_of(device)) {
            Ok(MergeOutcome::Updated { aggregate, .. }) => item_size(&window_item(&aggregate, table)),
            other => panic!("{other:?}"),
        };
        let base = size_of("d");
        assert!(base < DYNAMODB_MAX_ITEM_BYTES, "{base}");
        // The device id that makes the item exactly 400 KB is stored; one byte more is refused.
        let at_limit = "d".repeat(1 + DYNAMODB_MAX_ITEM_BYTES - base);
        assert_eq!(size_of(&at_limit), DYNAMODB_MAX_ITEM_BYTES);
        let over = format!("{at_limit}d");
        assert_eq!(
            merge(None, &pending_of(&over)),
            Err(MergeError::ItemTooLarge {
                device_id: over.clone(),
                window_start_ms: 0,
                size: DYNAMODB_MAX_ITEM_BYTES + 1,
            })
        );
    }

    /// Deterministic xorshift, so the property loops below are reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn any_split_into_in_order_batches_and_any_replay_gives_the_same_aggregate() {
        for seed in 1..=200u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            // One device, two partitions, readings in one window.
            let n = 1 + rng.below(30) as usize;
            let records: Vec<(RecordCoordinates, SensorReading)> = (0..n)
                .map(|i| {
                    let partition = rng.below(2) as i32;
                    let temperature = (rng.below(80_000) as f64 - 30_000.0) / 1000.0 + 0.0004;
                    (
                        coords(partition, i as i64),
                        reading("d", rng.below(60_000) as i64, temperature),
                    )
                })
                .collect();
            let all = group_readings(spec(60), records.iter().map(|(c, r)| (c, r))).0;
            let MergeOutcome::Updated {
                aggregate: expected, ..
            } = merge(None, &all[0]).unwrap()
            else {
                panic!()
            };

            // Split the stream into consecutive batches, replaying random earlier slices in between.
            let mut stored: Option<WindowAggregate> = None;
            let mut at = 0;
            while at < n {
                let end = (at + 1 + rng.below(6) as usize).min(n);
                for slice in [&records[at..end], &records[rng.below(end as u64) as usize..end]] {
                    let pending = group_readings(spec(60), slice.iter().map(|(c, r)| (c, r))).0;
                    if let MergeOutcome::Updated { aggregate, .. } =
                        merge(stored.as_ref(), &pending[0]).unwrap()
                    {
                        stored = Some(aggregate);
                    }
                }
                at = end;
            }
            assert_eq!(stored.as_ref(), Some(&expected), "seed {seed}");
            // And a full replay is a no-op.
            assert_eq!(merge(stored.as_ref(), &all[0]).unwrap(), MergeOutcome::Unchanged);
        }
    }

    #[test]
    fn averages_round_half_away_from_zero() {
        let mut a = WindowAggregate {
            device_id: "d".into(),
            window_start_ms: 0,
            window_end_ms: 1,
            count: 2,
            sum_milli: 3,
            min_milli: 0,
            max_milli: 0,
            first_event_time_ms: 0,
            last_event_time_ms: 0,
            applied: BTreeMap::new(),
        };
        assert_eq!(a.average_milli(), 2);
        a.sum_milli = -3;
        assert_eq!(a.average_milli(), -2);
        a.sum_milli = 4;
        a.count = 3;
        assert_eq!(a.average_milli(), 1);
    }

    #[test]
    fn milli_decimals_round_trip_exactly() {
        for (value, text) in [
            (0i128, "0"),
            (21_500, "21.5"),
            (-125, "-0.125"),
            (1, "0.001"),
            (-273_150, "-273.15"),
            (123_456_789_012_345_678, "123456789012345.678"),
        ] {
            assert_eq!(format_milli(value), text);
            assert_eq!(parse_milli(text), Some(value), "{text}");
        }
        assert_eq!(parse_milli("2.15E+1"), Some(21_500));
        assert_eq!(parse_milli("1e-3"), Some(1));
        assert_eq!(parse_milli("21.500"), Some(21_500));
        assert_eq!(parse_milli("0.0000"), Some(0));
        assert_eq!(parse_milli("0.0001"), None);
        assert_eq!(parse_milli("abc"), None);
        assert_eq!(parse_milli(""), None);
        assert_eq!(parse_milli("-"), None);
    }

    #[test]
    fn milli_degrees_round_to_nearest() {
        assert_eq!(to_milli_degrees(21.0004), Ok(21_000));
        assert_eq!(to_milli_degrees(-0.0005), Ok(-1));
        assert!(to_milli_degrees(f64::NAN).is_err());
        assert!(to_milli_degrees(1e300).is_err());
    }
}
