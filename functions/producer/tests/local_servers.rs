//! The producer end to end against real local servers: moto (Glue registry, AWS_ENDPOINT_URL) and
//! a Kafka broker (tansu, KAFKA_BOOTSTRAP_SERVERS). Records are read back from the broker with
//! rskafka and checked against an independent ground truth (the seeded simulators and the
//! registry). Without the endpoints the tests skip, unless PIPELINE_REQUIRE_STACK=1.
//!
//! The producer's own clients use the recording endpoint acting as the producer; creating the
//! registry (CDK's job on AWS) and reading back are the test's own calls (`AWS_ENDPOINT_URL`).

use std::collections::{BTreeMap, HashMap};

use pipeline_adapters::glue::{glue_client, GlueSchemaRegistry};
use pipeline_adapters::kafka::partition_for_key;
use pipeline_contracts::{contracts, Payload};
use pipeline_domain::payload::{decode_avro, sensor_from_avro, sensor_from_json, store_event_from_avro};
use pipeline_domain::ports::{PortError, SchemaSource};
use pipeline_domain::produce::{ProduceError, ProduceSummary, EVENT_ID_HEADER};
use pipeline_domain::schema::json_to_avro;
use pipeline_domain::simulate::{simulate_sensor_readings, SensorSimulation};
use pipeline_domain::wire::{classify, Compression, WireValue};
use producer::app::{build, error_type, handle, parse_request, Producer};
use producer::config::ProducerConfig;
use rskafka::client::partition::UnknownTopicHandling;
use rskafka::record::RecordAndOffset;
use serde_json::{json, Value as Json};

fn endpoint(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ if std::env::var("PIPELINE_REQUIRE_STACK").as_deref() == Ok("1") => {
            panic!("{test}: {var} is not set and PIPELINE_REQUIRE_STACK=1")
        }
        _ => {
            eprintln!("SKIP {test}: {var} is not set (scripts/local-stack.sh up; source .local/stack.env)");
            None
        }
    }
}

struct Harness {
    producer: Producer,
    registry_reader: GlueSchemaRegistry,
}

