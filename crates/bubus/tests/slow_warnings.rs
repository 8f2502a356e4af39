//! Slow-event and slow-handler warnings (semantics §1.9), ported from the slow-warning tests of
//! `tests/test_eventbus_timeout.py`, `bubus-ts/tests/eventbus_timeout.test.ts` and
//! `tests/test_event_result.py` (the slow monitor starts after the handler lock is taken).
//!
//! The warnings go through `tracing` at `WARN`; each test captures them with `bubus_test_support::logs`
//! (the events of its thread) on a current-thread runtime (the bus's run loop runs on that thread),
//! and checks that they fire past their thresholds — with the reference's precedence: the
//! handler's own threshold, else the event's handler threshold, else the event's slow
//! threshold, else the bus's handler threshold; only armed when the handler's timeout is
//! larger — and that they never cancel anything.

use bubus_test_support::logs::capture_logs_at;
use bubus_test_support::time::ms;
use std::time::Duration;
use tracing::Level;

use bubus::{
    EventBus, EventHandle, EventStatus, error::HandlerErrorKind, event::HandlerConcurrency,
    handler::HandlerOptions, result::ResultStatus,
};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct WorkEvent {}

const SLOW_HANDLER: &str = "Slow event handler:";
const SLOW_EVENT: &str = "Slow event processing:";

/// Registers a `WorkEvent` handler named `name` that sleeps `sleep_ms` and returns `name`.
fn on_sleep(bus: &EventBus, name: &'static str, sleep_ms: u64, options: HandlerOptions) {
    bus.on_with(
        move |_: EventHandle<WorkEvent>| async move {
            tokio::time::sleep(ms(sleep_ms)).await;
            name.to_owned()
        },
        options.name(name),
    );
}

/// A bus with the given slow thresholds and a 0.5 s event timeout.
fn bus(name: &str, event_slow: Option<Duration>, handler_slow: Option<Duration>) -> EventBus {
    EventBus::builder(name)
        .event_timeout(Some(Duration::from_millis(500)))
        .event_slow_timeout(event_slow)
        .event_handler_slow_timeout(handler_slow)
        .build()
}

// ---------------------------------------------------------------------------------------------
// The warnings fire, once, and cancel nothing
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn slow_handler_warning_fires_past_the_bus_threshold() {
    let logs = capture_logs_at(Level::WARN);
    let bus = bus("SlowHandlerWarnBus", None, Some(Duration::from_millis(10)));
    on_sleep(&bus, "slow_handler", 30, HandlerOptions::new());

    let event = bus.dispatch(WorkEvent {}).unwrap().await.unwrap();
    let warnings = logs.lines_with(SLOW_HANDLER);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    let warning = &warnings[0];
    assert!(warning.contains("WARN"), "{warning}");
    assert!(
        warning.contains(&format!(
            "{}.on({}, slow_handler#",
            bus.label(),
            event.label()
        )),
        "{warning}"
    );
    assert!(warning.contains("still running after 0.0"), "{warning}");
    assert_eq!(logs.count(SLOW_EVENT), 0);
    // Warning only: the handler finished and its value is recorded.
    assert_eq!(event.event_result().await.unwrap(), "slow_handler");
}

#[tokio::test(start_paused = true)]
async fn slow_event_warning_fires_past_the_event_threshold() {
    let logs = capture_logs_at(Level::WARN);
    let bus = bus("SlowEventWarnBus", Some(Duration::from_millis(10)), None);
    on_sleep(&bus, "slow_event_handler", 30, HandlerOptions::new());

    let event = bus.dispatch(WorkEvent {}).unwrap().await.unwrap();
    let warnings = logs.lines_with(SLOW_EVENT);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(&format!(
            "{}.on({}, 1 handlers)",
            bus.label(),
            event.label()
        )),
        "{}",
        warnings[0]
    );
    assert_eq!(logs.count(SLOW_HANDLER), 0);
    assert_eq!(event.event_result().await.unwrap(), "slow_event_handler");
}

