//! Two processes, one SQLite file: run the listener in one terminal and the sender in another.
//!
//! ```text
//! cargo run -p bubus-sqlite --example bridge_sqlite -- listen [FILE]   # Ctrl-C to stop
//! cargo run -p bubus-sqlite --example bridge_sqlite -- send [FILE] [N]
//! ```
//!
//! The listener saves its position (consumer `billing`): stop it, send, start it again, and it
//! handles what was sent meanwhile. A Python process with abxbus's
//! `SQLiteEventBridge(FILE, 'abxbus_events')` can take either side.

use std::time::Duration;

use bubus::bridge::Bridge;
use bubus::{Event, EventBus, EventHandle};
use bubus_sqlite::SqliteTransport;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct OrderPlaced {
    order_id: u64,
    cents: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_default();
    let default = std::env::temp_dir().join("bubus-bridge.sqlite3");
    let file = args.next().map_or(default, Into::into);
    match mode.as_str() {
        "listen" => {
            let billing = EventBus::new("Billing");
            billing.on(|order: EventHandle<OrderPlaced>| {
                println!(
                    "billing order {} ({} cents), event {} via {:?}",
                    order.order_id,
                    order.cents,
                    order.event_id(),
                    order.event_path()
                );
                format!("billed {}", order.order_id)
            });
            let bridge = Bridge::new(
                SqliteTransport::new(&file)
                    .consumer("billing")
                    .poll_interval(Duration::from_millis(20)),
            );
            bridge.attach(&billing);
            bridge.start().await?;
            println!("listening on {} (Ctrl-C to stop)", file.display());
            tokio::signal::ctrl_c().await?;
            bridge.close().await?;
        }
        "send" => {
            let n: u64 = args.next().map_or(Ok(3), |n| n.parse())?;
            let orders = EventBus::new("Orders");
            let bridge = Bridge::new(SqliteTransport::new(&file));
            bridge.attach(&orders);
            for order_id in 1..=n {
                orders
                    .dispatch(OrderPlaced {
                        order_id,
                        cents: 1999,
                    })?
                    .await?;
            }
            bridge.close().await?; // flushes what was sent
            println!("sent {n} orders to {}", file.display());
        }
        _ => eprintln!("usage: bridge_sqlite listen|send [FILE] [N]"),
    }
    Ok(())
}
