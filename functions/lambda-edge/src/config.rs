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

/// A boolean setting as the CDK writes it (`String(true)`), with the usual spellings accepted.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::parse_bool;

    #[test]
    fn booleans_read_as_the_cdk_writes_them_and_nothing_else() {
        assert_eq!(parse_bool("true"), Some(true));
        assert_eq!(parse_bool(" FALSE "), Some(false));
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("no"), Some(false));
        assert_eq!(parse_bool("enabled"), None);
        assert_eq!(parse_bool(""), None);
    }
}
