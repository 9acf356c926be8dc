//! The mapping loop: gather a batch (size, window, payload cap), invoke, retry the whole batch with
//! backoff, send it to the on-failure destination when retries run out, and only then commit.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use thiserror::Error;
use tracing::{debug, info, warn};

use crate::batch::{Batch, BatchAssembler, Offer, PartitionSpan};
use crate::config::MappingConfig;
use crate::event::{EncodedRecord, EventEnvelope};
use crate::failure::{failure_record, FailureCondition, FailureInput, LastResponse};
use crate::faults::{pick_ranges, FaultPlan, REPLAY_HISTORY};
use crate::ports::{
    FailureDestination, InvokeError, InvokeOutcome, Invoker, PartitionLag, RecordSource, SourceError,
};
use crate::retry::RetryDecision;
use crate::status::{
    BatchOutcome, BatchReport, MappingState, MappingStatus, ProcessingResult, Reporter, SpanReport,
};
use pipeline_domain::batch_response::KafkaBatchResponse;

/// How long one poll waits when nothing is buffered; bounds how quickly a stop is noticed.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// Lag is refreshed at most this often (it costs a watermark request per partition).
const LAG_REFRESH: Duration = Duration::from_secs(1);
const UNAVAILABLE_BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error("invoking {function}: {message}; nothing was committed for the current batch")]
    InvokeFatal { function: String, message: String },
    /// `--fault-crash-after-batches`: the last delivered batch was deliberately left uncommitted.
    #[error("injected crash after {batches} delivered batch(es), before committing the last one")]
    InjectedCrash { batches: u64 },
}

/// A stop request shared with signal handlers; checked between polls and between retries.
#[derive(Debug, Clone, Default)]
pub struct StopFlag(Arc<AtomicBool>);

