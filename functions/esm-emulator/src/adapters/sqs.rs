//! The on-failure destination: an SQS queue (standard or FIFO).

use aws_sdk_sqs::error::DisplayErrorContext;

use crate::ports::{DestinationError, FailureDestination};

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
