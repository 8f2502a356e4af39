//! The JSONL file transport: the family's `JSONLEventBridge` wire (one compact JSON event per
//! line, appended; listeners poll the file), plus a durable cursor.
//!
//! This file holds the transport, its listener and the line reader; `jsonl/cursor.rs` the cursor.

mod cursor;

use cursor::{Cursor, CursorAck};

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use super::transport::{
    BadInput, BoxFuture, Capabilities, Delivery, DeliveryStream, Message, Transport, TransportError,
};

/// Events through a JSON-lines file — the family's `JSONLEventBridge`: [`send`](Transport::send)
/// appends `compact JSON + "\n"` with one write (`O_APPEND`, so several processes can append to
/// one file); the listener polls the file, buffers a partial last line until its newline
/// arrives, and starts over from the top when the file shrinks (truncated or rotated).
///
/// **Where the listener starts.** Like the family, at the end of the file: what was written
/// while no listener ran is not delivered (at-most-once). With a [cursor file](Self::cursor_file)
/// it starts where the last run stopped — after the last line whose event *completed* on the
/// receiving bus (the bridge acks it) — so a receiver restart loses nothing and redelivers at
/// most what was in flight, which the bridge's de-duplication removes.
///
/// **Bad lines** (not UTF-8, longer than [`max_line_bytes`](Self::max_line_bytes), not JSON,
/// not an event) are reported with the file and line number and skipped; the lines after them
/// are delivered.
///
/// ```
/// use bubus::bridge::{Bridge, JsonlTransport};
/// use bubus::{DynEvent, EventBus};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = std::env::temp_dir().join(format!("bubus-doc-jsonl-{}", std::process::id()));
/// let path = dir.join("events.jsonl");
/// let (a, b) = (EventBus::new("A"), EventBus::new("B"));
/// let sender = Bridge::new(JsonlTransport::new(&path));
/// let receiver = Bridge::new(
///     JsonlTransport::new(&path).poll_interval(std::time::Duration::from_millis(10)),
/// );
/// sender.attach(&a);
/// receiver.attach(&b);
/// receiver.start().await?;
///
/// let arrived = b.expect_pattern("Ping");
/// a.dispatch(DynEvent::new("Ping", json!({"n": 1}))?)?;
/// assert_eq!(arrived.await?.event_type(), "Ping");
/// sender.close().await?;
/// receiver.close().await?;
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct JsonlTransport {
    path: Arc<PathBuf>,
    poll_interval: Duration,
    cursor_file: Option<Arc<PathBuf>>,
    max_line_bytes: usize,
    shared: Arc<Shared>,
}

struct Shared {
    writer: Mutex<Option<File>>,
    closed: AtomicBool,
    stop: Notify,
}

impl fmt::Debug for JsonlTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonlTransport")
            .field("path", &self.path)
            .field("poll_interval", &self.poll_interval)
            .field("cursor_file", &self.cursor_file)
            .finish_non_exhaustive()
    }
}

impl JsonlTransport {
    /// The default [`max_line_bytes`](Self::max_line_bytes): 16 MiB.
    pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

    /// A transport on the file at `path` (created, with its directory, when first used).
    pub fn new(path: impl AsRef<Path>) -> Self {
        JsonlTransport {
            path: Arc::new(path.as_ref().to_path_buf()),
            poll_interval: Duration::from_millis(250),
            cursor_file: None,
            max_line_bytes: Self::DEFAULT_MAX_LINE_BYTES,
            shared: Arc::new(Shared {
                writer: Mutex::new(None),
                closed: AtomicBool::new(false),
                stop: Notify::new(),
            }),
        }
    }

    /// How often the listener looks for new lines (default 250 ms, the family's).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Persists the listener's position in `path`: a restarted listener resumes after the last
    /// line whose event completed. A new cursor starts at the top of the file (every line is
    /// delivered once). The file holds `{"offset": <byte>, "line": <number>}`, replaced
    /// atomically on each advance.
    pub fn cursor_file(mut self, path: impl AsRef<Path>) -> Self {
        self.cursor_file = Some(Arc::new(path.as_ref().to_path_buf()));
        self
    }

    /// The longest line accepted (default 16 MiB): a longer one is reported and skipped, and
    /// memory stays bounded.
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes.max(1);
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, text: &str) -> Result<(), TransportError> {
        let mut line = Vec::with_capacity(text.len() + 1);
        line.extend_from_slice(text.as_bytes());
        line.push(b'\n');
        let mut writer = self.shared.writer.lock();
        if writer.is_none() {
            *writer = Some(open_append(&self.path)?);
        }
        let Some(file) = writer.as_mut() else {
            return Err(TransportError::Closed);
        };
        // One write per line: appends from several processes do not interleave.
        file.write_all(&line)
            .map_err(|e| TransportError::io(format!("append to {}", self.path.display()), e))
    }
}

