//! Replaying events from the page: fresh copies of logged events, sent to a target.

use std::io::Write;
use std::path::PathBuf;

use bubus::{AnyEvent, DynEvent, EventHandle};
use futures_util::future::BoxFuture;
use serde_json::{Map, Value};

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The target could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// The target refused the events.
    #[error("{0}")]
    Refused(String),
}

/// Where replayed events go: a JSONL inbox a process dispatches from ([`JsonlTarget`]), or a
/// bridge transport's sending side.
pub trait ReplayTarget: Send + Sync + 'static {
    /// How the page names the target (`jsonl:inbox.jsonl`).
    fn name(&self) -> String;

    /// Sends the events, in order. Each is a fresh pending event: a new id, no results.
    fn send<'a>(&'a self, events: &'a [AnyEvent]) -> BoxFuture<'a, Result<(), ReplayError>>;
}

/// Appends each replayed event, as one line of canonical JSON, to a file: the inbox of a
/// process that dispatches what is appended (a JSONL bridge, or
/// [`WalFollower`](bubus::wal::WalFollower) plus `dispatch`, as the demo does). Created if
/// missing.
#[derive(Debug)]
pub struct JsonlTarget {
    path: PathBuf,
}

impl JsonlTarget {
    /// A target appending to `path`.
    pub fn new(path: impl Into<PathBuf>) -> JsonlTarget {
        JsonlTarget { path: path.into() }
    }
}

impl ReplayTarget for JsonlTarget {
    fn name(&self) -> String {
        format!("jsonl:{}", self.path.display())
    }

    fn send<'a>(&'a self, events: &'a [AnyEvent]) -> BoxFuture<'a, Result<(), ReplayError>> {
        let mut text = String::new();
        for event in events {
            text.push_str(&event.to_json_string());
            text.push('\n');
        }
        let path = self.path.clone();
        Box::pin(async move {
            let written = tokio::task::spawn_blocking({
                let path = path.clone();
                move || {
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&path)?;
                    // One write: a reader never sees half of the batch's lines.
                    file.write_all(text.as_bytes())?;
                    file.flush()
                }
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            written.map_err(|source| ReplayError::Io { path, source })
        })
    }
}

/// Sends replayed events on a bridge transport ([`bubus::bridge::Transport`]): the bridge on
/// the far side dispatches them like any event it receives.
pub struct TransportTarget {
    transport: std::sync::Arc<dyn bubus::bridge::Transport>,
}

impl std::fmt::Debug for TransportTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransportTarget")
            .field("transport", &self.transport.describe())
            .finish()
    }
}

impl TransportTarget {
    /// Sends on `transport`.
    pub fn new(transport: impl bubus::bridge::Transport) -> TransportTarget {
        TransportTarget {
            transport: std::sync::Arc::new(transport),
        }
    }

    /// Sends on a shared transport.
    pub fn from_arc(transport: std::sync::Arc<dyn bubus::bridge::Transport>) -> TransportTarget {
        TransportTarget { transport }
    }
}

impl ReplayTarget for TransportTarget {
    fn name(&self) -> String {
        format!("bridge:{}", self.transport.describe())
    }

    fn send<'a>(&'a self, events: &'a [AnyEvent]) -> BoxFuture<'a, Result<(), ReplayError>> {
        Box::pin(async move {
            for event in events {
                let message = bubus::bridge::Message::event(event);
                self.transport
                    .send(&message)
                    .await
                    .map_err(|e| ReplayError::Refused(e.to_string()))?;
            }
            self.transport
                .flush()
                .await
                .map_err(|e| ReplayError::Refused(e.to_string()))
        })
    }
}

/// A fresh pending copy of a logged event (its JSON, without results): same type, version and
/// payload, a new id, no parent (a replay is a root of its own), no results.
pub(crate) fn fresh_copy(raw: &str) -> Result<AnyEvent, String> {
    let json: Map<String, Value> =
        serde_json::from_str(raw).map_err(|e| format!("the kept JSON does not parse: {e}"))?;
    let event_type = json
        .get("event_type")
        .and_then(Value::as_str)
        .ok_or("no event_type")?
        .to_owned();
    let payload: Map<String, Value> = json
        .iter()
        .filter(|(k, _)| !k.starts_with("event_"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let event = DynEvent::new(event_type, Value::Object(payload)).map_err(|e| e.to_string())?;
    Ok(EventHandle::new(event).to_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_copy_keeps_type_and_payload_only() {
        let raw = r#"{"event_type":"Order","event_id":"0197f5a1-3c2e-7d4b-8a9f-1e2d3c4b5a69","event_parent_id":"0197f5a1-3c2e-7d4b-8a9f-1e2d3c4b5a70","event_status":"completed","order_id":7}"#;
        let copy = fresh_copy(raw).unwrap();
        assert_eq!(copy.event_type(), "Order");
        assert_ne!(
            copy.event_id().to_string(),
            "0197f5a1-3c2e-7d4b-8a9f-1e2d3c4b5a69"
        );
        assert_eq!(copy.event_parent_id(), None);
        assert_eq!(copy.payload_json().unwrap()["order_id"], 7);
        assert!(fresh_copy("[1]").is_err());
    }
}
