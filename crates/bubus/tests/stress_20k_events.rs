//! History bounds and memory under load.
//!
//! Ports the behaviour of the reference `tests/test_eventbus_performance.py` tests
//! `test_20k_events_with_memory_control`, `test_history_bound_is_strict_after_idle`,
//! `test_cleanup_prioritizes_pending` and `test_hard_limit_enforcement`, and the history tests of
//! `tests/test_eventbus.py` and `bubus-ts/tests/eventbus.test.ts` (unbounded and zero-size
//! history, `events_pending/started/completed`). No speed is asserted anywhere: only bounds.
//!
//! Our history policy differs from the reference on purpose (see docs/ARCHITECTURE.md): completed
//! events are always evicted first, and with `max_history_drop = false` (the default) a dispatch is
//! refused with `DispatchError::HistoryFull` only while the history is full of *unfinished*
//! events. The reference refuses every dispatch once the history holds `max_history_size` events,
//! finished or not.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicU64, Ordering};

use bubus::bus::HistoryFull;
use bubus::{DispatchError, Event, EventBus, EventHandle, EventStatus};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::sync::{Notify, Semaphore};
use uuid::Uuid;

/// Live `Alive` values: one per `FloodEvent` payload still in memory.
static ALIVE: AtomicIsize = AtomicIsize::new(0);

/// A payload field that counts how many payloads are alive, so the flood test can prove that
/// events leave memory, not just the history.
#[derive(Debug)]
struct Alive;

impl Alive {
    fn new() -> Self {
        ALIVE.fetch_add(1, Ordering::SeqCst);
        Alive
    }
}

impl Clone for Alive {
    fn clone(&self) -> Self {
        Alive::new()
    }
}

impl Drop for Alive {
    fn drop(&mut self) {
        ALIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Serialize for Alive {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_unit()
    }
}

impl<'de> Deserialize<'de> for Alive {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <()>::deserialize(deserializer)?;
        Ok(Alive::new())
    }
}

/// Only the flood test uses this type, so `ALIVE` counts its events alone.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct FloodEvent {
    seq: u64,
    alive: Alive,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
struct Seq {
    seq: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct QuickEvent;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct SlowEvent;

/// The process's resident set size in bytes: `VmRSS` from `/proc/self/status` (the resident
/// field of `/proc/self/statm`, already in kB). `None` where there is no procfs.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A gate handlers wait at: `add_permits(n)` lets `n` of them through, `close()` all of them.
fn gate() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(0))
}

async fn pass(gate: &Semaphore) {
    // Closed: everyone passes. Otherwise a permit is used up, so each one lets one handler in.
    if let Ok(permit) = gate.acquire().await {
        permit.forget();
    }
}

/// Registers a `Seq` handler that signals `started` and then waits at `release`.
fn blocking_seq_handler(bus: &EventBus, started: &Arc<Notify>, release: &Arc<Semaphore>) {
    let (started, release) = (Arc::clone(started), Arc::clone(release));
    bus.on(move |event: EventHandle<Seq>| {
        let (started, release) = (Arc::clone(&started), Arc::clone(&release));
        async move {
            started.notify_one();
            pass(&release).await;
            event.seq
        }
    });
}

fn seqs(bus: &EventBus) -> Vec<u64> {
    bus.event_history()
        .iter()
        .map(|e| e.downcast::<Seq>().expect("a Seq event").seq)
        .collect()
}

const TOTAL: u64 = 20_000;
const BOUND: usize = 100;
/// Generous (the reference allows 300 MB): it catches gross leaks, such as every event being kept
/// several times over. The live-payload count (`ALIVE`) is the precise check: it catches a single
/// event that outlives its last reference.
const RSS_GROWTH_LIMIT: u64 = 64 * 1024 * 1024;

