//! Figure 4, memory: peak RSS of the consumer's batch loop on the worst 6 MB batch we can build.
//!
//! Zlib-framed Glue Avro amplifies (up to the consumer's ratio bound, 64), and a decoded document
//! holds a heap value per element: an Avro int of one byte becomes a JSON value and, when written,
//! a DynamoDB attribute. The worst batch is therefore, up to the payload cap:
//! - the audit's five store events carrying a 14 MiB string (refused as `too_large`);
//! - then, three for one, explicit events whose document is an array of 100,000 small ints that
//!   deflate about 35-fold (about 300 KB as a DynamoDB item, under the 400 KB limit, so decoded,
//!   held and written; about 4 KB on the wire), and store events whose archive line is close to
//!   the 8 KiB line bound (stored).
//!
//! The batch runs through the real [`ConsumerService`] with sinks that drop what they are given
//! after doing what the adapters do with it in memory (build and size the DynamoDB items, plan the
//! SQS delivery), so the figure is the consumer's own footprint, not a fake's storage. Peak RSS is
//! the process's `VmHWM`, reset through `/proc/self/clear_refs` right before the batch.

use std::collections::BTreeMap;

use apache_avro::types::Value as Avro;
use apache_avro::Schema;
use base64::Engine as _;
use pipeline_contracts::{contracts, schema_text};
use pipeline_domain::consume::batch::{BatchSummary, ConsumerService, Sinks};
use pipeline_domain::consume::fakes::contract_settings;
use pipeline_domain::consume::ledger::PartitionLedger;
use pipeline_domain::consume::ports::{
    ConditionalWrite, ExplicitEventStore, ObjectStore, PartitionLedgerStore, PoisonMessage, PoisonSink,
    SaveOutcome, StoreEventRow, StoreEventTable, StoredObject, WindowStore, WriteCondition,
};
use pipeline_domain::consume::ExplicitEvent;
use pipeline_domain::dynamodb_item::{explicit_event_item, fits_item_limit, item_size};
use pipeline_domain::event::{EventSource, KafkaEvent, KafkaRecord, TimestampType};
use pipeline_domain::model::{StoreEvent, StoreEventType};
use pipeline_domain::payload::{encode_avro, store_event_to_avro};
use pipeline_domain::ports::{InMemorySchemaSource, PortError};
use pipeline_domain::window::{WindowAggregate, WindowKey};
use pipeline_domain::wire::{frame, Compression};
use uuid::Uuid;

use crate::events::START_TIME_MS;

const STORE_ID: Uuid = Uuid::from_u128(0x00be_0c4e_5701_0000_0000_0000_0000_0001);
const INTS_ID: Uuid = Uuid::from_u128(0x00be_0c4e_1475_0000_0000_0000_0000_0001);
const INTS_SCHEMA: &str =
    r#"{"type":"record","name":"Ints","fields":[{"name":"values","type":{"type":"array","items":"int"}}]}"#;
const INTS_PER_DOCUMENT: usize = 100_000;

