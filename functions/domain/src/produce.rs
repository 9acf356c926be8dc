//! The producer service: typed requests, their validation, and the ports it drives (an event
//! publisher and the write side of a schema registry).
//!
//! Every request is validated, simulated or inferred, and encoded in full *before* anything is
//! published, so a bad request (too large, an event that does not fit, an incompatible schema)
//! publishes nothing.
//!
//! Retries: the Kafka client has no idempotent producer, so a retried request can publish
//! duplicates. To keep that detectable, every record carries an `event-id` header derived from the
//! request's content and the record's position: the same request always yields the same ids (and,
//! for simulations with an explicit `start_time_ms`, byte-identical records), so duplicates from a
//! retry are recognisable downstream. A publish that fails part-way reports how many records were
//! delivered.

use std::collections::BTreeMap;
use std::future::Future;

use pipeline_contracts::contracts;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;
use thiserror::Error;
use uuid::Uuid;

use crate::model::StoreEventType;
use crate::payload::{reader_schema, sensor_to_avro, AvroEncoder, PayloadError};
use crate::ports::PortError;
use crate::schema::{infer_record_schema, json_to_avro, Compatibility, CompatibilityError, InferenceError};
use crate::simulate::{
    render_store_event, simulate_sensor_readings, simulate_store_events, store_key, SensorSimulation,
    StoreSimulation, ValueFormat,
};
use crate::wire::{frame, Compression};

// ---------------------------------------------------------------------------------------------
// Ports

/// A schema version the registry holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredVersion {
    pub version_id: Uuid,
    pub version_number: Option<i64>,
    /// `false` when an identical definition was already registered and is reused.
    pub newly_registered: bool,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RegistryWriteError {
    /// The new definition breaks the schema's compatibility mode; nothing was registered.
    #[error("schema {schema_name:?} refuses the new version: {source}")]
    Incompatible {
        schema_name: String,
        #[source]
        source: CompatibilityError,
    },
    /// The definition is not valid Avro (or an existing version is not), so no check is possible.
    #[error("schema {schema_name:?}: {problem}")]
    InvalidDefinition { schema_name: String, problem: String },
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Write side of a schema registry.
pub trait SchemaRegistryWriter: Send + Sync {
    /// The version whose definition is exactly `definition`, if one is registered.
    fn find_version(
        &self,
        schema_name: &str,
        definition: &str,
    ) -> impl Future<Output = Result<Option<RegisteredVersion>, PortError>> + Send;

    /// Reuses the version with this exact definition, or registers a new one after checking it
    /// against the existing versions under the schema's compatibility mode. A schema that does not
    /// exist yet is created with `compatibility_if_new`.
    fn register_or_reuse(
        &self,
        schema_name: &str,
        definition: &str,
        compatibility_if_new: Compatibility,
    ) -> impl Future<Output = Result<RegisteredVersion, RegistryWriteError>> + Send;
}

/// One record to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRecord {
    /// `None` publishes round-robin; a key always lands on the same partition.
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    /// Epoch milliseconds (event time where the payload has one).
    pub timestamp_ms: i64,
}

/// Where a published record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub partition: i32,
    pub offset: i64,
}

/// A publish that failed, possibly after some records were delivered.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("{} of {} records not published to {topic}: {source}", .delivered.iter().filter(|d| d.is_none()).count(), .delivered.len())]
pub struct PublishError {
    pub topic: String,
    /// Per record, in request order: where it landed, or `None` if it was not (known to be) delivered.
    pub delivered: Vec<Option<Delivery>>,
    #[source]
    pub source: PortError,
}

impl PublishError {
    pub fn delivered_count(&self) -> usize {
        self.delivered.iter().filter(|d| d.is_some()).count()
    }
}

/// Publishes records to a topic. Records with the same key keep their relative order.
pub trait EventPublisher: Send + Sync {
    /// Returns one delivery per record, in the order given.
    fn publish(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
    ) -> impl Future<Output = Result<Vec<Delivery>, PublishError>> + Send;
}

// ---------------------------------------------------------------------------------------------
// Request

/// Compression of Avro bodies inside the Glue frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyCompression {
    #[default]
    None,
    Zlib,
}

impl From<BodyCompression> for Compression {
    fn from(value: BodyCompression) -> Self {
        match value {
            BodyCompression::None => Compression::None,
            BodyCompression::Zlib => Compression::Zlib,
        }
    }
}

fn yes() -> bool {
    true
}

/// What the producer function is asked to do; JSON tagged by `"action"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum ProduceRequest {
    /// `devices` devices, `readings_per_device` readings each, keyed by device id.
    SimulateSensors {
        devices: u32,
        readings_per_device: u32,
        seed: u64,
        /// Event time of the first reading; default: now, rounded down to `interval_ms`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_time_ms: Option<i64>,
        /// Default 1000.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        interval_ms: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<ValueFormat>,
        #[serde(default)]
        compression: BodyCompression,
    },
    /// `count` store events, `malformed_share` of them deliberately broken, keyed by store.
    SimulateStoreEvents {
        count: u32,
        #[serde(default)]
        malformed_share: f64,
        seed: u64,
        /// Timestamp of the first event, epoch microseconds; default: now.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_time_micros: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<ValueFormat>,
        #[serde(default)]
        compression: BodyCompression,
    },
    /// Explicit JSON events: infer their schema, register or reuse it, encode, publish.
    PublishEvents {
        /// Default: the contract's explicit-events topic (as configured).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        topic: Option<String>,
        /// Registry schema name and Avro record name (may be dotted: `com.example.Order`).
        schema_name: String,
        events: Vec<Json>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        format: Option<ValueFormat>,
        #[serde(default)]
        compression: BodyCompression,
        /// Register a new version when no identical one exists (default). When false, only an
        /// existing identical version is used (GetSchemaByDefinition), otherwise nothing is sent.
        #[serde(default = "yes")]
        auto_register: bool,
        /// A top-level field whose string or integer value becomes the record key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_field: Option<String>,
    },
}

