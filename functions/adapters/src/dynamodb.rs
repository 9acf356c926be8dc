//! DynamoDB: window aggregates ([`DynamoWindowStore`]) and explicit events ([`DynamoExplicitEventStore`]).
//!
//! # Window item format
//! Key attributes come from the contract (`tables.windowAggregates`: `device_id` S, `window_start`
//! N, epoch ms). The other attributes are named by [`window_attr`]: `window_end` (exclusive, epoch
//! ms), `count`, `sum`/`min`/`max`/`avg` (°C as exact decimals of whole milli-degrees),
//! `first_event_time`/`last_event_time` (epoch ms) and `offsets`, a map from `topic-partition` to
//! the offsets applied, as merged intervals in text (`"0-41,50-99"`, see
//! `pipeline_domain::offsets`). Items written before the intervals hold a number there, the highest
//! applied offset; it reads as every offset up to it, which is what it meant then. Writes are
//! conditional on `count` (see `pipeline_domain::window`).
//!
//! # Explicit event item format
//! Built by the domain (`pipeline_domain::dynamodb_item::explicit_event_item`), which also sizes it
//! by DynamoDB's formula: keys from `tables.explicitEvents` (`source` = `topic-partition`,
//! `offset`), then `topic`, `partition`, `timestamp`, `format`, optional `key` (base64 as
//! delivered) and `schema_version_id`, and `payload`: the decoded document as native DynamoDB
//! types. Requests respect BatchWriteItem's 25 items and 16 MB; an item over 400 KB is refused
//! here, before DynamoDB refuses the whole request.
//!
//! # Partition ledger items
//! The same table holds one ledger item per `topic-partition` of every topic the consumer reads
//! (see `pipeline_domain::consume::ledger`), at `offset` -1, which no Kafka record has: `kind` =
//! `partition-ledger`, `lowest_offset`/`lowest_fingerprint`, `highest_offset`/
//! `highest_fingerprint`. Readers of explicit events skip items with a negative offset. Writes are
//! conditional on the four values read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use pipeline_contracts::Table;
use pipeline_domain::consume::ledger::{LedgerMark, PartitionLedger};
use pipeline_domain::consume::ports::{ExplicitEventStore, PartitionLedgerStore, SaveOutcome, WindowStore};
use pipeline_domain::consume::ExplicitEvent;
use pipeline_domain::dynamodb_item::{
    batch_write_requests, explicit_event_item, window_item, AttributeValue as DomainValue, Item,
};
use pipeline_domain::offsets::OffsetSet;
use pipeline_domain::ports::PortError;
use pipeline_domain::window::{parse_milli, WindowAggregate, WindowKey};

use crate::aws::classify_sdk_error;

const COMPONENT: &str = "dynamodb";

use pipeline_domain::limits::DYNAMODB_BATCH_GET_MAX_KEYS as MAX_GET_KEYS;
/// Rounds of re-sending unprocessed keys or items before giving up (transient).
const UNPROCESSED_ROUNDS: u32 = 8;

/// Non-key attribute names of a window item (the item is built by the domain).
pub use pipeline_domain::dynamodb_item::window_attr;

/// The `offset` of a partition's ledger item: below every Kafka offset.
pub const LEDGER_OFFSET: i64 = -1;

/// Non-key attribute names of a partition ledger item.
pub mod ledger_attr {
    pub const KIND: &str = "kind";
    pub const KIND_VALUE: &str = "partition-ledger";
    pub const LOWEST_OFFSET: &str = "lowest_offset";
    pub const LOWEST_FINGERPRINT: &str = "lowest_fingerprint";
    pub const HIGHEST_OFFSET: &str = "highest_offset";
    pub const HIGHEST_FINGERPRINT: &str = "highest_fingerprint";
}

/// Non-key attribute names of an explicit-event item (the item is built by the domain).
pub use pipeline_domain::dynamodb_item::explicit_attr;

/// Before round `round` (0 = the first request) of re-sending what `operation` left unprocessed:
/// a backoff of 50 ms doubling, capped at 2 s, and a transient error after
/// [`UNPROCESSED_ROUNDS`] rounds.
async fn before_round(round: u32, pending: usize, what: &str, operation: &str) -> Result<(), PortError> {
    if round == 0 {
        return Ok(());
    }
    if round > UNPROCESSED_ROUNDS {
        return Err(PortError::Transient {
            component: COMPONENT,
            message: format!("{pending} {what} still unprocessed by {operation}"),
        });
    }
    let delay = Duration::from_millis(50u64.saturating_mul(1 << round.min(6))).min(Duration::from_secs(2));
    tokio::time::sleep(delay).await;
    Ok(())
}

