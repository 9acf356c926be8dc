//! The Lambda's event JSON (aws:kafka / SelfManagedKafka), then every record in it.
//! The checks are `pipeline_domain::fuzzing::Target::EsmEvent`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_domain::fuzzing::Target;

fuzz_target!(|data: &[u8]| Target::EsmEvent.check(data));
