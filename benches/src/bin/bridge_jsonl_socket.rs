//! The JSONL file and Unix socket bridges, one process to another: events per second and
//! median/p99 latency, next to the floor of the medium and the family's own bridges (Python
//! abxbus 2.5.79), all in the same run, interleaved.
//!
//! ```text
//! cargo run --release -p bubus-benches --bin bridge_jsonl_socket -- \
//!     [--events 1000] [--rounds 3] [--poll-ms 1] [--python]
//! ```
//!
//! Each case: this process sends `--events` events one after another (each send awaited), a
//! receiving process (this binary again, or Python) takes them; the receiver reports the rate
//! from the first send to the last receipt and the median and p99 of send → handler latency
//! (both processes read the machine's clock). Every round runs every case once, in turn
//! (interleaved), and the table gives the median over the rounds, and the median of each
//! round's bridge/floor ratio.
//!
//! * `floor`: the same bytes with no bus and no bridge — JSONL: one `write` per line to a file
//!   opened `O_APPEND`, read by a thread polling the file every `--poll-ms` (the bridge's poll
//!   interval); socket: one connection, one `write_all` per line, a reader splitting lines. The
//!   floor's receiver parses each line as JSON (to find the send time), as the bridge must.
//! * `bubus`: `bubus::bridge::Bridge` over `JsonlTransport` / `UnixSocketTransport`, forwarding
//!   to a bus with one typed handler.
//! * `python`: abxbus 2.5.79's `JSONLEventBridge` / `SocketEventBridge`, sender and receiver in
//!   two Python processes (`benches/python/abxbus_bridge_bench.py`), with `--python`.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bubus_benches::bridge_probe::{Probe, now_ns};

use bubus::bridge::{Bridge, JsonlTransport, UnixSocketTransport};
use bubus::{AnyEvent, DynEvent, EventBus, EventHandle};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const CASES: &[&str] = &[
    "jsonl-floor",
    "jsonl-bubus",
    "jsonl-python",
    "socket-floor",
    "socket-bubus",
    "socket-python",
];

fn event(seq: u64) -> AnyEvent {
    EventHandle::new(
        DynEvent::new("BenchPing", json!({ "sent_ns": now_ns(), "seq": seq })).expect("event"),
    )
    .to_any()
}

/// The floor's line: a bubus event's JSON (the same bytes the bridge sends), with the send time
/// written in at send time.
struct FloorLine {
    before: String,
    after: String,
}

impl FloorLine {
    fn new() -> Self {
        let text = EventHandle::new(
            DynEvent::new("BenchPing", json!({ "sent_ns": 0, "seq": 0 })).expect("event"),
        )
        .to_any()
        .to_json_string();
        let at = text.find("\"sent_ns\":0").expect("the field");
        FloorLine {
            before: text[..at].to_owned(),
            after: text[at + "\"sent_ns\":0".len()..].to_owned(),
        }
    }

    fn line(&self) -> String {
        format!("{}\"sent_ns\":{}{}\n", self.before, now_ns(), self.after)
    }
}

fn sent_ns_of(text: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["sent_ns"].as_u64())
        .unwrap_or(0)
}

/// The receiving bus's event.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, bubus::Event)]
struct BenchPing {
    sent_ns: u64,
    seq: u64,
}

/// The receiver of `case` on `target` (a file or socket path): prints `@@ready`, takes `n`
/// events (or gives up after 60 s of silence), prints `@@result <count> <span> <p50> <p99>`.
async fn receive(case: &str, target: &str, n: u64, poll: Duration) {
    let probe = Probe::new(n);
    let record = probe.recorder();
    let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    match case {
        "jsonl-floor" => {
            // At the end of the file before `@@ready`, as the bridge's listener starts.
            let mut file = std::fs::File::open(target).expect("open");
            let at = file.seek(SeekFrom::End(0)).expect("seek");
            std::thread::spawn(move || poll_file(file, at, poll, record));
        }
        "socket-floor" => {
            let listener = tokio::net::UnixListener::bind(target).expect("bind");
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let record = record.clone();
                    tokio::spawn(async move {
                        let mut lines = tokio::io::BufReader::new(stream).lines();
                        while let Ok(Some(line)) = lines.next_line().await {
                            record(sent_ns_of(&line));
                        }
                    });
                }
            });
        }
        "jsonl-bubus" | "socket-bubus" => {
            let bridge = if case == "jsonl-bubus" {
                Bridge::new(JsonlTransport::new(target).poll_interval(poll))
            } else {
                Bridge::new(UnixSocketTransport::new(target).expect("socket path"))
            };
            let bus = EventBus::builder("BenchReceiver")
                .max_history_size(Some(1000))
                .build();
            // A typed handler: the payload is decoded once, as a user's handler would get it.
            bus.on(move |e: EventHandle<BenchPing>| record(e.sent_ns));
            bridge.on("*", bus.forwarder());
            bridge.start().await.expect("start");
            keep.push(Box::new(bridge));
            keep.push(Box::new(bus));
        }
        other => panic!("unknown receiver {other}"),
    }
    println!("@@ready");
    let _ = std::io::stdout().flush();
    println!("{}", probe.finish().await);
    let _ = std::io::stdout().flush();
    drop(keep);
}

