//! How the pipeline's Kafka clients reach MSK, in one place for the producer's Kafka adapter
//! (`pipeline_adapters::kafka`) and topic-admin.
//!
//! - TLS: MSK broker certificates chain to the Amazon Trust Services roots, which the Mozilla
//!   root store (webpki-roots) carries, so the functions do not depend on the OS trust store.
//! - MSK IAM: SASL/OAUTHBEARER with a SigV4-signed token from `aws-msk-iam-sasl-signer`; a token
//!   is valid for 15 minutes ("aws-msk-iam-sasl-signer-rs", generate_auth_token, and "IAM access
//!   control", <https://docs.aws.amazon.com/msk/latest/developerguide/iam-access-control.html>),
//!   so [`IamTokens`] reuses one until shortly before it expires.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

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
    // Several crypto providers are linked into the workspace, and rustls refuses to guess
    // between them: name one.
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// A token and its expiry in milliseconds since the Unix epoch.
pub type SignedToken = (String, i64);

/// Signs one MSK IAM token for `region` with the function's credentials.
pub async fn sign_token(region: &str) -> Result<SignedToken, MskAuthError> {
    aws_msk_iam_sasl_signer::generate_auth_token(aws_config::Region::new(region.to_owned()))
        .await
        .map_err(|e| MskAuthError::Sign(e.to_string()))
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
    pub fn for_region(region: impl Into<String>) -> Self {
        let region: Arc<str> = region.into().into();
        Self::with_signer(move || {
            let region = Arc::clone(&region);
            Box::pin(async move { sign_token(&region).await })
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
}
