//! The Kafka publisher against a real broker (KAFKA_BOOTSTRAP_SERVERS, tansu locally): records
//! land where the Java client's partitioner would put them, with the reported offsets, in order.

mod support;

use std::collections::BTreeMap;

use pipeline_adapters::kafka::{partition_for_key, KafkaPublisher, KafkaSettings};
use pipeline_domain::ports::PortError;
use pipeline_domain::produce::{EventPublisher, OutgoingRecord};
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::record::RecordAndOffset;

const PARTITIONS: i32 = 4;

async fn publisher(test: &str) -> Option<KafkaPublisher> {
    let bootstrap = support::endpoint("KAFKA_BOOTSTRAP_SERVERS", test)?;
    let servers = bootstrap.split(',').map(str::to_string).collect();
    Some(
        KafkaPublisher::connect(&KafkaSettings::plaintext(servers))
            .await
            .expect("connect"),
    )
}

async fn fresh_topic(publisher: &KafkaPublisher) -> String {
    let topic = support::unique("it-publisher");
    publisher
        .client()
        .controller_client()
        .unwrap()
        .create_topic(&topic, PARTITIONS, 1, 10_000)
        .await
        .expect("create topic");
    topic
}

async fn read_partition(publisher: &KafkaPublisher, topic: &str, partition: i32) -> Vec<RecordAndOffset> {
    let client = publisher
        .client()
        .partition_client(topic, partition, UnknownTopicHandling::Retry)
        .await
        .unwrap();
    let end = client.get_offset(OffsetAt::Latest).await.unwrap();
    let mut out = Vec::new();
    let mut next = client.get_offset(OffsetAt::Earliest).await.unwrap();
    while next < end {
        let (records, _high_watermark) = client.fetch_records(next, 1..10_000_000, 1_000).await.unwrap();
        assert!(!records.is_empty(), "fetch made no progress at {next} of {end}");
        next = records.last().map(|r| r.offset + 1).unwrap_or(end);
        out.extend(records);
    }
    out
}

fn outgoing(key: Option<&str>, value: &str, ts: i64) -> OutgoingRecord {
    OutgoingRecord {
        key: key.map(|k| k.as_bytes().to_vec()),
        value: value.as_bytes().to_vec(),
        headers: vec![("event-id".into(), format!("id-{value}").into_bytes())],
        timestamp_ms: ts,
    }
}

#[tokio::test]
async fn keyed_records_land_on_the_java_partition_with_reported_offsets_in_order() {
    let Some(publisher) = publisher("kafka keyed publish").await else {
        return;
    };
    let topic = fresh_topic(&publisher).await;
    assert_eq!(publisher.partition_count(&topic).await.unwrap(), PARTITIONS);

    let records: Vec<OutgoingRecord> = (0..60)
        .map(|i| {
            outgoing(
                Some(&format!("device-{:05}", i % 12)),
                &format!("v{i}"),
                1_700_000_000_000 + i,
            )
        })
        .collect();
    let deliveries = publisher.publish(&topic, records.clone()).await.unwrap();
    assert_eq!(deliveries.len(), records.len());

    let mut fetched: BTreeMap<(i32, i64), RecordAndOffset> = BTreeMap::new();
    for partition in 0..PARTITIONS {
        for r in read_partition(&publisher, &topic, partition).await {
            fetched.insert((partition, r.offset), r);
        }
    }
    assert_eq!(fetched.len(), records.len());
    for (sent, delivery) in records.iter().zip(&deliveries) {
        let key = sent.key.as_deref().unwrap();
        assert_eq!(delivery.partition, partition_for_key(key, PARTITIONS));
        let got = &fetched[&(delivery.partition, delivery.offset)];
        assert_eq!(got.record.key.as_deref(), Some(key));
        assert_eq!(got.record.value.as_deref(), Some(sent.value.as_slice()));
        assert_eq!(got.record.headers["event-id"], sent.headers[0].1);
        assert_eq!(got.record.timestamp.timestamp_millis(), sent.timestamp_ms);
    }
    // Per key, offsets grow in publish order.
    let mut last: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
    for (sent, delivery) in records.iter().zip(&deliveries) {
        let key = sent.key.clone().unwrap();
        if let Some(previous) = last.insert(key, delivery.offset) {
            assert!(delivery.offset > previous);
        }
    }

    // Publishing again keeps every key on its partition.
    let again = publisher.publish(&topic, records.clone()).await.unwrap();
    for (a, b) in deliveries.iter().zip(&again) {
        assert_eq!(a.partition, b.partition);
    }
}

#[tokio::test]
async fn unkeyed_records_spread_round_robin_and_large_requests_are_batched() {
    let Some(publisher) = publisher("kafka unkeyed publish").await else {
        return;
    };
    let topic = fresh_topic(&publisher).await;
    // 3 000 records of 1 KiB: several Produce batches per partition.
    let big = "x".repeat(1024);
    let records: Vec<OutgoingRecord> = (0..3_000)
        .map(|i| outgoing(None, &format!("{i}-{big}"), i))
        .collect();
    let deliveries = publisher.publish(&topic, records).await.unwrap();
    let mut per_partition = [0usize; PARTITIONS as usize];
    for d in &deliveries {
        per_partition[d.partition as usize] += 1;
    }
    assert!(per_partition.iter().all(|n| *n == 750), "{per_partition:?}");
    for partition in 0..PARTITIONS {
        let fetched = read_partition(&publisher, &topic, partition).await;
        assert_eq!(fetched.len(), 750);
        // Within a partition, records keep the order they were given in.
        let numbers: Vec<i64> = fetched
            .iter()
            .map(|r| {
                let value = String::from_utf8(r.record.value.clone().unwrap()).unwrap();
                value.split('-').next().unwrap().parse().unwrap()
            })
            .collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]));
    }
}

#[tokio::test]
async fn an_unknown_topic_is_a_clear_error_and_nothing_is_delivered() {
    let Some(publisher) = publisher("kafka unknown topic").await else {
        return;
    };
    let topic = support::unique("it-missing");
    let err = publisher
        .publish(&topic, vec![outgoing(Some("k"), "v", 0)])
        .await
        .unwrap_err();
    assert_eq!(err.delivered_count(), 0);
    assert!(matches!(err.source, PortError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains(&topic), "{err}");
}

#[tokio::test]
async fn scram_credentials_come_from_a_secrets_manager_secret() {
    if support::endpoint("AWS_ENDPOINT_URL", "kafka scram secret").is_none() {
        return;
    }
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    let name = format!("AmazonMSK_{}", support::unique("it"));
    let created = secrets
        .create_secret()
        .name(&name)
        .secret_string(r#"{"username":"producer","password":"pa55-word"}"#)
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap();
    let auth = pipeline_adapters::kafka::scram_credentials(&secrets, arn)
        .await
        .unwrap();
    assert_eq!(
        auth,
        pipeline_adapters::kafka::KafkaAuth::Scram {
            username: "producer".into(),
            password: "pa55-word".into()
        }
    );
    let missing = pipeline_adapters::kafka::scram_credentials(&secrets, &format!("{arn}-missing")).await;
    assert!(missing.is_err());
}
