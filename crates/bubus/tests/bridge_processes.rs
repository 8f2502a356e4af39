//! Bridges between separate OS processes (this test binary started again in a role): what the
//! family lacks — ids and lineage kept, results back, resume after a SIGKILL with a cursor —
//! and the two-way wiring of two processes over one JSONL file and one socket path.
#![cfg(unix)]

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus::bridge::{
    BoxFuture, Bridge, Claim, DedupStore, JsonlTransport, Transport, TransportError,
    UnixSocketTransport,
};
use bubus::{AnyEvent, DynEvent, EventBus};
use bubus_test_support::roles::{self, RoleChild};
use parking_lot::Mutex;
use serde_json::{Value, json};
use uuid::Uuid;

const ENTRY: &str = "role_entry";
const POLL: Duration = Duration::from_millis(5);

fn scratch(tag: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "bbp-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn transport(args: &Value) -> Arc<dyn Transport> {
    let path = args["path"].as_str().expect("path");
    match args["transport"].as_str() {
        Some("socket") => Arc::new(UnixSocketTransport::new(path).expect("socket path")),
        _ => {
            let mut t = JsonlTransport::new(path).poll_interval(POLL);
            if let Some(cursor) = args["cursor"].as_str() {
                t = t.cursor_file(cursor);
            }
            Arc::new(t)
        }
    }
}

/// An append-only record of handled events: one line per handler run, written with one call.
#[derive(Clone)]
struct Out(Arc<Mutex<std::fs::File>>);

impl Out {
    fn open(path: &str) -> Out {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open out");
        Out(Arc::new(Mutex::new(f)))
    }

    fn write(&self, line: &str) {
        self.0
            .lock()
            .write_all(format!("{line}\n").as_bytes())
            .expect("write out");
    }
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The receiver's de-duplication consults its own effects (the out file): the idempotent
/// consumer. An event whose effect was written survives a SIGKILL between the effect and the
/// cursor's save, and is not handled again.
#[derive(Debug)]
struct EffectsDedup {
    ids: Mutex<HashSet<Uuid>>,
}

impl EffectsDedup {
    fn load(out: &Path) -> EffectsDedup {
        let ids = read_lines(out)
            .iter()
            .filter_map(|l| l.split(' ').next().and_then(|id| Uuid::parse_str(id).ok()))
            .collect();
        EffectsDedup {
            ids: Mutex::new(ids),
        }
    }
}

impl DedupStore for EffectsDedup {
    fn claim(&self, event_id: Uuid) -> BoxFuture<'_, Result<Claim, TransportError>> {
        let claim = if self.ids.lock().contains(&event_id) {
            Claim::Done
        } else {
            Claim::Won
        };
        Box::pin(async move { Ok(claim) })
    }

    fn confirm(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        self.ids.lock().insert(event_id);
        Box::pin(async { Ok(()) })
    }

    fn release(&self, _event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async { Ok(()) })
    }
}

/// The child side: what runs in the other process.
#[test]
fn role_entry() {
    let Some((role, args)) = roles::current() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    match role.as_str() {
        "receiver" => rt.block_on(receiver_role(args)),
        "echo" => rt.block_on(echo_role(args)),
        other => panic!("unknown role {other}"),
    }
}

