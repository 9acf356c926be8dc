//! Property checks over untrusted input, shared by the cargo-fuzz targets (`fuzz/`) and the
//! regression tests that replay their corpora and every crash they ever found
//! (`tests/fuzz_regressions.rs`).
//!
//! Each `check_*` function takes arbitrary bytes, feeds them to one decoder the consumer runs on
//! record contents, and panics only when a guarantee is broken: a decoder panicking, a poison
//! record losing its coordinates or raw content, a decoded record that a sink could not store, or
//! an encode/decode round trip that changes a value. Rejecting the input with an error is fine.
//!
//! Test support, like [`crate::consume::fakes`]: production code never calls it.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use apache_avro::Schema;
use base64::Engine as _;
use uuid::Uuid;

use crate::consume::archive::{decode_block, encode_block, group_into_blocks};
use crate::consume::batch::{BodyFailure, ConsumerSettings};
use crate::consume::fakes::{FakeConsumer, FakeSinks};
use crate::consume::ports::{PoisonMessage, StoreEventRow, SQS_ID_MAX_LEN};
use crate::consume::{
    decode_record, glue_schema_version_id, Decoded, Poison, TopicRoutes, WriterSchema, WriterSchemas,
};
use crate::dynamodb_item::{explicit_event_item, fits_item_limit, item_size};
use crate::event::view::EventView;
use crate::event::{KafkaEvent, KafkaRecord, RawHeader, TimestampType};
use crate::payload::{
    avro_to_json, decode_avro, encode_avro, reader_schema, sensor_from_avro, sensor_from_json,
    sensor_to_avro, store_event_from_avro, store_event_from_json, store_event_to_avro, store_event_to_json,
};
use crate::ports::{InMemorySchemaSource, SchemaSource};
use crate::window::{group_readings, WindowSpec};
use crate::wire::{classify, frame, Compression, WireError, WireValue, GLUE_HEADER_LEN, MAX_INFLATED_BYTES};

