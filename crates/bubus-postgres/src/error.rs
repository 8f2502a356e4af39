//! Errors of the PostgreSQL bridges.

/// What went wrong talking to PostgreSQL or reading what it holds.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The bridge URL is not `postgresql://…/<db>[/<table>]`.
    #[error("invalid PostgreSQL bridge URL: {0}")]
    InvalidUrl(String),
    /// A table or channel name is not a plain SQL identifier.
    #[error("invalid {what}: {name:?} (use [A-Za-z0-9_], starting with a letter or _, at most 63)")]
    InvalidName {
        /// What the name was for.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The server refused a statement or the connection failed.
    #[error("PostgreSQL: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// A table that should be the durable bridge's has another shape.
    #[error("table {0:?} exists but is not a bubus durable events table")]
    NotDurableTable(String),
    /// An event read from the table could not be decoded.
    #[error("undecodable event {event_id}: {message}")]
    Decode {
        /// The row's event id.
        event_id: String,
        /// Why.
        message: String,
    },
    /// Writing an event failed for a reason retrying will not fix.
    #[error("sending event {event_id} failed: {message}")]
    Send {
        /// The event's id.
        event_id: String,
        /// Why.
        message: String,
    },
    /// The bridge is plain (the family's table) and the call needs the durable mode.
    #[error("this needs a durable bridge (PgBridge::durable)")]
    NotDurable,
    /// The bridge was closed.
    #[error("the bridge is closed")]
    Closed,
}

impl PgError {
    /// Whether retrying after reconnecting may succeed (the connection broke, the server is
    /// shutting down or restarting), as opposed to an error the same statement will hit again.
    pub fn is_connection(&self) -> bool {
        match self {
            PgError::Db(e) => is_connection_error(e),
            PgError::Closed => false,
            _ => false,
        }
    }
}

pub(crate) fn is_connection_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        // Class 08 (connection exception), 57P01..57P03 (admin/crash shutdown, cannot connect
        // now), 53300 (too many connections).
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || c.starts_with("57P") || c == "53300"
        }
        // No SQLSTATE: an I/O or protocol error, i.e. the connection.
        None => true,
    }
}
