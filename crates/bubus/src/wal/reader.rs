//! Reading a log back, line by line.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

use super::record::LineSplitter;
use super::{WalError, WalRecord};

/// The longest line a reader decodes by default: 16 MiB. Longer lines are reported as
/// [`WalError::LineTooLong`] and skipped, so a corrupt or foreign file cannot make the reader hold
/// it all in memory.
pub const DEFAULT_MAX_LINE_LEN: usize = 16 * 1024 * 1024;

/// Reads a write-ahead log: an iterator over its records, in file order.
///
/// Each item is a [`WalRecord`] or the error of one line — [`WalError::BadLine`] (not an event),
/// [`WalError::PartialLine`] (the last line has no newline and does not decode: a write cut
/// short), [`WalError::LineTooLong`] — after which the reader goes on with the next line. Blank
/// lines are skipped (but counted in line numbers). A last line without a newline that decodes
/// is a normal record. An I/O error ends the iteration after being yielded as
/// [`WalError::Read`].
///
/// Lines are decoded with [`AnyEvent::from_json`](crate::AnyEvent::from_json), so logs written by
/// this crate, by the Python runtime's `WALEventBusMiddleware` (completed events, no results) and
/// by Python `bubus` 1.x (`+00:00` timestamps, `event_schema`) all read.
///
/// ```
/// use bubus::wal::{RecordKind, WalError, WalReader};
///
/// let log = concat!(
///     r#"{"event_type":"Ping","event_id":"0190a6a0-0000-7000-8000-000000000001","n":1}"#, "\n",
///     "not json\n",
///     r#"{"event_type":"Ping","event_status":"completed","n":2}"#, "\n",
/// );
/// let mut records = WalReader::new(log.as_bytes());
///
/// let first = records.next().unwrap().unwrap();
/// assert_eq!((first.line, first.kind), (1, RecordKind::Dispatched));
/// assert!(matches!(records.next(), Some(Err(WalError::BadLine { line: 2, .. }))));
/// let third = records.next().unwrap().unwrap();
/// assert_eq!((third.line, third.kind), (3, RecordKind::Completed));
/// assert!(records.next().is_none());
/// ```
pub struct WalReader<R> {
    input: R,
    lines: LineSplitter,
    done: bool,
}

impl WalReader<BufReader<File>> {
    /// Opens the log at `path` for reading.
    ///
    /// # Errors
    ///
    /// [`WalError::Open`] if the file cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, WalError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| WalError::Open {
            path: path.to_owned(),
            source: Arc::new(e),
        })?;
        Ok(WalReader::new(BufReader::with_capacity(64 * 1024, file)))
    }
}

impl<R: BufRead> WalReader<R> {
    /// Reads a log from any buffered reader (a file, a socket, a byte slice).
    pub fn new(input: R) -> Self {
        WalReader {
            input,
            lines: LineSplitter::new(DEFAULT_MAX_LINE_LEN),
            done: false,
        }
    }

    /// Sets the longest line decoded (default [`DEFAULT_MAX_LINE_LEN`]).
    pub fn max_line_len(mut self, max: usize) -> Self {
        self.lines.set_max(max);
        self
    }

    /// How many lines have been read so far (complete ones, blank ones included).
    pub fn lines_read(&self) -> u64 {
        self.lines.lines()
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.input
    }
}

impl<R: BufRead> Iterator for WalReader<R> {
    type Item = Result<WalRecord, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let chunk = match self.input.fill_buf() {
                Ok(chunk) => chunk,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.done = true;
                    return Some(Err(WalError::Read {
                        line: self.lines.lines(),
                        source: Arc::new(e),
                    }));
                }
            };
            if chunk.is_empty() {
                self.done = true;
                if self.lines.has_partial() {
                    return self.lines.finish(true);
                }
                return None;
            }
            let (used, complete) = self.lines.push(chunk);
            self.input.consume(used);
            if complete {
                if let Some(item) = self.lines.finish(false) {
                    return Some(item);
                }
            }
        }
        None
    }
}

impl<R: BufRead> std::iter::FusedIterator for WalReader<R> {}

impl<R> fmt::Debug for WalReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalReader")
            .field("lines_read", &self.lines.lines())
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
