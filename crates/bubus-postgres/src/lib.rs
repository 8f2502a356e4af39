//! PostgreSQL bridges for `bubus`.
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
pub use durable::{DeadLetter, GroupStart};
pub use error::PgError;
pub use transport::{
    DEFAULT_DURABLE_TABLE, DurableOptions, PgTransport, list_dead_letters, replay_dead_letters,
};
pub use url::{DEFAULT_CHANNEL, DEFAULT_TABLE, PgUrl, is_identifier};
