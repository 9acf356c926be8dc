//! The Lambda API's event source mapping reads, answered from the emulator's own status, so tools
//! written against AWS (boto3, the AWS CLI, `scripts/check-deployment.sh`) read a local mapping
//! exactly as they read a deployed one.
//!
//! Served: `ListEventSourceMappings` (`GET /2015-03-31/event-source-mappings/?FunctionName=…`) and
//! `GetEventSourceMapping` (`GET /2015-03-31/event-source-mappings/{UUID}`), with the response
//! fields of `EventSourceMappingConfiguration` (Lambda API reference) that a Kafka mapping has.
//! Errors use the Lambda REST-JSON shape: the status code, `x-amzn-ErrorType` and a `Message`.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::config::{MappingConfig, StartingPosition};
use crate::event::EventSource;
use crate::status::MappingStatus;

/// API version prefix of every Lambda REST path.
pub const MAPPINGS_PATH: &str = "/2015-03-31/event-source-mappings/";

/// The static part of one mapping, as the Lambda API describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingDescription {
    pub uuid: Uuid,
    pub function_arn: String,
    pub topic: String,
    pub consumer_group: String,
    pub bootstrap_servers: Vec<String>,
    pub msk_cluster_arn: Option<String>,
    pub starting_position: &'static str,
    pub batch_size: usize,
    /// `MaximumBatchingWindowInSeconds` is a whole number of seconds on AWS; fractions round up.
    pub batching_window_secs: u64,
    /// -1: retry until the record expires.
    pub maximum_retry_attempts: i64,
    /// The on-failure destination's ARN.
    pub on_failure_destination: Option<String>,
    /// Seconds since the epoch (AWS returns `LastModified` as a timestamp).
    pub last_modified: f64,
}

/// The parts of a Lambda function ARN (`arn:<partition>:lambda:<region>:<account>:function:<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionArn<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub name: &'a str,
}

pub fn parse_function_arn(arn: &str) -> Option<FunctionArn<'_>> {
    let mut parts = arn.splitn(7, ':');
    let (
        Some("arn"),
        Some(partition),
        Some("lambda"),
        Some(region),
        Some(account),
        Some("function"),
        Some(rest),
    ) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    )
    else {
        return None;
    };
    // A qualified ARN ends in `:<version or alias>`.
    let name = rest.split(':').next().unwrap_or(rest);
    Some(FunctionArn {
        partition,
        region,
        account,
        name,
    })
}

/// The ARN of the SQS queue at `url` (`https://sqs.<region>.amazonaws.com/<account>/<name>`, or a
/// local endpoint with the same path), in the function's partition and region.
pub fn sqs_arn_from_url(url: &str, function: &FunctionArn<'_>) -> Option<String> {
    let path = url.split_once("://").map_or(url, |(_, rest)| rest);
    let mut segments = path.trim_end_matches('/').rsplit('/');
    let name = segments.next().filter(|s| !s.is_empty())?;
    let account = segments
        .next()
        .filter(|s| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()))?;
    Some(format!(
        "arn:{}:sqs:{}:{}:{}",
        function.partition, function.region, account, name
    ))
}

impl MappingDescription {
    /// Describes `config`; the UUID is derived from function, topic and group, so a restarted
    /// emulator keeps its identity, as a mapping does on AWS.
    pub fn from_config(config: &MappingConfig, last_modified: f64) -> Self {
        let function = parse_function_arn(&config.function_arn);
        let uuid = Uuid::new_v5(
            &Uuid::NAMESPACE_URL,
            format!(
                "esm-emulator:{}|{}|{}",
                config.function_arn, config.topic, config.consumer_group
            )
            .as_bytes(),
        );
        let batching_window = config.batching_window;
        let batching_window_secs = batching_window.as_secs() + u64::from(batching_window.subsec_nanos() > 0);
        Self {
            uuid,
            function_arn: config.function_arn.clone(),
            topic: config.topic.clone(),
            consumer_group: config.consumer_group.clone(),
            bootstrap_servers: config
                .bootstrap_servers
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            msk_cluster_arn: match &config.event_source {
                EventSource::Msk { cluster_arn } => Some(cluster_arn.clone()),
                EventSource::SelfManaged => None,
            },
            starting_position: match config.starting_position {
                StartingPosition::TrimHorizon => "TRIM_HORIZON",
                StartingPosition::Latest => "LATEST",
            },
            batch_size: config.batch_size,
            batching_window_secs,
            maximum_retry_attempts: config.retry.max_retry_attempts.map_or(-1, i64::from),
            on_failure_destination: config
                .on_failure_queue_url
                .as_deref()
                .zip(function.as_ref())
                .and_then(|(url, function)| sqs_arn_from_url(url, function)),
            last_modified,
        }
    }

