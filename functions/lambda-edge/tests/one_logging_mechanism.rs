//! The log level and format reach every Lambda one way only: Lambda's advanced logging controls,
//! read by `pipeline_lambda_edge::logging`. A function that set up its own subscriber, or a stack
//! or script that configured a function through `RUST_LOG`, would bring back a second mechanism.
//! (The ESM emulator is a local tool, not a Lambda, and keeps `RUST_LOG`.)

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn files_under(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files_under(&path, extensions, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.contains(&e))
        {
            out.push(path);
        }
    }
}

fn offenders(dirs: &[&str], extensions: &[&str], needles: &[&str]) -> Vec<String> {
    let root = repo_root();
    let mut files = Vec::new();
    for dir in dirs {
        files_under(&root.join(dir), extensions, &mut files);
    }
    assert!(!files.is_empty(), "nothing scanned under {dirs:?}");
    files
        .iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(file).ok()?;
            let found: Vec<&str> = needles.iter().copied().filter(|n| text.contains(n)).collect();
            (!found.is_empty()).then(|| {
                format!(
                    "{}: {found:?}",
                    file.strip_prefix(&root).unwrap_or(file).display()
                )
            })
        })
        .collect()
}

#[test]
fn no_lambda_sets_up_tracing_itself() {
    let lambdas = [
        "functions/consumer/src",
        "functions/producer/src",
        "functions/topic-admin/src",
        "functions/db-admin/src",
    ];
    let found = offenders(
        &lambdas,
        &["rs"],
        &["tracing_subscriber", "EnvFilter", "RUST_LOG"],
    );
    assert!(found.is_empty(), "a second logging set-up: {found:?}");
}

#[test]
fn no_stack_or_local_script_configures_a_lambda_through_rust_log() {
    let found = offenders(&["cdk/lib", "contracts"], &["ts", "json"], &["RUST_LOG"]);
    assert!(found.is_empty(), "{found:?}");
    // `env -u RUST_LOG` around cargo-lambda stays: it keeps cargo-lambda's own logging quiet.
    let found = offenders(
        &["scripts"],
        &["sh", "py"],
        &["RUST_LOG=", "\"RUST_LOG\", \"AWS_ACCESS_KEY_ID\""],
    );
    assert!(found.is_empty(), "{found:?}");
}
