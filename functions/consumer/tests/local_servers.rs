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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;

use apache_avro::Schema;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use consumer::app::{self, Consumer};
use consumer::config::ConsumerConfig;
use consumer::testkit;
use pipeline_adapters::glue::{glue_client, GlueSchemaRegistry};
use pipeline_adapters::postgres_schema::{provision, AppRole, TableNames};
use pipeline_contracts::{contracts, schema_text, Compatibility, PIPELINE_JSON};
use pipeline_domain::event::{EventSource, KafkaEvent, KafkaRecord};
use pipeline_domain::model::{SensorReading, StoreEvent, StoreEventType};
use pipeline_domain::payload::{encode_avro, sensor_to_avro, store_event_to_avro, store_event_to_json};
use pipeline_domain::produce::SchemaRegistryWriter;
use pipeline_domain::wire::{frame, Compression};
use serde_json::{json, Value as Json};
use uuid::Uuid;

// ------------------------------------------------------------------------------------------------
// Environment

fn required_env(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ if std::env::var("PIPELINE_REQUIRE_STACK").as_deref() == Ok("1") => {
            panic!("{test}: {var} is not set and PIPELINE_REQUIRE_STACK=1 (source .local/stack.env)")
        }
        _ => {
            eprintln!(
                "SKIP {test}: {var} is not set (run scripts/local-stack.sh up and source .local/stack.env)"
            );
            None
        }
    }
}

fn stack_available(test: &str) -> bool {
    [
        "AWS_ENDPOINT_URL",
        "PG_HOST",
        "PG_PORT",
        PG_ADMIN_USER,
        "PG_DATABASE",
    ]
    .iter()
    .all(|var| required_env(var, test).is_some())
}

/// The local admin (owner of the databases); the consumer itself runs as a provisioned role.
const PG_ADMIN_USER: &str = "PIPELINE_PG_ADMIN_USER";
const PG_ADMIN_PASSWORD: &str = "PIPELINE_PG_ADMIN_PASSWORD";

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_default()
}

/// Deterministic xorshift, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ------------------------------------------------------------------------------------------------
// Per-run resources

struct Stack {
    /// The test's own set-up and assertions.
    sdk: aws_config::SdkConfig,
    /// What the consumer runs with: the recording endpoint acting as the consumer, when recording.
    consumer_sdk: aws_config::SdkConfig,
    run: String,
    config: ConsumerConfig,
    database: String,
    /// The consumer's reader, through the registry role when one is configured.
    registry: GlueSchemaRegistry,
    ids: SchemaIds,
}

/// `sdk` pointed at the recording endpoint acting as `label`, when the run records calls. Through
/// the loader: an endpoint set on a built SdkConfig loses to `AWS_ENDPOINT_URL`, which each client
/// reads again from the environment.
async fn acting_as(sdk: &aws_config::SdkConfig, label: &str) -> aws_config::SdkConfig {
    match pipeline_test_recording::endpoint_acting_as(label) {
        Some(url) => {
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .endpoint_url(url)
                .load()
                .await
        }
        None => sdk.clone(),
    }
}

/// Registered once per test process (the tests run concurrently).
static REGISTERED: tokio::sync::OnceCell<SchemaIds> = tokio::sync::OnceCell::const_new();

#[derive(Clone, Copy)]
struct SchemaIds {
    sensor_v1: Uuid,
    sensor_v2: Uuid,
    store_v1: Uuid,
    order_v1: Uuid,
}

const ORDER_SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"com.example.explicit","fields":[
    {"name":"order_id","type":"string"},{"name":"amount","type":"double"},{"name":"count","type":"long"},
    {"name":"tags","type":{"type":"array","items":"string"}},{"name":"note","type":["null","string"],"default":null}]}"#;

fn key_type(table: &str, which: &str) -> ScalarAttributeType {
    let raw: Json = serde_json::from_str(PIPELINE_JSON).expect("contract parses");
    match raw["tables"][table][which].as_str() {
        Some("N") => ScalarAttributeType::N,
        Some("B") => ScalarAttributeType::B,
        _ => ScalarAttributeType::S,
    }
}

