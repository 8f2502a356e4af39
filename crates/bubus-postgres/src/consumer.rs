//! The durable consumer: claims deliveries of its group under a lease, hands them out, keeps
//! their leases alive while they run, and acknowledges or fails them — across reconnects.
//!
//! `LISTEN` only wakes it; it also looks every `poll_interval` (leases of dead members expire
//! without a notification) and right after every reconnect (what was published meanwhile).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::conn::{Conn, Heard, listen};
use crate::dedup::PgDedup;
use crate::durable::{Claimed, Tables};
use crate::error::PgError;
use bubus::bridge::Backoff;

/// Settings of a durable consumer (see [`DurableOptions`](crate::DurableOptions)).
#[derive(Clone, Debug)]
pub(crate) struct ConsumerSettings {
    pub(crate) group: String,
    pub(crate) owner: String,
    pub(crate) lease: Duration,
    pub(crate) batch: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) poll_interval: Duration,
    pub(crate) max_deliveries: i32,
    pub(crate) retry_delay: Duration,
    /// The retention and how often to prune; `None` keeps everything.
    pub(crate) prune: Option<(Duration, Duration)>,
}

/// A claimed event on its way to the bus.
#[derive(Debug)]
pub(crate) struct Claim {
    pub(crate) seq: i64,
    pub(crate) attempts: i32,
    pub(crate) event_id: String,
    pub(crate) body: String,
}

/// The outcome of a claim, sent back by whoever handled it; `done` is told once it is written.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Handled: delete the delivery, remember the id as done for the group.
    Ack {
        seq: i64,
        done: Option<oneshot::Sender<()>>,
    },
    /// Failed: deliver again after `delay` (or the configured retry delay). Not `counted`: handed
    /// back without running (another member holds the event's claim), so the delivery does not
    /// count toward the dead letters.
    Nack {
        seq: i64,
        error: String,
        delay: Option<Duration>,
        counted: bool,
        done: Option<oneshot::Sender<()>>,
    },
    /// Give up: move it to the dead letters with `reason`.
    Dead {
        seq: i64,
        reason: String,
        done: Option<oneshot::Sender<()>>,
    },
    /// Let the lease lapse now (nobody will finish it here): another member takes it.
    Release(i64),
}

impl Outcome {
    fn seq(&self) -> i64 {
        match self {
            Outcome::Ack { seq, .. }
            | Outcome::Nack { seq, .. }
            | Outcome::Dead { seq, .. }
            | Outcome::Release(seq) => *seq,
        }
    }

    fn take_done(&mut self) -> Option<oneshot::Sender<()>> {
        match self {
            Outcome::Ack { done, .. } | Outcome::Nack { done, .. } | Outcome::Dead { done, .. } => {
                done.take()
            }
            Outcome::Release(_) => None,
        }
    }
}

