//! Ports `tests/test_eventbus_dispatch_parent_tracking.py`,
//! `bubus-ts/tests/eventbus_dispatch_parent_tracking.test.ts` and the lineage checks of
//! `tests/test_eventbus_find.py` (`event_is_child_of`, `event_is_parent_of`): events dispatched
//! inside a handler become children of the event being handled, recorded on the event and on the
//! handler's result, and an event completes only after all of its descendants.

use std::sync::Arc;

use bubus::{AnyEvent, EventBus, EventHandle, EventStatus};
use bubus_test_support::Recorder;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ParentEvent {
    message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ChildEvent {
    data: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct GrandchildEvent {
    value: i64,
}

fn parent(message: &str) -> ParentEvent {
    ParentEvent {
        message: message.into(),
    }
}

fn child(data: &str) -> ChildEvent {
    ChildEvent { data: data.into() }
}

/// Events captured by handlers, for the test body to inspect.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<AnyEvent>>>);

impl Captured {
    fn push(&self, event: impl Into<AnyEvent>) {
        self.0.lock().push(event.into());
    }

    fn all(&self) -> Vec<AnyEvent> {
        self.0.lock().clone()
    }
}

fn child_data(events: &[AnyEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            e.downcast::<ChildEvent>()
                .expect("a ChildEvent")
                .data
                .clone()
        })
        .collect()
}

/// Registers a `ChildEvent` handler that just answers, so children complete.
fn answer_children(bus: &EventBus) {
    bus.on(|e: EventHandle<ChildEvent>| format!("handled_{}", e.data));
}

#[tokio::test]
async fn a_child_dispatched_in_a_handler_gets_the_parent_id() {
    let bus = EventBus::new("TestBus");
    let children = Captured::default();
    let (inner, captured) = (bus.clone(), children.clone());
    bus.on(move |e: EventHandle<ParentEvent>| {
        let child = inner.dispatch(child(&format!("child_of_{}", e.message)))?;
        captured.push(child);
        Ok::<_, bubus::DispatchError>(String::from("parent_handled"))
    });

    let parent = bus.dispatch(parent("test_parent")).unwrap();
    assert!(bus.wait_until_idle(None).await);
    let parent = parent.await.unwrap();

    assert_eq!(parent.event_result().await.unwrap(), "parent_handled");
    let children = children.all();
    assert_eq!(children.len(), 1);
    assert_eq!(children[0].event_parent_id(), Some(parent.event_id()));
    assert_eq!(children[0].event_parent(), Some(parent.to_any()));
    assert_eq!(child_data(&children), ["child_of_test_parent"]);
}

#[tokio::test]
async fn lineage_spans_several_levels() {
    let bus = EventBus::new("LineageBus");
    // Handlers dispatch on the bus running them, found through the event.
    bus.on(|e: EventHandle<ParentEvent>| {
        e.event_bus().unwrap().dispatch(child("child_data"))?;
        Ok::<_, bubus::Error>(String::from("parent"))
    });
    bus.on(|e: EventHandle<ChildEvent>| {
        e.event_bus()
            .unwrap()
            .dispatch(GrandchildEvent { value: 42 })?;
        Ok::<_, bubus::Error>(String::from("child"))
    });
    bus.on(|_: EventHandle<GrandchildEvent>| String::from("grandchild"));

    let parent = bus.dispatch(parent("root")).unwrap();
    assert!(bus.wait_until_idle(None).await);

    let find = |event_type: &str| {
        bus.event_history()
            .into_iter()
            .find(|e| e.event_type() == event_type)
            .unwrap()
    };
    let (child, grandchild) = (find("ChildEvent"), find("GrandchildEvent"));
    assert_eq!(find("ParentEvent").event_parent_id(), None);
    assert_eq!(child.event_parent_id(), Some(parent.event_id()));
    assert_eq!(grandchild.event_parent_id(), Some(child.event_id()));
    assert_eq!(grandchild.downcast::<GrandchildEvent>().unwrap().value, 42);
}

#[tokio::test]
async fn every_child_of_one_handler_gets_the_same_parent() {
    let bus = EventBus::new("MultiChildBus");
    let children = Captured::default();
    let (inner, captured) = (bus.clone(), children.clone());
    bus.on(move |_: EventHandle<ParentEvent>| {
        for i in 0..3 {
            captured.push(inner.dispatch(child(&format!("child_{i}")))?);
        }
        Ok::<_, bubus::Error>(String::from("spawned_children"))
    });

    let parent = bus.dispatch(parent("multi_child_parent")).unwrap();
    assert!(bus.wait_until_idle(None).await);

    let children = children.all();
    assert_eq!(child_data(&children), ["child_0", "child_1", "child_2"]);
    assert!(
        children
            .iter()
            .all(|c| c.event_parent_id() == Some(parent.event_id()))
    );
    assert_eq!(parent.event_children(), children);
}

#[tokio::test]
async fn the_emitting_handler_is_recorded_on_the_child_and_on_its_result() {
    let bus = EventBus::new("ImplicitParentLinkBus");
    answer_children(&bus);
    let inner = bus.clone();
    let entry = bus.on(move |e: EventHandle<ParentEvent>| {
        inner.dispatch(child(&format!("implicit_for_{}", e.message)))?;
        Ok::<_, bubus::Error>(String::from("parent_done"))
    });

    let parent = bus.dispatch(parent("implicit")).unwrap().await.unwrap();
    let child = &parent.event_children()[0];
    assert_eq!(
        child.event_emitted_by_handler_id().as_ref(),
        Some(entry.id())
    );

    let results = parent.event_results();
    let emitter = results
        .iter()
        .find(|r| Some(&r.handler_id) == child.event_emitted_by_handler_id().as_ref())
        .expect("the emitting handler has a result on the parent");
    assert_eq!(emitter.event_children, [child.event_id()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_dispatched_to_another_bus_is_linked_to_the_parent() {
    let bus1 = EventBus::new("Bus1");
    let bus2 = EventBus::new("Bus2");
    let received = Captured::default();

    let target = bus2.clone();
    let entry = bus1.on(move |_: EventHandle<ParentEvent>| {
        target.dispatch(child("cross_bus_child"))?;
        Ok::<_, bubus::Error>(String::from("bus1_handled"))
    });
    let captured = received.clone();
    bus2.on(move |e: EventHandle<ChildEvent>| {
        captured.push(e.clone());
        String::from("bus2_handled")
    });

    // Completion covers the child on the other bus.
    let parent = bus1
        .dispatch(parent("cross_bus_test"))
        .unwrap()
        .await
        .unwrap();
    let received = received.all();
    assert_eq!(received.len(), 1);
    assert!(received[0].is_complete());
    assert_eq!(received[0].event_parent_id(), Some(parent.event_id()));
    assert_eq!(received[0].event_path(), [bus2.label()]);
    assert_eq!(
        received[0].event_emitted_by_handler_id().as_ref(),
        Some(entry.id())
    );
    assert_eq!(parent.event_children(), received);
}

/// A child dispatched on one bus and then also sent to a second bus keeps its parent, and is
/// counted once.
#[tokio::test]
async fn a_child_sent_to_two_buses_keeps_one_parent_link() {
    let bus1 = EventBus::new("Bus1");
    let bus2 = EventBus::new("Bus2");
    answer_children(&bus2);
    let (inner, target) = (bus1.clone(), bus2.clone());
    bus1.on(move |_: EventHandle<ParentEvent>| {
        let child = inner.dispatch(child("cross_bus_child"))?;
        target.dispatch(&child)?;
        Ok::<_, bubus::Error>(String::from("bus1_handled"))
    });

    let parent = bus1
        .dispatch(parent("cross_bus_test"))
        .unwrap()
        .await
        .unwrap();
    let child = bus2
        .event_history()
        .into_iter()
        .find(|e| e.event_type() == "ChildEvent")
        .unwrap();
    assert_eq!(child.event_parent_id(), Some(parent.event_id()));
    assert_eq!(child.event_path(), [bus1.label(), bus2.label()]);
    assert_eq!(parent.event_children(), [child]);
}

#[tokio::test]
async fn explicit_parent_id_is_never_overwritten() {
    let bus = EventBus::new("ExplicitParentBus");
    let explicit: Uuid = "018f8e40-1234-7000-8000-000000001234".parse().unwrap();
    let inner = bus.clone();
    bus.on(move |_: EventHandle<ParentEvent>| {
        let child = EventHandle::new(child("explicit")).with_event_parent_id(explicit);
        inner.dispatch(child)?;
        Ok::<_, bubus::Error>(String::from("dispatched"))
    });

    let parent = bus.dispatch(parent("test")).unwrap().await.unwrap();
    let child = bus
        .event_history()
        .into_iter()
        .find(|e| e.event_type() == "ChildEvent")
        .unwrap();
    assert_eq!(child.event_parent_id(), Some(explicit));
    // An event with an explicit parent is that parent's, not the running handler's: it is not
    // linked under the handler (the Python runtime still lists it in the handler's children).
    assert!(parent.event_children().is_empty());
    assert_eq!(child.event_emitted_by_handler_id(), None);
}

/// Lineage by explicit ids (no live links) resolves through the bus history.
#[tokio::test]
async fn explicit_parent_ids_are_followed_through_history() {
    let bus = EventBus::new("ExplicitLineageBus");
    answer_children(&bus);
    bus.on(|_: EventHandle<ParentEvent>| String::from("parent"));
    bus.on(|_: EventHandle<GrandchildEvent>| String::from("grandchild"));

    let root = bus.dispatch(parent("root")).unwrap().await.unwrap();
    let adopted = EventHandle::new(child("adopted")).with_event_parent_id(root.event_id());
    let adopted = bus.dispatch(adopted).unwrap().await.unwrap();
    let grandchild =
        EventHandle::new(GrandchildEvent { value: 7 }).with_event_parent_id(adopted.event_id());
    let grandchild = bus.dispatch(grandchild).unwrap().await.unwrap();

    assert_eq!(grandchild.event_parent(), None, "not linked, only named");
    assert!(bus.event_is_child_of(&adopted, &root));
    assert!(
        bus.event_is_child_of(&grandchild, &root),
        "found through the history"
    );
    assert!(bus.event_is_parent_of(&root, &grandchild));
    assert!(!bus.event_is_child_of(&root, &grandchild));
}

#[tokio::test]
async fn children_of_sync_and_failing_handlers_are_linked_too() {
    let bus = EventBus::new("SyncAndErrorParentTrackingBus");
    answer_children(&bus);
    let children = Captured::default();

    let (inner, captured) = (bus.clone(), children.clone());
    bus.on(move |_: EventHandle<ParentEvent>| {
        captured.push(inner.dispatch(child("from_sync"))?);
        Ok::<_, bubus::Error>(String::from("sync_handled"))
    });
    let (inner, captured) = (bus.clone(), children.clone());
    bus.on(move |_: EventHandle<ParentEvent>| {
        let (bus, captured) = (inner.clone(), captured.clone());
        async move {
            captured.push(bus.dispatch(child("before_error"))?);
            Err::<String, bubus::Error>(
                bubus::HandlerError::new("ValueError", "expected parent-tracking error path")
                    .into(),
            )
        }
    });
    let (inner, captured) = (bus.clone(), children.clone());
    bus.on(move |_: EventHandle<ParentEvent>| {
        let (bus, captured) = (inner.clone(), captured.clone());
        async move {
            captured.push(bus.dispatch(child("after_error"))?);
            Ok::<_, bubus::Error>(String::from("success"))
        }
    });

    let parent = bus.dispatch(parent("mixed_test")).unwrap().await.unwrap();
    let children = children.all();
    assert_eq!(
        child_data(&children),
        ["from_sync", "before_error", "after_error"]
    );
    assert!(
        children
            .iter()
            .all(|c| c.event_parent_id() == Some(parent.event_id()))
    );
    let errors = parent.event_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].message(), "expected parent-tracking error path");
    // Per-result children: each handler's result lists what it dispatched.
    let per_result: Vec<usize> = parent
        .event_results()
        .iter()
        .map(|r| r.event_children.len())
        .collect();
    assert_eq!(per_result, [1, 1, 1]);
}

/// Python (ContextVars) and TypeScript (AsyncLocalStorage) carry the handler context into tasks
/// a handler starts. Tokio task-locals do not cross `tokio::spawn`: a spawned task links its
/// events only when wrapped in `bubus::bus::in_current_handler`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_tasks_link_children_when_they_carry_the_handler_context() {
    let bus = EventBus::new("SpawnedChildBus");
    answer_children(&bus);
    let inner = bus.clone();
    bus.on(move |_: EventHandle<ParentEvent>| {
        let bus = inner.clone();
        async move {
            let (b1, b2) = (bus.clone(), bus.clone());
            let linked = tokio::spawn(bubus::bus::in_current_handler(async move {
                b1.dispatch(child("linked"))
            }));
            let detached = tokio::spawn(async move { b2.dispatch(child("detached")) });
            linked.await.expect("task")?;
            detached.await.expect("task")?;
            Ok::<_, bubus::Error>(String::from("spawned"))
        }
    });

    let parent = bus.dispatch(parent("spawner")).unwrap().await.unwrap();
    assert!(bus.wait_until_idle(None).await);
    assert_eq!(child_data(&parent.event_children()), ["linked"]);
    let detached = bus
        .event_history()
        .into_iter()
        .find(|e| {
            e.downcast::<ChildEvent>()
                .is_some_and(|c| c.data == "detached")
        })
        .unwrap();
    assert_eq!(detached.event_parent_id(), None);
}

/// TypeScript guesses a parent for a raw `bus.emit` when exactly one handler is active; here
/// linking follows the task, so an event dispatched outside any handler never gets a parent, however
/// many handlers are running elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_outside_a_handler_never_gets_a_parent() {
    let bus1 = EventBus::new("AmbiguousBus1");
    let bus2 = EventBus::new("AmbiguousBus2");
    let bus3 = EventBus::new("AmbiguousBus3");
    answer_children(&bus3);
    let started = Arc::new(Notify::new());
    let (release, released) = watch::channel(false);
    for bus in [&bus1, &bus2] {
        let (started, released) = (Arc::clone(&started), released.clone());
        bus.on(move |_: EventHandle<ParentEvent>| {
            let (started, mut released) = (Arc::clone(&started), released.clone());
            async move {
                started.notify_one();
                let _ = released.wait_for(|open| *open).await;
                String::from("done")
            }
        });
    }

    let parent_a = bus1.dispatch(parent("a")).unwrap();
    let parent_b = bus2.dispatch(parent("b")).unwrap();
    started.notified().await;
    started.notified().await;
    let unrelated = bus3.dispatch(child("outside_handler_emit")).unwrap();

    release.send_replace(true);
    parent_a.await.unwrap();
    parent_b.await.unwrap();
    let unrelated = unrelated.await.unwrap();
    assert_eq!(unrelated.event_parent_id(), None);
    assert_eq!(unrelated.event_emitted_by_handler_id(), None);
}

