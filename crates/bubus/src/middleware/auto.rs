//! What the auto-event middlewares share: the recursion guard and a dispatch that never fails
//! the hook.

use serde_json::Value;

use crate::bus::EventBus;
use crate::event::DynEvent;

/// Events the auto middlewares dispatch themselves never trigger more of them.
pub(super) fn is_auto_event_type(event_type: &str) -> bool {
    event_type.ends_with("ErrorEvent") || event_type.ends_with("ResultEvent")
}

/// Dispatches a dynamic event on `bus`; a failure (the bus is stopped, its history is full, no
/// runtime) is logged at `WARN` with `what` and `source`, never raised.
pub(super) fn dispatch_auto_event(
    bus: &EventBus,
    event_type: String,
    payload: Value,
    what: &str,
    source: &str,
) {
    let dispatched = match DynEvent::new(event_type, payload) {
        Ok(event) => bus.dispatch(event).map(drop).map_err(|e| e.to_string()),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = dispatched {
        tracing::warn!(
            target: "bubus::middleware",
            bus = %bus.label(),
            %source,
            %error,
            "❌ {} failed to dispatch the {what} event for {source}: {error}",
            bus.label()
        );
    }
}
