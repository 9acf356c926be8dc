//! In-memory implementations of the consumer ports, for unit tests and local experiments.
//!
//! They keep the semantics the batch loop relies on (conditional window writes, conditional object
//! writes by entity tag, insert-if-absent rows, FIFO deduplication of poison messages) and can
//! inject transient failures and write races.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use pipeline_contracts::contracts;
use uuid::Uuid;

use super::batch::{ConsumerService, ConsumerSettings, Sinks};
use super::ledger::PartitionLedger;
use super::ports::{
    check_object_size, ConditionalWrite, ExplicitEventStore, ObjectStore, PartitionLedgerStore,
    PoisonMessage, PoisonSink, QueueDelivery, SaveOutcome, StoreEventRow, StoreEventTable, StoredObject,
    WindowStore, WriteCondition,
};
use super::ExplicitEvent;
use super::TopicRoutes;
use crate::dynamodb_item::{
    batch_write_requests, check_batch_write_request, explicit_event_item, fits_item_limit, item_size,
    window_item,
};
use crate::limits::{check_send_message_batch, pack_send_message_batches, DYNAMODB_MAX_ITEM_BYTES};
use crate::model::{RecordCoordinates, StoreEvent};
use crate::ports::InMemorySchemaSource;
use crate::ports::PortError;
use crate::window::{WindowAggregate, WindowKey, WindowSpec};

/// A consumer on the in-memory sinks, with registry `S`.
pub type FakeConsumer<S> = ConsumerService<
    S,
    InMemoryWindowStore,
    InMemoryObjectStore,
    InMemoryStoreEventTable,
    InMemoryExplicitEventStore,
    InMemoryPoisonSink,
>;

/// The settings a consumer runs with when nothing overrides the contract's defaults: its topic
/// routes, its window length and its archive prefix.
pub fn contract_settings() -> ConsumerSettings {
    let c = contracts();
    ConsumerSettings::new(
        TopicRoutes::from_contract(),
        WindowSpec::from_seconds(c.defaults.window_seconds.into())
            .expect("the contract's window length is valid (checked by the contract's tests)"),
        c.bucket.store_events_prefix.clone(),
    )
}

/// A consumer on fresh in-memory sinks with `settings`, whose schema source holds `schemas`.
pub fn consumer_with_schemas(
    schemas: &BTreeMap<Uuid, String>,
    settings: ConsumerSettings,
) -> FakeConsumer<InMemorySchemaSource> {
    let source = InMemorySchemaSource::default();
    for (id, definition) in schemas {
        source.insert(*id, definition);
    }
    ConsumerService::new(source, FakeSinks::default(), settings)
}

/// Fresh in-memory sinks.
pub type FakeSinks = Sinks<
    InMemoryWindowStore,
    InMemoryObjectStore,
    InMemoryStoreEventTable,
    InMemoryExplicitEventStore,
    InMemoryPoisonSink,
>;

impl Default for FakeSinks {
    fn default() -> Self {
        Sinks {
            windows: InMemoryWindowStore::default(),
            archive: InMemoryObjectStore::default(),
            table: InMemoryStoreEventTable::default(),
            explicit: InMemoryExplicitEventStore::default(),
            poison: InMemoryPoisonSink::default(),
        }
    }
}

/// Everything the in-memory sinks hold, to compare two runs.
#[derive(Debug, PartialEq)]
pub struct SinkState {
    pub windows: BTreeMap<WindowKey, WindowAggregate>,
    pub objects: BTreeMap<String, Vec<u8>>,
    pub rows: BTreeMap<RecordCoordinates, StoreEvent>,
    pub explicit: BTreeMap<RecordCoordinates, ExplicitEvent>,
    pub ledgers: BTreeMap<String, PartitionLedger>,
    /// In the order sent.
    pub poison: Vec<PoisonMessage>,
}

impl FakeSinks {
    pub fn state(&self) -> SinkState {
        SinkState {
            windows: self.windows.snapshot(),
            objects: self.archive.snapshot(),
            rows: self.table.snapshot(),
            explicit: self.explicit.snapshot(),
            ledgers: self.explicit.ledgers(),
            poison: self.poison.snapshot(),
        }
    }
}

fn locked<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Transient failures to inject into a fake.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    fail_next: u32,
    fail_always: bool,
    /// xorshift state and failure probability in per mille.
    random: Option<(u64, u64)>,
}

impl Faults {
    /// The next `n` calls fail transiently.
    pub fn fail_next(&self, n: u32) {
        locked(&self.state).fail_next = n;
    }

