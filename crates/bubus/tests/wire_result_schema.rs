//! Result schemas (`event_result_type`, semantics §1.11): typed result types that derive
//! `schemars::JsonSchema` send their JSON Schema; events that arrive with a schema from another
//! runtime check what handlers return against it, and check the results they carry in
//! `event_results`.

use std::collections::HashMap;
use std::time::Duration;

use bubus::{
    AnyEvent, DynEvent, EventBus, EventHandle, error::HandlerErrorKind, result::ResultStatus,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Region {
    x: u32,
    y: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
struct Screenshot {
    url: String,
    regions: Vec<Region>,
    caption: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = Screenshot)]
struct TakeScreenshot {
    url: String,
}

/// A result type without a schema.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Opaque(u8);

macro_rules! event_with_result {
    ($name:ident, $result:ty) => {
        #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
        #[event(result = $result)]
        struct $name {}
    };
}

event_with_result!(IntResult, i64);
event_with_result!(BoolResult, bool);
event_with_result!(ListResult, Vec<String>);
event_with_result!(MapResult, HashMap<String, Vec<i32>>);
event_with_result!(OptionResult, Option<String>);
event_with_result!(UnitResult, ());
event_with_result!(OpaqueResult, Opaque);

const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

fn result_type(event: impl bubus::Event) -> Value {
    EventHandle::new(event).to_json()["event_result_type"].clone()
}

async fn idle(bus: &EventBus) {
    assert!(bus.wait_until_idle(Some(Duration::from_secs(10))).await);
}

/// The pydantic schema of the Python reference's cross-runtime `ScreenshotResult` (nested
/// model, list, optional field), as a Python 2.x event carries it.
fn python_screenshot_schema() -> Value {
    json!({
        "$defs": {
            "ScreenshotRegion": {
                "properties": {
                    "x": {"title": "X", "type": "integer"},
                    "y": {"title": "Y", "type": "integer"},
                    "label": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": null, "title": "Label"}
                },
                "required": ["x", "y"],
                "title": "ScreenshotRegion",
                "type": "object"
            }
        },
        "properties": {
            "image_url": {"title": "Image Url", "type": "string"},
            "width": {"title": "Width", "type": "integer"},
            "regions": {"items": {"$ref": "#/$defs/ScreenshotRegion"}, "title": "Regions", "type": "array"}
        },
        "required": ["image_url", "width", "regions"],
        "title": "ScreenshotResult",
        "type": "object",
        "$schema": DRAFT_2020_12
    })
}

/// A pending Python 2.x event carrying `schema`.
fn python_event(event_type: &str, schema: Value) -> AnyEvent {
    AnyEvent::from_json(&json!({
        "event_type": event_type,
        "event_version": "0.0.1",
        "event_timeout": null,
        "event_result_type": schema,
        "event_id": "06b05988-24ae-718a-8000-92a9c60dc8f2",
        "event_path": [],
        "event_parent_id": null,
        "event_created_at": "2026-11-24T14:00:34.292514604Z",
        "event_status": "pending",
        "url": "https://example.com"
    }))
    .expect("a Python event")
}

#[test]
fn a_result_type_deriving_json_schema_is_sent_as_event_result_type() {
    let schema = result_type(TakeScreenshot { url: "u".into() });
    assert_eq!(schema["$schema"], DRAFT_2020_12);
    assert_eq!(schema["title"], "Screenshot");
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["properties"]["url"]["type"], "string");
    assert_eq!(schema["properties"]["regions"]["type"], "array");
    assert_eq!(
        schema["properties"]["regions"]["items"]["$ref"],
        "#/$defs/Region"
    );
    assert_eq!(
        schema["$defs"]["Region"]["properties"]["x"]["type"],
        "integer"
    );
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(required.contains(&"url") && required.contains(&"regions"));
}

#[test]
fn primitive_and_container_result_types_have_their_schemas() {
    assert_eq!(result_type(IntResult {})["type"], "integer");
    assert_eq!(result_type(BoolResult {})["type"], "boolean");
    let list = result_type(ListResult {});
    assert_eq!(
        (&list["type"], &list["items"]["type"]),
        (&json!("array"), &json!("string"))
    );
    let map = result_type(MapResult {});
    assert_eq!(map["type"], "object");
    assert_eq!(map["additionalProperties"]["items"]["type"], "integer");
    assert_eq!(
        result_type(OptionResult {})["type"],
        json!(["string", "null"])
    );
    // `()` results are always null, and a type without `JsonSchema` has no schema to send.
    assert_eq!(result_type(UnitResult {}), Value::Null);
    assert_eq!(result_type(OpaqueResult {}), Value::Null);
}

