//! Rebuilds this crate, and with it every crate of ours (they all depend on it; no third-party
//! crate does), when the checkout it is built from changes.
//!
//! Several of our crates embed or read files of the checkout they were compiled in
//! (`include_str!`, `env!("CARGO_MANIFEST_DIR")`), and cargo judges freshness by modification
//! times. The scripts share one target directory across checkouts (`~/.cache/pipeline/target`), so
//! a checkout whose files are older than another checkout's build would otherwise get that
//! build's test binaries, still reading the other tree (or a deleted one).
//! `scripts/lib/prologue.sh --cargo` exports the checkout's path as `PIPELINE_CHECKOUT`.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PIPELINE_CHECKOUT");
    let checkout = std::env::var("PIPELINE_CHECKOUT").unwrap_or_default();
    println!("cargo:rustc-env=PIPELINE_CHECKOUT={checkout}");
}