async fn pg_admin(database: &str) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config
        .host(env("PG_HOST"))
        .port(env("PG_PORT").parse().expect("PG_PORT is a port"))
        .user(env(PG_ADMIN_USER))
        .dbname(database);
    if !env(PG_ADMIN_PASSWORD).is_empty() {
        config.password(env(PG_ADMIN_PASSWORD));
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("postgres reachable");
    tokio::spawn(connection);
    client
}

async fn create_database(name: &str) {
    pg_admin(&env("PG_DATABASE"))
        .await
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
}

async fn stack() -> Stack {
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    let consumer_sdk = acting_as(&sdk, "consumer").await;
    let run = format!("ci{}", &Uuid::new_v4().simple().to_string()[..12]);
    let c = contracts();

    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let aggregates = format!("{run}-{}", c.tables.window_aggregates.name);
    let explicit = format!("{run}-{}", c.tables.explicit_events.name);
    for (name, contract_key, table) in [
        (&aggregates, "windowAggregates", &c.tables.window_aggregates),
        (&explicit, "explicitEvents", &c.tables.explicit_events),
    ] {
        dynamodb
            .create_table()
            .table_name(name)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(&table.partition_key)
                    .key_type(KeyType::Hash)
                    .build()
                    .unwrap(),
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(&table.sort_key)
                    .key_type(KeyType::Range)
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(&table.partition_key)
                    .attribute_type(key_type(contract_key, "partitionKeyType"))
                    .build()
                    .unwrap(),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(&table.sort_key)
                    .attribute_type(key_type(contract_key, "sortKeyType"))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .expect("create table");
    }

    let bucket = format!("{run}-{}", c.bucket.local_name);
    let s3 = app::s3_client(&sdk);
    let mut create = s3.create_bucket().bucket(&bucket);
    let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
    if !region.is_empty() && region != "us-east-1" {
        create = create.create_bucket_configuration(
            aws_sdk_s3::types::CreateBucketConfiguration::builder()
                .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(region.as_str()))
                .build(),
        );
    }
    create.send().await.expect("create bucket");

    let queue_url = aws_sdk_sqs::Client::new(&sdk)
        .create_queue()
        .queue_name(format!("{run}-{}", c.queues.poison))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");

    let database = format!("consumer_{run}");
    create_database(&database).await;
    let role = AppRole {
        name: format!("consumer_{run}"),
        password: format!("{run}-password"),
    };
    provision(
        &mut pg_admin(&database).await,
        &TableNames::new(&c.postgres.sales_table, &c.postgres.inventory_table),
        &role,
    )
    .await
    .expect("provision the run's database and role");
    let secret = json!({
        "username": role.name,
        "password": role.password,
        "host": env("PG_HOST"),
        "port": env("PG_PORT").parse::<u16>().unwrap(),
        "dbname": database,
    });
    let secret_arn = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(format!("{run}/postgres"))
        .secret_string(secret.to_string())
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("secret arn");

    // One registry for all runs: moto allows only 10 registries per account, and registering an
    // identical definition again reuses its version, so sharing it is harmless.
    let registry_name = format!("{}-consumer-tests", c.schema_registry.name);
    let setup_registry = GlueSchemaRegistry::new(glue_client(&sdk, None).await, &registry_name);
    let ids = *REGISTERED
        .get_or_init(|| async {
            setup_registry.ensure_registry().await.expect("registry");
            let register = |name: &'static str, text: &'static str| {
                let registry = setup_registry.clone();
                async move {
                    registry
                        .register_or_reuse(name, text, Compatibility::Backward)
                        .await
                        .expect("register schema")
                        .version_id
                }
            };
            SchemaIds {
                sensor_v1: register(
                    "SensorReading",
                    schema_text("schemas/sensor_reading.v1.avsc").unwrap(),
                )
                .await,
                sensor_v2: register(
                    "SensorReading",
                    schema_text("schemas/sensor_reading.v2.avsc").unwrap(),
                )
                .await,
                store_v1: register("StoreEvent", schema_text("schemas/store_event.v1.avsc").unwrap()).await,
                order_v1: register("Order", ORDER_SCHEMA).await,
            }
        })
        .await;

    // The consumer reads its configuration exactly as on Lambda, by the contract's variable names:
    // database credentials through the secret, no PG_HOST/PG_USER/PG_PASSWORD.
    let n = &c.env_vars;
    let registry_role = std::env::var("PIPELINE_LOCAL_REGISTRY_ROLE_ARN")
        .ok()
        .filter(|v| !v.is_empty());
    let vars: HashMap<String, String> = [
        (&n.aggregates_table, aggregates),
        (&n.explicit_events_table, explicit),
        (&n.store_events_bucket, bucket),
        (&n.poison_queue_url, queue_url),
        (&n.registry_name, registry_name.clone()),
        (&n.pg_secret_arn, secret_arn),
        (&n.pg_tls, "disable".to_string()),
        (&n.window_seconds, "60".to_string()),
    ]
    .into_iter()
    .chain(registry_role.map(|role| (&n.registry_role_arn, role)))
    .map(|(k, v)| (k.clone(), v))
    .collect();
    let config = ConsumerConfig::from_lookup(|name| vars.get(name).cloned()).expect("config");
    pipeline_test_recording::declare_environment(
        "consumer",
        vars.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .expect("declare the consumer's configuration for the IAM check");
    // As main.rs: the registry client reads through the configured role (a real AssumeRole).
    let registry = GlueSchemaRegistry::new(
        glue_client(&consumer_sdk, config.registry_role_arn.as_deref()).await,
        &registry_name,
    );
    Stack {
        sdk,
        consumer_sdk,
        run,
        config,
        database,
        registry,
        ids,
    }
}

