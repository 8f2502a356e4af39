//! Middlewares: code that watches a bus — every dispatch, every event and result status change,
//! every handler registration — to log, persist, trace or react.
//!
//! A middleware implements [`Middleware`] (every hook has a default that does nothing) and is
//! given to a bus with [`EventBusBuilder::middleware`](crate::bus::EventBusBuilder::middleware).
//! Several middlewares run in the order they were added.
//!
//! Hooks are synchronous and run inline on the processing path, with no bus lock held: they may
//! use the bus, but a slow hook slows the bus. Hand slow work (network, disk with fsync) to a task
//! or a thread.
//!
//! For one event on one bus the hooks fire in the order of the Python runtime:
//! event pending → result pending → result started → event started → result completed → event
//! completed. Each result goes pending → started → completed (or pending → completed when it is
//! cancelled before it starts) exactly once; a failure is a completed result whose
//! `status` is [`ResultStatus::Error`](crate::result::ResultStatus::Error). An event's `completed` hook
//! fires once per middleware instance, however many buses the event went through.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use bubus::middleware::Middleware;
//! use bubus::{AnyEvent, DynEvent, EventBus, EventStatus};
//! use serde_json::json;
//!
//! #[derive(Default)]
//! struct CountCompleted(AtomicUsize);
//!
//! impl Middleware for CountCompleted {
//!     fn on_event_change(&self, _bus: &EventBus, _event: &AnyEvent, status: EventStatus) {
//!         if status == EventStatus::Completed {
//!             self.0.fetch_add(1, Ordering::Relaxed);
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bubus::Error> {
//! let counter = Arc::new(CountCompleted::default());
//! let bus = EventBus::builder("Counted").middleware(counter.clone()).build();
//! bus.dispatch(DynEvent::new("Ping", json!({}))?)?.await?;
//! assert_eq!(counter.0.load(Ordering::Relaxed), 1);
//! # Ok(()) }
//! ```

use serde_json::Value;

use crate::bus::EventBus;
use crate::event::{AnyEvent, EventStatus};
use crate::handler::EventHandler;
use crate::result::EventResult;

mod auto;
mod auto_error;
mod auto_handler_change;
mod auto_return;
mod logger;
mod spans;

#[doc(inline)]
pub use auto_error::AutoErrorEventMiddleware;
#[doc(inline)]
pub use auto_handler_change::{
    AutoHandlerChangeEventMiddleware, BUS_HANDLER_REGISTERED_EVENT, BUS_HANDLER_UNREGISTERED_EVENT,
};
#[doc(inline)]
pub use auto_return::AutoReturnEventMiddleware;
#[doc(inline)]
pub use logger::LoggerMiddleware;
#[doc(inline)]
pub use spans::TracingMiddleware;

/// Hooks into a bus's activity. See the [module docs](self).
pub trait Middleware: Send + Sync + 'static {
    /// `event` was dispatched on `bus` (enqueued, not yet processed). Not a reference-runtime
    /// hook: it is what a write-ahead log needs.
    fn on_event_dispatched(&self, bus: &EventBus, event: &AnyEvent) {
        let _ = (bus, event);
    }

    /// `event` changed status on `bus`: `Pending` when `bus` starts processing it, `Started` when
    /// its first handler starts, `Completed` when it is completed (everywhere, children included).
    fn on_event_change(&self, bus: &EventBus, event: &AnyEvent, status: EventStatus) {
        let _ = (bus, event, status);
    }

    /// A handler result of `event` on `bus` changed status: `Pending` when it is created,
    /// `Started` when the handler starts, `Completed` when it is final (check
    /// `result.status` / `result.error` for failures).
    fn on_event_result_change(
        &self,
        bus: &EventBus,
        event: &AnyEvent,
        result: &EventResult<Value>,
        status: EventStatus,
    ) {
        let _ = (bus, event, result, status);
    }

    /// A handler was registered on (`registered == true`) or removed from `bus`.
    fn on_bus_handlers_change(&self, bus: &EventBus, handler: &EventHandler, registered: bool) {
        let _ = (bus, handler, registered);
    }
}
