//! The topics resource's properties, as the provider framework's custom resource request carries
//! them (the request and response themselves: `pipeline_lambda_edge::custom_resource`).

use std::collections::BTreeMap;

use pipeline_lambda_edge::custom_resource::{self, integer, invalid, optional_bool, ResourceProperties};
pub use pipeline_lambda_edge::custom_resource::{EventError, ProviderResponse};
use serde::Deserialize;

use crate::domain::{ConsumerAccess, DeletionPolicy, TopicSpec};

/// A request of the topics resource.
pub type Request = custom_resource::Request<TopicsProperties>;

/// How the function authenticates to the brokers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// MSK IAM (SASL/OAUTHBEARER with a SigV4-signed token), always over TLS.
    Iam,
    /// No authentication (the local tansu broker).
    None,
}

/// Where and how to reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionSettings {
    pub bootstrap_servers: Vec<String>,
    pub auth: Auth,
    pub tls: bool,
}

/// Validated resource properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicsProperties {
    pub connection: ConnectionSettings,
    pub deletion_policy: DeletionPolicy,
    pub topics: Vec<TopicSpec>,
    /// Kafka ACLs for the consumer account's SCRAM user, if the stack manages them.
    pub consumer_access: Option<ConsumerAccess>,
}

#[derive(Deserialize)]
struct RawProperties {
    #[serde(rename = "BootstrapServers")]
    bootstrap_servers: String,
    #[serde(rename = "Auth", default)]
    auth: Option<String>,
    #[serde(rename = "Tls", default, deserialize_with = "optional_bool")]
    tls: Option<bool>,
    #[serde(rename = "DeletionPolicy", default)]
    deletion_policy: Option<String>,
    #[serde(rename = "Topics")]
    topics: Vec<RawTopic>,
    #[serde(rename = "ConsumerAccess", default)]
    consumer_access: Option<RawConsumerAccess>,
}

#[derive(Deserialize)]
struct RawConsumerAccess {
    /// The SCRAM user name; the principal is `User:<name>`.
    #[serde(rename = "UserName")]
    user_name: String,
    #[serde(rename = "Groups")]
    groups: Vec<String>,
}

#[derive(Deserialize)]
struct RawTopic {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Partitions", deserialize_with = "integer")]
    partitions: i64,
    #[serde(rename = "ReplicationFactor", deserialize_with = "integer")]
    replication_factor: i64,
    #[serde(rename = "Config", default)]
    config: BTreeMap<String, ConfigValue>,
}

