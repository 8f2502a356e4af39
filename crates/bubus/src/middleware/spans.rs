//! [`TracingMiddleware`]: a `tracing` span per event per bus and per handler run, nested the way
//! the events are.

use std::collections::HashMap;
use std::fmt;

use parking_lot::Mutex;
use serde_json::Value;
use smallvec::SmallVec;
use tracing::Span;
use tracing::field::Empty;
use uuid::Uuid;

use super::Middleware;
use crate::bus::EventBus;
use crate::event::{AnyEvent, EventStatus};
use crate::handler::HandlerId;
use crate::result::{EventResult, ResultStatus};

/// The `tracing` target of every span and event this middleware emits.
const TARGET: &str = "bubus::middleware::tracing";

/// A [`Middleware`] that opens `tracing` spans for what the bus does — the Rust counterpart of the
/// Python runtime's `OtelTracingMiddleware`. Export them to OpenTelemetry with
/// `tracing-opentelemetry` (the `examples/otel` crate of the repository shows it with the stdout
/// exporter).
///
/// * An **event span** `bubus.event` per (bus, event), opened when the event starts on that bus
///   (its `started` hook, or its first handler starting there) and closed when the event
///   completes. An event that completes without running a handler on a bus gets a span that
///   opens and closes at completion.
/// * A **handler span** `bubus.handler` per handler run, a child of its event span, from the
///   result's `started` hook to its `completed` hook. A failed handler gets
///   `otel.status_code = "ERROR"`, `otel.status_message`, and an `exception` event (level
///   `ERROR`) with `exception.type` and `exception.message`.
/// * **Parents follow the events**: the span of an event dispatched by a handler is a child of
///   that handler's span (whether or not the handler awaits it); an event forwarded to another
///   bus gets its span there under the forwarding handler's span; a top-level event's span is a
///   child of the span that was current where it was dispatched (a request span, say), or a
///   root.
///
/// Span fields, as the reference's OpenTelemetry attributes: `bubus.kind` (`"event"` or
/// `"handler"`), `bubus.event_id`, `bubus.event_type`, `bubus.bus_id`, `bubus.bus_name` (the
/// bus label, `Name#ab12`), `bubus.event_parent_id` (when there is one), `bubus.handler_id`,
/// `bubus.handler_name`; `bubus.result_status` is recorded when a handler finishes. `otel.name`
/// carries the reference's span names (`bubus.event.{event_type}`,
/// `bubus.handler.{handler_name}`), which `tracing-opentelemetry` uses as the exported span name.
/// Spans are at `INFO` level with the target `bubus::middleware::tracing`.
///
/// Open spans are kept in a map keyed by event id and then bus (and handler) id; an event's
/// entry is removed when it completes, so nothing is kept for finished events
/// ([`open_events`](Self::open_events) says how many are tracked).
///
/// Two things to know when reading the traces:
///
/// * The core also runs each handler inside its own `bubus.handler` span at `DEBUG` level
///   (target `bubus::bus::handler_run`); the spans your handler code opens nest under that one,
///   which follows where the event was dispatched rather than this middleware's event spans.
///   Filter at `INFO` to see only this middleware's tree.
/// * In `tracing`, a span closes only when its children have: a handler span whose handler
///   dispatched an event it did not await ends, in the trace, when that event's span ends.
///
/// ```
/// use std::sync::Arc;
/// use bubus::middleware::TracingMiddleware;
/// use bubus::{AnyEvent, DynEvent, EventBus};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// // With a subscriber installed (tracing-subscriber, tracing-opentelemetry, ...), every event
/// // and handler run below becomes a span.
/// let tracing_mw = Arc::new(TracingMiddleware::new());
/// let bus = EventBus::builder("Traced").middleware(tracing_mw.clone()).build();
/// bus.on_pattern("Ping", |_event: AnyEvent| json!("pong"));
/// bus.dispatch(DynEvent::new("Ping", json!({}))?)?.await?;
/// assert_eq!(tracing_mw.open_events(), 0);
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct TracingMiddleware {
    events: Mutex<HashMap<Uuid, EventSpans>>,
}

/// Everything open for one event.
#[derive(Default)]
struct EventSpans {
    /// The parent chosen for the event's span on a bus when it was dispatched there.
    parents: SmallVec<[(Uuid, Span); 1]>,
    /// Buses that started processing the event: (bus id, bus label).
    buses: SmallVec<[(Uuid, String); 1]>,
    /// The event span on each bus.
    spans: SmallVec<[(Uuid, Span); 1]>,
    /// Running handlers' spans: (bus id, handler id, span).
    handlers: SmallVec<[(Uuid, HandlerId, Span); 2]>,
}