/// Every item of `keys` (unique) that exists in `table`, by consistent reads: BatchGetItem takes
/// 100 keys per request and answers at most 16 MB, handing back what did not fit as
/// UnprocessedKeys, which are asked for again (after a backoff) up to [`UNPROCESSED_ROUNDS`] times.
async fn batch_get_all(
    client: &Client,
    table: &str,
    keys: Vec<HashMap<String, AttributeValue>>,
    what: &str,
) -> Result<Vec<HashMap<String, AttributeValue>>, PortError> {
    let mut found = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(MAX_GET_KEYS) {
        let mut pending = chunk.to_vec();
        let mut round = 0;
        while !pending.is_empty() {
            before_round(round, pending.len(), what, "BatchGetItem").await?;
            let request = KeysAndAttributes::builder()
                .set_keys(Some(std::mem::take(&mut pending)))
                .consistent_read(true)
                .build()
                .map_err(|e| rejected(e.to_string()))?;
            let response = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(|e| classify_sdk_error(COMPONENT, &e))?;
            if let Some(items) = response.responses.and_then(|mut r| r.remove(table)) {
                found.extend(items);
            }
            if let Some(unprocessed) = response.unprocessed_keys.and_then(|mut u| u.remove(table)) {
                pending = unprocessed.keys;
            }
            round += 1;
        }
    }
    Ok(found)
}

fn rejected(message: impl Into<String>) -> PortError {
    PortError::Rejected {
        component: COMPONENT,
        message: message.into(),
    }
}

#[derive(Debug, Clone)]
pub struct DynamoWindowStore {
    client: Client,
    table: String,
    /// Key attribute names (`tables.windowAggregates`).
    contract: Table,
}

impl DynamoWindowStore {
    /// `table_name` is the deployed name (env); key attribute names come from the contract.
    pub fn new(client: Client, table_name: impl Into<String>, contract: &Table) -> Self {
        Self {
            client,
            table: table_name.into(),
            contract: contract.clone(),
        }
    }

    fn key_item(&self, key: &WindowKey) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (
                self.contract.partition_key.clone(),
                AttributeValue::S(key.device_id.clone()),
            ),
            (
                self.contract.sort_key.clone(),
                AttributeValue::N(key.window_start_ms.to_string()),
            ),
        ])
    }

    /// The item for an aggregate: the domain's item ([`window_item`]), translated.
    pub fn to_item(&self, a: &WindowAggregate) -> HashMap<String, AttributeValue> {
        to_sdk_item(&window_item(a, &self.contract))
    }

    /// Parses a stored item; a malformed one is a rejection (someone else wrote the table).
    pub fn from_item(&self, item: &HashMap<String, AttributeValue>) -> Result<WindowAggregate, PortError> {
        let text = |name: &str| -> Result<&str, PortError> {
            match item.get(name) {
                Some(AttributeValue::N(v)) | Some(AttributeValue::S(v)) => Ok(v.as_str()),
                _ => Err(rejected(format!("window item lacks attribute {name:?}"))),
            }
        };
        let integer = |name: &str| -> Result<i64, PortError> {
            text(name)?
                .parse::<i64>()
                .map_err(|e| rejected(format!("window item attribute {name:?}: {e}")))
        };
        let milli = |name: &str| -> Result<i128, PortError> {
            let raw = text(name)?;
            parse_milli(raw).ok_or_else(|| rejected(format!("window item attribute {name:?}={raw:?}")))
        };
        let small_milli = |name: &str| -> Result<i64, PortError> {
            i64::try_from(milli(name)?)
                .map_err(|_| rejected(format!("window item attribute {name:?} overflows")))
        };
        let applied = match item.get(window_attr::OFFSETS) {
            Some(AttributeValue::M(map)) => map
                .iter()
                .map(|(tp, v)| match v {
                    AttributeValue::S(text) => OffsetSet::parse(text)
                        .map(|offsets| (tp.clone(), offsets))
                        .map_err(|e| rejected(format!("offsets of {tp}: {e}"))),
                    AttributeValue::N(legacy) => legacy
                        .parse::<i64>()
                        .map(|highest| (tp.clone(), OffsetSet::up_to(highest)))
                        .map_err(|e| rejected(format!("offset of {tp}: {e}"))),
                    _ => Err(rejected(format!("offsets of {tp} are neither text nor a number"))),
                })
                .collect::<Result<BTreeMap<_, _>, _>>()?,
            _ => return Err(rejected("window item lacks its offsets map")),
        };
        Ok(WindowAggregate {
            device_id: text(&self.contract.partition_key)?.to_string(),
            window_start_ms: integer(&self.contract.sort_key)?,
            window_end_ms: integer(window_attr::WINDOW_END)?,
            count: u64::try_from(integer(window_attr::COUNT)?)
                .map_err(|_| rejected("negative window count"))?,
            sum_milli: milli(window_attr::SUM)?,
            min_milli: small_milli(window_attr::MIN)?,
            max_milli: small_milli(window_attr::MAX)?,
            first_event_time_ms: integer(window_attr::FIRST_EVENT_TIME)?,
            last_event_time_ms: integer(window_attr::LAST_EVENT_TIME)?,
            applied,
        })
    }
}

