//! Writes the fuzz targets' seed corpora from the consumer fixtures (ESM event JSON files).
//!
//!   cargo run -p pipeline-domain --example fuzz_seeds -- OUT_DIR [FIXTURE_DIR...]
//!
//! Without fixture directories it reads `functions/consumer/events` and
//! `functions/domain/tests/fixtures`. Each seed lands in `OUT_DIR/<target>/seed-<n>`.

use std::path::{Path, PathBuf};

use pipeline_domain::fuzzing::{seeds_from_event, Target};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args_os().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: fuzz_seeds OUT_DIR [FIXTURE_DIR...]")?);
    let mut dirs: Vec<PathBuf> = args.map(PathBuf::from).collect();
    if dirs.is_empty() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        dirs = vec![
            root.join("functions/consumer/events"),
            root.join("functions/domain/tests/fixtures"),
        ];
    }
    let mut files = Vec::new();
    for dir in &dirs {
        for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut counts = [0usize; Target::ALL.len()];
    for target in Target::ALL {
        std::fs::create_dir_all(out.join(target.name()))?;
    }
    for file in &files {
        for (target, input) in seeds_from_event(&std::fs::read(file)?) {
            let index = Target::ALL.iter().position(|t| *t == target).unwrap_or_default();
            counts[index] += 1;
            std::fs::write(
                out.join(target.name()).join(format!("seed-{}", counts[index])),
                input,
            )?;
        }
    }
    for (target, count) in Target::ALL.iter().zip(counts) {
        println!("{} {count} seeds from {} fixtures", target.name(), files.len());
    }
    Ok(())
}
