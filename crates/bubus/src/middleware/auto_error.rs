//! [`AutoErrorEventMiddleware`]: a `{Type}ErrorEvent` for every handler failure.

use serde_json::{Value, json};

use super::Middleware;
use super::auto::{dispatch_auto_event, is_auto_event_type};
use crate::bus::EventBus;
use crate::event::{AnyEvent, EventStatus};
use crate::result::EventResult;

/// A [`Middleware`] that turns handler failures into events: when a handler of a `{Type}` event
/// fails, it dispatches a `{Type}ErrorEvent` on the same bus, as the Python runtime's
/// `AutoErrorEventMiddleware` does.
///
/// The error event is a [`DynEvent`](crate::DynEvent) with two fields:
///
/// * `error`: the error as it travels between runtimes, `{"type": ..., "message": ...}`;
/// * `error_type`: the error's type name (`"ValueError"`, `"EventHandlerTimeoutError"`, ...).
///
/// Every failed result counts: errors returned, panics, timeouts, cancellations. Events whose
/// type already ends in `ErrorEvent` or `ResultEvent` are skipped, so a failing handler of an
/// error event does not start a chain. The event is dispatched from the result's `completed`
/// hook (fire-and-forget); if dispatching fails, the failure is logged at `WARN`.
///
/// ```
/// use std::sync::Arc;
/// use bubus::middleware::AutoErrorEventMiddleware;
/// use bubus::{AnyEvent, DynEvent, EventBus, HandlerError};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let bus = EventBus::builder("Payments")
///     .middleware(Arc::new(AutoErrorEventMiddleware::new()))
///     .build();
/// bus.on_pattern("Charge", |_event: AnyEvent| {
///     Err::<(), _>(HandlerError::new("CardDeclined", "insufficient funds"))
/// });
///
/// // The error event is dispatched before the failed event completes.
/// bus.dispatch(DynEvent::new("Charge", json!({}))?)?.await?;
///
/// let error_event = bus.expect_pattern("ChargeErrorEvent").past().await?.to_json();
/// assert_eq!(error_event["error_type"], "CardDeclined");
/// assert_eq!(error_event["error"], json!({"type": "CardDeclined", "message": "insufficient funds"}));
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct AutoErrorEventMiddleware;

impl AutoErrorEventMiddleware {
    /// The middleware (it has no state).
    pub fn new() -> Self {
        AutoErrorEventMiddleware
    }
}

impl Middleware for AutoErrorEventMiddleware {
    fn on_event_result_change(
        &self,
        bus: &EventBus,
        event: &AnyEvent,
        result: &EventResult<Value>,
        status: EventStatus,
    ) {
        if status != EventStatus::Completed || is_auto_event_type(event.event_type()) {
            return;
        }
        let Some(error) = &result.error else {
            return;
        };
        dispatch_auto_event(
            bus,
            format!("{}ErrorEvent", event.event_type()),
            json!({
                "error": {"type": error.error_type(), "message": error.message()},
                "error_type": error.error_type(),
            }),
            "error",
            &event.label(),
        );
    }
}
