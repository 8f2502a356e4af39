//! NATS bridges for [`bubus`]: a [`Transport`](bubus::bridge::Transport) in two modes.
//!
//! * **Plain** ([`Mode::Core`], [`NatsTransport::core`]): the family's NATS bridge — core NATS
//!   publish/subscribe on a subject, the event's compact JSON as the payload, so Python and
//!   TypeScript abxbus processes on the same subject send and receive the same events.
//!   At-most-once: what is published while a subscriber is disconnected is lost to it.
//! * **Durable** ([`Mode::JetStream`], [`NatsTransport::jetstream`]): a JetStream stream on the
//!   subject (`BUBUS_<subject>`) and a durable pull consumer. Each event is published with
//!   `Nats-Msg-Id` = its `event_id` (the server drops duplicates within its window), acked
//!   explicitly once it completed on the receiving bus, kept alive with progress acks while a
//!   slow handler runs, and delivered again when a receiver dies. Handled ids are kept in a
//!   JetStream key-value bucket ([`NatsTransport::dedup_store`]) so the handlers run once per
//!   event; what keeps failing goes to `<stream>_DEAD` ([`NatsTransport::dead_letters`],
//!   `bubus dead-letters`).
//!
//! Processes with the same group (durable consumer) share the events; processes with their
//! own group each get every event. The client reconnects with backoff and resubscribes.
//! Because the stream captures the plain subject, a family process publishing on it also feeds
//! durable Rust consumers, and a family subscriber sees what a durable Rust sender publishes.

mod config;
mod core;
mod dead;
mod dedup;
mod durable;
mod transport;

pub use config::{DEFAULT_GROUP, DEFAULT_SUBJECT, Mode, split_url};
pub use dead::DeadLetter;
pub use dedup::NatsDedup;
pub use transport::{NatsBuilder, NatsTransport};

pub(crate) fn rx_stream<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