fn open_append(path: &Path) -> Result<File, TransportError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| TransportError::io(format!("create {}", dir.display()), e))?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| TransportError::io(format!("open {}", path.display()), e))
}

impl Transport for JsonlTransport {
    fn kind(&self) -> &str {
        "JSONLEventBridge"
    }

    fn describe(&self) -> String {
        format!("jsonl:{}", self.path.display())
    }

    fn capabilities(&self) -> Capabilities {
        let caps = Capabilities::at_most_once()
            .with_receives_own(true)
            .with_ordered(true);
        if self.cursor_file.is_some() {
            caps.with_durable(true).with_acks(true)
        } else {
            caps
        }
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), TransportError>> {
        let this = self.clone();
        let text = Arc::clone(message.text_arc());
        Box::pin(async move {
            if this.shared.closed.load(Ordering::Acquire) {
                return Err(TransportError::Closed);
            }
            // In a blocking task: a slow disk does not stall the runtime, and a dropped send
            // still writes its whole line.
            tokio::task::spawn_blocking(move || this.append(&text))
                .await
                .map_err(|e| TransportError::other("append task", e))?
        })
    }

    fn listen(&self) -> BoxFuture<'_, Result<DeliveryStream, TransportError>> {
        let this = self.clone();
        Box::pin(async move {
            if this.shared.closed.load(Ordering::Acquire) {
                return Err(TransportError::Closed);
            }
            let start = {
                let this = this.clone();
                tokio::task::spawn_blocking(move || this.start_position())
                    .await
                    .map_err(|e| TransportError::other("open task", e))??
            };
            let cursor = this
                .cursor_file
                .as_ref()
                .map(|path| Arc::new(Cursor::new(Arc::clone(path), start)));
            let (tx, rx) = mpsc::channel(1024);
            tokio::spawn(this.poll_loop(start, cursor, tx));
            let stream: DeliveryStream =
                Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                }));
            Ok(stream)
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        // Lines are written through (no user-space buffer).
        Box::pin(async { Ok(()) })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.shared.closed.store(true, Ordering::Release);
            self.shared.stop.notify_waiters();
            self.shared.writer.lock().take();
            Ok(())
        })
    }
}

/// A position in the file: the byte offset of a line start and that line's number (from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Position {
    offset: u64,
    line: u64,
}

impl JsonlTransport {
    /// Where the listener starts: the cursor, or the end of the file (counting its lines).
    fn start_position(&self) -> Result<Position, TransportError> {
        let io = |what: &str, e| TransportError::io(format!("{what} {}", self.path.display()), e);
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&*self.path)
            .map_err(|e| io("open", e))?;
        let size = file.metadata().map_err(|e| io("stat", e))?.len();
        if let Some(cursor) = &self.cursor_file {
            let saved = Cursor::load(cursor)?;
            // A file shorter than the cursor was truncated or replaced: start over.
            return Ok(match saved {
                Some(p) if p.offset <= size => p,
                _ => Position { offset: 0, line: 1 },
            });
        }
        // The family starts at the end; count the lines before it so numbers stay right.
        let mut lines = 1u64;
        let mut buf = vec![0u8; 64 * 1024];
        let mut read = 0u64;
        file.seek(SeekFrom::Start(0)).map_err(|e| io("seek", e))?;
        while read < size {
            let n = file.read(&mut buf).map_err(|e| io("read", e))?;
            if n == 0 {
                break;
            }
            let n = n.min(usize::try_from(size - read).unwrap_or(usize::MAX));
            lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
            read += n as u64;
        }
        Ok(Position {
            offset: size,
            line: lines,
        })
    }

    async fn poll_loop(
        self,
        start: Position,
        cursor: Option<Arc<Cursor>>,
        tx: mpsc::Sender<Result<Delivery, BadInput>>,
    ) {
        let mut reader = LineReader::new(Arc::clone(&self.path), start, self.max_line_bytes);
        loop {
            let stop = self.shared.stop.notified();
            if self.shared.closed.load(Ordering::Acquire) || tx.is_closed() {
                return;
            }
            let (r, batch) = match tokio::task::spawn_blocking(move || {
                let batch = reader.poll();
                (reader, batch)
            })
            .await
            {
                Ok(v) => v,
                Err(_) => return,
            };
            reader = r;
            let got_some = !batch.is_empty();
            for line in batch {
                let item = match line {
                    Line::Good { text, start, end } => {
                        let origin = format!("{}:{}", self.path.display(), start.line);
                        let delivery = Delivery::new(text, origin);
                        Ok(match &cursor {
                            Some(c) => {
                                c.issue(start, end);
                                delivery.with_acker(CursorAck {
                                    cursor: Arc::clone(c),
                                    start,
                                })
                            }
                            None => delivery,
                        })
                    }
                    Line::Skip {
                        start,
                        end,
                        problem,
                    } => {
                        if let Some(c) = &cursor {
                            c.issue(start, end);
                            c.done(start);
                        }
                        match problem {
                            Some(message) => Err(BadInput::new(
                                format!("{}:{}", self.path.display(), start.line),
                                message,
                            )),
                            None => continue,
                        }
                    }
                    Line::Restart => {
                        if let Some(c) = &cursor {
                            c.restart();
                        }
                        continue;
                    }
                };
                if tx.send(item).await.is_err() {
                    return;
                }
            }
            if !got_some {
                tokio::select! {
                    () = stop => return,
                    () = tokio::time::sleep(self.poll_interval) => {}
                }
            }
        }
    }
}

