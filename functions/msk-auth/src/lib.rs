//! How the pipeline's clients reach AWS, in one place for the Lambdas' adapters, topic-admin and
//! the local ESM emulator.
//!
//! - One TLS crypto provider, ring, everywhere: rskafka links it for Kafka, and using it for the
//!   AWS SDK too (instead of the SDK's default, aws-lc) keeps a second C crypto build out of the
//!   workspace. [`sdk_config_loader`] is therefore how every SDK configuration is loaded.
//! - Kafka TLS: MSK broker certificates chain to the Amazon Trust Services roots, which the
//!   Mozilla root store (webpki-roots) carries, so the functions do not depend on the OS trust store.
//! - MSK IAM: SASL/OAUTHBEARER with a SigV4-presigned `kafka-cluster:Connect` URL as the token
//!   (see [`sign_token_at`]); a token is valid for 15 minutes ("IAM access control",
//!   <https://docs.aws.amazon.com/msk/latest/developerguide/iam-access-control.html>), so
//!   [`IamTokens`] reuses one until shortly before it expires.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SignatureLocation, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use base64::prelude::{Engine, BASE64_URL_SAFE_NO_PAD};
use futures::future::BoxFuture;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum MskAuthError {
    #[error("TLS setup: {0}")]
    Tls(#[from] rustls::Error),
    #[error("cannot sign an MSK IAM token: {0}")]
    Sign(String),
}

/// A rustls client configuration trusting the Mozilla root store.
pub fn tls_config() -> Result<rustls::ClientConfig, MskAuthError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The SDK's HTTPS client with ring as its crypto provider, otherwise built as the SDK builds its
/// default one (aws-smithy-runtime's `default_https_client`): hyper and rustls trusting the OS
/// roots, each client's timeouts and sleep, and the proxy from `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`
/// as the default client reads them from behaviour version 2025-08-07 on.
pub fn sdk_https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        let mut connector = aws_smithy_http_client::ConnectorBuilder::default()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring));
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(aws_smithy_http_client::proxy::ProxyConfig::from_env()));
        connector.build()
    })
}

/// The SDK configuration loader every binary and test starts from: the environment's region,
/// credentials and endpoint (`AWS_ENDPOINT_URL` points the clients at moto locally), the latest
/// behaviour version, and [`sdk_https_client`] (the workspace builds the SDK without a default
/// client, so a configuration loaded any other way has none and every request fails).
pub fn sdk_config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(sdk_https_client())
}

/// A token and its expiry in milliseconds since the Unix epoch.
pub type SignedToken = (String, i64);

/// How long a token is valid: the presigned URL's `X-Amz-Expires`, 900 seconds in each of AWS's
/// signer libraries (aws-msk-iam-sasl-signer for Go, JS, Python and Rust).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// The IAM action the token presigns ("IAM access control": a client needs
/// `kafka-cluster:Connect` before any other Kafka action).
const CONNECT_ACTION: &str = "kafka-cluster:Connect";
/// SigV4 service name of MSK's data plane.
const SIGNING_NAME: &str = "kafka-cluster";
/// Identifies the signer in MSK's logs, as the AWS signers add theirs.
const USER_AGENT: &str = concat!("pipeline-msk-auth/", env!("CARGO_PKG_VERSION"));

