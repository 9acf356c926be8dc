//! The consumer against real local servers: moto (DynamoDB, S3, SQS, Secrets Manager, Glue) and
//! PostgreSQL. Runs the same `app::build` + `app::handle` the Lambda runs, on ESM events built from
//! encoded records, and checks every sink against a ground truth computed here from the records
//! themselves. Then replays everything, whole and in random parts, and requires byte-identical
//! state. Every run creates its own tables, bucket, queue, registry, secret and database.
//!
//! Each run's database is provisioned as on AWS (`postgres_schema::provision`, what db-admin
//! runs at deploy time) with a role of its own, and the consumer connects as that role.
//!
//! Needs `AWS_ENDPOINT_URL`, `PG_HOST`/`PG_PORT`/`PG_DATABASE` and the local admin
//! `PIPELINE_PG_ADMIN_USER`/`PIPELINE_PG_ADMIN_PASSWORD` (source `.local/stack.env`); without them
//! the tests skip, unless `PIPELINE_REQUIRE_STACK=1`.
//!
//! The consumer's own clients use the recording endpoint acting as the consumer (set-up and
//! assertions use `AWS_ENDPOINT_URL`), and it reads the registry through the role
//! `PIPELINE_LOCAL_REGISTRY_ROLE_ARN` names with a real STS AssumeRole, as on AWS; each run
//! declares the configuration it ran the consumer with (`pipeline_test_recording`).

mod environment;
mod ground_truth;
mod resources;
mod sinks;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use consumer::app;
use consumer::testkit;
use pipeline_contracts::contracts;
use pipeline_domain::event::{EventSource, KafkaRecord};
use pipeline_domain::model::{StoreEvent, StoreEventType};
use serde_json::{json, Value as Json};

