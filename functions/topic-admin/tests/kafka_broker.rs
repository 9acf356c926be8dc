//! topic-admin against a real Kafka broker (the local stack's tansu): the same handler and
//! Kafka-protocol adapter the Lambda runs, with plaintext and no auth instead of TLS + IAM.
//! (tansu does not implement the ACL APIs, so the consumer ACLs are proven by the handler's unit
//! tests and the adapter's encoding, not here.)
//!
//! Needs KAFKA_BOOTSTRAP_SERVERS (scripts/local-stack.sh up writes it to .local/stack.env).
//! Without it the test is skipped, unless PIPELINE_REQUIRE_STACK=1 (CI), where it fails.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use topic_admin::adapters::kafka_admin::KafkaConnector;
use topic_admin::event::{Auth, ConnectionSettings, Request};
use topic_admin::handler::{handle, HandlerError, VisibilityWait};
use topic_admin::ports::{Connector, TopicAdmin};

fn bootstrap() -> Option<String> {
    match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) if !servers.trim().is_empty() => Some(servers),
        _ => {
            assert!(
                std::env::var("PIPELINE_REQUIRE_STACK").as_deref() != Ok("1"),
                "PIPELINE_REQUIRE_STACK=1 but KAFKA_BOOTSTRAP_SERVERS is not set: start scripts/local-stack.sh up"
            );
            eprintln!("skipping: KAFKA_BOOTSTRAP_SERVERS is not set (scripts/local-stack.sh up)");
            None
        }
    }
}

/// The contract's per-topic configs (retention, cleanup policy) as CloudFormation passes them.
const RETENTION: &str = "604800000";

fn request(
    kind: &str,
    bootstrap: &str,
    topics: &[(&str, i32)],
    deletion: &str,
    old: Option<&[(&str, i32)]>,
) -> Request {
    request_with_configs(
        kind,
        bootstrap,
        topics,
        deletion,
        old,
        &[("retention.ms", RETENTION), ("cleanup.policy", "delete")],
    )
}

fn request_with_configs(
    kind: &str,
    bootstrap: &str,
    topics: &[(&str, i32)],
    deletion: &str,
    old: Option<&[(&str, i32)]>,
    configs: &[(&str, &str)],
) -> Request {
    let config: serde_json::Map<String, serde_json::Value> =
        configs.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    let props = |topics: &[(&str, i32)]| {
        json!({
            "ServiceToken": "local",
            "BootstrapServers": bootstrap,
            "Auth": "none",
            "DeletionPolicy": deletion,
            // CloudFormation sends numbers as strings; keep that realistic.
            "Topics": topics.iter().map(|(n, p)| json!({"Name": n, "Partitions": p.to_string(), "ReplicationFactor": "1", "Config": config})).collect::<Vec<_>>()
        })
    };
    let mut event = json!({
        "RequestType": kind,
        "LogicalResourceId": "Topics",
        "PhysicalResourceId": "kafka-topics/Topics",
        "ResourceProperties": props(topics),
    });
    if let Some(old) = old {
        event["OldResourceProperties"] = props(old);
    }
    Request::from_value(event).expect("valid request")
}

fn settings(bootstrap: &str) -> ConnectionSettings {
    ConnectionSettings {
        bootstrap_servers: bootstrap.split(',').map(str::to_owned).collect(),
        auth: Auth::None,
        tls: false,
    }
}

async fn partitions_in_cluster(connector: &KafkaConnector, bootstrap: &str) -> BTreeMap<String, usize> {
    connector
        .connect(&settings(bootstrap))
        .await
        .expect("connect")
        .list_topics()
        .await
        .expect("list topics")
}

async fn config_in_cluster(
    connector: &KafkaConnector,
    bootstrap: &str,
    topic: &str,
    key: &str,
) -> Option<String> {
    let described = connector
        .connect(&settings(bootstrap))
        .await
        .expect("connect")
        .describe_topic_configs(&[topic.to_owned()])
        .await
        .expect("describe configs");
    described.get(topic).and_then(|c| c.get(key)).cloned()
}

