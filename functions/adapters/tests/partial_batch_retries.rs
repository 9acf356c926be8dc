//! Partial-failure handling of the consumer's batch APIs, which moto never exercises (its
//! BatchGetItem/BatchWriteItem never leave keys or items unprocessed, its SendMessageBatch never
//! fails an entry). A scripted HTTP endpoint on 127.0.0.1 plays the service and answers each
//! request in turn; the SDK clients are real.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use aws_credential_types::Credentials;
use pipeline_adapters::dynamodb::{DynamoExplicitEventStore, DynamoWindowStore};
use pipeline_adapters::s3::S3Objects;
use pipeline_adapters::sqs::SqsPoisonSink;
use pipeline_contracts::contracts;
use pipeline_domain::consume::ports::{ExplicitEventStore, PoisonMessage, PoisonSink, WindowStore};
use pipeline_domain::consume::{ExplicitEvent, ValueFormat};
use pipeline_domain::model::RecordCoordinates;
use pipeline_domain::ports::PortError;
use pipeline_domain::window::WindowKey;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Requests seen (X-Amz-Target, JSON body) and the scripted answers still to give.
#[derive(Default)]
struct Script {
    seen: Vec<(String, Value)>,
    answers: VecDeque<Value>,
}

/// Serves `answers` in order, one per request, as `application/x-amz-json-1.0`.
async fn scripted_endpoint(answers: Vec<Value>) -> (String, Arc<Mutex<Script>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let script = Arc::new(Mutex::new(Script {
        seen: Vec::new(),
        answers: answers.into(),
    }));
    let shared = script.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let script = shared.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                loop {
                    let mut target = String::new();
                    let mut length = 0usize;
                    let mut line = String::new();
                    // Request line and headers.
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let trimmed = line.trim_end();
                        if trimmed.is_empty() {
                            break;
                        }
                        if let Some((name, value)) = trimmed.split_once(':') {
                            match name.to_ascii_lowercase().as_str() {
                                "content-length" => length = value.trim().parse().unwrap_or(0),
                                "x-amz-target" => target = value.trim().to_string(),
                                _ => {}
                            }
                        }
                    }
                    let mut body = vec![0u8; length];
                    reader.read_exact(&mut body).await.unwrap();
                    let answer = {
                        let mut script = script.lock().unwrap();
                        script
                            .seen
                            .push((target, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                        script.answers.pop_front().unwrap_or_else(|| json!({}))
                    };
                    let payload = answer.to_string();
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: {}\r\n\r\n{payload}",
                        payload.len()
                    );
                    if reader.get_mut().write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, script)
}

fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .http_client(pipeline_msk_auth::sdk_https_client())
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
            Credentials::new("test", "test", None, None, "static"),
        ))
        .build()
}

fn window_item(device: &str, start: i64) -> Value {
    json!({
        "device_id": {"S": device}, "window_start": {"N": start.to_string()}, "window_end": {"N": (start + 60_000).to_string()},
        "count": {"N": "1"}, "sum": {"N": "21.5"}, "min": {"N": "21.5"}, "max": {"N": "21.5"}, "avg": {"N": "21.5"},
        "first_event_time": {"N": start.to_string()}, "last_event_time": {"N": start.to_string()},
        "offsets": {"M": {"sensor-readings-0": {"N": "7"}}}
    })
}

#[tokio::test]
async fn batch_get_re_requests_only_the_unprocessed_keys() {
    let table = "windows";
    let key = |device: &str| json!({"device_id": {"S": device}, "window_start": {"N": "60000"}});
    let (endpoint, script) = scripted_endpoint(vec![
        json!({"Responses": {table: [window_item("a", 60_000)]}, "UnprocessedKeys": {table: {"Keys": [key("b")], "ConsistentRead": true}}}),
        json!({"Responses": {table: [window_item("b", 60_000)]}, "UnprocessedKeys": {}}),
    ])
    .await;
    let store = DynamoWindowStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_config(&endpoint)),
        table,
        &contracts().tables.window_aggregates,
    );
    let keys: Vec<WindowKey> = ["a", "b", "a"]
        .iter()
        .map(|d| WindowKey {
            device_id: d.to_string(),
            window_start_ms: 60_000,
        })
        .collect();
    let mut loaded = store.load(&keys).await.unwrap();
    loaded.sort_by(|x, y| x.device_id.cmp(&y.device_id));
    assert_eq!(
        loaded.iter().map(|a| a.device_id.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(loaded[1].sum_milli, 21_500);

    let seen = &script.lock().unwrap().seen;
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].0, "DynamoDB_20120810.BatchGetItem");
    let first = &seen[0].1["RequestItems"][table];
    assert_eq!(
        first["Keys"].as_array().unwrap().len(),
        2,
        "duplicate keys are sent once"
    );
    assert_eq!(first["ConsistentRead"], json!(true));
    assert_eq!(seen[1].1["RequestItems"][table]["Keys"], json!([key("b")]));
}

fn explicit_event(offset: i64) -> ExplicitEvent {
    ExplicitEvent {
        coordinates: RecordCoordinates {
            topic: "explicit-events".into(),
            partition: 1,
            offset,
        },
        timestamp_ms: 1,
        key_base64: None,
        format: ValueFormat::Json,
        schema_version_id: None,
        document: json!({"n": offset}),
    }
}

