//! Two writers of one archive block never lose each other's lines (issue 12, item 9).

use super::*;
use crate::consume::archive::{decode_block, group_into_blocks};
use crate::consume::ports::{ObjectStore, StoreEventRow};

fn store_record(partition: i32, offset: i64) -> KafkaRecord {
    // Same day for every offset, so one block holds them all.
    let mut event = store_event(offset, StoreEventType::Sales);
    event.ts_micros = 1_700_000_000_000_000;
    record(store_topic(), partition, offset, Some(&store_avro(&event)))
}

fn block_offsets(bytes: &[u8]) -> Vec<i64> {
    decode_block(bytes).unwrap().iter().map(|l| l.offset).collect()
}

#[tokio::test]
async fn a_block_written_by_another_writer_after_our_read_keeps_its_lines() {
    let service = service();
    // What the other writer (a second mapping on the store topic) holds: offsets 1 and 2.
    let theirs: Vec<StoreEventRow> = [1, 2]
        .iter()
        .map(|&o| {
            let mut event = store_event(o, StoreEventType::Sales);
            event.ts_micros = 1_700_000_000_000_000;
            StoreEventRow {
                coordinates: RecordCoordinates {
                    topic: store_topic().into(),
                    partition: 0,
                    offset: o,
                },
                event,
            }
        })
        .collect();
    let blocks = group_into_blocks(&theirs).unwrap();
    let (id, lines) = blocks.iter().next().unwrap();
    let key = id.object_key(&contracts().bucket.store_events_prefix);
    let their_bytes = archive::merge_block(None, lines).unwrap().unwrap();

    // We read the block (absent), they write it, then we write offsets 3 and 4.
    service.sinks().archive.interfere(&key, their_bytes);
    let summary = service
        .process(&event_of([store_record(0, 3), store_record(0, 4)]))
        .await
        .unwrap();
    assert_eq!(summary.archive_objects_written, 1);
    let stored = service.sinks().archive.snapshot();
    assert_eq!(
        block_offsets(&stored[&key]),
        vec![1, 2, 3, 4],
        "no writer's lines are lost"
    );
    assert_eq!(
        service.sinks().archive.conflicts(),
        1,
        "the first write was refused"
    );

    // And with a stored object: they add offset 5 between our read and our write of offset 6.
    let mut with_five = decode_block(&stored[&key]).unwrap();
    let mut five = with_five[0].clone();
    five.offset = 5;
    with_five.push(five);
    service
        .sinks()
        .archive
        .interfere(&key, archive::encode_block(with_five.iter()));
    service.process(&event_of([store_record(0, 6)])).await.unwrap();
    let stored = service.sinks().archive.snapshot();
    assert_eq!(block_offsets(&stored[&key]), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(service.sinks().archive.conflicts(), 2);
}

#[tokio::test]
async fn a_block_that_keeps_changing_fails_the_batch_for_a_retry() {
    let service = service();
    let record = store_record(0, 7);
    let key = {
        let rows = [StoreEventRow {
            coordinates: RecordCoordinates {
                topic: store_topic().into(),
                partition: 0,
                offset: 7,
            },
            event: {
                let mut e = store_event(7, StoreEventType::Sales);
                e.ts_micros = 1_700_000_000_000_000;
                e
            },
        }];
        group_into_blocks(&rows)
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .object_key(&contracts().bucket.store_events_prefix)
    };
    // A store whose object changes after every read (an endless stream of other writers).
    struct Churning(InMemoryObjectStore);
    impl ObjectStore for Churning {
        async fn get(&self, key: &str) -> Result<Option<ports::StoredObject>, crate::ports::PortError> {
            let found = self.0.get(key).await;
            self.0.insert(key, archive::encode_block([].iter()));
            found
        }
        async fn put(
            &self,
            key: &str,
            bytes: Vec<u8>,
            t: &'static str,
        ) -> Result<(), crate::ports::PortError> {
            self.0.put(key, bytes, t).await
        }
        async fn put_if(
            &self,
            key: &str,
            bytes: Vec<u8>,
            t: &'static str,
            c: ports::WriteCondition,
        ) -> Result<ports::ConditionalWrite, crate::ports::PortError> {
            self.0.put_if(key, bytes, t, c).await
        }
    }
    let mut settings = service.settings().clone();
    settings.retry = fast_retry();
    let churning = ConsumerService::new(
        registry(),
        Sinks {
            windows: InMemoryWindowStore::default(),
            archive: Churning(InMemoryObjectStore::default()),
            table: InMemoryStoreEventTable::default(),
            explicit: InMemoryExplicitEventStore::default(),
            poison: InMemoryPoisonSink::default(),
        },
        settings,
    );
    let error = churning.process(&event_of([record])).await.unwrap_err();
    let BatchError::Sinks(failures) = &error else {
        panic!("{error}")
    };
    assert_eq!(failures[0].sink, super::super::batch::SINK_ARCHIVE);
    assert!(failures[0].error.is_transient(), "the ESM retries it: {error}");
    assert!(error.to_string().contains(&key), "{error}");
}
