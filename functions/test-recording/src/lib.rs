//! The integration tests' side of the IAM check (scripts/test.sh stages `rust` and `iam`).
//!
//! In the `rust` stage every AWS call of the tests goes through a recording proxy
//! (scripts/local/faults/throttle_proxy.py) with one endpoint per identity, so who a call stands
//! for is explicit, never guessed:
//!
//! - `PIPELINE_RECORD_ENDPOINTS`: `label=url` pairs, comma-separated. A label is a function's
//!   local name (`consumer`, `producer`), `esm:<function>` for the Lambda service acting for that
//!   function's event source mappings, or [`TEST`] for a test's own set-up and assertions (also the
//!   process's `AWS_ENDPOINT_URL`, so an unlabelled client is never judged as a function).
//! - `PIPELINE_RECORD_ENVIRONMENTS`: a JSON-lines file; each test appends the configuration it
//!   ran a function with, by the variable names the function reads on AWS, so the check can
//!   translate the test's own resource names (unique per run) to the deployed ones.
//!
//! Without those variables (a developer's plain `cargo test`) nothing changes: every client uses
//! `AWS_ENDPOINT_URL` and nothing is declared.

use std::collections::BTreeMap;
use std::io::Write;

/// The label of a test's own set-up and assertion calls (recorded, never judged as a function).
pub const TEST: &str = "test";

const ENDPOINTS: &str = "PIPELINE_RECORD_ENDPOINTS";
const ENVIRONMENTS: &str = "PIPELINE_RECORD_ENVIRONMENTS";

/// The label of the Lambda service acting for `function`'s event source mappings.
pub fn esm_of(function: &str) -> String {
    format!("esm:{function}")
}

/// The recording endpoint for `label`, when the run records calls. Panics when it records but
/// has no endpoint for `label`: a call would otherwise be attributed to the wrong identity.
pub fn endpoint_acting_as(label: &str) -> Option<String> {
    let pairs = std::env::var(ENDPOINTS).ok().filter(|v| !v.trim().is_empty())?;
    match parse_endpoints(&pairs).remove(label) {
        Some(url) => Some(url),
        None => panic!("{ENDPOINTS} is set ({pairs}) but names no endpoint acting as {label}"),
    }
}

fn parse_endpoints(pairs: &str) -> BTreeMap<String, String> {
    pairs
        .split(',')
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(label, url)| (label.trim().to_string(), url.trim().to_string()))
        .collect()
}

/// Appends the configuration a test ran `label` with (variable name -> local value), when the run
/// records calls. One line per call of this function, written whole with one append.
pub fn declare_environment<'a>(
    label: &str,
    environment: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> std::io::Result<()> {
    let Some(path) = std::env::var_os(ENVIRONMENTS).filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    let environment: serde_json::Map<String, serde_json::Value> = environment
        .into_iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    let mut line = serde_json::json!({ "acting_as": label, "environment": environment }).to_string();
    line.push('\n');
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?
        .write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_label_url_pairs_and_labels_may_hold_colons() {
        let parsed = parse_endpoints(
            "consumer=http://127.0.0.1:22102, esm:consumer=http://127.0.0.1:22103,test=http://127.0.0.1:22104",
        );
        assert_eq!(parsed["consumer"], "http://127.0.0.1:22102");
        assert_eq!(parsed[&esm_of("consumer")], "http://127.0.0.1:22103");
        assert_eq!(parsed[TEST], "http://127.0.0.1:22104");
        assert_eq!(parsed.len(), 3);
    }
}