impl ProduceRequest {
    pub fn action(&self) -> &'static str {
        match self {
            ProduceRequest::SimulateSensors { .. } => "simulate_sensors",
            ProduceRequest::SimulateStoreEvents { .. } => "simulate_store_events",
            ProduceRequest::PublishEvents { .. } => "publish_events",
        }
    }
}

/// Bounds that keep one invocation inside Lambda's memory, time and payload limits.
pub mod limits {
    /// Records one simulation may produce.
    pub const MAX_SIMULATED_RECORDS: u64 = 100_000;
    pub const MAX_DEVICES: u32 = 10_000;
    pub const MAX_INTERVAL_MS: i64 = 24 * 60 * 60 * 1000;
    pub const MAX_EXPLICIT_EVENTS: usize = 10_000;
    /// Per explicit event, as compact JSON; keeps each record far below Kafka's 1 MB default and
    /// the consumer's value limit.
    pub const MAX_EVENT_BYTES: usize = 128 * 1024;
    /// All explicit events of one request, as compact JSON.
    pub const MAX_EVENTS_TOTAL_BYTES: usize = 4 * 1024 * 1024;
}

/// The topics and defaults the service works with (from the configuration; names from the contract).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerSettings {
    pub sensor_topic: String,
    pub store_topic: String,
    pub explicit_topic: String,
    pub default_format: ValueFormat,
}

