//! Redis, NATS and PostgreSQL bridges, one process to another, next to the raw client doing the
//! same publish → consume on the same server in the same run (the floor), and the family's Python
//! bridge where it has one.
//!
//! ```text
//! cargo run --release -p bubus-benches --bin bridge_engines -- [--events N] [--python]
//!     [--cases redis-pubsub-raw,redis-pubsub-bubus,...] [--rounds R] [--raw-payload event|pad]
//! ```
//!
//! `--help` lists the cases. `--python` adds the family's Python bridges (abxbus 2.5.79, from
//! `interop/env.sh python-abxbus`) of the engines whose cases run: Redis pub/sub, core NATS and
//! PostgreSQL table + `NOTIFY`, each driven by `benches/python/abxbus_bridge_bench.py`.
//!
//! With `--rounds R` every case runs R times, the cases interleaved round by round, and the
//! table shows each case's median round (by rate).
//!
//! Each case: this process sends N events one after another (each send awaited), a receiver
//! process (this binary again, or Python) takes them; the receiver reports the rate from the
//! first send to the last receipt and the median and p99 of send → handler latency (both
//! processes read the same clock). Needs Redis on 127.0.0.1:6379, NATS with JetStream on
//! 127.0.0.1:4222 and PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`;
//! `scripts/services.sh`).
//!
//! The PostgreSQL cases (each on tables of its own, dropped afterwards):
//!
//! * `postgres-plain-raw`: tokio-postgres, `INSERT` + `pg_notify` per event; `LISTEN` and a
//!   `SELECT` by id per notification — the family's plain wire, by hand.
//! * `postgres-plain-bubus`: `PgTransport::plain` (the family's wire).
//! * `postgres-durable-raw`: tokio-postgres, an `INSERT` that also notifies; the receiver deletes
//!   batches of up to 256 rows with `FOR UPDATE SKIP LOCKED`, woken by `LISTEN`.
//! * `postgres-durable-bubus`: `PgTransport::durable` (claims under a lease, ack after the
//!   handler completed, persisted dedup).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;

use bubus_benches::bridge_probe::{Probe, now_ns};

use bubus::bridge::{Bridge, Transport};
use bubus::{AnyEvent, DynEvent, EventHandle};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::json;

const REDIS: &str = "redis://127.0.0.1:6379/0";
const NATS: &str = "nats://127.0.0.1:4222";
const POSTGRES: &str = "postgresql://postgres@127.0.0.1:5432/test";
const CASES: &[&str] = &[
    "redis-pubsub-raw",
    "redis-pubsub-bubus",
    "redis-streams-raw",
    "redis-streams-bubus",
    "nats-core-raw",
    "nats-core-bubus",
    "nats-jetstream-raw",
    "nats-jetstream-bubus",
    "postgres-plain-raw",
    "postgres-plain-bubus",
    "postgres-durable-raw",
    "postgres-durable-bubus",
];

/// The raw cases' payload (parsed into a `serde_json::Value` on receipt). By default the same
/// JSON object a bubus event of the bubus cases is on the wire (its ~20 `event_*` keys, then
/// `sent_ns` and `seq`), so the floor parses what the bridge parses; with
/// `--raw-payload pad`, an object of three keys padded to the same length (~620 bytes).
fn raw_payload(seq: u64, shape: RawShape) -> String {
    match shape {
        RawShape::Pad => {
            json!({ "sent_ns": now_ns(), "seq": seq, "pad": "x".repeat(560) }).to_string()
        }
        RawShape::Event => format!(
            concat!(
                r#"{{"event_type":"BenchPing","event_version":"0.0.1","event_timeout":null,"#,
                r#""event_slow_timeout":null,"event_concurrency":null,"#,
                r#""event_handler_timeout":null,"event_handler_slow_timeout":null,"#,
                r#""event_handler_concurrency":null,"event_handler_completion":null,"#,
                r#""event_blocks_parent_completion":false,"event_result_type":null,"#,
                r#""event_id":"{id}","event_path":[],"event_parent_id":null,"#,
                r#""event_emitted_by_handler_id":null,"event_pending_bus_count":0,"#,
                r#""event_created_at":"2026-01-02T03:04:05.123456789Z","event_status":"pending","#,
                r#""event_started_at":null,"event_completed_at":null,"sent_ns":{sent_ns},"#,
                r#""seq":{seq}}}"#
            ),
            id = uuid::Uuid::from_u64_pair(0x0190_0000_0000_7000, seq | 0x8000_0000_0000_0000),
            sent_ns = now_ns(),
            seq = seq,
        ),
    }
}

