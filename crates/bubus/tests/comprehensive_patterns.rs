//! Ports `tests/test_comprehensive_patterns.py` and `bubus-ts/tests/comprehensive_patterns.test.ts`:
//! queue-jumping awaited children without overshoot, dispatch-many-await-one, deep nesting,
//! several awaits of one event, awaiting completed events, independent bus queues, forwarding,
//! and the serial-handler order while a handler awaits a child (semantics §1.6).
//!
//! Where this bus deliberately differs from the reference, the test checks this bus's behaviour
//! and says so: every await queue-jumps, and awaiting an ancestor fails fast instead of hanging.

use bubus_test_support::string_events;
use bubus_test_support::time::within_real;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use bubus::{AnyEvent, Event, EventBus, EventHandle, EventStatus, WaitError, result::ResultStatus};
use bubus_test_support::Recorder;
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

string_events!(
    ParentEvent,
    ImmediateChildEvent,
    QueuedChildEvent,
    RootEvent,
    Event1,
    Event2,
    Event3,
    Event4,
    ChildEvent,
    ChildA,
    ChildB,
    ChildC,
    Child1,
    Child2,
    SiblingEvent,
    TriggerEvent,
    SlowEvent,
);

/// Registers a handler for `E` that logs `{name}_start`, yields, logs `{name}_end`.
fn on_logged<E: Event<Result = String>>(bus: &EventBus, log: &Recorder, name: &'static str) {
    let log = log.clone();
    bus.on(move |_: EventHandle<E>| {
        let log = log.clone();
        async move {
            log.push(format!("{name}_start"));
            tokio::task::yield_now().await;
            log.push(format!("{name}_end"));
            format!("{name}_done")
        }
    });
}

/// Like [`on_logged`], but the handler sleeps `ms` (use with a paused clock).
fn on_sleeping<E: Event<Result = String>>(
    bus: &EventBus,
    log: &Recorder,
    name: &'static str,
    ms: u64,
) {
    let log = log.clone();
    bus.on(move |_: EventHandle<E>| {
        let log = log.clone();
        async move {
            log.push(format!("{name}_start"));
            tokio::time::sleep(Duration::from_millis(ms)).await;
            log.push(format!("{name}_end"));
            format!("{name}_done")
        }
    });
}

fn started_at(bus: &EventBus, event_type: &str) -> bubus::time::Timestamp {
    bus.event_history()
        .iter()
        .find(|e| e.event_type() == event_type)
        .and_then(|e| e.event_started_at())
        .unwrap_or_else(|| panic!("{event_type} never started"))
}

