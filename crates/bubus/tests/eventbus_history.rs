//! The bounded history: eviction order in drop mode, backpressure a producer can await, the
//! memory estimate, `filter`, TTLs (abxbus 2.5's `event_ttl`, `event_result_ttl`,
//! `handler_result_ttl`).

use std::sync::Arc;
use std::time::Duration;

use bubus::bus::HistoryFull;
use bubus::event::Ttl;
use bubus::{AnyEvent, DynEvent, EventBus, EventHandle};
use serde_json::json;
use tokio::sync::{Notify, watch};

fn dyn_event(event_type: &str, n: u64) -> DynEvent {
    DynEvent::new(event_type, json!({ "n": n })).unwrap()
}

fn ids(bus: &EventBus) -> Vec<String> {
    bus.event_history()
        .iter()
        .map(|e| format!("{}{}", e.event_type(), e.payload_json().unwrap()["n"]))
        .collect()
}

async fn open(gate: &watch::Receiver<bool>) {
    let mut gate = gate.clone();
    let _ = gate.wait_for(|open| *open).await;
}

/// Drop mode evicts completed events first, then events the bus has started, then events still
/// queued — each oldest first (the bubus README's order), not simply the oldest entry.
#[tokio::test]
async fn drop_mode_evicts_completed_then_started_then_pending() {
    let bus = EventBus::builder("EvictBus")
        .max_history_size(Some(4))
        .history_full(HistoryFull::DropOldest)
        .build();
    let (open1, gate1) = watch::channel(false);
    let (open2, gate2) = watch::channel(false);
    let p_started = Arc::new(Notify::new());
    let k_started = Arc::new(Notify::new());

    // P waits for gate 1, then dispatches K and awaits it: K jumps the queue ahead of Q.
    let (b, g, n) = (bus.clone(), gate1.clone(), Arc::clone(&p_started));
    bus.on_pattern("P", move |_: AnyEvent| {
        let (bus, gate, started) = (b.clone(), g.clone(), Arc::clone(&n));
        async move {
            started.notify_one();
            open(&gate).await;
            let k = bus.dispatch(dyn_event("K", 0)).unwrap();
            k.await.unwrap();
        }
    });
    let (g, n) = (gate2.clone(), Arc::clone(&k_started));
    bus.on_pattern("K", move |_: AnyEvent| {
        let (gate, started) = (g.clone(), Arc::clone(&n));
        async move {
            started.notify_one();
            open(&gate).await;
        }
    });

    bus.dispatch(dyn_event("X", 0)).unwrap().await.unwrap();
    let p = bus.dispatch(dyn_event("P", 0)).unwrap();
    p_started.notified().await;
    let q = bus.dispatch(dyn_event("Q", 0)).unwrap();
    open1.send_replace(true);
    k_started.notified().await;
    assert_eq!(ids(&bus), ["X0", "P0", "Q0", "K0"]);

    // Completed first.
    bus.dispatch(dyn_event("D", 1)).unwrap();
    assert_eq!(ids(&bus), ["P0", "Q0", "K0", "D1"]);
    // Then started, oldest first: P, then K — although Q, still queued, is older than K.
    bus.dispatch(dyn_event("D", 2)).unwrap();
    assert_eq!(ids(&bus), ["Q0", "K0", "D1", "D2"]);
    bus.dispatch(dyn_event("D", 3)).unwrap();
    assert_eq!(ids(&bus), ["Q0", "D1", "D2", "D3"]);
    // Then the still-queued, oldest first.
    bus.dispatch(dyn_event("D", 4)).unwrap();
    assert_eq!(ids(&bus), ["D1", "D2", "D3", "D4"]);

    open2.send_replace(true);
    p.await.unwrap();
    q.await.unwrap();
    assert!(bus.wait_until_idle(Some(Duration::from_secs(10))).await);
}

