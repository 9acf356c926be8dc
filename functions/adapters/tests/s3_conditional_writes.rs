//! S3 conditional writes against a real moto server (AWS_ENDPOINT_URL): the adapter's
//! `If-None-Match: *` / `If-Match: <etag>` writes are refused when the object changed, and two
//! consumers writing the same archive block at the same time keep every line (issue 12, item 9).

mod support;

use pipeline_adapters::s3::{create_test_bucket, S3Objects};
use pipeline_contracts::contracts;
use pipeline_domain::consume::archive::{decode_block, group_into_blocks};
use pipeline_domain::consume::batch::{ConsumerService, Sinks};
use pipeline_domain::consume::fakes::{
    contract_settings, InMemoryExplicitEventStore, InMemoryPoisonSink, InMemoryStoreEventTable,
    InMemoryWindowStore,
};
use pipeline_domain::consume::ports::{ConditionalWrite, ObjectStore, StoreEventRow, WriteCondition};
use pipeline_domain::event::{sample, EventSource, KafkaEvent, KafkaRecord};
use pipeline_domain::model::{RecordCoordinates, StoreEvent, StoreEventType};
use pipeline_domain::payload::store_event_to_json;
use pipeline_domain::ports::InMemorySchemaSource;

async fn bucket(test: &str) -> Option<S3Objects> {
    support::endpoint("AWS_ENDPOINT_URL", test)?;
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    let config = aws_sdk_s3::config::Builder::from(&sdk)
        .force_path_style(true)
        .build();
    let client = aws_sdk_s3::Client::from_conf(config);
    let name = support::unique("conditional");
    create_test_bucket(&client, &name, sdk.region().map(|r| r.as_ref()))
        .await
        .expect("create bucket");
    Some(S3Objects::new(client, name))
}

#[tokio::test]
async fn writes_conditional_on_absence_or_on_the_read_etag_are_refused_once_the_object_changed() {
    let Some(s3) = bucket("conditional writes").await else {
        return;
    };
    let key = "store-events/event_type=sales_event/date=2026-12-01/store-events-0-0.ndjson.gz";
    let t = "application/gzip";
    assert_eq!(
        s3.put_if(key, b"one".to_vec(), t, WriteCondition::Absent)
            .await
            .unwrap(),
        ConditionalWrite::Written
    );
    assert_eq!(
        s3.put_if(key, b"two".to_vec(), t, WriteCondition::Absent)
            .await
            .unwrap(),
        ConditionalWrite::Conflict,
        "If-None-Match: * on an existing object"
    );
    let first = s3.get(key).await.unwrap().expect("stored");
    assert_eq!(first.bytes, b"one");
    assert_eq!(
        s3.put_if(
            key,
            b"three".to_vec(),
            t,
            WriteCondition::Matches(first.etag.clone())
        )
        .await
        .unwrap(),
        ConditionalWrite::Written
    );
    assert_eq!(
        s3.put_if(key, b"four".to_vec(), t, WriteCondition::Matches(first.etag))
            .await
            .unwrap(),
        ConditionalWrite::Conflict,
        "If-Match with the ETag of an older version"
    );
    assert_eq!(s3.get(key).await.unwrap().unwrap().bytes, b"three");
    assert_eq!(
        s3.put_if(
            "absent",
            b"x".to_vec(),
            t,
            WriteCondition::Matches("\"0\"".into())
        )
        .await
        .unwrap(),
        ConditionalWrite::Conflict,
        "If-Match on a missing object"
    );
}

/// A sale on 2025-12-01; every offset of one partition below 1000 lands in the same block.
fn sale(offset: i64) -> StoreEvent {
    StoreEvent {
        request_id: format!("r-{offset}"),
        event_type: StoreEventType::Sales,
        store_id: 1,
        cust_id: 2,
        category: "Camera".into(),
        sku: 3,
        price_cents: 1999,
        qty: 1,
        discount_hundredths: 50,
        gift_wrap: false,
        variant: "red".into(),
        priority_shipping: true,
        ts_micros: 1_764_547_200_000_000,
        contact_me: None,
    }
}

fn store_topic() -> String {
    contracts()
        .topics
        .first_carrying(pipeline_contracts::Payload::StoreEvent)
        .name
        .clone()
}

fn store_record(offset: i64) -> KafkaRecord {
    let value = serde_json::to_vec(&store_event_to_json(&sale(offset))).unwrap();
    sample::record(
        &store_topic(),
        0,
        offset,
        1_764_547_200_000,
        None,
        Some(&value),
        None,
    )
}

fn event(records: Vec<KafkaRecord>) -> KafkaEvent {
    sample::event(EventSource::SelfManagedKafka, records)
}

type ArchiveOnly = ConsumerService<
    InMemorySchemaSource,
    InMemoryWindowStore,
    S3Objects,
    InMemoryStoreEventTable,
    InMemoryExplicitEventStore,
    InMemoryPoisonSink,
>;

fn consumer(s3: S3Objects) -> ArchiveOnly {
    ConsumerService::new(
        InMemorySchemaSource::default(),
        Sinks {
            windows: InMemoryWindowStore::default(),
            archive: s3,
            table: InMemoryStoreEventTable::default(),
            explicit: InMemoryExplicitEventStore::default(),
            poison: InMemoryPoisonSink::default(),
        },
        contract_settings(),
    )
}

/// Stores offsets `parity`, `parity + 2`, … one per invocation, redelivering failed ones.
async fn write_every_other(service: &ArchiveOnly, parity: i64, rounds: i64) {
    for round in 0..rounds {
        let offset = 2 * round + parity;
        // The ESM's behaviour on a failed invocation: deliver the batch again.
        let mut attempts = 0;
        while let Err(error) = service.process(&event(vec![store_record(offset)])).await {
            attempts += 1;
            assert!(attempts < 20, "offset {offset} never stored: {error}");
        }
    }
}

#[tokio::test]
async fn two_consumers_writing_one_block_at_once_keep_every_line() {
    let Some(s3) = bucket("concurrent archive writers").await else {
        return;
    };
    // Two mappings on the store topic: each delivers its own records of one block, one record per
    // invocation, both at once.
    let first = consumer(s3.clone());
    let second = consumer(s3.clone());
    let rounds = 12i64;
    // Both on one task, interleaved at every await: each one's reads and writes of the block fall
    // between the other's (the batch loop's future is not Send, so no spawn).
    tokio::join!(
        write_every_other(&first, 0, rounds),
        write_every_other(&second, 1, rounds)
    );
    let row = StoreEventRow {
        coordinates: RecordCoordinates {
            topic: store_topic(),
            partition: 0,
            offset: 0,
        },
        event: sale(0),
    };
    let blocks = group_into_blocks(&[row]).unwrap();
    let key = blocks
        .keys()
        .next()
        .unwrap()
        .object_key(&contracts().bucket.store_events_prefix);
    let stored = s3.get(&key).await.unwrap().expect("block written");
    let offsets: Vec<i64> = decode_block(&stored.bytes)
        .unwrap()
        .iter()
        .map(|l| l.offset)
        .collect();
    assert_eq!(
        offsets,
        (0..2 * rounds).collect::<Vec<_>>(),
        "a writer's lines were lost"
    );
}
