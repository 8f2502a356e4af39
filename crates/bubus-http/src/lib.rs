//! The HTTP bridge of [`bubus`]: events POSTed as JSON from one process to another, on the
//! wire of the bubus/abxbus family (Python and TypeScript `HTTPEventBridge`).
//!
//! [`HttpTransport`] is the [`bubus::bridge::Transport`] to give a `Bridge`; it is made of:
//!
//! * [`HttpListener`] — an axum server on one path: `202` once an event is queued, `400` for a
//!   body that is not a JSON object, `404` for another path, `405` for another method (the
//!   family's codes), plus an optional bearer token (`401`) and a body limit (`413`). Binds
//!   127.0.0.1 unless told otherwise. A bad request is logged with the peer's address, counted
//!   ([`ListenerStats`]) and answered; the listener goes on.
//! * [`HttpSender`] — a reqwest client over kept-alive connections that retries connection
//!   errors, timeouts, 5xx, 408 and 429 with exponential backoff ([`RetryPolicy`]), so a send is
//!   at-least-once; receivers de-duplicate by `event_id`.

#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::print_stdout,
        clippy::print_stderr
    )
)]

mod listener;
mod sender;
mod transport;

pub use listener::{
    DEFAULT_BODY_LIMIT, HttpListener, Inbound, ListenerOptions, ListenerStats, Rejected,
};
pub use sender::{HttpSender, RetryPolicy, SendError};
pub use transport::HttpTransport;
