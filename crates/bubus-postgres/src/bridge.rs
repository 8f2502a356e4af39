//! [`PgBridge`]: the PostgreSQL transport, in the family's plain mode or the durable mode.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bubus::AnyEvent;
use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_postgres::GenericClient;

use crate::conn::{Conn, Heard, listen};
use crate::consumer::{self, Claim, ConsumerHandle, ConsumerSettings, Outcome};
use crate::durable::{DeadLetter, GroupStart, Tables};
use crate::error::PgError;
use crate::plain::PlainTable;
use crate::publisher::{self, Outgoing, Target};
use crate::url::{DEFAULT_CHANNEL, DEFAULT_TABLE, PgUrl, identifier};

/// The durable mode's default events table (the URL's table segment overrides it).
pub const DEFAULT_DURABLE_TABLE: &str = "bubus_events";

/// Settings of the durable mode.
///
/// Bridges with the same `group` on the same events table are **competing consumers**: each
/// event goes to one of them. Bridges with different groups each get every event (**broadcast**).
///
/// ```
/// use std::time::Duration;
/// let opts = bubus_postgres::DurableOptions::new("billing")
///     .lease(Duration::from_secs(10))
///     .max_deliveries(3);
/// assert_eq!(opts.group_name(), "billing");
/// ```
#[derive(Clone, Debug)]
pub struct DurableOptions {
    group: String,
    start: GroupStart,
    lease: Duration,
    max_deliveries: u32,
    retry_delay: Duration,
    batch: usize,
    max_in_flight: usize,
    poll_interval: Duration,
    max_backoff: Duration,
}

impl DurableOptions {
    /// Options for consumer group `group`; lease 30 s, 5 deliveries before dead letters, 1 s
    /// between a failure and the next delivery, claims of up to 256, at most 1024 in flight,
    /// a look every second besides `NOTIFY`, reconnect backoff up to 2 s.
    pub fn new(group: impl Into<String>) -> DurableOptions {
        DurableOptions {
            group: group.into(),
            start: GroupStart::Beginning,
            lease: Duration::from_secs(30),
            max_deliveries: 5,
            retry_delay: Duration::from_secs(1),
            batch: 256,
            max_in_flight: 1024,
            poll_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(2),
        }
    }

    /// The consumer group.
    pub fn group_name(&self) -> &str {
        &self.group
    }

    /// Where a group that does not exist yet starts.
    pub fn start(mut self, start: GroupStart) -> Self {
        self.start = start;
        self
    }

    /// How long a claimed event stays with its consumer without news (the consumer renews it
    /// every third of it while the event runs); a consumer that dies loses its events to the
    /// others after this long. At least 1 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// Failed deliveries (handler error, undecodable event, lapsed lease) before an event goes
    /// to the dead letters. At least 1.
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n.max(1);
        self
    }

    /// Delay between a failed delivery and the next.
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// How many events one claim takes at most.
    pub fn batch(mut self, n: usize) -> Self {
        self.batch = n.max(1);
        self
    }

    /// How many claimed events may be unacknowledged at once.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// How often to look for work without a `NOTIFY` (lapsed leases of dead members).
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.poll_interval = every.max(Duration::from_millis(10));
        self
    }

    /// The longest wait between reconnect attempts.
    pub fn max_backoff(mut self, max: Duration) -> Self {
        self.max_backoff = max.max(Duration::from_millis(50));
        self
    }
}

#[derive(Debug)]
enum Mode {
    Plain {
        table: Arc<PlainTable>,
    },
    Durable {
        tables: Tables,
        opts: DurableOptions,
    },
}

/// Counters of a bridge's receiving side.
#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    undecodable: AtomicU64,
}

/// What a bridge received so far (see [`PgBridge::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeStats {
    /// Events handed to the receiver.
    pub received: u64,
    /// Messages that were not events (logged, skipped; dead-lettered in the durable mode).
    pub undecodable: u64,
}

#[derive(Debug)]
struct Inner {
    url: PgUrl,
    mode: Mode,
    conn: Arc<Conn>,
    writer: mpsc::Sender<Outgoing>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    consumer: Mutex<Option<ConsumerHandle>>,
    stop: Arc<Notify>,
    counters: Arc<Counters>,
    owner: String,
}