/// A history full of unfinished events, evicted one per dispatch in drop mode, keeps the newest
/// `max` entries in dispatch order whatever the mix (a longer run than the case above).
#[tokio::test]
async fn drop_mode_under_a_flood_keeps_the_newest_in_order() {
    let bus = EventBus::builder("FloodBus")
        .max_history_size(Some(64))
        .history_full(HistoryFull::DropOldest)
        .build();
    let (release, gate) = watch::channel(false);
    bus.on_pattern("Slow", move |_: AnyEvent| {
        let gate = gate.clone();
        async move { open(&gate).await }
    });
    let mut handles = Vec::new();
    for n in 0..10_000 {
        handles.push(bus.dispatch(dyn_event("Slow", n)).unwrap());
    }
    let held = ids(&bus);
    assert_eq!(held.len(), 64);
    let expected: Vec<String> = (10_000 - 64..10_000).map(|n| format!("Slow{n}")).collect();
    assert_eq!(held, expected);
    release.send_replace(true);
    for h in handles {
        h.await.unwrap();
    }
}

/// Events dispatched far ahead of the run loop are evicted before they complete; their
/// completions find nothing left to update, and the events dispatched after them are still
/// recorded completed and evicted completed-first, as usual.
#[tokio::test]
async fn completions_of_events_evicted_unfinished_leave_later_entries_recorded() {
    let bus = EventBus::builder("AheadBus")
        .max_history_size(Some(8))
        .history_full(HistoryFull::DropOldest)
        .build();
    bus.on_pattern("*", |e: AnyEvent| e.payload_json().unwrap()["n"].clone());
    // Nothing runs until the first await: 92 of the 100 are evicted while queued.
    for n in 0..100 {
        bus.dispatch(dyn_event("Ahead", n)).unwrap();
    }
    assert!(bus.wait_until_idle(Some(Duration::from_secs(10))).await);
    let expected: Vec<String> = (92..100).map(|n| format!("Ahead{n}")).collect();
    assert_eq!(ids(&bus), expected);
    assert_eq!(bus.events_completed().len(), 8);

    // Dispatched and completed one at a time after those completions: each is recorded
    // completed, and each makes room by evicting the oldest completed entry.
    for n in 0..4 {
        let event = bus.dispatch(dyn_event("After", n)).unwrap();
        event.await.unwrap();
    }
    let mut expected: Vec<String> = (96..100).map(|n| format!("Ahead{n}")).collect();
    expected.extend((0..4).map(|n| format!("After{n}")));
    assert_eq!(ids(&bus), expected);
    assert_eq!(bus.events_completed().len(), 8);
}

/// `dispatch_when_room` waits while the history is full of unfinished events and dispatches as
/// soon as one completes; `dispatch` refuses at once; a timeout gives `HistoryFull` back.
#[tokio::test(start_paused = true)]
async fn dispatch_when_room_waits_for_a_completion_then_dispatches() {
    let bus = EventBus::builder("RoomBus")
        .max_history_size(Some(2))
        .build();
    let (release, gate) = watch::channel(0u64);
    bus.on_pattern("Job", move |e: AnyEvent| {
        let mut gate = gate.clone();
        async move {
            let n = e.payload_json().unwrap()["n"].as_u64().unwrap();
            let _ = gate.wait_for(|open| *open > n).await;
        }
    });
    let a = bus.dispatch(dyn_event("Job", 0)).unwrap();
    let b = bus.dispatch(dyn_event("Job", 1)).unwrap();
    assert!(matches!(
        bus.dispatch(dyn_event("Job", 2)),
        Err(bubus::DispatchError::HistoryFull { .. })
    ));

    // Times out while nothing completes.
    let timed_out = bus
        .dispatch_when_room(dyn_event("Job", 2), Some(Duration::from_secs(3)))
        .await;
    assert!(matches!(
        timed_out,
        Err(bubus::DispatchError::HistoryFull { .. })
    ));
    assert_eq!(ids(&bus), ["Job0", "Job1"]);

    // Waits without a timeout; completes when Job0 completes.
    let producer = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.dispatch_when_room(dyn_event("Job", 2), None).await })
    };
    tokio::task::yield_now().await;
    assert!(!producer.is_finished());
    release.send_replace(1);
    a.await.unwrap();
    let c = producer.await.unwrap().unwrap();
    assert_eq!(ids(&bus), ["Job1", "Job2"]);

    release.send_replace(10);
    b.await.unwrap();
    c.await.unwrap();
}