#[tokio::test]
async fn a_python_schema_rejects_a_wrong_typed_result_from_a_wildcard_handler() {
    let bus = EventBus::new("Schemas");
    bus.on(
        |_: AnyEvent| json!({"image_url": "a.png", "width": 640, "regions": [{"x": 1, "y": 2}]}),
    );
    bus.on(|_: AnyEvent| json!({"image_url": "b.png", "width": "wide", "regions": []}));
    bus.on(|_: AnyEvent| json!("not a screenshot"));
    bus.on(|_: AnyEvent| Value::Null);

    let event = bus
        .dispatch(python_event("TakeScreenshot", python_screenshot_schema()))
        .unwrap()
        .await
        .unwrap();
    idle(&bus).await;
    let results = event.event_results();
    assert_eq!(results.len(), 4);

    assert_eq!(results[0].status, ResultStatus::Completed);
    assert_eq!(results[0].result_json["image_url"], "a.png");
    for bad in &results[1..3] {
        assert_eq!(bad.status, ResultStatus::Error);
        let err = bad.error.as_ref().expect("schema error");
        assert_eq!(err.kind(), HandlerErrorKind::ResultSchema);
        assert_eq!(err.error_type(), "EventHandlerResultSchemaError");
        assert!(err.message().contains("event_result_type"), "{err}");
    }
    assert!(
        results[1]
            .error
            .as_ref()
            .unwrap()
            .message()
            .contains("/width")
    );
    // Null results are not checked (as in Python, which lets `None` through).
    assert_eq!(results[3].status, ResultStatus::Completed);

    // On the wire the rejected result is an error with type and message.
    let json = event.to_json_with_results();
    assert_eq!(
        json["event_results"][results[2].handler_id.to_string()]["error"]["type"],
        "EventHandlerResultSchemaError"
    );
    assert_eq!(json["event_result_type"], python_screenshot_schema());
}

#[tokio::test]
async fn typed_handlers_of_an_event_with_a_schema_are_checked_too() {
    let bus = EventBus::new("Typed");
    bus.on(|e: EventHandle<TakeScreenshot>| Screenshot {
        url: e.url.clone(),
        regions: vec![Region { x: 3, y: 4 }],
        caption: None,
    });
    // The event's schema is the Rust type's own, sent and read back: a typed handler's value
    // matches it, a dynamic handler's wrong value does not.
    let json = EventHandle::new(TakeScreenshot {
        url: "https://example.com".into(),
    })
    .to_json();
    bus.on(|_: AnyEvent| json!({"url": 5}));
    let event = bus
        .dispatch(AnyEvent::from_json(&json).unwrap())
        .unwrap()
        .await
        .unwrap();
    idle(&bus).await;
    let results = event.event_results();
    assert_eq!(results[0].status, ResultStatus::Completed);
    assert_eq!(
        results[0].result_json,
        json!({"url": "https://example.com", "regions": [{"x": 3, "y": 4}], "caption": null})
    );
    assert_eq!(results[1].status, ResultStatus::Error);
    assert_eq!(
        results[1].error.as_ref().unwrap().kind(),
        HandlerErrorKind::ResultSchema
    );
}

#[tokio::test]
async fn integer_and_number_schemas_differ_as_between_python_and_typescript() {
    let bus = EventBus::new("Numbers");
    bus.on(|_: AnyEvent| json!(1.5));
    bus.on(|_: AnyEvent| json!(2));
    bus.on(|_: AnyEvent| json!("1"));
    let statuses = |event: &AnyEvent| -> Vec<ResultStatus> {
        event.event_results().iter().map(|r| r.status).collect()
    };
    use ResultStatus::{Completed, Error};

    // Python `int`.
    let py = bus
        .dispatch(python_event("Count", json!({"type": "integer"})))
        .unwrap()
        .await
        .unwrap();
    idle(&bus).await;
    assert_eq!(statuses(&py), [Error, Completed, Error]);

    // TypeScript `number` (strict: no string coercion either).
    let mut ts = python_event("Count", json!({"type": "number"})).to_json();
    ts["event_id"] = json!("019a9d1f-0001-7abc-8def-0123456789ab");
    let ts = bus
        .dispatch(AnyEvent::from_json(&ts).unwrap())
        .unwrap()
        .await
        .unwrap();
    idle(&bus).await;
    assert_eq!(statuses(&ts), [Completed, Completed, Error]);
}

#[tokio::test]
async fn a_dynamic_event_with_a_declared_schema_checks_its_handlers() {
    let bus = EventBus::new("Declared");
    bus.on(|_: EventHandle<DynEvent>| json!(["a", "b"]));
    bus.on(|_: EventHandle<DynEvent>| json!(["a", 1]));
    let event = DynEvent::new("Tags", json!({}))
        .unwrap()
        .with_result_schema(json!({"type": "array", "items": {"type": "string"}}));
    let event = bus.dispatch(event).unwrap().await.unwrap();
    idle(&bus).await;
    let results = event.event_results();
    assert_eq!(results[0].status, ResultStatus::Completed);
    assert_eq!(results[1].status, ResultStatus::Error);
    assert!(
        results[1].error.as_ref().unwrap().message().contains("/1"),
        "names the offending item"
    );
}