impl WindowStore for DynamoWindowStore {
    async fn load(&self, keys: &[WindowKey]) -> Result<Vec<WindowAggregate>, PortError> {
        // BatchGetItem refuses duplicate keys in one request.
        let mut seen = HashSet::new();
        let unique: Vec<&WindowKey> = keys.iter().filter(|k| seen.insert(*k)).collect();
        let keys = unique.iter().map(|k| self.key_item(k)).collect();
        batch_get_all(&self.client, &self.table, keys, "window keys")
            .await?
            .iter()
            .map(|item| self.from_item(item))
            .collect()
    }

    async fn save(
        &self,
        aggregate: &WindowAggregate,
        expected_count: Option<u64>,
    ) -> Result<SaveOutcome, PortError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.to_item(aggregate)));
        let request = match expected_count {
            None => request
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", &self.contract.partition_key),
            Some(count) => request
                .condition_expression("#count = :expected")
                .expression_attribute_names("#count", window_attr::COUNT)
                .expression_attribute_values(":expected", AttributeValue::N(count.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(SaveOutcome::Saved),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(SaveOutcome::Conflict)
            }
            Err(e) => Err(classify_sdk_error(COMPONENT, &e)),
        }
    }
}

#[derive(Debug, Clone)]
pub struct DynamoExplicitEventStore {
    client: Client,
    table: String,
    /// Key attribute names (`tables.explicitEvents`).
    contract: Table,
}

impl DynamoExplicitEventStore {
    pub fn new(client: Client, table_name: impl Into<String>, contract: &Table) -> Self {
        Self {
            client,
            table: table_name.into(),
            contract: contract.clone(),
        }
    }

    /// The SDK item of an event: the domain's item ([`explicit_event_item`]), translated.
    pub fn to_item(&self, event: &ExplicitEvent) -> HashMap<String, AttributeValue> {
        to_sdk_item(&explicit_event_item(event, &self.contract))
    }
}

impl DynamoExplicitEventStore {
    fn ledger_key(&self, topic_partition: &str) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (
                self.contract.partition_key.clone(),
                AttributeValue::S(topic_partition.to_string()),
            ),
            (
                self.contract.sort_key.clone(),
                AttributeValue::N(LEDGER_OFFSET.to_string()),
            ),
        ])
    }

    pub fn ledger_item(&self, ledger: &PartitionLedger) -> HashMap<String, AttributeValue> {
        let mut item = self.ledger_key(&ledger.topic_partition);
        item.insert(
            ledger_attr::KIND.into(),
            AttributeValue::S(ledger_attr::KIND_VALUE.into()),
        );
        for (offset_name, fingerprint_name, mark) in [
            (
                ledger_attr::LOWEST_OFFSET,
                ledger_attr::LOWEST_FINGERPRINT,
                &ledger.lowest,
            ),
            (
                ledger_attr::HIGHEST_OFFSET,
                ledger_attr::HIGHEST_FINGERPRINT,
                &ledger.highest,
            ),
        ] {
            item.insert(offset_name.into(), AttributeValue::N(mark.offset.to_string()));
            item.insert(
                fingerprint_name.into(),
                AttributeValue::S(mark.fingerprint.clone()),
            );
        }
        item
    }

    pub fn ledger_from_item(
        &self,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<PartitionLedger, PortError> {
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(v)) | Some(AttributeValue::N(v)) => Ok(v.clone()),
            _ => Err(rejected(format!("ledger item lacks attribute {name:?}"))),
        };
        let mark = |offset: &str, fingerprint: &str| -> Result<LedgerMark, PortError> {
            Ok(LedgerMark {
                offset: text(offset)?
                    .parse()
                    .map_err(|e| rejected(format!("ledger attribute {offset:?}: {e}")))?,
                fingerprint: text(fingerprint)?,
            })
        };
        Ok(PartitionLedger {
            topic_partition: text(&self.contract.partition_key)?,
            lowest: mark(ledger_attr::LOWEST_OFFSET, ledger_attr::LOWEST_FINGERPRINT)?,
            highest: mark(ledger_attr::HIGHEST_OFFSET, ledger_attr::HIGHEST_FINGERPRINT)?,
        })
    }
}

