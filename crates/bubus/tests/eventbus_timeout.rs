//! Ports `tests/test_eventbus_timeout.py` and `bubus-ts/tests/eventbus_timeout.test.ts`
//! (semantics §1.9): the handler-timeout precedence matrix, the event timeout as a hard cap over
//! serial and parallel handlers, the tie-break that labels a handler aborted, recorded handler
//! timeouts never relabelled, timeouts on forwarded and multi-bus events, follow-up events after a
//! timeout, the cancellation cascade to queued and running descendants, and processing-time
//! defaults that are never written onto the event.
//!
//! Every test runs on tokio's paused clock: handlers model slow work with `tokio::time::sleep`,
//! the clock jumps to the next timer whenever the runtime is idle, and elapsed times are exact.
//!
//! Where this bus differs from the reference on purpose, the test checks this bus and says so:
//! the cascade follows the TypeScript runtime (queued descendants of a timed-out parent are
//! cancelled, never run later; design §5.6), and errors carry their cause in the message rather
//! than as a linked `cause` object.

use bubus_test_support::string_events;
use bubus_test_support::time::ms;
use bubus_test_support::time::within;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bubus::retry::{Retry, SemaphoreScope};
use bubus::{
    AnyEvent, Event, EventBus, EventHandle, EventResult, EventStatus, error::HandlerErrorKind,
    event::EventConcurrency, event::HandlerConcurrency, handler::EventHandler,
    handler::HandlerOptions, result::ResultStatus,
};
use bubus_test_support::Recorder;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

string_events!(
    TimeoutEvent,
    ParentEvent,
    ChildEvent,
    GrandchildEvent,
    QueuedChildEvent,
    QueuedGrandchildEvent,
    SiblingEvent,
    TailEvent,
    DeepEvent,
);

/// A handler for `E` named `name`: logs `{name}_start`, sleeps `sleep_ms`, logs `{name}_end`,
/// returns `name`.
fn on_sleep<E: Event<Result = String>>(
    bus: &EventBus,
    log: &Recorder,
    name: &'static str,
    sleep_ms: u64,
    options: HandlerOptions,
) -> EventHandler {
    let log = log.clone();
    bus.on_with(
        move |_: EventHandle<E>| {
            let log = log.clone();
            async move {
                log.push(format!("{name}_start"));
                tokio::time::sleep(ms(sleep_ms)).await;
                log.push(format!("{name}_end"));
                name.to_owned()
            }
        },
        options.name(name),
    )
}

/// The result of the handler named `name` (exactly one must exist).
fn result_named(event: impl AsRef<AnyEvent>, name: &str) -> EventResult<Value> {
    let results: Vec<_> = event
        .as_ref()
        .event_results()
        .into_iter()
        .filter(|r| r.handler_name == name)
        .collect();
    assert_eq!(results.len(), 1, "results named {name}: {results:?}");
    results.into_iter().next().unwrap()
}

fn kind<R>(result: &EventResult<R>) -> Option<HandlerErrorKind> {
    result.error.as_ref().map(|e| e.kind())
}

fn message(result: &EventResult<Value>) -> String {
    result
        .error
        .as_ref()
        .map(|e| e.message().to_owned())
        .unwrap_or_default()
}

fn kinds(event: impl AsRef<AnyEvent>) -> Vec<Option<HandlerErrorKind>> {
    event.as_ref().event_results().iter().map(kind).collect()
}

/// Records, when dropped, how long after its creation a handler's future ended (completed or
/// was dropped by a timeout).
struct EndProbe {
    log: Recorder,
    name: &'static str,
    started: Instant,
}

impl EndProbe {
    fn new(log: &Recorder, name: &'static str) -> Self {
        EndProbe {
            log: log.clone(),
            name,
            started: Instant::now(),
        }
    }
}

impl Drop for EndProbe {
    fn drop(&mut self) {
        let elapsed = self.started.elapsed().as_millis();
        self.log.push(format!("{}@{elapsed}", self.name));
    }
}

/// The millisecond at which `name`'s future ended, from an [`EndProbe`] log.
fn ended_at(log: &Recorder, name: &str) -> u128 {
    let prefix = format!("{name}@");
    let entry = log
        .entries()
        .into_iter()
        .find(|e| e.starts_with(&prefix))
        .unwrap_or_else(|| panic!("{name} never ended; log: {:?}", log.entries()));
    entry[prefix.len()..].parse().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Basic outcomes and error kinds
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn event_timeout_aborts_the_running_handler() {
    let bus = EventBus::new("TimeoutBus");
    let log = Recorder::new();
    on_sleep::<TimeoutEvent>(&bus, &log, "slow", 50, HandlerOptions::new());

    let start = Instant::now();
    let event = within(
        bus.dispatch(
            EventHandle::new(TimeoutEvent {}).with_event_timeout(Duration::from_millis(20)),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        start.elapsed(),
        ms(20),
        "the event ends when its timer fires"
    );

    let result = result_named(&event, "slow");
    assert_eq!(result.status, ResultStatus::Error);
    assert_eq!(kind(&result), Some(HandlerErrorKind::Aborted));
    let error = result.error.unwrap();
    assert_eq!(error.error_type(), "EventHandlerAbortedError");
    assert!(error.is_aborted() && !error.is_timeout() && !error.is_cancelled());
    // One error hierarchy: a handler's recorded error converts into the crate's root error.
    let root: bubus::Error = error.clone().into();
    assert!(matches!(&root, bubus::Error::Handler(e) if e.is_aborted()));
    assert!(
        error
            .message()
            .contains("interrupted because the event timed out after 0.02s"),
        "{error}"
    );
    // The future was dropped: the handler never got past its sleep.
    assert_eq!(log.entries(), ["slow_start"]);
    assert_eq!(event.event_status(), EventStatus::Completed);
}

#[tokio::test(start_paused = true)]
async fn handler_that_finishes_within_its_timeout_completes() {
    let bus = EventBus::new("TimeoutOkBus");
    let log = Recorder::new();
    on_sleep::<TimeoutEvent>(&bus, &log, "fast", 5, HandlerOptions::new());

    let event = bus
        .dispatch(EventHandle::new(TimeoutEvent {}).with_event_timeout(Duration::from_millis(500)))
        .unwrap();
    assert_eq!(within(event.event_result()).await.unwrap(), "fast");
    assert_eq!(result_named(&event, "fast").status, ResultStatus::Completed);
}

#[tokio::test(start_paused = true)]
async fn handler_timeout_is_a_timeout_error_and_the_next_handler_still_runs() {
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String, timeout = 0.2, handler_timeout = 0.01)]
    struct TimeoutFocusedEvent {}

    let bus = EventBus::new("TimeoutFocusedBus");
    let log = Recorder::new();
    on_sleep::<TimeoutFocusedEvent>(&bus, &log, "slow", 50, HandlerOptions::new());
    on_sleep::<TimeoutFocusedEvent>(&bus, &log, "fast", 0, HandlerOptions::new());

    let event = within(bus.dispatch(TimeoutFocusedEvent {}).unwrap())
        .await
        .unwrap();

    let slow = result_named(&event, "slow");
    assert_eq!(slow.status, ResultStatus::Error);
    assert!(slow.is_timeout());
    let error = slow.error.unwrap();
    assert_eq!(error.error_type(), "EventHandlerTimeoutError");
    assert!(error.message().contains("timed out after 0.01s"), "{error}");
    let fast = result_named(&event, "fast");
    assert_eq!(fast.status, ResultStatus::Completed);
    assert_eq!(fast.result.as_ref().and_then(Value::as_str), Some("fast"));
    // Serial: the second handler started only once the first had timed out.
    assert_eq!(log.entries(), ["slow_start", "fast_start", "fast_end"]);
}

// ---------------------------------------------------------------------------------------------
// Precedence (§1.9)
// ---------------------------------------------------------------------------------------------

/// One row of the precedence matrix: the bus's event timeout, the event's timeouts, the handler's
/// own timeout (`Some(None)`: explicitly none), and when and how the handler must end. The table
/// gives timeouts in seconds, as the reference's matrix does.
struct Row {
    bus: Option<Duration>,
    event_timeout: Option<Duration>,
    event_handler_timeout: Option<Duration>,
    own: Option<Option<Duration>>,
    ends_at_ms: u128,
    kind: Option<HandlerErrorKind>,
}

fn row(
    bus: Option<f64>,
    event_timeout: Option<f64>,
    event_handler_timeout: Option<f64>,
    own: Option<Option<f64>>,
    ends_at_ms: u128,
    kind: Option<HandlerErrorKind>,
) -> Row {
    let secs = |s: Option<f64>| s.map(Duration::from_secs_f64);
    Row {
        bus: secs(bus),
        event_timeout: secs(event_timeout),
        event_handler_timeout: secs(event_handler_timeout),
        own: own.map(secs),
        ends_at_ms,
        kind,
    }
}

