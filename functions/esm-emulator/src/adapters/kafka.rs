//! Kafka side of the mapping, with rdkafka. Partitions are assigned explicitly (no group join, so
//! no rebalance wait on brokers that are slow at it) while offsets are committed under the mapping's
//! consumer group, exactly where a real ESM keeps them.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, Timestamp};
use rdkafka::{Offset, TopicPartitionList};
use tracing::{info, warn};

use crate::config::{MappingConfig, StartingPosition};
use crate::event::{PolledRecord, TimestampType};
use crate::ports::{PartitionLag, RecordSource, SourceError};

const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

pub struct KafkaSource {
    consumer: StreamConsumer,
    topic: String,
    /// Per partition: the committed next offset (None before the first commit) and where reading
    /// started, which is what lag counts from until something is committed.
    positions: BTreeMap<i32, Position>,
}

#[derive(Debug, Clone, Copy)]
struct Position {
    committed: Option<i64>,
    started_at: i64,
}

fn kafka_error(context: &str, error: impl std::fmt::Display) -> SourceError {
    SourceError::Kafka(format!("{context}: {error}"))
}

impl KafkaSource {
    /// Connects, reads the group's committed offsets and assigns every partition of the topic:
    /// committed partitions resume there, the others start at the configured position.
    pub fn connect(config: &MappingConfig) -> Result<Self, SourceError> {
        let reset = match config.starting_position {
            StartingPosition::TrimHorizon => "earliest",
            StartingPosition::Latest => "latest",
        };
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &config.bootstrap_servers)
            .set("group.id", &config.consumer_group)
            .set("client.id", format!("esm-emulator-{}", config.consumer_group))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", reset)
            .set("session.timeout.ms", "6000")
            .set("socket.timeout.ms", "10000")
            .set("fetch.wait.max.ms", "100")
            .set("log_level", "3")
            .create()
            .map_err(|e| kafka_error("creating consumer", e))?;
        let metadata = consumer
            .fetch_metadata(Some(&config.topic), METADATA_TIMEOUT)
            .map_err(|e| {
                kafka_error(
                    &format!("metadata for {} at {}", config.topic, config.bootstrap_servers),
                    e,
                )
            })?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == config.topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            // scripts/local-stack.sh up creates the contract topics; topic-admin does on AWS.
            return Err(SourceError::TopicNotFound {
                topic: config.topic.clone(),
                servers: config.bootstrap_servers.clone(),
            });
        }
        let mut wanted = TopicPartitionList::new();
        for &partition in &partitions {
            wanted.add_partition(&config.topic, partition);
        }
        let stored = consumer
            .committed_offsets(wanted, METADATA_TIMEOUT)
            .map_err(|e| kafka_error("reading committed offsets", e))?;
        let mut assignment = TopicPartitionList::new();
        let mut positions = BTreeMap::new();
        for element in stored.elements() {
            let partition = element.partition();
            let position = match element.offset() {
                Offset::Offset(n) if n >= 0 => Position {
                    committed: Some(n),
                    started_at: n,
                },
                _ => {
                    // Resolve the starting position to a concrete offset now, so LATEST means
                    // "after the mapping started" and lag is measured from there.
                    let (low, high) = consumer
                        .fetch_watermarks(&config.topic, partition, METADATA_TIMEOUT)
                        .map_err(|e| kafka_error("reading watermarks", e))?;
                    let started_at = match config.starting_position {
                        StartingPosition::TrimHorizon => low,
                        StartingPosition::Latest => high,
                    };
                    Position {
                        committed: None,
                        started_at,
                    }
                }
            };
            positions.insert(partition, position);
            assignment
                .add_partition_offset(&config.topic, partition, Offset::Offset(position.started_at))
                .map_err(|e| kafka_error("building assignment", e))?;
        }
        consumer
            .assign(&assignment)
            .map_err(|e| kafka_error("assigning partitions", e))?;
        info!(topic = %config.topic, group = %config.consumer_group, ?positions, "assigned");
        Ok(Self {
            consumer,
            topic: config.topic.clone(),
            positions,
        })
    }
}

fn to_polled(message: &rdkafka::message::BorrowedMessage<'_>) -> PolledRecord {
    let (timestamp, timestamp_type) = match message.timestamp() {
        Timestamp::CreateTime(t) => (t, TimestampType::CreateTime),
        Timestamp::LogAppendTime(t) => (t, TimestampType::LogAppendTime),
        Timestamp::NotAvailable => (-1, TimestampType::NoTimestampType),
    };
    let headers = message
        .headers()
        .map(|h| {
            h.iter()
                .map(|header| (header.key.to_string(), header.value.map(<[u8]>::to_vec)))
                .collect()
        })
        .unwrap_or_default();
    PolledRecord {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp,
        timestamp_type,
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
        headers,
    }
}

