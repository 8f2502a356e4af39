//! The JSONL transport's durable cursor: which lines the receiving bus completed, saved as the
//! end of the longest completed prefix.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::Position;
use crate::bridge::transport::{Acker, BoxFuture, TransportError};

/// The durable position: lines are issued in order, completed in any order; the saved offset
/// is the end of the longest completed prefix.
pub(super) struct Cursor {
    path: Arc<PathBuf>,
    state: Mutex<CursorState>,
}

struct CursorState {
    committed: Position,
    /// Issued lines by start offset: their end, and whether they are done.
    lines: BTreeMap<u64, (Position, bool)>,
    saved: Position,
}

impl Cursor {
    pub(super) fn new(path: Arc<PathBuf>, start: Position) -> Self {
        Cursor {
            path,
            state: Mutex::new(CursorState {
                committed: start,
                lines: BTreeMap::new(),
                saved: start,
            }),
        }
    }

    pub(super) fn load(path: &Path) -> Result<Option<Position>, TransportError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TransportError::io(format!("read {}", path.display()), e)),
        };
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            TransportError::Config(format!("cursor file {} is not valid: {e}", path.display()))
        })?;
        let field = |k: &str| value.get(k).and_then(serde_json::Value::as_u64);
        match (field("offset"), field("line")) {
            (Some(offset), Some(line)) => Ok(Some(Position {
                offset,
                line: line.max(1),
            })),
            _ => Err(TransportError::Config(format!(
                "cursor file {} lacks offset/line",
                path.display()
            ))),
        }
    }

    pub(super) fn issue(&self, start: Position, end: Position) {
        self.state.lock().lines.insert(start.offset, (end, false));
    }

    pub(super) fn restart(&self) {
        let mut st = self.state.lock();
        st.lines.clear();
        st.committed = Position { offset: 0, line: 1 };
    }

    /// Marks a line done; returns the position to save if the prefix grew.
    pub(super) fn done(&self, start: Position) -> Option<Position> {
        let mut st = self.state.lock();
        if let Some(entry) = st.lines.get_mut(&start.offset) {
            entry.1 = true;
        }
        let before = st.committed;
        while let Some((&offset, &(end, true))) = st.lines.first_key_value() {
            if offset != st.committed.offset {
                break;
            }
            st.lines.remove(&offset);
            st.committed = end;
        }
        (st.committed != before).then_some(st.committed)
    }

    /// Writes `pos` (replacing the file atomically) unless a later position was saved.
    fn save(&self, pos: Position) -> Result<(), TransportError> {
        let mut st = self.state.lock();
        if pos.offset <= st.saved.offset && st.saved != pos {
            return Ok(());
        }
        let tmp = self.path.with_extension("tmp");
        let text = format!("{{\"offset\":{},\"line\":{}}}\n", pos.offset, pos.line);
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &*self.path))
            .map_err(|e| TransportError::io(format!("save cursor {}", self.path.display()), e))?;
        st.saved = pos;
        Ok(())
    }
}

pub(super) struct CursorAck {
    pub(super) cursor: Arc<Cursor>,
    pub(super) start: Position,
}

impl Acker for CursorAck {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async move {
            match self.cursor.done(self.start) {
                Some(pos) => {
                    let cursor = Arc::clone(&self.cursor);
                    tokio::task::spawn_blocking(move || cursor.save(pos))
                        .await
                        .map_err(|e| TransportError::other("cursor task", e))?
                }
                None => Ok(()),
            }
        })
    }

    fn nack(
        self: Box<Self>,
        _delay: Option<Duration>,
        _reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        // A file cannot hand a line out again while it runs; the cursor stays before it, so
        // the next start delivers it again.
        Box::pin(async { Ok(()) })
    }
}
