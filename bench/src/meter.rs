//! Figure 6 and the cost model: what one invocation sends to AWS, in the units AWS bills, read
//! from a recording of its calls (`scripts/local/faults/throttle_proxy.py --record --record-bodies`
//! in front of moto, one JSON line per call).
//!
//! Units, each from the AWS page that defines it:
//! - DynamoDB (developer guide, "DynamoDB read and write operations",
//!   <https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html>):
//!   a write of an item costs one write unit per started 1 KB of the item; a read one unit per
//!   started 4 KB for a strongly consistent read, half of it for an eventually consistent one, at
//!   least one such unit per item read (a key with no item included); `BatchGetItem` and
//!   `BatchWriteItem` are billed as their items read or written one by one. Sizes are DynamoDB's
//!   item-size formula, [`pipeline_domain::dynamodb_item::item_size`].
//! - S3 (pricing page, <https://aws.amazon.com/s3/pricing/>): PUT, COPY, POST and LIST requests in
//!   one price class, GET and the other reads in another.
//! - SQS (pricing page, <https://aws.amazon.com/sqs/pricing/>): every started 64 KB of a request's
//!   payload is billed as one request.
//!
//! A DynamoDB operation without a rule here is an error, so the model never undercounts silently.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use pipeline_domain::dynamodb_item::{item_size, AttributeValue, Item};
use serde::Serialize;
use serde_json::Value as Json;

const WRITE_UNIT_BYTES: usize = 1024;
const READ_UNIT_BYTES: usize = 4 * 1024;
const SQS_BILLED_CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error("recorded call {line}: {reason}")]
    Call { line: usize, reason: String },
    #[error("no rule for the request units of DynamoDB {0}")]
    UnknownOperation(String),
    #[error("DynamoDB attribute value {0}")]
    Attribute(String),
}

/// What one invocation sent, in AWS's billing units.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Calls per `service:operation`.
    pub calls: BTreeMap<String, u64>,
    pub dynamodb_write_units: f64,
    pub dynamodb_read_units: f64,
    /// PUT, COPY, POST, LIST.
    pub s3_put_class: u64,
    /// GET, HEAD and the other reads.
    pub s3_get_class: u64,
    /// Requests as SQS bills them (64 KB chunks).
    pub sqs_billed_requests: u64,
}

fn units(size: usize, unit: usize) -> f64 {
    size.div_ceil(unit).max(1) as f64
}

/// DynamoDB's JSON wire form of an attribute value (`{"S": "..."}`, `{"N": "1"}`, ...).
pub fn wire_attribute(value: &Json) -> Result<AttributeValue, MeterError> {
    let bad = || MeterError::Attribute(value.to_string());
    let object = value.as_object().filter(|o| o.len() == 1).ok_or_else(bad)?;
    let (kind, inner) = object.iter().next().ok_or_else(bad)?;
    let text = |v: &Json| v.as_str().map(str::to_string).ok_or_else(bad);
    let bytes = |v: &Json| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().ok_or_else(bad)?)
            .map_err(|_| bad())
    };
    let list = |v: &Json| v.as_array().cloned().ok_or_else(bad);
    Ok(match kind.as_str() {
        "S" => AttributeValue::S(text(inner)?),
        "N" => AttributeValue::N(text(inner)?),
        "B" => AttributeValue::B(bytes(inner)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool().ok_or_else(bad)?),
        "NULL" => AttributeValue::Null,
        "L" => AttributeValue::L(
            list(inner)?
                .iter()
                .map(wire_attribute)
                .collect::<Result<_, _>>()?,
        ),
        "M" => AttributeValue::M(wire_item(inner)?),
        "SS" => AttributeValue::Ss(list(inner)?.iter().map(text).collect::<Result<_, _>>()?),
        "NS" => AttributeValue::Ns(list(inner)?.iter().map(text).collect::<Result<_, _>>()?),
        "BS" => AttributeValue::Bs(list(inner)?.iter().map(bytes).collect::<Result<_, _>>()?),
        _ => return Err(bad()),
    })
}

/// An item (or a map value) in DynamoDB's JSON wire form.
pub fn wire_item(value: &Json) -> Result<Item, MeterError> {
    value
        .as_object()
        .ok_or_else(|| MeterError::Attribute(value.to_string()))?
        .iter()
        .map(|(name, v)| Ok((name.clone(), wire_attribute(v)?)))
        .collect()
}

fn objects(value: Option<&Json>) -> impl Iterator<Item = (&String, &Json)> {
    value.and_then(Json::as_object).into_iter().flatten()
}

fn array_len(value: Option<&Json>) -> usize {
    value.and_then(Json::as_array).map_or(0, Vec::len)
}

