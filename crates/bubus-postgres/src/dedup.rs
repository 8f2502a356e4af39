//! The durable mode's de-duplication: an atomic claim per (group, event) in the `T_dedup` table.
//!
//! Before a member's handlers run, its claim is an `INSERT … ON CONFLICT DO UPDATE` that only
//! takes a row that is free, expired, or already its own (`lease_owner`, `lease_until`); once
//! the event completed the claim becomes the mark that the group completed it (`done_at`), and
//! the ack of the delivery writes the mark again in the statement that deletes the delivery. The
//! consumer's batch claim of deliveries takes the claims of their ids in the same statement, so
//! the bridge's claim of a freshly delivered event usually needs no statement of its own. Claims
//! the claim loop already knows to be done (the same id published again) answer without a query,
//! and a window of the ids completed in this process answers a second delivery that arrives while
//! the first is still being acked.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bubus::bridge::{BoxFuture, Claim, DedupStore, MemoryDedup, TransportError};
use parking_lot::Mutex;
use uuid::Uuid;

use crate::conn::Conn;
use crate::durable::Tables;
use crate::error::PgError;
use bubus::bridge::Backoff;

/// A [`DedupStore`] backed by the durable tables: claims and marks in `T_dedup`, shared by every
/// member of the group, and a window of the ids completed here. Get it from
/// [`PgTransport::dedup`](crate::PgTransport::dedup);
/// [`PgTransport::bridge`](crate::PgTransport::bridge) installs it. In plain mode it is only the
/// window.
#[derive(Debug, Default)]
pub struct PgDedup {
    done_elsewhere: Mutex<HashSet<Uuid>>,
    /// Events whose claim the consumer's claim statement already took for this member, and
    /// when: the bridge's claim of one answers without a query while the claim is young.
    won_here: Mutex<HashMap<Uuid, Instant>>,
    /// Whether the consumer takes claims with the deliveries: only once a bridge built by
    /// [`PgTransport::bridge`](crate::PgTransport::bridge) uses this store (it releases or
    /// confirms each claim; a bare listener or another store would leave them to lapse).
    with_deliveries: AtomicBool,
    /// Events whose claim did not go to this member (another member holds it, or the table did
    /// not answer): the bridge hands their delivery back without running a handler, and that
    /// hand-back is not a failed delivery.
    handed_back: Mutex<HashSet<Uuid>>,
    window: MemoryDedup,
    table: Option<ClaimTable>,
}

#[derive(Debug)]
struct ClaimTable {
    conn: Arc<Conn>,
    tables: Tables,
    group: String,
    owner: String,
    lease: Duration,
    /// How long a claim statement keeps retrying through reconnects.
    patience: Duration,
}

impl ClaimTable {
    /// Runs `op` on the live client, reconnecting and retrying connection errors with backoff
    /// for `patience`.
    async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, TransportError>
    where
        F: FnMut(Arc<tokio_postgres::Client>) -> Fut,
        Fut: Future<Output = Result<T, PgError>>,
    {
        let deadline = Instant::now() + self.patience;
        let mut backoff = Backoff::new(self.conn.max_backoff());
        loop {
            let client = self.conn.get().await.map_err(|e| engine(what, &e))?;
            match op(client.clone()).await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_connection() && Instant::now() < deadline => {
                    self.conn.broken(&client).await;
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(e) => return Err(engine(what, &e)),
            }
        }
    }
}

fn engine(what: &str, e: &PgError) -> TransportError {
    TransportError::Engine(format!("{what}: {e}"))
}

impl PgDedup {
    /// The durable store of `group` on `tables`, claiming as `owner` for `lease`.
    pub(crate) fn durable(
        conn: Arc<Conn>,
        tables: Tables,
        group: String,
        owner: String,
        lease: Duration,
    ) -> PgDedup {
        PgDedup {
            table: Some(ClaimTable {
                conn,
                tables,
                group,
                owner,
                lease,
                patience: Duration::from_secs(30),
            }),
            ..PgDedup::default()
        }
    }

    /// Whether the last claim of `event_id` here went to nobody (held by another member, or
    /// unanswered), so a nack of its delivery is a hand-back, not a failure. Forgets it.
    pub(crate) fn take_handed_back(&self, event_id: &str) -> bool {
        Uuid::parse_str(event_id).is_ok_and(|id| self.handed_back.lock().remove(&id))
    }

    /// The lease the consumer's claim statement takes dedup claims for (see
    /// [`mark_won`](Self::mark_won)); `None` in plain mode.
    pub(crate) fn batch_lease(&self) -> Option<Duration> {
        if !self.with_deliveries.load(Ordering::Relaxed) {
            return None;
        }
        self.table.as_ref().map(|t| t.lease)
    }