/// CloudFormation passes strings; a template written by hand may use numbers.
#[derive(Deserialize)]
#[serde(untagged)]
enum ConfigValue {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl ConfigValue {
    fn into_string(self) -> String {
        match self {
            Self::Text(s) => s,
            Self::Number(n) => n.to_string(),
            Self::Bool(b) => b.to_string(),
        }
    }
}

impl RawProperties {
    fn validate(self) -> Result<TopicsProperties, EventError> {
        let bootstrap_servers: Vec<String> = self
            .bootstrap_servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if bootstrap_servers.is_empty() {
            return Err(invalid("BootstrapServers", "no host:port given"));
        }
        if let Some(bad) = bootstrap_servers.iter().find(|s| !s.contains(':')) {
            return Err(invalid("BootstrapServers", format!("{bad:?} is not host:port")));
        }
        let auth = match self.auth.as_deref() {
            None | Some("iam") => Auth::Iam,
            Some("none") => Auth::None,
            Some(other) => return Err(invalid("Auth", format!("{other:?} is not iam or none"))),
        };
        // IAM tokens must never travel in clear text.
        let tls = self.tls.unwrap_or(auth == Auth::Iam);
        if auth == Auth::Iam && !tls {
            return Err(invalid("Tls", "IAM authentication requires TLS"));
        }
        let deletion_policy = match self.deletion_policy.as_deref() {
            None | Some("retain") => DeletionPolicy::Retain,
            Some("delete") => DeletionPolicy::Delete,
            Some(other) => {
                return Err(invalid(
                    "DeletionPolicy",
                    format!("{other:?} is not retain or delete"),
                ))
            }
        };
        if self.topics.is_empty() {
            return Err(invalid("Topics", "at least one topic is required"));
        }
        let topics = self
            .topics
            .into_iter()
            .map(|t| {
                let partitions = i32::try_from(t.partitions)
                    .map_err(|_| invalid("Topics.Partitions", format!("{} is out of range", t.partitions)))?;
                let replication_factor = i16::try_from(t.replication_factor).map_err(|_| {
                    invalid(
                        "Topics.ReplicationFactor",
                        format!("{} is out of range", t.replication_factor),
                    )
                })?;
                Ok(TopicSpec {
                    name: t.name,
                    partitions,
                    replication_factor,
                    configs: t.config.into_iter().map(|(k, v)| (k, v.into_string())).collect(),
                })
            })
            .collect::<Result<Vec<_>, EventError>>()?;
        let consumer_access = match self.consumer_access {
            None => None,
            Some(access) => {
                let user = access.user_name.trim();
                if user.is_empty() || user.contains(char::is_whitespace) {
                    return Err(invalid(
                        "ConsumerAccess.UserName",
                        format!("{:?} is not a SCRAM user name", access.user_name),
                    ));
                }
                if access.groups.is_empty() || access.groups.iter().any(|g| g.trim().is_empty()) {
                    return Err(invalid(
                        "ConsumerAccess.Groups",
                        "name at least one non-empty group",
                    ));
                }
                Some(ConsumerAccess {
                    principal: format!("User:{user}"),
                    groups: access.groups,
                })
            }
        };
        Ok(TopicsProperties {
            connection: ConnectionSettings {
                bootstrap_servers,
                auth,
                tls,
            },
            deletion_policy,
            topics,
            consumer_access,
        })
    }
}

impl ResourceProperties for TopicsProperties {
    fn from_properties(properties: serde_json::Value) -> Result<Self, EventError> {
        serde_json::from_value::<RawProperties>(properties)?.validate()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn properties() -> serde_json::Value {
        json!({
            "ServiceToken": "arn:aws:lambda:eu-west-1:111111111111:function:provider",
            "BootstrapServers": "b-1.example:9098, b-2.example:9098",
            "Auth": "iam",
            "DeletionPolicy": "retain",
            "ConsumerAccess": { "UserName": "pipeline-consumer", "Groups": ["pipeline-sensor-readings"] },
            "Topics": [
                { "Name": "sensor-readings", "Partitions": "4", "ReplicationFactor": "3",
                  "Config": { "retention.ms": "604800000", "min.insync.replicas": 2 } },
                { "Name": "explicit-events", "Partitions": 2, "ReplicationFactor": 3 }
            ]
        })
    }

    #[test]
    fn parses_create_with_string_numbers() {
        let request = Request::from_value(json!({
            "RequestType": "Create",
            "LogicalResourceId": "TopicsResource",
            "RequestId": "r-1",
            "ResourceProperties": properties()
        }))
        .unwrap();
        let Request::Create {
            logical_resource_id,
            properties,
        } = request
        else {
            panic!("not a create")
        };
        assert_eq!(logical_resource_id, "TopicsResource");
        assert_eq!(
            properties.connection.bootstrap_servers,
            vec!["b-1.example:9098", "b-2.example:9098"]
        );
        assert_eq!(properties.connection.auth, Auth::Iam);
        assert!(properties.connection.tls);
        assert_eq!(
            properties.topics[0],
            TopicSpec {
                name: "sensor-readings".into(),
                partitions: 4,
                replication_factor: 3,
                configs: BTreeMap::from([
                    ("min.insync.replicas".to_string(), "2".to_string()),
                    ("retention.ms".to_string(), "604800000".to_string()),
                ]),
            }
        );
        assert_eq!(
            properties.consumer_access,
            Some(ConsumerAccess {
                principal: "User:pipeline-consumer".into(),
                groups: vec!["pipeline-sensor-readings".into()],
            })
        );
        assert_eq!(properties.topics[1].partitions, 2);
    }

    #[test]
    fn parses_update_with_previous_properties() {
        let request = Request::from_value(json!({
            "RequestType": "Update",
            "PhysicalResourceId": "kafka-topics/TopicsResource",
            "ResourceProperties": properties(),
            "OldResourceProperties": properties()
        }))
        .unwrap();
        let Request::Update {
            physical_resource_id,
            previous,
            ..
        } = request
        else {
            panic!("not an update")
        };
        assert_eq!(physical_resource_id, "kafka-topics/TopicsResource");
        assert!(previous.is_some());
    }

    #[test]
    fn delete_defaults_to_retain() {
        let mut props = properties();
        props.as_object_mut().unwrap().remove("DeletionPolicy");
        let request = Request::from_value(json!({
            "RequestType": "Delete", "PhysicalResourceId": "p", "ResourceProperties": props
        }))
        .unwrap();
        let Request::Delete { properties, .. } = request else {
            panic!("not a delete")
        };
        assert_eq!(properties.deletion_policy, DeletionPolicy::Retain);
    }

    #[test]
    fn rejects_bad_input_with_the_property_name() {
        let mut props = properties();
        props["Topics"][0]["Partitions"] = json!("four");
        let err = Request::from_value(
            json!({"RequestType": "Create", "LogicalResourceId": "x", "ResourceProperties": props}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("\"four\" is not an integer"), "{err}");

        let mut props = properties();
        props["Auth"] = json!("plain");
        let err = Request::from_value(
            json!({"RequestType": "Create", "LogicalResourceId": "x", "ResourceProperties": props}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("Auth"), "{err}");

        let mut props = properties();
        props["Tls"] = json!("false");
        let err = Request::from_value(
            json!({"RequestType": "Create", "LogicalResourceId": "x", "ResourceProperties": props}),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("IAM authentication requires TLS"),
            "{err}"
        );

        let err = Request::from_value(json!({"RequestType": "Explode"})).unwrap_err();
        assert!(matches!(err, EventError::Malformed(_)));
    }

    #[test]
    fn local_brokers_use_plaintext_without_auth() {
        let mut props = properties();
        props["Auth"] = json!("none");
        let request = Request::from_value(
            json!({"RequestType": "Create", "LogicalResourceId": "x", "ResourceProperties": props}),
        )
        .unwrap();
        let Request::Create { properties, .. } = request else {
            panic!("not a create")
        };
        assert_eq!(properties.connection.auth, Auth::None);
        assert!(!properties.connection.tls);
    }

    #[test]
    fn response_uses_the_provider_framework_field_names() {
        let response = ProviderResponse {
            physical_resource_id: "p".into(),
            data: BTreeMap::from([("Topics".into(), "a".into())]),
        };
        assert_eq!(
            serde_json::to_value(response).unwrap(),
            json!({"PhysicalResourceId": "p", "Data": {"Topics": "a"}})
        );
    }
}
