//! Ports `bubus-ts/tests/event_handler_first.test.ts`, the first-completion classes of
//! `tests/test_eventbus_error_handling.py`, and the `first()` tests of
//! `tests/test_event_handler.py` (semantics §1.8 c): with `event_handler_completion = first`,
//! the first completed non-null, non-error result wins (`0`, `""` and `false` win; null results
//! and forwarded events do not); the losers are cancelled — not started → cancelled, running →
//! aborted — and so are the events they dispatched; `race()` on the handle (the reference's
//! `first()`) switches the event to that mode and returns the winning value, while `first()` only
//! reads.
//!
//! Where the runtimes disagree this bus follows Python: `first()` never raises handler errors and
//! returns `None` when no handler won (TypeScript re-raises the first real error even when
//! another handler won). The tests say so where it matters.

use bubus_test_support::time::ms;
use bubus_test_support::time::within;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bubus::retry::Retry;
use bubus::{
    AnyEvent, EventBus, EventHandle, EventResult, WaitError, error::HandlerErrorKind,
    error::ResultError, event::HandlerCompletion, event::HandlerConcurrency,
    handler::HandlerOptions, result::ResultStatus,
};
use bubus_test_support::Recorder;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::time::Instant;

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct FirstEvent {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = Option<String>)]
struct MaybeEvent {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = i64)]
struct IntEvent {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = bool)]
struct BoolEvent {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ChildEvent {}

/// A bus without a default event timeout, so nothing but first-completion ends a handler.
fn bus(name: &str, handlers: HandlerConcurrency) -> EventBus {
    EventBus::builder(name)
        .event_timeout(None)
        .event_handler_concurrency(handlers)
        .build()
}

/// Registers a `FirstEvent` handler named `name` that sleeps `sleep_ms`, logs `{name}_end`, and
/// returns `value`.
fn on_value(
    bus: &EventBus,
    log: &Recorder,
    name: &'static str,
    sleep_ms: u64,
    value: &'static str,
) {
    let log = log.clone();
    bus.on_with(
        move |_: EventHandle<FirstEvent>| {
            let log = log.clone();
            async move {
                log.push(format!("{name}_start"));
                tokio::time::sleep(ms(sleep_ms)).await;
                log.push(format!("{name}_end"));
                value.to_owned()
            }
        },
        HandlerOptions::new().name(name),
    );
}

fn result_named<R: Clone>(results: &[EventResult<R>], name: &str) -> EventResult<R> {
    results
        .iter()
        .find(|r| r.handler_name == name)
        .unwrap_or_else(|| panic!("no result named {name}"))
        .clone()
}

fn kind<R>(result: &EventResult<R>) -> Option<HandlerErrorKind> {
    result.error.as_ref().map(|e| e.kind())
}

// ---------------------------------------------------------------------------------------------
// Parallel handlers
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn first_only_reads_the_results_and_leaves_the_completion_mode_alone() {
    let bus = bus("FirstReadsBus", HandlerConcurrency::Parallel);
    let log = Recorder::new();
    on_value(&bus, &log, "slow", 100, "slow handler");
    on_value(&bus, &log, "fast", 10, "fast handler");

    let event = bus.dispatch(FirstEvent {}).unwrap();
    let start = Instant::now();
    // Every handler runs to completion; the first value in result order is the slow one's.
    let result = within(event.first()).await.unwrap();
    assert_eq!(result.as_deref(), Some("slow handler"));
    assert_eq!(start.elapsed(), ms(100));
    assert_ne!(
        event.event_config().event_handler_completion,
        Some(HandlerCompletion::First)
    );
    let results = event.event_results();
    for name in ["slow", "fast"] {
        assert_eq!(result_named(&results, name).status, ResultStatus::Completed);
    }
    log.assert_order(&["fast_end", "slow_end"]);
}

#[tokio::test(start_paused = true)]
async fn parallel_first_returns_the_earliest_completed_result_and_aborts_the_rest() {
    let bus = bus("FirstParallelBus", HandlerConcurrency::Parallel);
    let log = Recorder::new();
    // The slow handler is registered first: the winner is the first to complete, not the first
    // in registration order.
    on_value(&bus, &log, "slow", 100, "slow handler");
    on_value(&bus, &log, "fast", 10, "fast handler");

    let start = Instant::now();
    let event = bus.dispatch(FirstEvent {}).unwrap();
    let result = within(event.race()).await.unwrap();
    assert_eq!(result.as_deref(), Some("fast handler"));
    assert_eq!(
        start.elapsed(),
        ms(10),
        "nobody waited for the slow handler"
    );

    let results = event.event_results();
    let slow = result_named(&results, "slow");
    assert_eq!(slow.status, ResultStatus::Error);
    assert_eq!(kind(&slow), Some(HandlerErrorKind::Aborted));
    let error = slow.error.unwrap();
    assert_eq!(error.error_type(), "EventHandlerAbortedError");
    assert!(error.message().contains("first() resolved"), "{error}");
    assert_eq!(
        result_named(&results, "fast").status,
        ResultStatus::Completed
    );

    // The slow handler's future was dropped: it never reaches its end, even given the time.
    tokio::time::sleep(ms(500)).await;
    assert!(log.position("slow_end").is_none(), "{:?}", log.entries());
    assert_eq!(
        results
            .iter()
            .filter(|r| r.status == ResultStatus::Error)
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn parallel_first_races_three_handlers_and_cancels_both_losers() {
    // Bus defaults say serial + all; the event overrides both.
    let bus = bus("CompletionParallelFirstBus", HandlerConcurrency::Serial);
    let log = Recorder::new();
    on_value(&bus, &log, "slow_handler_started", 500, "slow-started");
    on_value(&bus, &log, "fast_winner", 10, "winner");
    on_value(&bus, &log, "slow_handler_other", 500, "slow-other");

    let event = EventHandle::new(FirstEvent {})
        .with_event_handler_concurrency(HandlerConcurrency::Parallel)
        .with_event_handler_completion(HandlerCompletion::First);
    let start = Instant::now();
    let event = within(bus.dispatch(event).unwrap()).await.unwrap();
    assert_eq!(start.elapsed(), ms(10));
    assert!(log.position("slow_handler_started_start").is_some());

    let results = event.event_results();
    let winner = result_named(&results, "fast_winner");
    assert_eq!(winner.status, ResultStatus::Completed);
    assert!(winner.error.is_none());
    assert_eq!(winner.result.as_deref(), Some("winner"));
    let losers: Vec<_> = results
        .iter()
        .filter(|r| r.handler_name != "fast_winner")
        .collect();
    assert_eq!(losers.len(), 2);
    for loser in losers {
        assert_eq!(loser.status, ResultStatus::Error);
        assert_eq!(kind(loser), Some(HandlerErrorKind::Aborted), "{loser:?}");
    }
    // All mode's helper reads the same results: only the winner has a value.
    assert_eq!(
        event.results().ignore_errors().one().await.unwrap(),
        Some(String::from("winner"))
    );
}

#[tokio::test(start_paused = true)]
async fn a_started_parallel_loser_is_aborted() {
    let bus = EventBus::builder("TaxonomyFirstParallelBus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .event_handler_completion(HandlerCompletion::First)
        .build();
    let slow_started = Arc::new(tokio::sync::Notify::new());
    let started = Arc::clone(&slow_started);
    bus.on_with(
        move |_: EventHandle<FirstEvent>| {
            started.notify_one();
            async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                String::from("slow")
            }
        },
        HandlerOptions::new().name("slow_loser"),
    );
    let started = Arc::clone(&slow_started);
    bus.on_with(
        move |_: EventHandle<FirstEvent>| {
            let started = Arc::clone(&started);
            async move {
                // Wins only once the loser is certainly running.
                started.notified().await;
                String::from("winner")
            }
        },
        HandlerOptions::new().name("fast_winner"),
    );

    let event = within(bus.dispatch(FirstEvent {}).unwrap()).await.unwrap();
    let results = event.event_results();
    let slow = result_named(&results, "slow_loser");
    assert_eq!(slow.status, ResultStatus::Error);
    assert_eq!(kind(&slow), Some(HandlerErrorKind::Aborted));
    assert!(slow.error.unwrap().is_aborted());
    // The loser's error is on the record: the raising helpers report it, the lenient ones and
    // `first()` give the winner.
    assert!(event.event_result().await.is_err());
    assert_eq!(
        event
            .results()
            .ignore_errors()
            .one()
            .await
            .unwrap()
            .as_deref(),
        Some("winner")
    );
    assert_eq!(event.race().await.unwrap().as_deref(), Some("winner"));
}

// ---------------------------------------------------------------------------------------------
// Serial handlers
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn serial_first_stops_after_the_first_winner_and_cancels_the_rest() {
    let bus = bus("FirstSerialBus", HandlerConcurrency::Serial);
    let log = Recorder::new();
    on_value(&bus, &log, "first", 0, "first handler result");
    on_value(&bus, &log, "second", 0, "second handler result");

    let event = bus.dispatch(FirstEvent {}).unwrap();
    assert_eq!(
        within(event.race()).await.unwrap().as_deref(),
        Some("first handler result")
    );
    assert_eq!(log.entries(), ["first_start", "first_end"]);

    let second = result_named(&event.event_results(), "second");
    assert_eq!(second.status, ResultStatus::Error);
    let error = second.error.unwrap();
    assert!(error.is_cancelled());
    assert_eq!(error.error_type(), "EventHandlerCancelledError");
    assert_eq!(error.message(), "Cancelled: first() resolved");
    assert!(second.started_at.is_none() || second.started_at == second.completed_at);
}

#[tokio::test(start_paused = true)]
async fn bus_default_first_with_serial_handlers_cancels_the_pending_loser() {
    let bus = EventBus::builder("CompletionDefaultFirstBus")
        .event_handler_concurrency(HandlerConcurrency::Serial)
        .event_handler_completion(HandlerCompletion::First)
        .build();
    let log = Recorder::new();
    on_value(&bus, &log, "winner", 0, "first");
    on_value(&bus, &log, "never_runs", 100, "loser");

    let event = bus.dispatch(FirstEvent {}).unwrap();
    // The bus default is resolved at processing time, never written onto the event.
    assert_eq!(event.event_config().event_handler_completion, None);
    let event = within(event).await.unwrap();
    assert_eq!(event.event_config().event_handler_completion, None);
    assert!(log.position("never_runs_start").is_none());
    assert_eq!(
        event
            .results()
            .ignore_errors()
            .allow_none()
            .one()
            .await
            .unwrap(),
        Some(String::from("first"))
    );

    let results = event.event_results();
    assert_eq!(
        result_named(&results, "winner").status,
        ResultStatus::Completed
    );
    let loser = result_named(&results, "never_runs");
    assert_eq!(loser.status, ResultStatus::Error);
    assert_eq!(kind(&loser), Some(HandlerErrorKind::Cancelled));
}

#[tokio::test(start_paused = true)]
async fn an_explicit_all_on_the_event_beats_a_bus_default_of_first() {
    let bus = EventBus::builder("CompletionOverrideBus")
        .event_handler_completion(HandlerCompletion::First)
        .build();
    let log = Recorder::new();
    on_value(&bus, &log, "first", 0, "first");
    on_value(&bus, &log, "second", 0, "second");

    let event =
        EventHandle::new(FirstEvent {}).with_event_handler_completion(HandlerCompletion::All);
    assert_eq!(
        event.event_config().event_handler_completion,
        Some(HandlerCompletion::All)
    );
    let event = within(bus.dispatch(event).unwrap()).await.unwrap();
    assert!(log.position("second_end").is_some());
    assert_eq!(
        event.event_results_list().await.unwrap(),
        ["first", "second"]
    );
}

#[tokio::test(start_paused = true)]
async fn serial_first_skips_a_null_result_and_takes_the_next_winner() {
    let bus = bus("FirstNullSkipBus", HandlerConcurrency::Serial);
    let third_called = Arc::new(AtomicBool::new(false));
    bus.on_with(
        |_: EventHandle<MaybeEvent>| async { None::<String> },
        HandlerOptions::new().name("none_handler"),
    );
    bus.on_with(
        |_: EventHandle<MaybeEvent>| async { Some(String::from("winner")) },
        HandlerOptions::new().name("winner_handler"),
    );
    let called = Arc::clone(&third_called);
    bus.on_with(
        move |_: EventHandle<MaybeEvent>| {
            called.store(true, Ordering::SeqCst);
            Some(String::from("third"))
        },
        HandlerOptions::new().name("third_handler"),
    );

    let event = bus.dispatch(MaybeEvent {}).unwrap();
    assert_eq!(
        within(event.race()).await.unwrap(),
        Some(Some(String::from("winner")))
    );
    assert!(!third_called.load(Ordering::SeqCst));

    let results = event.event_results();
    let none = result_named(&results, "none_handler");
    assert_eq!(none.status, ResultStatus::Completed);
    assert!(none.error.is_none());
    assert_eq!(none.result, None);
    assert_eq!(none.result_json, Value::Null);
    let winner = result_named(&results, "winner_handler");
    assert_eq!(winner.status, ResultStatus::Completed);
    assert_eq!(winner.result, Some(Some(String::from("winner"))));
    assert_eq!(
        kind(&result_named(&results, "third_handler")),
        Some(HandlerErrorKind::Cancelled)
    );
}

#[tokio::test(start_paused = true)]
async fn a_forwarded_event_result_does_not_win() {
    let bus = bus("FirstBaseEventSkipBus", HandlerConcurrency::Serial);
    let elsewhere = EventBus::new("FirstBaseEventSkipElsewhere");
    let third_called = Arc::new(AtomicBool::new(false));
    // First in line: forwards the event, so its result is the event itself.
    let target = elsewhere.clone();
    bus.on_with(
        move |e: AnyEvent| target.dispatch(e),
        HandlerOptions::new()
            .pattern("FirstEvent")
            .name("forwarder"),
    );
    bus.on_with(
        |_: EventHandle<FirstEvent>| String::from("winner"),
        HandlerOptions::new().name("winner_handler"),
    );
    let called = Arc::clone(&third_called);
    bus.on_with(
        move |_: EventHandle<FirstEvent>| {
            called.store(true, Ordering::SeqCst);
            String::from("third")
        },
        HandlerOptions::new().name("third_handler"),
    );

    let event = bus.dispatch(FirstEvent {}).unwrap();
    assert_eq!(
        within(event.race()).await.unwrap().as_deref(),
        Some("winner")
    );
    assert!(!third_called.load(Ordering::SeqCst));
    let results = event.event_results();
    let forward = result_named(&results, "forwarder");
    assert_eq!(forward.status, ResultStatus::Completed);
    assert_eq!(forward.forwarded_event_id, Some(event.event_id()));
}

// ---------------------------------------------------------------------------------------------
// Values that win, and no winner at all
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn zero_empty_string_and_false_are_winning_values() {
    let int_bus = bus("FirstZeroBus", HandlerConcurrency::Serial);
    let second_called = Arc::new(AtomicUsize::new(0));
    int_bus.on(|_: EventHandle<IntEvent>| 0_i64);
    let called = Arc::clone(&second_called);
    int_bus.on(move |_: EventHandle<IntEvent>| {
        called.fetch_add(1, Ordering::SeqCst);
        99_i64
    });
    let event = int_bus.dispatch(IntEvent {}).unwrap();
    assert_eq!(within(event.race()).await.unwrap(), Some(0));

    let str_bus = bus("FirstEmptyBus", HandlerConcurrency::Serial);
    str_bus.on(|_: EventHandle<FirstEvent>| String::new());
    let called = Arc::clone(&second_called);
    str_bus.on(move |_: EventHandle<FirstEvent>| {
        called.fetch_add(1, Ordering::SeqCst);
        String::from("second")
    });
    let event = str_bus.dispatch(FirstEvent {}).unwrap();
    assert_eq!(within(event.race()).await.unwrap(), Some(String::new()));

    let bool_bus = bus("FirstFalseBus", HandlerConcurrency::Serial);
    bool_bus.on(|_: EventHandle<BoolEvent>| false);
    let called = Arc::clone(&second_called);
    bool_bus.on(move |_: EventHandle<BoolEvent>| {
        called.fetch_add(1, Ordering::SeqCst);
        true
    });
    let event = bool_bus.dispatch(BoolEvent {}).unwrap();
    assert_eq!(within(event.race()).await.unwrap(), Some(false));

    assert_eq!(
        second_called.load(Ordering::SeqCst),
        0,
        "no second handler ran"
    );
}

#[tokio::test(start_paused = true)]
async fn first_with_a_single_handler_returns_its_value() {
    let bus = bus("FirstSingleBus", HandlerConcurrency::Serial);
    bus.on(|_: EventHandle<IntEvent>| async { 42_i64 });
    let event = bus.dispatch(IntEvent {}).unwrap();
    assert_eq!(within(event.race()).await.unwrap(), Some(42));
}

#[tokio::test(start_paused = true)]
async fn first_is_none_when_every_handler_returns_null() {
    let bus = bus("FirstUndefinedBus", HandlerConcurrency::Parallel);
    bus.on(|_: EventHandle<MaybeEvent>| async { None::<String> });
    bus.on(|_: AnyEvent| async {});

    let event = bus.dispatch(MaybeEvent {}).unwrap();
    assert_eq!(within(event.race()).await.unwrap(), None);
    // Without a winner every handler ran to completion.
    let results = event.event_results();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r.status == ResultStatus::Completed));
}

#[tokio::test(start_paused = true)]
async fn first_is_none_when_every_handler_fails() {
    // Python's behaviour; TypeScript re-raises the first error instead.
    let bus = bus("CompletionAllFailBus", HandlerConcurrency::Parallel);
    bus.on(|_: EventHandle<FirstEvent>| async { Err::<String, _>(std::io::Error::other("boom1")) });
    bus.on(|_: EventHandle<FirstEvent>| async {
        tokio::time::sleep(ms(10)).await;
        Err::<String, _>(std::io::Error::other("boom2"))
    });

    let event = bus.dispatch(FirstEvent {}).unwrap();
    assert_eq!(within(event.race()).await.unwrap(), None);
    // Both failures are recorded as they happened: neither is relabelled by first-mode.
    let errors = event.event_errors();
    assert_eq!(errors.len(), 2);
    assert!(errors.iter().all(|e| e.kind() == HandlerErrorKind::Failed));
    assert_eq!(errors[0].message(), "boom1");
    assert_eq!(errors[1].message(), "boom2");
}

#[tokio::test(start_paused = true)]
async fn a_failing_handler_does_not_win_and_a_later_success_does() {
    // TypeScript rejects here ("fast but fails"); this bus returns the winner and keeps the error
    // on the result, where `event_errors()` and the raising helpers see it.
    let bus = bus("FirstMixBus", HandlerConcurrency::Parallel);
    bus.on_with(
        |_: EventHandle<FirstEvent>| async {
            Err::<String, _>(std::io::Error::other("fast but fails"))
        },
        HandlerOptions::new().name("fails"),
    );
    bus.on_with(
        |_: EventHandle<FirstEvent>| async {
            tokio::time::sleep(ms(20)).await;
            Ok::<_, std::io::Error>(String::from("slow but succeeds"))
        },
        HandlerOptions::new().name("succeeds"),
    );

    let event = bus.dispatch(FirstEvent {}).unwrap();
    assert_eq!(
        within(event.race()).await.unwrap().as_deref(),
        Some("slow but succeeds")
    );
    let results = event.event_results();
    assert_eq!(
        kind(&result_named(&results, "fails")),
        Some(HandlerErrorKind::Failed)
    );
    assert_eq!(
        result_named(&results, "succeeds").result.as_deref(),
        Some("slow but succeeds")
    );
    assert!(matches!(
        event.event_result().await,
        Err(ResultError::Handler(e)) if e.message() == "fast but fails"
    ));
}

#[tokio::test(start_paused = true)]
async fn first_is_none_without_handlers() {
    let bus = bus("FirstNoHandlerBus", HandlerConcurrency::Serial);
    let event = bus.dispatch(FirstEvent {}).unwrap();
    assert_eq!(within(event.race()).await.unwrap(), None);
    assert!(event.is_complete());
}

#[tokio::test(start_paused = true)]
async fn first_on_an_event_never_dispatched_fails_at_once() {
    let event = EventHandle::new(FirstEvent {});
    assert!(matches!(
        event.race().await,
        Err(ResultError::Wait(WaitError::NotDispatched { .. }))
    ));
}

// ---------------------------------------------------------------------------------------------
// Losers' child events
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_events_dispatched_by_losing_handlers_are_cancelled() {
    let bus = bus("FirstChildBus", HandlerConcurrency::Parallel);
    let log = Recorder::new();
    let l = log.clone();
    bus.on_with(
        move |_: EventHandle<ChildEvent>| {
            let l = l.clone();
            async move {
                l.push("child_start");
                tokio::time::sleep(ms(500)).await;
                l.push("child_end");
                String::from("child result")
            }
        },
        HandlerOptions::new().name("child_handler"),
    );
    bus.on_with(
        |_: EventHandle<FirstEvent>| async {
            tokio::time::sleep(ms(5)).await;
            String::from("fast parent")
        },
        HandlerOptions::new().name("fast"),
    );
    let children: Arc<Mutex<Vec<AnyEvent>>> = Arc::default();
    let (b, c) = (bus.clone(), Arc::clone(&children));
    bus.on_with(
        move |_: EventHandle<FirstEvent>| {
            let (b, c) = (b.clone(), Arc::clone(&c));
            async move {
                // One child left in the queue, one awaited (processed right here, then running
                // when the fast handler wins).
                let queued = b.dispatch(ChildEvent {})?;
                let awaited = b.dispatch(ChildEvent {})?;
                c.lock()
                    .unwrap()
                    .extend([queued.to_any(), awaited.to_any()]);
                awaited.await?;
                Ok::<_, bubus::Error>(String::from("slow parent with child"))
            }
        },
        HandlerOptions::new().name("slow_with_children"),
    );

    let event = bus.dispatch(FirstEvent {}).unwrap();
    assert_eq!(
        within(event.race()).await.unwrap().as_deref(),
        Some("fast parent")
    );
    assert!(within(bus.wait_until_idle(None)).await);

    let children = children.lock().unwrap().clone();
    let [queued, awaited] = &children[..] else {
        panic!("{children:?}")
    };
    assert_eq!(
        kind(&result_named(&awaited.event_results(), "child_handler")),
        Some(HandlerErrorKind::Aborted)
    );
    let queued_result = result_named(&queued.event_results(), "child_handler");
    assert_eq!(kind(&queued_result), Some(HandlerErrorKind::Cancelled));
    assert!(
        queued_result
            .error
            .unwrap()
            .message()
            .contains("first() resolved"),
        "the cause is named"
    );
    assert!(queued.is_complete() && awaited.is_complete());
    assert_eq!(
        log.entries(),
        ["child_start"],
        "only the awaited child started"
    );
    assert_eq!(
        kind(&result_named(&event.event_results(), "slow_with_children")),
        Some(HandlerErrorKind::Aborted)
    );
}

#[tokio::test(start_paused = true)]
async fn first_mode_on_one_bus_does_not_cancel_the_handlers_of_another() {
    let bus_a = bus("FirstBusA", HandlerConcurrency::Serial);
    let bus_b = bus("FirstBusB", HandlerConcurrency::Serial);
    let log = Recorder::new();
    on_value(&bus_a, &log, "a1", 0, "a1");
    on_value(&bus_a, &log, "a2", 0, "a2");
    on_value(&bus_b, &log, "b1", 10, "b1");
    on_value(&bus_b, &log, "b2", 0, "b2");

    let event =
        EventHandle::new(FirstEvent {}).with_event_handler_completion(HandlerCompletion::First);
    bus_a.dispatch(&event).unwrap();
    bus_b.dispatch(&event).unwrap();
    let event = within(event).await.unwrap();

    let results = event.event_results();
    assert_eq!(result_named(&results, "a1").status, ResultStatus::Completed);
    assert_eq!(result_named(&results, "b1").status, ResultStatus::Completed);
    assert_eq!(
        kind(&result_named(&results, "a2")),
        Some(HandlerErrorKind::Cancelled)
    );
    assert_eq!(
        kind(&result_named(&results, "b2")),
        Some(HandlerErrorKind::Cancelled)
    );
    assert!(
        log.position("b1_end").is_some(),
        "B's winner ran to the end"
    );
}

// ---------------------------------------------------------------------------------------------
// The completion mode on the event
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn first_sets_the_completion_mode_on_the_event() {
    let bus = bus("FirstFieldBus", HandlerConcurrency::Serial);
    bus.on(|_: EventHandle<FirstEvent>| String::from("result"));

    let event = bus.dispatch(FirstEvent {}).unwrap();
    assert_eq!(event.event_config().event_handler_completion, None);
    assert_eq!(
        within(event.race()).await.unwrap().as_deref(),
        Some("result")
    );
    assert_eq!(
        event.event_config().event_handler_completion,
        Some(HandlerCompletion::First)
    );
    let json = serde_json::to_value(event.event_config()).unwrap();
    assert_eq!(json["event_handler_completion"], json!("first"));
}

#[tokio::test(start_paused = true)]
async fn first_mode_set_on_the_event_before_dispatch_races_parallel_handlers() {
    let bus = bus("FirstCtorBus", HandlerConcurrency::Parallel);
    let log = Recorder::new();
    on_value(&bus, &log, "slow", 100, "slow handler");
    on_value(&bus, &log, "fast", 10, "fast handler");

    let event =
        EventHandle::new(FirstEvent {}).with_event_handler_completion(HandlerCompletion::First);
    let event = within(bus.dispatch(event).unwrap()).await.unwrap();
    // Awaiting alone (no `first()`) already ran in first mode.
    assert!(log.position("slow_end").is_none());
    assert_eq!(
        event
            .results()
            .ignore_errors()
            .one()
            .await
            .unwrap()
            .as_deref(),
        Some("fast handler")
    );
}

#[tokio::test(start_paused = true)]
async fn switching_to_first_after_processing_started_has_no_effect() {
    let bus = bus("FirstLateBus", HandlerConcurrency::Parallel);
    let log = Recorder::new();
    on_value(&bus, &log, "slow", 100, "slow handler");
    on_value(&bus, &log, "fast", 10, "fast handler");

    let event = bus.dispatch(FirstEvent {}).unwrap();
    // Let processing start (both handlers are running) before asking for first().
    tokio::time::sleep(ms(1)).await;
    assert_eq!(log.len(), 2);
    assert_eq!(
        within(event.race()).await.unwrap().as_deref(),
        Some("slow handler")
    );
    assert!(
        log.position("slow_end").is_some(),
        "the event ran in all mode"
    );
    assert!(event.event_errors().is_empty());
}

// ---------------------------------------------------------------------------------------------
// With retried handlers
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_retried_handler_can_win_after_failed_attempts() {
    let bus = bus("FirstRetryBus", HandlerConcurrency::Parallel);
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&attempts);
    bus.on(Retry::new()
        .max_attempts(3)
        .handler(move |_: EventHandle<FirstEvent>| {
            let a = Arc::clone(&a);
            async move {
                let attempt = a.fetch_add(1, Ordering::SeqCst) + 1;
                if attempt < 3 {
                    return Err(std::io::Error::other(format!("attempt {attempt} failed")));
                }
                Ok(String::from("succeeded after retries"))
            }
        }));

