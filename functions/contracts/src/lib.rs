//! The shared contracts (`contracts/pipeline.json` and `contracts/schemas/*.avsc`), embedded at
//! compile time so a Lambda never reads the file system, and parsed into typed structs.
//!
//! The CDK app reads the very same JSON file, so names cannot drift between the two sides.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::Deserialize;

/// Raw text of `contracts/pipeline.json`.
pub const PIPELINE_JSON: &str = include_str!("../../../contracts/pipeline.json");

/// Every committed Avro schema version, keyed by its path relative to `contracts/`.
pub const SCHEMA_FILES: &[(&str, &str)] = &[
    (
        "schemas/sensor_reading.v1.avsc",
        include_str!("../../../contracts/schemas/sensor_reading.v1.avsc"),
    ),
    (
        "schemas/sensor_reading.v2.avsc",
        include_str!("../../../contracts/schemas/sensor_reading.v2.avsc"),
    ),
    (
        "schemas/store_event.v1.avsc",
        include_str!("../../../contracts/schemas/store_event.v1.avsc"),
    ),
];

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Contracts {
    pub project: String,
    pub topics: Topics,
    pub schema_registry: SchemaRegistry,
    pub schemas: BTreeMap<String, SchemaContract>,
    pub tables: Tables,
    pub bucket: Bucket,
    pub queues: Queues,
    pub postgres: Postgres,
    pub defaults: Defaults,
    pub env_vars: EnvVars,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Topics {
    pub sensor_readings: Topic,
    pub store_events: Topic,
    pub explicit_events: Topic,
}

impl Topics {
    pub fn all(&self) -> [&Topic; 3] {
        [&self.sensor_readings, &self.store_events, &self.explicit_events]
    }
}

/// What a topic carries; the consumer routes records by the topic they arrive on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Payload {
    SensorReading,
    StoreEvent,
    Generic,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Topic {
    pub name: String,
    pub payload: Payload,
    pub partitions: u32,
    pub replication_factor: u16,
    pub consumer_group: String,
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SchemaRegistry {
    pub name: String,
}

/// Compatibility modes as the Glue Schema Registry names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    Disabled,
    Backward,
    BackwardAll,
    Forward,
    ForwardAll,
    Full,
    FullAll,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SchemaContract {
    pub compatibility: Compatibility,
    /// Paths relative to `contracts/`, oldest first.
    pub versions: Vec<String>,
}

impl SchemaContract {
    /// The committed schema texts, oldest first.
    pub fn version_texts(&self) -> Vec<&'static str> {
        self.versions
            .iter()
            .map(|path| {
                schema_text(path).unwrap_or_else(|| {
                    panic!("{path} is listed in pipeline.json but not embedded in SCHEMA_FILES")
                })
            })
            .collect()
    }

    /// The newest committed schema text.
    pub fn latest_text(&self) -> &'static str {
        self.version_texts()
            .last()
            .copied()
            .expect("a schema contract lists at least one version")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tables {
    pub window_aggregates: Table,
    pub generic_events: Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    pub name: String,
    pub partition_key: String,
    pub sort_key: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bucket {
    pub local_name: String,
    pub store_events_prefix: String,
    pub oversize_poison_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Queues {
    pub poison: String,
    pub on_failure: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Postgres {
    pub database: String,
    pub sales_table: String,
    pub inventory_table: String,
    /// The consumer's least-privilege login role (created at deploy time by db-admin).
    pub consumer_role: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Defaults {
    pub window_seconds: u32,
    pub esm_batch_size: u32,
    pub esm_batching_window_seconds: u32,
}

/// Environment variable names the functions read and the CDK app sets.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVars {
    pub window_seconds: String,
    pub aggregates_table: String,
    pub generic_events_table: String,
    pub store_events_bucket: String,
    pub poison_queue_url: String,
    pub sensor_topic: String,
    pub store_topic: String,
    pub explicit_topic: String,
    pub registry_name: String,
    pub registry_role_arn: String,
    pub pg_host: String,
    pub pg_port: String,
    pub pg_database: String,
    pub pg_user: String,
    pub pg_password: String,
    pub pg_secret_arn: String,
    pub pg_tls: String,
    pub kafka_bootstrap_servers: String,
    pub kafka_auth: String,
    pub kafka_scram_secret_arn: String,
    pub kafka_tls: String,
    pub default_format: String,
}

/// The parsed contracts. Parsing happens once; the embedded file is checked by this crate's tests,
/// so a malformed contract fails the build's tests rather than a Lambda at run time.
pub fn contracts() -> &'static Contracts {
    static PARSED: OnceLock<Contracts> = OnceLock::new();
    PARSED.get_or_init(|| {
        serde_json::from_str(PIPELINE_JSON)
            .expect("contracts/pipeline.json is validated by the contracts tests")
    })
}

/// The embedded text of one schema file, by its path relative to `contracts/`.
pub fn schema_text(path: &str) -> Option<&'static str> {
    SCHEMA_FILES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_json_parses_into_typed_contracts() {
        let c: Contracts = serde_json::from_str(PIPELINE_JSON).unwrap();
        assert_eq!(c.topics.all().len(), 3);
        assert!(c.topics.all().iter().all(|t| t.partitions > 0));
    }

    #[test]
    fn every_listed_schema_is_embedded_and_every_embedded_schema_is_listed() {
        let c = contracts();
        let listed: Vec<&str> = c
            .schemas
            .values()
            .flat_map(|s| s.versions.iter().map(String::as_str))
            .collect();
        for path in &listed {
            assert!(schema_text(path).is_some(), "{path} listed but not embedded");
        }
        for (path, _) in SCHEMA_FILES {
            assert!(
                listed.contains(path),
                "{path} embedded but not listed in pipeline.json"
            );
        }
        let on_disk: Vec<String> =
            std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../../contracts/schemas"))
                .unwrap()
                .map(|e| format!("schemas/{}", e.unwrap().file_name().to_string_lossy()))
                .collect();
        for path in &on_disk {
            assert!(
                listed.contains(&path.as_str()),
                "{path} is on disk but not listed in pipeline.json"
            );
        }
    }

    #[test]
    fn every_schema_parses_and_its_record_name_matches_the_contract_key() {
        for (name, contract) in &contracts().schemas {
            for text in contract.version_texts() {
                let schema = apache_avro::Schema::parse_str(text).unwrap();
                match schema {
                    apache_avro::Schema::Record(record) => assert_eq!(record.name.name(), name),
                    other => panic!("{name} must be a record schema, got {other:?}"),
                }
            }
        }
    }

    #[test]
    fn topic_payloads_have_schemas_except_generic() {
        for topic in contracts().topics.all() {
            match topic.payload {
                Payload::SensorReading => {
                    assert!(contracts().schemas.contains_key("SensorReading"))
                }
                Payload::StoreEvent => assert!(contracts().schemas.contains_key("StoreEvent")),
                Payload::Generic => {}
            }
        }
    }

    #[test]
    fn names_are_unique_where_aws_requires_it() {
        let c = contracts();
        let topics: std::collections::BTreeSet<_> = c.topics.all().iter().map(|t| t.name.clone()).collect();
        assert_eq!(topics.len(), 3);
        let groups: std::collections::BTreeSet<_> =
            c.topics.all().iter().map(|t| t.consumer_group.clone()).collect();
        assert_eq!(
            groups.len(),
            3,
            "each event source mapping needs its own consumer group"
        );
        assert_ne!(c.tables.window_aggregates.name, c.tables.generic_events.name);
        assert!(
            c.queues.poison.ends_with(".fifo"),
            "the poison queue deduplicates replays by record coordinates"
        );
    }
}