/// What the raw cases send: see [`raw_payload`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RawShape {
    Event,
    Pad,
}

fn sent_ns_of(text: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| v["sent_ns"].as_u64())
        .unwrap_or(0)
}

fn event(seq: u64) -> AnyEvent {
    EventHandle::new(
        DynEvent::new("BenchPing", json!({ "sent_ns": now_ns(), "seq": seq })).expect("event"),
    )
    .to_any()
}

/// The bubus cases' event (a `DynEvent` of this type on the sending side).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, bubus::Event)]
struct BenchPing {
    sent_ns: u64,
    seq: u64,
}

fn redis_transport(channel: &str, durable: bool) -> bubus_redis::RedisTransport {
    let b = bubus_redis::RedisTransport::builder(REDIS)
        .expect("url")
        .channel(channel);
    let b = if durable {
        b.streams().group("bench")
    } else {
        b.pubsub()
    };
    b.build().expect("transport")
}

async fn nats_transport(subject: &str, durable: bool) -> bubus_nats::NatsTransport {
    let b = bubus_nats::NatsTransport::builder(NATS, subject);
    let b = if durable {
        b.jetstream().group("bench")
    } else {
        b.core()
    };
    b.build().await.expect("transport")
}

async fn pg_connect() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(POSTGRES, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
}

/// The PostgreSQL bridge of a case: the table and the `NOTIFY` channel are both `name`. Sender
/// and receiver of the durable cases are one group, so only the receiver's deliveries are written.
async fn pg_transport(name: &str, durable: bool) -> bubus_postgres::PgTransport {
    let url = format!("{POSTGRES}/{name}");
    if durable {
        bubus_postgres::PgTransport::durable(&url, bubus_postgres::DurableOptions::new("bench"))
            .await
    } else {
        bubus_postgres::PgTransport::plain(&url, Some(name)).await
    }
    .expect("transport")
}

/// Drops what a PostgreSQL case (raw, bubus or Python) left on the shared server.
async fn pg_cleanup(name: &str) {
    let c = pg_connect().await;
    let mut sql = String::new();
    for suffix in ["", "_deliveries", "_groups", "_dedup", "_dead"] {
        sql.push_str(&format!("DROP TABLE IF EXISTS \"{name}{suffix}\" CASCADE;"));
    }
    sql.push_str(&format!(
        "DROP FUNCTION IF EXISTS \"{name}_fanout\"() CASCADE;"
    ));
    if let Err(e) = c.batch_execute(&sql).await {
        eprintln!("bridge_engines: dropping the tables of {name} failed: {e}");
    }
}

