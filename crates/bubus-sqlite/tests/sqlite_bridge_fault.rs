//! Fault tests of the SQLite bridge across OS processes: a receiving process is SIGKILLed and
//! restarted while events stream through one bridge table.
//!
//! The receiver is this test binary run again (`fault_receiver_process`, ignored unless the
//! `BUBUS_FAULT_DB` variable is set): a bus whose handler appends each event's number to a file,
//! behind an SQLite bridge, printing `@@ready` once it listens and `@@progress COUNT N` for each
//! event it handles.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use std::collections::HashSet;
use std::sync::Arc;

use bubus::bridge::{BoxFuture, Bridge, Claim, DedupStore, TransportError};
use bubus::{AnyEvent, DynEvent, EventBus, EventHandle};
use bubus_sqlite::{BridgeTable, SqliteTransport};
use serde_json::json;
use uuid::Uuid;

const EVENTS: u64 = 10_000;

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("bubus-sqlite-fault-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The receiving process (run by the tests below, not on its own).
#[test]
#[ignore = "run as a child process by the fault tests"]
fn fault_receiver_process() {
    let (Ok(db), Ok(out)) = (
        std::env::var("BUBUS_FAULT_DB"),
        std::env::var("BUBUS_FAULT_OUT"),
    ) else {
        return;
    };
    let consumer = std::env::var("BUBUS_FAULT_CONSUMER").ok();
    let with_cursor = consumer.is_some();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut transport = SqliteTransport::new(&db).poll_interval(Duration::from_millis(5));
        if let Some(name) = consumer {
            transport = transport.consumer(name);
        }
        let bus = EventBus::new("FaultReceiver");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&out)
            .unwrap();
        // With a cursor, the dedup record is where the effect is: the ids in the output file
        // (what earlier receivers handled) and what this one handles.
        let effects = Arc::new(Effects::load(Path::new(&out)));
        let dedup = Arc::clone(&effects);
        let mut handled = 0u64;
        let handler = std::sync::Mutex::new(move |event: AnyEvent| {
            let n = event.to_json()["n"].as_u64().unwrap();
            let mut ids = effects.ids.lock().unwrap();
            // One write per line: whole lines, even if the process is killed.
            file.write_all(format!("{n} {}\n", event.event_id()).as_bytes())
                .unwrap();
            ids.insert(event.event_id());
            handled += 1;
            println!("@@progress {handled} {n}");
        });
        bus.on_pattern("FaultPing", move |event: AnyEvent| {
            (handler.lock().unwrap())(event);
        });
        let bridge = if with_cursor {
            Bridge::builder(transport).dedup(dedup).build()
        } else {
            Bridge::new(transport)
        };
        bridge.on("*", bus.forwarder());
        bridge.start().await.unwrap();
        println!("@@ready");
        std::future::pending::<()>().await;
    });
}

/// The event ids whose effect (a line of the output file) exists: a `DedupStore` kept where the
/// effect is, so an event redelivered after a kill is not handled twice.
#[derive(Debug)]
struct Effects {
    ids: std::sync::Mutex<HashSet<Uuid>>,
}

impl Effects {
    fn load(out: &Path) -> Effects {
        let ids = std::fs::read_to_string(out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(1)?.parse().ok())
            .collect();
        Effects {
            ids: std::sync::Mutex::new(ids),
        }
    }
}

impl DedupStore for Effects {
    fn claim(&self, event_id: Uuid) -> BoxFuture<'_, Result<Claim, TransportError>> {
        let claim = if self.ids.lock().unwrap().contains(&event_id) {
            Claim::Done
        } else {
            Claim::Won
        };
        Box::pin(async move { Ok(claim) })
    }

    /// The handler recorded it with its effect.
    fn confirm(&self, _event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async { Ok(()) })
    }

    fn release(&self, _event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async { Ok(()) })
    }
}

