//! An invocation body through the consumer's borrowed fast path and its owned general path: both
//! refuse it, or both accept it with the same records, summary, sink state and poison.
//! The checks are `pipeline_domain::fuzzing::Target::FastPath`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_domain::fuzzing::Target;

fuzz_target!(|data: &[u8]| Target::FastPath.check(data));
