//! The consumer's metrics, one EMF document per invocation (envelope: `pipeline_lambda_edge::emf`).

use pipeline_domain::consume::batch::BatchSummary;
use pipeline_lambda_edge::emf::{document, Metric};
use serde_json::Value;

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
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let metrics = [
        Metric::count("Records", count(metrics.records)),
        Metric::count("Poison", count(metrics.poison)),
        Metric::count("WindowsWritten", metrics.windows_written),
        Metric::count("StoreEvents", count(metrics.store_events)),
        Metric::count("ExplicitEvents", count(metrics.explicit_events)),
        Metric::count("RowsInserted", metrics.rows_inserted),
        Metric::count("ArchiveObjectsWritten", metrics.archive_objects_written),
        Metric::count("BatchFailures", u64::from(metrics.batch_failures)),
        Metric::milliseconds("Duration", metrics.duration_ms),
    ];
    document(namespace, function_name, &metrics, &[], timestamp_ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_lambda_edge::emf::DIMENSION;

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
