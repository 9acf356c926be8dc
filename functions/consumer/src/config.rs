//! Typed, fallible configuration of the consumer, read from environment variables whose names
//! come from the contract (`envVars` in `contracts/pipeline.json`).
//!
//! | variable (contract key)          | default                                   |
//! |----------------------------------|-------------------------------------------|
//! | each topic's `envVar` (`SENSOR_TOPIC`, ...) | that topic's contract name; routed by its payload kind |
//! | `WINDOW_SECONDS`                 | contract `defaults.windowSeconds`          |
//! | `AGGREGATES_TABLE`, `EXPLICIT_EVENTS_TABLE` | the contract's table names       |
//! | `STORE_EVENTS_BUCKET`            | required                                   |
//! | `POISON_QUEUE_URL`               | required                                   |
//! | `REGISTRY_NAME`                  | contract `schemaRegistry.name`             |
//! | `REGISTRY_ROLE_ARN`              | none: the function's own credentials       |
//! | `PG_SECRET_ARN`                  | none; else `PG_HOST` and `PG_USER` are required |
//! | `PG_HOST`, `PG_PORT`, `PG_DATABASE`, `PG_USER`, `PG_PASSWORD` | override the secret; port 5432, database from the contract |
//! | `PG_TLS` (`require`/`disable`)   | `require`, except `disable` for a loopback `PG_HOST` |
//! | `REPORT_BATCH_ITEM_FAILURES`     | `false`: a sink failure fails the invocation; `true` only for a mapping with `FunctionResponseTypes` `ReportBatchItemFailures` |
//!
//! Empty values count as unset. The log level and format come from Lambda's logging controls
//! (`pipeline_lambda_edge::logging`).

use pipeline_adapters::postgres::{PgSettings, PgTls};
use pipeline_contracts::Payload;
use pipeline_contracts::{contracts, Contracts};
use pipeline_domain::consume::TopicRoutes;
use pipeline_domain::window::WindowSpec;
use pipeline_lambda_edge::config::parse_bool;

pub use pipeline_lambda_edge::config::ConfigError;

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Every contract topic's name (from its variable) and the payload kind it carries.
    pub topics: TopicRoutes,
    pub window: WindowSpec,
    pub aggregates_table: String,
    pub explicit_events_table: String,
    pub store_events_bucket: String,
    pub poison_queue_url: String,
    pub registry_name: String,
    pub registry_role_arn: Option<String>,
    pub postgres: PgSettings,
    /// The mapping honours the partial-batch response (`ReportBatchItemFailures`, provisioned mode):
    /// a batch whose sinks failed part-way is answered with the partitions to deliver again from
    /// their first unstored offset. Without it Lambda would ignore that answer and commit the
    /// batch, so the default fails the invocation instead.
    pub report_batch_item_failures: bool,
}

/// The application name the consumer's database sessions carry (visible in `pg_stat_activity`).
pub const PG_APPLICATION_NAME: &str = "pipeline-consumer";