async fn receiver_role(args: Value) {
    let out_path = args["out"].as_str().expect("out").to_owned();
    let out = Out::open(&out_path);
    let already = read_lines(Path::new(&out_path)).len();
    let bus = EventBus::new("Receiver");
    let handled = Arc::new(AtomicUsize::new(already));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    {
        let out = out.clone();
        let handled = Arc::clone(&handled);
        let bus2 = bus.clone();
        bus.on_pattern("Ping", move |e: AnyEvent| {
            let json = e.to_json();
            let n = json["n"].as_i64().unwrap_or(-1);
            out.write(&format!(
                "{} {n} {} {}",
                e.event_id(),
                json["event_parent_id"].as_str().unwrap_or("-"),
                e.event_path().join(",")
            ));
            if json["spawn_child"] == true {
                // Dispatched inside the handler: a child of the remote event, sent back.
                let _ = bus2.dispatch(DynEvent::new("PingChild", json!({"of": n})).expect("event"));
            }
            let total = handled.fetch_add(1, Ordering::SeqCst) + 1;
            if total % 250 == 0 {
                roles::report(format_args!("handled {total}"));
            }
            json!({"pid": std::process::id(), "n": n})
        });
    }
    bus.on_pattern("Done", move |_e: AnyEvent| {
        let _ = done_tx.send(());
    });
    let mut builder = Bridge::builder_arc(transport(&args));
    if args["results_back"] == true {
        builder = builder.results_back();
    }
    if args["dedup_from_out"] == true {
        builder = builder.dedup(Arc::new(EffectsDedup::load(Path::new(&out_path))));
    }
    let bridge = builder.build();
    bridge.attach(&bus);
    bridge.start().await.expect("start");
    roles::report("ready");
    done_rx.recv().await;
    bus.wait_until_idle(None).await;
    bridge.close().await.expect("close");
    roles::report(format_args!("done {}", handled.load(Ordering::SeqCst)));
}

async fn echo_role(args: Value) {
    let out = Out::open(args["out"].as_str().expect("out"));
    let count = args["count"].as_u64().expect("count");
    let listen = args["listen"] != false;
    let bus = EventBus::builder("EchoB").max_history_size(None).build();
    let (fin_tx, mut fin_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    {
        let out = out.clone();
        bus.on_pattern("Ping", move |e: AnyEvent| {
            let j = e.to_json();
            out.write(&format!("{} {} {}", j["origin"], j["n"], e.event_id()));
        });
    }
    bus.on_pattern("Fin", move |e: AnyEvent| {
        if e.to_json()["origin"] == "A" {
            let _ = fin_tx.send(());
        }
    });
    let bridge = Bridge::builder_arc(transport(&args)).build();
    bridge.attach(&bus);
    if listen {
        bridge.start().await.expect("start");
    }
    roles::report("ready");
    for n in 0..count {
        bus.dispatch(DynEvent::new("Ping", json!({"origin": "B", "n": n})).expect("event"))
            .expect("dispatch")
            .await
            .expect("sent");
    }
    bus.dispatch(DynEvent::new("Fin", json!({"origin": "B"})).expect("event"))
        .expect("dispatch")
        .await
        .expect("sent");
    if listen {
        fin_rx.recv().await;
        bus.wait_until_idle(None).await;
    }
    bridge.close().await.expect("close");
    roles::report(format_args!("loops {}", bridge.metrics().loops));
}

/// The parent side of the fault test: sends `total` Pings (then Done) through a JSONL file
/// while the receiver is SIGKILLed and restarted twice. Returns the receiver's out lines.
async fn jsonl_under_kills(total: usize, cursor: bool) -> (Vec<String>, usize) {
    let dir = scratch("fault");
    let path = dir.join("events.jsonl");
    let out = dir.join("handled.txt");
    let mut args = json!({
        "transport": "jsonl",
        "path": path,
        "out": out,
        "dedup_from_out": cursor,
    });
    if cursor {
        args["cursor"] = json!(dir.join("receiver.cursor"));
    }
    let mut child = RoleChild::spawn(ENTRY, "receiver", args.clone());
    child.wait_for("ready").await;

    let sender_bus = EventBus::builder("Sender").max_history_size(None).build();
    let sender = Bridge::new(JsonlTransport::new(&path));
    sender.attach(&sender_bus);
    let send_bus = sender_bus.clone();
    let mut sending = tokio::spawn(async move {
        for n in 0..total {
            send_bus
                .dispatch(DynEvent::new("Ping", json!({"n": n})).expect("event"))
                .expect("dispatch")
                .await
                .expect("sent");
        }
    });

    let mut restarts = 0;
    let mut sent = false;
    'kills: for kill_at in [total / 5, total / 2] {
        loop {
            // Without a cursor, a receiver restarted once everything is written starts at the
            // file's end and never reaches another mark: no further kill then. (With one, it
            // reads on from its cursor and reaches every mark.)
            if sent && restarts > 0 {
                break 'kills;
            }
            tokio::select! {
                report = child.wait_for("handled ") => {
                    let n: usize = report["handled ".len()..].parse().expect("count");
                    if n >= kill_at {
                        break;
                    }
                }
                done = &mut sending, if !cursor && !sent => {
                    done.expect("sender");
                    sent = true;
                }
            }
        }
        child.kill().await;
        child = RoleChild::spawn(ENTRY, "receiver", args.clone());
        child.wait_for("ready").await;
        restarts += 1;
    }
    if !sent {
        sending.await.expect("sender");
    }
    sender_bus
        .dispatch(DynEvent::new("Done", json!({})).expect("event"))
        .expect("dispatch")
        .await
        .expect("sent");
    child.wait_for("done").await;
    assert!(child.wait().await, "receiver exits cleanly");
    sender.close().await.expect("close");
    (read_lines(&out), restarts)
}

