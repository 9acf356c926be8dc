//! Noticing a re-created topic.
//!
//! A topic deleted and created again under the same name starts its offsets at 0, and the ESM
//! event says nothing about it: no topic id, no cluster id, only topic, partition and offset. Every
//! sink is keyed by those coordinates, so it would take the new records for ones it already holds
//! (PostgreSQL skips them, S3 keeps the old lines, windows skip the readings, explicit events are
//! overwritten). The consumer therefore refuses such a batch and alarms instead of guessing.
//!
//! What the consumer can know: for each partition, the lowest and the highest offset it has stored
//! and a fingerprint of the record at each ([`PartitionLedger`], kept next to the explicit events).
//! A batch that holds one of those offsets must hold the same record there; a redelivery, a partial
//! replay or a redrive does, a re-created topic does not (its records have other timestamps,
//! keys or values). A batch whose record differs fails with [`Recreated`]; nothing is written.
//!
//! When it is caught: at the first batch of the new topic that reaches the lowest or the highest
//! offset stored. A mapping reads a partition in order from where it starts, so that is before any
//! offset in between is taken for stored, as long as the old topic's records were stored from
//! their first offset (a mapping at `TRIM_HORIZON`, the default) — then the very first batch of the
//! new topic is refused. If the old topic was first read from `LATEST` at offset L, offsets below L
//! were never stored and apply normally, and the batch that reaches L is refused. What is not
//! caught: a new topic whose records are byte-identical (timestamp, key and value) at those two
//! offsets, which is then the same data; a mapping of the new topic that starts inside the old
//! range at `LATEST` (its batches below the highest stored offset are taken as replays until it
//! reaches that offset).

use crate::model::RecordCoordinates;
use std::collections::BTreeMap;

use thiserror::Error;
use uuid::Uuid;

use super::batch::{RetryPolicy, SinkFailure};
use super::ports::{PartitionLedgerStore, SaveOutcome};
use crate::event::{EsmBatch, EsmRecord};
use crate::ports::PortError;

pub const SINK_LEDGER: &str = "partition ledger";

/// How often a ledger write may lose a race with another writer before the batch gives up.
const MAX_LEDGER_CONFLICTS: u32 = 8;

/// One remembered record: its offset and what it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerMark {
    pub offset: i64,
    pub fingerprint: String,
}

/// The lowest and highest stored offset of one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLedger {
    /// `topic-partition`.
    pub topic_partition: String,
    pub lowest: LedgerMark,
    pub highest: LedgerMark,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "{topic_partition}@{offset} holds another record than the one stored before (fingerprint \
     {stored} stored, {delivered} delivered): the topic was probably deleted and created again, \
     and its offsets now name other records. Nothing of this batch was written. Consume the new \
     topic under a new name, or clear this partition's data from the sinks and its ledger item"
)]
pub struct Recreated {
    pub topic_partition: String,
    pub offset: i64,
    pub stored: String,
    pub delivered: String,
}

/// A stable digest of a record as delivered: timestamp, key and value (base64 text as the ESM
/// sends them). Headers are left out: they describe the record, they are not its data.
pub fn fingerprint<R: EsmRecord + ?Sized>(record: &R) -> String {
    let mut text = record.timestamp().to_string();
    text.push('\n');
    text.push_str(record.key().unwrap_or("-"));
    text.push('\n');
    text.push_str(record.value().unwrap_or("-"));
    Uuid::new_v5(&Uuid::NAMESPACE_OID, text.as_bytes())
        .simple()
        .to_string()
}

/// One partition's records of a batch, by offset (the last delivery of a repeated offset wins, as
/// everywhere else in the batch loop).
pub fn by_offset<'a, R: EsmRecord>(records: impl IntoIterator<Item = &'a R>) -> BTreeMap<i64, &'a R> {
    records.into_iter().map(|r| (r.offset(), r)).collect()
}

/// Refuses the batch when it holds another record at a remembered offset.
pub fn check<R: EsmRecord>(stored: &PartitionLedger, batch: &BTreeMap<i64, &R>) -> Result<(), Recreated> {
    for mark in [&stored.lowest, &stored.highest] {
        if let Some(record) = batch.get(&mark.offset) {
            let delivered = fingerprint(*record);
            if delivered != mark.fingerprint {
                return Err(Recreated {
                    topic_partition: stored.topic_partition.clone(),
                    offset: mark.offset,
                    stored: mark.fingerprint.clone(),
                    delivered,
                });
            }
        }
    }
    Ok(())
}

