//! The bridge: attaches a [`Transport`] to buses both ways and owns the policy.
//!
//! The bridge's state and its public face live here; the other files of `bridge/` each hold
//! one side of it: `builder.rs` (its options), `send.rs` (the sending handler and results
//! back) and `receive.rs` (the listener: claims, dispatch, acks, redelivery, replies).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::builder::BridgeBuilder;
use super::dedup::DedupStore;
use super::send::{BridgeSender, Waiter};
use super::transport::{BadInput, Message, Transport, TransportError};
use crate::bus::EventBus;
use crate::event::AnyEvent;
use crate::handler::EventHandler;
use crate::handler::{HandlerInput, IntoHandler};

/// Why a bridge operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// The transport failed.
    #[error("{bridge}: {source}")]
    Transport {
        /// The bridge's name.
        bridge: String,
        /// The transport's error.
        #[source]
        source: TransportError,
    },
    /// The bridge is closed.
    #[error("{bridge} is closed")]
    Closed {
        /// The bridge's name.
        bridge: String,
    },
    /// [`Bridge::start`] was called on a bridge that is already listening.
    #[error("{bridge} is already started")]
    AlreadyStarted {
        /// The bridge's name.
        bridge: String,
    },
    /// Results back was on and the far side did not answer in time (a family runtime never
    /// answers: turn results back off to talk to one).
    #[error("{bridge}: no completion for event {event_id} from the far side within {waited:?}")]
    NoReply {
        /// The bridge's name.
        bridge: String,
        /// The event sent.
        event_id: Uuid,
        /// How long the sender waited.
        waited: Duration,
    },
}

/// What a bridge counted since it was built: read it with [`Bridge::metrics`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BridgeMetrics {
    /// Events sent.
    pub sent: u64,
    /// Sends that failed (the sending handler's result is the error).
    pub send_errors: u64,
    /// Messages received (good or bad).
    pub received: u64,
    /// Received events dispatched on the inbound bus.
    pub dispatched: u64,
    /// Received events that completed (acked where the transport has acks).
    pub completed: u64,
    /// Received events already handled (same `event_id`): acked, not dispatched again.
    pub duplicates: u64,
    /// Received events that already passed through the bridge's inbound bus or an attached bus
    /// (a bus's own echo on a shared medium): skipped.
    pub loops: u64,
    /// Bad input skipped (not JSON, not an event, unframeable), each logged with where it was.
    pub invalid: u64,
    /// Deliveries handed back for redelivery (a handler failed, the transport redelivers).
    pub nacked: u64,
    /// Deliveries given up on (dead-lettered where the transport keeps them).
    pub dead_lettered: u64,
    /// Completion records sent back (results back on).
    pub replies_sent: u64,
    /// Completion records merged into a waiting sender's event.
    pub replies_merged: u64,
}

#[derive(Default)]
pub(super) struct Counters {
    pub(super) sent: AtomicU64,
    pub(super) send_errors: AtomicU64,
    pub(super) received: AtomicU64,
    pub(super) dispatched: AtomicU64,
    pub(super) completed: AtomicU64,
    pub(super) duplicates: AtomicU64,
    pub(super) loops: AtomicU64,
    pub(super) invalid: AtomicU64,
    pub(super) nacked: AtomicU64,
    pub(super) dead_lettered: AtomicU64,
    pub(super) replies_sent: AtomicU64,
    pub(super) replies_merged: AtomicU64,
}

/// Attaches a [`Transport`] to buses, both ways — the family's bridge, plus what it lacks.
///
/// * **The family's shape.** A bridge has an inbound bus: [`on`](Self::on) subscribes to what
///   arrives, and [`sender`](Self::sender) is a handler that sends what it receives:
///   `bus.on_pattern("*", bridge.sender())` and `bridge.on("*", bus.forwarder())`, or
///   [`attach`](Self::attach) for both.
/// * **Lineage.** A received event keeps the sender's `event_id`, parent id, path and payload;
///   each bus it reaches appends itself to `event_path`, and a bus already on the path never
///   takes it again, so two processes wired both ways over one medium handle each event once
///   per bus. Events that came in through a bridge are not sent back out through it.
/// * **De-duplication** by `event_id` ([`DedupStore`]): an event delivered again is acked and
///   not dispatched again.
/// * **Acks** (transports that have them) after the event completed on the receiving bus;
///   failures are redelivered up to [`max_deliveries`](BridgeBuilder::max_deliveries), then
///   dead-lettered.
/// * **Bad input** never stops the listener: it is logged (`tracing`, with where it was),
///   counted ([`metrics`](Self::metrics)) and skipped.
/// * **Results back** ([`results_back`](BridgeBuilder::results_back)), off by default.
///
/// [`start`](Self::start) begins listening; [`close`](Self::close) waits for sends in flight,
/// flushes, and stops. A bridge is a cheap `Clone`.
#[derive(Clone)]
pub struct Bridge {
    pub(super) inner: Arc<BridgeInner>,
}