struct Receiver {
    child: Child,
    /// Its stdout, line by line, read by a thread of its own so the child never waits on a
    /// full pipe.
    lines: std::sync::mpsc::Receiver<String>,
}

impl Receiver {
    fn start(db: &Path, out: &Path, consumer: Option<&str>) -> Receiver {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args([
                "--exact",
                "fault_receiver_process",
                "--ignored",
                "--nocapture",
            ])
            .env("BUBUS_FAULT_DB", db)
            .env("BUBUS_FAULT_OUT", out)
            .stdout(Stdio::piped());
        if let Some(name) = consumer {
            command.env("BUBUS_FAULT_CONSUMER", name);
        }
        let mut child = command.spawn().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || read_lines(stdout, &tx));
        let mut receiver = Receiver { child, lines };
        receiver.wait_line(|l| l == "@@ready");
        receiver
    }

    /// Reads the child's output until a line matches.
    fn wait_line(&mut self, matches: impl Fn(&str) -> bool) -> String {
        loop {
            let line = self.lines.recv().expect("the receiver exited");
            if matches(&line) {
                return line;
            }
        }
    }

    /// Waits until it handled at least `n` events since it started.
    fn wait_handled(&mut self, n: u64) {
        self.wait_line(|l| {
            l.strip_prefix("@@progress ")
                .and_then(|c| c.split(' ').next()?.parse::<u64>().ok())
                .is_some_and(|c| c >= n)
        });
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn read_lines(stdout: BufReader<ChildStdout>, tx: &std::sync::mpsc::Sender<String>) {
    for line in stdout.lines() {
        let Ok(line) = line else { return };
        if tx.send(line.trim().to_owned()).is_err() {
            return;
        }
    }
}

fn ping(n: u64) -> AnyEvent {
    EventHandle::new(DynEvent::new("FaultPing", json!({"n": n})).unwrap()).to_any()
}

fn handled(out: &Path) -> Vec<u64> {
    std::fs::read_to_string(out)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').next()?.parse().ok())
        .collect()
}

/// What each receiver handled, split at the kill markers.
fn runs(out: &Path) -> Vec<Vec<u64>> {
    let text = std::fs::read_to_string(out).unwrap();
    text.split("kill\n")
        .map(|run| {
            run.lines()
                .map(|l| l.split(' ').next().unwrap().parse().unwrap())
                .collect()
        })
        .collect()
}

/// Every event is handled exactly once by the receiver's handlers although the receiving
/// process is SIGKILLed twice mid-stream: its saved cursor resumes after the last event acked
/// in order (0 lost), and the events a killed process had handled but not yet acked — delivered
/// again, and only those, first — are recognised by a `DedupStore` kept where the effect is (the
/// output file's ids), so they are not handled twice (0 duplicates).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_twice_handles_every_event_exactly_once_with_a_saved_cursor() {
    let dir = temp_dir("cursor");
    let db = dir.join("bridge.sqlite3");
    let out = dir.join("handled.txt");
    BridgeTable::open(&db, "abxbus_events").unwrap();

    let (d, o) = (db.clone(), out.clone());
    let receiver = tokio::task::spawn_blocking(move || Receiver::start(&d, &o, Some("fault")))
        .await
        .unwrap();
    let sender = Bridge::new(SqliteTransport::new(&db));
    let sending = tokio::spawn(async move {
        for n in 0..EVENTS {
            sender.send(&ping(n)).await.unwrap();
        }
        sender.close().await.unwrap();
    });
    let (d, o) = (db.clone(), out.clone());
    let kills = tokio::task::spawn_blocking(move || {
        let mut receiver = receiver;
        for at in [2_000, 3_000] {
            receiver.wait_handled(at);
            receiver.kill();
            // The receiver is dead: the marker goes between its lines and its successor's.
            std::fs::OpenOptions::new()
                .append(true)
                .open(&o)
                .unwrap()
                .write_all(b"kill\n")
                .unwrap();
            receiver = Receiver::start(&d, &o, Some("fault"));
        }
        receiver
    });
    sending.await.unwrap();
    let mut receiver = kills.await.unwrap();
    // Wait until every number was handled.
    let o = out.clone();
    receiver = tokio::task::spawn_blocking(move || {
        let mut seen: std::collections::HashSet<u64> = handled(&o).into_iter().collect();
        while (seen.len() as u64) < EVENTS {
            let line = receiver.wait_line(|l| l.starts_with("@@progress "));
            seen.insert(line.split(' ').nth(2).unwrap().parse().unwrap());
        }
        receiver
    })
    .await
    .unwrap();
    receiver.kill();

    let all = handled(&out);
    let mut unique = all.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique, (0..EVENTS).collect::<Vec<_>>(), "0 lost");
    let duplicates = all.len() - unique.len();
    println!(
        "handled {} times for {EVENTS} events: {duplicates} repeated",
        all.len()
    );
    assert_eq!(duplicates, 0, "0 duplicates");

    // Nothing acked is delivered again: a restarted receiver repeats only the events the killed
    // one had handled but not yet acked in order — the tail of what it handled — and it repeats
    // them first, in order, before anything new.
    let runs = runs(&out);
    assert_eq!(runs.len(), 3);
    let mut before: Vec<u64> = Vec::new();
    for pair in runs.windows(2) {
        let (killed, restarted) = (&pair[0], &pair[1]);
        before.extend(killed);
        let repeated: Vec<u64> = restarted
            .iter()
            .copied()
            .take_while(|n| before.contains(n))
            .collect();
        assert!(
            killed.ends_with(&repeated),
            "repeated {repeated:?} are not the tail of the killed run"
        );
        assert!(
            restarted[repeated.len()..]
                .iter()
                .all(|n| !before.contains(n)),
            "an event handled before the kill came again later"
        );
        // Bounded by what can be in flight (the transport pauses reading at 1 024 unacked rows).
        assert!(repeated.len() <= 1_024, "{}", repeated.len());
    }
}