// ---------------------------------------------------------------------------------------------
// Forwarding, queued and awaited children
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_with_queued_and_awaited_children_keeps_order_and_lineage() {
    let bus1 = EventBus::new("bus1");
    let bus2 = EventBus::new("bus2");
    let log = Recorder::new();

    let l = log.clone();
    bus2.on(move |e: AnyEvent| {
        let short = e.event_type().trim_end_matches("Event");
        l.push(format!("bus2_handler_{short}"));
        json!("forwarded bus result")
    });
    let target = bus2.clone();
    bus1.on(move |e: AnyEvent| target.dispatch(e));

    let (l, inner, bus2_label) = (log.clone(), bus1.clone(), bus2.label().to_owned());
    bus1.on(move |event: EventHandle<ParentEvent>| {
        let (log, bus, bus2_label) = (l.clone(), inner.clone(), bus2_label.clone());
        async move {
            log.push("parent_start");
            // Not awaited: runs after the parent's handlers, in queue order.
            let queued = bus.dispatch(QueuedChildEvent {})?;
            assert_ne!(queued.event_status(), EventStatus::Completed);
            // Awaited: runs now, on bus1 and (forwarded) on bus2.
            let immediate = bus.dispatch(ImmediateChildEvent {})?.await?;
            assert_eq!(immediate.event_status(), EventStatus::Completed);
            assert!(immediate.event_path().contains(&bus2_label));
            assert_eq!(queued.event_parent_id(), Some(event.event_id()));
            assert_eq!(immediate.event_parent_id(), Some(event.event_id()));
            log.push("parent_end");
            Ok::<_, bubus::Error>(String::from("parent_done"))
        }
    });

    let parent = within_real(bus1.dispatch(ParentEvent {}).unwrap())
        .await
        .unwrap();
    assert!(bus1.wait_until_idle(None).await);
    assert!(bus2.wait_until_idle(None).await);

    for event in bus1.event_history() {
        for result in event.event_results() {
            assert!(
                result.error.is_none(),
                "{}: {:?}",
                event.label(),
                result.error
            );
        }
    }
    assert_eq!(
        log.entries(),
        [
            "parent_start",
            "bus2_handler_ImmediateChild",
            "parent_end",
            "bus2_handler_Parent",
            "bus2_handler_QueuedChild",
        ]
    );

    let children = parent.event_children();
    let types: Vec<&str> = children.iter().map(|c| c.event_type()).collect();
    assert_eq!(types, ["QueuedChildEvent", "ImmediateChildEvent"]);
    for child in &children {
        assert_eq!(child.event_parent_id(), Some(parent.event_id()));
        assert_eq!(child.event_path(), [bus1.label(), bus2.label()]);
    }
    // The awaited child's results: bus1's forwarder (the event itself), then bus2's handler.
    let immediate = &children[1];
    let results = immediate.event_results();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0].eventbus_name, "bus1");
    assert_eq!(results[0].forwarded_event_id, Some(immediate.event_id()));
    assert_eq!(results[1].eventbus_name, "bus2");
    assert_eq!(results[1].result, Some(json!("forwarded bus result")));
}