    /// Every call fails transiently until [`Faults::clear`].
    pub fn fail_always(&self) {
        locked(&self.state).fail_always = true;
    }

    /// Each call fails with probability `per_mille`/1000, reproducibly for a given seed.
    pub fn fail_randomly(&self, seed: u64, per_mille: u64) {
        locked(&self.state).random = Some((seed | 1, per_mille));
    }

    pub fn clear(&self) {
        *locked(&self.state) = FaultState::default();
    }

    fn check(&self, component: &'static str) -> Result<(), PortError> {
        let mut state = locked(&self.state);
        let injected = if state.fail_always {
            true
        } else if state.fail_next > 0 {
            state.fail_next -= 1;
            true
        } else if let Some((rng, per_mille)) = state.random.as_mut() {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            *rng % 1000 < *per_mille
        } else {
            false
        };
        if injected {
            Err(PortError::Transient {
                component,
                message: "injected failure".into(),
            })
        } else {
            Ok(())
        }
    }
}

#[derive(Debug, Default)]
pub struct InMemoryWindowStore {
    items: Mutex<BTreeMap<WindowKey, WindowAggregate>>,
    /// Writes another writer slips in just before our next save of that key.
    interference: Mutex<BTreeMap<WindowKey, WindowAggregate>>,
    pub faults: Faults,
    saves: AtomicU64,
}

impl InMemoryWindowStore {
    pub fn snapshot(&self) -> BTreeMap<WindowKey, WindowAggregate> {
        locked(&self.items).clone()
    }

    /// Successful writes so far.
    pub fn saves(&self) -> u64 {
        self.saves.load(Ordering::Relaxed)
    }

    /// Simulates a concurrent writer: right before the next save of this aggregate's key, the
    /// stored item becomes `aggregate`.
    pub fn interfere(&self, aggregate: WindowAggregate) {
        locked(&self.interference).insert(aggregate.key(), aggregate);
    }
}

impl WindowStore for InMemoryWindowStore {
    async fn load(&self, keys: &[WindowKey]) -> Result<Vec<WindowAggregate>, PortError> {
        self.faults.check("window store")?;
        let items = locked(&self.items);
        Ok(keys.iter().filter_map(|k| items.get(k).cloned()).collect())
    }

    async fn save(
        &self,
        aggregate: &WindowAggregate,
        expected_count: Option<u64>,
    ) -> Result<SaveOutcome, PortError> {
        self.faults.check("window store")?;
        // DynamoDB refuses an item over 400 KB by its formula; the merge refuses it first.
        let size = item_size(&window_item(aggregate, &contracts().tables.window_aggregates));
        if !fits_item_limit(size) {
            return Err(PortError::Rejected {
                component: "window store",
                message: format!(
                    "item is {size} bytes, over DynamoDB's {DYNAMODB_MAX_ITEM_BYTES}-byte limit"
                ),
            });
        }
        let key = aggregate.key();
        let mut items = locked(&self.items);
        if let Some(other) = locked(&self.interference).remove(&key) {
            items.insert(key.clone(), other);
        }
        let current = items.get(&key).map(|a| a.count);
        if current != expected_count {
            return Ok(SaveOutcome::Conflict);
        }
        items.insert(key, aggregate.clone());
        self.saves.fetch_add(1, Ordering::Relaxed);
        Ok(SaveOutcome::Saved)
    }
}

/// S3 with its conditional-write semantics: an object's entity tag changes with every write, a
/// write conditional on absence or on a stale tag is refused.
#[derive(Debug, Default)]
pub struct InMemoryObjectStore {
    objects: Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
    /// Writes another writer slips in right after our next read of that key.
    interference: Mutex<BTreeMap<String, Vec<u8>>>,
    pub faults: Faults,
    puts: AtomicU64,
    versions: AtomicU64,
    conflicts: AtomicU64,
}

impl InMemoryObjectStore {
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        locked(&self.objects)
            .iter()
            .map(|(k, (bytes, _))| (k.clone(), bytes.clone()))
            .collect()
    }

    /// Successful writes so far.
    pub fn puts(&self) -> u64 {
        self.puts.load(Ordering::Relaxed)
    }

    /// Conditional writes refused so far.
    pub fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::Relaxed)
    }

    pub fn insert(&self, key: &str, bytes: Vec<u8>) {
        let version = self.next_version();
        locked(&self.objects).insert(key.to_string(), (bytes, version));
    }

    /// Simulates a concurrent writer: right after our next read of `key`, the stored object
    /// becomes `bytes` (with a new entity tag).
    pub fn interfere(&self, key: &str, bytes: Vec<u8>) {
        locked(&self.interference).insert(key.to_string(), bytes);
    }

    fn next_version(&self) -> u64 {
        self.versions.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn etag(version: u64) -> String {
        format!("\"v{version}\"")
    }
}