/// The JSONL floor's reader: from the end of the file, every `poll` while nothing is new.
fn poll_file(mut file: std::fs::File, mut at: u64, poll: Duration, record: impl Fn(u64)) {
    let mut partial = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            std::thread::sleep(poll);
            let _ = file.seek(SeekFrom::Start(at));
            continue;
        }
        at += n as u64;
        let mut from = 0;
        while let Some(i) = buf[from..n].iter().position(|b| *b == b'\n') {
            partial.extend_from_slice(&buf[from..from + i]);
            record(sent_ns_of(&String::from_utf8_lossy(&partial)));
            partial.clear();
            from += i + 1;
        }
        partial.extend_from_slice(&buf[from..n]);
    }
}

/// The sender of `case`: `n` sends, each awaited.
async fn send(case: &str, target: &str, n: u64) {
    match case {
        "jsonl-floor" => {
            let floor = FloorLine::new();
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(target)
                .expect("open");
            for _ in 0..n {
                file.write_all(floor.line().as_bytes()).expect("append");
            }
        }
        "socket-floor" => {
            let floor = FloorLine::new();
            let mut stream = tokio::net::UnixStream::connect(target)
                .await
                .expect("connect");
            for _ in 0..n {
                stream
                    .write_all(floor.line().as_bytes())
                    .await
                    .expect("write");
            }
            stream.shutdown().await.expect("shutdown");
        }
        "jsonl-bubus" | "socket-bubus" => {
            let bridge = if case == "jsonl-bubus" {
                Bridge::new(JsonlTransport::new(target))
            } else {
                Bridge::new(UnixSocketTransport::new(target).expect("socket path"))
            };
            for i in 0..n {
                bridge.send(&event(i)).await.expect("send");
            }
            bridge.close().await.expect("close");
        }
        other => panic!("unknown sender {other}"),
    }
}

#[derive(Clone, Copy, Debug)]
struct Outcome {
    count: u64,
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn parse_result(line: &str) -> Option<Outcome> {
    let nums: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let (count, span) = (*nums.first()?, *nums.get(1)?);
    Some(Outcome {
        count,
        per_sec: if span == 0 {
            0.0
        } else {
            count as f64 / (span as f64 / 1e9)
        },
        p50_ms: *nums.get(2)? as f64 / 1e6,
        p99_ms: *nums.get(3)? as f64 / 1e6,
    })
}

/// Where case `case` of round `round` runs: a fresh file or socket path.
fn target_for(dir: &Path, case: &str, round: usize) -> PathBuf {
    let path = if case.starts_with("jsonl") {
        dir.join(format!("{case}-{round}.jsonl"))
    } else {
        dir.join(format!("{case}-{round}.sock"))
    };
    if case.starts_with("jsonl") {
        std::fs::write(&path, "").expect("create the file");
    }
    path
}

fn python() -> Option<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(root.join("interop/env.sh"))
        .arg("python-abxbus")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let python = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!python.is_empty()).then_some(python)
}

