//! Two processes over Redis:
//!
//! ```text
//! cargo run -p bubus-redis --example redis_bridge -- listen            # terminal 1
//! cargo run -p bubus-redis --example redis_bridge -- send 5            # terminal 2
//! cargo run -p bubus-redis --example redis_bridge -- listen --durable  # a consumer group
//! cargo run -p bubus-redis --example redis_bridge -- send 5 --durable
//! ```
//!
//! Plain mode is the family's pub/sub (a Python `RedisEventBridge` on the same URL sees the
//! same events); `--durable` is a Redis Stream read by the consumer group `workers`: start two
//! listeners and they share the events; stop them, send, start one and it gets what it missed.
//! `REDIS_URL` overrides `redis://127.0.0.1:6379/0/abxbus_events`.

use std::sync::Arc;

use bubus::EventBus;
use bubus::bridge::Bridge;
use bubus_redis::RedisTransport;
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
    let url = std::env::var("REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0/abxbus_events".to_owned());
    let builder = RedisTransport::builder(&url)?;
    let transport = if durable {
        builder.streams().group("workers").build()?
    } else {
        builder.build()?
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
        _ => eprintln!("usage: redis_bridge listen|send [n] [--durable]"),
    }
    bridge.close().await?;
    Ok(())
}