/// Handles on a running consumer.
#[derive(Debug)]
pub(crate) struct ConsumerHandle {
    pub(crate) outcomes: mpsc::UnboundedSender<Outcome>,
    pub(crate) stop: Arc<Notify>,
    pub(crate) tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ConsumerHandle {
    pub(crate) fn shutdown(&self) {
        self.stop.notify_waiters();
        for t in &self.tasks {
            t.abort();
        }
    }
}

struct Shared {
    tables: Tables,
    settings: ConsumerSettings,
    conn: Arc<Conn>,
    in_flight: Mutex<HashSet<i64>>,
    capacity: Notify,
    dedup: Arc<PgDedup>,
}

/// Starts the claim loop, the outcome writer and the lease keeper; claimed events go to `out`.
pub(crate) fn start(
    tables: Tables,
    settings: ConsumerSettings,
    conn: Arc<Conn>,
    listen_config: tokio_postgres::Config,
    dedup: Arc<PgDedup>,
    out: mpsc::Sender<Claim>,
) -> ConsumerHandle {
    let stop = Arc::new(Notify::new());
    let shared = Arc::new(Shared {
        tables,
        settings,
        conn,
        in_flight: Mutex::new(HashSet::new()),
        capacity: Notify::new(),
        dedup,
    });
    let (heard_tx, heard_rx) = mpsc::unbounded_channel();
    let listener = listen(
        listen_config,
        vec![shared.tables.wake.clone()],
        shared.conn.max_backoff(),
        heard_tx,
        stop.clone(),
    );
    let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
    let claimer = tokio::spawn(claim_loop(
        shared.clone(),
        heard_rx,
        out,
        outcomes_tx.clone(),
    ));
    let writer = tokio::spawn(outcome_loop(shared.clone(), outcomes_rx));
    let mut tasks = vec![listener, claimer, writer];
    if let Some((retention, every)) = shared.settings.prune {
        tasks.push(tokio::spawn(prune_loop(shared.clone(), retention, every)));
    }
    tasks.push(tokio::spawn(lease_loop(shared)));
    ConsumerHandle {
        outcomes: outcomes_tx,
        stop,
        tasks,
    }
}

async fn claim_loop(
    shared: Arc<Shared>,
    mut heard: mpsc::UnboundedReceiver<Heard>,
    out: mpsc::Sender<Claim>,
    outcomes: mpsc::UnboundedSender<Outcome>,
) {
    let s = &shared.settings;
    let mut backoff = Backoff::new(shared.conn.max_backoff());
    loop {
        // Room for more?
        let room = loop {
            let room = s
                .max_in_flight
                .saturating_sub(shared.in_flight.lock().len());
            if room > 0 {
                break room;
            }
            shared.capacity.notified().await;
        };
        let client = match shared.conn.get().await {
            Ok(c) => c,
            Err(_) => return,
        };
        let limit = room.min(s.batch) as i64;
        // Before the statement: the claims it takes are at least this old.
        let asked = std::time::Instant::now();
        let claimed: Vec<Claimed> = match shared
            .tables
            .claim(
                &client,
                &s.group,
                &s.owner,
                limit,
                s.lease.as_secs_f64(),
                shared
                    .dedup
                    .batch_lease()
                    .map(|l| (l.as_secs_f64(), s.max_deliveries)),
            )
            .await
        {
            Ok(c) => {
                backoff.reset();
                c
            }
            Err(e) => {
                if e.is_connection() {
                    shared.conn.broken(&client).await;
                } else {
                    tracing::warn!(error = %e, "bubus-postgres: claim failed");
                }
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        let got = claimed.len();
        for c in claimed {
            if c.attempts > s.max_deliveries {
                // Every earlier delivery's lease lapsed without an outcome: its consumers died
                // on it (or never came back). It counts as failing.
                if shared.in_flight.lock().insert(c.seq) {
                    let reason = format!(
                        "no outcome after {} deliveries (the consumers' leases lapsed)",
                        c.attempts - 1
                    );
                    let _ = outcomes.send(Outcome::Dead {
                        seq: c.seq,
                        reason,
                        done: None,
                    });
                }
                continue;
            }
            if !shared.in_flight.lock().insert(c.seq) {
                // Our own lease lapsed and we claimed it again while it still runs here.
                tracing::debug!(
                    seq = c.seq,
                    attempts = c.attempts,
                    "bubus-postgres: claimed own in-flight row again"
                );
                continue;
            }
            if c.won {
                // The claim statement also took this member's dedup claim on the id: the
                // bridge's claim of it answers without a statement (and a commit) of its own.
                shared.dedup.mark_won(&c.event_id, asked);
            }
            if c.attempts > 1 {
                tracing::debug!(seq = c.seq, attempts = c.attempts, owner = %s.owner, "bubus-postgres: redelivery");
            }
            if c.done {
                // The same id was published again after the group completed it: the bridge's
                // dedup store hears it from here, without a query per event.
                shared.dedup.mark_done(&c.event_id);
            }
            let claim = Claim {
                seq: c.seq,
                attempts: c.attempts,
                event_id: c.event_id,
                body: c.body,
            };
            if out.send(claim).await.is_err() {
                return;
            }
        }
        if got as i64 == limit {
            continue;
        }
        // Nothing (more) to claim: wait for a wake-up, a reconnect or the poll interval.
        tokio::select! {
            h = heard.recv() => {
                if h.is_none() {
                    return;
                }
                // Coalesce a burst of notifications into one claim.
                while heard.try_recv().is_ok() {}
            }
            _ = tokio::time::sleep(s.poll_interval) => {}
        }
    }
}

async fn outcome_loop(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Outcome>) {
    let s = &shared.settings;
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 512).await > 0 {
        let acks: Vec<i64> = batch
            .iter()
            .filter(|o| matches!(o, Outcome::Ack { .. }))
            .map(Outcome::seq)
            .collect();
        // A row handed back (failed, released, dead) leaves the in-flight set before it becomes
        // claimable again, so this consumer never mistakes it for one it is still running. An
        // acked row stays (and keeps its lease) until the ack is written.
        {
            let mut in_flight = shared.in_flight.lock();
            for o in batch.iter().filter(|o| !matches!(o, Outcome::Ack { .. })) {
                in_flight.remove(&o.seq());
            }
        }
        // Never drop an outcome: retry through reconnects until it is written.
        let mut backoff = Backoff::new(shared.conn.max_backoff());
        loop {
            let client = match shared.conn.get().await {
                Ok(c) => c,
                Err(_) => return,
            };
            let r: Result<(), PgError> = async {
                if !acks.is_empty() {
                    shared.tables.ack(&client, &s.group, &acks).await?;
                }
                for o in &batch {
                    match o {
                        Outcome::Nack {
                            seq,
                            error,
                            delay,
                            counted,
                            ..
                        } => {
                            let delay = delay.unwrap_or(s.retry_delay);
                            if *counted {
                                shared
                                    .tables
                                    .nack(&client, &s.group, *seq, error, i32::MAX, delay.as_secs_f64())
                                    .await?;
                            } else {
                                shared
                                    .tables
                                    .hand_back(&client, &s.group, &s.owner, *seq, delay.as_secs_f64())
                                    .await?;
                            }
                        }
                        Outcome::Dead { seq, reason, .. } => {
                            shared
                                .tables
                                .nack(&client, &s.group, *seq, reason, 0, 0.0)
                                .await?;
                            tracing::warn!(seq, reason = %reason, group = %s.group, "bubus-postgres: event dead-lettered");
                        }
                        Outcome::Release(seq) => {
                            shared
                                .tables
                                .extend(&client, &s.group, &s.owner, &[*seq], 0.0)
                                .await?;
                        }
                        Outcome::Ack { .. } => {}
                    }
                }
                Ok(())
            }
            .await;
            match r {
                Ok(()) => break,
                Err(e) => {
                    if e.is_connection() {
                        shared.conn.broken(&client).await;
                    } else {
                        tracing::error!(error = %e, "bubus-postgres: writing an outcome failed");
                    }
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        }
        {
            let mut in_flight = shared.in_flight.lock();
            for seq in &acks {
                in_flight.remove(seq);
            }
        }
        for mut o in batch.drain(..) {
            if let Some(done) = o.take_done() {
                let _ = done.send(());
            }
        }
        shared.capacity.notify_one();
    }
}

/// Prunes every `every`; every member of every group does, and their statements skip each
/// other's locked rows.
async fn prune_loop(shared: Arc<Shared>, retention: Duration, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Ok(client) = shared.conn.get().await else {
            return;
        };
        match crate::transport::prune_pass(&shared.tables, &client, retention).await {
            Ok(p) if p.events > 0 => {
                tracing::debug!(
                    events = p.events,
                    dedup_rows = p.dedup_rows,
                    "bubus-postgres: pruned"
                );
            }
            Ok(_) => {}
            Err(e) => {
                if e.is_connection() {
                    shared.conn.broken(&client).await;
                }
                tracing::debug!(error = %e, "bubus-postgres: pruning failed");
            }
        }
    }
}

async fn lease_loop(shared: Arc<Shared>) {
    let s = &shared.settings;
    let every = s.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let seqs: Vec<i64> = shared.in_flight.lock().iter().copied().collect();
        if seqs.is_empty() {
            continue;
        }
        let Ok(client) = shared.conn.get().await else {
            return;
        };
        if let Err(e) = shared
            .tables
            .extend(&client, &s.group, &s.owner, &seqs, s.lease.as_secs_f64())
            .await
        {
            if e.is_connection() {
                shared.conn.broken(&client).await;
            }
            tracing::debug!(error = %e, "bubus-postgres: extending leases failed");
        }
    }
}
