//! The SQLite bridge transport: events as rows of the family's bridge table, read back in
//! insertion order by polling.

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bubus::bridge::{
    Acker, BadInput, BoxFuture, Capabilities, Delivery, DeliveryStream, Message, MessageKind,
    Transport, TransportError,
};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use crate::table::{BridgeTable, DEFAULT_TABLE, TableError};

/// Rows read per poll.
const BATCH: usize = 512;

/// With a consumer: how many delivered rows may wait for their ack before reading pauses.
const MAX_UNACKED: usize = 1_024;

/// Where a listener without a saved cursor starts.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartAt {
    /// After the newest row when it starts: only what is written from then on (the family's).
    #[default]
    Latest,
    /// At the first row of the table: everything it holds.
    Beginning,
}

/// The SQLite bridge: sends an event by upserting it into the family's bridge table
/// (`abxbus_events` by default; see [`BridgeTable`] for the layout), and listens by polling the
/// table for rows inserted after the last one it read — in insertion order, so a row written late
/// with an older `event_created_at` is still delivered (the family's `(event_created_at,
/// event_id)` cursor skips it).
///
/// * **Plain** (no [`consumer`](Self::consumer)): the family's behaviour — a listener starts
///   after the newest row and reads on from there; what is written while no listener runs is not
///   delivered to it (at-most-once).
/// * **With a consumer name**: the listener's position is saved in the same file (table
///   `bubus_bridge_cursors`) as rows are acked — once the event completed on the receiving bus —
///   and a listener with the same name resumes after the last row acked in order. Nothing written
///   while it was down, or in flight when it was killed, is lost (at-least-once; the bridge
///   de-duplicates by `event_id`). A row the bridge hands back (a handler failed, the bus refused
///   it) is delivered again, and the cursor waits for it. The first start without a saved cursor begins at
///   [`start_at`](Self::start_at) and saves that position at once.
///
/// Several processes (and the Python and TypeScript `SQLiteEventBridge`) may share one file and
/// table; every listener gets every row, its own included (the bridge skips its own echo).
///
/// Feeding a family reader: since its cursor skips a row written after a younger one, write
/// events in the order they were created. With [`Bridge::attach`](bubus::bridge::Bridge::attach)
/// an event is sent by a `"*"` handler, which runs after the event's handlers subscribed by type:
/// a handler that dispatches and awaits a child has the child written first, and a family reader
/// polling between the two writes never sees the parent. Subscribing the bridge's
/// [`sender`](bubus::bridge::Bridge::sender) by the event's name before its other handlers
/// writes the parent first.
///
/// ```
/// use bubus::bridge::Bridge;
/// use bubus::{AnyEvent, DynEvent, EventBus};
/// use bubus_sqlite::SqliteTransport;
/// use serde_json::json;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("bubus-sqlite-bridge-doc-{}", std::process::id()));
/// let path = dir.join("bridge.sqlite3");
/// let orders = EventBus::new("Orders");
/// let billing = EventBus::new("Billing");
/// let out = Bridge::new(SqliteTransport::new(&path));
/// let inn = Bridge::new(
///     SqliteTransport::new(&path)
///         .consumer("billing") // a saved cursor: resumes where it left off
///         .poll_interval(Duration::from_millis(5)),
/// );
/// out.attach(&orders);
/// inn.attach(&billing);
/// inn.start().await?;
///
/// let seen = billing.expect_pattern("Charge");
/// let sent = orders.dispatch(DynEvent::new("Charge", json!({"cents": 250}))?)?;
/// assert_eq!(seen.await?.event_id(), sent.event_id());
/// out.close().await?;
/// inn.close().await?;
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteTransport {
    config: Arc<Config>,
    state: Arc<State>,
}

struct Config {
    path: PathBuf,
    table: String,
    poll_interval: Duration,
    consumer: Option<String>,
    start_at: StartAt,
}

#[derive(Default)]
struct State {
    writer: Mutex<Option<BridgeTable>>,
    closed: AtomicBool,
    stop: Notify,
}

