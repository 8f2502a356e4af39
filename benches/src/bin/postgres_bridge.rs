//! The PostgreSQL bridge, measured from one process to another against the raw client doing the
//! same publish → consume on the same server in the same run (the floor).
//!
//! ```console
//! $ cargo run --release -p bubus-benches --bin postgres_bridge -- [EVENTS] [URL]
//! ```
//!
//! Defaults: 5 000 events, `postgresql://postgres@127.0.0.1:5432/test`. For each case the
//! consumer is this binary run again (`consume <case> …`); it reports when the last event
//! arrived and the latency of each (send time in the payload, so both processes read the same
//! wall clock). Cases:
//!
//! * `raw-plain`: tokio-postgres, `INSERT` + `pg_notify` per event; `LISTEN` and a `SELECT` by
//!   id per notification — what the family's plain bridge does on the wire.
//! * `bubus-plain`: `PgTransport::plain` with a `Bridge` on both sides, bus to bus.
//! * `raw-durable`: tokio-postgres, an `INSERT` (+ `NOTIFY`) per event; the consumer deletes
//!   batches of up to 256 with `FOR UPDATE SKIP LOCKED`, woken by `LISTEN`.
//! * `bubus-durable`: `PgTransport::durable` with a `Bridge` on both sides (claims under a
//!   lease, ack after the handler completed, dedup).
//!
//! Throughput is events / (last arrival − first send); latency is arrival − send, under that
//! load, median and p99.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bubus::bridge::Bridge;
use bubus::{AnyEvent, DynEvent, EventBus};
use bubus_postgres::{DurableOptions, PgTransport};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Notify;
use tokio_postgres::{AsyncMessage, Client, NoTls};

const CASES: [&str; 4] = ["raw-plain", "bubus-plain", "raw-durable", "bubus-durable"];

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    if args.get(1).map(String::as_str) == Some("consume") {
        let case = args[2].clone();
        let url = args[3].clone();
        let table = args[4].clone();
        let n: usize = args[5].parse().expect("a count");
        rt.block_on(consume(&case, &url, &table, n));
        return;
    }
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let url = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "postgresql://postgres@127.0.0.1:5432/test".to_owned());
    rt.block_on(async {
        println!("| case | events/s | median latency | p99 latency |");
        println!("| --- | ---: | ---: | ---: |");
        let mut rates = std::collections::HashMap::new();
        for case in CASES {
            let (rate, p50, p99) = run_case(case, &url, n).await;
            rates.insert(case, rate);
            println!(
                "| {case} | {rate:.0} | {:.2} ms | {:.2} ms |",
                p50 / 1e3,
                p99 / 1e3
            );
        }
        println!();
        println!(
            "plain: raw / bubus = {:.2}×; durable: raw / bubus = {:.2}×",
            rates["raw-plain"] / rates["bubus-plain"],
            rates["raw-durable"] / rates["bubus-durable"]
        );
    });
}

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(conn);
    client
}

/// Runs one case: starts the consumer process, sends `n` events, returns (events/s, median µs,
/// p99 µs).
async fn run_case(case: &str, url: &str, n: usize) -> (f64, f64, f64) {
    let table = format!("bench_{}_{}", case.replace('-', "_"), std::process::id());
    let admin = connect(url).await;
    for t in [
        table.clone(),
        format!("{table}_deliveries"),
        format!("{table}_groups"),
        format!("{table}_dedup"),
        format!("{table}_dead"),
    ] {
        let _ = admin
            .batch_execute(&format!("DROP TABLE IF EXISTS \"{t}\" CASCADE"))
            .await;
    }
    if case.starts_with("raw") {
        admin
            .batch_execute(&format!(
                "CREATE TABLE \"{table}\" (id BIGSERIAL PRIMARY KEY, event_id TEXT, body TEXT)"
            ))
            .await
            .expect("raw table");
    }
    let channel = format!("{table}_ch");
    let base = url.trim_end_matches('/').to_owned();
    let bridge_url = format!("{base}/{table}");
    // The durable group exists before anything is sent (as in a deployment).
    if case == "bubus-durable" {
        PgTransport::durable(&bridge_url, DurableOptions::new("bench"))
            .await
            .expect("durable tables");
    }
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .args(["consume", case, url, &table, &n.to_string()])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the consumer");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    while let Some(line) = lines.next_line().await.expect("read") {
        if line == "ready" {
            break;
        }
    }
    let t0 = now_ns();
    match case {
        "raw-plain" => {
            let c = connect(url).await;
            let insert = format!("INSERT INTO \"{table}\" (event_id, body) VALUES ($1, $2)");
            for i in 0..n {
                let id = format!("e{i}");
                let body = json!({"n": i, "sent_ns": now_ns()}).to_string();
                c.execute(&insert, &[&id, &body]).await.expect("insert");
                c.execute("SELECT pg_notify($1, $2)", &[&channel, &id])
                    .await
                    .expect("notify");
            }
        }
        "raw-durable" => {
            let c = connect(url).await;
            let insert = format!(
                "WITH i AS (INSERT INTO \"{table}\" (event_id, body) VALUES ($1, $2) RETURNING id) \
                 SELECT pg_notify('{channel}', '') FROM i"
            );
            for i in 0..n {
                let id = format!("e{i}");
                let body = json!({"n": i, "sent_ns": now_ns()}).to_string();
                c.execute(&insert, &[&id, &body]).await.expect("insert");
            }
        }
        _ => {
            let transport = if case == "bubus-plain" {
                PgTransport::plain(&bridge_url, Some(&channel)).await
            } else {
                PgTransport::durable(&bridge_url, DurableOptions::new("bench-sender")).await
            }
            .expect("transport");
            let bus = EventBus::builder("BenchSender")
                .max_history_size(Some(64))
                .build();
            let bridge = Bridge::new(transport);
            bus.on_pattern("*", bridge.sender());
            for i in 0..n {
                let e = DynEvent::new("BenchEvent", json!({"n": i, "sent_ns": now_ns()}))
                    .expect("event");
                bus.dispatch(e).expect("dispatch").await.expect("sent");
            }
            bridge.close().await.expect("close");
        }
    }
    let mut result = None;
    while let Some(line) = lines.next_line().await.expect("read") {
        if let Some(rest) = line.strip_prefix("done ") {
            let v: Vec<f64> = rest
                .split(' ')
                .map(|x| x.parse().expect("a number"))
                .collect();
            result = Some((v[0], v[1], v[2]));
            break;
        }
    }
    let _ = child.wait().await;
    let (last_ns, p50, p99) = result.expect("the consumer reported");
    let secs = (last_ns - t0 as f64) / 1e9;
    (n as f64 / secs, p50, p99)
}

