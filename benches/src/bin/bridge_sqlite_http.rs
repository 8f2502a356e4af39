//! The SQLite and HTTP bridges, one process to another: events per second and median/p99
//! latency, next to the family's figure for the same transport and the raw floor of the medium.
//!
//! ```text
//! cargo run --release -p bubus-benches --bin bridge_sqlite_http [-- --events 1000 --poll-ms 1]
//! ```
//!
//! Each row sends `--events` events one after another (each send awaited: committed, or
//! answered `202`) from this process to a receiving process (this binary run again); the
//! receiver notes, per event, the time from just before the send to its handler (both clocks are
//! the machine's). Events/s is events over the time from the first send to the last receipt.
//!
//! * `bridge`: `bubus::bridge::Bridge` over `SqliteTransport` (plain, `--poll-ms` polling) /
//!   `HttpTransport`, into a bus with one handler;
//! * `floor`: the same bytes with no bus and no bridge — an `INSERT` into a table with an integer
//!   key and a `SELECT` by key polled at the same interval; a bare reqwest POST to a bare axum
//!   handler;
//! * `family`: abxbus 2.5.79 (Python) measuring itself as its own tests do (sender and listener in
//!   one process, 1 000 sequential emits, ms/event; see `interop/python/abxbus25_bridge_latency.py`),
//!   when `interop/env.sh python-abxbus` can provide it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bubus::bridge::Bridge;
use bubus::{AnyEvent, DynEvent, EventBus, EventHandle};
use bubus_http::{HttpTransport, ListenerOptions, RetryPolicy};
use bubus_sqlite::SqliteTransport;
use bubus_sqlite::rusqlite::{self, params};
use serde_json::{Value, json};
use tokio::sync::mpsc;

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

#[derive(Clone, Debug)]
struct Args {
    events: usize,
    poll: Duration,
}

fn parse_args() -> (Args, Vec<String>) {
    let mut args = Args {
        events: 1000,
        poll: Duration::from_millis(1),
    };
    let mut rest = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--events" => args.events = it.next().and_then(|v| v.parse().ok()).unwrap_or(1000),
            "--poll-ms" => {
                args.poll = Duration::from_secs_f64(
                    it.next().and_then(|v| v.parse::<f64>().ok()).unwrap_or(1.0) / 1000.0,
                );
            }
            _ => rest.push(a),
        }
    }
    (args, rest)
}

fn payload(n: usize) -> Value {
    json!({"n": n, "sent_ns": now_ns(), "label": format!("bench {n}")})
}

