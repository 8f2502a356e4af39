//! Handles to events: typed [`EventHandle`] and untyped [`AnyEvent`].

use std::borrow::Cow;
use std::fmt;

use std::ops::Deref;

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::config::{
    EventConcurrency, EventConfig, EventStatus, HandlerCompletion, HandlerConcurrency, Ttl,
};
use super::dynamic::DynEvent;
use super::inner::{BusPhase, EventInner, KindOf};
use super::{Event, EventPayload};
use crate::error::HandlerError;
use crate::handler::HandlerId;
use crate::time::Timestamp;

/// A typed handle to one event: derefs to the payload `P`, exposes the event's metadata and
/// results, and can be `.await`ed.
///
/// Cheap to clone (two reference counts); every clone sees the same event.
///
/// Awaiting resolves once the event is completed — every handler on every bus it reached has
/// finished, and so has every event it caused. Inside a handler the await *queue-jumps*: the event
/// (and its queued descendants) is processed right away instead of waiting its turn, so awaiting a
/// child never deadlocks.
///
/// ```
/// use bubus::{Event, EventBus, EventHandle};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// #[event(result = u32)]
/// struct Add { a: u32, b: u32 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let bus = EventBus::new("Calc");
/// bus.on(|e: EventHandle<Add>| e.a + e.b);
///
/// let event = bus.dispatch(Add { a: 2, b: 3 })?;
/// assert_eq!(event.a, 2); // the payload
/// let event = event.await?; // the completed event
/// assert_eq!(event.event_result().await?, 5);
/// # Ok(()) }
/// ```
pub struct EventHandle<P> {
    event: AnyEvent,
    /// The payload as another type sees it (a dynamic event decoded as a typed one, a typed one
    /// as JSON); `None` when the event's own payload is a `P` — the usual case, which costs no
    /// reference count of its own.
    view: Option<Arc<P>>,
}

/// An untyped handle to one event of any type: its metadata, its results as JSON, and
/// [`downcast`](AnyEvent::downcast) to a typed handle. Wildcard (`"*"`) handlers receive this.
#[derive(Clone)]
pub struct AnyEvent {
    inner: Arc<EventInner>,
}

impl<P: EventPayload> EventHandle<P> {
    /// A new event that has not been dispatched yet. Set per-event configuration with the `with_*`
    /// methods, then pass it (or a clone) to [`EventBus::dispatch`](crate::EventBus::dispatch).
    pub fn new(payload: P) -> Self {
        EventHandle {
            event: payload.__new_event(),
            view: None,
        }
    }

    pub(crate) fn from_parts(inner: Arc<EventInner>, view: Option<Arc<P>>) -> Self {
        EventHandle {
            event: AnyEvent { inner },
            view,
        }
    }

    /// The payload.
    // A handle is built without a view only where its event's payload was just created as, or
    // checked to be, a `P` (`new`, `EventInner::typed_view`, `EventInner::dyn_view`), and an
    // event's payload never changes: the `expect` cannot fire.
    #[expect(
        clippy::expect_used,
        reason = "the view is always set for a payload of type P (see above)"
    )]
    pub fn payload(&self) -> &P {
        match &self.view {
            Some(view) => view,
            None => self
                .event
                .inner
                .own_payload::<P>()
                .expect("a handle without a view is of its event's own payload type"),
        }
    }

    /// An untyped handle to the same event.
    pub fn to_any(&self) -> AnyEvent {
        self.event.clone()
    }
}

impl<P> EventHandle<P> {
    pub(crate) fn inner(&self) -> &Arc<EventInner> {
        &self.event.inner
    }
}

impl<P> AsRef<AnyEvent> for EventHandle<P> {
    fn as_ref(&self) -> &AnyEvent {
        &self.event
    }
}

impl AsRef<AnyEvent> for AnyEvent {
    fn as_ref(&self) -> &AnyEvent {
        self
    }
}