#[tokio::test(start_paused = true)]
async fn slow_handler_and_slow_event_warnings_can_both_fire() {
    let logs = capture_logs_at(Level::WARN);
    let bus = bus(
        "SlowComboWarnBus",
        Some(Duration::from_millis(10)),
        Some(Duration::from_millis(10)),
    );
    on_sleep(&bus, "slow", 25, HandlerOptions::new());

    let event = bus.dispatch(WorkEvent {}).unwrap().await.unwrap();
    assert_eq!(logs.count(SLOW_HANDLER), 1);
    assert_eq!(logs.count(SLOW_EVENT), 1);
    assert_eq!(event.event_results()[0].status, ResultStatus::Completed);
}

#[tokio::test(start_paused = true)]
async fn no_warning_when_the_work_finishes_before_the_thresholds() {
    let logs = capture_logs_at(Level::WARN);
    let bus = bus(
        "FastEnoughBus",
        Some(Duration::from_millis(50)),
        Some(Duration::from_millis(50)),
    );
    on_sleep(&bus, "fast", 49, HandlerOptions::new());

    bus.dispatch(WorkEvent {}).unwrap().await.unwrap();
    assert_eq!(logs.count("Slow event"), 0);
}

/// Under the paused test clock, wall-clock time spent by a handler that ran without waiting
/// (here a busy one, as a loaded machine makes any handler) is not taken from the timers' clock:
/// the warning fires at the threshold on the paused clock, not earlier.
#[tokio::test(start_paused = true)]
async fn wall_clock_time_is_not_charged_to_the_paused_clock() {
    let logs = capture_logs_at(Level::WARN);
    let bus = bus(
        "BusyThenFastBus",
        Some(Duration::from_millis(50)),
        Some(Duration::from_millis(50)),
    );
    bus.on(|_: EventHandle<WorkEvent>| {
        // Five real milliseconds of work, no waiting.
        let start = std::time::Instant::now();
        while start.elapsed() < ms(5) {
            std::hint::spin_loop();
        }
        String::from("busy")
    });
    on_sleep(&bus, "fast", 49, HandlerOptions::new());

    bus.dispatch(WorkEvent {}).unwrap().await.unwrap();
    assert_eq!(logs.count("Slow event"), 0);
}

#[tokio::test(start_paused = true)]
async fn slow_warnings_fire_once_and_never_cancel_anything() {
    let logs = capture_logs_at(Level::WARN);
    // Far past both thresholds, well within the timeout; parallel handlers, one of them slow
    // enough to warn many times over if the warning repeated.
    let bus = EventBus::builder("NeverCancelBus")
        .event_timeout(Some(Duration::from_secs(10)))
        .event_slow_timeout(Some(Duration::from_millis(10)))
        .event_handler_slow_timeout(Some(Duration::from_millis(10)))
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    on_sleep(&bus, "very_slow", 2_000, HandlerOptions::new());
    on_sleep(&bus, "slow", 100, HandlerOptions::new());
    on_sleep(&bus, "fast", 1, HandlerOptions::new());

    let start = Instant::now();
    let event = bus.dispatch(WorkEvent {}).unwrap().await.unwrap();
    assert_eq!(start.elapsed(), ms(2_000), "nothing was cut short");
    assert_eq!(logs.count(SLOW_HANDLER), 2, "very_slow and slow, once each");
    assert_eq!(logs.count(SLOW_EVENT), 1);
    assert_eq!(event.event_status(), EventStatus::Completed);
    assert!(event.event_errors().is_empty());
    assert_eq!(
        event.event_results_list().await.unwrap(),
        ["very_slow", "slow", "fast"]
    );
}

// ---------------------------------------------------------------------------------------------
// Precedence of the handler threshold
// ---------------------------------------------------------------------------------------------

/// Runs one `WorkEvent` (set up by `configure`) through a bus with `handler_slow` as its handler
/// threshold and no event threshold, with one handler sleeping 100 ms with `options`; returns
/// how many slow-handler warnings fired.
async fn handler_warnings(
    bus_handler_slow: Option<Duration>,
    options: HandlerOptions,
    configure: impl FnOnce(&EventHandle<WorkEvent>),
) -> usize {
    let logs = capture_logs_at(Level::WARN);
    let bus = bus("PrecedenceBus", None, bus_handler_slow);
    on_sleep(&bus, "handler", 100, options);
    let event = EventHandle::new(WorkEvent {});
    configure(&event);
    let event = bus.dispatch(event).unwrap().await.unwrap();
    assert_eq!(event.event_results()[0].status, ResultStatus::Completed);
    logs.count(SLOW_HANDLER)
}