/// The receiving process: prints `ready` (for HTTP, `ready PORT` with the port it bound: it
/// listens on port 0, so the system picks a free one and nothing can take it in between), then
/// one JSON line with the latencies once it has `events` events.
async fn receive(kind: &str, target: &str, args: &Args) {
    let (tx, mut rx) = mpsc::unbounded_channel::<u64>();
    let n = args.events;
    let mut keep: Vec<Box<dyn std::any::Any>> = Vec::new();
    let mut port = None;
    match kind {
        "sqlite-bridge" | "http-bridge" => {
            let bus = EventBus::builder("BenchReceiver")
                .max_history_size(None)
                .build();
            bus.on_pattern("BenchPing", move |e: AnyEvent| {
                let sent = e.to_json()["sent_ns"].as_u64().unwrap_or(0);
                let _ = tx.send(now_ns().saturating_sub(sent));
            });
            let (bridge, http) = if kind == "sqlite-bridge" {
                let sqlite = SqliteTransport::new(target).poll_interval(args.poll);
                (Bridge::new(sqlite), None)
            } else {
                // A clone shares the listener: it reads back the port the system picked.
                let http = HttpTransport::new().listen_on(ListenerOptions::new().path("/events"));
                (Bridge::new(http.clone()), Some(http))
            };
            bridge.on("*", bus.forwarder());
            bridge.start().await.expect("listen");
            if let Some(http) = http {
                let url = http.listen_url().await.expect("listening");
                port = url_port(&url);
            }
            keep.push(Box::new(bridge));
            keep.push(Box::new(bus));
        }
        "sqlite-floor" => {
            let conn = rusqlite::Connection::open(target).expect("open");
            conn.busy_timeout(Duration::from_secs(30)).expect("busy");
            let poll = args.poll;
            std::thread::spawn(move || {
                let mut last: i64 = conn
                    .query_row("SELECT COALESCE(MAX(id), 0) FROM floor", [], |r| r.get(0))
                    .unwrap_or(0);
                let mut query = conn
                    .prepare("SELECT id, sent_ns, body FROM floor WHERE id > ?1 ORDER BY id")
                    .expect("prepare");
                loop {
                    let rows: Vec<(i64, i64, String)> = query
                        .query_map(params![last], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                        .expect("query")
                        .filter_map(Result::ok)
                        .collect();
                    for (id, sent, body) in rows {
                        last = id;
                        std::hint::black_box(body);
                        let sent = u64::try_from(sent).unwrap_or(0);
                        if tx.send(now_ns().saturating_sub(sent)).is_err() {
                            return;
                        }
                    }
                    std::thread::sleep(poll);
                }
            });
        }
        "http-floor" => {
            let socket = tokio::net::TcpListener::bind(("127.0.0.1", 0))
                .await
                .expect("bind");
            port = Some(socket.local_addr().expect("bound").port());
            let app = axum::Router::new().fallback(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let tx = tx.clone();
                    async move {
                        std::hint::black_box(body);
                        let sent = headers
                            .get("x-sent-ns")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.parse::<u64>().ok())
                            .unwrap_or(0);
                        let _ = tx.send(now_ns().saturating_sub(sent));
                        axum::http::StatusCode::ACCEPTED
                    }
                },
            );
            tokio::spawn(async move { axum::serve(socket, app).await });
        }
        other => panic!("unknown receiver {other}"),
    }
    match port {
        Some(port) => println!("ready {port}"),
        None => println!("ready"),
    }
    let _ = std::io::stdout().flush();
    let mut latencies = Vec::with_capacity(n);
    let mut last = 0;
    while latencies.len() < n {
        let Some(l) = rx.recv().await else { break };
        latencies.push(l);
        last = now_ns();
    }
    println!("{}", json!({"latencies_ns": latencies, "last_ns": last}));
    let _ = std::io::stdout().flush();
    drop(keep);
}

struct Row {
    transport: &'static str,
    what: &'static str,
    per_sec: f64,
    median_ms: f64,
    p99_ms: f64,
}

/// The port of `http://host:port/…`.
fn url_port(url: &str) -> Option<u16> {
    let authority = url.strip_prefix("http://")?.split('/').next()?;
    authority.rsplit_once(':')?.1.parse().ok()
}

