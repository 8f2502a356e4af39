//! [`PgTransport`]: the PostgreSQL transport of the bridge model, in the family's plain mode or
//! the durable mode.

use std::sync::Arc;
use std::time::Duration;

use bubus::AnyEvent;
use bubus::bridge::{
    Acker, BoxFuture, Bridge, BridgeBuilder, Capabilities, Delivery, DeliveryStream, Message,
    MessageKind, Transport, TransportError,
};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_postgres::GenericClient;

use crate::conn::{Conn, Heard, listen};
use crate::consumer::{self, Claim, ConsumerHandle, ConsumerSettings, Outcome};
use crate::dedup::PgDedup;
use crate::durable::{DeadLetter, GroupStart, Pruned, Tables};
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
    claim_lease: Option<Duration>,
    max_deliveries: u32,
    retry_delay: Duration,
    batch: usize,
    max_in_flight: usize,
    poll_interval: Duration,
    max_backoff: Duration,
    retention: Option<Duration>,
    prune_interval: Option<Duration>,
}

/// How long the durable mode keeps an event every group has acknowledged, by default (see
/// [`DurableOptions::retention`]): 24 hours, the Redis and NATS bridges' dedup window.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);

impl DurableOptions {
    /// Options for consumer group `group`; lease 30 s, 5 deliveries before dead letters, 1 s
    /// between a failure and the next delivery, claims of up to 256, at most 1024 in flight,
    /// a look every second besides `NOTIFY`, reconnect backoff up to 2 s, acknowledged events
    /// kept for [`DEFAULT_RETENTION`] (24 h).
    pub fn new(group: impl Into<String>) -> DurableOptions {
        DurableOptions {
            group: group.into(),
            start: GroupStart::Beginning,
            lease: Duration::from_secs(30),
            claim_lease: None,
            max_deliveries: 5,
            retry_delay: Duration::from_secs(1),
            batch: 256,
            max_in_flight: 1024,
            poll_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(2),
            retention: Some(DEFAULT_RETENTION),
            prune_interval: None,
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

    /// How long the [dedup store](PgTransport::dedup)'s claim on an event lasts without renewal
    /// (default: three leases). While a member's handlers run it renews the claim every third
    /// of this; another member given a copy of the event meanwhile (the same id published
    /// twice, or a delivery whose lease lapsed during a cut connection) waits instead of
    /// running it again. A claim of a member that died is taken over after this.
    pub fn claim_lease(mut self, lease: Duration) -> Self {
        self.claim_lease = Some(lease.max(Duration::from_secs(1)));
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

    /// How long an event stays in the events table after it was published once **every** group
    /// has acknowledged it (default [`DEFAULT_RETENTION`], 24 h). A consumer prunes every
    /// [`prune_interval`](Self::prune_interval): it deletes, in batches of 1 000, the events
    /// past the retention that no group still has a delivery of — never one that is waiting,
    /// leased, waiting for a retry or dead-lettered — and the groups' dedup rows of their ids.
    /// The retention is therefore also the dedup window: an id published again after its event
    /// was pruned is a new event. Dead letters stay until replayed.
    ///
    /// A group created later with [`GroupStart::Beginning`] starts at the events still in the
    /// table.
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = bubus_postgres::DurableOptions::new("billing").retention(Duration::from_secs(3600));
    /// assert_eq!(opts.retention_period(), Some(Duration::from_secs(3600)));
    /// ```
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// How often a consumer prunes (default a quarter of the retention, between 1 s and
    /// 10 min). At least 1 s.
    pub fn prune_interval(mut self, every: Duration) -> Self {
        self.prune_interval = Some(every.max(Duration::from_secs(1)));
        self
    }

    /// Never prune: acknowledged events and dedup rows stay in the tables forever (an audit
    /// log, or pruning done by the operator).
    ///
    /// ```
    /// let opts = bubus_postgres::DurableOptions::new("audit").keep_everything();
    /// assert_eq!(opts.retention_period(), None);
    /// ```
    pub fn keep_everything(mut self) -> Self {
        self.retention = None;
        self
    }

    /// The retention ([`retention`](Self::retention)), `None` when everything is kept.
    pub fn retention_period(&self) -> Option<Duration> {
        self.retention
    }
}

/// Events deleted per pruning statement: each holds its row locks only briefly.
const PRUNE_BATCH: i64 = 1000;
/// Statements per pruning pass at most; what is left waits for the next pass.
const PRUNE_BATCHES_PER_PASS: usize = 100;

/// One pruning pass (see [`DurableOptions::retention`]): batches until one comes back short.
pub(crate) async fn prune_pass(
    tables: &Tables,
    client: &tokio_postgres::Client,
    retention: Duration,
) -> Result<Pruned, PgError> {
    let mut total = Pruned::default();
    for _ in 0..PRUNE_BATCHES_PER_PASS {
        let p = tables
            .prune_batch(client, retention.as_secs_f64(), PRUNE_BATCH)
            .await?;
        total.events += p.events;
        total.dedup_rows += p.dedup_rows;
        if p.events < PRUNE_BATCH as u64 {
            break;
        }
    }
    Ok(total)
}

#[derive(Debug)]
enum Mode {
    Plain {
        table: Arc<PlainTable>,
    },
    Durable {
        tables: Box<Tables>,
        opts: Box<DurableOptions>,
    },
}

#[derive(Debug)]
struct Inner {
    url: PgUrl,
    mode: Mode,
    conn: Arc<Conn>,
    writer: mpsc::Sender<Outgoing>,
    writer_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    consumer: Mutex<Option<ConsumerHandle>>,
    stop: Arc<Notify>,
    dedup: Arc<PgDedup>,
    owner: String,
}

/// The PostgreSQL transport; attach it with [`Bridge`] like any other.
///
/// * [`plain`](Self::plain): the family's table + `NOTIFY` (abxbus 2.5 `PostgresEventBridge`
///   wire), at-most-once: a listener that is not connected when a row is notified never sees
///   it.
/// * [`durable`](Self::durable): an outbox table, consumer groups claiming rows with
///   `FOR UPDATE SKIP LOCKED` under a lease (`LISTEN/NOTIFY` only wakes them), acks after the
///   event completed on the receiving bus, a persisted dedup table, dead letters —
///   at-least-once on the wire, once per group at the handlers.
///
/// Both reconnect with backoff after a server restart or a cut connection.
///
/// ```no_run
/// use bubus::EventBus;
/// use bubus_postgres::{DurableOptions, PgTransport};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let bus = EventBus::new("Billing");
/// let transport =
///     PgTransport::durable("postgresql://app@db:5432/shop", DurableOptions::new("billing")).await?;
/// let bridge = transport.bridge().build();
/// bridge.attach(&bus);
/// bridge.start().await?;
/// # Ok(()) }
/// ```
///
/// Cheap to clone; clones share the connections.
#[derive(Clone, Debug)]
pub struct PgTransport {
    inner: Arc<Inner>,
}

fn owner_id() -> String {
    format!("{}-{:016x}", std::process::id(), fastrand::u64(..))
}

impl PgTransport {
    /// The family's plain mode on `postgresql://…/<db>[/<table>]` (table default
    /// `abxbus_events`), `NOTIFY` channel `channel` (default `abxbus_events`, never derived
    /// from the table, as in the family). Creates the table if missing.
    ///
    /// # Errors
    ///
    /// A bad URL or channel name, or the server cannot be reached or refuses the table.
    pub async fn plain(url: &str, channel: Option<&str>) -> Result<PgTransport, PgError> {
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
        Ok(PgTransport::from_parts(
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
    pub async fn durable(url: &str, opts: DurableOptions) -> Result<PgTransport, PgError> {
        let parsed = PgUrl::parse(url)?;
        let table = parsed
            .table
            .clone()
            .unwrap_or_else(|| DEFAULT_DURABLE_TABLE.to_owned());
        let tables = Tables::new(&table)?;
        let conn = Arc::new(Conn::new(parsed.config.clone(), opts.max_backoff));
        // Schema changes on a connection of their own (they need `&mut`).
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
        Ok(PgTransport::from_parts(
            parsed,
            Mode::Durable {
                tables: Box::new(tables),
                opts: Box::new(opts),
            },
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
    ) -> PgTransport {
        let owner = owner_id();
        let dedup = match &mode {
            Mode::Durable { tables, opts } => PgDedup::durable(
                conn.clone(),
                (**tables).clone(),
                opts.group.clone(),
                owner.clone(),
                opts.claim_lease.unwrap_or(opts.lease * 3),
            ),
            Mode::Plain { .. } => PgDedup::default(),
        };
        PgTransport {
            inner: Arc::new(Inner {
                url,
                mode,
                conn,
                writer,
                writer_task: Mutex::new(Some(task)),
                consumer: Mutex::new(None),
                stop: Arc::new(Notify::new()),
                dedup: Arc::new(dedup),
                owner,
            }),
        }
    }

    /// A [`Bridge`] builder for this transport with the durable mode's settings applied: the
    /// persisted [`dedup`](Self::dedup) store and [`max_deliveries`](DurableOptions::max_deliveries).
    /// (`Bridge::new(transport)` works too, with an in-memory dedup window.)
    pub fn bridge(&self) -> BridgeBuilder {
        // The bridge releases or confirms every claim it is handed: the consumer may take them
        // with the deliveries.
        self.inner.dedup.claim_with_deliveries();
        let builder = Bridge::builder(self.clone()).dedup(self.inner.dedup.clone());
        match &self.inner.mode {
            Mode::Durable { opts, .. } => builder.max_deliveries(opts.max_deliveries),
            Mode::Plain { .. } => builder,
        }
    }

    /// The de-duplication store backed by the group's dedup table: claims per event while a
    /// member's handlers run, marks of what the group completed. Each transport is one claim
    /// owner.
    pub fn dedup(&self) -> Arc<PgDedup> {
        self.inner.dedup.clone()
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

    /// The consumer group (durable mode).
    pub fn group(&self) -> Option<&str> {
        match &self.inner.mode {
            Mode::Durable { opts, .. } => Some(&opts.group),
            Mode::Plain { .. } => None,
        }
    }

    async fn write(&self, message: &Message) -> Result<(), PgError> {
        let (done, wait) = oneshot::channel();
        let completion = message.kind() == MessageKind::Completion;
        self.inner
            .writer
            .send(Outgoing {
                event_id: message.event_id().to_string(),
                event_type: if completion {
                    "bubus_completion".to_owned()
                } else {
                    message.event_type().to_owned()
                },
                text: message.text_arc().clone(),
                completion,
                done,
            })
            .await
            .map_err(|_| PgError::Closed)?;
        wait.await.map_err(|_| PgError::Closed)?
    }

    /// Sends an event without a bridge; returns once it is committed.
    ///
    /// # Errors
    ///
    /// The server refused it, or the transport is closed.
    pub async fn send_event(&self, event: &AnyEvent) -> Result<(), PgError> {
        self.write(&Message::event(event)).await
    }

    /// The transactional outbox: writes `event` through `client` — typically the caller's own
    /// open [`Transaction`](tokio_postgres::Transaction) — so it is published exactly when that
    /// transaction commits (consumers are woken by the commit) and never if it rolls back.
    ///
    /// `client` must be connected to the same database as the transport.
    ///
    /// # Errors
    ///
    /// [`PgError::NotDurable`] on a plain transport; the statement's error otherwise (the
    /// transaction is then aborted, as after any failed statement).
    ///
    /// # Cancel safety
    ///
    /// Like any statement on the transaction: dropping the future may leave the statement
    /// sent; roll the transaction back.
    pub async fn publish_in<C: GenericClient>(
        &self,
        client: &C,
        event: &AnyEvent,
    ) -> Result<(), PgError> {
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

    fn tables(&self) -> Result<(&Tables, &DurableOptions), PgError> {
        match &self.inner.mode {
            Mode::Durable { tables, opts } => Ok((tables, opts)),
            Mode::Plain { .. } => Err(PgError::NotDurable),
        }
    }

    /// The dead letters of this transport's group, oldest first.
    ///
    /// # Errors
    ///
    /// [`PgError::NotDurable`] on a plain transport, or the query failed.
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
    /// [`PgError::NotDurable`] on a plain transport, or the statement failed.
    pub async fn replay_dead_letters(&self, event_id: Option<&str>) -> Result<u64, PgError> {
        let (tables, opts) = self.tables()?;
        let client = self.inner.conn.get().await?;
        tables.replay(&*client, Some(&opts.group), event_id).await
    }

    /// Prunes now (a consumer also does it periodically; see [`DurableOptions::retention`]):
    /// deletes the events past the retention that every group has acknowledged, and their
    /// dedup rows. Does nothing with [`DurableOptions::keep_everything`].
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use bubus_postgres::{DurableOptions, PgTransport};
    ///
    /// let opts = DurableOptions::new("billing").retention(Duration::from_secs(7 * 24 * 3600));
    /// let transport = PgTransport::durable("postgresql://app@db:5432/shop", opts).await?;
    /// let pruned = transport.prune().await?;
    /// println!("{} events, {} dedup rows deleted", pruned.events, pruned.dedup_rows);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`PgError::NotDurable`] on a plain transport, or a statement failed.
    pub async fn prune(&self) -> Result<Pruned, PgError> {
        let (tables, opts) = self.tables()?;
        let Some(retention) = opts.retention else {
            return Ok(Pruned::default());
        };
        let client = self.inner.conn.get().await?;
        prune_pass(tables, &client, retention).await
    }

    /// How many events this group has not acknowledged yet (claimed or waiting).
    ///
    /// # Errors
    ///
    /// [`PgError::NotDurable`] on a plain transport, or the query failed.
    pub async fn pending(&self) -> Result<i64, PgError> {
        let (tables, opts) = self.tables()?;
        let client = self.inner.conn.get().await?;
        tables.pending(&*client, &opts.group).await
    }

    /// Injects raw text as one message on this medium, bypassing the sender (tests feed bad
    /// input with it): a durable events row with `text` as its body, or a plain row with `text`
    /// as its `event_payload`, notified.
    ///
    /// # Errors
    ///
    /// The statement failed.
    #[doc(hidden)]
    pub async fn inject_raw(&self, text: &str) -> Result<(), PgError> {
        let client = self.inner.conn.get().await?;
        let key = format!("raw-{:016x}", fastrand::u64(..));
        match &self.inner.mode {
            Mode::Durable { tables, .. } => tables.publish(&*client, &key, "", text).await,
            Mode::Plain { table } => {
                // An event object goes in as the family writes one (its own row, notified).
                if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(text) {
                    if map
                        .get("event_id")
                        .is_some_and(serde_json::Value::is_string)
                    {
                        return table.write(&client, &map).await;
                    }
                }
                let quoted = serde_json::Value::String(key).to_string();
                client
                    .execute(
                        &format!(
                            "INSERT INTO \"{}\" (\"event_id\", \"event_payload\") VALUES ($1, $2)",
                            table.table
                        ),
                        &[&quoted, &text],
                    )
                    .await?;
                client
                    .execute("SELECT pg_notify($1, $2)", &[&table.channel, &quoted])
                    .await?;
                Ok(())
            }
        }
    }

    /// Starts receiving; the plain mode also returns a signal for "`LISTEN` is active".
    #[allow(clippy::type_complexity)]
    fn start_listening(
        &self,
    ) -> Result<(mpsc::Receiver<Delivery>, Option<oneshot::Receiver<()>>), PgError> {
        let mut slot = self.inner.consumer.lock();
        if slot.is_some() {
            return Err(PgError::Closed);
        }
        let (tx, rx) = mpsc::channel(1024);
        let mut ready = None;
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
                let (ready_tx, ready_rx) = oneshot::channel();
                ready = Some(ready_rx);
                let reader = tokio::spawn(plain_receive(
                    table.clone(),
                    self.inner.url.config.clone(),
                    heard_rx,
                    tx,
                    ready_tx,
                ));
                let (outcomes, _) = mpsc::unbounded_channel();
                *slot = Some(ConsumerHandle {
                    outcomes,
                    stop: self.inner.stop.clone(),
                    tasks: vec![listener, reader],
                });
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
                    prune: opts.retention.map(|r| {
                        let every = opts.prune_interval.unwrap_or_else(|| {
                            (r / 4).clamp(Duration::from_secs(1), Duration::from_secs(600))
                        });
                        (r, every)
                    }),
                };
                let (claims_tx, claims_rx) = mpsc::channel(opts.batch);
                let mut handle = consumer::start(
                    (**tables).clone(),
                    settings,
                    self.inner.conn.clone(),
                    self.inner.url.config.clone(),
                    self.inner.dedup.clone(),
                    claims_tx,
                );
                let outcomes = handle.outcomes.clone();
                handle.tasks.push(tokio::spawn(durable_forward(
                    claims_rx,
                    tx,
                    outcomes,
                    self.inner.dedup.clone(),
                )));
                *slot = Some(handle);
            }
        }
        Ok((rx, ready))
    }

    async fn shutdown(&self) {
        if let Some(c) = self.inner.consumer.lock().take() {
            c.shutdown();
        }
        self.inner.stop.notify_waiters();
        self.inner.conn.close();
        if let Some(t) = self.inner.writer_task.lock().take() {
            t.abort();
        }
    }
}

fn transport_error(e: PgError) -> TransportError {
    match e {
        PgError::Closed => TransportError::Closed,
        PgError::InvalidUrl(_) | PgError::InvalidName { .. } | PgError::NotDurable => {
            TransportError::Config(e.to_string())
        }
        other => TransportError::other("postgres", other),
    }
}

impl Transport for PgTransport {
    fn kind(&self) -> &str {
        "PostgresEventBridge"
    }

    fn describe(&self) -> String {
        match &self.inner.mode {
            Mode::Plain { table } => format!("postgres:{} (NOTIFY {})", table.table, table.channel),
            Mode::Durable { tables, opts } => {
                format!("postgres:{} (durable, group {})", tables.events, opts.group)
            }
        }
    }

    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::at_most_once()
            .with_receives_own(true)
            .with_ordered(true);
        match self.inner.mode {
            Mode::Plain { .. } => caps,
            Mode::Durable { .. } => caps
                .with_durable(true)
                .with_acks(true)
                .with_redelivery(true)
                .with_dead_letters(true),
        }
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move { self.write(message).await.map_err(transport_error) })
    }

    fn listen(&self) -> BoxFuture<'_, Result<DeliveryStream, TransportError>> {
        Box::pin(async move {
            let (rx, ready) = self.start_listening().map_err(transport_error)?;
            // Plain mode: what is notified before `LISTEN` runs is never heard, so return once
            // it runs (or after a while if the server is unreachable: it keeps trying).
            if let Some(ready) = ready {
                if tokio::time::timeout(Duration::from_secs(10), ready)
                    .await
                    .is_err()
                {
                    // Said, so that the notifications lost until `LISTEN` runs are explained.
                    tracing::warn!(
                        transport = %self.describe(),
                        "bubus-postgres: LISTEN is not in place yet (server unreachable?); events notified until it is are not heard"
                    );
                }
            }
            let stream: DeliveryStream =
                Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|d| (Ok(d), rx))
                }));
            Ok(stream)
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.shutdown().await;
            Ok(())
        })
    }
}

