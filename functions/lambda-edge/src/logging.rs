//! Tracing set up from Lambda's advanced logging controls, the one source of every function's log
//! level and format.
//!
//! The CDK configures each function's `LoggingConfig` (`applicationLogLevelV2`, `loggingFormat`);
//! for a custom runtime such as `provided.al2023`, Lambda hands both to the process as
//! `AWS_LAMBDA_LOG_LEVEL` and `AWS_LAMBDA_LOG_FORMAT` ("Application log-level filtering with custom
//! runtimes", <https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-advanced.html>).
//! Reading them, rather than a variable of our own, keeps the console, the API and the CDK in
//! charge, and lets Lambda's own level filter of JSON logs and ours agree. The local scripts set
//! the same two variables.

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

use crate::config::ConfigError;

/// Set by Lambda from the function's application log level.
pub const LOG_LEVEL_VAR: &str = "AWS_LAMBDA_LOG_LEVEL";
/// Set by Lambda from the function's log format.
pub const LOG_FORMAT_VAR: &str = "AWS_LAMBDA_LOG_FORMAT";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line with a `level` field, which Lambda filters by level.
    Json,
    /// Plain text lines.
    Text,
}

/// The level and format a function logs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    pub level: LevelFilter,
    pub format: LogFormat,
}

impl Default for LogSettings {
    /// What Lambda uses when a function configures neither: level INFO, format Text.
    fn default() -> Self {
        Self {
            level: LevelFilter::INFO,
            format: LogFormat::Text,
        }
    }
}

impl LogSettings {
    /// Reads both variables; unset or empty ones take Lambda's defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let defaults = Self::default();
        let level = match get(LOG_LEVEL_VAR) {
            None => defaults.level,
            Some(value) => parse_level(&value).ok_or_else(|| ConfigError::Invalid {
                name: LOG_LEVEL_VAR.into(),
                value: value.clone(),
                problem: "not one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL".into(),
            })?,
        };
        let format = match get(LOG_FORMAT_VAR) {
            None => defaults.format,
            Some(value) => match value.trim().to_ascii_lowercase().as_str() {
                "json" => LogFormat::Json,
                "text" => LogFormat::Text,
                _ => {
                    return Err(ConfigError::Invalid {
                        name: LOG_FORMAT_VAR.into(),
                        value,
                        problem: "not JSON or Text".into(),
                    })
                }
            },
        };
        Ok(Self { level, format })
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// Lambda's application log levels; tracing has no FATAL, so it filters as ERROR.
fn parse_level(value: &str) -> Option<LevelFilter> {
    Some(match value.trim().to_ascii_uppercase().as_str() {
        "TRACE" => LevelFilter::TRACE,
        "DEBUG" => LevelFilter::DEBUG,
        "INFO" => LevelFilter::INFO,
        "WARN" => LevelFilter::WARN,
        "ERROR" | "FATAL" => LevelFilter::ERROR,
        _ => return None,
    })
}

/// A subscriber that writes to `writer` with `settings`.
fn subscriber<W>(settings: LogSettings, writer: W) -> Box<dyn tracing::Subscriber + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_max_level(settings.level)
        .with_writer(writer)
        // CloudWatch shows escape codes literally.
        .with_ansi(false)
        .with_target(false);
    match settings.format {
        LogFormat::Json => Box::new(builder.json().with_current_span(false).finish()),
        LogFormat::Text => Box::new(builder.finish()),
    }
}

