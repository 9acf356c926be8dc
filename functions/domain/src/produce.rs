//! The producer service: typed requests, their validation, and the ports it drives (an event
//! publisher and the write side of a schema registry).

use std::future::Future;

use thiserror::Error;
use uuid::Uuid;

use crate::ports::PortError;
use crate::schema::{Compatibility, CompatibilityError};

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
