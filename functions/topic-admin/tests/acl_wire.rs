//! The consumer ACLs on the wire. tansu does not implement the ACL APIs, so this test stands up a
//! minimal Kafka-protocol peer on loopback that decodes what the adapter sends (with the same
//! codec library, from the broker's side) and records it. It proves the adapter's framing,
//! version negotiation and the exact ACL rules MSK would receive.

use std::sync::{Arc, Mutex};

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, CreateAclsRequest, CreateAclsResponse, ResponseHeader,
};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use topic_admin::adapters::kafka_admin::KafkaConnector;
use topic_admin::domain::{consumer_acls, ConsumerAccess, TopicSpec};
use topic_admin::event::{Auth, ConnectionSettings};
use topic_admin::ports::{Connector, TopicAdmin};

/// What the peer decoded: (resource type, name, pattern, principal, host, operation, permission).
type Recorded = Arc<Mutex<Vec<(i8, String, i8, String, String, i8, i8)>>>;

fn supported(key: ApiKey, max: i16) -> ApiVersion {
    let mut version = ApiVersion::default();
    version.api_key = key as i16;
    version.min_version = 0;
    version.max_version = max;
    version
}

async fn serve_one_client(listener: TcpListener, recorded: Recorded) {
    let (mut stream, _) = listener.accept().await.expect("accept");
    loop {
        let mut prefix = [0u8; 4];
        if stream.read_exact(&mut prefix).await.is_err() {
            return; // client closed
        }
        let mut frame = vec![0u8; u32::from_be_bytes(prefix) as usize];
        stream.read_exact(&mut frame).await.expect("frame");
        let mut frame = bytes::Bytes::from(frame);
        let header = decode_request_header_from_buffer(&mut frame).expect("request header");
        let key = ApiKey::try_from(header.request_api_key).expect("known API");
        let version = header.request_api_version;
        let mut body = BytesMut::new();
        match key {
            ApiKey::ApiVersions => {
                let mut response = ApiVersionsResponse::default();
                response.api_keys = vec![
                    supported(ApiKey::ApiVersions, 3),
                    supported(ApiKey::CreateAcls, CreateAclsRequest::VERSIONS.max),
                ];
                response.encode(&mut body, version).expect("encode");
            }
            ApiKey::CreateAcls => {
                let request = CreateAclsRequest::decode(&mut frame, version).expect("CreateAcls body");
                assert_eq!(frame.remaining(), 0, "the whole request was consumed");
                let mut response = CreateAclsResponse::default();
                for creation in &request.creations {
                    recorded.lock().unwrap().push((
                        creation.resource_type,
                        creation.resource_name.to_string(),
                        creation.resource_pattern_type,
                        creation.principal.to_string(),
                        creation.host.to_string(),
                        creation.operation,
                        creation.permission_type,
                    ));
                    response.results.push(AclCreationResult::default());
                }
                response.encode(&mut body, version).expect("encode");
            }
            other => panic!("unexpected request {other:?}"),
        }
        let mut response_header = ResponseHeader::default();
        response_header.correlation_id = header.correlation_id;
        let mut out = BytesMut::new();
        response_header
            .encode(&mut out, key.response_header_version(version))
            .expect("encode header");
        out.extend_from_slice(&body);
        stream
            .write_all(&(out.len() as u32).to_be_bytes())
            .await
            .expect("write");
        stream.write_all(&out).await.expect("write");
    }
}

#[tokio::test]
async fn consumer_acls_reach_the_broker_as_literal_allow_rules() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let address = listener.local_addr().expect("address").to_string();
    let recorded: Recorded = Arc::default();
    let peer = tokio::spawn(serve_one_client(listener, recorded.clone()));

    let connector = KafkaConnector::new(None);
    let admin = connector
        .connect(&ConnectionSettings {
            bootstrap_servers: vec![address],
            auth: Auth::None,
            tls: false,
        })
        .await
        .expect("connect");
    let topic = TopicSpec {
        name: "sensor-readings".into(),
        partitions: 4,
        replication_factor: 3,
        configs: Default::default(),
    };
    let access = ConsumerAccess {
        principal: "User:pipeline-consumer".into(),
        groups: vec!["pipeline-sensor-readings".into()],
    };
    admin
        .create_acls(&consumer_acls(&access, &[topic]))
        .await
        .expect("create ACLs");
    drop(admin);
    peer.await.expect("peer");

    const TOPIC: i8 = 2;
    const GROUP: i8 = 3;
    const CLUSTER: i8 = 4;
    const LITERAL: i8 = 3;
    const ALLOW: i8 = 3;
    const READ: i8 = 3;
    const DESCRIBE: i8 = 8;
    const DESCRIBE_CONFIGS: i8 = 10;
    let rule = |resource: i8, name: &str, operation: i8| {
        (
            resource,
            name.to_string(),
            LITERAL,
            "User:pipeline-consumer".to_string(),
            "*".to_string(),
            operation,
            ALLOW,
        )
    };
    assert_eq!(
        *recorded.lock().unwrap(),
        vec![
            rule(TOPIC, "sensor-readings", READ),
            rule(TOPIC, "sensor-readings", DESCRIBE),
            rule(GROUP, "pipeline-sensor-readings", READ),
            rule(GROUP, "pipeline-sensor-readings", DESCRIBE),
            rule(CLUSTER, "kafka-cluster", DESCRIBE_CONFIGS),
        ]
    );
}
