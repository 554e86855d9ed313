//! Retry schedule for transient failures: exponential backoff with jitter
//! (the `backon` crate), bounded by a number of attempts.

use crate::config::ErrorConfig;
use backon::{BackoffBuilder, ExponentialBuilder};
use std::time::Duration;

/// Delays between attempts, as configured (`max_attempts - 1` of them).
pub fn delays(errors: &ErrorConfig) -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(errors.retry_initial_ms))
        .with_max_delay(Duration::from_millis(errors.retry_max_ms.max(errors.retry_initial_ms)))
        .with_factor(2.0)
        .with_jitter()
        .with_max_times(errors.max_attempts.saturating_sub(1) as usize)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stop_after_the_configured_attempts() {
        let errors = ErrorConfig { max_attempts: 5, retry_initial_ms: 10, retry_max_ms: 40, ..ErrorConfig::default() };
        let delays: Vec<Duration> = delays(&errors).collect();
        assert_eq!(delays.len(), 4);
        assert!(delays[0] >= Duration::from_millis(10));
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(80)), "{delays:?}");
    }
}
