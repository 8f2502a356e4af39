//! The JSONL file bridge: the conformance suite (plain and with a cursor), and the file rules —
//! partial lines, truncation, bad lines reported by line number, start at the end (family) or
//! at the cursor (resume).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus::bridge::{Bridge, JsonlTransport};
use bubus::{AnyEvent, DynEvent, EventBus, EventHandle};
use bubus_test_support::conformance::{Tally, TransportFactory};
use serde_json::json;

fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "bubus-jsonl-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn append(path: &Path, text: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open");
    f.write_all(text).expect("append");
}

const POLL: Duration = Duration::from_millis(5);

struct Plain;

impl TransportFactory for Plain {
    type Transport = JsonlTransport;
    type Medium = PathBuf;

    async fn medium(&self) -> PathBuf {
        scratch("plain").join("events.jsonl")
    }

    async fn endpoint(&self, medium: &PathBuf) -> JsonlTransport {
        JsonlTransport::new(medium).poll_interval(POLL)
    }

    async fn inject(&self, medium: &PathBuf, text: &str) -> bool {
        append(medium, format!("{text}\n").as_bytes());
        true
    }
}

struct WithCursor;

impl TransportFactory for WithCursor {
    type Transport = JsonlTransport;
    type Medium = PathBuf;

    async fn medium(&self) -> PathBuf {
        scratch("cursor").join("events.jsonl")
    }

    async fn endpoint(&self, medium: &PathBuf) -> JsonlTransport {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!("endpoint-{}", N.fetch_add(1, Ordering::Relaxed));
        self.endpoint_named(medium, &name).await
    }

    async fn endpoint_named(&self, medium: &PathBuf, name: &str) -> JsonlTransport {
        JsonlTransport::new(medium)
            .poll_interval(POLL)
            .cursor_file(medium.with_file_name(format!("{name}.cursor")))
    }

    async fn inject(&self, medium: &PathBuf, text: &str) -> bool {
        append(medium, format!("{text}\n").as_bytes());
        true
    }
}

mod plain {
    use super::*;
    bubus_test_support::transport_conformance!(Plain);
}

mod cursor {
    use super::*;
    bubus_test_support::transport_conformance!(WithCursor);
}

fn ping(n: usize) -> String {
    EventHandle::new(DynEvent::new("Ping", json!({"n": n})).expect("event")).to_json_string()
}

async fn receiver(transport: JsonlTransport) -> (EventBus, Tally, Bridge) {
    let bus = EventBus::builder("Receiver").max_history_size(None).build();
    let tally = Tally::new();
    bus.on_pattern("Ping", tally.handler());
    let bridge = Bridge::new(transport);
    bridge.attach(&bus);
    bridge.start().await.expect("start");
    (bus, tally, bridge)
}

