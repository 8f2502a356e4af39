//! The bridge: attaches a [`Transport`] to buses both ways and owns the policy.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use parking_lot::Mutex;
use tokio::sync::{Notify, oneshot};
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::dedup::{Claim, DedupStore, MemoryDedup};
use super::transport::{
    Acker, BadInput, Delivery, Message, MessageKind, Transport, TransportError,
};
use crate::bus::EventBus;
use crate::error::HandlerError;
use crate::event::AnyEvent;
use crate::handler::EventHandler;
use crate::handler::{ErasedHandler, HandlerCall, HandlerFn, HandlerInput, IntoHandler};
use crate::result::ResultSlot;

use super::message::{COMPLETION_KEY, Incoming, decode_message};

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
struct Counters {
    sent: AtomicU64,
    send_errors: AtomicU64,
    received: AtomicU64,
    dispatched: AtomicU64,
    completed: AtomicU64,
    duplicates: AtomicU64,
    loops: AtomicU64,
    invalid: AtomicU64,
    nacked: AtomicU64,
    dead_lettered: AtomicU64,
    replies_sent: AtomicU64,
    replies_merged: AtomicU64,
}

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

    /// Results back (off by default: the family never answers). On the receiving side, each
    /// received event's completion (its results keyed by handler id, errors as
    /// `{type, message}`) is sent back over the transport; on the sending side, the sending
    /// handler waits for it and merges the remote results into the local event, so the sender's
    /// `event_result()` sees them. Both sides must turn it on; the sender's event or handler
    /// timeout (or [`reply_timeout`](Self::reply_timeout)) bounds the wait.
    pub fn results_back(mut self, on: bool) -> Self {
        self.results_back = on;
        self
    }

    /// With results back: how long a sender waits for the far side's completion record before
    /// its handler fails with [`BridgeError::NoReply`] (default: no bound of its own; the
    /// event's handler timeout applies).
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

    /// Whether an event whose handlers failed is handed back for redelivery (default: yes on
    /// transports with redelivery, no elsewhere — there the failure is only recorded).
    pub fn redeliver_on_error(mut self, yes: bool) -> Self {
        self.redeliver_on_error = Some(yes);
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
            .event_handler_detect_file_paths(false)
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
    inner: Arc<BridgeInner>,
}

struct BridgeInner {
    name: String,
    transport: Arc<dyn Transport>,
    inbound: EventBus,
    results_back: bool,
    reply_timeout: Option<Duration>,
    dedup: Arc<dyn DedupStore>,
    max_deliveries: u32,
    redeliver_on_error: bool,
    room_timeout: Option<Duration>,
    /// How many received events may be between their dispatch and their completion.
    max_in_flight: usize,
    counters: Counters,
    closed: AtomicBool,
    sending: AtomicUsize,
    sends_done: Notify,
    /// Labels of the buses this bridge sends for (attached, or whose `sender()` ran): their
    /// own echo is skipped (and counted).
    attached: Mutex<Vec<Arc<str>>>,
    /// Senders waiting for the far side's completion record, by event id.
    replies: Mutex<HashMap<Uuid, Waiter>>,
    /// Received events not yet completed, by id (a second delivery meanwhile is a duplicate).
    in_flight: Mutex<HashMap<Uuid, ()>>,
    listener: Mutex<Option<JoinHandle<()>>>,
    stop: Arc<Notify>,
    /// The last few problems with input, for [`Bridge::recent_bad_input`].
    recent_bad: Mutex<std::collections::VecDeque<BadInput>>,
    /// Woken on every counter change ([`Bridge::wait_metrics`]).
    changed: Notify,
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
    const RECENT_BAD: usize = 32;
    /// How long an event the receiving bus refused (no room, stopped) waits before the
    /// transport delivers it again.
    const REFUSED_RETRY: Duration = Duration::from_millis(500);

    /// When a delivery whose claim failed (the dedup store did not answer) comes back.
    const CLAIM_RETRY: Duration = Duration::from_secs(1);

    /// Gives up the claim on an event whose handlers will not complete here.
    async fn release(&self, event_id: Uuid) {
        if let Err(e) = self.dedup.release(event_id).await {
            tracing::warn!(bridge = %self.name, error = %e, "bridge dedup store failed to release a claim (it expires after its lease)");
        }
    }