impl Stack {
    /// Removes this run's resources (best effort), so repeated runs do not pile up on
    /// long-lived servers. Not reached when a test fails: the resources stay for inspection.
    async fn cleanup(self) {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.sdk);
        for table in [&self.config.aggregates_table, &self.config.explicit_events_table] {
            let _ = dynamodb.delete_table().table_name(table).send().await;
        }
        let s3 = app::s3_client(&self.sdk);
        let bucket = &self.config.store_events_bucket;
        for key in objects(&self.sdk, bucket).await.into_keys() {
            let _ = s3.delete_object().bucket(bucket).key(key).send().await;
        }
        let _ = s3.delete_bucket().bucket(bucket).send().await;
        let _ = aws_sdk_sqs::Client::new(&self.sdk)
            .delete_queue()
            .queue_url(&self.config.poison_queue_url)
            .send()
            .await;
        if let Some(secret) = &self.config.postgres.secret_id {
            let _ = aws_sdk_secretsmanager::Client::new(&self.sdk)
                .delete_secret()
                .secret_id(secret)
                .force_delete_without_recovery(true)
                .send()
                .await;
        }
        drop_database(&self.database).await;
        let _ = pg_admin(&env("PG_DATABASE"))
            .await
            .batch_execute(&format!("DROP ROLE IF EXISTS \"consumer_{}\"", self.run))
            .await;
    }
}

async fn drop_database(name: &str) {
    let _ = pg_admin(&env("PG_DATABASE"))
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
}

async fn consumer(stack: &Stack) -> Consumer<GlueSchemaRegistry> {
    app::build(&stack.config, &stack.consumer_sdk, stack.registry.clone())
        .await
        .expect("consumer cold start")
}

// ------------------------------------------------------------------------------------------------
// The produced stream and its ground truth

#[derive(Default)]
struct Produced {
    records: Vec<KafkaRecord>,
    /// Valid readings with their (topic-partition, offset).
    readings: Vec<(String, i64, SensorReading)>,
    store_events: Vec<(String, i32, i64, StoreEvent)>,
    explicit: Vec<(String, i32, i64, Json)>,
    /// (topic, partition, offset) → expected reason kind.
    poison: BTreeMap<(String, i32, i64), &'static str>,
}

