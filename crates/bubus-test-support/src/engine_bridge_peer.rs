//! Python `abxbus` 2.5 on the other end of a plain (family-wire) Redis or NATS bridge
//! (`interop/python/abxbus25_engine_bridge.py`, with abxbus's own bridges), and the two interop
//! runs both transports' tests make: the peer sends and a Rust bus receives typed, and the
//! reverse.

use std::collections::BTreeMap;
use std::future::Future;
use std::process::Command;
use std::time::Duration;

use bubus::bridge::{Bridge, Transport};
use bubus::{EventBus, EventHandle};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::peers;
use crate::servers::Worker;

/// The event both sides send.
#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
pub struct OrderPlaced {
    /// The order's number.
    pub order_id: i64,
    /// Who ordered (non-ASCII in the peer's events).
    pub customer: String,
    /// What.
    pub items: Vec<String>,
    /// Where to (a map: `"city"`).
    pub shipping: BTreeMap<String, String>,
    /// How much.
    pub amount: f64,
    /// A note, on some orders.
    pub note: Option<String>,
}

/// How long a run waits for the peer.
pub const WAIT: Duration = Duration::from_secs(120);

/// Starts the peer with `args` (the transport's, then `send N` or `receive N`).
pub fn python(args: &[&str]) -> Worker {
    let mut command = Command::new(peers::abxbus_python());
    command
        .arg(peers::workspace_root().join("interop/python/abxbus25_engine_bridge.py"))
        .args(args);
    Worker::spawn_command("python abxbus", command).expect("python peer")
}

/// The JSON of every report line of `worker` that starts with `prefix` (`"sent "`, `"event "`).
pub fn reported(worker: &Worker, prefix: &str) -> Vec<Value> {
    worker
        .reports()
        .iter()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|j| serde_json::from_str(j).expect("the peer prints JSON"))
        .collect()
}

/// The peer sends two [`OrderPlaced`] through `transport`'s wire; a Rust bus receives them typed,
/// with the metadata the family sent kept. `peer` is the peer's transport arguments (`redis URL`,
/// `nats SERVER SUBJECT`).
pub async fn python_sends_rust_receives_typed(transport: impl Transport, peer: Vec<String>) {
    let bridge = Bridge::new(transport);
    let bus = EventBus::new("RustReceiver");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    bus.on(move |e: EventHandle<OrderPlaced>| {
        let _ = tx.send(e.clone());
        format!("ok:{}", e.order_id)
    });
    bridge.attach(&bus);
    bridge.start().await.expect("start");

    let mut peer = tokio::task::spawn_blocking(move || {
        let mut args: Vec<&str> = peer.iter().map(String::as_str).collect();
        args.extend(["send", "2"]);
        let mut peer = python(&args);
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

/// A Rust bus sends two [`OrderPlaced`] through the transport `transport` makes once the peer,
/// started with its transport arguments `peer`, is ready; the peer receives them with every
/// payload field.
pub async fn rust_sends_python_receives<T: Transport>(
    transport: impl Future<Output = T>,
    peer: Vec<String>,
) {
    let peer = tokio::task::spawn_blocking(move || {
        let mut args: Vec<&str> = peer.iter().map(String::as_str).collect();
        args.extend(["receive", "2"]);
        let peer = python(&args);
        assert!(
            peer.wait_report("ready", WAIT).is_some(),
            "python never got ready"
        );
        peer
    })
    .await
    .expect("peer");

    let bridge = Bridge::new(transport.await);
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
