//! The emulator against real servers: tansu (Kafka API) and moto (SQS) from scripts/local-stack.sh,
//! and a tiny Lambda Invoke API server in this file whose answers each test scripts.
//!
//! The stack is found through KAFKA_BOOTSTRAP_SERVERS/AWS_ENDPOINT_URL or `.local/stack.env`.
//! Without it the tests skip with a message, unless PIPELINE_REQUIRE_STACK=1, where they fail.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use esm_emulator::status::MemoryReporter;
use esm_emulator::{run_mapping, Endpoints, MappingSettings, StopFlag};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const SIX_MIB: usize = 6 * 1024 * 1024;

#[derive(Clone)]
struct Stack {
    bootstrap: String,
    aws_endpoint: String,
    region: String,
}

fn stack_env_file() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.local/stack.env")
}

fn read_stack_env() -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(stack_env_file()) {
        for line in text.lines() {
            if let Some((name, value)) = line.strip_prefix("export ").and_then(|l| l.split_once('=')) {
                vars.insert(name.to_string(), value.trim_matches('\'').to_string());
            }
        }
    }
    vars
}

/// The running stack, or `None` (skip) — a panic instead when PIPELINE_REQUIRE_STACK=1.
fn stack(test: &str) -> Option<Stack> {
    let file = read_stack_env();
    let get = |name: &str| std::env::var(name).ok().or_else(|| file.get(name).cloned());
    let found = match (get("KAFKA_BOOTSTRAP_SERVERS"), get("AWS_ENDPOINT_URL")) {
        (Some(bootstrap), Some(aws_endpoint)) => {
            let reachable = |addr: &str| {
                std::net::TcpStream::connect_timeout(
                    &match addr.parse() {
                        Ok(a) => a,
                        Err(_) => return false,
                    },
                    Duration::from_secs(1),
                )
                .is_ok()
            };
            let aws_addr = aws_endpoint
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_string();
            if reachable(&bootstrap) && reachable(&aws_addr) {
                Ok(Stack {
                    bootstrap,
                    aws_endpoint,
                    region: get("AWS_REGION").unwrap_or_else(|| "us-east-1".into()),
                })
            } else {
                Err(format!(
                    "kafka {bootstrap} or moto {aws_endpoint} is not answering"
                ))
            }
        }
        _ => Err(format!(
            "no KAFKA_BOOTSTRAP_SERVERS/AWS_ENDPOINT_URL and no {}",
            stack_env_file().display()
        )),
    };
    match found {
        Ok(stack) => {
            std::env::set_var("AWS_ACCESS_KEY_ID", "test");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
            std::env::set_var("AWS_ENDPOINT_URL", &stack.aws_endpoint);
            Some(stack)
        }
        Err(reason) if std::env::var("PIPELINE_REQUIRE_STACK").as_deref() == Ok("1") => {
            panic!("{test}: local stack required (PIPELINE_REQUIRE_STACK=1) but {reason}; run scripts/local-stack.sh up")
        }
        Err(reason) => {
            eprintln!("SKIPPED {test}: {reason}; run scripts/local-stack.sh up (set PIPELINE_REQUIRE_STACK=1 to fail instead)");
            None
        }
    }
}

/// The mapping's own AWS calls stand for the consumer's event source mappings (the IAM check judges
/// them against the consumer's execution role): the recording endpoint acting as them, when recording.
fn mapping_aws_endpoint() -> Option<String> {
    pipeline_test_recording::endpoint_acting_as(&pipeline_test_recording::esm_of("consumer"))
}

fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "esm-test-{prefix}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000
    )
}

async fn create_topic(stack: &Stack, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.bootstrap)
        .create()
        .unwrap();
    let results = admin
        .create_topics(
            &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    for result in results {
        result.unwrap();
    }
}

struct Produced {
    partition: i32,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
}