impl AnyEvent {
    pub(crate) fn from_inner(inner: Arc<EventInner>) -> Self {
        AnyEvent { inner }
    }

    pub(crate) fn inner(&self) -> &Arc<EventInner> {
        &self.inner
    }

    pub(crate) fn into_inner(self) -> Arc<EventInner> {
        self.inner
    }

    /// A typed handle, if this event is an `E` (or a dynamic event of `E`'s type whose payload
    /// decodes as `E`).
    pub fn downcast<E: Event>(&self) -> Option<EventHandle<E>> {
        self.try_downcast().ok()
    }

    /// A typed handle, or why there is none: the event is of another type, or its payload does
    /// not decode as `E` (the error names the field).
    ///
    /// # Errors
    ///
    /// A [`HandlerError`] of kind [`PayloadDecode`](crate::error::HandlerErrorKind::PayloadDecode).
    pub fn try_downcast<E: Event>(&self) -> Result<EventHandle<E>, HandlerError> {
        if self.inner.event_type != E::EVENT_TYPE {
            return Err(HandlerError::with_kind(
                crate::error::HandlerErrorKind::PayloadDecode,
                format!("{} is not a {}", self.inner.label(), E::EVENT_TYPE),
            ));
        }
        Ok(EventHandle {
            event: self.clone(),
            view: self.inner.typed_view::<E>()?,
        })
    }

    /// The JSON view of this event's payload as a [`DynEvent`] handle.
    ///
    /// # Errors
    ///
    /// Fails only if a typed payload cannot be serialized.
    pub fn to_dyn(&self) -> Result<EventHandle<DynEvent>, HandlerError> {
        Ok(EventHandle {
            event: self.clone(),
            view: self.inner.dyn_view()?,
        })
    }

    /// The payload fields as JSON.
    ///
    /// # Errors
    ///
    /// Fails only if a typed payload cannot be serialized.
    pub fn payload_json(&self) -> Result<serde_json::Map<String, serde_json::Value>, HandlerError> {
        self.inner.payload_json()
    }
}