/// Runs one row: starts the receiver, sends, collects.
async fn measure(kind: &'static str, args: &Args) -> Row {
    let dir = std::env::temp_dir().join(format!("bubus-bridge-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let db = dir.join("bench.sqlite3");
    let target = if kind.starts_with("sqlite") {
        db.display().to_string()
    } else {
        // The receiver listens on a port of its choosing and names it.
        "-".to_owned()
    };
    if kind == "sqlite-floor" {
        let conn = rusqlite::Connection::open(&db).expect("open");
        conn.pragma_update(None, "journal_mode", "WAL")
            .expect("wal");
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS floor (id INTEGER PRIMARY KEY, sent_ns INTEGER, body TEXT)",
        )
        .expect("create");
    }
    if kind == "sqlite-bridge" {
        bubus_sqlite::BridgeTable::open(&db, "abxbus_events").expect("create");
    }
    let mut child = Command::new(std::env::current_exe().expect("self"))
        .args([
            "--receive",
            kind,
            &target,
            "--events",
            &args.events.to_string(),
            "--poll-ms",
            &(args.poll.as_secs_f64() * 1000.0).to_string(),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the receiver");
    let mut out = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready");
    let ready = line.trim();
    let port: u16 = if kind.starts_with("http") {
        ready
            .strip_prefix("ready ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("not `ready PORT`: {ready}"))
    } else {
        assert_eq!(ready, "ready");
        0
    };

    let first = now_ns();
    match kind {
        "sqlite-bridge" | "http-bridge" => {
            let transport: Bridge = if kind == "sqlite-bridge" {
                Bridge::new(SqliteTransport::new(&db))
            } else {
                Bridge::new(
                    HttpTransport::new()
                        .retry(RetryPolicy::none())
                        .send_to(&format!("http://127.0.0.1:{port}/events"))
                        .expect("url"),
                )
            };
            for n in 0..args.events {
                let event =
                    EventHandle::new(DynEvent::new("BenchPing", payload(n)).expect("event"))
                        .to_any();
                transport.send(&event).await.expect("send");
            }
            transport.close().await.expect("close");
        }
        "sqlite-floor" => {
            let conn = rusqlite::Connection::open(&db).expect("open");
            conn.pragma_update(None, "synchronous", "NORMAL")
                .expect("sync");
            conn.busy_timeout(Duration::from_secs(30)).expect("busy");
            for n in 0..args.events {
                let event =
                    EventHandle::new(DynEvent::new("BenchPing", payload(n)).expect("event"))
                        .to_any();
                let sent = now_ns();
                conn.execute(
                    "INSERT INTO floor (sent_ns, body) VALUES (?1, ?2)",
                    params![i64::try_from(sent).unwrap_or(0), event.to_json_string()],
                )
                .expect("insert");
            }
        }
        "http-floor" => {
            let client = reqwest::Client::new();
            let url = format!("http://127.0.0.1:{port}/events");
            for n in 0..args.events {
                let event =
                    EventHandle::new(DynEvent::new("BenchPing", payload(n)).expect("event"))
                        .to_any();
                let status = client
                    .post(&url)
                    .header("x-sent-ns", now_ns().to_string())
                    .body(event.to_json_string())
                    .send()
                    .await
                    .expect("post")
                    .status();
                assert_eq!(status.as_u16(), 202);
            }
        }
        _ => unreachable!(),
    }
    line.clear();
    out.read_line(&mut line).expect("result");
    let _ = child.wait();
    let result: Value = serde_json::from_str(&line).expect("result JSON");
    let mut lat: Vec<u64> = result["latencies_ns"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    lat.sort_unstable();
    let pick = |q: f64| {
        let i = ((lat.len() as f64 - 1.0) * q).round() as usize;
        lat.get(i).copied().unwrap_or(0) as f64 / 1e6
    };
    let last = result["last_ns"].as_u64().unwrap_or(first);
    let _ = std::fs::remove_dir_all(&dir);
    Row {
        transport: if kind.starts_with("sqlite") {
            "sqlite"
        } else {
            "http"
        },
        what: if kind.ends_with("bridge") {
            "bridge"
        } else {
            "floor"
        },
        per_sec: args.events as f64 / ((last.saturating_sub(first)) as f64 / 1e9),
        median_ms: pick(0.5),
        p99_ms: pick(0.99),
    }
}

/// abxbus 2.5.79's own figure (ms/event), if its Python environment can be had.
fn family(kind: &str) -> Option<f64> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = Command::new(root.join("interop/env.sh"))
        .arg("python-abxbus")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let python = String::from_utf8(python.stdout).ok()?.trim().to_owned();
    if python.is_empty() {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("bubus-family-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).ok()?;
    // Port 0 for HTTP: the script's listener binds a free port and its sender is pointed at it.
    let arg = if kind == "sqlite" {
        dir.display().to_string()
    } else {
        "0".to_owned()
    };
    let out = Command::new(python)
        .arg(root.join("interop/python/abxbus25_bridge_latency.py"))
        .args([kind, &arg])
        .current_dir(root.join("interop/python"))
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let _ = std::fs::remove_dir_all(&dir);
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["ms_per_event"].as_f64()
}

fn main() {
    let (args, rest) = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if rest.first().map(String::as_str) == Some("--receive") {
        let kind = rest.get(1).cloned().unwrap_or_default();
        let target = rest.get(2).cloned().unwrap_or_default();
        runtime.block_on(receive(&kind, &target, &args));
        return;
    }
    println!(
        "{} events, sent one after another, process to process; SQLite polled every {:?}\n",
        args.events, args.poll
    );
    println!("| transport | what | events/s | median latency | p99 latency | family (ms/event) |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (kind, transport) in [
        ("sqlite-floor", "sqlite"),
        ("sqlite-bridge", "sqlite"),
        ("http-floor", "http"),
        ("http-bridge", "http"),
    ] {
        let row = runtime.block_on(measure(kind, &args));
        let fam = if row.what == "bridge" {
            family(transport).map_or_else(|| "n/a".to_owned(), |ms| format!("{ms:.3}"))
        } else {
            String::new()
        };
        println!(
            "| {} | {} | {:.0} | {:.3} ms | {:.3} ms | {fam} |",
            row.transport, row.what, row.per_sec, row.median_ms, row.p99_ms
        );
    }
}
