//! Figure 2: one batch end to end into DynamoDB (moto): our consumer with its window store
//! (BatchGetItem, then one conditional PutItem per (device, window)) against the seed's
//! put_items (bench/python/seed_baseline.py). Every HTTP request our client sends is counted by
//! an SDK interceptor, per operation. moto's own floor for the same items is measured too.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::{StreamExt, TryStreamExt};
use pipeline_adapters::dynamodb::{create_contract_table, DynamoWindowStore};
use pipeline_domain::consume::batch::{BatchSummary, ConsumerService, Sinks};
use pipeline_domain::consume::fakes::{
    InMemoryExplicitEventStore, InMemoryObjectStore, InMemoryPoisonSink, InMemoryStoreEventTable,
};
use pipeline_domain::ports::InMemorySchemaSource;
use uuid::Uuid;

use crate::cpu::check_summary;
use crate::timing::Timing;
use pipeline_domain::consume::fakes::contract_settings;

/// Requests per operation (`PutItem`, `BatchGetItem`, ...), retries included.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl RequestCounter {
    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "bench request counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        // DynamoDB's JSON protocol names the operation in `X-Amz-Target: DynamoDB_20120810.PutItem`.
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|target| target.rsplit('.').next())
            .unwrap_or("other")
            .to_string();
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(operation)
            .or_default() += 1;
        Ok(())
    }
}

pub type DynamoConsumer = ConsumerService<
    InMemorySchemaSource,
    DynamoWindowStore,
    InMemoryObjectStore,
    InMemoryStoreEventTable,
    InMemoryExplicitEventStore,
    InMemoryPoisonSink,
>;

pub struct DynamoFigures {
    pub first_delivery: Timing,
    pub requests: BTreeMap<String, u64>,
    /// The same batch delivered again (the ESM retries whole batches): reads only, no writes.
    pub replay: Timing,
    pub replay_requests: BTreeMap<String, u64>,
    pub windows_written: u64,
    /// moto's floor for storing the same items: the items ours stored, written unconditionally
    /// into a fresh table as BatchWriteItem (25 per request, 16 requests at a time), the fewest
    /// requests any writer can send for them. No parsing, no reads, no conditions.
    pub floor_batch_write: Timing,
    pub floor_requests: u64,
}

/// Writes `items` into `table` as BatchWriteItem requests of 25, 16 in flight.
async fn batch_write_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    items: &[HashMap<String, AttributeValue>],
) -> anyhow::Result<u64> {
    let requests = items.chunks(25).map(|chunk| {
        let writes: anyhow::Result<Vec<WriteRequest>> = chunk
            .iter()
            .map(|item| {
                Ok(WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item.clone())).build()?)
                    .build())
            })
            .collect::<anyhow::Result<_>>();
        async move {
            let response = client
                .batch_write_item()
                .request_items(table, writes?)
                .send()
                .await?;
            anyhow::ensure!(
                response.unprocessed_items().is_none_or(|u| u.is_empty()),
                "moto left items unprocessed"
            );
            Ok(())
        }
    });
    let count = items.len().div_ceil(25) as u64;
    futures::stream::iter(requests)
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(count)
}

async fn scan_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> anyhow::Result<Vec<HashMap<String, AttributeValue>>> {
    Ok(client
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await?)
}

/// Creates a fresh table of the window aggregates' shape (on demand).
pub async fn create_window_table(client: &aws_sdk_dynamodb::Client, name: &str) -> anyhow::Result<()> {
    create_contract_table(
        client,
        name,
        &pipeline_contracts::contracts().tables.window_aggregates,
    )
    .await?;
    Ok(())
}

/// A window table and an explicit-events table of the consumer's own, for one measured run: the
/// explicit-events table holds the partition ledgers, and the bench's events reuse offsets for
/// other records, which a shared ledger rightly refuses as a re-created topic.
pub struct FreshTables {
    pub windows: String,
    pub explicit: String,
}

