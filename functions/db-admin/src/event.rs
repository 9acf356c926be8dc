//! The database schema resource's properties, as the provider framework's custom resource request
//! carries them (the request and response themselves: `pipeline_lambda_edge::custom_resource`).

use pipeline_lambda_edge::custom_resource::{self, invalid, NotRead, ResourceProperties};
pub use pipeline_lambda_edge::custom_resource::{EventError, ProviderResponse};
use serde::Deserialize;

/// A request of the schema resource. Delete never connects, so its properties are not read (nor
/// checked: an old, unparseable set must not block a stack deletion).
pub type Request = custom_resource::Request<SchemaProperties, NotRead>;

/// Validated resource properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaProperties {
    /// The RDS-generated master secret (`username`, `password`, `host`, `port`, `dbname`).
    pub master_secret_id: String,
    /// The application role's secret (`username`, `password`).
    pub app_secret_id: String,
    /// Where to connect (the RDS Proxy endpoint); overrides the master secret's host.
    pub host: Option<String>,
    pub port: Option<u16>,
    pub database: Option<String>,
    /// TLS with certificate verification (always on AWS); `false` only for a local server.
    pub tls: bool,
}

#[derive(Deserialize)]
struct RawProperties {
    #[serde(rename = "MasterSecretArn")]
    master_secret_arn: String,
    #[serde(rename = "AppSecretArn")]
    app_secret_arn: String,
    #[serde(rename = "Host", default)]
    host: Option<String>,
    #[serde(rename = "Port", default)]
    port: Option<serde_json::Value>,
    #[serde(rename = "Database", default)]
    database: Option<String>,
    #[serde(rename = "Tls", default)]
    tls: Option<String>,
}

fn non_empty(property: &'static str, value: String) -> Result<String, EventError> {
    let value = value.trim().to_string();
    if value.is_empty() {
        return Err(invalid(property, "must not be empty"));
    }
    Ok(value)
}

impl RawProperties {
    fn validate(self) -> Result<SchemaProperties, EventError> {
        let port = match self.port {
            None => None,
            Some(serde_json::Value::Number(n)) => Some(
                n.as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0)
                    .ok_or_else(|| invalid("Port", format!("{n} is not a port number")))?,
            ),
            Some(serde_json::Value::String(s)) => Some(
                s.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| invalid("Port", format!("{s:?} is not a port number")))?,
            ),
            Some(other) => return Err(invalid("Port", format!("{other} is not a port number"))),
        };
        let tls = match self.tls.as_deref().map(str::trim) {
            None | Some("require") => true,
            Some("disable") => false,
            Some(other) => return Err(invalid("Tls", format!("{other:?} is not require or disable"))),
        };
        Ok(SchemaProperties {
            master_secret_id: non_empty("MasterSecretArn", self.master_secret_arn)?,
            app_secret_id: non_empty("AppSecretArn", self.app_secret_arn)?,
            host: self.host.map(|h| non_empty("Host", h)).transpose()?,
            port,
            database: self.database.map(|d| non_empty("Database", d)).transpose()?,
            tls,
        })
    }
}

impl ResourceProperties for SchemaProperties {
    fn from_properties(properties: serde_json::Value) -> Result<Self, EventError> {
        serde_json::from_value::<RawProperties>(properties)?.validate()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const MASTER: &str =
        "arn:aws:secretsmanager:us-east-1:222222222222:secret:DatabaseInstanceSecret-AbCdEf123456-a1B2c3";
    const APP: &str =
        "arn:aws-cn:secretsmanager:cn-north-1:222222222222:secret:DatabaseAppSecret-ZyXwVu987654-d4E5f6";

    fn properties() -> serde_json::Value {
        json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:222222222222:function:consumer-stack-DatabaseSchemaProvider",
            "MasterSecretArn": MASTER,
            "AppSecretArn": APP,
            "Host": "consumer-stack-databaseproxy.proxy-c8xk2hvq1lbn.us-east-1.rds.amazonaws.com",
            "Port": "5432",
            "Database": "pipeline",
            "Tls": "require",
            "SchemaHash": "0f3c",
        })
    }

    #[test]
    fn create_and_update_carry_validated_properties() {
        let request = Request::from_value(json!({
            "RequestType": "Create", "LogicalResourceId": "DatabaseSchema", "ResourceProperties": properties()
        }))
        .unwrap();
        let Request::Create {
            properties: created, ..
        } = request
        else {
            panic!("a create")
        };
        assert_eq!(created.master_secret_id, MASTER);
        assert_eq!(created.app_secret_id, APP);
        assert_eq!(created.port, Some(5432));
        assert_eq!(created.database.as_deref(), Some("pipeline"));
        assert!(created.tls);

        let update = Request::from_value(json!({
            "RequestType": "Update", "PhysicalResourceId": "pipeline/pipeline_consumer",
            "ResourceProperties": properties(), "OldResourceProperties": {"SchemaHash": "old"}
        }))
        .unwrap();
        assert!(
            matches!(update, Request::Update { ref physical_resource_id, .. } if physical_resource_id == "pipeline/pipeline_consumer")
        );
    }

    #[test]
    fn numbers_and_defaults_are_accepted() {
        let mut p = properties();
        p["Port"] = json!(6432);
        p.as_object_mut().unwrap().remove("Tls");
        p.as_object_mut().unwrap().remove("Host");
        let Request::Create { properties, .. } = Request::from_value(
            json!({"RequestType": "Create", "LogicalResourceId": "DatabaseSchema", "ResourceProperties": p}),
        )
        .unwrap() else {
            panic!("a create")
        };
        assert_eq!(properties.port, Some(6432));
        assert!(properties.tls, "TLS unless disabled");
        assert_eq!(properties.host, None);
    }

    #[test]
    fn bad_properties_are_refused_with_their_name() {
        for (key, value, property) in [
            ("Port", json!("70000"), "Port"),
            ("Port", json!(0), "Port"),
            ("Tls", json!("prefer"), "Tls"),
            ("MasterSecretArn", json!(" "), "MasterSecretArn"),
            ("AppSecretArn", json!(""), "AppSecretArn"),
        ] {
            let mut p = properties();
            p[key] = value;
            let error =
                Request::from_value(json!({"RequestType": "Create", "LogicalResourceId": "DatabaseSchema", "ResourceProperties": p})).unwrap_err();
            assert!(
                matches!(error, EventError::InvalidProperty { property: found, .. } if found == property),
                "{key}: {error}"
            );
        }
        let mut p = properties();
        p.as_object_mut().unwrap().remove("AppSecretArn");
        assert!(matches!(
            Request::from_value(
                json!({"RequestType": "Create", "LogicalResourceId": "DatabaseSchema", "ResourceProperties": p})
            ),
            Err(EventError::Malformed(_))
        ));
    }

    #[test]
    fn delete_needs_no_properties() {
        let request = Request::from_value(json!({
            "RequestType": "Delete", "PhysicalResourceId": "pipeline/pipeline_consumer",
            "ResourceProperties": {"MasterSecretArn": ""}
        }))
        .unwrap();
        assert_eq!(
            request,
            Request::Delete {
                physical_resource_id: "pipeline/pipeline_consumer".into(),
                properties: NotRead,
            }
        );
    }
}