#[tokio::test(start_paused = true)]
async fn handler_timeout_precedence_matrix() {
    use HandlerErrorKind::{Aborted, Timeout};
    // (bus event timeout, event timeout, event handler timeout, handler's own, ends at ms, kind)
    #[rustfmt::skip]
    let rows = [
        // Nothing set: the bus's 60 s default is both the handler's and the event's timeout; the
        // event timer wins the tie.
        row(Some(60.0), None, None, None, 60_000, Some(Aborted)),
        // The bus value applies when the event sets nothing.
        row(Some(0.2), None, None, None, 200, Some(Aborted)),
        // The event's handler timeout beats the bus value.
        row(Some(0.2), Some(0.2), Some(0.05), None, 50, Some(Timeout)),
        // The handler's own timeout beats the event's handler timeout, even when larger.
        row(Some(0.2), Some(0.2), Some(0.05), Some(Some(0.12)), 120, Some(Timeout)),
        // An explicit "no timeout" on the handler is still capped by the event's timeout.
        row(Some(0.2), Some(0.2), Some(0.05), Some(None), 200, Some(Aborted)),
        // The event's timeout caps everything; the tie labels the handler aborted.
        row(Some(0.2), Some(0.08), Some(0.2), None, 80, Some(Aborted)),
        row(Some(0.2), Some(0.08), Some(0.2), Some(Some(0.12)), 80, Some(Aborted)),
        // A longer event timeout does not lift the bus value off the handler: with no handler
        // timeout on the event, the bus's event timeout is the handler's.
        row(Some(0.05), Some(0.3), None, None, 50, Some(Timeout)),
        // The event's timeout caps the bus value.
        row(Some(0.3), Some(0.05), None, None, 50, Some(Aborted)),
        // No bus timeout: only what the event or handler set applies.
        row(None, None, Some(0.04), None, 40, Some(Timeout)),
        row(None, None, None, Some(Some(0.03)), 30, Some(Timeout)),
        // No timeout anywhere: the handler runs to completion (1000 s of virtual time).
        row(None, None, None, None, 1_000_000, None),
    ];

    for (i, row) in rows.iter().enumerate() {
        let bus = EventBus::builder(format!("PrecedenceBus{i}"))
            .event_timeout(row.bus)
            .build();
        let log = Recorder::new();
        let l = log.clone();
        let mut options = HandlerOptions::new().name("handler");
        if let Some(own) = row.own {
            options = options.timeout(own);
        }
        bus.on_with(
            move |_: EventHandle<TimeoutEvent>| {
                let probe = EndProbe::new(&l, "handler");
                async move {
                    let _probe = probe;
                    tokio::time::sleep(Duration::from_secs(1_000)).await;
                    String::from("done")
                }
            },
            options,
        );
        let event = EventHandle::new(TimeoutEvent {});
        event.set_event_timeout(row.event_timeout);
        event.set_event_handler_timeout(row.event_handler_timeout);
        let event = within(bus.dispatch(event).unwrap()).await.unwrap();

        let result = result_named(&event, "handler");
        assert_eq!(kind(&result), row.kind, "row {i}: {result:?}");
        assert_eq!(ended_at(&log, "handler"), row.ends_at_ms, "row {i}");
        if row.kind == Some(Timeout) {
            let secs = row.ends_at_ms as f64 / 1000.0;
            assert!(
                message(&result).contains(&format!("timed out after {secs:?}s")),
                "row {i}: {}",
                message(&result)
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn each_handler_resolves_its_own_timeout_on_the_same_event() {
    // The reference's precedence example: bus 0.2; event timeout 0.2 with handler timeout 0.05.
    // A handler without an override gets 0.05, one with its own 0.12 gets 0.12; with an event
    // timeout of 0.08, both get 0.08 (and the tie makes both aborted).
    let bus = EventBus::builder("TimeoutPrecedenceBus")
        .event_timeout(Some(Duration::from_millis(200)))
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let log = Recorder::new();
    for (name, options) in [
        ("default_handler", HandlerOptions::new()),
        (
            "overridden_handler",
            HandlerOptions::new().timeout(Some(Duration::from_millis(120))),
        ),
    ] {
        let l = log.clone();
        bus.on_with(
            move |_: EventHandle<TimeoutEvent>| {
                let probe = EndProbe::new(&l, name);
                async move {
                    let _probe = probe;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                    String::from(name)
                }
            },
            options.name(name),
        );
    }

    let event = EventHandle::new(TimeoutEvent {})
        .with_event_timeout(Duration::from_millis(200))
        .with_event_handler_timeout(Duration::from_millis(50));
    let event = within(bus.dispatch(event).unwrap()).await.unwrap();
    assert!(result_named(&event, "default_handler").is_timeout());
    assert!(result_named(&event, "overridden_handler").is_timeout());
    assert_eq!(ended_at(&log, "default_handler"), 50);
    assert_eq!(ended_at(&log, "overridden_handler"), 120);

    log.clear();
    let tighter = EventHandle::new(TimeoutEvent {})
        .with_event_timeout(Duration::from_millis(80))
        .with_event_handler_timeout(Duration::from_millis(200));
    let tighter = within(bus.dispatch(tighter).unwrap()).await.unwrap();
    for name in ["default_handler", "overridden_handler"] {
        assert_eq!(
            kind(&result_named(&tighter, name)),
            Some(HandlerErrorKind::Aborted)
        );
        assert_eq!(ended_at(&log, name), 80, "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_tie_is_decided_by_deadlines_not_by_configured_values() {
    // Serial handlers under a 50 ms event timeout; the second starts at 20 ms. Its own 30 ms
    // timeout ends exactly when the event's does: the event timer wins and the handler is
    // aborted. One millisecond less, and its own timer fires first.
    for (own, kind_expected, ends_at) in [
        (Duration::from_millis(30), HandlerErrorKind::Aborted, 30),
        (Duration::from_millis(29), HandlerErrorKind::Timeout, 29),
    ] {
        let bus = EventBus::new("DeadlineTieBus");
        let log = Recorder::new();
        on_sleep::<TimeoutEvent>(&bus, &log, "first", 20, HandlerOptions::new());
        let l = log.clone();
        bus.on_with(
            move |_: EventHandle<TimeoutEvent>| {
                let probe = EndProbe::new(&l, "second");
                async move {
                    let _probe = probe;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    String::from("second")
                }
            },
            HandlerOptions::new().name("second").timeout(Some(own)),
        );
        let event = EventHandle::new(TimeoutEvent {}).with_event_timeout(Duration::from_millis(50));
        let event = within(bus.dispatch(event).unwrap()).await.unwrap();
        assert_eq!(
            kind(&result_named(&event, "second")),
            Some(kind_expected),
            "own timeout {own:?}"
        );
        assert_eq!(ended_at(&log, "second"), ends_at, "own timeout {own:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn the_event_budget_starts_when_its_bus_takes_it_up() {
    // Waiting in the queue (behind a slow event, or for the domain lock) does not count: each
    // event's timeout starts when its bus starts processing it.
    let domain = bubus::bus::LockDomain::new();
    let bus_a = EventBus::builder("BudgetA")
        .event_concurrency(EventConcurrency::GlobalSerial)
        .lock_domain(domain.clone())
        .build();
    let bus_b = EventBus::builder("BudgetB")
        .event_concurrency(EventConcurrency::GlobalSerial)
        .lock_domain(domain)
        .build();
    let log = Recorder::new();
    on_sleep::<ParentEvent>(&bus_a, &log, "slow", 100, HandlerOptions::new());
    on_sleep::<ChildEvent>(&bus_a, &log, "queued_on_a", 30, HandlerOptions::new());
    on_sleep::<ChildEvent>(&bus_b, &log, "queued_on_b", 30, HandlerOptions::new());

    bus_a.dispatch(ParentEvent {}).unwrap();
    let on_a = bus_a
        .dispatch(EventHandle::new(ChildEvent {}).with_event_timeout(Duration::from_millis(50)))
        .unwrap();
    let on_b = bus_b
        .dispatch(EventHandle::new(ChildEvent {}).with_event_timeout(Duration::from_millis(50)))
        .unwrap();
    let start = Instant::now();
    assert_eq!(within(on_a.event_result()).await.unwrap(), "queued_on_a");
    assert_eq!(within(on_b.event_result()).await.unwrap(), "queued_on_b");
    assert_eq!(
        start.elapsed(),
        ms(160),
        "one event at a time across both buses"
    );
}

#[tokio::test(start_paused = true)]
async fn unset_event_timeout_falls_back_to_the_bus_default() {
    let bus = EventBus::builder("TimeoutDefaultBus")
        .event_timeout(Some(Duration::from_millis(10)))
        .build();
    let log = Recorder::new();
    on_sleep::<TimeoutEvent>(&bus, &log, "slow", 50, HandlerOptions::new());

    let event = EventHandle::new(TimeoutEvent {});
    event.set_event_timeout(None);
    let event = within(bus.dispatch(event).unwrap()).await.unwrap();
    assert_eq!(
        kind(&result_named(&event, "slow")),
        Some(HandlerErrorKind::Aborted)
    );
}

#[tokio::test(start_paused = true)]
async fn no_bus_default_and_no_event_timeout_means_no_timeout() {
    let bus = EventBus::builder("TimeoutDisabledBus")
        .event_timeout(None)
        .build();
    let log = Recorder::new();
    on_sleep::<TimeoutEvent>(&bus, &log, "slow", 1_800_000, HandlerOptions::new());

    let start = Instant::now();
    let event = bus.dispatch(TimeoutEvent {}).unwrap();
    assert_eq!(within(event.event_result()).await.unwrap(), "slow");
    assert_eq!(start.elapsed(), Duration::from_secs(1_800));
}

#[tokio::test(start_paused = true)]
async fn a_zero_timeout_stops_any_handler_that_has_to_wait() {
    // As in the Python runtime, 0 is a valid timeout: already expired. A handler that finishes
    // on its first poll completes; one that has to wait is stopped at once.
    let bus = EventBus::new("ZeroTimeoutBus");
    bus.on_with(
        |_: EventHandle<TimeoutEvent>| String::from("ready"),
        HandlerOptions::new().name("ready"),
    );
    let log = Recorder::new();
    on_sleep::<TimeoutEvent>(&bus, &log, "waits", 1, HandlerOptions::new());

    let start = Instant::now();
    let event = bus
        .dispatch(EventHandle::new(TimeoutEvent {}).with_event_timeout(Duration::ZERO))
        .unwrap();
    let event = within(event).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        result_named(&event, "ready").status,
        ResultStatus::Completed
    );
    assert_eq!(
        kind(&result_named(&event, "waits")),
        Some(HandlerErrorKind::Aborted)
    );
    assert_eq!(log.entries(), ["waits_start"]);
}

#[tokio::test(start_paused = true)]
async fn handler_file_paths_are_recorded_unless_turned_off() {
    let bus = EventBus::new("DetectPathsBus");
    let entry = bus.on(|_: EventHandle<TimeoutEvent>| String::from("ok"));
    let path = entry.handler_file_path().expect("recorded by default");
    assert!(path.starts_with(file!()), "{path}");

    let bus = EventBus::builder("NoDetectPathsBus")
        .disable_handler_file_paths()
        .build();
    let entry = bus.on(|_: EventHandle<TimeoutEvent>| String::from("ok"));
    assert_eq!(entry.handler_file_path(), None);
}

#[tokio::test(start_paused = true)]
async fn timeout_defaults_resolve_at_processing_time_and_are_not_written_onto_the_event() {
    let bus = EventBus::builder("TimeoutDefaultsCopyBus")
        .event_timeout(Some(Duration::from_secs(12)))
        .event_slow_timeout(Some(Duration::from_secs(34)))
        .event_handler_slow_timeout(Some(Duration::from_secs(56)))
        .build();
    let log = Recorder::new();
    let l = log.clone();
    bus.on_with(
        move |_: EventHandle<TimeoutEvent>| {
            let probe = EndProbe::new(&l, "handler");
            async move {
                let _probe = probe;
                tokio::time::sleep(Duration::from_secs(100)).await;
                String::from("ok")
            }
        },
        HandlerOptions::new().name("handler"),
    );

    let event = bus.dispatch(TimeoutEvent {}).unwrap();
    let config = event.event_config();
    assert_eq!(config, bubus::event::EventConfig::default());
    assert_eq!(config.event_timeout, None);
    assert_eq!(config.event_handler_timeout, None);
    assert_eq!(config.event_slow_timeout, None);
    assert_eq!(config.event_handler_slow_timeout, None);

    let event = within(event).await.unwrap();
    // The bus's 12 s applied to the handler ...
    assert_eq!(ended_at(&log, "handler"), 12_000);
    assert_eq!(
        kind(&result_named(&event, "handler")),
        Some(HandlerErrorKind::Aborted)
    );
    // ... without being copied onto the event, even after processing.
    assert_eq!(event.event_config(), bubus::event::EventConfig::default());
    let results = event.event_results();
    assert_eq!(
        results[0].handler_timeout, None,
        "only an explicit own timeout"
    );
}

// ---------------------------------------------------------------------------------------------
// The event timeout is a hard cap
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn event_timeout_is_a_hard_cap_across_serial_handlers() {
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String, timeout = 0.05)]
    struct HardCapEvent {}

    let bus = EventBus::new("EventHardCapBus");
    let log = Recorder::new();
    on_sleep::<HardCapEvent>(&bus, &log, "first_handler", 30, HandlerOptions::new());
    on_sleep::<HardCapEvent>(&bus, &log, "second_handler", 30, HandlerOptions::new());
    on_sleep::<HardCapEvent>(&bus, &log, "pending_handler", 0, HandlerOptions::new());

    let start = Instant::now();
    let event = within(bus.dispatch(HardCapEvent {}).unwrap())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), ms(50));

    let first = result_named(&event, "first_handler");
    assert_eq!(first.status, ResultStatus::Completed);
    assert_eq!(
        first.result.as_ref().and_then(Value::as_str),
        Some("first_handler")
    );
    let second = result_named(&event, "second_handler");
    assert_eq!(kind(&second), Some(HandlerErrorKind::Aborted));
    let pending = result_named(&event, "pending_handler");
    assert_eq!(kind(&pending), Some(HandlerErrorKind::Cancelled));
    assert_eq!(
        pending.error.unwrap().error_type(),
        "EventHandlerCancelledError"
    );
    assert!(pending.started_at.is_none() || pending.started_at == pending.completed_at);
    assert_eq!(log.position("pending_handler_start"), None);
}

#[tokio::test(start_paused = true)]
async fn event_timeout_aborts_every_started_parallel_handler() {
    let bus = EventBus::builder("EventHardCapParallelBus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let started = Arc::new(tokio::sync::Barrier::new(2));
    let log = Recorder::new();
    for name in ["slow_a", "slow_b"] {
        let (started, log) = (Arc::clone(&started), log.clone());
        bus.on_with(
            move |_: EventHandle<TimeoutEvent>| {
                let (started, log) = (Arc::clone(&started), log.clone());
                async move {
                    log.push(format!("{name}_start"));
                    // Both are running before either sleeps.
                    started.wait().await;
                    tokio::time::sleep(ms(200)).await;
                    String::from(name)
                }
            },
            HandlerOptions::new().name(name),
        );
    }

    let event = within(
        bus.dispatch(
            EventHandle::new(TimeoutEvent {}).with_event_timeout(Duration::from_millis(30)),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(log.len(), 2);
    let results = event.event_results();
    assert_eq!(results.len(), 2);
    for result in &results {
        assert_eq!(result.status, ResultStatus::Error);
        assert_eq!(kind(result), Some(HandlerErrorKind::Aborted), "{result:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn event_timeout_does_not_relabel_a_recorded_handler_timeout() {
    let bus = EventBus::builder("EventTimeoutPreservesHandlerTimeoutBus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let log = Recorder::new();
    on_sleep::<TimeoutEvent>(
        &bus,
        &log,
        "own_timeout",
        50,
        HandlerOptions::new().timeout(Some(Duration::from_millis(10))),
    );
    // The reference's variant: the timeout comes from a retry policy around the handler.
    let policy = Retry::new().max_attempts(1).timeout(ms(10));
    bus.on_with(
        policy.handler(|_: EventHandle<TimeoutEvent>| async {
            tokio::time::sleep(ms(50)).await;
            Ok::<_, std::io::Error>(String::from("retry-timeout"))
        }),
        HandlerOptions::new().name("retry_timeout"),
    );
    on_sleep::<TimeoutEvent>(&bus, &log, "long_running", 200, HandlerOptions::new());

    let event = within(
        bus.dispatch(
            EventHandle::new(TimeoutEvent {}).with_event_timeout(Duration::from_millis(50)),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    let own = result_named(&event, "own_timeout");
    assert!(own.is_timeout(), "{own:?}");
    assert!(message(&own).contains("timed out after 0.01s"));
    let retried = result_named(&event, "retry_timeout");
    assert!(retried.is_timeout(), "{retried:?}");
    assert_eq!(
        kind(&result_named(&event, "long_running")),
        Some(HandlerErrorKind::Aborted)
    );
}

#[tokio::test(start_paused = true)]
async fn event_timeouts_abort_handlers_in_every_concurrency_mode() {
    let domain = bubus::bus::LockDomain::new();
    for event_mode in [
        EventConcurrency::GlobalSerial,
        EventConcurrency::BusSerial,
        EventConcurrency::Parallel,
    ] {
        for (label, handler_mode, global_lock) in [
            ("serial", HandlerConcurrency::Serial, false),
            ("parallel", HandlerConcurrency::Parallel, false),
            ("serial-global", HandlerConcurrency::Serial, true),
        ] {
            let bus = EventBus::builder(format!("Timeout-{}-{label}", event_mode.as_str()))
                .event_concurrency(event_mode)
                .event_handler_concurrency(handler_mode)
                .lock_domain(domain.clone())
                .build();
            let slow = |_: EventHandle<TimeoutEvent>| async {
                tokio::time::sleep(ms(50)).await;
                Ok::<_, std::io::Error>(String::from("slow"))
            };
            if global_lock {
                let policy = Retry::new()
                    .semaphore_scope(SemaphoreScope::Global)
                    .semaphore_name("timeout_handler")
                    .semaphore_limit(1);
                bus.on(policy.handler(slow));
            } else {
                bus.on(slow);
            }

            let event = bus
                .dispatch(
                    EventHandle::new(TimeoutEvent {}).with_event_timeout(Duration::from_millis(10)),
                )
                .unwrap();
            let event = within(event).await.unwrap();
            let results = event.event_results();
            assert_eq!(
                kind(&results[0]),
                Some(HandlerErrorKind::Aborted),
                "event={} handler={label}",
                event_mode.as_str()
            );
            assert!(bus.wait_until_idle(Some(ms(1))).await);
        }
    }
}

#[tokio::test(start_paused = true)]
async fn an_event_with_one_timed_out_handler_still_completes_with_the_others() {
    let bus = EventBus::builder("TimeoutParallelHandlers")
        .event_concurrency(EventConcurrency::Parallel)
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let log = Recorder::new();
    on_sleep::<TimeoutEvent>(&bus, &log, "fast", 1, HandlerOptions::new());
    on_sleep::<TimeoutEvent>(&bus, &log, "slow", 50, HandlerOptions::new());

    let event = within(
        bus.dispatch(
            EventHandle::new(TimeoutEvent {}).with_event_timeout(Duration::from_millis(10)),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(event.event_status(), EventStatus::Completed);
    assert_eq!(result_named(&event, "fast").status, ResultStatus::Completed);
    assert_eq!(result_named(&event, "slow").status, ResultStatus::Error);
    assert_eq!(event.event_errors().len(), 1);
    assert!(log.position("fast_end").is_some());
    assert!(log.position("slow_end").is_none());
}

#[tokio::test(start_paused = true)]
async fn event_level_concurrency_overrides_do_not_bypass_timeouts() {
    let bus = EventBus::builder("TimeoutEventOverrideBus")
        .event_concurrency(EventConcurrency::GlobalSerial)
        .lock_domain(bubus::bus::LockDomain::new())
        .build();
    let policy = Retry::new()
        .semaphore_scope(SemaphoreScope::Global)
        .semaphore_name("timeout_override_event")
        .semaphore_limit(1);
    bus.on(policy.handler(|_: EventHandle<TimeoutEvent>| async {
        tokio::time::sleep(ms(50)).await;
        Ok::<_, std::io::Error>(String::from("slow"))
    }));
    // Two handlers sharing a retry semaphore: the second waits for the first's slot and is
    // interrupted while waiting, which the bus sees as running.
    let policy2 = Retry::new()
        .semaphore_scope(SemaphoreScope::Global)
        .semaphore_name("timeout_override_event")
        .semaphore_limit(1);
    bus.on(policy2.handler(|_: EventHandle<TimeoutEvent>| async {
        Ok::<_, std::io::Error>(String::from("fast"))
    }));

    let event = EventHandle::new(TimeoutEvent {})
        .with_event_timeout(Duration::from_millis(10))
        .with_event_concurrency(EventConcurrency::Parallel)
        .with_event_handler_concurrency(HandlerConcurrency::Parallel);
    let event = within(bus.dispatch(event).unwrap()).await.unwrap();
    assert_eq!(
        kinds(&event),
        [
            Some(HandlerErrorKind::Aborted),
            Some(HandlerErrorKind::Aborted)
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Several buses
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_timeout_on_the_target_of_a_multi_bus_dispatch_is_recorded_there() {
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String, timeout = 0.01)]
    struct MultiBusTimeoutEvent {}

    let bus_a = EventBus::new("MultiTimeoutA");
    let bus_b = EventBus::new("MultiTimeoutB");
    let log = Recorder::new();
    on_sleep::<MultiBusTimeoutEvent>(&bus_b, &log, "slow_target", 50, HandlerOptions::new());

    let event = EventHandle::new(MultiBusTimeoutEvent {});
    bus_a.dispatch(&event).unwrap();
    bus_b.dispatch(&event).unwrap();
    assert!(within(bus_b.wait_until_idle(None)).await);

    let result = result_named(&event, "slow_target");
    assert_eq!(result.eventbus_name, "MultiTimeoutB");
    assert_eq!(result.eventbus_id, bus_b.id());
    assert_eq!(kind(&result), Some(HandlerErrorKind::Aborted));
    assert_eq!(event.event_path(), [bus_a.label(), bus_b.label()]);
    assert!(within(&event).await.unwrap().is_complete());
}

#[tokio::test(start_paused = true)]
async fn a_forwarded_event_times_out_on_the_bus_it_was_forwarded_to() {
    let bus_a = EventBus::new("TimeoutForwardA");
    let bus_b = EventBus::new("TimeoutForwardB");
    let target = bus_b.clone();
    bus_a.on(move |e: AnyEvent| target.dispatch(e));
    let log = Recorder::new();
    on_sleep::<TimeoutEvent>(&bus_b, &log, "slow", 50, HandlerOptions::new());

    let event = within(
        bus_a
            .dispatch(
                EventHandle::new(TimeoutEvent {}).with_event_timeout(Duration::from_millis(10)),
            )
            .unwrap(),
    )
    .await
    .unwrap();
    let result = result_named(&event, "slow");
    assert_eq!(result.eventbus_id, bus_b.id());
    assert_eq!(kind(&result), Some(HandlerErrorKind::Aborted));
    // The forwarder on A completed: its result is the forwarded event.
    let forward = event
        .event_results()
        .into_iter()
        .find(|r| r.eventbus_id == bus_a.id())
        .unwrap();
    assert_eq!(forward.status, ResultStatus::Completed);
    assert_eq!(forward.forwarded_event_id, Some(event.event_id()));
}

#[tokio::test(start_paused = true)]
async fn a_queue_jumped_child_times_out_across_global_serial_buses() {
    let domain = bubus::bus::LockDomain::new();
    let bus_a = EventBus::builder("TimeoutQueueJumpA")
        .event_concurrency(EventConcurrency::GlobalSerial)
        .lock_domain(domain.clone())
        .build();
    let bus_b = EventBus::builder("TimeoutQueueJumpB")
        .event_concurrency(EventConcurrency::GlobalSerial)
        .lock_domain(domain)
        .build();
    let log = Recorder::new();
    on_sleep::<ChildEvent>(&bus_b, &log, "slow_child", 50, HandlerOptions::new());

    let child_slot = Arc::new(Mutex::new(None));
    let (slot, a, b) = (Arc::clone(&child_slot), bus_a.clone(), bus_b.clone());
    bus_a.on(move |_: EventHandle<ParentEvent>| {
        let (slot, a, b) = (Arc::clone(&slot), a.clone(), b.clone());
        async move {
            let child = a.dispatch(
                EventHandle::new(ChildEvent {}).with_event_timeout(Duration::from_millis(10)),
            )?;
            b.dispatch(&child)?;
            *slot.lock().unwrap() = Some(child.clone());
            child.await?;
            Ok::<_, bubus::Error>(String::from("parent_done"))
        }
    });

    let parent = within(
        bus_a
            .dispatch(
                EventHandle::new(ParentEvent {}).with_event_timeout(Duration::from_millis(500)),
            )
            .unwrap(),
    )
    .await
    .unwrap();
    let child = child_slot.lock().unwrap().clone().unwrap();
    assert_eq!(
        kind(&result_named(&child, "slow_child")),
        Some(HandlerErrorKind::Aborted)
    );
    assert_eq!(
        parent.event_errors().len(),
        0,
        "{:?}",
        parent.event_errors()
    );
}

// ---------------------------------------------------------------------------------------------
// The bus keeps working after a timeout
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn followup_events_run_after_a_parent_times_out_in_the_queue_jump_path() {
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String, timeout = 0.02)]
    struct QjParent {}
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String, timeout = 0.2)]
    struct QjChild {}
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String, timeout = 0.2)]
    struct QjTail {}

    let bus = EventBus::new("TimeoutQueueJumpFollowupBus");
    let log = Recorder::new();
    on_sleep::<QjChild>(&bus, &log, "child", 1, HandlerOptions::new());
    on_sleep::<QjTail>(&bus, &log, "tail", 0, HandlerOptions::new());
    let b = bus.clone();
    bus.on_with(
        move |_: EventHandle<QjParent>| {
            let b = b.clone();
            async move {
                b.dispatch(QjChild {})?.await?;
                tokio::time::sleep(ms(50)).await; // past the parent's timeout
                Ok::<_, bubus::Error>(String::from("parent_done"))
            }
        },
        HandlerOptions::new().name("parent"),
    );

    let parent = within(bus.dispatch(QjParent {}).unwrap()).await.unwrap();
    assert!(within(bus.wait_until_idle(None)).await);
    assert_eq!(
        kind(&result_named(&parent, "parent")),
        Some(HandlerErrorKind::Aborted)
    );
    // The awaited child completed before the parent timed out and stays completed.
    let child = &parent.event_children()[0];
    assert_eq!(child.event_results()[0].status, ResultStatus::Completed);

    let tail = bus.dispatch(QjTail {}).unwrap();
    assert_eq!(within(tail.event_result()).await.unwrap(), "tail");
    assert_eq!(
        log.entries().iter().filter(|e| *e == "tail_start").count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn a_forwarded_awaited_child_timeout_does_not_stall_followup_events() {
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String, timeout = 1.0)]
    struct FwParent {}
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String, timeout = 0.01)]
    struct FwChild {}
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String, timeout = 0.2)]
    struct FwTail {}

    let bus_a = EventBus::new("TimeoutForwardA");
    let bus_b = EventBus::new("TimeoutForwardB");
    let log = Recorder::new();
    let child_slot = Arc::new(Mutex::new(None));
    let (slot, a) = (Arc::clone(&child_slot), bus_a.clone());
    bus_a.on_with(
        move |_: EventHandle<FwParent>| {
            let (slot, a) = (Arc::clone(&slot), a.clone());
            async move {
                let child = a.dispatch(FwChild {})?;
                *slot.lock().unwrap() = Some(child.clone());
                child.await?;
                Ok::<_, bubus::Error>(String::from("parent_done"))
            }
        },
        HandlerOptions::new().name("parent_handler"),
    );
    on_sleep::<FwTail>(&bus_a, &log, "tail_a", 0, HandlerOptions::new());
    let target = bus_b.clone();
    bus_a.on(move |e: AnyEvent| target.dispatch(e));
    on_sleep::<FwChild>(&bus_b, &log, "slow_child", 50, HandlerOptions::new());
    on_sleep::<FwTail>(&bus_b, &log, "tail_b", 0, HandlerOptions::new());

    let parent = within(bus_a.dispatch(FwParent {}).unwrap()).await.unwrap();
    assert!(within(bus_a.wait_until_idle(None)).await);
    assert!(within(bus_b.wait_until_idle(None)).await);
    assert_eq!(
        result_named(&parent, "parent_handler").status,
        ResultStatus::Completed
    );
    let child = child_slot.lock().unwrap().clone().unwrap();
    assert_eq!(
        kind(&result_named(&child, "slow_child")),
        Some(HandlerErrorKind::Aborted)
    );

    let tail = within(bus_a.dispatch(FwTail {}).unwrap()).await.unwrap();
    assert!(within(bus_b.wait_until_idle(None)).await);
    assert_eq!(tail.event_status(), EventStatus::Completed);
    assert_eq!(
        result_named(&tail, "tail_a").status,
        ResultStatus::Completed
    );
    assert_eq!(
        result_named(&tail, "tail_b").status,
        ResultStatus::Completed
    );
}

#[tokio::test(start_paused = true)]
async fn a_parent_timeout_while_a_sibling_handler_holds_the_serial_lock_releases_it() {
    for global_lock in [false, true] {
        let bus = EventBus::builder(format!("TimeoutContentionBus{global_lock}"))
            .event_handler_concurrency(HandlerConcurrency::Serial)
            .build();
        let policy = Retry::new()
            .semaphore_scope(SemaphoreScope::Global)
            .semaphore_name(format!("timeout_contention_{global_lock}"))
            .semaphore_limit(1);
        let wrap = |bus: &EventBus, name: &'static str, sleep_ms: u64, awaits_child: bool| {
            let (b, policy) = (bus.clone(), policy.clone());
            let body = move |_: EventHandle<ParentEvent>| {
                let b = b.clone();
                async move {
                    if awaits_child {
                        let child = EventHandle::new(ChildEvent {})
                            .with_event_timeout(Duration::from_millis(200))
                            .with_event_handler_concurrency(HandlerConcurrency::Parallel);
                        b.dispatch(child)?.await?;
                    }
                    tokio::time::sleep(ms(sleep_ms)).await;
                    Ok::<_, bubus::Error>(String::from(name))
                }
            };
            let options = HandlerOptions::new().name(name);
            if global_lock {
                bus.on_with(policy.handler(body), options);
            } else {
                bus.on_with(body, options);
            }
        };
        let log = Recorder::new();
        on_sleep::<ChildEvent>(&bus, &log, "child", 2, HandlerOptions::new());
        wrap(&bus, "parent_main", 0, true);
        wrap(&bus, "parent_blocker", 40, false);

        let parent = EventHandle::new(ParentEvent {}).with_event_timeout(Duration::from_millis(10));
        let parent = within(bus.dispatch(parent).unwrap()).await.unwrap();
        assert!(within(bus.wait_until_idle(None)).await);
        assert_eq!(
            kind(&result_named(&parent, "parent_blocker")),
            Some(HandlerErrorKind::Aborted),
            "global_lock={global_lock}"
        );

        // The timed-out handler's serial-handler lock was released: the same event, sent to
        // another bus, gets its handler run there.
        let other = EventBus::new(format!("TimeoutContentionOther{global_lock}"));
        on_sleep::<ParentEvent>(&other, &log, "other", 0, HandlerOptions::new());
        other.dispatch(&parent).unwrap();
        assert!(within(other.wait_until_idle(None)).await);
        assert_eq!(
            result_named(&parent, "other").status,
            ResultStatus::Completed
        );
    }
}

#[tokio::test(start_paused = true)]
async fn nested_queue_jump_with_timeout_cancellation_leaves_the_bus_usable() {
    for global_lock in [false, true] {
        let bus = EventBus::builder(format!("NestedPermitBus{global_lock}"))
            .event_handler_concurrency(HandlerConcurrency::Serial)
            .build();
        let policy = Retry::new()
            .semaphore_scope(SemaphoreScope::Global)
            .semaphore_name(format!("timeout_nested_{global_lock}"))
            .semaphore_limit(1);
        let queued_sibling_runs = Arc::new(AtomicUsize::new(0));
        let tail_runs = Arc::new(AtomicUsize::new(0));
        let sibling_slot = Arc::new(Mutex::new(None));

        macro_rules! on {
            ($handler:expr) => {
                if global_lock {
                    bus.on(policy.handler($handler));
                } else {
                    bus.on($handler);
                }
            };
        }
        on!(|_: EventHandle<GrandchildEvent>| async {
            tokio::time::sleep(ms(1)).await;
            Ok::<_, bubus::Error>(String::from("grandchild_done"))
        });
        let b = bus.clone();
        on!(move |_: EventHandle<ChildEvent>| {
            let b = b.clone();
            async move {
                b.dispatch(
                    EventHandle::new(GrandchildEvent {})
                        .with_event_timeout(Duration::from_millis(200)),
                )?
                .await?;
                tokio::time::sleep(ms(40)).await;
                Ok::<_, bubus::Error>(String::from("child_done"))
            }
        });
        let runs = Arc::clone(&queued_sibling_runs);
        on!(move |_: EventHandle<SiblingEvent>| {
            runs.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, bubus::Error>(String::from("queued_sibling_done")) }
        });
        let (b, slot) = (bus.clone(), Arc::clone(&sibling_slot));
        on!(move |_: EventHandle<ParentEvent>| {
            let (b, slot) = (b.clone(), Arc::clone(&slot));
            async move {
                let sibling = b.dispatch(
                    EventHandle::new(SiblingEvent {})
                        .with_event_timeout(Duration::from_millis(200)),
                )?;
                *slot.lock().unwrap() = Some(sibling);
                let child = b.dispatch(
                    EventHandle::new(ChildEvent {}).with_event_timeout(Duration::from_millis(20)),
                )?;
                child.await?;
                tokio::time::sleep(ms(40)).await;
                Ok::<_, bubus::Error>(String::from("parent_done"))
            }
        });
        let runs = Arc::clone(&tail_runs);
        on!(move |_: EventHandle<TailEvent>| {
            runs.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, bubus::Error>(String::from("tail_done")) }
        });

        let parent = EventHandle::new(ParentEvent {}).with_event_timeout(Duration::from_millis(30));
        let parent = within(bus.dispatch(parent).unwrap()).await.unwrap();
        assert!(within(bus.wait_until_idle(None)).await);
        assert_eq!(kinds(&parent), [Some(HandlerErrorKind::Aborted)]);
        let sibling = sibling_slot.lock().unwrap().clone().unwrap();
        assert_eq!(queued_sibling_runs.load(Ordering::SeqCst), 0);
        assert_eq!(kinds(&sibling), [Some(HandlerErrorKind::Cancelled)]);

        let tail = bus
            .dispatch(EventHandle::new(TailEvent {}).with_event_timeout(Duration::from_millis(50)))
            .unwrap();
        assert_eq!(within(tail.event_result()).await.unwrap(), "tail_done");
        assert_eq!(tail_runs.load(Ordering::SeqCst), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// The cancellation cascade
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_parent_timeout_cancels_the_pending_handlers_of_its_queued_child() {
    let bus = EventBus::builder("TimeoutCancelBus")
        .event_handler_concurrency(HandlerConcurrency::Serial)
        .build();
    let log = Recorder::new();
    let c1 = on_sleep::<ChildEvent>(&bus, &log, "child_first", 30, HandlerOptions::new());
    let c2 = on_sleep::<ChildEvent>(&bus, &log, "child_second", 10, HandlerOptions::new());
    let b = bus.clone();
    bus.on(move |_: EventHandle<ParentEvent>| {
        let b = b.clone();
        async move {
            b.dispatch(
                EventHandle::new(ChildEvent {}).with_event_timeout(Duration::from_millis(200)),
            )?;
            tokio::time::sleep(ms(50)).await;
            Ok::<_, bubus::Error>(String::new())
        }
    });

    let parent = bus
        .dispatch(EventHandle::new(ParentEvent {}).with_event_timeout(Duration::from_millis(10)))
        .unwrap();
    let parent = within(parent).await.unwrap();
    assert!(within(bus.wait_until_idle(None)).await);

    let child = &parent.event_children()[0];
    assert!(child.is_complete());
    assert!(log.is_empty(), "no child handler ran: {:?}", log.entries());
    let results = child.event_results();
    assert_eq!(results.len(), 2);
    // Each cancelled result names the child handler it belongs to.
    assert_eq!(&results[0].handler_id, c1.id());
    assert_eq!(&results[1].handler_id, c2.id());
    for result in &results {
        assert_eq!(kind(result), Some(HandlerErrorKind::Cancelled));
        assert!(
            message(result).contains(&format!("event {} timed out after 0.01s", parent.label())),
            "{}",
            message(result)
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_timeout_cancels_the_events_that_handler_queued() {
    // Once with the bus's handler timeout, once with a retry policy's attempt timeout.
    for via_retry in [false, true] {
        let bus = EventBus::new(format!("RetryTimeoutCancelBus{via_retry}"));
        let log = Recorder::new();
        on_sleep::<ChildEvent>(&bus, &log, "child", 20, HandlerOptions::new());
        let b = bus.clone();
        let body = move |_: EventHandle<ParentEvent>| {
            let b = b.clone();
            async move {
                b.dispatch(
                    EventHandle::new(ChildEvent {}).with_event_timeout(Duration::from_millis(200)),
                )?;
                tokio::time::sleep(ms(50)).await;
                Ok::<_, bubus::Error>(String::from("parent_done"))
            }
        };
        let options = HandlerOptions::new().name("parent_handler");
        if via_retry {
            let policy = Retry::new().max_attempts(1).timeout(ms(10));
            bus.on_with(policy.handler(body), options);
        } else {
            bus.on_with(body, options.timeout(Some(Duration::from_millis(10))));
        }

        let parent = bus
            .dispatch(
                EventHandle::new(ParentEvent {}).with_event_timeout(Duration::from_millis(500)),
            )
            .unwrap();
        let parent = within(parent).await.unwrap();
        assert!(within(bus.wait_until_idle(None)).await);

        let parent_result = result_named(&parent, "parent_handler");
        assert!(parent_result.is_timeout(), "{parent_result:?}");
        let child = &parent.event_children()[0];
        assert_eq!(kinds(child), [Some(HandlerErrorKind::Cancelled)]);
        let cause = message(&child.event_results()[0]);
        assert!(cause.contains("parent_handler"), "{cause}");
        assert!(log.is_empty(), "the queued child never ran");
    }
}

#[tokio::test(start_paused = true)]
async fn a_handler_timeout_aborts_a_descendant_running_on_another_bus() {
    let bus_a = EventBus::new("RunningDescendantA");
    let bus_b = EventBus::new("RunningDescendantB");
    let log = Recorder::new();
    on_sleep::<ChildEvent>(&bus_b, &log, "child", 10_000, HandlerOptions::new());
    let b = bus_b.clone();
    bus_a.on_with(
        move |_: EventHandle<ParentEvent>| {
            let b = b.clone();
            async move {
                // Not awaited: runs on B's own run loop while the parent goes on.
                b.dispatch(ChildEvent {})?;
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, bubus::Error>(String::from("parent_done"))
            }
        },
        HandlerOptions::new()
            .name("parent_handler")
            .timeout(Some(Duration::from_millis(50))),
    );

    let start = Instant::now();
    let parent = within(bus_a.dispatch(ParentEvent {}).unwrap())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), ms(50));
    assert!(result_named(&parent, "parent_handler").is_timeout());

    let child = &parent.event_children()[0];
    assert!(child.is_complete());
    let result = result_named(child, "child");
    assert_eq!(kind(&result), Some(HandlerErrorKind::Aborted));
    assert!(
        message(&result).contains("parent_handler"),
        "{}",
        message(&result)
    );
    assert_eq!(log.entries(), ["child_start"], "started, never finished");
    assert!(within(bus_b.wait_until_idle(None)).await);
}

#[tokio::test(start_paused = true)]
async fn handler_timeout_stops_in_flight_retries_and_cancels_the_started_child() {
    let bus = EventBus::builder("RetryTimeoutHandlerTimeoutBus")
        .event_concurrency(EventConcurrency::Parallel)
        .build();
    let child_started = Arc::new(AtomicUsize::new(0));
    let started = Arc::clone(&child_started);
    bus.on_with(
        move |_: EventHandle<ChildEvent>| {
            started.fetch_add(1, Ordering::SeqCst);
            async {
                tokio::time::sleep(ms(500)).await;
                String::from("child_done")
            }
        },
        HandlerOptions::new().name("child"),
    );
    let attempts = Arc::new(AtomicUsize::new(0));
    let child_slot = Arc::new(Mutex::new(None));
    let policy = Retry::new().max_attempts(10).timeout(ms(100));
    let (b, a, slot) = (bus.clone(), Arc::clone(&attempts), Arc::clone(&child_slot));
    bus.on_with(
        policy.handler(move |_: EventHandle<ParentEvent>| {
            let (b, a, slot) = (b.clone(), Arc::clone(&a), Arc::clone(&slot));
            async move {
                if a.fetch_add(1, Ordering::SeqCst) == 0 {
                    let child = b.dispatch(
                        EventHandle::new(ChildEvent {}).with_event_timeout(Duration::from_secs(2)),
                    )?;
                    *slot.lock().unwrap() = Some(child);
                    tokio::time::sleep(ms(10)).await;
                }
                tokio::time::sleep(ms(200)).await;
                Ok::<_, bubus::Error>(String::from("parent_attempt_done"))
            }
        }),
        HandlerOptions::new()
            .name("parent")
            .timeout(Some(Duration::from_millis(350))),
    );

    let parent = bus
        .dispatch(EventHandle::new(ParentEvent {}).with_event_timeout(Duration::from_secs(2)))
        .unwrap();
    let parent = within(parent).await.unwrap();
    assert!(within(bus.wait_until_idle(None)).await);

    let result = result_named(&parent, "parent");
    assert!(result.is_timeout(), "{result:?}");
    assert!(message(&result).contains("timed out after 0.35s"));
    let attempts = attempts.load(Ordering::SeqCst);
    assert!((2..10).contains(&attempts), "{attempts} attempts");
    assert_eq!(child_started.load(Ordering::SeqCst), 1);
    let child = child_slot.lock().unwrap().clone().unwrap();
    assert_eq!(kinds(&child), [Some(HandlerErrorKind::Aborted)]);
}

#[tokio::test(start_paused = true)]
async fn a_parent_timeout_cancels_children_that_have_no_timeout_of_their_own() {
    let bus = EventBus::builder("TimeoutBoundaryBus")
        .event_timeout(None)
        .build();
    let log = Recorder::new();
    on_sleep::<ChildEvent>(&bus, &log, "child", 500, HandlerOptions::new());
    let b = bus.clone();
    bus.on(move |_: EventHandle<ParentEvent>| {
        let b = b.clone();
        async move {
            let child = EventHandle::new(ChildEvent {});
            child.set_event_timeout(None);
            b.dispatch(child)?;
            tokio::time::sleep(ms(200)).await;
            Ok::<_, bubus::Error>(String::from("parent_done"))
        }
    });

    let parent = bus
        .dispatch(EventHandle::new(ParentEvent {}).with_event_timeout(Duration::from_millis(30)))
        .unwrap();
    let parent = within(parent).await.unwrap();
    assert!(within(bus.wait_until_idle(None)).await);
    assert_eq!(kinds(&parent), [Some(HandlerErrorKind::Aborted)]);
    let child = &parent.event_children()[0];
    assert_eq!(child.event_status(), EventStatus::Completed);
    assert!(log.is_empty());
    assert_eq!(kinds(child), [Some(HandlerErrorKind::Cancelled)]);
}

#[tokio::test(start_paused = true)]
async fn multi_level_timeout_cascade_with_mixed_cancellations() {
    let bus = EventBus::builder("TimeoutCascadeBus")
        .event_handler_concurrency(HandlerConcurrency::Serial)
        .build();
    let log = Recorder::new();
    on_sleep::<QueuedChildEvent>(&bus, &log, "queued_child_fast", 5, HandlerOptions::new());
    on_sleep::<QueuedChildEvent>(&bus, &log, "queued_child_slow", 50, HandlerOptions::new());
    on_sleep::<ChildEvent>(&bus, &log, "awaited_child_fast", 5, HandlerOptions::new());
    let slots: Arc<Mutex<Vec<AnyEvent>>> = Arc::default();
    let (b, s) = (bus.clone(), Arc::clone(&slots));
    bus.on_with(
        move |_: EventHandle<ChildEvent>| {
            let (b, s) = (b.clone(), Arc::clone(&s));
            async move {
                let queued = b.dispatch(
                    EventHandle::new(QueuedGrandchildEvent {})
                        .with_event_timeout(Duration::from_millis(200)),
                )?;
                let immediate = b.dispatch(
                    EventHandle::new(GrandchildEvent {})
                        .with_event_timeout(Duration::from_millis(200)),
                )?;
                s.lock()
                    .unwrap()
                    .extend([queued.to_any(), immediate.to_any()]);
                immediate.await?;
                tokio::time::sleep(ms(100)).await;
                Ok::<_, bubus::Error>(String::from("awaited_slow"))
            }
        },
        HandlerOptions::new().name("awaited_child_slow"),
    );
    on_sleep::<GrandchildEvent>(&bus, &log, "immediate_gc_slow", 50, HandlerOptions::new());
    on_sleep::<GrandchildEvent>(&bus, &log, "immediate_gc_fast", 10, HandlerOptions::new());
    on_sleep::<QueuedGrandchildEvent>(&bus, &log, "queued_gc_slow", 50, HandlerOptions::new());
    on_sleep::<QueuedGrandchildEvent>(&bus, &log, "queued_gc_fast", 10, HandlerOptions::new());
    let (b, s) = (bus.clone(), Arc::clone(&slots));
    bus.on(move |_: EventHandle<ParentEvent>| {
        let (b, s) = (b.clone(), Arc::clone(&s));
        async move {
            let queued = b.dispatch(
                EventHandle::new(QueuedChildEvent {})
                    .with_event_timeout(Duration::from_millis(200)),
            )?;
            let awaited = b.dispatch(
                EventHandle::new(ChildEvent {}).with_event_timeout(Duration::from_millis(30)),
            )?;
            s.lock()
                .unwrap()
                .extend([queued.to_any(), awaited.to_any()]);
            awaited.await?;
            tokio::time::sleep(ms(80)).await;
            Ok::<_, bubus::Error>(String::from("top_done"))
        }
    });

    let top = bus
        .dispatch(EventHandle::new(ParentEvent {}).with_event_timeout(Duration::from_millis(40)))
        .unwrap();
    let top = within(top).await.unwrap();
    assert!(within(bus.wait_until_idle(None)).await);

    assert_eq!(kinds(&top), [Some(HandlerErrorKind::Aborted)]);
    let slots = slots.lock().unwrap().clone();
    let [queued_child, awaited_child, queued_gc, immediate_gc] = &slots[..] else {
        panic!("{slots:?}")
    };

    // The queued child never ran: both its handlers were cancelled by the top's timeout.
    assert_eq!(
        kinds(queued_child),
        [
            Some(HandlerErrorKind::Cancelled),
            Some(HandlerErrorKind::Cancelled)
        ]
    );
    assert!(log.position("queued_child_fast_start").is_none());
    assert!(log.position("queued_child_slow_start").is_none());

    // The awaited child: its fast handler completed, its slow one was aborted by its own timeout.
    assert_eq!(
        result_named(awaited_child, "awaited_child_fast").status,
        ResultStatus::Completed
    );
    assert_eq!(
        kind(&result_named(awaited_child, "awaited_child_slow")),
        Some(HandlerErrorKind::Aborted)
    );

    // The grandchild awaited inside it: the running handler aborted, the pending one cancelled.
    assert_eq!(
        kind(&result_named(immediate_gc, "immediate_gc_slow")),
        Some(HandlerErrorKind::Aborted)
    );
    assert_eq!(
        kind(&result_named(immediate_gc, "immediate_gc_fast")),
        Some(HandlerErrorKind::Cancelled)
    );
    assert!(log.position("immediate_gc_slow_start").is_some());
    assert!(log.position("immediate_gc_fast_start").is_none());

    // The queued grandchild never ran.
    assert_eq!(
        kinds(queued_gc),
        [
            Some(HandlerErrorKind::Cancelled),
            Some(HandlerErrorKind::Cancelled)
        ]
    );
    assert!(log.position("queued_gc_slow_start").is_none());
    for event in &slots {
        assert!(event.is_complete(), "{event:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn three_level_timeout_cascade_cancels_queued_and_running_descendants() {
    let bus = EventBus::builder("Cascade3LevelBus")
        .event_handler_concurrency(HandlerConcurrency::Serial)
        .build();
    let log = Recorder::new();
    let refs: Arc<Mutex<Vec<AnyEvent>>> = Arc::default();

    on_sleep::<ParentEvent>(&bus, &log, "top_fast", 2, HandlerOptions::new());
    let (b, r, l) = (bus.clone(), Arc::clone(&refs), log.clone());
    bus.on_with(
        move |_: EventHandle<ParentEvent>| {
            let (b, r, l) = (b.clone(), Arc::clone(&r), l.clone());
            async move {
                l.push("top_main_start");
                let child = b.dispatch(
                    EventHandle::new(ChildEvent {}).with_event_timeout(Duration::from_millis(150)),
                )?;
                let sibling = b.dispatch(
                    EventHandle::new(SiblingEvent {})
                        .with_event_timeout(Duration::from_millis(500)),
                )?;
                r.lock().unwrap().extend([child.to_any(), sibling.to_any()]);
                child.await?;
                l.push("top_main_after_child");
                tokio::time::sleep(ms(300)).await;
                l.push("top_main_end");
                Ok::<_, bubus::Error>(String::from("top_main_done"))
            }
        },
        HandlerOptions::new().name("top_main"),
    );
    let (b, r, l) = (bus.clone(), Arc::clone(&refs), log.clone());
    bus.on_with(
        move |_: EventHandle<ChildEvent>| {
            let (b, r, l) = (b.clone(), Arc::clone(&r), l.clone());
            async move {
                l.push("child_start");
                let grandchild = b.dispatch(
                    EventHandle::new(GrandchildEvent {})
                        .with_event_timeout(Duration::from_millis(35)),
                )?;
                let queued = b.dispatch(
                    EventHandle::new(QueuedGrandchildEvent {})
                        .with_event_timeout(Duration::from_millis(500)),
                )?;
                r.lock()
                    .unwrap()
                    .extend([grandchild.to_any(), queued.to_any()]);
                grandchild.await?;
                l.push("child_after_grandchild");
                tokio::time::sleep(ms(300)).await;
                l.push("child_end");
                Ok::<_, bubus::Error>(String::from("child_done"))
            }
        },
        HandlerOptions::new().name("child_handler"),
    );
    for (name, sleep_ms) in [
        ("gc_a", 500),
        ("gc_b", 0),
        ("gc_c", 500),
        ("gc_d", 10),
        ("gc_e", 500),
    ] {
        on_sleep::<GrandchildEvent>(&bus, &log, name, sleep_ms, HandlerOptions::new());
    }
    on_sleep::<QueuedGrandchildEvent>(&bus, &log, "queued_gc", 0, HandlerOptions::new());
    on_sleep::<SiblingEvent>(&bus, &log, "sibling", 0, HandlerOptions::new());

    let top = bus
        .dispatch(EventHandle::new(ParentEvent {}).with_event_timeout(Duration::from_millis(250)))
        .unwrap();
    let top = within(top).await.unwrap();
    assert!(within(bus.wait_until_idle(None)).await);
    let refs = refs.lock().unwrap().clone();
    let [child, sibling, grandchild, queued_gc] = &refs[..] else {
        panic!("{refs:?}")
    };

    // Top: the fast handler completed, the main one was aborted by the top's 0.25 s timeout.
    assert_eq!(top.event_status(), EventStatus::Completed);
    assert_eq!(top.event_results().len(), 2);
    assert_eq!(
        result_named(&top, "top_fast").status,
        ResultStatus::Completed
    );
    assert_eq!(
        kind(&result_named(&top, "top_main")),
        Some(HandlerErrorKind::Aborted)
    );

    // Child: aborted by its own 0.15 s timeout.
    assert_eq!(kinds(child), [Some(HandlerErrorKind::Aborted)]);

    // Grandchild: the first serial handler was running when its 35 ms ran out; the others never
    // started.
    let gc_kinds = kinds(grandchild);
    assert_eq!(gc_kinds.len(), 5);
    assert_eq!(gc_kinds[0], Some(HandlerErrorKind::Aborted));
    assert!(
        gc_kinds[1..]
            .iter()
            .all(|k| *k == Some(HandlerErrorKind::Cancelled)),
        "{gc_kinds:?}"
    );

    // Queued descendants never ran; each names the timeout that cancelled it.
    assert_eq!(kinds(queued_gc), [Some(HandlerErrorKind::Cancelled)]);
    assert!(
        message(&queued_gc.event_results()[0]).contains(&child.label()),
        "{}",
        message(&queued_gc.event_results()[0])
    );
    assert_eq!(kinds(sibling), [Some(HandlerErrorKind::Cancelled)]);
    assert!(message(&sibling.event_results()[0]).contains(&top.label()));

    // What ran and what did not.
    log.assert_order(&[
        "top_fast_start",
        "top_fast_end",
        "top_main_start",
        "child_start",
        "gc_a_start",
        "child_after_grandchild",
        "top_main_after_child",
    ]);
    for never in [
        "gc_a_end",
        "gc_b_start",
        "gc_c_start",
        "gc_d_start",
        "gc_e_start",
        "child_end",
        "top_main_end",
        "queued_gc_start",
        "sibling_start",
    ] {
        assert!(
            log.position(never).is_none(),
            "{never}: {:?}",
            log.entries()
        );
    }

    // Lineage and timestamps.
    let top_children: Vec<_> = top.event_children().iter().map(|c| c.event_id()).collect();
    assert_eq!(top_children, [child.event_id(), sibling.event_id()]);
    let child_children: Vec<_> = child
        .event_children()
        .iter()
        .map(|c| c.event_id())
        .collect();
    assert_eq!(
        child_children,
        [grandchild.event_id(), queued_gc.event_id()]
    );
    for event in [
        top.to_any(),
        child.clone(),
        grandchild.clone(),
        queued_gc.clone(),
        sibling.clone(),
    ] {
        assert!(event.event_completed_at().is_some(), "{event:?}");
        for result in event.event_results() {
            assert!(result.completed_at.is_some());
        }
    }
}

#[tokio::test(start_paused = true)]
async fn cancellation_names_the_timeout_that_caused_it() {
    let bus = EventBus::new("ErrorChainBus");
    let log = Recorder::new();
    on_sleep::<DeepEvent>(&bus, &log, "deep", 200, HandlerOptions::new());
    let refs: Arc<Mutex<Vec<AnyEvent>>> = Arc::default();
    let (b, r) = (bus.clone(), Arc::clone(&refs));
    bus.on_with(
        move |_: EventHandle<ChildEvent>| {
            let (b, r) = (b.clone(), Arc::clone(&r));
            async move {
                let deep = b.dispatch(
                    EventHandle::new(DeepEvent {}).with_event_timeout(Duration::from_millis(500)),
                )?;
                r.lock().unwrap().push(deep.to_any());
                tokio::time::sleep(ms(200)).await;
                Ok::<_, bubus::Error>(String::from("inner_done"))
            }
        },
        HandlerOptions::new().name("inner_handler"),
    );
    let (b, r) = (bus.clone(), Arc::clone(&refs));
    bus.on_with(
        move |_: EventHandle<ParentEvent>| {
            let (b, r) = (b.clone(), Arc::clone(&r));
            async move {
                let inner = b.dispatch(
                    EventHandle::new(ChildEvent {}).with_event_timeout(Duration::from_millis(40)),
                )?;
                r.lock().unwrap().push(inner.to_any());
                inner.await?;
                tokio::time::sleep(ms(200)).await;
                Ok::<_, bubus::Error>(String::from("outer_done"))
            }
        },
        HandlerOptions::new().name("outer_handler"),
    );

    let outer = bus
        .dispatch(EventHandle::new(ParentEvent {}).with_event_timeout(Duration::from_millis(150)))
        .unwrap();
    let outer = within(outer).await.unwrap();
    assert!(within(bus.wait_until_idle(None)).await);
    let refs = refs.lock().unwrap().clone();
    let [inner, deep] = &refs[..] else {
        panic!("{refs:?}")
    };

    assert_eq!(kinds(&outer), [Some(HandlerErrorKind::Aborted)]);
    // The inner handler was aborted by the inner event's own 0.04 s, not the outer's 0.15 s.
    let inner_result = result_named(inner, "inner_handler");
    assert_eq!(kind(&inner_result), Some(HandlerErrorKind::Aborted));
    assert!(message(&inner_result).contains("event timed out after 0.04s"));
    // The deep event was cancelled by the inner timeout (it names the inner event), before it
    // ever started.
    let deep_result = result_named(deep, "deep");
    assert_eq!(kind(&deep_result), Some(HandlerErrorKind::Cancelled));
    let cause = message(&deep_result);
    assert!(cause.contains(&inner.label()), "{cause}");
    assert!(!cause.contains(&outer.label()), "{cause}");
    assert!(log.is_empty());
}

#[tokio::test(start_paused = true)]
async fn nested_timeout_scenario_from_the_issue() {
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String, timeout = 5.0)]
    struct TopmostEvent {
        url: String,
    }
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String, timeout = 2.0)]
    struct TabChildEvent {
        tab_id: String,
    }
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String, timeout = 1.0)]
    struct NavGrandchildEvent {
        success: bool,
    }

    let bus = EventBus::new("MainClass0EventBus");
    let log = Recorder::new();
    on_sleep::<TopmostEvent>(
        &bus,
        &log,
        "HandlerClass1.on_TopmostEvent",
        100,
        HandlerOptions::new(),
    );
    let b = bus.clone();
    bus.on_with(
        move |_: EventHandle<TopmostEvent>| {
            let b = b.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                b.dispatch(TabChildEvent {
                    tab_id: "tab-123".into(),
                })?
                .await?;
                Ok::<_, bubus::Error>(String::from("MainClass0.on_TopmostEvent done"))
            }
        },
        HandlerOptions::new().name("MainClass0.on_TopmostEvent"),
    );
    let b = bus.clone();
    bus.on_with(
        move |_: EventHandle<TabChildEvent>| {
            let b = b.clone();
            async move {
                b.dispatch(NavGrandchildEvent { success: true })?.await?;
                Ok::<_, bubus::Error>(String::from("MainClass0.on_ChildEvent done"))
            }
        },
        HandlerOptions::new().name("MainClass0.on_ChildEvent"),
    );
    for (name, sleep_ms) in [
        ("MainClass0.on_GrandchildEvent", 2_000),
        ("HandlerClass2.on_GrandchildEvent", 0),
        ("HandlerClass1.on_GrandchildEvent", 5_000),
        ("HandlerClass3.on_GrandchildEvent", 200),
        ("HandlerClass4.on_GrandchildEvent", 100),
    ] {
        on_sleep::<NavGrandchildEvent>(&bus, &log, name, sleep_ms, HandlerOptions::new());
    }

    let start = Instant::now();
    let top = within(
        bus.dispatch(TopmostEvent {
            url: "https://example.com".into(),
        })
        .unwrap(),
    )
    .await
    .unwrap();
    // 0.1 s + 1 s of the top handlers, then the grandchild's 1 s cap.
    assert_eq!(start.elapsed(), Duration::from_millis(2_100));
    assert!(top.event_errors().is_empty(), "{:?}", top.event_errors());
    let child = &top.event_children()[0];
    assert!(child.event_errors().is_empty());
    let grandchild = &child.event_children()[0];
    assert_eq!(
        kinds(grandchild),
        [
            Some(HandlerErrorKind::Aborted),
            Some(HandlerErrorKind::Cancelled),
            Some(HandlerErrorKind::Cancelled),
            Some(HandlerErrorKind::Cancelled),
            Some(HandlerErrorKind::Cancelled),
        ]
    );
    bus.stop_and_clear(None).await;
}
