//! The sending side of a bridge: [`BridgeSender`], the handler that sends what its bus
//! dispatches, and with results back the wait for the far side's completion record (processing
//! the far side's children of the awaited event meanwhile).

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::sync::oneshot;
use uuid::Uuid;

use super::bridge::{BridgeError, BridgeInner};
use super::transport::{Acker, Message};
use crate::error::HandlerError;
use crate::event::AnyEvent;
use crate::handler::{ErasedHandler, HandlerCall, HandlerFn, IntoHandler};
use crate::result::ResultSlot;

impl BridgeInner {
    /// Sends one message over the transport, counted (`sent`, `send_errors`); refused after
    /// close, and [`Bridge::close`](super::Bridge::close) waits for the sends in flight.
    pub(super) async fn send(&self, message: Message) -> Result<(), BridgeError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(self.closed_error());
        }
        // Counted out by a guard, not after the await: a send dropped halfway (its handler
        // timed out or was cancelled) must not leave `close` waiting for it forever.
        let sending = SendingGuard::new(self);
        let sent = self.transport.send(&message).await;
        drop(sending);
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

    /// The sending handler's work.
    pub(super) async fn send_event(
        self: Arc<Self>,
        event: AnyEvent,
    ) -> Result<ResultSlot, HandlerError> {
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
    pub(super) async fn wait_reply(
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
}

/// A sender waiting for the far side's completion of one event.
pub(super) struct Waiter {
    pub(super) reply: oneshot::Sender<AnyEvent>,
    /// Events the far side's handlers dispatched as children of the awaited event: the waiting
    /// handler processes them (queue-jumping, as an awaited child in one process would be),
    /// since the bus it runs on is busy with their parent.
    pub(super) children: tokio::sync::mpsc::UnboundedSender<RemoteChild>,
}

pub(super) struct RemoteChild {
    pub(super) event: AnyEvent,
    pub(super) acker: Option<Box<dyn Acker>>,
    pub(super) attempt: u32,
    pub(super) origin: String,
}

/// One send in flight, counted in `sending` from its creation to its drop (whether the send
/// finished or its future was dropped); the last one out wakes [`Bridge::close`](super::Bridge::close).
struct SendingGuard<'a> {
    bridge: &'a BridgeInner,
}

impl<'a> SendingGuard<'a> {
    fn new(bridge: &'a BridgeInner) -> Self {
        bridge.sending.fetch_add(1, Ordering::AcqRel);
        SendingGuard { bridge }
    }
}

impl Drop for SendingGuard<'_> {
    fn drop(&mut self) {
        if self.bridge.sending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.bridge.sends_done.notify_waiters();
        }
    }
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

/// The handler [`Bridge::sender`](super::Bridge::sender) returns.
#[derive(Clone)]
pub struct BridgeSender {
    pub(super) bridge: Arc<BridgeInner>,
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
