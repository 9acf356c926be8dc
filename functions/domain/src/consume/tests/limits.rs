//! The consumer under AWS's size limits and the audit's reproductions (issue 12, items 1-6, 10, 13):
//! each test builds the record the audit built and checks what must hold now.

use std::sync::atomic::AtomicUsize;

use apache_avro::types::Value as Avro;

use super::*;
use crate::consume::archive::decode_block;
use crate::consume::batch::SCHEMA_LOOKUP_CONCURRENCY;
use crate::consume::ports::{ExplicitEventStore, PoisonSink, QueueDelivery};
use crate::dynamodb_item::{explicit_event_item, fits_item_limit, item_size};
use crate::limits::{
    DYNAMODB_MAX_ITEM_BYTES, MAX_ARCHIVE_LINE_BYTES, MAX_DECODED_RECORD_BYTES, MAX_POISON_REASON_BYTES,
    SQS_MAX_MESSAGE_BYTES,
};
use crate::ports::SchemaVersion;

/// A fixed invocation clock: 2023-11-14T22:13:20Z.
const NOW_MS: i64 = 1_700_000_000_000;

fn fixed_clock() -> i64 {
    NOW_MS
}

/// The usual fake service, with the plausibility bound on and a fixed clock.
fn bounded_service() -> FakeService {
    bounded_service_with(|_| {})
}