/// Without a saved cursor (the family's behaviour) a restarted receiver starts at the newest
/// row: what was written while it was down is lost — here exactly the 100 events sent then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_saved_cursor_what_is_written_while_down_is_lost() {
    let dir = temp_dir("plain");
    let db = dir.join("bridge.sqlite3");
    let out = dir.join("handled.txt");
    BridgeTable::open(&db, "abxbus_events").unwrap();
    let sender = Bridge::new(SqliteTransport::new(&db));

    let (d, o) = (db.clone(), out.clone());
    let mut receiver = tokio::task::spawn_blocking(move || Receiver::start(&d, &o, None))
        .await
        .unwrap();
    for n in 0..250 {
        sender.send(&ping(n)).await.unwrap();
    }
    let (d, o) = (db.clone(), out.clone());
    receiver = tokio::task::spawn_blocking(move || {
        receiver.wait_handled(250);
        receiver.kill();
        receiver = Receiver::start(&d, &o, None);
        receiver
    })
    .await
    .unwrap();
    // Written while the first receiver was dead and before the second one listened? No: the
    // second one is up; these go to it. The 100 below are written while none runs.
    receiver.kill();
    for n in 250..350 {
        sender.send(&ping(n)).await.unwrap();
    }
    let (d, o) = (db.clone(), out.clone());
    let mut receiver = tokio::task::spawn_blocking(move || Receiver::start(&d, &o, None))
        .await
        .unwrap();
    for n in 350..600 {
        sender.send(&ping(n)).await.unwrap();
    }
    receiver = tokio::task::spawn_blocking(move || {
        receiver.wait_handled(250);
        receiver
    })
    .await
    .unwrap();
    receiver.kill();
    sender.close().await.unwrap();

    let mut seen = handled(&out);
    seen.sort_unstable();
    let expected: Vec<u64> = (0..250).chain(350..600).collect();
    assert_eq!(
        seen, expected,
        "the 100 events sent while no receiver ran are lost"
    );
}
