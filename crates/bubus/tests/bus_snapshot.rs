//! Bus snapshots (§2.4 / §1.27 of the reference): serialize a bus with its handlers, history and
//! pending queue, restore it, re-bind handlers by their deterministic ids, drain the queue in order.

use bubus::{AnyEvent, DynEvent, Event, EventBus, EventHandle, EventStatus, result::ResultStatus};
use bubus_test_support::Recorder;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::time::Duration;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct Work {
    n: u32,
}

fn h1(e: EventHandle<Work>) -> String {
    format!("h1:{}", e.n)
}

fn h2(e: EventHandle<Work>) -> String {
    format!("h2:{}", e.n)
}

#[tokio::test]
async fn snapshot_has_the_reference_shape() {
    let bus = EventBus::builder("SnapBus")
        .disable_handler_file_paths()
        .build();
    bus.on(h1);
    bus.dispatch(Work { n: 1 }).unwrap().await.unwrap();
    let snapshot = bus.snapshot();
    for key in [
        "id",
        "name",
        "max_history_size",
        "max_history_drop",
        "event_concurrency",
        "event_timeout",
        "event_slow_timeout",
        "event_handler_concurrency",
        "event_handler_completion",
        "event_handler_slow_timeout",
        "event_handler_detect_file_paths",
        "handlers",
        "handlers_by_key",
        "event_history",
        "pending_event_queue",
    ] {
        assert!(snapshot.get(key).is_some(), "missing {key}");
    }
    assert_eq!(snapshot["event_concurrency"], "bus-serial");
    assert_eq!(snapshot["event_timeout"], 60.0);
    let handler_ids = snapshot["handlers_by_key"]["Work"].as_array().unwrap();
    assert_eq!(handler_ids.len(), 1);
    let handler = &snapshot["handlers"][handler_ids[0].as_str().unwrap()];
    assert_eq!(handler["event_pattern"], "Work");
    assert_eq!(handler["handler_file_path"], serde_json::Value::Null);
    let history = snapshot["event_history"].as_object().unwrap();
    assert_eq!(history.len(), 1);
    let event = history.values().next().unwrap();
    assert_eq!(event["event_status"], "completed");
    let handler_id = handler_ids[0].as_str().unwrap();
    assert_eq!(event["event_results"][handler_id]["result"], "h1:1");
    assert_eq!(snapshot["pending_event_queue"], json!([]));
}

#[tokio::test]
async fn restored_bus_rebinds_handlers_and_drains_its_queue_in_order() {
    // Build a bus with two handlers and queued events, snapshot it before it processes anything.
    let source = EventBus::builder("Source")
        .disable_handler_file_paths()
        .build();
    source.on(h1);
    source.on(h2);
    // A seeded, completed result for h1 on e1 (as if a previous run already did it).
    let e1 = EventHandle::new(Work { n: 1 });
    let e2 = EventHandle::new(Work { n: 2 });
    let snapshot = {
        // A snapshot of `source` whose queue holds e1 and e2 (as if taken before they ran).
        let mut snap = source.snapshot();
        let mut history = serde_json::Map::new();
        let mut j1 = e1.to_json_with_results();
        let h1_id = source
            .handlers()
            .iter()
            .find(|h| h.handler_name().ends_with("h1"))
            .unwrap()
            .id()
            .to_string();
        j1["event_results"] = json!([{
            "id": "018f8e40-1234-7000-8000-0000000000a1",
            "status": "completed",
            "event_id": j1["event_id"],
            "handler_id": h1_id,
            "handler_name": "h1",
            "eventbus_id": source.id().to_string(),
            "eventbus_name": "Source",
            "result": "seeded",
            "event_children": []
        }]);
        j1["event_path"] = json!([source.label()]);
        let mut j2 = e2.to_json_with_results();
        j2["event_path"] = json!([source.label()]);
        history.insert(e1.event_id().to_string(), j1);
        history.insert(e2.event_id().to_string(), j2);
        snap["event_history"] = serde_json::Value::Object(history);
        snap["pending_event_queue"] = json!([e1.event_id().to_string(), e2.event_id().to_string()]);
        snap
    };

    let restored = EventBus::restore(&snapshot).unwrap();
    assert_eq!(restored.id(), source.id());
    assert_eq!(restored.name(), "Source");
    assert_eq!(restored.queue_len(), 2);
    assert_eq!(
        restored.handlers().len(),
        2,
        "placeholders for both handlers"
    );

    // Re-register the real handlers: same functions, same patterns → same ids → re-bound.
    let log = Recorder::new();
    let ids_before: Vec<_> = restored.handlers().iter().map(|h| h.id().clone()).collect();
    restored.on(h1);
    restored.on(h2);
    let ids_after: Vec<_> = restored.handlers().iter().map(|h| h.id().clone()).collect();
    assert_eq!(
        ids_before, ids_after,
        "re-binding keeps the handler ids and count"
    );
    let l = log.clone();
    restored.on_pattern("*", move |e: AnyEvent| {
        l.push(e.event_type());
    });

    let trigger = restored.dispatch(Work { n: 3 }).unwrap();
    trigger.await.unwrap();
    assert!(restored.wait_until_idle(None).await);

    let history = restored.event_history();
    assert_eq!(history.len(), 3);
    for event in &history {
        assert_eq!(event.event_status(), EventStatus::Completed);
        assert!(
            event
                .event_results()
                .iter()
                .all(|r| r.status == ResultStatus::Completed)
        );
    }
    let e1r = restored.find_event_by_id(e1.event_id()).unwrap();
    let values: Vec<_> = e1r
        .event_results()
        .into_iter()
        .map(|r| r.result_json)
        .collect();
    // h1's seeded result is kept, h2 ran, the wildcard ran.
    assert_eq!(
        values,
        vec![json!("seeded"), json!("h2:1"), serde_json::Value::Null]
    );
    // The queue drained in order before the trigger.
    assert_eq!(log.entries(), ["Work", "Work", "Work"]);
    let order: Vec<_> = history.iter().map(|e| e.event_id()).collect();
    assert_eq!(order[..2], [e1.event_id(), e2.event_id()]);
}

