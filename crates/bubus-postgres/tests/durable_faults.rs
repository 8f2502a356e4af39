//! The proof of the durable mode: 10 000 events from 4 publisher tasks in 2 processes, consumed
//! by a group of 2 consumer processes, while the test's own PostgreSQL server is crashed and
//! restarted twice (or the connections are cut by a TCP proxy) and one consumer process is
//! SIGKILLed in the middle of a handler and started again. Every event's handler runs exactly
//! once in the group: 0 lost, 0 duplicates, and the sum of the payloads matches.
//!
//! The processes are this test binary run again with `BUBUS_PG_ROLE` set (see [`child`]).
//!
//! Run: `cargo test -p bubus-postgres --test durable_faults -- --nocapture`.

mod support;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bubus::EventBus;
use bubus_postgres::{DurableOptions, PgTransport};
use bubus_test_support::postgres_server::PgServer;
use bubus_test_support::servers::TcpProxy;
use parking_lot::Mutex;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

const PUBLISHERS: u64 = 2;
const TASKS: u64 = 2;
const PER_TASK: u64 = 2_500;
const TOTAL: u64 = PUBLISHERS * TASKS * PER_TASK;
const GROUP: &str = "workers";

fn value(p: u64, t: u64, k: u64) -> u64 {
    p * 1_000_000 + t * 100_000 + k
}

fn consumer_opts() -> DurableOptions {
    DurableOptions::new(GROUP)
        .lease(Duration::from_secs(10))
        .poll_interval(Duration::from_millis(250))
        .max_backoff(Duration::from_millis(500))
        .retry_delay(Duration::ZERO)
        .batch(64)
        .max_in_flight(128)
}

/// Entry point of the child processes (run with `--include-ignored` and a role).
#[test]
#[ignore = "a worker process of the fault tests"]
fn child() {
    let Ok(role) = std::env::var("BUBUS_PG_ROLE") else {
        return;
    };
    let url = std::env::var("BUBUS_PG_URL").unwrap();
    if std::env::var_os("BUBUS_PG_DEBUG").is_some() {
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(std::io::stderr)
            .init();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        match role.as_str() {
            "publish" => publish(&url).await,
            "consume" => consume(&url).await,
            other => panic!("unknown role {other}"),
        }
    });
}

