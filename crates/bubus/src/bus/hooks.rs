//! Calling the bus's middlewares. Every call site holds no lock; with no middleware configured
//! each hook is a branch on an empty list.

use std::sync::Arc;

use serde_json::Value;

use super::{BusInner, EventBus};
use crate::event::inner::EventInner;
use crate::event::{AnyEvent, EventStatus};
use crate::handler::EventHandler;
use crate::middleware::Middleware;
use crate::result::EventResult;

impl BusInner {
    fn with_middlewares(&self, f: impl Fn(&dyn Middleware, &EventBus)) {
        if self.middlewares.is_empty() {
            return;
        }
        let Some(bus) = self.link.upgrade() else {
            return;
        };
        let bus = EventBus::from_inner(bus);
        for middleware in self.middlewares.iter() {
            f(middleware.as_ref(), &bus);
        }
    }

    #[inline]
    pub(crate) fn hook_dispatched(&self, event: &Arc<EventInner>) {
        if !self.middlewares.is_empty() {
            self.call_dispatched(event);
        }
    }

    #[cold]
    fn call_dispatched(&self, event: &Arc<EventInner>) {
        let any = AnyEvent::from_inner(Arc::clone(event));
        self.with_middlewares(|m, bus| m.on_event_dispatched(bus, &any));
    }

    #[inline]
    pub(crate) fn hook_event(&self, event: &Arc<EventInner>, status: EventStatus) {
        if !self.middlewares.is_empty() {
            self.call_event(event, status);
        }
    }

    #[cold]
    fn call_event(&self, event: &Arc<EventInner>, status: EventStatus) {
        let any = AnyEvent::from_inner(Arc::clone(event));
        self.with_middlewares(|m, bus| m.on_event_change(bus, &any, status));
    }

    /// The hook for the results at `indices` of `event` (each a result of this bus's handlers).
    #[inline]
    pub(crate) fn hook_results(
        &self,
        event: &Arc<EventInner>,
        indices: &[usize],
        status: EventStatus,
    ) {
        if !self.middlewares.is_empty() && !indices.is_empty() {
            self.call_results(event, indices, status);
        }
    }

    #[cold]
    fn call_results(&self, event: &Arc<EventInner>, indices: &[usize], status: EventStatus) {
        let snapshots: Vec<EventResult<Value>> = {
            let st = event.state.lock();
            indices
                .iter()
                .filter_map(|&i| st.results.get(i).map(|r| r.snapshot::<Value>(event.id)))
                .collect()
        };
        let any = AnyEvent::from_inner(Arc::clone(event));
        for snapshot in &snapshots {
            self.with_middlewares(|m, bus| m.on_event_result_change(bus, &any, snapshot, status));
        }
    }

    pub(crate) fn hook_handlers_change(&self, handler: &EventHandler, registered: bool) {
        self.with_middlewares(|m, bus| m.on_bus_handlers_change(bus, handler, registered));
    }
}

/// Fires `completed` for an event on every bus it went through, once per middleware instance (a
/// middleware shared by several buses — one log for all — sees the completion once).
pub(crate) fn hook_completed(event: &Arc<EventInner>, buses: &[Arc<BusInner>]) {
    let mut seen: Vec<*const ()> = Vec::new();
    let any = AnyEvent::from_inner(Arc::clone(event));
    for inner in buses {
        if inner.middlewares.is_empty() {
            continue;
        }
        let bus = EventBus::from_inner(Arc::clone(inner));
        for middleware in inner.middlewares.iter() {
            let id = Arc::as_ptr(middleware) as *const ();
            if seen.contains(&id) {
                continue;
            }
            seen.push(id);
            middleware.on_event_change(&bus, &any, EventStatus::Completed);
        }
    }
}