impl FreshTables {
    pub async fn create(client: &aws_sdk_dynamodb::Client, label: &str) -> anyhow::Result<Self> {
        let c = pipeline_contracts::contracts();
        let base = format!(
            "bench-{label}-{}-{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..8]
        );
        let tables = Self {
            windows: base.clone(),
            explicit: format!("{base}-explicit"),
        };
        create_contract_table(client, &tables.windows, &c.tables.window_aggregates).await?;
        create_contract_table(client, &tables.explicit, &c.tables.explicit_events).await?;
        Ok(tables)
    }

    /// The consumer's variables that point it at these tables.
    pub fn env(&self) -> Vec<(String, String)> {
        let names = &pipeline_contracts::contracts().env_vars;
        vec![
            (names.aggregates_table.clone(), self.windows.clone()),
            (names.explicit_events_table.clone(), self.explicit.clone()),
        ]
    }

    pub async fn delete(&self, client: &aws_sdk_dynamodb::Client) -> anyhow::Result<()> {
        for table in [&self.windows, &self.explicit] {
            client.delete_table().table_name(table).send().await?;
        }
        Ok(())
    }
}

async fn consumer(
    client: aws_sdk_dynamodb::Client,
    table: &str,
    schemas: &BTreeMap<Uuid, String>,
) -> anyhow::Result<DynamoConsumer> {
    let source = InMemorySchemaSource::default();
    for (id, definition) in schemas {
        source.insert(*id, definition);
    }
    let contract = &pipeline_contracts::contracts().tables.window_aggregates;
    let consumer = ConsumerService::new(
        source,
        Sinks {
            windows: DynamoWindowStore::new(client, table, contract),
            archive: InMemoryObjectStore::default(),
            table: InMemoryStoreEventTable::default(),
            explicit: InMemoryExplicitEventStore::default(),
            poison: InMemoryPoisonSink::default(),
        },
        contract_settings(),
    );
    consumer
        .schema_cache()
        .resolve(schemas.keys().copied(), &consumer.settings().retry)
        .await?;
    Ok(consumer)
}

/// Runs the batch `runs` times, each time into a fresh table, then once more as a replay.
pub async fn measure(
    sdk: &aws_config::SdkConfig,
    bytes: &[u8],
    records: usize,
    schemas: &BTreeMap<Uuid, String>,
    runs: usize,
) -> anyhow::Result<DynamoFigures> {
    let counter = RequestCounter::default();
    let config = aws_sdk_dynamodb::config::Builder::from(sdk)
        .interceptor(counter.clone())
        .build();
    let client = aws_sdk_dynamodb::Client::from_conf(config);
    let mut samples = Vec::new();
    let mut replays = Vec::new();
    let mut requests = BTreeMap::new();
    let mut replay_requests = BTreeMap::new();
    let mut windows_written = 0;
    let mut floor = Vec::new();
    let mut floor_requests = 0;
    for run in 0..runs.max(1) {
        let table = format!(
            "bench-ours-{}-{run}-{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..6]
        );
        create_window_table(&client, &table).await?;
        let consumer = consumer(client.clone(), &table, schemas).await?;
        counter.reset();
        let started = Instant::now();
        let summary: BatchSummary = consumer
            .process_body(bytes)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        samples.push(started.elapsed());
        check_summary(&summary, records)?;
        requests = counter.snapshot();
        windows_written = summary.windows_written;
        let stored = scan_all(&client, &table).await?;
        anyhow::ensure!(
            stored.len() as u64 == windows_written,
            "{} items stored, {windows_written} windows written",
            stored.len()
        );
        let floor_table = format!("{table}-floor");
        create_window_table(&client, &floor_table).await?;
        let started = Instant::now();
        floor_requests = batch_write_all(&client, &floor_table, &stored).await?;
        floor.push(started.elapsed());
        client.delete_table().table_name(&floor_table).send().await?;

        counter.reset();
        let started = Instant::now();
        let replay = consumer
            .process_body(bytes)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        replays.push(started.elapsed());
        anyhow::ensure!(replay.windows_written == 0, "a replay wrote windows: {replay:?}");
        replay_requests = counter.snapshot();
        client.delete_table().table_name(&table).send().await?;
    }
    Ok(DynamoFigures {
        first_delivery: Timing::from_samples(samples),
        requests,
        replay: Timing::from_samples(replays),
        replay_requests,
        windows_written,
        floor_batch_write: Timing::from_samples(floor),
        floor_requests,
    })
}
