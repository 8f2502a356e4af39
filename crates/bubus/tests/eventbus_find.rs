//! `find` and `expect` (semantics §1.14): ports `tests/test_eventbus_find.py` and
//! `bubus-ts/tests/eventbus_find.test.ts`, the find checks of the cross-runtime subtests, and the
//! seed API's `expect` (include / exclude / timeout).
//!
//! `find` searches this bus's history newest first (any status), and/or waits for the next
//! matching dispatch; future matches resolve at dispatch, before any handler runs.
//!
//! `past_within` windows are measured on tokio's clock: the window tests pause it and advance it
//! between events, so no real time passes.

use bubus_test_support::string_events;
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use bubus::{AnyEvent, DynEvent, Event, EventBus, EventHandle, EventStatus, WaitError};
use bubus_test_support::Recorder;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

string_events!(
    ParentEvent,
    ChildEvent,
    GrandchildEvent,
    UnrelatedEvent,
    SystemEvent,
    DifferentNameFromType,
);

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ScreenshotEvent {
    target_id: String,
    #[serde(default)]
    full_page: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct NavigateEvent {
    url: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct TabCreatedEvent {
    tab_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct UserActionEvent {
    action: String,
    user_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct NumberedEvent {
    value: i64,
}

const TARGET_1: &str = "9b447756-908c-7b75-8a51-4a2c2b4d9b14";
const TARGET_2: &str = "194870e1-fa02-70a4-8101-d10d57c3449c";
const TARGET_CHILD: &str = "12f38f3d-d8a7-7ae2-8778-bc27e285ea34";
const USER_1: &str = "b57fcb67-faeb-7a56-8907-116d8cbb1472";
const USER_2: &str = "28536f9b-4031-7f53-827f-98c24c1b3839";

fn screenshot(target_id: &str) -> ScreenshotEvent {
    ScreenshotEvent {
        target_id: target_id.into(),
        full_page: false,
    }
}

fn user_action(action: &str, user_id: &str) -> UserActionEvent {
    UserActionEvent {
        action: action.into(),
        user_id: user_id.into(),
    }
}

/// Answers every `E` with `"done"`.
fn answer<E: Event<Result = String>>(bus: &EventBus) {
    bus.on(|_: EventHandle<E>| String::from("done"));
}

/// A handler for `E` that dispatches a `C` on the bus running it, awaits it, and records its id.
fn dispatches_child<E, C>(bus: &EventBus, child: C, ids: &Recorder)
where
    E: Event<Result = String>,
    C: Event + Clone,
{
    let ids = ids.clone();
    bus.on(move |e: EventHandle<E>| {
        let (ids, child) = (ids.clone(), child.clone());
        async move {
            let bus = e.event_bus().expect("running on a bus");
            let child = bus.dispatch(child)?.await?;
            ids.push(child.event_id());
            Ok::<_, bubus::Error>(String::from("parent_done"))
        }
    });
}

/// A handler for `E` that waits until the gate opens; `started` is notified when it begins.
fn gated<E: Event<Result = String>>(bus: &EventBus) -> (watch::Sender<bool>, Arc<Notify>) {
    let (open, gate) = watch::channel(false);
    let started = Arc::new(Notify::new());
    let s = Arc::clone(&started);
    bus.on(move |_: EventHandle<E>| {
        let (mut gate, started) = (gate.clone(), Arc::clone(&s));
        async move {
            started.notify_one();
            let _ = gate.wait_for(|open| *open).await;
            String::from("done")
        }
    });
    (open, started)
}

/// How far the paused clock moves between the old and the new events of the window tests.
const GAP: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------
// Lineage helpers (TestEventIsChildOf / TestEventIsParentOf)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn event_is_child_of_follows_parents_and_grandparents_only_upwards() {
    let bus = EventBus::new("LineageBus");
    let (children, grandchildren) = (Recorder::new(), Recorder::new());
    dispatches_child::<ParentEvent, _>(&bus, ChildEvent {}, &children);
    dispatches_child::<ChildEvent, _>(&bus, GrandchildEvent {}, &grandchildren);
    answer::<GrandchildEvent>(&bus);
    answer::<UnrelatedEvent>(&bus);

    let parent = bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    let unrelated = bus.dispatch(UnrelatedEvent {}).unwrap().await.unwrap();
    let child = bus.find::<ChildEvent>().await.unwrap();
    let grandchild = bus.find::<GrandchildEvent>().await.unwrap();
    assert_eq!(children.entries(), [child.event_id().to_string()]);
    assert_eq!(grandchildren.entries(), [grandchild.event_id().to_string()]);

    assert!(bus.event_is_child_of(&child, &parent));
    assert!(bus.event_is_child_of(&grandchild, &parent));
    assert!(bus.event_is_child_of(&grandchild, &child));
    assert!(!bus.event_is_child_of(&unrelated, &parent));
    assert!(
        !bus.event_is_child_of(&parent, &parent),
        "not its own child"
    );
    assert!(!bus.event_is_child_of(&parent, &child), "reversed");

    assert!(bus.event_is_parent_of(&parent, &child));
    assert!(bus.event_is_parent_of(&parent, &grandchild));
    assert!(!bus.event_is_parent_of(&child, &parent));
}

// ---------------------------------------------------------------------------------------------
// Past only
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn find_returns_a_matching_event_from_history_typed() {
    let bus = EventBus::new("FindPastBus");
    answer::<NumberedEvent>(&bus);
    let dispatched = bus
        .dispatch(NumberedEvent { value: 7 })
        .unwrap()
        .await
        .unwrap();

    let found: EventHandle<NumberedEvent> = bus.find::<NumberedEvent>().past().await.unwrap();
    assert_eq!(found.event_id(), dispatched.event_id());
    assert_eq!(found.value, 7, "typed access to the payload");
    assert_eq!(found.event_result().await.unwrap(), "done");
    // Found events keep their path, ending with this bus.
    assert_eq!(
        found.event_path().last().map(String::as_str),
        Some(bus.label())
    );
}

#[tokio::test]
async fn find_returns_none_when_nothing_matches() {
    let bus = EventBus::new("FindNothingBus");
    answer::<ParentEvent>(&bus);
    assert!(bus.find::<ParentEvent>().await.is_none());

    bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    assert!(bus.find::<UnrelatedEvent>().await.is_none());
    assert!(bus.find_pattern("UnrelatedEvent").await.is_none());
}

#[tokio::test]
async fn history_lookup_is_bus_scoped() {
    let bus_a = EventBus::new("FindScopeA");
    let bus_b = EventBus::new("FindScopeB");
    answer::<NumberedEvent>(&bus_b);
    bus_b
        .dispatch(NumberedEvent { value: 10 })
        .unwrap()
        .await
        .unwrap();

    assert!(bus_a.find::<NumberedEvent>().await.is_none());
    assert_eq!(bus_b.find::<NumberedEvent>().await.unwrap().value, 10);
}

#[tokio::test]
async fn the_most_recent_match_wins() {
    let bus = EventBus::new("FindRecentBus");
    answer::<NumberedEvent>(&bus);
    for value in 1..=3 {
        bus.dispatch(NumberedEvent { value })
            .unwrap()
            .await
            .unwrap();
    }
    assert_eq!(bus.find::<NumberedEvent>().await.unwrap().value, 3);
    assert_eq!(
        bus.find::<NumberedEvent>()
            .matching(|e| e.value < 3)
            .await
            .unwrap()
            .value,
        2
    );
}

#[tokio::test]
async fn matching_filters_history() {
    let bus = EventBus::new("FindWhereBus");
    answer::<ScreenshotEvent>(&bus);
    bus.dispatch(screenshot(TARGET_1)).unwrap().await.unwrap();
    let second = bus.dispatch(screenshot(TARGET_2)).unwrap().await.unwrap();
    bus.dispatch(screenshot(TARGET_1)).unwrap().await.unwrap();

    let found = bus
        .find::<ScreenshotEvent>()
        .matching(|e| e.target_id == TARGET_2)
        .await
        .unwrap();
    assert_eq!(found.event_id(), second.event_id());
    // Several predicates must all accept.
    let none = bus
        .find::<ScreenshotEvent>()
        .matching(|e| e.target_id == TARGET_2)
        .matching(|e| e.full_page)
        .await;
    assert!(none.is_none());
}

#[tokio::test]
async fn past_includes_pending_and_started_events() {
    let bus = EventBus::new("FindInFlightBus");
    let (open, started) = gated::<ParentEvent>(&bus);
    let running = bus.dispatch(ParentEvent {}).unwrap();
    let queued = bus.dispatch(ParentEvent {}).unwrap();
    started.notified().await;

    let newest = bus.find::<ParentEvent>().await.unwrap();
    assert_eq!(newest.event_id(), queued.event_id());
    assert_eq!(newest.event_status(), EventStatus::Pending);
    let started_one = bus
        .find::<ParentEvent>()
        .field("event_status", "started")
        .await
        .unwrap();
    assert_eq!(started_one.event_id(), running.event_id());

    open.send_replace(true);
    let queued = queued.await.unwrap();
    let completed = bus
        .find::<ParentEvent>()
        .field("event_status", "completed")
        .await
        .unwrap();
    assert_eq!(completed.event_id(), queued.event_id());
    assert!(
        bus.find::<ParentEvent>()
            .field("event_status", "pending")
            .await
            .is_none()
    );
}

#[tokio::test(start_paused = true)]
async fn the_default_is_past_only_and_never_waits() {
    let bus = EventBus::new("FindDefaultBus");
    answer::<ParentEvent>(&bus);
    let start = Instant::now();
    assert!(bus.find::<ParentEvent>().await.is_none());
    assert!(
        bus.find::<ParentEvent>()
            .past_within(Duration::from_secs(5))
            .await
            .is_none()
    );
    assert_eq!(start.elapsed(), Duration::ZERO, "no waiting at all");

    let dispatched = bus.dispatch(ParentEvent {}).unwrap();
    assert_eq!(
        bus.find::<ParentEvent>().await.unwrap().event_id(),
        dispatched.event_id()
    );
}

#[tokio::test]
async fn field_filters_match_metadata_like_event_id_and_event_timeout() {
    let bus = EventBus::new("FindFieldBus");
    answer::<ParentEvent>(&bus);
    let event_a = EventHandle::new(ParentEvent {}).with_event_timeout(Duration::from_secs(11));
    let event_b = EventHandle::new(ParentEvent {}).with_event_timeout(Duration::from_secs(22));
    bus.dispatch(&event_a).unwrap().await.unwrap();
    bus.dispatch(&event_b).unwrap().await.unwrap();

    let found = bus
        .find::<ParentEvent>()
        .field("event_id", event_a.event_id().to_string())
        .field("event_timeout", 11)
        .await
        .expect("an integer matches the same number of seconds");
    assert_eq!(found.event_id(), event_a.event_id());
    let found = bus.find::<ParentEvent>().field("event_timeout", 22.0).await;
    assert_eq!(found.unwrap().event_id(), event_b.event_id());

    let mismatch = bus
        .find::<ParentEvent>()
        .field("event_id", event_a.event_id().to_string())
        .field("event_timeout", 22)
        .await;
    assert!(mismatch.is_none());
    // An unset option is null.
    let plain = bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    let found = bus
        .find::<ParentEvent>()
        .field("event_timeout", serde_json::Value::Null)
        .await;
    assert_eq!(found.unwrap().event_id(), plain.event_id());
}

#[tokio::test]
async fn field_filters_match_payload_fields() {
    let bus = EventBus::new("FindDataFieldBus");
    answer::<UserActionEvent>(&bus);
    answer::<NumberedEvent>(&bus);
    bus.dispatch(user_action("logout", USER_2))
        .unwrap()
        .await
        .unwrap();
    let expected = bus
        .dispatch(user_action("login", USER_1))
        .unwrap()
        .await
        .unwrap();
    bus.dispatch(user_action("login", USER_2))
        .unwrap()
        .await
        .unwrap();
    let forty_two = bus
        .dispatch(NumberedEvent { value: 42 })
        .unwrap()
        .await
        .unwrap();

    let found = bus
        .find::<UserActionEvent>()
        .field("action", "login")
        .field("user_id", USER_1)
        .await
        .unwrap();
    assert_eq!(found.event_id(), expected.event_id());
    assert!(
        bus.find::<UserActionEvent>()
            .field("action", "signup")
            .await
            .is_none()
    );
    assert!(
        bus.find::<UserActionEvent>()
            .field("no_such_field", "login")
            .await
            .is_none()
    );
    // Numbers compare by value, whatever JSON spelling the filter uses.
    let found = bus.find::<NumberedEvent>().field("value", 42.0).await;
    assert_eq!(found.unwrap().event_id(), forty_two.event_id());
}

#[tokio::test]
async fn a_wildcard_with_a_predicate_matches_across_types_in_history() {
    let bus = EventBus::new("FindWildcardPastBus");
    answer::<UserActionEvent>(&bus);
    answer::<SystemEvent>(&bus);
    let expected = bus
        .dispatch(user_action("login", USER_1))
        .unwrap()
        .await
        .unwrap();
    bus.dispatch(SystemEvent {}).unwrap().await.unwrap();

    let found: AnyEvent = bus
        .find_pattern("*")
        .matching(|e: &AnyEvent| {
            e.downcast::<UserActionEvent>()
                .is_some_and(|e| e.user_id == USER_1)
        })
        .await
        .unwrap();
    assert_eq!(found.event_id(), expected.event_id());
    assert_eq!(found.event_type(), "UserActionEvent");
    // Without the predicate the newest event of any type wins.
    assert_eq!(
        bus.find_pattern("*").await.unwrap().event_type(),
        "SystemEvent"
    );
}

#[tokio::test(start_paused = true)]
async fn a_past_window_keeps_recent_events_and_drops_old_ones() {
    let bus = EventBus::new("FindWindowBus");
    answer::<ParentEvent>(&bus);
    answer::<ScreenshotEvent>(&bus);
    let old = bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    let old_shot = bus.dispatch(screenshot(TARGET_1)).unwrap().await.unwrap();
    tokio::time::advance(GAP).await;
    let new = bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    let new_shot = bus.dispatch(screenshot(TARGET_2)).unwrap().await.unwrap();
    // The old events are a whole gap old, the new ones younger than half of it.
    tokio::time::advance(GAP / 4).await;
    let window = GAP / 2;

    let found = bus.find::<ParentEvent>().past_within(window).await;
    assert_eq!(found.unwrap().event_id(), new.event_id());
    let found = bus
        .find::<ParentEvent>()
        .past_within(window)
        .matching({
            let old = old.event_id();
            move |e| e.event_id() == old
        })
        .await;
    assert!(found.is_none(), "the old event is outside the window");
    let found = bus
        .find::<ParentEvent>()
        .past_within(Duration::from_secs(3600))
        .matching({
            let old = old.event_id();
            move |e| e.event_id() == old
        })
        .await;
    assert_eq!(found.unwrap().event_id(), old.event_id());

    // With a predicate, as the reference's screenshot case.
    let recent_shot = bus
        .find::<ScreenshotEvent>()
        .past_within(window)
        .matching(|e| e.target_id == TARGET_2)
        .await;
    assert_eq!(recent_shot.unwrap().event_id(), new_shot.event_id());
    let stale_shot = bus
        .find::<ScreenshotEvent>()
        .past_within(window)
        .matching(|e| e.target_id == TARGET_1)
        .await;
    assert!(stale_shot.is_none(), "{} is too old", old_shot.label());
}

#[tokio::test(start_paused = true)]
async fn a_window_shorter_than_every_event_age_finds_nothing() {
    let bus = EventBus::new("FindTooOldBus");
    answer::<ParentEvent>(&bus);
    bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    tokio::time::advance(Duration::from_millis(20)).await;

    // The event is 20 ms old: a window of exactly that (or less) no longer holds it.
    for window in [Duration::from_millis(20), Duration::from_millis(19)] {
        assert!(
            bus.find::<ParentEvent>()
                .past_within(window)
                .await
                .is_none(),
            "{window:?}"
        );
    }
    assert!(
        bus.find::<ParentEvent>()
            .past_within(Duration::from_millis(21))
            .await
            .is_some()
    );
    assert!(
        bus.find::<ParentEvent>()
            .past_within(Duration::ZERO)
            .await
            .is_none()
    );
    assert!(
        bus.find::<ParentEvent>()
            .past_within(Duration::from_secs(5))
            .await
            .is_some()
    );
}

#[tokio::test]
async fn zero_history_finds_only_in_flight_events_but_future_waits_work() {
    let bus = EventBus::builder("FindZeroHistoryBus")
        .max_history_size(Some(0))
        .build();
    let (open, started) = gated::<ParentEvent>(&bus);

    let waiter = bus.find::<ParentEvent>().no_past().future();
    let (found, dispatched) = tokio::join!(waiter.into_future(), async {
        bus.dispatch(ParentEvent {}).unwrap()
    });
    assert_eq!(found.unwrap().event_id(), dispatched.event_id());

    started.notified().await;
    let in_flight = bus.find::<ParentEvent>().await;
    assert_eq!(in_flight.unwrap().event_id(), dispatched.event_id());

    open.send_replace(true);
    dispatched.clone().await.unwrap();
    assert!(bus.find_event_by_id(dispatched.event_id()).is_none());
    assert!(bus.find::<ParentEvent>().await.is_none());
}

// ---------------------------------------------------------------------------------------------
// Future only
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn future_waits_for_the_next_dispatch() {
    let bus = EventBus::new("FindFutureBus");
    answer::<ParentEvent>(&bus);
    let waiter = bus
        .find::<ParentEvent>()
        .no_past()
        .future_within(Duration::from_secs(1));
    let start = Instant::now();
    let (found, dispatched) = tokio::join!(waiter.into_future(), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        bus.dispatch(ParentEvent {}).unwrap()
    });
    assert_eq!(found.unwrap().event_id(), dispatched.event_id());
    assert_eq!(start.elapsed(), Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn future_times_out_with_none() {
    let bus = EventBus::new("FindTimeoutBus");
    let start = Instant::now();
    let found = bus
        .find::<ParentEvent>()
        .no_past()
        .future_within(Duration::from_millis(50))
        .await;
    assert!(found.is_none());
    assert_eq!(start.elapsed(), Duration::from_millis(50));
}

#[tokio::test(start_paused = true)]
async fn future_only_ignores_events_already_dispatched() {
    let bus = EventBus::new("FindIgnoresPastBus");
    let (open, started) = gated::<ParentEvent>(&bus);
    open.send_replace(true);
    bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    started.notified().await; // the first run's notification
    let found = bus
        .find::<ParentEvent>()
        .no_past()
        .future_within(Duration::from_millis(50))
        .await;
    assert!(found.is_none(), "a completed event is history, not future");

    // Nor one still in flight.
    open.send_replace(false);
    let in_flight = bus.dispatch(ParentEvent {}).unwrap();
    started.notified().await;
    let found = bus
        .find::<ParentEvent>()
        .no_past()
        .future_within(Duration::from_millis(50))
        .await;
    assert!(found.is_none(), "an in-flight event is history, not future");
    open.send_replace(true);
    in_flight.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn future_matches_by_type_name_including_dynamic_events() {
    let bus = EventBus::new("FindFutureNameBus");
    bus.on_pattern("DifferentNameFromType", |_: AnyEvent| json!("done"));

    // By name, untyped.
    let by_name = bus
        .find_pattern("ParentEvent")
        .no_past()
        .future_within(Duration::from_secs(1));
    let (found, dispatched) = tokio::join!(by_name.into_future(), async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        bus.dispatch(ParentEvent {}).unwrap()
    });
    let found = found.unwrap();
    assert_eq!(found.event_id(), dispatched.event_id());
    assert_eq!(found.event_type(), "ParentEvent");

    // By type, matching a dynamic event of that type's name.
    let typed = bus
        .find::<DifferentNameFromType>()
        .no_past()
        .future_within(Duration::from_secs(1));
    let (found, dispatched) = tokio::join!(typed.into_future(), async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        bus.dispatch(DynEvent::new("DifferentNameFromType", json!({})).unwrap())
            .unwrap()
    });
    let found: EventHandle<DifferentNameFromType> = found.unwrap();
    assert_eq!(found.event_id(), dispatched.event_id());
    assert_eq!(found.event_type(), "DifferentNameFromType");
}

#[tokio::test(start_paused = true)]
async fn a_wildcard_future_wait_skips_events_the_predicate_rejects() {
    let bus = EventBus::new("FindWildcardFutureBus");
    answer::<SystemEvent>(&bus);
    answer::<UserActionEvent>(&bus);
    let waiter = bus
        .find_pattern("*")
        .no_past()
        .future_within(Duration::from_millis(300))
        .matching(|e: &AnyEvent| {
            e.event_type() == "UserActionEvent"
                && e.payload_json().is_ok_and(|p| p["action"] == "special")
        });
    let (found, expected) = tokio::join!(waiter.into_future(), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        bus.dispatch(SystemEvent {}).unwrap();
        bus.dispatch(user_action("normal", USER_1)).unwrap();
        bus.dispatch(user_action("special", USER_2)).unwrap()
    });
    let found = found.unwrap();
    assert_eq!(found.event_id(), expected.event_id());
    assert_eq!(found.event_type(), "UserActionEvent");
}

#[tokio::test(start_paused = true)]
async fn include_and_exclude_style_predicates_work_for_future_waits() {
    let bus = EventBus::new("FindFilterStylesBus");
    answer::<ScreenshotEvent>(&bus);
    let include = bus
        .find::<ScreenshotEvent>()
        .no_past()
        .future_within(Duration::from_secs(1))
        .matching(|e| e.target_id == TARGET_2);
    let exclude = bus
        .find::<ScreenshotEvent>()
        .no_past()
        .future_within(Duration::from_secs(1))
        .matching(|e| e.target_id != TARGET_1);
    let (included, excluded, ()) =
        tokio::join!(include.into_future(), exclude.into_future(), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            bus.dispatch(screenshot(TARGET_1)).unwrap().await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            bus.dispatch(screenshot(TARGET_2)).unwrap().await.unwrap();
        });
    assert_eq!(included.unwrap().target_id, TARGET_2);
    assert_eq!(excluded.unwrap().target_id, TARGET_2);
}

#[tokio::test(start_paused = true)]
async fn concurrent_waiters_each_get_their_own_event_and_are_then_removed() {
    let bus = EventBus::new("FindConcurrentBus");
    answer::<UserActionEvent>(&bus);
    answer::<SystemEvent>(&bus);
    // The predicates hold this token; once every waiter is gone, so are they.
    let token = Arc::new(());
    let waiter = |action: &'static str| {
        let token = Arc::clone(&token);
        bus.find::<UserActionEvent>()
            .no_past()
            .future_within(Duration::from_millis(500))
            .matching(move |e| {
                let _ = &token;
                e.action == action
            })
    };
    let (normal, special, system) = (waiter("normal"), waiter("special"), {
        bus.find_pattern("SystemEvent")
            .no_past()
            .future_within(Duration::from_millis(500))
    });
    assert_eq!(Arc::strong_count(&token), 3);

    let (normal, special, system, dispatched) = tokio::join!(
        normal.into_future(),
        special.into_future(),
        system.into_future(),
        async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            [
                bus.dispatch(user_action("normal", USER_1))
                    .unwrap()
                    .to_any(),
                bus.dispatch(SystemEvent {}).unwrap().to_any(),
                bus.dispatch(user_action("special", USER_2))
                    .unwrap()
                    .to_any(),
            ]
        }
    );
    assert_eq!(normal.unwrap().event_id(), dispatched[0].event_id());
    assert_eq!(system.unwrap().event_id(), dispatched[1].event_id());
    assert_eq!(special.unwrap().event_id(), dispatched[2].event_id());
    assert_eq!(Arc::strong_count(&token), 1, "resolved waiters are removed");

    // Timed-out and abandoned waiters are removed too.
    assert!(waiter("never").await.is_none());
    let abandoned = waiter("never").into_future();
    assert_eq!(Arc::strong_count(&token), 2);
    drop(abandoned);
    assert_eq!(Arc::strong_count(&token), 1);
}

