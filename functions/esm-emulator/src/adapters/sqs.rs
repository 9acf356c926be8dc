//! The on-failure destination: an SQS queue (standard or FIFO), written by the mapping and read
//! by a redrive.

use aws_sdk_sqs::error::DisplayErrorContext;

use crate::ports::{DestinationError, FailureDestination, FailureQueue, QueuedFailure};

pub struct SqsDestination {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    fifo: bool,
    message_group: String,
}

impl SqsDestination {
    pub fn new(config: &aws_config::SdkConfig, queue_url: &str, message_group: &str) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(config),
            queue_url: queue_url.to_string(),
            fifo: queue_url.ends_with(".fifo"),
            message_group: message_group.to_string(),
        }
    }
}

impl FailureDestination for SqsDestination {
    async fn send(&self, body: String, deduplication_id: String) -> Result<(), DestinationError> {
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body);
        if self.fifo {
            request = request
                .message_group_id(&self.message_group)
                .message_deduplication_id(deduplication_id);
        }
        request
            .send()
            .await
            .map(|_| ())
            .map_err(|e| DestinationError(format!("{} ({})", DisplayErrorContext(&e), self.queue_url)))
    }
}

/// The on-failure queue as a redrive reads it.
pub struct SqsFailureQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    /// Messages received by a redrive stay hidden this long, so a run sees each one once.
    visibility_timeout_secs: i32,
}

impl SqsFailureQueue {
    pub fn new(config: &aws_config::SdkConfig, queue_url: &str, visibility_timeout_secs: i32) -> Self {
        Self {
            client: aws_sdk_sqs::Client::new(config),
            queue_url: queue_url.to_string(),
            visibility_timeout_secs,
        }
    }
}

/// SQS returns at most 10 messages per ReceiveMessage (SQS API reference, ReceiveMessage,
/// `MaxNumberOfMessages`: 1 to 10).
const MAX_RECEIVE: usize = 10;

impl FailureQueue for SqsFailureQueue {
    async fn receive(&self, max: usize) -> Result<Vec<QueuedFailure>, DestinationError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max.clamp(1, MAX_RECEIVE) as i32)
            .visibility_timeout(self.visibility_timeout_secs)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| DestinationError(format!("{} ({})", DisplayErrorContext(&e), self.queue_url)))?;
        Ok(output
            .messages()
            .iter()
            .filter_map(|m| {
                Some(QueuedFailure {
                    id: m.message_id()?.to_string(),
                    receipt: m.receipt_handle()?.to_string(),
                    body: m.body()?.to_string(),
                })
            })
            .collect())
    }

    async fn delete(&self, receipt: &str) -> Result<(), DestinationError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| DestinationError(format!("{} ({})", DisplayErrorContext(&e), self.queue_url)))
    }
}
