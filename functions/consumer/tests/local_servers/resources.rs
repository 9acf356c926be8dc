//! Each run's own tables, bucket, queue, secret, database, role and registered schemas, and the
//! consumer built on them as `main.rs` builds it.

use std::collections::HashMap;

use consumer::app::{self, Consumer};
use consumer::config::ConsumerConfig;
use pipeline_adapters::dynamodb::create_contract_table;
use pipeline_adapters::glue::{glue_client, GlueSchemaRegistry};
use pipeline_adapters::postgres_schema::{provision, AppRole, TableNames};
use pipeline_adapters::s3::create_test_bucket;
use pipeline_contracts::{contracts, schema_text, Compatibility};
use pipeline_domain::produce::SchemaRegistryWriter;
use serde_json::json;
use uuid::Uuid;

use crate::environment::{env, PG_ADMIN_PASSWORD, PG_ADMIN_USER};
use crate::sinks::objects;

pub struct Stack {
    /// The test's own set-up and assertions.
    pub sdk: aws_config::SdkConfig,
    /// What the consumer runs with: the recording endpoint acting as the consumer, when recording.
    pub consumer_sdk: aws_config::SdkConfig,
    pub run: String,
    pub config: ConsumerConfig,
    pub database: String,
    /// The consumer's reader, through the registry role when one is configured.
    pub registry: GlueSchemaRegistry,
    pub ids: SchemaIds,
}

/// `sdk` pointed at the recording endpoint acting as `label`, when the run records calls. Through
/// the loader: an endpoint set on a built SdkConfig loses to `AWS_ENDPOINT_URL`, which each client
/// reads again from the environment.
pub async fn acting_as(sdk: &aws_config::SdkConfig, label: &str) -> aws_config::SdkConfig {
    match pipeline_test_recording::endpoint_acting_as(label) {
        Some(url) => {
            pipeline_adapters::aws::sdk_config_loader()
                .endpoint_url(url)
                .load()
                .await
        }
        None => sdk.clone(),
    }
}

/// Registered once per test process (the tests run concurrently).
pub static REGISTERED: tokio::sync::OnceCell<SchemaIds> = tokio::sync::OnceCell::const_new();

#[derive(Clone, Copy)]
pub struct SchemaIds {
    pub sensor_v1: Uuid,
    pub sensor_v2: Uuid,
    pub store_v1: Uuid,
    pub order_v1: Uuid,
}

pub const ORDER_SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"com.example.explicit","fields":[
    {"name":"order_id","type":"string"},{"name":"amount","type":"double"},{"name":"count","type":"long"},
    {"name":"tags","type":{"type":"array","items":"string"}},{"name":"note","type":["null","string"],"default":null}]}"#;

pub async fn pg_admin(database: &str) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config
        .host(env("PG_HOST"))
        .port(env("PG_PORT").parse().expect("PG_PORT is a port"))
        .user(env(PG_ADMIN_USER))
        .dbname(database);
    if !env(PG_ADMIN_PASSWORD).is_empty() {
        config.password(env(PG_ADMIN_PASSWORD));
    }
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .expect("postgres reachable");
    tokio::spawn(connection);
    client
}

pub async fn create_database(name: &str) {
    pg_admin(&env("PG_DATABASE"))
        .await
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create test database");
}

