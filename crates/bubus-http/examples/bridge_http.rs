//! Two processes over HTTP: run the listener in one terminal and the sender in another.
//!
//! ```text
//! cargo run -p bubus-http --example bridge_http -- listen [PORT]        # Ctrl-C to stop
//! cargo run -p bubus-http --example bridge_http -- send [PORT] [N]
//! ```
//!
//! Both sides use the bearer token in `BUBUS_TOKEN` if it is set. A Python process with
//! abxbus's `HTTPEventBridge(listen_on='http://127.0.0.1:PORT/events')` (or `send_to=`) can take
//! either side (without a token: the family has none).

use bubus::bridge::Bridge;
use bubus::{Event, EventBus, EventHandle};
use bubus_http::{HttpTransport, ListenerOptions};
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
    let port: u16 = args.next().map_or(Ok(8787), |p| p.parse())?;
    let token = std::env::var("BUBUS_TOKEN").ok();
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
            let mut transport =
                HttpTransport::new().listen_on(ListenerOptions::new().port(port).path("/events"));
            if let Some(token) = &token {
                transport = transport.bearer_token(token)?;
            }
            let bridge = Bridge::new(transport);
            bridge.attach(&billing);
            bridge.start().await?;
            println!("listening on http://127.0.0.1:{port}/events (Ctrl-C to stop)");
            tokio::signal::ctrl_c().await?;
            bridge.close().await?;
        }
        "send" => {
            let n: u64 = args.next().map_or(Ok(3), |n| n.parse())?;
            let orders = EventBus::new("Orders");
            let mut transport =
                HttpTransport::new().send_to(&format!("http://127.0.0.1:{port}/events"))?;
            if let Some(token) = &token {
                transport = transport.bearer_token(token)?;
            }
            let bridge = Bridge::new(transport);
            bridge.attach(&orders);
            for order_id in 1..=n {
                let order = orders.dispatch(OrderPlaced {
                    order_id,
                    cents: 1999,
                })?;
                order.clone().await?;
                // The sending handler's outcome: an error if the listener never took it.
                if let Some(error) = order.event_errors().first() {
                    eprintln!("order {order_id} not delivered: {error}");
                }
            }
            bridge.close().await?;
            println!("sent {n} orders");
        }
        _ => eprintln!("usage: bridge_http listen|send [PORT] [N]"),
    }
    Ok(())
}