async fn produce(stack: &Stack, topic: &str, records: &[Produced]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.bootstrap)
        .set("message.max.bytes", "2000000")
        .set("linger.ms", "0")
        .create()
        .unwrap();
    for record in records {
        let headers = OwnedHeaders::new().insert(Header {
            key: "origin",
            value: Some("é-test".as_bytes()),
        });
        let mut message = FutureRecord::<Vec<u8>, Vec<u8>>::to(topic)
            .partition(record.partition)
            .payload(&record.value)
            .headers(headers);
        if let Some(key) = &record.key {
            message = message.key(key);
        }
        producer
            .send(message, Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)
            .unwrap();
    }
}

fn committed(stack: &Stack, group: &str, topic: &str, partitions: i32) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// What the fake function answers to the n-th invocation (0-based).
#[derive(Clone, Copy, Debug)]
enum Answer {
    Ok,
    /// HTTP 200 with X-Amz-Function-Error: Unhandled, as Lambda reports a failed handler.
    FunctionError,
    /// HTTP 500, as a broken invoke endpoint or runtime would.
    ServerError,
}

#[derive(Clone)]
struct Call {
    path: String,
    body: Vec<u8>,
    /// The group's committed offsets at the moment the function was invoked.
    committed_then: Vec<Option<i64>>,
}

/// A minimal Lambda Invoke API endpoint: one request per connection, answers scripted by `answer`.
struct FakeFunction {
    endpoint: String,
    calls: Arc<Mutex<Vec<Call>>>,
}

