//! Bridges: one event stream across processes and runtimes.
//!
//! Two layers, as in the rest of the family but with the policy written once:
//!
//! * a [`Transport`] moves JSON events between processes — [`send`](Transport::send) one, a
//!   stream of incoming [`Delivery`]s (each with an [`Acker`] where the engine has acks),
//!   [`close`](Transport::close). A backend is one file: [`MemoryTransport`] here, JSONL files
//!   and Unix sockets behind the `bridge-jsonl` and `bridge-socket` features, SQLite, HTTP,
//!   Redis, NATS and PostgreSQL in their own crates;
//! * a [`Bridge`] attaches a transport to buses both ways and owns the policy: lineage (the
//!   receiver keeps `event_id`, parent and path), loop prevention, de-duplication by
//!   `event_id` ([`DedupStore`]), acks after the event completed on the receiving bus,
//!   redelivery and dead letters, results back, and bad input that never stops a listener.
//!
//! ```
//! use bubus::bridge::{Bridge, MemoryMedium};
//! use bubus::{AnyEvent, DynEvent, EventBus};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let medium = MemoryMedium::new(); // stands in for a file, a socket, a broker
//! let orders = EventBus::new("Orders");
//! let billing = EventBus::new("Billing");
//!
//! // The family's wiring, both ways…
//! let out = Bridge::builder(medium.transport()).results_back().build();
//! orders.on_pattern("*", out.sender());
//! out.on("*", orders.forwarder());
//! // …or the one-call form.
//! let inn = Bridge::builder(medium.transport()).results_back().build();
//! inn.attach(&billing);
//! billing.on_pattern("Charge", |e: AnyEvent| json!({"charged": e.event_path().len()}));
//! out.start().await?;
//! inn.start().await?;
//!
//! let charge = orders.dispatch(DynEvent::new("Charge", json!({"cents": 250}))?)?;
//! // Billing's handler ran on the far side (the path was Orders, the inbound bus, Billing);
//! // with results back its result is merged into the sender's event.
//! assert_eq!(charge.event_results_list().await?, [json!({"charged": 3})]);
//! out.close().await?;
//! inn.close().await?;
//! # Ok(()) }
//! ```
//!
//! The conformance suite every transport runs lives in `bubus_test_support::conformance`.

mod backoff;
#[allow(clippy::module_inception)]
mod bridge;
mod builder;
mod dedup;
#[cfg(feature = "bridge-jsonl")]
mod jsonl;
mod memory;
mod message;
mod receive;
mod send;
#[cfg(all(unix, feature = "bridge-socket"))]
mod socket;
mod transport;

#[doc(inline)]
pub use backoff::Backoff;
#[doc(inline)]
pub use bridge::{Attachment, Bridge, BridgeError, BridgeMetrics};
#[doc(inline)]
pub use builder::BridgeBuilder;
#[doc(inline)]
pub use dedup::{Claim, DedupStore, MemoryDedup};
#[cfg(feature = "bridge-jsonl")]
#[doc(inline)]
pub use jsonl::JsonlTransport;
#[doc(inline)]
pub use memory::{DeadLetter, MemoryMedium, MemoryTransport};
#[doc(inline)]
pub use message::{COMPLETION_KEY, Incoming, decode_message};
#[doc(inline)]
pub use send::{BridgeSender, SenderMarker};
#[cfg(all(unix, feature = "bridge-socket"))]
#[doc(inline)]
pub use socket::{MAX_SOCKET_PATH_BYTES, UnixSocketTransport};
#[doc(inline)]
pub use transport::{
    Acker, BadInput, BoxFuture, Capabilities, Delivery, DeliveryStream, Message, MessageKind,
    Transport, TransportError,
};