    /// A received event the bus refused at dispatch: forgotten here, its claim released, and
    /// handed back to come again after [`REFUSED_RETRY`](Self::REFUSED_RETRY).
    async fn dispatch_refused(
        &self,
        event_id: Uuid,
        origin: &str,
        acker: Option<Box<dyn Acker>>,
        error: &crate::DispatchError,
    ) {
        self.in_flight.lock().remove(&event_id);
        self.release(event_id).await;
        tracing::warn!(bridge = %self.name, %origin, error = %error, "bridge could not dispatch a received event");
        self.nack_counted(acker, Some(Self::REFUSED_RETRY), error.to_string())
            .await;
    }

    /// Hands a delivery back (where the transport has acks) and counts it as `nacked` once the
    /// nack is done.
    async fn nack_counted(
        &self,
        acker: Option<Box<dyn Acker>>,
        delay: Option<Duration>,
        reason: String,
    ) {
        if let Some(a) = acker {
            if let Err(e) = a.nack(delay, reason).await {
                tracing::warn!(bridge = %self.name, error = %e, "bridge nack failed");
            }
            self.bump(&self.counters.nacked);
        }
    }

    /// Runs `work` (the received event's processing) while renewing the event's claim every
    /// third of the store's lease.
    async fn renewing_claim<F: std::future::Future>(&self, event_id: Uuid, work: F) -> F::Output {
        let Some(lease) = self.dedup.lease() else {
            return work.await;
        };
        let every = (lease / 3).max(Duration::from_millis(10));
        let mut work = std::pin::pin!(work);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                out = &mut work => return out,
                _ = tick.tick() => {
                    match tokio::time::timeout(every, self.dedup.renew(event_id)).await {
                        Ok(Ok(true)) => {}
                        Ok(Ok(false)) => tracing::warn!(bridge = %self.name, event = %event_id, "bridge lost an event's claim while its handlers ran (it expired and was taken over)"),
                        Ok(Err(e)) => tracing::warn!(bridge = %self.name, event = %event_id, error = %e, "bridge could not renew an event's claim"),
                        Err(_) => tracing::warn!(bridge = %self.name, event = %event_id, "bridge could not renew an event's claim in time"),
                    }
                }
            }
        }
    }

    fn bump(&self, counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    fn bad_input(&self, bad: BadInput) {
        tracing::warn!(bridge = %self.name, origin = %bad.origin, error = %bad.message, "bridge skipped bad input");
        let mut recent = self.recent_bad.lock();
        if recent.len() == Self::RECENT_BAD {
            recent.pop_front();
        }
        recent.push_back(bad);
        drop(recent);
        self.bump(&self.counters.invalid);
    }

    fn closed_error(&self) -> BridgeError {
        BridgeError::Closed {
            bridge: self.name.clone(),
        }
    }

    fn transport_error(&self, source: TransportError) -> BridgeError {
        BridgeError::Transport {
            bridge: self.name.clone(),
            source,
        }
    }

    async fn send(&self, message: Message) -> Result<(), BridgeError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(self.closed_error());
        }
        self.sending.fetch_add(1, Ordering::AcqRel);
        let sent = self.transport.send(&message).await;
        if self.sending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.sends_done.notify_waiters();
        }
        match sent {
            Ok(()) => {
                self.bump(&self.counters.sent);
                Ok(())
            }
            Err(e) => {
                self.bump(&self.counters.send_errors);
                Err(self.transport_error(e))
            }
        }
    }

    /// Whether `event` came in through this bridge (its inbound bus is on the path).
    fn came_through(&self, path: &[String]) -> bool {
        path.iter().any(|label| label == self.inbound.label())
    }

    /// The sending handler's work.
    async fn send_event(self: Arc<Self>, event: AnyEvent) -> Result<ResultSlot, HandlerError> {
        let path = event.event_path();
        if self.came_through(&path) {
            // Every peer on the medium already had it.
            return Ok(ResultSlot::Null);
        }
        // The bus this handler runs on: its own echo (a shared medium) is skipped on receipt.
        if let Some(bus) = path.last() {
            let mut outbound = self.attached.lock();
            if !outbound.iter().any(|l| **l == **bus) {
                outbound.push(Arc::from(bus.as_str()));
            }
        }
        let event_id = event.event_id();
        let reply = if self.results_back {
            let (tx, rx) = oneshot::channel();
            let (children, children_rx) = tokio::sync::mpsc::unbounded_channel();
            self.replies.lock().insert(
                event_id,
                Waiter {
                    reply: tx,
                    children,
                },
            );
            Some((rx, children_rx))
        } else {
            None
        };
        if let Err(e) = self.send(Message::event(&event)).await {
            self.replies.lock().remove(&event_id);
            return Err(HandlerError::from_error(e));
        }
        let Some((rx, children)) = reply else {
            return Ok(ResultSlot::Null);
        };
        // Dropped (the handler timed out, was cancelled): forget the waiter.
        let guard = ReplyGuard {
            bridge: &self,
            event_id,
        };
        let waiting = Arc::clone(&self).wait_reply(rx, children);
        let text = match self.reply_timeout {
            Some(t) => match tokio::time::timeout(t, waiting).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(HandlerError::from_error(BridgeError::NoReply {
                        bridge: self.name.clone(),
                        event_id,
                        waited: t,
                    }));
                }
            },
            None => waiting.await,
        };
        drop(guard);
        let Ok(remote) = text else {
            return Err(HandlerError::from_error(self.closed_error()));
        };
        event.inner().merge_foreign_results(remote.inner());
        self.bump(&self.counters.replies_merged);
        Ok(ResultSlot::Null)
    }

    /// Waits for the completion record, meanwhile processing the remote children of the
    /// awaited event (inside the sending handler, so they queue-jump on this process's buses).
    async fn wait_reply(
        self: Arc<Self>,
        mut rx: oneshot::Receiver<AnyEvent>,
        mut children: tokio::sync::mpsc::UnboundedReceiver<RemoteChild>,
    ) -> Result<AnyEvent, oneshot::error::RecvError> {
        loop {
            tokio::select! {
                biased;
                reply = &mut rx => return reply,
                Some(child) = children.recv() => {
                    let RemoteChild { event, acker, attempt, origin } = child;
                    let event_id = event.event_id();
                    match self.inbound.dispatch(event) {
                        Ok(handle) => {
                            self.bump(&self.counters.dispatched);
                            // Awaited in handler context: processed now, ahead of the queue.
                            let _ = (&handle).await;
                            Arc::clone(&self).complete(handle, acker, attempt, origin).await;
                        }
                        Err(e) => self.dispatch_refused(event_id, &origin, acker, &e).await,
                    }
                }
            }
        }
    }

    async fn listen(self: Arc<Self>, mut stream: super::transport::DeliveryStream) {
        let stop = Arc::clone(&self.stop);
        // The received events between their dispatch and their completion (awaiting the event,
        // confirming, acking, replying), driven by this task beside the stream: no task spawned
        // and woken per event. At most `max_in_flight`: reading waits for one to complete.
        let mut completing = FuturesUnordered::new();
        loop {
            let next = tokio::select! {
                biased;
                () = stop.notified() => break,
                Some(()) = completing.next(), if !completing.is_empty() => continue,
                next = stream.next(), if completing.len() < self.max_in_flight => next,
            };
            let Some(next) = next else { break };
            self.bump(&self.counters.received);
            match next {
                Err(bad) => self.bad_input(bad),
                Ok(delivery) => {
                    let receiving = Arc::clone(&self).receive(delivery);
                    if let Some(completion) = drive_beside(receiving, &mut completing).await {
                        completing.push(completion);
                    }
                }
            }
        }
        drop(stream);
        while completing.next().await.is_some() {}
    }

    /// Handles one delivery up to its dispatch; returns the completion work to run beside the
    /// listener (awaiting the event, acking, replying).
    async fn receive(
        self: Arc<Self>,
        mut delivery: Delivery,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let acker = delivery.take_acker();
        let text = delivery.text();
        let decoded = match decode_message(text) {
            Ok(Incoming::Event(e)) => e,
            Ok(Incoming::Completion(record)) => {
                self.receive_completion(record);
                ack(acker).await;
                return None;
            }
            Err(e) => {
                self.bad_input(BadInput::new(delivery.origin(), e.to_string()));
                if let Some(a) = acker {
                    let _ = a.dead_letter(format!("{}: {e}", delivery.origin())).await;
                    self.bump(&self.counters.dead_lettered);
                }
                return None;
            }
        };
        let path = decoded.event_path();
        let own_echo = self.came_through(&path)
            || self
                .attached
                .lock()
                .iter()
                .any(|label| path.iter().any(|p| **p == **label));
        if own_echo {
            self.bump(&self.counters.loops);
            ack(acker).await;
            return None;
        }
        let event_id = decoded.event_id();
        // A copy of an event being handled in this process.
        if self.in_flight.lock().insert(event_id, ()).is_some() {
            self.bump(&self.counters.duplicates);
            ack(acker).await;
            return None;
        }
        // The atomic claim: of two copies delivered to two receivers at once, one runs.
        match self.dedup.claim(event_id).await {
            Ok(Claim::Won) => {}
            Ok(Claim::Done) => {
                self.in_flight.lock().remove(&event_id);
                self.bump(&self.counters.duplicates);
                ack(acker).await;
                return None;
            }
            Ok(Claim::Held { retry_after }) => {
                self.in_flight.lock().remove(&event_id);
                self.bump(&self.counters.duplicates);
                tracing::debug!(bridge = %self.name, event = %event_id, ?retry_after, "bridge: another receiver holds the event's claim; handing it back");
                nack(
                    acker,
                    retry_after,
                    "another receiver holds the event's claim",
                )
                .await;
                return None;
            }
            // Without a way to hand it back (no acks), the event is delivered; with one, it
            // comes back once the store answers again.
            Err(e) if acker.is_some() => {
                self.in_flight.lock().remove(&event_id);
                tracing::warn!(bridge = %self.name, error = %e, "bridge dedup store failed to claim an event; handing it back");
                nack(
                    acker,
                    Self::CLAIM_RETRY,
                    "the dedup store did not answer the claim",
                )
                .await;
                return None;
            }
            Err(e) => {
                tracing::warn!(bridge = %self.name, error = %e, "bridge dedup store failed to claim an event; delivering");
            }
        }
        let event = decoded.event_reset_keep_id();
        // A child the far side dispatched under an event a sender here is waiting on: that
        // sender's handler processes it (its bus is busy with the parent).
        let mut acker = acker;
        let event = match event
            .event_parent_id()
            .and_then(|parent| self.replies.lock().get(&parent).map(|w| w.children.clone()))
        {
            Some(children) => {
                let child = RemoteChild {
                    event,
                    acker,
                    attempt: delivery.attempt(),
                    origin: delivery.origin().to_owned(),
                };
                match children.send(child) {
                    Ok(()) => return None,
                    Err(back) => {
                        acker = back.0.acker;
                        back.0.event
                    }
                }
            }
            None => event,
        };
        let handle = match self.inbound.dispatch(event) {
            Ok(h) => h,
            Err(e) => {
                self.dispatch_refused(event_id, delivery.origin(), acker, &e)
                    .await;
                return None;
            }
        };
        self.bump(&self.counters.dispatched);
        let attempt = delivery.attempt();
        let origin = delivery.origin().to_owned();
        let this = Arc::clone(&self);
        Some(async move { this.complete(handle, acker, attempt, origin).await })
    }

    async fn complete(
        self: Arc<Self>,
        handle: AnyEvent,
        acker: Option<Box<dyn Acker>>,
        attempt: u32,
        origin: String,
    ) {
        let event_id = handle.event_id();
        let done = self
            .renewing_claim(event_id, std::future::IntoFuture::into_future(&handle))
            .await;
        let (failure, no_room) = match &done {
            Err(e) => (Some(e.to_string()), false),
            Ok(event) => {
                let errors = event.event_errors();
                let no_room = !errors.is_empty() && errors.iter().all(is_history_full);
                (errors.first().map(ToString::to_string), no_room)
            }
        };
        if let (Some(reason), true) = (&failure, no_room) {
            // A receiving bus with no room is backpressure, not a failed delivery: hand the
            // event back (never to the dead letters for it) and do not record it as handled.
            self.release(event_id).await;
            self.in_flight.lock().remove(&event_id);
            tracing::warn!(bridge = %self.name, %origin, event = %event_id, reason = %reason, "bridge handed back an event the receiving bus had no room for");
            self.nack_counted(acker, Some(Self::REFUSED_RETRY), reason.clone())
                .await;
            return;
        }
        if let (Some(reason), true) = (&failure, self.redeliver_on_error) {
            self.release(event_id).await;
            self.in_flight.lock().remove(&event_id);
            if let Some(a) = acker {
                if attempt >= self.max_deliveries {
                    tracing::warn!(bridge = %self.name, %origin, event = %event_id, attempt, reason = %reason, "bridge gave up on an event");
                    if let Err(e) = a.dead_letter(reason.clone()).await {
                        tracing::warn!(bridge = %self.name, error = %e, "bridge dead letter failed");
                    }
                    self.bump(&self.counters.dead_lettered);
                } else {
                    self.nack_counted(Some(a), None, reason.clone()).await;
                }
            }
            return;
        }
        if let Err(e) = self.dedup.confirm(event_id).await {
            tracing::warn!(bridge = %self.name, error = %e, "bridge dedup store failed to confirm an event");
        }
        self.in_flight.lock().remove(&event_id);
        // Counted once the ack is done: `completed` means acked where the transport has acks.
        ack(acker).await;
        self.bump(&self.counters.completed);
        if self.results_back {
            let text = format!(
                "{{\"{COMPLETION_KEY}\":{}}}",
                handle.to_json_string_with_results()
            );
            let message =
                Message::from_parts(MessageKind::Completion, event_id, handle.event_type(), text);
            // A reply after close is dropped: the sender's timeout reports it.
            if self.transport.send(&message).await.is_ok() {
                self.bump(&self.counters.replies_sent);
            }
        }
    }

    fn receive_completion(&self, record: AnyEvent) {
        // Not ours (another sender's, or our own reply on a shared medium): ignore.
        let Some(waiter) = self.replies.lock().remove(&record.event_id()) else {
            return;
        };
        let _ = waiter.reply.send(record);
    }
}