/// A PostgreSQL bridge: sends events to a table and receives them from it.
///
/// * [`plain`](Self::plain): the family's table + `NOTIFY` (abxbus 2.5 `PostgresEventBridge`
///   wire, at-most-once).
/// * [`durable`](Self::durable): an outbox table, consumer groups claiming with
///   `FOR UPDATE SKIP LOCKED` under a lease, acks after completion, dedup, dead letters
///   (at-least-once; once per group at the handlers).
///
/// Cheap to clone; clones share the connections.
#[derive(Clone, Debug)]
pub struct PgBridge {
    inner: Arc<Inner>,
}

fn owner_id() -> String {
    format!("{}-{:016x}", std::process::id(), fastrand::u64(..))
}

impl PgBridge {
    /// The family's plain mode on `postgresql://…/<db>[/<table>]` (table default
    /// `abxbus_events`), `NOTIFY` channel `channel` (default `abxbus_events`, never derived
    /// from the table, as in the family). Creates the table if missing.
    ///
    /// # Errors
    ///
    /// A bad URL or channel name, or the server cannot be reached or refuses the table.
    pub async fn plain(url: &str, channel: Option<&str>) -> Result<PgBridge, PgError> {
        let parsed = PgUrl::parse(url)?;
        let table = parsed
            .table
            .clone()
            .unwrap_or_else(|| DEFAULT_TABLE.to_owned());
        let mut channel = channel.unwrap_or(DEFAULT_CHANNEL).to_owned();
        channel.truncate(63);
        let channel = identifier(&channel, "channel name")?;
        let conn = Arc::new(Conn::new(parsed.config.clone(), Duration::from_secs(2)));
        let client = conn.connect_now().await?;
        let table = Arc::new(PlainTable::new(table, channel));
        table.ensure_schema(&client).await?;
        let (writer, task) = publisher::start(Target::Plain(table.clone()), conn.clone());
        Ok(PgBridge::from_parts(
            parsed,
            Mode::Plain { table },
            conn,
            writer,
            task,
        ))
    }

    /// The durable mode on `postgresql://…/<db>[/<events table>]` (default `bubus_events`),
    /// consuming as `opts`' group. Creates the tables and the group if missing.
    ///
    /// # Errors
    ///
    /// A bad URL, a table of that name that is not a durable events table, or the server
    /// cannot be reached.
    pub async fn durable(url: &str, opts: DurableOptions) -> Result<PgBridge, PgError> {
        let parsed = PgUrl::parse(url)?;
        let table = parsed
            .table
            .clone()
            .unwrap_or_else(|| DEFAULT_DURABLE_TABLE.to_owned());
        let tables = Tables::new(&table)?;
        let conn = Arc::new(Conn::new(parsed.config.clone(), opts.max_backoff));
        // Schema changes on their own connection (they need `&mut`).
        let (mut client, connection) = parsed.config.connect(tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        let setup = async {
            tables.ensure(&mut client).await?;
            tables
                .ensure_group(&mut client, &opts.group, opts.start)
                .await
        }
        .await;
        drop(client);
        let _ = driver.await;
        setup?;
        conn.connect_now().await?;
        let (writer, task) = publisher::start(Target::Durable(tables.clone()), conn.clone());
        Ok(PgBridge::from_parts(
            parsed,
            Mode::Durable { tables, opts },
            conn,
            writer,
            task,
        ))
    }

    fn from_parts(
        url: PgUrl,
        mode: Mode,
        conn: Arc<Conn>,
        writer: mpsc::Sender<Outgoing>,
        task: tokio::task::JoinHandle<()>,
    ) -> PgBridge {
        PgBridge {
            inner: Arc::new(Inner {
                url,
                mode,
                conn,
                writer,
                tasks: Mutex::new(vec![task]),
                consumer: Mutex::new(None),
                stop: Arc::new(Notify::new()),
                counters: Arc::new(Counters::default()),
                owner: owner_id(),
            }),
        }
    }

    /// Whether this is the durable mode.
    pub fn is_durable(&self) -> bool {
        matches!(self.inner.mode, Mode::Durable { .. })
    }

    /// The table events are written to.
    pub fn table(&self) -> &str {
        match &self.inner.mode {
            Mode::Plain { table } => &table.table,
            Mode::Durable { tables, .. } => &tables.events,
        }
    }

    /// Sends an event; returns once it is committed (retrying through reconnects).
    ///
    /// # Errors
    ///
    /// The event has no string `event_id`, or the server refused it, or the bridge is closed.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future does not withdraw the event: it is written all the same.
    pub async fn send(&self, event: &AnyEvent) -> Result<(), PgError> {
        match event.to_json() {
            Value::Object(map) => self.send_json(map).await,
            _ => Err(PgError::Closed),
        }
    }

    /// Sends an event given as its JSON object.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_json(&self, json: Map<String, Value>) -> Result<(), PgError> {
        let event_id = match json.get("event_id") {
            Some(Value::String(id)) => id.clone(),
            _ => {
                return Err(PgError::Send {
                    event_id: String::new(),
                    message: "the event has no string event_id".into(),
                });
            }
        };
        let event_type = match json.get("event_type") {
            Some(Value::String(t)) => t.clone(),
            _ => String::new(),
        };
        let (done, wait) = oneshot::channel();
        self.inner
            .writer
            .send(Outgoing {
                event_id,
                event_type,
                json,
                done,
            })
            .await
            .map_err(|_| PgError::Closed)?;
        wait.await.map_err(|_| PgError::Closed)?
    }

