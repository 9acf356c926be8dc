//! The handler's two answers to a batch whose sinks fail part-way: without
//! `ReportBatchItemFailures` it fails the invocation; with it, it answers exactly the documented
//! partial-batch response, and delivering again from what that answer names (as the mapping does)
//! ends with the same sinks as a run without failures.

use std::collections::BTreeMap;
use std::time::Duration;

use consumer::app::{self, ConsumerAnswer};
use consumer::testkit;
use pipeline_contracts::{contracts, Payload};
use pipeline_domain::batch_response::KafkaBatchResponse;
use pipeline_domain::consume::batch::{ConsumerService, RetryPolicy};
use pipeline_domain::consume::fakes::*;
use pipeline_domain::event::{EventSource, KafkaEvent, KafkaRecord};
use pipeline_domain::ports::InMemorySchemaSource;

type Consumer = FakeConsumer<InMemorySchemaSource>;

fn consumer() -> Consumer {
    let mut settings = contract_settings();
    // Small chunks, so a failure can come after earlier chunks were stored.
    settings.max_chunk_bytes = 1_500;
    // Two attempts, no waiting: the fakes fail at random, and a test need not sleep through backoff.
    settings.retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
    };
    ConsumerService::new(InMemorySchemaSource::default(), FakeSinks::default(), settings)
}

/// Sensor readings over three partitions, a few windows each.
fn readings() -> Vec<KafkaRecord> {
    let topic = &contracts()
        .topics
        .carrying(Payload::SensorReading)
        .next()
        .expect("the contract has a sensor topic")
        .name;
    (0..3)
        .flat_map(|partition| {
            (0..40).map(move |offset| {
                let value = serde_json::json!({
                    "device_id": format!("device-{}", offset % 4),
                    "event_time": 1_767_225_600_000i64 + offset * 7_000,
                    "temperature": 20.0 + (offset % 9) as f64,
                });
                testkit::record(
                    topic,
                    partition,
                    100 + offset,
                    1_767_225_600_000,
                    None,
                    Some(value.to_string().as_bytes()),
                    None,
                )
            })
        })
        .collect()
}

fn event(records: Vec<KafkaRecord>) -> KafkaEvent {
    testkit::event(EventSource::Msk, records)
}

#[tokio::test]
async fn a_partly_stored_batch_is_answered_with_the_partial_batch_response_only_when_the_mapping_honours_it()
{
    let clean = consumer();
    app::handle(&clean, &testkit::body(&event(readings())), "partial-test")
        .await
        .expect("no failures: the whole batch is stored");
    let expected = clean.sinks().windows.snapshot();

    let mut partial_answers = 0;
    for seed in [5u64, 11, 23, 37] {
        let subject = consumer();
        subject.sinks().windows.faults.fail_randomly(seed, 400);
        let mut pending = event(readings());
        let mut answered = false;
        for _ in 0..200 {
            match app::handle_partial(&subject, &testkit::body(&pending), "partial-test").await {
                Ok(ConsumerAnswer::Processed(_)) => {
                    answered = true;
                    break;
                }
                Ok(ConsumerAnswer::RedeliverFrom(partial)) => {
                    partial_answers += 1;
                    // Exactly the documented body, nothing else beside it.
                    let body = serde_json::to_value(ConsumerAnswer::RedeliverFrom(partial.clone())).unwrap();
                    assert_eq!(
                        body.as_object().unwrap().keys().collect::<Vec<_>>(),
                        vec!["batchItemFailures"]
                    );
                    let resume = KafkaBatchResponse::parse_resume_points(body.to_string().as_bytes())
                        .expect("the mapping can read the answer")
                        .expect("the answer names partitions");
                    let delivered: BTreeMap<String, (i64, i64)> = pending
                        .records
                        .iter()
                        .map(|(key, records)| {
                            (
                                key.clone(),
                                (records[0].offset, records[records.len() - 1].offset),
                            )
                        })
                        .collect();
                    for (partition, offset) in &resume {
                        let (first, last) = delivered[partition];
                        assert!(
                            (first..=last).contains(offset),
                            "{partition}@{offset} is not in the delivered {first}..={last}"
                        );
                    }
                    // As the mapping does: each named partition again from its offset; the
                    // others (and everything before the offsets) committed.
                    let rest: Vec<KafkaRecord> = pending
                        .records()
                        .filter(|r| {
                            resume
                                .get(&r.coordinates().topic_partition())
                                .is_some_and(|o| r.offset >= *o)
                        })
                        .cloned()
                        .collect();
                    pending = event(rest);
                }
                // Nothing stored yet: the whole (remaining) batch comes again.
                Err(_) => {}
            }
        }
        assert!(answered, "seed {seed}: the batch was never stored");
        assert_eq!(subject.sinks().windows.snapshot(), expected, "seed {seed}");
    }
    assert!(partial_answers > 0, "no partial answer was exercised");
}

#[tokio::test]
async fn without_report_batch_item_failures_a_partly_stored_batch_fails_the_invocation() {
    for seed in [5u64, 11, 23, 37] {
        let subject = consumer();
        subject.sinks().windows.faults.fail_randomly(seed, 400);
        let strict = app::handle(&subject, &testkit::body(&event(readings())), "partial-test").await;
        let partial_subject = consumer();
        partial_subject.sinks().windows.faults.fail_randomly(seed, 400);
        let partial = app::handle_partial(
            &partial_subject,
            &testkit::body(&event(readings())),
            "partial-test",
        )
        .await;
        match (strict, partial) {
            (Ok(_), Ok(ConsumerAnswer::Processed(_))) => {}
            (Err(_), Err(_)) => {}
            // The one case the two handlers differ in: the strict one fails where the other
            // answers with the records to deliver again (Lambda would commit a success body).
            (Err(_), Ok(ConsumerAnswer::RedeliverFrom(_))) => return,
            (strict, partial) => panic!("seed {seed}: {strict:?} against {partial:?}"),
        }
    }
    panic!("no seed made a sink fail after part of the batch was stored");
}
