//! Typed, fallible configuration of the producer, read from environment variables whose names
//! come from the contract (`envVars` in `contracts/pipeline.json`).
//!
//! | variable                  | meaning / default                                              |
//! |---------------------------|----------------------------------------------------------------|
//! | `KAFKA_BOOTSTRAP_SERVERS` | required, comma-separated `host:port`                          |
//! | `KAFKA_AUTH`              | `none` (default), `scram` or `iam`                             |
//! | `KAFKA_SCRAM_SECRET_ARN`  | required with `scram`: secret `{"username","password"}`        |
//! | `KAFKA_TLS`               | `true`/`false`; default `true` with `scram`/`iam`, else `false` |
//! | the `envVar` of the first contract topic of each payload kind (`SENSOR_TOPIC`, ...) | that topic's name |
//! | `REGISTRY_NAME`           | the contract's registry name                                   |
//! | `REGISTRY_ROLE_ARN`       | none: the function's own credentials                           |
//! | `DEFAULT_FORMAT`          | `avro` (default) or `json`, when a request names none          |
//!
//! MSK IAM tokens are signed for the region in `AWS_REGION` (set by Lambda). Empty values count
//! as unset; SASL without TLS is refused, because credentials would cross the network in clear.

use pipeline_contracts::{contracts, Payload};
use pipeline_domain::produce::ProducerSettings;
use pipeline_domain::simulate::ValueFormat;

use pipeline_lambda_edge::config::parse_bool;
pub use pipeline_lambda_edge::config::ConfigError;

/// How the function authenticates to Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaAuthConfig {
    None,
    /// SASL/SCRAM-SHA-512 with credentials from this Secrets Manager secret.
    Scram {
        secret_arn: String,
    },
    /// MSK IAM, tokens signed for `region`.
    Iam {
        region: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerConfig {
    pub bootstrap_servers: Vec<String>,
    pub kafka_auth: KafkaAuthConfig,
    pub kafka_tls: bool,
    pub settings: ProducerSettings,
    pub registry_name: String,
    pub registry_role_arn: Option<String>,
}

impl ProducerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let c = contracts();
        let names = &c.env_vars;
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let or = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_string());
        let invalid = |name: &str, value: &str, problem: &str| ConfigError::Invalid {
            name: name.to_string(),
            value: value.to_string(),
            problem: problem.to_string(),
        };

        let bootstrap_text = get(&names.kafka_bootstrap_servers).ok_or_else(|| ConfigError::Missing {
            name: names.kafka_bootstrap_servers.clone(),
            why: "the brokers to publish to",
        })?;
        let bootstrap_servers: Vec<String> = bootstrap_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        if bootstrap_servers.is_empty() || bootstrap_servers.iter().any(|s| !looks_like_host_port(s)) {
            return Err(invalid(
                &names.kafka_bootstrap_servers,
                &bootstrap_text,
                "expected comma-separated host:port",
            ));
        }

        let auth_text = or(&names.kafka_auth, "none").to_ascii_lowercase();
        let kafka_auth = match auth_text.as_str() {
            "none" => KafkaAuthConfig::None,
            "scram" => KafkaAuthConfig::Scram {
                secret_arn: get(&names.kafka_scram_secret_arn).ok_or_else(|| ConfigError::Missing {
                    name: names.kafka_scram_secret_arn.clone(),
                    why: "KAFKA_AUTH=scram reads its credentials from this secret",
                })?,
            },
            "iam" => KafkaAuthConfig::Iam {
                region: get("AWS_REGION").ok_or_else(|| ConfigError::Missing {
                    name: "AWS_REGION".into(),
                    why: "KAFKA_AUTH=iam signs tokens for this region",
                })?,
            },
            other => return Err(invalid(&names.kafka_auth, other, "expected none, scram or iam")),
        };

        let kafka_tls = match get(&names.kafka_tls) {
            None => kafka_auth != KafkaAuthConfig::None,
            Some(text) => {
                parse_bool(&text).ok_or_else(|| invalid(&names.kafka_tls, &text, "expected true or false"))?
            }
        };
        if !kafka_tls && kafka_auth != KafkaAuthConfig::None {
            return Err(invalid(
                &names.kafka_tls,
                "false",
                "SASL authentication requires TLS (credentials would travel in clear)",
            ));
        }

        let default_format = match get(&names.default_format) {
            None => ValueFormat::Avro,
            Some(text) => ValueFormat::parse(&text)
                .ok_or_else(|| invalid(&names.default_format, &text, "expected avro or json"))?,
        };

        // Each simulation publishes to the first contract topic of its payload kind.
        let topic_of = |payload: Payload| {
            let topic = c.topics.first_carrying(payload);
            or(&topic.env_var, &topic.name)
        };
        let settings = ProducerSettings {
            sensor_topic: topic_of(Payload::SensorReading),
            store_topic: topic_of(Payload::StoreEvent),
            explicit_topic: topic_of(Payload::Explicit),
            default_format,
        };
        let distinct: std::collections::BTreeSet<&String> = [
            &settings.sensor_topic,
            &settings.store_topic,
            &settings.explicit_topic,
        ]
        .into_iter()
        .collect();
        if distinct.len() != 3 {
            return Err(invalid(
                &c.topics.first_carrying(Payload::Explicit).env_var,
                &settings.explicit_topic,
                "the sensor, store and explicit topics must differ",
            ));
        }

        Ok(Self {
            bootstrap_servers,
            kafka_auth,
            kafka_tls,
            settings,
            registry_name: or(&names.registry_name, &c.schema_registry.name),
            registry_role_arn: get(&names.registry_role_arn),
        })
    }
}

