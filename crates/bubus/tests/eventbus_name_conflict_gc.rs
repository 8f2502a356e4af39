//! Names, lifecycle and memory (semantics §1.17): ports `tests/test_eventbus_name_conflict_gc.py`.
//!
//! Names: unlike the Python runtime, which renames a bus whose name a live bus already uses
//! (`Name_1a2b3c4d`, with a warning) and renames stopped buses to `_stopped_…`, a bus here keeps
//! the name it was given. Names need not be unique — as in the TypeScript runtime — because
//! everything that must tell buses apart uses the label (`Name#abcd`, from the bus id): event
//! paths, loop prevention, logs. So the reference's name-conflict tests become "same names
//! coexist", and its garbage-collection tests are ported as they are.
//!
//! Freeing is observed through values the bus owns: a handler closure captures a [`Live`] whose
//! drop is counted, so "the handler was dropped" means "the bus that held it was freed"; event
//! payloads carry one too. Awaiting a [`Freed`] signal (instead of sleeping) waits for the bus's
//! run loop to let go of it.

use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Duration;

use bubus::bus::HistoryFull;
use bubus::{AnyEvent, DispatchError, EventBus, EventHandle, WaitError};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

/// Counts live values: one more when made, one less when dropped.
#[derive(Clone, Default, Debug)]
struct Counter(Arc<AtomicIsize>);

impl Counter {
    fn live(&self) -> Live {
        self.0.fetch_add(1, Ordering::SeqCst);
        Live(self.clone())
    }

    fn get(&self) -> isize {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug)]
struct Live(Counter);

