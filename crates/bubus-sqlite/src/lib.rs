//! An SQLite mirror of what [`bubus`] buses do: every event and every handler result, at every
//! status change, as rows you can query with plain SQL — the Rust counterpart of the Python
//! runtime's `SQLiteHistoryMirrorMiddleware`, with the same tables.
//!
//! ```
//! use std::sync::Arc;
//! use bubus::{AnyEvent, DynEvent, EventBus};
//! use bubus_sqlite::SqliteHistoryMirror;
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let dir = std::env::temp_dir().join(format!("bubus-sqlite-doc-{}", std::process::id()));
//! let path = dir.join("history.sqlite3");
//! let mirror = Arc::new(SqliteHistoryMirror::open(&path)?);
//! let bus = EventBus::builder("Orders").middleware(mirror.clone()).build();
//! bus.on_pattern("OrderPlaced", |_event: AnyEvent| json!("accepted"));
//!
//! bus.dispatch(DynEvent::new("OrderPlaced", json!({"order_id": 7}))?)?.await?;
//! mirror.flush()?; // rows are written by a background thread: wait for them
//!
//! let db = rusqlite::Connection::open(&path)?;
//! let phases: Vec<String> = db
//!     .prepare("SELECT phase FROM events_log WHERE event_type = 'OrderPlaced' ORDER BY id")?
//!     .query_map([], |row| row.get(0))?
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(phases, ["pending", "started", "completed"]);
//!
//! let result: String = db.query_row(
//!     "SELECT result_repr FROM event_results_log WHERE phase = 'completed'",
//!     [],
//!     |row| row.get(0),
//! )?;
//! assert_eq!(result, r#""accepted""#);
//! # mirror.close();
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(()) }
//! ```
//!
//! # The tables
//!
//! The schema is the reference's, column for column, so the same queries (and the reference's
//! dashboard) work on files written by either runtime:
//!
//! ```sql
//! CREATE TABLE IF NOT EXISTS events_log (
//!     id INTEGER PRIMARY KEY AUTOINCREMENT,
//!     event_id TEXT NOT NULL,
//!     event_type TEXT NOT NULL,
//!     event_status TEXT NOT NULL,  -- the event's status when the row was written
//!     eventbus_id TEXT NOT NULL,
//!     eventbus_name TEXT NOT NULL, -- the bus label, `Name#ab12`
//!     phase TEXT,                  -- the hook: pending, started or completed
//!     event_json TEXT NOT NULL,    -- the event's canonical JSON, without its results
//!     inserted_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
//! );
//! CREATE TABLE IF NOT EXISTS event_results_log (
//!     id INTEGER PRIMARY KEY AUTOINCREMENT,
//!     event_result_id TEXT NOT NULL,
//!     event_id TEXT NOT NULL,
//!     handler_id TEXT NOT NULL,
//!     handler_name TEXT NOT NULL,
//!     eventbus_id TEXT NOT NULL,
//!     eventbus_name TEXT NOT NULL, -- the bus label
//!     event_type TEXT NOT NULL,
//!     status TEXT NOT NULL,        -- the result's status: pending, started, completed or error
//!     phase TEXT,                  -- the hook: pending, started or completed
//!     result_repr TEXT,            -- the returned value as compact JSON (no error, not null)
//!     error_repr TEXT,             -- the error as `Type: message`
//!     event_result_json TEXT,      -- the result's JSON
//!     inserted_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
//! );
//! ```
//!
//! A row is appended on every event hook (`pending` when a bus starts processing the event,
//! `started`, `completed` once per mirror) and on every result hook (`pending`, `started`,
//! `completed`); nothing is ever updated, so the tables are the history of every transition.
//! The Python runtime fills `result_repr` and `error_repr` with Python `repr()`s; here they are
//! the value's JSON and the error's `Type: message`, which hold the same information.
//!
//! The database is put in WAL journal mode with `synchronous=NORMAL`: commits do not wait for
//! the disk (a power loss may lose the last transactions, never corrupt the file) and readers
//! never block the writer.
//!
//! # Writes, and what they cost
//!
//! By default ([`WriteMode::Background`]) a hook turns its event or result into a row and queues
//! it for a dedicated writer thread, which commits what has queued up — gathering rows for up to
//! 2 ms after the first one, at most 4 096 per transaction — so a burst of hooks costs one
//! commit. An event row holds the event's JSON as it is at that hook, so that JSON is built in
//! the hook; a result is an immutable snapshot, so its JSON is built by the writer. Rows appear
//! in the file a few milliseconds later; [`flush`](SqliteHistoryMirror::flush) waits until every
//! row queued so far is committed, and [`close`](SqliteHistoryMirror::close) writes what is
//! queued before closing. If the writer falls more than
//! [`queue_capacity`](MirrorOptions::queue_capacity) rows behind, hooks wait for it: the mirror
//! slows the bus down rather than drop rows or grow without bound.
//!
//! [`WriteMode::Inline`] commits each row in its hook, before the bus goes on, so a row is in the
//! file as soon as its hook returns — at the cost of one SQLite transaction per hook.
//!
//! Measured with `cargo run --release -p bubus-sqlite --example throughput` (one bus, events
//! dispatched and awaited one at a time, one sync handler each, so 6 rows per event) on a shared
//! 2-vCPU Linux VM with an ext4 disk; expect a dedicated machine to do better, but the
//! proportions hold:
//!
//! | | per event |
//! | --- | --- |
//! | no mirror | 3–9 µs |
//! | building the 6 rows' JSON only | 30–50 µs |
//! | background, burst within the queue | 45–55 µs in the bus; the writer catches up within ~0.1 s |
//! | background, sustained | 65–160 µs: the writer's pace, 35k–80k rows/s, which hooks then wait for |
//! | inline | 300–570 µs |
//!
//! Most of what the bus pays is the JSON, not SQLite; the writer's pace is the disk's.
//!
//! # Several processes, one file
//!
//! Several mirrors — in one process or in several — may write the same file: each has its own
//! connection, SQLite serializes the writers, and a writer that finds the database locked
//! retries for up to [`busy_timeout`](MirrorOptions::busy_timeout) (5 s by default). A write
//! that still fails is logged with `tracing` at `ERROR`, counted
//! ([`error_count`](SqliteHistoryMirror::error_count)) and kept for
//! [`take_error`](SqliteHistoryMirror::take_error); it never disturbs the bus.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::print_stdout,
        clippy::print_stderr
    )
)]