/// Signs one MSK IAM token for `region` with `credentials` at `time`: the URL
/// `https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect`, presigned with SigV4 in
/// its query (GET, empty payload, only `host` signed, [`TOKEN_LIFETIME`]), then a `User-Agent`
/// parameter, all base64url-encoded without padding. The host is `amazonaws.com` in every
/// partition: all four AWS signers use this template for every region, China's included (not yet
/// verified against an aws-cn cluster). The expiry is the earlier of the token's and the
/// credentials' (temporary credentials can end first, and a token signed with them ends with them).
pub fn sign_token_at(
    region: &str,
    credentials: Credentials,
    time: SystemTime,
) -> Result<SignedToken, MskAuthError> {
    let sign_error = |e: &dyn std::fmt::Display| MskAuthError::Sign(e.to_string());
    if region.is_empty() || !region.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(MskAuthError::Sign(format!("{region:?} is not an AWS region")));
    }
    let mut url = format!(
        "https://kafka.{region}.amazonaws.com/?Action={}",
        percent_encode(CONNECT_ACTION)
    );
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let credentials_expire_at = credentials.expiry();
    let identity = credentials.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SIGNING_NAME)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| sign_error(&e))?;
    let request = SignableRequest::new("GET", &url, std::iter::empty(), SignableBody::Bytes(&[]))
        .map_err(|e| sign_error(&e))?;
    let (instructions, _signature) = sign(request, &params.into())
        .map_err(|e| sign_error(&e))?
        .into_parts();
    for (name, value) in instructions.params() {
        url.push_str(&format!("&{name}={}", percent_encode(value)));
    }
    url.push_str(&format!("&User-Agent={}", percent_encode(USER_AGENT)));
    // The expiry counts from X-Amz-Date, which has whole seconds.
    let signed_at_secs = time
        .duration_since(UNIX_EPOCH)
        .map_err(|e| sign_error(&e))?
        .as_secs();
    let mut expires_at_ms = signed_at_secs
        .saturating_add(TOKEN_LIFETIME.as_secs())
        .saturating_mul(1000);
    if let Some(end) = credentials_expire_at {
        let end_ms = end
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        expires_at_ms = expires_at_ms.min(end_ms);
    }
    let expires_at_ms = i64::try_from(expires_at_ms).unwrap_or(i64::MAX);
    Ok((BASE64_URL_SAFE_NO_PAD.encode(url), expires_at_ms))
}

/// RFC 3986 percent-encoding of everything but the unreserved characters, as SigV4's canonical
/// query string has it.
fn percent_encode(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

/// Signs one MSK IAM token for `region` now, with credentials from `provider`.
pub async fn sign_token(
    region: &str,
    provider: &SharedCredentialsProvider,
) -> Result<SignedToken, MskAuthError> {
    let credentials = provider
        .provide_credentials()
        .await
        .map_err(|e| MskAuthError::Sign(format!("no credentials: {}", with_causes(&e))))?;
    sign_token_at(region, credentials, SystemTime::now())
}

/// An error with its sources, which the SDK's errors keep the detail in.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The environment's credentials provider (the Lambda's role on AWS), loaded once per signer.
async fn environment_credentials(region: &str) -> Result<SharedCredentialsProvider, MskAuthError> {
    sdk_config_loader()
        .region(aws_config::Region::new(region.to_owned()))
        .load()
        .await
        .credentials_provider()
        .ok_or_else(|| MskAuthError::Sign("the environment has no AWS credentials provider".into()))
}

/// Signs one MSK IAM token for `region` now with the environment's credentials (topic-admin signs
/// once per custom-resource event).
pub async fn sign_token_with_environment(region: &str) -> Result<SignedToken, MskAuthError> {
    sign_token(region, &environment_credentials(region).await?).await
}

/// Refresh a token this long before it expires.
pub const TOKEN_REFRESH_MARGIN_MS: i64 = 60_000;

type Signer = dyn Fn() -> BoxFuture<'static, Result<SignedToken, MskAuthError>> + Send + Sync;

/// MSK IAM tokens, signed on demand and reused until [`TOKEN_REFRESH_MARGIN_MS`] before expiry
/// (Kafka clients ask for one on every new connection).
#[derive(Clone)]
pub struct IamTokens {
    sign: Arc<Signer>,
    cached: Arc<Mutex<Option<SignedToken>>>,
}

impl std::fmt::Debug for IamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IamTokens")
    }
}

impl IamTokens {
    /// Tokens signed for `region`.
    /// The environment's credentials chain is resolved on first use and kept; it is asked for
    /// credentials once per token, which the cache below reuses for about 14 minutes.
    pub fn for_region(region: impl Into<String>) -> Self {
        let region: Arc<str> = region.into().into();
        let provider: Arc<tokio::sync::OnceCell<SharedCredentialsProvider>> = Arc::default();
        Self::with_signer(move || {
            let region = Arc::clone(&region);
            let provider = Arc::clone(&provider);
            Box::pin(async move {
                let provider = provider
                    .get_or_try_init(|| environment_credentials(&region))
                    .await?;
                sign_token(&region, provider).await
            })
        })
    }

