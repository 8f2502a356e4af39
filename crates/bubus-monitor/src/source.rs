//! Where events come from: a write-ahead log being written, a history mirror, a bridge
//! transport, or any stream of event JSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{Stream, StreamExt};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::Shared;

/// How often a source looks for new records.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// A source of events for a [`Monitor`](crate::Monitor).
///
/// A source runs as one task for as long as the monitor does: it reads events from wherever
/// they are and hands each one's JSON (canonical or as any bubus runtime writes it) to its
/// [`Sink`]. The same event may come from several sources: the monitor merges them by
/// `event_id`.
///
/// A bridge transport becomes a source by mapping its deliveries to event JSON: see
/// [`StreamSource`].
pub trait Source: Send + 'static {
    /// How the page names the source (`wal:orders.jsonl`).
    fn name(&self) -> String;

    /// Reads events into `sink` until the source ends (a stream that ends) or forever.
    /// Recoverable problems (a bad line) are reported with [`Sink::warn`] and reading goes on.
    fn run(self: Box<Self>, sink: Sink) -> BoxFuture<'static, ()>;

    /// What to run when the monitor shuts down, taken before the source starts (a transport
    /// source closes its transport: a Unix socket file is removed, a listener unbound).
    /// Default: nothing.
    fn on_shutdown(&self) -> Option<BoxFuture<'static, ()>> {
        None
    }
}

/// The state of a source, shown on the page.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SourceStatus {
    /// The source's name.
    pub name: String,
    /// Events (and result rows) read.
    pub records: u64,
    /// Bad lines or rows skipped.
    pub bad: u64,
    /// The last problem, if any.
    pub last_warning: Option<String>,
    /// Whether the source misses nothing written from now on: at once for a log or a mirror
    /// (read from their start whenever they appear), once it listens for a bridge transport
    /// (which delivers what is sent after that).
    pub ready: bool,
    /// Whether the source stopped (a stream that ended).
    pub ended: bool,
}

/// Where a [`Source`] puts what it reads.
#[derive(Clone)]
pub struct Sink {
    shared: Arc<Shared>,
    index: usize,
    status: Arc<Mutex<SourceStatus>>,
}

impl std::fmt::Debug for Sink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl Sink {
    pub(crate) fn new(shared: Arc<Shared>, index: usize, status: Arc<Mutex<SourceStatus>>) -> Sink {
        Sink {
            shared,
            index,
            status,
        }
    }

    /// An event's JSON object (with or without `event_results`). Anything that is not an object
    /// with an `event_id` and an `event_type` is counted as bad.
    pub fn event(&self, json: Value) {
        let accepted = match json {
            Value::Object(map) => {
                let mut model = self.shared.model.lock();
                model.ingest_event(self.index, map)
            }
            _ => false,
        };
        self.counted(accepted, "not an event: no event_id or event_type");
    }

    /// One handler result's JSON for the event `event_id` of type `event_type` (a history
    /// mirror's result rows).
    pub fn result(&self, event_id: &str, event_type: &str, json: &Map<String, Value>) {
        self.shared
            .model
            .lock()
            .ingest_result(self.index, event_id, event_type, json);
        self.counted(true, "");
    }

    fn counted(&self, accepted: bool, why: &str) {
        let mut status = self.status.lock();
        if accepted {
            status.records += 1;
        } else {
            status.bad += 1;
            status.last_warning = Some(why.to_owned());
        }
        drop(status);
        self.shared.changed();
    }

    /// Reports a problem (a bad line, a read error); the source goes on.
    pub fn warn(&self, message: impl Into<String>) {
        let message = message.into();
        tracing::warn!(source = %self.status.lock().name, "{message}");
        let mut status = self.status.lock();
        status.bad += 1;
        status.last_warning = Some(message);
    }

    /// Tells the monitor the source reads now ([`SourceStatus::ready`]); a source whose reading
    /// starts at once need not call it: it is ready when it first hands an event over.
    pub fn ready(&self) {
        let mut status = self.status.lock();
        if status.ready {
            return;
        }
        status.ready = true;
        drop(status);
        self.shared.changed();
    }

    fn ended(&self) {
        let mut status = self.status.lock();
        status.ended = true;
        status.ready = false;
        drop(status);
        self.shared.changed();
    }
}

/// A write-ahead log (the JSONL file [`bubus::wal::WalMiddleware`] or another runtime's WAL
/// writes), read from its start and then followed as it grows, across truncation and rotation.
/// A log that does not exist yet is waited for.
#[derive(Debug)]
pub struct WalSource {
    path: PathBuf,
}

impl WalSource {
    /// Follows the log at `path`.
    pub fn new(path: impl Into<PathBuf>) -> WalSource {
        WalSource { path: path.into() }
    }
}

impl Source for WalSource {
    fn name(&self) -> String {
        format!("wal:{}", self.path.display())
    }

