//! The producer Lambda: configuration, wiring and metrics around
//! [`pipeline_domain::produce::ProducerService`]. `main.rs` only runs it.

pub mod app;
pub mod config;
pub mod metrics;