impl Drop for Live {
    fn drop(&mut self) {
        (self.0).0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Resolves when the value holding its sender is dropped.
struct Freed(oneshot::Receiver<()>);

fn freed_signal() -> (oneshot::Sender<()>, Freed) {
    let (tx, rx) = oneshot::channel();
    (tx, Freed(rx))
}

impl Freed {
    /// Waits until the sender is dropped; fails the test if that takes (virtual) ages.
    async fn wait(self, what: &str) {
        let outcome = tokio::time::timeout(Duration::from_secs(60), self.0).await;
        assert!(outcome.is_ok(), "{what} was never freed");
    }

    fn is_freed(&mut self) -> bool {
        matches!(self.0.try_recv(), Err(oneshot::error::TryRecvError::Closed))
    }
}

/// An event whose payload is counted while it lives (not serialized).
#[derive(Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct GcEvent {
    n: u32,
    #[serde(skip)]
    _live: Option<Live>,
}

fn gc_event(n: u32, payloads: &Counter) -> GcEvent {
    GcEvent {
        n,
        _live: Some(payloads.live()),
    }
}

/// Registers a handler that owns `live` and `signal` (dropped with the handler, i.e. with the
/// bus's handler table).
fn counted_handler(bus: &EventBus, live: Live, signal: oneshot::Sender<()>) {
    bus.on(move |_: EventHandle<GcEvent>| {
        let _owned = (&live, &signal);
        String::from("ok")
    });
}

/// Yields up to `turns` times, until no more than `tasks` tasks are alive on the runtime.
async fn yield_until_tasks_at_most(
    metrics: &tokio::runtime::RuntimeMetrics,
    tasks: usize,
    turns: usize,
) {
    for _ in 0..turns {
        if metrics.num_alive_tasks() <= tasks {
            return;
        }
        tokio::task::yield_now().await;
    }
}

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn buses_may_share_a_name_and_keep_it() {
    let bus1 = EventBus::new("GCTestConflict");
    let bus2 = EventBus::new("GCTestConflict");

    // No renaming: the labels tell them apart.
    assert_eq!(bus1.name(), "GCTestConflict");
    assert_eq!(bus2.name(), "GCTestConflict");
    assert_ne!(bus1.id(), bus2.id());
    assert_ne!(bus1.label(), bus2.label());
    assert!(bus1.label().starts_with("GCTestConflict#"));
    assert_ne!(bus1, bus2);

    // They are separate buses.
    let payloads = Counter::default();
    let event = bus1
        .dispatch(gc_event(1, &payloads))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(event.event_path(), [bus1.label()]);
    assert_eq!(bus1.event_history().len(), 1);
    assert!(bus2.event_history().is_empty());

    // Stopping (even with clear) does not rename either.
    bus1.stop_and_clear(None).await;
    assert_eq!(bus1.name(), "GCTestConflict");
    let bus3 = EventBus::new("GCTestConflict");
    assert_eq!(bus3.name(), "GCTestConflict");
}

#[tokio::test]
async fn a_name_can_be_reused_after_the_bus_is_dropped() {
    let handlers = Counter::default();
    let (signal, freed) = freed_signal();
    let bus1 = EventBus::new("GCTestBus1");
    counted_handler(&bus1, handlers.live(), signal);
    let label1 = bus1.label().to_owned();
    drop(bus1);
    freed.wait("an unused bus").await;
    assert_eq!(handlers.get(), 0);

    let bus2 = EventBus::new("GCTestBus1");
    assert_eq!(bus2.name(), "GCTestBus1");
    assert_ne!(bus2.label(), label1);
}

// ---------------------------------------------------------------------------------------------
// Dropping frees
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_bus_that_never_ran_is_freed_when_its_handle_is_dropped() {
    let (signal, mut freed) = freed_signal();
    let bus = EventBus::new("NeverStarted");
    counted_handler(&bus, Counter::default().live(), signal);
    let clone = bus.clone();
    drop(bus);
    assert!(!freed.is_freed(), "a clone still holds it");
    drop(clone);
    assert!(freed.is_freed(), "nothing else held it");
}

#[tokio::test(start_paused = true)]
async fn dropping_every_handle_frees_a_bus_with_history() {
    let (payloads, handlers) = (Counter::default(), Counter::default());
    let (signal, freed) = freed_signal();
    let bus = EventBus::new("GCImplicitNoStop");
    counted_handler(&bus, handlers.live(), signal);
    for n in 0..30 {
        bus.dispatch(gc_event(n, &payloads)).unwrap().await.unwrap();
    }
    assert!(bus.wait_until_idle(None).await);
    assert_eq!(bus.event_history().len(), 30);
    assert_eq!(payloads.get(), 30, "the history holds every payload");

    drop(bus);
    freed.wait("a bus with history").await;
    assert_eq!(handlers.get(), 0);
    assert_eq!(payloads.get(), 0, "the history went with the bus");
}

#[tokio::test(start_paused = true)]
async fn many_unreferenced_buses_with_history_are_all_freed() {
    let (payloads, handlers) = (Counter::default(), Counter::default());
    let mut signals = Vec::new();
    for i in 0..20 {
        let (signal, freed) = freed_signal();
        let bus = EventBus::new(format!("GCNoStopBus_{i}"));
        counted_handler(&bus, handlers.live(), signal);
        for n in 0..40 {
            bus.dispatch(gc_event(n, &payloads)).unwrap().await.unwrap();
        }
        assert!(bus.wait_until_idle(None).await);
        signals.push(freed);
    }
    for freed in signals {
        freed.wait("an unreferenced bus").await;
    }
    assert_eq!(handlers.get(), 0);
    assert_eq!(payloads.get(), 0);
}

/// A queued event keeps its bus alive until it is processed, so dropping every handle right after
/// dispatching loses nothing; then the bus is freed.
#[tokio::test(start_paused = true)]
async fn queued_events_outlive_the_last_handle_then_the_bus_is_freed() {
    let (payloads, handlers) = (Counter::default(), Counter::default());
    let (signal, mut freed) = freed_signal();
    let (open, gate) = watch::channel(false);
    let bus = EventBus::new("GCQueuedBus");
    let live = handlers.live();
    bus.on(move |e: EventHandle<GcEvent>| {
        let (_owned, mut gate) = ((&live, &signal), gate.clone());
        async move {
            let _ = gate.wait_for(|open| *open).await;
            format!("handled {}", e.n)
        }
    });
    let events: Vec<_> = (0..3)
        .map(|n| bus.dispatch(gc_event(n, &payloads)).unwrap())
        .collect();
    drop(bus);
    tokio::task::yield_now().await;
    assert!(!freed.is_freed(), "queued events keep the bus alive");

    open.send_replace(true);
    for (n, event) in events.into_iter().enumerate() {
        let event = event.await.unwrap();
        assert_eq!(event.event_result().await.unwrap(), format!("handled {n}"));
        // The event outlives its bus: metadata and results stay readable.
        assert_eq!(event.event_path().len(), 1);
    }
    freed.wait("a bus whose queue drained").await;
    assert_eq!(handlers.get(), 0);
    assert_eq!(
        payloads.get(),
        0,
        "no handle and no history holds a payload"
    );
}

#[tokio::test(start_paused = true)]
async fn events_outlive_their_bus() {
    let (signal, freed) = freed_signal();
    let bus = EventBus::new("GCOutlivedBus");
    counted_handler(&bus, Counter::default().live(), signal);
    let payloads = Counter::default();
    let event = bus.dispatch(gc_event(7, &payloads)).unwrap().await.unwrap();
    let label = bus.label().to_owned();
    drop(bus);
    freed.wait("the bus").await;

    assert_eq!(event.n, 7);
    assert_eq!(event.event_path(), [label]);
    assert_eq!(event.event_result().await.unwrap(), "ok");
    assert!(event.event_bus().is_none(), "the bus is gone");
    assert_eq!(payloads.get(), 1, "the handle still holds its payload");
    drop(event);
    assert_eq!(payloads.get(), 0);
}

// ---------------------------------------------------------------------------------------------
// stop(clear)
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn stop_with_clear_frees_history_handlers_and_waiters_while_the_bus_lives() {
    let (payloads, handlers) = (Counter::default(), Counter::default());
    let (signal, freed) = freed_signal();
    let bus = EventBus::new("GCStopClear");
    counted_handler(&bus, handlers.live(), signal);
    for n in 0..10 {
        bus.dispatch(gc_event(n, &payloads)).unwrap().await.unwrap();
    }
    // A pending find holds its predicate on the bus until it is released.
    let predicate_state = Counter::default();
    let held = predicate_state.live();
    let find = bus.find::<GcEvent>().no_past().future().matching(move |_| {
        let _ = &held;
        true
    });
    let expect = bus.expect::<GcEvent>();

    let (found, expected, ()) = tokio::join!(find.into_future(), expect.into_future(), async {
        bus.stop_and_clear(None).await;
    });
    assert!(found.is_none());
    assert!(matches!(expected, Err(WaitError::Stopped { .. })));

    // Everything the bus held is gone, though the handle is still here.
    freed.wait("the handler table").await;
    assert_eq!(handlers.get(), 0);
    assert_eq!(payloads.get(), 0);
    assert_eq!(predicate_state.get(), 0);
    assert!(bus.event_history().is_empty());
    assert!(bus.handlers().is_empty());
    assert!(bus.is_stopped());
    assert!(matches!(
        bus.dispatch(gc_event(99, &payloads)),
        Err(DispatchError::Stopped { .. })
    ));
    assert_eq!(payloads.get(), 0, "a refused event is not kept");
}

/// `stop(clear)` and `off` free buses whatever holds them; a handler that holds its own bus keeps
/// it alive until then (a forwarder does not: see the next test).
#[tokio::test(start_paused = true)]
async fn reference_cycles_between_buses_are_broken_by_off_or_stop_with_clear() {
    let payloads = Counter::default();

    // A <-> B, broken by stop(clear) on both.
    let (signal_a, freed_a) = freed_signal();
    let (signal_b, freed_b) = freed_signal();
    let bus_a = EventBus::new("CycleA");
    let bus_b = EventBus::new("CycleB");
    counted_handler(&bus_a, Counter::default().live(), signal_a);
    counted_handler(&bus_b, Counter::default().live(), signal_b);
    bus_a.forward_to(&bus_b);
    bus_b.forward_to(&bus_a);
    let event = bus_a
        .dispatch(gc_event(1, &payloads))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(event.event_path(), [bus_a.label(), bus_b.label()]);
    drop(event);
    bus_a.stop_and_clear(None).await;
    bus_b.stop_and_clear(None).await;
    drop((bus_a, bus_b));
    freed_a.wait("bus A of a cleared cycle").await;
    freed_b.wait("bus B of a cleared cycle").await;

    // A -> B -> A, broken by removing one forwarder.
    let (signal_a, freed_a) = freed_signal();
    let (signal_b, freed_b) = freed_signal();
    let bus_a = EventBus::new("CycleOffA");
    let bus_b = EventBus::new("CycleOffB");
    counted_handler(&bus_a, Counter::default().live(), signal_a);
    counted_handler(&bus_b, Counter::default().live(), signal_b);
    bus_a.forward_to(&bus_b);
    let back = bus_b.forward_to(&bus_a);
    bus_a
        .dispatch(gc_event(2, &payloads))
        .unwrap()
        .await
        .unwrap();
    assert!(bus_b.off(&back));
    drop((bus_a, bus_b));
    freed_a.wait("bus A after off").await;
    freed_b.wait("bus B after off").await;

    // A handler that captured its own bus.
    let (signal, freed) = freed_signal();
    let bus = EventBus::new("SelfHeld");
    let own = bus.clone();
    bus.on(move |_: AnyEvent| {
        let _owned = (&own, &signal);
    });
    bus.dispatch(gc_event(3, &payloads)).unwrap().await.unwrap();
    bus.stop_and_clear(None).await;
    drop(bus);
    freed.wait("a bus its own handler held").await;
    assert_eq!(payloads.get(), 0);
}

/// Two buses forwarding to each other — the README's own example — are freed, with their run
/// loops, as soon as the user drops their handles: a forwarder does not keep its target alive.
#[tokio::test(start_paused = true)]
async fn buses_forwarding_to_each_other_are_freed_with_their_tasks_when_dropped() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let payloads = Counter::default();
    let (signal_a, freed_a) = freed_signal();
    let (signal_b, freed_b) = freed_signal();
    let bus_a = EventBus::new("MutualA");
    let bus_b = EventBus::new("MutualB");
    counted_handler(&bus_a, Counter::default().live(), signal_a);
    counted_handler(&bus_b, Counter::default().live(), signal_b);
    bus_a.forward_to(&bus_b);
    bus_b.forward_to(&bus_a);
    for n in 0..5 {
        let event = bus_a
            .dispatch(gc_event(n, &payloads))
            .unwrap()
            .await
            .unwrap();
        assert_eq!(event.event_path(), [bus_a.label(), bus_b.label()]);
        let event = bus_b
            .dispatch(gc_event(n, &payloads))
            .unwrap()
            .await
            .unwrap();
        assert_eq!(event.event_path(), [bus_b.label(), bus_a.label()]);
    }
    assert!(
        metrics.num_alive_tasks() >= tasks_before + 2,
        "both run loops run"
    );

