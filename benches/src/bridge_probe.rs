//! What the bridge benchmarks' receivers share: the send time every probe event carries, and the
//! latencies a receiver saw, printed as one `@@result` line for the parent process.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (a wall clock both processes read).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What a receiver saw.
#[derive(Debug, Default)]
pub struct Seen {
    latencies_ns: Vec<u64>,
    first_sent_ns: u64,
    last_recv_ns: u64,
}

impl Seen {
    /// Records an event sent at `sent_ns`, received now.
    pub fn record(&mut self, sent_ns: u64) {
        let now = now_ns();
        if self.first_sent_ns == 0 || sent_ns < self.first_sent_ns {
            self.first_sent_ns = sent_ns;
        }
        self.last_recv_ns = now;
        self.latencies_ns.push(now.saturating_sub(sent_ns));
    }

    /// How many events were recorded.
    pub fn count(&self) -> usize {
        self.latencies_ns.len()
    }

    /// `@@result <count> <first send to last receipt, ns> <median ns> <p99 ns>`.
    pub fn line(&mut self) -> String {
        self.latencies_ns.sort_unstable();
        let n = self.latencies_ns.len();
        let pick = |q: f64| {
            if n == 0 {
                0
            } else {
                self.latencies_ns[((n as f64 * q) as usize).min(n - 1)]
            }
        };
        format!(
            "@@result {n} {} {} {}",
            self.last_recv_ns.saturating_sub(self.first_sent_ns),
            pick(0.5),
            pick(0.99)
        )
    }
}
