//! The producer service: validate, prepare every record of a request, then publish them.

use std::collections::BTreeMap;

use pipeline_contracts::contracts;
use serde_json::Value as Json;
use uuid::Uuid;

use super::ports::{EventPublisher, OutgoingRecord, RegistryWriteError, SchemaRegistryWriter};
use super::request::{fingerprint, resolve_defaults, validate, ProduceRequest, ProducerSettings};
use super::{invalid, offset_ranges, record, used, ProduceError, ProduceSummary, SchemaVersionUsed};
use crate::avro_write::JsonEncodePlan;
use crate::model::StoreEventType;
use crate::payload::{reader_schema, SensorAvroWriter};
use crate::schema::{infer_record_schema, Compatibility};
use crate::simulate::{
    render_store_event, simulate_sensor_readings, simulate_store_events, store_key, SensorSimulation,
    StoreSimulation, ValueFormat,
};
use crate::wire::{frame, frame_with};

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
                let writer = SensorAvroWriter::for_schema(schema)?;
                for (index, reading) in readings.iter().enumerate() {
                    let value = frame_with(version.version_id, (*compression).into(), 48, |body| {
                        writer.write(reading, body)
                    });
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
                let plan = JsonEncodePlan::compile(&inferred.schema);
                let bodies = events
                    .iter()
                    .enumerate()
                    .map(|(index, event)| {
                        plan.encode_to_vec(event)
                            .map_err(|e| ProduceError::Encoding(format!("event {index}: {e}")))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
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
