//! Debouncing (semantics §1.15): ports `tests/test_eventbus_debounce.py` and
//! `bubus-ts/tests/eventbus_debounce.test.ts`.
//!
//! The reference builds debouncing from `find` and a conditional `emit` (`await find(...) ??
//! emit(...)`); here the same patterns are one call, [`FindQuery::or_dispatch`]: reuse a recent
//! matching event, or wait briefly for one, else dispatch a new one.
//!
//! [`FindQuery::or_dispatch`]: bubus::bus::FindQuery::or_dispatch

use std::future::IntoFuture;
use std::time::Duration;

use bubus::{DispatchError, Event, EventBus, EventHandle, EventStatus};
use bubus_test_support::Recorder;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ParentEvent {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct SyncEvent {}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ScreenshotEvent {
    target_id: String,
    #[serde(default)]
    full_page: bool,
}

const TARGET_1: &str = "9b447756-908c-7b75-8a51-4a2c2b4d9b14";
const TARGET_2: &str = "194870e1-fa02-70a4-8101-d10d57c3449c";

fn screenshot(target_id: &str) -> ScreenshotEvent {
    ScreenshotEvent {
        target_id: target_id.into(),
        full_page: false,
    }
}

/// Answers every `E` with `"done"` and logs its type.
fn answer<E: Event<Result = String>>(bus: &EventBus, log: &Recorder) {
    let log = log.clone();
    bus.on(move |_: EventHandle<E>| {
        log.push(E::EVENT_TYPE);
        String::from("done")
    });
}

fn count<E: Event>(bus: &EventBus) -> usize {
    bus.event_history()
        .iter()
        .filter(|e| e.event_type() == E::EVENT_TYPE)
        .count()
}

/// The history-only pattern: a screenshot of `target` from the last ten seconds, or a new one.
async fn screenshot_of(bus: &EventBus, target: &'static str) -> EventHandle<ScreenshotEvent> {
    bus.find::<ScreenshotEvent>()
        .past_within(Duration::from_secs(10))
        .matching(move |e| e.target_id == target)
        .or_dispatch(|| screenshot(target))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_recent_child_of_the_parent_is_reused() {
    let bus = EventBus::new("DebounceChildBus");
    let log = Recorder::new();
    bus.on(|e: EventHandle<ParentEvent>| async move {
        let bus = e.event_bus().unwrap();
        bus.dispatch(screenshot("0c1ccf21-65c0-7390-8b64-9182e985740e"))?
            .await?;
        Ok::<_, bubus::Error>(String::from("parent_done"))
    });
    answer::<ScreenshotEvent>(&bus, &log);

    let parent = bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    let child = parent.event_children()[0].clone();

    let reused = bus
        .find::<ScreenshotEvent>()
        .child_of(&parent)
        .past_within(Duration::from_secs(10))
        .or_dispatch(|| screenshot("d41abf01-392b-7f28-8992-3105a258867d"))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(reused.event_id(), child.event_id());
    assert_eq!(reused.event_parent_id(), Some(parent.event_id()));
    assert_eq!(count::<ScreenshotEvent>(&bus), 1, "nothing new dispatched");
    assert_eq!(log.entries(), ["ScreenshotEvent"]);
}

/// As the TypeScript test, with the child linked by an explicit parent id from outside any
/// handler.
#[tokio::test]
async fn an_explicitly_linked_child_is_reused_and_an_unlinked_one_is_not() {
    let bus = EventBus::new("DebounceExplicitParentBus");
    let parent = bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    let child = EventHandle::new(screenshot(TARGET_1)).with_event_parent_id(parent.event_id());
    bus.dispatch(&child).unwrap().await.unwrap();
    bus.dispatch(screenshot(TARGET_2)).unwrap().await.unwrap();

    let reused = bus
        .find::<ScreenshotEvent>()
        .child_of(&parent)
        .past_within(Duration::from_secs(10))
        .or_dispatch(|| screenshot(TARGET_2))
        .await
        .unwrap();
    assert_eq!(reused.event_id(), child.event_id());
    assert_eq!(reused.event_parent_id(), Some(parent.event_id()));
}

#[tokio::test]
async fn a_fresh_existing_event_is_returned() {
    let bus = EventBus::new("DebounceFreshBus");
    let log = Recorder::new();
    answer::<ScreenshotEvent>(&bus, &log);
    let original = bus.dispatch(screenshot(TARGET_1)).unwrap().await.unwrap();

    let result = bus
        .find::<ScreenshotEvent>()
        .matching(|e| {
            e.target_id == TARGET_1
                && e.event_completed_at()
                    .is_some_and(|at| at.elapsed() < Duration::from_secs(5))
        })
        .or_dispatch(|| screenshot(TARGET_1))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(result.event_id(), original.event_id());
    assert_eq!(log.len(), 1, "the handler ran once");
}

#[tokio::test]
async fn a_new_event_is_dispatched_when_nothing_matches() {
    let bus = EventBus::new("DebounceNoMatchBus");
    let log = Recorder::new();
    answer::<ScreenshotEvent>(&bus, &log);

    let result = bus
        .find::<ScreenshotEvent>()
        .matching(|e| e.target_id == TARGET_1)
        .or_dispatch(|| screenshot(TARGET_1))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(result.target_id, TARGET_1);
    assert_eq!(result.event_status(), EventStatus::Completed);
    assert_eq!(result.event_result().await.unwrap(), "done");
}

#[tokio::test]
async fn a_new_event_is_dispatched_when_the_existing_one_is_stale() {
    let bus = EventBus::new("DebounceStaleBus");
    let log = Recorder::new();
    answer::<ScreenshotEvent>(&bus, &log);
    let old = bus.dispatch(screenshot(TARGET_1)).unwrap().await.unwrap();

    // A freshness rule nothing passes.
    let max_age = Duration::ZERO;
    let result = bus
        .find::<ScreenshotEvent>()
        .matching(move |e| {
            e.target_id == TARGET_1
                && e.event_completed_at()
                    .is_some_and(|at| at.elapsed() < max_age)
        })
        .or_dispatch(|| screenshot(TARGET_1))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_ne!(result.event_id(), old.event_id());
    assert_eq!(count::<ScreenshotEvent>(&bus), 2);

    // Nor does anything older than a window that ends before the new lookup.
    let window = result.event_created_at().elapsed();
    let again = bus
        .find::<ScreenshotEvent>()
        .past_within(window)
        .or_dispatch(|| screenshot(TARGET_1))
        .await
        .unwrap();
    assert_ne!(again.event_id(), result.event_id());
    assert_eq!(count::<ScreenshotEvent>(&bus), 3);
}

#[tokio::test(start_paused = true)]
async fn sequential_lookups_reuse_per_key_without_waiting() {
    let bus = EventBus::new("DebounceSequentialBus");
    let log = Recorder::new();
    answer::<ScreenshotEvent>(&bus, &log);

    let start = Instant::now();
    let result1 = screenshot_of(&bus, TARGET_1).await;
    let result2 = screenshot_of(&bus, TARGET_1).await;
    let result3 = screenshot_of(&bus, TARGET_2).await;
    for result in [&result1, &result2, &result3] {
        result.clone().await.unwrap();
    }
    assert_eq!(start.elapsed(), Duration::ZERO, "no lookup waited");

    assert_eq!(result1.event_id(), result2.event_id());
    assert_ne!(result1.event_id(), result3.event_id());
    assert_eq!(result3.target_id, TARGET_2);
    assert_eq!(log.len(), 2, "one screenshot per target");
}

/// The reuse includes events still in flight: callers racing for the same key share one event
/// (the first one dispatches; the others find it pending in the history).
#[tokio::test]
async fn concurrent_callers_share_one_in_flight_event() {
    let bus = EventBus::new("DebounceConcurrentBus");
    let log = Recorder::new();
    let l = log.clone();
    bus.on(move |_: EventHandle<ScreenshotEvent>| {
        let l = l.clone();
        async move {
            tokio::task::yield_now().await;
            l.push("shot");
            String::from("done")
        }
    });

    let callers = futures::future::join_all((0..5).map(|_| screenshot_of(&bus, TARGET_1))).await;
    let id = callers[0].event_id();
    assert!(callers.iter().all(|e| e.event_id() == id));
    for caller in callers {
        assert_eq!(caller.event_result().await.unwrap(), "done");
    }
    assert_eq!(log.entries(), ["shot"]);
}

#[tokio::test(start_paused = true)]
async fn empty_history_lookups_return_at_once() {
    let bus = EventBus::new("DebounceImmediateBus");
    let start = Instant::now();
    assert!(bus.find::<ParentEvent>().past().await.is_none());
    assert!(
        bus.find::<ParentEvent>()
            .past_within(Duration::from_secs(5))
            .await
            .is_none()
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
}

// ---------------------------------------------------------------------------------------------
// History, then a short wait, then dispatch
// ---------------------------------------------------------------------------------------------

/// The hybrid pattern: the most recent `SyncEvent`, else the next one within `wait`, else a new
/// one.
async fn sync_event(bus: &EventBus, wait: Duration) -> EventHandle<SyncEvent> {
    bus.find::<SyncEvent>()
        .past()
        .future_within(wait)
        .or_dispatch(SyncEvent::default)
        .await
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_hybrid_pattern_takes_an_event_dispatched_during_the_wait() {
    let bus = EventBus::new("AdvancedDebounceBus");
    let log = Recorder::new();
    answer::<SyncEvent>(&bus, &log);

    let start = Instant::now();
    let (resolved, dispatched) =
        tokio::join!(sync_event(&bus, Duration::from_millis(500)), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            bus.dispatch(SyncEvent {}).unwrap()
        });
    let resolved = resolved.await.unwrap();
    assert_eq!(resolved.event_id(), dispatched.event_id());
    assert_eq!(start.elapsed(), Duration::from_millis(50));
    assert_eq!(count::<SyncEvent>(&bus), 1, "nothing extra dispatched");
    assert_eq!(log.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_hybrid_pattern_prefers_history_then_dispatches_after_the_wait() {
    let bus = EventBus::new("AdvancedDebounceFallbackBus");
    let log = Recorder::new();
    answer::<SyncEvent>(&bus, &log);

    // Nothing in history, nothing arrives: a new event after the wait.
    let start = Instant::now();
    let created = sync_event(&bus, Duration::from_millis(500)).await;
    assert_eq!(start.elapsed(), Duration::from_millis(500));
    let created = created.await.unwrap();
    assert_eq!(created.event_status(), EventStatus::Completed);

    // Now history has one: it comes back at once.
    let start = Instant::now();
    let reused = sync_event(&bus, Duration::from_millis(500)).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(reused.event_id(), created.event_id());
    assert_eq!(count::<SyncEvent>(&bus), 1);
}

/// The reference's three-step spelling: start waiting first, check history, then await the wait,
/// then dispatch — the wait is registered before anything else happens, so nothing slips by.
#[tokio::test(start_paused = true)]
async fn the_three_step_spelling_of_the_hybrid_pattern_works_too() {
    let bus = EventBus::new("AdvancedDebounceStepsBus");
    let log = Recorder::new();
    answer::<SyncEvent>(&bus, &log);

    let pending = bus
        .find::<SyncEvent>()
        .no_past()
        .future_within(Duration::from_millis(500))
        .into_future();
    let dispatcher = {
        let bus = bus.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            bus.dispatch(SyncEvent {}).unwrap().await.unwrap()
        })
    };
    let resolved = match bus.find::<SyncEvent>().past().await {
        Some(found) => found,
        None => match pending.await {
            Some(found) => found,
            None => bus.dispatch(SyncEvent {}).unwrap(),
        },
    };
    let dispatched = dispatcher.await.unwrap();
    assert_eq!(resolved.event_id(), dispatched.event_id());
    assert_eq!(resolved.event_type(), "SyncEvent");
    assert_eq!(count::<SyncEvent>(&bus), 1);
}

#[tokio::test]
async fn or_dispatch_reports_a_refused_dispatch() {
    let bus = EventBus::new("DebounceStoppedBus");
    bus.stop(None).await;
    let err = bus
        .find::<SyncEvent>()
        .or_dispatch(SyncEvent::default)
        .await
        .unwrap_err();
    assert!(matches!(err, DispatchError::Stopped { .. }), "{err:?}");
}