macro_rules! event_accessors {
    ($ty:ident $(<$p:ident>)?) => {
        impl$(<$p>)? $ty$(<$p>)? {
            /// The event's id (UUIDv7).
            pub fn event_id(&self) -> Uuid {
                self.inner().id
            }

            /// The `event_type` string.
            pub fn event_type(&self) -> &str {
                &self.inner().event_type
            }

            /// The `event_version` string.
            pub fn event_version(&self) -> &str {
                &self.inner().version
            }

            /// `Type#abcd`: the type and the last four hex digits of the id.
            pub fn label(&self) -> String {
                self.inner().label()
            }

            /// When the event was created.
            pub fn event_created_at(&self) -> Timestamp {
                self.inner().created_at
            }

            /// Pending, started or completed.
            pub fn event_status(&self) -> EventStatus {
                self.inner().state.lock().status
            }

            /// When the first handler started, on any bus.
            pub fn event_started_at(&self) -> Option<Timestamp> {
                self.inner().state.lock().started_at
            }

            /// When the event completed.
            pub fn event_completed_at(&self) -> Option<Timestamp> {
                self.inner().state.lock().completed_at
            }

            /// Whether the event is completed.
            pub fn is_complete(&self) -> bool {
                self.inner().is_complete()
            }

            /// Whether the event was dispatched on at least one bus.
            pub fn is_dispatched(&self) -> bool {
                !self.inner().state.lock().buses.is_empty()
            }

            /// The id of the event whose handler dispatched this one (or the explicit parent id).
            pub fn event_parent_id(&self) -> Option<Uuid> {
                self.inner().state.lock().parent_id
            }

            /// The id of the handler that dispatched this event.
            pub fn event_emitted_by_handler_id(&self) -> Option<HandlerId> {
                self.inner().state.lock().emitted_by_handler_id.clone()
            }

            /// The labels (`Name#abcd`) of the buses this event was dispatched to, in order.
            pub fn event_path(&self) -> Vec<String> {
                self.inner().state.lock().listed_path().map(|l| l.to_string()).collect()
            }

            /// How many buses have accepted the event and not finished processing it.
            pub fn event_pending_bus_count(&self) -> usize {
                self.inner()
                    .state
                    .lock()
                    .buses
                    .iter()
                    .filter(|slot| slot.phase != BusPhase::Done)
                    .count()
            }

            /// The event's configuration (unset fields resolve on each bus at processing time).
            pub fn event_config(&self) -> EventConfig {
                self.inner().state.lock().config
            }

            /// The event that dispatched this one, while it is still alive.
            pub fn event_parent(&self) -> Option<AnyEvent> {
                self.inner().state.lock().parent.upgrade().map(AnyEvent::from_inner)
            }

            /// The events dispatched by this event's handlers, in dispatch order.
            pub fn event_children(&self) -> Vec<AnyEvent> {
                self.inner()
                    .state
                    .lock()
                    .children
                    .iter()
                    .map(|c| AnyEvent::from_inner(Arc::clone(c)))
                    .collect()
            }

            /// Children, grandchildren and so on, depth first.
            pub fn event_descendants(&self) -> Vec<AnyEvent> {
                let mut out = Vec::new();
                let mut stack: Vec<Arc<EventInner>> =
                    self.inner().state.lock().children.iter().rev().cloned().collect();
                let mut seen = std::collections::HashSet::new();
                while let Some(event) = stack.pop() {
                    if !seen.insert(event.id) {
                        continue;
                    }
                    stack.extend(event.state.lock().children.iter().rev().cloned());
                    out.push(AnyEvent::from_inner(event));
                }
                out
            }

            /// The errors of its handlers that failed, in completion order.
            pub fn event_errors(&self) -> Vec<HandlerError> {
                let st = self.inner().state.lock();
                let mut errors: Vec<_> = st
                    .results
                    .iter()
                    .filter_map(|r| r.error.clone().map(|e| (r.completed_at, e)))
                    .collect();
                errors.sort_by_key(|(at, _)| *at);
                errors.into_iter().map(|(_, e)| *e).collect()
            }

            /// Sets `event_timeout` (`None` = the bus default). Effective if set before the
            /// event starts processing.
            pub fn set_event_timeout(&self, timeout: Option<Duration>) {
                self.inner().state.lock().config.event_timeout = timeout;
            }

            /// Sets `event_slow_timeout`.
            pub fn set_event_slow_timeout(&self, threshold: Option<Duration>) {
                self.inner().state.lock().config.event_slow_timeout = threshold;
            }

            /// Sets `event_handler_timeout`.
            pub fn set_event_handler_timeout(&self, timeout: Option<Duration>) {
                self.inner().state.lock().config.event_handler_timeout = timeout;
            }

            /// Sets `event_handler_slow_timeout`.
            pub fn set_event_handler_slow_timeout(&self, threshold: Option<Duration>) {
                self.inner().state.lock().config.event_handler_slow_timeout = threshold;
            }

            /// Sets `event_concurrency`.
            pub fn set_event_concurrency(&self, mode: Option<EventConcurrency>) {
                let inner = self.inner();
                inner.set_concurrency(&mut inner.state.lock(), mode);
            }

            /// Sets `event_handler_concurrency`.
            pub fn set_event_handler_concurrency(&self, mode: Option<HandlerConcurrency>) {
                self.inner().state.lock().config.event_handler_concurrency = mode;
            }

            /// Sets `event_handler_completion`.
            pub fn set_event_handler_completion(&self, mode: Option<HandlerCompletion>) {
                self.inner().state.lock().config.event_handler_completion = mode;
            }

            /// Sets an explicit parent id. A parent set before dispatch is never overwritten by
            /// automatic linking.
            pub fn set_event_parent_id(&self, parent: Option<Uuid>) {
                self.inner().state.lock().parent_id = parent;
            }

            /// Builder form of [`set_event_timeout`](Self::set_event_timeout).
            #[must_use]
            pub fn with_event_timeout(self, timeout: Duration) -> Self {
                self.set_event_timeout(Some(timeout));
                self
            }

            /// Builder form of [`set_event_slow_timeout`](Self::set_event_slow_timeout).
            #[must_use]
            pub fn with_event_slow_timeout(self, threshold: Duration) -> Self {
                self.set_event_slow_timeout(Some(threshold));
                self
            }

            /// Builder form of [`set_event_handler_timeout`](Self::set_event_handler_timeout).
            #[must_use]
            pub fn with_event_handler_timeout(self, timeout: Duration) -> Self {
                self.set_event_handler_timeout(Some(timeout));
                self
            }

            /// Builder form of [`set_event_concurrency`](Self::set_event_concurrency).
            #[must_use]
            pub fn with_event_concurrency(self, mode: EventConcurrency) -> Self {
                self.set_event_concurrency(Some(mode));
                self
            }

            /// Builder form of
            /// [`set_event_handler_concurrency`](Self::set_event_handler_concurrency).
            #[must_use]
            pub fn with_event_handler_concurrency(self, mode: HandlerConcurrency) -> Self {
                self.set_event_handler_concurrency(Some(mode));
                self
            }

            /// Builder form of
            /// [`set_event_handler_completion`](Self::set_event_handler_completion).
            #[must_use]
            pub fn with_event_handler_completion(self, mode: HandlerCompletion) -> Self {
                self.set_event_handler_completion(Some(mode));
                self
            }

            /// Sets how long the event stays in a bus's history after it completed (abxbus
            /// 2.5's `event_ttl`; `None`: the bus's [`event_ttl`]; [`Duration::ZERO`]: not at
            /// all; [`Ttl::Never`]: until evicted). Written on the wire as `event_ttl`, in
            /// seconds.
            ///
            /// [`event_ttl`]: crate::bus::EventBusBuilder::event_ttl
            pub fn set_event_ttl(&self, ttl: Option<Ttl>) {
                self.inner().state.lock().set_own_ttl("event_ttl", ttl);
            }

            /// Sets how long the results handlers left on the event stay on it after it
            /// completed (abxbus 2.5's `event_result_ttl`; `None`: each bus's own; a handler's
            /// `result_ttl` wins). Written on the wire as `event_result_ttl`, in seconds.
            pub fn set_event_result_ttl(&self, ttl: Option<Ttl>) {
                self.inner()
                    .state
                    .lock()
                    .set_own_ttl("event_result_ttl", ttl);
            }

            /// Builder form of [`set_event_ttl`](Self::set_event_ttl): a [`Duration`] or
            /// [`Ttl::Never`].
            #[must_use]
            pub fn with_event_ttl(self, ttl: impl Into<Ttl>) -> Self {
                self.set_event_ttl(Some(ttl.into()));
                self
            }

            /// Builder form of [`set_event_result_ttl`](Self::set_event_result_ttl): a
            /// [`Duration`] or [`Ttl::Never`].
            #[must_use]
            pub fn with_event_result_ttl(self, ttl: impl Into<Ttl>) -> Self {
                self.set_event_result_ttl(Some(ttl.into()));
                self
            }

            /// Builder form of [`set_event_parent_id`](Self::set_event_parent_id).
            #[must_use]
            pub fn with_event_parent_id(self, parent: Uuid) -> Self {
                self.set_event_parent_id(Some(parent));
                self
            }
        }
    };
}

