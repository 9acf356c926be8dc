//! What the tests need from the environment, and their deterministic randomness.

pub fn required_env(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ if std::env::var("PIPELINE_REQUIRE_STACK").as_deref() == Ok("1") => {
            panic!("{test}: {var} is not set and PIPELINE_REQUIRE_STACK=1 (source .local/stack.env)")
        }
        _ => {
            eprintln!(
                "SKIP {test}: {var} is not set (run scripts/local-stack.sh up and source .local/stack.env)"
            );
            None
        }
    }
}

pub fn stack_available(test: &str) -> bool {
    [
        "AWS_ENDPOINT_URL",
        "PG_HOST",
        "PG_PORT",
        PG_ADMIN_USER,
        "PG_DATABASE",
    ]
    .iter()
    .all(|var| required_env(var, test).is_some())
}

/// The local admin (owner of the databases); the consumer itself runs as a provisioned role.
pub const PG_ADMIN_USER: &str = "PIPELINE_PG_ADMIN_USER";
pub const PG_ADMIN_PASSWORD: &str = "PIPELINE_PG_ADMIN_PASSWORD";

pub fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_default()
}

/// Deterministic xorshift, so failures reproduce.
pub struct Rng(pub u64);
impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}
