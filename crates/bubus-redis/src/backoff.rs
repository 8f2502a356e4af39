//! Reconnect delays: exponential from 50 ms to 5 s, with jitter so a restarted server is not
//! hit by every client at the same instant.

use std::time::Duration;

#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

const FIRST: Duration = Duration::from_millis(50);
const MAX: Duration = Duration::from_secs(5);

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff { next: FIRST }
    }

    /// The delay before the next try (grows until [`reset`](Self::reset)).
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (self.next * 2).min(MAX);
        // 50–100 % of the base.
        base.mul_f64(0.5 + fastrand::f64() / 2.0)
    }

    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }

    pub(crate) async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_and_resets() {
        let mut b = Backoff::new();
        let first = b.next_delay();
        assert!(first <= FIRST && first >= FIRST / 2);
        for _ in 0..20 {
            assert!(b.next_delay() <= MAX);
        }
        assert!(b.next_delay() >= MAX / 2);
        b.reset();
        assert!(b.next_delay() <= FIRST);
    }
}
