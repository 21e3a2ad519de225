//! Retry delays shared by every component that reconnects: BGP sessions, watches.

use std::time::Duration;

/// Exponential retry backoff: `initial`, doubling, capped at `max`, each delay multiplied by
/// a random factor in `[1 - jitter, 1]` so that many clients restarted together do not retry
/// in lockstep. Used by BGP connect retries and by the Kubernetes reflectors.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The largest delay.
    pub max: Duration,
    /// Fraction of the delay that may be taken off at random (0 disables jitter).
    pub jitter: f64,
}

impl Default for Backoff {
    /// 1 s doubling up to 2 minutes, up to 25 % jitter (RFC 4271 §10 suggests 0.75–1.0).
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(120),
            jitter: 0.25,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based), with `random` in `[0, 1)`.
    pub fn delay(&self, attempt: u32, random: f64) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        base.mul_f64(1.0 - self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0))
    }
}