impl PartitionLedgerStore for DynamoExplicitEventStore {
    async fn load_ledgers(&self, topic_partitions: &[String]) -> Result<Vec<PartitionLedger>, PortError> {
        let unique: std::collections::BTreeSet<&String> = topic_partitions.iter().collect();
        let keys = unique.into_iter().map(|tp| self.ledger_key(tp)).collect();
        batch_get_all(&self.client, &self.table, keys, "ledger keys")
            .await?
            .iter()
            .map(|item| self.ledger_from_item(item))
            .collect()
    }

    async fn save_ledger(
        &self,
        ledger: &PartitionLedger,
        expected: Option<&PartitionLedger>,
    ) -> Result<SaveOutcome, PortError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(self.ledger_item(ledger)));
        let request = match expected {
            None => request
                .condition_expression("attribute_not_exists(#pk)")
                .expression_attribute_names("#pk", &self.contract.partition_key),
            Some(stored) => request
                .condition_expression("#lo = :lo AND #lf = :lf AND #hi = :hi AND #hf = :hf")
                .expression_attribute_names("#lo", ledger_attr::LOWEST_OFFSET)
                .expression_attribute_names("#lf", ledger_attr::LOWEST_FINGERPRINT)
                .expression_attribute_names("#hi", ledger_attr::HIGHEST_OFFSET)
                .expression_attribute_names("#hf", ledger_attr::HIGHEST_FINGERPRINT)
                .expression_attribute_values(":lo", AttributeValue::N(stored.lowest.offset.to_string()))
                .expression_attribute_values(":lf", AttributeValue::S(stored.lowest.fingerprint.clone()))
                .expression_attribute_values(":hi", AttributeValue::N(stored.highest.offset.to_string()))
                .expression_attribute_values(":hf", AttributeValue::S(stored.highest.fingerprint.clone())),
        };
        match request.send().await {
            Ok(_) => Ok(SaveOutcome::Saved),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                Ok(SaveOutcome::Conflict)
            }
            Err(e) => Err(classify_sdk_error(COMPONENT, &e)),
        }
    }
}

/// The domain's item as the SDK's.
pub fn to_sdk_item(item: &Item) -> HashMap<String, AttributeValue> {
    item.iter().map(|(k, v)| (k.clone(), to_sdk(v))).collect()
}

fn to_sdk(value: &DomainValue) -> AttributeValue {
    match value {
        DomainValue::S(s) => AttributeValue::S(s.clone()),
        DomainValue::N(n) => AttributeValue::N(n.clone()),
        DomainValue::B(b) => AttributeValue::B(Blob::new(b.clone())),
        DomainValue::Bool(b) => AttributeValue::Bool(*b),
        DomainValue::Null => AttributeValue::Null(true),
        DomainValue::L(items) => AttributeValue::L(items.iter().map(to_sdk).collect()),
        DomainValue::M(map) => AttributeValue::M(map.iter().map(|(k, v)| (k.clone(), to_sdk(v))).collect()),
        DomainValue::Ss(items) => AttributeValue::Ss(items.clone()),
        DomainValue::Ns(items) => AttributeValue::Ns(items.clone()),
        DomainValue::Bs(items) => AttributeValue::Bs(items.iter().map(|b| Blob::new(b.clone())).collect()),
    }
}

