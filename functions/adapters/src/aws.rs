//! Shared AWS plumbing: SDK configuration and error classification.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use pipeline_domain::ports::PortError;

pub use pipeline_msk_auth::sdk_config_loader;

/// Loads the SDK configuration from the environment. `AWS_ENDPOINT_URL` (honoured by the SDK
/// itself) points every client at moto locally; on Lambda it is unset.
pub async fn load_sdk_config() -> aws_config::SdkConfig {
    sdk_config_loader().load().await
}

/// Classifies an SDK error: throttling, timeouts, dispatch failures and 5xx are transient;
/// everything else is a rejection that retrying will not fix.
pub fn classify_sdk_error<E, R>(component: &'static str, error: &SdkError<E, R>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let message = match error {
        SdkError::ServiceError(service) => {
            let err = service.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("ServiceError"),
                err.message().unwrap_or_default()
            )
        }
        other => format!("{other}"),
    };
    let transient = match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            code.contains("Throttl")
                || code.contains("ProvisionedThroughputExceeded")
                || code == "RequestLimitExceeded"
                || code == "SlowDown"
                || code == "InternalServerError"
                || code == "InternalFailure"
                || code == "ServiceUnavailable"
                || code == "TransactionConflict"
        }
        _ => false,
    };
    if transient {
        PortError::Transient { component, message }
    } else {
        PortError::Rejected { component, message }
    }
}
