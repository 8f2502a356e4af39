//! Names and options.

use std::time::Duration;

/// The subject the family's tests use (the family's NATS bridge has no default; ours does).
pub const DEFAULT_SUBJECT: &str = "abxbus_events";

/// The durable consumer durable bridges share unless told otherwise (competing consumers).
pub const DEFAULT_GROUP: &str = "bubus";

/// How a NATS bridge carries events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// The family's core NATS subject: at-most-once, every subscriber gets every event.
    Core,
    /// A JetStream stream on the subject and a durable pull consumer: at-least-once, acked
    /// after the event completed on the receiving bus.
    JetStream,
}

#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) server: String,
    pub(crate) subject: String,
    pub(crate) mode: Mode,
    pub(crate) stream: String,
    pub(crate) group: String,
    pub(crate) lease: Duration,
    pub(crate) batch: usize,
    pub(crate) dedup_ttl: Duration,
    pub(crate) claim_lease: Duration,
    pub(crate) duplicate_window: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) from_start: bool,
    pub(crate) max_messages: i64,
}

impl Options {
    pub(crate) fn dead_stream(&self) -> String {
        format!("{}_DEAD", self.stream)
    }

    pub(crate) fn dead_subject(&self) -> String {
        format!("bubus.dead.{}", self.subject)
    }

    pub(crate) fn dedup_bucket(&self) -> String {
        format!("bubus_seen_{}_{}", self.stream, self.group)
    }
}

/// A JetStream name from a subject: `BUBUS_` and the subject with every character a stream
/// name may not hold replaced by `_`.
pub(crate) fn stream_name_for(subject: &str) -> String {
    let clean: String = subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("BUBUS_{clean}")
}

/// Whether `name` is usable as a stream, consumer or bucket name.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Whether `subject` is a publishable subject (no wildcards, no empty tokens, no spaces).
pub(crate) fn valid_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject
            .split('.')
            .all(|t| !t.is_empty() && t != "*" && t != ">")
        && !subject.chars().any(char::is_whitespace)
}

/// Splits the CLI's URL form `nats://host:port[/<subject>]` into server and subject.
pub fn split_url(url: &str) -> (String, String) {
    let rest = url.strip_prefix("nats://").unwrap_or(url);
    match rest.split_once('/') {
        Some((host, subject)) if !subject.is_empty() => {
            (format!("nats://{host}"), subject.to_owned())
        }
        Some((host, _)) => (format!("nats://{host}"), DEFAULT_SUBJECT.to_owned()),
        None => (format!("nats://{rest}"), DEFAULT_SUBJECT.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(stream_name_for("abxbus_events"), "BUBUS_abxbus_events");
        assert_eq!(stream_name_for("orders.eu"), "BUBUS_orders_eu");
        assert!(
            valid_subject("a.b")
                && !valid_subject("a.*")
                && !valid_subject("a..b")
                && !valid_subject("")
        );
        assert!(valid_name("bubus-1_x") && !valid_name("a.b") && !valid_name(""));
        assert_eq!(
            split_url("nats://h:1"),
            ("nats://h:1".into(), "abxbus_events".into())
        );
        assert_eq!(
            split_url("nats://h:1/orders"),
            ("nats://h:1".into(), "orders".into())
        );
    }
}
