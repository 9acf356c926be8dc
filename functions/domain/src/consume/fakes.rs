//! In-memory implementations of the consumer ports, for unit tests and local experiments.
//!
//! They keep the semantics the batch loop relies on (conditional window writes, insert-if-absent
//! rows, FIFO deduplication of poison messages) and can inject transient failures and write races.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use pipeline_contracts::contracts;

use super::ports::{
    check_object_size, ExplicitEventStore, ObjectStore, PoisonMessage, PoisonSink, QueueDelivery,
    SaveOutcome, StoreEventRow, StoreEventTable, WindowStore,
};
use super::ExplicitEvent;
use crate::dynamodb_item::{explicit_event_item, fits_item_limit, item_size};
use crate::limits::DYNAMODB_MAX_ITEM_BYTES;
use crate::model::{RecordCoordinates, StoreEvent};
use crate::ports::PortError;
use crate::window::{WindowAggregate, WindowKey};

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

#[derive(Debug, Default)]
pub struct InMemoryObjectStore {
    objects: Mutex<BTreeMap<String, Vec<u8>>>,
    pub faults: Faults,
    puts: AtomicU64,
}

impl InMemoryObjectStore {
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        locked(&self.objects).clone()
    }

    pub fn puts(&self) -> u64 {
        self.puts.load(Ordering::Relaxed)
    }

    pub fn insert(&self, key: &str, bytes: Vec<u8>) {
        locked(&self.objects).insert(key.to_string(), bytes);
    }
}

impl ObjectStore for InMemoryObjectStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        self.faults.check("object store")?;
        Ok(locked(&self.objects).get(key).cloned())
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, _content_type: &'static str) -> Result<(), PortError> {
        self.faults.check("object store")?;
        check_object_size(key, bytes.len())?;
        locked(&self.objects).insert(key.to_string(), bytes);
        self.puts.fetch_add(1, Ordering::Relaxed);
        Ok(())
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

#[derive(Debug, Default)]
pub struct InMemoryExplicitEventStore {
    items: Mutex<BTreeMap<RecordCoordinates, ExplicitEvent>>,
    pub faults: Faults,
}

impl InMemoryExplicitEventStore {
    pub fn snapshot(&self) -> BTreeMap<RecordCoordinates, ExplicitEvent> {
        locked(&self.items).clone()
    }
}

impl ExplicitEventStore for InMemoryExplicitEventStore {
    async fn put(&self, events: &[ExplicitEvent]) -> Result<(), PortError> {
        self.faults.check("explicit event store")?;
        // DynamoDB refuses the whole BatchWriteItem request when one item is too large.
        let table = &contracts().tables.explicit_events;
        for event in events {
            let size = item_size(&explicit_event_item(event, table));
            if !fits_item_limit(size) {
                return Err(PortError::Rejected {
                    component: "explicit event store",
                    message: format!(
                        "item {} is {size} bytes, over DynamoDB's {DYNAMODB_MAX_ITEM_BYTES}-byte limit",
                        event.coordinates
                    ),
                });
            }
        }
        let mut items = locked(&self.items);
        for event in events {
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
        let mut queue = locked(&self.messages);
        let mut bodies = locked(&self.queue_bodies);
        for (message, body) in planned {
            if let std::collections::btree_map::Entry::Vacant(slot) = bodies.entry(message.deduplication_id())
            {
                slot.insert(body);
                queue.push(message.clone());
            }
        }
        Ok(())
    }
}
