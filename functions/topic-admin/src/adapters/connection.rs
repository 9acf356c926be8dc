//! One connection to one broker, speaking the Kafka protocol through `kafka-protocol`'s message
//! codecs: length-prefixed frames, per-API version negotiation (ApiVersions), optional TLS and
//! SASL/OAUTHBEARER (MSK IAM). Admin requests are few and sequential, so a connection serves one
//! request at a time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslHandshakeRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::ResponseError;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::ports::AdminError;

/// Brokers reject frames above `socket.request.max.bytes` (100 MiB by default); admin responses
/// are tiny, so anything this large is a corrupt length prefix.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
const CLIENT_ID: &str = "pipeline-topic-admin";

trait Transport: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Transport for T {}

/// How to open a connection: TLS or plaintext, and an optional SASL/OAUTHBEARER token.
#[derive(Clone)]
pub struct ConnectOptions {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub oauth_token: Option<String>,
    pub timeout: Duration,
}

pub struct BrokerConnection {
    address: String,
    stream: Box<dyn Transport>,
    next_correlation_id: i32,
    /// API key -> the broker's supported version range.
    broker_versions: BTreeMap<i16, (i16, i16)>,
    timeout: Duration,
}

fn error_text(code: i16, message: Option<&StrBytes>) -> String {
    let name = ResponseError::try_from_code(code)
        .map(|e| format!("{e:?}"))
        .unwrap_or_else(|| format!("error code {code}"));
    match message {
        Some(m) if !m.is_empty() => format!("{name}: {}", m.as_str()),
        _ => name,
    }
}

/// A non-zero Kafka error code as readable text (`None` for success).
pub fn kafka_error(code: i16, message: Option<&StrBytes>) -> Option<String> {
    (code != 0).then(|| error_text(code, message))
}

impl BrokerConnection {
    pub async fn open(address: &str, options: &ConnectOptions) -> Result<Self, AdminError> {
        let connect = async {
            let tcp = TcpStream::connect(address)
                .await
                .map_err(|e| AdminError::Connect(format!("{address}: {e}")))?;
            let _ = tcp.set_nodelay(true);
            let stream: Box<dyn Transport> = match &options.tls {
                None => Box::new(tcp),
                Some(config) => {
                    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
                    let name = ServerName::try_from(host.to_owned()).map_err(|e| {
                        AdminError::Connect(format!("{address}: invalid TLS server name: {e}"))
                    })?;
                    let tls = TlsConnector::from(config.clone())
                        .connect(name, tcp)
                        .await
                        .map_err(|e| AdminError::Connect(format!("{address}: TLS handshake: {e}")))?;
                    Box::new(tls)
                }
            };
            let mut connection = Self {
                address: address.to_owned(),
                stream,
                next_correlation_id: 1,
                broker_versions: BTreeMap::new(),
                timeout: options.timeout,
            };
            connection.negotiate_versions().await?;
            if let Some(token) = &options.oauth_token {
                connection.authenticate_oauthbearer(token).await?;
            }
            Ok(connection)
        };
        tokio::time::timeout(options.timeout, connect)
            .await
            .map_err(|_| AdminError::Connect(format!("{address}: no answer within {:?}", options.timeout)))?
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    async fn negotiate_versions(&mut self) -> Result<(), AdminError> {
        // Version 0 is the one every broker understands before it has told us anything.
        let response: ApiVersionsResponse = self.exchange(&ApiVersionsRequest::default(), 0).await?;
        if let Some(e) = kafka_error(response.error_code, None) {
            return Err(AdminError::Connect(format!("{}: ApiVersions: {e}", self.address)));
        }
        self.broker_versions = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(())
    }

    /// The highest version both sides speak for `R`.
    fn version_for<R: Request>(&self) -> Result<i16, AdminError> {
        let api =
            ApiKey::try_from(R::KEY).map_or_else(|_| format!("API key {}", R::KEY), |k| format!("{k:?}"));
        let (min, max) = self.broker_versions.get(&R::KEY).copied().ok_or_else(|| {
            AdminError::Unsupported(format!("{}: broker does not support {api}", self.address))
        })?;
        let version = max.min(R::VERSIONS.max);
        if version < min.max(R::VERSIONS.min) {
            return Err(AdminError::Unsupported(format!(
                "{}: no common version of {api} (broker {min}..{max}, client {})",
                self.address,
                R::VERSIONS
            )));
        }
        Ok(version)
    }

    async fn authenticate_oauthbearer(&mut self, token: &str) -> Result<(), AdminError> {
        let mut handshake = SaslHandshakeRequest::default();
        handshake.mechanism = StrBytes::from_static_str("OAUTHBEARER");
        let response = self.send(&handshake).await?;
        if let Some(e) = kafka_error(response.error_code, None) {
            let offered: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(AdminError::Connect(format!(
                "{}: SASL handshake: {e} (broker offers {offered:?})",
                self.address
            )));
        }
        // RFC 7628 initial client response: GS2 header, then auth=Bearer <token>, 0x01-delimited.
        let mut authenticate = SaslAuthenticateRequest::default();
        authenticate.auth_bytes = Bytes::from(format!("n,,\x01auth=Bearer {token}\x01\x01"));
        let response = self.send(&authenticate).await?;
        if let Some(e) = kafka_error(response.error_code, response.error_message.as_ref()) {
            return Err(AdminError::Connect(format!(
                "{}: SASL authentication: {e}",
                self.address
            )));
        }
        Ok(())
    }

    /// Sends one request at the negotiated version and reads its response.
    pub async fn send<R: Request>(&mut self, request: &R) -> Result<R::Response, AdminError> {
        let version = self.version_for::<R>()?;
        self.exchange(request, version).await
    }

    async fn exchange<R: Request>(&mut self, request: &R, version: i16) -> Result<R::Response, AdminError> {
        let address = self.address.clone();
        let api = R::KEY;
        let fail =
            move |what: String| AdminError::Request(format!("{address}: API key {api} v{version}: {what}"));

        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let mut header = RequestHeader::default();
        header.request_api_key = R::KEY;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        header.client_id = Some(StrBytes::from_static_str(CLIENT_ID));

        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .and_then(|()| request.encode(&mut body, version))
            .map_err(|e| fail(format!("cannot encode: {e}")))?;
        let length = u32::try_from(body.len()).map_err(|_| fail("request too large".into()))?;

        let io = async {
            self.stream.write_all(&length.to_be_bytes()).await?;
            self.stream.write_all(&body).await?;
            self.stream.flush().await?;
            let mut prefix = [0u8; 4];
            self.stream.read_exact(&mut prefix).await?;
            let size = u32::from_be_bytes(prefix) as usize;
            if size > MAX_RESPONSE_BYTES {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("response frame of {size} bytes"),
                ));
            }
            let mut frame = vec![0u8; size];
            self.stream.read_exact(&mut frame).await?;
            Ok(Bytes::from(frame))
        };
        let mut frame = tokio::time::timeout(self.timeout, io)
            .await
            .map_err(|_| fail(format!("no response within {:?}", self.timeout)))?
            .map_err(|e| fail(e.to_string()))?;

        let response_header = ResponseHeader::decode(&mut frame, R::Response::header_version(version))
            .map_err(|e| fail(format!("cannot decode the response header: {e}")))?;
        if response_header.correlation_id != correlation_id {
            return Err(fail(format!(
                "response correlation id {} does not match request {correlation_id}",
                response_header.correlation_id
            )));
        }
        R::Response::decode(&mut frame, version).map_err(|e| fail(format!("cannot decode the response: {e}")))
    }
}