impl StopFlag {
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

enum Gathered {
    Batch(Batch),
    TooLarge {
        record: EncodedRecord,
        event_size: usize,
    },
    Nothing,
}

enum Delivery {
    Delivered,
    Exhausted { last: LastResponse },
    Stopped,
}

/// One invocation's result, after endpoint unavailability was waited out.
enum Attempt {
    Succeeded(Vec<u8>),
    Failed(LastResponse),
    Stopped,
}

/// Part of a batch still to be resolved, with the failed attempts it has had.
struct Piece {
    batch: Batch,
    failed_attempts: u32,
}

/// What became of a batch's records across its pieces.
#[derive(Default)]
struct Tally {
    delivered: usize,
    discarded: usize,
    /// The most attempts one piece took.
    attempts: u32,
}

impl Tally {
    fn delivered(&mut self, records: usize, attempts: u32) {
        self.delivered += records;
        self.attempts = self.attempts.max(attempts);
    }
}

pub struct Mapping<S, I, D, R> {
    config: MappingConfig,
    source: S,
    invoker: I,
    destination: Option<D>,
    reporter: R,
    assembler: BatchAssembler,
    carry: Option<EncodedRecord>,
    status: MappingStatus,
    lag_refreshed: Option<Instant>,
    lag_known: bool,
    stop: StopFlag,
    faults: FaultPlan,
    fault_rng: crate::faults::FaultRng,
    /// Batches delivered by this process (the crash point counts these).
    delivered_here: u64,
    /// The last delivered batches, candidates for a partial replay.
    history: VecDeque<Batch>,
}

impl<S, I, D, R> Mapping<S, I, D, R>
where
    S: RecordSource,
    I: Invoker,
    D: FailureDestination,
    R: Reporter,
{
    pub fn new(
        config: MappingConfig,
        source: S,
        invoker: I,
        destination: Option<D>,
        reporter: R,
        stop: StopFlag,
    ) -> Self {
        let envelope = EventEnvelope::new(config.event_source.clone(), config.bootstrap_servers.clone());
        let assembler = BatchAssembler::new(envelope, config.batch_size, config.max_payload_bytes);
        let status = MappingStatus::starting(&config.topic, &config.consumer_group, &config.function_name);
        Self {
            config,
            source,
            invoker,
            destination,
            reporter,
            assembler,
            carry: None,
            status,
            lag_refreshed: None,
            lag_known: false,
            stop,
            faults: FaultPlan::default(),
            fault_rng: FaultPlan::default().rng(),
            delivered_here: 0,
            history: VecDeque::new(),
        }
    }

    /// Injects the planned faults (tests only; see [`crate::faults`]).
    pub fn with_faults(mut self, faults: FaultPlan) -> Self {
        if faults.is_active() {
            warn!(
                ?faults,
                "fault injection is ON: this mapping misbehaves on purpose"
            );
        }
        self.fault_rng = faults.rng();
        self.faults = faults;
        self
    }

    /// Runs until stopped, until idle for `exit_when_idle`, or until a fatal error.
    pub async fn run(mut self) -> Result<MappingStatus, EngineError> {
        let mut idle_since: Option<Instant> = None;
        // Connected: from here on the mapping is Enabled (the API's `Creating` ends here).
        self.set_state(MappingState::Polling);
        self.refresh_lag(true).await?;
        while !self.stop.is_stopped() {
            match self.gather().await? {
                Gathered::Batch(batch) => {
                    idle_since = None;
                    if !self.deliver(batch).await? {
                        break;
                    }
                }
                Gathered::TooLarge { record, event_size } => {
                    idle_since = None;
                    if !self.discard_too_large(record, event_size).await? {
                        break;
                    }
                }
                Gathered::Nothing => {
                    self.refresh_lag(false).await?;
                    if self.lag_known && self.status.total_lag == 0 {
                        let since = *idle_since.get_or_insert_with(Instant::now);
                        self.set_state(MappingState::Idle);
                        if self.config.exit_when_idle.is_some_and(|d| since.elapsed() >= d) {
                            info!(topic = %self.config.topic, "caught up and idle; exiting");
                            break;
                        }
                    } else {
                        idle_since = None;
                    }
                }
            }
        }
        self.refresh_lag(true).await?;
        self.set_state(MappingState::Stopped);
        self.reporter.status(&self.status);
        Ok(self.status)
    }

    async fn next_encoded(&mut self, timeout: Duration) -> Result<Option<EncodedRecord>, EngineError> {
        if let Some(record) = self.carry.take() {
            return Ok(Some(record));
        }
        let Some(polled) = self.source.next_record(timeout).await? else {
            return Ok(None);
        };
        if self
            .faults
            .corrupt_values
            .contains(&(polled.partition, polled.offset))
        {
            self.status.counters.injected_corruptions += 1;
        }
        Ok(Some(self.faults.apply(EncodedRecord::encode(&polled))))
    }

    /// Collects one batch: stops at the batch size, at the payload cap, or when the batching window
    /// (started by the first record) ends.
    async fn gather(&mut self) -> Result<Gathered, EngineError> {
        let mut window_ends: Option<Instant> = None;
        loop {
            if self.assembler.is_full() {
                return Ok(Gathered::Batch(self.assembler.take()));
            }
            // Once the window has ended, only records already fetched are added (zero timeout).
            let timeout = window_ends.map_or(IDLE_POLL, |end| end.saturating_duration_since(Instant::now()));
            let Some(record) = self.next_encoded(timeout).await? else {
                if self.assembler.is_empty() {
                    return Ok(Gathered::Nothing);
                }
                if self.stop.is_stopped() || window_ends.is_some_and(|end| Instant::now() >= end) {
                    return Ok(Gathered::Batch(self.assembler.take()));
                }
                continue;
            };
            match self.assembler.offer(record) {
                Offer::Added => {
                    window_ends.get_or_insert_with(|| Instant::now() + self.config.batching_window);
                }
                Offer::Full(record) => {
                    self.carry = Some(record);
                    return Ok(Gathered::Batch(self.assembler.take()));
                }
                Offer::TooLarge { record, event_size } => {
                    if self.assembler.is_empty() {
                        return Ok(Gathered::TooLarge { record, event_size });
                    }
                    self.carry = Some(record);
                    return Ok(Gathered::Batch(self.assembler.take()));
                }
            }
        }
    }

    /// Returns false when a stop interrupted the batch before it was committed.
    ///
    /// The batch is resolved piece by piece: the whole batch first; with
    /// `BisectBatchOnFunctionError` a failed piece becomes its two halves; with
    /// `ReportBatchItemFailures` a partial-batch response leaves the records from each named
    /// partition's lowest failed offset on as the next piece; records older than
    /// `MaximumRecordAgeInSeconds` leave the piece for the on-failure destination before each
    /// attempt. Offsets are committed once every piece is delivered or discarded.
    async fn deliver(&mut self, batch: Batch) -> Result<bool, EngineError> {
        let spans = batch.spans();
        debug!(
            records = batch.record_count(),
            bytes = batch.payload_size(),
            "invoking"
        );
        self.set_state(MappingState::Polling);
        let mut work = VecDeque::from([Piece {
            batch: batch.clone(),
            failed_attempts: 0,
        }]);
        let mut tally = Tally::default();
        while let Some(piece) = work.pop_front() {
            if !self.resolve(piece, &mut work, &mut tally).await? {
                return Ok(false);
            }
        }
        if tally.discarded == 0 && self.faults.deliver_twice {
            self.status.counters.injected_duplicates += 1;
            let payload = batch.render(self.assembler.envelope());
            if matches!(self.invoke_with_retries(&payload).await?, Delivery::Stopped) {
                return Ok(false);
            }
        }
        if tally.discarded == 0 {
            self.delivered_here += 1;
            if self
                .faults
                .crash_after_batches
                .is_some_and(|n| self.delivered_here >= n)
            {
                warn!(topic = %self.config.topic, batches = self.delivered_here, "injected crash: the batch was delivered but is not committed");
                return Err(EngineError::InjectedCrash {
                    batches: self.delivered_here,
                });
            }
        }
        if !self.commit(&spans).await {
            return Ok(false);
        }
        self.status.counters.records_delivered += tally.delivered as u64;
        self.status.counters.records_discarded += tally.discarded as u64;
        if tally.discarded == 0 {
            self.status.counters.batches_delivered += 1;
            self.report_batch(BatchOutcome::Delivered, &batch, tally.attempts, &spans);
            self.refresh_lag(false).await?;
            self.remember_and_maybe_replay(batch).await
        } else {
            self.status.counters.batches_discarded += 1;
            self.report_batch(BatchOutcome::Discarded, &batch, tally.attempts, &spans);
            self.refresh_lag(false).await?;
            Ok(true)
        }
    }

    /// Takes one piece a step further: delivered, discarded, or queued again (retry, halves, the
    /// part a partial-batch response names). Returns false when stopped.
    async fn resolve(
        &mut self,
        piece: Piece,
        work: &mut VecDeque<Piece>,
        tally: &mut Tally,
    ) -> Result<bool, EngineError> {
        let envelope = self.assembler.envelope().clone();
        let handling = self.config.error_handling;
        let Piece {
            mut batch,
            failed_attempts,
        } = piece;
        if let Some(max_age) = handling.max_record_age {
            let oldest =
                Utc::now().timestamp_millis() - i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
            let expired = batch.subset(&envelope, |r| r.timestamp < oldest);
            if expired.record_count() > 0 {
                let expired_spans = expired.spans();
                warn!(topic = %self.config.topic, records = expired.record_count(), ?max_age, "records older than the maximum record age; sending them to the on-failure destination");
                let body = self.failure_body(
                    FailureCondition::RecordAgeExceeded,
                    failed_attempts,
                    None,
                    expired.payload_size(),
                    &expired_spans,
                );
                if !self.send_failure(body, &expired_spans).await {
                    return Ok(false);
                }
                self.status.counters.records_expired += expired.record_count() as u64;
                tally.discarded += expired.record_count();
                batch = batch.subset(&envelope, |r| r.timestamp >= oldest);
                if batch.record_count() == 0 {
                    return Ok(true);
                }
            }
        }
        let payload = batch.render(&envelope);
        let (failed, last, may_bisect) = match self.invoke_once(&payload).await? {
            Attempt::Stopped => return Ok(false),
            Attempt::Failed(last) => (batch, last, true),
            Attempt::Succeeded(_) if !handling.report_batch_item_failures => {
                tally.delivered(batch.record_count(), failed_attempts + 1);
                return Ok(true);
            }
            Attempt::Succeeded(response) => match KafkaBatchResponse::parse_resume_points(&response)
                .map_err(|e| e.to_string())
                .and_then(|points| points.map(|p| batch.resume_from(&envelope, &p)).transpose())
            {
                Ok(None) => {
                    tally.delivered(batch.record_count(), failed_attempts + 1);
                    return Ok(true);
                }
                Ok(Some(rest)) => {
                    self.status.counters.partial_batch_responses += 1;
                    tally.delivered(batch.record_count() - rest.record_count(), failed_attempts + 1);
                    let last = LastResponse {
                        status_code: 200,
                        function_error: String::new(),
                        message: format!(
                            "partial batch response: {} record(s) to deliver again",
                            rest.record_count()
                        ),
                    };
                    // Bisecting a partial answer would split at the failed record, which is
                    // what redelivering from it already does.
                    (rest, last, false)
                }
                Err(problem) => {
                    // An answer the mapping cannot read fails the whole piece.
                    let last = LastResponse {
                        status_code: 200,
                        function_error: String::new(),
                        message: format!("unreadable partial batch response: {problem}"),
                    };
                    (batch, last, true)
                }
            },
        };
        if may_bisect && handling.bisect_batch_on_function_error && failed.record_count() > 1 {
            // As for the stream sources, a split does not count as a retry.
            self.status.counters.bisections += 1;
            let (first, second) = failed.halves(&envelope);
            debug!(
                first = first.record_count(),
                second = second.record_count(),
                "bisecting the failed batch"
            );
            work.push_front(Piece {
                batch: second,
                failed_attempts,
            });
            work.push_front(Piece {
                batch: first,
                failed_attempts,
            });
            return Ok(true);
        }
        let failed_attempts = failed_attempts + 1;
        match self.config.retry.after_failure(failed_attempts) {
            RetryDecision::GiveUp => {
                let failed_spans = failed.spans();
                warn!(
                    topic = %self.config.topic, records = failed.record_count(), attempts = failed_attempts,
                    error = %last.message, "retries exhausted; sending the batch to the on-failure destination"
                );
                let body = self.failure_body(
                    FailureCondition::RetryAttemptsExhausted,
                    failed_attempts,
                    Some(last),
                    failed.payload_size(),
                    &failed_spans,
                );
                if !self.send_failure(body, &failed_spans).await {
                    return Ok(false);
                }
                tally.discarded += failed.record_count();
                tally.attempts = tally.attempts.max(failed_attempts);
            }
            RetryDecision::RetryAfter(wait) => {
                self.set_state(MappingState::Retrying);
                self.reporter.status(&self.status);
                self.sleep(wait).await;
                work.push_front(Piece {
                    batch: failed,
                    failed_attempts,
                });
            }
        }
        Ok(true)
    }

    /// Keeps the batch for later partial replays and, by the fault plan's odds, re-invokes a random
    /// part of one of the recent batches (already committed: the consumer must ignore it).
    async fn remember_and_maybe_replay(&mut self, batch: Batch) -> Result<bool, EngineError> {
        if self.faults.replay_probability <= 0.0 {
            return Ok(true);
        }
        if self.history.len() == REPLAY_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(batch);
        if !self.fault_rng.chance(self.faults.replay_probability) {
            return Ok(true);
        }
        let pick = self.fault_rng.below(0, self.history.len());
        let Some(old) = self.history.get(pick) else {
            return Ok(true);
        };
        let groups: Vec<(&str, &[EncodedRecord])> = old.groups().collect();
        let lengths: Vec<usize> = groups.iter().map(|(_, records)| records.len()).collect();
        let ranges = pick_ranges(&mut self.fault_rng, &lengths);
        let selected: Vec<(&str, &[EncodedRecord])> = groups
            .iter()
            .zip(&ranges)
            .filter(|(_, range)| !range.is_empty())
            .map(|((key, records), range)| (*key, &records[range.clone()]))
            .collect();
        let records: usize = selected.iter().map(|(_, r)| r.len()).sum();
        let payload = self.assembler.envelope().render(selected);
        info!(topic = %self.config.topic, records, "injected partial replay of an already committed batch");
        self.status.counters.injected_replays += 1;
        match self.invoke_with_retries(&payload).await? {
            Delivery::Stopped => Ok(false),
            Delivery::Delivered => Ok(true),
            Delivery::Exhausted { last, .. } => {
                // The records were committed long ago; a failed duplicate changes nothing.
                warn!(error = %last.message, "the injected replay kept failing; ignored");
                Ok(true)
            }
        }
    }

    /// Invokes until the function answers or fails; the endpoint being unavailable is retried
    /// without counting an attempt.
    async fn invoke_once(&mut self, payload: &[u8]) -> Result<Attempt, EngineError> {
        let mut unavailable_streak = 0u32;
        loop {
            if self.stop.is_stopped() {
                return Ok(Attempt::Stopped);
            }
            self.status.counters.invocations += 1;
            match self.invoker.invoke(payload.to_vec()).await {
                Ok(InvokeOutcome::Success { response }) => {
                    self.status.last_processing_result = ProcessingResult::Ok;
                    return Ok(Attempt::Succeeded(response));
                }
                Ok(InvokeOutcome::FunctionError {
                    status_code,
                    function_error,
                    message,
                }) => {
                    self.status.counters.function_errors += 1;
                    self.status.last_processing_result = ProcessingResult::FunctionCallFailed;
                    warn!(topic = %self.config.topic, status_code, %function_error, %message, "function error");
                    return Ok(Attempt::Failed(LastResponse {
                        status_code,
                        function_error,
                        message,
                    }));
                }
                Err(InvokeError::Unavailable(message)) => {
                    self.status.counters.unavailable_errors += 1;
                    unavailable_streak += 1;
                    let wait = self
                        .config
                        .retry
                        .backoff(unavailable_streak.min(16))
                        .min(UNAVAILABLE_BACKOFF_MAX);
                    warn!(topic = %self.config.topic, %message, ?wait, "invoke endpoint unavailable; retrying (not counted as an attempt)");
                    self.set_state(MappingState::Retrying);
                    self.sleep(wait).await;
                }
                Err(InvokeError::Fatal(message)) => {
                    return Err(EngineError::InvokeFatal {
                        function: self.config.function_name.clone(),
                        message,
                    })
                }
            }
        }
    }

    /// Invokes the same payload until it succeeds or the retries run out (the answer's body is
    /// not read: used for re-invocations of records already handled).
    async fn invoke_with_retries(&mut self, payload: &[u8]) -> Result<Delivery, EngineError> {
        let mut failed_attempts = 0u32;
        loop {
            match self.invoke_once(payload).await? {
                Attempt::Stopped => return Ok(Delivery::Stopped),
                Attempt::Succeeded(_) => return Ok(Delivery::Delivered),
                Attempt::Failed(last) => {
                    failed_attempts += 1;
                    match self.config.retry.after_failure(failed_attempts) {
                        RetryDecision::GiveUp => return Ok(Delivery::Exhausted { last }),
                        RetryDecision::RetryAfter(wait) => {
                            self.set_state(MappingState::Retrying);
                            self.reporter.status(&self.status);
                            self.sleep(wait).await;
                        }
                    }
                }
            }
        }
    }

    async fn discard_too_large(
        &mut self,
        record: EncodedRecord,
        event_size: usize,
    ) -> Result<bool, EngineError> {
        let span = PartitionSpan {
            topic: record.topic.clone(),
            partition: record.partition,
            first_offset: record.offset,
            last_offset: record.offset,
            first_timestamp: record.timestamp,
            last_timestamp: record.timestamp,
            count: 1,
        };
        warn!(topic = %record.topic, partition = record.partition, offset = record.offset, event_size,
              cap = self.config.max_payload_bytes, "record exceeds the invoke payload cap; sending it to the on-failure destination");
        let spans = [span];
        let body = self.failure_body(
            FailureCondition::MaximumPayloadSizeExceeded,
            0,
            None,
            event_size,
            &spans,
        );
        if !self.send_failure(body, &spans).await || !self.commit(&spans).await {
            return Ok(false);
        }
        self.status.counters.records_too_large += 1;
        let report = BatchReport {
            outcome: BatchOutcome::TooLarge,
            records: 1,
            payload_bytes: event_size,
            attempts: 0,
            partitions: spans.iter().map(SpanReport::from).collect(),
        };
        self.reporter.batch(&report);
        Ok(true)
    }

    fn failure_body(
        &self,
        condition: FailureCondition,
        invoke_count: u32,
        response: Option<LastResponse>,
        payload_size: usize,
        spans: &[PartitionSpan],
    ) -> String {
        failure_record(&FailureInput {
            request_id: uuid::Uuid::new_v4().to_string(),
            function_arn: &self.config.function_arn,
            condition,
            invoke_count,
            response,
            now: Utc::now(),
            envelope: self.assembler.envelope(),
            payload_size,
            spans,
        })
    }

    /// Sends until the destination accepts it; returns false if stopped first (nothing committed).
    async fn send_failure(&mut self, body: String, spans: &[PartitionSpan]) -> bool {
        let Some(destination) = &self.destination else {
            warn!(topic = %self.config.topic, "no on-failure destination configured: the discarded batch is only logged: {body}");
            return true;
        };
        let coordinates: Vec<String> = spans
            .iter()
            .map(|s| format!("{}-{}:{}-{}", s.topic, s.partition, s.first_offset, s.last_offset))
            .collect();
        let deduplication_id = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{}|{}", self.config.consumer_group, coordinates.join(",")).as_bytes(),
        )
        .to_string();
        let mut attempt = 0u32;
        loop {
            match destination.send(body.clone(), deduplication_id.clone()).await {
                Ok(()) => return true,
                Err(error) => {
                    attempt += 1;
                    let wait = self
                        .config
                        .retry
                        .backoff(attempt.min(16))
                        .min(UNAVAILABLE_BACKOFF_MAX);
                    warn!(%error, ?wait, "on-failure destination refused the record; retrying (offsets stay uncommitted)");
                    if self.stop.is_stopped() {
                        return false;
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Commits, retrying while the broker is unreachable. Returns false if stopped first: the
    /// batch is then delivered again after a restart (at least once), never skipped.
    async fn commit(&mut self, spans: &[PartitionSpan]) -> bool {
        let next: Vec<(String, i32, i64)> = spans
            .iter()
            .map(|s| (s.topic.clone(), s.partition, s.next_offset()))
            .collect();
        let mut attempt = 0u32;
        loop {
            match self.source.commit(&next).await {
                Ok(()) => return true,
                Err(error) => {
                    attempt += 1;
                    warn!(%error, attempt, "commit failed; retrying");
                    self.status.last_processing_result = ProcessingResult::ConnectionError(error.to_string());
                    self.reporter.status(&self.status);
                    if self.stop.is_stopped() {
                        return false;
                    }
                    self.sleep(
                        self.config
                            .retry
                            .backoff(attempt.min(16))
                            .min(UNAVAILABLE_BACKOFF_MAX),
                    )
                    .await;
                }
            }
        }
    }

    async fn refresh_lag(&mut self, force: bool) -> Result<(), EngineError> {
        if !force && self.lag_refreshed.is_some_and(|t| t.elapsed() < LAG_REFRESH) {
            return Ok(());
        }
        let partitions: Vec<PartitionLag> = match self.source.lag().await {
            Ok(partitions) => partitions,
            Err(error) => {
                // Unknown lag is not zero lag: an idle exit must not happen on stale numbers.
                warn!(%error, "cannot read partition lag; keeping the last known values");
                self.status.last_processing_result = ProcessingResult::ConnectionError(error.to_string());
                self.lag_known = false;
                self.lag_refreshed = Some(Instant::now());
                self.reporter.status(&self.status);
                return Ok(());
            }
        };
        self.lag_known = true;
        if matches!(
            self.status.last_processing_result,
            ProcessingResult::ConnectionError(_)
        ) {
            // The brokers answer again; what the mapping did last is what it reports again.
            self.status.last_processing_result = if self.status.counters.invocations > 0 {
                ProcessingResult::Ok
            } else {
                ProcessingResult::NoRecordsProcessed
            };
        }
        self.status.total_lag = partitions.iter().map(|p| p.lag.max(0)).sum();
        self.status.partitions = partitions;
        self.status.updated_at = now_iso();
        self.lag_refreshed = Some(Instant::now());
        self.reporter.status(&self.status);
        Ok(())
    }

    fn set_state(&mut self, state: MappingState) {
        self.status.state = state;
    }

    fn report_batch(&mut self, outcome: BatchOutcome, batch: &Batch, attempts: u32, spans: &[PartitionSpan]) {
        let report = BatchReport {
            outcome,
            records: batch.record_count(),
            payload_bytes: batch.payload_size(),
            attempts,
            partitions: spans.iter().map(SpanReport::from).collect(),
        };
        self.reporter.batch(&report);
    }

    /// Sleeps in short steps so a stop request is noticed during long backoffs.
    async fn sleep(&self, total: Duration) {
        let end = Instant::now() + total;
        while !self.stop.is_stopped() {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            tokio::time::sleep(left.min(IDLE_POLL)).await;
        }
    }
}

fn now_iso() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MappingSettings;
    use crate::event::{PolledRecord, TimestampType};
    use crate::ports::DestinationError;
    use crate::status::MemoryReporter;
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::Mutex;

    /// One partition's log plus the group's committed offset, shared so tests can inspect it.
    #[derive(Clone, Default)]
    struct FakeLog {
        inner: Arc<Mutex<FakeLogState>>,
    }

    #[derive(Default)]
    struct FakeLogState {
        records: VecDeque<PolledRecord>,
        end: i64,
        committed: BTreeMap<i32, i64>,
        commit_calls: usize,
        /// The next this many commits and lag reads fail, as while the broker restarts.
        broker_down_for: u32,
    }

    impl FakeLog {
        fn with_records(n: i64, value_len: usize) -> Self {
            let log = FakeLog::default();
            {
                let mut state = log.inner.lock().unwrap();
                for offset in 0..n {
                    state.records.push_back(PolledRecord {
                        topic: "t".into(),
                        partition: 0,
                        offset,
                        timestamp: offset,
                        timestamp_type: TimestampType::CreateTime,
                        key: None,
                        value: Some(vec![b'v'; value_len]),
                        headers: vec![],
                    });
                }
                state.end = n;
            }
            log
        }
        fn committed(&self) -> Option<i64> {
            self.inner.lock().unwrap().committed.get(&0).copied()
        }
    }

    impl RecordSource for FakeLog {
        async fn next_record(&mut self, timeout: Duration) -> Result<Option<PolledRecord>, SourceError> {
            let next = self.inner.lock().unwrap().records.pop_front();
            if next.is_none() {
                // As a real poll does: an empty log answers after the timeout, not at once (the
                // engine would otherwise spin through its batching window).
                tokio::time::sleep(timeout).await;
            }
            Ok(next)
        }
        async fn commit(&mut self, next: &[(String, i32, i64)]) -> Result<(), SourceError> {
            let mut state = self.inner.lock().unwrap();
            state.commit_calls += 1;
            if state.broker_down_for > 0 {
                state.broker_down_for -= 1;
                return Err(SourceError::Kafka("AllBrokersDown".into()));
            }
            for (_, partition, offset) in next {
                state.committed.insert(*partition, *offset);
            }
            Ok(())
        }
        async fn lag(&mut self) -> Result<Vec<PartitionLag>, SourceError> {
            let state = self.inner.lock().unwrap();
            if state.broker_down_for > 0 {
                return Err(SourceError::Kafka("AllBrokersDown".into()));
            }
            let committed = state.committed.get(&0).copied();
            Ok(vec![PartitionLag {
                partition: 0,
                committed,
                high_watermark: state.end,
                lag: state.end - committed.unwrap_or(0),
            }])
        }
    }

    /// (payload size, committed offset when invoked)
    type SeenCall = (usize, Option<i64>);

    /// Fails the first `failures` invocations; records the committed offset seen at each call.
    #[derive(Clone)]
    struct FakeFunction {
        failures: Arc<Mutex<u32>>,
        log: FakeLog,
        calls: Arc<Mutex<Vec<SeenCall>>>,
        payloads: Arc<Mutex<Vec<serde_json::Value>>>,
    }

    impl FakeFunction {
        /// (partition key, offsets) of every invocation, in order.
        fn offsets_per_call(&self) -> Vec<Vec<i64>> {
            self.payloads
                .lock()
                .unwrap()
                .iter()
                .map(|event| {
                    event["records"]
                        .as_object()
                        .unwrap()
                        .values()
                        .flat_map(|records| records.as_array().unwrap().iter())
                        .map(|r| r["offset"].as_i64().unwrap())
                        .collect()
                })
                .collect()
        }
    }

    impl Invoker for FakeFunction {
        async fn invoke(&self, payload: Vec<u8>) -> Result<InvokeOutcome, InvokeError> {
            self.calls
                .lock()
                .unwrap()
                .push((payload.len(), self.log.committed()));
            self.payloads
                .lock()
                .unwrap()
                .push(serde_json::from_slice(&payload).unwrap());
            let mut failures = self.failures.lock().unwrap();
            if *failures > 0 {
                *failures -= 1;
                return Ok(InvokeOutcome::FunctionError {
                    status_code: 200,
                    function_error: "Unhandled".into(),
                    message: "sink down".into(),
                });
            }
            Ok(InvokeOutcome::Success { response: Vec::new() })
        }
    }

    #[derive(Clone, Default)]
    struct FakeQueue(Arc<Mutex<Vec<(String, String)>>>);

    impl FailureDestination for FakeQueue {
        async fn send(&self, body: String, id: String) -> Result<(), DestinationError> {
            self.0.lock().unwrap().push((body, id));
            Ok(())
        }
    }

    fn config(batch_size: usize, retries: i64, cap: usize) -> MappingConfig {
        settings_for(batch_size, retries, cap).validate().unwrap()
    }

    fn settings_for(batch_size: usize, retries: i64, cap: usize) -> MappingSettings {
        MappingSettings {
            topic: "t".into(),
            consumer_group: "g".into(),
            bootstrap_servers: "b:9092".into(),
            starting_position: "TRIM_HORIZON".into(),
            batch_size,
            batching_window: Duration::ZERO,
            max_payload_bytes: cap,
            max_retry_attempts: retries,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            msk_cluster_arn: None,
            function_name: "f".into(),
            region: "us-east-1".into(),
            on_failure_queue_url: Some("q".into()),
            exit_when_idle: Some(Duration::ZERO),
            error_handling: crate::config::ErrorHandlingSettings::on_demand(),
        }
    }

    fn function(failures: u32, log: &FakeLog) -> FakeFunction {
        FakeFunction {
            failures: Arc::new(Mutex::new(failures)),
            log: log.clone(),
            calls: Arc::default(),
            payloads: Arc::default(),
        }
    }

    fn mapping_with(
        log: &FakeLog,
        f: &FakeFunction,
        batch_size: usize,
        faults: FaultPlan,
    ) -> Mapping<FakeLog, FakeFunction, FakeQueue, MemoryReporter> {
        Mapping::new(
            config(batch_size, -1, 1 << 20),
            log.clone(),
            f.clone(),
            Some(FakeQueue::default()),
            MemoryReporter::default(),
            StopFlag::default(),
        )
        .with_faults(faults)
    }

    #[tokio::test]
    async fn deliver_twice_invokes_each_batch_twice_before_its_commit() {
        let log = FakeLog::with_records(6, 10);
        let f = function(0, &log);
        let faults = FaultPlan {
            deliver_twice: true,
            ..FaultPlan::default()
        };
        let status = mapping_with(&log, &f, 4, faults).run().await.unwrap();
        assert_eq!(
            f.offsets_per_call(),
            vec![vec![0, 1, 2, 3], vec![0, 1, 2, 3], vec![4, 5], vec![4, 5]]
        );
        let committed: Vec<_> = f.calls.lock().unwrap().iter().map(|c| c.1).collect();
        assert_eq!(committed, vec![None, None, Some(4), Some(4)]);
        assert_eq!(log.committed(), Some(6));
        assert_eq!(status.counters.injected_duplicates, 2);
    }

    #[tokio::test]
    async fn an_injected_crash_leaves_the_delivered_batch_uncommitted() {
        let log = FakeLog::with_records(9, 10);
        let f = function(0, &log);
        let faults = FaultPlan {
            crash_after_batches: Some(2),
            ..FaultPlan::default()
        };
        let error = mapping_with(&log, &f, 3, faults).run().await.unwrap_err();
        assert!(matches!(error, EngineError::InjectedCrash { batches: 2 }));
        assert_eq!(f.offsets_per_call(), vec![vec![0, 1, 2], vec![3, 4, 5]]);
        // The first batch was committed, the second one was delivered but not committed.
        assert_eq!(log.committed(), Some(3));
    }

    #[tokio::test]
    async fn partial_replays_resend_parts_of_committed_batches_only() {
        let log = FakeLog::with_records(40, 10);
        let f = function(0, &log);
        let faults = FaultPlan {
            replay_probability: 1.0,
            seed: 7,
            ..FaultPlan::default()
        };
        let status = mapping_with(&log, &f, 5, faults).run().await.unwrap();
        let calls = f.offsets_per_call();
        let committed: Vec<_> = f.calls.lock().unwrap().iter().map(|c| c.1).collect();
        // Every batch is followed by one replay.
        assert_eq!(calls.len(), 16);
        assert_eq!(status.counters.injected_replays, 8);
        for (index, (offsets, committed)) in calls.iter().zip(&committed).enumerate().skip(1).step_by(2) {
            let committed = committed.expect("a replay comes after a commit");
            assert!(!offsets.is_empty(), "replay {index} is empty");
            assert!(
                offsets.windows(2).all(|w| w[1] == w[0] + 1),
                "not contiguous: {offsets:?}"
            );
            assert!(
                offsets.iter().all(|o| *o < committed),
                "replayed uncommitted offsets: {offsets:?}"
            );
        }
        let replayed_whole = calls
            .iter()
            .skip(1)
            .step_by(2)
            .filter(|offsets| offsets.len() == 5)
            .count();
        assert!(replayed_whole < 8, "replays should usually be partial");
        assert_eq!(log.committed(), Some(40));
        assert_eq!(status.counters.records_delivered, 40);
    }

    #[tokio::test]
    async fn corrupted_values_are_delivered_as_invalid_base64_and_counted() {
        let log = FakeLog::with_records(3, 10);
        let f = function(0, &log);
        let faults = FaultPlan {
            corrupt_values: [(0, 1)].into_iter().collect(),
            ..FaultPlan::default()
        };
        let status = mapping_with(&log, &f, 10, faults).run().await.unwrap();
        let event = f.payloads.lock().unwrap()[0].clone();
        let records = event["records"]["t-0"].as_array().unwrap();
        assert_eq!(records[0]["value"], "dnZ2dnZ2dnZ2dg==");
        assert_eq!(records[1]["value"], crate::faults::CORRUPT_VALUE);
        assert_eq!(status.counters.injected_corruptions, 1);
        assert_eq!(log.committed(), Some(3));
    }

    #[tokio::test]
    async fn commits_only_after_success_and_retries_the_same_batch() {
        let log = FakeLog::with_records(5, 10);
        let f = function(3, &log);
        let queue = FakeQueue::default();
        let status = Mapping::new(
            config(10, -1, 1 << 20),
            log.clone(),
            f.clone(),
            Some(queue.clone()),
            MemoryReporter::default(),
            StopFlag::default(),
        )
        .run()
        .await
        .unwrap();
        let calls = f.calls.lock().unwrap().clone();
        assert_eq!(calls.len(), 4);
        assert!(
            calls.iter().all(|(_, committed)| committed.is_none()),
            "committed before success: {calls:?}"
        );
        assert!(
            calls.windows(2).all(|w| w[0].0 == w[1].0),
            "the retried payload changed"
        );
        assert_eq!(log.committed(), Some(5));
        assert_eq!(status.counters.function_errors, 3);
        assert_eq!(status.counters.records_delivered, 5);
        assert!(queue.0.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn exhausted_retries_dead_letter_the_batch_then_commit_and_move_on() {
        let log = FakeLog::with_records(6, 10);
        let f = function(3, &log);
        let queue = FakeQueue::default();
        let status = Mapping::new(
            config(4, 2, 1 << 20),
            log.clone(),
            f.clone(),
            Some(queue.clone()),
            MemoryReporter::default(),
            StopFlag::default(),
        )
        .run()
        .await
        .unwrap();
        let sent = queue.0.lock().unwrap().clone();
        assert_eq!(sent.len(), 1);
        let record: serde_json::Value = serde_json::from_str(&sent[0].0).unwrap();
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
        assert_eq!(
            record["KafkaBatchInfo"]["recordsInfo"]["t-0"]["firstRecordOffset"],
            "0"
        );
        assert_eq!(
            record["KafkaBatchInfo"]["recordsInfo"]["t-0"]["lastRecordOffset"],
            "3"
        );
        assert_eq!(record["KafkaBatchInfo"]["batchSize"], 4);
        // The second batch (offsets 4..5) succeeds after the dead-lettered one is committed.
        assert_eq!(log.committed(), Some(6));
        assert_eq!(status.counters.records_discarded, 4);
        assert_eq!(status.counters.records_delivered, 2);
        let calls = f.calls.lock().unwrap().clone();
        assert_eq!(calls.iter().filter(|(_, c)| c.is_none()).count(), 3);
    }

    #[tokio::test]
    async fn unlimited_retries_with_a_destination_give_up_after_ten_and_move_on() {
        // A sink outage longer than ten retries: AWS sends the batch's metadata to the
        // destination after the tenth retry and the mapping moves on.
        let log = FakeLog::with_records(3, 10);
        let f = function(11, &log);
        let queue = FakeQueue::default();
        let status = Mapping::new(
            config(2, -1, 1 << 20),
            log.clone(),
            f.clone(),
            Some(queue.clone()),
            MemoryReporter::default(),
            StopFlag::default(),
        )
        .run()
        .await
        .unwrap();
        let sent = queue.0.lock().unwrap().clone();
        assert_eq!(sent.len(), 1, "one skipped batch");
        let record: serde_json::Value = serde_json::from_str(&sent[0].0).unwrap();
        assert_eq!(record["requestContext"]["condition"], "RetryAttemptsExhausted");
        assert_eq!(record["requestContext"]["approximateInvokeCount"], 11);
        assert_eq!(record["responseContext"]["functionError"], "Unhandled");
        let info = &record["KafkaBatchInfo"]["recordsInfo"]["t-0"];
        assert_eq!(
            (
                info["firstRecordOffset"].as_str(),
                info["lastRecordOffset"].as_str()
            ),
            (Some("0"), Some("1"))
        );
        // The metadata only: no record content travels to the destination.
        assert!(!sent[0].0.contains("\"value\""), "{}", sent[0].0);
        // The failing function recovered on the 12th call: offset 2 is delivered, all committed.
        assert_eq!(status.counters.records_discarded, 2);
        assert_eq!(status.counters.records_delivered, 1);
        assert_eq!(log.committed(), Some(3));
    }

    #[tokio::test]
    async fn payload_cap_splits_and_oversized_records_are_dead_lettered() {
        let log = FakeLog::with_records(10, 3_000);
        {
            // offset 10: a record alone over the cap
            let mut state = log.inner.lock().unwrap();
            let mut big = state.records[0].clone();
            big.offset = 10;
            big.value = Some(vec![b'x'; 20_000]);
            state.records.push_back(big);
            state.end = 11;
        }
        let f = function(0, &log);
        let queue = FakeQueue::default();
        let cap = 10_000;
        let mut reporter = MemoryReporter::default();
        let status = Mapping::new(
            config(10_000, 0, cap),
            log.clone(),
            f.clone(),
            Some(queue.clone()),
            &mut reporter,
            StopFlag::default(),
        )
        .run()
        .await
        .unwrap();
        let calls = f.calls.lock().unwrap().clone();
        assert!(
            calls.len() >= 4,
            "10 x 4 KB records need several 10 KB events: {calls:?}"
        );
        assert!(calls.iter().all(|(size, _)| *size <= cap));
        assert_eq!(status.counters.records_delivered, 10);
        assert_eq!(status.counters.records_too_large, 1);
        let sent = queue.0.lock().unwrap().clone();
        let record: serde_json::Value = serde_json::from_str(&sent[0].0).unwrap();
        assert_eq!(
            record["requestContext"]["condition"],
            "MaximumPayloadSizeExceeded"
        );
        assert_eq!(log.committed(), Some(11));
        assert!(reporter
            .batches
            .iter()
            .any(|b| b.outcome == BatchOutcome::TooLarge));
    }

    #[tokio::test]
    async fn stop_during_retries_leaves_the_batch_uncommitted() {
        let log = FakeLog::with_records(3, 10);
        let f = function(u32::MAX, &log);
        let stop = StopFlag::default();
        let stopper = stop.clone();
        // No on-failure destination: retries are then unlimited (with one, AWS skips the batch
        // after ten and commits past it, which another test covers).
        let mut settings = settings_for(10, -1, 1 << 20);
        settings.on_failure_queue_url = None;
        let mut cfg = settings.validate().unwrap();
        cfg.exit_when_idle = None;
        let task = tokio::spawn(
            Mapping::new(
                cfg,
                log.clone(),
                f.clone(),
                None::<FakeQueue>,
                MemoryReporter::default(),
                stop,
            )
            .run(),
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        stopper.stop();
        task.await.unwrap().unwrap();
        assert!(f.calls.lock().unwrap().len() > 1);
        assert_eq!(log.committed(), None);
    }

    #[tokio::test]
    async fn last_processing_result_follows_function_errors_outages_and_successes() {
        let log = FakeLog::with_records(4, 10);
        // Two failed attempts, then success: every status written while retrying says so.
        let f = function(2, &log);
        let mut reporter = MemoryReporter::default();
        let status = Mapping::new(
            config(10, -1, 1 << 20),
            log.clone(),
            f.clone(),
            Some(FakeQueue::default()),
            &mut reporter,
            StopFlag::default(),
        )
        .run()
        .await
        .unwrap();
        let results: Vec<String> = reporter
            .statuses
            .iter()
            .map(|s| s.last_processing_result.aws_text())
            .collect();
        assert_eq!(results.first().map(String::as_str), Some("No records processed"));
        assert!(
            results.contains(&"PROBLEM: Function call failed".to_string()),
            "{results:?}"
        );
        assert_eq!(status.last_processing_result.aws_text(), "OK");
        assert_eq!(status.state.aws_state(), "Disabled");
        assert!(
            reporter
                .statuses
                .iter()
                .all(|s| s.state.aws_state() != "Creating"),
            "a connected mapping is Enabled from its first status on"
        );

        // A broker outage while committing is a connection error until the brokers answer again.
        let log = FakeLog::with_records(2, 10);
        log.inner.lock().unwrap().broker_down_for = 2;
        let f = function(0, &log);
        let mut reporter = MemoryReporter::default();
        let status = Mapping::new(
            config(10, -1, 1 << 20),
            log.clone(),
            f.clone(),
            Some(FakeQueue::default()),
            &mut reporter,
            StopFlag::default(),
        )
        .run()
        .await
        .unwrap();
        assert!(reporter.statuses.iter().any(|s| s
            .last_processing_result
            .aws_text()
            .starts_with("PROBLEM: Connection error.")));
        assert_eq!(status.last_processing_result, ProcessingResult::Ok);
    }

    #[tokio::test]
    async fn a_broker_outage_during_commit_delays_the_commit_but_loses_nothing() {
        let log = FakeLog::with_records(4, 10);
        log.inner.lock().unwrap().broker_down_for = 3;
        let f = function(0, &log);
        let status = Mapping::new(
            config(10, -1, 1 << 20),
            log.clone(),
            f.clone(),
            Some(FakeQueue::default()),
            MemoryReporter::default(),
            StopFlag::default(),
        )
        .run()
        .await
        .unwrap();
        assert_eq!(log.committed(), Some(4));
        assert_eq!(
            log.inner.lock().unwrap().commit_calls,
            4,
            "three failed commits, then one that held"
        );
        assert_eq!(
            f.calls.lock().unwrap().len(),
            1,
            "the batch is not invoked again for a commit failure"
        );
        assert_eq!(status.counters.records_delivered, 4);
    }

    /// How a scripted function answers the offsets of one invocation.
    type Answer = dyn Fn(&[i64]) -> InvokeOutcome + Send + Sync;

    /// Answers each invocation from the offsets it carries.
    #[derive(Clone)]
    struct ScriptedFunction {
        answer: Arc<Answer>,
        calls: Arc<Mutex<Vec<Vec<i64>>>>,
    }

    impl ScriptedFunction {
        fn new(answer: impl Fn(&[i64]) -> InvokeOutcome + Send + Sync + 'static) -> Self {
            Self {
                answer: Arc::new(answer),
                calls: Arc::default(),
            }
        }
        fn calls(&self) -> Vec<Vec<i64>> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl Invoker for ScriptedFunction {
        async fn invoke(&self, payload: Vec<u8>) -> Result<InvokeOutcome, InvokeError> {
            let event: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            let offsets: Vec<i64> = event["records"]
                .as_object()
                .unwrap()
                .values()
                .flat_map(|records| records.as_array().unwrap().iter())
                .map(|r| r["offset"].as_i64().unwrap())
                .collect();
            self.calls.lock().unwrap().push(offsets.clone());
            Ok((self.answer)(&offsets))
        }
    }

    fn provisioned(
        batch_size: usize,
        retries: i64,
        handling: crate::config::ErrorHandlingSettings,
    ) -> MappingConfig {
        MappingSettings {
            error_handling: crate::config::ErrorHandlingSettings {
                provisioned: true,
                ..handling
            },
            ..settings_for(batch_size, retries, 1 << 20)
        }
        .validate()
        .unwrap()
    }

    fn partial(partition: &str, offset: i64) -> InvokeOutcome {
        InvokeOutcome::Success {
            response: serde_json::to_vec(&serde_json::json!({
                "batchItemFailures": [{ "itemIdentifier": { "partition": partition, "offset": offset } }]
            }))
            .unwrap(),
        }
    }

    fn unhandled() -> InvokeOutcome {
        InvokeOutcome::FunctionError {
            status_code: 200,
            function_error: "Unhandled".into(),
            message: "sink down".into(),
        }
    }

    async fn run_with(
        config: MappingConfig,
        log: &FakeLog,
        f: &ScriptedFunction,
        queue: &FakeQueue,
    ) -> MappingStatus {
        Mapping::new(
            config,
            log.clone(),
            f.clone(),
            Some(queue.clone()),
            MemoryReporter::default(),
            StopFlag::default(),
        )
        .run()
        .await
        .unwrap()
    }

    fn sent_conditions(queue: &FakeQueue) -> Vec<(String, String, String)> {
        queue
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(body, _)| {
                let record: serde_json::Value = serde_json::from_str(body).unwrap();
                let info = &record["KafkaBatchInfo"]["recordsInfo"]["t-0"];
                (
                    record["requestContext"]["condition"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    info["firstRecordOffset"].as_str().unwrap_or_default().to_string(),
                    info["lastRecordOffset"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn a_partial_batch_response_redelivers_from_the_lowest_failed_offset_and_commits_the_rest() {
        let on = crate::config::ErrorHandlingSettings {
            report_batch_item_failures: true,
            ..crate::config::ErrorHandlingSettings::on_demand()
        };
        // The first answer names offsets 5 and 3: offsets 0..=2 are done, 3.. come again.
        let answered = Arc::new(Mutex::new(false));
        let once = answered.clone();
        let f = ScriptedFunction::new(move |_| {
            let mut answered = once.lock().unwrap();
            if *answered {
                InvokeOutcome::Success {
                    response: b"{\"records\":3}".to_vec(),
                }
            } else {
                *answered = true;
                InvokeOutcome::Success {
                    response: serde_json::to_vec(&serde_json::json!({ "batchItemFailures": [
                        { "itemIdentifier": { "partition": "t-0", "offset": 5 } },
                        { "itemIdentifier": { "partition": "t-0", "offset": 3 } },
                    ] }))
                    .unwrap(),
                }
            }
        });
        let log = FakeLog::with_records(6, 10);
        let queue = FakeQueue::default();
        let status = run_with(provisioned(10, 2, on), &log, &f, &queue).await;
        assert_eq!(f.calls(), vec![vec![0, 1, 2, 3, 4, 5], vec![3, 4, 5]]);
        assert_eq!(log.committed(), Some(6));
        assert_eq!(status.counters.partial_batch_responses, 1);
        assert_eq!(status.counters.records_delivered, 6);
        assert!(queue.0.lock().unwrap().is_empty());

        // Without ReportBatchItemFailures the same answer is a success: nothing comes again.
        let f = ScriptedFunction::new(|_| partial("t-0", 3));
        let log = FakeLog::with_records(6, 10);
        run_with(config(10, 2, 1 << 20), &log, &f, &FakeQueue::default()).await;
        assert_eq!(f.calls(), vec![vec![0, 1, 2, 3, 4, 5]]);
        assert_eq!(log.committed(), Some(6));
    }

    #[tokio::test]
    async fn a_partial_answer_that_keeps_failing_sends_only_the_unstored_records_to_the_destination() {
        let on = crate::config::ErrorHandlingSettings {
            report_batch_item_failures: true,
            ..crate::config::ErrorHandlingSettings::on_demand()
        };
        let f = ScriptedFunction::new(|_| partial("t-0", 4));
        let log = FakeLog::with_records(6, 10);
        let queue = FakeQueue::default();
        let status = run_with(provisioned(10, 1, on), &log, &f, &queue).await;
        assert_eq!(f.calls(), vec![vec![0, 1, 2, 3, 4, 5], vec![4, 5]]);
        assert_eq!(
            sent_conditions(&queue),
            vec![("RetryAttemptsExhausted".into(), "4".into(), "5".into())]
        );
        let body: serde_json::Value = serde_json::from_str(&queue.0.lock().unwrap()[0].0).unwrap();
        // The function returned normally: no functionError in the response context.
        assert_eq!(body["responseContext"]["statusCode"], 200);
        assert!(body["responseContext"].get("functionError").is_none());
        assert_eq!(
            (
                status.counters.records_delivered,
                status.counters.records_discarded
            ),
            (4, 2)
        );
        assert_eq!(log.committed(), Some(6));

        // An identifier outside the batch fails the whole batch, as an unreadable answer does.
        let f = ScriptedFunction::new(|_| partial("t-7", 1));
        let log = FakeLog::with_records(3, 10);
        let queue = FakeQueue::default();
        run_with(provisioned(10, 0, on), &log, &f, &queue).await;
        assert_eq!(
            sent_conditions(&queue),
            vec![("RetryAttemptsExhausted".into(), "0".into(), "2".into())]
        );
    }

    #[tokio::test]
    async fn bisect_isolates_the_failing_record_and_delivers_the_others() {
        let on = crate::config::ErrorHandlingSettings {
            bisect_batch_on_function_error: true,
            ..crate::config::ErrorHandlingSettings::on_demand()
        };
        // Offset 2 fails every time it is in a batch.
        let f = ScriptedFunction::new(|offsets| {
            if offsets.contains(&2) {
                unhandled()
            } else {
                InvokeOutcome::Success { response: Vec::new() }
            }
        });
        let log = FakeLog::with_records(4, 10);
        let queue = FakeQueue::default();
        let status = run_with(provisioned(10, 1, on), &log, &f, &queue).await;
        assert_eq!(
            f.calls(),
            vec![
                vec![0, 1, 2, 3],
                vec![0, 1],
                vec![2, 3],
                vec![2],
                vec![2],
                vec![3]
            ]
        );
        assert_eq!(
            sent_conditions(&queue),
            vec![("RetryAttemptsExhausted".into(), "2".into(), "2".into())]
        );
        assert_eq!(status.counters.bisections, 2);
        assert_eq!(
            (
                status.counters.records_delivered,
                status.counters.records_discarded
            ),
            (3, 1)
        );
        assert_eq!(log.committed(), Some(4));

        // Without bisect the whole batch is retried and then sent.
        let log = FakeLog::with_records(4, 10);
        let queue = FakeQueue::default();
        let f2 = ScriptedFunction::new(|offsets| {
            if offsets.contains(&2) {
                unhandled()
            } else {
                InvokeOutcome::Success { response: Vec::new() }
            }
        });
        run_with(config(10, 1, 1 << 20), &log, &f2, &queue).await;
        assert_eq!(f2.calls(), vec![vec![0, 1, 2, 3], vec![0, 1, 2, 3]]);
        assert_eq!(
            sent_conditions(&queue),
            vec![("RetryAttemptsExhausted".into(), "0".into(), "3".into())]
        );
    }

    #[tokio::test]
    async fn records_older_than_the_maximum_age_go_to_the_destination_uninvoked() {
        let on = crate::config::ErrorHandlingSettings {
            max_record_age_secs: 3_600,
            ..crate::config::ErrorHandlingSettings::on_demand()
        };
        let log = FakeLog::with_records(4, 10);
        let now = Utc::now().timestamp_millis();
        for record in log.inner.lock().unwrap().records.iter_mut() {
            // Offsets 0 and 1 are two hours old, 2 and 3 one minute.
            record.timestamp = if record.offset < 2 {
                now - 7_200_000
            } else {
                now - 60_000
            };
        }
        let f = ScriptedFunction::new(|_| InvokeOutcome::Success { response: Vec::new() });
        let queue = FakeQueue::default();
        let status = run_with(provisioned(10, 1, on), &log, &f, &queue).await;
        assert_eq!(f.calls(), vec![vec![2, 3]]);
        assert_eq!(
            sent_conditions(&queue),
            vec![("RecordAgeExceeded".into(), "0".into(), "1".into())]
        );
        assert_eq!(status.counters.records_expired, 2);
        assert_eq!(log.committed(), Some(4));
    }
}
