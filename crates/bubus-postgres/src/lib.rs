//! PostgreSQL bridges for `bubus`.
#![forbid(unsafe_code)]

mod bridge;
mod conn;
mod consumer;
mod durable;
mod error;
mod plain;
mod publisher;
mod url;

pub use bridge::{
    BridgeStats, DEFAULT_DURABLE_TABLE, Deliveries, Delivery, DurableOptions, PgBridge,
    list_dead_letters, replay_dead_letters,
};
pub use durable::{DeadLetter, GroupStart};
pub use error::PgError;
pub use url::{DEFAULT_CHANNEL, DEFAULT_TABLE, PgUrl, is_identifier};
