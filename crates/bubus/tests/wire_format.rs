//! The canonical event and result JSON (design §4, semantics §2.1–2.2) of events built in Rust,
//! typed and dynamic, before and after processing; the Python 1.x flavour; defaults for missing
//! keys; `event_reset`.

mod wire_support;

use std::time::Duration;

use bubus::{
    AnyEvent, DynEvent, EventBus, EventHandle, EventStatus, result::ResultStatus, time::Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wire_support::*;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct LineItem {
    sku: String,
    quantity: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(
    result = String,
    version = "1.2.0",
    timeout = 12.5,
    handler_completion = "first",
    concurrency = "parallel"
)]
struct OrderPlaced {
    order_id: String,
    items: Vec<LineItem>,
    note: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = u32)]
struct ShipmentRequested {
    order_id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("warehouse {0} is closed")]
struct WarehouseClosed(String);

fn order() -> OrderPlaced {
    OrderPlaced {
        order_id: "ord-1".into(),
        items: vec![LineItem {
            sku: "ENG-1".into(),
            quantity: 2,
        }],
        note: None,
    }
}

fn payload_keys(json: &Value) -> Vec<String> {
    keys(json)
        .into_iter()
        .skip(EVENT_KEYS.len())
        .filter(|k| k != "event_results")
        .collect()
}

async fn idle(bus: &EventBus) {
    assert!(bus.wait_until_idle(Some(Duration::from_secs(10))).await);
}