event_accessors!(EventHandle<P>);
event_accessors!(AnyEvent);

impl<P> Clone for EventHandle<P> {
    fn clone(&self) -> Self {
        EventHandle {
            event: self.event.clone(),
            view: self.view.clone(),
        }
    }
}

impl<P: EventPayload> Deref for EventHandle<P> {
    type Target = P;
    fn deref(&self) -> &P {
        self.payload()
    }
}

impl<P> fmt::Debug for EventHandle<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_event(self.inner(), f)
    }
}

impl fmt::Debug for AnyEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        debug_event(&self.inner, f)
    }
}

fn debug_event(inner: &EventInner, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let st = inner.state.lock();
    f.debug_struct("Event")
        .field("event_type", &inner.event_type)
        .field("event_id", &inner.id)
        .field("event_status", &st.status)
        .field("event_path", &st.path)
        .finish_non_exhaustive()
}

impl<P> PartialEq for EventHandle<P> {
    fn eq(&self, other: &Self) -> bool {
        self.event == other.event
    }
}

impl PartialEq for AnyEvent {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl<P: EventPayload> From<EventHandle<P>> for AnyEvent {
    fn from(handle: EventHandle<P>) -> Self {
        handle.event
    }
}

impl<E: Event> EventPayload for E {
    type Result = E::Result;

