//! The process-wide estimate of what the buses' histories hold, its warning threshold (the
//! bubus README's "warnings are logged when total memory exceeds 50MB"), and the duplicate
//! handler-name warning (abxbus 2.5's `warn_on_duplicate_handler_names`).
//!
//! The memory threshold is process-wide, so this file has a single test that changes it.

use bubus::{AnyEvent, DynEvent, EventBus};
use bubus_test_support::logs::capture_logs_at;
use serde_json::json;
use tracing::Level;

fn row(n: usize) -> DynEvent {
    DynEvent::new("Row", json!({ "n": n, "text": "x".repeat(100) })).unwrap()
}

/// The estimate grows with what the histories hold and shrinks when it goes; crossing the
/// threshold warns once, and again only after falling below and crossing again.
#[tokio::test]
async fn the_history_estimate_warns_once_per_crossing_of_the_threshold() {
    assert_eq!(
        bubus::memory::warn_threshold(),
        bubus::memory::DEFAULT_WARN_THRESHOLD
    );
    assert_eq!(bubus::memory::DEFAULT_WARN_THRESHOLD, 50 * 1024 * 1024);
    let logs = capture_logs_at(Level::WARN);
    let bus = EventBus::builder("MemoryBus")
        .max_history_size(None)
        .build();
    bus.on_pattern("Row", |_: AnyEvent| json!(1));
    assert_eq!(bus.history_bytes(), 0);

    let baseline = bubus::memory::history_bytes();
    bus.dispatch(row(0)).unwrap().await.unwrap();
    let one = bus.history_bytes();
    assert!(one > 0);
    assert!(bubus::memory::history_bytes() >= baseline + one);

    // Past the threshold after about 50 more events.
    bubus::memory::set_warn_threshold(baseline + 50 * one);
    for n in 1..200 {
        bus.dispatch(row(n)).unwrap();
    }
    assert!(bus.wait_until_idle(None).await);
    assert!(bus.history_bytes() >= 150 * one);
    assert_eq!(logs.count("warning threshold"), 1, "warned once");

    // Below again (the history is cleared), then past it again: a second warning.
    bus.stop_and_clear(None).await;
    assert_eq!(bus.history_bytes(), 0);
    assert!(bubus::memory::history_bytes() < baseline + 50 * one);
    let again = EventBus::builder("MemoryBus2")
        .max_history_size(None)
        .build();
    for n in 0..200 {
        again.dispatch(row(n)).unwrap();
    }
    assert!(again.wait_until_idle(None).await);
    assert_eq!(
        logs.count("warning threshold"),
        2,
        "warned again after falling below"
    );

    // Dropping a bus takes its share out of the estimate.
    let share = again.history_bytes();
    let before = bubus::memory::history_bytes();
    drop(again);
    tokio::task::yield_now().await;
    assert!(bubus::memory::history_bytes() <= before - share);
    bubus::memory::set_warn_threshold(bubus::memory::DEFAULT_WARN_THRESHOLD);
}

/// Registering a second handler of the same name for a pattern warns once per name and
/// pattern (as abxbus 2.5 does by default); the option turns it off.
#[test]
fn a_duplicate_handler_name_warns_once_unless_turned_off() {
    fn audit(_: AnyEvent) {}
    let logs = capture_logs_at(Level::WARN);
    let bus = EventBus::new("DupNames");
    bus.on_pattern("Login", audit);
    assert_eq!(logs.count("already registered"), 0);
    bus.on_pattern("Login", audit);
    bus.on_pattern("Login", audit);
    assert_eq!(
        logs.count("already registered"),
        1,
        "once per name and pattern"
    );
    bus.on_pattern("Logout", audit);
    assert_eq!(
        logs.count("already registered"),
        1,
        "another pattern is not a duplicate"
    );

    let quiet = EventBus::builder("QuietDupNames")
        .disable_duplicate_handler_name_warning()
        .build();
    quiet.on_pattern("Login", audit);
    quiet.on_pattern("Login", audit);
    assert_eq!(logs.count("already registered"), 1);
}