/// The fuzz targets, by the name of their file under `fuzz/fuzz_targets/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    /// Glue wire framing: classification, header parsing, zlib inflation.
    WireFrame,
    /// Avro bodies decoded with each writer schema, then mapped to domain types or JSON.
    AvroPayload,
    /// JSON bodies mapped to domain types.
    JsonPayload,
    /// One ESM record through the whole per-record decoder, then into each sink's encoding.
    Record,
    /// A whole ESM event (the Lambda's input JSON), then every record in it.
    EsmEvent,
    /// An invocation body through the borrowed fast path and the owned general path: same
    /// acceptance, same records, same sink state and poison.
    FastPath,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::WireFrame,
        Target::AvroPayload,
        Target::JsonPayload,
        Target::Record,
        Target::EsmEvent,
        Target::FastPath,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::WireFrame => "wire_frame",
            Target::AvroPayload => "avro_payload",
            Target::JsonPayload => "json_payload",
            Target::Record => "record",
            Target::EsmEvent => "esm_event",
            Target::FastPath => "fast_path",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Runs the target's checks on one input.
    pub fn check(self, data: &[u8]) {
        match self {
            Target::WireFrame => check_wire_frame(data),
            Target::AvroPayload => check_avro_payload(data),
            Target::JsonPayload => check_json_payload(data),
            Target::Record => check_record(data),
            Target::EsmEvent => check_esm_event(data),
            Target::FastPath => check_fast_path(data),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writer schemas the harness knows

/// An explicit-event writer schema that uses every Avro type and logical type the decoder maps.
/// Its first fields hold zero-width items, which a block count can multiply without bound.
const KITCHEN_SINK_SCHEMA: &str = r#"{"type":"record","name":"KitchenSink","namespace":"fuzz","fields":[
 {"name":"zn","type":{"type":"array","items":"null"}},
 {"name":"ze","type":{"type":"map","values":{"type":"record","name":"Empty","fields":[]}}},
 {"name":"n","type":"null"},{"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},
 {"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"by","type":"bytes"},{"name":"s","type":"string"},
 {"name":"e","type":{"type":"enum","name":"Colour","symbols":["red","green","blue"]}},
 {"name":"fx","type":{"type":"fixed","name":"Four","size":4}},
 {"name":"a","type":{"type":"array","items":"long"}},{"name":"m","type":{"type":"map","values":"string"}},
 {"name":"u","type":["null","string","long","double"]},
 {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":20,"scale":2}},
 {"name":"decf","type":{"type":"fixed","name":"DecF","size":8,"logicalType":"decimal","precision":18,"scale":3}},
 {"name":"id","type":{"type":"string","logicalType":"uuid"}},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
 {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
 {"name":"tsm","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"tsu","type":{"type":"long","logicalType":"timestamp-micros"}},
 {"name":"ltm","type":{"type":"long","logicalType":"local-timestamp-millis"}},
 {"name":"dur","type":{"type":"fixed","name":"Dur","size":12,"logicalType":"duration"}},
 {"name":"nested","type":{"type":"record","name":"Inner","fields":[{"name":"x","type":["null",{"type":"array","items":{"type":"map","values":"int"}}]}]}}
]}"#;

/// A recursive writer schema (a linked list): nesting depth is bounded only by the body length.
const LINKED_LIST_SCHEMA: &str = r#"{"type":"record","name":"Node","namespace":"fuzz","fields":[{"name":"v","type":"long"},{"name":"next","type":["null","Node"]}]}"#;

/// The writer schema of the explicit-event fixtures in `functions/consumer/events/` (a copy of
/// the consumer testkit's `EXPLICIT_ORDER_SCHEMA`, so the fixtures are useful seeds).
const EXPLICIT_ORDER_SCHEMA: &str = r#"{"type":"record","name":"ExplicitOrder","namespace":"com.example.explicit","fields":[{"name":"order_id","type":"string"},{"name":"amount","type":"double"},{"name":"items","type":{"type":"array","items":"string"}},{"name":"express","type":"boolean"}]}"#;

/// The placeholder version id the consumer fixtures are framed with for `name`.
fn fixture_id(name: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("pipeline-fixture:{name}").as_bytes(),
    )
}

/// A version id the registry does not know.
pub fn unknown_schema_id() -> Uuid {
    fixture_id("fuzz:unknown")
}

/// A version id whose definition does not parse as Avro.
pub fn unusable_schema_id() -> Uuid {
    fixture_id("fuzz:unusable")
}

/// Every writer schema the harness resolves, by version id, in a fixed order: the harness's own
/// first (so committed inputs keep selecting the same schema when the contract gains versions),
/// then every committed contract version.
pub fn writer_schemas() -> &'static [(Uuid, Arc<Schema>)] {
    static SCHEMAS: OnceLock<Vec<(Uuid, Arc<Schema>)>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut texts: Vec<(Uuid, &'static str)> = vec![
            (fixture_id("fuzz:linked-list"), LINKED_LIST_SCHEMA),
            (fixture_id("fuzz:kitchen-sink"), KITCHEN_SINK_SCHEMA),
            (fixture_id("ExplicitOrder"), EXPLICIT_ORDER_SCHEMA),
        ];
        texts.extend(
            pipeline_contracts::contracts()
                .schemas
                .values()
                .flat_map(|s| s.versions.iter().map(String::as_str).zip(s.version_texts()))
                .map(|(path, text)| (fixture_id(path), text)),
        );
        texts
            .into_iter()
            .map(|(id, text)| {
                let schema = Schema::parse_str(text).expect("the harness's schemas are valid Avro");
                (id, Arc::new(schema))
            })
            .collect()
    })
}

fn writer_schema_map() -> &'static WriterSchemas {
    static MAP: OnceLock<WriterSchemas> = OnceLock::new();
    MAP.get_or_init(|| {
        let mut map: WriterSchemas = writer_schemas()
            .iter()
            .map(|(id, schema)| (*id, WriterSchema::Found(schema.clone())))
            .collect();
        map.insert(unknown_schema_id(), WriterSchema::NotFound);
        map.insert(
            unusable_schema_id(),
            WriterSchema::Unusable("not an Avro schema".into()),
        );
        map
    })
}