struct Offsets(BTreeMap<(String, i32), i64>);
impl Offsets {
    fn next(&mut self, topic: &str, partition: i32) -> i64 {
        let start = if topic
            == contracts()
                .topics
                .first_carrying(pipeline_contracts::Payload::StoreEvent)
                .name
            && partition == 0
        {
            990 // crosses an archive block boundary
        } else {
            0
        };
        let offset = self.0.entry((topic.to_string(), partition)).or_insert(start);
        *offset += 1;
        *offset
    }
}

fn schema(path: &str) -> Schema {
    Schema::parse_str(schema_text(path).unwrap()).unwrap()
}

fn produce(ids: SchemaIds, seed: u64) -> Produced {
    let c = contracts();
    let sensor_topic = c
        .topics
        .first_carrying(pipeline_contracts::Payload::SensorReading)
        .name
        .as_str();
    let store_topic = c
        .topics
        .first_carrying(pipeline_contracts::Payload::StoreEvent)
        .name
        .as_str();
    let explicit_topic = c
        .topics
        .first_carrying(pipeline_contracts::Payload::Explicit)
        .name
        .as_str();
    let v1 = schema("schemas/sensor_reading.v1.avsc");
    let v2 = schema("schemas/sensor_reading.v2.avsc");
    let store_schema = schema("schemas/store_event.v1.avsc");
    let order_schema = Schema::parse_str(ORDER_SCHEMA).unwrap();
    let mut rng = Rng::new(seed);
    let mut offsets = Offsets(BTreeMap::new());
    let mut out = Produced::default();
    let mut temperatures = [20.0f64; 8];
    let base_time = 1_767_225_540_000i64; // 2025-12-31T23:59:00Z: windows and dates cross midnight

    for i in 0..420i64 {
        let ts = base_time + i * 700;
        match rng.below(20) {
            0..=10 => {
                let device = rng.below(8) as usize;
                temperatures[device] += (rng.below(2001) as f64 - 1000.0) / 1000.0 + 0.00037;
                let reading = SensorReading {
                    device_id: format!("device-{device}"),
                    event_time: ts - rng.below(90_000) as i64,
                    temperature: temperatures[device],
                    humidity: (device % 2 == 0).then_some(40.0 + device as f64),
                };
                let partition = (device % 4) as i32;
                let mut expected = reading.clone();
                let value = match rng.below(3) {
                    0 => serde_json::to_vec(&reading).unwrap(),
                    1 => {
                        // v1 has no humidity field.
                        expected.humidity = None;
                        frame(
                            ids.sensor_v1,
                            &encode_avro(sensor_to_avro(&reading, &v1), &v1).unwrap(),
                            Compression::None,
                        )
                    }
                    _ => frame(
                        ids.sensor_v2,
                        &encode_avro(sensor_to_avro(&reading, &v2), &v2).unwrap(),
                        Compression::Zlib,
                    ),
                };
                let offset = offsets.next(sensor_topic, partition);
                out.readings
                    .push((format!("{sensor_topic}-{partition}"), offset, expected));
                out.records.push(testkit::record(
                    sensor_topic,
                    partition,
                    offset,
                    ts,
                    Some(reading.device_id.as_bytes()),
                    Some(&value),
                    None,
                ));
            }
            11..=15 => {
                let event = StoreEvent {
                    request_id: Uuid::from_u64_pair(seed, i as u64).to_string(),
                    event_type: if rng.below(2) == 0 {
                        StoreEventType::Sales
                    } else {
                        StoreEventType::Inventory
                    },
                    store_id: rng.below(10) as i32,
                    cust_id: 200 + rng.below(100) as i32,
                    category: ["Camera", "Laptops", "Books"][rng.below(3) as usize].into(),
                    sku: 100_000 + rng.below(1000) as i64,
                    price_cents: rng.below(99_999_999) as i64 - 10,
                    qty: 1 + rng.below(20) as i32,
                    discount_hundredths: rng.below(9999) as i64,
                    gift_wrap: rng.below(2) == 0,
                    variant: ["red", "blue"][rng.below(2) as usize].into(),
                    priority_shipping: rng.below(2) == 0,
                    ts_micros: ts * 1000 + rng.below(1000) as i64,
                    contact_me: (rng.below(3) == 0).then(|| "ops@example.com".to_string()),
                };
                let partition = rng.below(2) as i32;
                let value = if rng.below(2) == 0 {
                    frame(
                        ids.store_v1,
                        &encode_avro(store_event_to_avro(&event), &store_schema).unwrap(),
                        Compression::None,
                    )
                } else {
                    serde_json::to_vec(&store_event_to_json(&event)).unwrap()
                };
                let offset = offsets.next(store_topic, partition);
                out.store_events
                    .push((store_topic.to_string(), partition, offset, event));
                out.records.push(testkit::record(
                    store_topic,
                    partition,
                    offset,
                    ts,
                    None,
                    Some(&value),
                    None,
                ));
            }
            16..=17 => {
                let partition = rng.below(2) as i32;
                let offset = offsets.next(explicit_topic, partition);
                let document = json!({
                    "order_id": format!("o-{i}"),
                    "amount": (rng.below(100_000) as f64) / 100.0,
                    "count": rng.below(50),
                    "tags": ["a", format!("t{}", i % 3)],
                    "note": if i % 2 == 0 { Json::Null } else { json!("rush") },
                });
                let value = if rng.below(2) == 0 {
                    let avro = apache_avro::types::Value::Record(vec![
                        (
                            "order_id".into(),
                            apache_avro::types::Value::String(document["order_id"].as_str().unwrap().into()),
                        ),
                        (
                            "amount".into(),
                            apache_avro::types::Value::Double(document["amount"].as_f64().unwrap()),
                        ),
                        (
                            "count".into(),
                            apache_avro::types::Value::Long(document["count"].as_i64().unwrap()),
                        ),
                        (
                            "tags".into(),
                            apache_avro::types::Value::Array(
                                document["tags"]
                                    .as_array()
                                    .unwrap()
                                    .iter()
                                    .map(|t| apache_avro::types::Value::String(t.as_str().unwrap().into()))
                                    .collect(),
                            ),
                        ),
                        (
                            "note".into(),
                            match document["note"].as_str() {
                                Some(n) => apache_avro::types::Value::Union(
                                    1,
                                    Box::new(apache_avro::types::Value::String(n.into())),
                                ),
                                None => apache_avro::types::Value::Union(
                                    0,
                                    Box::new(apache_avro::types::Value::Null),
                                ),
                            },
                        ),
                    ]);
                    frame(
                        ids.order_v1,
                        &encode_avro(avro, &order_schema).unwrap(),
                        Compression::Zlib,
                    )
                } else {
                    serde_json::to_vec(&document).unwrap()
                };
                out.explicit
                    .push((explicit_topic.to_string(), partition, offset, document));
                out.records.push(testkit::record(
                    explicit_topic,
                    partition,
                    offset,
                    ts,
                    Some(b"order"),
                    Some(&value),
                    None,
                ));
            }
            _ => {
                let (topic, partition, value, kind): (&str, i32, Option<Vec<u8>>, &'static str) =
                    match rng.below(7) {
                        0 => (
                            sensor_topic,
                            3,
                            Some(b"{\"device_id\": \"device-3\", ".to_vec()),
                            "bad_json",
                        ),
                        1 => (
                            store_topic,
                            1,
                            Some(vec![0x03, 0x00, 0x01, 0x02]),
                            "truncated_header",
                        ),
                        2 => {
                            let mut framed = frame(ids.order_v1, b"\x02", Compression::None);
                            framed[2..18].copy_from_slice(Uuid::from_u64_pair(7, 7).as_bytes());
                            (explicit_topic, 0, Some(framed), "unknown_schema_version")
                        }
                        3 => (sensor_topic, 1, None, "null_value"),
                        4 => (
                            store_topic,
                            0,
                            Some(br#"{"request_id":"x","event_type":"refund_event"}"#.to_vec()),
                            "bad_field",
                        ),
                        5 => (
                            sensor_topic,
                            2,
                            Some(b"\x7fnot a format".to_vec()),
                            "unknown_wire_format",
                        ),
                        _ => (explicit_topic, 1, Some(vec![b' '; 300 * 1024]), "too_large"),
                    };
                let offset = offsets.next(topic, partition);
                out.poison.insert((topic.to_string(), partition, offset), kind);
                let headers = Some(vec![BTreeMap::from([("trace".to_string(), vec![-61, -87, 65])])]);
                out.records.push(testkit::record(
                    topic,
                    partition,
                    offset,
                    ts,
                    Some(b"k"),
                    value.as_deref(),
                    headers,
                ));
            }
        }
    }
    // Records the ESM would never route here, and a value that is not base64 at all.
    let offset = offsets.next("unrouted-topic", 0);
    out.poison
        .insert(("unrouted-topic".into(), 0, offset), "unknown_topic");
    out.records.push(testkit::record(
        "unrouted-topic",
        0,
        offset,
        base_time,
        None,
        Some(b"{}"),
        None,
    ));
    let offset = offsets.next(sensor_topic, 0);
    out.poison.insert((sensor_topic.into(), 0, offset), "bad_base64");
    let mut bad = testkit::record(sensor_topic, 0, offset, base_time, None, None, None);
    bad.value = Some("%%% not base64".into());
    out.records.push(bad);
    out
}

/// Consecutive slices of the stream as ESM events, alternating MSK and self-managed envelopes.
fn batches(records: &[KafkaRecord], rng: &mut Rng) -> Vec<KafkaEvent> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let end = (at + 20 + rng.below(60) as usize).min(records.len());
        let source = if out.len() % 2 == 0 {
            EventSource::SelfManagedKafka
        } else {
            EventSource::Msk
        };
        out.push(testkit::event(source, records[at..end].iter().cloned()));
        at = end;
    }
    out
}