    /// The transactional outbox: writes `event` through `client` — typically the caller's own
    /// open [`Transaction`](tokio_postgres::Transaction) — so it is published exactly when that
    /// transaction commits (consumers are woken by the commit) and never if it rolls back.
    /// Returns `false` if an event with this id was already published.
    ///
    /// `client` must be connected to the same database as the bridge.
    ///
    /// # Errors
    ///
    /// [`PgError::NotDurable`] on a plain bridge; the statement's error otherwise (the
    /// transaction is then aborted, as for any failed statement).
    pub async fn publish_in<C: GenericClient>(
        &self,
        client: &C,
        event: &AnyEvent,
    ) -> Result<bool, PgError> {
        let Mode::Durable { tables, .. } = &self.inner.mode else {
            return Err(PgError::NotDurable);
        };
        let body = event.to_json_string();
        tables
            .publish(
                client,
                &event.event_id().to_string(),
                event.event_type(),
                &body,
            )
            .await
    }

    /// Starts receiving (once; later calls fail with [`PgError::Closed`]): the plain mode
    /// listens on its channel, the durable mode claims its group's deliveries.
    ///
    /// # Errors
    ///
    /// [`PgError::Closed`] if already subscribed or closed.
    pub fn subscribe(&self) -> Result<Deliveries, PgError> {
        let mut consumer_slot = self.inner.consumer.lock();
        if consumer_slot.is_some() {
            return Err(PgError::Closed);
        }
        let (tx, rx) = mpsc::channel(1024);
        match &self.inner.mode {
            Mode::Plain { table } => {
                let (heard_tx, heard_rx) = mpsc::unbounded_channel();
                let listener = listen(
                    self.inner.url.config.clone(),
                    vec![table.channel.clone()],
                    self.inner.conn.max_backoff(),
                    heard_tx,
                    self.inner.stop.clone(),
                );
                let reader = tokio::spawn(plain_receive(
                    table.clone(),
                    self.inner.url.config.clone(),
                    heard_rx,
                    tx,
                    self.inner.counters.clone(),
                ));
                let (outcomes, _) = mpsc::unbounded_channel();
                *consumer_slot = Some(ConsumerHandle {
                    outcomes,
                    stop: self.inner.stop.clone(),
                    tasks: vec![listener, reader],
                });
                Ok(Deliveries { rx, outcomes: None })
            }
            Mode::Durable { tables, opts } => {
                let settings = ConsumerSettings {
                    group: opts.group.clone(),
                    owner: self.inner.owner.clone(),
                    lease: opts.lease,
                    batch: opts.batch,
                    max_in_flight: opts.max_in_flight,
                    poll_interval: opts.poll_interval,
                    max_deliveries: i32::try_from(opts.max_deliveries).unwrap_or(i32::MAX),
                    retry_delay: opts.retry_delay,
                };
                let (claims_tx, claims_rx) = mpsc::channel(opts.batch);
                let handle = consumer::start(
                    tables.clone(),
                    settings,
                    self.inner.conn.clone(),
                    self.inner.url.config.clone(),
                    claims_tx,
                );
                let outcomes = handle.outcomes.clone();
                let decoder = tokio::spawn(durable_decode(
                    claims_rx,
                    tx,
                    outcomes.clone(),
                    self.inner.counters.clone(),
                ));
                let mut handle = handle;
                handle.tasks.push(decoder);
                *consumer_slot = Some(handle);
                Ok(Deliveries {
                    rx,
                    outcomes: Some(outcomes),
                })
            }
        }
    }