// ---------------------------------------------------------------------------------------------
// event_children
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn event_children_track_direct_and_nested_descendants() {
    let bus = EventBus::new("ChildrenTrackingBus");
    bus.on(|e: EventHandle<ParentEvent>| {
        e.event_bus().unwrap().dispatch(child("level1"))?;
        Ok::<_, bubus::Error>(String::from("parent"))
    });
    bus.on(|e: EventHandle<ChildEvent>| {
        e.event_bus()
            .unwrap()
            .dispatch(GrandchildEvent { value: 42 })?;
        Ok::<_, bubus::Error>(String::from("child"))
    });
    bus.on(|e: EventHandle<GrandchildEvent>| format!("grandchild_{}", e.value));

    let parent = bus.dispatch(parent("nested_test")).unwrap();
    assert!(bus.wait_until_idle(None).await);
    let parent = parent.await.unwrap();

    let children = parent.event_children();
    assert_eq!(child_data(&children), ["level1"]);
    let grandchildren = children[0].event_children();
    assert_eq!(grandchildren.len(), 1);
    let grandchild = grandchildren[0].downcast::<GrandchildEvent>().unwrap();
    assert_eq!(grandchild.value, 42);
    assert_eq!(
        parent.event_descendants(),
        [children[0].clone(), grandchildren[0].clone()]
    );
}