impl ProducerSettings {
    /// The contract's topic names, Avro by default.
    pub fn from_contract() -> Self {
        let topics = &contracts().topics;
        Self {
            sensor_topic: topics
                .first_carrying(pipeline_contracts::Payload::SensorReading)
                .name
                .clone(),
            store_topic: topics
                .first_carrying(pipeline_contracts::Payload::StoreEvent)
                .name
                .clone(),
            explicit_topic: topics
                .first_carrying(pipeline_contracts::Payload::Explicit)
                .name
                .clone(),
            default_format: ValueFormat::Avro,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Summary

/// The first and last offset written to one partition, and how many records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetRange {
    pub first: i64,
    pub last: i64,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaVersionUsed {
    pub schema_name: String,
    pub version_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_number: Option<i64>,
    pub newly_registered: bool,
}

/// What one request produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProduceSummary {
    pub action: String,
    pub format: ValueFormat,
    pub topic: String,
    /// Well-formed records per type: `sensor_reading`, `sales_event`, `inventory_event`, or the
    /// schema name of explicit events.
    pub produced: BTreeMap<String, u64>,
    /// Deliberately malformed records (store-event simulation), in total and per kind.
    pub malformed: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub malformed_by_kind: BTreeMap<String, u64>,
    pub schema_versions: Vec<SchemaVersionUsed>,
    /// Topic → partition → offsets written.
    pub partitions: BTreeMap<String, BTreeMap<i32, OffsetRange>>,
    /// Deterministic id of this request's content; each record's `event-id` derives from it.
    pub request_fingerprint: Uuid,
}

impl ProduceSummary {
    pub fn total_records(&self) -> u64 {
        self.produced.values().sum::<u64>() + self.malformed
    }
}

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Debug, Error)]
pub enum ProduceError {
    /// The request is wrong; nothing was published.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("cannot infer a schema from the events: {0}")]
    Inference(#[from] InferenceError),
    #[error("cannot encode: {0}")]
    Encoding(String),
    #[error(transparent)]
    Registry(#[from] RegistryWriteError),
    #[error("schema {schema_name:?} has no version identical to the inferred one and auto_register is false; nothing was published")]
    SchemaNotRegistered { schema_name: String },
    #[error(transparent)]
    Publish(#[from] PublishError),
}

impl ProduceError {
    /// True when retrying the same request could succeed (the failure was in an outside system).
    pub fn is_transient(&self) -> bool {
        match self {
            ProduceError::Registry(RegistryWriteError::Port(p)) => p.is_transient(),
            ProduceError::Publish(p) => p.source.is_transient(),
            _ => false,
        }
    }
}

impl From<PayloadError> for ProduceError {
    fn from(value: PayloadError) -> Self {
        ProduceError::Encoding(value.to_string())
    }
}

fn invalid(message: impl Into<String>) -> ProduceError {
    ProduceError::InvalidRequest(message.into())
}

// ---------------------------------------------------------------------------------------------
// Service

/// Header carrying the deterministic per-record id.
pub const EVENT_ID_HEADER: &str = "event-id";

/// Namespace of request fingerprints (a fixed, arbitrary UUID).
const FINGERPRINT_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a7e_43b5_4d0e_9a51_7c3e_8b20_d4f9);

/// Validated, encoded records of one request, ready to publish.
struct Prepared {
    topic: String,
    records: Vec<OutgoingRecord>,
    summary: ProduceSummary,
}

pub struct ProducerService<P, R> {
    publisher: P,
    registry: R,
    settings: ProducerSettings,
}

impl<P: EventPublisher, R: SchemaRegistryWriter> ProducerService<P, R> {
    pub fn new(publisher: P, registry: R, settings: ProducerSettings) -> Self {
        Self {
            publisher,
            registry,
            settings,
        }
    }

    pub fn publisher(&self) -> &P {
        &self.publisher
    }

    pub fn registry(&self) -> &R {
        &self.registry
    }

    pub fn settings(&self) -> &ProducerSettings {
        &self.settings
    }

    /// Handles one request; `now_ms` (epoch ms) fills default start times.
    pub async fn handle(&self, request: ProduceRequest, now_ms: i64) -> Result<ProduceSummary, ProduceError> {
        let request = resolve_defaults(request, now_ms, self.settings.default_format);
        validate(&request, &self.settings)?;
        let fingerprint = fingerprint(&request);
        let prepared = match &request {
            ProduceRequest::SimulateSensors { .. } => self.prepare_sensors(&request, fingerprint).await?,
            ProduceRequest::SimulateStoreEvents { .. } => {
                self.prepare_store_events(&request, fingerprint).await?
            }
            ProduceRequest::PublishEvents { .. } => {
                self.prepare_explicit(&request, fingerprint, now_ms).await?
            }
        };
        let Prepared {
            topic,
            records,
            mut summary,
        } = prepared;
        let deliveries = self.publisher.publish(&topic, records).await?;
        summary.partitions.insert(topic, offset_ranges(&deliveries));
        Ok(summary)
    }

    async fn contract_schema_version(&self, schema_name: &str) -> Result<SchemaVersionUsed, ProduceError> {
        let contract = contracts()
            .schemas
            .get(schema_name)
            .ok_or_else(|| ProduceError::Encoding(format!("no contract schema {schema_name}")))?;
        let registered = self
            .registry
            .register_or_reuse(schema_name, contract.latest_text(), contract.compatibility)
            .await?;
        Ok(used(schema_name, registered))
    }

    async fn prepare_sensors(
        &self,
        request: &ProduceRequest,
        fingerprint: Uuid,
    ) -> Result<Prepared, ProduceError> {
        let ProduceRequest::SimulateSensors {
            devices,
            readings_per_device,
            seed,
            start_time_ms,
            interval_ms,
            format,
            compression,
        } = request
        else {
            return Err(invalid("not a sensor simulation"));
        };
        let format = format.unwrap_or(self.settings.default_format);
        let readings = simulate_sensor_readings(&SensorSimulation {
            devices: *devices,
            readings_per_device: *readings_per_device,
            seed: *seed,
            start_time_ms: start_time_ms.unwrap_or_default(),
            interval_ms: interval_ms.unwrap_or(1_000),
        });
        let mut schema_versions = Vec::new();
        let mut records = Vec::with_capacity(readings.len());
        match format {
            ValueFormat::Json => {
                for (index, reading) in readings.iter().enumerate() {
                    let value =
                        serde_json::to_vec(reading).map_err(|e| ProduceError::Encoding(e.to_string()))?;
                    records.push(record(
                        Some(&reading.device_id),
                        value,
                        reading.event_time,
                        fingerprint,
                        index,
                    ));
                }
            }
            ValueFormat::Avro => {
                let version = self.contract_schema_version("SensorReading").await?;
                let schema = reader_schema("SensorReading")
                    .ok_or_else(|| ProduceError::Encoding("no SensorReading schema".into()))?;
                let encoder = AvroEncoder::new(schema)?;
                for (index, reading) in readings.iter().enumerate() {
                    let body = encoder.encode(sensor_to_avro(reading, schema))?;
                    let value = frame(version.version_id, &body, (*compression).into());
                    records.push(record(
                        Some(&reading.device_id),
                        value,
                        reading.event_time,
                        fingerprint,
                        index,
                    ));
                }
                schema_versions.push(version);
            }
        }
        let summary = ProduceSummary {
            action: request.action().into(),
            format,
            topic: self.settings.sensor_topic.clone(),
            produced: BTreeMap::from([("sensor_reading".to_string(), readings.len() as u64)]),
            malformed: 0,
            malformed_by_kind: BTreeMap::new(),
            schema_versions,
            partitions: BTreeMap::new(),
            request_fingerprint: fingerprint,
        };
        Ok(Prepared {
            topic: self.settings.sensor_topic.clone(),
            records,
            summary,
        })
    }

    async fn prepare_store_events(
        &self,
        request: &ProduceRequest,
        fingerprint: Uuid,
    ) -> Result<Prepared, ProduceError> {
        let ProduceRequest::SimulateStoreEvents {
            count,
            malformed_share,
            seed,
            start_time_micros,
            format,
            compression,
        } = request
        else {
            return Err(invalid("not a store-event simulation"));
        };
        let format = format.unwrap_or(self.settings.default_format);
        let simulated = simulate_store_events(
            &StoreSimulation {
                count: *count,
                malformed_share: *malformed_share,
                seed: *seed,
                start_time_micros: start_time_micros.unwrap_or_default(),
            },
            format,
        );
        let mut schema_versions = Vec::new();
        let version_id = match format {
            ValueFormat::Avro => {
                let version = self.contract_schema_version("StoreEvent").await?;
                let id = version.version_id;
                schema_versions.push(version);
                id
            }
            ValueFormat::Json => Uuid::nil(),
        };
        let mut produced: BTreeMap<String, u64> = BTreeMap::new();
        let mut malformed_by_kind: BTreeMap<String, u64> = BTreeMap::new();
        let mut records = Vec::with_capacity(simulated.len());
        for (index, event) in simulated.iter().enumerate() {
            let value = render_store_event(event, format, version_id, (*compression).into())?;
            match event.malformed_kind() {
                Some(kind) => *malformed_by_kind.entry(kind.as_str().to_string()).or_default() += 1,
                None => {
                    let kind = match event.event().event_type {
                        StoreEventType::Sales => StoreEventType::Sales.as_str(),
                        StoreEventType::Inventory => StoreEventType::Inventory.as_str(),
                    };
                    *produced.entry(kind.to_string()).or_default() += 1;
                }
            }
            let key = store_key(event.event().store_id);
            let timestamp_ms = event.event().ts_micros.div_euclid(1_000);
            records.push(record(Some(&key), value, timestamp_ms, fingerprint, index));
        }
        let summary = ProduceSummary {
            action: request.action().into(),
            format,
            topic: self.settings.store_topic.clone(),
            produced,
            malformed: malformed_by_kind.values().sum(),
            malformed_by_kind,
            schema_versions,
            partitions: BTreeMap::new(),
            request_fingerprint: fingerprint,
        };
        Ok(Prepared {
            topic: self.settings.store_topic.clone(),
            records,
            summary,
        })
    }

    async fn prepare_explicit(
        &self,
        request: &ProduceRequest,
        fingerprint: Uuid,
        now_ms: i64,
    ) -> Result<Prepared, ProduceError> {
        let ProduceRequest::PublishEvents {
            topic,
            schema_name,
            events,
            format,
            compression,
            auto_register,
            key_field,
        } = request
        else {
            return Err(invalid("not an explicit-event publish"));
        };
        let format = format.unwrap_or(self.settings.default_format);
        let topic = topic
            .clone()
            .unwrap_or_else(|| self.settings.explicit_topic.clone());
        // Inference also validates JSON events: one consistent shape, valid names.
        let inferred = infer_record_schema(schema_name, events)?;
        let keys: Vec<Option<String>> = match key_field {
            None => vec![None; events.len()],
            Some(field) => events
                .iter()
                .enumerate()
                .map(|(index, event)| match event.get(field) {
                    Some(Json::String(s)) => Ok(Some(s.clone())),
                    Some(Json::Number(n)) if n.is_i64() || n.is_u64() => Ok(Some(n.to_string())),
                    _ => Err(invalid(format!(
                        "event {index}: key_field {field:?} must be a string or an integer"
                    ))),
                })
                .collect::<Result<_, _>>()?,
        };
        let mut schema_versions = Vec::new();
        let mut records = Vec::with_capacity(events.len());
        match format {
            ValueFormat::Json => {
                for (index, (event, key)) in events.iter().zip(&keys).enumerate() {
                    let value =
                        serde_json::to_vec(event).map_err(|e| ProduceError::Encoding(e.to_string()))?;
                    records.push(record(key.as_deref(), value, now_ms, fingerprint, index));
                }
            }
            ValueFormat::Avro => {
                // Encode everything first: a value that does not fit stops the request before the
                // registry is touched.
                let encoder = AvroEncoder::new(&inferred.schema)?;
                let bodies = events
                    .iter()
                    .enumerate()
                    .map(|(index, event)| {
                        json_to_avro(event, &inferred.schema)
                            .map_err(|e| ProduceError::Encoding(format!("event {index}: {e}")))
                            .and_then(|value| Ok(encoder.encode(value)?))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                drop(encoder);
                let registered = if *auto_register {
                    self.registry
                        .register_or_reuse(schema_name, &inferred.definition, Compatibility::Backward)
                        .await?
                } else {
                    self.registry
                        .find_version(schema_name, &inferred.definition)
                        .await
                        .map_err(RegistryWriteError::from)?
                        .ok_or_else(|| ProduceError::SchemaNotRegistered {
                            schema_name: schema_name.clone(),
                        })?
                };
                for (index, (body, key)) in bodies.iter().zip(&keys).enumerate() {
                    let value = frame(registered.version_id, body, (*compression).into());
                    records.push(record(key.as_deref(), value, now_ms, fingerprint, index));
                }
                schema_versions.push(used(schema_name, registered));
            }
        }
        let summary = ProduceSummary {
            action: request.action().into(),
            format,
            topic: topic.clone(),
            produced: BTreeMap::from([(schema_name.clone(), events.len() as u64)]),
            malformed: 0,
            malformed_by_kind: BTreeMap::new(),
            schema_versions,
            partitions: BTreeMap::new(),
            request_fingerprint: fingerprint,
        };
        Ok(Prepared {
            topic,
            records,
            summary,
        })
    }
}

fn used(schema_name: &str, registered: RegisteredVersion) -> SchemaVersionUsed {
    SchemaVersionUsed {
        schema_name: schema_name.to_string(),
        version_id: registered.version_id,
        version_number: registered.version_number,
        newly_registered: registered.newly_registered,
    }
}

/// The deterministic id of record `index` of the request with `fingerprint`.
pub fn event_id(fingerprint: Uuid, index: usize) -> Uuid {
    Uuid::new_v5(&fingerprint, &(index as u64).to_be_bytes())
}

fn record(
    key: Option<&str>,
    value: Vec<u8>,
    timestamp_ms: i64,
    fingerprint: Uuid,
    index: usize,
) -> OutgoingRecord {
    OutgoingRecord {
        key: key.map(|k| k.as_bytes().to_vec()),
        value,
        headers: vec![(
            EVENT_ID_HEADER.to_string(),
            event_id(fingerprint, index).to_string().into_bytes(),
        )],
        timestamp_ms,
    }
}

/// Fills defaults that depend on the clock or the configuration, so the fingerprint (and the
/// records) of a request are fully determined by the resolved request.
fn resolve_defaults(request: ProduceRequest, now_ms: i64, default_format: ValueFormat) -> ProduceRequest {
    match request {
        ProduceRequest::SimulateSensors {
            devices,
            readings_per_device,
            seed,
            start_time_ms,
            interval_ms,
            format,
            compression,
        } => {
            let interval = interval_ms.unwrap_or(1_000);
            let start = start_time_ms.unwrap_or_else(|| {
                if interval > 0 {
                    now_ms - now_ms.rem_euclid(interval)
                } else {
                    now_ms
                }
            });
            ProduceRequest::SimulateSensors {
                devices,
                readings_per_device,
                seed,
                start_time_ms: Some(start),
                interval_ms: Some(interval),
                format: Some(format.unwrap_or(default_format)),
                compression,
            }
        }
        ProduceRequest::SimulateStoreEvents {
            count,
            malformed_share,
            seed,
            start_time_micros,
            format,
            compression,
        } => ProduceRequest::SimulateStoreEvents {
            count,
            malformed_share,
            seed,
            start_time_micros: Some(start_time_micros.unwrap_or(now_ms.saturating_mul(1_000))),
            format: Some(format.unwrap_or(default_format)),
            compression,
        },
        ProduceRequest::PublishEvents {
            topic,
            schema_name,
            events,
            format,
            compression,
            auto_register,
            key_field,
        } => ProduceRequest::PublishEvents {
            topic,
            schema_name,
            events,
            format: Some(format.unwrap_or(default_format)),
            compression,
            auto_register,
            key_field,
        },
    }
}

fn fingerprint(request: &ProduceRequest) -> Uuid {
    // Serialising the request cannot fail (plain data, string keys).
    let canonical = serde_json::to_vec(request).unwrap_or_default();
    Uuid::new_v5(&FINGERPRINT_NAMESPACE, &canonical)
}

/// Kafka's legal topic names: 1..=249 of `[a-zA-Z0-9._-]`, not `.` or `..`.
fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Checks every bound before any work is done.
pub fn validate(request: &ProduceRequest, settings: &ProducerSettings) -> Result<(), ProduceError> {
    use limits::*;
    match request {
        ProduceRequest::SimulateSensors {
            devices,
            readings_per_device,
            start_time_ms,
            interval_ms,
            ..
        } => {
            if *devices == 0 || *devices > MAX_DEVICES {
                return Err(invalid(format!(
                    "devices must be 1..={MAX_DEVICES}, got {devices}"
                )));
            }
            if *readings_per_device == 0 {
                return Err(invalid("readings_per_device must be at least 1"));
            }
            let total = u64::from(*devices) * u64::from(*readings_per_device);
            if total > MAX_SIMULATED_RECORDS {
                return Err(invalid(format!(
                    "{devices} devices x {readings_per_device} readings = {total} records, more than {MAX_SIMULATED_RECORDS} per request"
                )));
            }
            if let Some(interval) = interval_ms {
                if *interval <= 0 || *interval > MAX_INTERVAL_MS {
                    return Err(invalid(format!(
                        "interval_ms must be 1..={MAX_INTERVAL_MS}, got {interval}"
                    )));
                }
            }
            if let Some(start) = start_time_ms {
                let last = interval_ms
                    .unwrap_or(1_000)
                    .checked_mul(i64::from(*readings_per_device))
                    .and_then(|span| start.checked_add(span));
                if *start < 0 || last.is_none() {
                    return Err(invalid(format!("start_time_ms {start} is out of range")));
                }
            }
        }
        ProduceRequest::SimulateStoreEvents {
            count,
            malformed_share,
            start_time_micros,
            ..
        } => {
            if *count == 0 || u64::from(*count) > MAX_SIMULATED_RECORDS {
                return Err(invalid(format!(
                    "count must be 1..={MAX_SIMULATED_RECORDS}, got {count}"
                )));
            }
            if !malformed_share.is_finite() || !(0.0..=1.0).contains(malformed_share) {
                return Err(invalid(format!(
                    "malformed_share must be within 0..=1, got {malformed_share}"
                )));
            }
            if let Some(start) = start_time_micros {
                if *start < 0 || start.checked_add(i64::from(*count) * 1_000_000).is_none() {
                    return Err(invalid(format!("start_time_micros {start} is out of range")));
                }
            }
        }
        ProduceRequest::PublishEvents {
            topic,
            events,
            key_field,
            ..
        } => {
            if events.is_empty() {
                return Err(invalid("events must not be empty"));
            }
            if events.len() > MAX_EXPLICIT_EVENTS {
                return Err(invalid(format!(
                    "{} events, more than {MAX_EXPLICIT_EVENTS} per request",
                    events.len()
                )));
            }
            let mut total = 0usize;
            for (index, event) in events.iter().enumerate() {
                let size = serde_json::to_vec(event).map(|v| v.len()).unwrap_or(usize::MAX);
                if size > MAX_EVENT_BYTES {
                    return Err(invalid(format!(
                        "event {index} is {size} bytes of JSON, more than {MAX_EVENT_BYTES}"
                    )));
                }
                total = total.saturating_add(size);
            }
            if total > MAX_EVENTS_TOTAL_BYTES {
                return Err(invalid(format!(
                    "events total {total} bytes of JSON, more than {MAX_EVENTS_TOTAL_BYTES}"
                )));
            }
            if let Some(topic) = topic {
                if !valid_topic_name(topic) {
                    return Err(invalid(format!("{topic:?} is not a valid Kafka topic name")));
                }
                // Those topics carry fixed payloads: explicit events there would be poison.
                if topic == &settings.sensor_topic || topic == &settings.store_topic {
                    return Err(invalid(format!(
                        "topic {topic:?} carries a fixed payload; publish explicit events to {:?} or another topic",
                        settings.explicit_topic
                    )));
                }
            }
            if let Some(field) = key_field {
                if field.is_empty() {
                    return Err(invalid("key_field must not be empty"));
                }
            }
        }
    }
    Ok(())
}

fn offset_ranges(deliveries: &[Delivery]) -> BTreeMap<i32, OffsetRange> {
    let mut ranges: BTreeMap<i32, OffsetRange> = BTreeMap::new();
    for d in deliveries {
        ranges
            .entry(d.partition)
            .and_modify(|r| {
                r.first = r.first.min(d.offset);
                r.last = r.last.max(d.offset);
                r.count += 1;
            })
            .or_insert(OffsetRange {
                first: d.offset,
                last: d.offset,
                count: 1,
            });
    }
    ranges
}

// ---------------------------------------------------------------------------------------------
// In-memory fakes for unit tests (here and in the producer crate)

pub mod fakes {
    //! In-memory publisher and registry for unit tests.

    use std::collections::HashMap;
    use std::sync::Mutex;

    use apache_avro::Schema;

    use super::*;
    use crate::schema::{check_compatibility, ExistingVersion};

    /// Records what was published, per topic; partitions by a simple hash of the key.
    #[derive(Debug, Default)]
    pub struct InMemoryPublisher {
        pub partitions: i32,
        published: Mutex<HashMap<String, Vec<(Delivery, OutgoingRecord)>>>,
        /// Fail the next publish after delivering this many records (then reset).
        fail_after: Mutex<Option<usize>>,
    }

    impl InMemoryPublisher {
        pub fn new(partitions: i32) -> Self {
            Self {
                partitions,
                ..Self::default()
            }
        }

        pub fn fail_next_publish_after(&self, delivered: usize) {
            *self.fail_after.lock().unwrap_or_else(|p| p.into_inner()) = Some(delivered);
        }

        pub fn published(&self, topic: &str) -> Vec<(Delivery, OutgoingRecord)> {
            self.published
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(topic)
                .cloned()
                .unwrap_or_default()
        }
    }

    impl EventPublisher for InMemoryPublisher {
        async fn publish(
            &self,
            topic: &str,
            records: Vec<OutgoingRecord>,
        ) -> Result<Vec<Delivery>, PublishError> {
            let fail_after = self.fail_after.lock().unwrap_or_else(|p| p.into_inner()).take();
            let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
            let log = published.entry(topic.to_string()).or_default();
            let mut deliveries = Vec::with_capacity(records.len());
            let total = records.len();
            for (index, record) in records.into_iter().enumerate() {
                if fail_after == Some(index) {
                    let mut delivered: Vec<Option<Delivery>> = deliveries.into_iter().map(Some).collect();
                    delivered.resize(total, None);
                    return Err(PublishError {
                        topic: topic.to_string(),
                        delivered,
                        source: PortError::Transient {
                            component: "in-memory kafka",
                            message: "injected failure".into(),
                        },
                    });
                }
                let partition = match &record.key {
                    Some(key) => {
                        (key.iter().map(|b| u32::from(*b)).sum::<u32>() % self.partitions.max(1) as u32)
                            as i32
                    }
                    None => (log.len() as i32) % self.partitions.max(1),
                };
                let offset = log.iter().filter(|(d, _)| d.partition == partition).count() as i64;
                let delivery = Delivery { partition, offset };
                log.push((delivery, record));
                deliveries.push(delivery);
            }
            Ok(deliveries)
        }
    }

    /// A schema's mode and its versions (id, definition), oldest first.
    type StoredSchema = (Compatibility, Vec<(Uuid, String)>);

    /// A registry that checks compatibility like the Glue adapter.
    #[derive(Debug, Default)]
    pub struct InMemoryRegistry {
        schemas: Mutex<HashMap<String, StoredSchema>>,
    }

    impl InMemoryRegistry {
        pub fn versions(&self, schema_name: &str) -> Vec<(Uuid, String)> {
            self.schemas
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(schema_name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        }

        pub fn definition(&self, version_id: Uuid) -> Option<String> {
            self.schemas
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .flat_map(|(_, versions)| versions.iter())
                .find(|(id, _)| *id == version_id)
                .map(|(_, d)| d.clone())
        }
    }

    impl SchemaRegistryWriter for InMemoryRegistry {
        async fn find_version(
            &self,
            schema_name: &str,
            definition: &str,
        ) -> Result<Option<RegisteredVersion>, PortError> {
            Ok(self
                .versions(schema_name)
                .iter()
                .position(|(_, d)| d == definition)
                .map(|i| RegisteredVersion {
                    version_id: self.versions(schema_name)[i].0,
                    version_number: Some(i as i64 + 1),
                    newly_registered: false,
                }))
        }

        async fn register_or_reuse(
            &self,
            schema_name: &str,
            definition: &str,
            compatibility_if_new: Compatibility,
        ) -> Result<RegisteredVersion, RegistryWriteError> {
            if let Some(found) = self.find_version(schema_name, definition).await? {
                return Ok(found);
            }
            let invalid = |e: apache_avro::Error| RegistryWriteError::InvalidDefinition {
                schema_name: schema_name.to_string(),
                problem: e.to_string(),
            };
            let new = Schema::parse_str(definition).map_err(invalid)?;
            let mut schemas = self.schemas.lock().unwrap_or_else(|p| p.into_inner());
            let (mode, versions) = schemas
                .entry(schema_name.to_string())
                .or_insert_with(|| (compatibility_if_new, Vec::new()));
            if !versions.is_empty() {
                let parsed = versions
                    .iter()
                    .map(|(_, d)| Schema::parse_str(d))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(invalid)?;
                let existing: Vec<ExistingVersion<'_>> = parsed
                    .iter()
                    .enumerate()
                    .map(|(i, schema)| ExistingVersion {
                        version_number: i as i64 + 1,
                        schema,
                    })
                    .collect();
                check_compatibility(*mode, &new, &existing).map_err(|source| {
                    RegistryWriteError::Incompatible {
                        schema_name: schema_name.to_string(),
                        source,
                    }
                })?;
            }
            let version_id = Uuid::new_v5(
                &Uuid::NAMESPACE_OID,
                format!("{schema_name}:{definition}").as_bytes(),
            );
            versions.push((version_id, definition.to_string()));
            Ok(RegisteredVersion {
                version_id,
                version_number: Some(versions.len() as i64),
                newly_registered: true,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fakes::{InMemoryPublisher, InMemoryRegistry};
    use super::*;
    use crate::payload::{decode_avro, sensor_from_avro, sensor_from_json, store_event_from_json};
    use crate::simulate::MalformedKind;
    use crate::wire::{classify, WireValue};
    use serde_json::json;

    const NOW: i64 = 1_700_000_123_456;

    fn service() -> ProducerService<InMemoryPublisher, InMemoryRegistry> {
        ProducerService::new(
            InMemoryPublisher::new(4),
            InMemoryRegistry::default(),
            ProducerSettings::from_contract(),
        )
    }

    fn parse(value: Json) -> ProduceRequest {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn requests_parse_from_tagged_json_with_defaults() {
        let r =
            parse(json!({"action": "simulate_sensors", "devices": 3, "readings_per_device": 2, "seed": 1}));
        assert_eq!(
            r,
            ProduceRequest::SimulateSensors {
                devices: 3,
                readings_per_device: 2,
                seed: 1,
                start_time_ms: None,
                interval_ms: None,
                format: None,
                compression: BodyCompression::None
            }
        );
        let r = parse(
            json!({"action": "publish_events", "schema_name": "Order", "events": [{"a": 1}], "format": "json"}),
        );
        assert!(matches!(
            r,
            ProduceRequest::PublishEvents {
                auto_register: true,
                format: Some(ValueFormat::Json),
                ..
            }
        ));
        for bad in [
            json!({"action": "simulate_sensors", "devices": 3, "readings_per_device": 2, "seed": 1, "colour": "red"}),
            json!({"action": "delete_everything"}),
            json!({"devices": 3}),
            json!({"action": "simulate_store_events", "count": -1, "seed": 1}),
            json!({"action": "simulate_sensors", "devices": 3, "readings_per_device": 2, "seed": 1, "format": "xml"}),
        ] {
            assert!(
                serde_json::from_value::<ProduceRequest>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[tokio::test]
    async fn sensor_simulation_publishes_framed_avro_keyed_by_device() {
        let service = service();
        let request = parse(json!({
            "action": "simulate_sensors", "devices": 4, "readings_per_device": 5, "seed": 9,
            "start_time_ms": 1_000_000, "interval_ms": 500, "compression": "zlib"
        }));
        let summary = service.handle(request, NOW).await.unwrap();
        assert_eq!(summary.produced["sensor_reading"], 20);
        assert_eq!(summary.format, ValueFormat::Avro);
        assert_eq!(summary.schema_versions.len(), 1);
        let version = summary.schema_versions[0].version_id;
        let definition = service.registry().definition(version).unwrap();
        assert_eq!(definition, contracts().schemas["SensorReading"].latest_text());
        let published = service.publisher().published(&service.settings().sensor_topic);
        assert_eq!(published.len(), 20);
        let writer = apache_avro::Schema::parse_str(&definition).unwrap();
        let mut partition_of_key: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
        for (delivery, record) in &published {
            let WireValue::GlueAvro(frame) = classify(&record.value).unwrap() else {
                panic!("not framed")
            };
            assert_eq!(frame.schema_version_id, version);
            assert_eq!(frame.compression, Compression::Zlib);
            let reading =
                sensor_from_avro(decode_avro(&frame.avro_body().unwrap(), &writer).unwrap()).unwrap();
            assert_eq!(record.key.as_deref(), Some(reading.device_id.as_bytes()));
            assert_eq!(record.timestamp_ms, reading.event_time);
            let previous = partition_of_key.insert(record.key.clone().unwrap(), delivery.partition);
            assert!(previous.is_none() || previous == Some(delivery.partition));
        }
        let total: u64 = summary.partitions[&service.settings().sensor_topic]
            .values()
            .map(|r| r.count)
            .sum();
        assert_eq!(total, 20);
    }

    #[tokio::test]
    async fn same_request_same_records_and_event_ids() {
        let request = parse(
            json!({"action": "simulate_sensors", "devices": 2, "readings_per_device": 3, "seed": 4, "format": "json"}),
        );
        let a = service();
        let b = service();
        let sa = a.handle(request.clone(), NOW).await.unwrap();
        let sb = b.handle(request, NOW).await.unwrap();
        assert_eq!(sa.request_fingerprint, sb.request_fingerprint);
        let topic = &a.settings().sensor_topic;
        let ra: Vec<OutgoingRecord> = a
            .publisher()
            .published(topic)
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        let rb: Vec<OutgoingRecord> = b
            .publisher()
            .published(topic)
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        assert_eq!(ra, rb);
        let ids: std::collections::BTreeSet<&[u8]> = ra.iter().map(|r| r.headers[0].1.as_slice()).collect();
        assert_eq!(ids.len(), ra.len(), "event ids are unique within a request");
        // JSON values are what the consumer parses.
        for r in &ra {
            sensor_from_json(&r.value).unwrap();
        }
        // A different clock gives a different default start time, hence a different fingerprint.
        let c = service();
        let request = parse(
            json!({"action": "simulate_sensors", "devices": 2, "readings_per_device": 3, "seed": 4, "format": "json"}),
        );
        let sc = c.handle(request, NOW + 3_600_000).await.unwrap();
        assert_ne!(sc.request_fingerprint, sa.request_fingerprint);
    }

    #[tokio::test]
    async fn store_simulation_counts_types_and_malformed_kinds() {
        let service = service();
        let request = parse(
            json!({"action": "simulate_store_events", "count": 100, "malformed_share": 0.2, "seed": 3, "format": "json"}),
        );
        let summary = service.handle(request, NOW).await.unwrap();
        assert_eq!(summary.malformed, 20);
        assert_eq!(summary.total_records(), 100);
        assert_eq!(
            summary.malformed_by_kind.keys().cloned().collect::<Vec<_>>(),
            MalformedKind::for_format(ValueFormat::Json)
                .iter()
                .map(|k| k.as_str().to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
        let published = service.publisher().published(&service.settings().store_topic);
        let decodable = published
            .iter()
            .filter(|(_, r)| matches!(classify(&r.value), Ok(WireValue::Json(j)) if store_event_from_json(j).is_ok()))
            .count() as u64;
        assert_eq!(decodable, summary.produced.values().sum::<u64>());
        assert!(
            summary.schema_versions.is_empty(),
            "JSON does not touch the registry"
        );
    }

    #[tokio::test]
    async fn explicit_events_register_then_reuse_then_refuse_an_incompatible_change() {
        let service = service();
        let first = parse(
            json!({"action": "publish_events", "schema_name": "Order", "key_field": "id",
            "events": [{"id": "o-1", "amount": 2.5}, {"id": "o-2", "amount": 3, "coupon": "X"}]}),
        );
        let summary = service.handle(first.clone(), NOW).await.unwrap();
        assert!(summary.schema_versions[0].newly_registered);
        assert_eq!(summary.produced["Order"], 2);
        let again = service.handle(first, NOW).await.unwrap();
        assert!(!again.schema_versions[0].newly_registered);
        assert_eq!(
            again.schema_versions[0].version_id,
            summary.schema_versions[0].version_id
        );
        let topic = service.settings().explicit_topic.clone();
        assert_eq!(service.publisher().published(&topic).len(), 4);
        assert_eq!(
            service.publisher().published(&topic)[0].1.key.as_deref(),
            Some(&b"o-1"[..])
        );

        // `amount` becomes a string: a BACKWARD-incompatible change. Nothing is published.
        let breaking = parse(json!({"action": "publish_events", "schema_name": "Order",
            "events": [{"id": "o-3", "amount": "3.10"}]}));
        let err = service.handle(breaking, NOW).await.unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(
                err,
                ProduceError::Registry(RegistryWriteError::Incompatible { .. })
            ),
            "{message}"
        );
        assert!(
            message.contains("Order") && message.contains("BACKWARD"),
            "{message}"
        );
        assert_eq!(service.publisher().published(&topic).len(), 4);
        assert_eq!(service.registry().versions("Order").len(), 1);

        // Without auto-registration an unknown shape is refused, a known one is reused.
        let unknown = parse(
            json!({"action": "publish_events", "schema_name": "Order", "auto_register": false,
            "events": [{"id": "o-4", "amount": 1.0, "note": "new field"}]}),
        );
        assert!(matches!(
            service.handle(unknown, NOW).await.unwrap_err(),
            ProduceError::SchemaNotRegistered { .. }
        ));
        assert_eq!(service.publisher().published(&topic).len(), 4);
    }

    #[tokio::test]
    async fn oversized_and_invalid_requests_are_refused_before_anything_is_published() {
        let service = service();
        let big_string = "x".repeat(limits::MAX_EVENT_BYTES);
        let cases = [
            json!({"action": "simulate_sensors", "devices": 1000, "readings_per_device": 1000, "seed": 1}),
            json!({"action": "simulate_sensors", "devices": 0, "readings_per_device": 1, "seed": 1}),
            json!({"action": "simulate_sensors", "devices": 1, "readings_per_device": 1, "seed": 1, "interval_ms": 0}),
            json!({"action": "simulate_store_events", "count": 10, "malformed_share": 1.5, "seed": 1}),
            json!({"action": "simulate_store_events", "count": 0, "seed": 1}),
            json!({"action": "publish_events", "schema_name": "E", "events": []}),
            json!({"action": "publish_events", "schema_name": "E", "events": [{"big": big_string}]}),
            json!({"action": "publish_events", "schema_name": "E", "events": [{"a": 1}], "topic": "sensor-readings"}),
            json!({"action": "publish_events", "schema_name": "E", "events": [{"a": 1}], "topic": "bad topic!"}),
            json!({"action": "publish_events", "schema_name": "E", "events": [{"a": 1}, {"a": "x"}]}),
            json!({"action": "publish_events", "schema_name": "E", "events": [{"a": 1}], "key_field": "missing"}),
            json!({"action": "publish_events", "schema_name": "9E", "events": [{"a": 1}]}),
        ];
        for case in cases {
            let err = service.handle(parse(case.clone()), NOW).await.unwrap_err();
            assert!(!err.is_transient(), "{case}: {err}");
        }
        for topic in ["sensor-readings", "store-events", "explicit-events"] {
            assert!(service.publisher().published(topic).is_empty());
        }
        assert!(service.registry().versions("E").is_empty());
    }

    #[tokio::test]
    async fn a_partial_publish_failure_reports_what_was_delivered() {
        let service = service();
        service.publisher().fail_next_publish_after(3);
        let request = parse(
            json!({"action": "simulate_sensors", "devices": 2, "readings_per_device": 4, "seed": 1, "format": "json"}),
        );
        let err = service.handle(request, NOW).await.unwrap_err();
        assert!(err.is_transient());
        let ProduceError::Publish(publish) = &err else {
            panic!("{err}")
        };
        assert_eq!(publish.delivered_count(), 3);
        assert!(err.to_string().contains("5 of 8"), "{err}");
    }

    #[test]
    fn offset_ranges_summarise_per_partition() {
        let ranges = offset_ranges(&[
            Delivery {
                partition: 1,
                offset: 7,
            },
            Delivery {
                partition: 0,
                offset: 3,
            },
            Delivery {
                partition: 1,
                offset: 5,
            },
        ]);
        assert_eq!(
            ranges[&1],
            OffsetRange {
                first: 5,
                last: 7,
                count: 2
            }
        );
        assert_eq!(
            ranges[&0],
            OffsetRange {
                first: 3,
                last: 3,
                count: 1
            }
        );
    }
}