pub(super) struct BridgeInner {
    pub(super) name: String,
    pub(super) transport: Arc<dyn Transport>,
    pub(super) inbound: EventBus,
    pub(super) results_back: bool,
    pub(super) reply_timeout: Option<Duration>,
    pub(super) dedup: Arc<dyn DedupStore>,
    pub(super) max_deliveries: u32,
    pub(super) redeliver_on_error: bool,
    pub(super) room_timeout: Option<Duration>,
    /// How many received events may be between their dispatch and their completion.
    pub(super) max_in_flight: usize,
    pub(super) counters: Counters,
    pub(super) closed: AtomicBool,
    pub(super) sending: AtomicUsize,
    pub(super) sends_done: Notify,
    /// Labels of the buses this bridge sends for (attached, or whose `sender()` ran): their
    /// own echo is skipped (and counted).
    pub(super) attached: Mutex<Vec<Arc<str>>>,
    /// Senders waiting for the far side's completion record, by event id.
    pub(super) replies: Mutex<HashMap<Uuid, Waiter>>,
    /// Received events not yet completed, by id (a second delivery meanwhile is a duplicate).
    pub(super) in_flight: Mutex<HashMap<Uuid, ()>>,
    pub(super) listener: Mutex<Option<JoinHandle<()>>>,
    pub(super) stop: Arc<Notify>,
    /// The last few problems with input, for [`Bridge::recent_bad_input`].
    pub(super) recent_bad: Mutex<std::collections::VecDeque<BadInput>>,
    /// Woken on every counter change ([`Bridge::wait_metrics`]).
    pub(super) changed: Notify,
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("name", &self.inner.name)
            .field("transport", &self.inner.transport)
            .field("results_back", &self.inner.results_back)
            .finish_non_exhaustive()
    }
}

impl Bridge {
    /// A bridge over `transport` with default options.
    pub fn new(transport: impl Transport) -> Self {
        Bridge::builder(transport).build()
    }

    /// A builder for a bridge with non-default options.
    pub fn builder(transport: impl Transport) -> BridgeBuilder {
        Bridge::builder_arc(Arc::new(transport))
    }

    /// [`builder`](Self::builder) for a shared transport.
    pub fn builder_arc(transport: Arc<dyn Transport>) -> BridgeBuilder {
        BridgeBuilder::new(transport)
    }

    /// The bridge's name (its inbound bus's name).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The transport.
    pub fn transport(&self) -> &Arc<dyn Transport> {
        &self.inner.transport
    }

    /// The bus received events are dispatched on first (history off); [`on`](Self::on)
    /// subscribes to it.
    pub fn inbound_bus(&self) -> &EventBus {
        &self.inner.inbound
    }

    /// What the bridge counted so far.
    pub fn metrics(&self) -> BridgeMetrics {
        let c = &self.inner.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        BridgeMetrics {
            sent: get(&c.sent),
            send_errors: get(&c.send_errors),
            received: get(&c.received),
            dispatched: get(&c.dispatched),
            completed: get(&c.completed),
            duplicates: get(&c.duplicates),
            loops: get(&c.loops),
            invalid: get(&c.invalid),
            nacked: get(&c.nacked),
            dead_lettered: get(&c.dead_lettered),
            replies_sent: get(&c.replies_sent),
            replies_merged: get(&c.replies_merged),
        }
    }

    /// The last 32 problems with received input (oldest first), each with where it was
    /// (`file:line`, a row id, a peer) and what is wrong; [`metrics`](Self::metrics) counts
    /// all of them (`invalid`).
    pub fn recent_bad_input(&self) -> Vec<BadInput> {
        self.inner.recent_bad.lock().iter().cloned().collect()
    }