/// The raw PostgreSQL receivers: `LISTEN` on `name`, then per wake-up either a `SELECT` per
/// notified id (plain) or batches of `DELETE … FOR UPDATE SKIP LOCKED` (durable).
async fn pg_raw_receive(
    name: &str,
    durable: bool,
    record: impl Fn(u64) + Send + 'static,
) -> Box<dyn std::any::Any + Send> {
    let admin = pg_connect().await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS \"{name}\" (id BIGSERIAL PRIMARY KEY, event_id TEXT, body TEXT)"
        ))
        .await
        .expect("raw table");
    let (listener, mut conn) = tokio_postgres::connect(POSTGRES, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let wake = Arc::new(tokio::sync::Notify::new());
    let ids = Arc::new(Mutex::new(Vec::<String>::new()));
    {
        let (wake, ids) = (Arc::clone(&wake), Arc::clone(&ids));
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(Ok(m)) = messages.next().await {
                if let tokio_postgres::AsyncMessage::Notification(note) = m {
                    ids.lock().push(note.payload().to_owned());
                    wake.notify_one();
                }
            }
        });
    }
    listener
        .batch_execute(&format!("LISTEN \"{name}\""))
        .await
        .expect("LISTEN");
    let table = name.to_owned();
    tokio::spawn(async move {
        let select = format!("SELECT body FROM \"{table}\" WHERE event_id = $1");
        let claim = format!(
            "DELETE FROM \"{table}\" WHERE id IN (SELECT id FROM \"{table}\" ORDER BY id \
             LIMIT 256 FOR UPDATE SKIP LOCKED) RETURNING body"
        );
        loop {
            let bodies: Vec<String> = if durable {
                ids.lock().clear();
                admin
                    .query(&claim, &[])
                    .await
                    .expect("claim")
                    .iter()
                    .map(|r| r.get(0))
                    .collect()
            } else {
                let batch = std::mem::take(&mut *ids.lock());
                let mut out = Vec::with_capacity(batch.len());
                for id in batch {
                    if let Ok(Some(row)) = admin.query_opt(&select, &[&id]).await {
                        out.push(row.get(0));
                    }
                }
                out
            };
            let got = bodies.len();
            for body in bodies {
                record(sent_ns_of(&body));
            }
            if got == 0 {
                wake.notified().await;
            }
        }
    });
    Box::new(listener)
}

/// The raw PostgreSQL senders: `INSERT` then `pg_notify` with the id (plain), or one `INSERT`
/// that notifies (durable), each awaited.
async fn pg_raw_send(name: &str, durable: bool, n: u64, shape: RawShape) {
    let c = pg_connect().await;
    let insert = if durable {
        format!(
            "WITH i AS (INSERT INTO \"{name}\" (event_id, body) VALUES ($1, $2) RETURNING id) \
             SELECT pg_notify('{name}', '') FROM i"
        )
    } else {
        format!("INSERT INTO \"{name}\" (event_id, body) VALUES ($1, $2)")
    };
    for i in 0..n {
        let id = format!("e{i}");
        c.execute(&insert, &[&id, &raw_payload(i, shape)])
            .await
            .expect("INSERT");
        if !durable {
            c.execute("SELECT pg_notify($1, $2)", &[&name, &id])
                .await
                .expect("NOTIFY");
        }
    }
}