/// The (write, read) units of one DynamoDB call from its request and response bodies. Calls
/// DynamoDB refused (an error status) are billed nothing, except a failed conditional write,
/// which still costs the write.
pub fn dynamodb_units(
    operation: &str,
    status: u16,
    request: &Json,
    response: &Json,
) -> Result<(f64, f64), MeterError> {
    let conditional_failure = response
        .get("__type")
        .and_then(Json::as_str)
        .is_some_and(|t| t.ends_with("ConditionalCheckFailedException"));
    if status >= 300 && !conditional_failure {
        return Ok((0.0, 0.0));
    }
    Ok(match operation {
        "PutItem" => {
            let item = wire_item(request.get("Item").unwrap_or(&Json::Null))?;
            (units(item_size(&item), WRITE_UNIT_BYTES), 0.0)
        }
        "BatchWriteItem" => {
            let mut write = 0.0;
            for (table, requests) in objects(request.get("RequestItems")) {
                let unprocessed = array_len(response.pointer(&format!(
                    "/UnprocessedItems/{}",
                    table.replace('~', "~0").replace('/', "~1")
                )));
                let mut sizes = Vec::new();
                for entry in requests.as_array().into_iter().flatten() {
                    if let Some(item) = entry.pointer("/PutRequest/Item") {
                        sizes.push(item_size(&wire_item(item)?));
                    } else if let Some(key) = entry.pointer("/DeleteRequest/Key") {
                        sizes.push(item_size(&wire_item(key)?));
                    }
                }
                // Unprocessed entries are sent again in a later call, billed there.
                write += sizes
                    .iter()
                    .take(sizes.len().saturating_sub(unprocessed))
                    .map(|size| units(*size, WRITE_UNIT_BYTES))
                    .sum::<f64>();
            }
            (write, 0.0)
        }
        "GetItem" => {
            let consistency = read_consistency(request);
            let size = match response.get("Item") {
                Some(item) => item_size(&wire_item(item)?),
                None => 0,
            };
            (0.0, units(size, READ_UNIT_BYTES) * consistency)
        }
        "BatchGetItem" => {
            let mut read = 0.0;
            for (table, asked) in objects(request.get("RequestItems")) {
                let consistency = read_consistency(asked);
                let keys = array_len(asked.get("Keys"));
                let escaped = table.replace('~', "~0").replace('/', "~1");
                let unprocessed = array_len(response.pointer(&format!("/UnprocessedKeys/{escaped}/Keys")));
                let mut found = 0;
                for item in response
                    .pointer(&format!("/Responses/{escaped}"))
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    found += 1;
                    read += units(item_size(&wire_item(item)?), READ_UNIT_BYTES) * consistency;
                }
                // Keys with no item are still read: one unit each.
                let missing = keys.saturating_sub(unprocessed).saturating_sub(found);
                read += missing as f64 * consistency;
            }
            (0.0, read)
        }
        other => return Err(MeterError::UnknownOperation(other.to_string())),
    })
}

fn read_consistency(request: &Json) -> f64 {
    if request.get("ConsistentRead").and_then(Json::as_bool) == Some(true) {
        1.0
    } else {
        0.5
    }
}

fn epoch_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

