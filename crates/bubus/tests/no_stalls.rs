//! No stalls: a handler that never completes, one that spins, one that panics, one that awaits
//! its own event (or an ancestor), and one that awaits a sibling all end in a defined result —
//! an error or a completion — within their timeouts, and the bus goes on with the next event.
//! Also ports two of the cross-runtime parity subtests
//! (`tests/subtests/test_eventbus_cross_runtime_features.py`,
//! `bubus-ts/tests/subtests/eventbus_cross_runtime_features.test.ts`): "timeout enforcement does
//! not break follow-up processing or queue state" and "parallel events with serial handlers stay
//! serial per event".
//!
//! Most tests run on tokio's paused clock. The spinning handler needs real time (a task that is
//! always ready never lets a paused clock advance), and one test uses a multi-thread runtime
//! where real parallelism matters, made deterministic with a barrier.

use bubus_test_support::string_events;
use bubus_test_support::time::ms;
use bubus_test_support::time::{within, within_limit};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bubus::{
    AnyEvent, EventBus, EventHandle, EventResult, EventStatus, WaitError, error::HandlerErrorKind,
    event::EventConcurrency, event::HandlerConcurrency, handler::HandlerOptions,
    result::ResultStatus,
};
use bubus_test_support::Recorder;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

string_events!(StuckEvent, NextEvent, ParentEvent, ChildEvent, SiblingEvent);

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct TokenEvent {
    token: usize,
}

fn result_named(event: impl AsRef<AnyEvent>, name: &str) -> EventResult<Value> {
    event
        .as_ref()
        .event_results()
        .into_iter()
        .find(|r| r.handler_name == name)
        .unwrap_or_else(|| panic!("no result named {name}"))
}

fn kind(result: &EventResult<Value>) -> Option<HandlerErrorKind> {
    result.error.as_ref().map(|e| e.kind())
}

/// Dispatches a `NextEvent` with a plain handler and checks that the bus processes it.
async fn bus_still_works(bus: &EventBus) {
    let name = format!("next_on_{}", bus.name());
    if !bus.handlers().iter().any(|h| h.handler_name() == name) {
        bus.on_with(
            |_: EventHandle<NextEvent>| String::from("next"),
            HandlerOptions::new().name(name),
        );
    }
    let next = bus.dispatch(NextEvent {}).unwrap();
    assert_eq!(within(next.event_result()).await.unwrap(), "next");
    assert!(within(bus.wait_until_idle(None)).await);
    assert_eq!(bus.queue_len(), 0);
    assert!(bus.events_started().is_empty());
    assert!(bus.events_pending().is_empty());
}

// ---------------------------------------------------------------------------------------------
// A handler that never completes
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_handler_that_never_completes_ends_at_its_own_timeout() {
    let bus = EventBus::new("NeverCompletesBus");
    bus.on_with(
        |_: EventHandle<StuckEvent>| std::future::pending::<String>(),
        HandlerOptions::new()
            .name("pending")
            .timeout(Some(Duration::from_millis(50))),
    );
    bus.on_with(
        |_: EventHandle<StuckEvent>| String::from("after"),
        HandlerOptions::new().name("after"),
    );

    let start = Instant::now();
    let event = within(bus.dispatch(StuckEvent {}).unwrap()).await.unwrap();
    assert_eq!(start.elapsed(), ms(50));
    assert_eq!(
        kind(&result_named(&event, "pending")),
        Some(HandlerErrorKind::Timeout)
    );
    assert_eq!(
        result_named(&event, "after").status,
        ResultStatus::Completed
    );
    bus_still_works(&bus).await;
}

#[tokio::test(start_paused = true)]
async fn a_handler_that_never_completes_ends_at_the_bus_default_timeout() {
    // Nothing configured: the bus's 60 s default bounds it.
    let bus = EventBus::new("NeverCompletesDefaultBus");
    assert_eq!(bus.config().event_timeout, Some(Duration::from_secs(60)));
    bus.on_with(
        |_: EventHandle<StuckEvent>| std::future::pending::<String>(),
        HandlerOptions::new().name("pending"),
    );

    let start = Instant::now();
    let event = within(bus.dispatch(StuckEvent {}).unwrap()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(60));
    assert_eq!(
        kind(&result_named(&event, "pending")),
        Some(HandlerErrorKind::Aborted)
    );
    bus_still_works(&bus).await;
}

