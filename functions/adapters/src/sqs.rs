//! SQS FIFO as the domain's [`PoisonSink`].
//!
//! Messages go out with `SendMessageBatch` (at most 10 entries and 256 KiB per request, from
//! `pipeline_domain::limits`), grouped per `topic-partition` and deduplicated per record (ids from
//! [`PoisonMessage::group_id`]/[`PoisonMessage::deduplication_id`]), so a replayed batch within
//! the queue's five-minute deduplication window adds nothing. Entries SQS fails without blaming the
//! sender are re-sent with backoff. A message too large for SQS is written whole to S3 at a
//! deterministic key and replaced in the queue by a pointer carrying the coordinates and the
//! (capped) reason, by the domain's [`PoisonMessage::delivery`], which the in-memory fake uses too.
//! Every body is checked against SQS's message size here, before sending: moto accepts messages
//! SQS refuses, so the local stack would not catch an oversized one.

use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use pipeline_domain::consume::ports::{ObjectStore, PoisonMessage, PoisonSink, QueueDelivery};
use pipeline_domain::ports::PortError;

use crate::aws::classify_sdk_error;
use crate::s3::S3Objects;

const COMPONENT: &str = "sqs";

use pipeline_domain::limits::{pack_send_message_batches, sqs_message_bytes, SQS_MAX_MESSAGE_BYTES};
/// Re-sends of entries SQS failed on its side before giving up (transient).
const FAILED_ENTRY_ROUNDS: u32 = 5;

#[derive(Debug, Clone)]
pub struct SqsPoisonSink {
    client: Client,
    queue_url: String,
    oversize: S3Objects,
    oversize_prefix: String,
}

impl SqsPoisonSink {
    /// `oversize` and `oversize_prefix` (contract `bucket.oversizePoisonPrefix`) receive messages
    /// too large for SQS.
    pub fn new(
        client: Client,
        queue_url: impl Into<String>,
        oversize: S3Objects,
        oversize_prefix: impl Into<String>,
    ) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
            oversize,
            oversize_prefix: oversize_prefix.into(),
        }
    }

    /// The body to enqueue, offloading the full message to S3 when it is too large.
    async fn body_for(&self, message: &PoisonMessage) -> Result<String, PortError> {
        let delivery = message
            .delivery(self.oversize.bucket(), &self.oversize_prefix)
            .map_err(|e| PortError::Rejected {
                component: COMPONENT,
                message: e.to_string(),
            })?;
        let body = match delivery {
            QueueDelivery::Inline(body) => body,
            QueueDelivery::Offload {
                key,
                full_body,
                pointer_body,
            } => {
                self.oversize
                    .put(&key, full_body.into_bytes(), "application/json")
                    .await?;
                pointer_body
            }
        };
        check_size(&body)?;
        Ok(body)
    }
}

/// SQS refuses a message over its `MaximumMessageSize`; refusing it here says why, where moto
/// would have accepted it.
fn check_size(body: &str) -> Result<(), PortError> {
    let size = sqs_message_bytes(body, &[]);
    if size > SQS_MAX_MESSAGE_BYTES {
        return Err(PortError::Rejected {
            component: COMPONENT,
            message: format!("message of {size} bytes exceeds SQS's {SQS_MAX_MESSAGE_BYTES}-byte limit"),
        });
    }
    Ok(())
}

struct Entry {
    body: String,
    group_id: String,
    deduplication_id: String,
}

/// Packs entries into requests of at most 10 entries and 256 KiB (one home:
/// `limits::pack_send_message_batches`, which the in-memory queue uses too).
fn pack(entries: Vec<Entry>) -> Vec<Vec<Entry>> {
    pack_send_message_batches(entries, |entry| entry.body.len())
}

impl PoisonSink for SqsPoisonSink {
    async fn send(&self, messages: &[PoisonMessage]) -> Result<(), PortError> {
        let mut entries = Vec::with_capacity(messages.len());
        for message in messages {
            entries.push(Entry {
                body: self.body_for(message).await?,
                group_id: message.group_id(),
                deduplication_id: message.deduplication_id(),
            });
        }
        for request in pack(entries) {
            let mut pending: Vec<&Entry> = request.iter().collect();
            let mut round = 0;
            while !pending.is_empty() {
                if round > 0 {
                    if round > FAILED_ENTRY_ROUNDS {
                        return Err(PortError::Transient {
                            component: COMPONENT,
                            message: format!("{} poison messages still failing", pending.len()),
                        });
                    }
                    tokio::time::sleep(Duration::from_millis(100 << round.min(5))).await;
                }
                let batch = pending
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(format!("m{i}"))
                            .message_body(&e.body)
                            .message_group_id(&e.group_id)
                            .message_deduplication_id(&e.deduplication_id)
                            .build()
                            .map_err(|err| PortError::Rejected {
                                component: COMPONENT,
                                message: err.to_string(),
                            })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let response = self
                    .client
                    .send_message_batch()
                    .queue_url(&self.queue_url)
                    .set_entries(Some(batch))
                    .send()
                    .await
                    .map_err(|e| classify_sdk_error(COMPONENT, &e))?;
                let mut retry = Vec::new();
                for failed in response.failed() {
                    if failed.sender_fault() {
                        return Err(PortError::Rejected {
                            component: COMPONENT,
                            message: format!(
                                "SendMessageBatch refused an entry: {}: {}",
                                failed.code(),
                                failed.message().unwrap_or_default()
                            ),
                        });
                    }
                    let index = failed
                        .id()
                        .strip_prefix('m')
                        .and_then(|i| i.parse::<usize>().ok());
                    match index.and_then(|i| pending.get(i)) {
                        Some(entry) => retry.push(*entry),
                        None => {
                            return Err(PortError::Rejected {
                                component: COMPONENT,
                                message: format!(
                                    "SendMessageBatch reported unknown entry id {}",
                                    failed.id()
                                ),
                            })
                        }
                    }
                }
                pending = retry;
                round += 1;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline_domain::limits::SQS_MAX_BATCH_BYTES as MAX_REQUEST_BYTES;

    fn entry(size: usize) -> Entry {
        Entry {
            body: "x".repeat(size),
            group_id: "g".into(),
            deduplication_id: "d".into(),
        }
    }

    #[test]
    fn packing_respects_entry_and_byte_limits() {
        let sizes: Vec<usize> = pack((0..23).map(|_| entry(10)).collect())
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![10, 10, 3]);
        let big = pack((0..5).map(|_| entry(100 * 1024)).collect());
        assert_eq!(big.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 1]);
        assert!(pack(Vec::new()).is_empty());
    }

    #[test]
    fn packing_fills_a_request_up_to_the_byte_limit_exactly() {
        let sizes: Vec<usize> = pack(vec![entry(MAX_REQUEST_BYTES - 10), entry(10), entry(1)])
            .iter()
            .map(Vec::len)
            .collect();
        assert_eq!(sizes, vec![2, 1]);
    }

    #[test]
    fn bodies_over_the_sqs_limit_are_refused_before_sending() {
        assert_eq!(check_size(&"x".repeat(SQS_MAX_MESSAGE_BYTES)), Ok(()));
        // 300 KB: what moto accepts and SQS refuses.
        assert!(matches!(
            check_size(&"x".repeat(300 * 1000)),
            Err(PortError::Rejected { .. })
        ));
        assert!(matches!(
            check_size(&"x".repeat(SQS_MAX_MESSAGE_BYTES + 1)),
            Err(PortError::Rejected { .. })
        ));
    }
}
