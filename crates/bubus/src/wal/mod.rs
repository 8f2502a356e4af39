//! A write-ahead log: every event of a bus, one JSON line each, on disk — to audit it, tail it,
//! convert it, or replay it into a bus after a restart.
//!
//! # Writing
//!
//! [`WalMiddleware`] (or [`EventBusBuilder::wal`](crate::bus::EventBusBuilder::wal)) appends to a log
//! file, through a [`WalWriter`]:
//!
//! * a **dispatch record** when an event is dispatched: the event's canonical JSON
//!   ([`AnyEvent::to_json`](crate::AnyEvent::to_json)), status `pending`, no `event_results`;
//! * a **completion record** when it completes:
//!   [`to_json_with_results`](crate::AnyEvent::to_json_with_results), status `completed`, with the
//!   `event_results` object, keyed by handler id.
//!
//! Each record is one compact JSON object followed by `\n`, written whole by one `write` in
//! append mode, so concurrent writers never interleave partial lines. With
//! [`FsyncPolicy::EveryRecord`] each record is on disk before the hook returns; otherwise call
//! [`WalWriter::sync`] when it matters.
//!
//! ```text
//! {"event_type":"OrderPlaced","event_version":"0.0.1",…,"event_id":"0190…","event_path":["Orders#1a2b"],…,"event_status":"pending",…,"order_id":7}
//! {"event_type":"OrderPlaced","event_version":"0.0.1",…,"event_status":"completed",…,"order_id":7,"event_results":{"5c1e…":{"id":"0190…","status":"completed",…,"handler_id":"5c1e…",…,"result":"ok",…}}}
//! ```
//!
//! # Reading
//!
//! [`WalReader`] iterates over a log's records ([`WalRecord`]: line number, [`RecordKind`], the
//! decoded [`AnyEvent`](crate::AnyEvent)). A line that is not an event is reported as
//! [`WalError::BadLine`] with its line number and the lines after it are still read; a last line
//! cut short by a crash is reported as [`WalError::PartialLine`]. Logs written by the Python
//! runtime's `WALEventBusMiddleware` (completion records without results) and by Python `bubus`
//! 1.x read too. [`WalFollower`] keeps reading as the file grows (`tail -F`).
//!
//! # Replaying
//!
//! [`replay`] dispatches the logged events into a bus again, in log order, once per event id, as
//! fresh pending copies, so their handlers run again; see [`replay_with`] for the rules.
//!
//! ```
//! use std::sync::Arc;
//! use bubus::wal::{self, WalMiddleware, WalReader};
//! use bubus::{Event, EventBus, EventHandle};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, Serialize, Deserialize, Event)]
//! #[event(result = u64)]
//! struct OrderPlaced {
//!     order_id: u64,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bubus::Error> {
//! # let dir = std::env::temp_dir().join(format!("bubus-doc-wal-{}", std::process::id()));
//! let path = dir.join("orders.jsonl");
//!
//! // Log everything the bus does.
//! let bus = EventBus::builder("Orders").wal(&path)?.build();
//! bus.on(|order: EventHandle<OrderPlaced>| order.order_id * 10);
//! bus.dispatch(OrderPlaced { order_id: 7 })?.await?;
//! bus.dispatch(OrderPlaced { order_id: 8 })?.await?;
//!
//! // Read it back: a dispatch and a completion record per event.
//! let records = WalReader::open(&path)?.collect::<Result<Vec<_>, _>>()?;
//! assert_eq!(records.len(), 4);
//! assert_eq!(records[1].event.event_results()[0].result, Some(serde_json::json!(70)));
//!
//! // Replay it into a fresh bus: each event once, its handlers run again.
//! let fresh = EventBus::new("Orders");
//! fresh.on(|order: EventHandle<OrderPlaced>| order.order_id * 100);
//! let summary = wal::replay(WalReader::open(&path)?, &fresh).await?;
//! assert_eq!((summary.replayed, summary.duplicates), (2, 2));
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok(()) }
//! ```

mod error;
mod follow;
mod middleware;
mod reader;
mod record;
mod replay;
mod writer;

pub use error::WalError;
pub use follow::{DEFAULT_POLL_INTERVAL, WalFollower};
pub use middleware::WalMiddleware;
pub use reader::{DEFAULT_MAX_LINE_LEN, WalReader};
pub use record::{RecordKind, WalRecord};
pub use replay::{
    DEFAULT_MAX_IN_FLIGHT, ReplayChildren, ReplayOptions, ReplaySummary, replay, replay_with,
};
pub use writer::{FsyncPolicy, WalWriter};
