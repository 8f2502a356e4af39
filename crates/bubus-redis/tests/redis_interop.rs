//! The plain mode against a real Python `abxbus[bridges]==2.5.79` process on the same Redis
//! (127.0.0.1:6379), both ways: the family's URL form, channel and payload.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use bubus::bridge::Bridge;
use bubus::{EventBus, EventHandle};
use bubus_redis::RedisTransport;
use bubus_test_support::peers;
use bubus_test_support::servers::Worker;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct OrderPlaced {
    order_id: i64,
    customer: String,
    items: Vec<String>,
    shipping: BTreeMap<String, String>,
    amount: f64,
    note: Option<String>,
}

const WAIT: Duration = Duration::from_secs(120);

fn url() -> String {
    format!(
        "redis://127.0.0.1:6379/0/interop_{}",
        uuid::Uuid::new_v4().simple()
    )
}

fn python(args: &[&str]) -> Worker {
    let mut command = Command::new(peers::abxbus_python());
    command
        .arg(peers::workspace_root().join("interop/python/abxbus25_engine_bridge.py"))
        .args(args);
    Worker::spawn_command("python abxbus", command).expect("python peer")
}

fn reported(worker: &Worker, prefix: &str) -> Vec<Value> {
    worker
        .reports()
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|j| serde_json::from_str(j).expect("the peer prints JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sends_rust_receives_typed() {
    let url = url();
    let bridge = Bridge::new(RedisTransport::pubsub(&url).expect("transport"));
    let bus = EventBus::new("RustReceiver");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    bus.on(move |e: EventHandle<OrderPlaced>| {
        let _ = tx.send(e.clone());
        format!("ok:{}", e.order_id)
    });
    bridge.attach(&bus);
    bridge.start().await.expect("start");

    let mut peer = tokio::task::spawn_blocking(move || {
        let mut peer = python(&["redis", &url, "send", "2"]);
        let status = peer.wait().expect("python exits");
        assert!(status.success(), "python sender failed: {status}");
        peer
    })
    .await
    .expect("peer");
    let sent = reported(&peer, "sent ");
    assert_eq!(sent.len(), 2);
    for want in &sent {
        let got = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("an event")
            .expect("open");
        let got_json = got.to_any().to_json();
        // The payload, typed, and the metadata the family sent, kept (not reset).
        assert_eq!(got.order_id, want["order_id"].as_i64().expect("order_id"));
        assert_eq!(got.customer, "zoë");
        assert_eq!(got.items, ["book", "pen"]);
        assert_eq!(got.shipping["city"], "Zürich");
        assert_eq!(json!(got.amount), want["amount"]);
        assert_eq!(json!(got.note), want["note"]);
        for key in [
            "event_id",
            "event_type",
            "event_version",
            "event_created_at",
            "event_parent_id",
            "event_timeout",
        ] {
            assert_eq!(got_json[key], want[key], "{key}");
        }
        let path = got_json["event_path"].as_array().expect("path");
        assert_eq!(
            path.first(),
            want["event_path"].as_array().and_then(|p| p.first())
        );
        assert!(
            path.iter()
                .any(|p| p.as_str().is_some_and(|p| p.starts_with("RustReceiver"))),
            "{path:?}"
        );
    }
    peer.close_stdin();
    bridge.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sends_python_receives() {
    let url = url();
    let u = url.clone();
    let peer = tokio::task::spawn_blocking(move || {
        let peer = python(&["redis", &u, "receive", "2"]);
        assert!(
            peer.wait_report("ready", WAIT).is_some(),
            "python never got ready"
        );
        peer
    })
    .await
    .expect("peer");

    let bridge = Bridge::new(RedisTransport::pubsub(&url).expect("transport"));
    let bus = EventBus::new("RustSender");
    bridge.attach(&bus);
    bridge.start().await.expect("start");
    let mut sent = Vec::new();
    for i in 1..=2 {
        let order = OrderPlaced {
            order_id: i,
            customer: "zoë".into(),
            items: vec!["book".into(), "pen".into()],
            shipping: BTreeMap::from([("city".into(), "Zürich".into())]),
            amount: 12.5,
            note: (i == 1).then(|| "gift".into()),
        };
        let handle = bus.dispatch(order).expect("dispatch");
        handle.clone().await.expect("completes");
        sent.push(handle.to_any().to_json());
    }
    let mut peer = tokio::task::spawn_blocking(move || {
        let mut peer = peer;
        let status = peer.wait().expect("python exits");
        assert!(status.success(), "python receiver failed: {status}");
        peer
    })
    .await
    .expect("peer");
    let got = reported(&peer, "event ");
    assert_eq!(got.len(), 2, "python received {got:?}");
    for (want, got) in sent.iter().zip(&got) {
        for key in [
            "event_type",
            "event_version",
            "order_id",
            "customer",
            "items",
            "shipping",
            "amount",
            "note",
            "event_created_at",
        ] {
            assert_eq!(got[key], want[key], "{key}");
        }
        // The family resets what it receives: a new id, its own bus on the path.
        assert!(got["event_path"].as_array().is_some_and(|p| !p.is_empty()));
    }
    peer.close_stdin();
    bridge.close().await.expect("close");
}
