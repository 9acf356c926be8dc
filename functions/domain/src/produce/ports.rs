//! The ports the producer drives: an event publisher and the write side of a schema registry.

use std::future::Future;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::ports::PortError;
use crate::schema::{Compatibility, CompatibilityError};

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