pub async fn stack() -> Stack {
    let sdk = pipeline_adapters::aws::load_sdk_config().await;
    let consumer_sdk = acting_as(&sdk, "consumer").await;
    let run = format!("ci{}", &Uuid::new_v4().simple().to_string()[..12]);
    let c = contracts();

    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let aggregates = format!("{run}-{}", c.tables.window_aggregates.name);
    let explicit = format!("{run}-{}", c.tables.explicit_events.name);
    for (name, table) in [
        (&aggregates, &c.tables.window_aggregates),
        (&explicit, &c.tables.explicit_events),
    ] {
        create_contract_table(&dynamodb, name, table)
            .await
            .expect("create table");
    }

    let bucket = format!("{run}-{}", c.bucket.local_name);
    let s3 = app::s3_client(&sdk);
    create_test_bucket(&s3, &bucket, sdk.region().map(|r| r.as_ref()))
        .await
        .expect("create bucket");

    let queue_url = aws_sdk_sqs::Client::new(&sdk)
        .create_queue()
        .queue_name(format!("{run}-{}", c.queues.poison))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url");

    let database = format!("consumer_{run}");
    create_database(&database).await;
    let role = AppRole {
        name: format!("consumer_{run}"),
        password: format!("{run}-password"),
    };
    provision(
        &mut pg_admin(&database).await,
        &TableNames::new(&c.postgres.sales_table, &c.postgres.inventory_table),
        &role,
    )
    .await
    .expect("provision the run's database and role");
    let secret = json!({
        "username": role.name,
        "password": role.password,
        "host": env("PG_HOST"),
        "port": env("PG_PORT").parse::<u16>().unwrap(),
        "dbname": database,
    });
    let secret_arn = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(format!("{run}/postgres"))
        .secret_string(secret.to_string())
        .send()
        .await
        .expect("create secret")
        .arn
        .expect("secret arn");

    // One registry for all runs: moto allows only 10 registries per account, and registering an
    // identical definition again reuses its version, so sharing it is harmless.
    let registry_name = format!("{}-consumer-tests", c.schema_registry.name);
    let setup_registry = GlueSchemaRegistry::new(glue_client(&sdk, None).await, &registry_name);
    let ids = *REGISTERED
        .get_or_init(|| async {
            setup_registry.ensure_registry().await.expect("registry");
            let register = |name: &'static str, text: &'static str| {
                let registry = setup_registry.clone();
                async move {
                    registry
                        .register_or_reuse(name, text, Compatibility::Backward)
                        .await
                        .expect("register schema")
                        .version_id
                }
            };
            SchemaIds {
                sensor_v1: register(
                    "SensorReading",
                    schema_text("schemas/sensor_reading.v1.avsc").unwrap(),
                )
                .await,
                sensor_v2: register(
                    "SensorReading",
                    schema_text("schemas/sensor_reading.v2.avsc").unwrap(),
                )
                .await,
                store_v1: register("StoreEvent", schema_text("schemas/store_event.v1.avsc").unwrap()).await,
                order_v1: register("Order", ORDER_SCHEMA).await,
            }
        })
        .await;

    // The consumer reads its configuration exactly as on Lambda, by the contract's variable names:
    // database credentials through the secret, no PG_HOST/PG_USER/PG_PASSWORD.
    let n = &c.env_vars;
    let registry_role = std::env::var("PIPELINE_LOCAL_REGISTRY_ROLE_ARN")
        .ok()
        .filter(|v| !v.is_empty());
    let vars: HashMap<String, String> = [
        (&n.aggregates_table, aggregates),
        (&n.explicit_events_table, explicit),
        (&n.store_events_bucket, bucket),
        (&n.poison_queue_url, queue_url),
        (&n.registry_name, registry_name.clone()),
        (&n.pg_secret_arn, secret_arn),
        (&n.pg_tls, "disable".to_string()),
        (&n.window_seconds, "60".to_string()),
    ]
    .into_iter()
    .chain(registry_role.map(|role| (&n.registry_role_arn, role)))
    .map(|(k, v)| (k.clone(), v))
    .collect();
    let config = ConsumerConfig::from_lookup(|name| vars.get(name).cloned()).expect("config");
    pipeline_test_recording::declare_environment(
        "consumer",
        vars.iter().map(|(k, v)| (k.as_str(), v.as_str())),
    )
    .expect("declare the consumer's configuration for the IAM check");
    // As main.rs: the registry client reads through the configured role (a real AssumeRole).
    let registry = GlueSchemaRegistry::new(
        glue_client(&consumer_sdk, config.registry_role_arn.as_deref()).await,
        &registry_name,
    );
    Stack {
        sdk,
        consumer_sdk,
        run,
        config,
        database,
        registry,
        ids,
    }
}

impl Stack {
    /// Removes this run's resources (best effort), so repeated runs do not pile up on
    /// long-lived servers. Not reached when a test fails: the resources stay for inspection.
    pub async fn cleanup(self) {
        let dynamodb = aws_sdk_dynamodb::Client::new(&self.sdk);
        for table in [&self.config.aggregates_table, &self.config.explicit_events_table] {
            let _ = dynamodb.delete_table().table_name(table).send().await;
        }
        let s3 = app::s3_client(&self.sdk);
        let bucket = &self.config.store_events_bucket;
        for key in objects(&self.sdk, bucket).await.into_keys() {
            let _ = s3.delete_object().bucket(bucket).key(key).send().await;
        }
        let _ = s3.delete_bucket().bucket(bucket).send().await;
        let _ = aws_sdk_sqs::Client::new(&self.sdk)
            .delete_queue()
            .queue_url(&self.config.poison_queue_url)
            .send()
            .await;
        if let Some(secret) = &self.config.postgres.secret_id {
            let _ = aws_sdk_secretsmanager::Client::new(&self.sdk)
                .delete_secret()
                .secret_id(secret)
                .force_delete_without_recovery(true)
                .send()
                .await;
        }
        drop_database(&self.database).await;
        let _ = pg_admin(&env("PG_DATABASE"))
            .await
            .batch_execute(&format!("DROP ROLE IF EXISTS \"consumer_{}\"", self.run))
            .await;
    }
}

pub async fn drop_database(name: &str) {
    let _ = pg_admin(&env("PG_DATABASE"))
        .await
        .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await;
}

pub async fn consumer(stack: &Stack) -> Consumer<GlueSchemaRegistry> {
    app::build(&stack.config, &stack.consumer_sdk, stack.registry.clone())
        .await
        .expect("consumer cold start")
}
