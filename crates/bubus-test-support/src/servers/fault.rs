//! The fault run of the durable bridges (issue 17 §7), engine-agnostic: publisher and consumer
//! worker processes on one transport while the test restarts the server or cuts connections
//! and SIGKILLs a consumer mid-handler; every handler run is reported on stdout, so the test
//! counts them even for the killed process.
//!
//! An engine's test file provides the worker entry (an ignored test that builds its bridge
//! from the environment and calls [`consumer`] or [`publisher`]) and the disruption.

use std::collections::HashMap;
use std::io::BufRead;
use std::time::Duration;

use bubus::bridge::Bridge;
use bubus::{AnyEvent, DynEvent, EventHandle};
use serde_json::json;

use super::Worker;

/// The event type of the fault runs.
pub const EVENT_TYPE: &str = "FaultPing";

/// How long a fault run may take before it fails with what it saw.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The shape of a run: `publishers` processes of `tasks` tasks, each sending `per_task` events.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Publisher processes.
    pub publishers: u64,
    /// Sending tasks per publisher.
    pub tasks: u64,
    /// Events per task.
    pub per_task: u64,
    /// The consumer that is killed handles this many events, then gets stuck in a handler.
    pub stuck_after: usize,
}

impl Plan {
    /// 10 000 events: 2 processes × 2 tasks × 2 500.
    pub const ISSUE: Plan = Plan {
        publishers: 2,
        tasks: 2,
        per_task: 2_500,
        stuck_after: 1_500,
    };

    /// Every event of the run.
    pub fn total(&self) -> u64 {
        self.publishers * self.tasks * self.per_task
    }

    /// The sum of every event's number (1..=total): the checksum.
    pub fn checksum(&self) -> u128 {
        let n = u128::from(self.total());
        n * (n + 1) / 2
    }
}

/// A fault run's event, numbered from 1.
pub fn fault_event(n: u64) -> AnyEvent {
    let event = DynEvent::new(EVENT_TYPE, json!({ "n": n })).expect("a valid dynamic event");
    EventHandle::new(event).to_any()
}

/// The consumer worker: registers the counting handler on `bridge`, starts it, reports
/// `ready`, and runs until its stdin says `stop` (or closes); then closes the bridge and
/// reports `bye`. Each completed handler run reports `handled <n>`. With `stuck_after`, the
/// handler run after that many gets stuck (it reports `stuck <n>` from inside the handler and
/// never returns): the test kills the process there.
pub async fn consumer(bridge: Bridge, stuck_after: Option<usize>) {
    let handled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    bridge.on(EVENT_TYPE, move |event: AnyEvent| {
        let handled = std::sync::Arc::clone(&handled);
        async move {
            let n = event.to_json()["n"].as_u64().unwrap_or(0);
            let done = handled.load(std::sync::atomic::Ordering::SeqCst);
            if stuck_after.is_some_and(|k| done >= k) {
                // Lets the events before this one finish their acks, so that the only event
                // the kill interrupts is this one, mid-handler.
                tokio::time::sleep(Duration::from_millis(300)).await;
                println!("@@stuck {n}");
                std::future::pending::<()>().await;
            }
            handled.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            println!("@@handled {n}");
        }
    });
    bridge.start().await.expect("consumer bridge starts");
    println!("@@ready");
    let _ = tokio::task::spawn_blocking(|| {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            match line {
                Ok(l) if l.trim() == "stop" => return,
                Ok(_) => {}
                Err(_) => return,
            }
        }
    })
    .await;
    bridge.close().await.expect("consumer bridge closes");
    println!("@@bye");
}

/// The publisher worker number `index`: sends its share of the plan's events over `bridge`
/// from `plan.tasks` tasks, retrying a send that fails; reports `progress <k>` every 100
/// events sent and `sent <count>` at the end.
pub async fn publisher(bridge: Bridge, index: u64, plan: Plan) {
    let bridge = std::sync::Arc::new(bridge);
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..plan.tasks {
        let bridge = std::sync::Arc::clone(&bridge);
        let progress = std::sync::Arc::clone(&progress);
        tasks.spawn(async move {
            let first = (index * plan.tasks + t) * plan.per_task + 1;
            let mut sent = 0u64;
            for n in first..first + plan.per_task {
                let event = fault_event(n);
                let mut tries = 0;
                loop {
                    match bridge.send(&event).await {
                        Ok(()) => break,
                        Err(e) if tries < 20 => {
                            tries += 1;
                            eprintln!("publisher {index}: send {n} failed ({e}); retrying");
                        }
                        Err(e) => panic!("publisher {index}: send {n} failed for good: {e}"),
                    }
                }
                sent += 1;
                let k = progress.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if k % 100 == 0 {
                    println!("@@progress {k}");
                }
            }
            sent
        });
    }
    let mut sent = 0;
    while let Some(done) = tasks.join_next().await {
        sent += done.expect("a publisher task");
    }
    bridge.close().await.expect("publisher bridge closes");
    println!("@@sent {sent}");
}