/// The worst batch whose event JSON fits in `cap_bytes`, and the registry that knows its schemas.
pub fn worst_batch(cap_bytes: usize) -> anyhow::Result<(KafkaEvent, InMemorySchemaSource)> {
    let store_text =
        schema_text("schemas/store_event.v1.avsc").ok_or_else(|| anyhow::anyhow!("store schema"))?;
    let store_schema = Schema::parse_str(store_text)?;
    let ints_schema = Schema::parse_str(INTS_SCHEMA)?;
    let registry = InMemorySchemaSource::default();
    registry.insert(STORE_ID, store_text);
    registry.insert(INTS_ID, INTS_SCHEMA);

    // Values 0..63 (one byte each) from a sequence repeating every 2,048 items: deflates about
    // 35-fold, under the ratio bound.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let period: Vec<Avro> = (0..2048)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            Avro::Int((state % 64) as i32)
        })
        .collect();
    let values: Vec<Avro> = period.iter().cycle().take(INTS_PER_DOCUMENT).cloned().collect();
    let ints = frame(
        INTS_ID,
        &encode_avro(
            Avro::Record(vec![("values".into(), Avro::Array(values))]),
            &ints_schema,
        )?,
        Compression::Zlib,
    );
    let store = |n: i64, category: String| -> anyhow::Result<Vec<u8>> {
        let event = StoreEvent {
            request_id: Uuid::from_u128(n as u128).to_string(),
            event_type: StoreEventType::Sales,
            store_id: 1,
            cust_id: 2,
            category,
            sku: n,
            price_cents: 1999,
            qty: 1,
            discount_hundredths: 0,
            gift_wrap: false,
            variant: "red".into(),
            priority_shipping: false,
            ts_micros: (START_TIME_MS + n) * 1000,
            contact_me: None,
        };
        Ok(frame(
            STORE_ID,
            &encode_avro(store_event_to_avro(&event), &store_schema)?,
            Compression::Zlib,
        ))
    };
    // A category that puts the archive line close to the line bound (a little under, whatever the
    // offset's digits), as text that deflates a few times.
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    let at_bound: String = (0..pipeline_domain::limits::MAX_ARCHIVE_LINE_BYTES - 400)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(alphabet[(state as usize ^ i) % alphabet.len()])
        })
        .collect();
    let huge = "x".repeat(14 * 1024 * 1024);
    let huge_value = store(0, huge)?;

    let c = contracts();
    let partitions = i64::from(
        c.topics
            .first_carrying(pipeline_contracts::Payload::StoreEvent)
            .partitions
            .max(1),
    );
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut records: BTreeMap<String, Vec<KafkaRecord>> = BTreeMap::new();
    // JSON envelope, keys and separators: a few hundred bytes.
    let mut budget = cap_bytes.saturating_sub(1024);
    let mut n: i64 = 0;
    loop {
        let store_partition = (n % partitions) as i32;
        let (topic, partition, value) = if n < 5 {
            (
                &c.topics
                    .first_carrying(pipeline_contracts::Payload::StoreEvent)
                    .name,
                store_partition,
                huge_value.clone(),
            )
        } else if n % 4 == 0 {
            (
                &c.topics
                    .first_carrying(pipeline_contracts::Payload::StoreEvent)
                    .name,
                store_partition,
                store(n, at_bound.clone())?,
            )
        } else {
            (
                &c.topics
                    .first_carrying(pipeline_contracts::Payload::Explicit)
                    .name,
                0,
                ints.clone(),
            )
        };
        let record = KafkaRecord {
            topic: topic.clone(),
            partition,
            offset: n,
            timestamp: START_TIME_MS + n,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: Some(encode(&value)),
            headers: None,
        };
        let size = serde_json::to_vec(&record)?.len() + 1;
        if size > budget {
            break;
        }
        budget -= size;
        records
            .entry(format!("{topic}-{partition}"))
            .or_default()
            .push(record);
        n += 1;
    }
    let event = KafkaEvent {
        event_source: EventSource::SelfManagedKafka,
        event_source_arn: None,
        bootstrap_servers: Some("127.0.0.1:9092".into()),
        records,
    };
    Ok((event, registry))
}

/// Sinks that do in memory what the adapters do, then drop the data.
#[derive(Default)]
pub struct DroppingSinks;

impl WindowStore for DroppingSinks {
    async fn load(&self, _keys: &[WindowKey]) -> Result<Vec<WindowAggregate>, PortError> {
        Ok(Vec::new())
    }
    async fn save(
        &self,
        _aggregate: &WindowAggregate,
        _expected: Option<u64>,
    ) -> Result<SaveOutcome, PortError> {
        Ok(SaveOutcome::Saved)
    }
}

impl ObjectStore for DroppingSinks {
    async fn get(&self, _key: &str) -> Result<Option<StoredObject>, PortError> {
        Ok(None)
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, _content_type: &'static str) -> Result<(), PortError> {
        pipeline_domain::consume::ports::check_object_size(key, bytes.len())
    }
    async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        _content_type: &'static str,
        _condition: WriteCondition,
    ) -> Result<ConditionalWrite, PortError> {
        pipeline_domain::consume::ports::check_object_size(key, bytes.len())?;
        Ok(ConditionalWrite::Written)
    }
}