impl fmt::Debug for SqliteTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteTransport")
            .field("path", &self.config.path)
            .field("table", &self.config.table)
            .field("consumer", &self.config.consumer)
            .finish_non_exhaustive()
    }
}

impl SqliteTransport {
    /// A transport on the table `abxbus_events` of the file at `path` (created on first use),
    /// polling every 50 ms, plain (no consumer name).
    pub fn new(path: impl AsRef<Path>) -> Self {
        SqliteTransport {
            config: Arc::new(Config {
                path: path.as_ref().to_path_buf(),
                table: DEFAULT_TABLE.to_owned(),
                poll_interval: Duration::from_millis(50),
                consumer: None,
                start_at: StartAt::Latest,
            }),
            state: Arc::new(State::default()),
        }
    }

    fn config_mut(&mut self) -> &mut Config {
        // Options are set before the transport is shared; a clone made earlier keeps its own.
        if Arc::get_mut(&mut self.config).is_none() {
            self.config = Arc::new(Config {
                path: self.config.path.clone(),
                table: self.config.table.clone(),
                poll_interval: self.config.poll_interval,
                consumer: self.config.consumer.clone(),
                start_at: self.config.start_at,
            });
        }
        Arc::get_mut(&mut self.config).unwrap_or_else(|| unreachable!("just made unique"))
    }

    /// Another table (the family's `table=` argument). Must be `[A-Za-z_][A-Za-z0-9_]*`.
    #[must_use]
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.config_mut().table = table.into();
        self
    }

    /// How often the listener looks for new rows (default 50 ms; the family's is 250 ms).
    #[must_use]
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.config_mut().poll_interval = every.max(Duration::from_micros(100));
        self
    }

    /// Saves the listener's position under `name`, and resumes from it: see the type's docs.
    #[must_use]
    pub fn consumer(mut self, name: impl Into<String>) -> Self {
        self.config_mut().consumer = Some(name.into());
        self
    }

    /// Where a listener without a saved cursor starts (default [`StartAt::Latest`]).
    #[must_use]
    pub fn start_at(mut self, start: StartAt) -> Self {
        self.config_mut().start_at = start;
        self
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    fn origin(&self) -> String {
        format!("{}#{}", self.config.path.display(), self.config.table)
    }
}

fn table_error(context: &str, error: TableError) -> TransportError {
    TransportError::other(context.to_owned(), error)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TransportError> + Send + 'static,
) -> Result<T, TransportError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) => Err(TransportError::other("sqlite bridge worker", e)),
    }
}

impl Transport for SqliteTransport {
    fn kind(&self) -> &str {
        "SQLiteEventBridge"
    }

    fn describe(&self) -> String {
        format!("sqlite:{}", self.origin())
    }

