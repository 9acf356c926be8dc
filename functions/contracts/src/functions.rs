//! What each Lambda function needs from the infrastructure: every setting it reads (type, default,
//! environment variable) and the resources it reads or writes. The functions' config modules read
//! their variables through these specs (their tests check it), and `pipeline-bindings` turns them
//! into the TypeScript props the CDK constructs require (`cdk/lib/generated/functions.ts`), so a
//! new required setting or a renamed one in Rust breaks `tsc` until the stack supplies it.

use crate::{contracts, Contracts};

/// The value type of a setting, as the function parses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingType {
    Text,
    /// A non-negative integer.
    Integer,
    Boolean,
    /// One of a fixed set of words.
    Choice(&'static [&'static str]),
}

/// What the function does when the variable is unset or empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhenUnset {
    /// The function refuses to start: the stack must supply it.
    Required,
    /// The function uses this value.
    Default(String),
    /// The function does without (the doc says what that means).
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    /// The property name in the generated TypeScript (camelCase).
    pub key: &'static str,
    pub env_var: String,
    pub value: SettingType,
    pub when_unset: WhenUnset,
    pub doc: &'static str,
}

/// How a function uses a resource (what the CDK must grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
}

/// A resource a function reads or writes, named by its contract key where it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceUse {
    pub what: String,
    pub access: Access,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionSpec {
    /// The Cargo binary (`functions/<binary>`).
    pub binary: &'static str,
    /// The generated TypeScript names start with this (`Consumer` → `ConsumerSettings`).
    pub type_prefix: &'static str,
    /// Memory the function is configured with, in MB.
    pub memory_mb: u32,
    pub settings: Vec<Setting>,
    /// Whether the function reads every contract topic's name from that topic's `envVar`.
    pub reads_topic_names: bool,
    pub resources: Vec<ResourceUse>,
}

fn setting(
    key: &'static str,
    env_var: &str,
    value: SettingType,
    when_unset: WhenUnset,
    doc: &'static str,
) -> Setting {
    Setting {
        key,
        env_var: env_var.to_string(),
        value,
        when_unset,
        doc,
    }
}

fn uses(what: &str, access: Access) -> ResourceUse {
    ResourceUse {
        what: what.to_string(),
        access,
    }
}

const PG_TLS: &[&str] = &["require", "disable"];
const KAFKA_AUTH: &[&str] = &["none", "scram", "iam"];
const FORMATS: &[&str] = &["avro", "json"];

/// Memory of the consumer function, in MB: `limits::CONSUMER_MEMORY_BYTES` (pipeline-domain) is
/// derived from it and the CDK reads it from the bindings. 512 MB from figure 6 of
/// docs/benchmarks.md: above it a batch gets no faster, below it a partition waits twice as long.
pub const CONSUMER_MEMORY_MB: u32 = 512;

/// The consumer (`functions/consumer/src/config.rs`).
pub fn consumer(c: &Contracts) -> FunctionSpec {
    use SettingType::*;
    use WhenUnset::*;
    let n = &c.env_vars;
    FunctionSpec {
        binary: "consumer",
        type_prefix: "Consumer",
        memory_mb: CONSUMER_MEMORY_MB,
        settings: vec![
            setting(
                "windowSeconds",
                &n.window_seconds,
                Integer,
                Default(c.defaults.window_seconds.to_string()),
                "Tumbling window size in seconds.",
            ),
            setting(
                "aggregatesTable",
                &n.aggregates_table,
                Text,
                Default(c.tables.window_aggregates.name.clone()),
                "DynamoDB table of window aggregates.",
            ),
            setting(
                "explicitEventsTable",
                &n.explicit_events_table,
                Text,
                Default(c.tables.explicit_events.name.clone()),
                "DynamoDB table of explicit events.",
            ),
            setting(
                "storeEventsBucket",
                &n.store_events_bucket,
                Text,
                Required,
                "S3 bucket the store events are archived in.",
            ),
            setting(
                "poisonQueueUrl",
                &n.poison_queue_url,
                Text,
                Required,
                "SQS FIFO queue poison records are sent to.",
            ),
            setting(
                "registryName",
                &n.registry_name,
                Text,
                Default(c.schema_registry.name.clone()),
                "Glue Schema Registry of the writer schemas.",
            ),
            setting(
                "registryRoleArn",
                &n.registry_role_arn,
                Text,
                Absent,
                "Role assumed to read the registry; unset: the function's own credentials.",
            ),
            setting(
                "pgSecretArn",
                &n.pg_secret_arn,
                Text,
                Absent,
                "Secret with the database credentials; unset: pgHost and pgUser are required.",
            ),
            setting(
                "pgHost",
                &n.pg_host,
                Text,
                Absent,
                "PostgreSQL host; overrides the secret's.",
            ),
            setting(
                "pgPort",
                &n.pg_port,
                Integer,
                Absent,
                "PostgreSQL port; overrides the secret's (else 5432).",
            ),
            setting(
                "pgDatabase",
                &n.pg_database,
                Text,
                Absent,
                "PostgreSQL database; overrides the secret's (without a secret: the contract's).",
            ),
            setting(
                "pgUser",
                &n.pg_user,
                Text,
                Absent,
                "PostgreSQL user; overrides the secret's.",
            ),
            setting(
                "pgPassword",
                &n.pg_password,
                Text,
                Absent,
                "PostgreSQL password; overrides the secret's.",
            ),
            setting(
                "pgTls",
                &n.pg_tls,
                Choice(PG_TLS),
                Absent,
                "TLS to PostgreSQL; unset: require, except disable for a loopback host.",
            ),
            setting(
                "reportBatchItemFailures",
                &n.report_batch_item_failures,
                Boolean,
                Default("false".into()),
                "Answer a batch whose sinks failed part-way with the partial-batch response; only for \
                 mappings with FunctionResponseTypes ReportBatchItemFailures (provisioned mode).",
            ),
        ],
        reads_topic_names: true,
        resources: vec![
            uses("tables.windowAggregates", Access::ReadWrite),
            uses("tables.explicitEvents", Access::ReadWrite),
            uses(
                "bucket (storeEventsPrefix, oversizePoisonPrefix)",
                Access::ReadWrite,
            ),
            uses("queues.poison", Access::Write),
            uses("schemaRegistry", Access::Read),
            uses("postgres (consumerRole)", Access::Write),
        ],
    }
}