/// Requests of at most 25 items; an item over 400 KB (DynamoDB's formula) is refused before
/// anything is sent, as DynamoDB would refuse the whole request (one home:
/// `dynamodb_item::batch_write_requests`, which the in-memory fake sends too).
fn write_chunks(items: Vec<(Item, String)>) -> Result<Vec<Vec<Item>>, PortError> {
    batch_write_requests(items).map_err(|e| rejected(e.to_string()))
}

impl ExplicitEventStore for DynamoExplicitEventStore {
    async fn put(&self, events: &[ExplicitEvent]) -> Result<(), PortError> {
        // One write per key: BatchWriteItem refuses duplicate keys in a request.
        let by_coordinates: BTreeMap<_, _> = events.iter().map(|e| (&e.coordinates, e)).collect();
        let items = by_coordinates
            .values()
            .map(|event| {
                (
                    explicit_event_item(event, &self.contract),
                    event.coordinates.to_string(),
                )
            })
            .collect();
        for chunk in write_chunks(items)? {
            let mut pending: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(to_sdk_item(item)))
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build())
                        .map_err(|e| rejected(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            let mut round = 0;
            while !pending.is_empty() {
                before_round(round, pending.len(), "items", "BatchWriteItem").await?;
                let response = self
                    .client
                    .batch_write_item()
                    .request_items(&self.table, std::mem::take(&mut pending))
                    .send()
                    .await
                    .map_err(|e| classify_sdk_error(COMPONENT, &e))?;
                if let Some(unprocessed) = response.unprocessed_items().and_then(|u| u.get(&self.table)) {
                    pending = unprocessed.clone();
                }
                round += 1;
            }
        }
        Ok(())
    }
}