#[tokio::test]
async fn unbound_placeholders_return_null_and_events_still_complete() {
    let bus = EventBus::builder("Placeholders").build();
    bus.on_pattern("Job", |_: AnyEvent| json!("done"));
    let snapshot = bus.snapshot();
    let restored = EventBus::restore(&snapshot).unwrap();
    // The handler is never re-registered: its placeholder runs and returns null.
    let event = restored
        .dispatch(DynEvent::new("Job", json!({})).unwrap())
        .unwrap()
        .await
        .unwrap();
    let results = event.event_results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, ResultStatus::Completed);
    assert!(results[0].result.is_none());
}

#[test]
fn malformed_snapshots_name_the_field() {
    let err = EventBus::restore(&json!({"name": "x"})).unwrap_err();
    assert_eq!(err.field(), "id");
    let err = EventBus::restore(&json!({"id": "not-a-uuid", "name": "x"})).unwrap_err();
    assert_eq!(err.field(), "id");
    let id = "018f8e40-1234-7000-8000-00000000bb22";
    let err = EventBus::restore(&json!({"id": id, "name": "x", "pending_event_queue": ["018f8e40-1234-7000-8000-00000000bb23"]})).unwrap_err();
    assert_eq!(err.field(), "pending_event_queue[0]");
    let err = EventBus::restore(&json!({"id": id, "name": "x", "event_history": {"a": {"event_type": "X", "event_status": "bogus"}}})).unwrap_err();
    assert_eq!(err.field(), "event_history.a.event_status");
    let err = EventBus::restore(&json!({"id": id, "name": "x", "event_concurrency": "sometimes"}))
        .unwrap_err();
    assert_eq!(err.field(), "event_concurrency"); // One event under two keys, or queued twice: refused, not restored as two events (found by
    // the bus_snapshot fuzz target: the restored bus's snapshot did not restore to itself).
    let event = json!({"event_type": "X", "event_id": "018f8e40-1234-7000-8000-00000000cc01",
        "event_status": "pending"});
    let err = EventBus::restore(&json!({"id": id, "name": "x",
        "event_history": {"a": event.clone(), "b": event.clone()}}))
    .unwrap_err();
    assert_eq!(err.field(), "event_history.b");
    let err = EventBus::restore(&json!({"id": id, "name": "x",
        "event_history": {"a": event.clone()},
        "pending_event_queue": ["018f8e40-1234-7000-8000-00000000cc01",
            "018f8e40-1234-7000-8000-00000000cc01"]}))
    .unwrap_err();
    assert_eq!(err.field(), "pending_event_queue[1]");
}

#[tokio::test]
async fn snapshot_round_trips_through_restore() {
    let bus = EventBus::builder("RoundTrip")
        .max_history_size(Some(10))
        .event_timeout(Some(Duration::from_secs(5)))
        .build();
    bus.on(h1);
    for n in 0..3 {
        bus.dispatch(Work { n }).unwrap().await.unwrap();
    }
    let snapshot = bus.snapshot();
    let restored = EventBus::restore(&snapshot).unwrap();
    assert_eq!(restored.config().max_history_size, Some(10));
    assert_eq!(
        restored.config().event_timeout,
        Some(Duration::from_secs(5))
    );
    let again = restored.snapshot();
    assert_eq!(again["event_history"], snapshot["event_history"]);
    assert_eq!(again["handlers"], snapshot["handlers"]);
    assert_eq!(again["handlers_by_key"], snapshot["handlers_by_key"]);
}

