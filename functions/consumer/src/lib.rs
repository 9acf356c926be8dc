//! The consumer Lambda: configuration, wiring and the invocation handler. `main.rs` only connects
//! these to the Lambda runtime, so the integration tests run exactly the code the Lambda runs.

pub mod app;
pub mod config;
pub mod metrics;
#[cfg(feature = "testing")]
pub mod testkit;
