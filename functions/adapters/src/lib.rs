//! Adapters: each module implements domain ports against one outside system.

pub mod aws;
pub mod dynamodb;
pub mod glue;
pub mod kafka;
pub mod postgres;
pub mod postgres_schema;
pub mod s3;
pub mod secrets;
pub mod sqs;