async fn fake_function(
    answer: impl Fn(usize) -> Answer + Send + Sync + 'static,
    watch: Option<(Stack, String, String, i32)>,
) -> FakeFunction {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let calls: Arc<Mutex<Vec<Call>>> = Arc::default();
    let recorded = calls.clone();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let recorded = recorded.clone();
            let answer = answer.clone();
            let watch = watch.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                let header_end = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        break pos + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or_default().to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buffer.len() < header_end + length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                }
                let body = buffer[header_end..header_end + length].to_vec();
                let committed_then = match watch {
                    Some((stack, group, topic, partitions)) => {
                        tokio::task::spawn_blocking(move || committed(&stack, &group, &topic, partitions))
                            .await
                            .unwrap()
                    }
                    None => Vec::new(),
                };
                let index = {
                    let mut calls = recorded.lock().unwrap();
                    calls.push(Call {
                        path,
                        body,
                        committed_then,
                    });
                    calls.len() - 1
                };
                let (status, extra, payload) = match answer(index) {
                    Answer::Ok => ("200 OK", "", r#"{"ok":true}"#),
                    Answer::FunctionError => (
                        "200 OK",
                        "X-Amz-Function-Error: Unhandled\r\n",
                        r#"{"errorType":"SinkDown","errorMessage":"scripted failure"}"#,
                    ),
                    Answer::ServerError => (
                        "500 Internal Server Error",
                        "x-amzn-ErrorType: ServiceException\r\n",
                        r#"{"message":"scripted 500"}"#,
                    ),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
                    payload.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    FakeFunction { endpoint, calls }
}

/// Signals once, on the first status report (sent after the partitions are assigned).
struct StartSignal(Option<std::sync::mpsc::Sender<()>>);

impl esm_emulator::status::Reporter for StartSignal {
    fn batch(&mut self, _report: &esm_emulator::status::BatchReport) {}
    fn status(&mut self, _status: &esm_emulator::status::MappingStatus) {
        if let Some(started) = self.0.take() {
            let _ = started.send(());
        }
    }
}

fn settings(stack: &Stack, topic: &str, group: &str) -> MappingSettings {
    MappingSettings {
        topic: topic.into(),
        consumer_group: group.into(),
        bootstrap_servers: stack.bootstrap.clone(),
        starting_position: "TRIM_HORIZON".into(),
        batch_size: 100,
        batching_window: Duration::from_millis(300),
        max_payload_bytes: SIX_MIB,
        max_retry_attempts: -1,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(200),
        msk_cluster_arn: None,
        function_name: "consumer".into(),
        region: stack.region.clone(),
        on_failure_queue_url: None,
        exit_when_idle: Some(Duration::from_millis(1500)),
        error_handling: esm_emulator::config::ErrorHandlingSettings::on_demand(),
    }
}

async fn run(
    stack: &Stack,
    settings: MappingSettings,
    endpoint: &str,
) -> esm_emulator::status::MappingStatus {
    let endpoints = Endpoints {
        invoke_endpoint: Some(endpoint.to_string()),
        invoke_timeout: Duration::from_secs(60),
        region: stack.region.clone(),
        aws_endpoint: mapping_aws_endpoint(),
    };
    tokio::time::timeout(
        Duration::from_secs(120),
        run_mapping(
            settings.validate().unwrap(),
            &endpoints,
            MemoryReporter::default(),
            StopFlag::default(),
        ),
    )
    .await
    .expect("the mapping did not finish in 120 s")
    .unwrap()
}

fn events(calls: &[Call]) -> Vec<Value> {
    calls
        .iter()
        .map(|c| serde_json::from_slice(&c.body).unwrap())
        .collect()
}

/// (partition, offset) of every record in the events, in delivery order.
fn delivered(events: &[Value]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    for event in events {
        for records in event["records"].as_object().unwrap().values() {
            for r in records.as_array().unwrap() {
                out.push((r["partition"].as_i64().unwrap(), r["offset"].as_i64().unwrap()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn six_mb_cap_splits_batches_and_the_event_has_the_documented_shape() {
    let Some(stack) = stack("six_mb_cap_splits_batches") else {
        return;
    };
    let topic = unique("cap");
    create_topic(&stack, &topic, 1).await;
    // 10 records of 800 KB: ~10.7 MB once base64-encoded, so at least two invocations.
    let records: Vec<Produced> = (0..10u8)
        .map(|i| Produced {
            partition: 0,
            key: (i % 2 == 0).then(|| format!("device-{i}").into_bytes()),
            value: vec![b'a' + i; 800_000],
        })
        .collect();
    produce(&stack, &topic, &records).await;
    let function = fake_function(|_| Answer::Ok, None).await;
    let mut s = settings(&stack, &topic, &unique("g"));
    s.batch_size = 10_000;
    s.batching_window = Duration::from_secs(1);
    let status = run(&stack, s, &function.endpoint).await;

    let calls = function.calls.lock().unwrap().clone();
    assert!(
        calls.len() >= 2,
        "expected the cap to split 10.7 MB, got {} invocation(s)",
        calls.len()
    );
    for call in &calls {
        assert!(
            call.body.len() <= SIX_MIB,
            "an event of {} bytes exceeds 6 MiB",
            call.body.len()
        );
        assert_eq!(call.path, "/2015-03-31/functions/consumer/invocations");
    }
    let events = events(&calls);
    assert_eq!(delivered(&events), (0..10).map(|o| (0, o)).collect::<Vec<_>>());
    let event = &events[0];
    assert_eq!(event["eventSource"], "SelfManagedKafka");
    assert_eq!(event["bootstrapServers"], stack.bootstrap.as_str());
    let first = &event["records"][format!("{topic}-0")][0];
    assert_eq!(first["topic"], topic.as_str());
    assert_eq!(first["timestampType"], "CREATE_TIME");
    assert!(first["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(b64.decode(first["key"].as_str().unwrap()).unwrap(), b"device-0");
    assert_eq!(
        b64.decode(first["value"].as_str().unwrap()).unwrap(),
        vec![b'a'; 800_000]
    );
    let signed: Vec<i8> = "é-test".bytes().map(|b| b as i8).collect();
    assert_eq!(first["headers"][0]["origin"], serde_json::json!(signed));
    let second = &event["records"][format!("{topic}-0")][1];
    assert!(
        second.get("key").is_none(),
        "a record without a key has no key field"
    );
    assert_eq!(status.counters.records_delivered, 10);
    assert_eq!(
        committed(&stack, &status.consumer_group, &topic, 1),
        vec![Some(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_function_is_retried_then_dead_lettered_to_sqs_with_coordinates() {
    let Some(stack) = stack("failing_function_is_dead_lettered") else {
        return;
    };
    let topic = unique("dlq");
    create_topic(&stack, &topic, 2).await;
    let records: Vec<Produced> = (0..5)
        .map(|i| Produced {
            partition: 1,
            key: Some(vec![i]),
            value: format!("{{\"n\":{i}}}").into_bytes(),
        })
        .collect();
    produce(&stack, &topic, &records).await;

    let sdk = pipeline_msk_auth::sdk_config_loader()
        .region(aws_config::Region::new(stack.region.clone()))
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("on-failure"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();

    let function = fake_function(|_| Answer::FunctionError, None).await;
    let group = unique("g");
    let mut s = settings(&stack, &topic, &group);
    s.max_retry_attempts = 2;
    s.on_failure_queue_url = Some(queue_url.clone());
    // The local name of the mappings' on-failure destination (as scripts/local/provision.py names it).
    pipeline_test_recording::declare_environment(
        &pipeline_test_recording::esm_of("consumer"),
        [("ON_FAILURE_QUEUE_URL", queue_url.as_str())],
    )
    .unwrap();
    let status = run(&stack, s, &function.endpoint).await;

    let calls = function.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 3, "one attempt plus MaximumRetryAttempts=2 retries");
    assert!(
        calls.iter().all(|c| c.body == calls[0].body),
        "every retry carries the whole, same batch"
    );
    let messages = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(messages.len(), 1);
    let record: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(record["requestContext"]["condition"], "RetryAttemptsExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    assert_eq!(record["responseContext"]["functionError"], "Unhandled");
    let info = &record["KafkaBatchInfo"]["recordsInfo"][format!("{topic}-1")];
    assert_eq!(info["firstRecordOffset"], "0");
    assert_eq!(info["lastRecordOffset"], "4");
    assert_eq!(record["KafkaBatchInfo"]["batchSize"], 5);
    assert!(record["emulatorDetail"]["error"]
        .as_str()
        .unwrap()
        .contains("scripted failure"));
    assert_eq!(status.counters.records_discarded, 5);
    // Dead-lettered, then committed: the partition moves on.
    assert_eq!(committed(&stack, &group, &topic, 2), vec![None, Some(5)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_committed_before_the_function_succeeds() {
    let Some(stack) = stack("nothing_is_committed_before_success") else {
        return;
    };
    let topic = unique("nocommit");
    create_topic(&stack, &topic, 1).await;
    let records: Vec<Produced> = (0..8)
        .map(|i| Produced {
            partition: 0,
            key: None,
            value: vec![i],
        })
        .collect();
    produce(&stack, &topic, &records).await;
    let group = unique("g");
    let function = fake_function(
        |n| if n < 3 { Answer::ServerError } else { Answer::Ok },
        Some((stack.clone(), group.clone(), topic.clone(), 1)),
    )
    .await;
    let status = run(&stack, settings(&stack, &topic, &group), &function.endpoint).await;

    let calls = function.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 4, "three 500s then a success");
    for call in &calls {
        assert_eq!(
            call.committed_then,
            vec![None],
            "an offset was committed before the batch succeeded"
        );
    }
    assert_eq!(
        delivered(&events(&calls[3..])),
        (0..8).map(|o| (0, o)).collect::<Vec<_>>()
    );
    assert_eq!(status.counters.function_errors, 3);
    assert_eq!(committed(&stack, &group, &topic, 1), vec![Some(8)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_committed_offsets_and_latest_skips_the_backlog() {
    let Some(stack) = stack("restart_resumes") else {
        return;
    };
    let topic = unique("resume");
    create_topic(&stack, &topic, 2).await;
    let batch = |from: u8, to: u8| -> Vec<Produced> {
        (from..to)
            .map(|i| Produced {
                partition: i32::from(i % 2),
                key: Some(vec![i]),
                value: vec![i],
            })
            .collect()
    };
    produce(&stack, &topic, &batch(0, 6)).await;
    let group = unique("g");

    let first = fake_function(|_| Answer::Ok, None).await;
    run(&stack, settings(&stack, &topic, &group), &first.endpoint).await;
    let mut seen = delivered(&events(&first.calls.lock().unwrap()));
    seen.sort();
    assert_eq!(seen, vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]);

    produce(&stack, &topic, &batch(6, 10)).await;
    let second = fake_function(|_| Answer::Ok, None).await;
    run(&stack, settings(&stack, &topic, &group), &second.endpoint).await;
    let mut seen = delivered(&events(&second.calls.lock().unwrap()));
    seen.sort();
    assert_eq!(
        seen,
        vec![(0, 3), (0, 4), (1, 3), (1, 4)],
        "the restart re-delivered or skipped records"
    );
    assert_eq!(committed(&stack, &group, &topic, 2), vec![Some(5), Some(5)]);

    // A new mapping at LATEST sees only what arrives after it started.
    let third = fake_function(|_| Answer::Ok, None).await;
    let mut s = settings(&stack, &topic, &unique("g-latest"));
    s.starting_position = "LATEST".into();
    s.exit_when_idle = None;
    let stop = StopFlag::default();
    let endpoints = Endpoints {
        invoke_endpoint: Some(third.endpoint.clone()),
        invoke_timeout: Duration::from_secs(60),
        region: stack.region.clone(),
        aws_endpoint: mapping_aws_endpoint(),
    };
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let task = tokio::spawn({
        let stop = stop.clone();
        let config = s.validate().unwrap();
        async move { run_mapping(config, &endpoints, StartSignal(Some(started_tx)), stop).await }
    });
    // The first status comes after the partitions are assigned at their LATEST offsets.
    tokio::task::spawn_blocking(move || started_rx.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap()
        .expect("the LATEST mapping did not start within 60 s");
    produce(&stack, &topic, &batch(10, 12)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while delivered(&events(&third.calls.lock().unwrap())).len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.stop();
    task.await.unwrap().unwrap();
    let mut seen = delivered(&events(&third.calls.lock().unwrap()));
    seen.sort();
    assert_eq!(seen, vec![(0, 5), (1, 5)]);
}

/// One GET against the emulator's mapping API: (status code, JSON body).
async fn api_get(address: std::net::SocketAddr, target: &str) -> (u16, Value) {
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {address}\r\nAccept: application/json\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8(response).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mapping_api_reports_a_missing_topic_until_it_exists_like_aws() {
    let Some(stack) = stack("the_mapping_api_reports_a_missing_topic") else {
        return;
    };
    let topic = unique("late-topic");
    let function = fake_function(|_| Answer::Ok, None).await;
    let mut settings = settings(&stack, &topic, &unique("late-group"));
    settings.exit_when_idle = None;
    let listener = esm_emulator::adapters::mapping_api::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let address = listener.local_addr().unwrap();
    let stop = StopFlag::default();
    let endpoints = Endpoints {
        invoke_endpoint: Some(function.endpoint.clone()),
        invoke_timeout: Duration::from_secs(60),
        region: stack.region.clone(),
        aws_endpoint: mapping_aws_endpoint(),
    };
    let options = esm_emulator::ServeOptions {
        api: Some(listener),
        retry_connect_every: Some(Duration::from_millis(300)),
    };
    let config = settings.validate().unwrap();
    let stopper = stop.clone();
    let mapping = tokio::spawn(async move {
        esm_emulator::run_mapping_served(
            config,
            &endpoints,
            MemoryReporter::default(),
            stopper,
            esm_emulator::faults::FaultPlan::default(),
            options,
        )
        .await
    });
    let list = "/2015-03-31/event-source-mappings/?FunctionName=consumer";
    let wait_for = |wanted: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = api_get(address, list).await;
            assert_eq!(status, 200, "{body}");
            let mapping = body["EventSourceMappings"][0].clone();
            if mapping["LastProcessingResult"]
                .as_str()
                .unwrap_or_default()
                .starts_with(wanted)
            {
                return mapping;
            }
            assert!(Instant::now() < deadline, "no {wanted:?} in 60 s: {mapping}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    // The topic does not exist: the mapping stays Enabled and says so, as an AWS mapping does.
    let missing = wait_for("PROBLEM: Topic not found.").await;
    assert_eq!(missing["State"], "Enabled");
    assert_eq!(missing["Topics"], serde_json::json!([topic]));
    assert_eq!(missing["StateTransitionReason"], "USER_INITIATED");
    let uuid = missing["UUID"].as_str().unwrap().to_string();
    let (status, got) = api_get(address, &format!("/2015-03-31/event-source-mappings/{uuid}")).await;
    assert_eq!((status, got["UUID"].as_str()), (200, Some(uuid.as_str())));
    assert_eq!(
        api_get(
            address,
            "/2015-03-31/event-source-mappings/00000000-0000-0000-0000-000000000000"
        )
        .await
        .0,
        404
    );

    // Once the topic exists the mapping connects by itself and delivers.
    create_topic(&stack, &topic, 1).await;
    produce(
        &stack,
        &topic,
        &[Produced {
            partition: 0,
            key: None,
            value: b"{\"n\":1}".to_vec(),
        }],
    )
    .await;
    let delivered = wait_for("OK").await;
    assert_eq!(delivered["State"], "Enabled");
    assert_eq!(delivered["UUID"], uuid, "the same mapping");
    assert_eq!(events(&function.calls.lock().unwrap()).len(), 1);
    stop.stop();
    let status = tokio::time::timeout(Duration::from_secs(30), mapping)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(status.counters.records_delivered, 1);
}

// ------------------------------------------------------------------------------------------------
// A sink outage longer than ten retries, the skipped batch, and its redrive (issue 12, item 12).

use pipeline_contracts::Payload;
use pipeline_domain::consume::batch::{ConsumerService, ConsumerSettings, RetryPolicy, Sinks};
use pipeline_domain::consume::fakes::{
    InMemoryExplicitEventStore, InMemoryObjectStore, InMemoryPoisonSink, InMemoryStoreEventTable,
    InMemoryWindowStore,
};
use pipeline_domain::consume::TopicRoutes;
use pipeline_domain::ports::InMemorySchemaSource;
use pipeline_domain::window::WindowSpec;

type FakeConsumer = ConsumerService<
    InMemorySchemaSource,
    InMemoryWindowStore,
    InMemoryObjectStore,
    InMemoryStoreEventTable,
    InMemoryExplicitEventStore,
    InMemoryPoisonSink,
>;

/// The consumer's own batch loop over in-memory sinks, for the sensor topic `topic`.
fn consumer(topic: &str) -> FakeConsumer {
    let mut settings = ConsumerSettings::new(
        TopicRoutes::from_topics([
            (topic.to_string(), Payload::SensorReading),
            (format!("{topic}-store"), Payload::StoreEvent),
            (format!("{topic}-explicit"), Payload::Explicit),
        ])
        .unwrap(),
        WindowSpec::from_seconds(60).unwrap(),
        "store-events/",
    );
    settings.retry = RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(2),
    };
    ConsumerService::new(
        InMemorySchemaSource::default(),
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

/// A Lambda Invoke API endpoint running `consumer`; the window sink is down for the first
/// `outage` invocations. Returns the endpoint and the number of invocations so far.
///
/// The batch loop's future is not `Send`, so the endpoint runs on a thread of its own with a
/// current-thread runtime, one request at a time (the mapping invokes one batch at a time).
async fn consumer_function(consumer: Arc<FakeConsumer>, outage: usize) -> (String, Arc<Mutex<usize>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let invocations = Arc::new(Mutex::new(0usize));
    let counter = invocations.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
        let listener = TcpListener::from_std(listener).unwrap();
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let consumer = consumer.clone();
            let counter = counter.clone();
            async move {
                let mut buffer = Vec::new();
                let mut chunk = vec![0u8; 64 * 1024];
                let header_end = loop {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    if let Some(pos) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        break pos + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buffer.len() < header_end + length {
                    let n = socket.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                }
                let event: pipeline_domain::event::KafkaEvent =
                    serde_json::from_slice(&buffer[header_end..header_end + length]).unwrap();
                let index = {
                    let mut n = counter.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                if index < outage {
                    consumer.sinks().windows.faults.fail_always();
                } else {
                    consumer.sinks().windows.faults.clear();
                }
                let (extra, payload) = match consumer.process(&event).await {
                    Ok(summary) => ("", serde_json::to_string(&summary).unwrap()),
                    Err(error) => (
                        "X-Amz-Function-Error: Unhandled\r\n",
                        serde_json::json!({"errorType": "BatchError", "errorMessage": error.to_string()})
                            .to_string(),
                    ),
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{payload}",
                    payload.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
            .await;
        }
        });
    });
    (endpoint, invocations)
}

fn windows_of(consumer: &FakeConsumer) -> Vec<pipeline_domain::window::WindowAggregate> {
    consumer.sinks().windows.snapshot().into_values().collect()
}

async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> (i64, i64) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap_or_default();
    let get = |name: A| attributes.get(&name).and_then(|v| v.parse().ok()).unwrap_or(-1);
    (
        get(A::ApproximateNumberOfMessages),
        get(A::ApproximateNumberOfMessagesNotVisible),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_past_ten_retries_skips_the_batch_and_a_redrive_restores_the_clean_result() {
    let Some(stack) = stack("skip_and_redrive") else {
        return;
    };
    let topic = unique("redrive");
    create_topic(&stack, &topic, 2).await;
    let mut records: Vec<Produced> = (0..24)
        .map(|i: i64| Produced {
            partition: (i % 2) as i32,
            key: Some(format!("sensor-{}", i % 4).into_bytes()),
            value: serde_json::json!({
                "device_id": format!("sensor-{}", i % 4),
                "event_time": 1_764_547_200_000i64 + i * 7_000,
                "temperature": 20.0 + i as f64 / 8.0,
            })
            .to_string()
            .into_bytes(),
        })
        .collect();
    records.insert(
        5,
        Produced {
            partition: 1,
            key: None,
            value: b"{not json".to_vec(),
        },
    );
    produce(&stack, &topic, &records).await;

    // The clean run: no outage, no destination.
    let clean = Arc::new(consumer(&topic));
    let (clean_endpoint, _) = consumer_function(clean.clone(), 0).await;
    let mut s = settings(&stack, &topic, &unique("g-clean"));
    s.batch_size = 5;
    let status = run(&stack, s, &clean_endpoint).await;
    assert_eq!(status.counters.records_discarded, 0);
    assert_eq!(clean.sinks().poison.snapshot().len(), 1);

    // The same topic through a mapping with an on-failure queue while the window sink is down for
    // the first eleven invocations: the first batch fails once and ten more times, then is skipped.
    let sdk = pipeline_msk_auth::sdk_config_loader()
        .region(aws_config::Region::new(stack.region.clone()))
        .load()
        .await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue_url = sqs
        .create_queue()
        .queue_name(unique("on-failure"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let subject = Arc::new(consumer(&topic));
    let (subject_endpoint, invocations) = consumer_function(subject.clone(), 11).await;
    let group = unique("g-outage");
    let mut s = settings(&stack, &topic, &group);
    s.batch_size = 5;
    s.on_failure_queue_url = Some(queue_url.clone());
    // This run's on-failure queue stands for the deployed one when its calls are judged (iam).
    pipeline_test_recording::declare_environment(
        &pipeline_test_recording::esm_of("consumer"),
        [("ON_FAILURE_QUEUE_URL", queue_url.as_str())],
    )
    .unwrap();
    let status = run(&stack, s, &subject_endpoint).await;
    assert_eq!(status.counters.batches_discarded, 1, "one batch skipped");
    let skipped = status.counters.records_discarded as usize;
    assert!(skipped > 0);
    assert!(*invocations.lock().unwrap() >= 11);
    assert_eq!(
        committed(&stack, &group, &topic, 2).iter().flatten().count(),
        2,
        "the mapping moved on"
    );
    assert_ne!(
        windows_of(&subject),
        windows_of(&clean),
        "the skipped readings are missing"
    );
    assert_eq!(queue_depth(&sqs, &queue_url).await, (1, 0));

    // A range the broker cannot return (past the end of the partition): a clear error, and that
    // message stays on the queue.
    let missing = serde_json::json!({
        "requestContext": {"requestId": "r", "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:consumer",
                           "condition": "RetryAttemptsExhausted", "approximateInvokeCount": 11},
        "responseContext": null, "version": "1.0", "timestamp": "2026-12-01T00:00:00.000Z",
        "KafkaBatchInfo": {"batchSize": 3, "bootstrapServers": stack.bootstrap, "payloadSize": 100,
            "recordsInfo": {format!("{topic}-0"): {"firstRecordOffset": "1000", "lastRecordOffset": "1002",
                "firstRecordTimestamp": "2026-12-01T00:00:00.000Z", "lastRecordTimestamp": "2026-12-01T00:00:00.000Z"}}}
    });
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(missing.to_string())
        .send()
        .await
        .unwrap();

    // The redrive: exactly the skipped ranges, read again from tansu, through the same consumer.
    let target = esm_emulator::RedriveTarget {
        queue_url: queue_url.clone(),
        bootstrap_servers: stack.bootstrap.clone(),
        function_name: "consumer".into(),
        read_idle_timeout: Duration::from_secs(5),
        visibility_timeout_secs: 2,
    };
    let endpoints = Endpoints {
        invoke_endpoint: Some(subject_endpoint.clone()),
        invoke_timeout: Duration::from_secs(60),
        region: stack.region.clone(),
        // The redrive is an operator's tool, not the mapping: its queue reads are not the consumer's.
        aws_endpoint: None,
    };
    let redrive_settings = esm_emulator::redrive::RedriveSettings {
        max_payload_bytes: SIX_MIB,
        batch_size: 5,
        bootstrap_servers: None,
        max_messages: None,
        unavailable_attempts: 3,
        unavailable_backoff: Duration::from_millis(100),
    };
    let outcome = esm_emulator::run_redrive(&target, &endpoints, &redrive_settings)
        .await
        .unwrap();
    assert_eq!(outcome.redriven, 1, "{outcome:?}");
    assert_eq!(outcome.records, skipped);
    assert_eq!(outcome.failed.len(), 1, "{outcome:?}");
    assert!(
        outcome.failed[0].error.contains("returned 0 record(s)")
            && outcome.failed[0].error.contains("1000..=1002"),
        "{}",
        outcome.failed[0].error
    );
    assert_eq!(
        windows_of(&subject),
        windows_of(&clean),
        "the redrive restored the clean result"
    );
    assert_eq!(subject.sinks().poison.snapshot(), clean.sinks().poison.snapshot());

    // Redriving again (the unreadable message came back after its visibility timeout) changes
    // nothing, and the redriven message is gone for good.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let again = esm_emulator::run_redrive(&target, &endpoints, &redrive_settings)
        .await
        .unwrap();
    assert_eq!((again.redriven, again.failed.len()), (0, 1), "{again:?}");
    assert_eq!(windows_of(&subject), windows_of(&clean));
}
