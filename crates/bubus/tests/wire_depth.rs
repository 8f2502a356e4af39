//! What is written can be read: the write-ahead log, `to_json`, snapshots and the decoders agree
//! on how deeply JSON may nest (`MAX_JSON_DEPTH`). A payload nested deeper is refused at
//! dispatch, a result nested deeper is recorded as an error, and everything accepted is written
//! in a form every reader takes back.

use std::path::PathBuf;
use std::sync::Arc;

use bubus::wal::{WalMiddleware, WalReader};
use bubus::{
    AnyEvent, DispatchError, DynEvent, EventBus, EventHandle, error::HandlerErrorKind,
    result::ResultStatus, wire::MAX_JSON_DEPTH,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

fn nested(depth: usize) -> Value {
    (0..depth).fold(json!("leaf"), |inner, _| Value::Array(vec![inner]))
}

fn wal_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bubus-wire-depth-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join("events.jsonl")
}

/// Every line of the log reads back, and says what the event says.
fn assert_log_reads_back(path: &std::path::Path, events: &[AnyEvent]) {
    let records = WalReader::open(path)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("a line of the log does not read back: {e}"));
    for event in events {
        let last = records
            .iter()
            .rev()
            .find(|r| r.event.event_id() == event.event_id())
            .expect("logged");
        assert_eq!(
            last.event.to_json_with_results(),
            event.to_json_with_results()
        );
    }
}