use crate::environment::{stack_available, Rng};
use crate::ground_truth::{batches, expected_window_items, hundredths_text, produce};
use crate::resources::{consumer, pg_admin, stack};
use crate::sinks::{
    assert_same, attribute_json, attribute_text, drain_queue, gunzip_lines, objects, scan, snapshot,
    table_rows,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_matches_ground_truth_and_replays_change_nothing() {
    let test = "consumer_matches_ground_truth_and_replays_change_nothing";
    if !stack_available(test) {
        return;
    }
    let stack = stack().await;
    let consumer = consumer(&stack).await;
    let produced = produce(stack.ids, 42);
    let mut rng = Rng::new(7);
    let events = batches(&produced.records, &mut rng);
    assert!(events.len() >= 5, "several batches");

    let mut poison_seen = 0;
    for event in &events {
        let response = app::handle(&consumer, &testkit::body(event), test)
            .await
            .expect("batch succeeds");
        assert_eq!(response.summary.records, event.record_count());
        poison_seen += response.summary.poison;
    }
    assert_eq!(poison_seen, produced.poison.len());
    let c = contracts();

    // DynamoDB window aggregates: every attribute of every item.
    let items = scan(&stack.sdk, &stack.config.aggregates_table).await;
    let actual: BTreeMap<(String, String), BTreeMap<String, String>> = items
        .iter()
        .map(|item| {
            let attrs: BTreeMap<String, String> =
                item.iter().map(|(k, v)| (k.clone(), attribute_text(v))).collect();
            ((attrs["device_id"].clone(), attrs["window_start"].clone()), attrs)
        })
        .collect();
    let expected = expected_window_items(&produced);
    assert_eq!(actual.len(), expected.len(), "window count");
    for (key, attrs) in &expected {
        assert_eq!(actual.get(key), Some(attrs), "window {key:?}");
    }
    let window_start = &items[0][&c.tables.window_aggregates.sort_key];
    assert!(
        matches!(window_start, AttributeValue::N(_)),
        "window_start is a Number"
    );

    // DynamoDB explicit events: one item per record, payload as native attributes.
    let (ledgers, generic): (Vec<_>, Vec<_>) = scan(&stack.sdk, &stack.config.explicit_events_table)
        .await
        .into_iter()
        .partition(|item| {
            item.get(&c.tables.explicit_events.sort_key) == Some(&AttributeValue::N("-1".into()))
        });
    assert_eq!(generic.len(), produced.explicit.len());
    // One partition ledger per partition the consumer read (re-created topics, issue 12 item 11).
    let partitions: BTreeSet<String> = produced
        .records
        .iter()
        .map(|r| format!("{}-{}", r.topic, r.partition))
        .collect();
    let ledger_partitions: BTreeSet<String> = ledgers
        .iter()
        .map(|item| attribute_text(&item[&c.tables.explicit_events.partition_key]))
        .collect();
    assert_eq!(ledger_partitions, partitions);
    let by_key: HashMap<(String, String), &HashMap<String, AttributeValue>> = generic
        .iter()
        .map(|item| {
            (
                (
                    attribute_text(&item[&c.tables.explicit_events.partition_key]),
                    attribute_text(&item[&c.tables.explicit_events.sort_key]),
                ),
                item,
            )
        })
        .collect();
    for (topic, partition, offset, document) in &produced.explicit {
        let item = by_key[&(format!("{topic}-{partition}"), offset.to_string())];
        assert_eq!(
            &attribute_json(&item["payload"]),
            document,
            "{topic}-{partition}@{offset}"
        );
    }

    // S3: deterministic block objects holding exactly the store events, sorted by offset.
    let stored = objects(&stack.sdk, &stack.config.store_events_bucket).await;
    let mut expected_blocks: BTreeMap<String, Vec<(i64, &StoreEvent)>> = BTreeMap::new();
    for (topic, partition, offset, event) in &produced.store_events {
        let date = chrono::DateTime::from_timestamp_micros(event.ts_micros)
            .unwrap()
            .format("%Y-%m-%d");
        let key = format!(
            "{}event_type={}/date={date}/{topic}-{partition}-{}.ndjson.gz",
            c.bucket.store_events_prefix,
            match event.event_type {
                StoreEventType::Sales => "sales_event",
                StoreEventType::Inventory => "inventory_event",
            },
            offset / 1000 * 1000
        );
        expected_blocks.entry(key).or_default().push((*offset, event));
    }
    let archive_keys: BTreeSet<&String> = stored
        .keys()
        .filter(|k| k.starts_with(&c.bucket.store_events_prefix))
        .collect();
    assert_eq!(archive_keys, expected_blocks.keys().collect::<BTreeSet<_>>());
    assert!(
        expected_blocks.keys().any(|k| k.ends_with("-1000.ndjson.gz")),
        "a block boundary is crossed"
    );
    assert!(
        expected_blocks.keys().any(|k| k.contains("date=2026-01-01")),
        "events span two dates"
    );
    for (key, mut events) in expected_blocks {
        events.sort_by_key(|(o, _)| *o);
        let (bytes, _) = &stored[&key];
        assert_eq!(
            &bytes[..8],
            &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0],
            "{key}: fixed gzip header"
        );
        let lines = gunzip_lines(bytes);
        assert_eq!(lines.len(), events.len(), "{key}");
        for (line, (offset, event)) in lines.iter().zip(&events) {
            assert_eq!(line["offset"], json!(offset));
            assert_eq!(line["event"]["request_id"], json!(event.request_id));
            assert_eq!(line["event"]["price"], json!(hundredths_text(event.price_cents)));
            assert_eq!(
                line["event"]["discount"],
                json!(hundredths_text(event.discount_hundredths))
            );
            assert_eq!(line["event"]["ts"], json!(event.ts_micros));
        }
    }

    // PostgreSQL: one row per store event in the table of its type, money exact.
    let pg = pg_admin(&stack.database).await;
    for (event_type, table) in [
        (StoreEventType::Sales, &c.postgres.sales_table),
        (StoreEventType::Inventory, &c.postgres.inventory_table),
    ] {
        let rows = pg
            .query(
                &format!(
                    r#"SELECT topic, partition, "offset", request_id, price::text, discount::text, qty, contact_me,
                       to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US')
                       FROM "{table}" ORDER BY topic, partition, "offset""#
                ),
                &[],
            )
            .await
            .expect("select");
        let actual: Vec<String> = rows
            .iter()
            .map(|r| {
                format!(
                    "{}|{}|{}|{}|{}|{}|{}|{:?}|{}",
                    r.get::<_, String>(0),
                    r.get::<_, i32>(1),
                    r.get::<_, i64>(2),
                    r.get::<_, String>(3),
                    r.get::<_, String>(4),
                    r.get::<_, String>(5),
                    r.get::<_, i32>(6),
                    r.get::<_, Option<String>>(7),
                    r.get::<_, String>(8)
                )
            })
            .collect();
        let mut expected: Vec<(String, i32, i64, String)> = produced
            .store_events
            .iter()
            .filter(|(_, _, _, e)| e.event_type == event_type)
            .map(|(t, p, o, e)| {
                let time = chrono::DateTime::from_timestamp_micros(e.ts_micros)
                    .unwrap()
                    .format("%Y-%m-%dT%H:%M:%S%.6f");
                (
                    t.clone(),
                    *p,
                    *o,
                    format!(
                        "{t}|{p}|{o}|{}|{}|{}|{}|{:?}|{time}",
                        e.request_id,
                        hundredths_text(e.price_cents),
                        hundredths_text(e.discount_hundredths),
                        e.qty,
                        e.contact_me
                    ),
                )
            })
            .collect();
        expected.sort();
        assert_eq!(
            actual,
            expected.into_iter().map(|e| e.3).collect::<Vec<_>>(),
            "{table}"
        );
    }

    // Replays: all batches again, then random parts of random earlier batches.
    let before = snapshot(&stack).await;
    for event in &events {
        let response = app::handle(&consumer, &testkit::body(event), test)
            .await
            .expect("replay succeeds");
        assert_eq!(response.summary.windows_written, 0, "replay rewrote a window");
        assert_eq!(response.summary.rows_inserted, 0, "replay inserted rows");
        assert_eq!(
            response.summary.archive_objects_written, 0,
            "replay rewrote an object"
        );
    }
    for _ in 0..6 {
        let source = &events[rng.below(events.len() as u64) as usize];
        let part: Vec<KafkaRecord> = source.records().filter(|_| rng.below(3) != 0).cloned().collect();
        let response = app::handle(
            &consumer,
            &testkit::body(&testkit::event(EventSource::Msk, part)),
            test,
        )
        .await
        .expect("partial replay succeeds");
        assert_eq!(response.summary.windows_written, 0);
    }
    // A fresh cold start (new connections, empty caches) replaying the stream also changes nothing.
    let second = self::consumer(&stack).await;
    for event in &events {
        app::handle(&second, &testkit::body(event), test)
            .await
            .expect("replay after cold start");
    }
    let after = snapshot(&stack).await;
    assert_same(&before, &after);

    // The poison queue: each poison record exactly once, with coordinates, reason and raw bytes.
    let bodies = drain_queue(&stack.sdk, &stack.config.poison_queue_url).await;
    let mut seen: BTreeMap<(String, i32, i64), &'static str> = BTreeMap::new();
    let raw_by_coordinates: HashMap<(String, i32, i64), &KafkaRecord> = produced
        .records
        .iter()
        .map(|r| ((r.topic.clone(), r.partition, r.offset), r))
        .collect();
    for body in &bodies {
        let key = (
            body["topic"].as_str().unwrap().to_string(),
            body["partition"].as_i64().unwrap() as i32,
            body["offset"].as_i64().unwrap(),
        );
        let expected_kind = produced
            .poison
            .get(&key)
            .unwrap_or_else(|| panic!("unexpected poison {key:?}"));
        assert_eq!(
            body["reason_kind"],
            json!(expected_kind),
            "{key:?}: {}",
            body["reason"]
        );
        assert!(!body["reason"].as_str().unwrap().is_empty());
        let raw = raw_by_coordinates[&key];
        let full = match body.get("offloaded") {
            Some(pointer) => {
                let object = &after.objects[pointer["key"].as_str().unwrap()].0;
                assert!(pointer["key"]
                    .as_str()
                    .unwrap()
                    .starts_with(&c.bucket.oversize_poison_prefix));
                serde_json::from_slice::<Json>(object).expect("offloaded message is JSON")
            }
            None => body.clone(),
        };
        assert_eq!(
            full["value_base64"],
            json!(raw.value),
            "{key:?}: raw value travels"
        );
        assert_eq!(full["key_base64"], json!(raw.key), "{key:?}: raw key travels");
        assert_eq!(full["timestamp"], json!(raw.timestamp));
        if let Some(headers) = &raw.headers {
            assert_eq!(full["headers"], serde_json::to_value(headers).unwrap());
        }
        assert!(
            seen.insert(key, expected_kind).is_none(),
            "duplicate poison message"
        );
    }
    assert_eq!(
        seen, produced.poison,
        "every poison record reaches the queue exactly once"
    );
    assert!(
        produced.poison.values().any(|k| *k == "too_large"),
        "the run includes an oversize value (offloaded to S3)"
    );
    println!(
        "run {} passed: {} records, {} batches",
        stack.run,
        produced.records.len(),
        events.len()
    );
    drop((consumer, second));
    stack.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_database_connection_is_reopened_within_the_batch() {
    let test = "a_dropped_database_connection_is_reopened_within_the_batch";
    if !stack_available(test) {
        return;
    }
    let stack = stack().await;
    let consumer = consumer(&stack).await;
    let produced = produce(stack.ids, 99);
    let store_records: Vec<KafkaRecord> = produced
        .records
        .iter()
        .filter(|r| {
            r.topic
                == contracts()
                    .topics
                    .first_carrying(pipeline_contracts::Payload::StoreEvent)
                    .name
        })
        .cloned()
        .collect();
    let (first, second) = store_records.split_at(store_records.len() / 2);
    app::handle(
        &consumer,
        &testkit::body(&testkit::event(EventSource::SelfManagedKafka, first.to_vec())),
        test,
    )
    .await
    .expect("first batch");

    // Kill the consumer's session from the server side, as a failover or idle timeout would.
    let killed: i64 = pg_admin(&stack.database)
        .await
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
             WHERE datname = $1 AND application_name = $2 AND pid <> pg_backend_pid()",
            &[&stack.database, &consumer::config::PG_APPLICATION_NAME],
        )
        .await
        .expect("terminate")
        .get(0);
    assert!(killed >= 1, "the consumer had a session to kill");

    let response = app::handle(
        &consumer,
        &testkit::body(&testkit::event(EventSource::SelfManagedKafka, second.to_vec())),
        test,
    )
    .await
    .expect("the batch reconnects and succeeds");
    let expected_second = produced
        .store_events
        .iter()
        .filter(|(t, p, o, _)| {
            second
                .iter()
                .any(|r| &r.topic == t && r.partition == *p && r.offset == *o)
        })
        .count();
    assert_eq!(response.summary.rows_inserted as usize, expected_second);
    let c = contracts();
    let total = table_rows(&stack.database, &c.postgres.sales_table).await.len()
        + table_rows(&stack.database, &c.postgres.inventory_table)
            .await
            .len();
    assert_eq!(total, produced.store_events.len());
    drop(consumer);
    stack.cleanup().await;
}