    /// Waits until the counters satisfy `done` (checked on every change).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_metrics(&self, done: impl Fn(&BridgeMetrics) -> bool) {
        loop {
            let changed = self.inner.changed.notified();
            if done(&self.metrics()) {
                return;
            }
            changed.await;
        }
    }

    /// Subscribes `handler` to events that arrive through the bridge (`pattern`: a type name or
    /// `"*"`) — the family's `bridge.on('*', bus.emit)` is `bridge.on("*", bus.forwarder())`.
    #[track_caller]
    pub fn on<I: HandlerInput, M>(
        &self,
        pattern: &str,
        handler: impl IntoHandler<I, M>,
    ) -> EventHandler {
        self.inner.inbound.on_pattern(pattern, handler)
    }

    /// A handler that sends each event it receives over the bridge — the family's
    /// `bus.on('*', bridge.emit)` is `bus.on_pattern("*", bridge.sender())`. Its result is null
    /// (with results back, the far side's results are merged into the event), or the send's
    /// error.
    pub fn sender(&self) -> BridgeSender {
        BridgeSender {
            bridge: Arc::clone(&self.inner),
        }
    }

    /// Both directions for `bus`: what `bus` dispatches is sent, what arrives is forwarded to
    /// `bus`. Returns the two registrations (for [`EventBus::off`] and [`Bridge::off`]).
    ///
    /// The forwarder [waits for room](crate::bus::Forwarder::wait_for_room) when `bus`'s history is
    /// full of unfinished events (up to [`room_timeout`](BridgeBuilder::room_timeout)), so a
    /// busy receiver slows the listener down instead of refusing deliveries.
    #[track_caller]
    pub fn attach(&self, bus: &EventBus) -> Attachment {
        self.inner.attached.lock().push(Arc::from(bus.label()));
        Attachment {
            outbound: bus.on_pattern("*", self.sender()),
            inbound: self.on("*", bus.forwarder().wait_for_room(self.inner.room_timeout)),
        }
    }

    /// Removes a handler registered with [`on`](Self::on).
    pub fn off(&self, handler: &EventHandler) -> bool {
        self.inner.inbound.off(handler)
    }

    /// Sends one event now (the family's `bridge.emit(event)`).
    ///
    /// # Errors
    ///
    /// [`BridgeError::Closed`] after [`close`](Self::close); the transport's error.
    ///
    /// # Cancel safety
    ///
    /// As the transport's `send`.
    pub async fn send(&self, event: &AnyEvent) -> Result<(), BridgeError> {
        self.inner.send(Message::event(event)).await
    }

    /// Starts listening: received events are dispatched on the inbound bus (and from there to
    /// whatever [`on`](Self::on) subscribed).
    ///
    /// # Errors
    ///
    /// The transport's error (a socket that cannot be bound, a file that cannot be read);
    /// [`BridgeError::AlreadyStarted`]; [`BridgeError::Closed`].
    pub async fn start(&self) -> Result<(), BridgeError> {
        let inner = &self.inner;
        if inner.closed.load(Ordering::Acquire) {
            return Err(inner.closed_error());
        }
        if inner.listener.lock().is_some() {
            return Err(BridgeError::AlreadyStarted {
                bridge: inner.name.clone(),
            });
        }
        let stream = inner
            .transport
            .listen()
            .await
            .map_err(|e| inner.transport_error(e))?;
        let task = tokio::spawn(Arc::clone(inner).listen(stream));
        let mut slot = inner.listener.lock();
        if slot.is_some() {
            task.abort();
            return Err(BridgeError::AlreadyStarted {
                bridge: inner.name.clone(),
            });
        }
        *slot = Some(task);
        Ok(())
    }

    /// Closes the bridge: refuses new sends, waits for the sends in flight, flushes the
    /// transport, stops listening (received events still running finish and are acked), and
    /// closes the transport. Senders still waiting for results back fail. Idempotent.
    ///
    /// # Errors
    ///
    /// The transport's error from flushing or closing.
    pub async fn close(&self) -> Result<(), BridgeError> {
        let inner = &self.inner;
        inner.closed.store(true, Ordering::Release);
        loop {
            let done = inner.sends_done.notified();
            if inner.sending.load(Ordering::Acquire) == 0 {
                break;
            }
            done.await;
        }
        let flushed = inner.transport.flush().await;
        inner.stop.notify_one();
        let task = inner.listener.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        inner.replies.lock().clear();
        let closed = inner.transport.close().await;
        flushed.and(closed).map_err(|e| inner.transport_error(e))
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }
}

/// The two registrations [`Bridge::attach`] made.
#[derive(Clone, Debug)]
pub struct Attachment {
    /// The bus's `"*"` handler that sends.
    pub outbound: EventHandler,
    /// The bridge's `"*"` handler that forwards to the bus.
    pub inbound: EventHandler,
}

impl BridgeInner {
    pub(super) const RECENT_BAD: usize = 32;

    pub(super) fn bump(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    pub(super) fn bad_input(&self, bad: BadInput) {
        tracing::warn!(bridge = %self.name, origin = %bad.origin, error = %bad.message, "bridge skipped bad input");
        let mut recent = self.recent_bad.lock();
        if recent.len() == Self::RECENT_BAD {
            recent.pop_front();
        }
        recent.push_back(bad);
        drop(recent);
        self.bump(&self.counters.invalid);
    }

    pub(super) fn closed_error(&self) -> BridgeError {
        BridgeError::Closed {
            bridge: self.name.clone(),
        }
    }

    pub(super) fn transport_error(&self, source: TransportError) -> BridgeError {
        BridgeError::Transport {
            bridge: self.name.clone(),
            source,
        }
    }

    /// Whether `event` came in through this bridge (its inbound bus is on the path).
    pub(super) fn came_through(&self, path: &[String]) -> bool {
        path.iter().any(|label| label == self.inbound.label())
    }
}
