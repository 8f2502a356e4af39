//! The event's metadata and configuration accessors, one set for both handle types:
//! [`EventHandle`] and [`AnyEvent`] get the same methods from one macro.

use std::sync::Arc;
use std::time::Duration;

use uuid::Uuid;

use super::{AnyEvent, EventHandle};
use crate::error::HandlerError;
use crate::event::config::{
    EventConcurrency, EventConfig, EventStatus, HandlerCompletion, HandlerConcurrency, Ttl,
};
use crate::event::inner::{BusPhase, EventInner};
use crate::handler::HandlerId;
use crate::time::Timestamp;

macro_rules! event_accessors {
    ($ty:ident $(<$p:ident>)?) => {
        impl$(<$p>)? $ty$(<$p>)? {
            /// The event's id (UUIDv7).
            pub fn event_id(&self) -> Uuid {
                self.inner().id
            }

            /// The `event_type` string.
            pub fn event_type(&self) -> &str {
                self.inner().event_type()
            }

            /// The `event_version` string.
            pub fn event_version(&self) -> &str {
                self.inner().version()
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
                self.inner().state.lock().started_at()
            }

            /// When the event completed.
            pub fn event_completed_at(&self) -> Option<Timestamp> {
                self.inner().state.lock().completed_at()
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
                *self.inner().state.lock().config
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
                    .filter_map(|r| r.error.clone().map(|e| (r.completed_at(), e)))
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