#[tokio::test]
async fn children_of_several_handlers_are_listed_in_dispatch_order_and_per_result() {
    let bus = EventBus::new("EventChildrenMultiHandlerBus");
    answer_children(&bus);
    bus.on(|e: EventHandle<ParentEvent>| {
        e.event_bus().unwrap().dispatch(child("from_handler1"))?;
        Ok::<_, bubus::Error>(String::from("h1"))
    });
    bus.on(|e: EventHandle<ParentEvent>| {
        let bus = e.event_bus().unwrap();
        bus.dispatch(child("from_handler2_a"))?;
        bus.dispatch(child("from_handler2_b"))?;
        Ok::<_, bubus::Error>(String::from("h2"))
    });

    let parent = bus
        .dispatch(parent("multi_handler_test"))
        .unwrap()
        .await
        .unwrap();
    let children = parent.event_children();
    assert_eq!(
        child_data(&children),
        ["from_handler1", "from_handler2_a", "from_handler2_b"]
    );
    let results = parent.event_results();
    assert_eq!(results[0].event_children, [children[0].event_id()]);
    assert_eq!(
        results[1].event_children,
        [children[1].event_id(), children[2].event_id()]
    );
}

#[tokio::test]
async fn event_children_is_empty_when_handlers_dispatch_nothing() {
    let bus = EventBus::new("EventChildrenEmptyBus");
    bus.on(|_: EventHandle<ParentEvent>| String::from("no_children"));
    let parent = bus
        .dispatch(parent("no_children_test"))
        .unwrap()
        .await
        .unwrap();
    assert!(parent.event_children().is_empty());
    assert!(parent.event_results()[0].event_children.is_empty());
}

