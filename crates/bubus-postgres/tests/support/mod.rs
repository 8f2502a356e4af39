//! Shared helpers of the bubus-postgres tests: the shared server's URL, unique table names,
//! events to send.
#![allow(dead_code, unreachable_pub)]

use bubus::{AnyEvent, DynEvent, EventHandle};
use serde_json::json;

/// The shared PostgreSQL server of the test machine (trust auth, database `test`).
pub const SHARED: &str = "postgresql://postgres@127.0.0.1:5432/test";

/// A table name no other test uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}_{:08x}", std::process::id(), fastrand::u32(..))
}

/// The shared server's URL with `table` as its table segment.
pub fn shared_url(table: &str) -> String {
    format!("{SHARED}/{table}")
}

/// A dynamic event `Ping { n }`.
pub fn ping(n: u64) -> AnyEvent {
    EventHandle::new(DynEvent::new("Ping", json!({ "n": n })).unwrap()).into()
}

/// The `n` of a `Ping`.
pub fn n_of(event: &AnyEvent) -> u64 {
    event.payload_json().unwrap()["n"].as_u64().unwrap()
}

/// A client on the shared server.
pub async fn client() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(SHARED, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}
