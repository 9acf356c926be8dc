//! Domain of the streaming pipeline: plain types, pure logic and narrow ports.
//!
//! Nothing here talks to a network. Adapters (`pipeline-adapters`) implement the ports; the Lambda
//! binaries wire adapters into the services defined here.

pub mod avro_bounds;
pub mod avro_write;
pub mod batch_response;
pub mod consume;
pub mod dynamodb_item;
pub mod event;
#[cfg(any(test, feature = "testing"))]
pub mod fuzzing;
pub mod limits;
pub mod model;
pub mod offsets;
pub mod payload;
pub mod ports;
pub mod produce;
pub mod schema;
pub mod simulate;
pub mod window;
pub mod wire;