enum Line {
    Good {
        text: String,
        start: Position,
        end: Position,
    },
    /// A blank line (no problem) or a bad one.
    Skip {
        start: Position,
        end: Position,
        problem: Option<String>,
    },
    /// The file shrank: reading starts over from the top.
    Restart,
}

struct LineReader {
    path: Arc<PathBuf>,
    /// Where the line being read starts, and its number.
    line_start: Position,
    /// The next byte to read.
    read_at: u64,
    /// Bytes of a line whose newline has not arrived yet.
    partial: Vec<u8>,
    /// The current line is over the limit: its bytes are dropped until its newline.
    skipping: bool,
    max_line: usize,
}

impl LineReader {
    const CHUNK: usize = 1024 * 1024;

    fn new(path: Arc<PathBuf>, start: Position, max_line: usize) -> Self {
        LineReader {
            path,
            line_start: start,
            read_at: start.offset,
            partial: Vec::new(),
            skipping: false,
            max_line,
        }
    }

    /// The complete lines appended since the last poll (from at most one chunk).
    fn poll(&mut self) -> Vec<Line> {
        let mut out = Vec::new();
        let Ok(mut file) = File::open(&*self.path) else {
            return out;
        };
        let Ok(size) = file.metadata().map(|m| m.len()) else {
            return out;
        };
        if size < self.read_at {
            // Truncated or replaced: start over from the top.
            *self = LineReader::new(
                Arc::clone(&self.path),
                Position { offset: 0, line: 1 },
                self.max_line,
            );
            out.push(Line::Restart);
            return out;
        }
        if size == self.read_at {
            return out;
        }
        let want = usize::try_from(size - self.read_at)
            .unwrap_or(usize::MAX)
            .min(Self::CHUNK);
        let mut buf = vec![0u8; want];
        if file.seek(SeekFrom::Start(self.read_at)).is_err() {
            return out;
        }
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(_) => return out,
        };
        buf.truncate(n);
        let chunk_at = self.read_at;
        let mut from = 0usize;
        while let Some(i) = buf[from..].iter().position(|b| *b == b'\n') {
            let nl = from + i;
            let start = self.line_start;
            let end = Position {
                offset: chunk_at + nl as u64 + 1,
                line: start.line + 1,
            };
            let skipping = std::mem::take(&mut self.skipping);
            let mut bytes = std::mem::take(&mut self.partial);
            bytes.extend_from_slice(&buf[from..nl]);
            from = nl + 1;
            self.line_start = end;
            if skipping || bytes.len() > self.max_line {
                out.push(Line::Skip {
                    start,
                    end,
                    problem: Some(format!(
                        "line longer than the limit of {} bytes",
                        self.max_line
                    )),
                });
                continue;
            }
            match String::from_utf8(bytes) {
                Ok(text) if text.trim().is_empty() => out.push(Line::Skip {
                    start,
                    end,
                    problem: None,
                }),
                Ok(text) => out.push(Line::Good { text, start, end }),
                Err(e) => out.push(Line::Skip {
                    start,
                    end,
                    problem: Some(format!("line is not UTF-8: {}", e.utf8_error())),
                }),
            }
        }
        let rest = &buf[from..];
        if self.skipping || self.partial.len() + rest.len() > self.max_line {
            // Over the limit: keep only the fact, so memory stays bounded.
            self.skipping = true;
            self.partial = Vec::new();
        } else {
            self.partial.extend_from_slice(rest);
        }
        self.read_at = chunk_at + n as u64;
        out
    }
}