/// Decimal text of milli-units, computed here independently of the domain's formatter.
fn milli_text(value: i128) -> String {
    let negative = value < 0;
    let abs = value.abs();
    let mut text = format!("{}.{:03}", abs / 1000, abs % 1000);
    while text.ends_with('0') {
        text.pop();
    }
    if text.ends_with('.') {
        text.pop();
    }
    if negative {
        format!("-{text}")
    } else {
        text
    }
}

fn hundredths_text(value: i64) -> String {
    format!(
        "{}{}.{:02}",
        if value < 0 { "-" } else { "" },
        value.abs() / 100,
        value.abs() % 100
    )
}

/// `{0,1,2,5}` as `"0-2,5"`: the applied offsets as the window item stores them.
fn consecutive_runs(offsets: &BTreeSet<i64>) -> String {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for &o in offsets {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == o => *last = o,
            _ => runs.push((o, o)),
        }
    }
    runs.iter()
        .map(|&(a, b)| if a == b { a.to_string() } else { format!("{a}-{b}") })
        .collect::<Vec<_>>()
        .join(",")
}

/// Every expected window item, attribute by attribute, as canonical strings.
fn expected_window_items(produced: &Produced) -> BTreeMap<(String, String), BTreeMap<String, String>> {
    struct Acc {
        count: u64,
        sum: i128,
        min: i64,
        max: i64,
        first: i64,
        last: i64,
        offsets: BTreeMap<String, BTreeSet<i64>>,
    }
    let mut windows: BTreeMap<(String, i64), Acc> = BTreeMap::new();
    for (tp, offset, r) in &produced.readings {
        let start = r.event_time.div_euclid(60_000) * 60_000;
        let milli = (r.temperature * 1000.0).round() as i64;
        let acc = windows.entry((r.device_id.clone(), start)).or_insert(Acc {
            count: 0,
            sum: 0,
            min: i64::MAX,
            max: i64::MIN,
            first: i64::MAX,
            last: i64::MIN,
            offsets: BTreeMap::new(),
        });
        acc.count += 1;
        acc.sum += i128::from(milli);
        acc.min = acc.min.min(milli);
        acc.max = acc.max.max(milli);
        acc.first = acc.first.min(r.event_time);
        acc.last = acc.last.max(r.event_time);
        acc.offsets.entry(tp.clone()).or_default().insert(*offset);
    }
    windows
        .into_iter()
        .map(|((device, start), a)| {
            let count = i128::from(a.count);
            let avg = if a.sum >= 0 {
                (2 * a.sum + count) / (2 * count)
            } else {
                (2 * a.sum - count) / (2 * count)
            };
            let offsets = a
                .offsets
                .iter()
                .map(|(tp, o)| format!("{tp}={}", consecutive_runs(o)))
                .collect::<Vec<_>>()
                .join(",");
            let attrs = BTreeMap::from([
                ("device_id".to_string(), device.clone()),
                ("window_start".to_string(), start.to_string()),
                ("window_end".to_string(), (start + 60_000).to_string()),
                ("count".to_string(), a.count.to_string()),
                ("sum".to_string(), milli_text(a.sum)),
                ("min".to_string(), milli_text(a.min.into())),
                ("max".to_string(), milli_text(a.max.into())),
                ("avg".to_string(), milli_text(avg)),
                ("first_event_time".to_string(), a.first.to_string()),
                ("last_event_time".to_string(), a.last.to_string()),
                ("offsets".to_string(), offsets),
            ]);
            ((device, start.to_string()), attrs)
        })
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Reading the sinks back

fn attribute_text(value: &AttributeValue) -> String {
    match value {
        AttributeValue::S(s) | AttributeValue::N(s) => s.clone(),
        AttributeValue::M(m) => {
            let sorted: BTreeMap<_, _> = m.iter().map(|(k, v)| (k.clone(), attribute_text(v))).collect();
            sorted
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        }
        other => format!("{other:?}"),
    }
}

/// The exact stored form: type tags, and maps in key order (the SDK hands them over as HashMaps).
fn typed_text(value: &AttributeValue) -> String {
    match value {
        AttributeValue::M(m) => {
            let sorted: BTreeMap<_, _> = m.iter().map(|(k, v)| (k.clone(), typed_text(v))).collect();
            format!("M{sorted:?}")
        }
        AttributeValue::L(items) => format!("L{:?}", items.iter().map(typed_text).collect::<Vec<_>>()),
        other => format!("{other:?}"),
    }
}

fn attribute_json(value: &AttributeValue) -> Json {
    match value {
        AttributeValue::S(s) => json!(s),
        AttributeValue::N(n) => serde_json::from_str(n).unwrap_or_else(|_| json!(n)),
        AttributeValue::Bool(b) => json!(b),
        AttributeValue::Null(_) => Json::Null,
        AttributeValue::L(items) => Json::Array(items.iter().map(attribute_json).collect()),
        AttributeValue::M(map) => {
            Json::Object(map.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect())
        }
        other => json!(format!("{other:?}")),
    }
}

async fn scan(sdk: &aws_config::SdkConfig, table: &str) -> Vec<HashMap<String, AttributeValue>> {
    let client = aws_sdk_dynamodb::Client::new(sdk);
    let mut items = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .expect("scan");
        items.extend(page.items().iter().cloned());
        match page.last_evaluated_key() {
            Some(key) if !key.is_empty() => start = Some(key.clone()),
            _ => break,
        }
    }
    items
}

