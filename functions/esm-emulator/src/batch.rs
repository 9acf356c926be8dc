//! Batch assembly: records are added until the batch size is reached or the next record would push
//! the serialized event over the payload cap. The size is tracked exactly, without rendering.

use std::collections::BTreeMap;

use crate::event::{partition_key, EncodedRecord, EventEnvelope};

/// Offsets of one partition within a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpan {
    pub topic: String,
    pub partition: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub first_timestamp: i64,
    pub last_timestamp: i64,
    pub count: usize,
}

impl PartitionSpan {
    /// The offset to commit once the span is done: the next one to read.
    pub fn next_offset(&self) -> i64 {
        self.last_offset + 1
    }
}

/// A batch ready to invoke, with its exact serialized size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    groups: BTreeMap<String, Vec<EncodedRecord>>,
    size: usize,
    count: usize,
}

impl Batch {
    pub fn record_count(&self) -> usize {
        self.count
    }

    pub fn payload_size(&self) -> usize {
        self.size
    }

    pub fn render(&self, envelope: &EventEnvelope) -> Vec<u8> {
        envelope.render(self.groups.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }

    /// The records per `topic-partition` key, in event order.
    pub fn groups(&self) -> impl Iterator<Item = (&str, &[EncodedRecord])> {
        self.groups.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    pub fn spans(&self) -> Vec<PartitionSpan> {
        self.groups
            .values()
            .filter_map(|records| {
                let first = records.first()?;
                let last = records.last()?;
                Some(PartitionSpan {
                    topic: first.topic.clone(),
                    partition: first.partition,
                    first_offset: first.offset,
                    last_offset: last.offset,
                    first_timestamp: first.timestamp,
                    last_timestamp: last.timestamp,
                    count: records.len(),
                })
            })
            .collect()
    }
}

impl Batch {
    /// The records `keep` accepts, as a batch of their own (empty groups dropped).
    pub fn subset(&self, envelope: &EventEnvelope, mut keep: impl FnMut(&EncodedRecord) -> bool) -> Batch {
        let groups: BTreeMap<String, Vec<EncodedRecord>> = self
            .groups
            .iter()
            .map(|(key, records)| {
                (
                    key.clone(),
                    records.iter().filter(|r| keep(r)).cloned().collect::<Vec<_>>(),
                )
            })
            .filter(|(_, records)| !records.is_empty())
            .collect();
        Batch::of(envelope, groups)
    }

    fn of(envelope: &EventEnvelope, groups: BTreeMap<String, Vec<EncodedRecord>>) -> Batch {
        let count = groups.values().map(Vec::len).sum();
        let size = envelope
            .render(groups.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .len();
        Batch { groups, size, count }
    }

    /// The two halves of the batch in event order (`BisectBatchOnFunctionError`); the first holds
    /// the first `count / 2` records.
    pub fn halves(&self, envelope: &EventEnvelope) -> (Batch, Batch) {
        let mut position = 0usize;
        let half = self.count / 2;
        let mut first = BTreeMap::new();
        let mut second = BTreeMap::new();
        for (key, records) in &self.groups {
            for record in records {
                let side = if position < half { &mut first } else { &mut second };
                side.entry(key.clone())
                    .or_insert_with(Vec::new)
                    .push(record.clone());
                position += 1;
            }
        }
        (Batch::of(envelope, first), Batch::of(envelope, second))
    }

    /// What a partial-batch response asks to deliver again: for each named `topic-partition`, its
    /// records from the named offset on. `Err` when a name or offset is not in this batch, which
    /// the mapping treats as a failure of the whole batch.
    pub fn resume_from(
        &self,
        envelope: &EventEnvelope,
        points: &BTreeMap<String, i64>,
    ) -> Result<Batch, String> {
        for (key, offset) in points {
            let Some(records) = self.groups.get(key) else {
                return Err(format!("partition {key} is not in the batch"));
            };
            if !records.iter().any(|r| r.offset == *offset) {
                return Err(format!("offset {offset} of {key} is not in the batch"));
            }
        }
        Ok(self.subset(envelope, |r| {
            points
                .get(&partition_key(&r.topic, r.partition))
                .is_some_and(|from| r.offset >= *from)
        }))
    }
}

/// What happened to a record offered to the assembler.
#[derive(Debug, PartialEq, Eq)]
pub enum Offer {
    Added,
    /// The batch is full (count or size); the record is handed back to start the next batch.
    Full(EncodedRecord),
    /// The record alone is larger than the cap: it can never be delivered and goes to the
    /// on-failure destination (AWS: `MaximumPayloadSizeExceeded`).
    TooLarge {
        record: EncodedRecord,
        event_size: usize,
    },
}

#[derive(Debug, Clone)]
pub struct BatchAssembler {
    envelope: EventEnvelope,
    max_records: usize,
    max_payload_bytes: usize,
    groups: BTreeMap<String, Vec<EncodedRecord>>,
    size: usize,
    count: usize,
}

impl BatchAssembler {
    pub fn new(envelope: EventEnvelope, max_records: usize, max_payload_bytes: usize) -> Self {
        let size = envelope.empty_size();
        Self {
            envelope,
            max_records,
            max_payload_bytes,
            groups: BTreeMap::new(),
            size,
            count: 0,
        }
    }

    pub fn envelope(&self) -> &EventEnvelope {
        &self.envelope
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_full(&self) -> bool {
        self.count >= self.max_records
    }

    /// Size of the event if `record` were added now.
    fn size_with(&self, record: &EncodedRecord, key: &str) -> usize {
        match self.groups.get(key) {
            Some(_) => self.size + 1 + record.json.len(),
            None => {
                self.size + EventEnvelope::group_overhead(key, self.groups.is_empty()) + record.json.len()
            }
        }
    }

    pub fn offer(&mut self, record: EncodedRecord) -> Offer {
        let key = partition_key(&record.topic, record.partition);
        let alone =
            self.envelope.empty_size() + EventEnvelope::group_overhead(&key, true) + record.json.len();
        if alone > self.max_payload_bytes {
            return Offer::TooLarge {
                record,
                event_size: alone,
            };
        }
        if self.is_full() {
            return Offer::Full(record);
        }
        let new_size = self.size_with(&record, &key);
        if new_size > self.max_payload_bytes {
            return Offer::Full(record);
        }
        self.size = new_size;
        self.count += 1;
        self.groups.entry(key).or_default().push(record);
        Offer::Added
    }

    /// Hands out the current batch (possibly empty) and starts a new one.
    pub fn take(&mut self) -> Batch {
        let batch = Batch {
            groups: std::mem::take(&mut self.groups),
            size: self.size,
            count: self.count,
        };
        self.size = self.envelope.empty_size();
        self.count = 0;
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EventSource, PolledRecord, TimestampType};

    const SIX_MB: usize = 6 * 1024 * 1024;

    fn record(partition: i32, offset: i64, value_len: usize) -> EncodedRecord {
        EncodedRecord::encode(&PolledRecord {
            topic: "t".into(),
            partition,
            offset,
            timestamp: 1_000 + offset,
            timestamp_type: TimestampType::CreateTime,
            key: (offset % 2 == 0).then(|| b"k".to_vec()),
            value: Some(vec![b'x'; value_len]),
            headers: vec![],
        })
    }

    fn assembler(max_records: usize, cap: usize) -> BatchAssembler {
        BatchAssembler::new(
            EventEnvelope::new(EventSource::SelfManaged, "127.0.0.1:19092"),
            max_records,
            cap,
        )
    }

    /// Feeds records and collects the batches the way the engine does.
    fn split(
        records: Vec<EncodedRecord>,
        max_records: usize,
        cap: usize,
    ) -> (Vec<Batch>, Vec<EncodedRecord>) {
        let mut assembler = assembler(max_records, cap);
        let mut batches = Vec::new();
        let mut too_large = Vec::new();
        let mut pending: std::collections::VecDeque<_> = records.into();
        while let Some(record) = pending.pop_front() {
            match assembler.offer(record) {
                Offer::Added => {}
                Offer::Full(record) => {
                    batches.push(assembler.take());
                    pending.push_front(record);
                }
                Offer::TooLarge { record, .. } => too_large.push(record),
            }
        }
        if !assembler.is_empty() {
            batches.push(assembler.take());
        }
        (batches, too_large)
    }

    #[test]
    fn tracked_size_equals_rendered_size_across_partitions() {
        let records = (0..50)
            .map(|i| record(i as i32 % 3, i, 10 + i as usize))
            .collect();
        let (batches, _) = split(records, 10_000, SIX_MB);
        assert_eq!(batches.len(), 1);
        let envelope = EventEnvelope::new(EventSource::SelfManaged, "127.0.0.1:19092");
        let rendered = batches[0].render(&envelope);
        assert_eq!(batches[0].payload_size(), rendered.len());
        let value: serde_json::Value = serde_json::from_slice(&rendered).unwrap();
        assert_eq!(value["records"].as_object().unwrap().len(), 3);
    }

    #[test]
    fn six_megabyte_cap_splits_batches_and_keeps_every_record_in_order() {
        // 40 records of ~400 KB base64-encode to ~21 MB: at least four events under the cap.
        let records: Vec<_> = (0..40).map(|i| record((i % 2) as i32, i, 400_000)).collect();
        let (batches, too_large) = split(records, 10_000, SIX_MB);
        assert!(too_large.is_empty());
        assert!(batches.len() >= 4, "got {} batches", batches.len());
        let envelope = EventEnvelope::new(EventSource::SelfManaged, "127.0.0.1:19092");
        let mut seen = Vec::new();
        for batch in &batches {
            let rendered = batch.render(&envelope);
            assert!(rendered.len() <= SIX_MB, "event of {} bytes", rendered.len());
            assert_eq!(rendered.len(), batch.payload_size());
            for span in batch.spans() {
                seen.extend(
                    (span.first_offset..=span.last_offset).filter(|o| o % 2 == i64::from(span.partition)),
                );
            }
        }
        seen.sort();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        // Each batch but the last is nearly full: a split happens only when the next record does not fit.
        let record_size = 4 * 400_000 / 3;
        for batch in &batches[..batches.len() - 1] {
            assert!(batch.payload_size() + record_size + 200 > SIX_MB);
        }
    }

    #[test]
    fn batch_size_limits_the_record_count() {
        let records = (0..25).map(|i| record(0, i, 5)).collect();
        let (batches, _) = split(records, 10, SIX_MB);
        let counts: Vec<_> = batches.iter().map(Batch::record_count).collect();
        assert_eq!(counts, vec![10, 10, 5]);
        assert_eq!(batches[1].spans()[0].first_offset, 10);
        assert_eq!(batches[1].spans()[0].next_offset(), 20);
    }

    #[test]
    fn a_record_larger_than_the_cap_is_set_aside_not_stuck() {
        let records = vec![record(0, 0, 10), record(0, 1, 2_000), record(0, 2, 10)];
        let (batches, too_large) = split(records, 100, 1_000);
        assert_eq!(too_large.len(), 1);
        assert_eq!(too_large[0].offset, 1);
        let total: usize = batches.iter().map(Batch::record_count).sum();
        assert_eq!(total, 2);
    }

    #[test]
    fn a_record_exactly_at_the_cap_fits() {
        let probe = record(0, 0, 100);
        let exact = assembler(10, 1).envelope().empty_size()
            + EventEnvelope::group_overhead("t-0", true)
            + probe.json.len();
        let mut at_cap = assembler(10, exact);
        assert_eq!(at_cap.offer(probe.clone()), Offer::Added);
        assert_eq!(at_cap.take().payload_size(), exact);
        let mut below = assembler(10, exact - 1);
        assert!(matches!(below.offer(probe), Offer::TooLarge { .. }));
    }
}