mod row;
mod table;
mod transport;
mod writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bubus::middleware::Middleware;
use bubus::{AnyEvent, EventBus, EventResult, EventStatus};
use parking_lot::Mutex;
use serde_json::Value;

use row::Row;
use writer::{Queue, open_connection, write_rows};

pub use table::{BridgeTable, DEFAULT_TABLE, RowError, TableError, TableRow};
pub use transport::{SqliteTransport, StartAt};

/// The SQLite library this crate is built with, for opening mirrors yourself to query them.
pub use rusqlite;

/// How a [`SqliteHistoryMirror`] writes its rows. See the [crate docs](crate#writes-and-what-they-cost).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteMode {
    /// Hooks hand rows to a writer thread, which commits them in batches.
    #[default]
    Background,
    /// Each hook commits its row before returning.
    Inline,
}

/// Options for [`SqliteHistoryMirror::open_with`].
///
/// ```
/// use std::time::Duration;
/// use bubus_sqlite::{MirrorOptions, WriteMode};
///
/// let options = MirrorOptions::new()
///     .write_mode(WriteMode::Inline)
///     .busy_timeout(Duration::from_secs(30));
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct MirrorOptions {
    write_mode: WriteMode,
    busy_timeout: Duration,
    queue_capacity: usize,
}

impl Default for MirrorOptions {
    fn default() -> Self {
        MirrorOptions {
            write_mode: WriteMode::Background,
            busy_timeout: Duration::from_secs(5),
            queue_capacity: 16_384,
        }
    }
}

