//! The fault run of the durable bridges (issue 17 §7), engine-agnostic: publisher and consumer
//! worker processes on one transport while the test restarts the server or cuts connections
//! and SIGKILLs a consumer mid-handler; every handler run is reported on stdout, so the test
//! counts them even for the killed process.
//!
//! The kill is driven by the test, not by a count: after the second disruption it tells the
//! steady consumer to `hold` (its next handler run waits) and the consumer to kill to `stick`
//! (its next handler run gets stuck), so the events still coming can only go to the consumer to
//! kill, whatever share of the stream each consumer pulled so far.
//!
//! An engine's test file provides the worker entry (an ignored test that builds its bridge
//! from the environment and calls [`consumer`] or [`publisher`]) and the disruption.

use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
}

impl Plan {
    /// 10 000 events: 2 processes × 2 tasks × 2 500.
    pub const ISSUE: Plan = Plan {
        publishers: 2,
        tasks: 2,
        per_task: 2_500,
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
/// reports `bye`. Each completed handler run reports `handled <n>`.
///
/// Commands on stdin:
/// * `hold`: handler runs from now on wait (before they count) until `release`;
/// * `release`: they go on;
/// * `stick` (only with `to_kill`): the next handler run gets stuck and never returns. It
///   first waits until every earlier handled event of this process completed at the bridge
///   (its claim confirmed, its delivery acked), then reports `stuck <n>`: the test SIGKILLs the
///   process there, and the only handler run the kill interrupts is that one. (A kill between
///   a handler's end and its confirmation would make any store run that event again: that
///   window is the limit of at-least-once delivery, not what the fault run proves.)
pub async fn consumer(bridge: Bridge, to_kill: bool) {
    let handled = Arc::new(AtomicU64::new(0));
    let (gate, gate_rx) = tokio::sync::watch::channel(Gate::Open);
    // Only the consumer to kill looks at its own bridge (a handler holding its bridge is a
    // cycle, which that process does not outlive).
    let watch_bridge = to_kill.then(|| bridge.clone());
    bridge.on(EVENT_TYPE, move |event: AnyEvent| {
        let handled = Arc::clone(&handled);
        let mut gate = gate_rx.clone();
        let bridge = watch_bridge.clone();
        async move {
            let n = event.to_json()["n"].as_u64().unwrap_or(0);
            // The gate's sender is gone only once the worker stops: go on then.
            let state = gate
                .wait_for(|g| *g != Gate::Held)
                .await
                .map_or(Gate::Open, |g| *g);
            if let (Gate::Stick, Some(bridge)) = (state, bridge) {
                // Every event this process handled before is confirmed and acked first.
                let done = handled.load(Ordering::SeqCst);
                bridge.wait_metrics(|m| m.completed >= done).await;
                println!("@@stuck {n}");
                std::future::pending::<()>().await;
            }
            handled.fetch_add(1, Ordering::SeqCst);
            println!("@@handled {n}");
        }
    });
    bridge.start().await.expect("consumer bridge starts");
    println!("@@ready");
    let _ = tokio::task::spawn_blocking(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { return };
            match line.trim() {
                "stop" => return,
                "hold" => gate.send_replace(Gate::Held),
                "release" => gate.send_replace(Gate::Open),
                "stick" if to_kill => gate.send_replace(Gate::Stick),
                _ => continue,
            };
        }
    })
    .await;
    bridge.close().await.expect("consumer bridge closes");
    println!("@@bye");
}

/// What a consumer's next handler run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    /// Runs.
    Open,
    /// Waits for [`Gate::Open`].
    Held,
    /// Gets stuck (the consumer to kill).
    Stick,
}