    fn run(self: Box<Self>, sink: Sink) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // The log is read from its first line whenever it appears: nothing is missed.
            sink.ready();
            let mut follower = loop {
                match bubus::wal::WalFollower::open(&self.path) {
                    Ok(f) => break f.poll_interval(POLL_INTERVAL),
                    Err(e) => {
                        if self.path.exists() {
                            sink.warn(e.to_string());
                        }
                        tokio::time::sleep(POLL_INTERVAL * 5).await;
                    }
                }
            };
            loop {
                match follower.next_record().await {
                    Ok(record) => sink.event(record.event.to_json_with_results()),
                    Err(error) => {
                        let line_error = error.line().is_some();
                        sink.warn(format!("{}: {error}", self.path.display()));
                        if !line_error {
                            tokio::time::sleep(POLL_INTERVAL).await;
                        }
                    }
                }
            }
        })
    }
}

/// A history mirror: the SQLite database [`bubus_sqlite::SqliteHistoryMirror`] (or the Python
/// runtime's mirror) writes. Opened read-only; polled for new rows of `events_log` and
/// `event_results_log` while it is written. A database that does not exist yet is waited for.
#[derive(Debug)]
pub struct SqliteSource {
    path: PathBuf,
}

impl SqliteSource {
    /// Reads the mirror at `path`.
    pub fn new(path: impl Into<PathBuf>) -> SqliteSource {
        SqliteSource { path: path.into() }
    }
}

/// Rows read from a mirror in one poll.
enum Row {
    Event(Value),
    Result {
        event_id: String,
        event_type: String,
        json: Map<String, Value>,
    },
    Bad(String),
}

struct MirrorCursor {
    events: i64,
    results: i64,
}

fn poll_mirror(path: &Path, cursor: &mut MirrorCursor) -> Result<Vec<Row>, String> {
    use bubus_sqlite::rusqlite::{Connection, OpenFlags};
    const BATCH: i64 = 5_000;
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| e.to_string())?;
    db.busy_timeout(Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    let has = |table: &str| -> Result<bool, String> {
        db.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [table],
            |row| row.get::<_, i64>(0),
        )
        .map(|n| n > 0)
        .map_err(|e| e.to_string())
    };
    let mut rows = Vec::new();
    if has("events_log")? {
        let mut query = db
            .prepare("SELECT id, event_json FROM events_log WHERE id > ?1 ORDER BY id LIMIT ?2")
            .map_err(|e| e.to_string())?;
        let found = query
            .query_map([cursor.events, BATCH], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<String>>(1).ok().flatten(),
                ))
            })
            .map_err(|e| e.to_string())?;
        for row in found {
            let (id, json) = row.map_err(|e| e.to_string())?;
            cursor.events = id;
            rows.push(match json.as_deref().map(serde_json::from_str::<Value>) {
                Some(Ok(value)) => Row::Event(value),
                _ => Row::Bad(format!("events_log row {id}: event_json is not JSON text")),
            });
        }
    }
    if has("event_results_log")? {
        let mut query = db
            .prepare(
                "SELECT id, event_id, event_type, event_result_json FROM event_results_log \
                 WHERE id > ?1 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| e.to_string())?;
        let found = query
            .query_map([cursor.results, BATCH], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, Option<String>>(1).ok().flatten(),
                    row.get::<_, Option<String>>(2).ok().flatten(),
                    row.get::<_, Option<String>>(3).ok().flatten(),
                ))
            })
            .map_err(|e| e.to_string())?;
        for row in found {
            let (id, event_id, event_type, json) = row.map_err(|e| e.to_string())?;
            cursor.results = id;
            let json = json.as_deref().map(serde_json::from_str::<Value>);
            rows.push(match (event_id, event_type, json) {
                (Some(event_id), Some(event_type), Some(Ok(Value::Object(json)))) => Row::Result {
                    event_id,
                    event_type,
                    json,
                },
                _ => Row::Bad(format!(
                    "event_results_log row {id}: event_id, event_type or event_result_json is not text"
                )),
            });
        }
    }
    Ok(rows)
}

impl Source for SqliteSource {
    fn name(&self) -> String {
        format!("sqlite:{}", self.path.display())
    }

    fn run(self: Box<Self>, sink: Sink) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            // Every row is read, from the first: nothing is missed.
            sink.ready();
            let path = Arc::new(self.path);
            let mut cursor = Some(MirrorCursor {
                events: 0,
                results: 0,
            });
            loop {
                if !path.exists() {
                    tokio::time::sleep(POLL_INTERVAL * 5).await;
                    continue;
                }
                let p = path.clone();
                let Some(mut c) = cursor.take() else { return };
                let polled = tokio::task::spawn_blocking(move || {
                    let rows = poll_mirror(&p, &mut c);
                    (c, rows)
                })
                .await;
                let Ok((c, rows)) = polled else { return };
                cursor = Some(c);
                let more = match rows {
                    Ok(rows) => {
                        let more = rows.len() >= 5_000;
                        for row in rows {
                            match row {
                                Row::Event(json) => sink.event(json),
                                Row::Result {
                                    event_id,
                                    event_type,
                                    json,
                                } => sink.result(&event_id, &event_type, &json),
                                Row::Bad(why) => sink.warn(format!("{}: {why}", path.display())),
                            }
                        }
                        more
                    }
                    Err(e) => {
                        sink.warn(format!("{}: {e}", path.display()));
                        false
                    }
                };
                if !more {
                    tokio::time::sleep(POLL_INTERVAL * 2).await;
                }
            }
        })
    }
}

