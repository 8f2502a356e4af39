//! The exported spans' parents follow the event tree, all in the request's trace.

use opentelemetry_sdk::trace::SpanData;

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name}; spans: {:?}", names(spans)))
}

fn names(spans: &[SpanData]) -> Vec<String> {
    spans.iter().map(|s| s.name.to_string()).collect()
}

#[test]
fn span_parents_follow_the_event_tree() {
    let (answer, spans) = bubus_example_otel::run(false).unwrap();
    assert_eq!(answer, "order 7: charged 4200 cents");

    let request = named(&spans, "checkout.request");
    let parent_of = |child: &str, parent: &SpanData| {
        let span = named(&spans, child);
        assert_eq!(
            span.parent_span_id,
            parent.span_context.span_id(),
            "{child} should be a child of {}\n{}",
            parent.name,
            bubus_example_otel::render_tree(&spans)
        );
        assert_eq!(
            span.span_context.trace_id(),
            request.span_context.trace_id()
        );
    };
    let handler = |name: &str| format!("bubus.handler.bubus_example_otel::{name}");

    parent_of("bubus.event.CheckoutEvent", request);
    parent_of(
        &handler("handle_checkout"),
        named(&spans, "bubus.event.CheckoutEvent"),
    );
    parent_of(
        "bubus.event.ReserveStockEvent",
        named(&spans, &handler("handle_checkout")),
    );
    parent_of(
        "bubus.event.ChargeCardEvent",
        named(&spans, &handler("handle_checkout")),
    );
    parent_of(
        &handler("handle_reserve_stock"),
        named(&spans, "bubus.event.ReserveStockEvent"),
    );
    parent_of(
        &handler("handle_charge_card"),
        named(&spans, "bubus.event.ChargeCardEvent"),
    );
    parent_of(
        "bubus.event.ReceiptEmailEvent",
        named(&spans, &handler("handle_charge_card")),
    );
    parent_of(
        &handler("handle_receipt_email"),
        named(&spans, "bubus.event.ReceiptEmailEvent"),
    );
    // 1 request + 4 events + 4 handler runs; the core's DEBUG handler spans are filtered out.
    assert_eq!(spans.len(), 9, "{:?}", names(&spans));
}
