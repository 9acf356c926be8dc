//! Edges: Kafka (rdkafka), the Lambda Invoke API, SQS and the report sinks.

pub mod kafka;
pub mod lambda;
pub mod report;
pub mod sqs;
