//! A topic deleted and created again reuses coordinates the sinks already hold (issue 12, item
//! 11): the consumer refuses such a batch instead of taking its records for stored ones.

use super::*;

fn store_records(timestamp_base: i64, first_event: i64) -> Vec<KafkaRecord> {
    (0..4)
        .map(|offset| {
            let event = store_event(first_event + offset, StoreEventType::Sales);
            let mut r = record(store_topic(), 0, offset, Some(&store_avro(&event)));
            r.timestamp = timestamp_base + offset;
            r
        })
        .collect()
}

#[tokio::test]
async fn a_re_created_topic_is_refused_before_any_sink_is_written() {
    let service = service();
    let old = store_records(1_764_547_200_000, 0);
    service.process(&event_of(old.clone())).await.unwrap();
    let before = snapshot(&service);
    assert_eq!(before.rows.len(), 4);

    // The topic is deleted and created again: offsets restart at 0 with other records.
    let new = store_records(1_764_633_600_000, 100);
    let outcome = service.process(&event_of(new[..2].to_vec())).await;
    let error = outcome.expect_err("new records at stored coordinates must not pass as stored");
    assert!(error.to_string().contains("created again"), "{error}");
    assert_eq!(
        snapshot(&service),
        before,
        "nothing of the refused batch was written"
    );

    // Redeliveries and partial replays of the old records still pass and change nothing.
    service.process(&event_of(old[1..3].to_vec())).await.unwrap();
    service.process(&event_of(old.clone())).await.unwrap();
    assert_eq!(snapshot(&service), before);
}

#[tokio::test]
async fn records_below_the_first_stored_offset_apply_then_a_reused_offset_is_refused() {
    let service = service();
    // The old topic was first read from LATEST at offset 2.
    let old = store_records(1_764_547_200_000, 0);
    service.process(&event_of(old[2..].to_vec())).await.unwrap();
    // Its own earlier offsets (a group reset) apply and widen what is remembered.
    service.process(&event_of(old[..2].to_vec())).await.unwrap();
    assert_eq!(snapshot(&service).rows.len(), 4);
    // A re-created topic reaching the remembered offsets is refused.
    let new = store_records(1_764_633_600_000, 100);
    assert!(service.process(&event_of(new[..1].to_vec())).await.is_err());
}