    fn capabilities(&self) -> Capabilities {
        let saved = self.config.consumer.is_some();
        Capabilities::at_most_once()
            .with_durable(saved)
            .with_acks(saved)
            .with_redelivery(saved)
            .with_receives_own(true)
            .with_ordered(true)
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            if self.state.closed.load(Ordering::Acquire) {
                return Err(TransportError::Closed);
            }
            let config = Arc::clone(&self.config);
            let state = Arc::clone(&self.state);
            let text = message.text_arc().clone();
            let key = (message.kind() == MessageKind::Completion)
                .then(|| format!("{}:completion", message.event_id()));
            // In a blocking task that runs to the end even if this future is dropped: a row is
            // written whole or not at all.
            blocking(move || {
                let mut writer = state.writer.lock();
                if writer.is_none() {
                    *writer = Some(
                        BridgeTable::open(&config.path, &config.table)
                            .map_err(|e| table_error("open the bridge table", e))?,
                    );
                }
                let Some(table) = writer.as_mut() else {
                    return Err(TransportError::Closed);
                };
                match key {
                    Some(key) => table.write_record(&key, &text),
                    None => table.write_json(&text),
                }
                .map_err(|e| table_error("write to the bridge table", e))
            })
            .await
        })
    }

    fn listen(&self) -> BoxFuture<'_, Result<DeliveryStream, TransportError>> {
        Box::pin(async move {
            if self.state.closed.load(Ordering::Acquire) {
                return Err(TransportError::Closed);
            }
            let config = Arc::clone(&self.config);
            // Open, find the start, and (with a consumer) save it before returning: what is
            // written after `listen` returns is delivered.
            let (reader, cursor) = blocking(move || {
                let reader = BridgeTable::open(&config.path, &config.table)
                    .map_err(|e| table_error("open the bridge table", e))?;
                let saved = match &config.consumer {
                    Some(name) => reader
                        .load_cursor(name)
                        .map_err(|e| table_error("read the saved cursor", e))?,
                    None => None,
                };
                let cursor = match (saved, config.start_at) {
                    (Some(saved), _) => saved,
                    (None, StartAt::Beginning) => 0,
                    (None, StartAt::Latest) => reader
                        .last_rowid()
                        .map_err(|e| table_error("read the bridge table", e))?,
                };
                if let (Some(name), None) = (&config.consumer, saved) {
                    reader
                        .save_cursor(name, cursor)
                        .map_err(|e| table_error("save the cursor", e))?;
                }
                Ok((reader, cursor))
            })
            .await?;
            let reader = Arc::new(Mutex::new(reader));
            let acks = self.config.consumer.clone().map(|name| {
                Arc::new(AckState {
                    consumer: name,
                    table: Arc::clone(&reader),
                    cursor: Mutex::new(Cursor {
                        pending: BTreeSet::new(),
                        read: cursor,
                        saved: cursor,
                    }),
                    acked: Notify::new(),
                })
            });
            let (tx, rx) = mpsc::channel(BATCH);
            tokio::spawn(poll(
                Arc::clone(&self.config),
                Arc::clone(&self.state),
                reader,
                acks,
                cursor,
                tx,
            ));
            let mut rx = rx;
            let stream: DeliveryStream =
                Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)));
            Ok(stream)
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.state.closed.store(true, Ordering::Release);
            self.state.stop.notify_waiters();
            let state = Arc::clone(&self.state);
            // Writes are committed when `send` returns; only the connection is left to close.
            blocking(move || {
                state.writer.lock().take();
                Ok(())
            })
            .await
        })
    }
}

/// The in-order ack position of a consumer.
struct Cursor {
    /// Rows delivered and not acked yet.
    pending: BTreeSet<i64>,
    /// The newest row read.
    read: i64,
    /// The position saved in the file.
    saved: i64,
}

impl Cursor {
    /// Every row up to this one is acked.
    fn acked_through(&self) -> i64 {
        self.pending.first().map_or(self.read, |first| first - 1)
    }
}

struct AckState {
    consumer: String,
    table: Arc<Mutex<BridgeTable>>,
    cursor: Mutex<Cursor>,
    acked: Notify,
}

impl AckState {
    /// Marks `rowid` acked and saves the in-order position if it moved.
    fn ack(&self, rowid: i64) -> Result<(), TransportError> {
        let target = {
            let mut cursor = self.cursor.lock();
            cursor.pending.remove(&rowid);
            cursor.acked_through()
        };
        self.acked.notify_one();
        self.save(target)
    }

    fn save(&self, target: i64) -> Result<(), TransportError> {
        let table = self.table.lock();
        // Under the table's lock: saves happen in order, and never move the position back.
        {
            let cursor = self.cursor.lock();
            if target <= cursor.saved {
                return Ok(());
            }
        }
        table
            .save_cursor(&self.consumer, target)
            .map_err(|e| table_error("save the cursor", e))?;
        self.cursor.lock().saved = target;
        Ok(())
    }
}

