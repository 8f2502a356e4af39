//! Waiting until a bus without a "wait until idle" has handled a known number of messages: each
//! handler adds its value and counts itself, the last one wakes the waiter.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// A sum and a count of handled messages, and a wake-up when the count reaches a target.
#[derive(Debug, Default)]
pub struct Progress {
    sum: AtomicU64,
    count: AtomicU64,
    target: AtomicU64,
    reached: Notify,
}

impl Progress {
    /// Called by the handler of one message.
    pub fn handled(&self, value: u64) {
        self.sum.fetch_add(value, Ordering::Relaxed);
        let count = self.count.fetch_add(1, Ordering::AcqRel) + 1;
        if count == self.target.load(Ordering::Acquire) {
            self.reached.notify_one();
        }
    }

    /// Sets how many messages [`wait`](Self::wait) waits for (counted since the start).
    pub fn expect(&self, total: u64) {
        self.target.store(total, Ordering::Release);
        if self.count.load(Ordering::Acquire) >= total {
            self.reached.notify_one();
        }
    }

    /// Waits until the target set by [`expect`](Self::expect) is reached.
    pub async fn wait(&self) {
        while self.count.load(Ordering::Acquire) < self.target.load(Ordering::Acquire) {
            self.reached.notified().await;
        }
    }

    /// The sum of the handled values.
    pub fn sum(&self) -> u64 {
        self.sum.load(Ordering::Relaxed)
    }
}