/// Latencies in µs, and when the last event arrived.
#[derive(Default)]
struct Seen {
    lat_us: Vec<f64>,
    last_ns: u64,
}

fn record(seen: &Mutex<Seen>, payload: &Value) -> usize {
    let now = now_ns();
    let sent = payload["sent_ns"].as_u64().unwrap_or(now);
    let mut s = seen.lock();
    s.lat_us.push((now.saturating_sub(sent)) as f64 / 1e3);
    s.last_ns = now;
    s.lat_us.len()
}

async fn consume(case: &str, url: &str, table: &str, n: usize) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let all = Arc::new(Notify::new());
    let channel = format!("{table}_ch");
    let base = url.trim_end_matches('/').to_owned();
    let bridge_url = format!("{base}/{table}");
    let mut keep = Vec::new();
    match case {
        "raw-plain" | "raw-durable" => {
            let (listener, mut conn) = tokio_postgres::connect(url, NoTls).await.expect("connect");
            let wake = Arc::new(Notify::new());
            let ids = Arc::new(Mutex::new(Vec::<String>::new()));
            let (w, i) = (wake.clone(), ids.clone());
            tokio::spawn(async move {
                let mut s = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
                while let Some(Ok(m)) = s.next().await {
                    if let AsyncMessage::Notification(note) = m {
                        i.lock().push(note.payload().to_owned());
                        w.notify_one();
                    }
                }
            });
            listener
                .batch_execute(&format!("LISTEN \"{channel}\""))
                .await
                .expect("listen");
            keep.push(listener);
            let c = connect(url).await;
            let (seen2, all2, table) = (seen.clone(), all.clone(), table.to_owned());
            let plain = case == "raw-plain";
            tokio::spawn(async move {
                let select = format!("SELECT body FROM \"{table}\" WHERE event_id = $1");
                let claim = format!(
                    "DELETE FROM \"{table}\" WHERE id IN (SELECT id FROM \"{table}\" ORDER BY id \
                     LIMIT 256 FOR UPDATE SKIP LOCKED) RETURNING body"
                );
                loop {
                    let bodies: Vec<String> = if plain {
                        let batch: Vec<String> = std::mem::take(&mut *ids.lock());
                        let mut out = Vec::new();
                        for id in batch {
                            if let Ok(Some(row)) = c.query_opt(&select, &[&id]).await {
                                out.push(row.get(0));
                            }
                        }
                        out
                    } else {
                        ids.lock().clear();
                        c.query(&claim, &[])
                            .await
                            .expect("claim")
                            .iter()
                            .map(|r| r.get(0))
                            .collect()
                    };
                    let got = bodies.len();
                    for b in bodies {
                        let v: Value = serde_json::from_str(&b).expect("json");
                        if record(&seen2, &v) == n {
                            all2.notify_one();
                        }
                    }
                    if got == 0 {
                        wake.notified().await;
                    }
                }
            });
        }
        _ => {
            let transport = if case == "bubus-plain" {
                PgTransport::plain(&bridge_url, Some(&channel)).await
            } else {
                PgTransport::durable(&bridge_url, DurableOptions::new("bench")).await
            }
            .expect("transport");
            let bus = EventBus::builder("BenchReceiver")
                .max_history_size(Some(0))
                .build();
            let (seen2, all2) = (seen.clone(), all.clone());
            bus.on_pattern("BenchEvent", move |e: AnyEvent| {
                let payload = Value::Object(e.payload_json().unwrap_or_default());
                if record(&seen2, &payload) == n {
                    all2.notify_one();
                }
            });
            let bridge = transport.bridge().build();
            bridge.attach(&bus);
            bridge.start().await.expect("start");
            // Keep them alive.
            std::mem::forget(bridge);
            std::mem::forget(bus);
        }
    }
    println!("ready");
    all.notified().await;
    let (mut lat, last_ns) = {
        let s = seen.lock();
        (s.lat_us.clone(), s.last_ns)
    };
    lat.sort_by(f64::total_cmp);
    let pick = |q: f64| lat[((lat.len() as f64 - 1.0) * q).round() as usize];
    println!("done {last_ns} {} {}", pick(0.5), pick(0.99));
    // Let the last acks go out before the process ends.
    tokio::time::sleep(Duration::from_millis(200)).await;
}
