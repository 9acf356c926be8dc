//! S3 as the domain's [`ObjectStore`]: archive blocks of store events, and oversized poison
//! messages. Keys and bytes are decided by the domain; this adapter only moves them.
//!
//! Archive blocks are written with S3 conditional writes (Amazon S3 User Guide, "How to prevent
//! object overwrites with conditional writes"): `If-None-Match: *` when the block was absent,
//! `If-Match: <ETag read>` otherwise. S3 refuses a write whose condition no longer holds with
//! 412 Precondition Failed, answers 409 ConditionalRequestConflict while another conditional
//! write of the same key is in flight, and 404 NoSuchKey to `If-Match` on a deleted object; all
//! three mean "someone else wrote it" and become [`ConditionalWrite::Conflict`].

use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use pipeline_domain::consume::ports::{
    check_object_size, ConditionalWrite, ObjectStore, StoredObject, WriteCondition,
};
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
    async fn get(&self, key: &str) -> Result<Option<StoredObject>, PortError> {
        let response = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match response {
            Ok(output) => {
                // Without the tag a conditional write could not be made: refuse rather than
                // fall back to an unconditional one.
                let etag = output
                    .e_tag()
                    .map(str::to_string)
                    .ok_or_else(|| PortError::Rejected {
                        component: COMPONENT,
                        message: format!("s3://{}/{key} was returned without an ETag", self.bucket),
                    })?;
                let bytes = output.body.collect().await.map_err(|e| PortError::Transient {
                    component: COMPONENT,
                    message: format!("reading s3://{}/{key}: {e}", self.bucket),
                })?;
                Ok(Some(StoredObject {
                    bytes: bytes.into_bytes().to_vec(),
                    etag,
                }))
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

    async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        content_type: &'static str,
        condition: WriteCondition,
    ) -> Result<ConditionalWrite, PortError> {
        check_object_size(key, bytes.len())?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(bytes));
        let request = match condition {
            WriteCondition::Absent => request.if_none_match("*"),
            WriteCondition::Matches(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(_) => Ok(ConditionalWrite::Written),
            Err(SdkError::ServiceError(service))
                if is_condition_conflict(service.raw().status().as_u16()) =>
            {
                Ok(ConditionalWrite::Conflict)
            }
            Err(e) => Err(classify_sdk_error(COMPONENT, &e)),
        }
    }
}

/// 412 Precondition Failed, 409 ConditionalRequestConflict, 404 NoSuchKey (an `If-Match` object
/// deleted meanwhile): the object is not what was read.
fn is_condition_conflict(status: u16) -> bool {
    matches!(status, 412 | 409 | 404)
}

/// Creates `name` in `region` (outside us-east-1 S3 needs the region as the location
/// constraint), for the tests and the bench; the stacks create the pipeline's own bucket.
#[cfg(feature = "testing")]
pub async fn create_test_bucket(client: &Client, name: &str, region: Option<&str>) -> Result<(), PortError> {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    let mut create = client.create_bucket().bucket(name);
    if let Some(region) = region.filter(|r| !r.is_empty() && *r != "us-east-1") {
        create = create.create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::from(region))
                .build(),
        );
    }
    create
        .send()
        .await
        .map(|_| ())
        .map_err(|e| classify_sdk_error(COMPONENT, &e))
}