async fn objects(sdk: &aws_config::SdkConfig, bucket: &str) -> BTreeMap<String, (Vec<u8>, Option<String>)> {
    let client = app::s3_client(sdk);
    let mut out = BTreeMap::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token.take())
            .send()
            .await
            .expect("list objects");
        for object in page.contents() {
            let key = object.key().unwrap().to_string();
            let got = client
                .get_object()
                .bucket(bucket)
                .key(&key)
                .send()
                .await
                .expect("get object");
            let etag = got.e_tag().map(str::to_string);
            let bytes = got.body.collect().await.unwrap().into_bytes().to_vec();
            out.insert(key, (bytes, etag));
        }
        match page.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    out
}

fn gunzip_lines(bytes: &[u8]) -> Vec<Json> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("gzip");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("ndjson line"))
        .collect()
}

async fn table_rows(database: &str, table: &str) -> Vec<String> {
    pg_admin(database)
        .await
        .query(
            &format!(r#"SELECT row_to_json(t)::text FROM "{table}" t ORDER BY topic, partition, "offset""#),
            &[],
        )
        .await
        .expect("select rows")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn queue_depth(sdk: &aws_config::SdkConfig, queue_url: &str) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attrs = aws_sdk_sqs::Client::new(sdk)
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    (
        attrs
            .get(&A::ApproximateNumberOfMessages)
            .cloned()
            .unwrap_or_default(),
        attrs
            .get(&A::ApproximateNumberOfMessagesNotVisible)
            .cloned()
            .unwrap_or_default(),
    )
}

async fn drain_queue(sdk: &aws_config::SdkConfig, queue_url: &str) -> Vec<Json> {
    let client = aws_sdk_sqs::Client::new(sdk);
    let mut bodies = Vec::new();
    for _ in 0..200 {
        let received = client
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .visibility_timeout(600)
            .send()
            .await
            .expect("receive");
        let messages = received.messages();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            bodies.push(serde_json::from_str(m.body().unwrap()).expect("poison body is JSON"));
            // FIFO: a group's next message is delivered only after this one is deleted.
            client
                .delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .expect("delete");
        }
    }
    bodies
}