async fn publish(url: &str) {
    let p: u64 = std::env::var("BUBUS_PG_PUB").unwrap().parse().unwrap();
    let transport = PgTransport::durable(
        url,
        DurableOptions::new(GROUP).max_backoff(Duration::from_millis(500)),
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let transport = transport.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..PER_TASK {
                let e: bubus::AnyEvent = bubus::EventHandle::new(
                    bubus::DynEvent::new("Work", json!({ "v": value(p, t, k) })).unwrap(),
                )
                .into();
                transport.send_event(&e).await.unwrap();
                if (k + 1) % 250 == 0 {
                    println!("@@progress 250");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    println!("@@published");
}

async fn consume(url: &str) {
    let hang_after: Option<usize> = std::env::var("BUBUS_PG_HANG_AFTER")
        .ok()
        .map(|v| v.parse().unwrap());
    // Started while a fault strikes, the setup's connection can break: start again (the
    // transport heals by itself once started; its first connection fails fast by design).
    let transport = loop {
        match PgTransport::durable(url, consumer_opts()).await {
            Ok(t) => break t,
            Err(e) if e.is_connection() => {
                eprintln!("consumer start failed ({e}); again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("consumer start: {e}"),
        }
    };
    // History keeps only what is in flight: a bounded history smaller than the bridge's
    // in-flight window would refuse events while the handler hangs.
    let bus = EventBus::builder("Consumer")
        .max_history_size(Some(0))
        .build();
    let handled = Arc::new(Mutex::new(0usize));
    bus.on(move |e: bubus::AnyEvent| {
        let handled = handled.clone();
        async move {
            let n = {
                let mut h = handled.lock();
                *h += 1;
                *h
            };
            if hang_after.is_some_and(|after| n > after) {
                // Mid-handler: the test kills this process now.
                println!("@@hang {}", e.event_id());
                std::future::pending::<()>().await;
            }
            let v = e.payload_json().unwrap()["v"].as_u64().unwrap();
            println!("@@handled {} {v}", e.event_id());
        }
    });
    let bridge = transport.bridge().build();
    bridge.attach(&bus);
    bridge.start().await.unwrap();
    // Runs until the test kills it.
    std::future::pending::<()>().await;
}

/// Lines of a child's stdout, read as they come, with a watch that counts some of them.
fn collect(child: &mut Child, sink: Arc<Mutex<Vec<String>>>, tick: watch::Sender<u64>) {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            // The test harness may have written `test child ... ` before a report.
            if let Some(at) = line.find("@@") {
                sink.lock().push(line[at..].to_owned());
                tick.send_modify(|n| *n += 1);
            }
        }
    });
}

fn spawn_role(role: &str, url: &str, extra: &[(&str, String)]) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("BUBUS_PG_ROLE", role)
    .env("BUBUS_PG_URL", url)
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .kill_on_drop(true);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

struct Run {
    lines: Arc<Mutex<Vec<String>>>,
    tick: watch::Receiver<u64>,
    tick_tx: watch::Sender<u64>,
}

impl Run {
    fn new() -> Run {
        let (tick_tx, tick) = watch::channel(0);
        Run {
            lines: Arc::new(Mutex::new(Vec::new())),
            tick,
            tick_tx,
        }
    }

    fn attach(&self, child: &mut Child, tag: &str) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        let all = self.lines.clone();
        let tag = tag.to_owned();
        // Keep the per-child tag in the shared log.
        let (tx, mut rx) = watch::channel(0u64);
        collect(child, lines.clone(), tx);
        let tick = self.tick_tx.clone();
        tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let new: Vec<String> = lines.lock().drain(..).collect();
                all.lock()
                    .extend(new.into_iter().map(|l| format!("{tag} {l}")));
                tick.send_modify(|n| *n += 1);
            }
            let new: Vec<String> = lines.lock().drain(..).collect();
            all.lock()
                .extend(new.into_iter().map(|l| format!("{tag} {l}")));
            tick.send_modify(|n| *n += 1);
        });
    }

    /// Waits until `f` holds over the lines so far.
    async fn until(&mut self, f: impl Fn(&[String]) -> bool) {
        loop {
            if f(&self.lines.lock()) {
                return;
            }
            // A line of progress now and then, for a run that takes long.
            if tokio::time::timeout(Duration::from_secs(20), self.tick.changed())
                .await
                .is_err()
            {
                let lines = self.lines.lock();
                let handled = Run::count(&lines, "@@handled ");
                let published = Run::published(&lines);
                println!("waiting: {published} published, {handled} handled so far");
            }
        }
    }

    fn count(lines: &[String], what: &str) -> usize {
        lines.iter().filter(|l| l.contains(what)).count()
    }

    fn published(lines: &[String]) -> u64 {
        Run::count(lines, "@@progress") as u64 * 250
    }
}

