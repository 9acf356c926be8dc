//! Kafka admin operations over rskafka: TLS with the Mozilla root store (webpki-roots, so the
//! function does not depend on the OS trust store) and MSK IAM auth via SASL/OAUTHBEARER tokens
//! from aws-msk-iam-sasl-signer. Plaintext without auth for the local broker.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::Region;
use futures::FutureExt;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::{Client, ClientBuilder, OauthBearerCredentials, OauthCallback, SaslConfig};
use rskafka::BackoffConfig;

use crate::event::{Auth, ConnectionSettings};
use crate::ports::{AdminError, Connector, TopicAdmin};

/// Connects with rskafka. `region` signs MSK IAM tokens.
#[derive(Debug, Clone)]
pub struct RsKafkaConnector {
    pub region: Option<String>,
    /// Give up connecting or retrying a request after this long.
    pub deadline: Duration,
    /// Broker-side timeout for CreateTopics/DeleteTopics.
    pub request_timeout: Duration,
}

impl RsKafkaConnector {
    pub fn new(region: Option<String>) -> Self {
        Self {
            region,
            deadline: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
        }
    }
}

pub struct RsKafkaAdmin {
    client: Client,
    request_timeout_ms: i32,
}

fn tls_config() -> Result<rustls::ClientConfig, AdminError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    // Name the provider explicitly: several crypto providers are compiled into the workspace,
    // and rustls refuses to guess between them.
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        .map_err(|e| AdminError::Connect(format!("TLS setup: {e}")))
}

fn iam_token_callback(region: String) -> OauthCallback {
    Arc::new(move || {
        let region = Region::new(region.clone());
        async move {
            let (token, _expires_at_ms) = aws_msk_iam_sasl_signer::generate_auth_token(region)
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(token)
        }
        .boxed()
    })
}

impl Connector for RsKafkaConnector {
    type Admin = RsKafkaAdmin;

    async fn connect(&self, settings: &ConnectionSettings) -> Result<RsKafkaAdmin, AdminError> {
        let backoff = BackoffConfig {
            deadline: Some(self.deadline),
            ..BackoffConfig::default()
        };
        let mut builder = ClientBuilder::new(settings.bootstrap_servers.clone())
            .client_id("pipeline-topic-admin")
            .backoff_config(backoff);
        if settings.tls {
            builder = builder.tls_config(Arc::new(tls_config()?));
        }
        if settings.auth == Auth::Iam {
            let region = self.region.clone().ok_or_else(|| {
                AdminError::Connect("AWS_REGION is not set; it is needed to sign MSK IAM tokens".into())
            })?;
            builder = builder.sasl_config(SaslConfig::Oauthbearer(OauthBearerCredentials {
                callback: iam_token_callback(region),
                authz_id: None,
                bearer_kvs: vec![],
            }));
        }
        let client = builder
            .build()
            .await
            .map_err(|e| AdminError::Connect(e.to_string()))?;
        let request_timeout_ms = i32::try_from(self.request_timeout.as_millis()).unwrap_or(i32::MAX);
        Ok(RsKafkaAdmin {
            client,
            request_timeout_ms,
        })
    }
}

fn protocol_error(e: &KafkaError) -> Option<ProtocolError> {
    match e {
        KafkaError::ServerError { protocol_error, .. } => Some(*protocol_error),
        _ => None,
    }
}

impl TopicAdmin for RsKafkaAdmin {
    async fn list_topics(&self) -> Result<BTreeMap<String, usize>, AdminError> {
        let topics = self
            .client
            .list_topics()
            .await
            .map_err(|e| AdminError::Request(e.to_string()))?;
        Ok(topics.into_iter().map(|t| (t.name, t.partitions.len())).collect())
    }

    async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
    ) -> Result<(), AdminError> {
        let controller = self
            .client
            .controller_client()
            .map_err(|e| AdminError::Request(e.to_string()))?;
        match controller
            .create_topic(name, partitions, replication_factor, self.request_timeout_ms)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if protocol_error(&e) == Some(ProtocolError::TopicAlreadyExists) => {
                Err(AdminError::AlreadyExists(name.into()))
            }
            Err(e) => Err(AdminError::Request(format!("CreateTopics {name}: {e}"))),
        }
    }

    async fn delete_topic(&self, name: &str) -> Result<(), AdminError> {
        let controller = self
            .client
            .controller_client()
            .map_err(|e| AdminError::Request(e.to_string()))?;
        match controller.delete_topic(name, self.request_timeout_ms).await {
            Ok(()) => Ok(()),
            Err(e) if protocol_error(&e) == Some(ProtocolError::UnknownTopicOrPartition) => {
                Err(AdminError::UnknownTopic(name.into()))
            }
            Err(e) => Err(AdminError::Request(format!("DeleteTopics {name}: {e}"))),
        }
    }
}
