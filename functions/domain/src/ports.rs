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

/// Read side of a schema registry: the definition of one schema version, by its id.
pub trait SchemaSource: Send + Sync {
    fn schema_definition(&self, version_id: Uuid) -> impl Future<Output = Result<String, PortError>> + Send;
}

/// An in-memory registry for unit tests.
#[derive(Debug, Default)]
pub struct InMemorySchemaSource {
    definitions: Mutex<HashMap<Uuid, String>>,
}

impl InMemorySchemaSource {
    pub fn insert(&self, version_id: Uuid, definition: &str) {
        self.definitions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(version_id, definition.to_string());
    }
}

impl SchemaSource for InMemorySchemaSource {
    async fn schema_definition(&self, version_id: Uuid) -> Result<String, PortError> {
        self.definitions
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