/// Runs one case: the receiver process, then the sends from here (or a Python sender).
fn run_case(
    runtime: &tokio::runtime::Runtime,
    case: &str,
    target: &Path,
    n: u64,
    poll: Duration,
    python: Option<&str>,
) -> Option<Outcome> {
    let target_str = target.to_str()?;
    let poll_ms = format!("{}", poll.as_secs_f64() * 1000.0);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/abxbus_bridge_bench.py");
    let engine = if case.starts_with("jsonl") {
        "jsonl"
    } else {
        "socket"
    };
    let mut receiver = if case.ends_with("python") {
        Command::new(python?)
            .arg(&script)
            .args([engine, target_str, "receive", &n.to_string(), &poll_ms])
            .stdout(Stdio::piped())
            .spawn()
            .ok()?
    } else {
        Command::new(std::env::current_exe().ok()?)
            .args(["--receive", case, target_str, &n.to_string(), &poll_ms])
            .stdout(Stdio::piped())
            .spawn()
            .ok()?
    };
    let mut lines = BufReader::new(receiver.stdout.take()?).lines();
    lines
        .by_ref()
        .find(|l| l.as_ref().is_ok_and(|l| l.contains("@@ready")))?
        .ok()?;
    if case.ends_with("python") {
        let status = Command::new(python?)
            .arg(&script)
            .args([engine, target_str, "send", &n.to_string(), &poll_ms])
            .status()
            .ok()?;
        if !status.success() {
            let _ = receiver.kill();
            return None;
        }
    } else {
        runtime.block_on(send(case, target_str, n));
    }
    let line = lines.find_map(|l| l.ok().filter(|l| l.contains("@@result")))?;
    let _ = receiver.wait();
    parse_result(&line)
}

fn median(mut xs: Vec<f64>) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if args.first().map(String::as_str) == Some("--receive") {
        let n = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(0);
        let poll_ms: f64 = args.get(4).and_then(|p| p.parse().ok()).unwrap_or(1.0);
        let poll = Duration::from_secs_f64(poll_ms / 1000.0);
        runtime.block_on(receive(&args[1], &args[2], n, poll));
        return;
    }
    let n: u64 = arg(&args, "--events", 1000);
    let rounds: usize = arg(&args, "--rounds", 3).max(1);
    let poll = Duration::from_secs_f64(arg(&args, "--poll-ms", 1.0f64) / 1000.0);
    let python = if args.iter().any(|a| a == "--python") {
        let p = python();
        if p.is_none() {
            eprintln!("no Python abxbus (interop/env.sh python-abxbus failed): skipping its cases");
        }
        p
    } else {
        None
    };
    // Short: a socket path has a 90-byte limit.
    let dir = PathBuf::from(format!("/tmp/bbjs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");

    let cases: Vec<&str> = CASES
        .iter()
        .copied()
        .filter(|c| !c.ends_with("python") || python.is_some())
        .collect();
    let mut results: Vec<Vec<Option<Outcome>>> = vec![Vec::new(); cases.len()];
    for round in 0..rounds {
        for (i, case) in cases.iter().enumerate() {
            let target = target_for(&dir, case, round);
            let outcome = run_case(&runtime, case, &target, n, poll, python.as_deref());
            eprintln!("round {round} {case}: {outcome:?}");
            results[i].push(outcome);
            let _ = std::fs::remove_file(&target);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "{n} events sent one after another, process to process; JSONL polled every {poll:?}; \
         median of {rounds} interleaved rounds\n"
    );
    println!("| case | received | events/s | median latency | p99 latency | time/event vs floor |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (i, case) in cases.iter().enumerate() {
        let ok: Vec<Outcome> = results[i].iter().flatten().copied().collect();
        if ok.is_empty() {
            println!("| {case} | failed | | | | |");
            continue;
        }
        let floor = cases
            .iter()
            .position(|c| *c == format!("{}-floor", &case[..case.find('-').unwrap_or(0)]));
        // Per round: the floor's rate over this case's, so the load of that moment cancels.
        let ratio = floor.map(|f| {
            median(
                results[i]
                    .iter()
                    .zip(&results[f])
                    .filter_map(|(c, fl)| Some(fl.as_ref()?.per_sec / c.as_ref()?.per_sec))
                    .collect(),
            )
        });
        println!(
            "| {case} | {}/{n} | {:.0} | {:.3} ms | {:.3} ms | {} |",
            median(ok.iter().map(|o| o.count as f64).collect()),
            median(ok.iter().map(|o| o.per_sec).collect()),
            median(ok.iter().map(|o| o.p50_ms).collect()),
            median(ok.iter().map(|o| o.p99_ms).collect()),
            ratio.map_or_else(String::new, |r| format!("{r:.2}×")),
        );
    }
}