/// The producer (`functions/producer/src/config.rs`).
pub fn producer(c: &Contracts) -> FunctionSpec {
    use SettingType::*;
    use WhenUnset::*;
    let n = &c.env_vars;
    FunctionSpec {
        binary: "producer",
        type_prefix: "Producer",
        memory_mb: 512,
        settings: vec![
            setting(
                "kafkaBootstrapServers",
                &n.kafka_bootstrap_servers,
                Text,
                Required,
                "Comma-separated host:port of the brokers.",
            ),
            setting(
                "kafkaAuth",
                &n.kafka_auth,
                Choice(KAFKA_AUTH),
                Default("none".into()),
                "How the producer authenticates to Kafka.",
            ),
            setting(
                "kafkaScramSecretArn",
                &n.kafka_scram_secret_arn,
                Text,
                Absent,
                "SCRAM credentials; required with kafkaAuth scram.",
            ),
            setting(
                "kafkaTls",
                &n.kafka_tls,
                Boolean,
                Absent,
                "TLS to the brokers; unset: true with scram or iam.",
            ),
            setting(
                "registryName",
                &n.registry_name,
                Text,
                Default(c.schema_registry.name.clone()),
                "Glue Schema Registry the schemas are registered in.",
            ),
            setting(
                "registryRoleArn",
                &n.registry_role_arn,
                Text,
                Absent,
                "Role assumed for the registry; unset: the function's own credentials.",
            ),
            setting(
                "defaultFormat",
                &n.default_format,
                Choice(FORMATS),
                Default("avro".into()),
                "Value format when a request names none.",
            ),
        ],
        reads_topic_names: true,
        resources: vec![
            uses("topics", Access::Write),
            uses("schemaRegistry", Access::ReadWrite),
        ],
    }
}

/// The topic-admin custom resource: everything it needs arrives in the CloudFormation request.
pub fn topic_admin(_contracts: &Contracts) -> FunctionSpec {
    FunctionSpec {
        binary: "topic-admin",
        type_prefix: "TopicAdmin",
        memory_mb: 256,
        // Logging comes from Lambda's logging config (pipeline-lambda-edge), not a setting.
        settings: vec![],
        reads_topic_names: false,
        resources: vec![uses("topics", Access::ReadWrite)],
    }
}

/// The db-admin custom resource: everything it needs arrives in the CloudFormation request.
pub fn db_admin(_contracts: &Contracts) -> FunctionSpec {
    FunctionSpec {
        binary: "db-admin",
        type_prefix: "DbAdmin",
        memory_mb: 256,
        // Logging comes from Lambda's logging config (pipeline-lambda-edge), not a setting.
        settings: vec![],
        reads_topic_names: false,
        resources: vec![uses(
            "postgres (master secret, consumer secret)",
            Access::ReadWrite,
        )],
    }
}

/// Every deployed function, for the bindings generator.
pub fn all() -> Vec<FunctionSpec> {
    let c = contracts();
    vec![consumer(c), producer(c), topic_admin(c), db_admin(c)]
}

impl FunctionSpec {
    /// Every variable the function may read: its settings and, if it reads them, the topics'.
    pub fn env_vars(&self, c: &Contracts) -> Vec<String> {
        let mut names: Vec<String> = self.settings.iter().map(|s| s.env_var.clone()).collect();
        if self.reads_topic_names {
            names.extend(c.topics.all().map(|t| t.env_var.clone()));
        }
        names
    }
}