    /// What the receiving side counted so far.
    pub fn stats(&self) -> BridgeStats {
        BridgeStats {
            received: self.inner.counters.received.load(Ordering::Relaxed),
            undecodable: self.inner.counters.undecodable.load(Ordering::Relaxed),
        }
    }

    fn tables(&self) -> Result<(&Tables, &DurableOptions), PgError> {
        match &self.inner.mode {
            Mode::Durable { tables, opts } => Ok((tables, opts)),
            Mode::Plain { .. } => Err(PgError::NotDurable),
        }
    }

    /// The dead letters of this bridge's group, oldest first.
    ///
    /// # Errors
    ///
    /// [`PgError::NotDurable`] on a plain bridge, or the query failed.
    pub async fn dead_letters(&self) -> Result<Vec<DeadLetter>, PgError> {
        let (tables, opts) = self.tables()?;
        let client = self.inner.conn.get().await?;
        tables.dead_letters(&*client, Some(&opts.group)).await
    }

    /// Puts this group's dead letters back for delivery (attempts from zero): the one with
    /// `event_id`, or all of them. Returns how many.
    ///
    /// # Errors
    ///
    /// [`PgError::NotDurable`] on a plain bridge, or the statement failed.
    pub async fn replay_dead_letters(&self, event_id: Option<&str>) -> Result<u64, PgError> {
        let (tables, opts) = self.tables()?;
        let client = self.inner.conn.get().await?;
        tables.replay(&*client, Some(&opts.group), event_id).await
    }

    /// How many events this group has not acknowledged yet (claimed or waiting).
    ///
    /// # Errors
    ///
    /// [`PgError::NotDurable`] on a plain bridge, or the query failed.
    pub async fn pending(&self) -> Result<i64, PgError> {
        let (tables, opts) = self.tables()?;
        let client = self.inner.conn.get().await?;
        tables.pending(&*client, &opts.group).await
    }

    /// Stops receiving and closes the connections. Events claimed and not yet acknowledged
    /// are left to lapse to other members after their lease. Events already handed to
    /// [`send`](Self::send) are written first.
    pub async fn close(&self) {
        if let Some(c) = self.inner.consumer.lock().take() {
            c.shutdown();
        }
        self.inner.stop.notify_waiters();
        self.inner.conn.close();
        let tasks: Vec<_> = self.inner.tasks.lock().drain(..).collect();
        for t in tasks {
            t.abort();
        }
    }
}

/// Dead letters and replay without a bridge: what `bubus dead-letters` runs. `url` names the
/// durable events table as its table segment (default `bubus_events`); `group` narrows to one
/// consumer group.
///
/// # Errors
///
/// A bad URL, the server cannot be reached, or the tables are missing.
pub async fn list_dead_letters(url: &str, group: Option<&str>) -> Result<Vec<DeadLetter>, PgError> {
    let (tables, client, driver) = admin(url).await?;
    let r = tables.dead_letters(&client, group).await;
    drop(client);
    let _ = driver.await;
    r
}

/// Replays dead letters (see [`list_dead_letters`]): the one with `event_id`, or all (of
/// `group`, or of every group). Returns how many went back.
///
/// # Errors
///
/// As [`list_dead_letters`].
pub async fn replay_dead_letters(
    url: &str,
    group: Option<&str>,
    event_id: Option<&str>,
) -> Result<u64, PgError> {
    let (tables, client, driver) = admin(url).await?;
    let r = tables.replay(&client, group, event_id).await;
    drop(client);
    let _ = driver.await;
    r
}

async fn admin(
    url: &str,
) -> Result<
    (
        Tables,
        tokio_postgres::Client,
        tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    ),
    PgError,