impl RecordSource for KafkaSource {
    async fn next_record(&mut self, timeout: Duration) -> Result<Option<PolledRecord>, SourceError> {
        match tokio::time::timeout(timeout, self.consumer.recv()).await {
            Err(_elapsed) => Ok(None),
            Ok(Ok(message)) => Ok(Some(to_polled(&message))),
            // librdkafka reconnects by itself (broker restarts, AllBrokersDown): report and keep
            // polling rather than ending the mapping.
            Ok(Err(error)) => {
                warn!(%error, topic = %self.topic, "kafka poll error; retrying");
                tokio::time::sleep(timeout.min(Duration::from_secs(1))).await;
                Ok(None)
            }
        }
    }

    async fn commit(&mut self, next_offsets: &[(String, i32, i64)]) -> Result<(), SourceError> {
        let mut list = TopicPartitionList::new();
        for (topic, partition, offset) in next_offsets {
            list.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(|e| kafka_error("building commit", e))?;
        }
        self.consumer
            .commit(&list, CommitMode::Sync)
            .map_err(|e| kafka_error("committing offsets", e))?;
        for (topic, partition, offset) in next_offsets {
            if *topic == self.topic {
                if let Some(position) = self.positions.get_mut(partition) {
                    position.committed = Some(*offset);
                }
            }
        }
        Ok(())
    }

    async fn lag(&mut self) -> Result<Vec<PartitionLag>, SourceError> {
        let mut out = Vec::with_capacity(self.positions.len());
        for (&partition, position) in &self.positions {
            let (_low, high) = self
                .consumer
                .fetch_watermarks(&self.topic, partition, METADATA_TIMEOUT)
                .map_err(|e| kafka_error("reading watermarks", e))?;
            let from = position.committed.unwrap_or(position.started_at);
            out.push(PartitionLag {
                partition,
                committed: position.committed,
                high_watermark: high,
                lag: (high - from).max(0),
            });
        }
        Ok(out)
    }
}

/// Reads offset ranges again for a redrive: partitions are assigned at the range's first offset,
/// nothing is ever committed (a redrive must not move any mapping's position).
pub struct KafkaRangeReader {
    consumer: StreamConsumer,
    /// How long to wait for the next record before calling a range incomplete.
    idle_timeout: Duration,
}

impl KafkaRangeReader {
    pub fn connect(bootstrap_servers: &str, idle_timeout: Duration) -> Result<Self, SourceError> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap_servers)
            // librdkafka wants a group even for assigned partitions; this one never commits.
            .set(
                "group.id",
                format!("esm-redrive-{}", uuid::Uuid::new_v4().simple()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "error")
            .set("socket.timeout.ms", "10000")
            .set("fetch.wait.max.ms", "100")
            .set("log_level", "3")
            .create()
            .map_err(|e| kafka_error("creating the redrive reader", e))?;
        Ok(Self {
            consumer,
            idle_timeout,
        })
    }
}

impl crate::ports::RangeReader for KafkaRangeReader {
    async fn read_range(
        &mut self,
        topic: &str,
        partition: i32,
        first: i64,
        last: i64,
    ) -> Result<Vec<PolledRecord>, SourceError> {
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(first))
            .map_err(|e| kafka_error("building assignment", e))?;
        self.consumer
            .assign(&assignment)
            .map_err(|e| kafka_error("assigning the range", e))?;
        let mut records = Vec::new();
        loop {
            match tokio::time::timeout(self.idle_timeout, self.consumer.recv()).await {
                // Incomplete: the caller compares what arrived with the range.
                Err(_elapsed) => break,
                Ok(Ok(message)) => {
                    if message.topic() != topic || message.partition() != partition {
                        continue;
                    }
                    if message.offset() > last {
                        break;
                    }
                    if message.offset() >= first {
                        records.push(to_polled(&message));
                    }
                    if message.offset() == last {
                        break;
                    }
                }
                // An offset out of range (retention deleted it) ends up here with reset=error.
                Ok(Err(error)) => {
                    warn!(%error, topic, partition, first, last, "kafka error while re-reading a range");
                    break;
                }
            }
        }
        self.consumer
            .unassign()
            .map_err(|e| kafka_error("releasing the range", e))?;
        Ok(records)
    }
}