#[tokio::test(start_paused = true)]
async fn the_handler_own_threshold_comes_first() {
    // Own 1 s beats the event's 10 ms; own 10 ms beats the event's 10 s; an explicit "none"
    // disables the warning whatever the event and bus say.
    let quiet = handler_warnings(
        Some(Duration::from_millis(10)),
        HandlerOptions::new().slow_timeout(Some(Duration::from_secs(1))),
        |e| e.set_event_handler_slow_timeout(Some(Duration::from_millis(10))),
    )
    .await;
    assert_eq!(quiet, 0);
    let loud = handler_warnings(
        Some(Duration::from_secs(10)),
        HandlerOptions::new().slow_timeout(Some(Duration::from_millis(10))),
        |e| e.set_event_handler_slow_timeout(Some(Duration::from_secs(10))),
    )
    .await;
    assert_eq!(loud, 1);
    let disabled = handler_warnings(
        Some(Duration::from_millis(10)),
        HandlerOptions::new().slow_timeout(None),
        |e| e.set_event_handler_slow_timeout(Some(Duration::from_millis(10))),
    )
    .await;
    assert_eq!(disabled, 0);
}

#[tokio::test(start_paused = true)]
async fn then_the_event_handler_threshold_then_the_event_threshold_then_the_bus() {
    // The event's handler threshold beats its slow threshold and the bus's.
    let n = handler_warnings(
        Some(Duration::from_millis(10)),
        HandlerOptions::new(),
        |e| {
            e.set_event_handler_slow_timeout(Some(Duration::from_secs(10)));
            e.set_event_slow_timeout(Some(Duration::from_millis(10)));
        },
    )
    .await;
    assert_eq!(n, 0);
    let n = handler_warnings(Some(Duration::from_secs(10)), HandlerOptions::new(), |e| {
        e.set_event_handler_slow_timeout(Some(Duration::from_millis(10)));
        e.set_event_slow_timeout(Some(Duration::from_secs(10)));
    })
    .await;
    assert_eq!(n, 1);
    // Without an event handler threshold, the event's slow threshold beats the bus's handler
    // threshold, either way.
    let n = handler_warnings(
        Some(Duration::from_millis(10)),
        HandlerOptions::new(),
        |e| e.set_event_slow_timeout(Some(Duration::from_secs(10))),
    )
    .await;
    assert_eq!(n, 0);
    let n = handler_warnings(Some(Duration::from_secs(10)), HandlerOptions::new(), |e| {
        e.set_event_slow_timeout(Some(Duration::from_millis(10)))
    })
    .await;
    assert_eq!(n, 1);
    // Nothing on the event: the bus's handler threshold.
    assert_eq!(
        handler_warnings(
            Some(Duration::from_millis(10)),
            HandlerOptions::new(),
            |_| {}
        )
        .await,
        1
    );
    assert_eq!(
        handler_warnings(None, HandlerOptions::new(), |_| {}).await,
        0
    );
}

#[tokio::test(start_paused = true)]
async fn the_event_threshold_beats_the_bus_event_threshold() {
    let logs = capture_logs_at(Level::WARN);
    let bus = bus(
        "EventSlowPrecedenceBus",
        Some(Duration::from_millis(10)),
        None,
    );
    on_sleep(&bus, "handler", 100, HandlerOptions::new());

    bus.dispatch(EventHandle::new(WorkEvent {}).with_event_slow_timeout(Duration::from_secs(10)))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(logs.count(SLOW_EVENT), 0);

    let bus = EventBus::builder("EventSlowPrecedenceBus2")
        .event_slow_timeout(Some(Duration::from_secs(10)))
        .build();
    on_sleep(&bus, "handler", 100, HandlerOptions::new());
    bus.dispatch(EventHandle::new(WorkEvent {}).with_event_slow_timeout(Duration::from_millis(10)))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(logs.count(SLOW_EVENT), 1);
}

