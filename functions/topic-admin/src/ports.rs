//! What the handler needs from a Kafka cluster. The Kafka-protocol adapter implements it for
//! real brokers; tests use an in-memory cluster.

use std::collections::BTreeMap;
use std::future::Future;

use thiserror::Error;

use crate::domain::{AclBinding, TopicSpec};
use crate::event::ConnectionSettings;

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("cannot connect to the Kafka cluster: {0}")]
    Connect(String),
    #[error("topic {0} already exists")]
    AlreadyExists(String),
    #[error("topic {0} does not exist")]
    UnknownTopic(String),
    #[error("Kafka request failed: {0}")]
    Request(String),
    #[error("the cluster does not support this request: {0}")]
    Unsupported(String),
}

/// Cluster operations topic-admin uses.
pub trait TopicAdmin: Send + Sync {
    /// Every non-internal topic with its partition count (fresh metadata, not a cache).
    fn list_topics(&self) -> impl Future<Output = Result<BTreeMap<String, usize>, AdminError>> + Send;
    /// Creates a topic with its partitions, replication factor and configs.
    fn create_topic(&self, spec: &TopicSpec) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// The current value of every config of each named topic (defaults included).
    fn describe_topic_configs(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<BTreeMap<String, BTreeMap<String, String>>, AdminError>> + Send;
    /// Sets `set` and returns `reset` to the broker default, leaving other keys alone.
    fn alter_topic_configs(
        &self,
        name: &str,
        set: &BTreeMap<String, String>,
        reset: &[String],
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    fn delete_topic(&self, name: &str) -> impl Future<Output = Result<(), AdminError>> + Send;
    /// Adds ALLOW rules; rules that already exist are left as they are.
    fn create_acls(&self, acls: &[AclBinding]) -> impl Future<Output = Result<(), AdminError>> + Send;
    fn delete_acls(&self, acls: &[AclBinding]) -> impl Future<Output = Result<(), AdminError>> + Send;
}

/// Opens a connection only when a request needs one (a retained delete never connects).
pub trait Connector: Send + Sync {
    type Admin: TopicAdmin;
    fn connect(
        &self,
        settings: &ConnectionSettings,
    ) -> impl Future<Output = Result<Self::Admin, AdminError>> + Send;
}