#[tokio::test(start_paused = true)]
async fn a_never_completing_handler_of_an_awaited_child_lets_the_parent_go_on() {
    let bus = EventBus::new("NeverCompletesChildBus");
    bus.on_with(
        |_: EventHandle<ChildEvent>| std::future::pending::<String>(),
        HandlerOptions::new()
            .name("pending_child")
            .timeout(Some(Duration::from_millis(20))),
    );
    let b = bus.clone();
    bus.on_with(
        move |_: EventHandle<ParentEvent>| {
            let b = b.clone();
            async move {
                let child = b.dispatch(ChildEvent {})?.await?;
                let errors = child.event_errors();
                Ok::<_, bubus::Error>(format!("child ended with {} error", errors.len()))
            }
        },
        HandlerOptions::new().name("parent"),
    );

    let parent = bus.dispatch(ParentEvent {}).unwrap();
    assert_eq!(
        within(parent.event_result()).await.unwrap(),
        "child ended with 1 error"
    );
    let child = &parent.event_children()[0];
    assert_eq!(
        kind(&result_named(child, "pending_child")),
        Some(HandlerErrorKind::Timeout)
    );
    bus_still_works(&bus).await;
}

#[tokio::test]
async fn a_handler_that_spins_without_completing_is_stopped_by_its_timeout() {
    // Real time: a handler that is always ready would keep a paused clock from ever advancing.
    let bus = EventBus::new("SpinningBus");
    let spins = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&spins);
    bus.on_with(
        move |_: EventHandle<StuckEvent>| {
            let s = Arc::clone(&s);
            async move {
                // Spins until its future is dropped: the count never gets near the end.
                while s.fetch_add(1, Ordering::Relaxed) < usize::MAX {
                    tokio::task::yield_now().await;
                }
                String::new()
            }
        },
        HandlerOptions::new()
            .name("spinner")
            .timeout(Some(Duration::from_millis(50))),
    );

    let event = within_limit(
        Duration::from_secs(10),
        bus.dispatch(StuckEvent {}).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        kind(&result_named(&event, "spinner")),
        Some(HandlerErrorKind::Timeout)
    );
    let spun = spins.load(Ordering::Relaxed);
    assert!(spun > 1, "it was running: {spun}");
    // Its future is gone: it spins no more.
    tokio::task::yield_now().await;
    assert_eq!(spins.load(Ordering::Relaxed), spun);
    bus_still_works(&bus).await;
}