#[tokio::test(start_paused = true)]
async fn a_future_match_resolves_at_dispatch_before_any_handler_runs() {
    let bus = EventBus::new("FindOnDispatchBus");
    let ran = Recorder::new();
    let r = ran.clone();
    bus.on(move |_: EventHandle<ParentEvent>| {
        let r = r.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            r.push("handled");
            String::from("done")
        }
    });

    let waiter = bus
        .find::<ParentEvent>()
        .no_past()
        .future_within(Duration::from_secs(1));
    let (found, dispatched) = tokio::join!(waiter.into_future(), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        bus.dispatch(ParentEvent {}).unwrap()
    });
    let found = found.unwrap();
    assert_eq!(found.event_id(), dispatched.event_id());
    assert_eq!(found.event_status(), EventStatus::Pending);
    assert!(ran.is_empty());

    let found = found.await.unwrap();
    assert_eq!(found.event_status(), EventStatus::Completed);
    assert_eq!(ran.entries(), ["handled"]);
}

/// Like tokio's `Notify::notified()`, a find is registered as soon as it becomes a future, so it
/// can be created, the event dispatched, and the find awaited afterwards.
#[tokio::test(start_paused = true)]
async fn a_find_turned_into_a_future_catches_dispatches_before_its_first_poll() {
    let bus = EventBus::new("FindAwaitLaterBus");
    answer::<ParentEvent>(&bus);
    let pending = bus
        .find::<ParentEvent>()
        .no_past()
        .future_within(Duration::from_millis(500))
        .into_future();
    let dispatched = bus.dispatch(ParentEvent {}).unwrap();
    let found = pending.await.expect("registered before the dispatch");
    assert_eq!(found.event_id(), dispatched.event_id());
}

