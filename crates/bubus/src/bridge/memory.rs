//! An in-memory transport: two bridges in one process share a [`MemoryMedium`]. For tests, for
//! wiring parts of one program as if they were separate processes, and as the reference
//! implementation of the [`Transport`] contract (both the plain and the durable shape).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};

use super::transport::{
    Acker, BoxFuture, Capabilities, Delivery, DeliveryStream, Message, Transport, TransportError,
};

/// The shared medium of [`MemoryTransport`]s: a pub/sub channel ([`new`](Self::new): every
/// listener gets every message, including its own, from the moment it listens — the family's
/// plain modes) or a durable log with consumer groups ([`durable`](Self::durable): each group
/// gets every message sent after it first listened, messages wait while no listener of the
/// group runs, each goes to one listener of the group, stays until acked, comes back when
/// nacked or when its listener closes without acking, and can be dead-lettered — the shape of
/// Redis Streams consumer groups or JetStream durable consumers).
///
/// ```
/// use bubus::bridge::{Bridge, MemoryMedium};
/// use bubus::{DynEvent, EventBus};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let medium = MemoryMedium::new();
/// let (a, b) = (EventBus::new("A"), EventBus::new("B"));
/// let bridge_a = Bridge::new(medium.transport());
/// let bridge_b = Bridge::new(medium.transport());
/// bridge_a.attach(&a);
/// bridge_b.attach(&b);
/// bridge_a.start().await?;
/// bridge_b.start().await?;
///
/// let seen = b.expect_pattern("Ping");
/// let sent = a.dispatch(DynEvent::new("Ping", json!({"n": 1}))?)?;
/// let received = seen.await?;
/// assert_eq!(received.event_id(), sent.event_id()); // lineage kept across the hop
/// bridge_a.close().await?;
/// bridge_b.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MemoryMedium {
    inner: Arc<Medium>,
}

struct Medium {
    durable: bool,
    subscribers: Mutex<Vec<(u64, mpsc::UnboundedSender<String>)>>,
    groups: Mutex<HashMap<String, Queue>>,
    dead: Mutex<Vec<DeadLetter>>,
    wake: Notify,
    next_id: AtomicU64,
    sent: AtomicU64,
}

#[derive(Default)]
struct Queue {
    ready: VecDeque<Entry>,
    in_flight: HashMap<u64, (u64, Entry)>,
}

#[derive(Clone)]
struct Entry {
    seq: u64,
    text: String,
    attempt: u32,
    /// Why it was last handed back ([`Acker::nack`]'s reason).
    last_error: Option<String>,
}

/// A message a bridge gave up on (a durable [`MemoryMedium`] keeps them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    /// The message text.
    pub text: String,
    /// Why (the bridge's reason: the last handler error, a decode error).
    pub reason: String,
    /// How many times it was delivered.
    pub attempts: u32,
    /// The reason given when it was last handed back for redelivery (a handler error, a full
    /// receiving bus), if it ever was.
    pub last_error: Option<String>,
}

impl fmt::Debug for MemoryMedium {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryMedium")
            .field("durable", &self.inner.durable)
            .field("sent", &self.inner.sent.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for MemoryMedium {
    fn default() -> Self {
        MemoryMedium::new()
    }
}

impl MemoryMedium {
    /// A pub/sub medium (at-most-once, fan-out, listeners get their own messages).
    pub fn new() -> Self {
        Self::with_mode(false)
    }

    /// A durable queue medium (at-least-once, acks, redelivery, dead letters).
    pub fn durable() -> Self {
        Self::with_mode(true)
    }

    fn with_mode(durable: bool) -> Self {
        MemoryMedium {
            inner: Arc::new(Medium {
                durable,
                subscribers: Mutex::new(Vec::new()),
                groups: Mutex::new(HashMap::new()),
                dead: Mutex::new(Vec::new()),
                wake: Notify::new(),
                next_id: AtomicU64::new(1),
                sent: AtomicU64::new(0),
            }),
        }
    }

    /// A new endpoint on this medium (on a durable medium, in a consumer group of its own).
    pub fn transport(&self) -> MemoryTransport {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        self.transport_in_group(format!("endpoint-{id}"))
    }

    /// A new endpoint in consumer group `group` (durable media; a restarted process uses the
    /// same group and resumes where the group stopped).
    pub fn transport_in_group(&self, group: impl Into<String>) -> MemoryTransport {
        MemoryTransport {
            medium: self.clone(),
            id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
            group: Arc::from(group.into()),
            closed: Arc::new(AtomicBool::new(false)),
            close_signal: Arc::new(Notify::new()),
        }
    }

    /// The messages given up on (durable media).
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.inner.dead.lock().clone()
    }

    /// Messages waiting for a listener or for their ack, over every group (durable media).
    pub fn pending(&self) -> usize {
        self.inner
            .groups
            .lock()
            .values()
            .map(|q| q.ready.len() + q.in_flight.len())
            .sum()
    }

    /// Appends raw text as if a sender had sent it (tests feed bad input this way).
    pub fn inject(&self, text: impl Into<String>) {
        self.inner.publish(text.into());
    }
}

impl Medium {
    fn publish(&self, text: String) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        if self.durable {
            let seq = self.next_id.fetch_add(1, Ordering::Relaxed);
            for q in self.groups.lock().values_mut() {
                q.ready.push_back(Entry {
                    seq,
                    text: text.clone(),
                    attempt: 0,
                    last_error: None,
                });
            }
            self.wake.notify_waiters();
        } else {
            self.subscribers
                .lock()
                .retain(|(_, tx)| tx.send(text.clone()).is_ok());
        }
    }