impl ConsumerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_contract(contracts(), lookup)
    }

    /// Reads the configuration of a pipeline described by `c`: every topic of the contract is
    /// routed by its payload kind, whatever its key or name.
    pub fn from_contract(
        c: &Contracts,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let names = &c.env_vars;
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let or = |name: &str, default: &str| get(name).unwrap_or_else(|| default.to_string());
        let required = |name: &str, why: &'static str| {
            get(name).ok_or_else(|| ConfigError::Missing {
                name: name.to_string(),
                why,
            })
        };
        let invalid = |name: &str, value: &str, problem: String| ConfigError::Invalid {
            name: name.to_string(),
            value: value.to_string(),
            problem,
        };

        let window = match get(&names.window_seconds) {
            None => WindowSpec::from_seconds(c.defaults.window_seconds.into()),
            Some(text) => {
                let seconds: u64 = text
                    .trim()
                    .parse()
                    .map_err(|e| invalid(&names.window_seconds, &text, format!("{e}")))?;
                WindowSpec::from_seconds(seconds)
            }
        }
        .map_err(|e| {
            invalid(
                &names.window_seconds,
                &get(&names.window_seconds).unwrap_or_default(),
                e.to_string(),
            )
        })?;

        let pg_secret = get(&names.pg_secret_arn);
        let pg_host = get(&names.pg_host);
        let pg_user = get(&names.pg_user);
        if pg_secret.is_none() {
            if pg_host.is_none() {
                required(&names.pg_host, "set it, or name an RDS secret in PG_SECRET_ARN")?;
            }
            if pg_user.is_none() {
                required(&names.pg_user, "set it, or name an RDS secret in PG_SECRET_ARN")?;
            }
        }
        let pg_port = match get(&names.pg_port) {
            None => None,
            Some(text) => Some(
                text.trim()
                    .parse::<u16>()
                    .map_err(|e| invalid(&names.pg_port, &text, e.to_string()))?,
            ),
        };
        let pg_tls = match get(&names.pg_tls).map(|v| v.trim().to_ascii_lowercase()) {
            None if pg_host.as_deref().is_some_and(is_loopback) => PgTls::Disable,
            None => PgTls::Require,
            Some(v) if v == "require" => PgTls::Require,
            Some(v) if v == "disable" => PgTls::Disable,
            Some(v) => {
                return Err(invalid(
                    &names.pg_tls,
                    &v,
                    "expected \"require\" or \"disable\"".into(),
                ))
            }
        };

        let report_batch_item_failures = match get(&names.report_batch_item_failures) {
            None => false,
            Some(text) => parse_bool(&text).ok_or_else(|| {
                invalid(
                    &names.report_batch_item_failures,
                    &text,
                    "expected true or false".into(),
                )
            })?,
        };

        let topics = TopicRoutes::from_topics(c.topics.all().map(|t| (or(&t.env_var, &t.name), t.payload)))
            .map_err(|conflict| {
            let variables: Vec<&str> = c.topics.all().map(|t| t.env_var.as_str()).collect();
            invalid(&variables.join(", "), &conflict.topic, conflict.to_string())
        })?;

        Ok(Self {
            topics,
            window,
            aggregates_table: or(&names.aggregates_table, &c.tables.window_aggregates.name),
            explicit_events_table: or(&names.explicit_events_table, &c.tables.explicit_events.name),
            store_events_bucket: required(&names.store_events_bucket, "store events are archived there")?,
            poison_queue_url: required(&names.poison_queue_url, "poison records are sent there")?,
            registry_name: or(&names.registry_name, &c.schema_registry.name),
            registry_role_arn: get(&names.registry_role_arn),
            postgres: PgSettings {
                // With a secret, PG_DATABASE overrides the secret's dbname only when set.
                database: get(&names.pg_database)
                    .or_else(|| pg_secret.is_none().then(|| c.postgres.database.clone())),
                host: pg_host,
                port: pg_port,
                user: pg_user,
                password: get(&names.pg_password),
                secret_id: pg_secret,
                tls: pg_tls,
                application_name: PG_APPLICATION_NAME.into(),
            },
            report_batch_item_failures,
        })
    }

    pub fn routes(&self) -> TopicRoutes {
        self.topics.clone()
    }

    /// The topic names that carry `payload`.
    pub fn topics_carrying(&self, payload: Payload) -> Vec<&str> {
        self.topics
            .topics()
            .filter(|(_, p)| *p == payload)
            .map(|(t, _)| t)
            .collect()
    }
}

