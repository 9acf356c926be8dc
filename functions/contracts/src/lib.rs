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
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Contracts {
    /// The file's own explanation for readers; carries no data.
    #[serde(rename = "$comment", default)]
    #[cfg_attr(feature = "bindings", ts(optional))]
    pub comment: Option<String>,
    pub project: String,
    #[cfg_attr(feature = "bindings", ts(as = "BTreeMap<String, Topic>"))]
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

/// The contract's topics in file order, each under its key (`sensorReadings`, ...). The key names
/// the topic in the CDK app (construct ids, config overrides); everything else is in the entry.
#[derive(Debug, Clone)]
pub struct Topics(Vec<(String, Topic)>);

impl Topics {
    /// Every topic, in contract order.
    pub fn all(&self) -> impl Iterator<Item = &Topic> {
        self.0.iter().map(|(_, topic)| topic)
    }

    /// Every topic with its key, in contract order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Topic)> {
        self.0.iter().map(|(key, topic)| (key.as_str(), topic))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The topics that carry `payload`, in contract order.
    pub fn carrying(&self, payload: Payload) -> impl Iterator<Item = &Topic> {
        self.all().filter(move |t| t.payload == payload)
    }

    /// The first topic that carries `payload`: the one the producer's simulation of that payload
    /// publishes to. The contracts tests check every payload kind has one.
    pub fn first_carrying(&self, payload: Payload) -> &Topic {
        self.carrying(payload).next().unwrap_or_else(|| {
            panic!(
                "contracts/pipeline.json has no topic carrying {payload:?} (checked by the contracts tests)"
            )
        })
    }
}

impl<'de> Deserialize<'de> for Topics {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct InOrder;
        impl<'de> serde::de::Visitor<'de> for InOrder {
            type Value = Topics;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of topics keyed by their contract key")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Topics, A::Error> {
                let mut entries: Vec<(String, Topic)> = Vec::new();
                while let Some((key, topic)) = map.next_entry::<String, Topic>()? {
                    if entries.iter().any(|(k, _)| *k == key) {
                        return Err(serde::de::Error::custom(format!("topic key {key} appears twice")));
                    }
                    entries.push((key, topic));
                }
                Ok(Topics(entries))
            }
        }
        deserializer.deserialize_map(InOrder)
    }
}

/// What a topic carries. Each kind has exactly one sink in the consumer, so a topic of any kind
/// is routed; a kind this enum does not know fails the contract's parse (and its tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub enum Payload {
    SensorReading,
    StoreEvent,
    /// Events that bring their own writer schema, stored one item per record.
    Explicit,
}

impl Payload {
    pub const ALL: [Payload; 3] = [Payload::SensorReading, Payload::StoreEvent, Payload::Explicit];
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Topic {
    pub name: String,
    pub payload: Payload,
    /// The variable the functions read this topic's name from (the CDK sets it).
    pub env_var: String,
    pub partitions: u32,
    pub replication_factor: u16,
    pub consumer_group: String,
    pub config: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistry {
    pub name: String,
}

/// Compatibility modes as the Glue Schema Registry names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
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
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
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
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tables {
    pub window_aggregates: Table,
    pub explicit_events: Table,
}

impl Tables {
    /// Every table with its contract key, in a stable order.
    pub fn entries(&self) -> [(&'static str, &Table); 2] {
        [
            ("windowAggregates", &self.window_aggregates),
            ("explicitEvents", &self.explicit_events),
        ]
    }
}

/// DynamoDB's key attribute types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
pub enum KeyType {
    S,
    N,
    B,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Table {
    pub name: String,
    pub partition_key: String,
    pub partition_key_type: KeyType,
    pub sort_key: String,
    pub sort_key_type: KeyType,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bucket {
    pub local_name: String,
    pub store_events_prefix: String,
    pub oversize_poison_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Queues {
    pub poison: String,
    pub on_failure: String,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Postgres {
    pub database: String,
    pub sales_table: String,
    pub inventory_table: String,
    /// The consumer's least-privilege login role (created at deploy time by db-admin).
    pub consumer_role: String,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Defaults {
    pub window_seconds: u32,
    pub esm_batch_size: u32,
    pub esm_batching_window_seconds: u32,
}

/// Environment variable names the functions read and the CDK app sets.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "bindings", derive(ts_rs::TS))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVars {
    pub window_seconds: String,
    pub aggregates_table: String,
    pub explicit_events_table: String,
    pub store_events_bucket: String,
    pub poison_queue_url: String,
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
    pub report_batch_item_failures: String,
}

impl Contracts {
    /// Parses a contract document (the embedded one is [`contracts`]; tests parse variants).
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
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

pub mod functions;

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
        assert!(!c.topics.is_empty());
        assert!(c.topics.all().all(|t| t.partitions > 0));
        let keys: Vec<&str> = c.topics.entries().map(|(key, _)| key).collect();
        assert_eq!(
            keys,
            ["sensorReadings", "storeEvents", "explicitEvents"],
            "file order is kept"
        );
    }

    #[test]
    fn an_unknown_field_anywhere_is_refused() {
        let mut raw: serde_json::Value = serde_json::from_str(PIPELINE_JSON).unwrap();
        raw["topics"]["storeEvents"]["envVars"] = "STORE_TOPIC".into();
        let error = serde_json::from_value::<Contracts>(raw).unwrap_err();
        assert!(error.to_string().contains("envVars"), "{error}");

        let mut raw: serde_json::Value = serde_json::from_str(PIPELINE_JSON).unwrap();
        raw["tables"]["genericEvents"] = raw["tables"]["explicitEvents"].clone();
        assert!(serde_json::from_value::<Contracts>(raw).is_err());
    }

    #[test]
    fn an_unknown_payload_kind_is_refused() {
        let mut raw: serde_json::Value = serde_json::from_str(PIPELINE_JSON).unwrap();
        raw["topics"]["explicitEvents"]["payload"] = "Generic".into();
        let error = serde_json::from_value::<Contracts>(raw).unwrap_err();
        assert!(error.to_string().contains("Generic"), "{error}");
    }

    #[test]
    fn every_payload_kind_has_a_topic() {
        for payload in Payload::ALL {
            assert_eq!(contracts().topics.first_carrying(payload).payload, payload);
        }
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
    fn topic_payloads_have_schemas_except_explicit() {
        for topic in contracts().topics.all() {
            match topic.payload {
                Payload::SensorReading => {
                    assert!(contracts().schemas.contains_key("SensorReading"))
                }
                Payload::StoreEvent => assert!(contracts().schemas.contains_key("StoreEvent")),
                Payload::Explicit => {}
            }
        }
    }

    #[test]
    fn names_are_unique_where_aws_requires_it() {
        let c = contracts();
        let unique = |values: Vec<&String>| {
            values.iter().collect::<std::collections::BTreeSet<_>>().len() == values.len()
        };
        assert!(unique(c.topics.all().map(|t| &t.name).collect()));
        assert!(
            unique(c.topics.all().map(|t| &t.consumer_group).collect()),
            "each event source mapping needs its own consumer group"
        );
        assert!(
            unique(c.topics.all().map(|t| &t.env_var).collect()),
            "each topic has its own variable"
        );
        assert_ne!(c.tables.window_aggregates.name, c.tables.explicit_events.name);
        assert!(
            c.queues.poison.ends_with(".fifo"),
            "the poison queue deduplicates replays by record coordinates"
        );
    }
}