impl MirrorOptions {
    /// The defaults: background writes, a 5 s busy timeout, a queue of 16 384 rows.
    pub fn new() -> Self {
        MirrorOptions::default()
    }

    /// How rows are written (default [`WriteMode::Background`]).
    pub fn write_mode(mut self, mode: WriteMode) -> Self {
        self.write_mode = mode;
        self
    }

    /// How long a write waits for another connection (or process) that holds the database
    /// lock before failing (default 5 s, as Python's `sqlite3`).
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// How many rows may wait for the writer thread before hooks wait for it (background mode;
    /// default 16 384, at least 1).
    pub fn queue_capacity(mut self, rows: usize) -> Self {
        self.queue_capacity = rows.max(1);
        self
    }
}

/// Why the mirror could not open its database, or could not write to it. The message does not
/// repeat the cause: it is the error's [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MirrorError {
    /// The directory of the database file could not be created.
    #[error("could not create the directory of {path}")]
    CreateDir {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The database could not be opened or set up (journal mode, tables).
    #[error("could not open the history mirror {path}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// Rows could not be written; they are lost.
    #[error("could not write {rows} row(s) to the history mirror")]
    Write {
        /// How many rows were lost.
        rows: usize,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The database could not be closed cleanly.
    #[error("could not close the history mirror")]
    Close {
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The mirror is closed.
    #[error("the history mirror is closed")]
    Closed,
    /// The writer thread could not be started, or is gone.
    #[error("the history mirror's writer thread is gone: {0}")]
    Writer(String),
}

/// Write failures, shared with the writer thread.
#[derive(Default)]
pub(crate) struct Failures {
    count: AtomicU64,
    last: Mutex<Option<MirrorError>>,
}

impl Failures {
    pub(crate) fn record(&self, error: MirrorError) {
        tracing::error!(
            target: "bubus_sqlite",
            error = &error as &(dyn std::error::Error + 'static),
            "history mirror write failed"
        );
        self.count.fetch_add(1, Ordering::Relaxed);
        *self.last.lock() = Some(error);
    }
}

enum Sink {
    Background {
        queue: Arc<Queue>,
        thread: Mutex<Option<JoinHandle<()>>>,
    },
    Inline {
        connection: Mutex<Option<rusqlite::Connection>>,
    },
}

/// A [`Middleware`] that appends every event and result status change of the buses it is added
/// to into the SQLite tables described in the [crate docs](crate).
///
/// Thread-safe: share one mirror between buses with an `Arc`. [`close`](Self::close) (also run
/// on drop) writes what is pending and closes the database; it may be called any number of
/// times, and hooks after it write nothing.
pub struct SqliteHistoryMirror {
    path: PathBuf,
    mode: WriteMode,
    sink: Sink,
    failures: Arc<Failures>,
}

impl SqliteHistoryMirror {
    /// Opens (or creates) the database at `path` — and its parent directories — with the default
    /// [`MirrorOptions`]: rows written by a background thread.
    ///
    /// # Errors
    ///
    /// [`MirrorError::CreateDir`] or [`MirrorError::Open`] when the file cannot be created,
    /// opened, switched to WAL mode, or given its tables; [`MirrorError::Writer`] when the
    /// writer thread cannot be started.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, MirrorError> {
        SqliteHistoryMirror::open_with(path, MirrorOptions::default())
    }

    /// Opens (or creates) the database at `path` with `options`.
    ///
    /// # Errors
    ///
    /// As [`open`](Self::open).
    pub fn open_with(path: impl AsRef<Path>, options: MirrorOptions) -> Result<Self, MirrorError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| MirrorError::CreateDir {
                path: path.clone(),
                source,
            })?;
        }
        let connection =
            open_connection(&path, options.busy_timeout).map_err(|source| MirrorError::Open {
                path: path.clone(),
                source,
            })?;
        let failures = Arc::new(Failures::default());
        let sink = match options.write_mode {
            WriteMode::Inline => Sink::Inline {
                connection: Mutex::new(Some(connection)),
            },
            WriteMode::Background => {
                let queue = Arc::new(Queue::new(options.queue_capacity));
                let thread_queue = Arc::clone(&queue);
                let thread_failures = Arc::clone(&failures);
                let thread = std::thread::Builder::new()
                    .name("bubus-sqlite-writer".into())
                    .spawn(move || writer::run(connection, &thread_queue, &thread_failures))
                    .map_err(|e| MirrorError::Writer(e.to_string()))?;
                Sink::Background {
                    queue,
                    thread: Mutex::new(Some(thread)),
                }
            }
        };
        Ok(SqliteHistoryMirror {
            path,
            mode: options.write_mode,
            sink,
            failures,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How rows are written.
    pub fn write_mode(&self) -> WriteMode {
        self.mode
    }

    /// Waits until every row handed over so far is committed (at once in inline mode). Blocks
    /// the calling thread: from async code, call it where blocking briefly is acceptable (tests,
    /// shutdown) or through `spawn_blocking`.
    ///
    /// # Errors
    ///
    /// [`MirrorError::Closed`] after [`close`](Self::close); [`MirrorError::Writer`] if the
    /// writer thread is gone.
    pub fn flush(&self) -> Result<(), MirrorError> {
        match &self.sink {
            Sink::Inline { connection } => match connection.lock().as_ref() {
                Some(_) => Ok(()),
                None => Err(MirrorError::Closed),
            },
            Sink::Background { queue, .. } => queue.flush(),
        }
    }

    /// Writes what is pending and closes the database. Idempotent; hooks after it write nothing.
    /// Blocks until the writer thread has finished.
    pub fn close(&self) {
        match &self.sink {
            Sink::Inline { connection } => {
                if let Some(connection) = connection.lock().take() {
                    if let Err((_, source)) = connection.close() {
                        self.failures.record(MirrorError::Close { source });
                    }
                }
            }
            Sink::Background { queue, thread } => {
                // The writer writes what is queued, then stops.
                queue.close();
                if let Some(thread) = thread.lock().take() {
                    if thread.join().is_err() {
                        self.failures
                            .record(MirrorError::Writer("the writer thread panicked".into()));
                    }
                }
            }
        }
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        match &self.sink {
            Sink::Inline { connection } => connection.lock().is_none(),
            Sink::Background { queue, .. } => queue.is_closed(),
        }
    }

    /// How many writes failed so far (each failed write loses its rows).
    pub fn error_count(&self) -> u64 {
        self.failures.count.load(Ordering::Relaxed)
    }

    /// The last write failure, if any, taken (the next call returns `None` until another one).
    pub fn take_error(&self) -> Option<MirrorError> {
        self.failures.last.lock().take()
    }

    fn write(&self, row: Row) {
        match &self.sink {
            Sink::Inline { connection } => {
                let mut connection = connection.lock();
                if let Some(connection) = connection.as_mut() {
                    if let Err(source) = write_rows(connection, std::slice::from_ref(&row)) {
                        self.failures.record(MirrorError::Write { rows: 1, source });
                    }
                }
            }
            Sink::Background { queue, .. } => match queue.push(row) {
                Ok(()) | Err(MirrorError::Closed) => {}
                Err(error) => self.failures.record(error),
            },
        }
    }
}

impl Middleware for SqliteHistoryMirror {
    fn on_event_change(&self, bus: &EventBus, event: &AnyEvent, status: EventStatus) {
        self.write(Row::event(bus, event, status));
    }

    fn on_event_result_change(
        &self,
        bus: &EventBus,
        event: &AnyEvent,
        result: &EventResult<Value>,
        status: EventStatus,
    ) {
        self.write(Row::result(bus, event, result, status));
    }
}

impl Drop for SqliteHistoryMirror {
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for SqliteHistoryMirror {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteHistoryMirror")
            .field("path", &self.path)
            .field("write_mode", &self.mode)
            .field("closed", &self.is_closed())
            .field("error_count", &self.error_count())
            .finish()
    }
}