/// Any stream of event JSON as a source: the way a bridge transport (JSONL, a socket, HTTP,
/// Redis, NATS, PostgreSQL) plugs in — map its deliveries to the events' JSON and wrap the
/// stream. The source ends when the stream does.
///
/// ```
/// use bubus_monitor::{Monitor, StreamSource};
/// use serde_json::json;
///
/// let events = futures_util::stream::iter(vec![json!({
///     "event_id": "0197f5a1-3c2e-7d4b-8a9f-1e2d3c4b5a69",
///     "event_type": "Ping",
///     "event_status": "pending",
/// })]);
/// let builder = Monitor::builder().source(StreamSource::new("bridge:pings", events));
/// # let _ = builder;
/// ```
pub struct StreamSource<S> {
    name: String,
    stream: S,
}

impl<S> std::fmt::Debug for StreamSource<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSource")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<S> StreamSource<S>
where
    S: Stream<Item = Value> + Send + Unpin + 'static,
{
    /// A source named `name` reading `stream`.
    pub fn new(name: impl Into<String>, stream: S) -> Self {
        StreamSource {
            name: name.into(),
            stream,
        }
    }
}

impl<S> Source for StreamSource<S>
where
    S: Stream<Item = Value> + Send + Unpin + 'static,
{
    fn name(&self) -> String {
        self.name.clone()
    }

    fn run(self: Box<Self>, sink: Sink) -> BoxFuture<'static, ()> {
        let mut stream = self.stream;
        Box::pin(async move {
            sink.ready();
            while let Some(json) = stream.next().await {
                sink.event(json);
            }
            sink.ended();
        })
    }
}

/// A bridge transport as a source ([`bubus::bridge::Transport`]: JSONL files, Unix sockets, and
/// the engines' crates): every message delivered on it — an event, or a completion record
/// (`{"bubus_completion": event}`, when the bridge sends results back) — is shown.
///
/// The monitor listens like any receiver, so give it a subscription of its own: on engines with
/// consumer groups, a group of its own, or it takes events from the real consumers. It acks what
/// it has read. A transport whose stream ends (closed, or the connection lost) is listened to
/// again after a pause.
///
/// ```no_run
/// use bubus::bridge::JsonlTransport;
/// use bubus_monitor::{Monitor, TransportSource};
///
/// # async fn run() -> Result<(), bubus_monitor::MonitorError> {
/// let monitor = Monitor::builder()
///     .source(TransportSource::new(JsonlTransport::new("bridge.jsonl")))
///     .start()
///     .await?;
/// # Ok(()) }
/// ```
pub struct TransportSource {
    transport: Arc<dyn bubus::bridge::Transport>,
}

impl std::fmt::Debug for TransportSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportSource")
            .field("transport", &self.transport.describe())
            .finish()
    }
}

impl TransportSource {
    /// Listens on `transport`.
    pub fn new(transport: impl bubus::bridge::Transport) -> TransportSource {
        TransportSource {
            transport: Arc::new(transport),
        }
    }

    /// Listens on a shared transport.
    pub fn from_arc(transport: Arc<dyn bubus::bridge::Transport>) -> TransportSource {
        TransportSource { transport }
    }
}

/// The event a bridge message carries: itself, or the event of a completion record.
fn bridged_event(text: &str) -> Option<Value> {
    match serde_json::from_str::<Value>(text).ok()? {
        Value::Object(mut map) => match map.remove(bubus::bridge::COMPLETION_KEY) {
            Some(event) => Some(event),
            None => Some(Value::Object(map)),
        },
        _ => None,
    }
}

impl Source for TransportSource {
    fn name(&self) -> String {
        format!("bridge:{}", self.transport.describe())
    }

    fn on_shutdown(&self) -> Option<BoxFuture<'static, ()>> {
        let transport = Arc::clone(&self.transport);
        Some(Box::pin(async move {
            if let Err(e) = transport.close().await {
                tracing::debug!("closing {}: {e}", transport.describe());
            }
        }))
    }

    fn run(self: Box<Self>, sink: Sink) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            loop {
                match self.transport.listen().await {
                    Ok(mut deliveries) => {
                        sink.ready();
                        while let Some(item) = deliveries.next().await {
                            match item {
                                Ok(mut delivery) => {
                                    match bridged_event(delivery.text()) {
                                        Some(event) => sink.event(event),
                                        None => sink.warn(format!(
                                            "{}: a message that is not a JSON object",
                                            delivery.origin()
                                        )),
                                    }
                                    if let Some(acker) = delivery.take_acker() {
                                        if let Err(e) = acker.ack().await {
                                            sink.warn(format!("cannot ack: {e}"));
                                        }
                                    }
                                }
                                Err(bad) => sink.warn(format!("{}: {}", bad.origin, bad.message)),
                            }
                        }
                    }
                    Err(e) => sink.warn(e.to_string()),
                }
                tokio::time::sleep(POLL_INTERVAL * 10).await;
            }
        })
    }
}