/// A producer waiting for room is released by `stop` with `Stopped`.
#[tokio::test(start_paused = true)]
async fn dispatch_when_room_returns_stopped_when_the_bus_stops() {
    let bus = EventBus::builder("RoomStopBus")
        .max_history_size(Some(1))
        .build();
    bus.on_pattern("Job", |_: AnyEvent| std::future::pending::<()>());
    let _a = bus.dispatch(dyn_event("Job", 0)).unwrap();
    let producer = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.dispatch_when_room(dyn_event("Job", 1), None).await })
    };
    tokio::task::yield_now().await;
    bus.stop(None).await;
    assert!(matches!(
        producer.await.unwrap(),
        Err(bubus::DispatchError::Stopped { .. })
    ));
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// `event_ttl` (abxbus 2.5): a completed event leaves the history that many seconds after it
/// completed; the event's own value wins over the bus's; negative is never, 0 is at once; an
/// unfinished event never expires.
#[tokio::test(start_paused = true)]
async fn event_ttl_expires_completed_events_from_the_history() {
    let bus = EventBus::builder("TtlBus")
        .event_ttl(Duration::from_secs(10))
        .event_timeout(None)
        .build();
    let (release, gate) = watch::channel(false);
    bus.on_pattern("Slow", move |_: AnyEvent| {
        let gate = gate.clone();
        async move { open(&gate).await }
    });
    bus.dispatch(dyn_event("A", 1)).unwrap().await.unwrap();
    // Parallel, so the events after it are processed while it runs.
    let slow = bus
        .dispatch(
            EventHandle::new(dyn_event("Slow", 0))
                .with_event_concurrency(bubus::event::EventConcurrency::Parallel),
        )
        .unwrap();
    tokio::time::advance(secs(5)).await;
    bus.dispatch(dyn_event("A", 2)).unwrap().await.unwrap();
    bus.dispatch(EventHandle::new(dyn_event("A", 3)).with_event_ttl(Ttl::Never))
        .unwrap()
        .await
        .unwrap();
    bus.dispatch(EventHandle::new(dyn_event("A", 4)).with_event_ttl(Duration::from_secs(2)))
        .unwrap()
        .await
        .unwrap();
    bus.dispatch(EventHandle::new(dyn_event("A", 5)).with_event_ttl(Duration::ZERO))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        ids(&bus),
        ["A1", "Slow0", "A2", "A3", "A4"],
        "a TTL of 0 leaves at once"
    );

    tokio::time::advance(secs(3)).await;
    assert_eq!(ids(&bus), ["A1", "Slow0", "A2", "A3"], "A4's own 2 s");
    tokio::time::advance(secs(3)).await;
    assert_eq!(ids(&bus), ["Slow0", "A2", "A3"], "A1: the bus's 10 s");
    tokio::time::advance(secs(100)).await;
    assert_eq!(
        ids(&bus),
        ["Slow0", "A3"],
        "unfinished and never-expiring events stay"
    );

    release.send_replace(true);
    slow.await.unwrap();
    tokio::time::advance(secs(9)).await;
    assert_eq!(ids(&bus), ["Slow0", "A3"], "counted from its completion");
    tokio::time::advance(secs(1)).await;
    assert_eq!(ids(&bus), ["A3"]);
    // `find` sees the same history.
    assert!(bus.find_pattern("Slow").await.is_none());
}

