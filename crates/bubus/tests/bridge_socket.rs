//! The Unix socket bridge: the conformance suite, and the family's path rules (plus the
//! permissions, stale-socket and bad-input rules it lacks).
#![cfg(unix)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use bubus::bridge::{Bridge, Transport, TransportError, UnixSocketTransport};
use bubus::{DynEvent, EventBus, EventHandle};
use bubus_test_support::conformance::{Tally, TransportFactory};
use serde_json::json;

fn socket_path(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    // Short: socket paths are limited to 90 bytes.
    let dir = std::env::temp_dir().join(format!(
        "bbs-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join(format!("{tag}.sock"))
}

struct Factory;

impl TransportFactory for Factory {
    type Transport = UnixSocketTransport;
    type Medium = PathBuf;

    async fn medium(&self) -> PathBuf {
        socket_path("conf")
    }

    async fn endpoint(&self, medium: &PathBuf) -> UnixSocketTransport {
        UnixSocketTransport::new(medium.to_str().expect("utf-8 path")).expect("valid path")
    }

    async fn inject(&self, medium: &PathBuf, text: &str) -> bool {
        let mut s = std::os::unix::net::UnixStream::connect(medium).expect("connect");
        s.write_all(format!("{text}\n").as_bytes()).expect("write");
        true
    }
}

mod conformance {
    use super::*;
    bubus_test_support::transport_conformance!(Factory);
}

fn transport(path: &std::path::Path) -> UnixSocketTransport {
    UnixSocketTransport::new(path.to_str().expect("utf-8")).expect("valid")
}

fn ping(n: usize) -> String {
    EventHandle::new(DynEvent::new("Ping", json!({"n": n})).expect("event")).to_json_string()
}

#[test]
fn paths_are_checked_like_the_family() {
    let long = format!("/tmp/{}.sock", "a".repeat(100));
    let err = UnixSocketTransport::new(&long).expect_err("too long");
    assert_eq!(
        err.to_string(),
        format!(
            "invalid configuration: Unix socket path is too long (110 chars), max is 90: {long}"
        )
    );
    assert!(UnixSocketTransport::new("").is_err());
    assert!(UnixSocketTransport::new("unix://").is_err());
    let t = UnixSocketTransport::new("unix:///tmp/x.sock").expect("prefix accepted");
    assert_eq!(t.path(), std::path::Path::new("/tmp/x.sock"));
}

#[tokio::test]
async fn a_relative_path_cannot_listen() {
    let t = UnixSocketTransport::new("relative.sock").expect("valid to send to");
    let Err(err) = t.listen().await else {
        panic!("listened on a relative path")
    };
    assert!(matches!(err, TransportError::Config(_)), "{err}");
    assert!(err.to_string().contains("must be absolute"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_owner_only_and_removed_on_close() {
    let path = socket_path("perm");
    let bridge = Bridge::new(transport(&path));
    bridge.start().await.expect("start");
    let mode = std::fs::metadata(&path)
        .expect("socket exists")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    bridge.close().await.expect("close");
    assert!(!path.exists(), "socket file removed on close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_socket_is_replaced_a_live_one_is_not() {
    let path = socket_path("stale");
    std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
    // A listener that went away without removing its file.
    drop(std::os::unix::net::UnixListener::bind(&path).expect("bind"));
    assert!(path.exists());
    let bridge = Bridge::new(transport(&path));
    bridge.start().await.expect("stale socket replaced");

    let second = Bridge::new(transport(&path));
    let err = second.start().await.expect_err("live socket kept");
    assert!(err.to_string().contains("in use"), "{err}");

    bridge.close().await.expect("close");
    let file = path.with_extension("txt");
    std::fs::write(&file, b"data").expect("file");
    let t = UnixSocketTransport::new(file.to_str().expect("utf-8")).expect("valid");
    let Err(err) = t.listen().await else {
        panic!("replaced a regular file")
    };
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&file).expect("kept"), b"data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_reported_with_its_peer_and_line_and_skipped() {
    let path = socket_path("bad");
    let bus = EventBus::new("Receiver");
    let tally = Tally::new();
    bus.on_pattern("Ping", tally.handler());
    let bridge = Bridge::new(transport(&path).max_line_bytes(4096));
    bridge.attach(&bus);
    bridge.start().await.expect("start");

    let mut s = std::os::unix::net::UnixStream::connect(&path).expect("connect");
    let mut batch = Vec::new();
    batch.extend_from_slice(format!("{}\n", ping(1)).as_bytes());
    batch.extend_from_slice(b"{oops\n");
    batch.extend_from_slice(&vec![b'x'; 10_000]);
    batch.extend_from_slice(b"\n\n");
    batch.extend_from_slice(b"\xff\n");
    batch.extend_from_slice(format!("{}\n", ping(2)).as_bytes());
    s.write_all(&batch).expect("write");
    tally.wait_for(2).await;
    bridge.wait_metrics(|m| m.invalid == 3).await;
    let bad = bridge.recent_bad_input();
    let lines: Vec<&str> = bad
        .iter()
        .map(|b| b.origin.rsplit(' ').next().unwrap_or(""))
        .collect();
    assert_eq!(lines, ["2", "3", "5"], "{bad:?}");
    assert!(bad[0].origin.contains("pid"), "{bad:?}");
    assert!(bad[1].message.contains("limit"), "{bad:?}");
    // A half line cut by the sender is reported, not glued to anything.
    s.write_all(b"{\"event_type\":").expect("write");
    drop(s);
    bridge.wait_metrics(|m| m.invalid == 4).await;
    bridge.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_paths_give_a_two_way_link_with_results_back() {
    let a_path = socket_path("a");
    let b_path = socket_path("b");
    let (a, b) = (EventBus::new("A"), EventBus::new("B"));
    b.on_pattern(
        "Ping",
        |e: bubus::AnyEvent| json!({"doubled": e.to_json()["n"].as_i64().unwrap_or(0) * 2}),
    );
    let on_a = Bridge::builder(
        transport(&b_path)
            .listen_on(a_path.to_str().expect("utf-8"))
            .expect("valid"),
    )
    .results_back()
    .build();
    let on_b = Bridge::builder(
        transport(&a_path)
            .listen_on(b_path.to_str().expect("utf-8"))
            .expect("valid"),
    )
    .results_back()
    .build();
    on_a.attach(&a);
    on_b.attach(&b);
    on_a.start().await.expect("start");
    on_b.start().await.expect("start");
    let sent = a
        .dispatch(DynEvent::new("Ping", json!({"n": 21})).expect("event"))
        .expect("dispatch");
    assert_eq!(
        sent.event_results_list().await.expect("results"),
        [json!({"doubled": 42})]
    );
    on_a.close().await.expect("close");
    on_b.close().await.expect("close");
    assert!(!a_path.exists() && !b_path.exists());
}
