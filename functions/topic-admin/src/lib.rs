//! `topic-admin`: the CloudFormation custom resource (behind the CDK provider framework) that
//! creates the pipeline's Kafka topics.
//!
//! - Create / Update: create the missing topics with their partitions, replication factor and
//!   configs; set configs that drifted on existing topics (and reset keys an earlier deployment
//!   set but the stack no longer names); grant the consumer account's SCRAM user its read-only
//!   ACLs. Repeating a deployment sends nothing but reads. Partition-count and replication
//!   changes of existing topics are refused with a clear error (Kafka cannot shrink a topic;
//!   growing it re-maps keys). The call returns only once the cluster metadata lists every topic.
//! - Delete: topics and ACLs are kept by default (`DeletionPolicy: retain`); `delete` removes
//!   both.

pub mod adapters;
pub mod domain;
pub mod event;
pub mod handler;
pub mod ports;
