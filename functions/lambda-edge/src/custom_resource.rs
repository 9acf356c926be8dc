//! A CloudFormation custom resource request as the CDK provider framework hands it to an onEvent
//! handler, the response it expects back, and the runner that wires a handler into the Lambda
//! runtime. The request fields (`RequestType`, `LogicalResourceId`, `PhysicalResourceId`,
//! `ResourceProperties`, `OldResourceProperties`) are those of "Custom resource request objects",
//! <https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/crpg-ref-requests.html>.
//! CloudFormation turns every property value into a string, so the scalar readers here accept a
//! string or the JSON value a hand-written template may use.

use std::collections::BTreeMap;
use std::future::Future;

use lambda_runtime::{service_fn, LambdaEvent};
use serde::{de, Deserialize, Deserializer, Serialize};
use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EventError {
    #[error("not a CloudFormation custom resource request: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("invalid resource property {property}: {reason}")]
    InvalidProperty { property: &'static str, reason: String },
}

/// The error for one property, by its CloudFormation name.
pub fn invalid(property: &'static str, reason: impl Into<String>) -> EventError {
    EventError::InvalidProperty {
        property,
        reason: reason.into(),
    }
}

/// Validated resource properties of one resource type.
pub trait ResourceProperties: Sized {
    fn from_properties(properties: Value) -> Result<Self, EventError>;
}

/// For a request whose properties the handler never reads (a Delete that connects nowhere): old,
/// unparseable properties must not block a stack deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRead;

impl ResourceProperties for NotRead {
    fn from_properties(_: Value) -> Result<Self, EventError> {
        Ok(NotRead)
    }
}

/// A request with properties `P`, and `D` on Delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<P, D = P> {
    Create {
        logical_resource_id: String,
        properties: P,
    },
    Update {
        physical_resource_id: String,
        properties: P,
        /// The old properties; `None` also when they no longer parse (an older format), which
        /// must never block an update.
        previous: Option<P>,
    },
    Delete {
        physical_resource_id: String,
        properties: D,
    },
}

#[derive(Deserialize)]
#[serde(tag = "RequestType")]
enum Envelope {
    Create {
        #[serde(rename = "LogicalResourceId")]
        logical_resource_id: String,
        #[serde(rename = "ResourceProperties")]
        properties: Value,
    },
    Update {
        #[serde(rename = "PhysicalResourceId")]
        physical_resource_id: String,
        #[serde(rename = "ResourceProperties")]
        properties: Value,
        #[serde(rename = "OldResourceProperties", default)]
        previous: Option<Value>,
    },
    Delete {
        #[serde(rename = "PhysicalResourceId")]
        physical_resource_id: String,
        #[serde(rename = "ResourceProperties")]
        properties: Value,
    },
}

impl<P: ResourceProperties, D: ResourceProperties> Request<P, D> {
    /// Parses and validates the provider framework's onEvent payload.
    pub fn from_value(value: Value) -> Result<Self, EventError> {
        Ok(match serde_json::from_value::<Envelope>(value)? {
            Envelope::Create {
                logical_resource_id,
                properties,
            } => Request::Create {
                logical_resource_id,
                properties: P::from_properties(properties)?,
            },
            Envelope::Update {
                physical_resource_id,
                properties,
                previous,
            } => Request::Update {
                physical_resource_id,
                properties: P::from_properties(properties)?,
                previous: previous.and_then(|p| P::from_properties(p).ok()),
            },
            Envelope::Delete {
                physical_resource_id,
                properties,
            } => Request::Delete {
                physical_resource_id,
                properties: D::from_properties(properties)?,
            },
        })
    }
}

/// What the provider framework sends back to CloudFormation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderResponse {
    #[serde(rename = "PhysicalResourceId")]
    pub physical_resource_id: String,
    #[serde(rename = "Data")]
    pub data: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    Number(i64),
    Text(String),
}

/// A serde reader for an integer property written as a string or a number.
pub fn integer<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match StringOrNumber::deserialize(d)? {
        StringOrNumber::Number(n) => Ok(n),
        StringOrNumber::Text(s) => s
            .trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("{s:?} is not an integer"))),
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrBool {
    Bool(bool),
    Text(String),
}

/// A serde reader for an optional boolean property written as `"true"`/`"false"` or a boolean.
pub fn optional_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match Option::<StringOrBool>::deserialize(d)? {
        None => Ok(None),
        Some(StringOrBool::Bool(b)) => Ok(Some(b)),
        Some(StringOrBool::Text(s)) => match s.as_str() {
            "true" => Ok(Some(true)),
            "false" => Ok(Some(false)),
            other => Err(de::Error::custom(format!("{other:?} is not true or false"))),
        },
    }
}