/// The publisher worker number `index`: sends its share of the plan's events over `bridge`
/// from `plan.tasks` tasks, retrying a send that fails; reports `progress <k>` every 100
/// events sent, once the transport has flushed them to the server, and `sent <count>` at the end.
pub async fn publisher(bridge: Bridge, index: u64, plan: Plan) {
    let bridge = Arc::new(bridge);
    let progress = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..plan.tasks {
        let bridge = Arc::clone(&bridge);
        let progress = Arc::clone(&progress);
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
                let k = progress.fetch_add(1, Ordering::SeqCst) + 1;
                if k % 100 == 0 {
                    // Progress counts what the server has: a client that buffers publishes
                    // (core NATS while it connects or reconnects) could otherwise report the
                    // whole run sent before the server saw any of it, and a disruption timed
                    // by this progress would then fall before the first event arrived.
                    flush(&bridge, index).await;
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

/// Waits until the server has everything `bridge` sent so far, retrying through a reconnect.
async fn flush(bridge: &Bridge, index: u64) {
    for tries in 0.. {
        match bridge.transport().flush().await {
            Ok(()) => return,
            Err(e) if tries < 20 => eprintln!("publisher {index}: flush failed ({e}); retrying"),
            Err(e) => panic!("publisher {index}: flush failed for good: {e}"),
        }
    }
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
    /// Handler runs per consumer process (`<role> <pid>`), in the order the run started them.
    pub per_consumer: Vec<(String, u64)>,
    /// The first few events handled more than once, with the processes that ran them.
    pub twice: Vec<(u64, Vec<String>)>,
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
        )?;
        if !self.per_consumer.is_empty() {
            let each: Vec<String> = self
                .per_consumer
                .iter()
                .map(|(who, runs)| format!("{who}: {runs}"))
                .collect();
            write!(f, " ({})", each.join(", "))?;
        }
        for (n, who) in &self.twice {
            write!(f, "; event {n} ran in {}", who.join(" and "))?;
        }
        Ok(())
    }
}

fn tally(plan: &Plan, consumers: &[&Worker]) -> Report {
    let mut counts: HashMap<u64, Vec<usize>> = HashMap::new();
    let mut per_consumer = Vec::new();
    for (i, w) in consumers.iter().enumerate() {
        let mut runs = 0;
        for line in w.reports() {
            if let Some(n) = line.strip_prefix("handled ").and_then(|n| n.parse().ok()) {
                counts.entry(n).or_default().push(i);
                runs += 1;
            }
        }
        per_consumer.push((format!("{} {}", w.role(), w.pid()), runs));
    }
    let runs: u64 = counts.values().map(|c| c.len() as u64).sum();
    let distinct = counts.len() as u64;
    let valid = counts.keys().all(|n| (1..=plan.total()).contains(n));
    let sum: u128 = counts.keys().map(|&n| u128::from(n)).sum();
    let mut twice: Vec<(u64, Vec<String>)> = counts
        .iter()
        .filter(|(_, by)| by.len() > 1)
        .map(|(&n, by)| (n, by.iter().map(|&i| per_consumer[i].0.clone()).collect()))
        .collect();
    twice.sort();
    twice.truncate(5);
    Report {
        expected: plan.total(),
        runs,
        distinct,
        lost: plan.total().saturating_sub(distinct),
        duplicates: runs - distinct,
        checksum_ok: valid && sum == plan.checksum(),
        per_consumer,
        twice,
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

/// The durable run: two consumers, the publishers, and `disrupt(1)` / `disrupt(2)` (a server
/// restart, a cut connection) when the first publisher has sent 10 % and 60 % of its events.
/// Then, while the publishers still send, the steady consumer is told to `hold` and the
/// consumer to kill to `stick`: the next events can only go to the latter, which gets stuck in
/// the first one's handler (once its earlier events are confirmed and acked) and is SIGKILLed
/// there; the steady consumer is released and a fresh consumer started in the killed one's
/// place. Returns once every event was handled and the consumers stopped.
///
/// `spawn(role)` starts a worker: roles are `consumer`, `consumer:stuck` and `publisher:<i>`.
///
/// # Panics
///
/// With what it saw when a step fails: a worker that fails or exits early, the publishers
/// finishing before a disruption, events not all handled within [`RUN_TIMEOUT`].
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
    // The kill. The steady consumer holds what it has (at most its in-flight window), so
    // the events the publishers are still sending can only go to the consumer to kill.
    steady.send_line("hold").expect("hold the steady consumer");
    stuck
        .send_line("stick")
        .expect("tell the consumer to kill to stick");
    // Returns early if the worker exits.
    let stuck_at = stuck.wait_report("stuck ", RUN_TIMEOUT);
    assert!(
        stuck_at.is_some(),
        "the consumer to kill never got stuck{}: {}",
        if stuck.has_exited() {
            " (it exited)"
        } else {
            ""
        },
        tally(&plan, &[&stuck, &steady])
    );
    stuck.kill();
    steady
        .send_line("release")
        .expect("release the steady consumer");
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
    // Every event handled, or a consumer that can no longer handle any.
    wait_all(&[&steady, &fresh, &stuck], RUN_TIMEOUT, |c| {
        tally(&plan, c).distinct >= total || steady.has_exited() || fresh.has_exited()
    });
    let report = tally(&plan, &[&stuck, &steady, &fresh]);
    assert!(
        report.distinct >= total,
        "not every event was handled: {report}"
    );
    stop(&mut steady);
    stop(&mut fresh);
    tally(&plan, &[&stuck, &steady, &fresh])
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
            consumer(bridge(worker_env, false).await, role == "consumer:stuck").await;
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
