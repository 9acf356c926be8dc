//! The producer's metrics, one EMF document per invocation (envelope: `pipeline_lambda_edge::emf`).

use pipeline_domain::produce::ProduceSummary;
use pipeline_lambda_edge::emf::{document, Metric};
use serde_json::{json, Value};

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
    let metrics = [
        Metric::count("RecordsProduced", summary.total_records()),
        Metric::count("SensorReadingsProduced", produced("sensor_reading")),
        Metric::count("SalesEventsProduced", produced("sales_event")),
        Metric::count("InventoryEventsProduced", produced("inventory_event")),
        Metric::count("ExplicitEventsProduced", explicit),
        Metric::count("MalformedProduced", summary.malformed),
        Metric::milliseconds("Duration", duration_ms),
    ];
    let properties = [("Action", json!(summary.action)), ("Topic", json!(summary.topic))];
    document(namespace, function_name, &metrics, &properties, timestamp_ms)
}

/// The EMF document of a failed invocation: one `ProduceFailures` count.
pub fn failure_document(namespace: &str, function_name: &str, action: &str, timestamp_ms: i64) -> Value {
    document(
        namespace,
        function_name,
        &[Metric::count("ProduceFailures", 1)],
        &[("Action", json!(action))],
        timestamp_ms,
    )
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
