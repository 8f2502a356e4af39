//! PostgreSQL bridges for [`bubus`]: [`PgTransport`], a transport of the bridge model
//! ([`bubus::bridge`]) in two modes.
//!
//! * **plain** ([`PgTransport::plain`]): the family's wire (abxbus 2.5 `PostgresEventBridge`): a
//!   flat table (default `abxbus_events`) upserted by `event_id`, one `TEXT` column per `event_*`
//!   key, and a `NOTIFY` (default channel `abxbus_events`) with the JSON-encoded id.
//!   At-most-once, as in the family.
//! * **durable** ([`PgTransport::durable`]): an outbox table the producer can write inside its
//!   own transaction ([`PgTransport::publish_in`]), delivery rows per consumer group claimed with
//!   `FOR UPDATE SKIP LOCKED` under a renewed lease, `LISTEN/NOTIFY` only as a wake-up, acks after
//!   completion, a dedup table ([`PgDedup`]), dead letters ([`DeadLetter`],
//!   [`list_dead_letters`], [`replay_dead_letters`]). At-least-once on the wire, once per group at
//!   the handlers. Events every group acknowledged are pruned with their dedup rows after a
//!   retention ([`DurableOptions::retention`], default 24 h; [`PgTransport::prune`]).
//!
//! Both reconnect with backoff after a server restart or a cut connection.
//!
//! ```no_run
//! use bubus::bridge::Bridge;
//! use bubus::{AnyEvent, DynEvent, EventBus};
//! use bubus_postgres::{DurableOptions, PgTransport};
//! use serde_json::json;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let url = "postgresql://app@db:5432/shop/order_events";
//!
//! // Process 1: the shop writes its order and the event in one transaction (the outbox)…
//! let orders = PgTransport::durable(url, DurableOptions::new("shop")).await?;
//! let (mut db, conn) = tokio_postgres::connect("postgresql://app@db:5432/shop", tokio_postgres::NoTls).await?;
//! tokio::spawn(conn);
//! let tx = db.transaction().await?;
//! tx.execute("INSERT INTO orders (id) VALUES (7)", &[]).await?;
//! let placed: AnyEvent = bubus::EventHandle::new(DynEvent::new("OrderPlaced", json!({"order_id": 7}))?).into();
//! orders.publish_in(&tx, &placed).await?;
//! tx.commit().await?;
//! // …or any bus sends through a bridge: `bus.on_pattern("*", Bridge::new(orders).sender())`.
//!
//! // Process 2 (run it on as many machines as you like, same group = they share the work):
//! let billing = EventBus::new("Billing");
//! billing.on_pattern("OrderPlaced", |e: AnyEvent| println!("bill {}", e.event_id()));
//! let transport = PgTransport::durable(url, DurableOptions::new("billing")).await?;
//! let bridge = transport.bridge().build(); // persisted dedup + the group's max deliveries
//! bridge.attach(&billing);
//! bridge.start().await?;
//! # Ok(()) }
//! ```
//!
//! The client is `tokio-postgres` without TLS (a URL with `sslmode=require` fails to connect);
//! put a TLS-terminating proxy in between if you need it.
#![forbid(unsafe_code)]

mod conn;
mod consumer;
mod dedup;
mod durable;
mod error;
mod plain;
mod publisher;
mod transport;
mod url;

pub use dedup::PgDedup;
pub use durable::{DeadLetter, GroupStart, Pruned};
pub use error::PgError;
pub use transport::{
    DEFAULT_DURABLE_TABLE, DEFAULT_RETENTION, DurableOptions, PgTransport, list_dead_letters,
    replay_dead_letters,
};
pub use url::{DEFAULT_CHANNEL, DEFAULT_TABLE, PgUrl, is_identifier};
