//! `bubus tree` over one log that two bridged processes write: the child a remote handler
//! dispatched sits under its remote parent, in one tree.
#![cfg(unix)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use bubus::bridge::{Bridge, JsonlTransport};
use bubus::wal::WalMiddleware;
use bubus::{AnyEvent, DynEvent, EventBus};
use bubus_test_support::roles::{self, RoleChild};
use serde_json::{Value, json};
use support::{path_str, run, stderr, stdout, temp_dir};

const ENTRY: &str = "role_entry";
const POLL: Duration = Duration::from_millis(5);

/// A bus of this process, logging to the shared log and attached to the shared JSONL bridge.
fn bridged_bus(name: &str, args: &Value) -> (EventBus, Bridge, Arc<WalMiddleware>) {
    let log = Arc::new(WalMiddleware::open(args["wal"].as_str().expect("wal")).expect("log"));
    let bus = EventBus::builder(name).middleware(log.clone()).build();
    let bridge = Bridge::new(
        JsonlTransport::new(args["events"].as_str().expect("events")).poll_interval(POLL),
    );
    bridge.attach(&bus);
    (bus, bridge, log)
}

/// The far side: its handler of `Ping` dispatches a `PingChild`, which the bridge carries back.
#[test]
fn role_entry() {
    let Some((role, args)) = roles::current() else {
        return;
    };
    assert_eq!(role, "remote");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (bus, bridge, log) = bridged_bus("Remote", &args);
        let (handled_tx, mut handled) = tokio::sync::mpsc::unbounded_channel();
        let inner = bus.clone();
        bus.on_pattern("Ping", move |_: AnyEvent| {
            inner
                .dispatch(DynEvent::new("PingChild", json!({"from": "remote"})).expect("event"))
                .expect("dispatch");
            let _ = handled_tx.send(());
            json!("pong")
        });
        bridge.start().await.expect("start");
        roles::report("ready");
        handled.recv().await;
        bus.wait_until_idle(None).await;
        bridge.close().await.expect("close");
        assert_eq!(log.error_count(), 0);
        roles::report("done");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_log_of_two_bridged_processes_draws_one_tree() {
    let dir = temp_dir("tree-bridged");
    let args = json!({
        "wal": dir.join("both.jsonl"),
        "events": dir.join("bridge.jsonl"),
    });
    let mut remote = RoleChild::spawn(ENTRY, "remote", args.clone());
    remote.wait_for("ready").await;

    let (bus, bridge, log) = bridged_bus("Local", &args);
    bus.on_pattern("PingChild", |_: AnyEvent| json!("child seen here"));
    bridge.start().await.expect("start");
    let came_back = std::future::IntoFuture::into_future(bus.expect_pattern("PingChild"));
    let ping = bus
        .dispatch(DynEvent::new("Ping", json!({"from": "local"})).expect("event"))
        .expect("dispatch");
    let child = came_back.await.expect("the remote child arrived");
    assert_eq!(child.event_parent_id(), Some(ping.event_id()));
    remote.wait_for("done").await;
    assert!(remote.wait().await, "the far side exits cleanly");
    bus.wait_until_idle(None).await;
    bridge.close().await.expect("close");
    assert_eq!(log.error_count(), 0);

    // The log holds both processes' records.
    let wal = dir.join("both.jsonl");
    let text = std::fs::read_to_string(&wal).expect("the log");
    assert!(
        text.contains("Remote#") && text.contains("Local#"),
        "{text}"
    );

    let output = run(&["tree", path_str(&wal)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let tree = stdout(&output);
    let roots: Vec<&str> = tree
        .lines()
        .filter(|l| l.starts_with("├── ") || l.starts_with("└── "))
        .collect();
    assert_eq!(roots.len(), 1, "one tree:\n{tree}");
    assert!(roots[0].starts_with("└── Ping#"), "{tree}");
    let child_line = tree
        .lines()
        .position(|l| l.contains("PingChild#"))
        .expect("the child is drawn");
    let depth = |l: &str| l.find("── ").unwrap_or(0);
    assert!(
        depth(tree.lines().nth(child_line).unwrap_or_default()) > depth(roots[0]),
        "the child sits under its remote parent:\n{tree}"
    );
    println!("{tree}");
}
