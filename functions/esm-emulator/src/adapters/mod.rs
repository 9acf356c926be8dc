//! Edges: Kafka (rdkafka), the Lambda Invoke API, SQS, the report sinks and the mapping API endpoint.

pub mod kafka;
pub mod lambda;
pub mod mapping_api;
pub mod report;
pub mod sqs;