#[test]
fn a_result_arriving_in_event_results_that_violates_the_schema_is_recorded_as_an_error() {
    let result = |id: &str, status: &str, value: Value| {
        json!({
            "id": format!("06b05988-24b0-7c1d-8000-00000000000{id}"),
            "status": status,
            "event_id": "06b05988-24ae-718a-8000-92a9c60dc8f2",
            "handler_id": format!("h{id}"),
            "handler_name": format!("__main__.h{id}"),
            "eventbus_id": "06b05987-0000-7000-8000-000000009e05",
            "eventbus_name": "ProbeBus",
            "result": value,
            "error": if status == "error" { json!({"type": "ValueError", "message": "boom"}) } else { Value::Null },
            "event_children": [],
        })
    };
    let forwarded = json!({
        "event_type": "Count",
        "event_id": "06b05988-24ae-718a-8000-92a9c60dc8f2",
        "event_path": ["ProbeBus#9e05"]
    });
    let event = AnyEvent::from_json(&json!({
        "event_type": "Count",
        "event_id": "06b05988-24ae-718a-8000-92a9c60dc8f2",
        "event_result_type": {"type": "integer", "$schema": DRAFT_2020_12},
        "event_status": "completed",
        "event_results": [
            result("1", "completed", json!(42)),
            result("2", "completed", json!("forty-two")),
            result("3", "error", Value::Null),
            result("4", "completed", forwarded.clone()),
            result("5", "completed", Value::Null),
            result("6", "started", json!("not yet checked")),
        ],
    }))
    .expect("a bad result is recorded, not a decode error");
    let results = event.event_results();

    assert_eq!(results[0].status, ResultStatus::Completed);
    assert_eq!(results[0].result_json, 42);

    assert_eq!(results[1].status, ResultStatus::Error);
    assert_eq!(
        results[1].result_json,
        Value::Null,
        "the bad value is dropped"
    );
    let err = results[1].error.as_ref().unwrap();
    assert_eq!(err.kind(), HandlerErrorKind::ResultSchema);
    assert!(err.message().contains("forty-two"), "{err}");
    assert!(err.message().contains("__main__.h2"), "{err}");

    assert_eq!(results[2].status, ResultStatus::Error);
    assert_eq!(
        results[2].error.as_ref().unwrap().error_type(),
        "ValueError"
    );
    // A forwarding handler's result is the forwarded event, not a value of the result type.
    assert_eq!(results[3].status, ResultStatus::Completed);
    assert_eq!(results[3].result_json, forwarded);
    assert_eq!(results[4].status, ResultStatus::Completed);
    assert_eq!(results[5].status, ResultStatus::Started);

    // The verdict is what the event says from then on.
    let json = event.to_json_with_results();
    let second = &json["event_results"][results[1].handler_id.to_string()];
    assert_eq!(second["status"], "error");
    assert_eq!(second["error"]["type"], "EventHandlerResultSchemaError");
    assert_eq!(second["result"], Value::Null);
}

#[tokio::test]
async fn a_schema_that_does_not_compile_checks_nothing() {
    let bus = EventBus::new("Lenient");
    bus.on(|_: AnyEvent| json!("anything"));
    let event = bus
        .dispatch(python_event("Odd", json!({"type": 5})))
        .unwrap()
        .await
        .unwrap();
    idle(&bus).await;
    assert_eq!(event.event_results()[0].status, ResultStatus::Completed);
    // It is still carried as it came.
    assert_eq!(event.to_json()["event_result_type"], json!({"type": 5}));
}

#[test]
fn hostile_schemas_from_the_wire_neither_panic_nor_hang() {
    let schemas = [
        json!({"$ref": "#/nope"}),
        json!({"$ref": "http://example.com/schema.json"}),
        json!({"pattern": "("}),
        json!({"minimum": "x"}),
        json!({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
        json!({"$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}),
        json!({"allOf": [{"$ref": "#"}]}),
        json!({"items": {"$ref": "#"}}),
        json!({"$schema": "nonsense", "type": "integer"}),
        json!(false),
        json!(true),
    ];
    let values = [
        json!(null),
        json!(1),
        json!("x"),
        json!([[[1]]]),
        json!({"a": {"b": []}}),
    ];
    for schema in &schemas {
        for value in &values {
            let event = AnyEvent::from_json(&json!({
                "event_type": "Hostile",
                "event_result_type": schema,
                "event_results": [{"handler_id": "h", "status": "completed", "result": value}],
            }))
            .unwrap_or_else(|e| panic!("{schema}: {e}"));
            let status = event.event_results()[0].status;
            assert!(
                matches!(status, ResultStatus::Completed | ResultStatus::Error),
                "{schema} {value}"
            );
        }
    }
    // `false` accepts nothing, `true` everything.
    let check = |schema: Value| {
        AnyEvent::from_json(&json!({
            "event_type": "Bool",
            "event_result_type": schema,
            "event_results": [{"handler_id": "h", "status": "completed", "result": 1}],
        }))
        .unwrap()
        .event_results()[0]
            .status
    };
    assert_eq!(check(json!(false)), ResultStatus::Error);
    assert_eq!(check(json!(true)), ResultStatus::Completed);
}
