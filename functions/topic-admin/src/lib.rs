//! `topic-admin`: the CloudFormation custom resource (behind the CDK provider framework) that
//! creates the pipeline's Kafka topics.
//!
//! - Create / Update: create the missing topics with the given partitions and replication factor;
//!   topics that already exist with the same partition count are left alone, so repeating a
//!   deployment is a no-op. Partition-count and replication changes of existing topics are
//!   refused with a clear error (Kafka cannot shrink a topic; growing it re-maps keys).
//!   The call returns only once the cluster metadata lists every topic.
//! - Delete: topics are kept by default (`DeletionPolicy: retain`); `delete` removes them.
//!
//! Topic configuration (retention, min.insync.replicas, cleanup policy) is applied as broker
//! defaults by the CDK app's MSK configuration, because rskafka's CreateTopics carries no configs.

pub mod adapters;
pub mod domain;
pub mod event;
pub mod handler;
pub mod ports;
