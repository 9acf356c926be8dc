//! The admin port over the Kafka protocol: Metadata, CreateTopics (with configs), DescribeConfigs,
//! IncrementalAlterConfigs, DeleteTopics, CreateAcls and DeleteAcls. The TLS roots and the MSK IAM
//! (SASL/OAUTHBEARER) token come from `pipeline_msk_auth`. Plaintext without auth serves the
//! local broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateTopicsRequest, DeleteAclsRequest, DeleteTopicsRequest, DescribeConfigsRequest,
    IncrementalAlterConfigsRequest, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use kafka_protocol::ResponseError;
use tokio::sync::Mutex;

use super::connection::{kafka_error, BrokerConnection, ConnectOptions};
use crate::domain::{AclBinding, AclOperation, AclResource, TopicSpec};
use crate::event::{Auth, ConnectionSettings};
use crate::ports::{AdminError, Connector, TopicAdmin};

// Protocol constants (org.apache.kafka.common.{resource,acl,config}).
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_GROUP: i8 = 3;
const RESOURCE_CLUSTER: i8 = 4;
const CLUSTER_RESOURCE_NAME: &str = "kafka-cluster";
const PATTERN_LITERAL: i8 = 3;
const PERMISSION_ALLOW: i8 = 3;
const OPERATION_READ: i8 = 3;
const OPERATION_DESCRIBE: i8 = 8;
const OPERATION_DESCRIBE_CONFIGS: i8 = 10;
const CONFIG_OP_SET: i8 = 0;
const CONFIG_OP_DELETE: i8 = 1;

/// Connects over the Kafka protocol. `region` signs MSK IAM tokens.
#[derive(Debug, Clone)]
pub struct KafkaConnector {
    pub region: Option<String>,
    /// Bound on connecting and on each request.
    pub timeout: Duration,
    /// Broker-side timeout for CreateTopics/DeleteTopics.
    pub request_timeout: Duration,
}

impl KafkaConnector {
    pub fn new(region: Option<String>) -> Self {
        Self {
            region,
            timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(25),
        }
    }
}

pub struct KafkaAdmin {
    options: ConnectOptions,
    bootstrap: Mutex<BrokerConnection>,
    /// Topic creation and deletion go to the controller; opened on first use.
    controller: Mutex<Option<BrokerConnection>>,
    request_timeout_ms: i32,
}

fn tls_config() -> Result<rustls::ClientConfig, AdminError> {
    pipeline_msk_auth::tls_config().map_err(|e| AdminError::Connect(e.to_string()))
}

async fn iam_token(region: &str) -> Result<String, AdminError> {
    pipeline_msk_auth::sign_token_with_environment(region)
        .await
        .map(|(token, _expiry)| token)
        .map_err(|e| AdminError::Connect(e.to_string()))
}

impl Connector for KafkaConnector {
    type Admin = KafkaAdmin;

