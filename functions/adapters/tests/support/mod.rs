//! Shared helpers of the adapter integration tests: endpoints from the environment, and the
//! skip/require rule (absent endpoints skip with a printed reason, unless PIPELINE_REQUIRE_STACK=1,
//! in which case they fail).

#![allow(dead_code)]

/// The value of `var`, or `None` after printing why the calling test skips. Panics when the
/// stack is required.
pub fn endpoint(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ => {
            if std::env::var("PIPELINE_REQUIRE_STACK").as_deref() == Ok("1") {
                panic!("{test}: {var} is not set and PIPELINE_REQUIRE_STACK=1 (source .local/stack.env)");
            }
            eprintln!(
                "SKIP {test}: {var} is not set (run scripts/local-stack.sh up and source .local/stack.env)"
            );
            None
        }
    }
}

/// A name no other test run uses, for resources on shared servers.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
