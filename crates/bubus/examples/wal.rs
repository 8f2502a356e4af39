//! The write-ahead log: a shop bus logs every order (dispatch and completion, with results) to a
//! JSONL file; the log is read back, and replayed into a fresh bus — as after a restart — whose
//! handlers run again.
//!
//! Run it with `cargo run --example wal` (the log goes to the system temp directory, or to the
//! path given as the first argument).

use std::sync::Arc;

use bubus::wal::{self, FsyncPolicy, RecordKind, WalMiddleware, WalReader, WalWriter};
use bubus::{Event, EventBus, EventHandle};
use serde::{Deserialize, Serialize};

/// An order was placed. Its handler returns the amount charged, in cents.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
struct OrderPlaced {
    order_id: u64,
    cents: u64,
}

/// Charge a card. Dispatched (as a child) by the order handler.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct ChargeCard {
    order_id: u64,
    cents: u64,
}

/// The shop's handlers, on any bus.
fn register_shop(bus: &EventBus) {
    let inner = bus.clone();
    bus.on(move |order: EventHandle<OrderPlaced>| {
        let bus = inner.clone();
        async move {
            let charge = bus.dispatch(ChargeCard {
                order_id: order.order_id,
                cents: order.cents,
            })?;
            let receipt = charge.event_result().await?;
            println!("  order {} -> {receipt}", order.order_id);
            Ok::<_, bubus::Error>(order.cents)
        }
    });
    bus.on(|charge: EventHandle<ChargeCard>| format!("charged {} cents", charge.cents));
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), bubus::Error> {
    let path = std::env::args_os()
        .nth(1)
        .map(Into::into)
        .unwrap_or_else(|| std::env::temp_dir().join("bubus-example-wal.jsonl"));
    let _ = std::fs::remove_file(&path);

    // 1. Log everything a bus does, each record synced to disk before the hook returns.
    println!("writing {}", path.display());
    let writer = Arc::new(WalWriter::open(&path)?.fsync(FsyncPolicy::EveryRecord));
    let log = Arc::new(WalMiddleware::new(writer));
    let shop = EventBus::builder("Shop").middleware(log.clone()).build();
    register_shop(&shop);
    for (order_id, cents) in [(1, 1_999), (2, 4_500)] {
        shop.dispatch(OrderPlaced { order_id, cents })?.await?;
    }
    assert_eq!(log.error_count(), 0);

    // 2. Read it back: a dispatch and a completion record (with results) per event.
    println!("reading it back");
    for record in WalReader::open(&path)? {
        let record = record?;
        let event = &record.event;
        match record.kind {
            RecordKind::Dispatched => {
                println!("  line {}: dispatched {}", record.line, event.label())
            }
            RecordKind::Completed => {
                let results: Vec<_> = event
                    .event_results()
                    .into_iter()
                    .filter_map(|r| r.result.map(|value| value.to_string()))
                    .collect();
                println!(
                    "  line {}: completed {} [{}]",
                    record.line,
                    event.label(),
                    results.join(", ")
                );
            }
            _ => {}
        }
    }

    // 3. Replay it into a fresh bus: each order once, in order; the charges are recreated by the
    //    order handler rather than replayed.
    println!("replaying");
    let restarted = EventBus::new("Shop");
    register_shop(&restarted);
    let summary = wal::replay(WalReader::open(&path)?, &restarted).await?;
    println!(
        "replayed {} events ({} duplicate records, {} children recreated, {} bad lines)",
        summary.replayed, summary.duplicates, summary.skipped_children, summary.bad_lines
    );
    assert_eq!(summary.replayed, 2);
    Ok(())
}
