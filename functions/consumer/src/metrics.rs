//! CloudWatch embedded metric format (EMF): one JSON line on stdout per invocation, which the
//! Lambda log pipeline turns into metrics without any API call.

use pipeline_domain::consume::batch::BatchSummary;
use serde_json::{json, Map, Value};

/// The dimension every metric carries.
pub const DIMENSION: &str = "FunctionName";

/// What one invocation measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvocationMetrics {
    pub records: usize,
    pub poison: usize,
    pub windows_written: u64,
    pub store_events: usize,
    pub explicit_events: usize,
    pub rows_inserted: u64,
    pub archive_objects_written: u64,
    pub duration_ms: f64,
    /// 1 when the batch failed and will be redelivered.
    pub batch_failures: u32,
}

impl InvocationMetrics {
    pub fn from_summary(summary: &BatchSummary, duration_ms: f64) -> Self {
        Self {
            records: summary.records,
            poison: summary.poison,
            windows_written: summary.windows_written,
            store_events: summary.store_events,
            explicit_events: summary.explicit_events,
            rows_inserted: summary.rows_inserted,
            archive_objects_written: summary.archive_objects_written,
            duration_ms,
            batch_failures: 0,
        }
    }
}

/// The EMF document for one invocation.
pub fn emf_document(
    namespace: &str,
    function_name: &str,
    metrics: &InvocationMetrics,
    timestamp_ms: i64,
) -> Value {
    let values: [(&str, Value, &str); 9] = [
        ("Records", json!(metrics.records), "Count"),
        ("Poison", json!(metrics.poison), "Count"),
        ("WindowsWritten", json!(metrics.windows_written), "Count"),
        ("StoreEvents", json!(metrics.store_events), "Count"),
        ("ExplicitEvents", json!(metrics.explicit_events), "Count"),
        ("RowsInserted", json!(metrics.rows_inserted), "Count"),
        (
            "ArchiveObjectsWritten",
            json!(metrics.archive_objects_written),
            "Count",
        ),
        ("BatchFailures", json!(metrics.batch_failures), "Count"),
        ("Duration", json!(metrics.duration_ms), "Milliseconds"),
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
    for (name, value, _) in values {
        document.insert(name.into(), value);
    }
    Value::Object(document)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_metric_has_a_value_and_the_dimension_is_present() {
        let metrics = InvocationMetrics {
            records: 10,
            poison: 2,
            windows_written: 3,
            duration_ms: 12.5,
            ..InvocationMetrics::default()
        };
        let doc = emf_document("ns", "consumer-fn", &metrics, 1_700_000_000_000);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "ns");
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(doc[DIMENSION], "consumer-fn");
        for metric in directive["Metrics"].as_array().unwrap() {
            let name = metric["Name"].as_str().unwrap();
            assert!(doc[name].is_number(), "{name} has no value");
        }
        assert_eq!(doc["Records"], 10);
        assert_eq!(doc["Poison"], 2);
        assert_eq!(doc["WindowsWritten"], 3);
        assert_eq!(doc["Duration"], 12.5);
    }
}
