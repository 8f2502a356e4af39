//! [`IntoEvent`]: what `dispatch` accepts (a new event or a handle to forward), and the handle it
//! returns.

use super::{AnyEvent, EventHandle};
use crate::event::dynamic::DynEvent;
use crate::event::{Event, EventPayload};

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
    pub trait IntoEventSealed {
        /// `__into_event` builds a new event from a payload (rather than passing on one built
        /// earlier): the event is created within the `dispatch` call that converts it, so the
        /// bus may date it by tokio's clock read just before, instead of reading the wall clock
        /// to work out its age.
        const FRESH: bool = false;
    }

    /// What `dispatch` needs of the handle it returns: the event behind it.
    pub trait HandleEvent {
        #[doc(hidden)]
        fn __any(&self) -> &crate::event::AnyEvent;
    }
}
pub(crate) use into_sealed::HandleEvent;
use into_sealed::IntoEventSealed;

impl<E: Event> IntoEventSealed for E {
    const FRESH: bool = true;
}
impl<E: Event> IntoEvent for E {
    type Handle = EventHandle<E>;
    /// Inlined into `dispatch` (its frame, entry and exit, were ~20 instructions per event).
    #[inline(always)]
    fn __into_event(self) -> EventHandle<E> {
        EventHandle::new(self)
    }
}

impl IntoEventSealed for DynEvent {
    const FRESH: bool = true;
}
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