/// Traffic to a loopback address never leaves the host, so TLS would protect nothing there.
fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn minimal() -> Vec<(&'static str, &'static str)> {
        let n = &contracts().env_vars;
        vec![
            (n.store_events_bucket.as_str(), "bucket"),
            (n.poison_queue_url.as_str(), "http://q"),
            (n.pg_host.as_str(), "db.example.internal"),
            (n.pg_user.as_str(), "consumer"),
        ]
    }

    #[test]
    fn defaults_come_from_the_contract() {
        let c = contracts();
        let config = ConsumerConfig::from_lookup(lookup(&minimal())).unwrap();
        for topic in c.topics.all() {
            assert_eq!(config.topics.payload_for(&topic.name), Some(topic.payload));
        }
        assert_eq!(
            config.window.size_ms(),
            i64::from(c.defaults.window_seconds) * 1000
        );
        assert_eq!(config.aggregates_table, c.tables.window_aggregates.name);
        assert_eq!(config.registry_name, c.schema_registry.name);
        assert_eq!(
            config.postgres.database.as_deref(),
            Some(c.postgres.database.as_str())
        );
        assert_eq!(config.postgres.tls, PgTls::Require, "TLS by default");
        assert_eq!(config.registry_role_arn, None);
        let routes = config.routes();
        assert_eq!(
            routes.payload_for(
                &c.topics
                    .first_carrying(pipeline_contracts::Payload::StoreEvent)
                    .name
            ),
            Some(pipeline_contracts::Payload::StoreEvent)
        );
    }

    #[test]
    fn a_fourth_topic_of_an_existing_payload_kind_is_routed_with_no_code_change() {
        let mut raw: serde_json::Value = serde_json::from_str(pipeline_contracts::PIPELINE_JSON).unwrap();
        let mut extra = raw["topics"]["storeEvents"].clone();
        extra["name"] = "store-events-eu".into();
        extra["envVar"] = "STORE_EU_TOPIC".into();
        extra["consumerGroup"] = "pipeline-store-events-eu".into();
        raw["topics"]["storeEventsEu"] = extra;
        let contract = Contracts::from_json(&raw.to_string()).unwrap();

        let config = ConsumerConfig::from_contract(&contract, lookup(&minimal())).unwrap();
        assert_eq!(
            config.topics_carrying(Payload::StoreEvent),
            ["store-events", "store-events-eu"]
        );
        let mut pairs = minimal();
        pairs.push(("STORE_EU_TOPIC", "store-events-eu-renamed"));
        let config = ConsumerConfig::from_contract(&contract, lookup(&pairs)).unwrap();
        assert_eq!(
            config.routes().payload_for("store-events-eu-renamed"),
            Some(Payload::StoreEvent),
            "the new topic's variable names it"
        );
    }

    #[test]
    fn the_partial_batch_response_is_off_unless_the_mapping_is_said_to_honour_it() {
        let name = contracts().env_vars.report_batch_item_failures.as_str();
        let off = ConsumerConfig::from_lookup(lookup(&minimal())).unwrap();
        assert!(!off.report_batch_item_failures);
        let mut pairs = minimal();
        pairs.push((name, "true"));
        assert!(
            ConsumerConfig::from_lookup(lookup(&pairs))
                .unwrap()
                .report_batch_item_failures
        );
        pairs.pop();
        pairs.push((name, "partial"));
        let error = ConsumerConfig::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(error.to_string().contains(name), "{error}");
    }

    #[test]
    fn reads_exactly_the_variables_its_function_spec_declares() {
        let c = contracts();
        let spec = pipeline_contracts::functions::consumer(c);
        let base = lookup(&minimal());
        let read = std::cell::RefCell::new(std::collections::BTreeSet::new());
        ConsumerConfig::from_lookup(|name| {
            read.borrow_mut().insert(name.to_string());
            base(name)
        })
        .unwrap();
        let declared: std::collections::BTreeSet<String> = spec.env_vars(c).into_iter().collect();
        assert_eq!(
            read.into_inner(),
            declared,
            "config.rs and functions::consumer must list the same variables"
        );
        for required in spec
            .settings
            .iter()
            .filter(|s| s.when_unset == pipeline_contracts::functions::WhenUnset::Required)
        {
            let pairs: Vec<_> = minimal()
                .into_iter()
                .filter(|(k, _)| *k != required.env_var)
                .collect();
            assert!(
                matches!(ConsumerConfig::from_lookup(lookup(&pairs)), Err(ConfigError::Missing { name, .. }) if name == required.env_var),
                "{} is required in the spec",
                required.env_var
            );
        }
    }

    #[test]
    fn two_kinds_on_one_topic_are_refused_at_start_up() {
        let c = contracts();
        let mut pairs = minimal();
        let sensor = c.topics.first_carrying(Payload::SensorReading);
        let store = c.topics.first_carrying(Payload::StoreEvent);
        pairs.push((store.env_var.as_str(), sensor.name.as_str()));
        let error = ConsumerConfig::from_lookup(lookup(&pairs)).unwrap_err();
        assert!(error.to_string().contains(&sensor.name), "{error}");
    }

    #[test]
    fn values_are_typed_and_errors_name_the_variable() {
        let c = contracts();
        let n = &c.env_vars;
        let mut pairs = minimal();
        pairs.push((n.window_seconds.as_str(), "300"));
        let sensor_variable = c.topics.first_carrying(Payload::SensorReading).env_var.as_str();
        pairs.push((sensor_variable, "custom-sensors"));
        pairs.push((n.pg_port.as_str(), "6432"));
        pairs.push((n.pg_tls.as_str(), "DISABLE"));
        let config = ConsumerConfig::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(config.window.size_ms(), 300_000);
        assert_eq!(config.topics_carrying(Payload::SensorReading), ["custom-sensors"]);
        assert_eq!(config.postgres.port, Some(6432));
        assert_eq!(config.postgres.tls, PgTls::Disable);

        for (name, value) in [
            (n.window_seconds.as_str(), "0"),
            (n.window_seconds.as_str(), "sixty"),
            (n.pg_port.as_str(), "70000"),
            (n.pg_tls.as_str(), "prefer"),
        ] {
            let mut pairs = minimal();
            pairs.push((name, value));
            let error = ConsumerConfig::from_lookup(lookup(&pairs)).unwrap_err();
            assert!(error.to_string().contains(name), "{error}");
        }
        for missing in [
            n.store_events_bucket.as_str(),
            n.poison_queue_url.as_str(),
            n.pg_host.as_str(),
        ] {
            let pairs: Vec<_> = minimal().into_iter().filter(|(k, _)| *k != missing).collect();
            let error = ConsumerConfig::from_lookup(lookup(&pairs)).unwrap_err();
            assert!(
                matches!(&error, ConfigError::Missing { name, .. } if name == missing),
                "{error}"
            );
        }
    }

    #[test]
    fn a_secret_replaces_host_and_user_and_loopback_skips_tls() {
        let n = &contracts().env_vars;
        let pairs: Vec<_> = minimal()
            .into_iter()
            .filter(|(k, _)| *k != n.pg_host && *k != n.pg_user)
            .chain([(
                n.pg_secret_arn.as_str(),
                "arn:aws:secretsmanager:eu-west-1:1:secret:db",
            )])
            .collect();
        let config = ConsumerConfig::from_lookup(lookup(&pairs)).unwrap();
        assert_eq!(config.postgres.host, None);
        assert_eq!(config.postgres.database, None, "the secret's dbname applies");
        assert_eq!(config.postgres.tls, PgTls::Require);

        let mut pairs = minimal();
        pairs.retain(|(k, _)| *k != n.pg_host);
        pairs.push((n.pg_host.as_str(), "127.0.0.1"));
        assert_eq!(
            ConsumerConfig::from_lookup(lookup(&pairs)).unwrap().postgres.tls,
            PgTls::Disable
        );
    }
}