/// The receiver side of `case`: prints `@@ready`, takes `n` events (or gives up after 60 s of
/// silence) and prints `@@result <count> <span ns> <p50 ns> <p99 ns>`.
async fn receive(case: &str, name: &str, n: u64) {
    let probe = Probe::new(n);
    let record = probe.recorder();
    let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
    match case {
        "redis-pubsub-raw" => {
            let client = redis::Client::open(REDIS).expect("client");
            let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
            pubsub.subscribe(name).await.expect("subscribe");
            tokio::spawn(async move {
                let mut messages = pubsub.into_on_message();
                while let Some(m) = messages.next().await {
                    let text: String = m.get_payload().unwrap_or_default();
                    record(sent_ns_of(&text));
                }
            });
        }
        "redis-streams-raw" => {
            let client = redis::Client::open(REDIS).expect("client");
            let mut con = client
                .get_multiplexed_async_connection()
                .await
                .expect("connect");
            let key = format!("rawbench:{name}");
            let _: redis::RedisResult<()> = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(&key)
                .arg("bench")
                .arg("0")
                .arg("MKSTREAM")
                .query_async(&mut con)
                .await;
            tokio::spawn(async move {
                loop {
                    let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg("bench")
                        .arg("c")
                        .arg("COUNT")
                        .arg(64)
                        .arg("BLOCK")
                        .arg(1000)
                        .arg("STREAMS")
                        .arg(&key)
                        .arg(">")
                        .query_async(&mut con)
                        .await
                        .expect("XREADGROUP");
                    for entry in reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids) {
                        let text = match entry.map.get("event") {
                            Some(redis::Value::BulkString(b)) => {
                                String::from_utf8_lossy(b).into_owned()
                            }
                            _ => String::new(),
                        };
                        record(sent_ns_of(&text));
                        let _: i64 = redis::cmd("XACK")
                            .arg(&key)
                            .arg("bench")
                            .arg(&entry.id)
                            .query_async(&mut con)
                            .await
                            .expect("XACK");
                    }
                }
            });
        }
        "nats-core-raw" => {
            let client = async_nats::connect(NATS).await.expect("connect");
            let mut sub = client.subscribe(name.to_owned()).await.expect("subscribe");
            client.flush().await.expect("flush");
            tokio::spawn(async move {
                while let Some(m) = sub.next().await {
                    record(sent_ns_of(&String::from_utf8_lossy(&m.payload)));
                }
            });
            keep.push(Box::new(client));
        }
        "nats-jetstream-raw" => {
            let client = async_nats::connect(NATS).await.expect("connect");
            let js = async_nats::jetstream::new(client);
            let stream = js
                .get_or_create_stream(async_nats::jetstream::stream::Config {
                    name: format!("RAWBENCH_{name}"),
                    subjects: vec![format!("rawbench.{name}")],
                    ..Default::default()
                })
                .await
                .expect("stream");
            let consumer = stream
                .get_or_create_consumer(
                    "bench",
                    async_nats::jetstream::consumer::pull::Config {
                        durable_name: Some("bench".into()),
                        ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
                        ..Default::default()
                    },
                )
                .await
                .expect("consumer");
            let mut messages = consumer.messages().await.expect("messages");
            tokio::spawn(async move {
                while let Some(Ok(m)) = messages.next().await {
                    record(sent_ns_of(&String::from_utf8_lossy(&m.payload)));
                    let _ = m.double_ack().await;
                }
            });
        }
        "postgres-plain-raw" | "postgres-durable-raw" => {
            keep.push(pg_raw_receive(name, case.contains("durable"), record).await);
        }
        bubus_case => {
            let durable = bubus_case.contains("streams")
                || bubus_case.contains("jetstream")
                || bubus_case.contains("durable");
            let bridge = if bubus_case.starts_with("postgres") {
                let t = pg_transport(name, durable).await;
                if durable {
                    // The persisted dedup store and the group's max deliveries.
                    t.bridge().build()
                } else {
                    Bridge::new(t)
                }
            } else if bubus_case.starts_with("redis") {
                let t = redis_transport(name, durable);
                let d = t.dedup_store();
                if durable {
                    Bridge::builder(t).dedup(Arc::new(d)).build()
                } else {
                    Bridge::new(t)
                }
            } else {
                let t = nats_transport(name, durable).await;
                let d = t.dedup_store();
                if durable {
                    Bridge::builder(t).dedup(Arc::new(d)).build()
                } else {
                    Bridge::new(t)
                }
            };
            // A typed handler: the payload is decoded once, as a user's handler would get it.
            bridge.on("BenchPing", move |e: EventHandle<BenchPing>| {
                record(e.sent_ns)
            });
            bridge.start().await.expect("start");
            keep.push(Box::new(bridge));
        }
    }
    println!("@@ready");
    let _ = std::io::stdout().flush();
    println!("{}", probe.finish().await);
    drop(keep);
}

