//! Forwarding: a handler that dispatches the events it receives on another bus.

use std::borrow::Cow;
use std::sync::{Arc, Weak};

use super::{BusInner, EventBus};
use crate::error::HandlerError;
use crate::event::AnyEvent;
use crate::handler::{ErasedHandler, HandlerCall, HandlerFn, IntoHandler};
use crate::result::ResultSlot;

/// A handler that forwards each event it receives to a target bus: see [`EventBus::forwarder`].
///
/// The forwarded event is the same event (same id, same results map); its `event_path` gains the
/// target's label, and a bus already in the path never receives it again, so forwarding cycles
/// end. The forwarding handler's result is the event itself, which the result helpers skip.
///
/// It does not keep the target alive: two buses forwarding to each other are freed when the
/// last handles to them are dropped. Forwarding to a bus that no longer exists is an error
/// result naming it.
#[derive(Clone, Debug)]
pub struct Forwarder {
    target: EventBus,
    /// `Some(wait)`: a full target history is waited on ([`Forwarder::wait_for_room`]).
    room: Option<Option<std::time::Duration>>,
}

impl Forwarder {
    /// Waits for room when the target's history is full of unfinished events, instead of
    /// failing with [`HistoryFull`](crate::DispatchError::HistoryFull): the forwarding
    /// handler stays pending (on a serial bus, so does the bus: backpressure) until an event of
    /// the target completes, for up to `timeout` (`None`: as long as it takes), as
    /// [`EventBus::dispatch_when_room`] does. [`Bridge::attach`](crate::bridge::Bridge::attach)
    /// forwards this way.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bubus::{AnyEvent, DynEvent, EventBus};
    /// use serde_json::json;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bubus::Error> {
    /// let front = EventBus::builder("Front").max_history_size(None).build();
    /// let slow = EventBus::builder("Slow").max_history_size(Some(2)).build();
    /// slow.on_pattern("Job", |_: AnyEvent| async { tokio::task::yield_now().await });
    /// front.on_pattern("*", slow.forwarder().wait_for_room(Some(Duration::from_secs(5))));
    /// let jobs: Vec<_> = (0..20)
    ///     .map(|n| front.dispatch(DynEvent::new("Job", json!({ "n": n })).unwrap()).unwrap())
    ///     .collect();
    /// for job in jobs {
    ///     assert!(job.await?.event_errors().is_empty()); // none refused with HistoryFull
    /// }
    /// # Ok(()) }
    /// ```
    pub fn wait_for_room(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.room = Some(timeout);
        self
    }
}

#[doc(hidden)]
#[derive(Debug)]
pub struct ForwardMarker;

#[diagnostic::do_not_recommend]
impl IntoHandler<AnyEvent, ForwardMarker> for Forwarder {
    fn __into_handler_fn(self) -> HandlerFn {
        HandlerFn(Box::new(ForwardFn {
            target: Arc::downgrade(&self.target.inner),
            label: Arc::clone(&self.target.inner.label),
            room: self.room,
        }))
    }

    fn __handler_name(&self) -> Cow<'static, str> {
        Cow::Owned(format!("{}.dispatch", self.target.name()))
    }

    fn __forward_target(&self) -> Option<(uuid::Uuid, Arc<str>)> {
        Some((self.target.id(), Arc::from(self.target.label())))
    }
}

/// A registered forwarder: the target bus by weak reference, so buses that forward to each
/// other do not keep each other alive.
struct ForwardFn {
    target: Weak<BusInner>,
    label: Arc<str>,
    room: Option<Option<std::time::Duration>>,
}

fn forwarded(result: Result<AnyEvent, crate::DispatchError>) -> Result<ResultSlot, HandlerError> {
    match result {
        Ok(forwarded) => Ok(ResultSlot::Forwarded {
            event_id: forwarded.event_id(),
            event: Box::new(Arc::downgrade(forwarded.inner())),
        }),
        Err(err) => Err(HandlerError::from_error(err)),
    }
}

impl ErasedHandler for ForwardFn {
    fn call(&self, event: AnyEvent) -> HandlerCall {
        let Some(target) = self.target.upgrade() else {
            return HandlerCall::Ready(Err(HandlerError::new(
                "BusDropped",
                format!(
                    "cannot forward {} to {}: that bus no longer exists (every handle to it was dropped)",
                    event.label(),
                    self.label
                ),
            )));
        };
        let target = EventBus::from_inner(target);
        match self.room {
            None => HandlerCall::Ready(forwarded(target.dispatch(event))),
            Some(timeout) => HandlerCall::Pending(Box::pin(async move {
                forwarded(target.dispatch_when_room(event, timeout).await)
            })),
        }
    }
}

impl EventBus {
    /// A handler that forwards what it receives to this bus — the seed README's
    /// `main_bus.on('AuthEvent', auth_bus.dispatch)`:
    ///
    /// ```
    /// use bubus::{DynEvent, EventBus};
    /// use serde_json::json;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bubus::Error> {
    /// let main_bus = EventBus::new("MainBus");
    /// let auth_bus = EventBus::new("AuthBus");
    /// main_bus.on_pattern("AuthEvent", auth_bus.forwarder());
    ///
    /// let event = main_bus.dispatch(DynEvent::new("AuthEvent", json!({}))?)?.await?;
    /// assert_eq!(event.event_path(), [main_bus.label(), auth_bus.label()]);
    /// # Ok(()) }
    /// ```
    ///
    /// The forwarder does not keep this bus alive: keep a handle to it for as long as it should
    /// receive events. So buses that forward to each other (`a.forward_to(&b)` and
    /// `b.forward_to(&a)`) are freed, with their tasks, once their handles are dropped.
    pub fn forwarder(&self) -> Forwarder {
        Forwarder {
            target: self.clone(),
            room: None,
        }
    }

    /// Forwards every event dispatched on this bus to `target` (a `"*"` [`forwarder`]). Returns the
    /// registration, for [`off`](Self::off).
    ///
    /// Awaiting an event on this bus then also waits for `target`'s handlers; their results appear
    /// on the same handle. Each bus applies its own defaults to options the event leaves unset.
    ///
    /// [`forwarder`]: Self::forwarder
    #[track_caller]
    pub fn forward_to(&self, target: &EventBus) -> crate::handler::EventHandler {
        self.on_pattern("*", target.forwarder())
    }
}
