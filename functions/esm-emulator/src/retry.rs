//! Retry policy for a failed invocation: the whole batch is retried with exponential backoff until
//! `MaximumRetryAttempts` retries have failed (AWS counts retries, not the first attempt; -1 means
//! retry until the records expire, which here means forever).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// `None`: retry forever.
    pub max_retry_attempts: Option<u32>,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    RetryAfter(Duration),
    GiveUp,
}

impl RetryPolicy {
    /// What to do after `failed_attempts` invocations of the same batch have failed (>= 1).
    pub fn after_failure(&self, failed_attempts: u32) -> RetryDecision {
        let retries_done = failed_attempts.saturating_sub(1);
        if let Some(max) = self.max_retry_attempts {
            if retries_done >= max {
                return RetryDecision::GiveUp;
            }
        }
        RetryDecision::RetryAfter(self.backoff(retries_done))
    }

    /// Backoff before retry number `retries_done + 1`: initial * 2^retries_done, capped.
    pub fn backoff(&self, retries_done: u32) -> Duration {
        let factor = 1u32.checked_shl(retries_done.min(20)).unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .map_or(self.max_backoff, |d| d.min(self.max_backoff))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max: Option<u32>) -> RetryPolicy {
        RetryPolicy {
            max_retry_attempts: max,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        }
    }

    #[test]
    fn zero_retries_gives_up_after_the_first_failure() {
        assert_eq!(policy(Some(0)).after_failure(1), RetryDecision::GiveUp);
    }

    #[test]
    fn retries_are_counted_after_the_first_attempt() {
        let p = policy(Some(2));
        assert_eq!(
            p.after_failure(1),
            RetryDecision::RetryAfter(Duration::from_millis(100))
        );
        assert_eq!(
            p.after_failure(2),
            RetryDecision::RetryAfter(Duration::from_millis(200))
        );
        assert_eq!(p.after_failure(3), RetryDecision::GiveUp);
    }

    #[test]
    fn backoff_doubles_and_is_capped_and_infinite_never_gives_up() {
        let p = policy(None);
        assert_eq!(
            p.after_failure(4),
            RetryDecision::RetryAfter(Duration::from_millis(800))
        );
        assert_eq!(
            p.after_failure(5),
            RetryDecision::RetryAfter(Duration::from_secs(1))
        );
        assert_eq!(
            p.after_failure(10_000),
            RetryDecision::RetryAfter(Duration::from_secs(1))
        );
    }
}