/// The sender side: `n` sends, each awaited.
async fn send(case: &str, name: &str, n: u64, shape: RawShape) {
    match case {
        "redis-pubsub-raw" | "redis-streams-raw" => {
            let client = redis::Client::open(REDIS).expect("client");
            let mut con = client
                .get_multiplexed_async_connection()
                .await
                .expect("connect");
            for i in 0..n {
                let payload = raw_payload(i, shape);
                if case == "redis-pubsub-raw" {
                    let _: i64 = redis::cmd("PUBLISH")
                        .arg(name)
                        .arg(payload)
                        .query_async(&mut con)
                        .await
                        .expect("PUBLISH");
                } else {
                    let _: String = redis::cmd("XADD")
                        .arg(format!("rawbench:{name}"))
                        .arg("*")
                        .arg("event")
                        .arg(payload)
                        .query_async(&mut con)
                        .await
                        .expect("XADD");
                }
            }
        }
        "nats-core-raw" => {
            let client = async_nats::connect(NATS).await.expect("connect");
            for i in 0..n {
                client
                    .publish(name.to_owned(), raw_payload(i, shape).into())
                    .await
                    .expect("publish");
            }
            client.flush().await.expect("flush");
        }
        "nats-jetstream-raw" => {
            let js = async_nats::jetstream::new(async_nats::connect(NATS).await.expect("connect"));
            for i in 0..n {
                js.publish(format!("rawbench.{name}"), raw_payload(i, shape).into())
                    .await
                    .expect("publish")
                    .await
                    .expect("stored");
            }
        }
        "postgres-plain-raw" | "postgres-durable-raw" => {
            pg_raw_send(name, case.contains("durable"), n, shape).await;
        }
        bubus_case => {
            let durable = bubus_case.contains("streams")
                || bubus_case.contains("jetstream")
                || bubus_case.contains("durable");
            let transport: Arc<dyn Transport> = if bubus_case.starts_with("postgres") {
                Arc::new(pg_transport(name, durable).await)
            } else if bubus_case.starts_with("redis") {
                Arc::new(redis_transport(name, durable))
            } else {
                Arc::new(nats_transport(name, durable).await)
            };
            let bridge = Bridge::builder_arc(transport).build();
            for i in 0..n {
                bridge.send(&event(i)).await.expect("send");
            }
            bridge.close().await.expect("close");
        }
    }
}

struct Outcome {
    count: u64,
    span_ns: u64,
    p50_ns: u64,
    p99_ns: u64,
}