impl ObjectStore for InMemoryObjectStore {
    async fn get(&self, key: &str) -> Result<Option<StoredObject>, PortError> {
        self.faults.check("object store")?;
        let found = locked(&self.objects)
            .get(key)
            .map(|(bytes, version)| StoredObject {
                bytes: bytes.clone(),
                etag: Self::etag(*version),
            });
        if let Some(bytes) = locked(&self.interference).remove(key) {
            self.insert(key, bytes);
        }
        Ok(found)
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, _content_type: &'static str) -> Result<(), PortError> {
        self.faults.check("object store")?;
        check_object_size(key, bytes.len())?;
        self.insert(key, bytes);
        self.puts.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        _content_type: &'static str,
        condition: WriteCondition,
    ) -> Result<ConditionalWrite, PortError> {
        self.faults.check("object store")?;
        check_object_size(key, bytes.len())?;
        let version = self.next_version();
        let mut objects = locked(&self.objects);
        let holds = match (&condition, objects.get(key)) {
            (WriteCondition::Absent, stored) => stored.is_none(),
            (WriteCondition::Matches(etag), Some((_, v))) => *etag == Self::etag(*v),
            (WriteCondition::Matches(_), None) => false,
        };
        if !holds {
            self.conflicts.fetch_add(1, Ordering::Relaxed);
            return Ok(ConditionalWrite::Conflict);
        }
        objects.insert(key.to_string(), (bytes, version));
        self.puts.fetch_add(1, Ordering::Relaxed);
        Ok(ConditionalWrite::Written)
    }
}

#[derive(Debug, Default)]
pub struct InMemoryStoreEventTable {
    rows: Mutex<BTreeMap<RecordCoordinates, StoreEvent>>,
    pub faults: Faults,
}

impl InMemoryStoreEventTable {
    pub fn snapshot(&self) -> BTreeMap<RecordCoordinates, StoreEvent> {
        locked(&self.rows).clone()
    }
}

impl StoreEventTable for InMemoryStoreEventTable {
    async fn insert(&self, rows: &[StoreEventRow]) -> Result<u64, PortError> {
        self.faults.check("store-event table")?;
        let mut stored = locked(&self.rows);
        let mut inserted = 0;
        for row in rows {
            if !stored.contains_key(&row.coordinates) {
                stored.insert(row.coordinates.clone(), row.event.clone());
                inserted += 1;
            }
        }
        Ok(inserted)
    }
}

/// Explicit events and, next to them, the partition ledgers (as in DynamoDB). The faults apply to
/// both.
#[derive(Debug, Default)]
pub struct InMemoryExplicitEventStore {
    items: Mutex<BTreeMap<RecordCoordinates, ExplicitEvent>>,
    ledgers: Mutex<BTreeMap<String, PartitionLedger>>,
    /// BatchWriteItem requests sent so far (the adapter sends the same ones).
    write_requests: AtomicU64,
    pub faults: Faults,
}

impl InMemoryExplicitEventStore {
    pub fn snapshot(&self) -> BTreeMap<RecordCoordinates, ExplicitEvent> {
        locked(&self.items).clone()
    }

    pub fn ledgers(&self) -> BTreeMap<String, PartitionLedger> {
        locked(&self.ledgers).clone()
    }

    /// BatchWriteItem requests sent so far.
    pub fn write_requests(&self) -> u64 {
        self.write_requests.load(Ordering::Relaxed)
    }
}

impl PartitionLedgerStore for InMemoryExplicitEventStore {
    async fn load_ledgers(&self, topic_partitions: &[String]) -> Result<Vec<PartitionLedger>, PortError> {
        self.faults.check("partition ledger")?;
        let ledgers = locked(&self.ledgers);
        Ok(topic_partitions
            .iter()
            .filter_map(|tp| ledgers.get(tp).cloned())
            .collect())
    }

    async fn save_ledger(
        &self,
        ledger: &PartitionLedger,
        expected: Option<&PartitionLedger>,
    ) -> Result<SaveOutcome, PortError> {
        self.faults.check("partition ledger")?;
        let mut ledgers = locked(&self.ledgers);
        if ledgers.get(&ledger.topic_partition) != expected {
            return Ok(SaveOutcome::Conflict);
        }
        ledgers.insert(ledger.topic_partition.clone(), ledger.clone());
        Ok(SaveOutcome::Saved)
    }
}

