//! Ports `tests/test_eventbus_locking.py` and `bubus-ts/tests/eventbus_locking.test.ts`
//! (semantics §1.8, Appendix A): event concurrency (global-serial per lock domain, bus-serial,
//! parallel), handler concurrency (serial per event across buses, parallel, per-handler
//! overrides), their precedence, queue-jumping under each, FIFO order, and what must hold while
//! all of that runs concurrently.
//!
//! # Appendix A, case by case
//!
//! * **A. Event concurrency modes**:
//!   `global_serial_runs_one_event_at_a_time_across_buses_in_fifo_order`,
//!   `global_serial_holds_across_threads`, `lock_domains_are_independent`,
//!   `bus_serial_serializes_per_bus_but_overlaps_across_buses`,
//!   `parallel_events_overlap_on_one_bus`, `parallel_event_concurrency_keeps_queue_jump_working`,
//!   `unset_event_concurrency_resolves_to_the_bus_default`; per-bus resolution of unset values:
//!   `dispatch_defaults.rs`.
//! * **B. Handler concurrency**: `serial_handlers_run_one_at_a_time_in_registration_order`,
//!   `parallel_handlers_of_one_event_run_at_once`,
//!   `unset_handler_concurrency_resolves_to_the_bus_default`,
//!   `a_handler_option_overrides_the_event_handler_concurrency`,
//!   `the_serial_handler_lock_is_shared_by_every_bus_the_event_reaches`,
//!   `global_serial_with_parallel_handlers_overlaps_handlers_not_events`,
//!   `parallel_events_with_serial_handlers_overlap_across_buses`; serial per event under parallel
//!   events: `no_stalls.rs` (`parallel_events_with_serial_handlers_stay_serial_per_event*`).
//! * **C. Precedence**: `an_event_parallel_override_beats_a_bus_serial_default`,
//!   `an_event_bus_serial_override_beats_a_bus_parallel_default`,
//!   `an_event_handler_concurrency_override_beats_the_bus_default`,
//!   `a_handler_option_overrides_the_event_handler_concurrency`,
//!   `a_retry_semaphore_serializes_handlers_even_on_parallel_buses`; class defaults:
//!   `dispatch_defaults.rs`.
//! * **D. Queue-jump**: `an_awaited_child_preempts_a_queued_sibling_on_the_same_bus`,
//!   `an_awaited_child_jumps_queued_events_across_global_serial_buses`,
//!   `awaiting_a_child_on_one_bus_does_not_block_another_bus`,
//!   `a_queue_jump_honours_the_lock_of_another_busy_bus`,
//!   `awaiting_an_event_already_in_flight_does_not_run_it_twice`,
//!   `the_same_event_type_on_separate_buses_stays_isolated_without_forwarding`.
//! * **E. FIFO**: `bus_serial_keeps_fifo_with_interleaved_dispatches`,
//!   `global_serial_runs_one_event_at_a_time_across_buses_in_fifo_order`,
//!   `forwarded_events_keep_fifo_order_on_the_target_bus`,
//!   `forwarded_events_keep_fifo_order_across_chained_buses`.
//! * **F. Forwarding and bus context**:
//!   `forwarding_does_not_change_the_bus_of_the_running_handler`,
//!   `forwarded_events_keep_fifo_order_on_the_target_bus` (one result per bus, attributed).
//! * **G. Parent/child**: `forwarding_does_not_change_the_bus_of_the_running_handler` (children
//!   attributed per bus),
//!   `children_of_concurrent_handlers_are_linked_to_the_handler_that_dispatched_them`,
//!   `the_pending_bus_count_returns_to_zero`.
//! * **H. Find under concurrency**:
//!   `find_in_the_past_returns_the_most_recent_match_of_any_status_unless_told_otherwise`,
//!   `find_in_the_future_resolves_with_an_event_forwarded_from_another_bus`,
//!   `children_of_concurrent_handlers_are_linked_to_the_handler_that_dispatched_them`
//!   (`find().child_of`, `event_is_child_of`),
//!   `history_views_never_report_an_in_flight_event_as_completed`,
//!   `awaiting_a_forwarded_event_resolves_when_the_other_bus_is_done`; the full `find` suite
//!   (issue 4) is `eventbus_find.rs`.
//! * **I. Timeouts and cancellation**:
//!   `a_parent_timeout_cancels_the_child_handlers_on_every_bus_with_attribution`,
//!   `a_forwarded_event_timeout_leaves_nothing_waiting`; the full matrix: `eventbus_timeout.rs`.
//! * **J. Result validation**: `result_types_are_enforced_under_parallel_handlers`,
//!   `a_timeout_is_never_overwritten_by_a_late_result`.
//! * **K. Idle and completion**: `wait_until_idle_never_returns_with_work_in_flight`,
//!   `awaiting_an_event_waits_for_its_queued_children`,
//!   `many_nested_awaits_never_deadlock_the_run_loops`,
//!   `an_event_without_handlers_completes_at_once`.
//! * **L. Re-entrancy**: `nested_awaited_children_do_not_starve_sibling_handlers`,
//!   `a_queue_jump_honours_the_lock_of_another_busy_bus`.
//! * **M. Edge cases**: `handlers_of_one_type_with_different_options_do_not_collide`,
//!   `handlers_failing_before_their_first_await_are_recorded_and_nothing_leaks`,
//!   `invalid_concurrency_values_are_rejected`, `awaiting_an_event_never_dispatched_fails_at_once`,
//!   `an_event_without_handlers_completes_at_once`.
//!
//! Tests run on tokio's paused clock (handlers model work with `tokio::time::sleep`; the clock
//! jumps when the runtime is idle), or on a multi-thread runtime where real parallelism matters,
//! made deterministic with barriers and notifications, never with timing.

use bubus_test_support::string_events;
use bubus_test_support::time::ms;
use bubus_test_support::time::within_real;
use std::future::IntoFuture;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bubus::retry::{Retry, SemaphoreScope};
use bubus::{
    AnyEvent, Event, EventBus, EventHandle, EventStatus, WaitError, bus::LockDomain,
    error::HandlerErrorKind, error::ResultError, event::EventConcurrency, event::EventConfig,
    event::HandlerConcurrency, handler::HandlerOptions, result::ResultStatus,
};
use bubus_test_support::Recorder;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Barrier, Notify};
use tokio::time::Instant;

string_events!(
    WorkEvent,
    ParentEvent,
    ChildEvent,
    GrandchildEvent,
    SiblingEvent,
    QueuedEvent,
    OtherEvent,
    BlockerEvent,
);

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct OrderedEvent {
    order: usize,
    source: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = u32)]
struct CountEvent {}

/// Counts handler runs in flight: now, and the most at once.
#[derive(Clone, Default)]
struct InFlight(Arc<Mutex<(usize, usize)>>);

/// One run in flight, until dropped.
struct Running(InFlight);

impl InFlight {
    fn enter(&self) -> Running {
        let mut n = self.0.lock().unwrap();
        n.0 += 1;
        n.1 = n.1.max(n.0);
        Running(self.clone())
    }
    fn max(&self) -> usize {
        self.0.lock().unwrap().1
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.0.lock().unwrap().0 -= 1;
    }
}

/// Registers a handler for `E` named `name` that holds slots of every tracker in `flights` for
/// `sleep_ms`, logging `{name}_start` and `{name}_end`.
fn on_tracked<E: Event<Result = String>>(
    bus: &EventBus,
    flights: &[&InFlight],
    log: &Recorder,
    name: &'static str,
    sleep_ms: u64,
    options: HandlerOptions,
) {
    let flights: Vec<InFlight> = flights.iter().map(|f| (*f).clone()).collect();
    let log = log.clone();
    bus.on_with(
        move |_: EventHandle<E>| {
            let (flights, log) = (flights.clone(), log.clone());
            async move {
                let _running: Vec<Running> = flights.iter().map(InFlight::enter).collect();
                log.push(format!("{name}_start"));
                tokio::time::sleep(ms(sleep_ms)).await;
                log.push(format!("{name}_end"));
                name.to_owned()
            }
        },
        options.name(name),
    );
}

/// Registers an `OrderedEvent` handler logging `{source}:{order}` when it starts, holding
/// `flight` for `sleep_ms`.
fn on_ordered(bus: &EventBus, flight: &InFlight, log: &Recorder, sleep_ms: u64) {
    let (flight, log) = (flight.clone(), log.clone());
    bus.on(move |e: EventHandle<OrderedEvent>| {
        let (flight, log) = (flight.clone(), log.clone());
        async move {
            let _running = flight.enter();
            log.push(format!("{}:{}", e.source, e.order));
            tokio::time::sleep(ms(sleep_ms)).await;
            String::new()
        }
    });
}

/// The orders logged by [`on_ordered`] for `source`, in start order.
fn orders(log: &Recorder, source: &str) -> Vec<usize> {
    let prefix = format!("{source}:");
    log.entries()
        .iter()
        .filter_map(|e| e.strip_prefix(&prefix).map(|n| n.parse().unwrap()))
        .collect()
}

fn global_serial(name: &str, domain: &LockDomain) -> EventBus {
    EventBus::builder(name)
        .event_concurrency(EventConcurrency::GlobalSerial)
        .lock_domain(domain.clone())
        .build()
}

