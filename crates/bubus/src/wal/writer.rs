//! Appending records to a log file.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

use crate::event::AnyEvent;

use super::WalError;

/// When a [`WalWriter`] asks the operating system to put its records on disk.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FsyncPolicy {
    /// Only when [`WalWriter::sync`] is called. Each record is still handed to the operating
    /// system (one `write`) before `append` returns, so it survives the process crashing, but not
    /// necessarily the machine losing power.
    #[default]
    Manual,
    /// After every record (`fdatasync`): a record is on disk when `append` returns. Each append
    /// then costs a disk flush, on the thread that appends — the bus's, for a
    /// [`WalMiddleware`](super::WalMiddleware).
    EveryRecord,
}

/// Appends records — one compact JSON object per line — to a log file.
///
/// The file is opened in append mode (created, with its parent directories, if missing), and each
/// record is written with a single `write` of the whole line, newline included, under a lock: so
/// writers sharing one `WalWriter` (buses, tasks, threads) never interleave partial lines, and on
/// Unix neither do several processes appending to the same file (`O_APPEND` writes of a whole
/// line land whole at the end of the file). A crash can only cut the last line short; readers
/// report such a line and read everything before it.
///
/// ```
/// use bubus::wal::{FsyncPolicy, WalReader, WalWriter};
/// use bubus::{DynEvent, EventHandle};
/// use serde_json::json;
///
/// # fn main() -> Result<(), bubus::wal::WalError> {
/// # let dir = std::env::temp_dir().join(format!("bubus-doc-writer-{}", std::process::id()));
/// let path = dir.join("events.jsonl");
/// let log = WalWriter::open(&path)?.fsync(FsyncPolicy::EveryRecord);
///
/// let event = EventHandle::new(DynEvent::new("Ping", json!({"n": 1})).unwrap());
/// log.append_event(&event.to_any())?;
///
/// let records: Vec<_> = WalReader::open(&path)?.collect::<Result<_, _>>()?;
/// assert_eq!(records[0].event.event_id(), event.event_id());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
pub struct WalWriter {
    path: PathBuf,
    file: File,
    /// Held for the one `write_all` of a line.
    write_lock: Mutex<()>,
    fsync: FsyncPolicy,
}

impl WalWriter {
    /// Opens the log at `path` for appending, creating it (and its parent directories) if
    /// needed. Records already in the file are kept.
    ///
    /// # Errors
    ///
    /// [`WalError::Open`] if the directory or the file cannot be created or opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WalError> {
        let path = path.as_ref().to_owned();
        let open_error = |e: io::Error| WalError::Open {
            path: path.clone(),
            source: Arc::new(e),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(open_error)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(open_error)?;
        Ok(WalWriter {
            path,
            file,
            write_lock: Mutex::new(()),
            fsync: FsyncPolicy::Manual,
        })
    }

    /// Sets when records are synced to disk (default [`FsyncPolicy::Manual`]).
    pub fn fsync(mut self, policy: FsyncPolicy) -> Self {
        self.fsync = policy;
        self
    }

    /// The policy set with [`fsync`](Self::fsync).
    pub fn fsync_policy(&self) -> FsyncPolicy {
        self.fsync
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `event` as it is now: its canonical JSON ([`AnyEvent::to_json`]), without
    /// results — a dispatch record.
    ///
    /// # Errors
    ///
    /// [`WalError::Write`] if writing (or, with [`FsyncPolicy::EveryRecord`], syncing) fails.
    pub fn append_event(&self, event: &AnyEvent) -> Result<(), WalError> {
        self.append_text(event, false)
    }

    /// Appends `event` with its handlers' results ([`AnyEvent::to_json_with_results`]) — a
    /// completion record once the event is completed.
    ///
    /// # Errors
    ///
    /// As [`append_event`](Self::append_event).
    pub fn append_event_with_results(&self, event: &AnyEvent) -> Result<(), WalError> {
        self.append_text(event, true)
    }

    fn append_text(&self, event: &AnyEvent, results: bool) -> Result<(), WalError> {
        let mut line = crate::wire::encode::event_json_text(event.inner(), results);
        line.push(b'\n');
        self.append_line(&line)
    }

    /// Appends any JSON value as one compact line.
    ///
    /// # Errors
    ///
    /// As [`append_event`](Self::append_event).
    pub fn append(&self, record: &Value) -> Result<(), WalError> {
        let mut line = Vec::with_capacity(512);
        serde_json::to_writer(&mut line, record)
            .map_err(|e| self.write_error(io::Error::other(e)))?;
        line.push(b'\n');
        self.append_line(&line)
    }

    /// Writes and (per the policy) syncs one prepared line.
    fn append_line(&self, line: &[u8]) -> Result<(), WalError> {
        self.write_line(line)?;
        self.sync_if_needed()
    }

    /// Writes one prepared line (compact JSON ending in `\n`) with one `write_all`.
    pub(crate) fn write_line(&self, line: &[u8]) -> Result<(), WalError> {
        let _guard = self.write_lock.lock();
        (&self.file)
            .write_all(line)
            .map_err(|e| self.write_error(e))
    }

    /// Syncs if the policy says every record is. Called outside the write lock, so concurrent
    /// appenders can share one flush.
    pub(crate) fn sync_if_needed(&self) -> Result<(), WalError> {
        if self.fsync == FsyncPolicy::EveryRecord {
            self.sync()
        } else {
            Ok(())
        }
    }

    /// Flushes every record appended so far to disk (`fdatasync`).
    ///
    /// # Errors
    ///
    /// [`WalError::Write`] if the operating system reports a failure.
    pub fn sync(&self) -> Result<(), WalError> {
        self.file.sync_data().map_err(|e| self.write_error(e))
    }

    pub(crate) fn write_error(&self, e: io::Error) -> WalError {
        WalError::Write {
            path: self.path.clone(),
            source: Arc::new(e),
        }
    }
}

impl fmt::Debug for WalWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalWriter")
            .field("path", &self.path)
            .field("fsync", &self.fsync)
            .finish_non_exhaustive()
    }
}
