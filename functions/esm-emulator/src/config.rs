//! Validated configuration of one event source mapping, with the limits AWS enforces.

use std::time::Duration;

use thiserror::Error;

use crate::event::EventSource;
use crate::retry::RetryPolicy;

/// Lambda's synchronous invocation payload limit (one home: `pipeline_domain::limits`).
pub use pipeline_domain::limits::LAMBDA_MAX_INVOKE_PAYLOAD_BYTES as MAX_INVOKE_PAYLOAD_BYTES;
pub const MAX_BATCH_SIZE: usize = 10_000;
pub const MAX_BATCHING_WINDOW: Duration = Duration::from_secs(300);
pub const MAX_RETRY_ATTEMPTS: i64 = 10_000;
/// With an on-failure destination and unlimited retries (`MaximumRetryAttempts` -1), Lambda
/// applies at most 10 retries to a failing Kafka batch, then sends the batch's metadata to the
/// destination and moves on (Lambda developer guide, "Using a Kafka topic as an on-failure
/// destination" and "Configuring retry behavior for Kafka event sources"). The guide does not say
/// whether on-demand mappings with an SQS destination are excluded; the emulator applies the cap
/// to every mapping with a destination, so the tests see the case that can lose a batch.
pub const RETRY_CAP_WITH_ON_FAILURE_DESTINATION: u32 = 10;
/// `MaximumRecordAgeInSeconds` of a Kafka mapping: -1 (infinite) or 60..=604800 (Lambda developer
/// guide, "Configuring error handling controls for Kafka event sources"; CloudFormation refuses
/// 0..=59). The CDK side validates the same range (cdk/lib/aws-facts.ts KAFKA_PROVISIONED_MODE).
pub const RECORD_AGE_SECONDS: std::ops::RangeInclusive<i64> = 60..=604_800;

/// The error-handling controls a Kafka mapping takes in provisioned mode only (same page).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorHandlingSettings {
    /// The mapping runs in provisioned mode; the controls below are refused otherwise, as AWS does.
    pub provisioned: bool,
    /// -1 = infinite.
    pub max_record_age_secs: i64,
    pub bisect_batch_on_function_error: bool,
    pub report_batch_item_failures: bool,
}

impl ErrorHandlingSettings {
    /// AWS's defaults: on-demand, no record age, no bisect, no partial-batch responses.
    pub fn on_demand() -> Self {
        Self {
            max_record_age_secs: -1,
            ..Self::default()
        }
    }
}

/// Validated error-handling controls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ErrorHandling {
    /// Records older than this (by their Kafka timestamp) go to the on-failure destination
    /// instead of the function.
    pub max_record_age: Option<Duration>,
    /// A failed invocation splits the batch in two and retries each half on its own.
    pub bisect_batch_on_function_error: bool,
    /// The function's `batchItemFailures` answer is honoured (re-deliver from the lowest failed
    /// offset of each named partition, commit the rest).
    pub report_batch_item_failures: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingPosition {
    TrimHorizon,
    Latest,
}