    /// Lets the consumer take claims with the deliveries (see [`mark_won`](Self::mark_won)).
    pub(crate) fn claim_with_deliveries(&self) {
        self.with_deliveries.store(true, Ordering::Relaxed);
    }

    /// Called by the claim loop for a claimed row whose dedup claim its statement took for
    /// this member, a statement sent at `asked`.
    pub(crate) fn mark_won(&self, event_id: &str, asked: Instant) {
        if let Ok(id) = Uuid::parse_str(event_id) {
            let mut won = self.won_here.lock();
            // Deliveries the bridge never claims (echoes, replies) leave theirs behind.
            if won.len() >= 4096 {
                let young = self.table.as_ref().map_or(Duration::ZERO, |t| t.lease / 3);
                won.retain(|_, at| at.elapsed() < young);
            }
            won.insert(id, asked);
        }
    }

    /// Called by the claim loop for a claimed row whose id the group already completed.
    pub(crate) fn mark_done(&self, event_id: &str) {
        if let Ok(id) = Uuid::parse_str(event_id) {
            self.done_elsewhere.lock().insert(id);
        }
    }
}

impl DedupStore for PgDedup {
    fn claim(&self, event_id: Uuid) -> BoxFuture<'_, Result<Claim, TransportError>> {
        // Taken out when asked: the set holds only deliveries on their way to the bridge.
        let known = self.done_elsewhere.lock().remove(&event_id);
        Box::pin(async move {
            if known {
                return Ok(Claim::Done);
            }
            // Completed here, its ack (which writes the table's mark) maybe not yet written.
            // The window is only asked: claims live in the table.
            match self.window.claim(event_id).await? {
                Claim::Done => return Ok(Claim::Done),
                Claim::Won => self.window.release(event_id).await?,
                _ => {}
            }
            let Some(t) = &self.table else {
                return Ok(Claim::Won);
            };
            // Taken with the delivery, in the same committed statement. Used only while at
            // most a third of the lease is gone, so the bridge's first renewal (a third of the
            // lease after the handlers start) comes while it still holds the claim; an older
            // one is taken again below (it is this member's own, so that wins unless it lapsed
            // and another member took it).
            let pre = self.won_here.lock().remove(&event_id);
            if pre.is_some_and(|at| at.elapsed() < t.lease / 3) {
                return Ok(Claim::Won);
            }
            let id = event_id.to_string();
            let lease = t.lease.as_secs_f64();
            let answer = t
                .run("PostgreSQL dedup claim", |client| {
                    let id = &id;
                    async move {
                        t.tables
                            .claim_event(&client, &t.group, id, &t.owner, lease)
                            .await
                    }
                })
                .await;
            let Ok((won, done, left)) = answer else {
                self.handed_back.lock().insert(event_id);
                return answer.map(|_| Claim::Won);
            };
            if !won && done != Some(true) {
                self.handed_back.lock().insert(event_id);
            }
            Ok(match (won, done, left) {
                (true, _, _) => Claim::Won,
                (false, Some(true), _) => Claim::Done,
                (false, _, left) => Claim::Held {
                    // Unknown (a claim committed meanwhile): look again shortly.
                    retry_after: left.map_or(Duration::from_secs(1), |s| {
                        Duration::from_secs_f64(s.clamp(0.1, 86_400.0))
                    }),
                },
            })
        })
    }

    fn renew(&self, event_id: Uuid) -> BoxFuture<'_, Result<bool, TransportError>> {
        Box::pin(async move {
            let Some(t) = &self.table else {
                return Ok(true);
            };
            let id = event_id.to_string();
            let lease = t.lease.as_secs_f64();
            t.run("PostgreSQL dedup renew", |client| {
                let id = &id;
                async move {
                    t.tables
                        .renew_event(&client, &t.group, id, &t.owner, lease)
                        .await
                }
            })
            .await
        })
    }

    fn confirm(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.window.confirm(event_id).await?;
            let Some(t) = &self.table else {
                return Ok(());
            };
            let id = event_id.to_string();
            t.run("PostgreSQL dedup confirm", |client| {
                let id = &id;
                async move { t.tables.confirm_event(&client, &t.group, id).await }
            })
            .await
        })
    }

    fn release(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.window.release(event_id).await?;
            let Some(t) = &self.table else {
                return Ok(());
            };
            let id = event_id.to_string();
            t.run("PostgreSQL dedup release", |client| {
                let id = &id;
                async move {
                    t.tables
                        .release_event(&client, &t.group, id, &t.owner)
                        .await
                }
            })
            .await
        })
    }

    fn lease(&self) -> Option<Duration> {
        self.table.as_ref().map(|t| t.lease)
    }
}