/// The ledger once the batch is stored; `None` when it is unchanged (no write needed).
pub fn advance<R: EsmRecord>(
    topic_partition: &str,
    stored: Option<&PartitionLedger>,
    batch: &BTreeMap<i64, &R>,
) -> Option<PartitionLedger> {
    let (first, last) = (batch.first_key_value()?, batch.last_key_value()?);
    let mark = |(offset, record): (&i64, &&R)| LedgerMark {
        offset: *offset,
        fingerprint: fingerprint(*record),
    };
    let next = match stored {
        None => PartitionLedger {
            topic_partition: topic_partition.to_string(),
            lowest: mark(first),
            highest: mark(last),
        },
        Some(stored) => PartitionLedger {
            topic_partition: topic_partition.to_string(),
            lowest: if *first.0 < stored.lowest.offset {
                mark(first)
            } else {
                stored.lowest.clone()
            },
            highest: if *last.0 > stored.highest.offset {
                mark(last)
            } else {
                stored.highest.clone()
            },
        },
    };
    (stored != Some(&next)).then_some(next)
}

/// Combines a ledger another writer saved meanwhile with what this batch adds.
pub fn merged(current: &PartitionLedger, ours: &PartitionLedger) -> PartitionLedger {
    PartitionLedger {
        topic_partition: current.topic_partition.clone(),
        lowest: if ours.lowest.offset < current.lowest.offset {
            ours.lowest.clone()
        } else {
            current.lowest.clone()
        },
        highest: if ours.highest.offset > current.highest.offset {
            ours.highest.clone()
        } else {
            current.highest.clone()
        },
    }
}

/// A batch's records per partition with the ledgers stored before it.
pub struct Checked<'a, R> {
    partitions: BTreeMap<String, BTreeMap<i64, &'a R>>,
    stored: BTreeMap<String, PartitionLedger>,
}

impl<'a, R> Checked<'a, R> {
    /// The part a partial-batch answer naming `unstored` commits: in each partition the records
    /// below its lowest unstored offset, in the others every record.
    pub fn committed_before(&self, unstored: &[RecordCoordinates]) -> Checked<'a, R> {
        let mut lowest_unstored: BTreeMap<String, i64> = BTreeMap::new();
        for c in unstored {
            lowest_unstored
                .entry(c.topic_partition())
                .and_modify(|o| *o = (*o).min(c.offset))
                .or_insert(c.offset);
        }
        let partitions = self
            .partitions
            .iter()
            .map(|(key, records)| {
                let kept = match lowest_unstored.get(key) {
                    Some(first_unstored) => records.range(..*first_unstored).map(|(o, r)| (*o, *r)).collect(),
                    None => records.clone(),
                };
                (key.clone(), kept)
            })
            .filter(|(_, kept): &(String, BTreeMap<i64, &'a R>)| !kept.is_empty())
            .collect();
        Checked {
            partitions,
            stored: self.stored.clone(),
        }
    }
}

fn failure(error: PortError) -> SinkFailure {
    SinkFailure {
        sink: SINK_LEDGER,
        error,
    }
}

/// Loads the ledgers of the event's partitions and refuses the batch if a partition was
/// re-created. Runs before any sink is written.
pub async fn load_and_check<'a, L: PartitionLedgerStore, B: EsmBatch>(
    store: &L,
    event: &'a B,
    retry: &RetryPolicy,
) -> Result<Checked<'a, B::Record>, SinkFailure> {
    let mut partitions: BTreeMap<String, BTreeMap<i64, &'a B::Record>> = BTreeMap::new();
    // Records come grouped by partition: build the key string when the partition changes, not
    // for every record.
    let mut current: Option<(&str, i32, String)> = None;
    for record in event.records() {
        let (topic, partition) = (record.topic(), record.partition());
        let key = match &current {
            Some((t, p, key)) if *t == topic && *p == partition => key,
            _ => {
                &current
                    .insert((topic, partition, format!("{topic}-{partition}")))
                    .2
            }
        };
        match partitions.get_mut(key) {
            Some(records) => {
                records.insert(record.offset(), record);
            }
            None => {
                partitions.insert(key.clone(), BTreeMap::from([(record.offset(), record)]));
            }
        }
    }
    let keys: Vec<String> = partitions.keys().cloned().collect();
    let stored: BTreeMap<String, PartitionLedger> = retry
        .run(SINK_LEDGER, || store.load_ledgers(&keys))
        .await
        .map_err(failure)?
        .into_iter()
        .map(|l| (l.topic_partition.clone(), l))
        .collect();
    for (topic_partition, batch) in &partitions {
        if let Some(ledger) = stored.get(topic_partition) {
            check(ledger, batch).map_err(|recreated| {
                tracing::error!(
                    alarm = "TopicRecreated",
                    %topic_partition,
                    offset = recreated.offset,
                    "{recreated}"
                );
                failure(PortError::Rejected {
                    component: SINK_LEDGER,
                    message: recreated.to_string(),
                })
            })?;
        }
    }
    Ok(Checked { partitions, stored })
}