/// A sender waiting for the far side's completion of one event.
struct Waiter {
    reply: oneshot::Sender<AnyEvent>,
    /// Events the far side's handlers dispatched as children of the awaited event: the waiting
    /// handler processes them (queue-jumping, as an awaited child in one process would be),
    /// since the bus it runs on is busy with their parent.
    children: tokio::sync::mpsc::UnboundedSender<RemoteChild>,
}

struct RemoteChild {
    event: AnyEvent,
    acker: Option<Box<dyn Acker>>,
    attempt: u32,
    origin: String,
}

struct ReplyGuard<'a> {
    bridge: &'a BridgeInner,
    event_id: Uuid,
}

impl Drop for ReplyGuard<'_> {
    fn drop(&mut self) {
        self.bridge.replies.lock().remove(&self.event_id);
    }
}

/// Whether a handler's error is a bus refusing an event for lack of room (a forwarder's
/// [`HistoryFull`](crate::DispatchError::HistoryFull)).
fn is_history_full(error: &HandlerError) -> bool {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<crate::DispatchError>())
        .is_some_and(|e| matches!(e, crate::DispatchError::HistoryFull { .. }))
}

/// Runs `work` to its end while the completions in `completing` keep running (a dedup claim
/// or an ack that waits on the server does not hold up the acks of the events before it).
async fn drive_beside<F, C>(work: F, completing: &mut FuturesUnordered<C>) -> F::Output
where
    F: std::future::Future,
    C: std::future::Future<Output = ()>,
{
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            Some(()) = completing.next(), if !completing.is_empty() => {}
        }
    }
}

