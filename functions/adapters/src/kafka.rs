//! Kafka publisher over rskafka (pure Rust, so the Lambda needs no librdkafka).
//!
//! - Partitioning matches the Java client's default for keyed records: `murmur2(key) & 0x7fffffff
//!   % partitions`, so a key lands on the same partition whichever client wrote it. Unkeyed
//!   records go round-robin.
//! - Records are batched per partition (one Produce request per batch, acks=all); partitions are
//!   written concurrently, batches of one partition in order.
//! - Auth: plaintext locally; on AWS TLS plus SASL/SCRAM-SHA-512 (credentials from a Secrets
//!   Manager secret, `{"username", "password"}` as MSK expects) or MSK IAM (SASL/OAUTHBEARER);
//!   the TLS roots and the IAM token signer are `pipeline_msk_auth`'s.
//!
//! rskafka has no idempotent producer (no producer id or sequence numbers): if a Produce response
//! is lost, its internal retry can write a batch twice. Delivery is therefore at least once; the
//! producer service stamps every record with a deterministic `event-id` header so duplicates stay
//! recognisable, and the consumer's sinks are idempotent per record coordinates.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{join_all, BoxFuture};
use futures::FutureExt;
use pipeline_domain::ports::PortError;
use pipeline_domain::produce::{Delivery, EventPublisher, OutgoingRecord, PublishError};
use pipeline_msk_auth::IamTokens;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{Compression, PartitionClient, UnknownTopicHandling};
use rskafka::client::{
    Client, ClientBuilder, Credentials, OauthBearerCredentials, OauthCallback, SaslConfig,
};
use rskafka::record::Record;
use rskafka::BackoffConfig;
use tokio::sync::Mutex;

const COMPONENT: &str = "kafka";

/// Upper bound of one Produce batch (uncompressed payload), well below the 1 MB broker default.
pub const MAX_BATCH_BYTES: usize = 512 * 1024;
pub const MAX_BATCH_RECORDS: usize = 1_000;

/// How the client authenticates.
#[derive(Clone, PartialEq, Eq)]
pub enum KafkaAuth {
    /// Plaintext or TLS without SASL (the local broker).
    None,
    /// SASL/SCRAM-SHA-512.
    Scram { username: String, password: String },
    /// MSK IAM: SASL/OAUTHBEARER, tokens signed for `region`.
    Iam { region: String },
}

impl std::fmt::Debug for KafkaAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KafkaAuth::None => f.write_str("None"),
            KafkaAuth::Scram { username, .. } => {
                write!(f, "Scram {{ username: {username:?}, password: <redacted> }}")
            }
            KafkaAuth::Iam { region } => write!(f, "Iam {{ region: {region:?} }}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub bootstrap_servers: Vec<String>,
    pub tls: bool,
    pub auth: KafkaAuth,
    pub client_id: String,
    /// Give up connecting or retrying one request after this long.
    pub deadline: Duration,
}

impl KafkaSettings {
    /// Plaintext, no auth: the local broker.
    pub fn plaintext(bootstrap_servers: Vec<String>) -> Self {
        Self {
            bootstrap_servers,
            tls: false,
            auth: KafkaAuth::None,
            client_id: "pipeline-producer".into(),
            deadline: Duration::from_secs(30),
        }
    }
}

/// Publishes records with rskafka.
pub struct KafkaPublisher {
    client: Client,
    partition_counts: Mutex<HashMap<String, i32>>,
    partition_clients: Mutex<HashMap<(String, i32), Arc<PartitionClient>>>,
    round_robin: AtomicU32,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher").finish_non_exhaustive()
    }
}

impl KafkaPublisher {
    pub async fn connect(settings: &KafkaSettings) -> Result<Self, PortError> {
        let client = build_client(settings).await?;
        Ok(Self {
            client,
            partition_counts: Mutex::default(),
            partition_clients: Mutex::default(),
            round_robin: AtomicU32::new(0),
        })
    }

