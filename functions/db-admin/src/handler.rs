//! One custom resource request: provision on Create and Update, keep everything on Delete.

use std::collections::BTreeMap;

use pipeline_domain::ports::PortError;
use thiserror::Error;

use crate::event::{ProviderResponse, Request};
use crate::ports::SchemaProvisioner;

#[derive(Debug, Error)]
pub enum HandlerError {
    #[error("provisioning the database schema and role failed: {0}")]
    Provision(#[from] PortError),
}

/// `<database>/<role>`: a different database or role name is a new resource (CloudFormation
/// then deletes the old one, which changes nothing).
fn physical_id(database: &str, role: &str) -> String {
    format!("{database}/{role}")
}

pub async fn handle(
    request: Request,
    provisioner: &impl SchemaProvisioner,
) -> Result<ProviderResponse, HandlerError> {
    match request {
        Request::Create { properties, .. } | Request::Update { properties, .. } => {
            let done = provisioner.provision(&properties).await?;
            let data = BTreeMap::from([
                ("SchemaVersion".to_string(), done.schema_version.to_string()),
                ("Role".to_string(), done.role.clone()),
                (
                    "Applied".to_string(),
                    done.applied
                        .iter()
                        .map(i32::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ]);
            Ok(ProviderResponse {
                physical_resource_id: physical_id(&done.database, &done.role),
                data,
            })
        }
        Request::Delete {
            physical_resource_id, ..
        } => {
            tracing::info!(
                resource = %physical_resource_id,
                "delete: tables, rows and the application role are kept"
            );
            Ok(ProviderResponse {
                physical_resource_id,
                data: BTreeMap::new(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use pipeline_adapters::postgres_schema::Provisioned;

    use super::*;
    use crate::event::SchemaProperties;
    use pipeline_lambda_edge::custom_resource::NotRead;

    #[derive(Default)]
    struct Recording {
        calls: Mutex<Vec<SchemaProperties>>,
        fail: bool,
    }

    impl SchemaProvisioner for Recording {
        async fn provision(&self, properties: &SchemaProperties) -> Result<Provisioned, PortError> {
            self.calls.lock().unwrap().push(properties.clone());
            if self.fail {
                return Err(PortError::Rejected {
                    component: "postgresql",
                    message: "42501: permission denied to create role".into(),
                });
            }
            Ok(Provisioned {
                database: "pipeline".into(),
                role: "pipeline_consumer".into(),
                applied: vec![1],
                schema_version: 1,
            })
        }
    }

    fn properties() -> SchemaProperties {
        SchemaProperties {
            master_secret_id: "arn:aws:secretsmanager:us-east-1:222222222222:secret:master-a1B2c3".into(),
            app_secret_id: "arn:aws:secretsmanager:us-east-1:222222222222:secret:app-d4E5f6".into(),
            host: None,
            port: None,
            database: None,
            tls: true,
        }
    }

    #[tokio::test]
    async fn create_and_update_provision_and_report_the_version() {
        let fake = Recording::default();
        let created = handle(
            Request::Create {
                logical_resource_id: "DatabaseSchema".into(),
                properties: properties(),
            },
            &fake,
        )
        .await
        .unwrap();
        assert_eq!(created.physical_resource_id, "pipeline/pipeline_consumer");
        assert_eq!(created.data["SchemaVersion"], "1");
        assert_eq!(created.data["Role"], "pipeline_consumer");
        let updated = handle(
            Request::Update {
                physical_resource_id: "pipeline/pipeline_consumer".into(),
                properties: properties(),
                previous: None,
            },
            &fake,
        )
        .await
        .unwrap();
        assert_eq!(updated.physical_resource_id, created.physical_resource_id);
        assert_eq!(fake.calls.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn delete_never_connects() {
        let fake = Recording::default();
        let response = handle(
            Request::Delete {
                physical_resource_id: "pipeline/pipeline_consumer".into(),
                properties: NotRead,
            },
            &fake,
        )
        .await
        .unwrap();
        assert_eq!(response.physical_resource_id, "pipeline/pipeline_consumer");
        assert!(fake.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failure_fails_the_request_with_the_reason() {
        let fake = Recording {
            fail: true,
            ..Recording::default()
        };
        let error = handle(
            Request::Create {
                logical_resource_id: "DatabaseSchema".into(),
                properties: properties(),
            },
            &fake,
        )
        .await
        .unwrap_err();
        assert!(
            error.to_string().contains("permission denied to create role"),
            "{error}"
        );
    }
}