/// Floods `bus` with `TOTAL` events without awaiting them, keeping a handle to every 1000th.
/// A refused dispatch (history full of unfinished events) waits for the bus to drain and retries.
/// Returns the sampled handles, how many dispatches were refused, and the peak RSS.
async fn flood(bus: &EventBus) -> (Vec<EventHandle<FloodEvent>>, u64, Option<u64>) {
    let mut sampled = Vec::new();
    let mut refused = 0;
    let mut peak_rss = rss_bytes();
    for seq in 0..TOTAL {
        let handle = loop {
            match bus.dispatch(FloodEvent {
                seq,
                alive: Alive::new(),
            }) {
                Ok(handle) => break handle,
                Err(DispatchError::HistoryFull { size, max, .. }) => {
                    assert_eq!((size, max), (BOUND, BOUND));
                    refused += 1;
                    bus.wait_until_idle(None).await;
                }
                Err(other) => panic!("unexpected dispatch error: {other}"),
            }
        };
        if seq % 1000 == 0 {
            sampled.push(handle);
        }
        if seq % 100 == 0 {
            let len = bus.event_history().len();
            assert!(len <= BOUND, "history grew to {len} at event {seq}");
        }
        if seq % 2000 == 0 {
            peak_rss = peak_rss.max(rss_bytes());
        }
    }
    (sampled, refused, peak_rss)
}