fn looks_like_host_port(text: &str) -> bool {
    match text.rsplit_once(':') {
        Some((host, port)) => !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<ProducerConfig, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ProducerConfig::from_lookup(|name| map.get(name).cloned())
    }

    fn topic_variable(payload: Payload) -> String {
        contracts().topics.first_carrying(payload).env_var.clone()
    }

    #[test]
    fn defaults_come_from_the_contract() {
        let c = config(&[("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")]).unwrap();
        assert_eq!(c.bootstrap_servers, vec!["127.0.0.1:19092"]);
        assert_eq!(c.kafka_auth, KafkaAuthConfig::None);
        assert!(!c.kafka_tls);
        assert_eq!(c.settings, ProducerSettings::from_contract());
        assert_eq!(c.registry_name, contracts().schema_registry.name);
        assert_eq!(c.registry_role_arn, None);
    }

    #[test]
    fn variable_names_are_the_contract_ones() {
        let names = &contracts().env_vars;
        let c = config(&[
            (&names.kafka_bootstrap_servers, "b-1:9096, b-2:9096"),
            (&names.kafka_auth, "SCRAM"),
            (
                &names.kafka_scram_secret_arn,
                "arn:aws:secretsmanager:eu-west-1:1:secret:AmazonMSK_x",
            ),
            (&topic_variable(Payload::SensorReading), "s"),
            (&topic_variable(Payload::StoreEvent), "t"),
            (&topic_variable(Payload::Explicit), "e"),
            (&names.registry_name, "r"),
            (&names.registry_role_arn, "arn:aws:iam::1:role/reader"),
            (&names.default_format, "json"),
        ])
        .unwrap();
        assert_eq!(c.bootstrap_servers, vec!["b-1:9096", "b-2:9096"]);
        assert!(matches!(c.kafka_auth, KafkaAuthConfig::Scram { .. }));
        assert!(c.kafka_tls, "SASL defaults to TLS");
        assert_eq!(
            (
                c.settings.sensor_topic.as_str(),
                c.settings.store_topic.as_str(),
                c.settings.explicit_topic.as_str()
            ),
            ("s", "t", "e")
        );
        assert_eq!(c.settings.default_format, ValueFormat::Json);
        assert_eq!(c.registry_name, "r");
        assert_eq!(c.registry_role_arn.as_deref(), Some("arn:aws:iam::1:role/reader"));
    }

    #[test]
    fn bad_values_are_named_in_the_error() {
        let missing = config(&[]).unwrap_err();
        assert!(
            missing.to_string().contains("KAFKA_BOOTSTRAP_SERVERS"),
            "{missing}"
        );
        for (pairs, culprit) in [
            (
                vec![("KAFKA_BOOTSTRAP_SERVERS", "localhost")],
                "KAFKA_BOOTSTRAP_SERVERS",
            ),
            (
                vec![("KAFKA_BOOTSTRAP_SERVERS", "h:1"), ("KAFKA_AUTH", "kerberos")],
                "KAFKA_AUTH",
            ),
            (
                vec![("KAFKA_BOOTSTRAP_SERVERS", "h:1"), ("KAFKA_AUTH", "scram")],
                "KAFKA_SCRAM_SECRET_ARN",
            ),
            (
                vec![("KAFKA_BOOTSTRAP_SERVERS", "h:1"), ("KAFKA_AUTH", "iam")],
                "AWS_REGION",
            ),
            (
                vec![
                    ("KAFKA_BOOTSTRAP_SERVERS", "h:1"),
                    ("KAFKA_AUTH", "iam"),
                    ("AWS_REGION", "eu-west-1"),
                    ("KAFKA_TLS", "false"),
                ],
                "KAFKA_TLS",
            ),
            (
                vec![("KAFKA_BOOTSTRAP_SERVERS", "h:1"), ("KAFKA_TLS", "maybe")],
                "KAFKA_TLS",
            ),
            (
                vec![("KAFKA_BOOTSTRAP_SERVERS", "h:1"), ("DEFAULT_FORMAT", "xml")],
                "DEFAULT_FORMAT",
            ),
            (
                vec![
                    ("KAFKA_BOOTSTRAP_SERVERS", "h:1"),
                    ("EXPLICIT_TOPIC", "sensor-readings"),
                ],
                "EXPLICIT_TOPIC",
            ),
        ] {
            let err = config(&pairs).unwrap_err();
            assert!(err.to_string().contains(culprit), "{pairs:?}: {err}");
        }
        let iam = config(&[
            ("KAFKA_BOOTSTRAP_SERVERS", "h:9098"),
            ("KAFKA_AUTH", "iam"),
            ("AWS_REGION", "eu-west-1"),
        ])
        .unwrap();
        assert_eq!(
            iam.kafka_auth,
            KafkaAuthConfig::Iam {
                region: "eu-west-1".into()
            }
        );
        assert!(iam.kafka_tls);
    }
}