/// Waits until the group has acknowledged every id `tag`'s process handled (so killing it
/// cannot lose an ack of a handler that finished), querying through reconnects.
async fn acked_all(url: &str, run: &Run, tag: &str) {
    let ids: Vec<String> = run
        .lines
        .lock()
        .iter()
        .filter(|l| l.starts_with(&format!("{tag} @@handled ")))
        .map(|l| l.split(' ').nth(2).unwrap().to_owned())
        .collect();
    loop {
        if let Ok((c, conn)) = tokio_postgres::connect(url, tokio_postgres::NoTls).await {
            tokio::spawn(conn);
            if let Ok(row) = c
                .query_one(
                    "SELECT count(*) FROM bubus_events_dedup WHERE group_name = $1 AND event_id = ANY($2) AND done_at IS NOT NULL",
                    &[&GROUP, &ids],
                )
                .await
            {
                if row.get::<_, i64>(0) as usize == ids.len() {
                    return;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks the handled lines: every published value exactly once.
fn check_exactly_once(lines: &[String], what: &str) {
    let mut by_value: HashMap<u64, usize> = HashMap::new();
    for l in lines.iter().filter(|l| l.contains("@@handled ")) {
        let v: u64 = l.rsplit(' ').next().unwrap().parse().unwrap();
        *by_value.entry(v).or_default() += 1;
    }
    let mut lost = 0;
    let mut expected_sum: u64 = 0;
    for p in 0..PUBLISHERS {
        for t in 0..TASKS {
            for k in 0..PER_TASK {
                let v = value(p, t, k);
                expected_sum += v;
                if !by_value.contains_key(&v) {
                    lost += 1;
                }
            }
        }
    }
    let dups: usize = by_value.values().map(|n| n - 1).sum();
    for (v, n) in by_value.iter().filter(|(_, n)| **n > 1) {
        let runs: Vec<&String> = lines
            .iter()
            .filter(|l| l.ends_with(&format!(" {v}")))
            .collect();
        println!("value {v} handled {n} times: {runs:?}");
    }
    let sum: u64 = by_value.iter().map(|(v, n)| v * *n as u64).sum();
    println!(
        "durable ({what}): {TOTAL} published, {} handled, {lost} lost, {dups} duplicate handler runs",
        by_value.values().sum::<usize>()
    );
    assert_eq!((lost, dups), (0, 0), "lost or duplicated events");
    assert_eq!(sum, expected_sum, "checksum");
}

/// What goes wrong twice mid-stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    /// The server crashes (`pg_ctl stop -m immediate`) and starts again.
    Restart,
    /// Every connection is cut by a TCP proxy between the processes and the server.
    Cut,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_through_two_restarts_and_a_killed_consumer() {
    scenario(Fault::Restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_through_two_cut_connections_and_a_killed_consumer() {
    scenario(Fault::Cut).await;
}

async fn scenario(fault: Fault) {
    let server = PgServer::start();
    let direct = server.url();
    let proxy = TcpProxy::start(server.port()).unwrap();
    // The processes connect through the proxy when it is the fault, directly otherwise.
    let url = match fault {
        Fault::Restart => direct.clone(),
        Fault::Cut => format!("postgresql://postgres@127.0.0.1:{}/postgres", proxy.port()),
    };
    let strike = |n: u32| {
        match fault {
            Fault::Restart => server.restart(),
            Fault::Cut => proxy.cut(),
        }
        println!("{fault:?} {n} done");
    };
    println!("server log: {}", server.log_path().display());
    // Create the tables and the group before anyone publishes.
    PgTransport::durable(&direct, consumer_opts())
        .await
        .unwrap();

    let mut run = Run::new();
    let mut a = spawn_role("consume", &url, &[("BUBUS_PG_HANG_AFTER", "1500".into())]);
    run.attach(&mut a, "A");
    let mut b = spawn_role("consume", &url, &[]);
    run.attach(&mut b, "B");
    let mut pubs = Vec::new();
    for p in 0..PUBLISHERS {
        let mut c = spawn_role("publish", &url, &[("BUBUS_PG_PUB", p.to_string())]);
        run.attach(&mut c, &format!("P{p}"));
        pubs.push(c);
    }

    // The first fault a third of the way.
    run.until(|l| Run::published(l) >= TOTAL / 3).await;
    strike(1);

    // Consumer A hangs in a handler after 1500 events: once its finished handlers are
    // acknowledged, SIGKILL it mid-handler and start it again.
    run.until(|l| Run::count(l, "A @@hang") > 0).await;
    acked_all(&direct, &run, "A").await;
    a.kill().await.unwrap();
    println!("consumer A killed mid-handler");
    let mut a2 = spawn_role("consume", &url, &[]);
    run.attach(&mut a2, "A2");

    // The second fault two thirds of the way.
    run.until(|l| Run::published(l) >= 2 * TOTAL / 3).await;
    strike(2);

    for mut p in pubs {
        assert!(p.wait().await.unwrap().success(), "a publisher failed");
    }
    run.until(|l| Run::count(l, "@@published") == PUBLISHERS as usize)
        .await;
    // Every event handled somewhere...
    run.until(|l| {
        let mut seen = std::collections::HashSet::new();
        for x in l.iter().filter(|x| x.contains("@@handled ")) {
            seen.insert(x.rsplit(' ').next().unwrap().to_owned());
        }
        seen.len() as u64 == TOTAL
    })
    .await;
    // ...and acknowledged: nothing can be delivered again.
    let check = PgTransport::durable(&direct, consumer_opts())
        .await
        .unwrap();
    while check.pending().await.unwrap() != 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    b.kill().await.unwrap();
    a2.kill().await.unwrap();
    check_exactly_once(&run.lines.lock(), &format!("{fault:?}"));
}