    /// Tokens from any signer (tests count the signatures).
    pub fn with_signer(
        sign: impl Fn() -> BoxFuture<'static, Result<SignedToken, MskAuthError>> + Send + Sync + 'static,
    ) -> Self {
        Self {
            sign: Arc::new(sign),
            cached: Arc::default(),
        }
    }

    /// A token valid for at least the refresh margin from `now_ms`.
    pub async fn token_at(&self, now_ms: i64) -> Result<String, MskAuthError> {
        let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some((token, expires_at_ms)) = cached {
            if expires_at_ms - TOKEN_REFRESH_MARGIN_MS > now_ms {
                return Ok(token);
            }
        }
        let (token, expires_at_ms) = (self.sign)().await?;
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((token.clone(), expires_at_ms));
        Ok(token)
    }

    /// A token valid for at least the refresh margin from now.
    pub async fn token(&self) -> Result<String, MskAuthError> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        self.token_at(now_ms).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn the_root_store_trusts_the_amazon_roots_msk_certificates_chain_to() {
        let config = tls_config().unwrap();
        assert!(config.alpn_protocols.is_empty());
        let amazon = webpki_roots::TLS_SERVER_ROOTS
            .iter()
            .filter(|anchor| {
                anchor
                    .subject
                    .as_ref()
                    .windows(b"Amazon Root CA 1".len())
                    .any(|w| w == b"Amazon Root CA 1")
            })
            .count();
        assert_eq!(amazon, 1, "Amazon Root CA 1 is in the store");
    }

