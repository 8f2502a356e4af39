//! Helpers shared by the bubus test suites: an ordered, thread-safe log of what happened
//! ([`Recorder`]), how many calls were inside a section at once ([`Active`]), deadlock guards and
//! durations ([`time`]), what the code logs ([`logs`]), event types for tests
//! ([`string_events!`]), the real Python and TypeScript peers the interop tests run against
//! ([`peers`]; the Python bridge peers with their events and runs in [`bridge_peer`] and
//! [`engine_bridge_peer`]), the bridge transport conformance suite ([`conformance`]), what the
//! durable-mode tests share ([`durable`]), and private servers, a connection-cutting proxy and
//! worker processes for fault tests ([`servers`]).

use std::fmt::Display;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

pub mod bridge_peer;
pub mod conformance;
pub mod dedup_claims;
pub mod durable;
pub mod engine_bridge_peer;
pub mod logs;
pub mod peers;
pub mod postgres_server;
pub mod roles;
pub mod servers;
pub mod time;

/// Declares payload-less events whose handlers return `String`, one per name:
/// `string_events!(ParentEvent, ChildEvent);`. The calling crate needs `serde` and `bubus`.
///
/// ```
/// bubus_test_support::string_events!(PingEvent, PongEvent);
/// assert_eq!(<PingEvent as bubus::Event>::EVENT_TYPE, "PingEvent");
/// ```
#[macro_export]
macro_rules! string_events {
    ($($name:ident),* $(,)?) => {$(
        #[derive(Clone, Debug, Default, ::serde::Serialize, ::serde::Deserialize, ::bubus::Event)]
        #[event(result = String)]
        struct $name {}
    )*};
}

/// An append-only log shared by handlers and the test body; clones share the same log.
///
/// ```
/// let log = bubus_test_support::Recorder::new();
/// let l = log.clone();
/// l.push("a");
/// log.push(format_args!("b{}", 1));
/// assert_eq!(log.entries(), ["a", "b1"]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    entries: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    /// An empty log.
    pub fn new() -> Self {
        Recorder::default()
    }

    /// Appends an entry.
    pub fn push(&self, entry: impl Display) {
        self.entries.lock().push(entry.to_string());
    }

    /// A copy of every entry so far, in order.
    pub fn entries(&self) -> Vec<String> {
        self.entries.lock().clone()
    }

    /// How many entries there are.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.lock().is_empty()
    }

    /// Position of the first entry equal to `entry`.
    pub fn position(&self, entry: &str) -> Option<usize> {
        self.entries.lock().iter().position(|e| e == entry)
    }

    /// Panics unless every listed entry is present and they appear in this order.
    #[track_caller]
    pub fn assert_order(&self, expected: &[&str]) {
        let entries = self.entries();
        let mut last = None;
        for want in expected {
            let Some(pos) = entries.iter().position(|e| e == want) else {
                panic!("{want:?} not recorded; log: {entries:?}");
            };
            if let Some((prev, prev_pos)) = last {
                assert!(
                    pos > prev_pos,
                    "{want:?} recorded before {prev:?}; log: {entries:?}"
                );
            }
            last = Some((want, pos));
        }
    }

    /// Removes every entry.
    pub fn clear(&self) {
        self.entries.lock().clear();
    }
}

/// Counts how many calls are inside at once: each call holds the guard [`Active::enter`] returns
/// while it runs; clones share the counts.
///
/// ```
/// let active = bubus_test_support::Active::default();
/// let first = active.enter();
/// let second = active.enter();
/// drop((first, second));
/// let _third = active.enter();
/// assert_eq!((active.max(), active.calls()), (2, 3));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Active {
    now: Arc<AtomicUsize>,
    max: Arc<AtomicUsize>,
    calls: Arc<AtomicUsize>,
}

/// A call inside an [`Active`] section; leaves it when dropped.
#[derive(Debug)]
#[must_use = "the call leaves the section when this is dropped"]
pub struct Inside(Arc<AtomicUsize>);

impl Drop for Inside {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Active {
    /// Enters the section: counts the call and how many are inside now.
    pub fn enter(&self) -> Inside {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
        self.calls.fetch_add(1, Ordering::SeqCst);
        Inside(Arc::clone(&self.now))
    }

    /// The most calls inside at once so far.
    pub fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }

    /// How many calls entered so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}
