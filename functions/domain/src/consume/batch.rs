//! The batch loop: one ESM event in, every sink updated (or the invocation failed), a summary out.
//!
//! 1. Collect the Glue schema version ids of the batch and resolve them through the cached
//!    [`SchemaSource`]. A transient registry failure is retried and then fails the batch: it says
//!    nothing about the records. Only a definite "not found" makes records poison.
//! 2. Decode every record with the pure [`decode_record`].
//! 3. Fan out concurrently: window aggregates, archive blocks, table rows, explicit documents and
//!    poison messages. Each sink call is retried with exponential backoff and jitter while its
//!    errors are transient; the window and archive writes inside a sink run concurrently, bounded.
//! 4. If any sink still fails, the invocation fails and the ESM redelivers the whole batch. That
//!    is safe because every sink write is idempotent (see [`super::ports`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use apache_avro::Schema;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use thiserror::Error;
use uuid::Uuid;

use super::archive::{self, ArchiveLine, BlockId};
use super::ledger;
use super::ports::{
    ConditionalWrite, ExplicitEventStore, ObjectStore, PartitionLedgerStore, PoisonMessage, PoisonSink,
    SaveOutcome, StoreEventRow, StoreEventTable, WindowStore, WriteCondition,
};
use super::{
    check_event_time, decode_record, glue_schema_version_id, Decoded, EventTimeBounds, ExplicitEvent, Poison,
    PoisonReason, RawRecord, TopicRoutes, WriterSchema, WriterSchemas,
};
use crate::batch_response::KafkaBatchResponse;
use crate::event::view::EventView;
use crate::event::{EsmBatch, EsmRecord, KafkaEvent};
use crate::limits::MAX_DECODED_CHUNK_BYTES;
use crate::model::{RecordCoordinates, SensorReading};
use crate::ports::{PortError, SchemaSource, SchemaVersion};
use crate::window::{group_readings, merge, MergeOutcome, PendingWindow, WindowAggregate, WindowSpec};