struct RowAcker {
    state: Arc<AckState>,
    rowid: i64,
    /// For redelivery: the message, where it came from, which delivery this is, and the
    /// listener's channel (weak: an acker kept after close does not keep the stream open).
    text: String,
    origin: String,
    attempt: u32,
    redeliver: mpsc::WeakSender<Result<Delivery, BadInput>>,
}

/// How long a nacked row waits before it is delivered again, when the bridge gives no delay.
const REDELIVERY_DELAY: Duration = Duration::from_millis(20);

impl Acker for RowAcker {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async move {
            let RowAcker { state, rowid, .. } = *self;
            blocking(move || state.ack(rowid)).await
        })
    }

    /// Delivers the row again after `delay` (20 ms by default); the cursor stays before it.
    fn nack(
        self: Box<Self>,
        delay: Option<Duration>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        let this = *self;
        tracing::debug!(origin = %this.origin, reason = %reason, "bubus-sqlite: row handed back");
        tokio::spawn(async move {
            tokio::time::sleep(delay.unwrap_or(REDELIVERY_DELAY)).await;
            let Some(tx) = this.redeliver.upgrade() else {
                return;
            };
            let delivery = Delivery::new(this.text.clone(), this.origin.clone())
                .with_attempt(this.attempt.saturating_add(1));
            let again = RowAcker {
                attempt: this.attempt.saturating_add(1),
                ..this
            };
            let _ = tx.send(Ok(delivery.with_acker(again))).await;
        });
        Box::pin(async { Ok(()) })
    }
}

async fn poll(
    config: Arc<Config>,
    state: Arc<State>,
    reader: Arc<Mutex<BridgeTable>>,
    acks: Option<Arc<AckState>>,
    mut cursor: i64,
    tx: mpsc::Sender<Result<Delivery, BadInput>>,
) {
    let origin_base = format!("{}#{}", config.path.display(), config.table);
    loop {
        let stopped = state.stop.notified();
        if state.closed.load(Ordering::Acquire) {
            return;
        }
        // With acks: wait while too many rows are unacked (bounded memory on a long backlog).
        if let Some(acks) = &acks {
            let acked = acks.acked.notified();
            if acks.cursor.lock().pending.len() >= MAX_UNACKED {
                tokio::select! {
                    () = acked => {}
                    () = stopped => return,
                }
                continue;
            }
        }
        let read = {
            let reader = Arc::clone(&reader);
            blocking(move || {
                reader
                    .lock()
                    .read_after(cursor, BATCH)
                    .map_err(|e| table_error("read the bridge table", e))
            })
            .await
        };
        let rows = match read {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(origin = %origin_base, error = %e, "sqlite bridge: read failed; retrying");
                Vec::new()
            }
        };
        let full = rows.len() == BATCH;
        for row in rows {
            cursor = row.rowid;
            let origin = format!("{origin_base} row {}", row.rowid);
            let item = match row.event {
                Ok(map) => {
                    let text = serde_json::Value::Object(map).to_string();
                    match &acks {
                        Some(acks) => {
                            {
                                let mut c = acks.cursor.lock();
                                c.pending.insert(row.rowid);
                                c.read = row.rowid;
                            }
                            let delivery = Delivery::new(text.clone(), origin.clone());
                            Ok(delivery.with_acker(RowAcker {
                                state: Arc::clone(acks),
                                rowid: row.rowid,
                                text,
                                origin,
                                attempt: 1,
                                redeliver: tx.downgrade(),
                            }))
                        }
                        None => Ok(Delivery::new(text, origin)),
                    }
                }
                Err(e) => {
                    // Nothing to ack for it: passed at once.
                    if let Some(acks) = &acks {
                        let target = {
                            let mut c = acks.cursor.lock();
                            c.read = row.rowid;
                            c.acked_through()
                        };
                        let acks = Arc::clone(acks);
                        let _ = blocking(move || acks.save(target)).await;
                    }
                    Err(BadInput::new(origin, e.message))
                }
            };
            if tx.send(item).await.is_err() {
                return;
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(config.poll_interval) => {}
            () = stopped => return,
        }
    }
}