impl TracingMiddleware {
    /// A middleware with nothing open yet.
    pub fn new() -> Self {
        TracingMiddleware::default()
    }

    /// How many events have spans (or a chosen parent span) open right now.
    pub fn open_events(&self) -> usize {
        self.events.lock().len()
    }

    /// The span of the handler running in this task (the one dispatching), else its event's
    /// span, else whatever span is current.
    fn dispatch_parent(events: &HashMap<Uuid, EventSpans>) -> Option<Span> {
        let current = crate::bus::current_event().and_then(|event| {
            let spans = events.get(&event.event_id())?;
            let bus = crate::bus::current_bus().map(|bus| bus.id());
            let handler = crate::bus::current_handler_id();
            spans
                .handlers
                .iter()
                .find(|(b, h, _)| Some(*b) == bus && Some(h) == handler.as_ref())
                .map(|(_, _, span)| span.clone())
                .or_else(|| spans.event_span(bus))
        });
        current.or_else(|| {
            let span = Span::current();
            (!span.is_none()).then_some(span)
        })
    }

    /// The event's span on `bus`, opened if needed. `None` when the subscriber does not want it.
    fn ensure_event_span(
        events: &mut HashMap<Uuid, EventSpans>,
        bus_id: Uuid,
        bus_label: &str,
        event: &AnyEvent,
    ) -> Option<Span> {
        let event_id = event.event_id();
        if let Some((_, span)) = events
            .get(&event_id)
            .and_then(|e| e.spans.iter().find(|(b, _)| *b == bus_id))
        {
            return Some(span.clone());
        }
        let parent = Self::parent_for(events, bus_id, event);
        let span = tracing::info_span!(
            target: TARGET,
            parent: parent.as_ref().and_then(Span::id),
            "bubus.event",
            otel.name = %format_args!("bubus.event.{}", event.event_type()),
            bubus.kind = "event",
            bubus.event_id = %event_id,
            bubus.event_type = %event.event_type(),
            bubus.bus_id = %bus_id,
            bubus.bus_name = %bus_label,
            bubus.event_parent_id = event.event_parent_id().map(tracing::field::display),
        );
        if span.is_disabled() {
            return None;
        }
        events
            .entry(event_id)
            .or_default()
            .spans
            .push((bus_id, span.clone()));
        Some(span)
    }

    /// The parent for the event's span on `bus`: the one chosen at dispatch there, else its span
    /// on another bus (forwarding), else its parent event's handler or event span.
    fn parent_for(
        events: &HashMap<Uuid, EventSpans>,
        bus_id: Uuid,
        event: &AnyEvent,
    ) -> Option<Span> {
        let own = events.get(&event.event_id()).and_then(|spans| {
            spans
                .parents
                .iter()
                .find(|(b, _)| *b == bus_id)
                .map(|(_, span)| span.clone())
                .or_else(|| spans.spans.first().map(|(_, span)| span.clone()))
        });
        own.or_else(|| {
            let parent = events.get(&event.event_parent_id()?)?;
            let handler = event.event_emitted_by_handler_id();
            parent
                .handlers
                .iter()
                .find(|(_, h, _)| Some(h) == handler.as_ref())
                .map(|(_, _, span)| span.clone())
                .or_else(|| parent.event_span(None))
        })
    }

    fn handler_started(&self, bus: &EventBus, event: &AnyEvent, result: &EventResult<Value>) {
        let mut events = self.events.lock();
        let key = (bus.id(), &result.handler_id);
        if events
            .get(&event.event_id())
            .is_some_and(|e| e.handlers.iter().any(|(b, h, _)| (*b, h) == key))
        {
            return;
        }
        let Some(parent) = Self::ensure_event_span(&mut events, bus.id(), bus.label(), event)
        else {
            return;
        };
        let span = tracing::info_span!(
            target: TARGET,
            parent: &parent,
            "bubus.handler",
            otel.name = %format_args!("bubus.handler.{}", result.handler_name),
            bubus.kind = "handler",
            bubus.event_id = %event.event_id(),
            bubus.event_type = %event.event_type(),
            bubus.handler_id = %result.handler_id,
            bubus.handler_name = %result.handler_name,
            bubus.bus_id = %bus.id(),
            bubus.bus_name = %bus.label(),
            bubus.result_status = Empty,
            otel.status_code = Empty,
            otel.status_message = Empty,
        );
        if span.is_disabled() {
            return;
        }
        events.entry(event.event_id()).or_default().handlers.push((
            bus.id(),
            result.handler_id.clone(),
            span,
        ));
    }