/// Dead letters and replay without a transport: what `bubus dead-letters` runs. `url` names
/// the durable events table as its table segment (default `bubus_events`); `group` narrows to
/// one consumer group.
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

type Driver = tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>;

async fn admin(url: &str) -> Result<(Tables, tokio_postgres::Client, Driver), PgError> {
    let parsed = PgUrl::parse(url)?;
    let tables = Tables::new(parsed.table.as_deref().unwrap_or(DEFAULT_DURABLE_TABLE))?;
    let (client, connection) = parsed.config.connect(tokio_postgres::NoTls).await?;
    Ok((tables, client, tokio::spawn(connection)))
}

/// Acknowledges one claimed row; dropped without a call, it releases the row at once.
struct PgAcker {
    seq: i64,
    event_id: String,
    dedup: Arc<PgDedup>,
    outcomes: Option<mpsc::UnboundedSender<Outcome>>,
}

impl PgAcker {
    #[allow(clippy::boxed_local)] // the `Acker` methods take `Box<Self>`
    fn finish(
        mut self: Box<Self>,
        make: impl FnOnce(i64, bool, oneshot::Sender<()>) -> Outcome,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        let outcomes = self.outcomes.take();
        let (done, wait) = oneshot::channel();
        let handed_back = self.dedup.take_handed_back(&self.event_id);
        let outcome = make(self.seq, handed_back, done);
        Box::pin(async move {
            let Some(outcomes) = outcomes else {
                return Err(TransportError::Closed);
            };
            outcomes.send(outcome).map_err(|_| TransportError::Closed)?;
            // Returns once written (through reconnects), so "acked" means committed.
            wait.await.map_err(|_| TransportError::Closed)
        })
    }
}

