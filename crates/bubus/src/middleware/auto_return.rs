//! [`AutoReturnEventMiddleware`]: a `{Type}ResultEvent` for every value a handler returns.

use serde_json::{Value, json};

use super::Middleware;
use super::auto::{dispatch_auto_event, is_auto_event_type};
use crate::bus::EventBus;
use crate::event::{AnyEvent, EventStatus};
use crate::result::{EventResult, ResultStatus};

/// A [`Middleware`] that publishes handlers' return values as events: when a handler of a
/// `{Type}` event returns a value, it dispatches a `{Type}ResultEvent` on the same bus with the
/// value, as JSON, in its `data` field — as the Python runtime's `AutoReturnEventMiddleware`
/// does.
///
/// Null-like values (`()`, `None`, JSON `null`), failures and forwarded events (a forwarding
/// handler's result is the event itself) produce nothing. Events whose type already ends in
/// `ErrorEvent` or `ResultEvent` are skipped, so handlers of result events do not start a
/// chain. The event is dispatched from the result's `completed` hook (fire-and-forget); if
/// dispatching fails, the failure is logged at `WARN`.
///
/// ```
/// use std::sync::Arc;
/// use bubus::middleware::AutoReturnEventMiddleware;
/// use bubus::{AnyEvent, DynEvent, EventBus};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let bus = EventBus::builder("Pricing")
///     .middleware(Arc::new(AutoReturnEventMiddleware::new()))
///     .build();
/// bus.on_pattern("Quote", |_event: AnyEvent| json!({"price": 42}));
///
/// bus.dispatch(DynEvent::new("Quote", json!({}))?)?.await?;
/// let result_event = bus.expect_pattern("QuoteResultEvent").past().await?;
/// assert_eq!(result_event.to_json()["data"], json!({"price": 42}));
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AutoReturnEventMiddleware;

impl AutoReturnEventMiddleware {
    /// The middleware (it has no state).
    pub fn new() -> Self {
        AutoReturnEventMiddleware
    }
}

impl Middleware for AutoReturnEventMiddleware {
    fn on_event_result_change(
        &self,
        bus: &EventBus,
        event: &AnyEvent,
        result: &EventResult<Value>,
        status: EventStatus,
    ) {
        if status != EventStatus::Completed
            || result.status != ResultStatus::Completed
            || result.error.is_some()
            || result.forwarded_event_id.is_some()
            || result.result_json.is_null()
            || is_auto_event_type(event.event_type())
        {
            return;
        }
        dispatch_auto_event(
            bus,
            format!("{}ResultEvent", event.event_type()),
            json!({ "data": result.result_json }),
            "result",
            &event.label(),
        );
    }
}