fn routes() -> &'static TopicRoutes {
    static ROUTES: OnceLock<TopicRoutes> = OnceLock::new();
    ROUTES.get_or_init(TopicRoutes::from_contract)
}

/// The record target's topics: the contract's, in a fixed order, then one no route knows.
fn harness_topics() -> &'static [String] {
    static TOPICS: OnceLock<Vec<String>> = OnceLock::new();
    TOPICS.get_or_init(|| {
        let mut topics: Vec<String> = pipeline_contracts::contracts()
            .topics
            .all()
            .map(|t| t.name.clone())
            .collect();
        topics.push("unrouted-topic".into());
        topics
    })
}

// ---------------------------------------------------------------------------------------------
// wire_frame

/// Glue framing: classification agrees with the bytes, and frames round-trip.
pub fn check_wire_frame(data: &[u8]) {
    match classify(data) {
        Ok(WireValue::Json(json)) => {
            assert_eq!(json, data, "JSON is passed through unchanged");
            assert!(matches!(data[0], b'{' | b'[' | b' ' | b'\t' | b'\r' | b'\n'));
        }
        Ok(WireValue::GlueAvro(parsed)) => {
            assert_eq!(data[0], 0x03);
            assert!(data.len() >= GLUE_HEADER_LEN);
            assert_eq!(parsed.schema_version_id.as_bytes(), &data[2..GLUE_HEADER_LEN]);
            match parsed.avro_body() {
                Ok(body) => {
                    if parsed.compression == Compression::None {
                        assert_eq!(&*body, &data[GLUE_HEADER_LEN..]);
                    }
                    assert!(body.len() as u64 <= MAX_INFLATED_BYTES);
                    if parsed.compression == Compression::Zlib {
                        let compressed = data.len() - GLUE_HEADER_LEN;
                        assert!(body.len() as u64 <= crate::wire::inflate_limit(compressed));
                    }
                    // Re-framing the body uncompressed gives it back. (Not re-deflated: that tests
                    // the producer's encoder, which the unit tests cover, and costs more than the
                    // whole decode.)
                    let compressions = [Compression::None];
                    for compression in compressions {
                        let again = frame(parsed.schema_version_id, &body, compression);
                        let Ok(WireValue::GlueAvro(reparsed)) = classify(&again) else {
                            panic!("a frame we wrote is not recognised as Glue Avro");
                        };
                        assert_eq!(reparsed.schema_version_id, parsed.schema_version_id);
                        assert_eq!(reparsed.avro_body().as_deref(), Ok(&*body));
                    }
                }
                Err(error) => {
                    assert_eq!(
                        parsed.compression,
                        Compression::Zlib,
                        "only inflation can fail: {error}"
                    );
                    assert!(!error.to_string().is_empty());
                }
            }
        }
        Err(error) => {
            let expected_kind = match data {
                [] => matches!(error, WireError::Empty),
                [0x03, ..] if data.len() < GLUE_HEADER_LEN => {
                    matches!(error, WireError::TruncatedHeader(n) if n == data.len())
                }
                [0x03, compression, ..] => {
                    matches!(error, WireError::UnsupportedCompression(c) if c == *compression)
                }
                [first, ..] => matches!(error, WireError::UnknownFormat(b) if b == *first),
            };
            assert!(
                expected_kind,
                "{error:?} does not describe {:02x?}",
                &data[..data.len().min(20)]
            );
        }
    }
    // Any bytes framed uncompressed come back unchanged.
    let id = Uuid::from_u128(0x5eed);
    let framed = frame(id, data, Compression::None);
    let Ok(WireValue::GlueAvro(parsed)) = classify(&framed) else {
        panic!("a frame we wrote is not recognised as Glue Avro");
    };
    assert_eq!(parsed.avro_body().as_deref(), Ok(data));
}

// ---------------------------------------------------------------------------------------------
// avro_payload

