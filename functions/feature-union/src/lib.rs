//! No code: this crate's dependencies (written by `cargo hakari generate`) give every third-party
//! crate the union of the features the workspace asks of it. Each binary and the bench depend on
//! it, so `cargo build -p consumer` (what `cargo lambda watch` runs), the emulator's build and the
//! workspace's test build all reuse one compiled copy of each dependency.