/// The usage of the calls recorded (`jsonl`, one call a line) between `from` and `to`.
pub fn usage(jsonl: &str, from: SystemTime, to: SystemTime) -> Result<Usage, MeterError> {
    let (from, to) = (epoch_seconds(from), epoch_seconds(to));
    let mut usage = Usage::default();
    for (index, line) in jsonl.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let call = |reason: String| MeterError::Call {
            line: index + 1,
            reason,
        };
        let entry: Json = serde_json::from_str(line).map_err(|e| call(e.to_string()))?;
        let time = entry
            .get("time")
            .and_then(Json::as_f64)
            .ok_or_else(|| call("no time: record with --record-bodies".into()))?;
        if time < from || time > to {
            continue;
        }
        let text = |field: &str| entry.get(field).and_then(Json::as_str).unwrap_or_default();
        let (service, operation) = (text("service"), text("operation"));
        let status = entry.get("status").and_then(Json::as_u64).unwrap_or(0) as u16;
        *usage.calls.entry(format!("{service}:{operation}")).or_default() += 1;
        match service {
            "dynamodb" => {
                let body = |field: &str| -> Result<Json, MeterError> {
                    let text = text(field);
                    if text.is_empty() {
                        return Ok(Json::Null);
                    }
                    serde_json::from_str(text).map_err(|e| call(format!("{field}: {e}")))
                };
                let (write, read) =
                    dynamodb_units(operation, status, &body("request_body")?, &body("response_body")?)?;
                usage.dynamodb_write_units += write;
                usage.dynamodb_read_units += read;
            }
            "s3" => {
                let reads = ["GetObject", "HeadObject", "HeadBucket", "GetObjectTagging"];
                if reads.contains(&operation) {
                    usage.s3_get_class += 1;
                } else if operation != "DeleteObject" {
                    // Deletes are free; everything else is in the PUT, COPY, POST, LIST class.
                    usage.s3_put_class += 1;
                }
            }
            "sqs" => {
                let bytes = entry.get("request_bytes").and_then(Json::as_u64).unwrap_or(0) as usize;
                usage.sqs_billed_requests += bytes.div_ceil(SQS_BILLED_CHUNK_BYTES).max(1) as u64;
            }
            _ => {}
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn item_of(bytes: usize) -> Json {
        // "pk" (2) + "k" (1) + a string value: 3 + the value's length.
        json!({"pk": {"S": "k"}, "v": {"S": "x".repeat(bytes - 4)}})
    }

    #[test]
    fn a_write_costs_one_unit_per_started_kilobyte() {
        for (size, expected) in [(200, 1.0), (1024, 1.0), (1025, 2.0), (3 * 1024, 3.0)] {
            let (write, read) =
                dynamodb_units("PutItem", 200, &json!({"Item": item_of(size)}), &json!({})).unwrap();
            assert_eq!((write, read), (expected, 0.0), "{size} bytes");
        }
        // A failed condition still costs the write; a throttled call costs nothing.
        let failed = json!({"__type": "com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException"});
        let request = json!({"Item": item_of(100)});
        assert_eq!(
            dynamodb_units("PutItem", 400, &request, &failed).unwrap(),
            (1.0, 0.0)
        );
        let throttled =
            json!({"__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"});
        assert_eq!(
            dynamodb_units("PutItem", 400, &request, &throttled).unwrap(),
            (0.0, 0.0)
        );
    }

    #[test]
    fn a_batch_read_costs_each_item_and_each_missing_key() {
        let request = json!({"RequestItems": {"windows": {"ConsistentRead": true,
            "Keys": [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}, {"pk": {"S": "c"}}, {"pk": {"S": "d"}}]}}});
        // One 5 KB item (2 units), one small (1), one key missing (1), one unprocessed (0).
        let response = json!({"Responses": {"windows": [item_of(5 * 1024), item_of(10)]},
            "UnprocessedKeys": {"windows": {"Keys": [{"pk": {"S": "d"}}]}}});
        assert_eq!(
            dynamodb_units("BatchGetItem", 200, &request, &response).unwrap(),
            (0.0, 4.0)
        );
        let eventual = json!({"RequestItems": {"windows": {"Keys": [{"pk": {"S": "a"}}]}}});
        assert_eq!(
            dynamodb_units("BatchGetItem", 200, &eventual, &json!({"Responses": {}})).unwrap(),
            (0.0, 0.5)
        );
    }

    #[test]
    fn a_batch_write_costs_its_processed_items() {
        let request = json!({"RequestItems": {"t": [
            {"PutRequest": {"Item": item_of(2000)}}, {"PutRequest": {"Item": item_of(10)}},
            {"PutRequest": {"Item": item_of(10)}}]}});
        let response = json!({"UnprocessedItems": {"t": [{"PutRequest": {"Item": item_of(10)}}]}});
        assert_eq!(
            dynamodb_units("BatchWriteItem", 200, &request, &response).unwrap(),
            (3.0, 0.0)
        );
    }

    #[test]
    fn an_operation_without_a_rule_is_an_error() {
        assert!(matches!(
            dynamodb_units("UpdateItem", 200, &json!({}), &json!({})),
            Err(MeterError::UnknownOperation(_))
        ));
    }

    #[test]
    fn usage_counts_the_calls_of_the_window_in_billing_units() {
        let at = |s: f64| UNIX_EPOCH + Duration::from_secs_f64(s);
        let put = json!({"Item": item_of(100)}).to_string();
        let lines = [
            json!({"time": 9.0, "service": "dynamodb", "operation": "PutItem", "status": 200,
                   "request_body": put, "response_body": "{}"}),
            json!({"time": 10.5, "service": "dynamodb", "operation": "PutItem", "status": 200,
                   "request_body": put, "response_body": "{}"}),
            json!({"time": 10.6, "service": "s3", "operation": "PutObject", "status": 200}),
            json!({"time": 10.7, "service": "s3", "operation": "GetObject", "status": 200}),
            json!({"time": 10.8, "service": "sqs", "operation": "SendMessage", "status": 200,
                   "request_bytes": 64 * 1024 + 1}),
            json!({"time": 10.9, "service": "glue", "operation": "GetSchemaVersion", "status": 200}),
        ]
        .map(|l| l.to_string())
        .join("\n");
        let usage = usage(&lines, at(10.0), at(11.0)).unwrap();
        assert_eq!(usage.dynamodb_write_units, 1.0);
        assert_eq!(
            (usage.s3_put_class, usage.s3_get_class, usage.sqs_billed_requests),
            (1, 1, 2)
        );
        assert_eq!(usage.calls.values().sum::<u64>(), 5);
        assert_eq!(usage.calls["glue:GetSchemaVersion"], 1);
    }

    #[test]
    fn every_wire_type_is_read() {
        let item = json!({"s": {"S": "ab"}, "n": {"N": "123"}, "b": {"B": "AAEC"}, "t": {"BOOL": true},
            "z": {"NULL": true}, "l": {"L": [{"N": "1"}]}, "m": {"M": {"k": {"S": "v"}}},
            "ss": {"SS": ["a", "bc"]}, "ns": {"NS": ["1"]}, "bs": {"BS": ["AA=="]}});
        let parsed = wire_item(&item).unwrap();
        assert_eq!(parsed.len(), 10);
        assert_eq!(parsed["b"], AttributeValue::B(vec![0, 1, 2]));
        assert!(wire_attribute(&json!({"X": 1})).is_err());
    }
}