    fn __new_event(self) -> AnyEvent {
        let inner = EventInner::new(
            Cow::Borrowed(E::EVENT_TYPE),
            Cow::Borrowed(E::EVENT_VERSION),
            <E as KindOf>::KIND,
            self,
            None,
            E::EVENT_DEFAULTS,
        );
        AnyEvent { inner }
    }

    fn __resolve(event: &AnyEvent) -> Result<Option<Arc<Self>>, HandlerError> {
        event.inner.typed_view::<E>()
    }

    fn __default_pattern() -> &'static str {
        E::EVENT_TYPE
    }
}

/// What [`EventBus::dispatch`](crate::EventBus::dispatch) accepts: a new typed event, a [`DynEvent`], or a handle to an
/// existing event (to forward it to another bus).
pub trait IntoEvent: IntoEventSealed {
    /// The handle `dispatch` returns.
    type Handle: HandleEvent;

    #[doc(hidden)]
    fn __into_event(self) -> Self::Handle;
}

impl<P> HandleEvent for EventHandle<P> {
    fn __any(&self) -> &AnyEvent {
        &self.event
    }
}

impl HandleEvent for AnyEvent {
    fn __any(&self) -> &AnyEvent {
        self
    }
}

mod into_sealed {
    pub trait IntoEventSealed {}

    /// What `dispatch` needs of the handle it returns: the event behind it.
    pub trait HandleEvent {
        #[doc(hidden)]
        fn __any(&self) -> &super::AnyEvent;
    }
}
pub(crate) use into_sealed::HandleEvent;
use into_sealed::IntoEventSealed;

impl<E: Event> IntoEventSealed for E {}
impl<E: Event> IntoEvent for E {
    type Handle = EventHandle<E>;
    fn __into_event(self) -> EventHandle<E> {
        EventHandle::new(self)
    }
}

impl IntoEventSealed for DynEvent {}
impl IntoEvent for DynEvent {
    type Handle = EventHandle<DynEvent>;
    fn __into_event(self) -> EventHandle<DynEvent> {
        EventHandle::new(self)
    }
}

impl<P: EventPayload> IntoEventSealed for EventHandle<P> {}
impl<P: EventPayload> IntoEvent for EventHandle<P> {
    type Handle = EventHandle<P>;
    fn __into_event(self) -> EventHandle<P> {
        self
    }
}

impl<P: EventPayload> IntoEventSealed for &EventHandle<P> {}
impl<P: EventPayload> IntoEvent for &EventHandle<P> {
    type Handle = EventHandle<P>;
    fn __into_event(self) -> EventHandle<P> {
        self.clone()
    }
}

impl IntoEventSealed for AnyEvent {}
impl IntoEvent for AnyEvent {
    type Handle = AnyEvent;
    fn __into_event(self) -> AnyEvent {
        self
    }
}

impl IntoEventSealed for &AnyEvent {}
impl IntoEvent for &AnyEvent {
    type Handle = AnyEvent;
    fn __into_event(self) -> AnyEvent {
        self.clone()
    }
}
