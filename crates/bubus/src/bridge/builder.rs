//! A bridge's options: [`BridgeBuilder`], from [`Bridge::builder`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use super::bridge::{Bridge, BridgeInner, Counters};
use super::dedup::{DedupStore, MemoryDedup};
use super::transport::Transport;
use crate::bus::EventBus;

/// How a bridge is built: see [`Bridge::builder`].
#[derive(Debug)]
pub struct BridgeBuilder {
    transport: Arc<dyn Transport>,
    name: Option<String>,
    results_back: bool,
    reply_timeout: Option<Duration>,
    dedup: Option<Arc<dyn DedupStore>>,
    max_deliveries: u32,
    redeliver_on_error: Option<bool>,
    max_in_flight: usize,
    room_timeout: Option<Duration>,
}

impl BridgeBuilder {
    pub(super) fn new(transport: Arc<dyn Transport>) -> Self {
        BridgeBuilder {
            transport,
            name: None,
            results_back: false,
            reply_timeout: None,
            dedup: None,
            max_deliveries: 5,
            redeliver_on_error: None,
            max_in_flight: 64,
            room_timeout: Some(Duration::from_secs(30)),
        }
    }

    /// How long [`attach`](Bridge::attach)'s forwarder waits when the attached bus's history is
    /// full of unfinished events (default 30 s; `None`: as long as it takes). Waiting is the
    /// backpressure: the inbound bus, then the listener, stop taking events until the bus has
    /// room. An event still refused after the wait is handed back to the transport (nacked
    /// with a delay, never dead-lettered for it), not counted as a failed delivery.
    pub fn room_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.room_timeout = timeout;
        self
    }

    /// How many received events may be dispatched and not yet completed at once (default 64):
    /// the listener waits for one to complete before it dispatches more, so a fast sender
    /// cannot fill the receiving bus's history with pending events.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// The bridge's name, which names its inbound bus (default: the family's
    /// `<Kind>_<last 8 hex digits of a new id>`, e.g. `JSONLEventBridge_1a2b3c4d`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Turns results back on (off by default: the family never answers). On the receiving
    /// side, each received event's completion (its results keyed by handler id, errors as
    /// `{type, message}`) is sent back over the transport; on the sending side, the sending
    /// handler waits for it and merges the remote results into the local event, so the sender's
    /// `event_result()` sees them. Both sides must turn it on; the sender's event or handler
    /// timeout (or [`reply_timeout`](Self::reply_timeout)) bounds the wait.
    pub fn results_back(mut self) -> Self {
        self.results_back = true;
        self
    }

    /// With results back: how long a sender waits for the far side's completion record before
    /// its handler fails with [`BridgeError::NoReply`](super::BridgeError::NoReply) (default: no
    /// bound of its own; the event's handler timeout applies).
    pub fn reply_timeout(mut self, timeout: Duration) -> Self {
        self.reply_timeout = Some(timeout);
        self
    }

    /// Where handled event ids are remembered (default: a [`MemoryDedup`] window of the last
    /// 65 536). Durable transports pass a persisted store.
    pub fn dedup(mut self, store: Arc<dyn DedupStore>) -> Self {
        self.dedup = Some(store);
        self
    }

    /// On transports with redelivery: how many times a message whose handlers fail is delivered
    /// before it goes to the dead letters (default 5).
    pub fn max_deliveries(mut self, n: u32) -> Self {
        self.max_deliveries = n.max(1);
        self
    }

    /// Hands an event whose handlers failed back to the transport for redelivery, up to
    /// [`max_deliveries`](Self::max_deliveries) — the default on transports with redelivery
    /// ([`Capabilities::redelivery`](crate::bridge::Capabilities::redelivery)).
    pub fn redeliver_on_error(mut self) -> Self {
        self.redeliver_on_error = Some(true);
        self
    }

    /// Acks an event whose handlers failed, as one that succeeded: the failure is only recorded
    /// (in its results and the log), never redelivered — the default on transports without
    /// redelivery.
    pub fn ack_on_error(mut self) -> Self {
        self.redeliver_on_error = Some(false);
        self
    }

    /// Builds the bridge (not started: see [`Bridge::start`]).
    pub fn build(self) -> Bridge {
        let name = self.name.unwrap_or_else(|| {
            let id = crate::event::inner::new_event_id(crate::time::Timestamp::now())
                .simple()
                .to_string();
            format!("{}_{}", self.transport.kind(), &id[id.len() - 8..])
        });
        let inbound = EventBus::builder(name.clone())
            .max_history_size(Some(0))
            .event_timeout(None)
            .disable_handler_file_paths()
            .build();
        let caps = self.transport.capabilities();
        Bridge {
            inner: Arc::new(BridgeInner {
                name,
                transport: self.transport,
                inbound,
                results_back: self.results_back,
                reply_timeout: self.reply_timeout,
                dedup: self
                    .dedup
                    .unwrap_or_else(|| Arc::new(MemoryDedup::default())),
                max_deliveries: self.max_deliveries,
                redeliver_on_error: self.redeliver_on_error.unwrap_or(caps.redelivery),
                room_timeout: self.room_timeout,
                max_in_flight: self.max_in_flight,
                counters: Counters::default(),
                closed: AtomicBool::new(false),
                sending: AtomicUsize::new(0),
                sends_done: Notify::new(),
                attached: Mutex::new(Vec::new()),
                replies: Mutex::new(HashMap::new()),
                in_flight: Mutex::new(HashMap::new()),
                listener: Mutex::new(None),
                stop: Arc::new(Notify::new()),
                recent_bad: Mutex::new(std::collections::VecDeque::new()),
                changed: Notify::new(),
            }),
        }
    }
}