#[tokio::test]
async fn forwarding_an_event_does_not_make_it_a_child() {
    let bus1 = EventBus::new("ForwardBus1");
    let bus2 = EventBus::new("ForwardBus2");
    let target = bus2.clone();
    bus1.on(move |e: AnyEvent| target.dispatch(e));

    let parent = bus1
        .dispatch(parent("forward_test"))
        .unwrap()
        .await
        .unwrap();
    assert!(bus2.wait_until_idle(None).await);

    assert!(parent.event_children().is_empty());
    assert_eq!(parent.event_parent_id(), None);
    assert_eq!(parent.event_path(), [bus1.label(), bus2.label()]);
    let forward = &parent.event_results()[0];
    assert_eq!(forward.forwarded_event_id, Some(parent.event_id()));
    assert!(forward.event_children.is_empty());
}

/// Children dispatched by a handler on the bus an event was forwarded to are that event's
/// children, and the event completes only after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_dispatched_on_the_forward_bus_belong_to_the_forwarded_event() {
    let bus1 = EventBus::new("ForwardSrc");
    let bus2 = EventBus::new("ForwardDst");
    answer_children(&bus2);
    let target = bus2.clone();
    bus1.on(move |e: AnyEvent| target.dispatch(e));
    bus2.on(|e: EventHandle<ParentEvent>| {
        e.event_bus().unwrap().dispatch(child("downstream"))?;
        Ok::<_, bubus::Error>(String::from("dst"))
    });

    let parent = bus1.dispatch(parent("forwarded")).unwrap().await.unwrap();
    let children = parent.event_children();
    assert_eq!(child_data(&children), ["downstream"]);
    assert!(children[0].is_complete());
    assert_eq!(children[0].event_path(), [bus2.label()]);
}

