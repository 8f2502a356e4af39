//! Handles to events: typed [`EventHandle`] and untyped [`AnyEvent`].
//!
//! The metadata accessors both handles share (`event_id`, `event_status`, the `set_event_*` and
//! `with_event_*` configuration, …) are in `handle/accessors.rs`; [`IntoEvent`], what `dispatch`
//! takes and returns, is in `handle/into_event.rs`.

mod accessors;
mod into_event;

pub(crate) use into_event::HandleEvent;
pub use into_event::IntoEvent;

use std::fmt;

use std::ops::Deref;

use std::sync::Arc;

use super::dynamic::DynEvent;
use super::inner::{EventInner, KindOf};
use super::{Event, EventPayload};
use crate::error::HandlerError;

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
    #[inline]
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

    /// Whether the handle is of its event's own payload (not a view of it as another type).
    #[inline]
    pub(crate) fn has_own_payload(&self) -> bool {
        self.view.is_none()
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
        if self.inner.event_type() != E::EVENT_TYPE {
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
        .field("event_type", &inner.event_type())
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

    #[inline(always)]
    fn __new_event(self) -> AnyEvent {
        let inner = EventInner::new_typed(
            <E as KindOf>::KIND,
            self,
            // The type's defaults, shared by its events until one sets a field.
            const { &E::EVENT_DEFAULTS },
        );
        AnyEvent { inner }
    }

    #[inline]
    fn __resolve(event: &AnyEvent) -> Result<Option<Arc<Self>>, HandlerError> {
        // The usual case, without a call: the event's own payload is an `E`.
        if event.inner.payload_is::<E>() {
            return Ok(None);
        }
        event.inner.typed_view::<E>()
    }

    fn __default_pattern() -> &'static str {
        E::EVENT_TYPE
    }
}