#[test]
fn a_typed_event_has_every_builtin_key_in_order_then_its_fields() {
    let event = EventHandle::new(order());
    let json = event.to_json();
    assert_canonical_shape(&json, "typed");
    assert_eq!(payload_keys(&json), ["order_id", "items", "note"]);

    assert_eq!(json["event_type"], "OrderPlaced");
    assert_eq!(json["event_version"], "1.2.0");
    assert_eq!(json["event_timeout"], 12.5);
    assert_eq!(json["event_slow_timeout"], Value::Null);
    assert_eq!(json["event_concurrency"], "parallel");
    assert_eq!(json["event_handler_timeout"], Value::Null);
    assert_eq!(json["event_handler_slow_timeout"], Value::Null);
    assert_eq!(json["event_handler_concurrency"], Value::Null);
    assert_eq!(json["event_handler_completion"], "first");
    assert_eq!(json["event_result_type"]["type"], "string");
    assert_eq!(
        json["event_result_type"]["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    let id = uuid::Uuid::parse_str(json["event_id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7);
    assert_eq!(id, event.event_id());
    assert_eq!(json["event_path"], json!([]));
    assert_eq!(json["event_parent_id"], Value::Null);
    assert_eq!(json["event_emitted_by_handler_id"], Value::Null);
    assert_eq!(json["event_pending_bus_count"], 0);
    assert_eq!(
        json["event_created_at"],
        event.event_created_at().to_string()
    );
    assert_eq!(json["event_status"], "pending");
    assert_eq!(json["event_started_at"], Value::Null);
    assert_eq!(json["event_completed_at"], Value::Null);
    assert_eq!(json["order_id"], "ord-1");
    assert_eq!(json["items"], json!([{"sku": "ENG-1", "quantity": 2}]));
    assert_eq!(json["note"], Value::Null);
    assert!(json.get("event_results").is_none());
    assert_eq!(event.to_json_string(), json.to_string());
}

#[test]
fn a_dynamic_event_has_the_same_shape_and_its_declared_schema() {
    let schema = json!({"type": "object", "properties": {"ok": {"type": "boolean"}}});
    let event = EventHandle::new(
        DynEvent::new(
            "Ping",
            json!({"n": 1, "nested": {"list": [1, "two", null]}}),
        )
        .unwrap()
        .with_result_schema(schema.clone()),
    );
    let json = event.to_json();
    assert_canonical_shape(&json, "dynamic");
    assert_eq!(payload_keys(&json), ["n", "nested"]);
    assert_eq!(json["event_type"], "Ping");
    assert_eq!(json["event_version"], "0.0.1");
    assert_eq!(json["event_timeout"], Value::Null);
    assert_eq!(json["event_result_type"], schema);
    assert_eq!(json["nested"], json!({"list": [1, "two", null]}));

    let plain = EventHandle::new(DynEvent::new("Ping", json!({})).unwrap());
    assert_eq!(plain.to_json()["event_result_type"], Value::Null);
}

#[tokio::test]
async fn a_processed_event_carries_path_status_timestamps_lineage_and_results() {
    let bus = EventBus::new("Orders");
    let shipping = EventBus::new("Shipping");
    let children = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<AnyEvent>::new()));
    {
        let children = children.clone();
        bus.on(move |e: EventHandle<OrderPlaced>| {
            let children = children.clone();
            async move {
                let bus = bubus::bus::current_bus().expect("inside a handler");
                let child = bus
                    .dispatch(ShipmentRequested {
                        order_id: e.order_id.clone(),
                    })
                    .expect("dispatch");
                children.lock().push(child.to_any());
                child.await.expect("child");
                format!("accepted:{}", e.order_id)
            }
        });
    }
    bus.on(
        |_: EventHandle<ShipmentRequested>| -> Result<u32, WarehouseClosed> {
            Err(WarehouseClosed("LHR".into()))
        },
    );
    bus.forward_to(&shipping);
    shipping.on(|_: EventHandle<ShipmentRequested>| 3u32);

    let event = bus.dispatch(order()).unwrap();
    let event = event.await.unwrap();
    idle(&bus).await;
    idle(&shipping).await;

    let json = event.to_json_with_results();
    assert_canonical_shape(&json, "processed");
    assert_eq!(json["event_status"], "completed");
    assert_eq!(json["event_path"][0], bus.label());
    let started = ts(&json["event_started_at"]);
    let completed = ts(&json["event_completed_at"]);
    assert!(ts(&json["event_created_at"]) <= started && started <= completed);

    let results = json["event_results"].as_object().unwrap();
    let order_result = results
        .values()
        .find(|r| r["handler_event_pattern"] == "OrderPlaced")
        .expect("the typed handler's result");
    assert_eq!(keys(order_result), RESULT_KEYS);
    assert_eq!(order_result["status"], "completed");
    assert_eq!(order_result["result"], "accepted:ord-1");
    assert_eq!(order_result["error"], Value::Null);
    assert_eq!(order_result["event_id"], json["event_id"]);
    assert_eq!(order_result["eventbus_name"], "Orders");
    assert_eq!(order_result["eventbus_id"], bus.id().to_string());
    assert!(
        order_result["handler_file_path"]
            .as_str()
            .unwrap()
            .contains("wire_format.rs:")
    );
    assert_eq!(
        order_result["handler_registered_at"]
            .as_str()
            .unwrap()
            .len(),
        30
    );

    // The child: parent id, the emitting handler, and a path through both buses.
    let child = children.lock()[0].clone();
    assert_eq!(
        order_result["event_children"],
        json!([child.event_id().to_string()])
    );
    let child_json = child.to_json_with_results();
    assert_eq!(child_json["event_parent_id"], json["event_id"]);
    assert_eq!(
        child_json["event_emitted_by_handler_id"],
        order_result["handler_id"]
    );
    assert_eq!(
        child_json["event_path"],
        json!([bus.label(), shipping.label()])
    );
    assert_eq!(child_json["event_result_type"]["type"], "integer");
    let child_results = child_json["event_results"].as_object().unwrap();
    let failed = child_results
        .values()
        .find(|r| r["status"] == "error")
        .expect("the failing handler");
    assert_eq!(
        failed["error"],
        json!({"type": "WarehouseClosed", "message": "warehouse LHR is closed"})
    );
    assert_eq!(failed["result"], Value::Null);
    // The forwarding handler's result is the event itself, as its JSON without results.
    let forward = child_results
        .values()
        .find(|r| r["handler_event_pattern"] == "*")
        .expect("the forwarding handler");
    assert_eq!(forward["result"]["event_id"], child_json["event_id"]);
    assert!(forward["result"].get("event_results").is_none());
    assert!(
        child_results
            .values()
            .any(|r| r["result"] == 3 && r["eventbus_name"] == "Shipping")
    );

    // `EventResult::to_json` agrees with the event's own serialization, except that a
    // forwarded result (which a snapshot holds only by id) is that event's id.
    for snapshot in child.event_results() {
        let mut expected = child_results
            .values()
            .find(|r| r["id"] == snapshot.id.to_string())
            .expect("same result")
            .clone();
        if snapshot.forwarded_event_id.is_some() {
            expected["result"] = json!(child.event_id().to_string());
        }
        assert_eq!(snapshot.to_json(), expected);
    }

    // And all of it reads back to the same JSON.
    let back = AnyEvent::from_json(&child_json).unwrap();
    assert_eq!(back.to_json_with_results(), child_json);
    assert_eq!(back.event_status(), EventStatus::Completed);
}

