//! Bridges with a real Python `abxbus==2.5.79` process on the other side, through its own
//! `JSONLEventBridge` and `SocketEventBridge` (interop/python/abxbus25_bridge_peer.py): one typed
//! event with a nested payload and a linked child event, Rust → Python and Python → Rust, every
//! field compared. Python's bridges give a received event a new id and cut its lineage (by
//! design); Rust keeps both.
#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus::bridge::{Bridge, JsonlTransport, Transport, UnixSocketTransport};
use bubus::{Event, EventBus, EventHandle};
use bubus_test_support::conformance::Tally;
use bubus_test_support::peers::{abxbus_python, workspace_root};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Meta {
    tags: Vec<String>,
    score: f64,
    nested: serde_json::Map<String, Value>,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(name = "IPCPingEvent", result = String)]
struct IpcPing {
    label: String,
    meta: Meta,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(name = "IPCChildEvent", result = String)]
struct IpcChild {
    note: String,
}

fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "bbi-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn peer(args: &[&str]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(abxbus_python());
    cmd.arg(workspace_root().join("interop/python/abxbus25_bridge_peer.py"))
        .args(args)
        .current_dir(workspace_root().join("interop/python"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// How long the peer may take to start, and to finish once told to (its own deadline for what
/// it waits for is 60 s): past it, the test fails with what the peer printed instead of hanging.
const PEER_WAIT: Duration = Duration::from_secs(180);

/// A running peer: its stdout read line by line, its stderr read to the end by a task of its
/// own from the start (a peer writing more than a pipe holds to an unread stderr would block,
/// and so would a test waiting for its stdout to end).
struct Peer {
    child: tokio::process::Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    stderr: tokio::task::JoinHandle<String>,
    seen: Vec<String>,
}

impl Peer {
    fn spawn(args: &[&str]) -> Peer {
        use tokio::io::AsyncReadExt;
        let mut child = peer(args).spawn().expect("python peer");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut err = child.stderr.take().expect("stderr");
        let stderr = tokio::spawn(async move {
            let mut buf = Vec::new();
            let _ = err.read_to_end(&mut buf).await;
            String::from_utf8_lossy(&buf).into_owned()
        });
        Peer {
            child,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Reads stdout up to the `@@ready` line.
    async fn ready(&mut self) {
        let waited = tokio::time::timeout(PEER_WAIT, async {
            loop {
                let line = self.lines.next_line().await.expect("read")?;
                let ready = line == "@@ready";
                self.seen.push(line);
                if ready {
                    return Some(());
                }
            }
        })
        .await;
        if !matches!(waited, Ok(Some(()))) {
            let _ = self.child.start_kill();
            let stderr = (&mut self.stderr).await.unwrap_or_default();
            panic!(
                "python peer never got ready ({}):\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
                if waited.is_err() {
                    "timed out"
                } else {
                    "it exited"
                },
                self.seen.join("\n"),
            );
        }
    }

    /// Writes one line to its stdin.
    async fn tell(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to the peer");
        stdin.flush().await.expect("flush to the peer");
    }
}

/// Waits for the peer to exit; fails on a mismatch or a failure, returns its `@@ok` checks.
async fn finish(mut peer: Peer) -> Vec<String> {
    drop(peer.child.stdin.take());
    let mut seen = std::mem::take(&mut peer.seen);
    let exited = tokio::time::timeout(PEER_WAIT, async {
        while let Ok(Some(line)) = peer.lines.next_line().await {
            seen.push(line);
        }
        peer.child.wait().await.expect("peer ran")
    })
    .await;
    if exited.is_err() {
        let _ = peer.child.start_kill();
    }
    let stderr = peer.stderr.await.unwrap_or_default();
    let Ok(status) = exited else {
        panic!(
            "python peer still running after {PEER_WAIT:?}:\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
            seen.join("\n"),
        );
    };
    let mismatches: Vec<&String> = seen
        .iter()
        .filter(|l| l.starts_with("@@mismatch"))
        .collect();
    assert!(
        status.success() && mismatches.is_empty(),
        "python peer failed ({status}):\n{mismatches:#?}\n--- stdout ---\n{}\n--- stderr ---\n{stderr}",
        seen.join("\n"),
    );
    seen.iter()
        .filter_map(|l| l.strip_prefix("@@ok "))
        .map(str::to_owned)
        .collect()
}

fn transport(kind: &str, endpoint: &Path) -> std::sync::Arc<dyn Transport> {
    match kind {
        "socket" => std::sync::Arc::new(
            UnixSocketTransport::new(endpoint.to_str().expect("utf-8")).expect("path"),
        ),
        _ => std::sync::Arc::new(
            JsonlTransport::new(endpoint).poll_interval(std::time::Duration::from_millis(5)),
        ),
    }
}

async fn rust_to_python(kind: &str, endpoint: PathBuf) {
    let dir = endpoint.parent().expect("dir").to_owned();
    let expected = dir.join("expected.json");
    let received = dir.join("received.json");
    let mut python = Peer::spawn(&[
        "listen",
        kind,
        endpoint.to_str().expect("utf-8"),
        expected.to_str().expect("utf-8"),
        received.to_str().expect("utf-8"),
    ]);
    python.ready().await;

    let bus = EventBus::new("RustSender");
    let inner = bus.clone();
    let sent_child = std::sync::Arc::new(parking_lot::Mutex::new(None));
    let slot = sent_child.clone();
    bus.on(move |ping: EventHandle<IpcPing>| {
        let bus = inner.clone();
        let slot = slot.clone();
        async move {
            let child = bus.dispatch(
                EventHandle::new(IpcChild {
                    note: "dispatched by the rust handler".into(),
                })
                .with_event_timeout(Duration::from_millis(12500)),
            )?;
            *slot.lock() = Some(child.clone());
            child.await?;
            Ok::<_, bubus::Error>(format!("pong for {}", ping.label))
        }
    });
    // Python listens on the socket path; Rust only sends to it.
    let bridge = Bridge::builder_arc(transport(kind, &endpoint)).build();
    bridge.attach(&bus);
    let ping = bus
        .dispatch(
            EventHandle::new(IpcPing {
                label: "from rust".into(),
                meta: Meta {
                    tags: vec!["a".into(), "b".into()],
                    score: 0.25,
                    nested: json!({"deep": {"list": [1, 2, {"x": null}]}, "ok": true})
                        .as_object()
                        .cloned()
                        .expect("object"),
                },
            })
            .with_event_timeout(Duration::from_secs(33)),
        )
        .expect("dispatch");
    ping.clone().await.expect("sent");
    let child_event = sent_child.lock().clone().expect("child dispatched");
    assert_eq!(child_event.event_parent_id(), Some(ping.event_id()));
    let sent = json!([ping.to_json(), child_event.to_json()]);
    std::fs::write(&expected, sent.to_string()).expect("expected");
    // Python may have both events before the file is written: it reads the file once told.
    python.tell("expected").await;
    bridge.close().await.expect("close");

    let checks = finish(python).await;
    assert_eq!(
        checks,
        [
            format!("rust->python {kind} IPCPingEvent"),
            format!("rust->python {kind} IPCChildEvent")
        ]
    );
}

async fn python_to_rust(kind: &str, endpoint: PathBuf) {
    let dir = endpoint.parent().expect("dir").to_owned();
    let out = dir.join("python-sent.json");
    if kind == "jsonl" {
        std::fs::write(&endpoint, b"").expect("create the file");
    }
    let bus = EventBus::builder("RustReceiver")
        .max_history_size(None)
        .build();
    let tally = Tally::new();
    let t = tally.clone();
    bus.on(move |ping: EventHandle<IpcPing>| {
        // A typed handler: the Python payload decodes into the Rust struct.
        assert_eq!(ping.meta.tags, ["a", "b"]);
        t.record(&ping.to_any());
        format!("rust got {}", ping.label)
    });
    let t = tally.clone();
    bus.on(move |child: EventHandle<IpcChild>| {
        t.record(&child.to_any());
        format!("rust got {}", child.note)
    });
    let bridge = Bridge::builder_arc(transport(kind, &endpoint)).build();
    bridge.attach(&bus);
    bridge.start().await.expect("start");

    let python = Peer::spawn(&[
        "send",
        kind,
        endpoint.to_str().expect("utf-8"),
        out.to_str().expect("utf-8"),
    ]);
    let checks = finish(python).await;
    assert_eq!(checks, [format!("python->rust {kind} sent")]);
    tally.wait_for(2).await;
    bridge.close().await.expect("close");

    let sent: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("python wrote")).expect("json");
    let received = tally.events();
    assert_eq!(sent.len(), 2);
    for python in &sent {
        let ty = python["event_type"].as_str().expect("type");
        let rust = received
            .iter()
            .find(|e| e["event_type"] == ty)
            .unwrap_or_else(|| panic!("{ty} not received"));
        compare_python_to_rust(ty, python, rust, &bridge, &bus);
    }
    // The child kept its Python parent: one tree across the two runtimes.
    let ping = sent
        .iter()
        .find(|e| e["event_type"] == "IPCPingEvent")
        .expect("ping");
    let child = sent
        .iter()
        .find(|e| e["event_type"] == "IPCChildEvent")
        .expect("child");
    assert_eq!(child["event_parent_id"], ping["event_id"]);
}

fn instant(v: &Value) -> Option<bubus::time::Timestamp> {
    v.as_str().and_then(|s| s.parse().ok())
}

fn compare_python_to_rust(ty: &str, python: &Value, rust: &Value, bridge: &Bridge, bus: &EventBus) {
    let (Some(p), Some(r)) = (python.as_object(), rust.as_object()) else {
        panic!("not objects");
    };
    for key in p.keys().chain(r.keys()) {
        let (pv, rv) = (&python[key], &rust[key]);
        match key.as_str() {
            // Lifecycle on the receiving bus: it is being handled there now.
            "event_status"
            | "event_started_at"
            | "event_completed_at"
            | "event_pending_bus_count" => {}
            "event_path" => {
                let mut expected: Vec<Value> = pv.as_array().expect("path").clone();
                expected.push(json!(bridge.inbound_bus().label()));
                expected.push(json!(bus.label()));
                assert_eq!(rv, &Value::Array(expected), "{ty}.{key}");
            }
            "event_created_at" => assert_eq!(instant(pv), instant(rv), "{ty}.{key}"),
            _ => assert_eq!(pv, rv, "{ty}.{key}: python sent {pv}, rust received {rv}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_python_over_its_jsonl_bridge() {
    rust_to_python("jsonl", scratch("r2p").join("events.jsonl")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_to_python_over_its_socket_bridge() {
    rust_to_python("socket", scratch("r2p").join("e.sock")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_to_rust_over_its_jsonl_bridge() {
    python_to_rust("jsonl", scratch("p2r").join("events.jsonl")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_to_rust_over_its_socket_bridge() {
    python_to_rust("socket", scratch("p2r").join("e.sock")).await;
}
