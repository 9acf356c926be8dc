//! The CloudWatch embedded metric format (EMF) envelope: one JSON line on stdout per invocation,
//! which CloudWatch Logs turns into metrics without an API call. The document shape (an `_aws`
//! member with `Timestamp` and `CloudWatchMetrics`, each metric's value a top-level member, each
//! dimension a top-level string) is from "Specification: Embedded metric format",
//! <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

/// The dimension every metric carries.
pub const DIMENSION: &str = "FunctionName";

/// One metric value with its CloudWatch unit.
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub value: Value,
    pub unit: &'static str,
}

impl Metric {
    pub fn count(name: &'static str, value: u64) -> Self {
        Self {
            name,
            value: json!(value),
            unit: "Count",
        }
    }

    pub fn milliseconds(name: &'static str, value: f64) -> Self {
        Self {
            name,
            value: json!(value),
            unit: "Milliseconds",
        }
    }
}

/// The EMF document of one invocation: `metrics` under `namespace`, with the function name as the
/// dimension; `properties` are searchable in Logs Insights but are not dimensions.
pub fn document(
    namespace: &str,
    function_name: &str,
    metrics: &[Metric],
    properties: &[(&str, Value)],
    timestamp_ms: i64,
) -> Value {
    let mut document = Map::new();
    document.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [[DIMENSION]],
                "Metrics": metrics.iter().map(|m| json!({"Name": m.name, "Unit": m.unit})).collect::<Vec<_>>(),
            }],
        }),
    );
    document.insert(DIMENSION.into(), json!(function_name));
    for (name, value) in properties {
        document.insert((*name).into(), value.clone());
    }
    for metric in metrics {
        document.insert(metric.name.into(), metric.value.clone());
    }
    Value::Object(document)
}

/// Milliseconds since the Unix epoch, the EMF timestamp.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Writes the document as one line on stdout, where the Lambda log pipeline picks it up.
pub fn emit(document: &Value) {
    println!("{document}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_metric_has_a_value_and_the_dimension_is_present() {
        let doc = document(
            "pipeline",
            "consumer-fn",
            &[
                Metric::count("Records", 10),
                Metric::milliseconds("Duration", 12.5),
            ],
            &[("Action", json!("publish_events"))],
            1_700_000_000_000,
        );
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "pipeline");
        assert_eq!(directive["Dimensions"], json!([[DIMENSION]]));
        assert_eq!(doc["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(doc[DIMENSION], "consumer-fn");
        assert_eq!(doc["Action"], "publish_events");
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "Records", "Unit": "Count"}, {"Name": "Duration", "Unit": "Milliseconds"}])
        );
        assert_eq!(doc["Records"], 10);
        assert_eq!(doc["Duration"], 12.5);
    }

    #[test]
    fn a_metric_cannot_be_shadowed_by_a_property_of_the_same_name() {
        let doc = document(
            "ns",
            "f",
            &[Metric::count("Records", 1)],
            &[("Records", json!("x"))],
            0,
        );
        assert_eq!(doc["Records"], 1);
    }
}