fn ship(_: EventHandle<ShipmentRequested>) -> u32 {
    7
}

#[tokio::test]
async fn results_are_keyed_by_handler_id_and_a_shared_handler_id_loses_nothing() {
    // Two buses with one name and the same handler: their deterministic handler ids coincide.
    let first = EventBus::new("Twin");
    let second = EventBus::new("Twin");
    first.on(ship);
    second.on(ship);
    first.forward_to(&second);
    let event = first
        .dispatch(ShipmentRequested {
            order_id: "ord-2".into(),
        })
        .unwrap();
    let event = event.await.unwrap();
    idle(&second).await;

    let records = event.event_results();
    let ships: Vec<_> = records
        .iter()
        .filter(|r| r.handler_name.ends_with("ship"))
        .collect();
    assert_eq!(ships.len(), 2);
    assert_eq!(ships[0].handler_id, ships[1].handler_id);

    let json = event.to_json_with_results();
    let results = json["event_results"].as_object().expect("an object");
    assert_eq!(results.len(), records.len(), "every result is written");
    for record in &records {
        let key = if record.id == ships[1].id {
            record.id.to_string()
        } else {
            record.handler_id.to_string()
        };
        assert_eq!(results[&key]["id"], record.id.to_string(), "{key}");
        assert_eq!(results[&key]["handler_id"], record.handler_id.to_string());
    }
    // And they read back, both of them.
    let back = AnyEvent::from_json(&json).unwrap();
    assert_eq!(back.event_results().len(), records.len());
    assert_eq!(back.to_json_with_results(), json);
}

#[test]
fn missing_keys_take_their_defaults() {
    let before = Timestamp::now();
    let event = AnyEvent::from_json(&json!({"event_type": "Bare"})).unwrap();
    let after = Timestamp::now();
    assert_eq!(event.event_id().get_version_num(), 7);
    assert!(before <= event.event_created_at() && event.event_created_at() <= after);
    assert_eq!(event.event_version(), "0.0.1");
    assert_eq!(event.event_status(), EventStatus::Pending);
    assert!(event.event_path().is_empty());
    assert_eq!(event.event_config(), bubus::event::EventConfig::UNSET);
    assert!(event.event_results().is_empty());
    assert!(event.payload_json().unwrap().is_empty());

    // Results in a map need no handler_id; results need no id, pattern or bus.
    let event = AnyEvent::from_json(&json!({
        "event_type": "Bare",
        "event_created_at": "2026-01-01T00:00:00Z",
        "event_results": {"h1": {"status": "completed", "result": 1}},
    }))
    .unwrap();
    let result = &event.event_results()[0];
    assert_eq!(result.handler_id.to_string(), "h1");
    assert_eq!(result.handler_name, "anonymous");
    assert_eq!(result.handler_event_pattern, "Bare");
    assert_eq!(result.eventbus_name, "EventBus");
    assert_eq!(result.eventbus_id, uuid::Uuid::nil());
    assert_eq!(
        result.handler_registered_at.to_string(),
        "2026-01-01T00:00:00.000000000Z"
    );
    assert_eq!(result.status, ResultStatus::Completed);
}

#[test]
fn decode_errors_name_the_field_in_their_message() {
    let err =
        AnyEvent::from_json(&json!({"event_type": "X", "event_status": "error"})).unwrap_err();
    assert_eq!(err.field(), "event_status");
    assert!(
        err.to_string().starts_with("invalid `event_status`: "),
        "{err}"
    );
    let err = AnyEvent::from_json_str("{\"event_type\":").unwrap_err();
    assert_eq!(err.field(), "");
    assert!(err.to_string().starts_with("invalid JSON"), "{err}");
    assert!(err.to_string().contains("column"), "{err}");
}

#[tokio::test]
async fn event_reset_makes_a_fresh_pending_copy() {
    let bus = EventBus::new("Reset");
    bus.on(|e: EventHandle<OrderPlaced>| e.order_id.clone());
    let event = bus.dispatch(order()).unwrap().await.unwrap();
    let parent = uuid::Uuid::parse_str("0190d6c5-8e3a-7c4b-9f21-000000000001").unwrap();
    event.set_event_parent_id(Some(parent));
    let any = event.to_any();

    for (copy, keeps_id) in [
        (any.event_reset(), false),
        (any.event_reset_keep_id(), true),
    ] {
        let json = copy.to_json_with_results();
        assert_eq!(json["event_status"], "pending");
        assert_eq!(json["event_started_at"], Value::Null);
        assert_eq!(json["event_completed_at"], Value::Null);
        assert_eq!(json["event_results"], json!({}));
        assert_eq!(json["event_path"], json!([bus.label()]));
        assert_eq!(json["event_parent_id"], parent.to_string());
        assert_eq!(json["order_id"], "ord-1");
        assert_eq!(json["event_timeout"], 12.5);
        assert_eq!(copy.event_id() == event.event_id(), keeps_id);
        assert_eq!(
            copy.event_created_at() == event.event_created_at(),
            keeps_id
        );
    }
}

