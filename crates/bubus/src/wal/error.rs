//! What can go wrong with a write-ahead log.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::DispatchError;
use crate::wire::DecodeError;

/// An error writing, reading or replaying a write-ahead log.
///
/// Line errors ([`BadLine`](Self::BadLine), [`PartialLine`](Self::PartialLine),
/// [`LineTooLong`](Self::LineTooLong)) concern one line only: readers report them and go on with
/// the next line. I/O errors carry the [`io::Error`] as their source (shared, so the error is
/// `Clone`). The message does not repeat the source: walk [`std::error::Error::source`] (as
/// `anyhow`'s `{:#}` does) for the whole story.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// The log could not be opened or created (or its directory created).
    #[error("cannot open write-ahead log {}", path.display())]
    Open {
        /// The log's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
    /// Appending a record to the log, or syncing it to disk, failed.
    #[error("cannot write to write-ahead log {}", path.display())]
    Write {
        /// The log's path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
    /// Reading the log failed after `line` complete lines.
    #[error("cannot read write-ahead log after line {line}")]
    Read {
        /// The number of the last line read before the error (0 at the start).
        line: u64,
        /// The I/O error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A line is not an event any bubus runtime writes (not JSON, not UTF-8, a bad field).
    #[error("line {line} is not an event")]
    BadLine {
        /// The line number, from 1.
        line: u64,
        /// What is wrong with it.
        #[source]
        error: DecodeError,
    },
    /// The log's last line has no newline and is not a whole event: most likely a write cut
    /// short by a crash.
    #[error("line {line} is incomplete (the log ends in the middle of a record)")]
    PartialLine {
        /// The line number, from 1.
        line: u64,
        /// Why it does not decode.
        #[source]
        error: DecodeError,
    },
    /// A line is longer than the reader's limit; it was skipped without being decoded.
    #[error("line {line} is {len} bytes long, more than the limit of {max}")]
    LineTooLong {
        /// The line number, from 1.
        line: u64,
        /// The line's length in bytes (without the newline), as far as it was read.
        len: u64,
        /// The reader's limit.
        max: usize,
    },
    /// Replay stopped: the bus refused the event logged at `line`.
    #[error("replay stopped at line {line}")]
    Dispatch {
        /// The line of the refused event.
        line: u64,
        /// Why the bus refused it.
        #[source]
        source: DispatchError,
    },
}

impl WalError {
    /// The line this error is about, when it is about one.
    pub fn line(&self) -> Option<u64> {
        match self {
            WalError::BadLine { line, .. }
            | WalError::PartialLine { line, .. }
            | WalError::LineTooLong { line, .. }
            | WalError::Dispatch { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// Whether the error concerns one line of the log only (the lines after it are still read).
    pub fn is_line_error(&self) -> bool {
        matches!(
            self,
            WalError::BadLine { .. } | WalError::PartialLine { .. } | WalError::LineTooLong { .. }
        )
    }
}
