//! The plain mode against Python abxbus 2.5.79's `PostgresEventBridge` on the same server, both
//! ways, and the family's wire as stored (every column JSON text, the notification the quoted id).

mod support;

use std::collections::BTreeMap;
use std::process::Stdio;

use bubus::EventBus;
use bubus::bridge::Bridge;
use bubus_postgres::PgTransport;
use bubus_test_support::conformance::Tally;
use bubus_test_support::peers::{abxbus_python, workspace_root};
use futures_util::StreamExt;
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn peer(mode: &str, url: &str, channel: &str, count: usize) -> Child {
    Command::new(abxbus_python())
        .arg(workspace_root().join("interop/python/pg_bridge_peer.py"))
        .args([mode, url, channel, &count.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("cannot start the Python peer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_python() {
    let table = unique("pi_r2p");
    let channel = unique("pi_ch");
    let url = shared_url(&table);
    let mut py = peer("recv", &url, &channel, 20);
    let mut lines = BufReader::new(py.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if line == "@@ready" {
            break;
        }
    }
    let bus = EventBus::new("RustSide");
    let bridge = Bridge::new(PgTransport::plain(&url, Some(&channel)).await.unwrap());
    bus.on_pattern("*", bridge.sender());
    for n in 0..20u64 {
        bus.dispatch(ping_with(n)).unwrap().await.unwrap();
    }
    let mut got = BTreeMap::new();
    while got.len() < 20 {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("the Python peer ended early");
        let Some(json) = line.strip_prefix("@@event ") else {
            continue;
        };
        let v: Value = serde_json::from_str(json).unwrap();
        assert_eq!(v["event_type"], "Ping");
        let n = v["n"].as_u64().unwrap();
        assert_eq!(v["text"], format!("grüße {n}"));
        assert_eq!(v["tags"], json!(["a", n.to_string()]));
        got.insert(n, v);
    }
    assert_eq!(
        got.keys().copied().collect::<Vec<_>>(),
        (0..20).collect::<Vec<_>>()
    );
    assert!(py.wait().await.unwrap().success());
    bridge.close().await.unwrap();
}

fn ping_with(n: u64) -> bubus::AnyEvent {
    bubus::EventHandle::new(
        bubus::DynEvent::new(
            "Ping",
            json!({ "n": n, "text": format!("grüße {n}"), "tags": ["a", n.to_string()] }),
        )
        .unwrap(),
    )
    .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_to_rust() {
    let table = unique("pi_p2r");
    let channel = unique("pi_ch");
    let url = shared_url(&table);
    let bus = EventBus::builder("RustSide").max_history_size(None).build();
    let tally = Tally::new();
    bus.on_pattern("PgPing", tally.handler());
    let bridge = Bridge::new(PgTransport::plain(&url, Some(&channel)).await.unwrap());
    bridge.attach(&bus);
    bridge.start().await.unwrap();
    // Listening before the peer sends: the plain mode delivers only to listeners.
    wait_listening(&channel).await;
    let mut py = peer("send", &url, &channel, 20);
    let mut lines = BufReader::new(py.stdout.take().unwrap()).lines();
    let mut sent = BTreeMap::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(rest) = line.strip_prefix("@@sent ") {
            let (id, n) = rest.split_once(' ').unwrap();
            sent.insert(n.parse::<u64>().unwrap(), id.to_owned());
        }
    }
    assert!(py.wait().await.unwrap().success());
    assert_eq!(sent.len(), 20);
    tally.wait_for(20).await;
    for e in tally.events() {
        let n = e["n"].as_u64().unwrap();
        // The sender's id survives the hop.
        assert_eq!(e["event_id"], sent[&n].as_str());
        assert_eq!(e["event_type"], "PgPing");
        assert_eq!(e["text"], format!("grüße {n}"));
        assert_eq!(e["tags"], json!(["a", n.to_string()]));
    }
    bridge.close().await.unwrap();
}

/// Waits until some backend listens on `channel` (the bridge's LISTEN connection is up).
async fn wait_listening(channel: &str) {
    let c = client().await;
    loop {
        let rows = c
            .query(
                "SELECT count(*) FROM pg_stat_activity WHERE query ILIKE $1",
                &[&format!("%LISTEN \"{channel}\"%")],
            )
            .await
            .unwrap();
        if rows[0].get::<_, i64>(0) > 0 {
            return;
        }
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_as_the_family_stores_it() {
    let table = unique("pi_wire");
    let channel = unique("pi_ch");
    let url = shared_url(&table);
    // Hear the raw notification on a connection of our own.
    let (listener, mut connection) = tokio_postgres::connect(SHARED, tokio_postgres::NoTls)
        .await
        .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut s = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(Ok(m)) = s.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = m {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    listener
        .batch_execute(&format!("LISTEN \"{channel}\""))
        .await
        .unwrap();

    let transport = PgTransport::plain(&url, Some(&channel)).await.unwrap();
    let e = ping_with(3);
    transport.send_event(&e).await.unwrap();
    let id = e.event_id().to_string();
    let (ch, payload) = rx.recv().await.unwrap();
    assert_eq!(ch, channel);
    assert_eq!(payload, format!("\"{id}\""));

    let c = client().await;
    let row = c
        .query_one(&format!("SELECT row_to_json(t)::text FROM {table} t"), &[])
        .await
        .unwrap();
    let cols: serde_json::Map<String, Value> =
        serde_json::from_str(&row.get::<_, String>(0)).unwrap();
    assert_eq!(cols["event_id"], json!(format!("\"{id}\"")));
    assert_eq!(cols["event_type"], json!("\"Ping\""));
    let whole: Value = serde_json::from_str(cols["event_payload"].as_str().unwrap()).unwrap();
    assert_eq!(whole, e.to_json());
    assert!(whole.get("event_results").is_none());
    // Every event_* key has its column, JSON text or NULL.
    for (k, v) in whole.as_object().unwrap() {
        if k.starts_with("event_") {
            let stored = &cols[k];
            if v.is_null() {
                assert!(stored.is_null(), "{k}");
            } else {
                assert_eq!(stored, &json!(v.to_string()), "{k}");
            }
        }
    }
    // The columns' types, as the family declares them.
    let types = c
        .query(
            "SELECT data_type::text FROM information_schema.columns WHERE table_name = $1",
            &[&table],
        )
        .await
        .unwrap();
    assert!(types.iter().all(|r| r.get::<_, String>(0) == "text"));
}