/// Serializes `secret` as nothing, and cannot be read back without it.
#[derive(Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct OneWay {
    visible: String,
    #[serde(skip_serializing)]
    secret: String,
}

/// `cache` is not part of the payload's JSON: a copy starts it over.
#[derive(Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = usize)]
struct WithCache {
    name: String,
    #[serde(skip)]
    cache: Vec<u8>,
}

#[tokio::test]
async fn event_reset_reads_the_payload_back_from_its_json() {
    // A typed copy, its payload rebuilt as the reference runtimes rebuild it from the dump.
    let event = EventHandle::new(WithCache {
        name: "n".into(),
        cache: vec![1, 2, 3],
    });
    let copy = event.to_any().event_reset();
    let typed = copy
        .downcast::<WithCache>()
        .expect("the copy is a WithCache");
    assert_eq!(typed.name, "n");
    assert!(typed.cache.is_empty());
    let bus = EventBus::new("Copies");
    bus.on(|e: EventHandle<WithCache>| e.name.len() + e.cache.len());
    let done = bus.dispatch(typed).unwrap().await.unwrap();
    assert_eq!(done.event_result().await.unwrap(), 1);

    // A payload that cannot be read back from its own JSON travels as that JSON: the copy keeps
    // its type and fields, and a typed handler says why it cannot decode it.
    let event = EventHandle::new(OneWay {
        visible: "v".into(),
        secret: "s".into(),
    });
    let copy = event.to_any().event_reset();
    assert_eq!(copy.event_type(), "OneWay");
    assert_eq!(copy.payload_json().unwrap()["visible"], "v");
    let bus = EventBus::new("OneWays");
    bus.on(|e: EventHandle<OneWay>| e.secret.clone());
    let done = bus.dispatch(copy).unwrap().await.unwrap();
    let results = done.event_results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, ResultStatus::Error);
    let error = results[0].error.as_ref().expect("a decode error");
    assert_eq!(error.kind(), bubus::error::HandlerErrorKind::PayloadDecode);
    assert!(error.to_string().contains("secret"), "{error}");
}

// ---------------------------------------------------------------------------------------------
// Python 1.x

#[tokio::test]
async fn the_python1_flavour_uses_bus_names_event_schema_and_microseconds() {
    let bus = EventBus::new("Orders");
    bus.on(|e: EventHandle<OrderPlaced>| e.order_id.clone());
    let event = bus.dispatch(order()).unwrap().await.unwrap();
    let canonical = event.to_json();
    let py = event.to_json_python1();

    assert_eq!(
        keys(&py),
        [
            "event_type",
            "event_schema",
            "event_timeout",
            "event_id",
            "event_path",
            "event_parent_id",
            "event_created_at",
            "event_processed_at",
            "event_concurrency",
            "event_handler_completion",
            "order_id",
            "items",
            "note",
        ]
    );
    assert_eq!(py["event_schema"], "OrderPlaced@1.2.0");
    assert_eq!(py["event_timeout"], 12.5);
    assert_eq!(py["event_path"], json!(["Orders"]));
    assert_eq!(py["event_id"], canonical["event_id"]);
    let created = canonical["event_created_at"].as_str().unwrap();
    assert_eq!(
        py["event_created_at"],
        format!("{}Z", &created[..26]),
        "six digits, truncated"
    );
    let completed = canonical["event_completed_at"].as_str().unwrap();
    assert_eq!(py["event_processed_at"], format!("{}Z", &completed[..26]));
    assert_eq!(py["event_concurrency"], "parallel");
    assert_eq!(py["event_handler_completion"], "first");

    // Unset: no timeout key (the receiving class's default applies), no result type.
    let bare = EventHandle::new(DynEvent::new("Ping", json!({"n": 1})).unwrap());
    let py = bare.to_json_python1();
    assert_eq!(
        keys(&py),
        [
            "event_type",
            "event_schema",
            "event_id",
            "event_path",
            "event_parent_id",
            "event_created_at",
            "event_processed_at",
            "n"
        ]
    );
    assert_eq!(py["event_processed_at"], Value::Null);
}