> {
    let parsed = PgUrl::parse(url)?;
    let tables = Tables::new(parsed.table.as_deref().unwrap_or(DEFAULT_DURABLE_TABLE))?;
    let (client, connection) = parsed.config.connect(tokio_postgres::NoTls).await?;
    Ok((tables, client, tokio::spawn(connection)))
}

/// Received events; in the durable mode each must be acknowledged.
#[derive(Debug)]
pub struct Deliveries {
    rx: mpsc::Receiver<Delivery>,
    #[allow(dead_code)]
    outcomes: Option<mpsc::UnboundedSender<Outcome>>,
}

impl Deliveries {
    /// The next event; `None` once the bridge is closed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a delivery is only taken when this returns it.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.rx.recv().await
    }
}

/// One received event. In the durable mode, [`ack`](Self::ack) it after it completed or
/// [`nack`](Self::nack) it after it failed; dropping it releases it for redelivery.
#[derive(Debug)]
pub struct Delivery {
    event: AnyEvent,
    attempt: u32,
    ack: Option<(i64, mpsc::UnboundedSender<Outcome>)>,
}

impl Delivery {
    /// The event, with the sender's id, path and parent.
    pub fn event(&self) -> &AnyEvent {
        &self.event
    }

    /// Which delivery of this event this is (1 for the first; always 1 in the plain mode).
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The event completed: the group will not see it again.
    pub fn ack(mut self) {
        if let Some((seq, tx)) = self.ack.take() {
            let _ = tx.send(Outcome::Ack(seq));
        }
    }

    /// The event failed with `error`: it is delivered again after the retry delay, or goes to
    /// the dead letters after the last allowed delivery.
    pub fn nack(mut self, error: impl Into<String>) {
        if let Some((seq, tx)) = self.ack.take() {
            let _ = tx.send(Outcome::Nack {
                seq,
                error: error.into(),
            });
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if let Some((seq, tx)) = self.ack.take() {
            let _ = tx.send(Outcome::Release(seq));
        }
    }
}

async fn durable_decode(
    mut claims: mpsc::Receiver<Claim>,
    out: mpsc::Sender<Delivery>,
    outcomes: mpsc::UnboundedSender<Outcome>,
    counters: Arc<Counters>,
) {
    while let Some(c) = claims.recv().await {
        match AnyEvent::from_json_str(&c.body) {
            Ok(event) => {
                counters.received.fetch_add(1, Ordering::Relaxed);
                let d = Delivery {
                    event,
                    attempt: u32::try_from(c.attempts).unwrap_or(1),
                    ack: Some((c.seq, outcomes.clone())),
                };
                if out.send(d).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                counters.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event_id = %c.event_id, error = %e, "bubus-postgres: undecodable event");
                let _ = outcomes.send(Outcome::Nack {
                    seq: c.seq,
                    error: format!("DecodeError: {e}"),
                });
            }
        }
    }
}

async fn plain_receive(
    table: Arc<PlainTable>,
    config: tokio_postgres::Config,
    mut heard: mpsc::UnboundedReceiver<Heard>,
    out: mpsc::Sender<Delivery>,
    counters: Arc<Counters>,
) {
    let conn = Conn::new(config, Duration::from_secs(2));
    while let Some(h) = heard.recv().await {
        let Heard::Notification { payload } = h else {
            continue;
        };
        // The row is read on a connection of its own; a failed read is retried once after
        // reconnecting, then the notification is dropped (at-most-once, like the family).
        let mut row = None;
        for _ in 0..2 {
            let Ok(client) = conn.get().await else { return };
            match table.read(&client, &payload).await {
                Ok(r) => {
                    row = r;
                    break;
                }
                Err(e) => {
                    if e.is_connection() {
                        conn.broken(&client).await;
                    }
                    tracing::warn!(error = %e, "bubus-postgres: reading a notified row failed");
                }
            }
        }
        let Some(json) = row else { continue };
        match AnyEvent::from_json(&json) {
            Ok(event) => {
                counters.received.fetch_add(1, Ordering::Relaxed);
                let d = Delivery {
                    event,
                    attempt: 1,
                    ack: None,
                };
                if out.send(d).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                counters.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(id = %payload, error = %e, "bubus-postgres: undecodable event");
            }
        }
    }
}