fn spawn_receiver(
    case: &str,
    name: &str,
    n: u64,
) -> (std::process::Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args(["--receive", case, name, &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("receiver");
    let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 && !line.contains("@@ready") {
        line.clear();
    }
    (child, reader)
}

impl Outcome {
    fn rate(&self) -> f64 {
        if self.span_ns == 0 {
            0.0
        } else {
            self.count as f64 / (self.span_ns as f64 / 1e9)
        }
    }
}

/// One case: a receiver process, the sends from here, the receiver's report.
fn run_case(
    runtime: &tokio::runtime::Runtime,
    case: &str,
    n: u64,
    shape: RawShape,
) -> Option<Outcome> {
    let name = format!("bench_{}", uuid::Uuid::new_v4().simple());
    let (mut child, reader) = spawn_receiver(case, &name, n);
    runtime.block_on(send(case, &name, n, shape));
    let outcome = reader
        .lines()
        .find_map(|l| l.ok().filter(|l| l.contains("@@result")))
        .map(|line| {
            let nums: Vec<u64> = line
                .split_whitespace()
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            Outcome {
                count: nums[0],
                span_ns: nums[1],
                p50_ns: nums[2],
                p99_ns: nums[3],
            }
        });
    let _ = child.wait();
    if case.starts_with("postgres") {
        runtime.block_on(pg_cleanup(&name));
    }
    outcome
}

fn row(label: &str, n: u64, o: &Outcome) -> String {
    let rate = o.rate();
    format!(
        "| {label:<24} | {:>6}/{n:<6} | {:>9.0} | {:>8.3} | {:>8.3} |",
        o.count,
        rate,
        o.p50_ns as f64 / 1e6,
        o.p99_ns as f64 / 1e6
    )
}

fn python_case(runtime: &tokio::runtime::Runtime, engine: &str, n: u64) -> Option<Outcome> {
    let name = format!("pybench_{}", uuid::Uuid::new_v4().simple());
    let outcome = python_run(engine, &name, n);
    if engine == "postgres" {
        runtime.block_on(pg_cleanup(&name));
    }
    outcome
}

/// A Python receiver process and a Python sender process of `engine` on `name`.
fn python_run(engine: &str, name: &str, n: u64) -> Option<Outcome> {
    let python = Command::new("interop/env.sh")
        .arg("python-abxbus")
        .output()
        .ok()?;
    let python = String::from_utf8(python.stdout).ok()?.trim().to_owned();
    let script = "benches/python/abxbus_bridge_bench.py";
    let mut receiver = Command::new(&python)
        .args([script, engine, name, "receive", &n.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .ok()?;
    let stdout = receiver.stdout.take()?;
    let mut lines = BufReader::new(stdout).lines();
    lines
        .by_ref()
        .find(|l| l.as_ref().is_ok_and(|l| l.contains("@@ready")))?
        .ok()?;
    let status = Command::new(&python)
        .args([script, engine, name, "send", &n.to_string()])
        .status()
        .ok()?;
    if !status.success() {
        return None;
    }
    let line = lines.find_map(|l| l.ok().filter(|l| l.contains("@@result")))?;
    let _ = receiver.wait();
    let nums: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    Some(Outcome {
        count: nums[0],
        span_ns: nums[1],
        p50_ns: nums[2],
        p99_ns: nums[3],
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "bridge_engines [--events N] [--rounds R] [--cases CASE,...] [--python]\n\n\
             N events (default 10000) sent one after another from this process to a receiver\n\
             process; R rounds (default 1) interleaved, each case's median round shown.\n\
             --python adds the family's Python bridge (abxbus 2.5.79) of each engine whose\n\
             cases run (redis, nats, postgres).\n\ncases:"
        );
        for case in CASES {
            println!("  {case}");
        }
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    if args.first().map(String::as_str) == Some("--receive") {
        let n = args.get(3).and_then(|n| n.parse().ok()).unwrap_or(0);
        runtime.block_on(receive(&args[1], &args[2], n));
        return ExitCode::SUCCESS;
    }
    let n: u64 = args
        .iter()
        .position(|a| a == "--events")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let with_python = args.iter().any(|a| a == "--python");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let cases: Vec<&str> = match value("--cases") {
        Some(list) => CASES
            .iter()
            .copied()
            .filter(|c| list.split(',').any(|x| x == *c))
            .collect(),
        None => CASES.to_vec(),
    };
    let shape = match value("--raw-payload").as_deref() {
        Some("pad") => RawShape::Pad,
        _ => RawShape::Event,
    };
    let rounds: usize = value("--rounds")
        .and_then(|r| r.parse().ok())
        .unwrap_or(1)
        .max(1);
    let mut results: Vec<Vec<Outcome>> = cases.iter().map(|_| Vec::new()).collect();
    for _ in 0..rounds {
        for (i, case) in cases.iter().enumerate() {
            if let Some(o) = run_case(&runtime, case, n, shape) {
                results[i].push(o);
            }
        }
    }
    println!("| case                     | received      | events/s  | p50 ms   | p99 ms   |");
    println!("| ------------------------ | ------------- | --------- | -------- | -------- |");
    for (case, mut outcomes) in cases.iter().zip(results) {
        if outcomes.is_empty() {
            println!("| {case:<24} | failed |");
            continue;
        }
        outcomes.sort_by(|a, b| a.rate().total_cmp(&b.rate()));
        let median = &outcomes[outcomes.len() / 2];
        println!("{}", row(case, n, median));
    }
    if with_python {
        for engine in ["redis", "nats", "postgres"] {
            if !cases.iter().any(|c| c.starts_with(engine)) {
                continue;
            }
            match python_case(&runtime, engine, n) {
                Some(o) => println!("{}", row(&format!("{engine}-python-abxbus"), n, &o)),
                None => println!("| {engine}-python-abxbus | failed |"),
            }
        }
    }
    ExitCode::SUCCESS
}