/// Input: one byte choosing the writer schema (its index in [`writer_schemas`], wrapping
/// around), then the Avro body.
pub fn check_avro_payload(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let schemas = writer_schemas();
    let (_, schema) = &schemas[usize::from(selector) % schemas.len()];
    let Ok(value) = decode_avro(body, schema) else {
        return;
    };
    let document = avro_to_json(&value);
    assert!(serde_json::to_vec(&document).is_ok());
    if let Ok(reading) = sensor_from_avro(value.clone()) {
        assert!(!reading.device_id.trim().is_empty());
        assert!(reading.temperature.is_finite());
        assert!(reading.humidity.is_none_or(f64::is_finite));
    }
    let _ = store_event_from_avro(value);
}

// ---------------------------------------------------------------------------------------------
// json_payload

/// Input: a JSON value body. Store events round-trip through the JSON the archive stores.
pub fn check_json_payload(data: &[u8]) {
    if let Ok(reading) = sensor_from_json(data) {
        assert!(!reading.device_id.trim().is_empty());
        assert!((-273.15..=1000.0).contains(&reading.temperature));
    }
    if let Ok(event) = store_event_from_json(data) {
        let json = serde_json::to_vec(&store_event_to_json(&event)).expect("JSON of an event");
        assert_eq!(
            store_event_from_json(&json).as_ref(),
            Ok(&event),
            "the archived JSON of a store event reads back as the same event"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// record

/// Selector bits of the record target's first input byte.
const TOPIC_BITS: u8 = 0b0000_0011;
const NULL_VALUE_BIT: u8 = 0b0000_0100;
const RAW_VALUE_BIT: u8 = 0b0000_1000;
const KEY_BIT: u8 = 0b0001_0000;
const PARTITION_SHIFT: u8 = 5;

/// The record target's input for a record value: a selector byte, then the value bytes.
pub fn record_input(topic_index: u8, value: Option<&[u8]>, has_key: bool, partition: u8) -> Vec<u8> {
    let mut selector = (topic_index & TOPIC_BITS) | ((partition & 0b111) << PARTITION_SHIFT);
    if value.is_none() {
        selector |= NULL_VALUE_BIT;
    }
    if has_key {
        selector |= KEY_BIT;
    }
    let mut input = vec![selector];
    input.extend_from_slice(value.unwrap_or_default());
    input
}

/// Input: a selector byte (topic, null value, value not base64-encoded, key present, partition),
/// then the value bytes. Builds the record the ESM would deliver and checks it end to end.
pub fn check_record(data: &[u8]) {
    let Some((&selector, value)) = data.split_first() else {
        return;
    };
    let topic = &harness_topics()[usize::from(selector & TOPIC_BITS) % harness_topics().len()];
    let encode = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let value = if selector & NULL_VALUE_BIT != 0 {
        None
    } else if selector & RAW_VALUE_BIT != 0 {
        // Not base64: what a broken delivery would look like.
        Some(String::from_utf8_lossy(value).into_owned())
    } else {
        Some(encode(value))
    };
    let record = KafkaRecord {
        topic: topic.clone(),
        partition: i32::from(selector >> PARTITION_SHIFT),
        offset: 4242,
        timestamp: 1_700_000_000_000,
        timestamp_type: TimestampType::CreateTime,
        key: (selector & KEY_BIT != 0).then(|| encode(b"device-1")),
        value,
        headers: Some(vec![RawHeader::from([("h".to_string(), vec![-61, -87, 0, 127])])]),
    };
    check_decoded_record(&record);
}

/// Everything the consumer does with one record before it reaches a sink.
pub fn check_decoded_record(record: &KafkaRecord) {
    let schemas = writer_schema_map();
    check_schema_id_prefix(record);
    match decode_record(record, routes().payload_for(&record.topic), schemas) {
        Err(poison) => check_poison(record, &poison),
        Ok(decoded) => {
            assert_eq!(decoded.coordinates(), &record.coordinates());
            check_decoded(record, decoded);
        }
    }
}

/// The batch loop resolves schema ids from the first 24 base64 characters; whenever the whole
/// value decodes, that id must be the one in its Glue header.
fn check_schema_id_prefix(record: &KafkaRecord) {
    let prefix_id = glue_schema_version_id(record);
    let Ok(bytes) = record.value_bytes() else {
        return;
    };
    let header_id = match classify(&bytes) {
        Ok(WireValue::GlueAvro(parsed)) => Some(parsed.schema_version_id),
        _ if bytes.len() >= GLUE_HEADER_LEN && bytes[0] == 0x03 => Some(Uuid::from_bytes(
            bytes[2..GLUE_HEADER_LEN].try_into().expect("16 bytes"),
        )),
        _ => None,
    };
    assert_eq!(prefix_id, header_id, "schema id read from the base64 prefix");
}

/// A poison record keeps its coordinates and exact raw content, and its failure-queue message
/// is one SQS accepts.
fn check_poison(record: &KafkaRecord, poison: &Poison) {
    assert_eq!(poison.coordinates, record.coordinates());
    assert_eq!(poison.raw.timestamp, record.timestamp);
    assert_eq!(poison.raw.key, record.key);
    assert_eq!(poison.raw.value, record.value);
    assert_eq!(poison.raw.headers, record.headers);
    assert!(!poison.reason.kind().is_empty());
    let message = PoisonMessage::from_poison(poison);
    let body = serde_json::to_string(&message).expect("poison message JSON");
    let back: PoisonMessage = serde_json::from_str(&body).expect("poison message reads back");
    assert_eq!(back, message);
    assert_eq!(
        back.value_base64, record.value,
        "the raw value survives the queue"
    );
    // What SQS accepts is only promised for records a real ESM delivers: a legal Kafka topic
    // name and a base64 value.
    if !legal_kafka_topic(&record.topic) {
        return;
    }
    for id in [message.group_id(), message.deduplication_id()] {
        assert!(!id.is_empty() && id.len() <= SQS_ID_MAX_LEN, "{id:?}");
        assert!(id.bytes().all(|b| b.is_ascii_graphic()), "SQS id {id:?}");
    }
    // SQS message bodies may only hold XML characters (no U+FFFE/U+FFFF, no C0 controls but tab
    // and newlines).
    if record
        .value
        .as_deref()
        .is_none_or(|v| base64::engine::general_purpose::STANDARD.decode(v).is_ok())
    {
        assert!(
            body.chars().all(sqs_body_char),
            "SQS would refuse the poison body {body:?}"
        );
    }
}

/// Kafka topic names: 1 to 249 characters of `[a-zA-Z0-9._-]`.
fn legal_kafka_topic(topic: &str) -> bool {
    (1..=249).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn sqs_body_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// A decoded record fits its sinks, and its sink encodings round-trip.
fn check_decoded(record: &KafkaRecord, decoded: Decoded) {
    let avro = record
        .value_bytes()
        .ok()
        .is_some_and(|bytes| matches!(classify(&bytes), Ok(WireValue::GlueAvro(_))));
    match decoded {
        Decoded::Sensor { coordinates, reading } => {
            let spec = WindowSpec::from_seconds(60).expect("a valid window");
            let (windows, rejected) = group_readings(spec, [(&coordinates, &reading)]);
            assert_eq!(
                windows.len() + rejected.len(),
                1,
                "a reading lands in one window or is rejected"
            );
            let latest = reader_schema("SensorReading").expect("contract schema");
            let body =
                encode_avro(sensor_to_avro(&reading, latest), latest).expect("a decoded reading encodes");
            let back = decode_avro(&body, latest).and_then(sensor_from_avro);
            assert_eq!(back.as_ref(), Ok(&reading), "sensor reading Avro round trip");
        }
        Decoded::Store { coordinates, event } => {
            let json = serde_json::to_vec(&store_event_to_json(&event)).expect("JSON of an event");
            assert_eq!(
                store_event_from_json(&json).as_ref(),
                Ok(&event),
                "store event JSON round trip"
            );
            let row = StoreEventRow { coordinates, event };
            let blocks =
                group_into_blocks(std::slice::from_ref(&row)).expect("an accepted event has an archive date");
            for lines in blocks.values() {
                let bytes = encode_block(lines.values());
                let read: Vec<_> = decode_block(&bytes).expect("an archive block reads back");
                assert_eq!(
                    read,
                    lines.values().cloned().collect::<Vec<_>>(),
                    "archive block round trip"
                );
            }
            if avro {
                let schema = reader_schema("StoreEvent").expect("contract schema");
                let body =
                    encode_avro(store_event_to_avro(&row.event), schema).expect("a decoded event encodes");
                let back = decode_avro(&body, schema).and_then(store_event_from_avro);
                assert_eq!(back.as_ref(), Ok(&row.event), "store event Avro round trip");
            }
        }
        Decoded::Explicit(event) => {
            let item = explicit_event_item(&event, &pipeline_contracts::contracts().tables.explicit_events);
            assert!(
                fits_item_limit(item_size(&item)),
                "an accepted event fits a DynamoDB item"
            );
            assert_eq!(event.key_base64, record.key);
            assert_eq!(event.timestamp_ms, record.timestamp);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// esm_event

/// Input: the Lambda's event JSON. An event that parses serializes back to itself, and every
/// record in it passes [`check_decoded_record`].
pub fn check_esm_event(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<KafkaEvent>(data) else {
        return;
    };
    let json = serde_json::to_vec(&event).expect("an event serializes");
    let back: KafkaEvent = serde_json::from_slice(&json).expect("a serialized event parses");
    assert_eq!(back, event, "ESM event JSON round trip");
    assert_eq!(event.records().count(), event.record_count());
    for record in event.records() {
        // Header bytes are either all in range or rejected, never wrapped silently.
        if let Ok(headers) = record.header_bytes() {
            let count: usize = record.headers.iter().flatten().map(BTreeMap::len).sum();
            assert_eq!(headers.len(), count);
        }
        let _ = record.key_bytes();
        check_decoded_record(record);
    }
}

// ---------------------------------------------------------------------------------------------
// fast_path

/// The harness's registry: every schema of [`writer_schemas`], and one version that is no Avro.
fn harness_registry() -> InMemorySchemaSource {
    let registry = InMemorySchemaSource::default();
    for (id, schema) in writer_schemas() {
        registry.insert(*id, &schema.canonical_form());
    }
    registry.insert(unusable_schema_id(), "not an Avro schema");
    registry
}

/// A consumer on fresh in-memory sinks with the harness's registry and a fixed clock.
fn harness_consumer() -> FakeConsumer<InMemorySchemaSource> {
    let mut settings = ConsumerSettings::new(
        routes().clone(),
        WindowSpec::from_seconds(60).expect("a valid window"),
        pipeline_contracts::contracts().bucket.store_events_prefix.clone(),
    );
    settings.clock = || 1_767_225_600_000;
    FakeConsumer::new(harness_registry(), FakeSinks::default(), settings)
}

/// Input: any bytes as an invocation body. See [`assert_paths_agree`].
pub fn check_fast_path(data: &[u8]) {
    assert_paths_agree(harness_consumer, data);
}

/// The borrowed parse accepts `body` exactly when the owned parse does, with the same records;
/// and [`ConsumerService::process_body`] on it leaves the same summary (or failure), sink state
/// and poison as [`ConsumerService::process_reporting`] on the owned event, each on a consumer
/// from `consumer`.
pub fn assert_paths_agree<S: SchemaSource>(consumer: impl Fn() -> FakeConsumer<S>, body: &[u8]) {
    let general = serde_json::from_slice::<KafkaEvent>(body);
    let fast = EventView::parse(body);
    let event = match (general, &fast) {
        (Err(_), Err(_)) => return,
        (Ok(general), Ok(fast)) => {
            assert_eq!(
                fast.to_owned_event(),
                general,
                "fast and general parse give the same event"
            );
            assert_eq!(fast.record_count(), general.record_count());
            general
        }
        (general, fast) => panic!(
            "the parses disagree: general {:?}, fast {:?}",
            general.map(|_| ()),
            fast.as_ref().map(|_| ())
        ),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a current-thread runtime");
    let (general_consumer, fast_consumer) = (consumer(), consumer());
    let general = runtime.block_on(general_consumer.process_reporting(&event));
    let fast = runtime.block_on(fast_consumer.process_body(body));
    match (general, fast) {
        (Ok(general), Ok(fast)) => assert_eq!(fast, general, "same summary"),
        (Err(general), Err(BodyFailure::Batch { records, failure })) => {
            assert_eq!(records, event.record_count());
            assert_eq!(failure, general, "same failure");
        }
        (general, fast) => panic!("the paths disagree: general {general:?}, fast {fast:?}"),
    }
    assert_eq!(
        fast_consumer.sinks().state(),
        general_consumer.sinks().state(),
        "same sink state and poison"
    );
}

// ---------------------------------------------------------------------------------------------
// Seeds

/// Seed inputs for every target from one ESM event JSON (a consumer fixture): the event itself,
/// and each record's value in the form each target takes.
pub fn seeds_from_event(event_json: &[u8]) -> Vec<(Target, Vec<u8>)> {
    let mut seeds = vec![
        (Target::EsmEvent, event_json.to_vec()),
        (Target::FastPath, event_json.to_vec()),
    ];
    let Ok(event) = serde_json::from_slice::<KafkaEvent>(event_json) else {
        return seeds;
    };
    let schemas = writer_schemas();
    for record in event.records() {
        let topic_index = harness_topics()
            .iter()
            .position(|t| *t == record.topic)
            .unwrap_or(harness_topics().len() - 1) as u8;
        let partition = (record.partition & 0b111) as u8;
        let Ok(value) = record.value_bytes() else {
            seeds.push((Target::Record, record_input(topic_index, None, false, partition)));
            continue;
        };
        seeds.push((
            Target::Record,
            record_input(topic_index, Some(&value), record.key.is_some(), partition),
        ));
        seeds.push((Target::WireFrame, value.clone()));
        match classify(&value) {
            Ok(WireValue::Json(json)) => seeds.push((Target::JsonPayload, json.to_vec())),
            Ok(WireValue::GlueAvro(parsed)) => {
                if let (Some(index), Ok(body)) = (
                    schemas.iter().position(|(id, _)| *id == parsed.schema_version_id),
                    parsed.avro_body(),
                ) {
                    let mut input = vec![index as u8];
                    input.extend_from_slice(&body);
                    seeds.push((Target::AvroPayload, input));
                }
            }
            Err(_) => {}
        }
    }
    seeds
}

/// Whether a fixture's Glue-framed values use a schema id the harness resolves (the fixtures'
/// placeholder ids), so a drift between harness and fixtures is caught by the tests.
pub fn resolves(id: Uuid) -> bool {
    writer_schemas().iter().any(|(known, _)| *known == id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_accepts_empty_and_tiny_inputs() {
        for target in Target::ALL {
            assert_eq!(Target::from_name(target.name()), Some(target));
            for input in [&b""[..], b"\x00", b"\x03", b"{", b"\x03\x05"] {
                target.check(input);
            }
        }
    }

    #[test]
    fn the_harness_resolves_every_contract_schema_and_its_extras() {
        let count: usize = pipeline_contracts::contracts()
            .schemas
            .values()
            .map(|s| s.versions.len())
            .sum();
        assert_eq!(writer_schemas().len(), count + 3);
    }

    #[test]
    fn record_inputs_select_what_they_say() {
        let input = record_input(1, Some(b"{}"), true, 3);
        assert_eq!(input[0] & TOPIC_BITS, 1);
        assert_ne!(input[0] & KEY_BIT, 0);
        assert_eq!(input[0] >> PARTITION_SHIFT, 3);
        assert_eq!(&input[1..], b"{}");
        check_record(&input);
    }
}
