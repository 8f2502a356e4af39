//! How much memory the buses' histories hold, process-wide, and a warning when it grows large.
//!
//! Every bus keeps an estimate of what its history holds (the events, their payloads and their
//! result records), updated as events enter, complete and leave. [`history_bytes`] is the sum
//! over every bus of the process; [`EventBus::history_bytes`](crate::EventBus::history_bytes)
//! is one bus's share. When the sum crosses the threshold ([`set_warn_threshold`], default
//! 50 MB, as the bubus README promises), a `tracing` warning says so — once per crossing: it
//! warns again only after the sum fell back below the threshold and rose past it again.
//!
//! The figure is an estimate, not an allocator measurement: the size of each event, the text of
//! a payload read from JSON (about 64 bytes a field for one built as a value) and the size of
//! each result record; what a typed payload owns on the heap (strings, vectors) is not counted.
//!
//! ```
//! use bubus::{DynEvent, EventBus};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bubus::Error> {
//! let bus = EventBus::new("Metrics");
//! let before = bubus::memory::history_bytes();
//! bus.dispatch(DynEvent::new("Tick", json!({"n": 1})).unwrap())?.await?;
//! assert!(bus.history_bytes() > 0);
//! assert!(bubus::memory::history_bytes() >= bus.history_bytes());
//! # let _ = before;
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The default warning threshold: 50 MB.
pub const DEFAULT_WARN_THRESHOLD: usize = 50 * 1024 * 1024;

static TOTAL: AtomicUsize = AtomicUsize::new(0);
static THRESHOLD: AtomicUsize = AtomicUsize::new(DEFAULT_WARN_THRESHOLD);
/// The threshold as [`check`] compares with it: `usize::MAX` for `0` (never warn), which no
/// total exceeds, so the check is one comparison.
static LIMIT: AtomicUsize = AtomicUsize::new(DEFAULT_WARN_THRESHOLD);
static ABOVE: AtomicBool = AtomicBool::new(false);

/// The estimated bytes held by the histories of every bus in this process.
pub fn history_bytes() -> usize {
    TOTAL.load(Ordering::Relaxed)
}

/// Sets the threshold past which the histories' estimate logs a warning (`0`: never warn).
/// Process-wide; default [`DEFAULT_WARN_THRESHOLD`].
pub fn set_warn_threshold(bytes: usize) {
    THRESHOLD.store(bytes, Ordering::Relaxed);
    LIMIT.store(
        if bytes == 0 { usize::MAX } else { bytes },
        Ordering::Relaxed,
    );
    // A new threshold starts a new crossing.
    ABOVE.store(false, Ordering::Relaxed);
    check(TOTAL.load(Ordering::Relaxed));
}

/// The current warning threshold in bytes (`0`: never warn).
pub fn warn_threshold() -> usize {
    THRESHOLD.load(Ordering::Relaxed)
}

#[inline]
pub(crate) fn add(bytes: usize) {
    let total = TOTAL.fetch_add(bytes, Ordering::Relaxed) + bytes;
    check(total);
}

#[inline]
pub(crate) fn sub(bytes: usize) {
    let total = TOTAL
        .fetch_sub(bytes, Ordering::Relaxed)
        .saturating_sub(bytes);
    check(total);
}

/// Every history update calls this: inlined, it is two loads and two comparisons unless the
/// total crossed the threshold.
#[inline]
fn check(total: usize) {
    let above = total > LIMIT.load(Ordering::Relaxed);
    if above != ABOVE.load(Ordering::Relaxed) {
        crossed(above, total, THRESHOLD.load(Ordering::Relaxed));
    }
}

/// [`check`] when the total is on the other side of the threshold than last seen.
#[cold]
#[inline(never)]
fn crossed(above: bool, total: usize, threshold: usize) {
    // The swap makes each crossing warn once.
    if ABOVE.swap(above, Ordering::Relaxed) != above && above {
        tracing::warn!(
            history_bytes = total,
            threshold,
            "the event histories of this process hold about {} MB, past the {} MB warning \
             threshold; lower max_history_size, set history TTLs, or raise the threshold with \
             bubus::memory::set_warn_threshold",
            total / (1024 * 1024),
            threshold / (1024 * 1024),
        );
    }
}