/// Everything the sinks hold, in a comparable form.
#[derive(Debug, PartialEq)]
struct Snapshot {
    aggregates: Vec<String>,
    explicit: Vec<String>,
    objects: BTreeMap<String, (Vec<u8>, Option<String>)>,
    sales: Vec<String>,
    inventory: Vec<String>,
    queue: (String, String),
}

async fn snapshot(stack: &Stack) -> Snapshot {
    let canonical = |items: Vec<HashMap<String, AttributeValue>>| {
        let mut rows: Vec<String> = items
            .iter()
            .map(|item| typed_text(&AttributeValue::M(item.clone())))
            .collect();
        rows.sort();
        rows
    };
    let c = contracts();
    Snapshot {
        aggregates: canonical(scan(&stack.sdk, &stack.config.aggregates_table).await),
        explicit: canonical(scan(&stack.sdk, &stack.config.explicit_events_table).await),
        objects: objects(&stack.sdk, &stack.config.store_events_bucket).await,
        sales: table_rows(&stack.database, &c.postgres.sales_table).await,
        inventory: table_rows(&stack.database, &c.postgres.inventory_table).await,
        queue: queue_depth(&stack.sdk, &stack.config.poison_queue_url).await,
    }
}

/// Replays must leave every sink byte-identical; on a difference, name the sink and the first
/// differing entry instead of dumping everything.
fn assert_same(before: &Snapshot, after: &Snapshot) {
    fn first_difference<T: PartialEq + std::fmt::Debug>(sink: &str, a: &[T], b: &[T]) {
        if a != b {
            let at = a
                .iter()
                .zip(b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            panic!(
                "{sink} changed on replay: {} entries before, {} after; first difference at {at}:\n before: {:?}\n after:  {:?}",
                a.len(),
                b.len(),
                a.get(at),
                b.get(at)
            );
        }
    }
    first_difference("window aggregates", &before.aggregates, &after.aggregates);
    first_difference("explicit events", &before.explicit, &after.explicit);
    let objects = |s: &Snapshot| {
        s.objects
            .iter()
            .map(|(k, (b, e))| (k.clone(), b.len(), e.clone(), b.clone()))
            .collect::<Vec<_>>()
    };
    first_difference("objects", &objects(before), &objects(after));
    first_difference("sales rows", &before.sales, &after.sales);
    first_difference("inventory rows", &before.inventory, &after.inventory);
    assert_eq!(before.queue, after.queue, "poison queue depth changed on replay");
}

// ------------------------------------------------------------------------------------------------
// The tests

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
