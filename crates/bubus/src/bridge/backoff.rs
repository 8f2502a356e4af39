//! Reconnect delays for transports: exponential with jitter, so a restarted server is not hit by
//! every client at the same instant.

use std::time::Duration;

/// Exponential backoff with jitter between reconnect attempts: 50 ms doubling up to a cap (5 s
/// by default), each delay drawn from 50–100 % of its step. What the engine transports use
/// between reconnects; a new transport can use it too.
///
/// ```
/// use std::time::Duration;
/// use bubus::bridge::Backoff;
///
/// let mut backoff = Backoff::new(Duration::from_secs(2));
/// let first = backoff.next_delay();
/// assert!(first <= Duration::from_millis(50));
/// backoff.reset(); // after a successful connect
/// ```
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// The first step.
    pub const FIRST: Duration = Duration::from_millis(50);

    /// Starts at [`FIRST`](Self::FIRST), doubling up to `max` (at least `FIRST`).
    pub fn new(max: Duration) -> Self {
        Backoff {
            next: Self::FIRST,
            max: max.max(Self::FIRST),
        }
    }

    /// The delay before the next try: 50–100 % of the current step, which then doubles (until
    /// [`reset`](Self::reset)).
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(self.max);
        base.mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    /// Back to the first step, after a try that worked.
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// Sleeps for [`next_delay`](Self::next_delay).
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }
}

impl Default for Backoff {
    /// Up to 5 s.
    fn default() -> Self {
        Backoff::new(Duration::from_secs(5))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let max = Duration::from_secs(5);
        let mut b = Backoff::new(max);
        let first = b.next_delay();
        assert!(first <= Backoff::FIRST && first >= Backoff::FIRST / 2);
        for _ in 0..20 {
            assert!(b.next_delay() <= max);
        }
        assert!(b.next_delay() >= max / 2);
        b.reset();
        assert!(b.next_delay() <= Backoff::FIRST);
    }
}