    /// Returns the in-flight messages of a closed listener to the queue.
    fn release(&self, group: &str, listener: u64) {
        let mut groups = self.groups.lock();
        let Some(q) = groups.get_mut(group) else {
            return;
        };
        let mut back: Vec<Entry> = q
            .in_flight
            .iter()
            .filter(|(_, (owner, _))| *owner == listener)
            .map(|(_, (_, e))| e.clone())
            .collect();
        q.in_flight.retain(|_, (owner, _)| *owner != listener);
        back.sort_by_key(|e| std::cmp::Reverse(e.seq));
        for e in back {
            q.ready.push_front(e);
        }
        drop(groups);
        self.wake.notify_waiters();
    }
}

/// One endpoint on a [`MemoryMedium`].
#[derive(Clone)]
pub struct MemoryTransport {
    medium: MemoryMedium,
    id: u64,
    group: Arc<str>,
    closed: Arc<AtomicBool>,
    close_signal: Arc<Notify>,
}

impl fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("id", &self.id)
            .field("group", &self.group)
            .field("medium", &self.medium)
            .finish()
    }
}

struct MemoryAcker {
    medium: Arc<Medium>,
    group: Arc<str>,
    seq: u64,
}

impl MemoryAcker {
    fn take(&self) -> Option<Entry> {
        let mut groups = self.medium.groups.lock();
        let q = groups.get_mut(&*self.group)?;
        q.in_flight.remove(&self.seq).map(|(_, e)| e)
    }
}

impl Acker for MemoryAcker {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>> {
        self.take();
        Box::pin(async { Ok(()) })
    }

    fn nack(
        self: Box<Self>,
        _delay: Option<Duration>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        if let Some(mut entry) = self.take() {
            entry.last_error = Some(reason);
            if let Some(q) = self.medium.groups.lock().get_mut(&*self.group) {
                q.ready.push_back(entry);
            }
        }
        self.medium.wake.notify_waiters();
        Box::pin(async { Ok(()) })
    }

    fn dead_letter(
        self: Box<Self>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        if let Some(entry) = self.take() {
            self.medium.dead.lock().push(DeadLetter {
                text: entry.text,
                reason,
                attempts: entry.attempt,
                last_error: entry.last_error,
            });
        }
        Box::pin(async { Ok(()) })
    }
}

impl Transport for MemoryTransport {
    fn kind(&self) -> &str {
        "MemoryEventBridge"
    }

    fn describe(&self) -> String {
        format!("memory:{}", self.id)
    }

    fn capabilities(&self) -> Capabilities {
        if self.medium.inner.durable {
            Capabilities::at_most_once()
                .with_durable(true)
                .with_acks(true)
                .with_redelivery(true)
                .with_dead_letters(true)
                .with_ordered(true)
        } else {
            Capabilities::at_most_once()
                .with_receives_own(true)
                .with_ordered(true)
        }
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            if self.closed.load(Ordering::Acquire) {
                return Err(TransportError::Closed);
            }
            self.medium.inner.publish(message.text().to_owned());
            Ok(())
        })
    }

    fn listen(&self) -> BoxFuture<'_, Result<DeliveryStream, TransportError>> {
        Box::pin(async move {
            if self.closed.load(Ordering::Acquire) {
                return Err(TransportError::Closed);
            }
            let medium = Arc::clone(&self.medium.inner);
            let closed = Arc::clone(&self.closed);
            let close_signal = Arc::clone(&self.close_signal);
            let listener = self.id;
            let group = Arc::clone(&self.group);
            if medium.durable {
                medium.groups.lock().entry(group.to_string()).or_default();
            }
            let stream: DeliveryStream = if medium.durable {
                Box::pin(futures_util::stream::unfold(
                    (medium, closed, close_signal),
                    move |(medium, closed, close_signal)| {
                        let group = Arc::clone(&group);
                        async move {
                            let entry = loop {
                                // Created before the checks: a wake-up in between is not lost.
                                let woken = medium.wake.notified();
                                let closing = close_signal.notified();
                                if closed.load(Ordering::Acquire) {
                                    break None;
                                }
                                let next = {
                                    let mut groups = medium.groups.lock();
                                    groups.get_mut(&*group).and_then(|q| {
                                        q.ready.pop_front().map(|mut e| {
                                            e.attempt += 1;
                                            q.in_flight.insert(e.seq, (listener, e.clone()));
                                            e
                                        })
                                    })
                                };
                                if next.is_some() {
                                    break next;
                                }
                                tokio::select! {
                                    () = woken => {}
                                    () = closing => {}
                                }
                            };
                            let e = entry?;
                            let delivery =
                                Delivery::new(e.text, format!("memory message {}", e.seq))
                                    .with_attempt(e.attempt)
                                    .with_acker(MemoryAcker {
                                        medium: Arc::clone(&medium),
                                        group,
                                        seq: e.seq,
                                    });
                            Some((Ok(delivery), (medium, closed, close_signal)))
                        }
                    },
                ))
            } else {
                let (tx, rx) = mpsc::unbounded_channel();
                medium.subscribers.lock().push((listener, tx));
                Box::pin(futures_util::stream::unfold(
                    (rx, 0u64),
                    |(mut rx, n)| async move {
                        let text = rx.recv().await?;
                        let n = n + 1;
                        Some((
                            Ok(Delivery::new(text, format!("memory message {n}"))),
                            (rx, n),
                        ))
                    },
                ))
            };
            Ok(stream)
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            if !self.closed.swap(true, Ordering::AcqRel) {
                let medium = &self.medium.inner;
                medium.subscribers.lock().retain(|(id, _)| *id != self.id);
                self.close_signal.notify_waiters();
                if medium.durable {
                    medium.release(&self.group, self.id);
                }
            }
            Ok(())
        })
    }
}