    let event = bus.dispatch(FirstEvent {}).unwrap();
    assert_eq!(
        within(event.race()).await.unwrap().as_deref(),
        Some("succeeded after retries")
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn a_fast_winner_stops_a_slow_retried_handler() {
    let bus = bus("FirstRetryRaceBus", HandlerConcurrency::Parallel);
    let attempts = Arc::new(AtomicUsize::new(0));
    let policy = Retry::new().max_attempts(5).retry_after(ms(100));
    let slow = |attempts: Arc<AtomicUsize>| {
        move |_: EventHandle<FirstEvent>| {
            let a = Arc::clone(&attempts);
            async move {
                a.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(ms(200)).await;
                Ok::<_, std::io::Error>(String::from("slow path"))
            }
        }
    };

    // The fast handler first: it wins on its first poll, before the slow one is ever polled,
    // so the slow one is cancelled without starting (the reference starts every parallel
    // handler at once and aborts it).
    bus.on(|_: EventHandle<FirstEvent>| async { String::from("fast path") });
    bus.on_with(
        policy.handler(slow(Arc::clone(&attempts))),
        HandlerOptions::new().name("slow_retried"),
    );
    let event = bus.dispatch(FirstEvent {}).unwrap();
    assert_eq!(
        within(event.race()).await.unwrap().as_deref(),
        Some("fast path")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 0);
    assert_eq!(
        kind(&result_named(&event.event_results(), "slow_retried")),
        Some(HandlerErrorKind::Cancelled)
    );

    // The slow one first: it is running (in its first attempt) when the fast one wins, and is
    // aborted there; no further attempt starts.
    let bus = self::bus("FirstRetryRaceBus2", HandlerConcurrency::Parallel);
    bus.on_with(
        policy.handler(slow(Arc::clone(&attempts))),
        HandlerOptions::new().name("slow_retried"),
    );
    bus.on(|_: EventHandle<FirstEvent>| async {
        tokio::time::sleep(ms(1)).await;
        String::from("fast path")
    });
    let event = bus.dispatch(FirstEvent {}).unwrap();
    assert_eq!(
        within(event.race()).await.unwrap().as_deref(),
        Some("fast path")
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 1);
    assert_eq!(
        kind(&result_named(&event.event_results(), "slow_retried")),
        Some(HandlerErrorKind::Aborted)
    );
}

#[tokio::test(start_paused = true)]
async fn a_null_fast_path_lets_a_retried_slow_path_win() {
    let bus = bus("ScreenshotFallbackBus", HandlerConcurrency::Parallel);
    bus.on(|_: EventHandle<MaybeEvent>| async { None::<String> });
    let attempts = Arc::new(AtomicUsize::new(0));
    let a = Arc::clone(&attempts);
    bus.on(Retry::new()
        .max_attempts(3)
        .handler(move |_: EventHandle<MaybeEvent>| {
            let a = Arc::clone(&a);
            async move {
                if a.fetch_add(1, Ordering::SeqCst) == 0 {
                    return Err(std::io::Error::other("screenshot timeout"));
                }
                Ok(Some(String::from("slow_screenshot_data")))
            }
        }));

    let event = bus.dispatch(MaybeEvent {}).unwrap();
    assert_eq!(
        within(event.race()).await.unwrap(),
        Some(Some(String::from("slow_screenshot_data")))
    );
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
}
