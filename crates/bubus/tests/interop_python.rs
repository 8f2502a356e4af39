//! Interop with Python bubus 1.5.6 (semantics §1.1 "Version diffs", §2.5), driven by
//! `interop/run.sh`, which runs the stages in order against a fresh directory:
//!
//! 1. Python writes events (`py_events.json`) and a WAL (`py_wal.jsonl`);
//!    `stage1_python_events_read_intact` reads them.
//! 2. `stage2_rust_writes_events_for_python` writes `rust_events.json` (each event canonical and
//!    in the 1.x flavour); Python validates every one with `BaseEvent.model_validate` and its
//!    typed classes and checks every field, then writes back what 1.5.6 makes of them
//!    (`py_roundtrip.jsonl`, including one it processed on its own bus).
//! 3. `stage3_python_round_trip_reads_back_intact` compares those with what Rust wrote.
//!
//! The directory is `$BUBUS_INTEROP_DIR`; without it (a plain `cargo test`) stages 1 and 3 read
//! the committed output of the last interop run (tests/golden/wire/python156/) and stage 2 only
//! checks its events in Rust.

mod wire_support;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use bubus::{
    AnyEvent, DynEvent, EventBus, EventHandle, EventStatus, event::EventConcurrency,
    event::HandlerConcurrency,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use wire_support::*;

// The Rust twins of interop/python/events156.py.

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Address {
    street: String,
    city: String,
    zip: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Customer {
    name: String,
    email: String,
    address: Address,
    vip: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct LineItem {
    sku: String,
    quantity: i64,
    unit_price: f64,
    options: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct OrderPlaced {
    order_id: String,
    customer: Customer,
    items: Vec<LineItem>,
    tags: Vec<String>,
    metadata: Map<String, Value>,
    note: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bubus::Event)]
#[event(result = HashMap<String, i64>)]
struct ShipmentRequested {
    order_id: String,
    warehouses: Vec<String>,
    weights: BTreeMap<String, Vec<f64>>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, bubus::Event)]
struct AuditLogged {
    message: String,
    level: i64,
}

/// `sample_order()` of events156.py.
fn sample_order(order_id: &str) -> OrderPlaced {
    OrderPlaced {
        order_id: order_id.into(),
        customer: Customer {
            name: "Ada Lovelace".into(),
            email: "ada@example.com".into(),
            address: Address {
                street: "12 Analytical Way".into(),
                city: "London".into(),
                zip: None,
            },
            vip: true,
        },
        items: vec![
            LineItem {
                sku: "ENG-1".into(),
                quantity: 2,
                unit_price: 19.99,
                options: [("colour".to_owned(), "brass".to_owned())].into(),
            },
            LineItem {
                sku: "CARD-7".into(),
                quantity: 100,
                unit_price: 0.1,
                options: BTreeMap::new(),
            },
        ],
        tags: vec!["priority".into(), "gift".into()],
        metadata: json!({
            "unicode": "héllo ✓ 漢字 🚀",
            "big": 1_i64 << 62,
            "negative": -7,
            "tiny": 1e-7,
            "huge": 1.5e300,
            "none": null,
            "flags": [true, false],
            "nested": {"deep": {"list": [1, [2, [3, {"x": "y"}]]]}},
            "empty_list": [],
            "empty_object": {},
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
        note: None,
    }
}

/// `PARENT_ID` of make_events.py.
const PY_PARENT_ID: &str = "0190d6c5-8e3a-7c4b-9f21-3a5b7c9d1e2f";

/// The interop run's directory, or the committed output of the last one.
fn source_dir() -> (PathBuf, bool) {
    match std::env::var_os("BUBUS_INTEROP_DIR") {
        Some(dir) => (PathBuf::from(dir), true),
        None => (golden_dir().join("python156"), false),
    }
}

fn decode(value: &Value, ctx: &str) -> AnyEvent {
    AnyEvent::from_json(value).unwrap_or_else(|e| panic!("{ctx}: {e}"))
}

/// Python 1.5.6 JSON, read by Rust and written back in the 1.x flavour, is the same JSON but
/// for what the documented differences say: the `event_schema` module prefix and the
/// `event_result_type` type name are not kept.
fn assert_python1_flavour_reproduces(py: &Value, event: &AnyEvent, ctx: &str) {
    let ours = event.to_json_python1();
    let py = py.as_object().expect("object");
    for (key, value) in py {
        let at = format!("{ctx}: `{key}`");
        match key.as_str() {
            "event_schema" => {
                let version = |v: &Value| {
                    v.as_str()
                        .and_then(|s| s.rsplit_once('@'))
                        .map(|(_, v)| v.to_owned())
                };
                assert_eq!(version(&ours[key]), version(value), "{at}");
                assert!(
                    ours[key]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{}@", py["event_type"].as_str().unwrap())),
                    "{at}"
                );
            }
            "event_result_type" => assert!(ours.get(key).is_none(), "{at}"),
            // Python writes null when unset (no timeout); absent would mean its default (300).
            "event_timeout" if value.is_null() => assert!(ours.get(key).is_none(), "{at}"),
            _ => assert_eq!(ours.get(key), Some(value), "{at}"),
        }
    }
    for key in keys(&ours) {
        assert!(py.contains_key(&key), "{ctx}: extra key `{key}`");
    }
}

#[tokio::test]
async fn stage1_python_events_read_intact() {
    let (dir, live) = source_dir();
    let events = read_json(&dir.join("py_events.json"));
    let events = events.as_array().expect("a list");
    assert_eq!(events.len(), 5, "make_events.py writes 5 dumps");

    for (i, py) in events.iter().enumerate() {
        let ctx = format!("py_events.json[{i}] ({})", py["event_type"]);
        let event = decode(py, &ctx);
        let out = event.to_json();
        assert_canonical_shape(&out, &ctx);
        assert_input_preserved(py.as_object().unwrap(), out.as_object().unwrap(), &ctx);
        assert_python1_flavour_reproduces(py, &event, &ctx);
        assert_eq!(
            out["event_version"], "1.0.0",
            "{ctx}: LIBRARY_VERSION's default"
        );
    }

    // Field by field, typed.
    let [before, audit_before, after, child, audit_after] = events.as_slice() else {
        unreachable!()
    };
    let order = decode(before, "order")
        .try_downcast::<OrderPlaced>()
        .unwrap();
    assert_eq!(*order.payload(), sample_order("ord-1001"));
    assert_eq!(order.event_status(), EventStatus::Pending);
    assert!(order.event_path().is_empty());
    assert_eq!(
        order.event_config().event_timeout,
        Some(Duration::from_millis(12500))
    );

    let order_done = decode(after, "order")
        .try_downcast::<OrderPlaced>()
        .unwrap();
    assert_eq!(*order_done.payload(), sample_order("ord-1001"));
    assert_eq!(order_done.event_id(), order.event_id());
    assert_eq!(order_done.event_created_at(), order.event_created_at());
    assert_eq!(order_done.event_path(), ["OrdersBus"]);
    assert_eq!(order_done.event_status(), EventStatus::Completed);
    let processed = ts(&after["event_processed_at"]);
    assert_eq!(order_done.event_completed_at(), Some(processed));
    assert_eq!(order_done.event_started_at(), Some(processed));

    let shipment = decode(child, "child")
        .try_downcast::<ShipmentRequested>()
        .unwrap();
    assert_eq!(shipment.event_parent_id(), Some(order.event_id()));
    assert_eq!(shipment.event_path(), ["OrdersBus", "ShippingBus"]);
    assert_eq!(
        shipment.event_config().event_timeout,
        Some(Duration::from_secs(30))
    );
    assert_eq!(shipment.warehouses, ["LHR-1", "MAN-2"]);
    assert_eq!(shipment.weights["LHR-1"], [1.25, 2.5]);
    assert!(shipment.weights["MAN-2"].is_empty());

    for (json, path) in [
        (audit_before, vec!["UpstreamBus"]),
        (audit_after, vec!["UpstreamBus", "OrdersBus"]),
    ] {
        let audit = decode(json, "audit").try_downcast::<AuditLogged>().unwrap();
        assert_eq!(
            audit.event_parent_id().map(|p| p.to_string()).as_deref(),
            Some(PY_PARENT_ID)
        );
        assert_eq!(audit.event_path(), path);
        assert_eq!(
            audit.event_config().event_timeout,
            None,
            "explicitly no timeout"
        );
        assert_eq!(audit.message, "order received");
        assert_eq!(audit.level, 30);
    }

    // The WAL: one line per bus that processed an event, each one of the events above.
    let wal = read_jsonl(&dir.join("py_wal.jsonl"));
    assert!(wal.len() >= 3, "{} WAL lines", wal.len());
    for (i, line) in wal.iter().enumerate() {
        let ctx = format!("py_wal.jsonl line {}", i + 1);
        let event = decode(line, &ctx);
        let out = event.to_json();
        assert_input_preserved(line.as_object().unwrap(), out.as_object().unwrap(), &ctx);
        assert_python1_flavour_reproduces(line, &event, &ctx);
        let dumped = events
            .iter()
            .rfind(|e| e["event_id"] == line["event_id"])
            .unwrap_or_else(|| panic!("{ctx}: an event make_events.py did not dump"));
        for (key, value) in line.as_object().unwrap() {
            // 1.5.6 writes the WAL line before it stamps `event_processed_at`.
            if key != "event_processed_at" {
                assert_eq!(&dumped[key], value, "{ctx}: `{key}`");
            }
        }
    }

    // A Python event runs on a Rust bus, and its typed handler gets the nested models.
    let bus = EventBus::new("RustOrders");
    bus.on(|e: EventHandle<OrderPlaced>| {
        format!(
            "{}:{}:{}",
            e.order_id, e.customer.address.city, e.items[0].options["colour"]
        )
    });
    let ran = bus
        .dispatch(decode(before, "order"))
        .unwrap()
        .await
        .unwrap();
    assert!(bus.wait_until_idle(Some(Duration::from_secs(10))).await);
    assert_eq!(ran.event_results()[0].result_json, "ord-1001:London:brass");
    assert_eq!(
        ran.event_path(),
        [bus.label().to_owned()],
        "a fresh path for a pending event"
    );
    if !live {
        eprintln!(
            "stage 1 checked the committed Python 1.5.6 output (set BUBUS_INTEROP_DIR for a live run)"
        );
    }
}

/// The events Rust writes for Python: (Python class to validate with, event).
async fn rust_events() -> Vec<(&'static str, AnyEvent)> {
    let orders = EventBus::new("RustOrders");
    let shipping = EventBus::new("RustShipping");
    let children = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<AnyEvent>::new()));
    {
        let children = children.clone();
        orders.on(move |e: EventHandle<OrderPlaced>| {
            let children = children.clone();
            async move {
                let bus = bubus::bus::current_bus().expect("in a handler");
                let child = bus
                    .dispatch(
                        EventHandle::new(ShipmentRequested {
                            order_id: e.order_id.clone(),
                            warehouses: vec!["LHR-1".into(), "MAN-2".into()],
                            weights: [
                                ("LHR-1".to_owned(), vec![1.25, 2.0]),
                                ("MAN-2".to_owned(), vec![]),
                            ]
                            .into(),
                        })
                        .with_event_timeout(Duration::from_secs(30))
                        .with_event_handler_concurrency(HandlerConcurrency::Parallel),
                    )
                    .expect("dispatch");
                children.lock().push(child.to_any());
                child.await.expect("child");
                format!("accepted:{}", e.order_id)
            }
        });
    }
    shipping.on(|e: EventHandle<ShipmentRequested>| {
        e.warehouses
            .iter()
            .map(|w| (w.clone(), e.weights[w].len() as i64))
            .collect::<HashMap<_, _>>()
    });
    orders.forward_to(&shipping);

    let order = orders
        .dispatch(
            EventHandle::new(sample_order("ord-2001"))
                .with_event_timeout(Duration::from_millis(12500)),
        )
        .unwrap()
        .await
        .unwrap();
    assert!(orders.wait_until_idle(Some(Duration::from_secs(10))).await);
    assert!(
        shipping
            .wait_until_idle(Some(Duration::from_secs(10)))
            .await
    );
    let child = children.lock()[0].clone();

    let pending_order = EventHandle::new(sample_order("ord-2002"));
    let audit = EventHandle::new(AuditLogged {
        message: "written by Rust".into(),
        level: 40,
    })
    .with_event_parent_id(order.event_id());

    let dynamic = DynEvent::new(
        "AuditLogged",
        json!({"message": "dynamic ✓", "level": 10, "context": {"ids": [1, 2], "ok": true}}),
    )
    .unwrap()
    .with_result_schema(json!({"type": "null"}));
    let dynamic = EventHandle::new(dynamic)
        .with_event_concurrency(EventConcurrency::Parallel)
        .with_event_slow_timeout(Duration::from_millis(2500));
    let dyn_bus = EventBus::new("RustAudit");
    dyn_bus.on(|_: AnyEvent| Value::Null);
    let dynamic = dyn_bus.dispatch(dynamic).unwrap().await.unwrap();

    let sensor = EventHandle::new(
        DynEvent::new(
            "SensorReading",
            json!({"sensor": "t-1", "values": [20.5, 21.0, -3.25], "labels": {"room": "lab"}, "at": "2026-01-01T00:00:00Z"}),
        )
        .unwrap(),
    );

    vec![
        ("OrderPlaced", order.to_any()),
        ("ShipmentRequested", child),
        ("OrderPlaced", pending_order.to_any()),
        ("AuditLogged", audit.to_any()),
        ("AuditLogged", dynamic.to_any()),
        ("BaseEvent", sensor.to_any()),
    ]
}

#[tokio::test]
async fn stage2_rust_writes_events_for_python() {
    let events = rust_events().await;
    let mut out = Vec::new();
    for (class, event) in &events {
        let canonical = event.to_json();
        let python1 = event.to_json_python1();
        // Whatever Rust writes for 1.x, Rust reads back with the fields 1.x carries.
        let back = decode(&python1, class).to_json();
        for key in [
            "event_type",
            "event_version",
            "event_id",
            "event_parent_id",
            "event_concurrency",
            "event_slow_timeout",
            "event_handler_concurrency",
        ] {
            assert_eq!(back[key], canonical[key], "{class}: {key}");
        }
        for key in payload_keys(&canonical) {
            assert_eq!(back[&key], canonical[&key], "{class}: {key}");
        }
        out.push(json!({"class": class, "canonical": canonical, "python1": python1}));
    }
    // The typed child went through two buses and was emitted by a handler.
    assert_eq!(
        out[1]["python1"]["event_path"],
        json!(["RustOrders", "RustShipping"])
    );
    assert!(out[1]["python1"]["event_emitted_by_handler_id"].is_string());
    assert_eq!(
        out[1]["python1"]["event_parent_id"],
        out[0]["canonical"]["event_id"]
    );

    let (dir, live) = source_dir();
    if live {
        let text = serde_json::to_string_pretty(&Value::Array(out)).unwrap();
        std::fs::write(dir.join("rust_events.json"), text + "\n").expect("write rust_events.json");
    }
}

fn payload_keys(json: &Value) -> Vec<String> {
    keys(json)
        .into_iter()
        .filter(|k| !k.starts_with("event_"))
        .collect()
}

#[test]
fn stage3_python_round_trip_reads_back_intact() {
    let (dir, _) = source_dir();
    let written = read_json(&dir.join("rust_events.json"));
    let written = written.as_array().expect("a list");
    let lines = read_jsonl(&dir.join("py_roundtrip.jsonl"));
    assert_eq!(
        lines.len(),
        written.len() + 1,
        "every event, plus one Python processed"
    );

    let mut processed = 0;
    for (i, line) in lines.iter().enumerate() {
        let ctx = format!("py_roundtrip.jsonl line {}", i + 1);
        let event = decode(line, &ctx);
        let back = event.to_json();
        let original = &written
            .iter()
            .find(|w| w["canonical"]["event_id"] == line["event_id"])
            .unwrap_or_else(|| panic!("{ctx}: not an event Rust wrote"))["canonical"];
        for key in [
            "event_type",
            "event_version",
            "event_id",
            "event_parent_id",
            "event_slow_timeout",
            "event_concurrency",
            "event_handler_timeout",
            "event_handler_slow_timeout",
            "event_handler_concurrency",
            "event_handler_completion",
            "event_emitted_by_handler_id",
        ] {
            assert_eq!(back[key], original[key], "{ctx}: `{key}`");
        }
        for key in payload_keys(original) {
            assert_eq!(back[&key], original[&key], "{ctx}: payload `{key}`");
        }
        // 1.5.6 applies its own default where Rust left the timeout to the bus.
        let timeout = if original["event_timeout"].is_null() {
            json!(300.0)
        } else {
            original["event_timeout"].clone()
        };
        assert_eq!(back["event_timeout"], timeout, "{ctx}: event_timeout");
        // Python keeps microseconds.
        let micros = |v: &Value| v.as_str().map(|s| ts(&json!(s)).as_unix_nanos() / 1000);
        assert_eq!(
            micros(&back["event_created_at"]),
            micros(&original["event_created_at"]),
            "{ctx}"
        );
        let names: Vec<Value> = original["event_path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                json!(
                    l.as_str()
                        .unwrap()
                        .rsplit_once('#')
                        .map_or(l.as_str().unwrap(), |(n, _)| n)
                )
            })
            .collect();
        if line["event_path"].as_array().unwrap().len() == names.len() {
            assert_eq!(back["event_path"], Value::Array(names), "{ctx}");
            assert_eq!(
                back["event_status"],
                if original["event_status"] == "completed" {
                    "completed"
                } else {
                    "pending"
                },
                "{ctx}"
            );
            assert_eq!(
                micros(&back["event_completed_at"]),
                micros(&original["event_completed_at"]),
                "{ctx}"
            );
        } else {
            // The one Python processed on its own bus.
            let mut expected = names.clone();
            expected.push(json!("PyBus"));
            assert_eq!(back["event_path"], Value::Array(expected), "{ctx}");
            processed += 1;
        }
    }
    assert_eq!(processed, 1);
}
