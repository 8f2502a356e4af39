//! Interop with the newest runtimes of the family, both directions, every field compared: Python
//! abxbus 2.5.79 (pip) and TypeScript abxbus (npm), installed by `interop/env.sh`.
//!
//! * Rust → peers: Rust processes events (typed and dynamic; results, an error, a child, a
//!   forward to another bus, configuration overrides), writes them with their results, a bus
//!   snapshot with a queue, and its write-ahead log; `interop/python/abxbus25_check_rust.py` and
//!   `interop/node/abxbus_check_rust.mjs` load every one and compare every field.
//! * Peers → Rust: `interop/python/abxbus25_write.py` and `interop/node/abxbus_write.mjs` process
//!   events on their own buses and write them with their results, a bus snapshot and their log
//!   lines (Python's `WALEventBusMiddleware`); Rust reads them — events, snapshot, and the log
//!   through `WalReader` — and compares every field with what the peer wrote.
//!
//! (The peers' own round trip through Rust is `crates/bubus-roundtrip/tests/abxbus_peers.rs`.)

mod wire_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bubus::wal::{RecordKind, WalMiddleware, WalReader};
use bubus::{
    AnyEvent, DynEvent, EventBus, EventHandle, event::EventConcurrency, event::HandlerConcurrency,
};
use bubus_test_support::peers;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use wire_support::*;

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
struct LineItem {
    sku: String,
    quantity: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = u64, timeout = 20.0)]
struct OrderPlaced {
    order_id: String,
    items: Vec<LineItem>,
    note: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ChargeCard {
    order_id: String,
    cents: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = Vec<String>)]
struct PickItems {
    skus: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
struct Receipt {
    number: String,
    total_cents: u64,
    lines: Vec<LineItem>,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = Receipt, handler_completion = "first", concurrency = "parallel")]
struct Checkout {
    cart_id: String,
}

#[derive(Debug, thiserror::Error)]
#[error("audit log is full")]
struct AuditError;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "bubus-interop-abxbus-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn python(script: &str, dir: &Path) -> Command {
    let mut command = Command::new(peers::abxbus_python());
    command
        .arg(peers::workspace_root().join("interop/python").join(script))
        .arg(dir);
    command
}

fn node(script: &str, dir: &Path) -> Command {
    let mut command = Command::new("node");
    command
        .current_dir(peers::node_abxbus_dir())
        .arg(peers::workspace_root().join("interop/node").join(script))
        .arg(dir);
    command
}

// --- Rust → peers ---------------------------------------------------------------------------------

