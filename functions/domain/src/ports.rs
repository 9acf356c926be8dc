//! Ports shared by the producer and the consumer. Each service defines its other ports next to
//! itself; only what both sides need lives here.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use thiserror::Error;
use uuid::Uuid;

/// Failure of an outside system, classified so callers know whether a retry can help.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PortError {
    /// Throttling, timeouts, connection loss, 5xx: worth retrying with backoff.
    #[error("transient failure in {component}: {message}")]
    Transient {
        component: &'static str,
        message: String,
    },
    /// The request itself is wrong (missing resource, access denied, invalid input).
    #[error("{component} rejected the request: {message}")]
    Rejected {
        component: &'static str,
        message: String,
    },
    /// The thing looked up does not exist.
    #[error("{component}: {what} not found")]
    NotFound { component: &'static str, what: String },
}

impl PortError {
    pub fn is_transient(&self) -> bool {
        matches!(self, PortError::Transient { .. })
    }
}

/// What the registry says of one schema version (Glue `GetSchemaVersion`: `DataFormat`, `Status`,
/// `SchemaDefinition`). The consumer decides what a format or status means for a record; the
/// adapter only reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaVersion {
    pub definition: String,
    /// `AVRO`, `JSON` or `PROTOBUF`, as the registry spells it.
    pub data_format: String,
    /// `AVAILABLE`, `PENDING`, `FAILURE` or `DELETING`, as the registry spells it.
    pub status: String,
}

impl SchemaVersion {
    pub const AVRO: &'static str = "AVRO";
    pub const AVAILABLE: &'static str = "AVAILABLE";

    /// An AVAILABLE Avro version.
    pub fn available_avro(definition: impl Into<String>) -> Self {
        Self {
            definition: definition.into(),
            data_format: Self::AVRO.into(),
            status: Self::AVAILABLE.into(),
        }
    }
}

/// Read side of a schema registry: one schema version, by its id. `NotFound` when the registry
/// does not know the id; other errors when it could not answer.
pub trait SchemaSource: Send + Sync {
    fn schema_version(
        &self,
        version_id: Uuid,
    ) -> impl Future<Output = Result<SchemaVersion, PortError>> + Send;
}

/// An in-memory registry for unit tests.
#[derive(Debug, Default)]
pub struct InMemorySchemaSource {
    versions: Mutex<HashMap<Uuid, SchemaVersion>>,
}

impl InMemorySchemaSource {
    /// Registers an AVAILABLE Avro version.
    pub fn insert(&self, version_id: Uuid, definition: &str) {
        self.insert_version(version_id, SchemaVersion::available_avro(definition));
    }

    pub fn insert_version(&self, version_id: Uuid, version: SchemaVersion) {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(version_id, version);
    }
}

impl SchemaSource for InMemorySchemaSource {
    async fn schema_version(&self, version_id: Uuid) -> Result<SchemaVersion, PortError> {
        self.versions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&version_id)
            .cloned()
            .ok_or(PortError::NotFound {
                component: "schema registry",
                what: format!("schema version {version_id}"),
            })
    }
}