    async fn connect(&self, settings: &ConnectionSettings) -> Result<KafkaAdmin, AdminError> {
        let tls = if settings.tls {
            Some(Arc::new(tls_config()?))
        } else {
            None
        };
        let oauth_token = match settings.auth {
            Auth::None => None,
            Auth::Iam => {
                let region = self.region.as_deref().ok_or_else(|| {
                    AdminError::Connect("AWS_REGION is not set; it is needed to sign MSK IAM tokens".into())
                })?;
                Some(iam_token(region).await?)
            }
        };
        let options = ConnectOptions {
            tls,
            oauth_token,
            timeout: self.timeout,
        };
        let mut failures = Vec::new();
        for address in &settings.bootstrap_servers {
            match BrokerConnection::open(address, &options).await {
                Ok(bootstrap) => {
                    return Ok(KafkaAdmin {
                        options,
                        bootstrap: Mutex::new(bootstrap),
                        controller: Mutex::new(None),
                        request_timeout_ms: i32::try_from(self.request_timeout.as_millis())
                            .unwrap_or(i32::MAX),
                    })
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(AdminError::Connect(format!(
            "no bootstrap server answered: {}",
            failures.join("; ")
        )))
    }
}

fn name(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_owned())
}

fn acl_parts(acl: &AclBinding) -> (i8, StrBytes, i8) {
    let (resource_type, resource_name) = match &acl.resource {
        AclResource::Topic(topic) => (RESOURCE_TOPIC, name(topic)),
        AclResource::Group(group) => (RESOURCE_GROUP, name(group)),
        AclResource::Cluster => (RESOURCE_CLUSTER, StrBytes::from_static_str(CLUSTER_RESOURCE_NAME)),
    };
    let operation = match acl.operation {
        AclOperation::Read => OPERATION_READ,
        AclOperation::Describe => OPERATION_DESCRIBE,
        AclOperation::DescribeConfigs => OPERATION_DESCRIBE_CONFIGS,
    };
    (resource_type, resource_name, operation)
}

impl KafkaAdmin {
    async fn metadata(&self) -> Result<MetadataResponse, AdminError> {
        // `topics: None` asks for every topic; an empty list would ask for none.
        let mut request = MetadataRequest::default();
        request.topics = None;
        request.allow_auto_topic_creation = false;
        self.bootstrap.lock().await.send(&request).await
    }

    /// Sends `request` to the controller, reconnecting once if the controller moved or the
    /// connection dropped.
    async fn send_to_controller<R: Request>(&self, request: &R) -> Result<R::Response, AdminError> {
        let mut slot = self.controller.lock().await;
        let mut last_error = None;
        for _ in 0..2 {
            let mut connection = match slot.take() {
                Some(connection) => connection,
                None => self.open_controller().await?,
            };
            match connection.send(request).await {
                Err(e @ AdminError::Request(_)) => last_error = Some(e),
                other => {
                    *slot = Some(connection);
                    return other;
                }
            }
        }
        Err(last_error.unwrap_or_else(|| AdminError::Request("controller unreachable".into())))
    }

    async fn open_controller(&self) -> Result<BrokerConnection, AdminError> {
        let metadata = self.metadata().await?;
        let controller = metadata
            .brokers
            .iter()
            .find(|b| b.node_id == metadata.controller_id)
            .ok_or_else(|| {
                AdminError::Request(format!(
                    "metadata names controller {} but lists no such broker",
                    metadata.controller_id.0
                ))
            })?;
        let address = format!("{}:{}", controller.host.as_str(), controller.port);
        BrokerConnection::open(&address, &self.options).await
    }
}

impl TopicAdmin for KafkaAdmin {
    async fn list_topics(&self) -> Result<BTreeMap<String, usize>, AdminError> {
        let metadata = self.metadata().await?;
        let mut topics = BTreeMap::new();
        for topic in metadata.topics {
            let Some(topic_name) = topic.name else { continue };
            if topic.is_internal || topic.error_code != 0 {
                continue;
            }
            topics.insert(topic_name.0.to_string(), topic.partitions.len());
        }
        Ok(topics)
    }

    async fn create_topic(&self, spec: &TopicSpec) -> Result<(), AdminError> {
        let mut topic = CreatableTopic::default();
        topic.name = TopicName(name(&spec.name));
        topic.num_partitions = spec.partitions;
        topic.replication_factor = spec.replication_factor;
        topic.configs = spec
            .configs
            .iter()
            .map(|(key, value)| {
                let mut config = CreatableTopicConfig::default();
                config.name = name(key);
                config.value = Some(name(value));
                config
            })
            .collect();
        let mut request = CreateTopicsRequest::default();
        request.topics = vec![topic];
        request.timeout_ms = self.request_timeout_ms;
        let response = self.send_to_controller(&request).await?;
        for result in response.topics {
            if result.error_code == ResponseError::TopicAlreadyExists.code() {
                return Err(AdminError::AlreadyExists(spec.name.clone()));
            }
            if let Some(e) = kafka_error(result.error_code, result.error_message.as_ref()) {
                return Err(AdminError::Request(format!("CreateTopics {}: {e}", spec.name)));
            }
        }
        Ok(())
    }

    async fn describe_topic_configs(
        &self,
        names: &[String],
    ) -> Result<BTreeMap<String, BTreeMap<String, String>>, AdminError> {
        let mut request = DescribeConfigsRequest::default();
        request.resources = names
            .iter()
            .map(|topic| {
                let mut resource = DescribeConfigsResource::default();
                resource.resource_type = RESOURCE_TOPIC;
                resource.resource_name = name(topic);
                resource.configuration_keys = None;
                resource
            })
            .collect();
        let response = self.bootstrap.lock().await.send(&request).await?;
        let mut described = BTreeMap::new();
        for result in response.results {
            let topic = result.resource_name.to_string();
            if result.error_code == ResponseError::UnknownTopicOrPartition.code() {
                return Err(AdminError::UnknownTopic(topic));
            }
            if let Some(e) = kafka_error(result.error_code, result.error_message.as_ref()) {
                return Err(AdminError::Request(format!("DescribeConfigs {topic}: {e}")));
            }
            let configs = result
                .configs
                .into_iter()
                .filter(|c| !c.is_sensitive)
                .filter_map(|c| c.value.map(|v| (c.name.to_string(), v.to_string())))
                .collect();
            described.insert(topic, configs);
        }
        Ok(described)
    }

    async fn alter_topic_configs(
        &self,
        topic: &str,
        set: &BTreeMap<String, String>,
        reset: &[String],
    ) -> Result<(), AdminError> {
        let config = |key: &str, operation: i8, value: Option<&String>| {
            let mut config = AlterableConfig::default();
            config.name = name(key);
            config.config_operation = operation;
            config.value = value.map(|v| name(v));
            config
        };
        let mut resource = AlterConfigsResource::default();
        resource.resource_type = RESOURCE_TOPIC;
        resource.resource_name = name(topic);
        resource.configs = set
            .iter()
            .map(|(key, value)| config(key, CONFIG_OP_SET, Some(value)))
            .chain(reset.iter().map(|key| config(key, CONFIG_OP_DELETE, None)))
            .collect();
        let mut request = IncrementalAlterConfigsRequest::default();
        request.resources = vec![resource];
        let response = self.bootstrap.lock().await.send(&request).await?;
        for result in response.responses {
            if let Some(e) = kafka_error(result.error_code, result.error_message.as_ref()) {
                return Err(AdminError::Request(format!(
                    "IncrementalAlterConfigs {topic}: {e}"
                )));
            }
        }
        Ok(())
    }

    async fn delete_topic(&self, topic: &str) -> Result<(), AdminError> {
        let mut request = DeleteTopicsRequest::default();
        // Versions up to 5 carry names in topic_names, 6 and later in topics.
        request.topic_names = vec![TopicName(name(topic))];
        let mut state = DeleteTopicState::default();
        state.name = Some(TopicName(name(topic)));
        request.topics = vec![state];
        request.timeout_ms = self.request_timeout_ms;
        let response = self.send_to_controller(&request).await?;
        for result in response.responses {
            if result.error_code == ResponseError::UnknownTopicOrPartition.code() {
                return Err(AdminError::UnknownTopic(topic.into()));
            }
            if let Some(e) = kafka_error(result.error_code, result.error_message.as_ref()) {
                return Err(AdminError::Request(format!("DeleteTopics {topic}: {e}")));
            }
        }
        Ok(())
    }

    async fn create_acls(&self, acls: &[AclBinding]) -> Result<(), AdminError> {
        let mut request = CreateAclsRequest::default();
        request.creations = acls
            .iter()
            .map(|acl| {
                let (resource_type, resource_name, operation) = acl_parts(acl);
                let mut creation = AclCreation::default();
                creation.resource_type = resource_type;
                creation.resource_name = resource_name;
                creation.resource_pattern_type = PATTERN_LITERAL;
                creation.principal = name(&acl.principal);
                creation.host = StrBytes::from_static_str("*");
                creation.operation = operation;
                creation.permission_type = PERMISSION_ALLOW;
                creation
            })
            .collect();
        let response = self.bootstrap.lock().await.send(&request).await?;
        if response.results.len() != acls.len() {
            return Err(AdminError::Request(format!(
                "CreateAcls answered {} results for {} rules",
                response.results.len(),
                acls.len()
            )));
        }
        let failures: Vec<String> = response
            .results
            .iter()
            .zip(acls)
            .filter_map(|(result, acl)| {
                kafka_error(result.error_code, result.error_message.as_ref()).map(|e| format!("{acl:?}: {e}"))
            })
            .collect();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(AdminError::Request(format!(
                "CreateAcls: {}",
                failures.join("; ")
            )))
        }
    }

    async fn delete_acls(&self, acls: &[AclBinding]) -> Result<(), AdminError> {
        let mut request = DeleteAclsRequest::default();
        request.filters = acls
            .iter()
            .map(|acl| {
                let (resource_type, resource_name, operation) = acl_parts(acl);
                let mut filter = DeleteAclsFilter::default();
                filter.resource_type_filter = resource_type;
                filter.resource_name_filter = Some(resource_name);
                filter.pattern_type_filter = PATTERN_LITERAL;
                filter.principal_filter = Some(name(&acl.principal));
                filter.host_filter = Some(StrBytes::from_static_str("*"));
                filter.operation = operation;
                filter.permission_type = PERMISSION_ALLOW;
                filter
            })
            .collect();
        let response = self.bootstrap.lock().await.send(&request).await?;
        for result in response.filter_results {
            if let Some(e) = kafka_error(result.error_code, result.error_message.as_ref()) {
                return Err(AdminError::Request(format!("DeleteAcls: {e}")));
            }
        }
        Ok(())
    }
}