fn ns(tally: &Tally) -> Vec<u64> {
    tally
        .events()
        .iter()
        .map(|e| e["n"].as_u64().expect("n"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_is_reported_with_its_line_number_and_the_rest_delivered() {
    let path = scratch("bad").join("events.jsonl");
    let (_bus, tally, bridge) = receiver(JsonlTransport::new(&path).poll_interval(POLL)).await;
    // One write holding good and bad lines: the family loses the rest of such a batch.
    let mut batch = String::new();
    batch.push_str(&ping(1));
    batch.push('\n');
    batch.push_str("{\"event_type\": \"Ping\", \"event_id\": \"not-a-uuid\"}\n");
    batch.push_str("this is not json\n");
    batch.push_str(&ping(2));
    batch.push('\n');
    append(&path, batch.as_bytes());
    append(&path, b"\xff\xfe not utf-8\n");
    append(&path, format!("{}\n", ping(3)).as_bytes());
    tally.wait_for(3).await;
    bridge.wait_metrics(|m| m.invalid == 3).await;
    assert_eq!(ns(&tally), [1, 2, 3]);
    let bad = bridge.recent_bad_input();
    let origins: Vec<&str> = bad.iter().map(|b| b.origin.as_str()).collect();
    let file = path.display().to_string();
    assert_eq!(
        origins,
        [
            format!("{file}:2").as_str(),
            format!("{file}:3").as_str(),
            format!("{file}:5").as_str()
        ]
    );
    assert!(bad[0].message.contains("event_id"), "{bad:?}");
    assert!(bad[2].message.contains("UTF-8"), "{bad:?}");
    bridge.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_line_waits_for_its_newline() {
    let path = scratch("partial").join("events.jsonl");
    let (_bus, tally, bridge) = receiver(JsonlTransport::new(&path).poll_interval(POLL)).await;
    let line = ping(2);
    let (head, tail) = line.split_at(line.len() / 2);
    // One write: a whole line and half of the next. Once the whole one was handled, the
    // listener has read the half too (it reads everything appended in one go).
    append(&path, format!("{}\n{head}", ping(1)).as_bytes());
    tally.wait_for(1).await;
    append(&path, format!("{tail}\n{}\n", ping(3)).as_bytes());
    tally.wait_for(3).await;
    assert_eq!(ns(&tally), [1, 2, 3]);
    assert_eq!(bridge.metrics().invalid, 0);
    bridge.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_file_is_read_again_from_the_top() {
    let path = scratch("truncate").join("events.jsonl");
    let (_bus, tally, bridge) = receiver(JsonlTransport::new(&path).poll_interval(POLL)).await;
    append(&path, format!("{}\n{}\n", ping(1), ping(2)).as_bytes());
    tally.wait_for(2).await;
    std::fs::write(&path, b"").expect("truncate");
    // Shorter than before, so the listener notices the truncation whatever it last read.
    append(&path, format!("{}\n", ping(3)).as_bytes());
    tally.wait_for(3).await;
    assert_eq!(ns(&tally), [1, 2, 3]);
    bridge.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_over_the_limit_is_skipped_and_memory_stays_bounded() {
    let path = scratch("long").join("events.jsonl");
    let (_bus, tally, bridge) = receiver(
        JsonlTransport::new(&path)
            .poll_interval(POLL)
            .max_line_bytes(1024),
    )
    .await;
    append(&path, format!("{}\n", ping(1)).as_bytes());
    let long = format!(
        "{{\"event_type\":\"Ping\",\"pad\":\"{}\"}}\n",
        "x".repeat(3 * 1024 * 1024)
    );
    append(&path, long.as_bytes());
    append(&path, format!("{}\n", ping(2)).as_bytes());
    tally.wait_for(2).await;
    bridge.wait_metrics(|m| m.invalid == 1).await;
    assert_eq!(ns(&tally), [1, 2]);
    let bad = bridge.recent_bad_input();
    assert!(bad[0].origin.ends_with(":2"), "{bad:?}");
    assert!(bad[0].message.contains("limit"), "{bad:?}");
    bridge.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_cursor_the_listener_starts_at_the_end_like_the_family() {
    let path = scratch("end").join("events.jsonl");
    append(&path, format!("{}\n{}\n", ping(1), ping(2)).as_bytes());
    let (_bus, tally, bridge) = receiver(JsonlTransport::new(&path).poll_interval(POLL)).await;
    append(&path, b"junk\n");
    append(&path, format!("{}\n", ping(3)).as_bytes());
    tally.wait_for(1).await;
    bridge.wait_metrics(|m| m.invalid == 1).await;
    assert_eq!(ns(&tally), [3]);
    // Line numbers count the lines that were there before the listener started.
    assert!(
        bridge.recent_bad_input()[0].origin.ends_with(":3"),
        "{:?}",
        bridge.recent_bad_input()
    );
    bridge.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_cursor_a_restarted_listener_resumes_after_the_last_completed_line() {
    let dir = scratch("resume");
    let path = dir.join("events.jsonl");
    let cursor = dir.join("receiver.cursor");
    let transport = || {
        JsonlTransport::new(&path)
            .poll_interval(POLL)
            .cursor_file(&cursor)
    };
    // Written before the first start: a new cursor starts at the top.
    append(&path, format!("{}\n{}\n", ping(1), ping(2)).as_bytes());
    let (_bus, tally, bridge) = receiver(transport()).await;
    tally.wait_for(2).await;
    bridge.close().await.expect("close");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cursor).expect("cursor")).expect("json");
    assert_eq!(saved["line"], 3);
    assert_eq!(
        saved["offset"].as_u64(),
        Some(std::fs::metadata(&path).expect("stat").len())
    );

    // Written while no listener runs.
    append(&path, format!("{}\n{}\n", ping(3), ping(4)).as_bytes());
    let (_bus, tally, bridge) = receiver(transport()).await;
    append(&path, format!("{}\n", ping(5)).as_bytes());
    tally.wait_for(3).await;
    assert_eq!(ns(&tally), [3, 4, 5]);
    bridge.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cursor_does_not_pass_an_event_still_running() {
    let dir = scratch("inflight");
    let path = dir.join("events.jsonl");
    let cursor = dir.join("receiver.cursor");
    let bus = EventBus::builder("Receiver").max_history_size(None).build();
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let g = gate.clone();
    let started = Tally::new();
    let s = started.clone();
    bus.on_pattern("Ping", move |e: AnyEvent| {
        let g = g.clone();
        let s = s.clone();
        async move {
            s.record(&e);
            if e.to_json()["n"] == 1 {
                g.notified().await;
            }
        }
    });
    let bridge = Bridge::new(
        JsonlTransport::new(&path)
            .poll_interval(POLL)
            .cursor_file(&cursor),
    );
    bridge.attach(&bus);
    bridge.start().await.expect("start");
    append(&path, format!("{}\n", ping(1)).as_bytes());
    started.wait_for(1).await;
    assert!(!cursor.exists(), "nothing completed yet");
    gate.notify_one();
    bridge.wait_metrics(|m| m.completed == 1).await;
    bridge.close().await.expect("close");
    let saved: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cursor).expect("cursor")).expect("json");
    assert_eq!(saved["line"], 2);
}