#[tokio::test]
async fn payloads_and_results_either_are_refused_or_read_back_from_the_log() {
    let path = wal_path("log");
    let bus = EventBus::builder("Deep")
        .middleware(Arc::new(WalMiddleware::open(&path).unwrap()))
        .build();
    bus.on_pattern("Echo", |event: AnyEvent| {
        let depth = event.payload_json().unwrap()["result_depth"]
            .as_u64()
            .unwrap();
        nested(depth as usize)
    });
    let mut accepted = Vec::new();
    for depth in [1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 126, 127, 128, 1_000] {
        let event =
            DynEvent::new("Echo", json!({"v": nested(depth), "result_depth": depth})).unwrap();
        match bus.dispatch(event) {
            Ok(handle) => {
                assert!(
                    depth <= MAX_JSON_DEPTH,
                    "a payload {depth} deep was accepted"
                );
                let done = handle.await.unwrap();
                let result = &done.event_results()[0];
                assert_eq!(result.status, ResultStatus::Completed, "{depth}");
                accepted.push(done.to_any());
            }
            Err(DispatchError::TooDeep {
                field,
                depth: found,
                limit,
                ..
            }) => {
                assert!(depth > MAX_JSON_DEPTH, "a payload {depth} deep was refused");
                assert_eq!((field.as_str(), limit), ("v", MAX_JSON_DEPTH));
                assert!(found > MAX_JSON_DEPTH && found <= depth);
            }
            Err(other) => panic!("{depth}: {other}"),
        }
    }
    assert_eq!(accepted.len(), 2);
    assert!(bus.wait_until_idle(None).await);
    assert_log_reads_back(&path, &accepted);
    // And a snapshot of the bus — events nested inside it — restores.
    let text = bus.snapshot().to_string();
    let restored = EventBus::restore(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(restored.event_history().len(), 2);
}

#[tokio::test]
async fn a_result_nested_too_deep_is_recorded_as_an_error_that_the_log_can_hold() {
    let path = wal_path("results");
    let bus = EventBus::builder("DeepResults")
        .middleware(Arc::new(WalMiddleware::open(&path).unwrap()))
        .build();
    bus.on_pattern("Echo", |event: AnyEvent| {
        let depth = event.payload_json().unwrap()["depth"].as_u64().unwrap();
        nested(depth as usize)
    });
    let mut events = Vec::new();
    for depth in [MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1, 126, 1_000] {
        let event = bus
            .dispatch(DynEvent::new("Echo", json!({"depth": depth})).unwrap())
            .unwrap()
            .await
            .unwrap();
        let result = &event.event_results()[0];
        if depth <= MAX_JSON_DEPTH {
            assert_eq!(result.status, ResultStatus::Completed);
            assert_eq!(result.result_json, nested(depth));
        } else {
            assert_eq!(result.status, ResultStatus::Error, "{depth}");
            let error = result.error.as_ref().unwrap();
            assert_eq!(error.kind(), HandlerErrorKind::ResultSchema);
            assert_eq!(error.error_type(), "EventHandlerResultSchemaError");
            assert!(error.message().contains("levels"), "{error}");
            assert_eq!(result.result_json, Value::Null);
        }
        events.push(event.to_any());
    }
    assert_log_reads_back(&path, &events);
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
struct Document {
    title: String,
    body: Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Node {
    label: u32,
    next: Option<Box<Node>>,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = Node)]
struct Chain {
    head: Node,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = Node)]
struct MakeChain {}

fn chain(len: u32) -> Node {
    (0..len).fold(
        Node {
            label: 0,
            next: None,
        },
        |next, label| Node {
            label,
            next: Some(Box::new(next)),
        },
    )
}

#[tokio::test]
async fn typed_payloads_and_results_are_held_to_the_same_limit() {
    let bus = EventBus::new("Typed");
    bus.on(|_: EventHandle<Document>| ());
    let ok = bus
        .dispatch(Document {
            title: "ok".into(),
            body: nested(MAX_JSON_DEPTH),
        })
        .unwrap();
    ok.await.unwrap();
    let refused = bus.dispatch(Document {
        title: "deep".into(),
        body: nested(MAX_JSON_DEPTH + 1),
    });
    match refused {
        Err(DispatchError::TooDeep { field, event, .. }) => {
            assert_eq!(field, "body");
            assert!(event.starts_with("Document#"), "{event}");
        }
        other => panic!("{other:?}"),
    }
    // Each `Node` is one object: a chain of 60 is 60 levels inside `head` (ok), 150 is not.
    bus.on(|chain: EventHandle<Chain>| chain.head.clone());
    bus.dispatch(Chain { head: chain(59) })
        .unwrap()
        .await
        .unwrap();
    let error = bus.dispatch(Chain { head: chain(150) }).unwrap_err();
    assert!(error.to_string().contains("`head` nests"), "{error}");
    // A handler returning a chain too deep to read back records an error.
    bus.on(|_: EventHandle<MakeChain>| chain(150));
    let made = bus.dispatch(MakeChain {}).unwrap().await.unwrap();
    let result = &made.event_results()[0];
    assert_eq!(result.status, ResultStatus::Error);
    assert_eq!(
        result.error.as_ref().unwrap().kind(),
        HandlerErrorKind::ResultSchema
    );
}

/// Scalars only: dispatch skips the walk.
#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[serde(rename_all = "camelCase")]
struct Flat {
    count: u64,
    #[serde(rename = "who", default)]
    name: String,
    ratio: Option<f64>,
    id: uuid::Uuid,
}

/// A scalar field written as something deep: the type alone does not tell, so it is walked.
#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
struct Disguised {
    #[serde(serialize_with = "as_nested", skip_deserializing)]
    depth: u32,
}

fn as_nested<S: serde::Serializer>(depth: &u32, serializer: S) -> Result<S::Ok, S::Error> {
    nested(*depth as usize).serialize(serializer)
}

#[tokio::test]
async fn only_payloads_of_scalars_written_as_derived_skip_the_depth_walk() {
    use bubus::Event;
    // Flat, no fields at all, a field written by hand, a `Value`, a nested struct.
    let shallow = [
        Flat::__SHALLOW_PAYLOAD,
        MakeChain::__SHALLOW_PAYLOAD,
        Disguised::__SHALLOW_PAYLOAD,
        Document::__SHALLOW_PAYLOAD,
        Chain::__SHALLOW_PAYLOAD,
    ];
    assert_eq!(shallow, [true, true, false, false, false]);
    let bus = EventBus::new("Flat");
    bus.on(|_: EventHandle<Flat>| ());
    bus.on(|_: EventHandle<Disguised>| ());
    let flat = Flat {
        count: 1,
        name: "a".into(),
        ratio: None,
        id: uuid::Uuid::nil(),
    };
    bus.dispatch(flat).unwrap().await.unwrap();
    bus.dispatch(Disguised { depth: 3 }).unwrap().await.unwrap();
    match bus.dispatch(Disguised {
        depth: MAX_JSON_DEPTH as u32 + 1,
    }) {
        Err(DispatchError::TooDeep { field, .. }) => assert_eq!(field, "depth"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn decoders_refuse_what_dispatch_would_refuse_naming_the_field() {
    let event = |field: &str, value: Value| json!({"event_type": "Deep", field: value});
    assert!(AnyEvent::from_json(&event("v", nested(MAX_JSON_DEPTH))).is_ok());
    let err = AnyEvent::from_json(&event("v", nested(MAX_JSON_DEPTH + 1))).unwrap_err();
    assert_eq!(err.field(), "v");
    assert!(err.message().contains("levels"), "{err}");
    // Text within serde_json's own limit gets the same answer.
    let text = event("v", nested(MAX_JSON_DEPTH + 1)).to_string();
    assert_eq!(AnyEvent::from_json_str(&text).unwrap_err().field(), "v");
    // Unknown metadata keys and result schemas too.
    let err = AnyEvent::from_json(&event("event_future", nested(MAX_JSON_DEPTH + 1))).unwrap_err();
    assert_eq!(err.field(), "event_future");
    // And results, keyed by handler id.
    let with_result = |value: Value| {
        json!({
            "event_type": "Deep",
            "event_results": {"h": {"handler_id": "h", "status": "completed", "result": value}},
        })
    };
    assert!(AnyEvent::from_json(&with_result(nested(MAX_JSON_DEPTH))).is_ok());
    let err = AnyEvent::from_json(&with_result(nested(MAX_JSON_DEPTH + 1))).unwrap_err();
    assert_eq!(err.field(), "event_results.h.result");
}
