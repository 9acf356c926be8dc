//! A property test over the whole consumer on the in-memory fakes (issue 12): random batches
//! mixing valid records of every topic and wire form with bad ones of many kinds, delivered in a
//! random order with random partial and reordered replays, while sinks and the registry go down
//! for random stretches.
//!
//! Invariants, checked on every seed:
//! 1. an invocation fails only while a sink or the registry is unavailable;
//! 2. every record ends stored exactly once or in poison exactly once, never both, never neither;
//! 3. no replay changes any sink, and the end state is byte-identical to a clean in-order run.
//!
//! The generator is seeded (rand_chacha), so a failing seed reproduces exactly.

use std::sync::atomic::AtomicBool;

use rand::seq::SliceRandom;
use rand::{Rng as _, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::ports::{PortError, SchemaVersion};

/// The contract registry, which can be switched off.
#[derive(Default)]
struct SwitchableRegistry {
    inner: InMemorySchemaSource,
    down: AtomicBool,
}

impl SchemaSource for SwitchableRegistry {
    async fn schema_version(&self, version_id: Uuid) -> Result<SchemaVersion, PortError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(PortError::Transient {
                component: "schema registry",
                message: "unavailable (injected)".into(),
            });
        }
        self.inner.schema_version(version_id).await
    }
}

type Subject = ConsumerService<
    SwitchableRegistry,
    InMemoryWindowStore,
    InMemoryObjectStore,
    InMemoryStoreEventTable,
    InMemoryExplicitEventStore,
    InMemoryPoisonSink,
>;

fn subject() -> Subject {
    let mut settings = contract_settings();
    settings.retry = fast_retry();
    ConsumerService::new(
        SwitchableRegistry {
            inner: property_registry(),
            down: AtomicBool::new(false),
        },
        Sinks {
            windows: InMemoryWindowStore::default(),
            archive: InMemoryObjectStore::default(),
            table: InMemoryStoreEventTable::default(),
            explicit: InMemoryExplicitEventStore::default(),
            poison: InMemoryPoisonSink::default(),
        },
        settings,
    )
}

fn state(service: &Subject) -> Snapshot {
    let sinks = service.sinks();
    Snapshot {
        windows: sinks.windows.snapshot(),
        objects: sinks.archive.snapshot(),
        rows: sinks.table.snapshot(),
        explicit: sinks.explicit.snapshot(),
        poison: {
            let mut p = sinks.poison.snapshot();
            p.sort_by_key(|m| m.coordinates());
            p
        },
    }
}

/// A registered JSON Schema version and an Avro version being deleted.
const JSON_SCHEMA_VERSION: Uuid = Uuid::from_u128(0xbad_0101);
const DELETING_VERSION: Uuid = Uuid::from_u128(0xbad_0102);

/// The contract registry plus the versions the limits work makes poison.
fn property_registry() -> InMemorySchemaSource {
    let registry = registry();
    registry.insert_version(
        JSON_SCHEMA_VERSION,
        SchemaVersion {
            definition: r#"{"type":"object"}"#.into(),
            data_format: "JSON".into(),
            status: SchemaVersion::AVAILABLE.into(),
        },
    );
    registry.insert_version(
        DELETING_VERSION,
        SchemaVersion {
            status: "DELETING".into(),
            ..SchemaVersion::available_avro(schema_text("schemas/sensor_reading.v1.avsc").unwrap())
        },
    );
    registry
}