/// What a run saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Events the plan sent.
    pub expected: u64,
    /// Handler runs reported by every consumer process (the killed one too).
    pub runs: u64,
    /// Distinct events handled.
    pub distinct: u64,
    /// Events never handled.
    pub lost: u64,
    /// Handler runs beyond the first for an event.
    pub duplicates: u64,
    /// Whether the handled events' numbers add up to the plan's checksum.
    pub checksum_ok: bool,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} events sent, {} handler runs, {} distinct, {} lost, {} duplicate runs, checksum {}",
            self.expected,
            self.runs,
            self.distinct,
            self.lost,
            self.duplicates,
            if self.checksum_ok { "ok" } else { "WRONG" }
        )
    }
}

fn tally(plan: &Plan, consumers: &[&Worker]) -> Report {
    let mut counts: HashMap<u64, u64> = HashMap::new();
    for w in consumers {
        for line in w.reports() {
            if let Some(n) = line.strip_prefix("handled ").and_then(|n| n.parse().ok()) {
                *counts.entry(n).or_default() += 1;
            }
        }
    }
    let runs: u64 = counts.values().sum();
    let distinct = counts.len() as u64;
    let valid = counts.keys().all(|n| (1..=plan.total()).contains(n));
    let sum: u128 = counts.keys().map(|&n| u128::from(n)).sum();
    Report {
        expected: plan.total(),
        runs,
        distinct,
        lost: plan.total().saturating_sub(distinct),
        duplicates: runs - distinct,
        checksum_ok: valid && sum == plan.checksum(),
    }
}

/// Waits (in slices, across several workers) until `done` holds for the consumers, or
/// `timeout` passes; returns whether it held.
fn wait_all(consumers: &[&Worker], timeout: Duration, done: impl Fn(&[&Worker]) -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if done(consumers) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        // Wakes on the first worker's next report, or after a slice to look at the others.
        if let Some(w) = consumers.first() {
            let seen = w.report_count();
            w.wait_reports(Duration::from_millis(50), |l| l.len() > seen);
        }
    }
}

/// Waits until the publisher has sent `share` % of its events (or finished); returns whether
/// it was still sending (so what follows happens mid-stream).
fn wait_progress(publisher: &Worker, plan: &Plan, share: u64) -> bool {
    let mark = plan.total() / plan.publishers * share / 100;
    let mut mid_stream = true;
    publisher.wait_reports(RUN_TIMEOUT, |lines| {
        lines.iter().any(|l| {
            if l.starts_with("sent ") {
                mid_stream = false;
                return true;
            }
            l.strip_prefix("progress ")
                .and_then(|k| k.parse::<u64>().ok())
                .is_some_and(|k| k >= mark)
        })
    });
    mid_stream
}

fn stop(worker: &mut Worker) {
    let _ = worker.send_line("stop");
    let status = worker.wait().expect("worker exits");
    assert!(status.success(), "{} exited with {status}", worker.role());
}

/// The durable run: two consumers (one of which gets stuck mid-handler after
/// `plan.stuck_after` events and is SIGKILLed, and a fresh consumer started in its place), the
/// publishers, and `disrupt(1)` / `disrupt(2)` (a server restart, a cut connection) when the
/// first publisher has sent 10 % and 60 % of its events. Returns once every event was handled
/// and the consumers stopped.
///
/// `spawn(role)` starts a worker: roles are `consumer`, `consumer:stuck` and `publisher:<i>`.
pub fn durable_run(
    plan: Plan,
    spawn: impl Fn(&str) -> Worker,
    mut disrupt: impl FnMut(u32),
) -> Report {
    let mut stuck = spawn("consumer:stuck");
    let mut steady = spawn("consumer");
    for w in [&stuck, &steady] {
        assert!(
            w.wait_report("ready", RUN_TIMEOUT).is_some(),
            "{} never got ready",
            w.role()
        );
    }
    let mut publishers: Vec<Worker> = (0..plan.publishers)
        .map(|i| spawn(&format!("publisher:{i}")))
        .collect();
    let total = plan.total();
    // Both disruptions while the publishers are sending.
    for (step, share) in [(1, 10), (2, 60)] {
        assert!(
            wait_progress(&publishers[0], &plan, share),
            "the publishers finished before disruption {step}"
        );
        disrupt(step);
    }
    assert!(
        stuck.wait_report("stuck", RUN_TIMEOUT).is_some(),
        "the consumer to kill never got stuck: {}",
        tally(&plan, &[&stuck, &steady])
    );
    stuck.kill();
    let mut fresh = spawn("consumer");
    assert!(
        fresh.wait_report("ready", RUN_TIMEOUT).is_some(),
        "the fresh consumer never got ready"
    );
    for p in &mut publishers {
        let status = p.wait().expect("publisher exits");
        assert!(status.success(), "{} failed ({status})", p.role());
        let sent = format!("sent {}", plan.total() / plan.publishers);
        assert!(
            p.reports().contains(&sent),
            "{} did not report {sent}",
            p.role()
        );
    }
    let all_handled = wait_all(&[&steady, &fresh, &stuck], RUN_TIMEOUT, |c| {
        tally(&plan, c).distinct >= total
    });
    stop(&mut steady);
    stop(&mut fresh);
    let report = tally(&plan, &[&stuck, &steady, &fresh]);
    assert!(all_handled, "not every event was handled: {report}");
    report
}