/// Runs an onEvent handler in the Lambda runtime, with the shared tracing set-up: the payload goes
/// in as JSON, the handler's response comes back as the provider framework's JSON.
pub async fn run<H, F, E>(handler: H) -> Result<(), lambda_runtime::Error>
where
    H: Fn(Value) -> F,
    F: Future<Output = Result<ProviderResponse, E>>,
    E: Into<lambda_runtime::Error>,
{
    crate::logging::init_tracing().inspect_err(|e| tracing::error!(error = %e, "invalid configuration"))?;
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let response = handler(event.payload).await.map_err(Into::into)?;
        Ok::<Value, lambda_runtime::Error>(serde_json::to_value(response)?)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A resource with one required, non-empty property.
    #[derive(Debug, PartialEq)]
    struct Named(String);

    impl ResourceProperties for Named {
        fn from_properties(properties: Value) -> Result<Self, EventError> {
            #[derive(Deserialize)]
            struct Raw {
                #[serde(rename = "Name")]
                name: String,
            }
            let raw: Raw = serde_json::from_value(properties)?;
            if raw.name.is_empty() {
                return Err(invalid("Name", "must not be empty"));
            }
            Ok(Named(raw.name))
        }
    }

    const TOKEN: &str = "arn:aws-cn:lambda:cn-north-1:222222222222:function:msk-stack-TopicsProvider";

    #[test]
    fn every_request_type_is_read_with_its_identifiers() {
        let create = Request::<Named>::from_value(json!({
            "RequestType": "Create", "LogicalResourceId": "Topics",
            "ResourceProperties": {"ServiceToken": TOKEN, "Name": "a"}
        }))
        .unwrap();
        assert_eq!(
            create,
            Request::Create {
                logical_resource_id: "Topics".into(),
                properties: Named("a".into())
            }
        );
        let update = Request::<Named>::from_value(json!({
            "RequestType": "Update", "LogicalResourceId": "Topics", "PhysicalResourceId": "topics/a",
            "ResourceProperties": {"Name": "b"}, "OldResourceProperties": {"Name": "a"}
        }))
        .unwrap();
        assert_eq!(
            update,
            Request::Update {
                physical_resource_id: "topics/a".into(),
                properties: Named("b".into()),
                previous: Some(Named("a".into()))
            }
        );
        let delete = Request::<Named>::from_value(json!({
            "RequestType": "Delete", "LogicalResourceId": "Topics", "PhysicalResourceId": "topics/b",
            "ResourceProperties": {"Name": "b"}
        }))
        .unwrap();
        assert!(matches!(delete, Request::Delete { properties: Named(ref n), .. } if n == "b"));
    }

    #[test]
    fn old_properties_that_no_longer_parse_never_block_an_update() {
        let update = Request::<Named>::from_value(json!({
            "RequestType": "Update", "PhysicalResourceId": "topics/a",
            "ResourceProperties": {"Name": "b"}, "OldResourceProperties": {"Legacy": 1}
        }))
        .unwrap();
        assert!(matches!(update, Request::Update { previous: None, .. }));
    }

    #[test]
    fn a_delete_that_reads_no_properties_accepts_any() {
        let delete = Request::<Named, NotRead>::from_value(json!({
            "RequestType": "Delete", "PhysicalResourceId": "pipeline/pipeline_consumer",
            "ResourceProperties": {"Name": ""}
        }))
        .unwrap();
        assert_eq!(
            delete,
            Request::Delete {
                physical_resource_id: "pipeline/pipeline_consumer".into(),
                properties: NotRead
            }
        );
    }

    #[test]
    fn bad_requests_and_properties_are_refused() {
        for payload in [
            json!({"RequestType": "Replace", "ResourceProperties": {}}),
            json!({"RequestType": "Create", "ResourceProperties": {"Name": "a"}}),
            json!({"RequestType": "Update", "LogicalResourceId": "T", "ResourceProperties": {"Name": "a"}}),
        ] {
            assert!(
                matches!(
                    Request::<Named>::from_value(payload.clone()),
                    Err(EventError::Malformed(_))
                ),
                "{payload}"
            );
        }
        let error = Request::<Named>::from_value(json!({
            "RequestType": "Create", "LogicalResourceId": "T", "ResourceProperties": {"Name": ""}
        }))
        .unwrap_err();
        assert!(
            matches!(error, EventError::InvalidProperty { property: "Name", .. }),
            "{error}"
        );
    }

    #[test]
    fn scalars_come_as_strings_or_json_values() {
        #[derive(Deserialize)]
        struct Scalars {
            #[serde(deserialize_with = "integer")]
            n: i64,
            #[serde(default, deserialize_with = "optional_bool")]
            b: Option<bool>,
        }
        let read = |v: Value| serde_json::from_value::<Scalars>(v).map(|s| (s.n, s.b));
        assert_eq!(read(json!({"n": "3", "b": "true"})).unwrap(), (3, Some(true)));
        assert_eq!(read(json!({"n": 3, "b": false})).unwrap(), (3, Some(false)));
        assert_eq!(read(json!({"n": " 12 "})).unwrap(), (12, None));
        assert!(read(json!({"n": "three"})).is_err());
        assert!(read(json!({"n": 1, "b": "yes"})).is_err());
    }
}
