//! Reading every sink back in a canonical form, and comparing snapshots across replays.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use aws_sdk_dynamodb::types::AttributeValue;
use consumer::app;
use pipeline_contracts::contracts;
use serde_json::{json, Value as Json};

use crate::resources::{pg_admin, Stack};

pub fn attribute_text(value: &AttributeValue) -> String {
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
pub fn typed_text(value: &AttributeValue) -> String {
    match value {
        AttributeValue::M(m) => {
            let sorted: BTreeMap<_, _> = m.iter().map(|(k, v)| (k.clone(), typed_text(v))).collect();
            format!("M{sorted:?}")
        }
        AttributeValue::L(items) => format!("L{:?}", items.iter().map(typed_text).collect::<Vec<_>>()),
        other => format!("{other:?}"),
    }
}

pub fn attribute_json(value: &AttributeValue) -> Json {
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

pub async fn scan(sdk: &aws_config::SdkConfig, table: &str) -> Vec<HashMap<String, AttributeValue>> {
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

pub async fn objects(
    sdk: &aws_config::SdkConfig,
    bucket: &str,
) -> BTreeMap<String, (Vec<u8>, Option<String>)> {
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

pub fn gunzip_lines(bytes: &[u8]) -> Vec<Json> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("gzip");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("ndjson line"))
        .collect()
}

pub async fn table_rows(database: &str, table: &str) -> Vec<String> {
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

pub async fn queue_depth(sdk: &aws_config::SdkConfig, queue_url: &str) -> (String, String) {
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

pub async fn drain_queue(sdk: &aws_config::SdkConfig, queue_url: &str) -> Vec<Json> {
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
pub struct Snapshot {
    pub aggregates: Vec<String>,
    pub explicit: Vec<String>,
    pub objects: BTreeMap<String, (Vec<u8>, Option<String>)>,
    pub sales: Vec<String>,
    pub inventory: Vec<String>,
    pub queue: (String, String),
}

pub async fn snapshot(stack: &Stack) -> Snapshot {
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
pub fn assert_same(before: &Snapshot, after: &Snapshot) {
    pub fn first_difference<T: PartialEq + std::fmt::Debug>(sink: &str, a: &[T], b: &[T]) {
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