/// Bad values beyond those of [`stream`]: unknown and wrong-typed schema versions, a reading no
/// window can hold, a tombstone, an unknown compression byte, a non-base64 value, and the poison
/// kinds of the limits work: a body that inflates past the record bound, a JSON Schema and a
/// non-AVAILABLE version, an implausible event time, a document over DynamoDB's item limit (on
/// other topics than the explicit one these are poison for their fields).
fn corrupt(record: &mut KafkaRecord, rng: &mut ChaCha8Rng) {
    match rng.random_range(0..11) {
        6 => {
            let zeros = vec![0u8; crate::limits::MAX_DECODED_RECORD_BYTES + 1];
            record.value = Some(b64(&frame(SENSOR_V1, &zeros, Compression::Zlib)));
        }
        7 => record.value = Some(b64(&frame(JSON_SCHEMA_VERSION, b"{}", Compression::None))),
        8 => record.value = Some(b64(&frame(DELETING_VERSION, b"\x02", Compression::None))),
        9 => {
            let far = reading("d-2200", 7_258_118_400_000, 1.0);
            record.value = Some(b64(&serde_json::to_vec(&far).unwrap()));
        }
        10 => {
            let lists = vec![serde_json::json!([1]); 60_000];
            record.value = Some(b64(
                &serde_json::to_vec(&serde_json::json!({ "lines": lists })).unwrap()
            ));
        }
        0 => record.value = Some(b64(&frame(NOT_REGISTERED, b"\x02", Compression::None))),
        1 => {
            let schema = Schema::parse_str(WRONG_TYPES_SCHEMA).unwrap();
            let value = apache_avro::types::Value::Record(vec![
                ("device_id".into(), apache_avro::types::Value::String("d".into())),
                ("event_time".into(), apache_avro::types::Value::Long(1)),
                (
                    "temperature".into(),
                    apache_avro::types::Value::String("warm".into()),
                ),
            ]);
            let body = encode_avro(value, &schema).unwrap();
            record.value = Some(b64(&frame(WRONG_TYPES, &body, Compression::None)));
        }
        2 => {
            let unplaceable = reading("d-far", i64::MAX, 1.0);
            record.value = Some(b64(&serde_json::to_vec(&unplaceable).unwrap()));
        }
        3 => record.value = None,
        4 => {
            record.value = Some(b64(
                b"\x03\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01x",
            ))
        }
        _ => record.value = Some("not base64!".into()),
    }
}

fn records(seed: u64, rng: &mut ChaCha8Rng) -> Vec<KafkaRecord> {
    let mut records = stream(seed, rng.random_range(20..160));
    for record in records.iter_mut() {
        if rng.random_bool(0.08) {
            corrupt(record, rng);
        }
    }
    records
}

/// What may be down during one invocation.
#[derive(Debug, Default)]
struct Outages {
    /// Invocations left during which the named dependency is down.
    remaining: BTreeMap<&'static str, u32>,
}

const DEPENDENCIES: [&str; 6] = ["windows", "archive", "table", "explicit", "poison", "registry"];

impl Outages {
    /// Maybe starts an outage of random length, then applies every active one to the fakes.
    /// Returns whether anything is down for the coming invocation.
    fn before_invocation(&mut self, service: &Subject, rng: &mut ChaCha8Rng) -> bool {
        if rng.random_bool(0.15) {
            let which = DEPENDENCIES[rng.random_range(0..DEPENDENCIES.len())];
            self.remaining.insert(which, rng.random_range(1..8));
        }
        // Short hiccups that the consumer's own retries absorb (fewer than its 3 attempts).
        if rng.random_bool(0.2) {
            let sinks = service.sinks();
            match rng.random_range(0..5) {
                0 => sinks.windows.faults.fail_next(2),
                1 => sinks.archive.faults.fail_next(2),
                2 => sinks.table.faults.fail_next(2),
                3 => sinks.explicit.faults.fail_next(2),
                _ => sinks.poison.faults.fail_next(2),
            }
        }
        let sinks = service.sinks();
        let down = |name| self.remaining.get(name).is_some_and(|n| *n > 0);
        for (name, faults) in [
            ("windows", &sinks.windows.faults),
            ("archive", &sinks.archive.faults),
            ("table", &sinks.table.faults),
            ("explicit", &sinks.explicit.faults),
            ("poison", &sinks.poison.faults),
        ] {
            if down(name) {
                faults.fail_always();
            }
        }
        service
            .schema_cache()
            .source()
            .down
            .store(down("registry"), Ordering::SeqCst);
        self.remaining.values().any(|n| *n > 0)
    }

    fn after_invocation(&mut self, service: &Subject) {
        for n in self.remaining.values_mut() {
            *n = n.saturating_sub(1);
        }
        let sinks = service.sinks();
        sinks.windows.faults.clear();
        sinks.archive.faults.clear();
        sinks.table.faults.clear();
        sinks.explicit.faults.clear();
        sinks.poison.faults.clear();
        service
            .schema_cache()
            .source()
            .down
            .store(false, Ordering::SeqCst);
    }
}

/// How much of the space the seeds covered, so the test cannot pass by exercising nothing.
#[derive(Debug, Default)]
struct Coverage {
    failed_invocations: usize,
    replays: usize,
    poison: usize,
}

