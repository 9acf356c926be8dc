//! Invokes the function through the Lambda Invoke API (`POST /2015-03-31/functions/{name}/invocations`)
//! at any endpoint: `cargo lambda watch`, another emulator, or AWS itself (requests are SigV4 signed).

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::Credentials;
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use crate::ports::{InvokeError, InvokeOutcome, Invoker};

pub struct LambdaInvoker {
    client: aws_sdk_lambda::Client,
    function_name: String,
}

impl LambdaInvoker {
    /// `endpoint`: the Invoke API base URL (e.g. `http://127.0.0.1:9000`); `None` uses AWS.
    /// Without credentials in the environment a local endpoint gets placeholder ones, since local
    /// servers do not check signatures.
    pub async fn new(
        endpoint: Option<&str>,
        region: &str,
        function_name: &str,
        invoke_timeout: Duration,
    ) -> Self {
        let mut loader = pipeline_msk_auth::sdk_config_loader()
            .region(aws_config::Region::new(region.to_string()))
            // The mapping owns the retry policy; SDK retries would hide attempts from it.
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_timeout(invoke_timeout)
                    .build(),
            );
        if let Some(endpoint) = endpoint {
            loader = loader.endpoint_url(endpoint);
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
                loader = loader.credentials_provider(Credentials::new(
                    "local",
                    "local",
                    None,
                    None,
                    "esm-emulator",
                ));
            }
        }
        let config = loader.load().await;
        Self {
            client: aws_sdk_lambda::Client::new(&config),
            function_name: function_name.to_string(),
        }
    }
}

impl Invoker for LambdaInvoker {
    async fn invoke(&self, payload: Vec<u8>) -> Result<InvokeOutcome, InvokeError> {
        let result = self
            .client
            .invoke()
            .function_name(&self.function_name)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload))
            .send()
            .await;
        match result {
            Ok(output) => match output.function_error() {
                None => Ok(InvokeOutcome::Success {
                    response: output.payload().map(|p| p.as_ref().to_vec()).unwrap_or_default(),
                }),
                Some(function_error) => Ok(InvokeOutcome::FunctionError {
                    status_code: u16::try_from(output.status_code()).unwrap_or(200),
                    function_error: function_error.to_string(),
                    message: output
                        .payload()
                        .map(|p| String::from_utf8_lossy(p.as_ref()).chars().take(2_000).collect())
                        .unwrap_or_default(),
                }),
            },
            Err(SdkError::ServiceError(service)) => {
                let status = service.raw().status().as_u16();
                let code = service.err().code().unwrap_or("ServiceError").to_string();
                // `cargo lambda watch` reports a failed handler as a 500 whose body is the
                // Lambda error document ({"errorType","errorMessage"}), which the SDK does not parse.
                let message = match service.err().message() {
                    Some(message) if !message.is_empty() => message.to_string(),
                    _ => service
                        .raw()
                        .body()
                        .bytes()
                        .map(|b| String::from_utf8_lossy(b).chars().take(2_000).collect())
                        .unwrap_or_default(),
                };
                match status {
                    404 => Err(InvokeError::Fatal(format!(
                        "function {} not found at the invoke endpoint (404 {code}): {message}",
                        self.function_name
                    ))),
                    429 => Err(InvokeError::Unavailable(format!(
                        "throttled (429 {code}): {message}"
                    ))),
                    _ => {
                        // A body that is a Lambda error document means the handler failed
                        // (how `cargo lambda watch` reports it), which AWS calls Unhandled.
                        let handler_failed = serde_json::from_str::<serde_json::Value>(&message)
                            .is_ok_and(|v| v.get("errorType").is_some());
                        Ok(InvokeOutcome::FunctionError {
                            status_code: status,
                            function_error: if handler_failed { "Unhandled".into() } else { code },
                            message,
                        })
                    }
                }
            }
            Err(other) => Err(InvokeError::Unavailable(format!("{other:?}"))),
        }
    }
}