#[tokio::test]
async fn creates_topics_idempotently_and_refuses_partition_changes() {
    let Some(bootstrap) = bootstrap() else { return };
    let suffix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let sensors = format!("topic-admin-it-sensors-{suffix}");
    let events = format!("topic-admin-it-events-{suffix}");
    let wanted = [(sensors.as_str(), 3), (events.as_str(), 2)];
    let connector = KafkaConnector {
        timeout: Duration::from_secs(20),
        ..KafkaConnector::new(None)
    };
    let wait = VisibilityWait {
        attempts: 20,
        interval: Duration::from_millis(250),
    };

    // Create: both topics appear with their partition counts.
    let created = handle(
        request("Create", &bootstrap, &wanted, "retain", None),
        &connector,
        wait,
    )
    .await
    .expect("create");
    assert_eq!(created.physical_resource_id, "kafka-topics/Topics");
    assert_eq!(created.data["Created"], format!("{sensors},{events}"));
    let cluster = partitions_in_cluster(&connector, &bootstrap).await;
    assert_eq!(cluster.get(&sensors), Some(&3));
    assert_eq!(cluster.get(&events), Some(&2));
    assert_eq!(
        config_in_cluster(&connector, &bootstrap, &sensors, "retention.ms")
            .await
            .as_deref(),
        Some(RETENTION),
        "created with the contract's configs"
    );

    // Someone changes a config by hand: the next Update puts the stack's value back.
    let admin = connector.connect(&settings(&bootstrap)).await.expect("connect");
    admin
        .alter_topic_configs(
            &events,
            &BTreeMap::from([("retention.ms".to_string(), "60000".to_string())]),
            &[],
        )
        .await
        .expect("alter by hand");
    assert_eq!(
        config_in_cluster(&connector, &bootstrap, &events, "retention.ms")
            .await
            .as_deref(),
        Some("60000")
    );
    let converged = handle(
        request("Update", &bootstrap, &wanted, "retain", Some(&wanted)),
        &connector,
        wait,
    )
    .await
    .expect("update after drift");
    assert_eq!(converged.data["Reconfigured"], events);
    assert_eq!(
        config_in_cluster(&connector, &bootstrap, &events, "retention.ms")
            .await
            .as_deref(),
        Some(RETENTION)
    );

    // The same Update again: nothing created, nothing changed.
    let again = handle(
        request("Update", &bootstrap, &wanted, "retain", Some(&wanted)),
        &connector,
        wait,
    )
    .await
    .expect("update");
    assert_eq!(again.data["Created"], "");
    assert_eq!(
        again.data["Reconfigured"], "",
        "converged topics are not altered again"
    );
    assert_eq!(
        partitions_in_cluster(&connector, &bootstrap).await.get(&sensors),
        Some(&3)
    );

    // A partition change of an existing topic is refused, clearly, and changes nothing.
    let grown = [(sensors.as_str(), 6), (events.as_str(), 2)];
    let err = handle(
        request("Update", &bootstrap, &grown, "retain", Some(&wanted)),
        &connector,
        wait,
    )
    .await
    .expect_err("partition change must be refused");
    assert!(matches!(err, HandlerError::Plan(_)), "{err}");
    assert!(
        err.to_string()
            .contains("exists with 3 partitions but 6 are wanted"),
        "{err}"
    );
    assert_eq!(
        partitions_in_cluster(&connector, &bootstrap).await.get(&sensors),
        Some(&3)
    );

    // Delete with the default policy keeps the topics.
    handle(
        request("Delete", &bootstrap, &wanted, "retain", None),
        &connector,
        wait,
    )
    .await
    .expect("retained delete");
    let cluster = partitions_in_cluster(&connector, &bootstrap).await;
    assert!(
        cluster.contains_key(&sensors) && cluster.contains_key(&events),
        "retained topics are gone: {cluster:?}"
    );

    // Delete with policy `delete` removes them (and tolerates a topic that is already gone).
    let with_missing = [
        (sensors.as_str(), 3),
        (events.as_str(), 2),
        ("topic-admin-it-never-created", 1),
    ];
    handle(
        request("Delete", &bootstrap, &with_missing, "delete", None),
        &connector,
        wait,
    )
    .await
    .expect("delete");
    let cluster = partitions_in_cluster(&connector, &bootstrap).await;
    assert!(
        !cluster.contains_key(&sensors) && !cluster.contains_key(&events),
        "topics survived delete: {cluster:?}"
    );
}

#[tokio::test]
async fn unreachable_brokers_fail_with_a_connection_error() {
    if bootstrap().is_none() {
        return;
    }
    // A closed loopback port: the connector must give up within its deadline, not hang.
    let connector = KafkaConnector {
        timeout: Duration::from_secs(2),
        ..KafkaConnector::new(None)
    };
    let wait = VisibilityWait {
        attempts: 1,
        interval: Duration::from_millis(10),
    };
    let err = handle(
        request("Create", "127.0.0.1:1", &[("never", 1)], "retain", None),
        &connector,
        wait,
    )
    .await
    .expect_err("no broker listens on port 1");
    assert!(err.to_string().contains("cannot connect"), "{err}");
}