/// `event_result_ttl` and `handler_result_ttl`: the results this bus's handlers left on a
/// completed event are removed from it after their TTL (a handler's own wins, then the
/// event's, then the bus's); the event itself stays.
#[tokio::test(start_paused = true)]
async fn result_ttls_remove_results_and_keep_the_event() {
    let bus = EventBus::builder("ResultTtlBus")
        .event_result_ttl(Duration::from_secs(10))
        .build();
    bus.on_with(
        |_: AnyEvent| json!("short"),
        bubus::handler::HandlerOptions::new()
            .pattern("R")
            .name("short")
            .result_ttl(Duration::from_secs(2)),
    );
    bus.on_with(
        |_: AnyEvent| json!("bus default"),
        bubus::handler::HandlerOptions::new()
            .pattern("R")
            .name("default"),
    );
    bus.on_with(
        |_: AnyEvent| json!("kept"),
        bubus::handler::HandlerOptions::new()
            .pattern("R")
            .name("kept")
            .result_ttl(Ttl::Never),
    );
    fn names(e: &impl AsRef<AnyEvent>) -> Vec<String> {
        e.as_ref()
            .event_results()
            .into_iter()
            .map(|r| r.handler_name)
            .collect()
    }
    let plain = bus.dispatch(dyn_event("R", 1)).unwrap().await.unwrap();
    let own = bus
        .dispatch(EventHandle::new(dyn_event("R", 2)).with_event_result_ttl(Duration::from_secs(5)))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(names(&plain), ["short", "default", "kept"]);

    tokio::time::advance(secs(3)).await;
    assert_eq!(bus.event_history().len(), 2);
    assert_eq!(names(&plain), ["default", "kept"]);
    assert_eq!(names(&own), ["default", "kept"]);
    tokio::time::advance(secs(3)).await;
    bus.event_history();
    assert_eq!(names(&plain), ["default", "kept"]);
    assert_eq!(names(&own), ["kept"], "the event's own 5 s");
    tokio::time::advance(secs(5)).await;
    bus.event_history();
    assert_eq!(names(&plain), ["kept"], "the bus's 10 s");
    assert_eq!(bus.event_history().len(), 2, "the events stay");
}

/// The TTLs travel as abxbus 2.5's keys: an event's on the event, a handler's on its snapshot
/// entry and results, the bus's in its snapshot — and a restored bus applies them.
#[tokio::test(start_paused = true)]
async fn ttls_are_written_as_the_2_5_keys_and_restored() {
    let bus = EventBus::builder("TtlWire")
        .event_ttl(Duration::from_secs(30))
        .event_result_ttl(Ttl::Never)
        .disable_handler_file_paths()
        .build();
    bus.on_with(
        |_: AnyEvent| json!(1),
        bubus::handler::HandlerOptions::new()
            .pattern("W")
            .result_ttl(Duration::from_secs(4)),
    );
    let event = bus
        .dispatch(EventHandle::new(dyn_event("W", 1)).with_event_ttl(Duration::from_secs(20)))
        .unwrap()
        .await
        .unwrap();
    let json = event.to_json_with_results();
    assert_eq!(json["event_ttl"], 20.0);
    let result = json["event_results"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(result["handler_result_ttl"], 4.0);
    let snapshot = bus.snapshot();
    assert_eq!(snapshot["event_ttl"], 30.0);
    assert_eq!(snapshot["event_result_ttl"], -1.0);
    let handler = snapshot["handlers"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    assert_eq!(handler["handler_result_ttl"], 4.0);

    let restored = EventBus::restore(&snapshot).unwrap();
    assert_eq!(
        restored.config().event_ttl,
        Some(Ttl::After(Duration::from_secs(30)))
    );
    assert_eq!(restored.config().event_result_ttl, Some(Ttl::Never));
    assert_eq!(restored.snapshot()["event_ttl"], 30.0);
    restored.dispatch(dyn_event("W", 2)).unwrap().await.unwrap();
    tokio::time::advance(secs(31)).await;
    assert!(
        restored.find_pattern("W").await.is_none(),
        "the restored bus's 30 s applied to its own event"
    );
}