fn tally(lines: &[String]) -> (usize, usize) {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for l in lines {
        *seen.entry(l.split(' ').nth(1).expect("n")).or_default() += 1;
    }
    let distinct = seen.len();
    let duplicates = lines.len() - distinct;
    (distinct, duplicates)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_with_a_cursor_loses_nothing_and_handles_nothing_twice_across_sigkills() {
    const TOTAL: usize = 10_000;
    let (lines, restarts) = jsonl_under_kills(TOTAL, true).await;
    let (distinct, duplicates) = tally(&lines);
    println!(
        "jsonl with cursor: {TOTAL} sent, {restarts} SIGKILL restarts, {distinct} handled, {} lost, {duplicates} duplicates",
        TOTAL - distinct
    );
    assert_eq!(restarts, 2);
    assert_eq!(distinct, TOTAL, "0 lost");
    assert_eq!(duplicates, 0, "0 duplicates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsonl_without_a_cursor_loses_what_was_written_while_the_receiver_was_down() {
    const TOTAL: usize = 10_000;
    let (lines, restarts) = jsonl_under_kills(TOTAL, false).await;
    let (distinct, duplicates) = tally(&lines);
    println!(
        "jsonl without cursor (the family's behaviour): {TOTAL} sent, {restarts} SIGKILL restarts, {distinct} handled, {} lost, {duplicates} duplicates",
        TOTAL - distinct
    );
    // A restarted listener starts at the end of the file: what it had not handled is gone.
    assert!(distinct < TOTAL, "something is lost without a cursor");
    assert_eq!(duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_lineage_and_results_cross_processes() {
    let dir = scratch("results");
    let path = dir.join("events.jsonl");
    let out = dir.join("handled.txt");
    let mut child = RoleChild::spawn(
        ENTRY,
        "receiver",
        json!({"transport": "jsonl", "path": path, "out": out, "results_back": true}),
    );
    child.wait_for("ready").await;
    let bus = EventBus::builder("Sender").max_history_size(None).build();
    let bridge = Bridge::builder(JsonlTransport::new(&path).poll_interval(POLL))
        .results_back()
        .reply_timeout(Duration::from_secs(30))
        .build();
    bridge.attach(&bus);
    bridge.start().await.expect("start");
    let child_event = std::future::IntoFuture::into_future(bus.expect_pattern("PingChild"));

    let sent = bus
        .dispatch(DynEvent::new("Ping", json!({"n": 7, "spawn_child": true})).expect("event"))
        .expect("dispatch");
    let results = sent.event_results_list().await.expect("remote results");
    assert_eq!(results, [json!({"pid": child.id().expect("pid"), "n": 7})]);

    // The remote handler's child came back with its remote parent: one tree.
    let grandchild = child_event.await.expect("child event");
    assert_eq!(grandchild.event_parent_id(), Some(sent.event_id()));

    let line = read_lines(&out).pop().expect("handled");
    let parts: Vec<&str> = line.split(' ').collect();
    assert_eq!(
        parts[0],
        sent.event_id().to_string(),
        "the receiver kept the id"
    );
    let path_there: Vec<&str> = parts[3].split(',').collect();
    assert_eq!(path_there[0], bus.label(), "the sender's path kept");
    assert!(path_there.last().expect("path").starts_with("Receiver#"));

    bus.dispatch(DynEvent::new("Done", json!({})).expect("event"))
        .expect("dispatch")
        .await
        .expect("sent");
    child.wait_for("done").await;
    bridge.close().await.expect("close");
}

/// Two processes, each bus attached both ways to one medium: every event is handled once by
/// each bus that can receive it, and no echo is processed again.
async fn echo(transport_kind: &str, path: PathBuf, child_listens: bool) {
    const K: usize = 50;
    let dir = path.parent().expect("dir").to_owned();
    let out = dir.join("b-handled.txt");
    let a = EventBus::builder("EchoA").max_history_size(None).build();
    let seen_a = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let seen = Arc::clone(&seen_a);
        a.on_pattern("Ping", move |e: AnyEvent| {
            let j = e.to_json();
            seen.lock().push(format!("{} {}", j["origin"], j["n"]));
        });
    }
    let fin_from_b = std::future::IntoFuture::into_future(a.expect_pattern("Fin"));
    let t: Arc<dyn Transport> = if transport_kind == "socket" {
        Arc::new(UnixSocketTransport::new(path.to_str().expect("utf-8")).expect("path"))
    } else {
        Arc::new(JsonlTransport::new(&path).poll_interval(POLL))
    };
    let bridge = Bridge::builder_arc(t).build();
    bridge.attach(&a);
    bridge.start().await.expect("start");
    let mut child = RoleChild::spawn(
        ENTRY,
        "echo",
        json!({"transport": transport_kind, "path": path, "out": out, "count": K, "listen": child_listens}),
    );
    child.wait_for("ready").await;
    for n in 0..K {
        a.dispatch(DynEvent::new("Ping", json!({"origin": "A", "n": n})).expect("event"))
            .expect("dispatch")
            .await
            .expect("sent");
    }
    let fin = fin_from_b.await.expect("B finished");
    assert_eq!(fin.to_json()["origin"], "B");
    a.dispatch(DynEvent::new("Fin", json!({"origin": "A"})).expect("event"))
        .expect("dispatch")
        .await
        .expect("sent");
    let loops_b = child.wait_for("loops").await;
    assert!(child.wait().await, "B exits cleanly");
    a.wait_until_idle(None).await;
    // Each side sees its own events come back on the shared medium and skips them; the last
    // echoes may still be on their way when B exits, and close stops listening.
    bubus_test_support::time::within_real(bridge.wait_metrics(|m| m.loops >= K as u64)).await;
    bridge.close().await.expect("close");

    let mut on_a = seen_a.lock().clone();
    on_a.sort();
    let expected_a: Vec<String> = {
        let mut v: Vec<String> = (0..K)
            .flat_map(|n| [format!("\"A\" {n}"), format!("\"B\" {n}")])
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        on_a, expected_a,
        "A handled its own and B's events once each"
    );
    let on_b = read_lines(&out);
    let (own, from_a) = on_b
        .iter()
        .partition::<Vec<_>, _>(|l| l.starts_with("\"B\""));
    assert_eq!(own.len(), K, "B handled its own events once");
    if child_listens {
        assert_eq!(from_a.len(), K, "B handled A's events once");
        let ids: HashSet<&str> = on_b.iter().filter_map(|l| l.split(' ').nth(2)).collect();
        assert_eq!(ids.len(), 2 * K);
    } else {
        assert!(
            from_a.is_empty(),
            "only one process listens on a socket path"
        );
    }
    println!(
        "echo over {transport_kind}: A {:?}; B {loops_b}",
        bridge.metrics()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_way_wiring_over_one_jsonl_file_handles_each_event_once_per_bus() {
    echo("jsonl", scratch("echo").join("events.jsonl"), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_way_wiring_over_one_socket_path_handles_each_event_once_per_bus() {
    // The family's socket bridge uses one path both ways: one process listens on it, and every
    // process (the listener too) sends to it.
    echo("socket", scratch("echo").join("e.sock"), false).await;
}
