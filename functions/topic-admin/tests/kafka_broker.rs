//! topic-admin against a real Kafka broker (the local stack's tansu): the same handler and
//! rskafka adapter the Lambda runs, with plaintext and no auth instead of TLS + IAM.
//!
//! Needs KAFKA_BOOTSTRAP_SERVERS (scripts/local-stack.sh up writes it to .local/stack.env).
//! Without it the test is skipped, unless PIPELINE_REQUIRE_STACK=1 (CI), where it fails.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;
use topic_admin::adapters::rskafka_admin::RsKafkaConnector;
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

fn request(
    kind: &str,
    bootstrap: &str,
    topics: &[(&str, i32)],
    deletion: &str,
    old: Option<&[(&str, i32)]>,
) -> Request {
    let props = |topics: &[(&str, i32)]| {
        json!({
            "ServiceToken": "local",
            "BootstrapServers": bootstrap,
            "Auth": "none",
            "DeletionPolicy": deletion,
            // CloudFormation sends numbers as strings; keep that realistic.
            "Topics": topics.iter().map(|(n, p)| json!({"Name": n, "Partitions": p.to_string(), "ReplicationFactor": "1"})).collect::<Vec<_>>()
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

async fn partitions_in_cluster(connector: &RsKafkaConnector, bootstrap: &str) -> BTreeMap<String, usize> {
    let settings = ConnectionSettings {
        bootstrap_servers: bootstrap.split(',').map(str::to_owned).collect(),
        auth: Auth::None,
        tls: false,
    };
    connector
        .connect(&settings)
        .await
        .expect("connect")
        .list_topics()
        .await
        .expect("list topics")
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
    let connector = RsKafkaConnector {
        deadline: Duration::from_secs(20),
        ..RsKafkaConnector::new(None)
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
    let connector = RsKafkaConnector {
        deadline: Duration::from_secs(2),
        ..RsKafkaConnector::new(None)
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