// Every partition looks new: the ledger's check and advance still run, their writes are dropped.
impl PartitionLedgerStore for DroppingSinks {
    async fn load_ledgers(&self, _topic_partitions: &[String]) -> Result<Vec<PartitionLedger>, PortError> {
        Ok(Vec::new())
    }
    async fn save_ledger(
        &self,
        _ledger: &PartitionLedger,
        _expected: Option<&PartitionLedger>,
    ) -> Result<SaveOutcome, PortError> {
        Ok(SaveOutcome::Saved)
    }
}

impl StoreEventTable for DroppingSinks {
    async fn insert(&self, rows: &[StoreEventRow]) -> Result<u64, PortError> {
        Ok(rows.len() as u64)
    }
}

impl ExplicitEventStore for DroppingSinks {
    async fn put(&self, events: &[ExplicitEvent]) -> Result<(), PortError> {
        let table = &contracts().tables.explicit_events;
        for event in events {
            let size = item_size(&explicit_event_item(event, table));
            if !fits_item_limit(size) {
                return Err(PortError::Rejected {
                    component: "explicit event store",
                    message: format!("{size} bytes"),
                });
            }
        }
        Ok(())
    }
}

impl PoisonSink for DroppingSinks {
    async fn send(&self, messages: &[PoisonMessage]) -> Result<(), PortError> {
        for message in messages {
            message
                .delivery("bench", "oversize/")
                .map_err(|e| PortError::Rejected {
                    component: "poison queue",
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }
}

/// Peak RSS of the process since the last reset, KiB (`VmHWM`).
pub fn peak_rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmHWM in /proc/self/status"))
}

/// Resets the peak RSS to the current RSS (Linux: write 5 to `/proc/self/clear_refs`).
pub fn reset_peak_rss() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")?;
    Ok(())
}

pub struct MemoryFigure {
    pub records: usize,
    pub event_bytes: usize,
    pub summary: BatchSummary,
    pub baseline_rss_mib: f64,
    pub peak_rss_mib: f64,
}

/// Builds the worst batch, then processes it once from its JSON bytes (as the runtime hands them
/// over) and reports the peak RSS of that alone.
pub fn measure(rt: &tokio::runtime::Runtime, cap_bytes: usize) -> anyhow::Result<MemoryFigure> {
    let (event, registry) = worst_batch(cap_bytes)?;
    let bytes = serde_json::to_vec(&event)?;
    let records = event.record_count();
    drop(event);
    let service = ConsumerService::new(
        registry,
        Sinks {
            windows: DroppingSinks,
            archive: DroppingSinks,
            table: DroppingSinks,
            explicit: DroppingSinks,
            poison: DroppingSinks,
        },
        contract_settings(),
    );
    reset_peak_rss()?;
    let baseline = peak_rss_kib()?;
    // As the Lambda does: the body as bytes, parsed borrowed by the consumer.
    let summary = rt
        .block_on(service.process_body(&bytes))
        .map_err(|e| anyhow::anyhow!("the worst batch failed: {e}"))?;
    let peak = peak_rss_kib()?;
    Ok(MemoryFigure {
        records,
        event_bytes: bytes.len(),
        summary,
        baseline_rss_mib: baseline as f64 / 1024.0,
        peak_rss_mib: peak as f64 / 1024.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_worst_batch_fits_the_cap_and_every_record_ends_where_intended() {
        let cap = 256 * 1024;
        let (event, _) = worst_batch(cap).unwrap();
        assert!(serde_json::to_vec(&event).unwrap().len() <= cap);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let figure = measure(&rt, cap).unwrap();
        let summary = &figure.summary;
        assert_eq!(summary.poison_by_reason.get("too_large"), Some(&5), "{summary:?}");
        assert_eq!(summary.poison, 5, "{summary:?}");
        assert!(
            summary.store_events > 0 && summary.explicit_events > summary.store_events,
            "{summary:?}"
        );
        assert_eq!(summary.records, event.record_count());
        assert!(figure.peak_rss_mib >= figure.baseline_rss_mib);
    }
}