/// Hands a delivery back to its transport, to come again after `delay`.
async fn nack(acker: Option<Box<dyn Acker>>, delay: Duration, reason: &str) {
    if let Some(a) = acker {
        if let Err(e) = a.nack(Some(delay), reason.to_owned()).await {
            tracing::warn!(error = %e, "bridge nack failed");
        }
    }
}

async fn ack(acker: Option<Box<dyn Acker>>) {
    if let Some(a) = acker {
        if let Err(e) = a.ack().await {
            tracing::warn!(error = %e, "bridge ack failed");
        }
    }
}

/// The handler [`Bridge::sender`] returns.
#[derive(Clone)]
pub struct BridgeSender {
    bridge: Arc<BridgeInner>,
}

impl fmt::Debug for BridgeSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeSender")
            .field("bridge", &self.bridge.name)
            .finish()
    }
}

#[doc(hidden)]
#[derive(Debug)]
pub struct SenderMarker;

#[diagnostic::do_not_recommend]
impl IntoHandler<AnyEvent, SenderMarker> for BridgeSender {
    fn __into_handler_fn(self) -> HandlerFn {
        HandlerFn(Box::new(SendFn {
            bridge: self.bridge,
        }))
    }

    fn __handler_name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("{}.emit", self.bridge.name))
    }
}

struct SendFn {
    bridge: Arc<BridgeInner>,
}

impl ErasedHandler for SendFn {
    fn call(&self, event: AnyEvent) -> HandlerCall {
        HandlerCall::Pending(Box::pin(Arc::clone(&self.bridge).send_event(event)))
    }
}