/// The plain (at-most-once) run: one consumer, the publishers, `disrupt(1)` and `disrupt(2)`
/// when the first publisher has sent 10 % and 60 % of its events; after the publishers are
/// done it waits until every event arrived or none arrived for `quiet`, and reports what was
/// lost.
pub fn plain_run(
    plan: Plan,
    spawn: impl Fn(&str) -> Worker,
    mut disrupt: impl FnMut(u32),
    quiet: Duration,
) -> Report {
    let mut consumer = spawn("consumer");
    assert!(
        consumer.wait_report("ready", RUN_TIMEOUT).is_some(),
        "consumer never got ready"
    );
    let mut publishers: Vec<Worker> = (0..plan.publishers)
        .map(|i| spawn(&format!("publisher:{i}")))
        .collect();
    let total = plan.total();
    for (step, share) in [(1, 10), (2, 60)] {
        wait_progress(&publishers[0], &plan, share);
        disrupt(step);
    }
    for p in &mut publishers {
        let status = p.wait().expect("publisher exits");
        assert!(status.success(), "{} failed ({status})", p.role());
    }
    loop {
        let seen = consumer.report_count();
        if seen as u64 > total || !consumer.wait_reports(quiet, |l| l.len() > seen) {
            break;
        }
    }
    stop(&mut consumer);
    tally(&plan, &[&consumer])
}

/// What a fault-run worker process is told: the server's URL, the channel of this run and the
/// engine's mode name (read from `FAULT_URL`, `FAULT_CHANNEL`, `FAULT_MODE`).
#[derive(Clone, Debug)]
pub struct WorkerEnv {
    /// The server's URL.
    pub url: String,
    /// The channel (subject, stream) of this run.
    pub channel: String,
    /// The engine's mode, as the test named it.
    pub mode: String,
}

/// Spawns fault-run workers (the test binary's `worker` test, under `role`) that all share one
/// fresh channel on `url`, in `mode`: the `spawn` argument of [`durable_run`] and [`plain_run`].
///
/// # Panics
///
/// If a worker process cannot be started.
pub fn spawner(url: String, mode: &'static str) -> impl Fn(&str) -> Worker {
    let channel = format!("fault_{}", uuid::Uuid::new_v4().simple());
    move |role| {
        Worker::spawn(
            "worker",
            role,
            &[
                ("FAULT_URL", url.clone()),
                ("FAULT_CHANNEL", channel.clone()),
                ("FAULT_MODE", mode.to_owned()),
            ],
        )
        .expect("spawn worker")
    }
}

/// The body of a fault-run worker process in `role` (`publisher:N`, `consumer`,
/// `consumer:stuck`): reads [`WorkerEnv`], builds the bridge with `bridge` (told whether it is
/// for a publisher) on a 2-worker runtime, and publishes or consumes as the plan says.
///
/// # Panics
///
/// If the environment is incomplete or the runtime cannot be built.
pub fn run_worker<F, Fut>(role: &str, bridge: F)
where
    F: FnOnce(WorkerEnv, bool) -> Fut,
    Fut: Future<Output = Bridge>,
{
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"));
    let worker_env = WorkerEnv {
        url: env("FAULT_URL"),
        channel: env("FAULT_CHANNEL"),
        mode: env("FAULT_MODE"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        if let Some(i) = role.strip_prefix("publisher:") {
            let index = i.parse().expect("publisher index");
            publisher(bridge(worker_env, true).await, index, Plan::ISSUE).await;
        } else {
            let stuck = (role == "consumer:stuck").then_some(Plan::ISSUE.stuck_after);
            consumer(bridge(worker_env, false).await, stuck).await;
        }
    });
}

/// Asserts a durable run handled every event exactly once (0 lost, 0 duplicate handler runs,
/// checksums right), printing the report under `what`.
///
/// # Panics
///
/// When it did not.
pub fn assert_exactly_once(what: &str, report: &Report) {
    println!("{what} durable fault run: {report}");
    assert_eq!(report.lost, 0, "{report}");
    assert_eq!(report.duplicates, 0, "{report}");
    assert!(report.checksum_ok, "{report}");
}