impl std::str::FromStr for StartingPosition {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "TRIM_HORIZON" => Ok(StartingPosition::TrimHorizon),
            "LATEST" => Ok(StartingPosition::Latest),
            other => Err(ConfigError::StartingPosition(other.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingConfig {
    pub topic: String,
    pub consumer_group: String,
    pub bootstrap_servers: String,
    pub starting_position: StartingPosition,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub max_payload_bytes: usize,
    pub retry: RetryPolicy,
    pub event_source: EventSource,
    pub function_name: String,
    pub function_arn: String,
    /// SQS queue URL; without one, a discarded batch is only logged (AWS drops it too).
    pub on_failure_queue_url: Option<String>,
    /// Stop after every partition has been caught up for this long (for batch runs and tests).
    pub exit_when_idle: Option<Duration>,
    pub error_handling: ErrorHandling,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("starting position must be TRIM_HORIZON or LATEST, got {0:?}")]
    StartingPosition(String),
    #[error("batch size must be between 1 and {MAX_BATCH_SIZE}, got {0}")]
    BatchSize(usize),
    #[error("batching window must be at most 300s, got {0:?}")]
    BatchingWindow(Duration),
    #[error("maximum retry attempts must be -1 (forever) or 0..={MAX_RETRY_ATTEMPTS}, got {0}")]
    RetryAttempts(i64),
    #[error("payload cap must be between 1 KiB and {MAX_INVOKE_PAYLOAD_BYTES} bytes, got {0}")]
    PayloadCap(usize),
    #[error("{0} must not be empty")]
    Empty(&'static str),
    #[error("maximum record age must be -1 (infinite) or 60..=604800 seconds, got {0}")]
    RecordAge(i64),
    #[error("{0} is set in provisioned mode only (Lambda refuses it for an on-demand Kafka mapping): add --provisioned-mode")]
    NeedsProvisionedMode(&'static str),
}

/// Raw values as given on the command line or by a test.
#[derive(Debug, Clone)]
pub struct MappingSettings {
    pub topic: String,
    pub consumer_group: String,
    pub bootstrap_servers: String,
    pub starting_position: String,
    pub batch_size: usize,
    pub batching_window: Duration,
    pub max_payload_bytes: usize,
    pub max_retry_attempts: i64,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub msk_cluster_arn: Option<String>,
    pub function_name: String,
    pub region: String,
    pub on_failure_queue_url: Option<String>,
    pub exit_when_idle: Option<Duration>,
    pub error_handling: ErrorHandlingSettings,
}

impl ErrorHandlingSettings {
    fn validate(self) -> Result<ErrorHandling, ConfigError> {
        if !self.provisioned {
            for (set, name) in [
                (self.max_record_age_secs != -1, "maximum record age"),
                (
                    self.bisect_batch_on_function_error,
                    "bisect batch on function error",
                ),
                (self.report_batch_item_failures, "ReportBatchItemFailures"),
            ] {
                if set {
                    return Err(ConfigError::NeedsProvisionedMode(name));
                }
            }
        }
        let max_record_age = match self.max_record_age_secs {
            -1 => None,
            secs if RECORD_AGE_SECONDS.contains(&secs) => Some(Duration::from_secs(secs.unsigned_abs())),
            other => return Err(ConfigError::RecordAge(other)),
        };
        Ok(ErrorHandling {
            max_record_age,
            bisect_batch_on_function_error: self.bisect_batch_on_function_error,
            report_batch_item_failures: self.report_batch_item_failures,
        })
    }
}

impl MappingSettings {
    pub fn validate(self) -> Result<MappingConfig, ConfigError> {
        for (name, value) in [
            ("topic", &self.topic),
            ("consumer group", &self.consumer_group),
            ("bootstrap servers", &self.bootstrap_servers),
            ("function name", &self.function_name),
        ] {
            if value.trim().is_empty() {
                return Err(ConfigError::Empty(name));
            }
        }
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            return Err(ConfigError::BatchSize(self.batch_size));
        }
        if self.batching_window > MAX_BATCHING_WINDOW {
            return Err(ConfigError::BatchingWindow(self.batching_window));
        }
        if !(1024..=MAX_INVOKE_PAYLOAD_BYTES).contains(&self.max_payload_bytes) {
            return Err(ConfigError::PayloadCap(self.max_payload_bytes));
        }
        let on_failure_queue_url = self.on_failure_queue_url.filter(|u| !u.is_empty());
        let max_retry_attempts = match self.max_retry_attempts {
            -1 if on_failure_queue_url.is_some() => Some(RETRY_CAP_WITH_ON_FAILURE_DESTINATION),
            -1 => None,
            n @ 0..=MAX_RETRY_ATTEMPTS => Some(n as u32),
            other => return Err(ConfigError::RetryAttempts(other)),
        };
        let error_handling = self.error_handling.validate()?;
        let event_source = match self.msk_cluster_arn {
            Some(cluster_arn) => EventSource::Msk { cluster_arn },
            None => EventSource::SelfManaged,
        };
        let function_arn = if self.function_name.starts_with("arn:") {
            self.function_name.clone()
        } else {
            format!(
                "arn:aws:lambda:{}:000000000000:function:{}",
                self.region, self.function_name
            )
        };
        Ok(MappingConfig {
            starting_position: self.starting_position.parse()?,
            topic: self.topic,
            consumer_group: self.consumer_group,
            bootstrap_servers: self.bootstrap_servers,
            batch_size: self.batch_size,
            batching_window: self.batching_window,
            max_payload_bytes: self.max_payload_bytes,
            retry: RetryPolicy {
                max_retry_attempts,
                initial_backoff: self.initial_backoff,
                max_backoff: self.max_backoff,
            },
            event_source,
            function_name: self.function_name,
            function_arn,
            on_failure_queue_url,
            exit_when_idle: self.exit_when_idle,
            error_handling,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn settings() -> MappingSettings {
        MappingSettings {
            topic: "t".into(),
            consumer_group: "g".into(),
            bootstrap_servers: "127.0.0.1:19092".into(),
            starting_position: "TRIM_HORIZON".into(),
            batch_size: 100,
            batching_window: Duration::from_millis(500),
            max_payload_bytes: MAX_INVOKE_PAYLOAD_BYTES,
            max_retry_attempts: -1,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            msk_cluster_arn: None,
            function_name: "consumer".into(),
            region: "us-east-1".into(),
            on_failure_queue_url: None,
            exit_when_idle: None,
            error_handling: ErrorHandlingSettings::on_demand(),
        }
    }

    #[test]
    fn error_handling_controls_need_provisioned_mode_and_the_documented_record_age() {
        let with = |error_handling: ErrorHandlingSettings| {
            let mut s = settings();
            s.error_handling = error_handling;
            s.validate().map(|c| c.error_handling)
        };
        let on_demand = ErrorHandlingSettings::on_demand();
        assert_eq!(with(on_demand), Ok(ErrorHandling::default()));
        for refused in [
            ErrorHandlingSettings {
                max_record_age_secs: 60,
                ..on_demand
            },
            ErrorHandlingSettings {
                bisect_batch_on_function_error: true,
                ..on_demand
            },
            ErrorHandlingSettings {
                report_batch_item_failures: true,
                ..on_demand
            },
        ] {
            assert!(
                matches!(with(refused), Err(ConfigError::NeedsProvisionedMode(_))),
                "{refused:?}"
            );
        }
        let provisioned = ErrorHandlingSettings {
            provisioned: true,
            ..on_demand
        };
        for (secs, age) in [(60, Some(60)), (604_800, Some(604_800)), (-1, None)] {
            let got = with(ErrorHandlingSettings {
                max_record_age_secs: secs,
                ..provisioned
            });
            assert_eq!(got.map(|e| e.max_record_age), Ok(age.map(Duration::from_secs)));
        }
        for secs in [0, 59, 604_801, -2] {
            let got = with(ErrorHandlingSettings {
                max_record_age_secs: secs,
                ..provisioned
            });
            assert_eq!(got, Err(ConfigError::RecordAge(secs)));
        }
    }

    #[test]
    fn defaults_validate() {
        let config = settings().validate().unwrap();
        assert_eq!(config.retry.max_retry_attempts, None);
        assert_eq!(config.event_source, EventSource::SelfManaged);
        assert_eq!(
            config.function_arn,
            "arn:aws:lambda:us-east-1:000000000000:function:consumer"
        );
    }

    #[test]
    fn aws_limits_are_enforced() {
        let mut s = settings();
        s.batch_size = 10_001;
        assert_eq!(s.validate(), Err(ConfigError::BatchSize(10_001)));
        let mut s = settings();
        s.batch_size = 0;
        assert_eq!(s.validate(), Err(ConfigError::BatchSize(0)));
        let mut s = settings();
        s.max_retry_attempts = -2;
        assert_eq!(s.validate(), Err(ConfigError::RetryAttempts(-2)));
        let mut s = settings();
        s.max_payload_bytes = MAX_INVOKE_PAYLOAD_BYTES + 1;
        assert!(matches!(s.validate(), Err(ConfigError::PayloadCap(_))));
        let mut s = settings();
        s.starting_position = "AT_TIMESTAMP".into();
        assert!(matches!(s.validate(), Err(ConfigError::StartingPosition(_))));
        let mut s = settings();
        s.batching_window = Duration::from_secs(301);
        assert!(matches!(s.validate(), Err(ConfigError::BatchingWindow(_))));
    }

    #[test]
    fn unlimited_retries_with_an_on_failure_destination_stop_after_ten() {
        let mut s = settings();
        s.on_failure_queue_url =
            Some("https://sqs.us-east-1.amazonaws.com/123456789012/pipeline-esm-on-failure".into());
        assert_eq!(s.clone().validate().unwrap().retry.max_retry_attempts, Some(10));
        // An explicit figure is kept, above the cap too.
        s.max_retry_attempts = 25;
        assert_eq!(s.clone().validate().unwrap().retry.max_retry_attempts, Some(25));
        // Without a destination nothing is skipped: retries go on until the batch succeeds.
        let mut s = settings();
        s.on_failure_queue_url = Some(String::new());
        assert_eq!(s.validate().unwrap().retry.max_retry_attempts, None);
    }

    #[test]
    fn msk_arn_selects_the_msk_event_source() {
        let mut s = settings();
        s.msk_cluster_arn = Some("arn:aws:kafka:us-east-1:1:cluster/c/1".into());
        s.max_retry_attempts = 3;
        let config = s.validate().unwrap();
        assert_eq!(config.event_source.name(), "aws:kafka");
        assert_eq!(config.retry.max_retry_attempts, Some(3));
    }
}