#[test]
fn the_python1_flavour_reads_back_with_every_field_it_carries() {
    let event = AnyEvent::from_json(&read_json(
        &golden_dir().join("events/lineage_overrides.json"),
    ))
    .unwrap();
    let py = event.to_json_python1();
    assert_eq!(py["event_path"], json!(["Api", "Workers", "Audit"]));
    assert_eq!(
        py["event_emitted_by_handler_id"],
        "8d2f0c47-1b3e-5a69-9c8d-7e6f5a4b3c2d"
    );
    let back = AnyEvent::from_json(&py).unwrap().to_json();
    let original = event.to_json();
    for key in [
        "event_type",
        "event_version",
        "event_timeout",
        "event_slow_timeout",
        "event_concurrency",
        "event_handler_timeout",
        "event_handler_slow_timeout",
        "event_handler_concurrency",
        "event_handler_completion",
        "event_id",
        "event_parent_id",
        "event_emitted_by_handler_id",
        "task",
    ] {
        assert_eq!(back[key], original[key], "{key}");
    }
    assert_eq!(back["event_path"], json!(["Api", "Workers", "Audit"]));
    assert_eq!(back["event_created_at"], "2026-11-24T10:00:00.000000000Z");
    // A started event has no 1.x representation: it reads back as pending.
    assert_eq!(back["event_status"], "pending");
}

#[test]
fn bus_names_that_merely_contain_a_hash_are_kept() {
    let event = AnyEvent::from_json(&json!({
        "event_type": "X",
        "event_path": ["Plain", "Label#ab12", "Odd#name", "#abcd", "Long#abcde", "Up#0F9A"],
    }))
    .unwrap();
    assert_eq!(
        event.to_json_python1()["event_path"],
        json!(["Plain", "Label", "Odd#name", "#abcd", "Long#abcde", "Up"])
    );
}

/// A Python abxbus 2.5.79 event with a handler that failed, plus keys a newer runtime might add
/// (`event_future_metadata`, `handler_future_option`, `eventbus_future_flag`).
fn future_event() -> Value {
    read_json(&golden_dir().join("events/py25_future_keys.json"))
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(name = "OrderPlaced", result = i64)]
struct KnownOrder {
    order_id: String,
}

#[tokio::test]
async fn unknown_metadata_result_and_payload_keys_survive_decoding_a_bus_and_encoding() {
    let input = future_event();
    let event = AnyEvent::from_json(&input).expect("newer keys are no reason to refuse an event");
    let out = event.to_json_with_results();
    for key in [
        "event_ttl",
        "event_result_ttl",
        "event_future_metadata",
        "gift_note",
    ] {
        assert_eq!(out[key], input[key], "{key}");
    }
    assert_eq!(out["event_results"], input["event_results"]);
    // A result snapshot writes them too.
    for result in event.event_results() {
        let json = result.to_json();
        assert_eq!(json["handler_result_ttl"], Value::Null);
        assert_eq!(json["handler_future_option"], 3);
        assert_eq!(json["eventbus_future_flag"], true);
    }

    // Through a bus (as a bridge delivers it): a typed handler whose struct knows only some of
    // the payload sees its fields, and the event keeps all of them.
    let bus = EventBus::new("Receiver");
    bus.on(|order: EventHandle<KnownOrder>| order.order_id.len() as i64);
    let copy = event.event_reset_keep_id();
    let done = bus.dispatch(copy).unwrap().await.unwrap();
    idle(&bus).await;
    assert_eq!(done.event_results()[0].result_json, json!(5));
    let after = done.to_json();
    for key in ["event_future_metadata", "gift_note", "items", "order_id"] {
        assert_eq!(after[key], input[key], "{key}");
    }
}