#[tokio::test(start_paused = true)]
async fn neither_past_nor_future_returns_none_at_once() {
    let bus = EventBus::new("FindNeitherBus");
    answer::<ParentEvent>(&bus);
    bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    let start = Instant::now();
    let found = bus.find::<ParentEvent>().no_past().no_future().await;
    assert!(found.is_none());
    assert_eq!(start.elapsed(), Duration::ZERO);
}

// ---------------------------------------------------------------------------------------------
// Past and future
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_past_match_returns_at_once_even_with_a_future_wait() {
    let bus = EventBus::new("FindBothBus");
    answer::<ParentEvent>(&bus);
    let dispatched = bus.dispatch(ParentEvent {}).unwrap().await.unwrap();

    let start = Instant::now();
    for found in [
        bus.find::<ParentEvent>()
            .future_within(Duration::from_secs(5))
            .await,
        bus.find::<ParentEvent>().future().await,
        bus.find::<ParentEvent>()
            .past_within(Duration::from_secs(5))
            .future_within(Duration::from_secs(1))
            .await,
    ] {
        assert_eq!(found.unwrap().event_id(), dispatched.event_id());
    }
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn without_a_past_match_it_waits_for_the_future() {
    let bus = EventBus::new("FindBothWaitBus");
    answer::<ParentEvent>(&bus);
    answer::<ChildEvent>(&bus);
    bus.dispatch(ParentEvent {}).unwrap().await.unwrap();

    let waiter = bus
        .find::<ChildEvent>()
        .future_within(Duration::from_secs(1));
    let (found, dispatched) = tokio::join!(waiter.into_future(), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        bus.dispatch(ChildEvent {}).unwrap()
    });
    assert_eq!(found.unwrap().event_id(), dispatched.event_id());
}

