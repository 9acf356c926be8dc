//! Benchmarks of our consumer and producer against the seed's Python consumer and a Python
//! producer. `scripts/bench.sh` runs them (full or `--smoke`); `docs/benchmarks.md` holds the
//! figures of a full run.

pub mod cgroup;
pub mod cpu;
pub mod dynamo;
pub mod events;
pub mod lambda_api;
pub mod manifest;
pub mod memory;
pub mod meter;
pub mod produce;
pub mod share;
pub mod timing;
