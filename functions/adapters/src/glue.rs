//! AWS Glue Schema Registry: the read side ([`SchemaSource`], by schema version id, cached) and
//! the write side ([`SchemaRegistryWriter`]: reuse an identical version or register a new one).
//!
//! Compatibility is checked here, in our code, before `RegisterSchemaVersion`: the real registry
//! would also refuse an incompatible version (with status FAILURE), but moto does not enforce it,
//! and checking first gives the same clear error in both places and registers nothing.
//!
//! The client can read through an assumed cross-account role (the registry lives in the producer
//! account; consumers in another account assume a role there): see [`glue_client`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use apache_avro::Schema;
use aws_sdk_glue::operation::get_schema_version::GetSchemaVersionOutput;
use aws_sdk_glue::types::{
    Compatibility as GlueCompatibility, DataFormat, RegistryId, SchemaId, SchemaVersionNumber,
    SchemaVersionStatus,
};
use pipeline_domain::ports::{PortError, SchemaSource, SchemaVersion};
use pipeline_domain::produce::{RegisteredVersion, RegistryWriteError, SchemaRegistryWriter};
use pipeline_domain::schema::{
    check_compatibility, mode_name, parse_mode, versions_to_check, Compatibility, ExistingVersion,
    VersionsToCheck,
};
use uuid::Uuid;

use crate::aws::classify_sdk_error;

const COMPONENT: &str = "glue schema registry";

