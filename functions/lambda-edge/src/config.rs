//! The error every function's configuration reader returns, so a bad setting reads the same in
//! every function's cold-start log.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("environment variable {name} is required: {why}")]
    Missing { name: String, why: &'static str },
    #[error("environment variable {name}={value:?} is invalid: {problem}")]
    Invalid {
        name: String,
        value: String,
        problem: String,
    },
}