/// Bounded retries with exponential backoff and full jitter over `[delay/2, delay]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(3),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, attempt: u32) -> Duration {
        let exponential = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt).unwrap_or(u32::MAX))
            .min(self.max_delay);
        // RandomState is seeded randomly per instance: enough jitter without a RNG dependency.
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let half = exponential / 2;
        half + half.mul_f64((random % 1000) as f64 / 1000.0)
    }

    /// Runs `operation` until it succeeds, fails permanently, or attempts run out.
    pub async fn run<T, F, Fut>(&self, what: &'static str, mut operation: F) -> Result<T, PortError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PortError>>,
    {
        let mut attempt = 0;
        loop {
            match operation().await {
                Ok(value) => return Ok(value),
                Err(error) if error.is_transient() && attempt + 1 < self.max_attempts => {
                    let delay = self.delay(attempt);
                    tracing::warn!(sink = what, attempt = attempt + 1, ?delay, %error, "transient failure, retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// Tunables of the batch loop.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    pub routes: TopicRoutes,
    pub window: WindowSpec,
    /// Key prefix of archive objects (contract `bucket.storeEventsPrefix`).
    pub archive_prefix: String,
    pub retry: RetryPolicy,
    /// Concurrent (device, window) read-merge-writes.
    pub window_concurrency: usize,
    /// Concurrent archive block read-merge-writes.
    pub archive_concurrency: usize,
    /// Decoded bytes held before the sinks are written (see [`MAX_DECODED_CHUNK_BYTES`]).
    pub max_chunk_bytes: usize,
    /// Event times outside these bounds are poison; `None` accepts any time a sink can hold.
    pub event_times: Option<EventTimeBounds>,
    /// The invocation's clock, epoch ms (event times are judged against it).
    pub clock: fn() -> i64,
}

/// The system clock, epoch ms.
pub fn system_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl ConsumerSettings {
    pub fn new(routes: TopicRoutes, window: WindowSpec, archive_prefix: impl Into<String>) -> Self {
        Self {
            routes,
            window,
            archive_prefix: archive_prefix.into(),
            retry: RetryPolicy::default(),
            window_concurrency: 16,
            archive_concurrency: 8,
            max_chunk_bytes: MAX_DECODED_CHUNK_BYTES,
            event_times: Some(EventTimeBounds::default()),
            clock: system_clock_ms,
        }
    }
}

/// Schema ids looked up at once. An invocation whose batch holds many unknown ids then waits for
/// about ids/8 registry round trips, not one per id.
pub const SCHEMA_LOOKUP_CONCURRENCY: usize = 8;

/// Resolves writer schemas by version id. A version's definition and format never change, so parsed
/// schemas and definite refusals (not Avro, not parseable) are remembered across invocations. "Not
/// found" and a status other than AVAILABLE can change, so they hold for one invocation only: each
/// id is asked once per invocation, however many records carry it.
pub struct SchemaCache<S> {
    source: S,
    parsed: Mutex<HashMap<Uuid, WriterSchema>>,
}

impl<S: SchemaSource> SchemaCache<S> {
    pub fn new(source: S) -> Self {
        Self {
            source,
            parsed: Mutex::new(HashMap::new()),
        }
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    fn cached(&self, id: &Uuid) -> Option<WriterSchema> {
        self.parsed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Resolves each id, at most [`SCHEMA_LOOKUP_CONCURRENCY`] at a time; `Err` only when the
    /// registry could not answer (throttling, network, authorisation), after retries.
    pub async fn resolve(
        &self,
        ids: impl IntoIterator<Item = Uuid>,
        retry: &RetryPolicy,
    ) -> Result<WriterSchemas, PortError> {
        let mut resolved = WriterSchemas::new();
        let mut missing = BTreeSet::new();
        for id in ids {
            match self.cached(&id) {
                Some(schema) => {
                    resolved.insert(id, schema);
                }
                None => {
                    missing.insert(id);
                }
            }
        }
        let answers: Vec<(Uuid, WriterSchema)> = futures::stream::iter(missing)
            .map(|id| async move { self.look_up(id, retry).await.map(|schema| (id, schema)) })
            .buffer_unordered(SCHEMA_LOOKUP_CONCURRENCY)
            .try_collect()
            .await?;
        resolved.extend(answers);
        Ok(resolved)
    }

    async fn look_up(&self, id: Uuid, retry: &RetryPolicy) -> Result<WriterSchema, PortError> {
        let version = match retry
            .run("schema registry", || self.source.schema_version(id))
            .await
        {
            Ok(version) => version,
            Err(PortError::NotFound { .. }) => return Ok(WriterSchema::NotFound),
            Err(other) => return Err(other),
        };
        let (schema, permanent) = if version.data_format != SchemaVersion::AVRO {
            (WriterSchema::NotAvro(version.data_format), true)
        } else if version.status != SchemaVersion::AVAILABLE {
            (WriterSchema::NotAvailable(version.status), false)
        } else {
            match Schema::parse_str(&version.definition) {
                Ok(schema) => (WriterSchema::Found(Arc::new(schema)), true),
                Err(e) => (WriterSchema::Unusable(e.to_string()), true),
            }
        };
        if permanent {
            self.parsed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(id, schema.clone());
        }
        Ok(schema)
    }
}

/// The sinks of one consumer.
pub struct Sinks<W, A, T, G, P> {
    pub windows: W,
    pub archive: A,
    pub table: T,
    pub explicit: G,
    pub poison: P,
}

/// What one batch did; also the invocation's response.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BatchSummary {
    pub records: usize,
    pub sensor_readings: usize,
    pub store_events: usize,
    pub explicit_events: usize,
    pub poison: usize,
    /// Poison count per [`PoisonReason::kind`].
    pub poison_by_reason: BTreeMap<String, usize>,
    pub windows_touched: usize,
    pub windows_written: u64,
    pub archive_objects_written: u64,
    pub rows_inserted: u64,
}

/// An invocation body that is no ESM event (the envelope's fault, not a record's).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the invocation body is not a Kafka event source mapping event: {0}")]
pub struct MalformedEvent(pub String);

/// Why [`ConsumerService::process_body`] failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BodyFailure {
    /// Fails the invocation; nothing was written.
    #[error("{0}")]
    Malformed(MalformedEvent),
    /// The event parsed; `records` is how many it held (for metrics), `failure` what a
    /// partial-batch response needs.
    #[error("{}", .failure.error)]
    Batch { records: usize, failure: BatchFailure },
}

/// A sink that still failed after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkFailure {
    pub sink: &'static str,
    pub error: PortError,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error("resolving writer schemas failed: {0}")]
    SchemaRegistry(PortError),
    #[error("{} sink(s) failed: {}", .0.len(), describe(.0))]
    Sinks(Vec<SinkFailure>),
}

/// A failed batch, with what a partial-batch response needs: the records not yet stored and what
/// the stored part did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchFailure {
    pub error: BatchError,
    /// Records no sink has confirmed: those of the sinks that failed in the failing chunk, and
    /// every record after that chunk. Empty when nothing was attempted (the registry failed).
    pub unstored: Vec<RecordCoordinates>,
    /// What the chunks before the failure did.
    pub summary: BatchSummary,
}

impl BatchFailure {
    /// What to answer a mapping with `ReportBatchItemFailures`: each partition again from its
    /// lowest unstored offset, so everything before it is committed. `None` when the whole batch
    /// must fail instead (nothing was stored, or the failure is not a sink's).
    pub fn partial_response(&self) -> Option<KafkaBatchResponse> {
        match self.error {
            BatchError::Sinks(_) if !self.unstored.is_empty() => {
                Some(KafkaBatchResponse::redeliver_from(&self.unstored))
            }
            _ => None,
        }
    }
}

fn describe(failures: &[SinkFailure]) -> String {
    failures
        .iter()
        .map(|f| format!("{}: {}", f.sink, f.error))
        .collect::<Vec<_>>()
        .join("; ")
}

/// How often a (device, window) write may lose a conditional race before the batch gives up.
const MAX_WINDOW_CONFLICTS: u32 = 8;
/// How often an archive block write may lose a conditional race before the batch gives up.
const MAX_ARCHIVE_CONFLICTS: u32 = 8;

pub const SINK_WINDOWS: &str = "window aggregates";
pub const SINK_ARCHIVE: &str = "store-event archive";
pub const SINK_TABLE: &str = "store-event table";
pub const SINK_EXPLICIT: &str = "explicit events";
pub const SINK_POISON: &str = "poison queue";

pub struct ConsumerService<S, W, A, T, G, P> {
    schemas: SchemaCache<S>,
    sinks: Sinks<W, A, T, G, P>,
    settings: ConsumerSettings,
}

impl<S, W, A, T, G, P> ConsumerService<S, W, A, T, G, P>
where
    S: SchemaSource,
    W: WindowStore,
    A: ObjectStore,
    T: StoreEventTable,
    G: ExplicitEventStore + PartitionLedgerStore,
    P: PoisonSink,
{
    pub fn new(schemas: S, sinks: Sinks<W, A, T, G, P>, settings: ConsumerSettings) -> Self {
        Self {
            schemas: SchemaCache::new(schemas),
            sinks,
            settings,
        }
    }

    pub fn sinks(&self) -> &Sinks<W, A, T, G, P> {
        &self.sinks
    }

    pub fn settings(&self) -> &ConsumerSettings {
        &self.settings
    }

    pub fn schema_cache(&self) -> &SchemaCache<S> {
        &self.schemas
    }

    /// Processes one ESM event. `Err` means the ESM must retry the batch.
    pub async fn process(&self, event: &KafkaEvent) -> Result<BatchSummary, BatchError> {
        self.process_reporting(event)
            .await
            .map_err(|failure| failure.error)
    }

    /// [`Self::process`], naming on failure the records not yet stored (for a partial-batch
    /// response). Retrying from each partition's lowest unstored offset redelivers a subset of
    /// what retrying the whole batch would, so the sinks' idempotence covers it the same way.
    pub async fn process_reporting(&self, event: &KafkaEvent) -> Result<BatchSummary, BatchFailure> {
        self.process_batch(event).await
    }

    /// Processes one invocation body as the Lambda runtime receives it, parsed borrowed
    /// ([`EventView`]). A body the ESM could not have sent fails the invocation
    /// ([`BodyFailure::Malformed`]); otherwise this is [`Self::process_reporting`] on the same event.
    pub async fn process_body(&self, body: &[u8]) -> Result<BatchSummary, BodyFailure> {
        let event =
            EventView::parse(body).map_err(|e| BodyFailure::Malformed(MalformedEvent(e.to_string())))?;
        self.process_batch(&event)
            .await
            .map_err(|failure| BodyFailure::Batch {
                records: event.record_count(),
                failure,
            })
    }

    /// The one batch loop, for the owned and the borrowed event alike.
    async fn process_batch<B: EsmBatch>(&self, event: &B) -> Result<BatchSummary, BatchFailure> {
        let routes = &self.settings.routes;
        let ids: BTreeSet<Uuid> = event.records().filter_map(glue_schema_version_id).collect();
        let schemas = self
            .schemas
            .resolve(ids, &self.settings.retry)
            .await
            .map_err(|error| BatchFailure {
                error: BatchError::SchemaRegistry(error),
                unstored: Vec::new(),
                summary: BatchSummary::default(),
            })?;
        // A re-created topic reuses coordinates the sinks already hold: refuse before writing.
        let whole_batch = |failure| BatchFailure {
            error: BatchError::Sinks(vec![failure]),
            unstored: Vec::new(),
            summary: BatchSummary::default(),
        };
        let ledgers = ledger::load_and_check(&self.sinks.explicit, event, &self.settings.retry)
            .await
            .map_err(whole_batch)?;

        let mut summary = BatchSummary {
            records: event.record_count(),
            ..BatchSummary::default()
        };
        let now_ms = (self.settings.clock)();
        // Records are decoded in order and the sinks written whenever the decoded data reaches
        // the budget, so what a batch holds at once is bounded whatever it inflates to.
        let mut chunk = Chunk::default();
        for (position, record) in event.records().enumerate() {
            let decoded =
                decode_record(record, routes.payload_for(record.topic()), &schemas).and_then(|d| match self
                    .settings
                    .event_times
                {
                    Some(bounds) => check_event_time(&d, &bounds, now_ms)
                        .map(|()| d)
                        .map_err(|reason| {
                            Box::new(Poison {
                                coordinates: record.coordinates(),
                                reason,
                                raw: RawRecord::of(record),
                            })
                        }),
                    None => Ok(d),
                });
            let held = held_bytes(record, &decoded);
            if !chunk.is_empty() && chunk.held_bytes + held > self.settings.max_chunk_bytes {
                if let Err((error, mut unstored)) =
                    self.write_chunk(std::mem::take(&mut chunk), &mut summary).await
                {
                    unstored.extend(event.records().skip(position).map(EsmRecord::coordinates));
                    let failure = BatchFailure {
                        error,
                        unstored,
                        summary,
                    };
                    return Err(self.record_what_was_stored(&ledgers, failure).await);
                }
            }
            chunk.held_bytes += held;
            match decoded {
                Ok(Decoded::Sensor { coordinates, reading }) => {
                    chunk.sensor_records.push(record);
                    chunk.readings.push((coordinates, reading));
                }
                Ok(Decoded::Store { coordinates, event }) => {
                    chunk.store_rows.push(StoreEventRow { coordinates, event })
                }
                Ok(Decoded::Explicit(event)) => chunk.explicit.push(event),
                Err(p) => chunk.poison.push(*p),
            }
        }
        if let Err((error, unstored)) = self.write_chunk(chunk, &mut summary).await {
            let failure = BatchFailure {
                error,
                unstored,
                summary,
            };
            return Err(self.record_what_was_stored(&ledgers, failure).await);
        }
        // Once every chunk is stored (a failure part-way records only what a partial answer
        // commits, see `record_what_was_stored`).
        ledger::advance_all(&self.sinks.explicit, &ledgers, &self.settings.retry)
            .await
            .map_err(whole_batch)?;
        Ok(summary)
    }

    /// Before answering a failure part-way, enters in the ledger what a partial-batch answer
    /// commits: those records are never delivered again, so a ledger advanced only on success
    /// would never mark them (its lowest mark would stay above them for good, and a re-created
    /// topic re-using only those offsets would go unnoticed). Entering them without a partial
    /// answer is harmless: they are stored, and the whole batch that comes again agrees. If the
    /// ledger cannot be written, the whole batch fails instead (nothing is committed).
    async fn record_what_was_stored<R: EsmRecord>(
        &self,
        ledgers: &ledger::Checked<'_, R>,
        failure: BatchFailure,
    ) -> BatchFailure {
        if failure.partial_response().is_none() {
            return failure;
        }
        let committed = ledgers.committed_before(&failure.unstored);
        match ledger::advance_all(&self.sinks.explicit, &committed, &self.settings.retry).await {
            Ok(()) => failure,
            Err(ledger_failure) => BatchFailure {
                error: BatchError::Sinks(vec![ledger_failure]),
                unstored: Vec::new(),
                summary: failure.summary,
            },
        }
    }

    /// Fans one chunk of decoded records out to the sinks, adding what it did to `summary`. On
    /// failure, also the records of the sinks that failed.
    async fn write_chunk<R: EsmRecord>(
        &self,
        chunk: Chunk<'_, R>,
        summary: &mut BatchSummary,
    ) -> Result<(), (BatchError, Vec<RecordCoordinates>)> {
        let Chunk {
            readings,
            sensor_records,
            store_rows,
            explicit,
            mut poison,
            ..
        } = chunk;
        let (windows, unplaceable) =
            group_readings(self.settings.window, readings.iter().map(|(c, r)| (c, r)));
        if !unplaceable.is_empty() {
            // The record as delivered goes with the poison message; for repeated coordinates the
            // last one delivered, each set aside once.
            let mut raw_by_coordinates: HashMap<&RecordCoordinates, &R> = readings
                .iter()
                .map(|(c, _)| c)
                .zip(sensor_records.iter().copied())
                .collect();
            for (coordinates, error) in unplaceable {
                if let Some(record) = raw_by_coordinates.remove(&coordinates) {
                    poison.push(Poison {
                        raw: RawRecord::of(record),
                        coordinates,
                        reason: PoisonReason::Window(error),
                    });
                }
            }
        }

        summary.sensor_readings += readings.len() - summary_unplaceable(&poison);
        summary.store_events += store_rows.len();
        summary.explicit_events += explicit.len();
        summary.poison += poison.len();
        summary.windows_touched += windows.len();
        for p in &poison {
            *summary
                .poison_by_reason
                .entry(p.reason.kind().to_string())
                .or_default() += 1;
            tracing::warn!(
                topic = %p.coordinates.topic,
                partition = p.coordinates.partition,
                offset = p.coordinates.offset,
                reason_kind = p.reason.kind(),
                reason = %p.reason.message(),
                "poison record sent to the failure queue"
            );
        }
        let poison_messages: Vec<PoisonMessage> = poison.iter().map(PoisonMessage::from_poison).collect();

        let windows_written = AtomicU64::new(0);
        let objects_written = AtomicU64::new(0);
        let retry = &self.settings.retry;
        let (windows_result, archive_result, table_result, explicit_result, poison_result) = tokio::join!(
            self.unless_empty(&windows, || retry
                .run(SINK_WINDOWS, || self.write_windows(&windows, &windows_written))),
            self.unless_empty(&store_rows, || retry
                .run(SINK_ARCHIVE, || self.write_archive(&store_rows, &objects_written))),
            self.unless_empty(&store_rows, || retry
                .run(SINK_TABLE, || self.sinks.table.insert(&store_rows))),
            self.unless_empty(&explicit, || retry
                .run(SINK_EXPLICIT, || self.sinks.explicit.put(&explicit))),
            self.unless_empty(&poison_messages, || retry
                .run(SINK_POISON, || self.sinks.poison.send(&poison_messages))),
        );

        let mut failures = Vec::new();
        let mut check = |sink: &'static str, result: Result<(), PortError>| {
            if let Err(error) = result {
                tracing::error!(sink, %error, "sink failed after retries; the batch will be redelivered");
                failures.push(SinkFailure { sink, error });
            }
        };
        check(SINK_WINDOWS, windows_result.map(drop));
        check(SINK_ARCHIVE, archive_result.map(drop));
        summary.rows_inserted += table_result.as_ref().map_or(0, |n| n.unwrap_or(0));
        check(SINK_TABLE, table_result.map(drop));
        check(SINK_EXPLICIT, explicit_result.map(drop));
        check(SINK_POISON, poison_result.map(drop));
        summary.windows_written += windows_written.load(Ordering::Relaxed);
        summary.archive_objects_written += objects_written.load(Ordering::Relaxed);
        if failures.is_empty() {
            return Ok(());
        }
        let failed = |sink: &str| failures.iter().any(|f| f.sink == sink);
        let mut unstored = Vec::new();
        if failed(SINK_WINDOWS) {
            unstored.extend(readings.iter().map(|(c, _)| c.clone()));
        }
        if failed(SINK_ARCHIVE) || failed(SINK_TABLE) {
            unstored.extend(store_rows.iter().map(|r| r.coordinates.clone()));
        }
        if failed(SINK_EXPLICIT) {
            unstored.extend(explicit.iter().map(|e| e.coordinates.clone()));
        }
        if failed(SINK_POISON) {
            unstored.extend(poison.iter().map(|p| p.coordinates.clone()));
        }
        Err((BatchError::Sinks(failures), unstored))
    }

    /// Skips a sink call when there is nothing to write (`Ok(None)`).
    async fn unless_empty<I, R, F, Fut>(&self, items: &[I], call: F) -> Result<Option<R>, PortError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<R, PortError>>,
    {
        if items.is_empty() {
            Ok(None)
        } else {
            call().await.map(Some)
        }
    }

    async fn write_windows(&self, windows: &[PendingWindow], written: &AtomicU64) -> Result<(), PortError> {
        let keys: Vec<_> = windows.iter().map(|w| w.key.clone()).collect();
        let mut stored: HashMap<_, _> = self
            .sinks
            .windows
            .load(&keys)
            .await?
            .into_iter()
            .map(|a| (a.key(), a))
            .collect();
        let work: Vec<(&PendingWindow, Option<WindowAggregate>)> =
            windows.iter().map(|w| (w, stored.remove(&w.key))).collect();
        futures::stream::iter(work)
            .map(|(pending, current)| self.write_window(pending, current, written))
            .buffer_unordered(self.settings.window_concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await
            .map(drop)
    }

    /// Merge and conditional write of one window; on a lost race, re-read and merge again.
    async fn write_window(
        &self,
        pending: &PendingWindow,
        mut current: Option<WindowAggregate>,
        written: &AtomicU64,
    ) -> Result<(), PortError> {
        for _ in 0..MAX_WINDOW_CONFLICTS {
            // A refused merge needs an operator (window size changed, item full): fail the batch.
            let merged = merge(current.as_ref(), pending).map_err(|e| PortError::Rejected {
                component: "window store",
                message: e.to_string(),
            })?;
            let MergeOutcome::Updated { aggregate, .. } = merged else {
                return Ok(());
            };
            let expected = current.as_ref().map(|c| c.count);
            match self.sinks.windows.save(&aggregate, expected).await? {
                SaveOutcome::Saved => {
                    written.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                SaveOutcome::Conflict => {
                    tracing::debug!(device = %pending.key.device_id, start = pending.key.window_start_ms, "window write lost a race; re-reading");
                    current = self
                        .sinks
                        .windows
                        .load(std::slice::from_ref(&pending.key))
                        .await?
                        .into_iter()
                        .next();
                }
            }
        }
        Err(PortError::Transient {
            component: "window store",
            message: format!(
                "window {}@{} kept changing under {MAX_WINDOW_CONFLICTS} conditional writes",
                pending.key.device_id, pending.key.window_start_ms
            ),
        })
    }

    async fn write_archive(&self, rows: &[StoreEventRow], written: &AtomicU64) -> Result<(), PortError> {
        let blocks = archive::group_into_blocks(rows).map_err(|e| PortError::Rejected {
            component: "store-event archive",
            message: e.to_string(),
        })?;
        futures::stream::iter(blocks.iter())
            .map(|(id, lines)| self.write_block(id, lines, written))
            .buffer_unordered(self.settings.archive_concurrency.max(1))
            .try_collect::<Vec<()>>()
            .await
            .map(drop)
    }

    async fn write_block(
        &self,
        id: &BlockId,
        lines: &BTreeMap<i64, ArchiveLine>,
        written: &AtomicU64,
    ) -> Result<(), PortError> {
        let key = id.object_key(&self.settings.archive_prefix);
        // Two writers of one block (two mappings on the store topic) both read, merge and write:
        // each write is conditional on what was read, and the loser re-reads and merges again.
        for _ in 0..MAX_ARCHIVE_CONFLICTS {
            let stored = self.sinks.archive.get(&key).await?;
            // A corrupt object needs an operator; overwriting it would lose whatever it held.
            let merged =
                archive::merge_block(stored.as_ref().map(|s| s.bytes.as_slice()), lines).map_err(|e| {
                    PortError::Rejected {
                        component: "store-event archive",
                        message: format!("{key}: {e}"),
                    }
                })?;
            let Some(bytes) = merged else {
                return Ok(());
            };
            let condition = match stored {
                Some(object) => WriteCondition::Matches(object.etag),
                None => WriteCondition::Absent,
            };
            match self
                .sinks
                .archive
                .put_if(&key, bytes, archive::CONTENT_TYPE, condition)
                .await?
            {
                ConditionalWrite::Written => {
                    written.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                ConditionalWrite::Conflict => {
                    tracing::debug!(%key, "archive block changed since it was read; re-reading");
                }
            }
        }
        // Transient: the batch fails and the ESM retries it, by which time the other writer is done.
        Err(PortError::Transient {
            component: "store-event archive",
            message: format!("{key} kept changing under {MAX_ARCHIVE_CONFLICTS} conditional writes"),
        })
    }
}

/// Decoded records waiting for their sink writes.
struct Chunk<'a, R> {
    readings: Vec<(RecordCoordinates, SensorReading)>,
    /// The sensor records behind `readings`, by position; cloned only if one becomes poison.
    sensor_records: Vec<&'a R>,
    store_rows: Vec<StoreEventRow>,
    explicit: Vec<ExplicitEvent>,
    poison: Vec<Poison>,
    held_bytes: usize,
}

impl<R> Default for Chunk<'_, R> {
    fn default() -> Self {
        Self {
            readings: Vec::new(),
            sensor_records: Vec::new(),
            store_rows: Vec::new(),
            explicit: Vec::new(),
            poison: Vec::new(),
            held_bytes: 0,
        }
    }
}

impl<R> Chunk<'_, R> {
    fn is_empty(&self) -> bool {
        self.readings.is_empty()
            && self.store_rows.is_empty()
            && self.explicit.is_empty()
            && self.poison.is_empty()
    }
}

/// About what a decoded record holds in memory until its chunk is written: its text and, for
/// documents, a fixed cost per JSON node. Poison holds a copy of the record as delivered.
fn held_bytes<R: EsmRecord>(record: &R, decoded: &Result<Decoded, Box<Poison>>) -> usize {
    const PER_VALUE: usize = 64;
    fn document(value: &serde_json::Value) -> usize {
        PER_VALUE
            + match value {
                serde_json::Value::String(s) => s.len(),
                serde_json::Value::Array(items) => items.iter().map(document).sum(),
                serde_json::Value::Object(map) => map.iter().map(|(k, v)| k.len() + document(v)).sum(),
                _ => 0,
            }
    }
    match decoded {
        Ok(Decoded::Sensor { reading, .. }) => PER_VALUE + reading.device_id.len(),
        Ok(Decoded::Store { event, .. }) => {
            // The row, its archive line and its table row.
            3 * (16 * PER_VALUE
                + event.request_id.len()
                + event.category.len()
                + event.variant.len()
                + event.contact_me.as_ref().map_or(0, String::len))
        }
        Ok(Decoded::Explicit(event)) => {
            event.key_base64.as_ref().map_or(0, String::len) + document(&event.document)
        }
        Err(_) => {
            // The raw copy and its serialized queue body.
            2 * (PER_VALUE + record.value().map_or(0, str::len) + record.key().map_or(0, str::len))
        }
    }
}

fn summary_unplaceable(poison: &[Poison]) -> usize {
    poison
        .iter()
        .filter(|p| matches!(p.reason, PoisonReason::Window(_)))
        .count()
}
