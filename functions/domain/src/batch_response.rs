//! The partial-batch response of a Kafka event source mapping with `FunctionResponseTypes:
//! ["ReportBatchItemFailures"]` (provisioned mode only), in the shape the Lambda developer guide
//! gives in "Configuring error handling controls for Kafka event sources"
//! (kafka-retry-configurations.html, read 2026-12-02):
//!
//! ```json
//! { "batchItemFailures": [ { "itemIdentifier": { "partition": "orders-3", "offset": 1042 } } ] }
//! ```
//!
//! `partition` is the `topic-partition` key of the event's `records` map, `offset` the record's
//! offset. As for the other stream sources ("Configuring partial batch response with Kinesis Data
//! Streams"), Lambda takes the lowest offset named for a partition as its checkpoint and delivers
//! that partition again from there; an empty or absent list is complete success, and an
//! identifier it cannot read fails the whole batch. Without `ReportBatchItemFailures` on the
//! mapping Lambda ignores the body and commits everything, so a function may only answer this way
//! when the mapping is configured for it. The Rust event crates have no type for it yet
//! (aws/aws-lambda-rust-runtime#1164, open), hence this one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::RecordCoordinates;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBatchResponse {
    /// `null` and absent both mean complete success.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub batch_item_failures: Vec<KafkaBatchItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaBatchItemFailure {
    pub item_identifier: KafkaItemIdentifier,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaItemIdentifier {
    /// `topic-partition`, as in the event's `records` keys.
    pub partition: String,
    pub offset: i64,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<KafkaBatchItemFailure>, D::Error> {
    Ok(Option::<Vec<KafkaBatchItemFailure>>::deserialize(d)?.unwrap_or_default())
}

/// An identifier Lambda would not accept: the whole batch counts as failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidBatchResponse {
    #[error("the response is not a partial-batch response: {0}")]
    Malformed(String),
    #[error("item identifier {partition:?}@{offset}: the partition is empty or the offset negative")]
    Identifier { partition: String, offset: i64 },
}

impl KafkaBatchResponse {
    /// The response that has each partition of `unstored` delivered again from its lowest offset
    /// (one identifier per partition: the later ones would change nothing).
    pub fn redeliver_from<'a>(unstored: impl IntoIterator<Item = &'a RecordCoordinates>) -> Self {
        let mut lowest: BTreeMap<String, i64> = BTreeMap::new();
        for c in unstored {
            lowest
                .entry(c.topic_partition())
                .and_modify(|o| *o = (*o).min(c.offset))
                .or_insert(c.offset);
        }
        Self {
            batch_item_failures: lowest
                .into_iter()
                .map(|(partition, offset)| KafkaBatchItemFailure {
                    item_identifier: KafkaItemIdentifier { partition, offset },
                })
                .collect(),
        }
    }

    pub fn is_complete_success(&self) -> bool {
        self.batch_item_failures.is_empty()
    }

    /// Reads a function's answer the way the mapping does: `Ok(None)` for complete success (no
    /// body, `null`, no or an empty list), `Ok(Some(..))` with the lowest offset per
    /// `topic-partition` to deliver again, `Err` when an identifier cannot be read.
    pub fn parse_resume_points(body: &[u8]) -> Result<Option<BTreeMap<String, i64>>, InvalidBatchResponse> {
        let text = std::str::from_utf8(body).map_err(|e| InvalidBatchResponse::Malformed(e.to_string()))?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| InvalidBatchResponse::Malformed(e.to_string()))?;
        // Any other answer (our summary, a string) carries no failures: complete success.
        let Some(failures) = value.get("batchItemFailures") else {
            return Ok(None);
        };
        let response: KafkaBatchResponse =
            serde_json::from_value(serde_json::json!({ "batchItemFailures": failures }))
                .map_err(|e| InvalidBatchResponse::Malformed(e.to_string()))?;
        if response.is_complete_success() {
            return Ok(None);
        }
        let mut lowest = BTreeMap::new();
        for KafkaBatchItemFailure {
            item_identifier: KafkaItemIdentifier { partition, offset },
        } in response.batch_item_failures
        {
            if partition.is_empty() || offset < 0 {
                return Err(InvalidBatchResponse::Identifier { partition, offset });
            }
            lowest
                .entry(partition)
                .and_modify(|o: &mut i64| *o = (*o).min(offset))
                .or_insert(offset);
        }
        Ok(Some(lowest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(topic: &str, partition: i32, offset: i64) -> RecordCoordinates {
        RecordCoordinates {
            topic: topic.to_string(),
            partition,
            offset,
        }
    }

    #[test]
    fn serialises_in_the_documented_shape_with_the_lowest_offset_per_partition() {
        let unstored = [
            at("store-events", 1, 77),
            at("store-events", 0, 12),
            at("store-events", 1, 75),
            at("store-events", 0, 40),
        ];
        let response = KafkaBatchResponse::redeliver_from(&unstored);
        assert_eq!(
            serde_json::to_value(&response).unwrap(),
            serde_json::json!({ "batchItemFailures": [
                { "itemIdentifier": { "partition": "store-events-0", "offset": 12 } },
                { "itemIdentifier": { "partition": "store-events-1", "offset": 75 } },
            ] })
        );
        assert!(KafkaBatchResponse::redeliver_from(&[]).is_complete_success());
    }

    #[test]
    fn success_is_no_body_null_an_empty_or_absent_list_or_any_other_answer() {
        for body in [
            "",
            "null",
            "{}",
            r#"{"batchItemFailures":[]}"#,
            r#"{"batchItemFailures":null}"#,
            r#"{"records":3,"poison":0}"#,
        ] {
            assert_eq!(
                KafkaBatchResponse::parse_resume_points(body.as_bytes()),
                Ok(None),
                "{body}"
            );
        }
    }

    #[test]
    fn resume_points_are_the_lowest_offset_named_for_each_partition() {
        let body = r#"{"batchItemFailures":[
            {"itemIdentifier":{"partition":"sensor-readings-2","offset":9}},
            {"itemIdentifier":{"partition":"sensor-readings-2","offset":4}},
            {"itemIdentifier":{"partition":"sensor-readings-0","offset":100}}]}"#;
        let points = KafkaBatchResponse::parse_resume_points(body.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(
            points.into_iter().collect::<Vec<_>>(),
            vec![
                ("sensor-readings-0".to_string(), 100),
                ("sensor-readings-2".to_string(), 4)
            ]
        );
    }

    #[test]
    fn an_identifier_that_cannot_be_read_fails_the_whole_batch() {
        for body in [
            r#"{"batchItemFailures":[{"itemIdentifier":null}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":{"partition":"t-0"}}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":{"partiton":"t-0","offset":1}}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":{"partition":"","offset":1}}]}"#,
            r#"{"batchItemFailures":[{"itemIdentifier":{"partition":"t-0","offset":-1}}]}"#,
            r#"{"batchItemFailures":"t-0"}"#,
            "not json",
        ] {
            assert!(
                KafkaBatchResponse::parse_resume_points(body.as_bytes()).is_err(),
                "{body}"
            );
        }
    }

    #[test]
    fn what_the_consumer_writes_the_mapping_reads_back() {
        let unstored = [at("explicit-events", 5, 3), at("explicit-events", 5, 8)];
        let body = serde_json::to_vec(&KafkaBatchResponse::redeliver_from(&unstored)).unwrap();
        let points = KafkaBatchResponse::parse_resume_points(&body).unwrap().unwrap();
        assert_eq!(points.get("explicit-events-5"), Some(&3));
    }
}
