//! What the handler needs from a Kafka cluster. The rskafka adapter implements it for real
//! brokers; tests use an in-memory cluster.

use std::collections::BTreeMap;
use std::future::Future;

use thiserror::Error;

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
}

/// Cluster operations topic-admin uses.
pub trait TopicAdmin: Send + Sync {
    /// Every non-internal topic with its partition count (fresh metadata, not a cache).
    fn list_topics(&self) -> impl Future<Output = Result<BTreeMap<String, usize>, AdminError>> + Send;
    fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> impl Future<Output = Result<(), AdminError>> + Send;
    fn delete_topic(&self, name: &str) -> impl Future<Output = Result<(), AdminError>> + Send;
}

/// Opens a connection only when a request needs one (a retained delete never connects).
pub trait Connector: Send + Sync {
    type Admin: TopicAdmin;
    fn connect(
        &self,
        settings: &ConnectionSettings,
    ) -> impl Future<Output = Result<Self::Admin, AdminError>> + Send;
}