    drop((bus_a, bus_b));
    freed_a.wait("bus A of a forwarding pair").await;
    freed_b.wait("bus B of a forwarding pair").await;
    yield_until_tasks_at_most(&metrics, tasks_before, 1_000).await;
    assert_eq!(
        metrics.num_alive_tasks(),
        tasks_before,
        "their run loops ended"
    );
    assert_eq!(payloads.get(), 0, "their histories went with them");
}

/// Forwarding to a bus whose handles were all dropped is an error result naming it, not a
/// resurrected bus.
#[tokio::test(start_paused = true)]
async fn forwarding_to_a_dropped_bus_is_an_error_result() {
    let payloads = Counter::default();
    let main = EventBus::new("FwdMain");
    let gone = EventBus::new("FwdGone");
    main.forward_to(&gone);
    let label = gone.label().to_owned();
    drop(gone);
    let event = main
        .dispatch(gc_event(1, &payloads))
        .unwrap()
        .await
        .unwrap();
    let results = event.event_results();
    assert_eq!(results.len(), 1);
    let error = results[0].error.as_ref().expect("an error result");
    assert_eq!(error.error_type(), "BusDropped");
    assert!(error.message().contains(&label), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Many short-lived buses
// ---------------------------------------------------------------------------------------------

/// 500 buses, each handling a few events and then dropped (half of them stopped with clear
/// first, half of them taking a burst bigger than their history): nothing they held survives them, their run loops end, and the process's memory stays
/// bounded. No timing is asserted.
#[tokio::test(start_paused = true)]
async fn many_short_lived_buses_keep_memory_bounded() {
    const BUSES: usize = 500;
    const EVENTS: u32 = 20;
    let (payloads, handlers) = (Counter::default(), Counter::default());
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let rss_before = rss_bytes();
    let mut rss_peak = rss_before;

    for i in 0..BUSES {
        let (signal, freed) = freed_signal();
        // Half evict unfinished events to take a burst; the others take one event at a time.
        let burst = i % 2 == 0;
        let bus = EventBus::builder(format!("ShortLived{i}"))
            .max_history_size(Some(10))
            .history_full(if burst {
                HistoryFull::DropOldest
            } else {
                HistoryFull::Reject
            })
            .build();
        counted_handler(&bus, handlers.live(), signal);
        for n in 0..EVENTS {
            let event = bus.dispatch(gc_event(n, &payloads)).unwrap();
            if !burst {
                event.await.unwrap();
            }
        }
        assert!(bus.wait_until_idle(None).await);
        assert!(bus.event_history().len() <= 10);
        if i % 4 < 2 {
            bus.stop_and_clear(None).await;
        }
        drop(bus);
        freed.wait("a short-lived bus").await;
        assert_eq!(handlers.get(), 0, "bus {i}");
        assert_eq!(payloads.get(), 0, "bus {i}");
        if i % 50 == 0 {
            rss_peak = rss_peak.max(rss_bytes());
        }
    }

    // The run loops of freed buses end once they notice.
    yield_until_tasks_at_most(&metrics, tasks_before, 10).await;
    assert_eq!(
        metrics.num_alive_tasks(),
        tasks_before,
        "run loops outlived their buses"
    );
    if let (Some(before), Some(peak)) = (rss_before, rss_peak) {
        let growth = peak.saturating_sub(before);
        assert!(
            growth < 128 * 1024 * 1024,
            "RSS grew by {} MiB",
            growth / (1024 * 1024)
        );
    }
}

/// On a multi-thread runtime a bus's run loop runs on a worker thread, and stopping an idle bus
/// does not wait for that thread to see the stop. The run loops still end while their buses
/// live on, and each bus, once dropped, is freed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_loops_of_idle_stopped_buses_end_on_a_multi_thread_runtime() {
    const BUSES: usize = 50;
    let (payloads, handlers) = (Counter::default(), Counter::default());
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();

    let mut stopped = Vec::new();
    for i in 0..BUSES {
        let (signal, freed) = freed_signal();
        let bus = EventBus::new(format!("StoppedIdle{i}"));
        counted_handler(&bus, handlers.live(), signal);
        let events: Vec<_> = (0..10)
            .map(|n| bus.dispatch(gc_event(n, &payloads)).unwrap())
            .collect();
        for event in events {
            assert_eq!(event.await.unwrap().event_result().await.unwrap(), "ok");
        }
        assert!(bus.wait_until_idle(None).await);
        // Stopped without clear: the handler and the history go only with the bus.
        bus.stop(Some(Duration::ZERO)).await;
        assert!(bus.is_stopped());
        stopped.push((bus, freed));
    }
    assert_eq!(handlers.get(), BUSES as isize);

    // Each stop reaches its run loop on a worker thread; give the workers the turns they need.
    yield_until_tasks_at_most(&metrics, tasks_before, 100_000).await;
    assert_eq!(
        metrics.num_alive_tasks(),
        tasks_before,
        "run loops outlived the stop of their buses"
    );

    for (i, (bus, freed)) in stopped.into_iter().enumerate() {
        drop(bus);
        freed.wait("a stopped bus").await;
        assert_eq!(handlers.get(), (BUSES - i - 1) as isize);
    }
    assert_eq!(payloads.get(), 0);
}