#[tokio::test]
async fn batch_write_sends_25_per_request_and_re_sends_unprocessed_items() {
    let table = "explicit";
    let events: Vec<ExplicitEvent> = (0..30).map(explicit_event).collect();
    let store_for_items = DynamoExplicitEventStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_config("http://127.0.0.1:9")),
        table,
        &contracts().tables.explicit_events,
    );
    let unprocessed: Vec<Value> = events[3..6]
        .iter()
        .map(|e| {
            let item: serde_json::Map<String, Value> = store_for_items
                .to_item(e)
                .iter()
                .map(|(k, v)| (k.clone(), attribute_json(v)))
                .collect();
            json!({"PutRequest": {"Item": item}})
        })
        .collect();
    let (endpoint, script) = scripted_endpoint(vec![
        json!({"UnprocessedItems": {table: unprocessed}}),
        json!({"UnprocessedItems": {}}),
        json!({"UnprocessedItems": {}}),
    ])
    .await;
    let store = DynamoExplicitEventStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_config(&endpoint)),
        table,
        &contracts().tables.explicit_events,
    );
    store.put(&events).await.unwrap();

    let seen = &script.lock().unwrap().seen;
    let sizes: Vec<usize> = seen
        .iter()
        .map(|(_, body)| body["RequestItems"][table].as_array().unwrap().len())
        .collect();
    assert_eq!(
        sizes,
        vec![25, 3, 5],
        "25 per request, then only the unprocessed 3"
    );
    assert_eq!(seen[1].1["RequestItems"][table], json!(unprocessed));
}

/// The wire JSON of an attribute value (only the types these tests use).
fn attribute_json(value: &aws_sdk_dynamodb::types::AttributeValue) -> Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    match value {
        A::S(s) => json!({"S": s}),
        A::N(n) => json!({"N": n}),
        A::M(m) => {
            json!({"M": m.iter().map(|(k, v)| (k.clone(), attribute_json(v))).collect::<serde_json::Map<_, _>>()})
        }
        other => panic!("unexpected attribute {other:?}"),
    }
}

fn poison_message(offset: i64) -> PoisonMessage {
    PoisonMessage {
        topic: "sensor-readings".into(),
        partition: 2,
        offset,
        timestamp: 1,
        reason_kind: "bad_json".into(),
        reason: "invalid JSON".into(),
        key_base64: None,
        value_base64: Some("e30=".into()),
        headers: None,
        offloaded: None,
    }
}

fn poison_sink(endpoint: &str) -> SqsPoisonSink {
    let config = sdk_config(endpoint);
    SqsPoisonSink::new(
        aws_sdk_sqs::Client::new(&config),
        format!("{endpoint}/123456789012/poison.fifo"),
        S3Objects::new(aws_sdk_s3::Client::new(&config), "unused"),
        "poison/",
    )
}

#[tokio::test]
async fn send_message_batch_re_sends_entries_sqs_failed_and_refuses_sender_faults() {
    let messages: Vec<PoisonMessage> = (0..12).map(poison_message).collect();
    let (endpoint, script) = scripted_endpoint(vec![
        json!({"Successful": [], "Failed": [{"Id": "m4", "SenderFault": false, "Code": "InternalError"}]}),
        json!({"Successful": [], "Failed": []}),
        json!({"Successful": [], "Failed": []}),
    ])
    .await;
    poison_sink(&endpoint).send(&messages).await.unwrap();
    let seen = script.lock().unwrap().seen.clone();
    let entries: Vec<&Vec<Value>> = seen
        .iter()
        .map(|(_, b)| b["Entries"].as_array().unwrap())
        .collect();
    assert_eq!(
        entries.iter().map(|e| e.len()).collect::<Vec<_>>(),
        vec![10, 1, 2],
        "10 per request, then only the failed entry"
    );
    assert_eq!(seen[0].0, "AmazonSQS.SendMessageBatch");
    assert_eq!(
        entries[1][0]["MessageDeduplicationId"],
        json!("sensor-readings-2-4")
    );
    assert_eq!(entries[1][0]["MessageGroupId"], json!("sensor-readings-2"));

    let (endpoint, _) = scripted_endpoint(vec![json!({
        "Successful": [],
        "Failed": [{"Id": "m0", "SenderFault": true, "Code": "InvalidParameterValue", "Message": "bad"}]
    })])
    .await;
    let error = poison_sink(&endpoint).send(&messages[..1]).await.unwrap_err();
    assert!(matches!(error, PortError::Rejected { .. }), "{error}");
}

#[tokio::test]
async fn a_message_sqs_would_refuse_never_leaves_the_adapter() {
    // moto accepts a 300 KB message; SQS refuses anything over 256 KiB. A pointer can only be that
    // large through its reason, which the domain caps, so build one by hand.
    let mut oversized = poison_message(1);
    oversized.value_base64 = None;
    oversized.reason = "r".repeat(300 * 1000);
    let (endpoint, script) = scripted_endpoint(vec![json!({"Successful": [], "Failed": []})]).await;
    let error = poison_sink(&endpoint).send(&[oversized]).await.unwrap_err();
    assert!(matches!(error, PortError::Rejected { .. }), "{error}");
    assert!(
        script.lock().unwrap().seen.is_empty(),
        "nothing was sent to SQS or S3"
    );
}

#[tokio::test]
async fn batch_write_refuses_an_item_over_400_kb_before_sending_anything() {
    let mut event = explicit_event(1);
    event.key_base64 = Some("k".repeat(400 * 1024));
    let (endpoint, script) = scripted_endpoint(vec![json!({"UnprocessedItems": {}})]).await;
    let store = DynamoExplicitEventStore::new(
        aws_sdk_dynamodb::Client::new(&sdk_config(&endpoint)),
        "explicit",
        &contracts().tables.explicit_events,
    );
    let error = store.put(&[explicit_event(0), event]).await.unwrap_err();
    assert!(matches!(error, PortError::Rejected { .. }), "{error}");
    assert!(script.lock().unwrap().seen.is_empty());
}
