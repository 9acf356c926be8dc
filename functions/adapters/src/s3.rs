//! S3 as the domain's [`ObjectStore`]: archive blocks of store events, and oversized poison
//! messages. Keys and bytes are decided by the domain; this adapter only moves them.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use pipeline_domain::consume::ports::{check_object_size, ObjectStore};
use pipeline_domain::ports::PortError;

use crate::aws::classify_sdk_error;

const COMPONENT: &str = "s3";

#[derive(Debug, Clone)]
pub struct S3Objects {
    client: Client,
    bucket: String,
}

impl S3Objects {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }
}

impl ObjectStore for S3Objects {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match response {
            Ok(output) => {
                let bytes = output.body.collect().await.map_err(|e| PortError::Transient {
                    component: COMPONENT,
                    message: format!("reading s3://{}/{key}: {e}", self.bucket),
                })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) => Err(match classify_sdk_error(COMPONENT, &e) {
                // S3 answers 403 instead of 404 for a missing key when the caller may not list the
                // bucket; say so, since the fix is in IAM, not here.
                PortError::Rejected { component, message } if message.contains("AccessDenied") => {
                    PortError::Rejected {
                        component,
                        message: format!(
                            "{message} (reading s3://{}/{key}; without s3:ListBucket on the bucket, \
                             a missing object is reported as AccessDenied)",
                            self.bucket
                        ),
                    }
                }
                other => other,
            }),
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, content_type: &'static str) -> Result<(), PortError> {
        check_object_size(key, bytes.len())?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map(drop)
            .map_err(|e| classify_sdk_error(COMPONENT, &e))
    }
}