#[tokio::test]
async fn event_blocks_parent_completion_is_derived_read_and_written_back() {
    let bus = EventBus::new("Blocks");
    let children = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<AnyEvent>::new()));
    let seen = children.clone();
    bus.on(move |_: EventHandle<OrderPlaced>| {
        let child = bubus::bus::current_bus()
            .unwrap()
            .dispatch(ShipmentRequested {
                order_id: "ord-1".into(),
            })
            .unwrap();
        seen.lock().push(child.to_any());
        "placed".to_owned()
    });
    bus.on(|_: EventHandle<ShipmentRequested>| 1u32);
    let parent = bus.dispatch(order()).unwrap().await.unwrap();
    idle(&bus).await;
    let child = children.lock()[0].clone();
    // In this crate's model every child a handler dispatches blocks its parent's completion.
    assert_eq!(parent.to_json()["event_blocks_parent_completion"], false);
    assert_eq!(child.to_json()["event_blocks_parent_completion"], true);

    // What another runtime says is kept, whatever the lineage says.
    let mut from_python = child.to_json();
    from_python["event_blocks_parent_completion"] = json!(false);
    let read = AnyEvent::from_json(&from_python).unwrap();
    assert_eq!(read.to_json()["event_blocks_parent_completion"], false);
    assert_eq!(
        read.to_json_python1()["event_blocks_parent_completion"],
        false
    );
    from_python["event_blocks_parent_completion"] = Value::Null;
    let read = AnyEvent::from_json(&from_python).unwrap();
    assert_eq!(read.to_json()["event_blocks_parent_completion"], true);
    assert!(
        read.to_json_python1()
            .get("event_blocks_parent_completion")
            .is_none()
    );
}

#[test]
fn an_event_read_from_text_writes_its_payload_as_it_was_read() {
    // Spaced out, with a number and an escape spelled their own way.
    let text = r#"{ "event_type" : "Ping", "event_id": "018f8e40-1234-7000-8000-000000000001",
        "n" : 1e2, "s" : "caf\u00e9", "deep" : { "a" : [ 1 , 2 ] } }"#;
    let event = AnyEvent::from_json_str(text).unwrap();
    let written = event.to_json_string();
    // Compact, in one line, the payload spelled as it came.
    assert!(
        !written.contains(' ') && !written.contains('\n'),
        "{written}"
    );
    assert!(
        written.ends_with(r#","n":1e2,"s":"caf\u00e9","deep":{"a":[1,2]}}"#),
        "{written}"
    );
    // The same values as the parsed form, which spells them its own way.
    let parsed: Value = serde_json::from_str(&written).unwrap();
    assert_eq!(parsed, event.to_json());
    assert_eq!(event.to_json()["n"], json!(100.0));
    assert_eq!(event.to_json()["s"], "café");
    // Handlers and copies see the same payload.
    assert_eq!(event.payload_json().unwrap()["deep"]["a"][1], 2);
    assert!(
        event
            .event_reset_keep_id()
            .to_json_string()
            .ends_with(r#""deep":{"a":[1,2]}}"#)
    );
}

#[tokio::test]
async fn a_forwarded_event_read_from_text_writes_its_whole_json_as_the_forward_result() {
    let first = EventBus::new("TextFirst");
    let second = EventBus::new("TextSecond");
    first.forward_to(&second);
    second.on_pattern("Ping", |_: AnyEvent| json!("pong"));
    let event = AnyEvent::from_json_str(r#"{"event_type":"Ping","n":1e2,"tags":["a"]}"#).unwrap();
    let done = first.dispatch(event).unwrap().await.unwrap();
    idle(&second).await;
    let written: Value = serde_json::from_str(&done.to_json_string_with_results()).unwrap();
    assert_eq!(written, done.to_json_with_results());
    let forward = written["event_results"]
        .as_object()
        .unwrap()
        .values()
        .find(|r| r["eventbus_name"] == "TextFirst")
        .unwrap();
    assert_eq!(forward["result"]["tags"], json!(["a"]));
    assert_eq!(forward["result"]["n"], json!(100.0));
}

/// Text the decoder keeps as it was read (payload fields, results) must parse again: a number
/// beyond the `f64` range passes JSON's syntax but no parser reads it back, so it is refused
/// with the field named (found by the `event_decoder` fuzz target).
#[test]
fn a_number_no_parser_reads_back_is_refused_where_it_would_be_kept_as_text() {
    let err = AnyEvent::from_json_str(r#"{"event_type":"OrderPlaced","order_id":6666e6666667}"#)
        .unwrap_err();
    assert!(err.to_string().contains("order_id"), "{err}");
    assert!(err.to_string().contains("out of range"), "{err}");
    let ok =
        AnyEvent::from_json_str(r#"{"event_type":"OrderPlaced","order_id":6.5e300,"ok":true}"#)
            .unwrap();
    let again = AnyEvent::from_json_str(&ok.to_json_string()).unwrap();
    assert_eq!(again.payload_json().unwrap()["ok"], serde_json::json!(true));
}