fn bounded_service_with(adjust: impl FnOnce(&mut ConsumerSettings)) -> FakeService {
    let mut settings = contract_settings();
    settings.retry = fast_retry();
    settings.clock = fixed_clock;
    adjust(&mut settings);
    ConsumerService::new(
        registry(),
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

fn zlib_store_avro(event: &StoreEvent) -> Vec<u8> {
    let schema = schema_of("schemas/store_event.v1.avsc");
    frame(
        STORE_V1,
        &encode_avro(store_event_to_avro(event), &schema).unwrap(),
        Compression::Zlib,
    )
}

// ---------------------------------------------------------------------------------------------
// Item 1: archive blocks never grow past what the reader accepts

#[tokio::test]
async fn store_events_that_inflate_past_the_record_bound_are_poison_and_the_block_stays_readable() {
    let service = bounded_service();
    let huge = "x".repeat(14 * 1024 * 1024);
    let records: Vec<KafkaRecord> = (0..5)
        .map(|n| {
            let mut event = store_event(n, StoreEventType::Sales);
            event.category = huge.clone();
            let value = zlib_store_avro(&event);
            assert!(
                value.len() < 20 * 1024,
                "about 19 KB on the wire: {}",
                value.len()
            );
            record(store_topic(), 0, n, Some(&value))
        })
        .collect();
    let good = record(
        store_topic(),
        0,
        5,
        Some(&store_avro(&store_event(5, StoreEventType::Sales))),
    );
    let batch = event_of(records.into_iter().chain([good]));

    let summary = service.process(&batch).await.expect("the batch is stored");
    assert_eq!(summary.poison_by_reason.get("too_large"), Some(&5), "{summary:?}");
    assert_eq!(summary.store_events, 1);
    // A redelivery of the same batch reads the block back and changes nothing.
    let objects = service.sinks().archive.snapshot();
    service.process(&batch).await.expect("the redelivery succeeds");
    assert_eq!(service.sinks().archive.snapshot(), objects);
    for bytes in objects.values() {
        decode_block(bytes).expect("every block reads back");
    }
}

#[tokio::test]
async fn a_full_block_of_lines_at_the_line_bound_is_written_and_read_back() {
    let service = bounded_service();
    // Find the category length that puts the archive line exactly at the bound.
    let base = store_event(0, StoreEventType::Inventory);
    let coordinates = |offset| RecordCoordinates {
        topic: store_topic().into(),
        partition: 0,
        offset,
    };
    let line_at = |len: usize| {
        let mut event = base.clone();
        event.category = "c".repeat(len);
        archive::line_bytes(&coordinates(999), &event)
    };
    let fill = MAX_ARCHIVE_LINE_BYTES - line_at(0);
    assert_eq!(line_at(fill), MAX_ARCHIVE_LINE_BYTES);

    let records: Vec<KafkaRecord> = (0..1000)
        .map(|offset| {
            let mut event = base.clone();
            // Offsets below 100 are shorter in the line; pad them to the same length.
            event.category = "c".repeat(fill + 3 - offset.to_string().len());
            record(store_topic(), 0, offset, Some(&store_avro(&event)))
        })
        .collect();
    let summary = service.process(&event_of(records)).await.unwrap();
    assert_eq!((summary.store_events, summary.poison), (1000, 0), "{summary:?}");
    let objects = service.sinks().archive.snapshot();
    assert_eq!(objects.len(), 1);
    let lines = decode_block(objects.values().next().unwrap()).expect("the reader accepts a full block");
    assert_eq!(lines.len(), 1000);

    // One byte over the line bound is poison, decided per record.
    let mut over = base.clone();
    over.category = "c".repeat(fill + 1);
    let poison = decode_record(
        &record(store_topic(), 0, 999, Some(&store_avro(&over))),
        Some(Payload::StoreEvent),
        &resolved(),
    )
    .unwrap_err();
    assert_eq!(
        poison.reason,
        PoisonReason::TooLarge {
            size: MAX_ARCHIVE_LINE_BYTES + 1,
            limit: MAX_ARCHIVE_LINE_BYTES
        }
    );
}

#[test]
fn a_record_may_inflate_to_the_bound_but_not_past_it() {
    let schema =
        Schema::parse_str(r#"{"type":"record","name":"Blob","fields":[{"name":"b","type":"bytes"}]}"#)
            .unwrap();
    let id = Uuid::from_u128(0xb10b);
    let mut schemas = WriterSchemas::new();
    schemas.insert(id, WriterSchema::Found(Arc::new(schema.clone())));
    // Noise repeated every 16 KiB deflates about 37-fold: under the ratio bound, so only the
    // per-record bound applies, and small enough on the wire for the value limit.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let pattern: Vec<u8> = (0..16 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    let noise = pattern.repeat(MAX_DECODED_RECORD_BYTES / pattern.len() + 1);
    let body_of = |len: usize| {
        // A bytes field: zig-zag varint length then the bytes; pick the payload so the whole body
        // has exactly `len` bytes.
        let mut payload = len - 3;
        loop {
            let body = encode_avro(
                Avro::Record(vec![("b".into(), Avro::Bytes(noise[..payload].to_vec()))]),
                &schema,
            )
            .unwrap();
            match body.len().cmp(&len) {
                std::cmp::Ordering::Equal => return body,
                std::cmp::Ordering::Greater => payload -= 1,
                std::cmp::Ordering::Less => payload += 1,
            }
        }
    };
    let decode = |len| {
        decode_record(
            &record(
                explicit_topic(),
                0,
                1,
                Some(&frame(id, &body_of(len), Compression::Zlib)),
            ),
            Some(Payload::Explicit),
            &schemas,
        )
    };
    // At the bound the body inflates and decodes (the document is then too large for DynamoDB as
    // base64, which is its own too_large).
    let at = decode(MAX_DECODED_RECORD_BYTES).unwrap_err();
    assert!(
        matches!(
            at.reason,
            PoisonReason::TooLarge {
                limit: DYNAMODB_MAX_ITEM_BYTES,
                ..
            }
        ),
        "{}",
        at.reason
    );
    let over = decode(MAX_DECODED_RECORD_BYTES + 1).unwrap_err();
    assert!(
        matches!(
            over.reason,
            PoisonReason::Wire(crate::wire::WireError::InflatedTooLarge { limit, .. })
                if limit == MAX_DECODED_RECORD_BYTES as u64
        ),
        "{}",
        over.reason
    );
    assert_eq!(over.reason.kind(), "too_large");
}

// ---------------------------------------------------------------------------------------------
// Item 2: reasons never quote the value, are capped, and every queue body fits SQS

#[tokio::test]
async fn poison_reasons_quote_no_value_and_every_queue_body_fits_sqs() {
    let service = bounded_service();
    // A 240 KB JSON store event whose price is not a decimal.
    let mut json = store_event_to_json(&store_event(1, StoreEventType::Sales));
    json["price"] = Json::String("9\"".repeat(82 * 1024));
    let bad_decimal = serde_json::to_vec(&json).unwrap();
    assert!(bad_decimal.len() > 240 * 1024 && bad_decimal.len() < MAX_VALUE_BYTES);
    // A compressed Avro store event whose event_type is a string (not the enum) of 160 KB.
    let loose = schema_text("schemas/store_event.v1.avsc").unwrap().replace(
        r#"{ "type": "enum", "name": "StoreEventType", "symbols": ["sales_event", "inventory_event"] }"#,
        r#""string""#,
    );
    let loose_id = Uuid::from_u128(0x1005e);
    service.schema_cache().source().insert(loose_id, &loose);
    let loose_schema = Schema::parse_str(&loose).unwrap();
    let Avro::Record(mut fields) = store_event_to_avro(&store_event(2, StoreEventType::Sales)) else {
        unreachable!()
    };
    // Text that deflates little, so the record is decoded (not refused as a zlib bomb).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise: Vec<u8> = (0..120 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fields[1].1 = Avro::String(format!("SYMBOL-\"\\{}", b64(&noise)));
    let body = encode_avro(Avro::Record(fields), &loose_schema).unwrap();
    let bad_symbol = frame(loose_id, &body, Compression::Zlib);
    // A naive time that is not a time, 200 KB long.
    let mut json = store_event_to_json(&store_event(3, StoreEventType::Sales));
    json["ts"] = Json::String("2023-\u{7f}".repeat(30 * 1024));
    let bad_time = serde_json::to_vec(&json).unwrap();

    let batch = event_of([
        record(store_topic(), 0, 1, Some(&bad_decimal)),
        record(store_topic(), 0, 2, Some(&bad_symbol)),
        record(store_topic(), 0, 3, Some(&bad_time)),
    ]);
    let summary = service
        .process(&batch)
        .await
        .expect("poison never fails the batch");
    assert_eq!(summary.poison, 3, "{summary:?}");
    let messages = service.sinks().poison.snapshot();
    for message in &messages {
        assert!(
            message.reason.len() <= MAX_POISON_REASON_BYTES,
            "{}",
            message.reason.len()
        );
        for fragment in ["9\\\"9", "SYMBOL-", "2023-"] {
            assert!(
                !message.reason.contains(fragment),
                "{}: {}",
                message.offset,
                message.reason
            );
        }
    }
    let bodies = service.sinks().poison.queue_bodies();
    assert_eq!(bodies.len(), 3);
    for body in bodies.values() {
        assert!(body.len() <= SQS_MAX_MESSAGE_BYTES, "{}", body.len());
    }
}

#[test]
fn library_messages_are_cut_at_the_cap_on_a_character_boundary() {
    let reason = PoisonReason::BadBase64("é".repeat(MAX_POISON_REASON_BYTES));
    let message = reason.message();
    assert!(message.len() <= MAX_POISON_REASON_BYTES);
    assert!(message.ends_with('…'));
    let short = PoisonReason::NullValue;
    assert_eq!(short.message(), short.to_string());
}

fn message_with(value_len: usize, reason_len: usize) -> PoisonMessage {
    PoisonMessage {
        topic: store_topic().into(),
        partition: 2,
        offset: 7,
        timestamp: NOW_MS,
        reason_kind: "bad_json".into(),
        reason: "r".repeat(reason_len),
        key_base64: None,
        value_base64: Some("A".repeat(value_len)),
        headers: None,
        offloaded: None,
    }
}

#[test]
fn bodies_at_the_sqs_limit_go_inline_and_one_byte_more_is_offloaded() {
    let overhead = message_with(0, 10).queue_body().unwrap().len();
    let at = message_with(SQS_MAX_MESSAGE_BYTES - overhead, 10);
    assert!(
        matches!(at.delivery("b", "p/"), Ok(QueueDelivery::Inline(body)) if body.len() == SQS_MAX_MESSAGE_BYTES)
    );
    let over = message_with(SQS_MAX_MESSAGE_BYTES - overhead + 1, 10);
    let Ok(QueueDelivery::Offload {
        key,
        full_body,
        pointer_body,
    }) = over.delivery("b", "p/")
    else {
        panic!("one byte over is offloaded")
    };
    assert_eq!(key, format!("p/{}/2/7.json", store_topic()));
    assert_eq!(full_body.len(), SQS_MAX_MESSAGE_BYTES + 1);
    assert!(pointer_body.len() < 1024 && !pointer_body.contains("AAAA"));
}

#[tokio::test]
async fn the_fake_queue_refuses_what_sqs_would_refuse() {
    // A pointer can only exceed SQS's limit through its reason; the cap prevents it, so build one
    // by hand to see the fake enforce the limit.
    let sink = InMemoryPoisonSink::default();
    let refused = sink.send(&[message_with(10, SQS_MAX_MESSAGE_BYTES)]).await;
    assert!(matches!(refused, Err(PortError::Rejected { .. })), "{refused:?}");
    assert!(sink.snapshot().is_empty());
    sink.send(&[message_with(SQS_MAX_MESSAGE_BYTES, 10)])
        .await
        .unwrap();
    assert_eq!(sink.snapshot().len(), 1);
    assert!(sink
        .queue_bodies()
        .values()
        .all(|b| b.len() <= SQS_MAX_MESSAGE_BYTES));
}

// ---------------------------------------------------------------------------------------------
// Item 3: schema versions that are not Avro or not AVAILABLE are poison

#[tokio::test]
async fn versions_that_are_not_avro_or_not_available_make_only_their_records_poison() {
    let service = bounded_service();
    let avro_text = schema_text("schemas/sensor_reading.v1.avsc").unwrap();
    let cases = [
        ("JSON", "AVAILABLE", "unsupported_schema_format"),
        ("PROTOBUF", "AVAILABLE", "unsupported_schema_format"),
        ("AVRO", "FAILURE", "schema_version_not_available"),
        ("AVRO", "DELETING", "schema_version_not_available"),
        ("AVRO", "PENDING", "schema_version_not_available"),
    ];
    let good = sensor_avro(
        &reading("dev-1", NOW_MS, 21.5),
        SENSOR_V1,
        "schemas/sensor_reading.v1.avsc",
        Compression::None,
    );
    let mut records = vec![record(sensor_topic(), 0, 0, Some(&good))];
    for (n, (format, status, _)) in cases.iter().enumerate() {
        let id = Uuid::from_u128(0xf0_0000 + n as u128);
        service.schema_cache().source().insert_version(
            id,
            SchemaVersion {
                definition: avro_text.into(),
                data_format: (*format).into(),
                status: (*status).into(),
            },
        );
        let mut value = good.clone();
        value[2..18].copy_from_slice(id.as_bytes());
        records.push(record(sensor_topic(), 0, n as i64 + 1, Some(&value)));
    }
    let summary = service
        .process(&event_of(records))
        .await
        .expect("only the registry being down fails a batch");
    assert_eq!(summary.sensor_readings, 1);
    assert_eq!(
        summary.poison_by_reason.get("unsupported_schema_format"),
        Some(&2)
    );
    assert_eq!(
        summary.poison_by_reason.get("schema_version_not_available"),
        Some(&3)
    );
    let poison = service.sinks().poison.snapshot();
    assert!(poison.iter().any(|m| m.reason.contains("PROTOBUF")));
    assert!(poison.iter().any(|m| m.reason.contains("DELETING")));
    assert_eq!(service.sinks().windows.snapshot().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Item 4: DynamoDB's item size, keys and the Kafka key included

const INTS_SCHEMA: &str =
    r#"{"type":"record","name":"Ints","fields":[{"name":"values","type":{"type":"array","items":"int"}}]}"#;

fn ints_record(count: usize, key: Option<String>) -> (KafkaRecord, WriterSchemas) {
    let schema = Schema::parse_str(INTS_SCHEMA).unwrap();
    let id = Uuid::from_u128(0x1a75);
    let body = encode_avro(
        Avro::Record(vec![("values".into(), Avro::Array(vec![Avro::Int(7); count]))]),
        &schema,
    )
    .unwrap();
    let mut r = record(explicit_topic(), 0, 1, Some(&frame(id, &body, Compression::None)));
    r.key = key;
    let mut schemas = WriterSchemas::new();
    schemas.insert(id, WriterSchema::Found(Arc::new(schema)));
    (r, schemas)
}

#[test]
fn an_array_of_small_ints_is_measured_as_dynamodb_measures_it() {
    // 170,000 ints: 340 KB as JSON (under the old 350 KiB proxy), about 510 KB as an item.
    let (r, schemas) = ints_record(170_000, None);
    let poison = decode_record(&r, Some(Payload::Explicit), &schemas).unwrap_err();
    let PoisonReason::TooLarge { size, limit } = poison.reason else {
        panic!("{}", poison.reason)
    };
    assert_eq!(limit, DYNAMODB_MAX_ITEM_BYTES);
    assert!(size > 510_000, "{size}");
    assert_eq!(poison.reason.kind(), "too_large");
    // 130,000 fit (about 390 KB).
    let (r, schemas) = ints_record(130_000, None);
    assert!(decode_record(&r, Some(Payload::Explicit), &schemas).is_ok());
}

#[test]
fn the_kafka_key_counts_towards_the_item() {
    let key = b64(&vec![0x5a; 310 * 1024]);
    let (r, schemas) = ints_record(1, Some(key));
    let poison = decode_record(&r, Some(Payload::Explicit), &schemas).unwrap_err();
    assert!(
        matches!(poison.reason, PoisonReason::TooLarge { .. }),
        "{}",
        poison.reason
    );
}

#[tokio::test]
async fn items_at_the_limit_are_stored_and_one_byte_more_is_poison() {
    let table = &contracts().tables.explicit_events;
    // Values are capped at 256 KiB before decoding; the Kafka key carries the rest of the item.
    let value = serde_json::to_vec(&json!({ "t": "t".repeat(200 * 1024) })).unwrap();
    let mut keyless = record(explicit_topic(), 0, 1, Some(&value));
    keyless.key = None;
    let Ok(Decoded::Explicit(event)) = decode_record(&keyless, Some(Payload::Explicit), &resolved()) else {
        panic!("a 200 KB document fits")
    };
    let key_len = DYNAMODB_MAX_ITEM_BYTES - item_size(&explicit_event_item(&event, table)) - "key".len();
    let service = bounded_service();
    let keyed = |offset: i64, key_len: usize| {
        let mut r = record(explicit_topic(), 0, offset, Some(&value));
        r.key = Some("k".repeat(key_len));
        r
    };
    let at = keyed(1, key_len);
    let over = keyed(2, key_len + 1);
    let summary = service.process(&event_of([at, over])).await.unwrap();
    assert_eq!(summary.explicit_events, 1, "{summary:?}");
    assert_eq!(summary.poison_by_reason.get("too_large"), Some(&1));
    let stored = service.sinks().explicit.snapshot();
    let size = item_size(&explicit_event_item(stored.values().next().unwrap(), table));
    assert_eq!(size, DYNAMODB_MAX_ITEM_BYTES);
    assert!(fits_item_limit(size));
}

#[tokio::test]
async fn the_fake_table_refuses_items_dynamodb_would_refuse() {
    let store = InMemoryExplicitEventStore::default();
    let event = ExplicitEvent {
        coordinates: RecordCoordinates {
            topic: explicit_topic().into(),
            partition: 0,
            offset: 1,
        },
        timestamp_ms: NOW_MS,
        key_base64: Some("k".repeat(DYNAMODB_MAX_ITEM_BYTES)),
        format: ValueFormat::Json,
        schema_version_id: None,
        document: Json::Null,
    };
    let refused = store.put(std::slice::from_ref(&event)).await;
    assert!(matches!(refused, Err(PortError::Rejected { .. })), "{refused:?}");
    assert!(store.snapshot().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Item 6: unknown schema ids are looked up once each, concurrently and bounded

/// How long each look-up of the slow registry takes.
const SLOW_LOOKUP: Duration = Duration::from_millis(50);

/// A registry that knows nothing, counts its calls and the calls in flight, and answers slowly.
#[derive(Default)]
struct SlowEmptyRegistry {
    calls: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl SchemaSource for SlowEmptyRegistry {
    async fn schema_version(&self, version_id: Uuid) -> Result<SchemaVersion, PortError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(SLOW_LOOKUP).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        Err(PortError::NotFound {
            component: "schema registry",
            what: format!("schema version {version_id}"),
        })
    }
}

#[tokio::test]
async fn garbage_schema_ids_are_asked_once_each_eight_at_a_time() {
    let mut settings = ConsumerSettings::new(
        TopicRoutes::from_contract(),
        WindowSpec::from_seconds(60).unwrap(),
        "p/",
    );
    settings.clock = fixed_clock;
    let service = ConsumerService::new(
        SlowEmptyRegistry::default(),
        Sinks {
            windows: InMemoryWindowStore::default(),
            archive: InMemoryObjectStore::default(),
            table: InMemoryStoreEventTable::default(),
            explicit: InMemoryExplicitEventStore::default(),
            poison: InMemoryPoisonSink::default(),
        },
        settings,
    );
    // 64 distinct garbage ids, each carried by three records.
    let records: Vec<KafkaRecord> = (0..192)
        .map(|offset| {
            let mut value = frame(
                Uuid::from_u128(0x9a7b_0000 + (offset % 64) as u128),
                b"\x02",
                Compression::None,
            );
            value.push(0);
            record(sensor_topic(), 0, offset, Some(&value))
        })
        .collect();
    let started = tokio::time::Instant::now();
    let summary = service.process(&event_of(records)).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(summary.poison_by_reason.get("unknown_schema_version"), Some(&192));
    let registry = service.schema_cache().source();
    assert_eq!(
        registry.calls.load(Ordering::SeqCst),
        64,
        "one look-up per id and invocation"
    );
    assert_eq!(
        registry.max_in_flight.load(Ordering::SeqCst),
        SCHEMA_LOOKUP_CONCURRENCY
    );
    // 64 ids, 8 at a time, 50 ms each: 0.4 s, against 3.2 s one at a time (wide margin: shared CI machines).
    assert!(elapsed < SLOW_LOOKUP * 40, "{elapsed:?}");
}

// ---------------------------------------------------------------------------------------------
// Item 10: timestamps by logical type, implausible event times are poison

#[test]
fn timestamp_logical_types_are_converted_to_each_fields_unit() {
    let micros_schema_text = r#"{"type":"record","name":"SensorReading","fields":[
        {"name":"device_id","type":"string"},
        {"name":"event_time","type":{"type":"long","logicalType":"timestamp-micros"}},
        {"name":"temperature","type":"double"}]}"#;
    let micros_schema = Schema::parse_str(micros_schema_text).unwrap();
    let local_millis =
        Schema::parse_str(&micros_schema_text.replace("timestamp-micros", "local-timestamp-millis")).unwrap();
    let millis_store_text = schema_text("schemas/store_event.v1.avsc")
        .unwrap()
        .replace("timestamp-micros", "timestamp-millis");
    let millis_store = Schema::parse_str(&millis_store_text).unwrap();
    let (sensor_id, local_id, store_id) = (
        Uuid::from_u128(0x7135),
        Uuid::from_u128(0x7136),
        Uuid::from_u128(0x7137),
    );
    let mut schemas = WriterSchemas::new();
    schemas.insert(sensor_id, WriterSchema::Found(Arc::new(micros_schema.clone())));
    schemas.insert(local_id, WriterSchema::Found(Arc::new(local_millis.clone())));
    schemas.insert(store_id, WriterSchema::Found(Arc::new(millis_store.clone())));

    let sensor = |schema: &Schema, time: Avro| {
        encode_avro(
            Avro::Record(vec![
                ("device_id".into(), Avro::String("dev-1".into())),
                ("event_time".into(), time),
                ("temperature".into(), Avro::Double(20.0)),
            ]),
            schema,
        )
        .unwrap()
    };
    let decoded_time = |id, body: Vec<u8>| match decode_record(
        &record(sensor_topic(), 0, 1, Some(&frame(id, &body, Compression::None))),
        Some(Payload::SensorReading),
        &schemas,
    ) {
        Ok(Decoded::Sensor { reading, .. }) => reading.event_time,
        other => panic!("{other:?}"),
    };
    // 2023-11-14T22:13:20.123456Z in microseconds is 2023-11-14T22:13:20.123Z in milliseconds,
    // not the year 55,840.
    assert_eq!(
        decoded_time(
            sensor_id,
            sensor(&micros_schema, Avro::TimestampMicros(1_700_000_000_123_456))
        ),
        1_700_000_000_123
    );
    assert_eq!(
        decoded_time(
            local_id,
            sensor(&local_millis, Avro::LocalTimestampMillis(1_700_000_000_123))
        ),
        1_700_000_000_123
    );
    // Before the epoch, microseconds floor to the earlier millisecond.
    assert_eq!(
        decoded_time(sensor_id, sensor(&micros_schema, Avro::TimestampMicros(-1))),
        -1
    );

    // A store `ts` written as timestamp-millis is read as microseconds, not as 1970.
    let Avro::Record(mut fields) = store_event_to_avro(&store_event(1, StoreEventType::Sales)) else {
        unreachable!()
    };
    for (name, value) in fields.iter_mut() {
        if name == "ts" {
            *value = Avro::TimestampMillis(1_700_000_000_123);
        }
    }
    let body = encode_avro(Avro::Record(fields), &millis_store).unwrap();
    match decode_record(
        &record(
            store_topic(),
            0,
            1,
            Some(&frame(store_id, &body, Compression::None)),
        ),
        Some(Payload::StoreEvent),
        &schemas,
    ) {
        Ok(Decoded::Store { event, .. }) => assert_eq!(event.ts_micros, 1_700_000_000_123_000),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn implausible_event_times_are_poison_at_and_across_the_bounds() {
    let service = bounded_service();
    let bounds = EventTimeBounds::default();
    let latest = NOW_MS + bounds.max_ahead_ms;
    let times = [
        (bounds.earliest_ms - 1, false),
        (bounds.earliest_ms, true),
        (NOW_MS, true),
        (latest, true),
        (latest + 1, false),
        // A microsecond time sent as milliseconds: the year 55,840.
        (NOW_MS * 1000, false),
    ];
    let records: Vec<KafkaRecord> = times
        .iter()
        .enumerate()
        .map(|(offset, (time, _))| {
            record(
                sensor_topic(),
                0,
                offset as i64,
                Some(&serde_json::to_vec(&reading("dev-1", *time, 20.0)).unwrap()),
            )
        })
        .collect();
    let mut store = store_event(9, StoreEventType::Sales);
    store.ts_micros = 0; // 1970: a millisecond time read as microseconds.
    let store_record = record(store_topic(), 0, 9, Some(&store_avro(&store)));
    let summary = service
        .process(&event_of(records.into_iter().chain([store_record])))
        .await
        .unwrap();
    assert_eq!(summary.sensor_readings, 3, "{summary:?}");
    assert_eq!(summary.poison_by_reason.get("implausible_event_time"), Some(&4));
    let poison_offsets: BTreeSet<(String, i64)> = service
        .sinks()
        .poison
        .snapshot()
        .iter()
        .map(|m| (m.topic.clone(), m.offset))
        .collect();
    let expected: BTreeSet<(String, i64)> = times
        .iter()
        .enumerate()
        .filter(|(_, (_, ok))| !ok)
        .map(|(o, _)| (sensor_topic().to_string(), o as i64))
        .chain([(store_topic().to_string(), 9)])
        .collect();
    assert_eq!(poison_offsets, expected);
}

// ---------------------------------------------------------------------------------------------
// Item 13: the seeds' payloads

#[test]
fn the_seed_sensor_shape_is_read_through_the_documented_mapping() {
    let s1 = br#"{"device_id": 1, "timestamp": "2023-05-10T12:00:00.123456", "temperature": 27}"#;
    match decode_record(
        &record(sensor_topic(), 0, 1, Some(s1)),
        Some(Payload::SensorReading),
        &resolved(),
    ) {
        Ok(Decoded::Sensor { reading, .. }) => assert_eq!(
            reading,
            SensorReading {
                device_id: "1".into(),
                // 2023-05-10T12:00:00.123Z
                event_time: 1_683_720_000_123,
                temperature: 27.0,
                humidity: None,
            }
        ),
        other => panic!("{other:?}"),
    }
    // event_time wins over timestamp; a fractional device id is still refused.
    let both = br#"{"device_id":"d","event_time":5,"timestamp":"2023-05-10T12:00:00","temperature":1}"#;
    assert!(matches!(
        decode_record(&record(sensor_topic(), 0, 2, Some(both)), Some(Payload::SensorReading), &resolved()),
        Ok(Decoded::Sensor { reading, .. }) if reading.event_time == 5
    ));
    let fractional = br#"{"device_id":1.5,"timestamp":"2023-05-10T12:00:00","temperature":1}"#;
    let (kind, reason) = poison_kind(decode_record(
        &record(sensor_topic(), 0, 3, Some(fractional)),
        Some(Payload::SensorReading),
        &resolved(),
    ));
    assert_eq!(kind, "bad_field");
    assert!(reason.contains("device_id"), "{reason}");
}

#[test]
fn the_seed_store_shape_is_read_through_the_documented_mapping() {
    let s3 = br#"{"request_id":"f5570d0f-5389-4bce-98c3-7ed5380eefb2","event_type":"sale_event",
        "store_id":6,"cust_id":206,"category":"Camera","sku":100657,"price":2.52,"qty":18,"discount":8.2,
        "gift_wrap":true,"variant":"red","priority_shipping":true,"ts":"2021-04-25T12:52:40.938937",
        "contact_me":"github.com/miztiik"}"#;
    match decode_record(
        &record(store_topic(), 0, 1, Some(s3)),
        Some(Payload::StoreEvent),
        &resolved(),
    ) {
        Ok(Decoded::Store { event, .. }) => {
            assert_eq!(event.event_type, StoreEventType::Sales);
            assert_eq!(event.ts_micros, 1_619_355_160_938_937);
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Item 5: a batch is written in chunks of bounded decoded size, with the same result

#[tokio::test]
async fn a_batch_written_in_many_chunks_leaves_the_sinks_as_one_chunk_does() {
    let records: Vec<KafkaRecord> = (0..60)
        .map(|n| match n % 3 {
            0 => record(
                sensor_topic(),
                (n % 2) as i32,
                n,
                Some(
                    &serde_json::to_vec(&reading(&format!("dev-{}", n % 4), NOW_MS - n * 7_000, 20.0))
                        .unwrap(),
                ),
            ),
            1 => record(
                store_topic(),
                0,
                n,
                Some(&store_avro(&store_event(n, StoreEventType::Sales))),
            ),
            _ => record(
                explicit_topic(),
                0,
                n,
                Some(br#"{"order_id":"o","amount":1.5,"tags":[]}"#),
            ),
        })
        .chain([record(sensor_topic(), 0, 99, Some(b"not json"))])
        .collect();
    let batch = event_of(records);
    let whole = bounded_service();
    let chunked = bounded_service_with(|s| s.max_chunk_bytes = 1);
    let a = whole.process(&batch).await.unwrap();
    let b = chunked.process(&batch).await.unwrap();
    assert_eq!(
        (a.sensor_readings, a.store_events, a.explicit_events, a.poison),
        (b.sensor_readings, b.store_events, b.explicit_events, b.poison)
    );
    assert!(
        chunked.sinks().archive.puts() > whole.sinks().archive.puts(),
        "one chunk per record rewrites each block once per record"
    );
    assert_eq!(snapshot(&whole), snapshot(&chunked));
    assert_eq!(whole.sinks().poison.snapshot(), chunked.sinks().poison.snapshot());
}

#[test]
fn objects_over_s3s_put_limit_are_refused_at_and_across_it() {
    use crate::limits::S3_MAX_PUT_OBJECT_BYTES;
    let at = usize::try_from(S3_MAX_PUT_OBJECT_BYTES).unwrap();
    assert_eq!(crate::consume::ports::check_object_size("k", at), Ok(()));
    assert!(matches!(
        crate::consume::ports::check_object_size("k", at + 1),
        Err(PortError::Rejected { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// The fakes send the requests the adapters send, checked as AWS checks them

fn explicit_event(offset: i64) -> ExplicitEvent {
    ExplicitEvent {
        coordinates: RecordCoordinates {
            topic: explicit_topic().into(),
            partition: 0,
            offset,
        },
        timestamp_ms: NOW_MS,
        key_base64: None,
        format: ValueFormat::Json,
        schema_version_id: None,
        document: Json::Null,
    }
}

#[tokio::test]
async fn the_fake_table_writes_in_batch_write_requests_of_25() {
    let store = InMemoryExplicitEventStore::default();
    let events: Vec<ExplicitEvent> = (0..51).map(explicit_event).collect();
    store.put(&events).await.unwrap();
    assert_eq!(store.write_requests(), 3, "25 + 25 + 1");
    // A repeated key is one write, as BatchWriteItem refuses duplicate keys in a request.
    store.put(&[explicit_event(0), explicit_event(0)]).await.unwrap();
    assert_eq!(store.write_requests(), 4);
    assert_eq!(store.snapshot().len(), 51);
}

#[test]
fn batch_write_requests_are_checked_as_dynamodb_checks_them() {
    use crate::dynamodb_item::{batch_write_requests, check_batch_write_request, BatchWriteError, Item};
    let item = |bytes: usize| {
        Item::from([(
            "p".into(),
            crate::dynamodb_item::AttributeValue::S("x".repeat(bytes - 1)),
        )])
    };
    let at_count: Vec<Item> = (0..25).map(|_| item(100)).collect();
    assert_eq!(check_batch_write_request(&at_count), Ok(()));
    let over_count: Vec<Item> = (0..26).map(|_| item(100)).collect();
    assert_eq!(
        check_batch_write_request(&over_count),
        Err(BatchWriteError::RequestTooLarge {
            items: 26,
            bytes: 2_600
        })
    );
    assert_eq!(
        check_batch_write_request(&[item(DYNAMODB_MAX_ITEM_BYTES)]),
        Ok(())
    );
    assert!(matches!(
        check_batch_write_request(&[item(DYNAMODB_MAX_ITEM_BYTES + 1)]),
        Err(BatchWriteError::ItemTooLarge { size, .. }) if size == DYNAMODB_MAX_ITEM_BYTES + 1
    ));
    // 25 items at the item limit are 10 MB: within 16 MB, so the splitter counts items only.
    let full: Vec<(Item, usize)> = (0..26).map(|i| (item(DYNAMODB_MAX_ITEM_BYTES), i)).collect();
    let requests = batch_write_requests(full).unwrap();
    assert_eq!(requests.iter().map(Vec::len).collect::<Vec<_>>(), vec![25, 1]);
    assert!(requests.iter().all(|r| check_batch_write_request(r).is_ok()));
}

#[tokio::test]
async fn the_fake_queue_sends_batches_of_10_entries_and_256_kib() {
    let sink = InMemoryPoisonSink::default();
    let messages: Vec<PoisonMessage> = (0..23)
        .map(|offset| PoisonMessage {
            offset,
            ..message_with(10, 10)
        })
        .collect();
    sink.send(&messages).await.unwrap();
    assert_eq!(sink.batch_requests(), 3, "10 + 10 + 3");
    // Two bodies of about 200 KiB do not fit one request.
    let big: Vec<PoisonMessage> = (100..102)
        .map(|offset| PoisonMessage {
            offset,
            ..message_with(200 * 1024, 10)
        })
        .collect();
    sink.send(&big).await.unwrap();
    assert_eq!(sink.batch_requests(), 5);
    assert_eq!(sink.snapshot().len(), 25);
}

#[test]
fn send_message_batches_are_checked_as_sqs_checks_them() {
    use crate::limits::{check_send_message_batch, pack_send_message_batches, SQS_MAX_BATCH_BYTES};
    assert_eq!(check_send_message_batch(&["x"; 10]), Ok(()));
    assert!(check_send_message_batch(&["x"; 11]).is_err());
    assert!(check_send_message_batch(&[]).is_err());
    let half = "x".repeat(SQS_MAX_BATCH_BYTES / 2);
    assert_eq!(check_send_message_batch(&[&half, &half]), Ok(()));
    let one_more = format!("{half}x");
    assert!(check_send_message_batch(&[&half, &one_more]).is_err());
    // The packer never builds a request the check refuses.
    let bodies = vec![half.clone(), one_more.clone(), "y".repeat(10), half];
    let requests = pack_send_message_batches(bodies, String::len);
    assert_eq!(requests.iter().map(Vec::len).collect::<Vec<_>>(), vec![1, 2, 1]);
    for request in &requests {
        let refs: Vec<&str> = request.iter().map(String::as_str).collect();
        assert_eq!(check_send_message_batch(&refs), Ok(()));
    }
}

#[tokio::test]
async fn the_fake_window_table_refuses_items_dynamodb_would_refuse() {
    use crate::consume::ports::WindowStore;
    let store = InMemoryWindowStore::default();
    let aggregate = crate::window::WindowAggregate {
        device_id: "d".repeat(DYNAMODB_MAX_ITEM_BYTES),
        window_start_ms: 0,
        window_end_ms: 60_000,
        count: 1,
        sum_milli: 1,
        min_milli: 1,
        max_milli: 1,
        first_event_time_ms: 1,
        last_event_time_ms: 1,
        applied: BTreeMap::new(),
    };
    let refused = store.save(&aggregate, None).await;
    assert!(matches!(refused, Err(PortError::Rejected { .. })), "{refused:?}");
    assert!(store.snapshot().is_empty());
}