#[tokio::test(start_paused = true)]
async fn the_handler_warning_is_armed_only_when_its_timeout_is_larger() {
    // The handler's effective timeout (here: the event's) equal to the threshold: no warning,
    // the timeout ends the handler at that instant anyway.
    let logs = capture_logs_at(Level::WARN);
    let bus = EventBus::builder("ArmedOnlyIfLargerBus")
        .event_slow_timeout(None)
        .event_handler_slow_timeout(Some(Duration::from_millis(50)))
        .build();
    on_sleep(&bus, "handler", 1_000, HandlerOptions::new());

    let event = bus
        .dispatch(EventHandle::new(WorkEvent {}).with_event_timeout(Duration::from_millis(50)))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        event.event_results()[0].error.as_ref().map(|e| e.kind()),
        Some(HandlerErrorKind::Aborted)
    );
    assert_eq!(logs.count(SLOW_HANDLER), 0);

    // A timeout just above the threshold: the warning fires first, then the timeout.
    let event = bus
        .dispatch(EventHandle::new(WorkEvent {}).with_event_timeout(Duration::from_millis(60)))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        event.event_results()[0].error.as_ref().map(|e| e.kind()),
        Some(HandlerErrorKind::Aborted)
    );
    assert_eq!(logs.count(SLOW_HANDLER), 1);

    // The same holds for the handler's own timeout.
    let bus = EventBus::builder("ArmedOnlyIfLargerOwnBus")
        .event_slow_timeout(None)
        .event_handler_slow_timeout(Some(Duration::from_millis(50)))
        .build();
    on_sleep(
        &bus,
        "own",
        1_000,
        HandlerOptions::new().timeout(Some(Duration::from_millis(40))),
    );
    on_sleep(
        &bus,
        "own_larger",
        1_000,
        HandlerOptions::new().timeout(Some(Duration::from_millis(70))),
    );
    let event = bus.dispatch(WorkEvent {}).unwrap().await.unwrap();
    assert!(event.event_results().iter().all(|r| r.is_timeout()));
    let warnings = logs.lines_with(SLOW_HANDLER);
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[1].contains("own_larger#"), "{}", warnings[1]);
}

#[tokio::test(start_paused = true)]
async fn the_handler_warning_starts_after_the_handler_lock_wait() {
    // The event reaches two buses and its serial-handler lock is shared by both: bus B's handler
    // waits 150 ms for bus A's, then runs 20 ms. Its 100 ms threshold counts from when it got
    // the lock, so it must not warn.
    let logs = capture_logs_at(Level::WARN);
    let bus_a = bus("SlowAfterLockA", None, None);
    let bus_b = bus("SlowAfterLockB", None, Some(Duration::from_millis(100)));
    on_sleep(&bus_a, "holder", 150, HandlerOptions::new());
    on_sleep(&bus_b, "waiter", 20, HandlerOptions::new());

    let event = EventHandle::new(WorkEvent {});
    bus_a.dispatch(&event).unwrap();
    bus_b.dispatch(&event).unwrap();
    let start = Instant::now();
    let event = event.await.unwrap();
    assert_eq!(start.elapsed(), ms(170));
    assert_eq!(
        event.event_results_list().await.unwrap(),
        ["holder", "waiter"]
    );
    assert_eq!(logs.count(SLOW_HANDLER), 0, "{:?}", logs.lines_with("Slow"));

    // The same wait with a threshold the run itself exceeds: it warns, once.
    let bus_c = bus("SlowAfterLockC", None, None);
    let bus_d = bus("SlowAfterLockD", None, Some(Duration::from_millis(10)));
    on_sleep(&bus_c, "holder", 150, HandlerOptions::new());
    on_sleep(&bus_d, "waiter", 20, HandlerOptions::new());
    let event = EventHandle::new(WorkEvent {});
    bus_c.dispatch(&event).unwrap();
    bus_d.dispatch(&event).unwrap();
    event.await.unwrap();
    assert_eq!(logs.count(SLOW_HANDLER), 1);
}
