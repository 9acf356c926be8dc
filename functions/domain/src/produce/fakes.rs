//! In-memory publisher and registry for unit tests.

use std::collections::HashMap;
use std::sync::Mutex;

use apache_avro::Schema;
use uuid::Uuid;

use super::ports::{
    Delivery, EventPublisher, OutgoingRecord, PublishError, RegisteredVersion, RegistryWriteError,
    SchemaRegistryWriter,
};
use crate::ports::PortError;
use crate::schema::{check_compatibility, Compatibility, ExistingVersion};

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
                    (key.iter().map(|b| u32::from(*b)).sum::<u32>() % self.partitions.max(1) as u32) as i32
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