/// A bus snapshot Python abxbus 2.5.79 wrote (`EventBus.model_dump()`): one completed event, two
/// queued ones put straight into its queue (so their `event_path` is empty), one with a seeded
/// result and a payload field its class does not declare.
fn python_snapshot() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/wire/snapshots/py25_queued.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn a_newer_runtimes_snapshot_keeps_the_keys_this_version_does_not_know() {
    let input = python_snapshot();
    let restored = EventBus::restore(&input).expect("a 2.5 snapshot restores");
    let out = restored.snapshot();
    for key in ["event_ttl", "event_result_ttl"] {
        assert!(input.get(key).is_some(), "the golden has {key}");
        assert_eq!(out[key], input[key], "{key}");
    }
    // Handler entries come back exactly, `handler_result_ttl` included.
    assert_eq!(out["handlers"], input["handlers"]);
    assert_eq!(out["handlers_by_key"], input["handlers_by_key"]);
    assert_eq!(out["pending_event_queue"], input["pending_event_queue"]);
    for (id, event) in input["event_history"].as_object().unwrap() {
        let again = &out["event_history"][id];
        for (key, value) in event.as_object().unwrap() {
            if key != "event_pending_bus_count" && key != "event_path" {
                assert_eq!(&again[key], value, "event {id}: {key}");
            }
        }
    }
}

#[tokio::test]
async fn restored_queued_events_keep_the_event_path_of_the_snapshot() {
    let input = python_snapshot();
    let queued: Vec<String> = input["pending_event_queue"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_owned())
        .collect();
    let restored = EventBus::restore(&input).unwrap();
    let out = restored.snapshot();
    for id in &queued {
        assert_eq!(input["event_history"][id]["event_path"], json!([]));
        assert_eq!(out["event_history"][id]["event_path"], json!([]), "{id}");
    }
    // They still run here (the placeholders of Python's handlers return null), and their path
    // still says what the snapshot said.
    assert!(
        restored
            .wait_until_idle(Some(std::time::Duration::from_secs(10)))
            .await
    );
    for id in &queued {
        let event = restored.find_event_by_id(id.parse().unwrap()).unwrap();
        assert_eq!(event.event_status(), EventStatus::Completed, "{id}");
        assert!(event.event_path().is_empty(), "{id}");
        assert_eq!(event.to_json()["event_path"], json!([]));
    }
}

/// A snapshot of a bus whose in-flight `Parent` has a queued `Child` that Python marked as not
/// blocking its parent's completion (`blocks`), or said nothing about (`None`).
fn lineage_snapshot(blocks: Option<bool>) -> serde_json::Value {
    let bus = "018f8e40-1234-7000-8000-00000000cc01";
    let parent = "018f8e40-1234-7000-8000-00000000cc02";
    let child = "018f8e40-1234-7000-8000-00000000cc03";
    let handler = "0d7c4373-855f-5347-b20c-09f929432bfe";
    let mut child_json = json!({
        "event_type": "Child",
        "event_id": child,
        "event_parent_id": parent,
        "event_emitted_by_handler_id": handler,
        "event_path": ["Lineage#cc01"],
        "event_status": "pending",
    });
    if let Some(blocks) = blocks {
        child_json["event_blocks_parent_completion"] = json!(blocks);
    }
    json!({
        "id": bus,
        "name": "Lineage",
        // Both at once, and no timeout to cut the child short.
        "event_concurrency": "parallel",
        "event_timeout": null,
        "event_history": {
            parent: {
                "event_type": "Parent",
                "event_id": parent,
                "event_path": ["Lineage#cc01"],
                "event_status": "started",
            },
            child: child_json,
        },
        "pending_event_queue": [child],
    })
}

#[tokio::test(start_paused = true)]
async fn a_restored_child_that_does_not_block_its_parent_is_not_waited_for() {
    use std::time::Duration;
    for blocks in [Some(false), Some(true), None] {
        let restored = EventBus::restore(&lineage_snapshot(blocks)).unwrap();
        let release = std::sync::Arc::new(tokio::sync::Notify::new());
        let gate = release.clone();
        restored.on_pattern("Child", move |_: AnyEvent| {
            let gate = gate.clone();
            async move { gate.notified().await }
        });
        let parent = restored
            .find_event_by_id("018f8e40-1234-7000-8000-00000000cc02".parse().unwrap())
            .unwrap();
        let child = restored
            .find_event_by_id("018f8e40-1234-7000-8000-00000000cc03".parse().unwrap())
            .unwrap();
        assert_eq!(
            parent.event_children().len(),
            1,
            "{blocks:?}: listed as a child"
        );
        // A restored queue is processed from the first dispatch on.
        let _kick = restored.dispatch(DynEvent::new("Kick", json!({})).unwrap());
        // The child's handler holds it open; does the parent complete meanwhile? (The paused
        // clock moves on only once every task is stuck.)
        let parent_done = tokio::time::timeout(Duration::from_secs(30), parent.clone()).await;
        let waits = blocks != Some(false);
        assert_eq!(parent_done.is_err(), waits, "{blocks:?}");
        assert!(
            !child.is_complete(),
            "{blocks:?}: the child is still running"
        );
        release.notify_one();
        child.clone().await.unwrap();
        parent.clone().await.unwrap();
        assert_eq!(
            child.to_json()["event_blocks_parent_completion"],
            blocks.unwrap_or(true)
        );
    }
}
