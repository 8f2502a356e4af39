//! The HTTP bridge against a real Python `abxbus` 2.5.79 process using its own
//! `HTTPEventBridge`: Python → Rust and Rust → Python, a typed event with a nested payload and a
//! child, every field compared (`bubus_test_support::bridge_peer`).

use std::sync::Arc;
use std::time::Duration;

use bubus::bridge::Bridge;
use bubus::{EventBus, EventHandle};
use bubus_http::{HttpTransport, ListenerOptions};
use bubus_test_support::bridge_peer::{
    ChargeCard, LineItem, OrderPlaced, PEER_WAIT, PythonListener, compare_from_python,
    compare_to_python, place_order, python_send,
};
use bubus_test_support::conformance::Tally;
use parking_lot::Mutex;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_to_rust_keeps_every_field() {
    let bus = EventBus::builder("RustShop").max_history_size(None).build();
    let tally = Tally::new();
    bus.on_pattern("*", tally.handler());
    let typed = Arc::new(Mutex::new(Vec::new()));
    let t = Arc::clone(&typed);
    bus.on(move |order: EventHandle<OrderPlaced>| {
        t.lock().push((*order).clone());
        1999
    });
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/events", socket.local_addr().unwrap());
    let bridge = Bridge::new(
        HttpTransport::new().listen_on_socket(socket, ListenerOptions::new().path("/events")),
    );
    bridge.attach(&bus);
    bridge.start().await.unwrap();

    let sent = tokio::task::spawn_blocking(move || python_send(&["http", &url]))
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
    let child = received
        .iter()
        .find(|e| e["event_type"] == "ChargeCard")
        .unwrap();
    let parent = received
        .iter()
        .find(|e| e["event_type"] == "OrderPlaced")
        .unwrap();
    assert_eq!(child["event_parent_id"], parent["event_id"]);
    let orders = typed.lock().clone();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0].items[0].options["wrap"], "blue");
    assert_eq!(orders[0].note.as_deref(), Some("ünïcode ✓"));
    assert_eq!(bridge.metrics().invalid, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_python_keeps_every_field_the_family_keeps() {
    // The peer binds port 0 itself and names the port it got: nothing can take it in between.
    let listener = tokio::task::spawn_blocking(|| {
        PythonListener::start(&["http", "http://127.0.0.1:0/events", "2"])
    })
    .await
    .unwrap();
    let url = listener
        .address()
        .expect("the HTTP listener names its address")
        .to_owned();

    let bus = EventBus::builder("RustShop").max_history_size(None).build();
    let bridge = Bridge::new(HttpTransport::new().send_to(&url).unwrap());
    bridge.attach(&bus);
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
    assert_eq!(bridge.metrics().sent, 2);

    let received = tokio::task::spawn_blocking(move || listener.finish())
        .await
        .unwrap();
    // What Rust sent: the events as the bus holds them (payload and configuration do not change
    // after dispatch; status and timestamps are compared as the family resets them).
    let sent: Vec<serde_json::Value> = bus
        .event_history()
        .iter()
        .map(bubus::AnyEvent::to_json)
        .collect();
    compare_to_python(&sent, &received.events, "HTTPEventBridge_");
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
