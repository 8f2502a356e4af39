//! The durable consumer: claims deliveries of its group under a lease, hands them out, keeps
//! their leases alive while they run, and acknowledges or fails them — across reconnects.
//!
//! `LISTEN` only wakes it; it also looks every `poll_interval` (leases of dead members expire
//! without a notification) and right after every reconnect (what was published meanwhile).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use crate::conn::{Backoff, Conn, Heard, listen};
use crate::durable::{Claimed, Tables};
use crate::error::PgError;

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
}

/// A claimed event on its way to the bus.
#[derive(Debug)]
pub(crate) struct Claim {
    pub(crate) seq: i64,
    pub(crate) attempts: i32,
    pub(crate) event_id: String,
    pub(crate) body: String,
}

/// The outcome of a claim, sent back by whoever handled it.
#[derive(Debug)]
pub(crate) enum Outcome {
    Ack(i64),
    Nack {
        seq: i64,
        error: String,
    },
    /// Let the lease lapse (the bus is closing): another member, or this one after a restart,
    /// takes it.
    Release(i64),
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
}

/// Starts the claim loop, the outcome writer and the lease keeper; claimed events go to `out`.
pub(crate) fn start(
    tables: Tables,
    settings: ConsumerSettings,
    conn: Arc<Conn>,
    listen_config: tokio_postgres::Config,
    out: mpsc::Sender<Claim>,
) -> ConsumerHandle {
    let stop = Arc::new(Notify::new());
    let shared = Arc::new(Shared {
        tables,
        settings,
        conn,
        in_flight: Mutex::new(HashSet::new()),
        capacity: Notify::new(),
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
    let keeper = tokio::spawn(lease_loop(shared));
    ConsumerHandle {
        outcomes: outcomes_tx,
        stop,
        tasks: vec![listener, claimer, writer, keeper],
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
        let claimed: Vec<Claimed> = match shared
            .tables
            .claim(&client, &s.group, &s.owner, limit, s.lease.as_secs_f64())
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
                tokio::time::sleep(backoff.step()).await;
                continue;
            }
        };
        let got = claimed.len();
        for c in claimed {
            if c.done {
                // Published twice; the group already completed this id.
                let _ = outcomes.send(Outcome::Ack(c.seq));
                continue;
            }
            if c.attempts > s.max_deliveries {
                // Every earlier delivery's lease lapsed without an outcome: its consumers died
                // on it (or never came back). It counts as failing.
                if shared.in_flight.lock().insert(c.seq) {
                    let error = format!(
                        "no outcome after {} deliveries (the consumers' leases lapsed)",
                        c.attempts - 1
                    );
                    let _ = outcomes.send(Outcome::Nack { seq: c.seq, error });
                }
                continue;
            }
            if !shared.in_flight.lock().insert(c.seq) {
                // Our own lease lapsed and we claimed it again while it still runs here.
                continue;
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
        let mut acks = Vec::new();
        let mut others = Vec::new();
        for o in batch.drain(..) {
            match o {
                Outcome::Ack(seq) => acks.push(seq),
                other => others.push(other),
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
                for o in &others {
                    match o {
                        Outcome::Nack { seq, error } => {
                            let dead = shared
                                .tables
                                .nack(
                                    &client,
                                    &s.group,
                                    *seq,
                                    error,
                                    s.max_deliveries,
                                    s.retry_delay.as_secs_f64(),
                                )
                                .await?;
                            if dead {
                                tracing::warn!(seq, error = %error, group = %s.group, "bubus-postgres: event dead-lettered");
                            }
                        }
                        Outcome::Release(seq) => {
                            shared
                                .tables
                                .extend(&client, &s.group, &s.owner, &[*seq], 0.0)
                                .await?;
                        }
                        Outcome::Ack(_) => {}
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
                        tracing::error!(error = %e, "bubus-postgres: writing an ack failed");
                    }
                    tokio::time::sleep(backoff.step()).await;
                }
            }
        }
        {
            let mut in_flight = shared.in_flight.lock();
            for seq in &acks {
                in_flight.remove(seq);
            }
            for o in &others {
                if let Outcome::Nack { seq, .. } | Outcome::Release(seq) = o {
                    in_flight.remove(seq);
                }
            }
        }
        shared.capacity.notify_one();
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
