//! Glue wire framing: classification, header parsing, zlib inflation.
//! The checks are `pipeline_domain::fuzzing::Target::WireFrame`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_domain::fuzzing::Target;

fuzz_target!(|data: &[u8]| Target::WireFrame.check(data));
