//! Rebuilds this crate, and with it every crate of ours, when the checkout it is built from
//! changes: the others depend on this crate (no third-party crate does) or, where they do not,
//! use this script as their own (`build = "../contracts/build.rs"`; `scripts/local/tests/
//! test_checkout_rebuild.py` checks that every crate does one or the other).
//!
//! Several of our crates embed or read files of the checkout they were compiled in
//! (`include_str!`, `env!("CARGO_MANIFEST_DIR")`), and cargo judges freshness by modification
//! times. The scripts share one target directory across checkouts (`~/.cache/pipeline/target`), so
//! a checkout whose files are older than another checkout's build would otherwise get that
//! build's test binaries, still reading the other tree (or a deleted one).
//! `scripts/lib/prologue.sh --cargo` exports the checkout's path as `PIPELINE_CHECKOUT`.
fn main() {
    // Only the variable: cargo recompiles and reruns the script itself when its source changes.
    println!("cargo:rerun-if-env-changed=PIPELINE_CHECKOUT");
    let checkout = std::env::var("PIPELINE_CHECKOUT").unwrap_or_default();
    println!("cargo:rustc-env=PIPELINE_CHECKOUT={checkout}");
}