/// How long a new version may stay PENDING before we give up waiting for it.
const AVAILABLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A Glue client, reading through `registry_role_arn` when one is given (credentials come from
/// STS AssumeRole and are refreshed by the SDK's identity cache before they expire).
pub async fn glue_client(
    sdk_config: &aws_config::SdkConfig,
    registry_role_arn: Option<&str>,
) -> aws_sdk_glue::Client {
    match registry_role_arn {
        None => aws_sdk_glue::Client::new(sdk_config),
        Some(role_arn) => {
            let config = aws_sdk_glue::config::Builder::from(sdk_config)
                .credentials_provider(assumed_role_credentials(sdk_config, role_arn).await)
                .build();
            aws_sdk_glue::Client::from_conf(config)
        }
    }
}

/// Credentials of the cross-account registry role, refreshed before they expire.
pub async fn assumed_role_credentials(
    sdk_config: &aws_config::SdkConfig,
    role_arn: &str,
) -> aws_config::sts::AssumeRoleProvider {
    aws_config::sts::AssumeRoleProvider::builder(role_arn)
        .session_name("pipeline-schema-registry")
        .configure(sdk_config)
        .build()
        .await
}

/// One Glue schema registry (by name).
#[derive(Debug, Clone)]
pub struct GlueSchemaRegistry {
    client: aws_sdk_glue::Client,
    registry_name: String,
    /// Version definitions are immutable, so a version id maps to one definition for ever.
    definitions: Arc<RwLock<HashMap<Uuid, Arc<str>>>>,
}

impl GlueSchemaRegistry {
    pub fn new(client: aws_sdk_glue::Client, registry_name: impl Into<String>) -> Self {
        Self {
            client,
            registry_name: registry_name.into(),
            definitions: Arc::default(),
        }
    }

    pub fn registry_name(&self) -> &str {
        &self.registry_name
    }

    /// Creates the registry if it does not exist (deployments create it with infrastructure;
    /// this is for the local stack and tests).
    pub async fn ensure_registry(&self) -> Result<(), PortError> {
        let result = self
            .client
            .create_registry()
            .registry_name(&self.registry_name)
            .description("Schemas of the streaming pipeline")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(classify_sdk_error(COMPONENT, &e)),
        }
    }

    /// Creates `schema_name` with `first_definition` as version 1 unless it exists. Returns the
    /// schema's compatibility mode.
    pub async fn ensure_schema(
        &self,
        schema_name: &str,
        compatibility: Compatibility,
        first_definition: &str,
    ) -> Result<Compatibility, RegistryWriteError> {
        match self.describe_schema(schema_name).await? {
            Some(described) => Ok(described.compatibility),
            None => {
                self.create_schema(schema_name, compatibility, first_definition)
                    .await?;
                Ok(compatibility)
            }
        }
    }

    fn schema_id(&self, schema_name: &str) -> SchemaId {
        SchemaId::builder()
            .registry_name(&self.registry_name)
            .schema_name(schema_name)
            .build()
    }

    async fn describe_schema(
        &self,
        schema_name: &str,
    ) -> Result<Option<DescribedSchema>, RegistryWriteError> {
        let output = match self
            .client
            .get_schema()
            .schema_id(self.schema_id(schema_name))
            .send()
            .await
        {
            Ok(output) => output,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(classify_sdk_error(COMPONENT, &e).into()),
        };
        if let Some(format) = output.data_format() {
            if *format != DataFormat::Avro {
                return Err(rejected(format!(
                    "schema {schema_name:?} holds {} data, not AVRO",
                    format.as_str()
                )));
            }
        }
        let mode_text = output.compatibility().map(|c| c.as_str()).unwrap_or("BACKWARD");
        let compatibility = parse_mode(mode_text).ok_or_else(|| {
            rejected(format!(
                "schema {schema_name:?} has unknown compatibility {mode_text:?}"
            ))
        })?;
        Ok(Some(DescribedSchema {
            compatibility,
            latest_version: output.latest_schema_version().unwrap_or(0),
        }))
    }

    async fn create_schema(
        &self,
        schema_name: &str,
        compatibility: Compatibility,
        definition: &str,
    ) -> Result<RegisteredVersion, RegistryWriteError> {
        parse_definition(schema_name, definition)?;
        let result = self
            .client
            .create_schema()
            .registry_id(RegistryId::builder().registry_name(&self.registry_name).build())
            .schema_name(schema_name)
            .data_format(DataFormat::Avro)
            .compatibility(GlueCompatibility::from(mode_name(compatibility)))
            .schema_definition(definition)
            .send()
            .await;
        match result {
            Ok(output) => {
                let version_id = parse_version_id(output.schema_version_id())?;
                self.wait_until_available(version_id, output.schema_version_status())
                    .await?;
                self.remember(version_id, definition);
                Ok(RegisteredVersion {
                    version_id,
                    version_number: Some(1),
                    newly_registered: true,
                })
            }
            // Someone created it between our look-up and now: go through the normal path.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_already_exists_exception()) =>
            {
                Box::pin(self.register_existing(schema_name, definition)).await
            }
            Err(e) => Err(classify_sdk_error(COMPONENT, &e).into()),
        }
    }

    /// Registers `definition` under an existing schema, after the compatibility check.
    async fn register_existing(
        &self,
        schema_name: &str,
        definition: &str,
    ) -> Result<RegisteredVersion, RegistryWriteError> {
        if let Some(found) = self.find_version(schema_name, definition).await? {
            return Ok(found);
        }
        let new_schema = parse_definition(schema_name, definition)?;
        let described = self
            .describe_schema(schema_name)
            .await?
            .ok_or_else(|| RegistryWriteError::Port(not_found(format!("schema {schema_name:?}"))))?;
        let numbers: Vec<i64> = match versions_to_check(described.compatibility) {
            VersionsToCheck::Nothing => Vec::new(),
            VersionsToCheck::Latest => vec![described.latest_version],
            VersionsToCheck::All => (1..=described.latest_version).collect(),
        };
        let mut existing: Vec<(i64, Schema)> = Vec::with_capacity(numbers.len());
        for number in numbers.into_iter().filter(|n| *n > 0) {
            if let Some(text) = self.definition_by_number(schema_name, number).await? {
                existing.push((number, parse_definition(schema_name, &text)?));
            }
        }
        let existing_refs: Vec<ExistingVersion<'_>> = existing
            .iter()
            .map(|(version_number, schema)| ExistingVersion {
                version_number: *version_number,
                schema,
            })
            .collect();
        check_compatibility(described.compatibility, &new_schema, &existing_refs).map_err(|source| {
            RegistryWriteError::Incompatible {
                schema_name: schema_name.to_string(),
                source,
            }
        })?;
        let output = self
            .client
            .register_schema_version()
            .schema_id(self.schema_id(schema_name))
            .schema_definition(definition)
            .send()
            .await
            .map_err(|e| classify_sdk_error(COMPONENT, &e))?;
        let version_id = parse_version_id(output.schema_version_id())?;
        self.wait_until_available(version_id, output.status()).await?;
        self.remember(version_id, definition);
        tracing::info!(schema = schema_name, %version_id, version = ?output.version_number(), "registered schema version");
        Ok(RegisteredVersion {
            version_id,
            version_number: output.version_number(),
            newly_registered: true,
        })
    }

    /// The definition of an AVAILABLE version, by number; `None` if it is gone or not usable.
    async fn definition_by_number(
        &self,
        schema_name: &str,
        number: i64,
    ) -> Result<Option<String>, PortError> {
        let result = self
            .client
            .get_schema_version()
            .schema_id(self.schema_id(schema_name))
            .schema_version_number(SchemaVersionNumber::builder().version_number(number).build())
            .send()
            .await;
        match result {
            Ok(output) if output.status() == Some(&SchemaVersionStatus::Available) => {
                Ok(output.schema_definition().map(str::to_string))
            }
            Ok(_) => Ok(None),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(classify_sdk_error(COMPONENT, &e)),
        }
    }

    async fn wait_until_available(
        &self,
        version_id: Uuid,
        initial: Option<&SchemaVersionStatus>,
    ) -> Result<(), PortError> {
        let mut status = initial.cloned();
        let mut delay = Duration::from_millis(100);
        let deadline = tokio::time::Instant::now() + AVAILABLE_TIMEOUT;
        loop {
            match status {
                Some(SchemaVersionStatus::Available) => return Ok(()),
                Some(SchemaVersionStatus::Failure) | Some(SchemaVersionStatus::Deleting) => {
                    return Err(PortError::Rejected {
                        component: COMPONENT,
                        message: format!("schema version {version_id} ended in status {:?}", status),
                    })
                }
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(PortError::Transient {
                    component: COMPONENT,
                    message: format!("schema version {version_id} not AVAILABLE after {AVAILABLE_TIMEOUT:?}"),
                });
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            let output = self
                .client
                .get_schema_version()
                .schema_version_id(version_id.to_string())
                .send()
                .await
                .map_err(|e| classify_sdk_error(COMPONENT, &e))?;
            status = output.status().cloned();
        }
    }

    fn remember(&self, version_id: Uuid, definition: &str) {
        self.definitions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(version_id, Arc::from(definition));
    }

    fn cached(&self, version_id: Uuid) -> Option<Arc<str>> {
        self.definitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&version_id)
            .cloned()
    }
}

