//! A checkout flow on a bus with [`TracingMiddleware`], traced to OpenTelemetry through
//! `tracing-opentelemetry`. `main.rs` prints the spans (with the stdout exporter, then as a tree);
//! `tests/span_tree.rs` checks that their parents follow the event tree.
//!
//! The event tree:
//!
//! ```text
//! checkout.request                  (an ordinary tracing span around the dispatch)
//! └── CheckoutEvent
//!     └── handle_checkout
//!         ├── ReserveStockEvent     (awaited)
//!         │   └── handle_reserve_stock
//!         └── ChargeCardEvent       (awaited)
//!             └── handle_charge_card
//!                 └── ReceiptEmailEvent (dispatched, not awaited)
//!                     └── handle_receipt_email
//! ```

use std::sync::Arc;

use bubus::middleware::TracingMiddleware;
use bubus::{Event, EventBus, EventHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde::{Deserialize, Serialize};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt as _;

/// A customer checks out.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
pub struct CheckoutEvent {
    /// The order.
    pub order_id: u32,
}

/// Reserve the order's items.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = bool)]
pub struct ReserveStockEvent {
    /// The order.
    pub order_id: u32,
}

/// Charge the customer's card.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
pub struct ChargeCardEvent {
    /// The order.
    pub order_id: u32,
    /// How much.
    pub amount_cents: u64,
}

/// Send the receipt (nobody waits for it).
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = ())]
pub struct ReceiptEmailEvent {
    /// The order.
    pub order_id: u32,
}

async fn handle_checkout(event: EventHandle<CheckoutEvent>) -> Result<String, bubus::Error> {
    let bus =
        bubus::bus::current_bus().ok_or_else(|| bubus::HandlerError::new("NoBus", "no bus"))?;
    let order_id = event.order_id;
    let reserved = bus
        .dispatch(ReserveStockEvent { order_id })?
        .event_result()
        .await?;
    if !reserved {
        return Ok(format!("order {order_id}: out of stock"));
    }
    let charge = bus
        .dispatch(ChargeCardEvent {
            order_id,
            amount_cents: 4_200,
        })?
        .event_result()
        .await?;
    Ok(format!("order {order_id}: {charge}"))
}

fn handle_reserve_stock(event: EventHandle<ReserveStockEvent>) -> bool {
    // Spans the handler opens itself nest under the core's handler span (see the README).
    tracing::info!(order_id = event.order_id, "stock reserved");
    true
}

async fn handle_charge_card(event: EventHandle<ChargeCardEvent>) -> Result<String, bubus::Error> {
    let bus =
        bubus::bus::current_bus().ok_or_else(|| bubus::HandlerError::new("NoBus", "no bus"))?;
    // Fire and forget: the receipt's span still hangs under this handler's span.
    bus.dispatch(ReceiptEmailEvent {
        order_id: event.order_id,
    })?;
    Ok(format!("charged {} cents", event.amount_cents))
}

fn handle_receipt_email(_event: EventHandle<ReceiptEmailEvent>) {}

/// The bus of the example: the tracing middleware and the four handlers.
pub fn checkout_bus() -> EventBus {
    let bus = EventBus::builder("Shop")
        .middleware(Arc::new(TracingMiddleware::new()))
        .build();
    bus.on(handle_checkout);
    bus.on(handle_reserve_stock);
    bus.on(handle_charge_card);
    bus.on(handle_receipt_email);
    bus
}

/// Runs one checkout with an OpenTelemetry pipeline installed for the current thread, and
/// returns every span exported. With `stdout`, the spans are also printed by
/// `opentelemetry-stdout` as they end.
///
/// # Errors
///
/// What the checkout or the exporter returned.
pub fn run(stdout: bool) -> Result<(String, Vec<SpanData>), Box<dyn std::error::Error>> {
    let memory = InMemorySpanExporter::default();
    let mut provider = SdkTracerProvider::builder().with_simple_exporter(memory.clone());
    if stdout {
        provider = provider.with_simple_exporter(opentelemetry_stdout::SpanExporter::default());
    }
    let provider = provider.build();
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("bubus-example-otel"))
        // INFO: the middleware's spans, not the core's DEBUG per-handler spans.
        .with_filter(LevelFilter::INFO);
    let subscriber = tracing_subscriber::registry().with(otel);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let answer = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(async {
            let bus = checkout_bus();
            let request = tracing::info_span!("checkout.request", http.route = "/checkout");
            let answer = {
                let _entered = request.enter();
                bus.dispatch(CheckoutEvent { order_id: 7 })
            }?
            .event_result()
            .await?;
            bus.wait_until_idle(None).await;
            drop(request);
            Ok::<_, bubus::Error>(answer)
        })
    })?;
    provider.force_flush()?;
    let spans = memory.get_finished_spans()?;
    provider.shutdown()?;
    Ok((answer, spans))
}

/// The spans as an indented tree (children under their parent, in start order), one line each:
/// the span name and its `bubus.bus_name`.
pub fn render_tree(spans: &[SpanData]) -> String {
    fn attr(span: &SpanData, key: &str) -> Option<String> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    }
    fn walk(spans: &[SpanData], parent: Option<&SpanData>, depth: usize, out: &mut String) {
        let mut children: Vec<&SpanData> = spans
            .iter()
            .filter(|s| match parent {
                Some(p) => s.parent_span_id == p.span_context.span_id(),
                None => !spans
                    .iter()
                    .any(|p| p.span_context.span_id() == s.parent_span_id),
            })
            .collect();
        children.sort_by_key(|s| s.start_time);
        for span in children {
            let bus = attr(span, "bubus.bus_name")
                .map(|b| format!("  [{b}]"))
                .unwrap_or_default();
            out.push_str(&format!("{}{}{bus}\n", "    ".repeat(depth), span.name));
            walk(spans, Some(span), depth + 1, out);
        }
    }
    let mut out = String::new();
    walk(spans, None, 0, &mut out);
    out
}
