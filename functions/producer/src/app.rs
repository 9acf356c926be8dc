//! Wiring: configuration + adapters → the producer service, and one invocation end to end
//! (parse the request, run it, log, emit metrics).

use std::time::Instant;

use pipeline_adapters::glue::{glue_client, GlueSchemaRegistry};
use pipeline_adapters::kafka::{scram_credentials, KafkaAuth, KafkaPublisher, KafkaSettings};
use pipeline_contracts::contracts;
use pipeline_domain::ports::PortError;
use pipeline_domain::produce::{
    ProduceError, ProduceRequest, ProduceSummary, ProducerService, RegistryWriteError,
};
use serde_json::Value as Json;
use thiserror::Error;

use crate::config::{KafkaAuthConfig, ProducerConfig};
use crate::metrics::{emf_document, failure_document};

pub type Producer = ProducerService<KafkaPublisher, GlueSchemaRegistry>;

#[derive(Debug, Error)]
pub enum BuildError {
    #[error("cannot read the Kafka SCRAM secret: {0}")]
    Secret(PortError),
    #[error("cannot connect to Kafka: {0}")]
    Kafka(PortError),
}

/// Connects the adapters the configuration names.
pub async fn build(config: &ProducerConfig, sdk: &aws_config::SdkConfig) -> Result<Producer, BuildError> {
    let auth = match &config.kafka_auth {
        KafkaAuthConfig::None => KafkaAuth::None,
        KafkaAuthConfig::Iam { region } => KafkaAuth::Iam {
            region: region.clone(),
        },
        KafkaAuthConfig::Scram { secret_arn } => {
            scram_credentials(&aws_sdk_secretsmanager::Client::new(sdk), secret_arn)
                .await
                .map_err(BuildError::Secret)?
        }
    };
    let kafka = KafkaSettings {
        bootstrap_servers: config.bootstrap_servers.clone(),
        tls: config.kafka_tls,
        auth,
        ..KafkaSettings::plaintext(Vec::new())
    };
    let publisher = KafkaPublisher::connect(&kafka).await.map_err(BuildError::Kafka)?;
    let registry = GlueSchemaRegistry::new(
        glue_client(sdk, config.registry_role_arn.as_deref()).await,
        &config.registry_name,
    );
    Ok(ProducerService::new(publisher, registry, config.settings.clone()))
}

pub fn init_tracing(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_target(false)
        .with_current_span(false)
        .try_init();
}

/// Parses an invocation payload into a request, with the serde message as the reason.
pub fn parse_request(payload: Json) -> Result<ProduceRequest, ProduceError> {
    serde_json::from_value(payload).map_err(|e| ProduceError::InvalidRequest(e.to_string()))
}

/// The Lambda error type of a failure: callers (and alarms) can tell their own mistakes from
/// outages.
pub fn error_type(error: &ProduceError) -> &'static str {
    match error {
        ProduceError::InvalidRequest(_) | ProduceError::Inference(_) | ProduceError::Encoding(_) => {
            "InvalidRequest"
        }
        ProduceError::Registry(RegistryWriteError::Incompatible { .. }) => "IncompatibleSchema",
        ProduceError::Registry(RegistryWriteError::InvalidDefinition { .. }) => "InvalidSchema",
        ProduceError::SchemaNotRegistered { .. } => "SchemaNotRegistered",
        ProduceError::Registry(RegistryWriteError::Port(_)) => "SchemaRegistryFailed",
        ProduceError::Publish(_) => "PublishFailed",
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// One invocation: parse, produce, log the outcome, print the EMF line.
pub async fn handle(
    producer: &Producer,
    payload: Json,
    function_name: &str,
) -> Result<ProduceSummary, ProduceError> {
    let started = Instant::now();
    let action = payload
        .get("action")
        .and_then(Json::as_str)
        .unwrap_or("unknown")
        .to_string();
    let result = match parse_request(payload) {
        Ok(request) => producer.handle(request, now_ms()).await,
        Err(e) => Err(e),
    };
    let namespace = &contracts().project;
    match &result {
        Ok(summary) => {
            tracing::info!(
                action = %summary.action,
                topic = %summary.topic,
                records = summary.total_records(),
                malformed = summary.malformed,
                fingerprint = %summary.request_fingerprint,
                "produced"
            );
            let duration_ms = started.elapsed().as_secs_f64() * 1_000.0;
            println!(
                "{}",
                emf_document(namespace, function_name, summary, duration_ms, now_ms())
            );
        }
        Err(error) => {
            tracing::error!(action = %action, error_type = error_type(error), error = %error, "produce failed");
            println!(
                "{}",
                failure_document(namespace, function_name, &action, now_ms())
            );
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unparseable_requests_are_invalid_requests_with_the_reason() {
        let err = parse_request(json!({"action": "simulate_sensors", "devices": "many"})).unwrap_err();
        assert_eq!(error_type(&err), "InvalidRequest");
        assert!(
            err.to_string().contains("devices") || err.to_string().contains("invalid type"),
            "{err}"
        );
        let err = parse_request(json!({"action": "launch_rockets"})).unwrap_err();
        assert!(err.to_string().contains("launch_rockets"), "{err}");
    }

    #[test]
    fn fixture_requests_parse() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/events");
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let payload: Json = serde_json::from_str(&text).unwrap();
            parse_request(payload).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
        assert!(seen >= 4, "expected the documented fixtures, found {seen}");
    }
}