/// Creates an on-demand table keyed as the contract's `table`, for the tests and the bench (the
/// stacks and `scripts/local/provision.py` create the pipeline's own tables).
#[cfg(feature = "testing")]
pub async fn create_contract_table(client: &Client, name: &str, table: &Table) -> Result<(), PortError> {
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    };
    use pipeline_contracts::KeyType as ContractKeyType;

    let scalar = |key_type: ContractKeyType| match key_type {
        ContractKeyType::S => ScalarAttributeType::S,
        ContractKeyType::N => ScalarAttributeType::N,
        ContractKeyType::B => ScalarAttributeType::B,
    };
    let invalid = |e: aws_sdk_dynamodb::error::BuildError| PortError::Rejected {
        component: COMPONENT,
        message: format!("create table {name}: {e}"),
    };
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest);
    for (attribute, key_type, role) in [
        (&table.partition_key, table.partition_key_type, KeyType::Hash),
        (&table.sort_key, table.sort_key_type, KeyType::Range),
    ] {
        request = request
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(attribute)
                    .key_type(role)
                    .build()
                    .map_err(invalid)?,
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(attribute)
                    .attribute_type(scalar(key_type))
                    .build()
                    .map_err(invalid)?,
            );
    }
    request
        .send()
        .await
        .map(|_| ())
        .map_err(|e| classify_sdk_error(COMPONENT, &e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_contracts::contracts;
    use pipeline_domain::dynamodb_item::item_size;
    use pipeline_domain::dynamodb_item::json_to_attribute as domain_json_to_attribute;
    use pipeline_domain::limits::DYNAMODB_MAX_ITEM_BYTES;

    fn store() -> DynamoWindowStore {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        DynamoWindowStore::new(
            Client::from_conf(config),
            "t",
            &contracts().tables.window_aggregates,
        )
    }

    #[test]
    fn window_items_round_trip_and_use_the_contract_keys() {
        let aggregate = WindowAggregate {
            device_id: "dev-1".into(),
            window_start_ms: -60_000,
            window_end_ms: 0,
            count: 3,
            sum_milli: 38_751,
            min_milli: -1000,
            max_milli: 20_500,
            first_event_time_ms: -59_000,
            last_event_time_ms: -1,
            applied: BTreeMap::from([
                ("sensor-readings-0".into(), OffsetSet::parse("0-4,6").unwrap()),
                ("sensor-readings-1".into(), OffsetSet::from_offsets([2])),
            ]),
        };
        let store = store();
        let item = store.to_item(&aggregate);
        let table = &contracts().tables.window_aggregates;
        assert_eq!(item[&table.partition_key], AttributeValue::S("dev-1".into()));
        assert_eq!(item[&table.sort_key], AttributeValue::N("-60000".into()));
        assert_eq!(item[window_attr::SUM], AttributeValue::N("38.751".into()));
        assert_eq!(item[window_attr::AVG], AttributeValue::N("12.917".into()));
        assert_eq!(item[window_attr::MIN], AttributeValue::N("-1".into()));
        assert_eq!(store.from_item(&item).unwrap(), aggregate);

        // DynamoDB may hand numbers back normalised differently; parsing must stay exact.
        let mut normalised = item.clone();
        normalised.insert(window_attr::SUM.into(), AttributeValue::N("3.8751E+1".into()));
        assert_eq!(store.from_item(&normalised).unwrap(), aggregate);

        let AttributeValue::M(offsets) = &item[window_attr::OFFSETS] else {
            panic!("offsets is a map")
        };
        assert_eq!(offsets["sensor-readings-0"], AttributeValue::S("0-4,6".into()));

        // An item written with a single high-water number reads as everything up to it.
        let mut legacy = item.clone();
        legacy.insert(
            window_attr::OFFSETS.into(),
            AttributeValue::M(HashMap::from([(
                "sensor-readings-0".into(),
                AttributeValue::N("6".into()),
            )])),
        );
        assert_eq!(
            store.from_item(&legacy).unwrap().applied,
            BTreeMap::from([("sensor-readings-0".into(), OffsetSet::up_to(6))])
        );

        let mut broken = item;
        broken.remove(window_attr::OFFSETS);
        assert!(matches!(
            store.from_item(&broken),
            Err(PortError::Rejected { .. })
        ));
    }

    fn item_of(bytes: usize) -> (Item, String) {
        let item = Item::from([(
            "payload".into(),
            DomainValue::S("x".repeat(bytes - "payload".len())),
        )]);
        assert_eq!(item_size(&item), bytes);
        (item, format!("item of {bytes}"))
    }

    #[test]
    fn write_requests_hold_25_items_and_refuse_items_over_400_kb() {
        let sizes = |items: Vec<(Item, String)>| {
            write_chunks(items).map(|chunks| chunks.iter().map(Vec::len).collect::<Vec<_>>())
        };
        assert_eq!(
            sizes((0..51).map(|_| item_of(100)).collect()),
            Ok(vec![25, 25, 1])
        );
        assert_eq!(
            sizes((0..26).map(|_| item_of(DYNAMODB_MAX_ITEM_BYTES)).collect()),
            Ok(vec![25, 1])
        );
        let refused = sizes(vec![item_of(10), item_of(DYNAMODB_MAX_ITEM_BYTES + 1)]);
        assert!(
            matches!(&refused, Err(PortError::Rejected { message, .. }) if message.contains("409601 bytes")),
            "{refused:?}"
        );
    }

    #[test]
    fn ledger_items_round_trip_at_offset_minus_one() {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        let table = &contracts().tables.explicit_events;
        let store = DynamoExplicitEventStore::new(Client::from_conf(config), "t", table);
        let ledger = PartitionLedger {
            topic_partition: "store-events-2".into(),
            lowest: LedgerMark {
                offset: 0,
                fingerprint: "a".repeat(32),
            },
            highest: LedgerMark {
                offset: 41,
                fingerprint: "b".repeat(32),
            },
        };
        let item = store.ledger_item(&ledger);
        assert_eq!(item[&table.sort_key], AttributeValue::N("-1".into()));
        assert_eq!(
            item[&table.partition_key],
            AttributeValue::S("store-events-2".into())
        );
        assert_eq!(
            item[ledger_attr::KIND],
            AttributeValue::S("partition-ledger".into())
        );
        assert_eq!(store.ledger_from_item(&item).unwrap(), ledger);
    }

    #[test]
    fn json_documents_become_native_attributes() {
        let value = serde_json::json!({"a": [1, 2.5, null, true], "b": {"c": "x"}});
        let AttributeValue::M(map) = to_sdk(&domain_json_to_attribute(&value)) else {
            panic!()
        };
        assert_eq!(
            map["a"],
            AttributeValue::L(vec![
                AttributeValue::N("1".into()),
                AttributeValue::N("2.5".into()),
                AttributeValue::Null(true),
                AttributeValue::Bool(true),
            ])
        );
        assert_eq!(
            map["b"],
            AttributeValue::M(HashMap::from([("c".into(), AttributeValue::S("x".into()))]))
        );
    }
}
