//! The durable mode's tables and statements: an outbox of events, one delivery row per
//! (consumer group, event) claimed with `FOR UPDATE SKIP LOCKED` under a lease, a dedup table and
//! a dead-letter table.
//!
//! For an events table `T`:
//!
//! | table | rows |
//! | --- | --- |
//! | `T` | `seq BIGSERIAL`, `event_id`, `event_type`, `body` (the event's JSON), `published_at` |
//! | `T_groups` | one per consumer group |
//! | `T_deliveries` | one per (group, event) not yet acknowledged: `attempts`, `available_at` (the lease's end), `lease_owner`, `last_error` |
//! | `T_dedup` | (group, `event_id`): a member's claim while its handlers run (`lease_owner`, `lease_until`), then the mark that the group completed the event (`done_at`) |
//! | `T_dead` | dead letters: (group, seq) with a copy of the event, `attempts`, `error` |
//!
//! A trigger on `T` adds a delivery row for every group and sends `NOTIFY T_wake` — inside the
//! producer's transaction, so an event written with [`publish_in`](crate::PgBridge::publish_in)
//! becomes visible (and wakes consumers) exactly when that transaction commits, and never if it
//! rolls back.

use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use crate::error::PgError;
use crate::plain::ignore_concurrent_ddl;

/// Where a new consumer group starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupStart {
    /// With every event still in the events table (the default).
    #[default]
    Beginning,
    /// With the events published after the group was created.
    New,
}

/// A claimed delivery.
#[derive(Clone, Debug)]
pub(crate) struct Claimed {
    pub(crate) seq: i64,
    pub(crate) attempts: i32,
    pub(crate) event_id: String,
    pub(crate) body: String,
    /// The group already completed an event with this id (it was published twice).
    pub(crate) done: bool,
    /// The statement took `owner`'s dedup claim on the event id (see [`Tables::claim`]).
    pub(crate) won: bool,
}

/// What one [`PgTransport::prune`](crate::PgTransport::prune) deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pruned {
    /// Events every group had acknowledged, published longer ago than the retention.
    pub events: u64,
    /// The groups' dedup rows of those events.
    pub dedup_rows: u64,
}

/// A dead letter: an event a group gave up on, with why.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// The consumer group that gave up.
    pub group: String,
    /// The event's sequence number in the events table.
    pub seq: i64,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The event's JSON.
    pub body: String,
    /// How many deliveries failed.
    pub attempts: i32,
    /// The last failure (a handler error or why the event could not be decoded).
    pub error: Option<String>,
    /// When it was dead-lettered (RFC 3339, as the server formats it).
    pub dead_at: String,
}

/// The durable tables of one events table.
#[derive(Clone, Debug)]
pub(crate) struct Tables {
    pub(crate) events: String,
    deliveries: String,
    groups: String,
    dedup: String,
    dead: String,
    pub(crate) wake: String,
}

impl Tables {
    pub(crate) fn new(events: &str) -> Result<Tables, PgError> {
        if !crate::url::is_identifier(events) || events.len() > 50 {
            return Err(PgError::InvalidName {
                what: "durable events table (at most 50 characters)",
                name: events.to_owned(),
            });
        }
        Ok(Tables {
            events: events.to_owned(),
            deliveries: format!("{events}_deliveries"),
            groups: format!("{events}_groups"),
            dedup: format!("{events}_dedup"),
            dead: format!("{events}_dead"),
            wake: format!("{events}_wake"),
        })
    }