    /// The underlying client (tests read back with it).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Number of partitions of `topic`, from cluster metadata (cached).
    pub async fn partition_count(&self, topic: &str) -> Result<i32, PortError> {
        if let Some(count) = self.partition_counts.lock().await.get(topic) {
            return Ok(*count);
        }
        let topics = self.client.list_topics().await.map_err(|e| classify(&e))?;
        let count = topics
            .iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions.len() as i32)
            .filter(|n| *n > 0)
            .ok_or_else(|| PortError::NotFound {
                component: COMPONENT,
                what: format!("topic {topic:?}"),
            })?;
        self.partition_counts
            .lock()
            .await
            .insert(topic.to_string(), count);
        Ok(count)
    }

    /// A cached client for one partition.
    pub async fn partition_client(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionClient>, PortError> {
        let key = (topic.to_string(), partition);
        if let Some(client) = self.partition_clients.lock().await.get(&key) {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(
            self.client
                .partition_client(topic, partition, UnknownTopicHandling::Error)
                .await
                .map_err(|e| classify(&e))?,
        );
        self.partition_clients
            .lock()
            .await
            .insert(key, Arc::clone(&client));
        Ok(client)
    }

    async fn produce_partition(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<(usize, Record)>,
    ) -> (Vec<(usize, Delivery)>, Option<PortError>) {
        let client = match self.partition_client(topic, partition).await {
            Ok(client) => client,
            Err(e) => return (Vec::new(), Some(e)),
        };
        let mut delivered = Vec::with_capacity(records.len());
        for batch in batches(records) {
            let (indexes, batch_records): (Vec<usize>, Vec<Record>) = batch.into_iter().unzip();
            match client.produce(batch_records, Compression::NoCompression).await {
                Ok(offsets) if offsets.len() == indexes.len() => {
                    delivered.extend(
                        indexes
                            .into_iter()
                            .zip(offsets)
                            .map(|(index, offset)| (index, Delivery { partition, offset })),
                    );
                }
                Ok(offsets) => {
                    let error = PortError::Rejected {
                        component: COMPONENT,
                        message: format!(
                            "{topic}-{partition}: broker acknowledged {} offsets for {} records",
                            offsets.len(),
                            indexes.len()
                        ),
                    };
                    return (delivered, Some(error));
                }
                // Later batches of this partition are not sent, so its order never has gaps.
                Err(e) => return (delivered, Some(classify(&e))),
            }
        }
        (delivered, None)
    }
}

impl EventPublisher for KafkaPublisher {
    async fn publish(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<Delivery>, PublishError> {
        let total = records.len();
        let fail = |source: PortError, delivered: Vec<Option<Delivery>>| PublishError {
            topic: topic.to_string(),
            delivered,
            source,
        };
        if total == 0 {
            return Ok(Vec::new());
        }
        let partitions = self
            .partition_count(topic)
            .await
            .map_err(|e| fail(e, vec![None; total]))?;
        let mut by_partition: BTreeMap<i32, Vec<(usize, Record)>> = BTreeMap::new();
        for (index, outgoing) in records.into_iter().enumerate() {
            let partition = match &outgoing.key {
                Some(key) => partition_for_key(key, partitions),
                None => (self.round_robin.fetch_add(1, Ordering::Relaxed) % partitions as u32) as i32,
            };
            by_partition
                .entry(partition)
                .or_default()
                .push((index, to_record(outgoing)));
        }
        let results = join_all(
            by_partition
                .into_iter()
                .map(|(partition, records)| self.produce_partition(topic, partition, records)),
        )
        .await;
        let mut deliveries: Vec<Option<Delivery>> = vec![None; total];
        let mut first_error = None;
        for (delivered, error) in results {
            for (index, delivery) in delivered {
                deliveries[index] = Some(delivery);
            }
            if first_error.is_none() {
                first_error = error;
            }
        }
        match first_error {
            Some(source) => Err(fail(source, deliveries)),
            None => Ok(deliveries.into_iter().flatten().collect()),
        }
    }
}

fn to_record(outgoing: OutgoingRecord) -> Record {
    Record {
        key: outgoing.key,
        value: Some(outgoing.value),
        headers: outgoing.headers.into_iter().collect(),
        timestamp: chrono::DateTime::from_timestamp_millis(outgoing.timestamp_ms).unwrap_or_default(),
    }
}

/// Splits one partition's records into Produce batches by size and count, keeping their order.
fn batches(records: Vec<(usize, Record)>) -> Vec<Vec<(usize, Record)>> {
    let mut out: Vec<Vec<(usize, Record)>> = Vec::new();
    let mut current: Vec<(usize, Record)> = Vec::new();
    let mut current_bytes = 0usize;
    for (index, record) in records {
        let size = record.approximate_size();
        if !current.is_empty()
            && (current_bytes + size > MAX_BATCH_BYTES || current.len() >= MAX_BATCH_RECORDS)
        {
            out.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += size;
        current.push((index, record));
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Kafka's murmur2 (the Java client's `Utils.murmur2`): seed 0x9747b28c, little-endian 4-byte
/// blocks, signed 32-bit result.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner picks for a keyed record.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    if partitions <= 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// Retriable broker and network failures are transient; the rest is a rejection.
fn classify(error: &KafkaError) -> PortError {
    let message = error.to_string();
    let transient = match error {
        KafkaError::Connection(_)
        | KafkaError::Request(_)
        | KafkaError::RetryFailed(_)
        | KafkaError::Timeout => true,
        KafkaError::ServerError { protocol_error, .. } => matches!(
            protocol_error,
            ProtocolError::LeaderNotAvailable
                | ProtocolError::NotLeaderOrFollower
                | ProtocolError::RequestTimedOut
                | ProtocolError::BrokerNotAvailable
                | ProtocolError::ReplicaNotAvailable
                | ProtocolError::NetworkException
                | ProtocolError::NotEnoughReplicas
                | ProtocolError::NotEnoughReplicasAfterAppend
                | ProtocolError::KafkaStorageError
                | ProtocolError::ThrottlingQuotaExceeded
        ),
        _ => false,
    };
    if let KafkaError::ServerError {
        protocol_error: ProtocolError::UnknownTopicOrPartition,
        ..
    } = error
    {
        return PortError::NotFound {
            component: COMPONENT,
            what: message,
        };
    }
    if transient {
        PortError::Transient {
            component: COMPONENT,
            message,
        }
    } else {
        PortError::Rejected {
            component: COMPONENT,
            message,
        }
    }
}

async fn build_client(settings: &KafkaSettings) -> Result<Client, PortError> {
    if settings.bootstrap_servers.is_empty() {
        return Err(PortError::Rejected {
            component: COMPONENT,
            message: "no bootstrap servers".into(),
        });
    }
    let backoff = BackoffConfig {
        deadline: Some(settings.deadline),
        ..BackoffConfig::default()
    };
    let mut builder = ClientBuilder::new(settings.bootstrap_servers.clone())
        .client_id(settings.client_id.clone())
        .backoff_config(backoff);
    if settings.tls {
        builder = builder.tls_config(Arc::new(tls_config()?));
    }
    match &settings.auth {
        KafkaAuth::None => {}
        KafkaAuth::Scram { username, password } => {
            builder = builder.sasl_config(SaslConfig::ScramSha512(Credentials::new(
                username.clone(),
                password.clone(),
            )));
        }
        KafkaAuth::Iam { region } => {
            builder = builder.sasl_config(SaslConfig::Oauthbearer(OauthBearerCredentials {
                callback: msk_iam_token_callback(region.clone()),
                authz_id: None,
                bearer_kvs: Vec::new(),
            }));
        }
    }
    tokio::time::timeout(settings.deadline, builder.build())
        .await
        .map_err(|_| PortError::Transient {
            component: COMPONENT,
            message: format!(
                "no broker of {:?} answered within {:?}",
                settings.bootstrap_servers, settings.deadline
            ),
        })?
        .map_err(|e| classify(&e))
}

fn tls_config() -> Result<rustls::ClientConfig, PortError> {
    pipeline_msk_auth::tls_config().map_err(|e| PortError::Rejected {
        component: COMPONENT,
        message: e.to_string(),
    })
}

/// An OAUTHBEARER callback over the shared MSK IAM tokens (rskafka calls it on every new
/// connection; the tokens are reused until shortly before expiry).
pub fn msk_iam_token_callback(region: String) -> OauthCallback {
    let tokens = IamTokens::for_region(region);
    Arc::new(
        move || -> BoxFuture<'static, Result<String, Box<dyn std::error::Error + Send + Sync>>> {
            let tokens = tokens.clone();
            async move { Ok(tokens.token().await?) }.boxed()
        },
    )
}

/// SCRAM credentials from a Secrets Manager secret holding `{"username": .., "password": ..}`
/// (the format MSK requires for SCRAM secrets).
pub async fn scram_credentials(
    secrets: &aws_sdk_secretsmanager::Client,
    secret_arn: &str,
) -> Result<KafkaAuth, PortError> {
    let output = secrets
        .get_secret_value()
        .secret_id(secret_arn)
        .send()
        .await
        .map_err(|e| crate::aws::classify_sdk_error("secrets manager", &e))?;
    let text = output.secret_string().ok_or_else(|| PortError::Rejected {
        component: "secrets manager",
        message: format!("secret {secret_arn} has no string value"),
    })?;
    parse_scram_secret(text).map_err(|problem| PortError::Rejected {
        component: "secrets manager",
        message: format!("secret {secret_arn}: {problem}"),
    })
}

fn parse_scram_secret(text: &str) -> Result<KafkaAuth, String> {
    #[derive(serde::Deserialize)]
    struct ScramSecret {
        username: String,
        password: String,
    }
    let secret: ScramSecret = serde_json::from_str(text)
        .map_err(|_| "expected JSON {\"username\": .., \"password\": ..}".to_string())?;
    if secret.username.is_empty() || secret.password.is_empty() {
        return Err("username and password must not be empty".into());
    }
    Ok(KafkaAuth::Scram {
        username: secret.username,
        password: secret.password,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_java_client() {
        // Vectors from Kafka's own murmur2 tests (and akka's Kafka-compatible port); the
        // partitions they imply were also checked against librdkafka's murmur2 partitioner.
        let cases: [(&[u8], i32); 11] = [
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
            (b"abc", 479_470_107),
            (b"1", -1_993_445_489),
            (b"12", 126_087_238),
            (b"123", -267_702_483),
            (b"1234", -1_614_185_708),
            (b"12345", -1_188_365_604),
        ];
        for (key, expected) in cases {
            assert_eq!(murmur2(key), expected, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn keys_map_to_stable_partitions_in_range() {
        assert_eq!(partition_for_key(b"21", 4), (-973_932_308i32 & 0x7fff_ffff) % 4);
        for n in 1..=12 {
            for i in 0..200 {
                let key = format!("device-{i:05}");
                let p = partition_for_key(key.as_bytes(), n);
                assert!((0..n).contains(&p));
                assert_eq!(p, partition_for_key(key.as_bytes(), n));
            }
        }
        // Keys spread over partitions rather than piling onto one.
        let used: std::collections::BTreeSet<i32> = (0..100)
            .map(|i| partition_for_key(format!("k{i}").as_bytes(), 4))
            .collect();
        assert_eq!(used.len(), 4);
        assert_eq!(partition_for_key(b"x", 0), 0);
    }

    fn record(bytes: usize) -> Record {
        Record {
            key: None,
            value: Some(vec![0; bytes]),
            headers: Default::default(),
            timestamp: chrono::DateTime::from_timestamp_millis(0).unwrap_or_default(),
        }
    }

    #[test]
    fn batches_respect_size_and_count_and_keep_order() {
        let records: Vec<(usize, Record)> = (0..5).map(|i| (i, record(200 * 1024))).collect();
        let split = batches(records);
        assert_eq!(split.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
        let order: Vec<usize> = split.iter().flatten().map(|(i, _)| *i).collect();
        assert_eq!(order, vec![0, 1, 2, 3, 4]);
        let many: Vec<(usize, Record)> = (0..2_500).map(|i| (i, record(10))).collect();
        assert_eq!(
            batches(many).iter().map(Vec::len).collect::<Vec<_>>(),
            vec![1_000, 1_000, 500]
        );
        // A single record larger than a batch still goes, alone.
        assert_eq!(batches(vec![(0, record(MAX_BATCH_BYTES * 2))]).len(), 1);
    }

    #[test]
    fn scram_secrets_parse_and_never_print_the_password() {
        let auth = parse_scram_secret(r#"{"username":"alice","password":"s3cret"}"#).unwrap();
        assert_eq!(
            auth,
            KafkaAuth::Scram {
                username: "alice".into(),
                password: "s3cret".into()
            }
        );
        assert!(!format!("{auth:?}").contains("s3cret"));
        assert!(parse_scram_secret("not json").is_err());
        assert!(parse_scram_secret(r#"{"username":"","password":"x"}"#).is_err());
    }
}