// ---------------------------------------------------------------------------------------------
// A. Event concurrency
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn global_serial_runs_one_event_at_a_time_across_buses_in_fifo_order() {
    let domain = LockDomain::new();
    let bus_a = global_serial("GlobalSerialA", &domain);
    let bus_b = global_serial("GlobalSerialB", &domain);
    let (flight, log) = (InFlight::default(), Recorder::new());
    on_ordered(&bus_a, &flight, &log, 10);
    on_ordered(&bus_b, &flight, &log, 10);

    for order in 0..3 {
        bus_a
            .dispatch(OrderedEvent {
                order,
                source: "a".into(),
            })
            .unwrap();
        bus_b
            .dispatch(OrderedEvent {
                order,
                source: "b".into(),
            })
            .unwrap();
    }
    let start = Instant::now();
    assert!(within_real(bus_a.wait_until_idle(None)).await);
    assert!(within_real(bus_b.wait_until_idle(None)).await);

    assert_eq!(flight.max(), 1);
    assert_eq!(start.elapsed(), ms(60), "six events, one at a time");
    assert_eq!(orders(&log, "a"), [0, 1, 2]);
    assert_eq!(orders(&log, "b"), [0, 1, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_serial_holds_across_threads() {
    let domain = LockDomain::new();
    let buses: Vec<EventBus> = (0..3)
        .map(|i| global_serial(&format!("GlobalSerialThreads{i}"), &domain))
        .collect();
    let flight = InFlight::default();
    for bus in &buses {
        let flight = flight.clone();
        bus.on(move |_: EventHandle<WorkEvent>| {
            let flight = flight.clone();
            async move {
                let _running = flight.enter();
                // Give the other worker every chance to start another event meanwhile.
                for _ in 0..20 {
                    tokio::task::yield_now().await;
                }
                String::new()
            }
        });
    }
    for _ in 0..20 {
        for bus in &buses {
            bus.dispatch(WorkEvent {}).unwrap();
        }
    }
    for bus in &buses {
        assert!(within_real(bus.wait_until_idle(None)).await);
    }
    assert_eq!(flight.max(), 1);
}

#[tokio::test(start_paused = true)]
async fn lock_domains_are_independent() {
    // A global-serial event in one domain waits for one in another domain to start: if the two
    // domains shared a lock, neither could finish.
    let bus_x = global_serial("DomainX", &LockDomain::new());
    let bus_y = global_serial("DomainY", &LockDomain::new());
    assert_ne!(bus_x.lock_domain(), bus_y.lock_domain());
    assert_eq!(
        EventBus::new("DefaultDomain").lock_domain(),
        &LockDomain::process()
    );
    let y_started = Arc::new(Notify::new());
    let started = Arc::clone(&y_started);
    bus_x.on(move |_: EventHandle<WorkEvent>| {
        let started = Arc::clone(&started);
        async move {
            started.notified().await;
            String::from("x")
        }
    });
    let started = Arc::clone(&y_started);
    bus_y.on(move |_: EventHandle<WorkEvent>| {
        started.notify_one();
        String::from("y")
    });

    let x = bus_x.dispatch(WorkEvent {}).unwrap();
    let y = bus_y.dispatch(WorkEvent {}).unwrap();
    assert_eq!(within_real(x.event_result()).await.unwrap(), "x");
    assert_eq!(within_real(y.event_result()).await.unwrap(), "y");
}

#[tokio::test(start_paused = true)]
async fn bus_serial_serializes_per_bus_but_overlaps_across_buses() {
    let bus_a = EventBus::new("BusSerialA");
    let bus_b = EventBus::new("BusSerialB");
    let (global, flight_a, flight_b) = (
        InFlight::default(),
        InFlight::default(),
        InFlight::default(),
    );
    let b_started = Arc::new(Notify::new());
    let (g, f, started) = (global.clone(), flight_a.clone(), Arc::clone(&b_started));
    bus_a.on(move |_: EventHandle<WorkEvent>| {
        let (g, f, started) = (g.clone(), f.clone(), Arc::clone(&started));
        async move {
            let _running = (g.enter(), f.enter());
            // Finishes only once bus B is running an event too.
            started.notified().await;
            tokio::time::sleep(ms(10)).await;
            String::new()
        }
    });
    let (g, f, started) = (global.clone(), flight_b.clone(), Arc::clone(&b_started));
    bus_b.on(move |_: EventHandle<WorkEvent>| {
        let (g, f, started) = (g.clone(), f.clone(), Arc::clone(&started));
        async move {
            let _running = (g.enter(), f.enter());
            started.notify_one();
            tokio::time::sleep(ms(10)).await;
            String::new()
        }
    });

    for _ in 0..2 {
        bus_a.dispatch(WorkEvent {}).unwrap();
        bus_b.dispatch(WorkEvent {}).unwrap();
    }
    assert!(within_real(bus_a.wait_until_idle(None)).await);
    assert!(within_real(bus_b.wait_until_idle(None)).await);
    assert_eq!(flight_a.max(), 1);
    assert_eq!(flight_b.max(), 1);
    assert_eq!(global.max(), 2);
}

#[tokio::test(start_paused = true)]
async fn bus_serial_keeps_fifo_with_interleaved_dispatches() {
    let bus_a = EventBus::new("BusSerialOrderA");
    let bus_b = EventBus::new("BusSerialOrderB");
    let (flight, log) = (InFlight::default(), Recorder::new());
    on_ordered(&bus_a, &flight, &log, 2);
    on_ordered(&bus_b, &flight, &log, 2);

    for order in 0..4 {
        bus_a
            .dispatch(OrderedEvent {
                order,
                source: "a".into(),
            })
            .unwrap();
        bus_b
            .dispatch(OrderedEvent {
                order,
                source: "b".into(),
            })
            .unwrap();
    }
    assert!(within_real(bus_a.wait_until_idle(None)).await);
    assert!(within_real(bus_b.wait_until_idle(None)).await);
    assert_eq!(orders(&log, "a"), [0, 1, 2, 3]);
    assert_eq!(orders(&log, "b"), [0, 1, 2, 3]);
    assert_eq!(flight.max(), 2, "one per bus");
}

#[tokio::test(start_paused = true)]
async fn parallel_events_overlap_on_one_bus() {
    let bus = EventBus::builder("ParallelEventBus")
        .event_concurrency(EventConcurrency::Parallel)
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .event_timeout(None)
        .build();
    // Each handler waits for the other event's handler: only possible if they overlap.
    let both = Arc::new(Barrier::new(2));
    let flight = InFlight::default();
    let (b, f) = (Arc::clone(&both), flight.clone());
    bus.on(move |e: EventHandle<OrderedEvent>| {
        let (b, f) = (Arc::clone(&b), f.clone());
        async move {
            let _running = f.enter();
            b.wait().await;
            tokio::time::sleep(ms(5)).await;
            format!("done {}", e.order)
        }
    });

    let first = bus
        .dispatch(OrderedEvent {
            order: 0,
            source: String::new(),
        })
        .unwrap();
    let second = bus
        .dispatch(OrderedEvent {
            order: 1,
            source: String::new(),
        })
        .unwrap();
    assert_eq!(within_real(first.event_result()).await.unwrap(), "done 0");
    assert_eq!(within_real(second.event_result()).await.unwrap(), "done 1");
    assert_eq!(flight.max(), 2);
}

#[tokio::test(start_paused = true)]
async fn parallel_event_concurrency_keeps_queue_jump_working() {
    let bus = EventBus::builder("ParallelQueueJumpBus")
        .event_concurrency(EventConcurrency::Parallel)
        .build();
    let log = Recorder::new();
    on_tracked::<ChildEvent>(&bus, &[], &log, "child", 5, HandlerOptions::new());
    on_tracked::<SiblingEvent>(&bus, &[], &log, "sibling", 1, HandlerOptions::new());
    let (b, l) = (bus.clone(), log.clone());
    bus.on(move |_: EventHandle<ParentEvent>| {
        let (b, l) = (b.clone(), l.clone());
        async move {
            l.push("parent_start");
            let child = b.dispatch(ChildEvent {})?.await?;
            l.push("parent_end");
            Ok::<_, bubus::Error>(child.event_result().await?)
        }
    });

    let parent = bus.dispatch(ParentEvent {}).unwrap();
    let sibling = bus.dispatch(SiblingEvent {}).unwrap();
    assert_eq!(within_real(parent.event_result()).await.unwrap(), "child");
    within_real(sibling).await.unwrap();
    // The child ran inside the awaiting handler, once; the sibling overlapped (parallel).
    log.assert_order(&["parent_start", "child_start", "child_end", "parent_end"]);
    assert_eq!(
        log.entries().iter().filter(|e| *e == "child_start").count(),
        1
    );
    assert!(log.position("sibling_end").unwrap() < log.position("parent_end").unwrap());
}

#[tokio::test(start_paused = true)]
async fn unset_event_concurrency_resolves_to_the_bus_default() {
    let bus = EventBus::builder("AutoBus")
        .event_concurrency(EventConcurrency::BusSerial)
        .build();
    let flight = InFlight::default();
    on_tracked::<WorkEvent>(
        &bus,
        &[&flight],
        &Recorder::new(),
        "h",
        5,
        HandlerOptions::new(),
    );
    for _ in 0..2 {
        let event = EventHandle::new(WorkEvent {});
        event.set_event_concurrency(None);
        bus.dispatch(event).unwrap();
    }
    assert!(within_real(bus.wait_until_idle(None)).await);
    assert_eq!(flight.max(), 1);
}

// ---------------------------------------------------------------------------------------------
// B. Handler concurrency
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn serial_handlers_run_one_at_a_time_in_registration_order() {
    let bus = EventBus::new("SerialHandlersBus");
    let (flight, log) = (InFlight::default(), Recorder::new());
    for (name, sleep_ms) in [("h1", 10), ("h2", 1), ("h3", 5)] {
        on_tracked::<WorkEvent>(
            &bus,
            &[&flight],
            &log,
            name,
            sleep_ms,
            HandlerOptions::new(),
        );
    }
    within_real(bus.dispatch(WorkEvent {}).unwrap())
        .await
        .unwrap();
    assert_eq!(
        log.entries(),
        [
            "h1_start", "h1_end", "h2_start", "h2_end", "h3_start", "h3_end"
        ]
    );
    assert_eq!(flight.max(), 1);
}

#[tokio::test(start_paused = true)]
async fn serial_sync_and_waiting_async_handlers_keep_their_order_and_one_at_a_time() {
    // Sync handlers run without building any future; the first handler that waits hands the
    // rest over to the handler phase, which must go on in the same order, one at a time.
    let bus = EventBus::new("SerialMixedBus");
    let log = Recorder::new();
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    for (name, wait_ms) in [
        ("sync_1", None),
        ("async_waits", Some(10)),
        ("sync_2", None),
        ("async_ready", Some(0)),
        ("sync_3", None),
    ] {
        let (log, running, most) = (log.clone(), Arc::clone(&running), Arc::clone(&most));
        let leave = {
            let (log, running) = (log.clone(), Arc::clone(&running));
            move || {
                log.push(format!("{name}_end"));
                running.fetch_sub(1, Ordering::SeqCst);
                name.to_owned()
            }
        };
        let enter = move || {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            log.push(format!("{name}_start"));
        };
        match wait_ms {
            None => bus.on_with(
                move |_: EventHandle<WorkEvent>| {
                    enter();
                    leave()
                },
                HandlerOptions::new().name(name),
            ),
            Some(wait) => bus.on_with(
                move |_: EventHandle<WorkEvent>| {
                    enter();
                    let leave = leave.clone();
                    async move {
                        if wait > 0 {
                            tokio::time::sleep(ms(wait)).await;
                        }
                        leave()
                    }
                },
                HandlerOptions::new().name(name),
            ),
        };
    }
    let start = Instant::now();
    let event = within_real(bus.dispatch(WorkEvent {}).unwrap())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), ms(10));
    assert_eq!(
        log.entries(),
        [
            "sync_1_start",
            "sync_1_end",
            "async_waits_start",
            "async_waits_end",
            "sync_2_start",
            "sync_2_end",
            "async_ready_start",
            "async_ready_end",
            "sync_3_start",
            "sync_3_end",
        ]
    );
    assert_eq!(most.load(Ordering::SeqCst), 1);
    assert_eq!(
        event.event_results_list().await.unwrap(),
        ["sync_1", "async_waits", "sync_2", "async_ready", "sync_3"]
    );
}

#[tokio::test(start_paused = true)]
async fn parallel_handlers_of_one_event_run_at_once() {
    let bus = EventBus::builder("ParallelHandlerBus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .event_timeout(None)
        .build();
    let both = Arc::new(Barrier::new(2));
    for name in ["handler_a", "handler_b"] {
        let b = Arc::clone(&both);
        bus.on_with(
            move |_: EventHandle<WorkEvent>| {
                let b = Arc::clone(&b);
                async move {
                    b.wait().await;
                    name.to_owned()
                }
            },
            HandlerOptions::new().name(name),
        );
    }
    let event = within_real(bus.dispatch(WorkEvent {}).unwrap())
        .await
        .unwrap();
    assert_eq!(
        event.event_results_list().await.unwrap(),
        ["handler_a", "handler_b"]
    );
}

#[tokio::test(start_paused = true)]
async fn unset_handler_concurrency_resolves_to_the_bus_default() {
    let bus = EventBus::builder("AutoHandlerBus")
        .event_handler_concurrency(HandlerConcurrency::Serial)
        .build();
    let flight = InFlight::default();
    let log = Recorder::new();
    on_tracked::<WorkEvent>(&bus, &[&flight], &log, "a", 5, HandlerOptions::new());
    on_tracked::<WorkEvent>(&bus, &[&flight], &log, "b", 5, HandlerOptions::new());
    let event = EventHandle::new(WorkEvent {});
    event.set_event_handler_concurrency(None);
    within_real(bus.dispatch(event).unwrap()).await.unwrap();
    assert_eq!(flight.max(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_handler_option_overrides_the_event_handler_concurrency() {
    // On a serial event, a handler marked parallel runs alongside the serial chain.
    let bus = EventBus::new("MixedSerialBus");
    let log = Recorder::new();
    on_tracked::<WorkEvent>(&bus, &[], &log, "s1", 20, HandlerOptions::new());
    on_tracked::<WorkEvent>(
        &bus,
        &[],
        &log,
        "p",
        5,
        HandlerOptions::new().concurrency(HandlerConcurrency::Parallel),
    );
    on_tracked::<WorkEvent>(&bus, &[], &log, "s2", 20, HandlerOptions::new());
    let start = Instant::now();
    within_real(bus.dispatch(WorkEvent {}).unwrap())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), ms(40));
    log.assert_order(&[
        "s1_start", "p_start", "p_end", "s1_end", "s2_start", "s2_end",
    ]);

    // On a parallel event, handlers marked serial take turns; the others run alongside.
    let bus = EventBus::builder("MixedParallelBus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let (serial, all) = (InFlight::default(), InFlight::default());
    let serial_opts = || HandlerOptions::new().concurrency(HandlerConcurrency::Serial);
    let log = Recorder::new();
    on_tracked::<WorkEvent>(&bus, &[&serial, &all], &log, "s1", 10, serial_opts());
    on_tracked::<WorkEvent>(&bus, &[&all], &log, "p1", 10, HandlerOptions::new());
    on_tracked::<WorkEvent>(&bus, &[&serial, &all], &log, "s2", 10, serial_opts());
    on_tracked::<WorkEvent>(&bus, &[&all], &log, "p2", 10, HandlerOptions::new());
    let start = Instant::now();
    within_real(bus.dispatch(WorkEvent {}).unwrap())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), ms(20));
    assert_eq!(serial.max(), 1);
    assert_eq!(all.max(), 3);
    log.assert_order(&["s1_start", "s1_end", "s2_start"]);
}

#[tokio::test(start_paused = true)]
async fn the_serial_handler_lock_is_shared_by_every_bus_the_event_reaches() {
    let bus_a = EventBus::new("SharedLockA");
    let bus_b = EventBus::new("SharedLockB");
    let flight = InFlight::default();
    let log = Recorder::new();
    on_tracked::<WorkEvent>(&bus_a, &[&flight], &log, "on_a", 10, HandlerOptions::new());
    on_tracked::<WorkEvent>(&bus_b, &[&flight], &log, "on_b", 10, HandlerOptions::new());

    // Serial (the default): the two buses process the event at the same time, but its handlers
    // take turns.
    let event = EventHandle::new(WorkEvent {});
    bus_a.dispatch(&event).unwrap();
    bus_b.dispatch(&event).unwrap();
    let start = Instant::now();
    within_real(event).await.unwrap();
    assert_eq!(start.elapsed(), ms(20));
    assert_eq!(flight.max(), 1);

    // Parallel handlers on the event: they overlap across the buses too.
    let flight_parallel = InFlight::default();
    let bus_c = EventBus::new("SharedLockC");
    let bus_d = EventBus::new("SharedLockD");
    on_tracked::<WorkEvent>(
        &bus_c,
        &[&flight_parallel],
        &log,
        "on_c",
        10,
        HandlerOptions::new(),
    );
    on_tracked::<WorkEvent>(
        &bus_d,
        &[&flight_parallel],
        &log,
        "on_d",
        10,
        HandlerOptions::new(),
    );
    let event =
        EventHandle::new(WorkEvent {}).with_event_handler_concurrency(HandlerConcurrency::Parallel);
    bus_c.dispatch(&event).unwrap();
    bus_d.dispatch(&event).unwrap();
    let start = Instant::now();
    within_real(event).await.unwrap();
    assert_eq!(start.elapsed(), ms(10));
    assert_eq!(flight_parallel.max(), 2);
}

#[tokio::test(start_paused = true)]
async fn global_serial_with_parallel_handlers_overlaps_handlers_not_events() {
    let domain = LockDomain::new();
    let build = |name: &str| {
        EventBus::builder(name)
            .event_concurrency(EventConcurrency::GlobalSerial)
            .event_handler_concurrency(HandlerConcurrency::Parallel)
            .lock_domain(domain.clone())
            .build()
    };
    let (bus_a, bus_b) = (
        build("GlobalSerialParallelA"),
        build("GlobalSerialParallelB"),
    );
    let (flight, log) = (InFlight::default(), Recorder::new());
    for bus in [&bus_a, &bus_b] {
        on_tracked::<WorkEvent>(bus, &[&flight], &log, "h1", 10, HandlerOptions::new());
        on_tracked::<WorkEvent>(bus, &[&flight], &log, "h2", 10, HandlerOptions::new());
    }
    bus_a.dispatch(WorkEvent {}).unwrap();
    bus_b.dispatch(WorkEvent {}).unwrap();
    let start = Instant::now();
    assert!(within_real(bus_a.wait_until_idle(None)).await);
    assert!(within_real(bus_b.wait_until_idle(None)).await);
    assert_eq!(
        flight.max(),
        2,
        "two handlers of one event, never two events"
    );
    assert_eq!(start.elapsed(), ms(20));
}

#[tokio::test(start_paused = true)]
async fn parallel_events_with_serial_handlers_overlap_across_buses() {
    let build = |name: &str| {
        EventBus::builder(name)
            .event_concurrency(EventConcurrency::Parallel)
            .event_handler_concurrency(HandlerConcurrency::Serial)
            .build()
    };
    let (bus_a, bus_b) = (build("ParallelBusHandlersA"), build("ParallelBusHandlersB"));
    let (flight, log) = (InFlight::default(), Recorder::new());
    on_tracked::<WorkEvent>(&bus_a, &[&flight], &log, "a", 10, HandlerOptions::new());
    on_tracked::<WorkEvent>(&bus_b, &[&flight], &log, "b", 10, HandlerOptions::new());
    bus_a.dispatch(WorkEvent {}).unwrap();
    bus_b.dispatch(WorkEvent {}).unwrap();
    assert!(within_real(bus_a.wait_until_idle(None)).await);
    assert!(within_real(bus_b.wait_until_idle(None)).await);
    assert_eq!(flight.max(), 2);
}

// ---------------------------------------------------------------------------------------------
// C. Precedence
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_event_parallel_override_beats_a_bus_serial_default() {
    let bus = EventBus::builder("OverrideParallelBus")
        .event_concurrency(EventConcurrency::BusSerial)
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let flight = InFlight::default();
    on_tracked::<WorkEvent>(
        &bus,
        &[&flight],
        &Recorder::new(),
        "h",
        10,
        HandlerOptions::new(),
    );
    for _ in 0..2 {
        bus.dispatch(
            EventHandle::new(WorkEvent {}).with_event_concurrency(EventConcurrency::Parallel),
        )
        .unwrap();
    }
    assert!(within_real(bus.wait_until_idle(None)).await);
    assert_eq!(flight.max(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_event_bus_serial_override_beats_a_bus_parallel_default() {
    let bus = EventBus::builder("OverrideBusSerialBus")
        .event_concurrency(EventConcurrency::Parallel)
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let flight = InFlight::default();
    on_tracked::<WorkEvent>(
        &bus,
        &[&flight],
        &Recorder::new(),
        "h",
        10,
        HandlerOptions::new(),
    );
    for _ in 0..2 {
        bus.dispatch(
            EventHandle::new(WorkEvent {}).with_event_concurrency(EventConcurrency::BusSerial),
        )
        .unwrap();
    }
    let start = Instant::now();
    assert!(within_real(bus.wait_until_idle(None)).await);
    assert_eq!(flight.max(), 1);
    assert_eq!(start.elapsed(), ms(20));
}

#[tokio::test(start_paused = true)]
async fn an_event_handler_concurrency_override_beats_the_bus_default() {
    for (bus_mode, event_mode, expected_max) in [
        (HandlerConcurrency::Serial, HandlerConcurrency::Parallel, 2),
        (HandlerConcurrency::Parallel, HandlerConcurrency::Serial, 1),
    ] {
        let bus = EventBus::builder("HandlerOverrideBus")
            .event_handler_concurrency(bus_mode)
            .build();
        let flight = InFlight::default();
        let log = Recorder::new();
        on_tracked::<WorkEvent>(&bus, &[&flight], &log, "a", 10, HandlerOptions::new());
        on_tracked::<WorkEvent>(&bus, &[&flight], &log, "b", 10, HandlerOptions::new());
        let event = EventHandle::new(WorkEvent {}).with_event_handler_concurrency(event_mode);
        within_real(bus.dispatch(event).unwrap()).await.unwrap();
        assert_eq!(
            flight.max(),
            expected_max,
            "bus {bus_mode:?}, event {event_mode:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_semaphore_serializes_handlers_even_on_parallel_buses() {
    let build = |name: &str| {
        EventBus::builder(name)
            .event_concurrency(EventConcurrency::Parallel)
            .event_handler_concurrency(HandlerConcurrency::Parallel)
            .build()
    };
    let (bus_a, bus_b) = (build("GlobalHandlerA"), build("GlobalHandlerB"));
    let policy = Retry::new()
        .semaphore_scope(SemaphoreScope::Global)
        .semaphore_name("eventbus_locking_global_handler")
        .semaphore_limit(1);
    let flight = InFlight::default();
    for bus in [&bus_a, &bus_b] {
        let f = flight.clone();
        bus.on(policy.handler(move |_: EventHandle<OrderedEvent>| {
            let f = f.clone();
            async move {
                let _running = f.enter();
                tokio::time::sleep(ms(5)).await;
                Ok::<_, std::io::Error>(String::new())
            }
        }));
    }
    for order in 0..4 {
        bus_a
            .dispatch(OrderedEvent {
                order,
                source: "a".into(),
            })
            .unwrap();
        bus_b
            .dispatch(OrderedEvent {
                order,
                source: "b".into(),
            })
            .unwrap();
    }
    let start = Instant::now();
    assert!(within_real(bus_a.wait_until_idle(None)).await);
    assert!(within_real(bus_b.wait_until_idle(None)).await);
    assert_eq!(flight.max(), 1);
    assert_eq!(start.elapsed(), ms(40));
}

// ---------------------------------------------------------------------------------------------
// D. Queue-jump
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_awaited_child_preempts_a_queued_sibling_on_the_same_bus() {
    let bus = EventBus::new("QueueJumpBus");
    let log = Recorder::new();
    on_tracked::<ChildEvent>(&bus, &[], &log, "child", 5, HandlerOptions::new());
    on_tracked::<SiblingEvent>(&bus, &[], &log, "sibling", 1, HandlerOptions::new());
    let (b, l) = (bus.clone(), log.clone());
    bus.on(move |_: EventHandle<ParentEvent>| {
        let (b, l) = (b.clone(), l.clone());
        async move {
            l.push("parent_start");
            // Dispatched first, but not awaited: it waits its turn.
            b.dispatch(SiblingEvent {})?;
            let child = b.dispatch(ChildEvent {})?;
            l.push("child_dispatched");
            child.await?;
            l.push("parent_end");
            Ok::<_, bubus::Error>(String::new())
        }
    });
    // A sibling dispatched from outside, before the parent runs.
    let parent = bus.dispatch(ParentEvent {}).unwrap();
    bus.dispatch(SiblingEvent {}).unwrap();

    within_real(parent).await.unwrap();
    assert!(within_real(bus.wait_until_idle(None)).await);
    assert_eq!(
        log.entries(),
        [
            "parent_start",
            "child_dispatched",
            "child_start",
            "child_end",
            "parent_end",
            "sibling_start",
            "sibling_end",
            "sibling_start",
            "sibling_end",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_awaited_child_jumps_queued_events_across_global_serial_buses() {
    let domain = LockDomain::new();
    let bus_a = global_serial("GlobalSerialParent", &domain);
    let bus_b = global_serial("GlobalSerialChild", &domain);
    let log = Recorder::new();
    on_tracked::<ChildEvent>(&bus_b, &[], &log, "child", 5, HandlerOptions::new());
    on_tracked::<QueuedEvent>(&bus_b, &[], &log, "queued", 1, HandlerOptions::new());
    let (a, b, l) = (bus_a.clone(), bus_b.clone(), log.clone());
    bus_a.on(move |_: EventHandle<ParentEvent>| {
        let (a, b, l) = (a.clone(), b.clone(), l.clone());
        async move {
            l.push("parent_start");
            b.dispatch(QueuedEvent {})?;
            let child = a.dispatch(ChildEvent {})?;
            b.dispatch(&child)?;
            child.await?;
            l.push("parent_end");
            Ok::<_, bubus::Error>(String::new())
        }
    });

    within_real(bus_a.dispatch(ParentEvent {}).unwrap())
        .await
        .unwrap();
    assert!(within_real(bus_b.wait_until_idle(None)).await);
    log.assert_order(&[
        "parent_start",
        "child_start",
        "child_end",
        "parent_end",
        "queued_start",
        "queued_end",
    ]);
}

#[tokio::test(start_paused = true)]
async fn awaiting_a_child_on_one_bus_does_not_block_another_bus() {
    let bus_a = EventBus::new("BusSerialParentBus");
    let bus_b = EventBus::new("BusSerialOtherBus");
    let log = Recorder::new();
    on_tracked::<ChildEvent>(&bus_a, &[], &log, "child", 10, HandlerOptions::new());
    on_tracked::<OtherEvent>(&bus_b, &[], &log, "other", 2, HandlerOptions::new());
    let (a, l) = (bus_a.clone(), log.clone());
    bus_a.on(move |_: EventHandle<ParentEvent>| {
        let (a, l) = (a.clone(), l.clone());
        async move {
            l.push("parent_start");
            a.dispatch(ChildEvent {})?.await?;
            l.push("parent_end");
            Ok::<_, bubus::Error>(String::new())
        }
    });

    let parent = bus_a.dispatch(ParentEvent {}).unwrap();
    bus_b.dispatch(OtherEvent {}).unwrap();
    within_real(parent).await.unwrap();
    assert!(within_real(bus_b.wait_until_idle(None)).await);
    assert!(log.position("other_end").unwrap() < log.position("parent_end").unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_queue_jump_honours_the_lock_of_another_busy_bus() {
    // Only locks held by the awaiting handler's own chain are re-entered: bus B is busy with
    // its own event, so the awaited child waits for it there.
    let bus_a = EventBus::new("QueueJumpLockA");
    let bus_b = EventBus::new("QueueJumpLockB");
    let log = Recorder::new();
    on_tracked::<BlockerEvent>(&bus_b, &[], &log, "blocker", 100, HandlerOptions::new());
    on_tracked::<ChildEvent>(&bus_b, &[], &log, "child", 5, HandlerOptions::new());
    let (b, l) = (bus_b.clone(), log.clone());
    bus_a.on(move |_: EventHandle<ParentEvent>| {
        let (b, l) = (b.clone(), l.clone());
        async move {
            l.push("parent_start");
            b.dispatch(ChildEvent {})?.await?;
            l.push("parent_end");
            Ok::<_, bubus::Error>(String::new())
        }
    });

    bus_b.dispatch(BlockerEvent {}).unwrap();
    let start = Instant::now();
    let parent = within_real(bus_a.dispatch(ParentEvent {}).unwrap())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), ms(105));
    assert_eq!(
        log.entries(),
        [
            "blocker_start",
            "parent_start",
            "blocker_end",
            "child_start",
            "child_end",
            "parent_end",
        ]
    );
    assert!(parent.event_errors().is_empty());
}

#[tokio::test(start_paused = true)]
async fn awaiting_an_event_already_in_flight_does_not_run_it_twice() {
    let bus = EventBus::builder("InFlightBus")
        .event_concurrency(EventConcurrency::Parallel)
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let runs = Arc::new(AtomicUsize::new(0));
    let (started, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (r, s, rel) = (
        Arc::clone(&runs),
        Arc::clone(&started),
        Arc::clone(&release),
    );
    bus.on(move |_: EventHandle<ChildEvent>| {
        r.fetch_add(1, Ordering::SeqCst);
        let (s, rel) = (Arc::clone(&s), Arc::clone(&rel));
        async move {
            s.notify_one();
            rel.notified().await;
            String::from("child")
        }
    });
    // A handler of another event awaits the in-flight event too (queue-jump path).
    let slot: Arc<Mutex<Option<AnyEvent>>> = Arc::default();
    let sl = Arc::clone(&slot);
    bus.on(move |_: EventHandle<ParentEvent>| {
        let sl = Arc::clone(&sl);
        async move {
            let child = sl.lock().unwrap().clone().expect("dispatched");
            child.await?;
            Ok::<_, bubus::Error>(String::from("parent"))
        }
    });

    let child = bus.dispatch(ChildEvent {}).unwrap();
    within_real(started.notified()).await;
    *slot.lock().unwrap() = Some(child.to_any());
    let parent = bus.dispatch(ParentEvent {}).unwrap();
    let waiting = tokio::spawn(child.clone().into_future());
    tokio::task::yield_now().await;
    assert!(!child.is_complete() && !parent.is_complete());

    release.notify_one();
    within_real(waiting).await.unwrap().unwrap();
    assert_eq!(within_real(parent.event_result()).await.unwrap(), "parent");
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(child.event_results().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_same_event_type_on_separate_buses_stays_isolated_without_forwarding() {
    let bus_a = EventBus::new("QueueJumpIsolatedA");
    let bus_b = EventBus::new("QueueJumpIsolatedB");
    let log = Recorder::new();
    on_tracked::<ChildEvent>(&bus_a, &[], &log, "a_shared", 2, HandlerOptions::new());
    on_tracked::<ChildEvent>(&bus_b, &[], &log, "b_shared", 2, HandlerOptions::new());
    on_tracked::<SiblingEvent>(&bus_a, &[], &log, "a_sibling", 1, HandlerOptions::new());
    let a = bus_a.clone();
    bus_a.on(move |_: EventHandle<ParentEvent>| {
        let a = a.clone();
        async move {
            a.dispatch(SiblingEvent {})?;
            a.dispatch(ChildEvent {})?.await?;
            Ok::<_, bubus::Error>(String::new())
        }
    });

    within_real(bus_a.dispatch(ParentEvent {}).unwrap())
        .await
        .unwrap();
    assert!(within_real(bus_a.wait_until_idle(None)).await);
    assert!(within_real(bus_b.wait_until_idle(None)).await);
    assert_eq!(
        log.entries(),
        [
            "a_shared_start",
            "a_shared_end",
            "a_sibling_start",
            "a_sibling_end"
        ]
    );
    assert!(bus_b.event_history().is_empty());
}

// ---------------------------------------------------------------------------------------------
// E/F. FIFO under forwarding, bus context
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn forwarded_events_keep_fifo_order_on_the_target_bus() {
    let bus_a = EventBus::new("ForwardOrderA");
    let bus_b = EventBus::new("ForwardOrderB");
    let (log_a, log_b) = (Recorder::new(), Recorder::new());
    let (b, l) = (bus_b.clone(), log_a.clone());
    bus_a.on(move |e: EventHandle<OrderedEvent>| {
        let (b, l) = (b.clone(), l.clone());
        async move {
            l.push(e.order);
            b.dispatch(&e)?;
            tokio::time::sleep(ms(2)).await;
            Ok::<_, bubus::Error>(String::new())
        }
    });
    let (id_b, l) = (bus_b.id(), log_b.clone());
    bus_b.on(move |e: EventHandle<OrderedEvent>| {
        let l = l.clone();
        async move {
            // At most this very handler is in flight for the event on bus B.
            let in_flight = e
                .event_results()
                .iter()
                .filter(|r| {
                    r.eventbus_id == id_b
                        && !matches!(r.status, ResultStatus::Completed | ResultStatus::Error)
                })
                .count();
            l.push(format!("{}:{in_flight}", e.order));
            tokio::time::sleep(ms(1)).await;
            String::new()
        }
    });

    for order in 0..5 {
        bus_a
            .dispatch(OrderedEvent {
                order,
                source: String::new(),
            })
            .unwrap();
    }
    assert!(within_real(bus_a.wait_until_idle(None)).await);
    assert!(within_real(bus_b.wait_until_idle(None)).await);

    assert_eq!(log_a.entries(), ["0", "1", "2", "3", "4"]);
    assert_eq!(log_b.entries(), ["0:1", "1:1", "2:1", "3:1", "4:1"]);
    let history = bus_b.event_history();
    let history_orders: Vec<usize> = history
        .iter()
        .map(|e| e.downcast::<OrderedEvent>().unwrap().order)
        .collect();
    assert_eq!(history_orders, [0, 1, 2, 3, 4]);
    for event in &history {
        let results = event.event_results();
        assert_eq!(results.len(), 2, "one result per bus");
        assert_eq!(
            results
                .iter()
                .filter(|r| r.eventbus_id == bus_b.id())
                .count(),
            1
        );
        assert!(results.iter().all(|r| r.status == ResultStatus::Completed));
        assert_eq!(event.event_path(), [bus_a.label(), bus_b.label()]);
    }
}

#[tokio::test(start_paused = true)]
async fn forwarded_events_keep_fifo_order_across_chained_buses() {
    let bus_a = EventBus::new("ForwardChainA");
    let bus_b = EventBus::new("ForwardChainB");
    let bus_c = EventBus::new("ForwardChainC");
    let log = Recorder::new();
    bus_b.on(|_: EventHandle<OrderedEvent>| async {
        tokio::time::sleep(ms(2)).await;
        String::new()
    });
    let l = log.clone();
    bus_c.on(move |e: EventHandle<OrderedEvent>| {
        let l = l.clone();
        async move {
            l.push(e.order);
            tokio::time::sleep(ms(1)).await;
            String::new()
        }
    });
    let target = bus_b.clone();
    bus_a.on(move |e: AnyEvent| target.dispatch(e));
    let target = bus_c.clone();
    bus_b.on(move |e: AnyEvent| target.dispatch(e));

    for order in 0..6 {
        bus_a
            .dispatch(OrderedEvent {
                order,
                source: String::new(),
            })
            .unwrap();
    }
    for bus in [&bus_a, &bus_b, &bus_c] {
        assert!(within_real(bus.wait_until_idle(None)).await);
    }
    assert_eq!(log.entries(), ["0", "1", "2", "3", "4", "5"]);
}

#[tokio::test(start_paused = true)]
async fn forwarding_does_not_change_the_bus_of_the_running_handler() {
    let bus_a = EventBus::new("ContextA");
    let bus_b = EventBus::new("ContextB");
    let seen = Recorder::new();
    let (b, s) = (bus_b.clone(), seen.clone());
    let handler_a = bus_a.on(move |e: EventHandle<ParentEvent>| {
        let (b, s) = (b.clone(), s.clone());
        async move {
            b.dispatch(&e)?;
            // Forwarding to B changes neither the current bus nor the event's bus here.
            s.push(format!(
                "a current={}",
                bubus::bus::current_bus().unwrap().label()
            ));
            s.push(format!("a event_bus={}", e.event_bus().unwrap().label()));
            e.event_bus().unwrap().dispatch(ChildEvent {})?;
            Ok::<_, bubus::Error>(String::from("a"))
        }
    });
    let s = seen.clone();
    let handler_b = bus_b.on(move |e: EventHandle<ParentEvent>| {
        let s = s.clone();
        async move {
            s.push(format!(
                "b current={}",
                bubus::bus::current_bus().unwrap().label()
            ));
            s.push(format!("b event_bus={}", e.event_bus().unwrap().label()));
            e.event_bus().unwrap().dispatch(ChildEvent {})?;
            Ok::<_, bubus::Error>(String::from("b"))
        }
    });
    bus_a.on(|_: EventHandle<ChildEvent>| String::from("child on a"));
    bus_b.on(|_: EventHandle<ChildEvent>| String::from("child on b"));

    let parent = within_real(bus_a.dispatch(ParentEvent {}).unwrap())
        .await
        .unwrap();
    assert!(
        parent.event_errors().is_empty(),
        "{:?}",
        parent.event_errors()
    );
    let (a, b) = (bus_a.label(), bus_b.label());
    assert_eq!(
        seen.entries(),
        [
            format!("a current={a}"),
            format!("a event_bus={a}"),
            format!("b current={b}"),
            format!("b event_bus={b}"),
        ]
    );
    assert_eq!(parent.event_path(), [a, b]);

    // Each child: parented to the event, attributed to the handler (and bus) that sent it.
    let children = parent.event_children();
    assert_eq!(children.len(), 2);
    let results = parent.event_results();
    for (child, handler, bus) in [
        (&children[0], &handler_a, &bus_a),
        (&children[1], &handler_b, &bus_b),
    ] {
        assert_eq!(child.event_parent_id(), Some(parent.event_id()));
        assert_eq!(
            child.event_emitted_by_handler_id().as_ref(),
            Some(handler.id())
        );
        assert_eq!(child.event_path(), [bus.label()]);
        let result = results
            .iter()
            .find(|r| &r.handler_id == handler.id())
            .unwrap();
        assert_eq!(result.eventbus_id, bus.id());
        assert_eq!(result.event_children, [child.event_id()]);
    }
}

// ---------------------------------------------------------------------------------------------
// G/H. Parent/child and history under concurrency
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_of_concurrent_handlers_are_linked_to_the_handler_that_dispatched_them() {
    const PARENTS: usize = 8;
    const HANDLERS: usize = 3;
    const CHILDREN: usize = 4;
    let bus = EventBus::builder("ConcurrentChildrenBus")
        .event_concurrency(EventConcurrency::Parallel)
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .max_history_size(None)
        .build();
    bus.on(|_: EventHandle<ChildEvent>| async {
        tokio::task::yield_now().await;
        String::from("child")
    });
    let mut handlers = Vec::new();
    for i in 0..HANDLERS {
        let b = bus.clone();
        handlers.push(bus.on_with(
            move |_: EventHandle<ParentEvent>| {
                let b = b.clone();
                async move {
                    for _ in 0..CHILDREN {
                        b.dispatch(ChildEvent {})?;
                        tokio::task::yield_now().await;
                    }
                    Ok::<_, bubus::Error>(String::new())
                }
            },
            HandlerOptions::new().name(format!("dispatcher_{i}")),
        ));
    }

    let parents: Vec<_> = (0..PARENTS)
        .map(|_| bus.dispatch(ParentEvent {}).unwrap())
        .collect();
    for parent in &parents {
        within_real(parent.clone()).await.unwrap();
    }
    assert!(within_real(bus.wait_until_idle(None)).await);

    for parent in &parents {
        let children = parent.event_children();
        assert_eq!(children.len(), HANDLERS * CHILDREN);
        assert!(children.iter().all(AnyEvent::is_complete));
        for result in parent.event_results() {
            assert_eq!(
                result.event_children.len(),
                CHILDREN,
                "{}",
                result.handler_name
            );
            for id in &result.event_children {
                let child = children.iter().find(|c| c.event_id() == *id).unwrap();
                assert_eq!(
                    child.event_emitted_by_handler_id(),
                    Some(result.handler_id.clone())
                );
                assert_eq!(child.event_parent_id(), Some(parent.event_id()));
                assert!(bus.event_is_child_of(child, parent));
                assert!(bus.event_is_parent_of(parent, child));
            }
        }
    }
    // Never linked to a parent that did not dispatch it.
    let stranger = &parents[1].event_children()[0];
    assert!(!bus.event_is_child_of(stranger, &parents[0]));
    // `find` with `child_of` picks among that parent's own children only.
    for parent in &parents {
        let found = within_real(bus.find::<ChildEvent>().child_of(parent))
            .await
            .expect("a child of this parent");
        assert_eq!(found.event_parent_id(), Some(parent.event_id()));
    }
}

#[tokio::test(start_paused = true)]
async fn the_pending_bus_count_returns_to_zero() {
    let buses: Vec<EventBus> = (0..3)
        .map(|i| EventBus::new(format!("PendingCount{i}")))
        .collect();
    for bus in &buses {
        bus.on(|_: EventHandle<WorkEvent>| async {
            tokio::time::sleep(ms(5)).await;
            String::new()
        });
    }
    let event = EventHandle::new(WorkEvent {});
    for bus in &buses {
        bus.dispatch(&event).unwrap();
    }
    assert_eq!(event.event_pending_bus_count(), 3);
    let event = within_real(event).await.unwrap();
    assert_eq!(event.event_pending_bus_count(), 0);
    assert_eq!(event.event_results().len(), 3);

    let nothing = buses[0].dispatch(OtherEvent {}).unwrap();
    let nothing = within_real(nothing).await.unwrap();
    assert_eq!(nothing.event_pending_bus_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn find_in_the_past_returns_the_most_recent_match_of_any_status_unless_told_otherwise() {
    let bus = EventBus::new("FindPastBus");
    let other = EventBus::new("FindPastOtherBus");
    let release = Arc::new(Notify::new());
    let r = Arc::clone(&release);
    bus.on(move |e: EventHandle<OrderedEvent>| {
        let r = Arc::clone(&r);
        async move {
            if e.order == 2 {
                r.notified().await;
            }
            String::new()
        }
    });

    within_real(
        bus.dispatch(OrderedEvent {
            order: 1,
            source: String::new(),
        })
        .unwrap(),
    )
    .await
    .unwrap();
    let found = within_real(bus.find::<OrderedEvent>()).await.unwrap();
    assert_eq!(
        (found.order, found.event_status()),
        (1, EventStatus::Completed)
    );
    assert!(
        within_real(other.find::<OrderedEvent>()).await.is_none(),
        "bus-scoped"
    );

    // A newer event still in flight is the most recent match ...
    let in_flight = bus
        .dispatch(OrderedEvent {
            order: 2,
            source: String::new(),
        })
        .unwrap();
    tokio::task::yield_now().await;
    let found = within_real(bus.find::<OrderedEvent>()).await.unwrap();
    assert_eq!(found.order, 2);
    assert_ne!(found.event_status(), EventStatus::Completed);
    // ... unless completion is required.
    let completed = within_real(
        bus.find::<OrderedEvent>()
            .field("event_status", "completed"),
    )
    .await
    .unwrap();
    assert_eq!(completed.order, 1);

    release.notify_one();
    let done = within_real(found).await.unwrap();
    assert_eq!(done.event_status(), EventStatus::Completed);
    assert_eq!(done.event_id(), in_flight.event_id());
}

#[tokio::test(start_paused = true)]
async fn find_in_the_future_resolves_with_an_event_forwarded_from_another_bus() {
    let bus_a = EventBus::new("FindFutureForwardA");
    let bus_b = EventBus::new("FindFutureForwardB");
    let target = bus_b.clone();
    bus_a.on(move |e: AnyEvent| target.dispatch(e));
    bus_b.on(|_: EventHandle<WorkEvent>| async {
        tokio::time::sleep(ms(50)).await;
        String::from("done on b")
    });

    let waiting = bus_b
        .find::<WorkEvent>()
        .no_past()
        .future_within(Duration::from_secs(1))
        .into_future();
    let start = Instant::now();
    let dispatched = bus_a.dispatch(WorkEvent {}).unwrap();
    let found = within_real(waiting)
        .await
        .expect("seen when forwarded to B");
    assert_eq!(found.event_id(), dispatched.event_id());
    let done = within_real(found).await.unwrap();
    assert_eq!(start.elapsed(), ms(50));
    assert_eq!(done.event_result().await.unwrap(), "done on b");
}

#[tokio::test(start_paused = true)]
async fn history_views_never_report_an_in_flight_event_as_completed() {
    let bus = EventBus::new("HistoryViewsBus");
    let release = Arc::new(Notify::new());
    let r = Arc::clone(&release);
    bus.on(move |e: EventHandle<OrderedEvent>| {
        let r = Arc::clone(&r);
        async move {
            if e.order == 2 {
                r.notified().await;
            }
            String::new()
        }
    });
    let events: Vec<_> = (0..3)
        .map(|order| {
            bus.dispatch(OrderedEvent {
                order,
                source: String::new(),
            })
            .unwrap()
        })
        .collect();
    within_real(events[1].clone()).await.unwrap();
    tokio::task::yield_now().await;

    let ids = |list: Vec<AnyEvent>| list.iter().map(AnyEvent::event_id).collect::<Vec<_>>();
    assert_eq!(
        ids(bus.events_completed()),
        [events[0].event_id(), events[1].event_id()]
    );
    assert_eq!(ids(bus.events_started()), [events[2].event_id()]);
    assert!(bus.events_completed().iter().all(AnyEvent::is_complete));

    release.notify_one();
    within_real(events[2].clone()).await.unwrap();
    assert_eq!(bus.events_completed().len(), 3);
    assert!(bus.events_started().is_empty());
}

#[tokio::test(start_paused = true)]
async fn awaiting_a_forwarded_event_resolves_when_the_other_bus_is_done() {
    let bus_a = EventBus::new("FindFutureA");
    let bus_b = EventBus::new("FindFutureB");
    let target = bus_b.clone();
    bus_a.on(move |e: AnyEvent| target.dispatch(e));
    bus_b.on(|_: EventHandle<WorkEvent>| async {
        tokio::time::sleep(ms(50)).await;
        String::from("done on b")
    });

    let start = Instant::now();
    let event = within_real(bus_a.dispatch(WorkEvent {}).unwrap())
        .await
        .unwrap();
    assert_eq!(start.elapsed(), ms(50));
    assert_eq!(event.event_status(), EventStatus::Completed);
    assert_eq!(event.event_result().await.unwrap(), "done on b");
}

// ---------------------------------------------------------------------------------------------
// I. Timeouts and cancellation
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_parent_timeout_cancels_the_child_handlers_on_every_bus_with_attribution() {
    let bus_a = EventBus::new("CancelAttributionA");
    let bus_b = EventBus::new("CancelAttributionB");
    let log = Recorder::new();
    on_tracked::<ChildEvent>(&bus_a, &[], &log, "child_on_a", 5, HandlerOptions::new());
    on_tracked::<ChildEvent>(&bus_b, &[], &log, "child_on_b", 5, HandlerOptions::new());
    // B is busy, so the forwarded child waits in its queue there too.
    on_tracked::<BlockerEvent>(&bus_b, &[], &log, "blocker", 100, HandlerOptions::new());
    let (a, b) = (bus_a.clone(), bus_b.clone());
    bus_a.on_with(
        move |_: EventHandle<ParentEvent>| {
            let (a, b) = (a.clone(), b.clone());
            async move {
                let child = a.dispatch(ChildEvent {})?;
                b.dispatch(&child)?;
                tokio::time::sleep(ms(50)).await;
                Ok::<_, bubus::Error>(String::new())
            }
        },
        HandlerOptions::new().name("parent"),
    );

    bus_b.dispatch(BlockerEvent {}).unwrap();
    let parent = EventHandle::new(ParentEvent {}).with_event_timeout(Duration::from_millis(20));
    let start = Instant::now();
    let parent = within_real(bus_a.dispatch(parent).unwrap()).await.unwrap();
    // The cancelled child was taken off both queues at once: nothing waited for bus B's
    // blocker to finish.
    assert_eq!(start.elapsed(), ms(20));
    assert!(parent.event_children()[0].is_complete());
    assert!(within_real(bus_b.wait_until_idle(None)).await);

    let child = &parent.event_children()[0];
    let results = child.event_results();
    assert_eq!(results.len(), 2);
    for (result, bus, name) in [
        (&results[0], &bus_a, "child_on_a"),
        (&results[1], &bus_b, "child_on_b"),
    ] {
        assert_eq!(result.handler_name, name);
        assert_eq!(result.eventbus_id, bus.id());
        assert_eq!(
            result.error.as_ref().map(|e| e.kind()),
            Some(HandlerErrorKind::Cancelled)
        );
    }
    assert!(
        log.position("child_on_a_start").is_none() && log.position("child_on_b_start").is_none()
    );
    assert!(
        log.position("blocker_end").is_some(),
        "B's own event was not touched"
    );
}

#[tokio::test(start_paused = true)]
async fn a_forwarded_event_timeout_leaves_nothing_waiting() {
    let bus_a = EventBus::new("TimeoutForwardLockA");
    let bus_b = EventBus::new("TimeoutForwardLockB");
    let target = bus_b.clone();
    bus_a.on(move |e: AnyEvent| target.dispatch(e));
    let log = Recorder::new();
    on_tracked::<WorkEvent>(&bus_b, &[], &log, "slow", 50, HandlerOptions::new());
    on_tracked::<OtherEvent>(&bus_b, &[], &log, "next", 0, HandlerOptions::new());

    let event = EventHandle::new(WorkEvent {}).with_event_timeout(Duration::from_millis(10));
    let event = within_real(bus_a.dispatch(event).unwrap()).await.unwrap();
    let slow = event
        .event_results()
        .into_iter()
        .find(|r| r.handler_name == "slow")
        .unwrap();
    assert_eq!(
        slow.error.map(|e| e.kind()),
        Some(HandlerErrorKind::Aborted)
    );
    assert_eq!(event.event_pending_bus_count(), 0);
    assert!(within_real(bus_a.wait_until_idle(None)).await);
    assert!(within_real(bus_b.wait_until_idle(None)).await);
    // Both buses go on.
    within_real(bus_a.dispatch(OtherEvent {}).unwrap())
        .await
        .unwrap();
    assert!(log.position("next_end").is_some());
}

// ---------------------------------------------------------------------------------------------
// J. Result validation
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn result_types_are_enforced_under_parallel_handlers() {
    let bus = EventBus::builder("SchemaParallelBus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    bus.on_with(
        |_: EventHandle<CountEvent>| async {
            tokio::time::sleep(ms(5)).await;
            7_u32
        },
        HandlerOptions::new().name("typed"),
    );
    bus.on_with(
        |_: AnyEvent| async {
            tokio::time::sleep(ms(1)).await;
            json!("not a number")
        },
        HandlerOptions::new().name("wrong_type"),
    );
    bus.on_with(
        |_: AnyEvent| async { json!(8) },
        HandlerOptions::new().name("json_number"),
    );

    let event = within_real(bus.dispatch(CountEvent {}).unwrap())
        .await
        .unwrap();
    let results = event.event_results();
    let wrong = results
        .iter()
        .find(|r| r.handler_name == "wrong_type")
        .unwrap();
    assert_eq!(wrong.status, ResultStatus::Error);
    let error = wrong.error.as_ref().unwrap();
    assert_eq!(error.kind(), HandlerErrorKind::ResultSchema);
    assert_eq!(error.error_type(), "EventHandlerResultSchemaError");
    assert_eq!(
        event.results().ignore_errors().list().await.unwrap(),
        [7, 8]
    );
    let Err(ResultError::Handler(error)) = event.event_result().await else {
        panic!("the raising helper reports the schema error");
    };
    assert_eq!(error.kind(), HandlerErrorKind::ResultSchema);
}

#[tokio::test(start_paused = true)]
async fn a_timeout_is_never_overwritten_by_a_late_result() {
    // The handler would return a value of the wrong type after its timeout: the timeout is what
    // stays recorded (its future was dropped, so no value or schema error ever arrives).
    let bus = EventBus::new("TimeoutBeforeSchemaBus");
    let returned = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&returned);
    bus.on_with(
        move |_: AnyEvent| {
            let r = Arc::clone(&r);
            async move {
                tokio::time::sleep(ms(50)).await;
                r.fetch_add(1, Ordering::SeqCst);
                json!("not a number")
            }
        },
        HandlerOptions::new()
            .name("late_and_wrong")
            .timeout(Some(Duration::from_millis(10))),
    );

    let event = within_real(bus.dispatch(CountEvent {}).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(ms(100)).await;
    let result = &event.event_results()[0];
    assert!(result.is_timeout(), "{result:?}");
    assert_eq!(returned.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------------------------
// K/L. Idle, completion, re-entrancy
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_until_idle_never_returns_with_work_in_flight() {
    let bus_1 = EventBus::builder("IdleBus1").max_history_size(None).build();
    let bus_2 = EventBus::builder("IdleBus2").max_history_size(None).build();
    let target = bus_2.clone();
    bus_1.on(move |e: AnyEvent| target.dispatch(e));
    for bus in [&bus_1, &bus_2] {
        bus.on(|_: EventHandle<ChildEvent>| async {
            tokio::task::yield_now().await;
            String::from("child")
        });
    }
    let b = bus_1.clone();
    bus_1.on(move |_: EventHandle<ParentEvent>| {
        let b = b.clone();
        async move {
            b.dispatch(ChildEvent {})?; // queued
            b.dispatch(ChildEvent {})?.await?; // awaited
            Ok::<_, bubus::Error>(String::new())
        }
    });

    for _ in 0..20 {
        bus_1.dispatch(ParentEvent {}).unwrap();
    }
    assert!(within_real(bus_1.wait_until_idle(None)).await);
    assert_eq!(bus_1.queue_len(), 0);
    let id_1 = bus_1.id();
    for event in bus_1.event_history() {
        // Everything bus 1 had to do for it is done (bus 2 may still be busy).
        assert!(
            event
                .event_results()
                .iter()
                .filter(|r| r.eventbus_id == id_1)
                .all(|r| matches!(r.status, ResultStatus::Completed | ResultStatus::Error)),
            "{event:?}"
        );
    }
    assert!(within_real(bus_2.wait_until_idle(None)).await);
    assert_eq!(bus_1.event_history().len(), 60);
    for event in bus_1.event_history() {
        assert!(event.is_complete(), "{event:?}");
        assert_eq!(event.event_pending_bus_count(), 0);
    }
}

#[tokio::test(start_paused = true)]
async fn awaiting_an_event_waits_for_its_queued_children() {
    let bus = EventBus::new("DoneWaitsForChildrenBus");
    let log = Recorder::new();
    on_tracked::<OtherEvent>(&bus, &[], &log, "other", 10, HandlerOptions::new());
    on_tracked::<ChildEvent>(&bus, &[], &log, "child", 10, HandlerOptions::new());
    let b = bus.clone();
    bus.on(move |_: EventHandle<ParentEvent>| {
        let b = b.clone();
        async move {
            b.dispatch(ChildEvent {})?; // queued behind `other`
            Ok::<_, bubus::Error>(String::new())
        }
    });

    let parent = bus.dispatch(ParentEvent {}).unwrap();
    bus.dispatch(OtherEvent {}).unwrap();
    let start = Instant::now();
    let parent = within_real(parent).await.unwrap();
    assert_eq!(start.elapsed(), ms(20), "other, then the child");
    assert!(parent.event_children().iter().all(AnyEvent::is_complete));
    assert_eq!(
        log.entries(),
        ["other_start", "other_end", "child_start", "child_end"]
    );
}

#[tokio::test(start_paused = true)]
async fn many_nested_awaits_never_deadlock_the_run_loops() {
    let domain = LockDomain::new();
    for mode in [
        EventConcurrency::GlobalSerial,
        EventConcurrency::BusSerial,
        EventConcurrency::Parallel,
    ] {
        let bus_1 = EventBus::builder("NestedAwaits1")
            .event_concurrency(mode)
            .lock_domain(domain.clone())
            .max_history_size(None)
            .build();
        let bus_2 = EventBus::builder("NestedAwaits2")
            .event_concurrency(mode)
            .lock_domain(domain.clone())
            .max_history_size(None)
            .build();
        let target = bus_2.clone();
        bus_1.on(move |e: AnyEvent| target.dispatch(e));
        let b = bus_1.clone();
        bus_1.on(move |_: EventHandle<ParentEvent>| {
            let b = b.clone();
            async move {
                let child = b.dispatch(ChildEvent {})?.await?;
                Ok::<_, bubus::Error>(child.to_any().event_results().len().to_string())
            }
        });
        let b = bus_1.clone();
        bus_1.on(move |_: EventHandle<ChildEvent>| {
            let b = b.clone();
            async move {
                b.dispatch(GrandchildEvent {})?.await?;
                tokio::time::sleep(ms(1)).await;
                Ok::<_, bubus::Error>(String::from("child"))
            }
        });
        bus_2.on(|_: EventHandle<GrandchildEvent>| async {
            tokio::time::sleep(ms(1)).await;
            String::from("grandchild")
        });

        let parents: Vec<_> = (0..30)
            .map(|_| bus_1.dispatch(ParentEvent {}).unwrap())
            .collect();
        for parent in parents {
            let parent = within_real(parent).await.unwrap();
            assert!(
                parent.event_errors().is_empty(),
                "{mode:?}: {:?}",
                parent.event_errors()
            );
        }
        assert!(within_real(bus_1.wait_until_idle(None)).await);
        assert!(within_real(bus_2.wait_until_idle(None)).await);
    }
}

#[tokio::test(start_paused = true)]
async fn nested_awaited_children_do_not_starve_sibling_handlers() {
    let bus = EventBus::new("NestedSerialOrderBus");
    let log = Recorder::new();
    on_tracked::<GrandchildEvent>(&bus, &[], &log, "grandchild", 5, HandlerOptions::new());
    let (b, l) = (bus.clone(), log.clone());
    bus.on(move |_: EventHandle<ChildEvent>| {
        let (b, l) = (b.clone(), l.clone());
        async move {
            l.push("child_start");
            b.dispatch(GrandchildEvent {})?.await?;
            l.push("child_end");
            Ok::<_, bubus::Error>(String::new())
        }
    });
    let (b, l) = (bus.clone(), log.clone());
    bus.on(move |_: EventHandle<ParentEvent>| {
        let (b, l) = (b.clone(), l.clone());
        async move {
            l.push("h1_start");
            b.dispatch(ChildEvent {})?.await?;
            l.push("h1_end");
            Ok::<_, bubus::Error>(String::new())
        }
    });
    on_tracked::<ParentEvent>(&bus, &[], &log, "h2", 1, HandlerOptions::new());

    within_real(bus.dispatch(ParentEvent {}).unwrap())
        .await
        .unwrap();
    // Python's strict serial order (the intended one): h2 starts only after h1 is done.
    assert_eq!(
        log.entries(),
        [
            "h1_start",
            "child_start",
            "grandchild_start",
            "grandchild_end",
            "child_end",
            "h1_end",
            "h2_start",
            "h2_end",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_event_without_handlers_completes_at_once() {
    let bus = EventBus::new("NoHandlerBus");
    let event = within_real(bus.dispatch(WorkEvent {}).unwrap())
        .await
        .unwrap();
    assert_eq!(event.event_status(), EventStatus::Completed);
    assert_eq!(event.event_pending_bus_count(), 0);
    assert!(event.event_results().is_empty());
    assert!(within_real(bus.wait_until_idle(None)).await);
}

// ---------------------------------------------------------------------------------------------
// M. Edge cases
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn handlers_of_one_type_with_different_options_do_not_collide() {
    let bus = EventBus::builder("SameHandlerTwiceBus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    async fn slow(_: EventHandle<WorkEvent>) -> String {
        tokio::time::sleep(ms(30)).await;
        String::from("slow")
    }
    let tight = bus.on_with(
        slow,
        HandlerOptions::new().timeout(Some(Duration::from_millis(10))),
    );
    let loose = bus.on_with(
        slow,
        HandlerOptions::new().timeout(Some(Duration::from_secs(1))),
    );
    let serial = bus.on_with(
        slow,
        HandlerOptions::new().concurrency(HandlerConcurrency::Serial),
    );
    assert_ne!(tight.id(), loose.id());
    assert_ne!(loose.id(), serial.id());
    assert_eq!(
        tight.handler_timeout(),
        Some(Some(Duration::from_millis(10)))
    );
    assert_eq!(loose.handler_timeout(), Some(Some(Duration::from_secs(1))));

    let event = within_real(bus.dispatch(WorkEvent {}).unwrap())
        .await
        .unwrap();
    let results = event.event_results();
    assert_eq!(results.len(), 3);
    let by_id = |h: &bubus::handler::EventHandler| {
        results
            .iter()
            .find(|r| &r.handler_id == h.id())
            .unwrap()
            .clone()
    };
    assert!(by_id(&tight).is_timeout());
    assert_eq!(by_id(&loose).result.as_deref(), Some("slow"));
    assert_eq!(by_id(&serial).result.as_deref(), Some("slow"));
}

#[tokio::test(start_paused = true)]
async fn handlers_failing_before_their_first_await_are_recorded_and_nothing_leaks() {
    let bus = EventBus::new("EarlyFailureBus");
    bus.on_with(
        |_: EventHandle<WorkEvent>| -> Result<String, std::io::Error> {
            Err(std::io::Error::other("sync failure"))
        },
        HandlerOptions::new().name("sync_err"),
    );
    bus.on_with(
        |_: EventHandle<WorkEvent>| async { Err::<String, _>(std::io::Error::other("rejected")) },
        HandlerOptions::new().name("async_err"),
    );
    bus.on_with(
        |_: EventHandle<WorkEvent>| -> String { panic!("thrown synchronously") },
        HandlerOptions::new().name("sync_panic"),
    );
    bus.on_with(
        |_: EventHandle<WorkEvent>| String::from("ok"),
        HandlerOptions::new().name("ok"),
    );

    for _ in 0..3 {
        let event = within_real(bus.dispatch(WorkEvent {}).unwrap())
            .await
            .unwrap();
        let results = event.event_results();
        let messages: Vec<_> = results
            .iter()
            .map(|r| r.error.as_ref().map(|e| (e.kind(), e.message().to_owned())))
            .collect();
        assert_eq!(
            messages,
            [
                Some((HandlerErrorKind::Failed, String::from("sync failure"))),
                Some((HandlerErrorKind::Failed, String::from("rejected"))),
                Some((
                    HandlerErrorKind::Panicked,
                    String::from("thrown synchronously")
                )),
                None,
            ]
        );
        assert_eq!(results[3].result.as_deref(), Some("ok"));
    }
    assert!(within_real(bus.wait_until_idle(None)).await);
    assert_eq!(bus.queue_len(), 0);
    assert!(bus.events_started().is_empty() && bus.events_pending().is_empty());
}

#[test]
fn invalid_concurrency_values_are_rejected() {
    assert!(serde_json::from_value::<EventConcurrency>(json!("sometimes")).is_err());
    assert!(serde_json::from_value::<HandlerConcurrency>(json!("bus-serial")).is_err());
    assert!(
        serde_json::from_value::<EventConfig>(json!({"event_concurrency": "globally"})).is_err()
    );
    assert_eq!(
        serde_json::from_value::<EventConcurrency>(json!("global-serial")).unwrap(),
        EventConcurrency::GlobalSerial
    );
    // The derive rejects them at compile time (tests/ui/fail/derive_bad_attributes.rs).
}

#[tokio::test(start_paused = true)]
async fn awaiting_an_event_never_dispatched_fails_at_once() {
    let event = EventHandle::new(WorkEvent {});
    assert!(matches!(
        event.clone().await,
        Err(WaitError::NotDispatched { .. })
    ));
    assert!(matches!(
        event.event_result().await,
        Err(ResultError::Wait(WaitError::NotDispatched { .. }))
    ));
}
