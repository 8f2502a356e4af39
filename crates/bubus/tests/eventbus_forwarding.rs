//! Forwarding between buses (semantics §1.13): ports `tests/test_eventbus_forwarding.py`, the
//! forwarding classes of `tests/test_eventbus.py` (`TestEventForwarding`, `TestEventBusHierarchy`,
//! `TestEventBusForwarding`) and `bubus-ts/tests/eventbus_forwarding.test.ts`.
//!
//! A forwarded event is the same event on several buses: one id, one results map, an `event_path`
//! that lists every bus it went through, and a completion that waits for all of them. Each bus
//! resolves the options the event leaves unset against its own defaults.

use std::time::Duration;

use bubus::{
    AnyEvent, DynEvent, EventBus, EventHandle, EventStatus, event::HandlerCompletion,
    event::HandlerConcurrency, result::ResultStatus,
};
use bubus_test_support::Recorder;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct PingEvent {
    value: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct AuthEvent {
    user: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct OtherEvent {}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ChildEvent {
    note: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
struct TriggerEvent {}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct DefaultsChildEvent {
    mode: String,
}

/// Records `{name}:{event_id}` for every `PingEvent` the bus handles.
fn record_pings(bus: &EventBus, log: &Recorder, name: &'static str) {
    let log = log.clone();
    bus.on(move |e: EventHandle<PingEvent>| {
        log.push(format!("{name}:{}", e.event_id()));
        format!("handled-{name}")
    });
}

/// Handlers on one bus, in the order they ran.
fn seen_by(log: &Recorder, name: &str) -> Vec<String> {
    let prefix = format!("{name}:");
    log.entries()
        .into_iter()
        .filter_map(|e| e.strip_prefix(&prefix).map(str::to_owned))
        .collect()
}

async fn all_idle(buses: &[&EventBus]) {
    for bus in buses {
        assert!(
            bus.wait_until_idle(Some(Duration::from_secs(10))).await,
            "{bus:?} did not become idle"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Paths and loop prevention
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn events_forward_along_a_chain_without_duplication() {
    let (bus_a, bus_b, bus_c) = (
        EventBus::new("BusA"),
        EventBus::new("BusB"),
        EventBus::new("BusC"),
    );
    let log = Recorder::new();
    record_pings(&bus_a, &log, "A");
    record_pings(&bus_b, &log, "B");
    record_pings(&bus_c, &log, "C");
    bus_a.on_pattern("*", bus_b.forwarder());
    bus_b.on_pattern("*", bus_c.forwarder());

    let event = bus_a.dispatch(PingEvent { value: 1 }).unwrap();
    all_idle(&[&bus_a, &bus_b, &bus_c]).await;

    let id = event.event_id().to_string();
    for name in ["A", "B", "C"] {
        assert_eq!(seen_by(&log, name), [id.as_str()], "bus {name}");
    }
    assert_eq!(
        event.event_path(),
        [bus_a.label(), bus_b.label(), bus_c.label()]
    );
    // The same event sits in every bus's history.
    for bus in [&bus_a, &bus_b, &bus_c] {
        assert_eq!(bus.find_event_by_id(event.event_id()), Some(event.to_any()));
    }
}

/// Names need not be unique: the labels (`Name#abcd`) in the path tell the two buses apart, and
/// loop prevention does not mistake one for the other.
#[tokio::test]
async fn forwarding_tells_apart_buses_that_share_a_name() {
    let bus_a = EventBus::new("SharedName");
    let bus_b = EventBus::new("SharedName");
    assert_ne!(bus_a.label(), bus_b.label());
    let log = Recorder::new();
    record_pings(&bus_a, &log, "A");
    record_pings(&bus_b, &log, "B");
    bus_a.forward_to(&bus_b);

    let event = bus_a
        .dispatch(PingEvent { value: 99 })
        .unwrap()
        .await
        .unwrap();
    all_idle(&[&bus_a, &bus_b]).await;

    let id = event.event_id().to_string();
    assert_eq!(seen_by(&log, "A"), [id.as_str()]);
    assert_eq!(seen_by(&log, "B"), [id]);
    assert_eq!(event.event_path(), [bus_a.label(), bus_b.label()]);
    assert_eq!(
        event.event_results_list().await.unwrap(),
        ["handled-A", "handled-B"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circular_forwarding_visits_each_bus_once_from_any_entry_point() {
    let peers = [
        EventBus::new("Peer1"),
        EventBus::new("Peer2"),
        EventBus::new("Peer3"),
    ];
    let log = Recorder::new();
    for (bus, name) in peers.iter().zip(["P1", "P2", "P3"]) {
        record_pings(bus, &log, name);
    }
    // Peer1 -> Peer2 -> Peer3 -> Peer1: the path breaks the cycle.
    peers[0].forward_to(&peers[1]);
    peers[1].forward_to(&peers[2]);
    peers[2].forward_to(&peers[0]);
    let [p1, p2, p3] = &peers;

    let event = p1.dispatch(PingEvent { value: 42 }).unwrap().await.unwrap();
    all_idle(&[p1, p2, p3]).await;
    let id = event.event_id().to_string();
    for name in ["P1", "P2", "P3"] {
        assert_eq!(seen_by(&log, name), [id.as_str()], "{name}");
    }
    assert_eq!(event.event_path(), [p1.label(), p2.label(), p3.label()]);
    assert!(
        event.event_errors().is_empty(),
        "{:?}",
        event.event_errors()
    );

    // Entering the cycle at Peer2 goes round once, starting there.
    log.clear();
    let event = p2.dispatch(PingEvent { value: 99 }).unwrap().await.unwrap();
    all_idle(&[p1, p2, p3]).await;
    let id = event.event_id().to_string();
    for name in ["P1", "P2", "P3"] {
        assert_eq!(seen_by(&log, name), [id.as_str()], "{name}");
    }
    assert_eq!(event.event_path(), [p2.label(), p3.label(), p1.label()]);
    assert_eq!(
        event.event_results_list().await.unwrap(),
        ["handled-P2", "handled-P3", "handled-P1"]
    );
}

/// The reference's regression test for a completion race: a cycle of peers with their own
/// handlers, warmed up from one peer and then entered from another, must leave every bus idle
/// and the event completed everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarding_cycle_leaves_no_bus_busy() {
    let peers = [
        EventBus::new("RacePeer1"),
        EventBus::new("RacePeer2"),
        EventBus::new("RacePeer3"),
    ];
    for bus in &peers {
        bus.on(|_: AnyEvent| async {
            tokio::task::yield_now().await;
            json!("ok")
        });
    }
    for (from, to) in [(0, 1), (1, 2), (2, 0)] {
        peers[from].forward_to(&peers[to]);
    }
    let [p1, p2, p3] = &peers;

    for round in 0..20 {
        let warm_up = p1.dispatch(PingEvent { value: round }).unwrap();
        let second = p2.dispatch(PingEvent { value: round }).unwrap();
        // Each bus's idleness is its own: a bus found idle can still be handed the event by the
        // next one round the cycle, so wait for the events first, then for every bus.
        let (warm_up, second) = (warm_up.await.unwrap(), second.await.unwrap());
        all_idle(&[p1, p2, p3]).await;
        for event in [&warm_up, &second] {
            assert_eq!(event.event_status(), EventStatus::Completed);
            assert_eq!(event.event_pending_bus_count(), 0);
            assert_eq!(event.event_path().len(), 3);
        }
        for bus in &peers {
            assert_eq!(bus.queue_len(), 0);
            assert!(bus.events_started().is_empty() && bus.events_pending().is_empty());
        }
    }
}

#[tokio::test]
async fn a_hierarchy_bubbles_events_up_but_not_down() {
    let parent = EventBus::new("ParentBus");
    let child = EventBus::new("ChildBus");
    let subchild = EventBus::new("SubchildBus");
    let log = Recorder::new();
    for bus in [&parent, &child, &subchild] {
        let (log, name) = (log.clone(), bus.name().to_owned());
        bus.on(move |e: AnyEvent| {
            log.push(format!("{name}:{}", e.event_id()));
            json!(format!("{name}_received"))
        });
    }
    subchild.forward_to(&child);
    child.forward_to(&parent);

    let bottom = subchild
        .dispatch(AuthEvent {
            user: "bubble".into(),
        })
        .unwrap();
    let bottom = bottom.await.unwrap();
    let id = bottom.event_id().to_string();
    for name in ["SubchildBus", "ChildBus", "ParentBus"] {
        assert_eq!(seen_by(&log, name), [id.as_str()], "{name}");
    }
    assert_eq!(
        bottom.event_path(),
        [subchild.label(), child.label(), parent.label()]
    );
    // The same payload arrived at the top.
    let at_top = parent.find::<AuthEvent>().await.unwrap();
    assert_eq!(at_top.event_id(), bottom.event_id());
    assert_eq!(at_top.user, "bubble");

    // From the middle it only goes up.
    log.clear();
    let middle = child.dispatch(OtherEvent {}).unwrap().await.unwrap();
    assert!(seen_by(&log, "SubchildBus").is_empty());
    assert_eq!(seen_by(&log, "ChildBus").len(), 1);
    assert_eq!(seen_by(&log, "ParentBus").len(), 1);
    assert_eq!(middle.event_path(), [child.label(), parent.label()]);
    assert!(subchild.find::<OtherEvent>().await.is_none());
}

// ---------------------------------------------------------------------------------------------
// Completion and results across buses
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn awaiting_the_event_waits_for_handlers_on_every_bus_it_reached() {
    let (bus_a, bus_b, bus_c) = (
        EventBus::new("BusA"),
        EventBus::new("BusB"),
        EventBus::new("BusC"),
    );
    let done = Recorder::new();
    for (bus, name, ms) in [(&bus_a, "A", 10), (&bus_b, "B", 30), (&bus_c, "C", 50)] {
        let done = done.clone();
        bus.on(move |_: EventHandle<PingEvent>| {
            let done = done.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                done.push(name);
                name.to_owned()
            }
        });
    }
    bus_a.forward_to(&bus_b);
    bus_b.forward_to(&bus_c);

    let start = Instant::now();
    let event = bus_a
        .dispatch(PingEvent { value: 2 })
        .unwrap()
        .await
        .unwrap();

    // A's handler runs before its forwarder, so the buses run one after the other.
    assert_eq!(done.entries(), ["A", "B", "C"]);
    assert!(start.elapsed() >= Duration::from_millis(90));
    assert_eq!(event.event_pending_bus_count(), 0);
    assert!(
        event
            .event_results()
            .iter()
            .all(|r| r.status == ResultStatus::Completed)
    );
}

#[tokio::test(start_paused = true)]
async fn awaiting_waits_for_a_forwarder_that_dispatches_late() {
    let bus_a = EventBus::new("BusA");
    let bus_b = EventBus::new("BusB");
    let done = Recorder::new();
    for (bus, name, ms) in [(&bus_a, "A", 20), (&bus_b, "B", 10)] {
        let done = done.clone();
        bus.on(move |_: EventHandle<PingEvent>| {
            let done = done.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                done.push(name);
                name.to_owned()
            }
        });
    }
    // A hand-written forwarder that forwards only after a delay.
    let target = bus_b.clone();
    bus_a.on(move |event: AnyEvent| {
        let target = target.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            target.dispatch(event)
        }
    });

    let event = bus_a
        .dispatch(PingEvent { value: 3 })
        .unwrap()
        .await
        .unwrap();
    assert_eq!(done.entries(), ["A", "B"]);
    assert_eq!(event.event_pending_bus_count(), 0);
    assert_eq!(event.event_path(), [bus_a.label(), bus_b.label()]);
    assert_eq!(event.event_results_list().await.unwrap(), ["A", "B"]);
}

#[tokio::test]
async fn results_from_every_bus_are_visible_on_one_handle() {
    let buses = [
        EventBus::new("Bus1"),
        EventBus::new("Bus2"),
        EventBus::new("Bus3"),
    ];
    let order = Recorder::new();
    for (i, bus) in buses.iter().enumerate() {
        let order = order.clone();
        bus.on_pattern("TestEvent", move |_: AnyEvent| {
            order.push(format!("bus{}", i + 1));
            json!(format!("from_bus{}", i + 1))
        });
    }
    buses[0].forward_to(&buses[1]);
    buses[1].forward_to(&buses[2]);

    let event = buses[0]
        .dispatch(DynEvent::new("TestEvent", json!({})).unwrap())
        .unwrap()
        .await
        .unwrap();

    assert_eq!(order.entries(), ["bus1", "bus2", "bus3"]);
    assert_eq!(
        event.event_results_list().await.unwrap(),
        [json!("from_bus1"), json!("from_bus2"), json!("from_bus3")]
    );
    // Each result says which bus ran it; the forwarders' results are the event itself.
    let results = event.event_results();
    for (i, bus) in buses.iter().enumerate() {
        let on_bus: Vec<_> = results
            .iter()
            .filter(|r| r.eventbus_id == bus.id())
            .collect();
        let values: Vec<_> = on_bus.iter().filter_map(|r| r.result.clone()).collect();
        assert_eq!(values, [json!(format!("from_bus{}", i + 1))]);
        assert!(on_bus.iter().all(|r| r.eventbus_name == bus.name()));
    }
    let forwards: Vec<_> = results
        .iter()
        .filter_map(|r| r.forwarded_event_id)
        .collect();
    assert_eq!(forwards, [event.event_id(), event.event_id()]);
}

#[tokio::test]
async fn results_can_be_told_apart_by_bus_and_path() {
    let main = EventBus::new("MainBus");
    let plugin = EventBus::new("PluginBus");
    main.on_pattern("DataEvent", |_: AnyEvent| json!("main_result"));
    plugin.on_pattern("DataEvent", |_: AnyEvent| json!("plugin_result1"));
    plugin.on_pattern("DataEvent", |_: AnyEvent| json!("plugin_result2"));
    main.forward_to(&plugin);

    let event = main
        .dispatch(DynEvent::new("DataEvent", json!({})).unwrap())
        .unwrap()
        .await
        .unwrap();

    let by_bus = |bus: &EventBus| -> Vec<serde_json::Value> {
        event
            .event_results()
            .into_iter()
            .filter(|r| r.eventbus_id == bus.id())
            .filter_map(|r| r.result)
            .collect()
    };
    assert_eq!(by_bus(&main), [json!("main_result")]);
    assert_eq!(
        by_bus(&plugin),
        [json!("plugin_result1"), json!("plugin_result2")]
    );
    assert_eq!(event.event_path(), [main.label(), plugin.label()]);
}

/// A typed handler downstream decodes a forwarded dynamic event; its typed result lands on the
/// same handle as the upstream JSON results.
#[tokio::test]
async fn a_forwarded_dynamic_event_reaches_typed_handlers_downstream() {
    let edge = EventBus::new("EdgeBus");
    let core = EventBus::new("CoreBus");
    edge.forward_to(&core);
    core.on(|e: EventHandle<AuthEvent>| format!("welcome {}", e.user));

    let event = edge
        .dispatch(DynEvent::new("AuthEvent", json!({"user": "alice"})).unwrap())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(event.event_result().await.unwrap(), json!("welcome alice"));
    let typed = core
        .find::<AuthEvent>()
        .await
        .expect("typed view on CoreBus");
    assert_eq!(typed.user, "alice");
    assert_eq!(typed.event_result().await.unwrap(), "welcome alice");
}

// ---------------------------------------------------------------------------------------------
// Per-bus defaults
// ---------------------------------------------------------------------------------------------

fn on_timed(bus: &EventBus, log: &Recorder, name: &'static str, ms: u64) {
    let log = log.clone();
    bus.on(move |e: EventHandle<DefaultsChildEvent>| {
        let log = log.clone();
        async move {
            log.push(format!("{}:{name}_start", e.mode));
            tokio::time::sleep(Duration::from_millis(ms)).await;
            log.push(format!("{}:{name}_end", e.mode));
            name.to_owned()
        }
    });
}

#[tokio::test(start_paused = true)]
async fn a_forwarded_event_uses_each_bus_defaults_unless_it_sets_its_own() {
    let bus_a = EventBus::builder("ForwardDefaultsA")
        .event_handler_concurrency(HandlerConcurrency::Serial)
        .build();
    let bus_b = EventBus::builder("ForwardDefaultsB")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let log = Recorder::new();
    on_timed(&bus_b, &log, "b1", 15);
    on_timed(&bus_b, &log, "b2", 5);

    let target = bus_b.clone();
    bus_a.on(move |e: EventHandle<TriggerEvent>| {
        let target = target.clone();
        async move {
            let here = e.event_bus().expect("running on a bus");
            let inherited = here.dispatch(DefaultsChildEvent {
                mode: "inherited".into(),
            })?;
            target.dispatch(&inherited)?;
            inherited.await?;

            let overridden = EventHandle::new(DefaultsChildEvent {
                mode: "override".into(),
            })
            .with_event_handler_concurrency(HandlerConcurrency::Serial);
            here.dispatch(&overridden)?;
            target.dispatch(&overridden)?;
            overridden.await?;
            Ok::<_, bubus::Error>(())
        }
    });

    bus_a.dispatch(TriggerEvent {}).unwrap().await.unwrap();
    all_idle(&[&bus_a, &bus_b]).await;

    let pos = |entry: &str| {
        log.position(entry)
            .unwrap_or_else(|| panic!("{entry} missing: {:?}", log.entries()))
    };
    assert!(
        pos("inherited:b2_start") < pos("inherited:b1_end"),
        "unset handler concurrency should use bus B's parallel default: {:?}",
        log.entries()
    );
    assert!(
        pos("override:b1_end") < pos("override:b2_start"),
        "the event's own serial setting should win on bus B: {:?}",
        log.entries()
    );
}

#[tokio::test(start_paused = true)]
async fn a_forwarded_event_uses_the_processing_bus_handler_defaults_in_first_mode() {
    let bus_a = EventBus::builder("ForwardedFirstDefaultsA")
        .event_handler_concurrency(HandlerConcurrency::Serial)
        .event_handler_completion(HandlerCompletion::All)
        .build();
    let bus_b = EventBus::builder("ForwardedFirstDefaultsB")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .event_handler_completion(HandlerCompletion::First)
        .build();
    let log = Recorder::new();
    for (name, ms) in [("slow", 20), ("fast", 1)] {
        let log = log.clone();
        bus_b.on(move |_: EventHandle<PingEvent>| {
            let log = log.clone();
            async move {
                log.push(format!("{name}_start"));
                tokio::time::sleep(Duration::from_millis(ms)).await;
                log.push(format!("{name}_end"));
                name.to_owned()
            }
        });
    }
    bus_a.forward_to(&bus_b);

    let event = bus_a.dispatch(PingEvent { value: 0 }).unwrap();
    let result = event.race().await.unwrap();
    all_idle(&[&bus_a, &bus_b]).await;

    assert_eq!(result.as_deref(), Some("fast"), "log: {:?}", log.entries());
    // Bus B's parallel default started both; the fast one won and the slow one was stopped.
    assert!(log.position("slow_start").is_some());
    assert!(log.position("fast_start").is_some());
    assert!(log.position("slow_end").is_none(), "{:?}", log.entries());
}

#[tokio::test(start_paused = true)]
async fn each_bus_applies_its_own_event_timeout() {
    let relaxed = EventBus::new("RelaxedBus");
    let strict = EventBus::builder("StrictBus")
        .event_timeout(Some(Duration::from_millis(50)))
        .build();
    for bus in [&relaxed, &strict] {
        bus.on(|_: EventHandle<PingEvent>| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            String::from("slow")
        });
    }
    relaxed.forward_to(&strict);

    let event = relaxed
        .dispatch(PingEvent { value: 7 })
        .unwrap()
        .await
        .unwrap();
    let results = event.event_results();
    let on = |bus: &EventBus| {
        results
            .iter()
            .find(|r| r.eventbus_id == bus.id() && r.forwarded_event_id.is_none())
            .cloned()
            .unwrap()
    };
    let on_relaxed = on(&relaxed);
    assert_eq!(on_relaxed.status, ResultStatus::Completed);
    assert_eq!(on_relaxed.result.as_deref(), Some("slow"));
    let on_strict = on(&strict);
    assert_eq!(on_strict.status, ResultStatus::Error);
    assert!(on_strict.error.is_some());
}

// ---------------------------------------------------------------------------------------------
// Lineage
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn forwarding_the_same_event_never_makes_it_its_own_parent() {
    let origin = EventBus::new("SelfParentOrigin");
    let target = EventBus::new("SelfParentTarget");
    origin.on(|_: EventHandle<PingEvent>| String::from("origin-ok"));
    target.on(|_: EventHandle<PingEvent>| String::from("target-ok"));
    origin.forward_to(&target);

    let event = origin
        .dispatch(PingEvent { value: 0 })
        .unwrap()
        .await
        .unwrap();
    all_idle(&[&origin, &target]).await;

    assert_eq!(event.event_parent_id(), None);
    assert!(event.event_children().is_empty());
    assert_eq!(event.event_path(), [origin.label(), target.label()]);
    assert!(
        event
            .event_results()
            .iter()
            .all(|r| r.event_children.is_empty())
    );
    assert_eq!(
        event.event_results_list().await.unwrap(),
        ["origin-ok", "target-ok"]
    );
}

/// A handler that dispatches its own event on its own bus changes nothing.
#[tokio::test]
async fn redispatching_the_handled_event_on_its_own_bus_is_a_no_op() {
    let bus = EventBus::new("SameEventBus");
    bus.on(|e: EventHandle<PingEvent>| {
        let again = e.event_bus().unwrap().dispatch(&e)?;
        assert_eq!(again.event_id(), e.event_id());
        Ok::<_, bubus::DispatchError>(String::from("root"))
    });

    let root = bus.dispatch(PingEvent { value: 0 }).unwrap().await.unwrap();
    assert_eq!(root.event_parent_id(), None);
    assert!(root.event_children().is_empty());
    assert_eq!(root.event_path(), [bus.label()]);
    assert_eq!(root.event_results().len(), 1);
    assert_eq!(bus.event_history().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn children_dispatched_downstream_are_linked_to_the_forwarded_event() {
    let main = EventBus::new("MainBus");
    let auth = EventBus::new("AuthBus");
    main.on_pattern("AuthEvent", auth.forwarder());
    let downstream = auth.on(|e: EventHandle<AuthEvent>| {
        let bus = e.event_bus().expect("running on AuthBus");
        async move {
            bus.dispatch(ChildEvent {
                note: "queued".into(),
            })?;
            let awaited = bus
                .dispatch(ChildEvent {
                    note: "awaited".into(),
                })?
                .await?;
            Ok::<_, bubus::Error>(awaited.event_result().await?)
        }
    });
    auth.on(|e: EventHandle<ChildEvent>| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        format!("child:{}", e.note)
    });

    let parent = main
        .dispatch(AuthEvent { user: "bob".into() })
        .unwrap()
        .await
        .unwrap();

    // The parent completed only after both children, including the one nobody awaited.
    let children = parent.event_children();
    assert_eq!(children.len(), 2);
    for child in &children {
        assert!(child.is_complete());
        assert_eq!(child.event_parent_id(), Some(parent.event_id()));
        assert_eq!(child.event_path(), [auth.label()]);
        assert_eq!(
            child.event_emitted_by_handler_id().as_ref(),
            Some(downstream.id())
        );
    }
    assert!(parent.event_completed_at() >= children[0].event_completed_at());
    assert_eq!(parent.event_result().await.unwrap(), "child:awaited");
    // The children were dispatched on the downstream bus only.
    assert!(main.find::<ChildEvent>().await.is_none());
    assert!(auth.event_is_child_of(&children[0], &parent));
}

// ---------------------------------------------------------------------------------------------
// Selecting and removing forwarders
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_pattern_forwarder_forwards_only_its_event_type() {
    let main = EventBus::new("MainBus");
    let auth = EventBus::new("AuthBus");
    let forwarder = main.on_pattern("AuthEvent", auth.forwarder());
    assert_eq!(forwarder.handler_name(), "AuthBus.dispatch");
    assert_eq!(forwarder.event_pattern(), "AuthEvent");
    let seen = Recorder::new();
    let s = seen.clone();
    auth.on(move |e: AnyEvent| s.push(e.event_type()));

    let auth_event = main
        .dispatch(AuthEvent { user: "a".into() })
        .unwrap()
        .await
        .unwrap();
    let other = main.dispatch(OtherEvent {}).unwrap().await.unwrap();
    assert!(auth.wait_until_idle(None).await);

    assert_eq!(seen.entries(), ["AuthEvent"]);
    assert_eq!(auth_event.event_path(), [main.label(), auth.label()]);
    assert_eq!(other.event_path(), [main.label()]);
    let forward = &auth_event.event_results()[0];
    assert_eq!(forward.handler_name, "AuthBus.dispatch");
    assert_eq!(forward.forwarded_event_id, Some(auth_event.event_id()));
}

#[tokio::test]
async fn off_removes_a_forwarder() {
    let bus_a = EventBus::new("OffA");
    let bus_b = EventBus::new("OffB");
    let log = Recorder::new();
    record_pings(&bus_b, &log, "B");
    let forward = bus_a.forward_to(&bus_b);

    let first = bus_a
        .dispatch(PingEvent { value: 1 })
        .unwrap()
        .await
        .unwrap();
    assert_eq!(first.event_path(), [bus_a.label(), bus_b.label()]);

    assert!(bus_a.off(&forward));
    assert!(!bus_a.off(&forward), "already removed");
    let second = bus_a
        .dispatch(PingEvent { value: 2 })
        .unwrap()
        .await
        .unwrap();
    assert!(bus_b.wait_until_idle(None).await);

    assert_eq!(second.event_path(), [bus_a.label()]);
    assert!(second.event_results().is_empty());
    assert_eq!(seen_by(&log, "B"), [first.event_id().to_string()]);
    // The result the forwarder left on the first event stays.
    assert_eq!(
        first.event_results()[0].forwarded_event_id,
        Some(first.event_id())
    );
}

#[tokio::test]
async fn forwarding_to_a_stopped_bus_records_the_refusal_and_still_completes() {
    let source = EventBus::new("LiveSource");
    let dead = EventBus::new("StoppedTarget");
    source.on(|_: EventHandle<PingEvent>| String::from("local"));
    source.forward_to(&dead);
    dead.stop(None).await;

    let event = source
        .dispatch(PingEvent { value: 5 })
        .unwrap()
        .await
        .unwrap();
    assert_eq!(event.event_status(), EventStatus::Completed);
    assert_eq!(event.event_path(), [source.label()]);
    let errors = event.event_errors();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].message().contains("stopped"),
        "{}",
        errors[0].message()
    );
    // The local handler's value is still there for whoever ignores errors.
    assert_eq!(
        event.results().ignore_errors().list().await.unwrap(),
        ["local"]
    );
}

#[tokio::test]
async fn a_forwarded_event_still_queued_downstream_is_in_its_history() {
    let upstream = EventBus::new("Upstream");
    let downstream = EventBus::new("Downstream");
    let (open, gate) = watch::channel(false);
    downstream.on(move |_: EventHandle<PingEvent>| {
        let mut gate = gate.clone();
        async move {
            let _ = gate.wait_for(|open| *open).await;
            String::from("through")
        }
    });
    upstream.forward_to(&downstream);

    let first = upstream.dispatch(PingEvent { value: 1 }).unwrap();
    let second = upstream.dispatch(PingEvent { value: 2 }).unwrap();
    assert!(upstream.wait_until_idle(None).await);

    // Upstream is done with both; downstream runs the first and still queues the second.
    assert_eq!(second.event_pending_bus_count(), 1);
    assert!(!first.is_complete() && !second.is_complete());
    assert_eq!(downstream.queue_len(), 1);
    let queued = downstream
        .find::<PingEvent>()
        .matching(|e| e.value == 2)
        .await
        .expect("the second event is in the downstream history while queued");
    assert_eq!(queued.event_id(), second.event_id());

    open.send_replace(true);
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!(first.event_result().await.unwrap(), "through");
    assert_eq!(second.event_pending_bus_count(), 0);
}
