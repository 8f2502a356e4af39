//! The middleware that writes a bus's events to a log.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use uuid::Uuid;

use crate::bus::EventBus;
use crate::event::{AnyEvent, EventStatus};
use crate::middleware::Middleware;

use super::{WalError, WalWriter};

/// Dispatch records written whose completion record is still to come, at most; past it the set
/// is cleared (a forwarded event might then get a second dispatch record, which readers and
/// replay tolerate) rather than grow without bound on events that never complete.
const MAX_TRACKED: usize = 1 << 16;

/// A [`Middleware`] that writes every event of the buses it is added to into a
/// [`WalWriter`]: a dispatch record when the event is dispatched, and a completion record, with
/// the handlers' results, when it completes.
///
/// * **Dispatch record** (in [`on_event_dispatched`](Middleware::on_event_dispatched)): the
///   event's canonical JSON ([`AnyEvent::to_json`]) as it is enqueued — `"event_status":
///   "pending"`, or `"started"` for an event forwarded from a bus already processing it —
///   without `event_results`. Written by `dispatch` itself, so the log shows what was accepted
///   even if the process dies while handling it.
/// * **Completion record** (in [`on_event_change`](Middleware::on_event_change) with
///   [`EventStatus::Completed`]): [`AnyEvent::to_json_with_results`], so
///   `"event_status": "completed"` and `event_results`, keyed by handler id. Unlike the Python
///   runtime's WAL, which writes completed events only and without results, the log says what
///   each handler returned.
///
/// One middleware shared by several buses writes each event once: one dispatch record when it
/// first reaches one of them (not one per forwarding hop), one completion record when it
/// completes. Separate middlewares (even on one shared [`WalWriter`]) each write their own.
///
/// A dispatch record always precedes its event's completion record, and the completion record
/// is written before anyone awaiting the event resumes. On a multi-threaded runtime another
/// worker may process an event while `dispatch` is still returning: if the event completes before
/// its dispatch hook runs, it gets only the completion record, which says everything the dispatch
/// record would have.
///
/// Hooks write inline, on the task that dispatches or completes the event (see [`WalWriter`]
/// for what a write costs, and [`FsyncPolicy`](super::FsyncPolicy) for durability). A failed
/// write never disturbs the bus: it is logged with `tracing` at error level, counted, and kept
/// for [`take_error`](Self::take_error).
///
/// ```
/// use std::sync::Arc;
/// use bubus::wal::{RecordKind, WalMiddleware, WalReader};
/// use bubus::{DynEvent, EventBus};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// # let dir = std::env::temp_dir().join(format!("bubus-doc-walmw-{}", std::process::id()));
/// let path = dir.join("events.jsonl");
/// let wal = Arc::new(WalMiddleware::open(&path)?);
/// let bus = EventBus::builder("Orders").middleware(wal.clone()).build();
/// bus.on_pattern("Ping", |_event: bubus::AnyEvent| json!("pong"));
///
/// bus.dispatch(DynEvent::new("Ping", json!({"n": 1}))?)?.await?;
///
/// let kinds: Vec<RecordKind> = WalReader::open(&path)?
///     .map(|record| record.map(|r| r.kind))
///     .collect::<Result<_, _>>()?;
/// assert_eq!(kinds, [RecordKind::Dispatched, RecordKind::Completed]);
/// assert_eq!(wal.error_count(), 0);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
pub struct WalMiddleware {
    writer: Arc<WalWriter>,
    dispatch_records: bool,
    /// Events whose dispatch record is written and whose completion record is not. Its lock
    /// also orders the two records of one event.
    open: Mutex<HashSet<Uuid>>,
    errors: AtomicU64,
    last_error: Mutex<Option<WalError>>,
}

