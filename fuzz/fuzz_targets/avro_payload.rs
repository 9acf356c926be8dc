//! Avro bodies decoded with each writer schema, then mapped to domain types or JSON.
//! The checks are `pipeline_domain::fuzzing::Target::AvroPayload`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_domain::fuzzing::Target;

fuzz_target!(|data: &[u8]| Target::AvroPayload.check(data));