impl ExplicitEventStore for InMemoryExplicitEventStore {
    async fn put(&self, events: &[ExplicitEvent]) -> Result<(), PortError> {
        self.faults.check("explicit event store")?;
        // The requests the adapter sends (one write per key, 25 per request), each checked as
        // DynamoDB checks it: a request holding an item over 400 KB is refused whole.
        let rejected = |e: crate::dynamodb_item::BatchWriteError| PortError::Rejected {
            component: "explicit event store",
            message: e.to_string(),
        };
        let table = &contracts().tables.explicit_events;
        let by_coordinates: BTreeMap<&RecordCoordinates, &ExplicitEvent> =
            events.iter().map(|e| (&e.coordinates, e)).collect();
        let requests = batch_write_requests(
            by_coordinates
                .values()
                .map(|event| (explicit_event_item(event, table), &event.coordinates))
                .collect(),
        )
        .map_err(rejected)?;
        for request in &requests {
            check_batch_write_request(request).map_err(rejected)?;
        }
        self.write_requests
            .fetch_add(requests.len() as u64, Ordering::Relaxed);
        let mut items = locked(&self.items);
        for event in by_coordinates.into_values() {
            items.insert(event.coordinates.clone(), event.clone());
        }
        Ok(())
    }
}

/// Bucket the fake poison sink pretends to offload oversized messages to.
pub const FAKE_OFFLOAD_BUCKET: &str = "in-memory-oversize";
pub const FAKE_OFFLOAD_PREFIX: &str = "oversize-poison/";

/// A FIFO queue with content-independent deduplication by id, like SQS within its window. It
/// delivers by [`PoisonMessage::delivery`] like the SQS adapter, so a message whose pointer would
/// not fit SQS is refused here too.
#[derive(Debug, Default)]
pub struct InMemoryPoisonSink {
    messages: Mutex<Vec<PoisonMessage>>,
    /// What SQS would hold: the inline body or the pointer, by deduplication id.
    queue_bodies: Mutex<BTreeMap<String, String>>,
    /// SendMessageBatch requests sent so far (the adapter sends the same ones).
    batch_requests: AtomicU64,
    pub faults: Faults,
}

impl InMemoryPoisonSink {
    /// Every message as an operator reads it back (following offload pointers).
    pub fn snapshot(&self) -> Vec<PoisonMessage> {
        locked(&self.messages).clone()
    }

    /// The bodies as they sit in the queue (inline messages or pointers), by deduplication id.
    pub fn queue_bodies(&self) -> BTreeMap<String, String> {
        locked(&self.queue_bodies).clone()
    }

    /// SendMessageBatch requests sent so far.
    pub fn batch_requests(&self) -> u64 {
        self.batch_requests.load(Ordering::Relaxed)
    }
}

impl PoisonSink for InMemoryPoisonSink {
    async fn send(&self, messages: &[PoisonMessage]) -> Result<(), PortError> {
        self.faults.check("poison queue")?;
        let mut planned = Vec::with_capacity(messages.len());
        for message in messages {
            let body = match message.delivery(FAKE_OFFLOAD_BUCKET, FAKE_OFFLOAD_PREFIX) {
                Ok(QueueDelivery::Inline(body)) => body,
                Ok(QueueDelivery::Offload { pointer_body, .. }) => pointer_body,
                Err(e) => {
                    return Err(PortError::Rejected {
                        component: "poison queue",
                        message: e.to_string(),
                    })
                }
            };
            planned.push((message, body));
        }
        // The requests the adapter sends, each checked as SQS checks SendMessageBatch.
        let requests = pack_send_message_batches(planned, |(_, body)| body.len());
        for request in &requests {
            let bodies: Vec<&str> = request.iter().map(|(_, body)| body.as_str()).collect();
            check_send_message_batch(&bodies).map_err(|message| PortError::Rejected {
                component: "poison queue",
                message,
            })?;
        }
        self.batch_requests
            .fetch_add(requests.len() as u64, Ordering::Relaxed);
        let mut queue = locked(&self.messages);
        let mut bodies = locked(&self.queue_bodies);
        for (message, body) in requests.into_iter().flatten() {
            if let std::collections::btree_map::Entry::Vacant(slot) = bodies.entry(message.deduplication_id())
            {
                slot.insert(body);
                queue.push(message.clone());
            }
        }
        Ok(())
    }
}