/// A producer wired from the environment, with fresh topics (contract partition counts) so test
/// runs never see each other's records.
async fn harness(test: &str) -> Option<Harness> {
    endpoint("KAFKA_BOOTSTRAP_SERVERS", test)?;
    endpoint("AWS_ENDPOINT_URL", test)?;
    let run = uuid::Uuid::new_v4().simple().to_string();
    let variable = |payload: Payload| contracts().topics.first_carrying(payload).env_var.clone();
    let overrides: HashMap<String, String> = HashMap::from([
        (variable(Payload::SensorReading), format!("it-sensors-{run}")),
        (variable(Payload::StoreEvent), format!("it-store-{run}")),
        (variable(Payload::Explicit), format!("it-explicit-{run}")),
    ]);
    let config =
        ProducerConfig::from_lookup(|name| overrides.get(name).cloned().or_else(|| std::env::var(name).ok()))
            .expect("config");
    pipeline_test_recording::declare_environment(
        "producer",
        overrides.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .expect("declare the producer's configuration for the IAM check");
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    // Through the loader: an endpoint set on a built SdkConfig loses to AWS_ENDPOINT_URL.
    let producer_sdk = match pipeline_test_recording::endpoint_acting_as("producer") {
        Some(url) => {
            pipeline_adapters::aws::sdk_config_loader()
                .endpoint_url(url)
                .load()
                .await
        }
        None => sdk.clone(),
    };
    let producer = build(&config, &producer_sdk).await.expect("build");
    GlueSchemaRegistry::new(glue_client(&sdk, None).await, &config.registry_name)
        .ensure_registry()
        .await
        .expect("registry");
    let topics = &contracts().topics;
    let controller = producer.publisher().client().controller_client().unwrap();
    for (name, partitions) in [
        (
            &config.settings.sensor_topic,
            topics.first_carrying(Payload::SensorReading).partitions,
        ),
        (
            &config.settings.store_topic,
            topics.first_carrying(Payload::StoreEvent).partitions,
        ),
        (
            &config.settings.explicit_topic,
            topics.first_carrying(Payload::Explicit).partitions,
        ),
    ] {
        controller
            .create_topic(name, partitions as i32, 1, 10_000)
            .await
            .expect("create topic");
    }
    // A second adapter with an empty cache reads what consumers would read.
    let registry_reader = GlueSchemaRegistry::new(glue_client(&sdk, None).await, &config.registry_name);
    Some(Harness {
        producer,
        registry_reader,
    })
}

/// Every record of every partition of `topic`, as (partition, record).
async fn read_topic(producer: &Producer, topic: &str) -> Vec<(i32, RecordAndOffset)> {
    let partitions = producer.publisher().partition_count(topic).await.unwrap();
    let mut out = Vec::new();
    for partition in 0..partitions {
        let client = producer
            .publisher()
            .client()
            .partition_client(topic, partition, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        // Read up to the high watermark that Fetch reports, rather than asking ListOffsets: tansu
        // answers ListOffsets for a partition that never received a record with
        // UnknownTopicOrPartition, and some partitions of a fresh test topic stay empty.
        let mut next = 0;
        loop {
            let (records, high_watermark) = client.fetch_records(next, 1..10_000_000, 1_000).await.unwrap();
            if records.is_empty() {
                assert!(
                    next >= high_watermark,
                    "{topic}-{partition}: no progress at {next} < {high_watermark}"
                );
                break;
            }
            next = records.last().map_or(next, |r| r.offset + 1);
            out.extend(records.into_iter().map(|r| (partition, r)));
            if next >= high_watermark {
                break;
            }
        }
    }
    out
}

/// The fetched records agree with the summary's per-partition offset ranges.
fn assert_offsets_match_summary(summary: &ProduceSummary, fetched: &[(i32, RecordAndOffset)]) {
    let ranges = &summary.partitions[&summary.topic];
    let mut seen: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (partition, r) in fetched {
        seen.entry(*partition).or_default().push(r.offset);
    }
    assert_eq!(ranges.keys().collect::<Vec<_>>(), seen.keys().collect::<Vec<_>>());
    for (partition, offsets) in seen {
        let range = ranges[&partition];
        assert_eq!(range.count, offsets.len() as u64);
        assert_eq!((range.first, range.last), (offsets[0], *offsets.last().unwrap()));
    }
}

async fn run(h: &Harness, request: Json) -> Result<ProduceSummary, ProduceError> {
    handle(&h.producer, request, "producer-it").await
}

#[tokio::test]
async fn simulated_sensors_in_avro_are_framed_registered_and_keyed_to_stable_partitions() {
    let Some(h) = harness("producer sensors avro").await else {
        return;
    };
    let sim = SensorSimulation {
        devices: 7,
        readings_per_device: 12,
        seed: 11,
        start_time_ms: 1_700_000_000_000,
        interval_ms: 5_000,
    };
    let summary = run(
        &h,
        json!({"action": "simulate_sensors", "devices": sim.devices, "readings_per_device": sim.readings_per_device,
               "seed": sim.seed, "start_time_ms": sim.start_time_ms, "interval_ms": sim.interval_ms,
               "compression": "zlib"}),
    )
    .await
    .unwrap();
    assert_eq!(summary.produced["sensor_reading"], 84);
    let version = &summary.schema_versions[0];
    assert_eq!(version.schema_name, "SensorReading");

    // The registry holds the contract's newest definition under that id.
    let definition = h
        .registry_reader
        .schema_version(version.version_id)
        .await
        .unwrap()
        .definition;
    assert_eq!(definition, contracts().schemas["SensorReading"].latest_text());
    let writer = apache_avro::Schema::parse_str(&definition).unwrap();

    let topic = &h.producer.settings().sensor_topic;
    let fetched = read_topic(&h.producer, topic).await;
    assert_eq!(fetched.len(), 84);
    assert_offsets_match_summary(&summary, &fetched);
    let partitions = h.producer.publisher().partition_count(topic).await.unwrap();
    let mut per_device: BTreeMap<String, Vec<pipeline_domain::model::SensorReading>> = BTreeMap::new();
    let mut event_ids = std::collections::BTreeSet::new();
    for (partition, r) in &fetched {
        let value = r.record.value.as_deref().unwrap();
        let WireValue::GlueAvro(frame) = classify(value).unwrap() else {
            panic!("not Glue-framed")
        };
        assert_eq!(value[0], 0x03);
        assert_eq!(frame.schema_version_id, version.version_id);
        assert_eq!(frame.compression, Compression::Zlib);
        let reading = sensor_from_avro(decode_avro(&frame.avro_body().unwrap(), &writer).unwrap()).unwrap();
        let key = r.record.key.as_deref().unwrap();
        assert_eq!(key, reading.device_id.as_bytes());
        assert_eq!(
            *partition,
            partition_for_key(key, partitions),
            "key -> partition like the Java client"
        );
        assert_eq!(r.record.timestamp.timestamp_millis(), reading.event_time);
        assert!(event_ids.insert(r.record.headers[EVENT_ID_HEADER].clone()));
        per_device
            .entry(reading.device_id.clone())
            .or_default()
            .push(reading);
    }
    // Ground truth: the simulator run independently, per device in order.
    let mut expected: BTreeMap<String, Vec<pipeline_domain::model::SensorReading>> = BTreeMap::new();
    for reading in simulate_sensor_readings(&sim) {
        expected
            .entry(reading.device_id.clone())
            .or_default()
            .push(reading);
    }
    for readings in per_device.values_mut() {
        readings.sort_by_key(|r| r.event_time);
    }
    assert_eq!(per_device, expected);

    // A second run reuses the registered version and keeps every device on its partition.
    let again = run(&h, json!({"action": "simulate_sensors", "devices": 7, "readings_per_device": 1, "seed": 11, "start_time_ms": 1_800_000_000_000i64})).await.unwrap();
    assert_eq!(again.schema_versions[0].version_id, version.version_id);
    assert!(!again.schema_versions[0].newly_registered);
    let before: BTreeMap<Vec<u8>, i32> = fetched
        .iter()
        .map(|(p, r)| (r.record.key.clone().unwrap(), *p))
        .collect();
    for (partition, r) in read_topic(&h.producer, topic).await {
        assert_eq!(before[r.record.key.as_ref().unwrap()], partition);
    }
}

#[tokio::test]
async fn simulated_sensors_in_json_are_plain_documents() {
    let Some(h) = harness("producer sensors json").await else {
        return;
    };
    let request = serde_json::from_str::<Json>(include_str!("../events/simulate_sensors_json.json")).unwrap();
    let summary = run(&h, request).await.unwrap();
    assert!(summary.schema_versions.is_empty());
    let fetched = read_topic(&h.producer, &h.producer.settings().sensor_topic).await;
    assert_eq!(fetched.len() as u64, summary.produced["sensor_reading"]);
    assert_offsets_match_summary(&summary, &fetched);
    for (_, r) in &fetched {
        let value = r.record.value.as_deref().unwrap();
        assert!(matches!(classify(value), Ok(WireValue::Json(_))));
        let reading = sensor_from_json(value).unwrap();
        assert_eq!(r.record.key.as_deref(), Some(reading.device_id.as_bytes()));
    }
}

#[tokio::test]
async fn store_events_carry_exactly_the_reported_share_of_poison() {
    let Some(h) = harness("producer store events").await else {
        return;
    };
    let summary = run(
        &h,
        json!({"action": "simulate_store_events", "count": 150, "malformed_share": 0.2, "seed": 5}),
    )
    .await
    .unwrap();
    assert_eq!(summary.malformed, 30);
    let version_id = summary.schema_versions[0].version_id;
    let definition = h
        .registry_reader
        .schema_version(version_id)
        .await
        .unwrap()
        .definition;
    let writer = apache_avro::Schema::parse_str(&definition).unwrap();
    let fetched = read_topic(&h.producer, &h.producer.settings().store_topic).await;
    assert_eq!(fetched.len(), 150);
    assert_offsets_match_summary(&summary, &fetched);

    // Decode like the consumer: frame, registry lookup by id, Avro, domain checks.
    let mut decoded: BTreeMap<String, u64> = BTreeMap::new();
    let mut undecodable = 0u64;
    for (_, r) in &fetched {
        let value = r.record.value.as_deref().unwrap();
        let outcome = match classify(value) {
            Ok(WireValue::GlueAvro(frame)) => {
                match h.registry_reader.schema_version(frame.schema_version_id).await {
                    Ok(version) => {
                        assert_eq!(version.definition, definition);
                        frame
                            .avro_body()
                            .ok()
                            .and_then(|body| decode_avro(&body, &writer).ok())
                            .and_then(|v| store_event_from_avro(v).ok())
                    }
                    Err(PortError::NotFound { .. }) => None,
                    Err(other) => panic!("registry: {other}"),
                }
            }
            _ => None,
        };
        match outcome {
            Some(event) => {
                assert_eq!(
                    r.record.key.as_deref(),
                    Some(pipeline_domain::simulate::store_key(event.store_id).as_bytes())
                );
                *decoded.entry(event.event_type.as_str().to_string()).or_default() += 1;
            }
            None => undecodable += 1,
        }
    }
    assert_eq!(undecodable, summary.malformed);
    assert_eq!(decoded, summary.produced);
}

#[tokio::test]
async fn explicit_events_are_inferred_registered_reused_and_an_incompatible_change_publishes_nothing() {
    let Some(h) = harness("producer explicit events").await else {
        return;
    };
    let schema_name = format!("it.Order{}", uuid::Uuid::new_v4().simple());
    let events = json!([
        {"order_id": "o-1", "amount": 25.5, "lines": [{"sku": 1, "qty": 2}]},
        {"order_id": "o-2", "amount": 9, "lines": [], "coupon": "SPRING"}
    ]);
    let request = json!({"action": "publish_events", "schema_name": schema_name, "events": events, "key_field": "order_id"});
    let first = run(&h, request.clone()).await.unwrap();
    assert!(first.schema_versions[0].newly_registered);
    let second = run(&h, request).await.unwrap();
    assert!(
        !second.schema_versions[0].newly_registered,
        "identical definition reused"
    );
    assert_eq!(
        first.schema_versions[0].version_id,
        second.schema_versions[0].version_id
    );

    let topic = h.producer.settings().explicit_topic.clone();
    let fetched = read_topic(&h.producer, &topic).await;
    assert_eq!(fetched.len(), 4);
    let definition = h
        .registry_reader
        .schema_version(first.schema_versions[0].version_id)
        .await
        .unwrap()
        .definition;
    let writer = apache_avro::Schema::parse_str(&definition).unwrap();
    for (_, r) in &fetched {
        let WireValue::GlueAvro(frame) = classify(r.record.value.as_deref().unwrap()).unwrap() else {
            panic!()
        };
        let value = decode_avro(&frame.avro_body().unwrap(), &writer).unwrap();
        let doc = pipeline_domain::payload::avro_to_json(&value);
        let original = events
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["order_id"] == doc["order_id"])
            .unwrap();
        assert_eq!(json_to_avro(original, &writer).unwrap(), value);
        assert_eq!(
            r.record.key.as_deref(),
            Some(original["order_id"].as_str().unwrap().as_bytes())
        );
    }

    // `amount` turns into a string: refused under BACKWARD, and nothing reaches the topic.
    let breaking = json!({"action": "publish_events", "schema_name": schema_name,
        "events": [{"order_id": "o-3", "amount": "12.00", "lines": []}]});
    let err = run(&h, breaking).await.unwrap_err();
    assert_eq!(error_type(&err), "IncompatibleSchema", "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&schema_name) && message.contains("BACKWARD") && message.contains("amount"),
        "{message}"
    );
    assert_eq!(read_topic(&h.producer, &topic).await.len(), 4);

    // A compatible evolution (a new optional field) registers version 2.
    let evolved = json!({"action": "publish_events", "schema_name": schema_name, "events": [
        {"order_id": "o-4", "amount": 1.5, "lines": [{"sku": 3, "qty": 1}], "note": "gift"},
        {"order_id": "o-5", "amount": 2.0, "lines": [{"sku": 4, "qty": 1}]}
    ]});
    let summary = run(&h, evolved).await.unwrap();
    assert!(summary.schema_versions[0].newly_registered);
    assert_eq!(summary.schema_versions[0].version_number, Some(2));
    assert_eq!(read_topic(&h.producer, &topic).await.len(), 6);
}

#[tokio::test]
async fn oversized_requests_are_refused_before_touching_the_broker() {
    let Some(h) = harness("producer refuses oversized").await else {
        return;
    };
    let request = json!({"action": "simulate_store_events", "count": 1_000_000, "seed": 1});
    let err = run(&h, request).await.unwrap_err();
    assert_eq!(error_type(&err), "InvalidRequest");
    assert!(read_topic(&h.producer, &h.producer.settings().store_topic)
        .await
        .is_empty());
    // Fixtures for `cargo lambda invoke` stay valid requests.
    parse_request(serde_json::from_str(include_str!("../events/publish_events.json")).unwrap()).unwrap();
}
