//! The SQLite bridge against a real Python `abxbus` 2.5.79 process using its own
//! `SQLiteEventBridge` on the same file and table: Python → Rust and Rust → Python, a typed event
//! with a nested payload and a child, every field compared (`bubus_test_support::bridge_peer`).

use std::sync::Arc;
use std::time::Duration;

use bubus::bridge::Bridge;
use bubus::{EventBus, EventHandle};
use bubus_sqlite::{BridgeTable, SqliteTransport};
use bubus_test_support::bridge_peer::{
    ChargeCard, LineItem, OrderPlaced, PEER_WAIT, PythonListener, compare_from_python,
    compare_to_python, place_order, python_send,
};
use bubus_test_support::conformance::Tally;
use parking_lot::Mutex;
use serde_json::Value;

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "bubus-sqlite-interop-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("bridge.sqlite3")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_to_rust_keeps_every_field() {
    let path = temp_db("py-to-rust");
    let bus = EventBus::builder("RustShop").max_history_size(None).build();
    let tally = Tally::new();
    bus.on_pattern("*", tally.handler());
    let typed = Arc::new(Mutex::new(Vec::new()));
    let t = Arc::clone(&typed);
    bus.on(move |order: EventHandle<OrderPlaced>| {
        t.lock().push((*order).clone());
        1999
    });
    let bridge = Bridge::new(SqliteTransport::new(&path).poll_interval(Duration::from_millis(5)));
    bridge.attach(&bus);
    bridge.start().await.unwrap();

    let p = path.to_str().unwrap().to_owned();
    let sent = tokio::task::spawn_blocking(move || python_send(&["sqlite", &p, "abxbus_events"]))
        .await
        .unwrap();
    tokio::time::timeout(PEER_WAIT, tally.wait_for(2))
        .await
        .unwrap();
    bridge.close().await.unwrap();

    let received = tally.events();
    compare_from_python(
        &sent.events,
        &received,
        &[
            bridge.inbound_bus().label().to_owned(),
            bus.label().to_owned(),
        ],
    );
    // The child kept its parent: one tree across the two processes.
    let child = received
        .iter()
        .find(|e| e["event_type"] == "ChargeCard")
        .unwrap();
    let parent = received
        .iter()
        .find(|e| e["event_type"] == "OrderPlaced")
        .unwrap();
    assert_eq!(child["event_parent_id"], parent["event_id"]);
    // The typed handler decoded the nested payload.
    let orders = typed.lock().clone();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].order_id, "ord-py-7");
    assert_eq!(orders[0].items[0].options["wrap"], "blue");
    assert_eq!(orders[0].note.as_deref(), Some("ünïcode ✓"));
    assert_eq!(bridge.metrics().invalid, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_python_keeps_every_field_the_family_keeps() {
    let path = temp_db("rust-to-py");
    // Created before the listener starts, as the sender would on first write.
    BridgeTable::open(&path, "abxbus_events").unwrap();
    let p = path.to_str().unwrap().to_owned();
    let listener = tokio::task::spawn_blocking(move || {
        PythonListener::start(&["sqlite", &p, "abxbus_events", "2"])
    })
    .await
    .unwrap();

    let bus = EventBus::new("RustShop");
    let bridge = Bridge::new(SqliteTransport::new(&path));
    // Sent by name ahead of the typed handlers, not by `attach`'s "*" handler (which runs after
    // them): the order is written before the charge `place_order` awaits, as the family's
    // reader needs, whose `event_created_at` cursor skips a row written after a younger one.
    bus.on_pattern("OrderPlaced", bridge.sender());
    bus.on_pattern("ChargeCard", bridge.sender());
    bus.on(place_order);
    bus.on(|charge: EventHandle<ChargeCard>| format!("charged {} cents", charge.cents));
    let order = bus
        .dispatch(
            EventHandle::new(OrderPlaced {
                order_id: "ord-rs-9".into(),
                items: vec![LineItem {
                    sku: "ENG-2".into(),
                    quantity: 3,
                    options: [("gift".to_owned(), "no".to_owned())].into(),
                }],
                note: Some("ünïcode ✓".into()),
            })
            .with_event_timeout(Duration::from_millis(12500)),
        )
        .unwrap();
    order.clone().await.unwrap();
    bridge.close().await.unwrap();

    let received = tokio::task::spawn_blocking(move || listener.finish())
        .await
        .unwrap();
    // What Rust wrote, read back from the table.
    let table = BridgeTable::open(&path, "abxbus_events").unwrap();
    let sent: Vec<Value> = table
        .read_after(0, 100)
        .unwrap()
        .into_iter()
        .map(|row| Value::Object(row.event.unwrap()))
        .collect();
    compare_to_python(&sent, &received.events, "SQLiteEventBridge_");
    assert!(
        received.ok.contains(&"typed OrderPlaced".to_owned()),
        "{:?}",
        received.ok
    );
    assert!(
        received.ok.contains(&"typed ChargeCard".to_owned()),
        "{:?}",
        received.ok
    );
}