#[tokio::test(start_paused = true)]
async fn past_and_future_windows_are_independent() {
    let bus = EventBus::new("FindIndependentBus");
    answer::<ParentEvent>(&bus);
    bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    tokio::time::advance(Duration::from_millis(10)).await;

    // The past window excludes the old event; the future window then runs out.
    let start = Instant::now();
    let found = bus
        .find::<ParentEvent>()
        .past_within(Duration::from_millis(10))
        .future_within(Duration::from_millis(50))
        .await;
    assert!(found.is_none());
    assert_eq!(start.elapsed(), Duration::from_millis(50));

    // The past window excludes it, and the future wait catches the next one.
    let waiter = bus
        .find::<ParentEvent>()
        .past_within(Duration::from_millis(10))
        .future();
    let (found, new) = tokio::join!(waiter.into_future(), async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        bus.dispatch(ParentEvent {}).unwrap()
    });
    assert_eq!(found.unwrap().event_id(), new.event_id());

    // The whole history with a short future window finds the newest at once.
    let found = bus
        .find::<ParentEvent>()
        .past()
        .future_within(Duration::from_millis(100))
        .await;
    assert_eq!(found.unwrap().event_id(), new.event_id());
}

#[tokio::test]
async fn the_most_recent_match_wins_across_completed_and_in_flight_events() {
    let bus = EventBus::new("FindRecentInFlightBus");
    let (open, started) = gated::<NumberedEvent>(&bus);
    open.send_replace(true);
    bus.dispatch(NumberedEvent { value: 1 })
        .unwrap()
        .await
        .unwrap();
    started.notified().await; // the first run's notification
    open.send_replace(false);
    let in_flight = bus.dispatch(NumberedEvent { value: 2 }).unwrap();
    started.notified().await;

    let found = bus.find::<NumberedEvent>().future().await.unwrap();
    assert_eq!(found.event_id(), in_flight.event_id());
    assert_eq!(found.event_status(), EventStatus::Started);
    open.send_replace(true);
    in_flight.await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// child_of
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn child_of_finds_children_and_grandchildren_only() {
    let bus = EventBus::new("FindChildOfBus");
    let (children, grandchildren) = (Recorder::new(), Recorder::new());
    dispatches_child::<ParentEvent, _>(&bus, ChildEvent {}, &children);
    dispatches_child::<ChildEvent, _>(&bus, GrandchildEvent {}, &grandchildren);
    answer::<GrandchildEvent>(&bus);
    answer::<UnrelatedEvent>(&bus);

    let parent = bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    bus.dispatch(UnrelatedEvent {}).unwrap().await.unwrap();
    // A ChildEvent that is nobody's child.
    let orphan = bus.dispatch(ChildEvent {}).unwrap().await.unwrap();

    let child = bus.find::<ChildEvent>().child_of(&parent).await.unwrap();
    assert_eq!(child.event_id().to_string(), children.entries()[0]);
    assert_ne!(
        child.event_id(),
        orphan.event_id(),
        "the newer orphan is skipped"
    );
    let grandchild = bus
        .find::<GrandchildEvent>()
        .child_of(&parent)
        .await
        .unwrap();
    assert_eq!(
        grandchild.event_id().to_string(),
        grandchildren.entries()[0]
    );
    assert!(
        bus.find::<UnrelatedEvent>()
            .child_of(&parent)
            .await
            .is_none()
    );
    assert!(
        bus.find::<ParentEvent>().child_of(&parent).await.is_none(),
        "an event is not its own child"
    );
    // Any descendant, with a wildcard.
    let descendants: Vec<String> = bus
        .event_history()
        .iter()
        .filter(|e| bus.event_is_child_of(*e, &parent))
        .map(|e| e.event_type().to_owned())
        .collect();
    assert_eq!(descendants, ["ChildEvent", "GrandchildEvent"]);
    let newest = bus.find_pattern("*").child_of(&parent).await.unwrap();
    assert_eq!(newest.event_type(), "GrandchildEvent");
}

#[tokio::test]
async fn child_of_tells_siblings_apart() {
    let bus = EventBus::new("FindSiblingsBus");
    bus.on(|e: EventHandle<NavigateEvent>| async move {
        let bus = e.event_bus().unwrap();
        bus.dispatch(TabCreatedEvent {
            tab_id: format!("tab_for_{}", e.url),
        })?
        .await?;
        Ok::<_, bubus::Error>(String::from("navigate_done"))
    });
    answer::<TabCreatedEvent>(&bus);

    let nav1 = bus
        .dispatch(NavigateEvent {
            url: "site1".into(),
        })
        .unwrap();
    let nav2 = bus
        .dispatch(NavigateEvent {
            url: "site2".into(),
        })
        .unwrap();
    let (nav1, nav2) = (nav1.await.unwrap(), nav2.await.unwrap());

    let tab1 = bus.find::<TabCreatedEvent>().child_of(&nav1).await.unwrap();
    let tab2 = bus.find::<TabCreatedEvent>().child_of(&nav2).await.unwrap();
    assert_eq!(tab1.tab_id, "tab_for_site1");
    assert_eq!(tab2.tab_id, "tab_for_site2");
}

/// The race the reference's issue 15 was about: the child fired inside the parent's handler,
/// before anyone looked for it; a history lookup still finds it.
#[tokio::test]
async fn a_child_that_fired_during_the_parent_handler_is_found_afterwards() {
    let bus = EventBus::new("FindRaceBus");
    let tabs = Recorder::new();
    dispatches_child::<NavigateEvent, _>(
        &bus,
        TabCreatedEvent {
            tab_id: "06bee4cf-9f51-7e5d-82d3-65f35169329c".into(),
        },
        &tabs,
    );
    answer::<TabCreatedEvent>(&bus);

    let nav = bus
        .dispatch(NavigateEvent {
            url: "https://example.com".into(),
        })
        .unwrap()
        .await
        .unwrap();
    let found = bus.find::<TabCreatedEvent>().child_of(&nav).await.unwrap();
    assert_eq!(found.event_id().to_string(), tabs.entries()[0]);
    // With a future window too: the history match returns at once.
    let found = bus
        .find::<TabCreatedEvent>()
        .child_of(&nav)
        .future_within(Duration::from_secs(5))
        .await;
    assert_eq!(found.unwrap().event_id().to_string(), tabs.entries()[0]);
}

#[tokio::test]
async fn child_of_works_across_forwarded_buses() {
    let main = EventBus::new("MainBus");
    let auth = EventBus::new("AuthBus");
    main.on_pattern("ParentEvent", auth.forwarder());
    let children = Recorder::new();
    dispatches_child::<ParentEvent, _>(&auth, ChildEvent {}, &children);
    answer::<ChildEvent>(&auth);

    let parent = main.dispatch(ParentEvent {}).unwrap().await.unwrap();
    assert!(main.wait_until_idle(None).await && auth.wait_until_idle(None).await);

    let found = auth
        .find::<ChildEvent>()
        .child_of(&parent)
        .past_within(Duration::from_secs(5))
        .future_within(Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(found.event_id().to_string(), children.entries()[0]);
    assert_eq!(found.event_parent_id(), Some(parent.event_id()));
    // The child went only to the bus whose handler dispatched it.
    assert!(main.find::<ChildEvent>().await.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_future_wait_with_child_of_skips_other_parents_children() {
    let bus = EventBus::new("FindFutureChildBus");
    bus.on(|e: EventHandle<ParentEvent>| async move {
        tokio::time::sleep(Duration::from_millis(30)).await;
        e.event_bus().unwrap().dispatch(ChildEvent {})?.await?;
        Ok::<_, bubus::Error>(String::from("parent_done"))
    });
    answer::<ChildEvent>(&bus);

    let parent = bus.dispatch(ParentEvent {}).unwrap();
    let waiter = bus
        .find::<ChildEvent>()
        .child_of(&parent)
        .no_past()
        .future_within(Duration::from_millis(300));
    let (found, _orphan) = tokio::join!(waiter.into_future(), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        // Dispatched first, but not the parent's child.
        bus.dispatch(ChildEvent {}).unwrap()
    });
    let found = found.unwrap();
    assert_eq!(found.event_parent_id(), Some(parent.event_id()));
    parent.await.unwrap();
}

#[tokio::test]
async fn every_filter_combines() {
    let bus = EventBus::new("FindAllParamsBus");
    let children = Recorder::new();
    dispatches_child::<ParentEvent, _>(&bus, screenshot(TARGET_CHILD), &children);
    answer::<ScreenshotEvent>(&bus);
    bus.dispatch(screenshot(TARGET_CHILD))
        .unwrap()
        .await
        .unwrap();
    let parent = bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    bus.dispatch(screenshot(TARGET_CHILD))
        .unwrap()
        .await
        .unwrap();

    let found = bus
        .find::<ScreenshotEvent>()
        .matching(|e| e.target_id == TARGET_CHILD)
        .field("full_page", false)
        .child_of(&parent)
        .past_within(Duration::from_secs(5))
        .no_future()
        .await
        .unwrap();
    assert_eq!(found.event_id().to_string(), children.entries()[0]);
    assert_eq!(found.target_id, TARGET_CHILD);
}

// ---------------------------------------------------------------------------------------------
// Stop, backpressure, visibility
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn stopping_the_bus_releases_future_waiters() {
    let bus = EventBus::new("FindStopBus");
    let forever = bus.find::<ParentEvent>().no_past().future();
    let windowed = bus
        .find_pattern("*")
        .no_past()
        .future_within(Duration::from_secs(3600));
    let (forever, windowed, ()) =
        tokio::join!(forever.into_future(), windowed.into_future(), async {
            tokio::task::yield_now().await;
            bus.stop(None).await;
        });
    assert!(forever.is_none());
    assert!(windowed.is_none());

    // Afterwards a future wait returns at once; history is still searched.
    assert!(bus.find::<ParentEvent>().future().await.is_none());
}

#[tokio::test]
async fn a_stopped_bus_still_answers_from_its_history() {
    let bus = EventBus::new("FindStoppedHistoryBus");
    answer::<ParentEvent>(&bus);
    let event = bus.dispatch(ParentEvent {}).unwrap().await.unwrap();
    bus.stop(None).await;
    let found = bus.find::<ParentEvent>().future().await;
    assert_eq!(found.unwrap().event_id(), event.event_id());
}

#[tokio::test]
async fn a_queued_event_is_found_pending_then_completed() {
    let bus = EventBus::builder("FindPendingBus")
        .max_history_size(None)
        .build();
    let (open, started) = gated::<ScreenshotEvent>(&bus);
    let blocking = bus.dispatch(screenshot(TARGET_1)).unwrap();
    started.notified().await;
    let queued = bus.dispatch(screenshot(TARGET_2)).unwrap();

    let pending = bus
        .find::<ScreenshotEvent>()
        .matching(|e| e.target_id == TARGET_2)
        .field("event_status", "pending")
        .await;
    assert_eq!(pending.unwrap().event_id(), queued.event_id());

    open.send_replace(true);
    blocking.await.unwrap();
    let queued = queued.await.unwrap();
    assert!(bus.wait_until_idle(None).await);
    let completed = bus
        .find::<ScreenshotEvent>()
        .matching(|e| e.target_id == TARGET_2)
        .field("event_status", "completed")
        .await;
    assert_eq!(completed.unwrap().event_id(), queued.event_id());
    assert_eq!(bus.queue_len(), 0);
}

/// With a one-event history, a completed event makes room for the next (our policy; the
/// reference would refuse the second dispatch): the newest event is the one left to find.
#[tokio::test]
async fn a_full_history_evicts_the_completed_event_and_the_newest_stays_findable() {
    let bus = EventBus::builder("FindBackpressureBus")
        .max_history_size(Some(1))
        .build();
    answer::<NumberedEvent>(&bus);
    let first = bus
        .dispatch(NumberedEvent { value: 1 })
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        bus.find::<NumberedEvent>().await.unwrap().event_id(),
        first.event_id()
    );

    let second = bus
        .dispatch(NumberedEvent { value: 2 })
        .unwrap()
        .await
        .unwrap();
    assert_eq!(bus.event_history().len(), 1);
    assert_eq!(
        bus.find::<NumberedEvent>().await.unwrap().event_id(),
        second.event_id()
    );
    assert!(
        bus.find::<NumberedEvent>()
            .field("value", 1)
            .await
            .is_none()
    );
}

/// Predicates run with no bus lock held, so they may use the bus.
#[tokio::test(start_paused = true)]
async fn predicates_may_use_the_bus() {
    let bus = EventBus::new("FindReentrantBus");
    answer::<NumberedEvent>(&bus);
    bus.dispatch(NumberedEvent { value: 1 })
        .unwrap()
        .await
        .unwrap();

    let b = bus.clone();
    let in_history = move |e: &EventHandle<NumberedEvent>| {
        b.find_event_by_id(e.event_id()).is_some() && !b.event_history().is_empty()
    };
    let found = bus
        .find::<NumberedEvent>()
        .matching(in_history.clone())
        .await;
    assert_eq!(found.unwrap().value, 1);

    let waiter = bus
        .find::<NumberedEvent>()
        .no_past()
        .future_within(Duration::from_secs(1))
        .matching(in_history);
    let (found, _) = tokio::join!(waiter.into_future(), async {
        bus.dispatch(NumberedEvent { value: 2 }).unwrap()
    });
    assert_eq!(found.unwrap().value, 2);
}

// ---------------------------------------------------------------------------------------------
// expect
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn expect_resolves_typed_at_dispatch_with_include_and_exclude() {
    let bus = EventBus::new("ExpectBus");
    answer::<UserActionEvent>(&bus);
    let expect = bus
        .expect::<UserActionEvent>()
        .include(|e| e.user_id == USER_1)
        .exclude(|e| e.action == "logout")
        .timeout(Duration::from_secs(5));
    let (found, expected) = tokio::join!(expect.into_future(), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        bus.dispatch(user_action("login", USER_2)).unwrap();
        // Both include and exclude accept it: exclude wins.
        bus.dispatch(user_action("logout", USER_1)).unwrap();
        bus.dispatch(user_action("login", USER_1)).unwrap()
    });
    let found: EventHandle<UserActionEvent> = found.unwrap();
    assert_eq!(found.event_id(), expected.event_id());
    assert_eq!(found.action, "login");
    // Resolved when dispatched, not when completed.
    assert_eq!(found.event_status(), EventStatus::Pending);
    assert_eq!(found.event_result().await.unwrap(), "done");
}

#[tokio::test(start_paused = true)]
async fn expect_ignores_history_unless_asked() {
    let bus = EventBus::new("ExpectHistoryBus");
    answer::<ParentEvent>(&bus);
    let old = bus.dispatch(ParentEvent {}).unwrap().await.unwrap();

    let err = bus
        .expect::<ParentEvent>()
        .timeout(Duration::from_millis(20))
        .await
        .unwrap_err();
    assert!(matches!(err, WaitError::Timeout { .. }), "{err:?}");
    let found = bus.expect::<ParentEvent>().past().await.unwrap();
    assert_eq!(found.event_id(), old.event_id());
}

#[tokio::test(start_paused = true)]
async fn expect_times_out_with_wait_error_timeout() {
    let bus = EventBus::new("ExpectTimeoutBus");
    let start = Instant::now();
    let err = bus
        .expect_pattern("NeverEvent")
        .timeout(Duration::from_millis(250))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), Duration::from_millis(250));
    match err {
        WaitError::Timeout { event, timeout } => {
            assert_eq!(event, "NeverEvent");
            assert_eq!(timeout, Duration::from_millis(250));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn expect_fails_with_wait_error_stopped_when_the_bus_stops() {
    let bus = EventBus::new("ExpectStopBus");
    let (result, ()) = tokio::join!(bus.expect::<ParentEvent>().into_future(), async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        bus.stop(None).await;
    });
    match result {
        Err(WaitError::Stopped { bus: label }) => assert_eq!(label, bus.label()),
        other => panic!("expected Stopped, got {other:?}"),
    }
    // Expecting on a stopped bus fails at once.
    let err = bus.expect::<ParentEvent>().await.unwrap_err();
    assert!(matches!(err, WaitError::Stopped { .. }), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn expect_with_child_of_and_fields() {
    let bus = EventBus::new("ExpectChildBus");
    bus.on(|e: EventHandle<NavigateEvent>| async move {
        let bus = e.event_bus().unwrap();
        bus.dispatch(TabCreatedEvent {
            tab_id: format!("tab_for_{}", e.url),
        })?;
        Ok::<_, bubus::Error>(String::from("navigated"))
    });
    answer::<TabCreatedEvent>(&bus);

    let nav = EventHandle::new(NavigateEvent { url: "b".into() });
    let expect = bus
        .expect::<TabCreatedEvent>()
        .child_of(&nav)
        .field("tab_id", "tab_for_b")
        .timeout(Duration::from_secs(1));
    let (tab, ()) = tokio::join!(expect.into_future(), async {
        bus.dispatch(NavigateEvent { url: "a".into() }).unwrap();
        bus.dispatch(&nav).unwrap();
    });
    let tab = tab.unwrap();
    assert_eq!(tab.tab_id, "tab_for_b");
    assert_eq!(tab.event_parent_id(), Some(nav.event_id()));
}

#[tokio::test(start_paused = true)]
async fn an_expect_turned_into_a_future_catches_dispatches_before_its_first_poll() {
    let bus = EventBus::new("ExpectAwaitLaterBus");
    let pending = bus
        .expect::<ParentEvent>()
        .timeout(Duration::from_millis(100))
        .into_future();
    let dispatched = bus.dispatch(ParentEvent {}).unwrap();
    let found = pending.await.expect("registered before the dispatch");
    assert_eq!(found.event_id(), dispatched.event_id());
}

/// 100 000 `find` waiters that time out are each removed in O(1): they all resolve to `None`
/// and a later dispatch still resolves a new waiter. (A removal
/// that scanned the waiters made this quadratic. A million, timed, is in `benches/`
/// (`cargo bench -p bubus-benches -- waiters`); this checks the outcome.)
#[tokio::test(start_paused = true)]
async fn many_timed_out_waiters_all_resolve_and_the_bus_still_resolves_new_ones() {
    use futures::stream::{FuturesUnordered, StreamExt};
    const WAITERS: usize = 100_000;
    let bus = EventBus::new("MillionWaiters");
    let mut waiting: FuturesUnordered<_> = (0..WAITERS)
        .map(|_| {
            bus.find_pattern("Never")
                .no_past()
                .future_within(Duration::from_secs(1))
                .into_future()
        })
        .collect();
    // Unconstrained: tokio's cooperative budget would otherwise make `FuturesUnordered` poll
    // the whole set again and again (a cost of the test's harness, not of the bus).
    let resolved = tokio::task::unconstrained(async {
        let mut resolved = 0;
        while let Some(found) = waiting.next().await {
            assert!(found.is_none());
            resolved += 1;
        }
        resolved
    })
    .await;
    assert_eq!(resolved, WAITERS);

    let next = bus
        .find_pattern("Never")
        .no_past()
        .future_within(Duration::from_secs(1))
        .into_future();
    bus.dispatch(bubus::DynEvent::new("Never", serde_json::json!({})).unwrap())
        .unwrap();
    assert!(next.await.is_some());
}

/// `filter` (abxbus 2.5): every match, newest first, up to a limit; the same filters as
/// `find`; with a future wait, the next matching dispatch when the history had fewer.
#[tokio::test(start_paused = true)]
async fn filter_returns_every_match_newest_first_up_to_a_limit() {
    let bus = EventBus::new("FilterBus");
    for n in 0..10 {
        bus.dispatch(NumberedEvent { value: n })
            .unwrap()
            .await
            .unwrap();
        bus.dispatch(DynEvent::new("Other", json!({ "n": n })).unwrap())
            .unwrap()
            .await
            .unwrap();
    }
    let numbers = |found: &[EventHandle<NumberedEvent>]| -> Vec<i64> {
        found.iter().map(|e| e.value).collect()
    };
    let all = bus.find::<NumberedEvent>().filter(None).await;
    assert_eq!(numbers(&all), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    let odd = bus
        .find::<NumberedEvent>()
        .matching(|e| e.value % 2 == 1)
        .filter(Some(3))
        .await;
    assert_eq!(numbers(&odd), [9, 7, 5]);
    assert!(bus.find::<NumberedEvent>().filter(Some(0)).await.is_empty());
    assert_eq!(bus.find_pattern("*").filter(Some(4)).await.len(), 4);
    let by_field = bus.find_pattern("Other").field("n", 3).filter(None).await;
    assert_eq!(by_field.len(), 1);
    assert!(
        bus.find::<NumberedEvent>()
            .no_past()
            .filter(None)
            .await
            .is_empty()
    );

    // Fewer than the limit in the history: waits for the next match.
    let waiting = bus
        .find::<NumberedEvent>()
        .matching(|e| e.value >= 9)
        .future_within(Duration::from_secs(5))
        .filter(Some(5));
    let (found, _) = tokio::join!(waiting, async {
        tokio::task::yield_now().await;
        bus.dispatch(NumberedEvent { value: 42 }).unwrap()
    });
    assert_eq!(numbers(&found), [9, 42]);
    // An event dispatched between creating the query and awaiting it is counted once.
    let waiting = bus
        .find::<NumberedEvent>()
        .matching(|e| e.value >= 9)
        .future_within(Duration::from_secs(5))
        .filter(Some(5));
    bus.dispatch(NumberedEvent { value: 43 }).unwrap();
    assert_eq!(numbers(&waiting.await), [43, 42, 9]);
    // …or times out with what the history had.
    let timed_out = bus
        .find::<NumberedEvent>()
        .matching(|e| e.value == 0)
        .future_within(Duration::from_secs(5))
        .filter(Some(5))
        .await;
    assert_eq!(numbers(&timed_out), [0]);
}
