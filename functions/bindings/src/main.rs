//! `generate-bindings` writes cdk/lib/generated/ from the Rust side; `--check` only compares and
//! fails, naming the stale files, when they differ.

use std::path::PathBuf;
use std::process::ExitCode;

use pipeline_bindings::{generated_files, GENERATED_DIR};

fn main() -> ExitCode {
    let check = match std::env::args().nth(1).as_deref() {
        None => false,
        Some("--check") => true,
        Some(other) => {
            eprintln!("usage: generate-bindings [--check]   (unknown argument {other:?})");
            return ExitCode::from(2);
        }
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(GENERATED_DIR);
    let mut stale = Vec::new();
    for (name, content) in generated_files() {
        let path = dir.join(name);
        let current = std::fs::read_to_string(&path).unwrap_or_default();
        if current == content {
            continue;
        }
        if check {
            stale.push(path.display().to_string());
        } else if let Err(error) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, content))
        {
            eprintln!("cannot write {}: {error}", path.display());
            return ExitCode::FAILURE;
        } else {
            eprintln!("wrote {}", path.display());
        }
    }
    if stale.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!(
            "stale generated bindings: {}\nregenerate with: cargo run -p pipeline-bindings --bin generate-bindings",
            stale.join(", ")
        );
        ExitCode::FAILURE
    }
}