struct DescribedSchema {
    compatibility: Compatibility,
    latest_version: i64,
}

impl SchemaSource for GlueSchemaRegistry {
    /// `GetSchemaVersion` by id. The version's `DataFormat` and `Status` are reported as they are:
    /// a JSON or Protobuf version, or one that is not AVAILABLE, makes its records poison in the
    /// consumer. Only a failure to answer (throttling, network, authorisation) is an error here.
    async fn schema_version(&self, version_id: Uuid) -> Result<SchemaVersion, PortError> {
        if let Some(definition) = self.cached(version_id) {
            return Ok(SchemaVersion::available_avro(definition.to_string()));
        }
        let result = self
            .client
            .get_schema_version()
            .schema_version_id(version_id.to_string())
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                return Err(not_found(format!("schema version {version_id}")))
            }
            // moto and Glue answer an id of the wrong shape with InvalidInputException.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_invalid_input_exception()) =>
            {
                return Err(not_found(format!("schema version {version_id}")))
            }
            Err(e) => return Err(classify_sdk_error(COMPONENT, &e)),
        };
        let version = schema_version_of(version_id, &output)?;
        if version.data_format == SchemaVersion::AVRO && version.status == SchemaVersion::AVAILABLE {
            // Definitions are immutable, so an AVAILABLE version's text is kept for ever.
            self.remember(version_id, &version.definition);
        }
        Ok(version)
    }
}

/// The fields of a `GetSchemaVersion` answer that decide what a record means. A missing format or
/// status is read as AVRO and AVAILABLE (moto leaves them out for versions it created itself).
fn schema_version_of(version_id: Uuid, output: &GetSchemaVersionOutput) -> Result<SchemaVersion, PortError> {
    let definition = output.schema_definition().ok_or_else(|| PortError::Rejected {
        component: COMPONENT,
        message: format!("schema version {version_id} has no definition"),
    })?;
    Ok(SchemaVersion {
        definition: definition.to_string(),
        data_format: output
            .data_format()
            .map_or(SchemaVersion::AVRO, |f| f.as_str())
            .to_string(),
        status: output
            .status()
            .map_or(SchemaVersion::AVAILABLE, |s| s.as_str())
            .to_string(),
    })
}