#[tokio::test(start_paused = true)]
async fn awaiting_a_forwarded_event_waits_for_the_target_bus_handlers() {
    let src = EventBus::new("ForwardWaitSrc");
    let dst = EventBus::new("ForwardWaitDst");
    let target = dst.clone();
    src.on(move |e: AnyEvent| target.dispatch(e));
    async fn target_handler(_: EventHandle<ChildEvent>) -> String {
        tokio::time::sleep(Duration::from_millis(50)).await;
        "target_done".into()
    }
    dst.on(target_handler);

    let start = Instant::now();
    let event = src.dispatch(ChildEvent {}).unwrap().await.unwrap();
    assert!(start.elapsed() >= Duration::from_millis(50));

    let results = event.event_results();
    assert!(results.iter().all(|r| r.status == ResultStatus::Completed));
    let target = results
        .iter()
        .find(|r| r.eventbus_name == "ForwardWaitDst")
        .expect("the target bus ran its handler before the await returned");
    assert!(target.handler_name.ends_with("::target_handler"));
    assert_eq!(event.event_result().await.unwrap(), "target_done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_runs_of_mixed_queued_and_awaited_children_have_no_races() {
    let bus1 = EventBus::new("bus1");
    let bus2 = EventBus::new("bus2");
    let log = Recorder::new();

    fn on_child<E: Event<Result = String>>(bus: &EventBus, log: &Recorder) {
        let log = log.clone();
        bus.on(move |e: EventHandle<E>| {
            let log = log.clone();
            async move {
                let label = e.event_path().last().cloned().unwrap_or_default();
                log.push(format!("child_{label}"));
                tokio::task::yield_now().await;
                format!("child_done_{label}")
            }
        });
    }

    let target = bus2.clone();
    bus1.on(move |e: AnyEvent| target.dispatch(e));
    for bus in [&bus1, &bus2] {
        on_child::<QueuedChildEvent>(bus, &log);
        on_child::<ImmediateChildEvent>(bus, &log);
    }
    let inner = bus1.clone();
    bus1.on(move |event: EventHandle<RootEvent>| {
        let bus = inner.clone();
        async move {
            let mut children = Vec::new();
            for _ in 0..3 {
                children.push(bus.dispatch(QueuedChildEvent {})?.to_any());
            }
            for _ in 0..3 {
                let child = bus.dispatch(ImmediateChildEvent {})?.await?;
                assert_eq!(child.event_status(), EventStatus::Completed);
                children.push(child.to_any());
            }
            assert!(
                children
                    .iter()
                    .all(|c| c.event_parent_id() == Some(event.event_id()))
            );
            Ok::<_, bubus::Error>(String::from("parent_done"))
        }
    });
    bus1.on_pattern("RootEvent", |_: AnyEvent| {});

    for run in 0..5 {
        log.clear();
        let root = within_real(bus1.dispatch(RootEvent {}).unwrap())
            .await
            .unwrap();
        assert!(bus1.wait_until_idle(None).await);
        assert!(bus2.wait_until_idle(None).await);

        assert!(
            root.event_errors().is_empty(),
            "run {run}: {:?}",
            root.event_errors()
        );
        for bus in [&bus1, &bus2] {
            let count = log
                .entries()
                .iter()
                .filter(|entry| **entry == format!("child_{}", bus.label()))
                .count();
            assert_eq!(count, 6, "run {run}: {} children on {bus}", count);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Queue-jump on one bus
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn awaited_child_jumps_the_queue_without_overshoot() {
    let bus = EventBus::new("TestBus");
    let log = Recorder::new();

    let (l, b) = (log.clone(), bus.clone());
    bus.on(move |_: EventHandle<Event1>| {
        let (log, bus) = (l.clone(), b.clone());
        async move {
            log.push("Event1_start");
            let child = bus.dispatch(ChildEvent {})?;
            log.push("Child_dispatched");
            child.await?;
            log.push("Child_await_returned");
            log.push("Event1_end");
            Ok::<_, bubus::Error>(String::from("event1_done"))
        }
    });
    on_logged::<Event2>(&bus, &log, "Event2");
    on_logged::<Event3>(&bus, &log, "Event3");
    on_logged::<ChildEvent>(&bus, &log, "Child");

    let event1 = bus.dispatch(Event1 {}).unwrap();
    let event2 = bus.dispatch(Event2 {}).unwrap();
    let event3 = bus.dispatch(Event3 {}).unwrap();
    event1.await.unwrap();
    assert!(bus.wait_until_idle(None).await);

    // The child ran inside Event1's handler; Event2 and Event3 only after it, in FIFO order.
    assert_eq!(
        log.entries(),
        [
            "Event1_start",
            "Child_dispatched",
            "Child_start",
            "Child_end",
            "Child_await_returned",
            "Event1_end",
            "Event2_start",
            "Event2_end",
            "Event3_start",
            "Event3_end",
        ]
    );
    assert!(event2.is_complete() && event3.is_complete());
    // History keeps dispatch order; start times show the execution order.
    let history: Vec<String> = bus
        .event_history()
        .iter()
        .map(|e| e.event_type().to_owned())
        .collect();
    assert_eq!(history, ["Event1", "Event2", "Event3", "ChildEvent"]);
    let child_started = started_at(&bus, "ChildEvent");
    assert!(child_started < started_at(&bus, "Event2"));
    assert!(child_started < started_at(&bus, "Event3"));
}

#[tokio::test]
async fn dispatching_several_children_and_awaiting_one_leaves_the_others_in_queue_order() {
    let bus = EventBus::new("MultiDispatchBus");
    let log = Recorder::new();

    let (l, b) = (log.clone(), bus.clone());
    bus.on(move |_: EventHandle<Event1>| {
        let (log, bus) = (l.clone(), b.clone());
        async move {
            log.push("Event1_start");
            bus.dispatch(ChildA {})?;
            log.push("ChildA_dispatched");
            let child_b = bus.dispatch(ChildB {})?;
            log.push("ChildB_dispatched");
            bus.dispatch(ChildC {})?;
            log.push("ChildC_dispatched");
            child_b.await?;
            log.push("ChildB_await_returned");
            log.push("Event1_end");
            Ok::<_, bubus::Error>(String::from("event1_done"))
        }
    });
    on_logged::<Event2>(&bus, &log, "Event2");
    on_logged::<Event3>(&bus, &log, "Event3");
    on_logged::<ChildA>(&bus, &log, "ChildA");
    on_logged::<ChildB>(&bus, &log, "ChildB");
    on_logged::<ChildC>(&bus, &log, "ChildC");

    let event1 = bus.dispatch(Event1 {}).unwrap();
    bus.dispatch(Event2 {}).unwrap();
    bus.dispatch(Event3 {}).unwrap();

    // Completion includes every descendant, so this also waits for ChildA and ChildC, which
    // were queued behind Event2 and Event3.
    let event1 = event1.await.unwrap();
    assert!(event1.event_children().iter().all(AnyEvent::is_complete));
    assert!(bus.wait_until_idle(None).await);

    assert_eq!(
        log.entries(),
        [
            "Event1_start",
            "ChildA_dispatched",
            "ChildB_dispatched",
            "ChildC_dispatched",
            "ChildB_start",
            "ChildB_end",
            "ChildB_await_returned",
            "Event1_end",
            "Event2_start",
            "Event2_end",
            "Event3_start",
            "Event3_end",
            "ChildA_start",
            "ChildA_end",
            "ChildC_start",
            "ChildC_end",
        ]
    );
}

#[tokio::test]
async fn deeply_nested_awaited_children_finish_before_the_next_queued_event() {
    let bus = EventBus::new("DeepNestedBus");
    let log = Recorder::new();

    fn on_awaiting<E: Event<Result = String>, C: Event + Default>(
        bus: &EventBus,
        log: &Recorder,
        name: &'static str,
    ) {
        let log = log.clone();
        bus.on(move |e: EventHandle<E>| {
            let log = log.clone();
            async move {
                log.push(format!("{name}_start"));
                // Dispatched through the bus the handler runs on.
                let child = e
                    .event_bus()
                    .expect("running on a bus")
                    .dispatch(C::default())?;
                child.await?;
                log.push(format!("{name}_end"));
                Ok::<_, bubus::Error>(format!("{name}_done"))
            }
        });
    }
    on_awaiting::<Event1, Child1>(&bus, &log, "Event1");
    on_awaiting::<Child1, Child2>(&bus, &log, "Child1");
    on_logged::<Child2>(&bus, &log, "Child2");
    on_logged::<Event2>(&bus, &log, "Event2");

    let event1 = bus.dispatch(Event1 {}).unwrap();
    bus.dispatch(Event2 {}).unwrap();
    event1.await.unwrap();
    assert!(bus.wait_until_idle(None).await);

    assert_eq!(
        log.entries(),
        [
            "Event1_start",
            "Child1_start",
            "Child2_start",
            "Child2_end",
            "Child1_end",
            "Event1_end",
            "Event2_start",
            "Event2_end",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn several_awaits_of_one_child_run_it_once() {
    let bus = EventBus::new("MultiAwaitBus");
    let log = Recorder::new();

    let (l, b) = (log.clone(), bus.clone());
    bus.on(move |_: EventHandle<Event1>| {
        let (log, bus) = (l.clone(), b.clone());
        async move {
            log.push("Event1_start");
            let child = bus.dispatch(ChildEvent {})?;
            let await_child = |name: &'static str| {
                let (child, log) = (child.clone(), log.clone());
                async move {
                    child.await?;
                    log.push(format!("{name}_completed"));
                    Ok::<_, WaitError>(())
                }
            };
            let (first, second) = tokio::join!(await_child("await1"), await_child("await2"));
            first?;
            second?;
            log.push("Both_awaits_completed");
            log.push("Event1_end");
            Ok::<_, bubus::Error>(String::from("event1_done"))
        }
    });
    on_logged::<Event2>(&bus, &log, "Event2");
    on_sleeping::<ChildEvent>(&bus, &log, "Child", 10);

    let event1 = bus.dispatch(Event1 {}).unwrap();
    bus.dispatch(Event2 {}).unwrap();
    let event1 = event1.await.unwrap();
    assert!(bus.wait_until_idle(None).await);

    log.assert_order(&[
        "Event1_start",
        "Child_start",
        "Child_end",
        "Both_awaits_completed",
        "Event1_end",
        "Event2_start",
    ]);
    log.assert_order(&["Child_end", "await1_completed", "Both_awaits_completed"]);
    log.assert_order(&["Child_end", "await2_completed", "Both_awaits_completed"]);
    let child_runs = log.entries().iter().filter(|e| *e == "Child_start").count();
    assert_eq!(child_runs, 1);
    let child = &event1.event_children()[0];
    assert_eq!(child.event_results().len(), 1, "no double run");
}

/// Awaits from tasks spawned by the handler (carrying its context with `in_current_handler`) on
/// other worker threads also queue-jump, and the child still runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaits_from_spawned_tasks_in_the_handler_context_run_the_child_once() {
    let bus = EventBus::new("SpawnedAwaitBus");
    let log = Recorder::new();

    let (l, b) = (log.clone(), bus.clone());
    bus.on(move |_: EventHandle<Event1>| {
        let (log, bus) = (l.clone(), b.clone());
        async move {
            log.push("Event1_start");
            let child = bus.dispatch(ChildEvent {})?;
            let waiters: Vec<_> = (0..4)
                .map(|_| tokio::spawn(bubus::bus::in_current_handler(child.clone().into_future())))
                .collect();
            for waiter in waiters {
                waiter.await.expect("waiter task")?;
            }
            log.push("Event1_end");
            Ok::<_, bubus::Error>(String::from("event1_done"))
        }
    });
    on_logged::<ChildEvent>(&bus, &log, "Child");
    on_logged::<Event2>(&bus, &log, "Event2");

    let event1 = bus.dispatch(Event1 {}).unwrap();
    bus.dispatch(Event2 {}).unwrap();
    let event1 = within_real(event1).await.unwrap();
    assert!(bus.wait_until_idle(None).await);

    log.assert_order(&[
        "Event1_start",
        "Child_start",
        "Child_end",
        "Event1_end",
        "Event2_start",
    ]);
    assert_eq!(
        log.entries().iter().filter(|e| *e == "Child_start").count(),
        1
    );
    assert_eq!(event1.event_children()[0].event_results().len(), 1);
}

#[tokio::test]
async fn awaiting_an_already_completed_event_returns_at_once_and_processes_nothing() {
    let bus = EventBus::new("AlreadyCompletedBus");
    let log = Recorder::new();
    on_logged::<Event1>(&bus, &log, "Event1");
    on_logged::<Event2>(&bus, &log, "Event2");

    let event1 = bus.dispatch(Event1 {}).unwrap().await.unwrap();
    assert_eq!(event1.event_status(), EventStatus::Completed);
    let event2 = bus.dispatch(Event2 {}).unwrap();

    let again = (&event1).await.unwrap();
    assert_eq!(again, event1);
    assert_eq!(
        event2.event_status(),
        EventStatus::Pending,
        "nothing was processed"
    );
    assert_eq!(log.entries(), ["Event1_start", "Event1_end"]);
    assert_eq!(event1.event_results().len(), 1, "not re-processed");

    event2.await.unwrap();
    assert_eq!(log.len(), 4);
}

// ---------------------------------------------------------------------------------------------
// Several buses
// ---------------------------------------------------------------------------------------------

/// Bus-serial is per bus: while Bus1 is busy with Event1 (and the child it awaits), Bus2 keeps
/// processing its own queue. Event1's handler only finishes once Bus2 has run Event3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_buses_keep_processing_while_a_handler_awaits_a_child() {
    let bus1 = EventBus::new("Bus1");
    let bus2 = EventBus::new("Bus2");
    let log = Recorder::new();
    let bus2_ran = Arc::new(Notify::new());

    let (l, b, ran) = (log.clone(), bus1.clone(), Arc::clone(&bus2_ran));
    bus1.on(move |_: EventHandle<Event1>| {
        let (log, bus, ran) = (l.clone(), b.clone(), Arc::clone(&ran));
        async move {
            log.push("Bus1_Event1_start");
            bus.dispatch(ChildEvent {})?.await?;
            ran.notified().await;
            log.push("Bus1_Event1_end");
            Ok::<_, bubus::Error>(String::from("event1_done"))
        }
    });
    on_logged::<Event2>(&bus1, &log, "Bus1_Event2");
    on_logged::<ChildEvent>(&bus1, &log, "Child");
    let (l, ran) = (log.clone(), Arc::clone(&bus2_ran));
    bus2.on(move |_: EventHandle<Event3>| {
        l.push("Bus2_Event3_start");
        ran.notify_one();
        String::from("event3_done")
    });
    on_logged::<Event4>(&bus2, &log, "Bus2_Event4");

    let event1 = bus1.dispatch(Event1 {}).unwrap();
    bus1.dispatch(Event2 {}).unwrap();
    bus2.dispatch(Event3 {}).unwrap();
    bus2.dispatch(Event4 {}).unwrap();

    within_real(event1).await.unwrap();
    assert!(within_real(bus1.wait_until_idle(None)).await);
    assert!(within_real(bus2.wait_until_idle(None)).await);

    log.assert_order(&[
        "Bus1_Event1_start",
        "Child_start",
        "Child_end",
        "Bus1_Event1_end",
    ]);
    log.assert_order(&["Bus2_Event3_start", "Bus1_Event1_end", "Bus1_Event2_start"]);
    log.assert_order(&["Bus2_Event3_start", "Bus2_Event4_start"]);
}

/// Two buses run the same child, each with two serial handlers; queue-jumping it from a handler
/// on the first bus must not run them in parallel. The serial-handler lock is per event across
/// buses, so no two of the four handlers overlap at all.
#[tokio::test(start_paused = true)]
async fn queue_jump_across_two_buses_keeps_serial_handlers_serial() {
    let bus_a = EventBus::new("QJ2BS_A");
    let bus_b = EventBus::new("QJ2BS_B");
    let log = Recorder::new();

    on_sleeping::<ChildEvent>(&bus_a, &log, "a1", 15);
    on_sleeping::<ChildEvent>(&bus_a, &log, "a2", 5);
    on_sleeping::<ChildEvent>(&bus_b, &log, "b1", 15);
    on_sleeping::<ChildEvent>(&bus_b, &log, "b2", 5);
    let (a, b) = (bus_a.clone(), bus_b.clone());
    bus_a.on(move |_: EventHandle<TriggerEvent>| {
        let (bus_a, bus_b) = (a.clone(), b.clone());
        async move {
            let child = bus_a.dispatch(ChildEvent {})?;
            bus_b.dispatch(&child)?;
            child.await?;
            Ok::<_, bubus::Error>(String::from("trigger_done"))
        }
    });

    let top = within_real(bus_a.dispatch(TriggerEvent {}).unwrap())
        .await
        .unwrap();
    assert!(bus_a.wait_until_idle(None).await);
    assert!(bus_b.wait_until_idle(None).await);

    log.assert_order(&["a1_end", "a2_start"]);
    log.assert_order(&["b1_end", "b2_start"]);
    let entries = log.entries();
    assert_eq!(entries.len(), 8);
    for pair in entries.chunks(2) {
        let name = pair[0].strip_suffix("_start").expect("a start");
        assert_eq!(
            pair[1],
            format!("{name}_end"),
            "handlers overlapped: {entries:?}"
        );
    }
    let child = &top.event_children()[0];
    assert_eq!(child.event_path(), [bus_a.label(), bus_b.label()]);
    assert_eq!(child.event_results().len(), 4);
}

/// A queue-jump re-enters only the locks its own handler chain holds: on another bus-serial bus
/// the awaited child still waits for the event that bus is busy with.
#[tokio::test]
async fn queue_jump_waits_for_the_event_in_flight_on_another_bus() {
    let bus_a = EventBus::new("QJEvt_A");
    let bus_b = EventBus::new("QJEvt_B");
    let log = Recorder::new();
    let slow_started = Arc::new(Notify::new());
    let child_a_done = Arc::new(Notify::new());
    let (release, released) = watch::channel(false);

    let (l, started) = (log.clone(), Arc::clone(&slow_started));
    bus_b.on(move |_: EventHandle<SlowEvent>| {
        let (log, started, mut released) = (l.clone(), Arc::clone(&started), released.clone());
        async move {
            log.push("slow_start");
            started.notify_one();
            let _ = released.wait_for(|open| *open).await;
            log.push("slow_end");
            String::from("slow_done")
        }
    });
    on_logged::<ChildEvent>(&bus_b, &log, "child_b");
    let (l, done) = (log.clone(), Arc::clone(&child_a_done));
    bus_a.on(move |_: EventHandle<ChildEvent>| {
        l.push("child_a_start");
        l.push("child_a_end");
        done.notify_one();
        String::from("child_a_done")
    });
    let (a, b) = (bus_a.clone(), bus_b.clone());
    bus_a.on(move |_: EventHandle<TriggerEvent>| {
        let (bus_a, bus_b) = (a.clone(), b.clone());
        async move {
            let child = bus_a.dispatch(ChildEvent {})?;
            bus_b.dispatch(&child)?;
            child.await?;
            Ok::<_, bubus::Error>(String::from("trigger_done"))
        }
    });

    bus_b.dispatch(SlowEvent {}).unwrap();
    within_real(slow_started.notified()).await;
    let top = bus_a.dispatch(TriggerEvent {}).unwrap();
    within_real(child_a_done.notified()).await;
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(log.position("child_b_start"), None, "{:?}", log.entries());
    assert!(!top.is_complete());

    release.send_replace(true);
    within_real(top).await.unwrap();
    log.assert_order(&["child_a_end", "slow_end", "child_b_start", "child_b_end"]);
}

// ---------------------------------------------------------------------------------------------
// Serial handler order while awaiting (semantics §1.6)
// ---------------------------------------------------------------------------------------------

/// Parent handler `h1` dispatches a sibling (not awaited) and a child, and awaits the child; `h2`
/// is the parent's second handler. Returns the log.
async fn serial_handlers_awaiting_a_child() -> Vec<String> {
    let bus = EventBus::builder("SerialOrderBus")
        .event_concurrency(bubus::event::EventConcurrency::BusSerial)
        .event_handler_concurrency(bubus::event::HandlerConcurrency::Serial)
        .build();
    let log = Recorder::new();

    let (l, b) = (log.clone(), bus.clone());
    bus.on(move |_: EventHandle<ParentEvent>| {
        let (log, bus) = (l.clone(), b.clone());
        async move {
            log.push("h1_start");
            bus.dispatch(SiblingEvent {})?;
            let child = bus.dispatch(ChildEvent {})?;
            child.await?;
            log.push("h1_after_child");
            tokio::task::yield_now().await;
            log.push("h1_end");
            Ok::<_, bubus::Error>(String::from("h1"))
        }
    });
    on_logged::<ParentEvent>(&bus, &log, "h2");
    let l = log.clone();
    bus.on(move |_: EventHandle<ChildEvent>| {
        let log = l.clone();
        async move {
            log.push("child_start");
            // Gives a lock-releasing implementation the chance to start h2 meanwhile.
            for _ in 0..5 {
                tokio::task::yield_now().await;
            }
            log.push("child_end");
            String::from("child")
        }
    });
    on_logged::<SiblingEvent>(&bus, &log, "sibling");

    let parent = within_real(bus.dispatch(ParentEvent {}).unwrap())
        .await
        .unwrap();
    // The parent completes only when the sibling (also its child) has.
    assert!(parent.event_children().iter().all(AnyEvent::is_complete));
    assert_eq!(parent.event_children().len(), 2);
    log.entries()
}

/// Python's strict serial order (the intended one); TypeScript lets `h2` start while `h1` awaits.
const SERIAL_ORDER: [&str; 9] = [
    "h1_start",
    "child_start",
    "child_end",
    "h1_after_child",
    "h1_end",
    "h2_start",
    "h2_end",
    "sibling_start",
    "sibling_end",
];

#[tokio::test]
async fn serial_handlers_keep_strict_order_while_one_awaits_a_child() {
    assert_eq!(serial_handlers_awaiting_a_child().await, SERIAL_ORDER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_handlers_keep_strict_order_while_one_awaits_a_child_across_threads() {
    for _ in 0..20 {
        assert_eq!(serial_handlers_awaiting_a_child().await, SERIAL_ORDER);
    }
}

// ---------------------------------------------------------------------------------------------
// Deliberate differences: waits that cannot end fail fast; every wait queue-jumps
// ---------------------------------------------------------------------------------------------

/// The reference hangs (or times out) when a handler awaits its own event or an ancestor; here
/// it is an immediate `WouldDeadlock` error. Result helpers queue-jump inside handlers too,
/// where the reference's `event_result()` deadlocks until a timeout.
#[tokio::test]
async fn awaits_that_could_never_end_fail_fast_and_result_helpers_queue_jump() {
    let bus = EventBus::new("DeadlockBus");
    let log = Recorder::new();

    let (l, b) = (log.clone(), bus.clone());
    bus.on(move |event: EventHandle<ParentEvent>| {
        let (log, bus) = (l.clone(), b.clone());
        async move {
            let own = (&event).await;
            log.push(format!(
                "own:{}",
                matches!(own, Err(WaitError::WouldDeadlock { .. }))
            ));
            let value = bus.dispatch(ChildEvent {})?.event_result().await?;
            log.push(format!("child_result:{value}"));
            Ok::<_, bubus::Error>(String::from("parent"))
        }
    });
    let l = log.clone();
    bus.on(move |event: EventHandle<ChildEvent>| {
        let log = l.clone();
        async move {
            let parent = event.event_parent().expect("linked to its parent");
            let waited = parent.await;
            log.push(format!(
                "ancestor:{}",
                matches!(waited, Err(WaitError::WouldDeadlock { .. }))
            ));
            String::from("child")
        }
    });
    on_logged::<Event2>(&bus, &log, "Event2");

    let parent = bus.dispatch(ParentEvent {}).unwrap();
    bus.dispatch(Event2 {}).unwrap();
    within_real(parent).await.unwrap();
    assert!(bus.wait_until_idle(None).await);
    assert_eq!(
        log.entries(),
        [
            "own:true",
            "ancestor:true",
            "child_result:child",
            "Event2_start",
            "Event2_end",
        ]
    );

    // An event never dispatched can never complete: the reference hangs (Python) or rejects
    // (TypeScript); here it is an error.
    let orphan = EventHandle::new(Event1 {});
    assert!(matches!(orphan.await, Err(WaitError::NotDispatched { .. })));
}

/// The TypeScript suite checks "inside a handler" is tracked per bus; here the handler context
/// names the bus and event running it, and nothing outside handlers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_context_belongs_to_the_bus_running_the_handler() {
    let bus_a = EventBus::new("InsideHandlerA");
    let bus_b = EventBus::new("InsideHandlerB");
    let log = Recorder::new();
    for bus in [&bus_a, &bus_b] {
        let l = log.clone();
        bus.on(move |e: EventHandle<Event1>| {
            let current = bubus::bus::current_bus().expect("inside a handler");
            let event = bubus::bus::current_event().expect("inside a handler");
            assert_eq!(event.event_id(), e.event_id());
            l.push(current.name());
            String::new()
        });
    }

    bus_a.dispatch(Event1 {}).unwrap().await.unwrap();
    bus_b.dispatch(Event1 {}).unwrap().await.unwrap();
    assert_eq!(log.entries(), ["InsideHandlerA", "InsideHandlerB"]);
    assert!(!bubus::bus::in_handler());
    assert!(bubus::bus::current_bus().is_none());
}
