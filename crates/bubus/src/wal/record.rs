//! One record of a log, and turning a line of bytes into one.

use crate::event::{AnyEvent, EventStatus};
use crate::wire::DecodeError;

use super::WalError;

/// What a log record says about its event.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecordKind {
    /// The event was dispatched: the line is the event as it was enqueued, without results
    /// (any `event_status` other than `"completed"`).
    Dispatched,
    /// The event completed: `event_status` is `"completed"`. Lines written by
    /// [`WalMiddleware`](super::WalMiddleware) carry the handlers' results in `event_results`;
    /// lines from the Python runtime's WAL carry none.
    Completed,
}

/// One event read from a log.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WalRecord {
    /// The line it was read from, counting from 1 (blank lines count).
    pub line: u64,
    /// Whether it records a dispatch or a completion.
    pub kind: RecordKind,
    /// The event, decoded with [`AnyEvent::from_json`]: its id, lineage, status, timestamps,
    /// payload and (for completion records) results, exactly as logged. It is not dispatched
    /// anywhere; [`replay`](super::replay) dispatches fresh copies.
    pub event: AnyEvent,
}

/// Decodes one line (without its newline). `None` for a blank line.
pub(crate) fn parse_line(
    line: u64,
    bytes: &[u8],
    partial: bool,
) -> Option<Result<WalRecord, WalError>> {
    let bytes = strip_line(bytes, line);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let wrap = |error: DecodeError| {
        if partial {
            WalError::PartialLine { line, error }
        } else {
            WalError::BadLine { line, error }
        }
    };
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => return Some(Err(wrap(DecodeError::new("", format!("not UTF-8: {e}"))))),
    };
    Some(match AnyEvent::from_json_str(text) {
        Ok(event) => {
            let kind = if event.event_status() == EventStatus::Completed {
                RecordKind::Completed
            } else {
                RecordKind::Dispatched
            };
            Ok(WalRecord { line, kind, event })
        }
        Err(error) => Err(wrap(error)),
    })
}

/// Drops a trailing `\r` (logs edited on Windows) and a UTF-8 byte-order mark on the first line.
fn strip_line(bytes: &[u8], line: u64) -> &[u8] {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    if line == 1 {
        bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
    } else {
        bytes
    }
}

/// Splits a byte stream into numbered lines, whatever size the chunks come in, holding on to at
/// most `max` bytes of one line: longer lines are measured and discarded.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    buf: Vec<u8>,
    /// Bytes of the current line seen so far (also those discarded past the limit).
    len: u64,
    /// Complete lines handed out so far.
    line: u64,
    max: usize,
}

impl LineSplitter {
    pub(crate) fn new(max: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            len: 0,
            line: 0,
            max,
        }
    }

    /// Sets the longest line decoded.
    pub(crate) fn set_max(&mut self, max: usize) {
        self.max = max;
    }

    /// The number of complete lines handed out so far.
    pub(crate) fn lines(&self) -> u64 {
        self.line
    }

    /// Whether part of a line (no newline yet) is held.
    pub(crate) fn has_partial(&self) -> bool {
        self.len > 0
    }

    /// Forgets everything, as for a new file.
    pub(crate) fn reset(&mut self) {
        self.buf.clear();
        self.len = 0;
        self.line = 0;
    }

    /// Takes bytes from `chunk` up to and including the next newline. Returns how many bytes it
    /// took, and whether that completed a line (then call [`take_line`](Self::take_line)).
    pub(crate) fn push(&mut self, chunk: &[u8]) -> (usize, bool) {
        let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let body = &chunk[..if done { used - 1 } else { used }];
        let room = self.max.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&body[..body.len().min(room)]);
        self.len = self.len.saturating_add(body.len() as u64);
        (used, done)
    }

    /// Ends the current line — the one just completed by [`push`](Self::push), or with
    /// `partial`, the unterminated one at the end of the input — and decodes it. `None` for a
    /// blank line.
    pub(crate) fn finish(&mut self, partial: bool) -> Option<Result<WalRecord, WalError>> {
        self.line += 1;
        let len = std::mem::take(&mut self.len);
        let item = if len > self.max as u64 {
            Some(Err(WalError::LineTooLong {
                line: self.line,
                len,
                max: self.max,
            }))
        } else {
            parse_line(self.line, &self.buf, partial)
        };
        self.buf.clear();
        item
    }

    /// Ends the current line without decoding it.
    pub(crate) fn skip(&mut self) {
        self.line += 1;
        self.len = 0;
        self.buf.clear();
    }
}
