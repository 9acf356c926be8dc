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
use pipeline_lambda_edge::emf::{emit, now_ms};
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

/// Parses an invocation payload into a request, with the serde message as the reason, naming the
/// field when the message does not.
pub fn parse_request(payload: Json) -> Result<ProduceRequest, ProduceError> {
    match serde_json::from_value::<ProduceRequest>(payload.clone()) {
        Ok(request) => Ok(request),
        Err(error) => {
            let message = error.to_string();
            Err(ProduceError::InvalidRequest(
                match field_with_wrong_value(&payload) {
                    // A missing field is named already, and would make every removal look guilty.
                    Some(field)
                        if !message.starts_with("missing field")
                            && !message.contains(&format!("`{field}`")) =>
                    {
                        format!("field `{field}`: {message}")
                    }
                    _ => message,
                },
            ))
        }
    }
}

/// serde reports a wrong type inside an internally tagged enum without its field ("invalid type:
/// string \"six\", expected u32"). The culprit is the field whose removal turns the failure into a
/// success or into "missing field" for that very field: every other field then deserialized.
fn field_with_wrong_value(payload: &Json) -> Option<String> {
    let object = payload.as_object()?;
    object
        .keys()
        .filter(|key| key.as_str() != "action")
        .find(|key| {
            let mut without = object.clone();
            without.remove(key.as_str());
            match serde_json::from_value::<ProduceRequest>(Json::Object(without)) {
                Ok(_) => true,
                Err(error) => error.to_string() == format!("missing field `{key}`"),
            }
        })
        .cloned()
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
            emit(&emf_document(
                namespace,
                function_name,
                summary,
                duration_ms,
                now_ms(),
            ));
        }
        Err(error) => {
            tracing::error!(action = %action, error_type = error_type(error), error = %error, "produce failed");
            emit(&failure_document(namespace, function_name, &action, now_ms()));
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
        assert!(err.to_string().contains("field `devices`: invalid type"), "{err}");
        let err = parse_request(json!({"action": "launch_rockets"})).unwrap_err();
        assert!(err.to_string().contains("launch_rockets"), "{err}");
    }

    #[test]
    fn a_wrong_type_names_its_field_required_or_optional() {
        let sensors =
            json!({"action": "simulate_sensors", "devices": 2, "readings_per_device": 1, "seed": 1});
        for (field, value) in [
            ("readings_per_device", json!("ten")),
            ("seed", json!(-1)),
            ("interval_ms", json!("1s")),
            ("format", json!("xml")),
        ] {
            let mut payload = sensors.clone();
            payload[field] = value;
            let err = parse_request(payload).unwrap_err().to_string();
            assert!(err.contains(&format!("field `{field}`: ")), "{field}: {err}");
        }
        let err = parse_request(json!({"action": "publish_events", "schema_name": "s", "events": {"a": 1}}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("field `events`: invalid type: map, expected a sequence"),
            "{err}"
        );
    }

    #[test]
    fn messages_that_already_name_the_problem_stay_as_they_are() {
        let err = parse_request(json!({"action": "simulate_sensors", "devices": 2, "seed": 1}))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "invalid request: missing field `readings_per_device`");
        let err = parse_request(
            json!({"action": "simulate_sensors", "devices": 2, "readings_per_device": 1, "seed": 1, "colour": "red"}),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("unknown field `colour`") && !err.contains("field `colour`:"),
            "{err}"
        );
        let err = parse_request(json!(["not", "an", "object"]))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("invalid request: "), "{err}");
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