    fn handler_completed(&self, bus: &EventBus, event: &AnyEvent, result: &EventResult<Value>) {
        let span = {
            let mut events = self.events.lock();
            let Some(spans) = events.get_mut(&event.event_id()) else {
                return;
            };
            let Some(pos) = spans
                .handlers
                .iter()
                .position(|(b, h, _)| *b == bus.id() && *h == result.handler_id)
            else {
                return;
            };
            spans.handlers.swap_remove(pos).2
        };
        span.record("bubus.result_status", result.status.as_str());
        if let (ResultStatus::Error, Some(error)) = (result.status, &result.error) {
            span.record("otel.status_code", "ERROR");
            span.record("otel.status_message", error.to_string());
            tracing::event!(
                target: TARGET,
                parent: &span,
                tracing::Level::ERROR,
                exception.r#type = %error.error_type(),
                exception.message = %error.message(),
                "exception"
            );
        }
        // Dropped here, outside the lock: closing a span may export it.
        drop(span);
    }

    fn event_completed(&self, bus: &EventBus, event: &AnyEvent) {
        let spans = {
            let mut events = self.events.lock();
            // Buses that processed the event without a span there (no handler ran) get one now,
            // as does the completing bus if nothing else did.
            let mut missing: SmallVec<[(Uuid, String); 2]> = events
                .get(&event.event_id())
                .map(|e| {
                    e.buses
                        .iter()
                        .filter(|(b, _)| !e.spans.iter().any(|(s, _)| s == b))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let has_any = events
                .get(&event.event_id())
                .is_some_and(|e| !e.spans.is_empty());
            if missing.is_empty() && !has_any {
                missing.push((bus.id(), bus.label().to_owned()));
            }
            for (bus_id, label) in &missing {
                Self::ensure_event_span(&mut events, *bus_id, label, event);
            }
            events.remove(&event.event_id())
        };
        // Dropped outside the lock: handler spans first, then the event spans they belong to.
        if let Some(mut spans) = spans {
            spans.handlers.clear();
            spans.spans.clear();
        }
    }
}

impl EventSpans {
    /// The event span on `bus` (any bus if `None`, or if there is none on `bus`).
    fn event_span(&self, bus: Option<Uuid>) -> Option<Span> {
        bus.and_then(|bus| self.spans.iter().find(|(b, _)| *b == bus))
            .or_else(|| self.spans.first())
            .map(|(_, span)| span.clone())
    }
}

impl Middleware for TracingMiddleware {
    fn on_event_dispatched(&self, bus: &EventBus, event: &AnyEvent) {
        let mut events = self.events.lock();
        let Some(parent) = Self::dispatch_parent(&events) else {
            return;
        };
        let entry = events.entry(event.event_id()).or_default();
        if !entry.parents.iter().any(|(b, _)| *b == bus.id()) {
            entry.parents.push((bus.id(), parent));
        }
    }

    fn on_event_change(&self, bus: &EventBus, event: &AnyEvent, status: EventStatus) {
        match status {
            EventStatus::Pending => {
                let mut events = self.events.lock();
                let entry = events.entry(event.event_id()).or_default();
                if !entry.buses.iter().any(|(b, _)| *b == bus.id()) {
                    entry.buses.push((bus.id(), bus.label().to_owned()));
                }
            }
            EventStatus::Started => {
                let mut events = self.events.lock();
                Self::ensure_event_span(&mut events, bus.id(), bus.label(), event);
            }
            EventStatus::Completed => self.event_completed(bus, event),
        }
    }

    fn on_event_result_change(
        &self,
        bus: &EventBus,
        event: &AnyEvent,
        result: &EventResult<Value>,
        status: EventStatus,
    ) {
        match status {
            EventStatus::Pending => {}
            EventStatus::Started => self.handler_started(bus, event, result),
            EventStatus::Completed => self.handler_completed(bus, event, result),
        }
    }
}

impl fmt::Debug for TracingMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingMiddleware")
            .field("open_events", &self.open_events())
            .finish()
    }
}