#[tokio::test]
async fn parent_completes_only_after_all_its_children() {
    let bus = EventBus::new("EventChildrenCompletionBus");
    let log = Recorder::new();
    let child_started = Arc::new(Notify::new());
    let (release, released) = watch::channel(false);

    let l = log.clone();
    bus.on(move |e: EventHandle<ParentEvent>| {
        let bus = e.event_bus().unwrap();
        bus.dispatch(child("child1"))?;
        bus.dispatch(child("child2"))?;
        l.push("parent_handler");
        Ok::<_, bubus::Error>(String::from("parent"))
    });
    let (l, started) = (log.clone(), Arc::clone(&child_started));
    bus.on(move |e: EventHandle<ChildEvent>| {
        let (log, started, mut released) = (l.clone(), Arc::clone(&started), released.clone());
        async move {
            started.notify_one();
            let _ = released.wait_for(|open| *open).await;
            log.push(format!("child_handler_{}", e.data));
            format!("handled_{}", e.data)
        }
    });

    let parent = bus.dispatch(parent("completion_test")).unwrap();
    child_started.notified().await;
    assert!(!parent.event_children().is_empty());
    assert_eq!(parent.event_completed_at(), None);
    assert_ne!(parent.event_status(), EventStatus::Completed);
    // Its own handler is done; only the children keep it open.
    assert_eq!(
        parent.event_results()[0].status,
        bubus::result::ResultStatus::Completed
    );

    release.send_replace(true);
    let parent = parent.await.unwrap();
    assert_eq!(parent.event_status(), EventStatus::Completed);
    let children = parent.event_children();
    assert_eq!(children.len(), 2);
    for child in &children {
        assert_eq!(child.event_status(), EventStatus::Completed);
        assert!(child.event_completed_at() <= parent.event_completed_at());
    }
    assert_eq!(
        log.entries(),
        [
            "parent_handler",
            "child_handler_child1",
            "child_handler_child2"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// event_is_child_of / event_is_parent_of
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn lineage_queries_follow_parents_upward_only() {
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(result = String)]
    struct UnrelatedEvent {}

    let bus = EventBus::new("LineageQueryBus");
    bus.on(|e: EventHandle<ParentEvent>| {
        let bus = e.event_bus().unwrap();
        async move {
            bus.dispatch(child("awaited"))?.await?;
            Ok::<_, bubus::Error>(String::from("parent_done"))
        }
    });
    bus.on(|e: EventHandle<ChildEvent>| {
        let bus = e.event_bus().unwrap();
        async move {
            bus.dispatch(GrandchildEvent { value: 1 })?.await?;
            Ok::<_, bubus::Error>(String::from("child_done"))
        }
    });
    bus.on(|_: EventHandle<GrandchildEvent>| String::from("grandchild_done"));
    bus.on(|_: EventHandle<UnrelatedEvent>| String::from("unrelated_done"));

    let parent = bus.dispatch(parent("root")).unwrap().await.unwrap();
    let unrelated = bus.dispatch(UnrelatedEvent {}).unwrap().await.unwrap();
    let child = parent.event_children()[0].clone();
    let grandchild = child.event_children()[0].clone();

    assert!(bus.event_is_child_of(&child, &parent));
    assert!(bus.event_is_child_of(&grandchild, &parent));
    assert!(bus.event_is_child_of(&grandchild, &child));
    assert!(bus.event_is_parent_of(&parent, &child));
    assert!(bus.event_is_parent_of(&parent, &grandchild));

    assert!(!bus.event_is_child_of(&parent, &child), "reversed");
    assert!(!bus.event_is_parent_of(&grandchild, &parent), "reversed");
    assert!(
        !bus.event_is_child_of(&parent, &parent),
        "not its own child"
    );
    assert!(!bus.event_is_child_of(&unrelated, &parent));
    assert!(!bus.event_is_parent_of(&parent, &unrelated));
}