// ---------------------------------------------------------------------------------------------
// A handler that panics
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn panicking_handlers_end_in_errors_and_the_bus_goes_on() {
    let bus = EventBus::builder("PanicBus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    bus.on_with(
        |_: EventHandle<StuckEvent>| -> String { panic!("sync boom") },
        HandlerOptions::new().name("sync_panic"),
    );
    bus.on_with(
        |_: EventHandle<StuckEvent>| async {
            tokio::time::sleep(ms(5)).await;
            if true {
                panic!("async boom");
            }
            String::new()
        },
        HandlerOptions::new().name("async_panic"),
    );
    bus.on_with(
        |_: EventHandle<StuckEvent>| async {
            tokio::time::sleep(ms(10)).await;
            String::from("survivor")
        },
        HandlerOptions::new().name("survivor"),
    );

    let event = within(bus.dispatch(StuckEvent {}).unwrap()).await.unwrap();
    for (name, message) in [("sync_panic", "sync boom"), ("async_panic", "async boom")] {
        let result = result_named(&event, name);
        assert_eq!(result.status, ResultStatus::Error);
        let error = result.error.unwrap();
        assert_eq!(error.kind(), HandlerErrorKind::Panicked);
        assert_eq!(error.error_type(), "EventHandlerPanicError");
        assert_eq!(error.message(), message);
    }
    assert_eq!(
        result_named(&event, "survivor").status,
        ResultStatus::Completed
    );
    bus_still_works(&bus).await;
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_a_parallel_event_or_an_awaited_child_is_contained() {
    let bus = EventBus::builder("PanicParallelBus")
        .event_concurrency(EventConcurrency::Parallel)
        .build();
    bus.on_with(
        |_: EventHandle<ChildEvent>| async {
            tokio::task::yield_now().await;
            if true {
                panic!("child boom");
            }
            String::new()
        },
        HandlerOptions::new().name("child_panic"),
    );
    let b = bus.clone();
    bus.on_with(
        move |_: EventHandle<ParentEvent>| {
            let b = b.clone();
            async move {
                let child = b.dispatch(ChildEvent {})?.await?;
                Ok::<_, bubus::Error>(format!("{} errors", child.event_errors().len()))
            }
        },
        HandlerOptions::new().name("parent"),
    );

    // Three events processed in parallel tasks, each with a child that panics.
    let parents: Vec<_> = (0..3)
        .map(|_| bus.dispatch(ParentEvent {}).unwrap())
        .collect();
    for parent in parents {
        assert_eq!(within(parent.event_result()).await.unwrap(), "1 errors");
        let child = &parent.event_children()[0];
        assert_eq!(
            kind(&result_named(child, "child_panic")),
            Some(HandlerErrorKind::Panicked)
        );
    }
    bus_still_works(&bus).await;
}

// ---------------------------------------------------------------------------------------------
// A handler that awaits its own event, or an ancestor
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_handler_awaiting_its_own_event_fails_at_once() {
    let bus = EventBus::new("AwaitSelfBus");
    let seen = Recorder::new();
    let s = seen.clone();
    bus.on_with(
        move |event: EventHandle<StuckEvent>| {
            let s = s.clone();
            async move {
                match event.clone().await {
                    Err(WaitError::WouldDeadlock { .. }) => s.push("await: would deadlock"),
                    other => s.push(format!("await: {other:?}")),
                }
                if let Err(bubus::error::ResultError::Wait(WaitError::WouldDeadlock { .. })) =
                    event.event_result().await
                {
                    s.push("event_result: would deadlock");
                }
                // Propagating the error fails the handler with it.
                event.clone().await?;
                Ok::<_, bubus::Error>(String::from("unreachable"))
            }
        },
        HandlerOptions::new().name("awaits_itself"),
    );

    let start = Instant::now();
    let event = within(bus.dispatch(StuckEvent {}).unwrap()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO, "no timeout was needed");
    assert_eq!(
        seen.entries(),
        ["await: would deadlock", "event_result: would deadlock"]
    );
    let result = result_named(&event, "awaits_itself");
    assert_eq!(kind(&result), Some(HandlerErrorKind::Failed));
    let message = result.error.unwrap().message().to_owned();
    assert!(
        message.contains("cannot complete before the handler returns"),
        "{message}"
    );
    bus_still_works(&bus).await;
}

#[tokio::test(start_paused = true)]
async fn a_handler_awaiting_an_ancestor_fails_at_once() {
    let bus = EventBus::new("AwaitAncestorBus");
    let b = bus.clone();
    bus.on(move |_: EventHandle<ParentEvent>| {
        let b = b.clone();
        async move {
            b.dispatch(ChildEvent {})?.await?;
            Ok::<_, bubus::Error>(String::from("parent_done"))
        }
    });
    bus.on_with(
        |child: EventHandle<ChildEvent>| async move {
            let parent = child.event_parent().expect("linked to its parent");
            parent.await?;
            Ok::<_, bubus::Error>(String::from("unreachable"))
        },
        HandlerOptions::new().name("awaits_parent"),
    );

    let start = Instant::now();
    let parent = within(bus.dispatch(ParentEvent {}).unwrap()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    let child = &parent.event_children()[0];
    let result = result_named(child, "awaits_parent");
    assert_eq!(kind(&result), Some(HandlerErrorKind::Failed));
    assert!(result.error.unwrap().message().contains(&parent.label()));
    assert_eq!(parent.event_result().await.unwrap(), "parent_done");
    bus_still_works(&bus).await;
}

// ---------------------------------------------------------------------------------------------
// A handler that awaits a sibling on a serial bus
// ---------------------------------------------------------------------------------------------

type Slot = Arc<Mutex<Option<AnyEvent>>>;

#[tokio::test(start_paused = true)]
async fn a_handler_awaiting_a_queued_sibling_processes_it_right_away() {
    let bus = EventBus::new("AwaitSiblingBus");
    let log = Recorder::new();
    let sibling: Slot = Arc::default();
    let (s, l) = (Arc::clone(&sibling), log.clone());
    bus.on(move |_: EventHandle<ParentEvent>| {
        let (s, l) = (Arc::clone(&s), l.clone());
        async move {
            l.push("first_start");
            let sibling = s.lock().unwrap().clone().expect("dispatched");
            sibling.await?;
            l.push("first_end");
            Ok::<_, bubus::Error>(String::from("first"))
        }
    });
    let l = log.clone();
    bus.on(move |_: EventHandle<SiblingEvent>| {
        l.push("sibling");
        String::from("sibling")
    });
    let l = log.clone();
    bus.on(move |_: EventHandle<NextEvent>| {
        l.push("next");
        String::from("next")
    });

    // Dispatched in this order, all queued before the bus runs.
    let first = bus.dispatch(ParentEvent {}).unwrap();
    *sibling.lock().unwrap() = Some(bus.dispatch(SiblingEvent {}).unwrap().to_any());
    let next = bus.dispatch(NextEvent {}).unwrap();

    let start = Instant::now();
    within(first.clone()).await.unwrap();
    within(next).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        log.entries(),
        ["first_start", "sibling", "first_end", "next"]
    );
    assert!(first.event_errors().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_child_awaiting_its_queued_sibling_processes_it_inside_the_parent() {
    // The parent dispatches two children and awaits the first; the first awaits the second,
    // which is still queued behind the parent on this serial bus.
    let bus = EventBus::new("AwaitChildSiblingBus");
    let log = Recorder::new();
    let second: Slot = Arc::default();
    let (b, s, l) = (bus.clone(), Arc::clone(&second), log.clone());
    bus.on(move |_: EventHandle<ParentEvent>| {
        let (b, s, l) = (b.clone(), Arc::clone(&s), l.clone());
        async move {
            l.push("parent_start");
            let first = b.dispatch(ChildEvent {})?;
            *s.lock().unwrap() = Some(b.dispatch(SiblingEvent {})?.to_any());
            first.await?;
            l.push("parent_end");
            Ok::<_, bubus::Error>(String::from("parent"))
        }
    });
    let (s, l) = (Arc::clone(&second), log.clone());
    bus.on(move |_: EventHandle<ChildEvent>| {
        let (s, l) = (Arc::clone(&s), l.clone());
        async move {
            l.push("first_start");
            let second = s.lock().unwrap().clone().expect("dispatched");
            second.await?;
            l.push("first_end");
            Ok::<_, bubus::Error>(String::from("first"))
        }
    });
    let l = log.clone();
    bus.on(move |_: EventHandle<SiblingEvent>| {
        l.push("second");
        String::from("second")
    });

    let start = Instant::now();
    let parent = within(bus.dispatch(ParentEvent {}).unwrap()).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(
        log.entries(),
        [
            "parent_start",
            "first_start",
            "second",
            "first_end",
            "parent_end"
        ]
    );
    assert!(parent.event_errors().is_empty());
    bus_still_works(&bus).await;
}

#[tokio::test(start_paused = true)]
async fn siblings_awaiting_each_other_are_parted_by_a_handler_timeout() {
    // A's handler awaits B, which runs right there; B's handler awaits A, which cannot complete
    // before A's handler returns. B's handler timeout breaks the cycle; A then completes.
    let bus = EventBus::new("MutualAwaitBus");
    let (slot_a, slot_b): (Slot, Slot) = (Arc::default(), Arc::default());
    let s = Arc::clone(&slot_b);
    bus.on_with(
        move |_: EventHandle<ParentEvent>| {
            let s = Arc::clone(&s);
            async move {
                let b = s.lock().unwrap().clone().expect("dispatched");
                let b = b.await?;
                Ok::<_, bubus::Error>(format!("b ended with {} error", b.event_errors().len()))
            }
        },
        HandlerOptions::new().name("a_awaits_b"),
    );
    let s = Arc::clone(&slot_a);
    bus.on_with(
        move |_: EventHandle<SiblingEvent>| {
            let s = Arc::clone(&s);
            async move {
                let a = s.lock().unwrap().clone().expect("dispatched");
                a.await?;
                Ok::<_, bubus::Error>(String::from("unreachable"))
            }
        },
        HandlerOptions::new()
            .name("b_awaits_a")
            .timeout(Some(Duration::from_millis(100))),
    );

    let a = bus.dispatch(ParentEvent {}).unwrap();
    *slot_a.lock().unwrap() = Some(a.to_any());
    let b = bus.dispatch(SiblingEvent {}).unwrap();
    *slot_b.lock().unwrap() = Some(b.to_any());

    let start = Instant::now();
    assert_eq!(
        within(a.event_result()).await.unwrap(),
        "b ended with 1 error"
    );
    assert_eq!(start.elapsed(), ms(100));
    assert_eq!(
        kind(&result_named(&b, "b_awaits_a")),
        Some(HandlerErrorKind::Timeout)
    );
    assert!(b.is_complete());
    bus_still_works(&bus).await;
}

#[tokio::test(start_paused = true)]
async fn a_cross_bus_lock_cycle_is_broken_by_the_handler_timeout() {
    // The documented limit: a handler of E (holding E's serial-handler lock) awaits a child
    // forwarded to bus B, whose run loop is busy with E itself and waits for that same lock.
    // Neither can go on until the handler's timeout ends it; then everything completes.
    let bus_a = EventBus::new("CycleA");
    let bus_b = EventBus::new("CycleB");
    let log = Recorder::new();
    let (a, b, l) = (bus_a.clone(), bus_b.clone(), log.clone());
    bus_a.on_with(
        move |_: EventHandle<ParentEvent>| {
            let (a, b, l) = (a.clone(), b.clone(), l.clone());
            async move {
                // Let bus B take up E (and start waiting for E's handler lock).
                tokio::time::sleep(ms(1)).await;
                let child = a.dispatch(ChildEvent {})?;
                b.dispatch(&child)?;
                l.push("awaiting child");
                child.await?;
                l.push("child done");
                Ok::<_, bubus::Error>(String::from("unreachable"))
            }
        },
        HandlerOptions::new()
            .name("holder")
            .timeout(Some(Duration::from_millis(100))),
    );
    let l = log.clone();
    bus_b.on_with(
        move |_: EventHandle<ParentEvent>| {
            l.push("b handles E");
            String::from("b")
        },
        HandlerOptions::new().name("b_parent"),
    );
    let l = log.clone();
    bus_b.on_with(
        move |_: EventHandle<ChildEvent>| {
            l.push("b handles child");
            String::from("child")
        },
        HandlerOptions::new().name("b_child"),
    );

    let event = EventHandle::new(ParentEvent {});
    bus_a.dispatch(&event).unwrap();
    bus_b.dispatch(&event).unwrap();
    let start = Instant::now();
    let event = within(event).await.unwrap();
    assert_eq!(
        start.elapsed(),
        ms(100),
        "the holder's timeout, counted from its start"
    );

    assert_eq!(
        kind(&result_named(&event, "holder")),
        Some(HandlerErrorKind::Timeout)
    );
    assert_eq!(
        result_named(&event, "b_parent").status,
        ResultStatus::Completed
    );
    // The child belonged to the timed-out handler: cancelled where it was still queued.
    let child = &event.event_children()[0];
    assert_eq!(
        kind(&result_named(child, "b_child")),
        Some(HandlerErrorKind::Cancelled)
    );
    assert_eq!(log.entries(), ["awaiting child", "b handles E"]);
    bus_still_works(&bus_a).await;
    bus_still_works(&bus_b).await;
}

// ---------------------------------------------------------------------------------------------
// Cross-runtime parity subtests
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn timeout_enforcement_does_not_break_followup_processing_or_queue_state() {
    #[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
    #[event(result = String, timeout = 0.02)]
    struct TimeoutEnforcementEvent {}

    let bus = EventBus::builder("ParityTimeoutEnforcementBus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    for name in ["slow_a", "slow_b"] {
        bus.on_with(
            move |_: EventHandle<TimeoutEnforcementEvent>| async move {
                tokio::time::sleep(ms(200)).await;
                name.to_owned()
            },
            HandlerOptions::new().name(name),
        );
    }
    bus.on(|_: EventHandle<NextEvent>| async { String::from("followup-ok") });

    let timed_out = within(bus.dispatch(TimeoutEnforcementEvent {}).unwrap())
        .await
        .unwrap();
    assert_eq!(timed_out.event_status(), EventStatus::Completed);
    let results = timed_out.event_results();
    assert_eq!(results.len(), 2);
    assert!(results.iter().all(|r| r.status == ResultStatus::Error));
    assert!(
        results
            .iter()
            .all(|r| matches!(kind_of(r), Some(HandlerErrorKind::Aborted))),
        "{results:?}"
    );

    let followup = within(bus.dispatch(NextEvent {}).unwrap()).await.unwrap();
    assert_eq!(followup.event_result().await.unwrap(), "followup-ok");
    assert!(
        followup
            .event_results()
            .iter()
            .all(|r| r.status == ResultStatus::Completed)
    );

    assert!(within(bus.wait_until_idle(None)).await);
    assert_eq!(bus.queue_len(), 0);
    assert!(bus.events_started().is_empty());
    assert!(bus.events_pending().is_empty());
}

fn kind_of<R>(result: &EventResult<R>) -> Option<HandlerErrorKind> {
    result.error.as_ref().map(|e| e.kind())
}

/// Per-event and overall counts of handlers in flight.
#[derive(Clone, Default)]
struct Concurrency(Arc<Mutex<ConcurrencyState>>);

#[derive(Default)]
struct ConcurrencyState {
    per_event: HashMap<String, (usize, usize)>,
    global: (usize, usize),
}

struct Running(Concurrency, String);

impl Concurrency {
    fn enter(&self, event: &str) -> Running {
        let mut st = self.0.lock().unwrap();
        let entry = st.per_event.entry(event.to_owned()).or_default();
        entry.0 += 1;
        entry.1 = entry.1.max(entry.0);
        st.global.0 += 1;
        st.global.1 = st.global.1.max(st.global.0);
        Running(self.clone(), event.to_owned())
    }
    fn max_for(&self, event: &str) -> usize {
        self.0
            .lock()
            .unwrap()
            .per_event
            .get(event)
            .map_or(0, |e| e.1)
    }
    fn global_max(&self) -> usize {
        self.0.lock().unwrap().global.1
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut st = self.0.0.lock().unwrap();
        if let Some(entry) = st.per_event.get_mut(&self.1) {
            entry.0 -= 1;
        }
        st.global.0 -= 1;
    }
}

#[tokio::test(start_paused = true)]
async fn parallel_events_with_serial_handlers_stay_serial_per_event() {
    let bus = EventBus::builder("ParityConcurrencyIntersectionBus")
        .event_concurrency(EventConcurrency::Parallel)
        .event_handler_concurrency(HandlerConcurrency::Serial)
        .max_history_size(None)
        .build();
    let tracker = Concurrency::default();
    for name in ["tracked_a", "tracked_b"] {
        let t = tracker.clone();
        bus.on_with(
            move |event: EventHandle<TokenEvent>| {
                let t = t.clone();
                async move {
                    let _running = t.enter(&event.event_id().to_string());
                    tokio::time::sleep(ms(10)).await;
                    format!("ok-{}", event.token)
                }
            },
            HandlerOptions::new().name(name),
        );
    }

    let events: Vec<_> = (0..8)
        .map(|token| bus.dispatch(TokenEvent { token }).unwrap())
        .collect();
    let start = Instant::now();
    for event in &events {
        within(event.clone()).await.unwrap();
    }
    assert!(within(bus.wait_until_idle(None)).await);
    // Eight events at once, two serial handlers each: 20 ms in all.
    assert_eq!(start.elapsed(), ms(20));
    for event in &events {
        assert_eq!(tracker.max_for(&event.event_id().to_string()), 1);
        assert!(
            event
                .event_results()
                .iter()
                .all(|r| r.status == ResultStatus::Completed)
        );
    }
    assert!(tracker.global_max() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_events_with_serial_handlers_stay_serial_per_event_across_threads() {
    const EVENTS: usize = 4;
    let bus = EventBus::builder("ParityConcurrencyIntersectionThreads")
        .event_concurrency(EventConcurrency::Parallel)
        .event_handler_concurrency(HandlerConcurrency::Serial)
        .build();
    let tracker = Concurrency::default();
    // Every event's first handler waits until all of them are running at once: that only
    // happens if the events really overlap. The second handler of each event must wait for
    // its first.
    let all_started = Arc::new(tokio::sync::Barrier::new(EVENTS));
    let (t, barrier) = (tracker.clone(), Arc::clone(&all_started));
    bus.on_with(
        move |event: EventHandle<TokenEvent>| {
            let (t, barrier) = (t.clone(), Arc::clone(&barrier));
            async move {
                let _running = t.enter(&event.event_id().to_string());
                barrier.wait().await;
                tokio::task::yield_now().await;
                String::from("first")
            }
        },
        HandlerOptions::new().name("first"),
    );
    let t = tracker.clone();
    bus.on_with(
        move |event: EventHandle<TokenEvent>| {
            let t = t.clone();
            async move {
                let _running = t.enter(&event.event_id().to_string());
                tokio::task::yield_now().await;
                String::from("second")
            }
        },
        HandlerOptions::new().name("second"),
    );

    let events: Vec<_> = (0..EVENTS)
        .map(|token| bus.dispatch(TokenEvent { token }).unwrap())
        .collect();
    for event in &events {
        let event = within_limit(Duration::from_secs(10), event.clone())
            .await
            .unwrap();
        assert_eq!(
            event.event_results_list().await.unwrap(),
            ["first", "second"]
        );
        assert_eq!(tracker.max_for(&event.event_id().to_string()), 1);
    }
    assert!(tracker.global_max() >= EVENTS);
}

/// Awaiting an event on one thread while its handler finishes on another never misses the
/// completion: many awaits race many completions, on a bus whose completions set the flag under
/// the event's lock and on one with a middleware (which hears of each completion before the flag
/// is set). Each await either sees the event complete or is woken by the completion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_await_racing_the_completion_on_another_thread_is_always_woken() {
    let plain = EventBus::new("RacePlain");
    let observed = EventBus::builder("RaceObserved")
        .middleware(Arc::new(bubus::middleware::LoggerMiddleware::new()))
        .build();
    for bus in [&plain, &observed] {
        bus.on(|event: EventHandle<TokenEvent>| event.token.to_string());
    }
    for round in 0..2_000 {
        let bus = if round % 2 == 0 { &plain } else { &observed };
        let event = bus.dispatch(TokenEvent { token: round }).unwrap();
        // The waiter runs on a worker thread, the run loop on either: they race.
        let waiter = tokio::spawn({
            let event = event.clone();
            async move { event.await.map(|e| e.event_status()) }
        });
        let status = within_limit(Duration::from_secs(30), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, EventStatus::Completed, "round {round}");
        assert_eq!(
            within_limit(Duration::from_secs(30), event.event_result())
                .await
                .unwrap(),
            round.to_string()
        );
    }
}
