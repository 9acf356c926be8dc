//! JSON bodies mapped to domain types; store events round-trip through the archive JSON.
//! The checks are `pipeline_domain::fuzzing::Target::JsonPayload`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_domain::fuzzing::Target;

fuzz_target!(|data: &[u8]| Target::JsonPayload.check(data));