impl SchemaRegistryWriter for GlueSchemaRegistry {
    async fn find_version(
        &self,
        schema_name: &str,
        definition: &str,
    ) -> Result<Option<RegisteredVersion>, PortError> {
        let result = self
            .client
            .get_schema_by_definition()
            .schema_id(self.schema_id(schema_name))
            .schema_definition(definition)
            .send()
            .await;
        let output = match result {
            Ok(output) => output,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_not_found_exception()) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(classify_sdk_error(COMPONENT, &e)),
        };
        match output.status() {
            Some(SchemaVersionStatus::Available) | None => {}
            // A failed or deleted version with this text cannot be used; a pending one soon can.
            Some(SchemaVersionStatus::Pending) => {
                let version_id = parse_version_id(output.schema_version_id())?;
                self.wait_until_available(version_id, output.status()).await?;
            }
            Some(_) => return Ok(None),
        }
        let version_id = parse_version_id(output.schema_version_id())?;
        self.remember(version_id, definition);
        Ok(Some(RegisteredVersion {
            version_id,
            version_number: None,
            newly_registered: false,
        }))
    }

    async fn register_or_reuse(
        &self,
        schema_name: &str,
        definition: &str,
        compatibility_if_new: Compatibility,
    ) -> Result<RegisteredVersion, RegistryWriteError> {
        match self.describe_schema(schema_name).await? {
            None => {
                self.create_schema(schema_name, compatibility_if_new, definition)
                    .await
            }
            Some(_) => self.register_existing(schema_name, definition).await,
        }
    }
}

fn parse_definition(schema_name: &str, definition: &str) -> Result<Schema, RegistryWriteError> {
    Schema::parse_str(definition).map_err(|e| RegistryWriteError::InvalidDefinition {
        schema_name: schema_name.to_string(),
        problem: format!("not a valid Avro schema: {e}"),
    })
}

fn parse_version_id(id: Option<&str>) -> Result<Uuid, PortError> {
    let text = id.ok_or_else(|| PortError::Rejected {
        component: COMPONENT,
        message: "response carries no schema version id".into(),
    })?;
    Uuid::parse_str(text).map_err(|e| PortError::Rejected {
        component: COMPONENT,
        message: format!("schema version id {text:?} is not a UUID: {e}"),
    })
}

fn rejected(message: String) -> RegistryWriteError {
    RegistryWriteError::Port(PortError::Rejected {
        component: COMPONENT,
        message,
    })
}

fn not_found(what: String) -> PortError {
    PortError::NotFound {
        component: COMPONENT,
        what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: Uuid = Uuid::from_u128(0x6c3b_7f5e_2a41_4d8e_9b0c_1f2e_3d4c_5b6a);

    fn output(format: Option<DataFormat>, status: Option<SchemaVersionStatus>) -> GetSchemaVersionOutput {
        GetSchemaVersionOutput::builder()
            .schema_version_id(ID.to_string())
            .schema_definition(r#"{"type":"string"}"#)
            .schema_arn("arn:aws-cn:glue:cn-north-1:123456789012:schema/pipeline/sensor-readings")
            .set_data_format(format)
            .set_status(status)
            .version_number(3)
            .build()
    }

    #[test]
    fn format_and_status_are_reported_not_turned_into_errors() {
        for (format, status, expected) in [
            (
                Some(DataFormat::Avro),
                Some(SchemaVersionStatus::Available),
                ("AVRO", "AVAILABLE"),
            ),
            (
                Some(DataFormat::Json),
                Some(SchemaVersionStatus::Available),
                ("JSON", "AVAILABLE"),
            ),
            (
                Some(DataFormat::Protobuf),
                Some(SchemaVersionStatus::Available),
                ("PROTOBUF", "AVAILABLE"),
            ),
            (
                Some(DataFormat::Avro),
                Some(SchemaVersionStatus::Failure),
                ("AVRO", "FAILURE"),
            ),
            (
                Some(DataFormat::Avro),
                Some(SchemaVersionStatus::Deleting),
                ("AVRO", "DELETING"),
            ),
            (
                Some(DataFormat::Avro),
                Some(SchemaVersionStatus::Pending),
                ("AVRO", "PENDING"),
            ),
            (None, None, ("AVRO", "AVAILABLE")),
        ] {
            let version = schema_version_of(ID, &output(format, status)).unwrap();
            assert_eq!((version.data_format.as_str(), version.status.as_str()), expected);
            assert_eq!(version.definition, r#"{"type":"string"}"#);
        }
        let no_definition = GetSchemaVersionOutput::builder().build();
        assert!(matches!(
            schema_version_of(ID, &no_definition),
            Err(PortError::Rejected { .. })
        ));
    }
}
