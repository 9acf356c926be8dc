//! AWS Secrets Manager: JSON secrets, such as the RDS credentials of the PostgreSQL sink.

use aws_sdk_secretsmanager::Client;
use pipeline_domain::ports::PortError;
use serde::de::DeserializeOwned;

use crate::aws::classify_sdk_error;

const COMPONENT: &str = "secrets manager";

#[derive(Debug, Clone)]
pub struct JsonSecrets {
    client: Client,
}

impl JsonSecrets {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// The current value of `secret_id` (name or ARN), parsed as JSON into `T`.
    /// The secret text never appears in errors.
    pub async fn get<T: DeserializeOwned>(&self, secret_id: &str) -> Result<T, PortError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception())
                {
                    PortError::NotFound {
                        component: COMPONENT,
                        what: format!("secret {secret_id}"),
                    }
                } else {
                    classify_sdk_error(COMPONENT, &e)
                }
            })?;
        let text = output.secret_string().ok_or_else(|| PortError::Rejected {
            component: COMPONENT,
            message: format!("secret {secret_id} has no string value"),
        })?;
        serde_json::from_str(text).map_err(|e| PortError::Rejected {
            component: COMPONENT,
            // serde_json's own message may quote values (a password); report only where it failed.
            message: format!(
                "secret {secret_id} is not the expected JSON ({:?} error at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        })
    }
}
