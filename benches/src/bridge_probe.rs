//! What the bridge benchmarks' receivers share: the send time every probe event carries, and the
//! latencies a receiver saw, printed as one `@@result` line for the parent process.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tokio::sync::Notify;

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

/// A receiver's count of `n` expected events: hands out the recording function its handlers
/// call, and waits until all arrived (or 60 s pass without one).
#[derive(Clone, Debug)]
pub struct Probe {
    seen: Arc<Mutex<Seen>>,
    done: Arc<Notify>,
    n: u64,
}

impl Probe {
    /// A probe expecting `n` events.
    pub fn new(n: u64) -> Self {
        Probe {
            seen: Arc::default(),
            done: Arc::new(Notify::new()),
            n,
        }
    }

    /// What a handler calls with the send time its event carries.
    pub fn recorder(&self) -> impl Fn(u64) + Clone + Send + Sync + 'static {
        let probe = self.clone();
        move |sent_ns: u64| {
            let mut s = probe.seen.lock();
            s.record(sent_ns);
            if s.count() as u64 >= probe.n {
                probe.done.notify_one();
            }
        }
    }

    /// Waits until every expected event was recorded, or none arrived for 60 s; then the
    /// [`Seen::line`] of what was.
    pub async fn finish(&self) -> String {
        loop {
            let before = self.seen.lock().count();
            if before as u64 >= self.n {
                break;
            }
            if tokio::time::timeout(Duration::from_secs(60), self.done.notified())
                .await
                .is_err()
                && self.seen.lock().count() == before
            {
                break;
            }
        }
        self.seen.lock().line()
    }
}