/// Installs the process-wide subscriber from `AWS_LAMBDA_LOG_LEVEL` and `AWS_LAMBDA_LOG_FORMAT`
/// on stdout. Invalid values still get a subscriber (Lambda's defaults), so the returned error can
/// be logged before the cold start fails on it. A second call (tests) keeps the first subscriber.
pub fn init_tracing() -> Result<LogSettings, ConfigError> {
    let settings = LogSettings::from_env();
    let _ = tracing::subscriber::set_global_default(subscriber(
        settings.clone().unwrap_or_default(),
        std::io::stdout,
    ));
    settings
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Collects what a subscriber writes, for tests of the formats.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Captured {
        type Writer = Captured;
        fn make_writer(&'w self) -> Self::Writer {
            self.clone()
        }
    }

    /// The lines one info and one debug event produce under `settings` (used by the tests).
    fn lines_logged_with(settings: LogSettings) -> Vec<String> {
        let captured = Captured::default();
        tracing::subscriber::with_default(subscriber(settings, captured.clone()), || {
            tracing::info!(records = 3, "batch handled");
            tracing::debug!("details");
        });
        let bytes = captured.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn settings(pairs: &[(&str, &str)]) -> Result<LogSettings, ConfigError> {
        LogSettings::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_string())
        })
    }

    #[test]
    fn unset_variables_take_lambdas_defaults() {
        assert_eq!(settings(&[]).unwrap(), LogSettings::default());
        assert_eq!(
            settings(&[(LOG_LEVEL_VAR, " "), (LOG_FORMAT_VAR, "")]).unwrap(),
            LogSettings {
                level: LevelFilter::INFO,
                format: LogFormat::Text
            }
        );
    }

    #[test]
    fn every_lambda_level_and_format_is_understood() {
        for (value, level) in [
            ("TRACE", LevelFilter::TRACE),
            ("DEBUG", LevelFilter::DEBUG),
            ("INFO", LevelFilter::INFO),
            ("WARN", LevelFilter::WARN),
            ("ERROR", LevelFilter::ERROR),
            ("FATAL", LevelFilter::ERROR),
            ("warn", LevelFilter::WARN),
        ] {
            assert_eq!(
                settings(&[(LOG_LEVEL_VAR, value)]).unwrap().level,
                level,
                "{value}"
            );
        }
        assert_eq!(
            settings(&[(LOG_FORMAT_VAR, "JSON")]).unwrap().format,
            LogFormat::Json
        );
        assert_eq!(
            settings(&[(LOG_FORMAT_VAR, "Text")]).unwrap().format,
            LogFormat::Text
        );
    }

    #[test]
    fn unknown_values_are_refused_by_name() {
        let error = settings(&[(LOG_LEVEL_VAR, "info,rdkafka=warn")]).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Invalid { name, .. } if name == LOG_LEVEL_VAR),
            "{error}"
        );
        let error = settings(&[(LOG_FORMAT_VAR, "xml")]).unwrap_err();
        assert!(
            matches!(&error, ConfigError::Invalid { name, .. } if name == LOG_FORMAT_VAR),
            "{error}"
        );
    }

    #[test]
    fn json_lines_carry_the_level_lambda_filters_on() {
        let lines =
            lines_logged_with(settings(&[(LOG_LEVEL_VAR, "INFO"), (LOG_FORMAT_VAR, "JSON")]).unwrap());
        assert_eq!(lines.len(), 1, "debug is filtered out: {lines:?}");
        let line: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "batch handled");
        assert_eq!(line["fields"]["records"], 3);
    }

    #[test]
    fn text_lines_are_plain_and_the_level_lets_debug_through() {
        let lines =
            lines_logged_with(settings(&[(LOG_LEVEL_VAR, "DEBUG"), (LOG_FORMAT_VAR, "Text")]).unwrap());
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].contains("INFO") && lines[0].contains("batch handled records=3"),
            "{}",
            lines[0]
        );
        assert!(serde_json::from_str::<serde_json::Value>(&lines[0]).is_err());
        assert!(!lines[0].contains('\u{1b}'), "no ANSI escapes");
        assert!(
            lines[1].contains("DEBUG") && lines[1].contains("details"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn error_level_drops_info() {
        assert!(lines_logged_with(settings(&[(LOG_LEVEL_VAR, "ERROR")]).unwrap()).is_empty());
    }
}
