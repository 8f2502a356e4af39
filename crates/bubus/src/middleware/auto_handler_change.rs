//! [`AutoHandlerChangeEventMiddleware`]: an event for every handler registered or removed.

use serde_json::{Value, json};

use super::Middleware;
use super::auto::dispatch_auto_event;
use crate::bus::EventBus;
use crate::handler::EventHandler;

/// The event type [`AutoHandlerChangeEventMiddleware`] dispatches when a handler is registered.
pub const BUS_HANDLER_REGISTERED_EVENT: &str = "BusHandlerRegisteredEvent";

/// The event type [`AutoHandlerChangeEventMiddleware`] dispatches when a handler is removed.
pub const BUS_HANDLER_UNREGISTERED_EVENT: &str = "BusHandlerUnregisteredEvent";

/// A [`Middleware`] that announces handler changes on the bus itself: [`EventBus::on`] (and its
/// variants) dispatches a `BusHandlerRegisteredEvent`, [`EventBus::off`] (and its variants) a
/// `BusHandlerUnregisteredEvent`, as the Python runtime's `AutoHandlerChangeEventMiddleware`
/// does.
///
/// Both are [`DynEvent`](crate::DynEvent)s with one field, `handler`: the handler's metadata as
/// the reference runtimes serialize it — `id`, `handler_name`, `handler_file_path`,
/// `handler_timeout`, `handler_slow_timeout`, `handler_registered_at`, `event_pattern`,
/// `eventbus_name` (the bus name) and `eventbus_id`.
///
/// A registration made inside a handler makes the event a child of the event being handled. A
/// registration made outside a tokio runtime cannot dispatch; that, and any other dispatch
/// failure, is logged at `WARN`.
///
/// ```
/// use std::sync::Arc;
/// use bubus::middleware::AutoHandlerChangeEventMiddleware;
/// use bubus::{AnyEvent, EventBus};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let bus = EventBus::builder("Plugins")
///     .middleware(Arc::new(AutoHandlerChangeEventMiddleware::new()))
///     .build();
///
/// let handler = bus.on_pattern("Render", |_event: AnyEvent| json!("done"));
/// bus.wait_until_idle(None).await;
///
/// let registered = bus.find_pattern("BusHandlerRegisteredEvent").past().await.unwrap();
/// let json = registered.to_json();
/// assert_eq!(json["handler"]["id"], handler.id().as_str());
/// assert_eq!(json["handler"]["event_pattern"], "Render");
/// assert_eq!(json["handler"]["eventbus_name"], "Plugins");
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AutoHandlerChangeEventMiddleware;

impl AutoHandlerChangeEventMiddleware {
    /// The middleware (it has no state).
    pub fn new() -> Self {
        AutoHandlerChangeEventMiddleware
    }

    /// The handler's metadata as the `handler` field of the events carries it.
    ///
    /// ```
    /// use bubus::middleware::AutoHandlerChangeEventMiddleware;
    /// use bubus::{AnyEvent, EventBus};
    /// use serde_json::json;
    ///
    /// let bus = EventBus::new("Plugins");
    /// let handler = bus.on_pattern("Render", |_event: AnyEvent| json!("done"));
    /// let json = AutoHandlerChangeEventMiddleware::handler_json(&handler);
    /// assert_eq!(json["eventbus_id"], bus.id().to_string());
    /// ```
    pub fn handler_json(handler: &EventHandler) -> Value {
        json!({
            "id": handler.id().as_str(),
            "handler_name": handler.handler_name(),
            "handler_file_path": handler.handler_file_path(),
            "handler_timeout": handler.handler_timeout().flatten().map(|d| d.as_secs_f64()),
            "handler_slow_timeout": handler.handler_slow_timeout().flatten().map(|d| d.as_secs_f64()),
            "handler_registered_at": handler.handler_registered_at().to_string(),
            "event_pattern": handler.event_pattern(),
            "eventbus_name": handler.eventbus_name(),
            "eventbus_id": handler.eventbus_id().to_string(),
        })
    }
}

impl Middleware for AutoHandlerChangeEventMiddleware {
    fn on_bus_handlers_change(&self, bus: &EventBus, handler: &EventHandler, registered: bool) {
        let event_type = if registered {
            BUS_HANDLER_REGISTERED_EVENT
        } else {
            BUS_HANDLER_UNREGISTERED_EVENT
        };
        dispatch_auto_event(
            bus,
            event_type.to_owned(),
            json!({ "handler": Self::handler_json(handler) }),
            "handler change",
            &handler.label(),
        );
    }
}