/// After the flood drained: every event was handled, the history holds the last `BOUND` events,
/// the sampled (mostly evicted) handles report completion, and no other event is still in memory.
fn check_drained(bus: &EventBus, processed: &AtomicU64, sampled: &[EventHandle<FloodEvent>]) {
    assert_eq!(processed.load(Ordering::SeqCst), TOTAL);
    assert_eq!(bus.queue_len(), 0);
    let history = bus.event_history();
    assert_eq!(history.len(), BOUND);
    let history_seqs: Vec<u64> = history
        .iter()
        .map(|e| e.downcast::<FloodEvent>().unwrap().seq)
        .collect();
    assert_eq!(
        history_seqs,
        ((TOTAL - BOUND as u64)..TOTAL).collect::<Vec<_>>()
    );
    assert!(history.iter().all(|e| e.is_complete()));

    for handle in sampled {
        assert!(handle.is_complete(), "event {} never completed", handle.seq);
        assert_eq!(handle.event_status(), EventStatus::Completed);
        assert!(handle.event_completed_at().is_some());
        assert_eq!(handle.event_results().len(), 1);
        assert!(handle.event_errors().is_empty());
        if handle.seq < TOTAL - BOUND as u64 {
            assert!(bus.find_event_by_id(handle.event_id()).is_none());
        }
    }

    // Exactly the events still referenced are alive: the history plus the sampled handles.
    let in_history: HashSet<Uuid> = history.iter().map(|e| e.event_id()).collect();
    let sampled_elsewhere = sampled
        .iter()
        .filter(|h| !in_history.contains(&h.event_id()))
        .count();
    assert_eq!(
        ALIVE.load(Ordering::SeqCst),
        (in_history.len() + sampled_elsewhere) as isize,
        "events outlived both the history and every handle"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_thousand_events_keep_history_and_memory_bounded() {
    let rss_before = rss_bytes();
    let processed = Arc::new(AtomicU64::new(0));

    // As in the reference: a flood into a bus that evicts unfinished events when it must.
    let dropping = EventBus::builder("ManyEvents")
        .history_full(HistoryFull::DropOldest)
        .build();
    assert_eq!(dropping.config().max_history_size, Some(BOUND));
    let p = Arc::clone(&processed);
    dropping.on(move |_: EventHandle<FloodEvent>| {
        p.fetch_add(1, Ordering::SeqCst);
    });
    let (sampled, refused, peak_a) = flood(&dropping).await;
    assert_eq!(refused, 0, "max_history_drop never refuses");
    dropping.wait_until_idle(None).await;
    check_drained(&dropping, &processed, &sampled);
    // Clearing the bus frees the rest.
    dropping.stop_and_clear(None).await;
    drop(sampled);
    assert_eq!(ALIVE.load(Ordering::SeqCst), 0);

    // The default policy: the same flood, with backpressure instead of eviction of unfinished
    // events. However often the producer had to wait, nothing is lost.
    processed.store(0, Ordering::SeqCst);
    let backpressured = EventBus::new("ManyEventsDefault");
    let p = Arc::clone(&processed);
    backpressured.on(move |_: EventHandle<FloodEvent>| {
        p.fetch_add(1, Ordering::SeqCst);
    });
    let (sampled, _, peak_b) = flood(&backpressured).await;
    backpressured.wait_until_idle(None).await;
    check_drained(&backpressured, &processed, &sampled);

    if let (Some(before), Some(peak_a), Some(peak_b)) = (rss_before, peak_a, peak_b) {
        let growth = peak_a.max(peak_b).saturating_sub(before);
        assert!(
            growth < RSS_GROWTH_LIMIT,
            "RSS grew by {} MiB",
            growth / (1024 * 1024)
        );
    }
}

#[tokio::test]
async fn history_bound_is_strict_after_idle() -> anyhow::Result<()> {
    for drop_unfinished in [true, false] {
        let bus = EventBus::builder("StrictHistoryBound")
            .max_history_size(Some(25))
            .history_full(if drop_unfinished {
                HistoryFull::DropOldest
            } else {
                HistoryFull::Reject
            })
            .build();
        bus.on(|event: EventHandle<Seq>| event.seq);

        // Sequential and awaited: every event has completed before the next one arrives, so with
        // either policy the oldest completed event makes room. (The reference, without
        // `max_history_drop`, refuses the 26th event.)
        for seq in 0..200 {
            assert_eq!(bus.dispatch(Seq { seq })?.event_result().await?, seq);
            assert!(bus.event_history().len() <= 25);
        }
        bus.wait_until_idle(None).await;

        assert_eq!(seqs(&bus), (175..200).collect::<Vec<_>>());
        assert_eq!(bus.events_completed().len(), 25);
    }
    Ok(())
}

#[tokio::test]
async fn max_history_drop_evicts_unfinished_events_which_still_complete() -> anyhow::Result<()> {
    let bus = EventBus::builder("TrimBus")
        .max_history_size(Some(5))
        .history_full(HistoryFull::DropOldest)
        .build();
    bus.on(|event: EventHandle<Seq>| event.seq);

    // Dispatched before any of them runs: the history is full of unfinished events, so each new
    // one evicts the oldest.
    let events: Vec<_> = (0..10)
        .map(|seq| bus.dispatch(Seq { seq }))
        .collect::<Result<_, _>>()?;
    assert_eq!(seqs(&bus), [5, 6, 7, 8, 9]);
    assert_eq!(
        bus.queue_len(),
        10,
        "evicted from the history, not from the queue"
    );

    bus.wait_until_idle(None).await;
    for (seq, event) in (0..).zip(&events) {
        assert!(event.is_complete());
        assert_eq!(event.event_result().await?, seq);
    }
    assert!(bus.find_event_by_id(events[0].event_id()).is_none());
    assert_eq!(seqs(&bus), [5, 6, 7, 8, 9]);
    Ok(())
}

#[tokio::test]
async fn cleanup_evicts_completed_events_before_unfinished_ones() -> anyhow::Result<()> {
    let bus = EventBus::builder("CleanupTest")
        .max_history_size(Some(10))
        .history_full(HistoryFull::DropOldest)
        .build();

    let quick: Vec<_> = (0..5)
        .map(|_| bus.dispatch(QuickEvent))
        .collect::<Result<_, _>>()?;
    for event in &quick {
        event.clone().await?;
    }

    let started = Arc::new(Notify::new());
    let release = gate();
    let (s, r) = (Arc::clone(&started), Arc::clone(&release));
    bus.on(move |_: EventHandle<SlowEvent>| {
        let (s, r) = (Arc::clone(&s), Arc::clone(&r));
        async move {
            s.notify_one();
            pass(&r).await;
        }
    });
    let slow: Vec<_> = (0..10)
        .map(|_| bus.dispatch(SlowEvent))
        .collect::<Result<_, _>>()?;
    started.notified().await;

    // The five completed events made room; all ten slow ones are kept, none of them finished.
    let history: Vec<Uuid> = bus.event_history().iter().map(|e| e.event_id()).collect();
    let slow_ids: Vec<Uuid> = slow.iter().map(|e| e.event_id()).collect();
    assert_eq!(history, slow_ids);
    assert_eq!(bus.events_started().len(), 1);
    assert_eq!(bus.events_pending().len(), 9);
    assert!(bus.events_completed().is_empty());
    assert!(quick.iter().all(|e| e.is_complete()));

    release.close();
    bus.wait_until_idle(None).await;
    assert_eq!(bus.events_completed().len(), 10);
    assert!(bus.events_pending().is_empty() && bus.events_started().is_empty());
    Ok(())
}

#[tokio::test]
async fn a_history_full_of_unfinished_events_refuses_dispatch_until_one_completes()
-> anyhow::Result<()> {
    let bus = EventBus::builder("HardLimitTest")
        .max_history_size(Some(100))
        .build();
    assert!(!bus.config().max_history_drop);
    let started = Arc::new(Notify::new());
    let release = gate();
    blocking_seq_handler(&bus, &started, &release);

    let mut accepted = Vec::new();
    let mut refused = 0;
    for seq in 0..200 {
        match bus.dispatch(Seq { seq }) {
            Ok(event) => accepted.push(event),
            Err(DispatchError::HistoryFull {
                bus: label,
                size,
                max,
            }) => {
                assert_eq!(label, bus.label());
                assert_eq!((size, max), (100, 100));
                refused += 1;
            }
            Err(other) => panic!("unexpected dispatch error: {other}"),
        }
    }
    assert_eq!(accepted.len(), 100);
    assert_eq!(refused, 100);
    // A refused event was not enqueued anywhere.
    assert_eq!(bus.event_history().len(), 100);
    assert_eq!(bus.queue_len(), 100);
    let err = bus.dispatch(Seq { seq: 999 }).unwrap_err();
    assert!(err.to_string().contains("history is full"), "{err}");

    // Backpressure, not a dead bus: as soon as one event completes there is room again.
    started.notified().await;
    release.close();
    accepted[0].clone().await?;
    let late = bus.dispatch(Seq { seq: 1000 })?;
    assert!(bus.find_event_by_id(accepted[0].event_id()).is_none());
    assert_eq!(late.event_result().await?, 1000);
    bus.wait_until_idle(None).await;
    assert!(accepted.iter().all(|e| e.is_complete()));
    Ok(())
}

#[tokio::test]
async fn completed_events_make_room_first_with_either_policy() -> anyhow::Result<()> {
    for drop_unfinished in [false, true] {
        let bus = EventBus::builder("MixedHistory")
            .max_history_size(Some(3))
            .history_full(if drop_unfinished {
                HistoryFull::DropOldest
            } else {
                HistoryFull::Reject
            })
            .build();
        let started = Arc::new(Notify::new());
        let release = gate();
        blocking_seq_handler(&bus, &started, &release);

        // One completed event, then two that cannot finish.
        let done = bus.dispatch(Seq { seq: 0 })?;
        started.notified().await;
        release.add_permits(1);
        done.clone().await?;
        let b = bus.dispatch(Seq { seq: 1 })?;
        let c = bus.dispatch(Seq { seq: 2 })?;
        started.notified().await;
        assert_eq!(seqs(&bus), [0, 1, 2]);

        // The completed event is evicted for the fourth.
        let d = bus.dispatch(Seq { seq: 3 })?;
        assert_eq!(seqs(&bus), [1, 2, 3]);

        // Now only unfinished events are left: refuse, or evict the oldest of them.
        let e = bus.dispatch(Seq { seq: 4 });
        if drop_unfinished {
            assert!(e.is_ok());
            assert_eq!(seqs(&bus), [2, 3, 4]);
        } else {
            assert!(matches!(e, Err(DispatchError::HistoryFull { .. })));
            assert_eq!(seqs(&bus), [1, 2, 3]);
        }

        release.close();
        for event in [&b, &c, &d] {
            assert!(event.clone().await?.is_complete());
        }
        bus.wait_until_idle(None).await;
    }
    Ok(())
}

#[tokio::test]
async fn unbounded_history_never_refuses_and_keeps_everything() -> anyhow::Result<()> {
    let bus = EventBus::builder("NoLimitBus")
        .max_history_size(None)
        .build();
    let started = Arc::new(Notify::new());
    let release = gate();
    blocking_seq_handler(&bus, &started, &release);

    // 150 unfinished events: more than the default bound, and none refused.
    let events: Vec<_> = (0..150)
        .map(|seq| bus.dispatch(Seq { seq }))
        .collect::<Result<_, _>>()?;
    started.notified().await;
    assert_eq!(bus.event_history().len(), 150);

    release.close();
    bus.wait_until_idle(None).await;
    assert_eq!(seqs(&bus), (0..150).collect::<Vec<_>>());
    assert_eq!(bus.events_completed().len(), 150);
    for (seq, event) in (0..).zip(&events) {
        assert_eq!(event.event_result().await?, seq);
    }
    Ok(())
}

#[tokio::test]
async fn zero_history_keeps_only_in_flight_events_and_never_refuses() -> anyhow::Result<()> {
    let bus = EventBus::builder("ZeroHistoryBus")
        .max_history_size(Some(0))
        .build();
    let started = Arc::new(Notify::new());
    let release = gate();
    blocking_seq_handler(&bus, &started, &release);

    let first = bus.dispatch(Seq { seq: 0 })?;
    started.notified().await;
    let rest: Vec<_> = (1..25)
        .map(|seq| bus.dispatch(Seq { seq }))
        .collect::<Result<_, _>>()?;

    // In-flight (started or queued) events are kept, and findable.
    assert_eq!(seqs(&bus), (0..25).collect::<Vec<_>>());
    assert_eq!(bus.queue_len(), 24);
    assert_eq!(bus.events_started().len(), 1);
    assert_eq!(bus.events_pending().len(), 24);
    assert!(bus.find_event_by_id(first.event_id()).is_some());

    release.close();
    first.clone().await?;
    for event in &rest {
        event.clone().await?;
    }
    bus.wait_until_idle(None).await;

    // Completed events are forgotten at once.
    assert!(bus.event_history().is_empty());
    assert_eq!(bus.queue_len(), 0);
    assert!(bus.find_event_by_id(first.event_id()).is_none());
    assert_eq!(bus.log_tree(), "(No events in history)");
    // The handles still work.
    assert_eq!(first.event_result().await?, 0);
    Ok(())
}

#[tokio::test]
async fn status_views_follow_each_event_through_its_lifecycle() -> anyhow::Result<()> {
    let bus = EventBus::new("StatusViewsBus");
    let started = Arc::new(Notify::new());
    let release = gate();
    blocking_seq_handler(&bus, &started, &release);

    release.add_permits(2);
    let done: Vec<_> = (0..2)
        .map(|seq| bus.dispatch(Seq { seq }))
        .collect::<Result<_, _>>()?;
    for event in &done {
        event.clone().await?;
    }
    let running = bus.dispatch(Seq { seq: 2 })?;
    let queued: Vec<_> = (3..5)
        .map(|seq| bus.dispatch(Seq { seq }))
        .collect::<Result<_, _>>()?;

    let ids = |events: Vec<bubus::AnyEvent>| -> Vec<Uuid> {
        events.iter().map(|e| e.event_id()).collect()
    };
    // Nothing has run since the dispatches: all three are pending.
    assert_eq!(bus.events_pending().len(), 3);
    // Wait for the third one's handler to start (the two permits were used by the first two).
    started.notified().await;
    while bus.events_started().is_empty() {
        started.notified().await;
    }
    assert_eq!(
        ids(bus.events_completed()),
        done.iter().map(|e| e.event_id()).collect::<Vec<_>>()
    );
    assert_eq!(ids(bus.events_started()), [running.event_id()]);
    assert_eq!(
        ids(bus.events_pending()),
        queued.iter().map(|e| e.event_id()).collect::<Vec<_>>()
    );
    assert_eq!(bus.events_with_status(EventStatus::Started).len(), 1);

    release.close();
    bus.wait_until_idle(None).await;
    assert_eq!(bus.events_completed().len(), 5);
    assert!(bus.events_started().is_empty());
    assert!(bus.events_pending().is_empty());
    Ok(())
}

/// `wait_until_idle` must not return before the event that made the bus idle is completed (and,
/// on a bus that keeps only in-flight events, forgotten). On a multi-thread runtime the waiter
/// runs on another worker, so any gap between "idle" and "completed" shows up here.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idle_means_the_last_event_is_already_complete() -> anyhow::Result<()> {
    let bus = EventBus::new("IdleBus");
    let zero = EventBus::builder("IdleZeroBus")
        .max_history_size(Some(0))
        .build();
    bus.on(|event: EventHandle<Seq>| event.seq);
    zero.on(|event: EventHandle<Seq>| event.seq);

    for seq in 0..2_000 {
        let event = bus.dispatch(Seq { seq })?;
        bus.wait_until_idle(None).await;
        assert!(event.is_complete(), "idle before event {seq} completed");
        assert_eq!(event.event_status(), EventStatus::Completed);

        let _event = zero.dispatch(Seq { seq })?;
        zero.wait_until_idle(None).await;
        assert!(
            zero.event_history().is_empty(),
            "idle before event {seq} left the zero-size history"
        );
    }
    Ok(())
}