/// Invokes until the batch succeeds, as the ESM does; checks invariant 1 on every failure.
async fn deliver_through_outages(
    service: &Subject,
    batch: &[KafkaRecord],
    outages: &mut Outages,
    rng: &mut ChaCha8Rng,
    seed: u64,
    coverage: &mut Coverage,
) {
    let event = event_of(batch.to_vec());
    for _ in 0..200 {
        let something_down = outages.before_invocation(service, rng);
        let result = service.process(&event).await;
        outages.after_invocation(service);
        match result {
            Ok(_) => return,
            Err(error) => {
                coverage.failed_invocations += 1;
                assert!(
                    something_down,
                    "seed {seed}: the invocation failed with every dependency up: {error}"
                );
                let transient = match &error {
                    BatchError::SchemaRegistry(e) => e.is_transient(),
                    BatchError::Sinks(failures) => failures.iter().all(|f| f.error.is_transient()),
                };
                assert!(transient, "seed {seed}: a failure that is not an outage: {error}");
            }
        }
    }
    panic!("seed {seed}: a batch never succeeded");
}

/// Invariant 2 over a final state: each record's coordinates are in exactly one place.
fn assert_each_record_once(records: &[KafkaRecord], end: &Snapshot, seed: u64) {
    let poisoned: BTreeMap<RecordCoordinates, usize> = end.poison.iter().fold(BTreeMap::new(), |mut m, p| {
        *m.entry(p.coordinates()).or_default() += 1;
        m
    });
    let archived: BTreeMap<RecordCoordinates, usize> = end
        .objects
        .iter()
        .filter(|(key, _)| key.starts_with(&contracts().bucket.store_events_prefix))
        .flat_map(|(_, bytes)| archive::decode_block(bytes).unwrap())
        .fold(BTreeMap::new(), |mut m, line| {
            *m.entry(RecordCoordinates {
                topic: line.topic,
                partition: line.partition,
                offset: line.offset,
            })
            .or_default() += 1;
            m
        });
    for record in records {
        let c = RecordCoordinates {
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
        };
        let in_poison = poisoned.get(&c).copied().unwrap_or(0);
        let stored = if record.topic == sensor_topic() {
            end.windows
                .values()
                .filter(|a| {
                    a.applied
                        .get(&c.topic_partition())
                        .is_some_and(|offsets| offsets.contains(c.offset))
                })
                .count()
        } else if record.topic == store_topic() {
            let archived = archived.get(&c).copied().unwrap_or(0);
            let row = usize::from(end.rows.contains_key(&c));
            assert_eq!(
                archived, row,
                "seed {seed}: {c} archived {archived}×, in the table {row}×"
            );
            row
        } else {
            usize::from(end.explicit.contains_key(&c))
        };
        assert_eq!(
            stored + in_poison,
            1,
            "seed {seed}: {c} stored {stored}× and in poison {in_poison}×"
        );
    }
}

#[tokio::test]
async fn random_batches_replays_and_outages_keep_every_invariant() {
    let mut coverage = Coverage::default();
    for seed in 1..=60u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let records = records(seed, &mut rng);

        let clean = subject();
        for batch in batches(&records, &mut Rng::new(seed)) {
            let event = event_of(batch);
            clean
                .process(&event)
                .await
                .unwrap_or_else(|e| panic!("seed {seed}: clean run failed: {e}"));
        }
        let expected = state(&clean);
        assert_each_record_once(&records, &expected, seed);
        coverage.poison += expected.poison.len();

        // The subject: the same records in batches of another split, delivered in a random order,
        // with random parts of earlier batches replayed in between, through outages.
        let subject = subject();
        let mut outages = Outages::default();
        let mut split = batches(&records, &mut Rng::new(seed + 7_000));
        split.shuffle(&mut rng);
        let mut delivered: Vec<Vec<KafkaRecord>> = Vec::new();
        for batch in split {
            deliver_through_outages(&subject, &batch, &mut outages, &mut rng, seed, &mut coverage).await;
            delivered.push(batch);
            if rng.random_bool(0.5) {
                let earlier = &delivered[rng.random_range(0..delivered.len())];
                let mut part: Vec<KafkaRecord> =
                    earlier.iter().filter(|_| rng.random_bool(0.5)).cloned().collect();
                part.shuffle(&mut rng);
                if part.is_empty() {
                    continue;
                }
                let before = state(&subject);
                coverage.replays += 1;
                deliver_through_outages(&subject, &part, &mut outages, &mut rng, seed, &mut coverage).await;
                assert_eq!(state(&subject), before, "seed {seed}: a replay changed a sink");
            }
        }
        let end = state(&subject);
        assert_each_record_once(&records, &end, seed);
        assert_eq!(end, expected, "seed {seed}: differs from the clean in-order run");
    }
    assert!(
        coverage.failed_invocations > 100 && coverage.replays > 100 && coverage.poison > 100,
        "the seeds exercised too little: {coverage:?}"
    );
}