    /// A token lasts 15 minutes from the signing time 0.
    fn counting() -> (IamTokens, Arc<AtomicU32>) {
        let signed = Arc::new(AtomicU32::new(0));
        let count = Arc::clone(&signed);
        let tokens = IamTokens::with_signer(move || {
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move { Ok((format!("token-{n}"), 900_000)) })
        });
        (tokens, signed)
    }

    #[tokio::test]
    async fn a_token_is_reused_until_the_margin_before_expiry() {
        let (tokens, signed) = counting();
        assert_eq!(tokens.token_at(0).await.unwrap(), "token-1");
        let last_reuse = 900_000 - TOKEN_REFRESH_MARGIN_MS - 1;
        assert_eq!(tokens.token_at(last_reuse).await.unwrap(), "token-1");
        assert_eq!(signed.load(Ordering::SeqCst), 1);
        assert_eq!(tokens.token_at(last_reuse + 1).await.unwrap(), "token-2");
        assert_eq!(signed.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_signature_is_an_error_and_is_not_cached() {
        let attempts = Arc::new(AtomicU32::new(0));
        let count = Arc::clone(&attempts);
        let tokens = IamTokens::with_signer(move || {
            let first = count.fetch_add(1, Ordering::SeqCst) == 0;
            Box::pin(async move {
                if first {
                    Err(MskAuthError::Sign("no credentials".into()))
                } else {
                    Ok(("token".to_string(), 900_000))
                }
            })
        });
        assert!(matches!(tokens.token_at(0).await, Err(MskAuthError::Sign(_))));
        assert_eq!(tokens.token_at(0).await.unwrap(), "token");
    }

    fn decoded(token: &str) -> String {
        String::from_utf8(BASE64_URL_SAFE_NO_PAD.decode(token).unwrap()).unwrap()
    }

    /// 2026-12-02T17:16:36.250Z
    fn signing_time() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_796_231_796_250)
    }

    fn example_credentials(session_token: Option<&str>) -> Credentials {
        // The example key pair of AWS's SigV4 documentation.
        Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            session_token.map(str::to_owned),
            None,
            "test",
        )
    }

    /// The signatures aws-msk-iam-sasl-signer 1.0.1 (AWS's Rust signer, which this one replaced)
    /// gave for the same credentials at the same second, recorded side by side on 2026-12-02;
    /// every parameter but `User-Agent` was identical.
    #[test]
    fn tokens_match_the_aws_signer_for_the_same_credentials_and_second() {
        let cases = [
            (
                "us-east-1",
                Some("IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+abc/def="),
                "4cc68dcf4eacdef179ca0cc95180d510407a26e272231160470feee153c98519",
            ),
            (
                "cn-north-1",
                None,
                "26490411cd34bec19ccc56a7cfebdae43574b5fd2807cce280a228eadfea4c0a",
            ),
            (
                "eu-west-3",
                Some("FwoGZXIvYXdzEBYaDH+/="),
                "34b5a8240f2771ac1dc8b53ff0e168398ab4e506a188e5ce0025b5ef9460bf2c",
            ),
        ];
        for (region, session_token, signature) in cases {
            let (token, expires_at_ms) =
                sign_token_at(region, example_credentials(session_token), signing_time()).unwrap();
            let url = decoded(&token);
            let mut expected = format!(
                "https://kafka.{region}.amazonaws.com/?Action=kafka-cluster%3AConnect\
                 &X-Amz-Algorithm=AWS4-HMAC-SHA256\
                 &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20261202%2F{region}%2Fkafka-cluster%2Faws4_request\
                 &X-Amz-Date=20261202T171636Z&X-Amz-Expires=900&X-Amz-SignedHeaders=host\
                 &X-Amz-Signature={signature}"
            );
            if let Some(session_token) = session_token {
                expected.push_str(&format!(
                    "&X-Amz-Security-Token={}",
                    percent_encode(session_token)
                ));
            }
            expected.push_str(&format!("&User-Agent={}", percent_encode(USER_AGENT)));
            assert_eq!(url, expected);
            assert!(
                !token.contains(['+', '/', '=']),
                "base64url without padding: {token}"
            );
            // X-Amz-Date has whole seconds; the token expires 900 s after it.
            assert_eq!(expires_at_ms, 1_796_231_796_000 + 900_000);
        }
    }

    #[test]
    fn a_token_ends_when_its_credentials_do_if_they_end_first() {
        // signing_time() in whole seconds, as X-Amz-Date has it.
        let signed_at = UNIX_EPOCH + Duration::from_secs(1_796_231_796);
        let with_expiry = |after_signing: Duration| {
            Credentials::new(
                "AKIAIOSFODNN7EXAMPLE",
                "secret",
                Some("session".into()),
                Some(signed_at + after_signing),
                "test",
            )
        };
        let expiry = |credentials| sign_token_at("us-east-1", credentials, signing_time()).unwrap().1;
        // Credentials ending before, at and after the token's own 900 s.
        for (credentials_end_after_secs, token_ends_after_ms) in
            [(300, 300_000), (899, 899_000), (900, 900_000), (3_600, 900_000)]
        {
            assert_eq!(
                expiry(with_expiry(Duration::from_secs(credentials_end_after_secs))),
                1_796_231_796_000 + token_ends_after_ms,
                "credentials ending {credentials_end_after_secs} s after signing"
            );
        }
    }

    #[test]
    fn a_token_for_something_that_is_not_a_region_is_refused() {
        for region in ["", "us-east-1.evil.example/", "us east 1"] {
            let error = sign_token_at(region, example_credentials(None), signing_time()).unwrap_err();
            assert!(matches!(error, MskAuthError::Sign(_)), "{region:?}");
        }
    }

    #[tokio::test]
    async fn a_credentials_failure_is_a_sign_error() {
        use aws_credential_types::provider::{error::CredentialsError, future};
        #[derive(Debug)]
        struct NoRole;
        impl ProvideCredentials for NoRole {
            fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
            where
                Self: 'a,
            {
                future::ProvideCredentials::ready(Err(CredentialsError::not_loaded("no role")))
            }
        }
        let provider = SharedCredentialsProvider::new(NoRole);
        let error = sign_token("us-east-1", &provider).await.unwrap_err();
        let error = error.to_string();
        assert!(error.contains("no credentials"), "{error}");
        assert!(
            error.contains("no role"),
            "the provider's own reason is kept: {error}"
        );
    }
}
