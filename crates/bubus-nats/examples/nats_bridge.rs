//! Two processes over NATS:
//!
//! ```text
//! cargo run -p bubus-nats --example nats_bridge -- listen            # terminal 1
//! cargo run -p bubus-nats --example nats_bridge -- send 5            # terminal 2
//! cargo run -p bubus-nats --example nats_bridge -- listen --durable  # a consumer group
//! cargo run -p bubus-nats --example nats_bridge -- send 5 --durable
//! ```
//!
//! Plain mode is the family's core NATS subject (a Python `NATSEventBridge` on the same subject
//! sees the same events); `--durable` is a JetStream stream read by the durable consumer
//! `workers`: start two listeners and they share the events; stop them, send, start one and it
//! gets what it missed. `NATS_URL` overrides `nats://127.0.0.1:4222`, `NATS_SUBJECT`
//! `abxbus_events`.

use std::sync::Arc;

use bubus::EventBus;
use bubus::bridge::Bridge;
use bubus_nats::NatsTransport;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct OrderPlaced {
    order_id: u64,
    customer: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let durable = args.iter().any(|a| a == "--durable");
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let subject = std::env::var("NATS_SUBJECT").unwrap_or_else(|_| "abxbus_events".to_owned());
    let builder = NatsTransport::builder(&url, &subject);
    let transport = if durable {
        builder.jetstream().group("workers").build().await?
    } else {
        builder.build().await?
    };
    let bridge = if durable {
        Bridge::builder(transport.clone())
            .dedup(Arc::new(transport.dedup_store()))
            .build()
    } else {
        Bridge::new(transport)
    };
    match args.first().map(String::as_str) {
        Some("listen") => {
            let bus = EventBus::new("Warehouse");
            bus.on(|order: bubus::EventHandle<OrderPlaced>| {
                println!(
                    "order {} for {} (event {})",
                    order.order_id,
                    order.customer,
                    order.event_id()
                );
                format!("packed {}", order.order_id)
            });
            bridge.attach(&bus);
            bridge.start().await?;
            println!(
                "listening on {url} ({}); Ctrl-C to stop",
                if durable { "durable" } else { "plain" }
            );
            tokio::signal::ctrl_c().await?;
        }
        Some("send") => {
            let n: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(1);
            let bus = EventBus::new("Shop");
            bridge.attach(&bus);
            for order_id in 1..=n {
                bus.dispatch(OrderPlaced {
                    order_id,
                    customer: "ada".into(),
                })?
                .await?;
            }
            println!("sent {n} to {url}");
        }
        _ => eprintln!("usage: nats_bridge listen|send [n] [--durable]"),
    }
    bridge.close().await?;
    Ok(())
}
