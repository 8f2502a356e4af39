//! Redis bridges for [`bubus`]: a [`Transport`](bubus::bridge::Transport) in two modes.
//!
//! * **Plain** ([`Mode::PubSub`], [`RedisTransport::pubsub`]): the family's Redis bridge — the
//!   same URL form (`redis[s]://[user:pass@]host:port[/<db>[/<channel>]]`), channel
//!   (`abxbus_events` by default) and payload (the event's compact JSON, `PUBLISH`ed), so Python
//!   and TypeScript abxbus processes on the same channel send and receive the same events.
//!   At-most-once: an event published while a listener is disconnected is lost to it.
//! * **Durable** ([`Mode::Streams`], [`RedisTransport::streams`]): a Redis Stream per channel
//!   (`bubus:<channel>`) read through a consumer group. An entry is acked once its event has
//!   completed on the receiving bus; a consumer that dies leaves its entries pending and the
//!   others reclaim them after the lease (`XAUTOCLAIM`); handled ids are kept in Redis
//!   ([`RedisTransport::dedup_store`]) so the handlers run once per event; what keeps failing
//!   goes to `bubus:<channel>:dead` ([`RedisTransport::dead_letters`], `bubus dead-letters`).
//!
//! Processes with the same group share the events (competing consumers); processes with
//! their own groups each get every event (broadcast). Both modes reconnect with backoff after a
//! server restart or a cut connection.
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod config;
mod conn;
mod dead;
mod dedup;
mod pubsub;
mod streams;
mod transport;

pub use config::{DEFAULT_CHANNEL, DEFAULT_GROUP, Mode};
pub use dead::DeadLetter;
pub use dedup::RedisDedup;
pub use transport::{RedisBuilder, RedisTransport};
