//! Exactness of the window aggregates whatever the order of first application (issue 12, item 7)
//! and across a change of `WINDOW_SECONDS` (item 8), through the whole batch loop.

use super::*;

/// Per partition, the records of `records` at or above (`upper`) or below the partition's median
/// offset.
fn half(records: &[KafkaRecord], upper: bool) -> Vec<KafkaRecord> {
    let mut by_partition: BTreeMap<(String, i32), Vec<&KafkaRecord>> = BTreeMap::new();
    for r in records {
        by_partition
            .entry((r.topic.clone(), r.partition))
            .or_default()
            .push(r);
    }
    by_partition
        .values()
        .flat_map(|rs| {
            let cut = rs.len() / 2;
            let part = if upper { &rs[cut..] } else { &rs[..cut] };
            part.iter().map(|r| (*r).clone()).collect::<Vec<_>>()
        })
        .collect()
}

fn window_figures(service: &FakeService) -> BTreeMap<(String, i64), (u64, i128, i64, i64)> {
    snapshot(service)
        .windows
        .values()
        .map(|a| {
            (
                (a.device_id.clone(), a.window_start_ms),
                (a.count, a.sum_milli, a.min_milli, a.max_milli),
            )
        })
        .collect()
}

#[tokio::test]
async fn offsets_below_those_already_applied_are_applied_once_in_any_order() {
    for seed in 1..=10u64 {
        let records = stream(seed + 300, 240);
        let truth = expected_windows(&records);

        // A mapping that started at LATEST applies the upper halves first; the lower halves come
        // later (a group reset, a re-driven batch); then everything again.
        let subject = service();
        let mut rng = Rng::new(seed);
        for batch in batches(&half(&records, true), &mut rng) {
            deliver(&subject, batch).await;
        }
        for batch in batches(&half(&records, false), &mut rng) {
            deliver(&subject, batch).await;
        }
        assert_eq!(
            window_figures(&subject),
            truth,
            "seed {seed}: readings lost or counted twice"
        );
        let settled = snapshot(&subject);
        deliver(&subject, records.clone()).await;
        assert_eq!(
            snapshot(&subject),
            settled,
            "seed {seed}: the replay changed a sink"
        );

        // And the result is the one of an in-order run, byte for byte.
        let in_order = service();
        deliver(&in_order, records.clone()).await;
        assert_eq!(snapshot(&in_order), settled, "seed {seed}");
    }
}

fn service_with_window(seconds: u64) -> FakeService {
    let mut settings = ConsumerSettings::new(
        TopicRoutes::from_contract(),
        WindowSpec::from_seconds(seconds).unwrap(),
        contracts().bucket.store_events_prefix.clone(),
    );
    settings.retry = fast_retry();
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

#[tokio::test]
async fn a_window_size_change_never_merges_into_items_of_the_old_size() {
    // Five readings, one per minute, counted in one-minute windows; 2025-12-01T00:00Z starts a
    // one-minute and a five-minute window.
    const START_MS: i64 = 1_764_547_200_000;
    let readings: Vec<KafkaRecord> = (0..5)
        .map(|i| {
            let value = serde_json::to_vec(&reading("d", START_MS + 1_000 + i * 60_000, 20.0)).unwrap();
            record(sensor_topic(), 0, i, Some(&value))
        })
        .collect();
    let minute = service_with_window(60);
    deliver(&minute, readings.clone()).await;
    let stored = minute.sinks().windows.snapshot();
    assert_eq!(stored.len(), 5);
    let first_minute = stored
        .values()
        .find(|a| a.window_start_ms == START_MS)
        .unwrap()
        .clone();

    // WINDOW_SECONDS becomes 300 and the batch is redelivered into the same table: the
    // five-minute window [START, START + 300 s) has the key of the stored one-minute window at 0.
    let five = service_with_window(300);
    five.sinks().windows.interfere(first_minute);
    let outcome = five.process(&event_of(readings)).await;
    let error = outcome.expect_err("merging into a window of another size must be refused");
    assert!(error.to_string().contains("WINDOW_SECONDS"), "{error}");
    for item in five.sinks().windows.snapshot().values() {
        assert!(
            item.last_event_time_ms < item.window_end_ms,
            "an item ending at {} holds a reading at {}",
            item.window_end_ms,
            item.last_event_time_ms
        );
        assert!(item.count <= 1, "a reading was counted again: {item:?}");
    }
}
