//! What makes events awaitable: `.await` on an [`EventHandle`] or [`AnyEvent`] ([`EventFuture`])
//! and the wait of a [`ResultsQuery`], next to the waiting code they call ([`wait_for`]). The
//! handles and the query are the event model's; only the engine knows how to wait.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use super::EventBus;
use super::handler_context::bus_for;
use super::wait::Waiting;
use super::wait_for;
use crate::error::{ResultError, WaitError};
use crate::event::EventResultValue;
use crate::event::inner::EventInner;
use crate::event::{AnyEvent, EventHandle, HandleEvent};
use crate::result::ResultsQuery;

/// The future of `.await`ing an [`EventHandle`] or [`AnyEvent`]: resolves to the same handle once
/// the event is completed.
///
/// # Cancel safety
///
/// Dropping it stops waiting; it never cancels the event. If it was queue-jumping the event from
/// inside a handler, the part already processed stays processed and the rest is processed in
/// queue order.
#[must_use = "futures do nothing unless polled"]
pub struct EventFuture<T> {
    /// The handle, until the future resolves to it.
    value: Option<T>,
    /// The wait for the handle's event ([`Waiting::Done`] once complete).
    waiting: Waiting,
}

impl<T> fmt::Debug for EventFuture<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventFuture")
            .field("waiting", &!matches!(self.waiting, Waiting::Done))
            .finish()
    }
}

impl<T: HandleEvent + Unpin> Future for EventFuture<T> {
    type Output = Result<T, WaitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        // A complete event's wait (`Done`) is not polled at all: S1 awaits mostly complete
        // events, and calling into the wait for them measured +84 instructions per event.
        if let (Some(value), false) = (&this.value, matches!(this.waiting, Waiting::Done)) {
            match this.waiting.poll(value.__any().inner(), cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Ready(Ok(())) => {}
            }
        }
        match this.value.take() {
            Some(value) => Poll::Ready(Ok(value)),
            None => Poll::Pending,
        }
    }
}

/// The future resolving to `handle` once its event completed.
fn event_future<T: HandleEvent>(handle: T) -> EventFuture<T> {
    let waiting = if handle.__any().inner().is_complete() {
        Waiting::Done
    } else {
        Waiting::Start
    };
    EventFuture {
        value: Some(handle),
        waiting,
    }
}

impl<P> IntoFuture for EventHandle<P> {
    type Output = Result<EventHandle<P>, WaitError>;
    type IntoFuture = EventFuture<EventHandle<P>>;

    /// Waits for the event to complete (queue-jumping inside a handler).
    fn into_future(self) -> Self::IntoFuture {
        event_future(self)
    }
}

impl<P> IntoFuture for &EventHandle<P> {
    type Output = Result<EventHandle<P>, WaitError>;
    type IntoFuture = EventFuture<EventHandle<P>>;

    fn into_future(self) -> Self::IntoFuture {
        event_future(self.clone())
    }
}

impl IntoFuture for AnyEvent {
    type Output = Result<AnyEvent, WaitError>;
    type IntoFuture = EventFuture<AnyEvent>;

    fn into_future(self) -> Self::IntoFuture {
        event_future(self)
    }
}

impl IntoFuture for &AnyEvent {
    type Output = Result<AnyEvent, WaitError>;
    type IntoFuture = EventFuture<AnyEvent>;

    fn into_future(self) -> Self::IntoFuture {
        event_future(self.clone())
    }
}

impl EventInner {
    /// Waits for the event to complete, with no timeout: the result helpers' wait (they are in
    /// the model, which does not name the engine). The wait itself, not an `async fn` around it:
    /// one state machine less per await.
    pub(crate) fn completion(self: &Arc<Self>) -> impl Future<Output = Result<(), WaitError>> + '_ {
        wait_for(self)
    }
}

impl<R: EventResultValue> ResultsQuery<R> {
    /// Waits for the event to complete, within the query's timeout.
    pub(crate) async fn wait(&self) -> Result<(), ResultError> {
        if self.event.is_complete() {
            return Ok(());
        }
        let wait = wait_for(&self.event);
        match self.timeout {
            None => wait.await?,
            Some(timeout) => match tokio::time::timeout(timeout, wait).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(WaitError::Timeout {
                        event: self.event.label(),
                        timeout,
                    }
                    .into());
                }
            },
        }
        Ok(())
    }
}

macro_rules! event_bus {
    ($ty:ty $(, $p:ident)?) => {
        impl$(<$p>)? $ty {
            /// The bus running the current handler of this event, or else the last bus the event
            /// was dispatched to (while it is alive). Handlers use it to dispatch follow-up events
            /// on the bus they run on.
            pub fn event_bus(&self) -> Option<EventBus> {
                bus_for(self.inner())
            }
        }
    };
}

event_bus!(EventHandle<P>, P);
event_bus!(AnyEvent);