impl Acker for PgAcker {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>> {
        self.finish(|seq, _, done| Outcome::Ack {
            seq,
            done: Some(done),
        })
    }

    fn nack(
        self: Box<Self>,
        delay: Option<Duration>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        // A delivery handed back because another member holds the event's claim (its handlers
        // run there) never reached a handler here: it does not count toward the dead letters.
        self.finish(move |seq, handed_back, done| Outcome::Nack {
            seq,
            error: reason,
            delay,
            counted: !handed_back,
            done: Some(done),
        })
    }

    fn dead_letter(
        self: Box<Self>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        self.finish(move |seq, _, done| Outcome::Dead {
            seq,
            reason,
            done: Some(done),
        })
    }
}

impl Drop for PgAcker {
    fn drop(&mut self) {
        if let Some(tx) = self.outcomes.take() {
            self.dedup.take_handed_back(&self.event_id);
            let _ = tx.send(Outcome::Release(self.seq));
        }
    }
}

async fn durable_forward(
    mut claims: mpsc::Receiver<Claim>,
    out: mpsc::Sender<Delivery>,
    outcomes: mpsc::UnboundedSender<Outcome>,
    dedup: Arc<PgDedup>,
) {
    while let Some(c) = claims.recv().await {
        let d = Delivery::new(c.body, format!("row {} ({})", c.seq, c.event_id))
            .with_attempt(u32::try_from(c.attempts).unwrap_or(1))
            .with_acker(PgAcker {
                seq: c.seq,
                event_id: c.event_id,
                dedup: dedup.clone(),
                outcomes: Some(outcomes.clone()),
            });
        if out.send(d).await.is_err() {
            return;
        }
    }
}

async fn plain_receive(
    table: Arc<PlainTable>,
    config: tokio_postgres::Config,
    mut heard: mpsc::UnboundedReceiver<Heard>,
    out: mpsc::Sender<Delivery>,
    ready: oneshot::Sender<()>,
) {
    let conn = Conn::new(config, Duration::from_secs(2));
    let mut ready = Some(ready);
    while let Some(h) = heard.recv().await {
        let Heard::Notification { payload } = h else {
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
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
        let Some(text) = row else { continue };
        if out
            .send(Delivery::new(text, format!("row {payload}")))
            .await
            .is_err()
        {
            return;
        }
    }
}