/// Processes the shop's events on Rust buses and writes `events.json` (each event with its
/// results, and one never dispatched), `snapshot.json` (a bus with history and a queue) and
/// `wal.jsonl` (the shop bus's log) into `dir`.
async fn write_rust_files(dir: &Path) {
    let shop = EventBus::builder("RustShop")
        .middleware(Arc::new(
            WalMiddleware::open(dir.join("wal.jsonl")).unwrap(),
        ))
        .build();
    let warehouse = EventBus::new("RustWarehouse");
    {
        let bus = shop.clone();
        shop.on(move |order: EventHandle<OrderPlaced>| {
            let bus = bus.clone();
            async move {
                let charge = bus.dispatch(ChargeCard {
                    order_id: order.order_id.clone(),
                    cents: 1999,
                })?;
                charge.event_result().await?;
                Ok::<_, bubus::Error>(1999u64)
            }
        });
    }
    shop.on(|_: EventHandle<OrderPlaced>| -> Result<u64, AuditError> { Err(AuditError) });
    shop.on(|charge: EventHandle<ChargeCard>| format!("charged {} cents", charge.cents));
    shop.on(|cart: EventHandle<Checkout>| Receipt {
        number: format!("R-{}", cart.cart_id),
        total_cents: 500,
        lines: vec![LineItem {
            sku: "ENG-1".into(),
            quantity: 2,
        }],
    });
    shop.on_pattern("Quote", |event: AnyEvent| {
        json!({"price": event.payload_json().unwrap()["units"].as_u64().unwrap() * 3})
    });
    shop.forward_to(&warehouse);
    warehouse.on(|pick: EventHandle<PickItems>| {
        pick.skus
            .iter()
            .map(|s| format!("shelf-{s}"))
            .collect::<Vec<_>>()
    });

    let order = shop
        .dispatch(
            EventHandle::new(OrderPlaced {
                order_id: "ord-7".into(),
                items: vec![LineItem {
                    sku: "ENG-1".into(),
                    quantity: 2,
                }],
                note: Some("gift ✓".into()),
            })
            .with_event_handler_timeout(Duration::from_secs(4)),
        )
        .unwrap();
    let _ = order.clone().await;
    let pick = shop
        .dispatch(PickItems {
            skus: vec!["a".into(), "b".into()],
        })
        .unwrap();
    pick.clone().await.unwrap();
    let checkout = shop
        .dispatch(Checkout {
            cart_id: "c-1".into(),
        })
        .unwrap();
    checkout.clone().await.unwrap();
    let quote = shop
        .dispatch(
            DynEvent::new("Quote", json!({"units": 4, "currency": "EUR"}))
                .unwrap()
                .with_result_schema(json!({
                    "$schema": "https://json-schema.org/draft/2020-12/schema",
                    "type": "object",
                    "properties": {"price": {"type": "integer"}},
                    "required": ["price"],
                })),
        )
        .unwrap();
    quote.clone().await.unwrap();
    assert!(shop.wait_until_idle(None).await && warehouse.wait_until_idle(None).await);

    let mut events: Vec<Value> = shop
        .event_history()
        .iter()
        .map(AnyEvent::to_json_with_results)
        .collect();
    events.push(
        EventHandle::new(PickItems { skus: vec![] })
            .with_event_concurrency(EventConcurrency::GlobalSerial)
            .with_event_handler_concurrency(HandlerConcurrency::Parallel)
            .to_json(),
    );
    write_json(&dir.join("events.json"), &Value::Array(events));

    // A bus snapshot with a completed event and two queued ones (taken before the bus ran them).
    let queue = EventBus::builder("RustQueue")
        .disable_handler_file_paths()
        .build();
    queue.on(|charge: EventHandle<ChargeCard>| format!("queued {}", charge.cents));
    queue
        .dispatch(ChargeCard {
            order_id: "q0".into(),
            cents: 1,
        })
        .unwrap()
        .await
        .unwrap();
    let _a = queue
        .dispatch(ChargeCard {
            order_id: "q1".into(),
            cents: 2,
        })
        .unwrap();
    let _b = queue
        .dispatch(ChargeCard {
            order_id: "q2".into(),
            cents: 3,
        })
        .unwrap();
    let snapshot = queue.snapshot();
    assert_eq!(snapshot["pending_event_queue"].as_array().unwrap().len(), 2);
    write_json(&dir.join("snapshot.json"), &snapshot);
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn rust_events_snapshots_and_wal_lines_load_in_python_and_typescript_with_every_field() {
    let dir = scratch("rust-to-peers");
    write_rust_files(&dir).await;

    let passed = peers::run_checks(
        python("abxbus25_check_rust.py", &dir),
        "Python abxbus reading Rust",
    );
    for check in [
        "events: OrderPlaced",
        "events: ChargeCard",
        "events: PickItems",
        "events: Checkout",
        "events: Quote",
        "typed: OrderPlaced",
        "snapshot: every field",
        "snapshot: the restored queue drains",
        "wal: line 1",
        "wal: every line",
    ] {
        assert!(
            passed.iter().any(|ok| ok.starts_with(check)),
            "Python: no `{check}` check passed: {passed:#?}"
        );
    }
    let passed = peers::run_checks(
        node("abxbus_check_rust.mjs", &dir),
        "TypeScript abxbus reading Rust",
    );
    for check in [
        "events: OrderPlaced",
        "events: Quote",
        "snapshot: every field",
        "wal: every line",
    ] {
        assert!(
            passed.iter().any(|ok| ok.starts_with(check)),
            "TypeScript: no `{check}` check passed: {passed:#?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// --- Peers → Rust ---------------------------------------------------------------------------------

fn read_json(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Checks an event the peer wrote against what Rust makes of it: every key kept (the documented
/// mapping of docs/wire-format.md for the rest), results included.
fn assert_event_read(input: &Value, ctx: &str) -> AnyEvent {
    let event = AnyEvent::from_json(input).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let out = if input.get("event_results").is_some() {
        event.to_json_with_results()
    } else {
        event.to_json()
    };
    assert_input_preserved(input.as_object().unwrap(), out.as_object().unwrap(), ctx);
    event
}

/// What each peer wrote, read in Rust: events, the log, the snapshot.
fn check_peer_files(dir: &Path, peer: &str) {
    let events = read_json(&dir.join("events.json"));
    let events = events.as_array().expect("a list of events");
    assert!(events.len() >= 4, "{peer}: {} events", events.len());
    let mut with_results = 0;
    let mut errors = 0;
    for (i, input) in events.iter().enumerate() {
        let event = assert_event_read(input, &format!("{peer} events.json[{i}]"));
        let results = event.event_results();
        with_results += usize::from(!results.is_empty());
        errors += results.iter().filter(|r| r.error.is_some()).count();
    }
    assert!(
        with_results >= 3 && errors >= 1,
        "{peer}: results {with_results}, errors {errors}"
    );

    // The log, through the reader, each line compared like an event.
    let lines = read_jsonl(&dir.join("wal.jsonl"));
    let records: Vec<_> = WalReader::open(dir.join("wal.jsonl"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{peer} wal.jsonl: {e}"));
    assert_eq!(records.len(), lines.len(), "{peer}: every line is a record");
    assert!(!records.is_empty());
    for (record, line) in records.iter().zip(&lines) {
        let ctx = format!("{peer} wal.jsonl line {}", record.line);
        assert_eq!(record.kind, RecordKind::Completed, "{ctx}");
        let out = record.event.to_json_with_results();
        assert_input_preserved(line.as_object().unwrap(), out.as_object().unwrap(), &ctx);
    }

    // The snapshot: restored and written back with every field.
    let input = read_json(&dir.join("snapshot.json"));
    let bus = EventBus::restore(&input).unwrap_or_else(|e| panic!("{peer} snapshot: {e}"));
    let out = bus.snapshot();
    for (key, value) in input.as_object().unwrap() {
        match key.as_str() {
            "event_history" => {
                for (id, event) in value.as_object().unwrap() {
                    let mut event = event.as_object().unwrap().clone();
                    // Counted again on the restoring side (docs/wire-format.md).
                    event.remove("event_pending_bus_count");
                    assert_input_preserved(
                        &event,
                        out["event_history"][id].as_object().unwrap(),
                        &format!("{peer} snapshot event {id}"),
                    );
                }
            }
            "handlers" => {
                for (id, handler) in value.as_object().unwrap() {
                    for (field, v) in handler.as_object().unwrap() {
                        let o = &out["handlers"][id][field];
                        let same = match (v, o) {
                            (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                            _ => v == o,
                        };
                        assert!(same, "{peer} snapshot handler {id}.{field}: {v} vs {o}");
                    }
                }
            }
            _ => match (value, &out[key]) {
                (Value::Number(a), Value::Number(b)) => {
                    assert_eq!(a.as_f64(), b.as_f64(), "{peer} snapshot {key}")
                }
                (a, b) => assert_eq!(a, b, "{peer} snapshot {key}"),
            },
        }
    }
}

#[test]
fn python_events_snapshots_and_wal_lines_read_in_rust_with_every_field() {
    let dir = scratch("python-to-rust");
    let passed = peers::run_checks(python("abxbus25_write.py", &dir), "Python abxbus writing");
    assert!(passed.iter().any(|ok| ok == "written"), "{passed:?}");
    check_peer_files(&dir, "Python");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn typescript_events_snapshots_and_log_lines_read_in_rust_with_every_field() {
    let dir = scratch("typescript-to-rust");
    let passed = peers::run_checks(node("abxbus_write.mjs", &dir), "TypeScript abxbus writing");
    assert!(passed.iter().any(|ok| ok == "written"), "{passed:?}");
    check_peer_files(&dir, "TypeScript");
    let _ = std::fs::remove_dir_all(&dir);
}