    fn mapping_arn(&self) -> Option<String> {
        let function = parse_function_arn(&self.function_arn)?;
        Some(format!(
            "arn:{}:lambda:{}:{}:event-source-mapping:{}",
            function.partition, function.region, function.account, self.uuid
        ))
    }

    fn matches_function(&self, wanted: &str) -> bool {
        wanted == self.function_arn
            || parse_function_arn(&self.function_arn).is_some_and(|own| {
                wanted == own.name
                    || parse_function_arn(wanted)
                        .is_some_and(|w| w.name == own.name && w.account == own.account)
            })
    }

    /// `EventSourceMappingConfiguration` for this mapping in its current status.
    pub fn configuration(&self, status: &MappingStatus) -> Value {
        let mut out = json!({
            "UUID": self.uuid.to_string(),
            "StartingPosition": self.starting_position,
            "BatchSize": self.batch_size,
            "MaximumBatchingWindowInSeconds": self.batching_window_secs,
            "FunctionArn": self.function_arn,
            "LastModified": self.last_modified,
            "LastProcessingResult": status.last_processing_result.aws_text(),
            "State": status.state.aws_state(),
            // Every state change of an emulated mapping comes from whoever started it.
            "StateTransitionReason": "USER_INITIATED",
            "Topics": [self.topic],
            "MaximumRetryAttempts": self.maximum_retry_attempts,
            "DestinationConfig": { "OnFailure": self.on_failure_destination.as_ref().map_or(json!({}), |arn| json!({ "Destination": arn })) },
        });
        if let Some(arn) = self.mapping_arn() {
            out["EventSourceMappingArn"] = json!(arn);
        }
        match &self.msk_cluster_arn {
            Some(cluster_arn) => {
                out["EventSourceArn"] = json!(cluster_arn);
                out["AmazonManagedKafkaEventSourceConfig"] =
                    json!({ "ConsumerGroupId": self.consumer_group });
            }
            None => {
                out["SelfManagedEventSource"] =
                    json!({ "Endpoints": { "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers } });
                out["SelfManagedKafkaEventSourceConfig"] = json!({ "ConsumerGroupId": self.consumer_group });
            }
        }
        out
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ApiResponse {
    pub status: u16,
    /// `x-amzn-ErrorType` of an error response.
    pub error_type: Option<&'static str>,
    pub body: Value,
}

fn error(status: u16, error_type: &'static str, message: &str) -> ApiResponse {
    ApiResponse {
        status,
        error_type: Some(error_type),
        body: json!({ "Type": "User", "Message": message }),
    }
}

/// Decodes `%XX` escapes and `+` in a query component.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = raw.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Answers one request (`method`, request target with its query) for the mappings this process runs.
pub fn respond(
    method: &str,
    target: &str,
    mappings: &[(&MappingDescription, &MappingStatus)],
) -> ApiResponse {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let Some(rest) = path
        .strip_prefix(MAPPINGS_PATH)
        .or_else(|| (path == MAPPINGS_PATH.trim_end_matches('/')).then_some(""))
    else {
        return error(404, "ResourceNotFoundException", &format!("no such API: {path}"));
    };
    if method != "GET" {
        // Creating, updating and deleting an emulated mapping is done by starting and stopping it.
        return error(
            405,
            "InvalidParameterValueException",
            &format!("{method} is not served here; only the mapping reads are"),
        );
    }
    let mut params = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (percent_decode(name), percent_decode(value)) {
            (Some(name), Some(value)) => params.push((name, value)),
            _ => {
                return error(
                    400,
                    "InvalidParameterValueException",
                    &format!("cannot decode query parameter {pair:?}"),
                )
            }
        }
    }
    let param = |wanted: &str| {
        params
            .iter()
            .find(|(name, _)| name == wanted)
            .map(|(_, v)| v.as_str())
    };
    if rest.is_empty() {
        let listed: Vec<Value> = mappings
            .iter()
            .filter(|(description, _)| param("FunctionName").is_none_or(|f| description.matches_function(f)))
            .filter(|(description, _)| {
                param("EventSourceArn").is_none_or(|arn| description.msk_cluster_arn.as_deref() == Some(arn))
            })
            .map(|(description, status)| description.configuration(status))
            .collect();
        return ApiResponse {
            status: 200,
            error_type: None,
            body: json!({ "EventSourceMappings": listed }),
        };
    }
    let uuid = rest.trim_end_matches('/');
    match mappings
        .iter()
        .find(|(description, _)| description.uuid.to_string() == uuid)
    {
        Some((description, status)) => ApiResponse {
            status: 200,
            error_type: None,
            body: description.configuration(status),
        },
        None => error(
            404,
            "ResourceNotFoundException",
            "The resource you requested does not exist.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::MappingSettings;
    use crate::status::{MappingState, ProcessingResult};

    fn settings(function_name: &str, queue_url: Option<&str>) -> MappingSettings {
        MappingSettings {
            topic: "sensor-readings".into(),
            consumer_group: "pipeline-sensor-readings".into(),
            bootstrap_servers: "b-1.democluster1.w7j4hk.c2.kafka.us-east-1.amazonaws.com:9096,b-2.democluster1.w7j4hk.c2.kafka.us-east-1.amazonaws.com:9096".into(),
            starting_position: "TRIM_HORIZON".into(),
            batch_size: 500,
            batching_window: Duration::from_millis(500),
            max_payload_bytes: crate::config::MAX_INVOKE_PAYLOAD_BYTES,
            max_retry_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            msk_cluster_arn: None,
            function_name: function_name.into(),
            region: "us-east-1".into(),
            on_failure_queue_url: queue_url.map(String::from),
            exit_when_idle: None,
            error_handling: crate::config::ErrorHandlingSettings::on_demand(),
        }
    }

    fn description(function_name: &str, queue_url: Option<&str>) -> MappingDescription {
        MappingDescription::from_config(
            &settings(function_name, queue_url).validate().unwrap(),
            1_767_225_600.0,
        )
    }

    #[test]
    fn function_arns_parse_in_both_partitions() {
        let arn =
            parse_function_arn("arn:aws-cn:lambda:cn-north-1:123456789012:function:consumer:live").unwrap();
        assert_eq!(
            arn,
            FunctionArn {
                partition: "aws-cn",
                region: "cn-north-1",
                account: "123456789012",
                name: "consumer"
            }
        );
        assert!(parse_function_arn("arn:aws:sqs:us-east-1:123456789012:q").is_none());
        assert!(parse_function_arn("consumer").is_none());
    }

    #[test]
    fn queue_urls_become_arns_of_the_functions_partition() {
        let cn = parse_function_arn("arn:aws-cn:lambda:cn-north-1:123456789012:function:consumer").unwrap();
        assert_eq!(
            sqs_arn_from_url(
                "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/pipeline-esm-on-failure",
                &cn
            )
            .as_deref(),
            Some("arn:aws-cn:sqs:cn-north-1:123456789012:pipeline-esm-on-failure")
        );
        let local = parse_function_arn("arn:aws:lambda:us-east-1:000000000000:function:consumer").unwrap();
        assert_eq!(
            sqs_arn_from_url(
                "http://127.0.0.1:43500/000000000000/pipeline-esm-on-failure",
                &local
            )
            .as_deref(),
            Some("arn:aws:sqs:us-east-1:000000000000:pipeline-esm-on-failure")
        );
        assert_eq!(
            sqs_arn_from_url("http://127.0.0.1:43500/pipeline-esm-on-failure", &local),
            None
        );
    }

    #[test]
    fn the_configuration_has_the_lambda_api_shape() {
        let description = description(
            "arn:aws:lambda:us-east-1:123456789012:function:consumer",
            Some("https://sqs.us-east-1.amazonaws.com/123456789012/pipeline-esm-on-failure"),
        );
        let mut status = MappingStatus::starting("sensor-readings", "pipeline-sensor-readings", "consumer");
        status.state = MappingState::Idle;
        status.last_processing_result = ProcessingResult::Ok;
        let config = description.configuration(&status);
        assert_eq!(config["State"], "Enabled");
        assert_eq!(config["LastProcessingResult"], "OK");
        assert_eq!(config["StateTransitionReason"], "USER_INITIATED");
        assert_eq!(config["Topics"], json!(["sensor-readings"]));
        assert_eq!(config["BatchSize"], 500);
        assert_eq!(
            config["MaximumBatchingWindowInSeconds"], 1,
            "0.5 s rounds up to whole seconds"
        );
        assert_eq!(config["MaximumRetryAttempts"], 3);
        assert_eq!(config["StartingPosition"], "TRIM_HORIZON");
        assert_eq!(
            config["SelfManagedEventSource"]["Endpoints"]["KAFKA_BOOTSTRAP_SERVERS"],
            json!([
                "b-1.democluster1.w7j4hk.c2.kafka.us-east-1.amazonaws.com:9096",
                "b-2.democluster1.w7j4hk.c2.kafka.us-east-1.amazonaws.com:9096"
            ])
        );
        assert_eq!(
            config["SelfManagedKafkaEventSourceConfig"]["ConsumerGroupId"],
            "pipeline-sensor-readings"
        );
        assert_eq!(
            config["DestinationConfig"]["OnFailure"]["Destination"],
            "arn:aws:sqs:us-east-1:123456789012:pipeline-esm-on-failure"
        );
        assert_eq!(
            config["EventSourceMappingArn"],
            format!(
                "arn:aws:lambda:us-east-1:123456789012:event-source-mapping:{}",
                description.uuid
            )
        );
        let uuid = config["UUID"].as_str().unwrap();
        assert_eq!(Uuid::parse_str(uuid).unwrap(), description.uuid);
        assert_eq!(
            description.uuid,
            self::description("arn:aws:lambda:us-east-1:123456789012:function:consumer", None).uuid,
            "the identity does not depend on the destination or a restart"
        );
    }

    #[test]
    fn an_msk_mapping_names_its_cluster() {
        let mut s = settings(
            "arn:aws-cn:lambda:cn-north-1:123456789012:function:consumer",
            None,
        );
        s.region = "cn-north-1".into();
        s.msk_cluster_arn = Some("arn:aws-cn:kafka:cn-north-1:123456789012:cluster/techx-tf4-orders/0b5a6e2f-3c4d-4e5f-8a9b-1c2d3e4f5a6b-2".into());
        let description = MappingDescription::from_config(&s.validate().unwrap(), 0.0);
        let config = description.configuration(&MappingStatus::starting("t", "g", "consumer"));
        assert_eq!(
            config["EventSourceArn"],
            description.msk_cluster_arn.clone().unwrap()
        );
        assert_eq!(
            config["AmazonManagedKafkaEventSourceConfig"]["ConsumerGroupId"],
            "pipeline-sensor-readings"
        );
        assert!(config.get("SelfManagedEventSource").is_none());
        assert_eq!(config["State"], "Creating");
        assert_eq!(config["LastProcessingResult"], "No records processed");
        assert_eq!(config["DestinationConfig"]["OnFailure"], json!({}));
    }

    #[test]
    fn list_filters_by_function_and_get_finds_by_uuid() {
        let description = description("arn:aws:lambda:us-east-1:123456789012:function:consumer", None);
        let mut status = MappingStatus::starting("sensor-readings", "pipeline-sensor-readings", "consumer");
        status.state = MappingState::Connecting;
        status.last_processing_result = ProcessingResult::TopicNotFound("sensor-readings on b-1".into());
        let mappings = [(&description, &status)];
        for wanted in [
            "consumer",
            "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aconsumer",
        ] {
            let listed = respond(
                "GET",
                &format!("{MAPPINGS_PATH}?FunctionName={wanted}"),
                &mappings,
            );
            assert_eq!(listed.status, 200);
            let items = listed.body["EventSourceMappings"].as_array().unwrap();
            assert_eq!(items.len(), 1, "{wanted}");
            assert_eq!(items[0]["State"], "Enabled");
            assert!(items[0]["LastProcessingResult"]
                .as_str()
                .unwrap()
                .starts_with("PROBLEM: Topic not found."));
        }
        let other = respond(
            "GET",
            &format!("{MAPPINGS_PATH}?FunctionName=producer"),
            &mappings,
        );
        assert_eq!(other.body["EventSourceMappings"], json!([]));
        let all = respond("GET", MAPPINGS_PATH, &mappings);
        assert_eq!(all.body["EventSourceMappings"].as_array().unwrap().len(), 1);

        let got = respond("GET", &format!("{MAPPINGS_PATH}{}", description.uuid), &mappings);
        assert_eq!(got.status, 200);
        assert_eq!(got.body["UUID"], description.uuid.to_string());
        let missing = respond("GET", &format!("{MAPPINGS_PATH}{}", Uuid::nil()), &mappings);
        assert_eq!(
            (missing.status, missing.error_type),
            (404, Some("ResourceNotFoundException"))
        );
        let delete = respond(
            "DELETE",
            &format!("{MAPPINGS_PATH}{}", description.uuid),
            &mappings,
        );
        assert_eq!(delete.status, 405);
        let elsewhere = respond("GET", "/2015-03-31/functions/consumer", &mappings);
        assert_eq!(elsewhere.status, 404);
        let bad = respond("GET", &format!("{MAPPINGS_PATH}?FunctionName=%zz"), &mappings);
        assert_eq!(bad.status, 400);
    }
}