/// Records what the stored batch adds to each partition's ledger; runs after every sink
/// succeeded. A concurrent writer's ledger is merged and written again.
pub async fn advance_all<L: PartitionLedgerStore, R: EsmRecord>(
    store: &L,
    checked: &Checked<'_, R>,
    retry: &RetryPolicy,
) -> Result<(), SinkFailure> {
    for (topic_partition, batch) in &checked.partitions {
        let mut current = checked.stored.get(topic_partition).cloned();
        let Some(mut next) = advance(topic_partition, current.as_ref(), batch) else {
            continue;
        };
        let mut saved = false;
        for _ in 0..MAX_LEDGER_CONFLICTS {
            let outcome = retry
                .run(SINK_LEDGER, || store.save_ledger(&next, current.as_ref()))
                .await
                .map_err(failure)?;
            if outcome == SaveOutcome::Saved {
                saved = true;
                break;
            }
            current = retry
                .run(SINK_LEDGER, || {
                    store.load_ledgers(std::slice::from_ref(topic_partition))
                })
                .await
                .map_err(failure)?
                .into_iter()
                .next();
            match &current {
                Some(other) if merged(other, &next) == *other => {
                    saved = true;
                    break;
                }
                Some(other) => next = merged(other, &next),
                None => {}
            }
        }
        if !saved {
            return Err(failure(PortError::Transient {
                component: SINK_LEDGER,
                message: format!("{topic_partition} kept changing under {MAX_LEDGER_CONFLICTS} writes"),
            }));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{KafkaRecord, TimestampType};

    fn record(offset: i64, timestamp: i64, value: &str) -> KafkaRecord {
        KafkaRecord {
            topic: "store-events".into(),
            partition: 0,
            offset,
            timestamp,
            timestamp_type: TimestampType::CreateTime,
            key: Some("a2V5".into()),
            value: Some(value.into()),
            headers: None,
        }
    }

    #[test]
    fn the_ledger_follows_the_lowest_and_highest_offset_and_only_changes_when_they_move() {
        let batch1: Vec<_> = (10..20).map(|o| record(o, 1_000 + o, "dg==")).collect();
        let first = advance("store-events-0", None, &by_offset(&batch1)).unwrap();
        assert_eq!((first.lowest.offset, first.highest.offset), (10, 19));
        // A replay of a part: unchanged, and accepted.
        let replay = by_offset(&batch1[3..7]);
        assert_eq!(check(&first, &replay), Ok(()));
        assert_eq!(advance("store-events-0", Some(&first), &replay), None);
        // Earlier offsets (a mapping that started later, then a reset) and later ones.
        let batch0: Vec<_> = (0..10).map(|o| record(o, 1_000 + o, "dg==")).collect();
        let widened = advance("store-events-0", Some(&first), &by_offset(&batch0)).unwrap();
        assert_eq!((widened.lowest.offset, widened.highest.offset), (0, 19));
        assert_eq!(check(&widened, &by_offset(&batch1)), Ok(()));
    }

    #[test]
    fn a_re_created_topic_is_refused_at_a_remembered_offset() {
        let old: Vec<_> = (0..5).map(|o| record(o, 1_000 + o, "b2xk")).collect();
        let ledger = advance("store-events-0", None, &by_offset(&old)).unwrap();
        // Offsets restart at 0 with new records.
        let new: Vec<_> = (0..3).map(|o| record(o, 9_000 + o, "bmV3")).collect();
        let refused = check(&ledger, &by_offset(&new)).unwrap_err();
        assert_eq!(
            (refused.topic_partition.as_str(), refused.offset),
            ("store-events-0", 0)
        );
        assert!(refused.to_string().contains("created again"), "{refused}");
        // The same offsets with the same timestamp but another value are other records too.
        let mut changed = old[4].clone();
        changed.value = Some("Y2hhbmdlZA==".into());
        assert_eq!(check(&ledger, &by_offset([&changed])).unwrap_err().offset, 4);
    }

    #[test]
    fn concurrent_ledgers_merge_to_the_widest_range() {
        let a: Vec<_> = (0..5).map(|o| record(o, o, "YQ==")).collect();
        let b: Vec<_> = (3..9).map(|o| record(o, o, "YQ==")).collect();
        let la = advance("t-0", None, &by_offset(&a)).unwrap();
        let lb = advance("t-0", None, &by_offset(&b)).unwrap();
        let m = merged(&la, &lb);
        assert_eq!((m.lowest.offset, m.highest.offset), (0, 8));
        assert_eq!(merged(&lb, &la), m);
    }
}
