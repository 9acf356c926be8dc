//! One ESM record through the whole per-record decoder, then into each sink's encoding.
//! The checks are `pipeline_domain::fuzzing::Target::Record`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_domain::fuzzing::Target;

fuzz_target!(|data: &[u8]| Target::Record.check(data));