    /// Creates the tables and the fan-out trigger if missing (serialized by an advisory lock, so
    /// many processes may start at once).
    pub(crate) async fn ensure(&self, client: &mut tokio_postgres::Client) -> Result<(), PgError> {
        let Tables {
            events: t,
            deliveries: d,
            groups: g,
            dedup: x,
            dead,
            wake,
        } = self;
        let tx = client.transaction().await?;
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            &[&format!("bubus-durable:{t}")],
        )
        .await?;
        tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS \"{t}\" (seq BIGSERIAL PRIMARY KEY, event_id TEXT NOT NULL, \
               event_type TEXT NOT NULL, body TEXT NOT NULL, published_at TIMESTAMPTZ NOT NULL DEFAULT now());
             CREATE INDEX IF NOT EXISTS \"{t}_event_id\" ON \"{t}\" (event_id);
             CREATE TABLE IF NOT EXISTS \"{g}\" (group_name TEXT PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL DEFAULT now());
             CREATE TABLE IF NOT EXISTS \"{d}\" (group_name TEXT NOT NULL, seq BIGINT NOT NULL, \
               attempts INT NOT NULL DEFAULT 0, available_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
               lease_owner TEXT, last_error TEXT, PRIMARY KEY (group_name, seq));
             CREATE INDEX IF NOT EXISTS \"{d}_ready\" ON \"{d}\" (group_name, available_at);
             CREATE TABLE IF NOT EXISTS \"{x}\" (group_name TEXT NOT NULL, event_id TEXT NOT NULL, \
               done_at TIMESTAMPTZ DEFAULT now(), PRIMARY KEY (group_name, event_id));
             DO $m$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() \
                   AND table_name = '{x}' AND column_name = 'lease_until') THEN
                 ALTER TABLE \"{x}\" ALTER COLUMN done_at DROP NOT NULL, \
                   ADD COLUMN lease_owner TEXT, ADD COLUMN lease_until TIMESTAMPTZ;
               END IF;
             END $m$;
             CREATE TABLE IF NOT EXISTS \"{dead}\" (group_name TEXT NOT NULL, seq BIGINT NOT NULL, \
               event_id TEXT NOT NULL, event_type TEXT NOT NULL, body TEXT NOT NULL, attempts INT NOT NULL, \
               error TEXT, dead_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (group_name, seq));
             CREATE OR REPLACE FUNCTION \"{t}_fanout\"() RETURNS trigger LANGUAGE plpgsql AS $f$
             BEGIN
               INSERT INTO \"{d}\" (group_name, seq) SELECT group_name, NEW.seq FROM \"{g}\";
               PERFORM pg_notify('{wake}', '');
               RETURN NEW;
             END $f$;
             DO $d$ BEGIN
               IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = '{t}_fanout' AND tgrelid = '\"{t}\"'::regclass) THEN
                 CREATE TRIGGER \"{t}_fanout\" AFTER INSERT ON \"{t}\" FOR EACH ROW EXECUTE FUNCTION \"{t}_fanout\"();
               END IF;
             END $d$;"
        ))
        .await?;
        // A table of that name made by something else (the family's plain table, say).
        let shape = tx
            .query_opt(
                "SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() \
                 AND table_name = $1 AND column_name = 'seq'",
                &[t],
            )
            .await?;
        if shape.is_none() {
            return Err(PgError::NotDurableTable(t.clone()));
        }
        // What pruning looks rows up by (see `prune_batch`).
        tx.batch_execute(&format!(
            "CREATE INDEX IF NOT EXISTS \"{t}_published_at\" ON \"{t}\" (published_at);
             CREATE INDEX IF NOT EXISTS \"{dead}_seq\" ON \"{dead}\" (seq);"
        ))
        .await?;
        tx.commit().await.or_else(ignore_concurrent_ddl)?;
        Ok(())
    }

    /// Creates the consumer group if missing. A new group starting at the
    /// [`Beginning`](GroupStart::Beginning) gets a delivery for every event in the table; the
    /// events table is locked against inserts meanwhile, so no event falls between the
    /// backfill and the trigger.
    pub(crate) async fn ensure_group(
        &self,
        client: &mut tokio_postgres::Client,
        group: &str,
        start: GroupStart,
    ) -> Result<(), PgError> {
        let exists = client
            .query_opt(
                &format!("SELECT 1 FROM \"{}\" WHERE group_name = $1", self.groups),
                &[&group],
            )
            .await?;
        if exists.is_some() {
            return Ok(());
        }
        let tx = client.transaction().await?;
        tx.batch_execute(&format!(
            "LOCK TABLE \"{}\" IN SHARE ROW EXCLUSIVE MODE",
            self.events
        ))
        .await?;
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO \"{}\" (group_name) VALUES ($1) ON CONFLICT DO NOTHING",
                    self.groups
                ),
                &[&group],
            )
            .await?;
        if inserted == 1 && start == GroupStart::Beginning {
            tx.execute(
                &format!(
                    "INSERT INTO \"{d}\" (group_name, seq) SELECT $1, e.seq FROM \"{t}\" e \
                     WHERE NOT EXISTS (SELECT 1 FROM \"{x}\" x WHERE x.group_name = $1 AND x.event_id = e.event_id \
                       AND x.done_at IS NOT NULL) \
                     ON CONFLICT DO NOTHING",
                    d = self.deliveries,
                    t = self.events,
                    x = self.dedup
                ),
                &[&group],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Writes an event to the outbox through `client` — a plain client or the caller's own
    /// transaction. The same event id written twice is delivered twice; receivers
    /// de-duplicate by id.
    pub(crate) async fn publish<C: GenericClient>(
        &self,
        client: &C,
        event_id: &str,
        event_type: &str,
        body: &str,
    ) -> Result<(), PgError> {
        client
            .execute(
                &format!(
                    "INSERT INTO \"{}\" (event_id, event_type, body) VALUES ($1, $2, $3)",
                    self.events
                ),
                &[&event_id, &event_type, &body],
            )
            .await?;
        Ok(())
    }

    /// Writes many events in one statement, skipping ids already in the table: a send retried
    /// after its reply was lost (a cut connection, a crash right after the commit) is not
    /// published twice.
    pub(crate) async fn publish_many<C: GenericClient>(
        &self,
        client: &C,
        ids: &[String],
        types: &[String],
        bodies: &[String],
    ) -> Result<u64, PgError> {
        Ok(client
            .execute(
                &format!(
                    "INSERT INTO \"{t}\" (event_id, event_type, body) \
                     SELECT u.* FROM unnest($1::text[], $2::text[], $3::text[]) AS u(id, ty, body) \
                     WHERE NOT EXISTS (SELECT 1 FROM \"{t}\" e WHERE e.event_id = u.id)",
                    t = self.events
                ),
                &[&ids, &types, &bodies],
            )
            .await?)
    }

    /// Claims up to `limit` available deliveries of `group` for `lease_secs`, oldest first;
    /// rows another consumer holds locked are skipped, not waited for. With `claim`, the same
    /// statement (one commit) also takes `owner`'s dedup claim on each delivery's event id for
    /// `claim.0` seconds where the claim is free, expired or already `owner`'s (as
    /// [`claim_event`](Self::claim_event) would), for deliveries of at most `claim.1` attempts;
    /// [`Claimed::won`] says which it took.
    pub(crate) async fn claim(
        &self,
        client: &tokio_postgres::Client,
        group: &str,
        owner: &str,
        limit: i64,
        lease_secs: f64,
        claim: Option<(f64, i32)>,
    ) -> Result<Vec<Claimed>, PgError> {
        let (claim_secs, max_attempts, take) = match claim {
            Some((secs, max)) => (secs, max, true),
            None => (0.0, 0, false),
        };
        let sql = format!(
            "WITH c AS (SELECT group_name, seq FROM \"{d}\" WHERE group_name = $1 AND available_at <= now() \
               ORDER BY seq LIMIT $2 FOR UPDATE SKIP LOCKED), \
             u AS (UPDATE \"{d}\" d SET attempts = d.attempts + 1, available_at = now() + make_interval(secs => $3), \
               lease_owner = $4 \
             FROM c, \"{t}\" e WHERE d.group_name = c.group_name AND d.seq = c.seq AND e.seq = d.seq \
             RETURNING d.seq, d.attempts, e.event_id, e.body), \
             won AS (INSERT INTO \"{x}\" AS x (group_name, event_id, done_at, lease_owner, lease_until) \
               SELECT DISTINCT $1, u.event_id, NULL::timestamptz, $4, now() + make_interval(secs => $5) \
               FROM u WHERE $7 AND u.attempts <= $6 ORDER BY u.event_id \
               ON CONFLICT (group_name, event_id) DO UPDATE SET lease_owner = EXCLUDED.lease_owner, \
                 lease_until = EXCLUDED.lease_until \
               WHERE x.done_at IS NULL AND (x.lease_until IS NULL OR x.lease_until < now() \
                 OR x.lease_owner = EXCLUDED.lease_owner) \
               RETURNING x.event_id) \
             SELECT u.seq, u.attempts, u.event_id, u.body, \
               EXISTS (SELECT 1 FROM \"{x}\" x WHERE x.group_name = $1 AND x.event_id = u.event_id \
               AND x.done_at IS NOT NULL), \
               EXISTS (SELECT 1 FROM won WHERE won.event_id = u.event_id) \
             FROM u",
            d = self.deliveries,
            t = self.events,
            x = self.dedup
        );
        let rows = client
            .query(
                &sql,
                &[
                    &group,
                    &limit,
                    &lease_secs,
                    &owner,
                    &claim_secs,
                    &max_attempts,
                    &take,
                ],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(Claimed {
                seq: r.try_get(0)?,
                attempts: r.try_get(1)?,
                event_id: r.try_get(2)?,
                body: r.try_get(3)?,
                done: r.try_get(4)?,
                won: r.try_get(5)?,
            });
        }
        out.sort_by_key(|c| c.seq);
        Ok(out)
    }

    /// Claims `event_id` for `owner` (free, expired, or already `owner`'s): `(won, done, seconds
    /// left on another member's claim)`; `done`/`left` are `None` when the row was written by a
    /// claim that committed while this one ran.
    pub(crate) async fn claim_event(
        &self,
        client: &tokio_postgres::Client,
        group: &str,
        event_id: &str,
        owner: &str,
        lease_secs: f64,
    ) -> Result<(bool, Option<bool>, Option<f64>), PgError> {
        let sql = format!(
            "WITH old AS (SELECT done_at IS NOT NULL AS done, \
                 extract(epoch FROM lease_until - now())::float8 AS left_secs \
               FROM \"{x}\" WHERE group_name = $1 AND event_id = $2), \
             won AS (INSERT INTO \"{x}\" AS x (group_name, event_id, done_at, lease_owner, lease_until) \
               VALUES ($1, $2, NULL, $3, now() + make_interval(secs => $4)) \
               ON CONFLICT (group_name, event_id) DO UPDATE SET lease_owner = EXCLUDED.lease_owner, \
                 lease_until = EXCLUDED.lease_until \
               WHERE x.done_at IS NULL AND (x.lease_until IS NULL OR x.lease_until < now() \
                 OR x.lease_owner = EXCLUDED.lease_owner) \
               RETURNING 1) \
             SELECT EXISTS (SELECT 1 FROM won), (SELECT done FROM old), (SELECT left_secs FROM old)",
            x = self.dedup
        );
        let row = client
            .query_one(&sql, &[&group, &event_id, &owner, &lease_secs])
            .await?;
        Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
    }

    /// Extends `owner`'s claim on `event_id`: whether it still held it.
    pub(crate) async fn renew_event(
        &self,
        client: &tokio_postgres::Client,
        group: &str,
        event_id: &str,
        owner: &str,
        lease_secs: f64,
    ) -> Result<bool, PgError> {
        let sql = format!(
            "UPDATE \"{x}\" SET lease_until = now() + make_interval(secs => $4) \
             WHERE group_name = $1 AND event_id = $2 AND lease_owner = $3 AND done_at IS NULL",
            x = self.dedup
        );
        let n = client
            .execute(&sql, &[&group, &event_id, &owner, &lease_secs])
            .await?;
        Ok(n == 1)
    }

    /// Marks `event_id` done for the group (whoever held the claim).
    pub(crate) async fn confirm_event(
        &self,
        client: &tokio_postgres::Client,
        group: &str,
        event_id: &str,
    ) -> Result<(), PgError> {
        let sql = format!(
            "INSERT INTO \"{x}\" AS x (group_name, event_id, done_at) VALUES ($1, $2, now()) \
             ON CONFLICT (group_name, event_id) DO UPDATE SET done_at = now(), lease_owner = NULL, \
               lease_until = NULL WHERE x.done_at IS NULL",
            x = self.dedup
        );
        client.execute(&sql, &[&group, &event_id]).await?;
        Ok(())
    }

    /// Drops `owner`'s claim on `event_id` (if it still holds it).
    pub(crate) async fn release_event(
        &self,
        client: &tokio_postgres::Client,
        group: &str,
        event_id: &str,
        owner: &str,
    ) -> Result<(), PgError> {
        let sql = format!(
            "DELETE FROM \"{x}\" WHERE group_name = $1 AND event_id = $2 AND lease_owner = $3 \
             AND done_at IS NULL",
            x = self.dedup
        );
        client.execute(&sql, &[&group, &event_id, &owner]).await?;
        Ok(())
    }

    /// Acknowledges deliveries: deletes them and marks their event ids done for the group (the
    /// member's claim becomes the mark), in one statement.
    pub(crate) async fn ack(
        &self,
        client: &tokio_postgres::Client,
        group: &str,
        seqs: &[i64],
    ) -> Result<(), PgError> {
        let sql = format!(
            "WITH gone AS (DELETE FROM \"{d}\" WHERE group_name = $1 AND seq = ANY($2) RETURNING seq) \
             INSERT INTO \"{x}\" (group_name, event_id, done_at) SELECT DISTINCT $1, e.event_id, now() \
               FROM \"{t}\" e WHERE e.seq = ANY($2) \
             ON CONFLICT (group_name, event_id) DO UPDATE SET done_at = now(), lease_owner = NULL, \
               lease_until = NULL WHERE \"{x}\".done_at IS NULL",
            d = self.deliveries,
            t = self.events,
            x = self.dedup
        );
        client.execute(&sql, &[&group, &seqs]).await?;
        Ok(())
    }

    /// A failed delivery: after `max_attempts` it moves to the dead letters with `error`,
    /// otherwise it becomes available again after `retry_secs`. Returns whether it was
    /// dead-lettered.
    pub(crate) async fn nack(
        &self,
        client: &tokio_postgres::Client,
        group: &str,
        seq: i64,
        error: &str,
        max_attempts: i32,
        retry_secs: f64,
    ) -> Result<bool, PgError> {
        let sql = format!(
            "WITH moved AS (DELETE FROM \"{d}\" WHERE group_name = $1 AND seq = $2 AND attempts >= $3 \
               RETURNING group_name, seq, attempts), \
             dead AS (INSERT INTO \"{dead}\" (group_name, seq, event_id, event_type, body, attempts, error) \
               SELECT m.group_name, m.seq, e.event_id, e.event_type, e.body, m.attempts, $4 \
               FROM moved m JOIN \"{t}\" e ON e.seq = m.seq \
               ON CONFLICT (group_name, seq) DO UPDATE SET attempts = EXCLUDED.attempts, \
                 error = EXCLUDED.error, dead_at = now() RETURNING 1) \
             UPDATE \"{d}\" SET available_at = now() + make_interval(secs => $5), last_error = $4, \
               lease_owner = NULL WHERE group_name = $1 AND seq = $2 AND attempts < $3 \
             RETURNING (SELECT count(*) FROM dead)",
            d = self.deliveries,
            t = self.events,
            dead = self.dead
        );
        let rows = client
            .query(&sql, &[&group, &seq, &max_attempts, &error, &retry_secs])
            .await?;
        Ok(rows.is_empty())
    }

    /// A delivery `owner` hands back without having run it (another member holds the event's
    /// claim): available again after `retry_secs`, and its claim's attempt uncounted, so waiting
    /// for another member never dead-letters it. A row `owner` no longer holds is left alone.
    pub(crate) async fn hand_back(
        &self,
        client: &tokio_postgres::Client,
        group: &str,
        owner: &str,
        seq: i64,
        retry_secs: f64,
    ) -> Result<(), PgError> {
        client
            .execute(
                &format!(
                    "UPDATE \"{}\" SET attempts = GREATEST(attempts - 1, 0), \
                       available_at = now() + make_interval(secs => $4), lease_owner = NULL \
                     WHERE group_name = $1 AND seq = $2 AND lease_owner = $3",
                    self.deliveries
                ),
                &[&group, &seq, &owner, &retry_secs],
            )
            .await?;
        Ok(())
    }

    /// Extends the lease of deliveries `owner` still holds.
    pub(crate) async fn extend(
        &self,
        client: &tokio_postgres::Client,
        group: &str,
        owner: &str,
        seqs: &[i64],
        lease_secs: f64,
    ) -> Result<(), PgError> {
        client
            .execute(
                &format!(
                    "UPDATE \"{}\" SET available_at = now() + make_interval(secs => $4) \
                     WHERE group_name = $1 AND seq = ANY($2) AND lease_owner = $3",
                    self.deliveries
                ),
                &[&group, &seqs, &owner, &lease_secs],
            )
            .await?;
        Ok(())
    }

    /// The dead letters, of one group or of all, oldest first.
    pub(crate) async fn dead_letters<C: GenericClient>(
        &self,
        client: &C,
        group: Option<&str>,
    ) -> Result<Vec<DeadLetter>, PgError> {
        let rows = client
            .query(
                &format!(
                    "SELECT group_name, seq, event_id, event_type, body, attempts, error, \
                       to_char(dead_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
                     FROM \"{}\" WHERE $1::text IS NULL OR group_name = $1 ORDER BY dead_at, seq",
                    self.dead
                ),
                &[&group],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    group: r.try_get(0)?,
                    seq: r.try_get(1)?,
                    event_id: r.try_get(2)?,
                    event_type: r.try_get(3)?,
                    body: r.try_get(4)?,
                    attempts: r.try_get(5)?,
                    error: r.try_get(6)?,
                    dead_at: r.try_get(7)?,
                })
            })
            .collect()
    }

    /// Puts dead letters back as fresh deliveries (attempts 0) of their group: the one with
    /// `event_id`, or all of `group` (or of every group) when `None`. Returns how many.
    pub(crate) async fn replay<C: GenericClient>(
        &self,
        client: &C,
        group: Option<&str>,
        event_id: Option<&str>,
    ) -> Result<u64, PgError> {
        let sql = format!(
            "WITH back AS (DELETE FROM \"{dead}\" WHERE ($1::text IS NULL OR group_name = $1) \
               AND ($2::text IS NULL OR event_id = $2) RETURNING group_name, seq) \
             INSERT INTO \"{d}\" (group_name, seq) SELECT group_name, seq FROM back \
             ON CONFLICT (group_name, seq) DO UPDATE SET attempts = 0, available_at = now(), lease_owner = NULL",
            dead = self.dead,
            d = self.deliveries
        );
        let params: [&(dyn ToSql + Sync); 2] = [&group, &event_id];
        let n = client.execute(&sql, &params).await?;
        client
            .execute("SELECT pg_notify($1, '')", &[&self.wake])
            .await?;
        Ok(n)
    }

    /// Deletes up to `limit` events published at least `retention_secs` ago that no group has a
    /// delivery of (pending, leased or waiting for a retry) and no group has a dead letter of,
    /// with the groups' dedup rows of their ids (unless another copy of the id is still in the
    /// table). Rows another statement holds locked are skipped, not waited for.
    pub(crate) async fn prune_batch(
        &self,
        client: &tokio_postgres::Client,
        retention_secs: f64,
        limit: i64,
    ) -> Result<Pruned, PgError> {
        let sql = format!(
            "WITH gone AS (DELETE FROM \"{t}\" WHERE seq IN (SELECT e.seq FROM \"{t}\" e \
                 WHERE e.published_at <= now() - make_interval(secs => $1) \
                   AND NOT EXISTS (SELECT 1 FROM \"{g}\" g JOIN \"{d}\" d \
                     ON d.group_name = g.group_name AND d.seq = e.seq) \
                   AND NOT EXISTS (SELECT 1 FROM \"{dead}\" x WHERE x.seq = e.seq) \
                 LIMIT $2 FOR UPDATE SKIP LOCKED) \
               RETURNING seq, event_id), \
             marks AS (DELETE FROM \"{x}\" x USING \"{g}\" g, (SELECT DISTINCT event_id FROM gone) o \
               WHERE x.group_name = g.group_name AND x.event_id = o.event_id \
                 AND NOT EXISTS (SELECT 1 FROM \"{t}\" e WHERE e.event_id = o.event_id \
                   AND e.seq NOT IN (SELECT seq FROM gone)) \
               RETURNING 1) \
             SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM marks)",
            t = self.events,
            g = self.groups,
            d = self.deliveries,
            dead = self.dead,
            x = self.dedup
        );
        let row = client.query_one(&sql, &[&retention_secs, &limit]).await?;
        let count = |i: usize| -> Result<u64, PgError> {
            Ok(u64::try_from(row.try_get::<_, i64>(i)?).unwrap_or(0))
        };
        Ok(Pruned {
            events: count(0)?,
            dedup_rows: count(1)?,
        })
    }

    /// How many deliveries of `group` are not yet acknowledged (claimed or not).
    pub(crate) async fn pending<C: GenericClient>(
        &self,
        client: &C,
        group: &str,
    ) -> Result<i64, PgError> {
        let row = client
            .query_one(
                &format!(
                    "SELECT count(*) FROM \"{}\" WHERE group_name = $1",
                    self.deliveries
                ),
                &[&group],
            )
            .await?;
        Ok(row.try_get(0)?)
    }
}
