//! CloudWatch embedded metric format (EMF): one JSON line on stdout per invocation, which the
//! Lambda log pipeline turns into metrics without any API call.

use pipeline_domain::produce::ProduceSummary;
use serde_json::{json, Map, Value};

/// The dimension every metric carries.
pub const DIMENSION: &str = "FunctionName";

/// The EMF document for one successful invocation: records per type, malformed records, and
/// duration. `Action` is a property (searchable in Logs Insights), not a dimension.
pub fn emf_document(
    namespace: &str,
    function_name: &str,
    summary: &ProduceSummary,
    duration_ms: f64,
    timestamp_ms: i64,
) -> Value {
    let produced = |kind: &str| summary.produced.get(kind).copied().unwrap_or(0);
    let explicit: u64 = match summary.action.as_str() {
        "publish_events" => summary.produced.values().sum(),
        _ => 0,
    };
    let values: [(&str, Value, &str); 7] = [
        ("RecordsProduced", json!(summary.total_records()), "Count"),
        (
            "SensorReadingsProduced",
            json!(produced("sensor_reading")),
            "Count",
        ),
        ("SalesEventsProduced", json!(produced("sales_event")), "Count"),
        (
            "InventoryEventsProduced",
            json!(produced("inventory_event")),
            "Count",
        ),
        ("ExplicitEventsProduced", json!(explicit), "Count"),
        ("MalformedProduced", json!(summary.malformed), "Count"),
        ("Duration", json!(duration_ms), "Milliseconds"),
    ];
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [[DIMENSION]],
                "Metrics": values.iter().map(|(name, _, unit)| json!({"Name": name, "Unit": unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    document.insert(DIMENSION.into(), json!(function_name));
    document.insert("Action".into(), json!(summary.action));
    document.insert("Topic".into(), json!(summary.topic));
    for (name, value, _) in values {
        document.insert(name.into(), value);
    }
    Value::Object(document)
}

/// The EMF document of a failed invocation: one `ProduceFailures` count.
pub fn failure_document(namespace: &str, function_name: &str, action: &str, timestamp_ms: i64) -> Value {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [[DIMENSION]],
                "Metrics": [{"Name": "ProduceFailures", "Unit": "Count"}],
            }],
        },
        DIMENSION: function_name,
        "Action": action,
        "ProduceFailures": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_domain::simulate::ValueFormat;
    use std::collections::BTreeMap;

    fn summary(action: &str, produced: &[(&str, u64)], malformed: u64) -> ProduceSummary {
        ProduceSummary {
            action: action.into(),
            format: ValueFormat::Avro,
            topic: "t".into(),
            produced: produced.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            malformed,
            malformed_by_kind: BTreeMap::new(),
            schema_versions: Vec::new(),
            partitions: BTreeMap::new(),
            request_fingerprint: uuid::Uuid::nil(),
        }
    }

    /// Every metric named in `_aws` has a numeric value at the top level, as EMF requires.
    fn assert_valid_emf(doc: &Value) {
        let metrics = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap();
        assert!(!metrics.is_empty());
        for m in metrics {
            let name = m["Name"].as_str().unwrap();
            assert!(doc[name].is_number(), "{name} has no numeric value");
        }
        for dims in doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
            .as_array()
            .unwrap()
        {
            for d in dims.as_array().unwrap() {
                assert!(doc[d.as_str().unwrap()].is_string());
            }
        }
        assert!(doc["_aws"]["Timestamp"].is_i64());
    }

    #[test]
    fn store_event_counts_become_metrics() {
        let s = summary(
            "simulate_store_events",
            &[("sales_event", 6), ("inventory_event", 3)],
            1,
        );
        let doc = emf_document("ns", "producer", &s, 12.5, 1_700_000_000_000);
        assert_valid_emf(&doc);
        assert_eq!(doc["RecordsProduced"], 10);
        assert_eq!(doc["SalesEventsProduced"], 6);
        assert_eq!(doc["InventoryEventsProduced"], 3);
        assert_eq!(doc["MalformedProduced"], 1);
        assert_eq!(doc["ExplicitEventsProduced"], 0);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"], "ns");
    }

    #[test]
    fn explicit_events_count_whatever_their_schema_name() {
        let s = summary("publish_events", &[("com.example.Order", 4)], 0);
        let doc = emf_document("ns", "producer", &s, 1.0, 0);
        assert_valid_emf(&doc);
        assert_eq!(doc["ExplicitEventsProduced"], 4);
        assert_eq!(doc["SensorReadingsProduced"], 0);
        assert_valid_emf(&failure_document("ns", "producer", "publish_events", 0));
    }
}