impl WalMiddleware {
    /// A middleware writing to the log at `path` (created if missing, appended to if not).
    ///
    /// # Errors
    ///
    /// [`WalError::Open`] if the log cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WalError> {
        Ok(WalMiddleware::new(Arc::new(WalWriter::open(path)?)))
    }

    /// A middleware writing to `writer`, which other middlewares (or code) may share: their
    /// lines never interleave.
    pub fn new(writer: Arc<WalWriter>) -> Self {
        WalMiddleware {
            writer,
            dispatch_records: true,
            open: Mutex::new(HashSet::new()),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// Write completion records only, no dispatch records: the log then holds what the Python
    /// runtime's `WALEventBusMiddleware` writes (but with results). By default both are written.
    pub fn completions_only(mut self) -> Self {
        self.dispatch_records = false;
        self
    }

    /// The writer, e.g. to [`sync`](WalWriter::sync) it or to share it with another middleware.
    pub fn writer(&self) -> &Arc<WalWriter> {
        &self.writer
    }

    /// Flushes the log to disk; see [`WalWriter::sync`].
    ///
    /// # Errors
    ///
    /// [`WalError::Write`] if the operating system reports a failure.
    pub fn sync(&self) -> Result<(), WalError> {
        self.writer.sync()
    }

    /// How many records failed to be written since the middleware was created.
    pub fn error_count(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// The most recent write failure, if any, clearing it.
    pub fn take_error(&self) -> Option<WalError> {
        self.last_error.lock().take()
    }

    fn write(&self, line: &[u8]) -> Result<(), WalError> {
        self.writer.write_line(line)
    }

    fn record_error(&self, bus: &EventBus, event: &AnyEvent, error: WalError) {
        tracing::error!(
            bus = %bus.label(),
            event = %event.label(),
            error = &error as &(dyn std::error::Error + 'static),
            "write-ahead log record lost"
        );
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock() = Some(error);
    }
}

/// An event's JSON as one line, newline included.
fn line_of(event: &AnyEvent, results: bool) -> Vec<u8> {
    let mut line = crate::wire::encode::event_json_text(event.inner(), results);
    line.push(b'\n');
    line
}

impl Middleware for WalMiddleware {
    fn on_event_dispatched(&self, bus: &EventBus, event: &AnyEvent) {
        if !self.dispatch_records {
            return;
        }
        let line = line_of(event, false);
        let result = {
            let mut open = self.open.lock();
            // Completed already (on another thread: its completion record is written, or is about
            // to be, after this), or dispatched before on another bus of this middleware.
            if event.event_status() == EventStatus::Completed || open.contains(&event.event_id()) {
                return;
            }
            if open.len() >= MAX_TRACKED {
                open.clear();
            }
            open.insert(event.event_id());
            self.write(&line)
        };
        // Synced outside the lock, so records of concurrent events can share one flush.
        let result = result.and_then(|()| self.writer.sync_if_needed());
        if let Err(error) = result {
            self.record_error(bus, event, error);
        }
    }

    fn on_event_change(&self, bus: &EventBus, event: &AnyEvent, status: EventStatus) {
        if status != EventStatus::Completed {
            return;
        }
        let line = line_of(event, true);
        let result = {
            let mut open = self.open.lock();
            open.remove(&event.event_id());
            self.write(&line)
        };
        // Synced outside the lock, so records of concurrent events can share one flush.
        let result = result.and_then(|()| self.writer.sync_if_needed());
        if let Err(error) = result {
            self.record_error(bus, event, error);
        }
    }
}

impl fmt::Debug for WalMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalMiddleware")
            .field("writer", &self.writer)
            .field("dispatch_records", &self.dispatch_records)
            .field("errors", &self.error_count())
            .finish_non_exhaustive()
    }
}

/// The builder's shortcut for the common case, here beside the middleware it adds (the engine
/// does not know the log).
impl crate::bus::EventBusBuilder {
    /// Logs every event of the bus to the [write-ahead log](crate::wal) at `path` (created if
    /// missing, appended to if not): adds a [`WalMiddleware`](WalMiddleware) with
    /// the default options. To sync the log, see its write errors or share it with other buses,
    /// create the middleware yourself and pass it to [`middleware`](Self::middleware).
    ///
    /// # Errors
    ///
    /// [`WalError::Open`](WalError::Open) if the log cannot be opened.
    pub fn wal(self, path: impl AsRef<std::path::Path>) -> Result<Self, WalError> {
        let wal = WalMiddleware::open(path)?;
        Ok(self.middleware(Arc::new(wal)))
    }
}
