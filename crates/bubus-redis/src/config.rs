//! The family's URL form and the options of both modes.

use std::time::Duration;

use bubus::bridge::TransportError;

/// The family's default channel (abxbus 2.5).
pub const DEFAULT_CHANNEL: &str = "abxbus_events";

/// The consumer group durable bridges join unless told otherwise: every process in it shares
/// the work (competing consumers).
pub const DEFAULT_GROUP: &str = "bubus";

/// How a Redis bridge carries events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Mode {
    /// The family's Redis pub/sub channel: at-most-once, every listener gets every event,
    /// nothing is kept for a listener that is not connected.
    PubSub,
    /// A Redis Stream per channel read through a consumer group: at-least-once, acked after
    /// the event completed on the receiving bus, reclaimed from a dead consumer after its lease.
    Streams,
}

/// A parsed `redis[s]://[user:pass@]host:port[/<db>[/<channel>]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RedisUrl {
    /// The URL the client connects to (without the channel segment).
    pub(crate) connect: String,
    pub(crate) db: i64,
    pub(crate) channel: Option<String>,
}

impl RedisUrl {
    /// Parses the family's URL form; the errors name what is wrong as the family's do.
    pub(crate) fn parse(url: &str) -> Result<Self, TransportError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| TransportError::Config(format!("invalid Redis URL {url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(TransportError::Config(format!(
                "Redis URL must start with redis:// or rediss://, got {url:?}"
            )));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(TransportError::Config(format!(
                "Redis URL has no host: {url:?}"
            )));
        }
        let segments: Vec<&str> = parsed.path().split('/').filter(|s| !s.is_empty()).collect();
        if segments.len() > 2 {
            return Err(TransportError::Config(format!(
                "Redis URL path must be /<db> or /<db>/<channel>: {url:?}"
            )));
        }
        let db = match segments.first() {
            None => 0,
            Some(s) => s.parse::<i64>().ok().filter(|d| *d >= 0).ok_or_else(|| {
                TransportError::Config(format!(
                    "Redis URL db path segment must be numeric, got {s:?}: {url:?}"
                ))
            })?,
        };
        let channel = segments.get(1).map(|s| percent_decode(s));
        let mut connect = parsed.clone();
        connect.set_path(&format!("/{db}"));
        connect.set_query(None);
        connect.set_fragment(None);
        Ok(RedisUrl {
            connect: connect.into(),
            db,
            channel,
        })
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("c={s}").as_bytes())
        .next()
        .map_or_else(|| s.to_owned(), |(_, v)| v.into_owned())
}

/// Options of a Redis bridge. Build one with [`RedisTransport::builder`](crate::RedisTransport::builder).
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) url: RedisUrl,
    pub(crate) channel: String,
    pub(crate) mode: Mode,
    pub(crate) group: String,
    pub(crate) consumer: String,
    pub(crate) lease: Duration,
    pub(crate) batch: usize,
    pub(crate) block: Duration,
    pub(crate) max_len: Option<usize>,
    pub(crate) dedup_ttl: Duration,
    /// How long a dedup claim lasts without renewal.
    pub(crate) claim_lease: Duration,
    pub(crate) send_timeout: Duration,
    pub(crate) duplicate_window: Duration,
    pub(crate) from_start: bool,
}

impl Options {
    pub(crate) fn stream_key(&self) -> String {
        stream_key(&self.channel)
    }

    pub(crate) fn dead_key(&self) -> String {
        dead_key(&self.channel)
    }
}

/// The stream that carries a channel's events in durable mode.
pub(crate) fn stream_key(channel: &str) -> String {
    format!("bubus:{channel}")
}

/// The dead letters of a channel's stream.
pub(crate) fn dead_key(channel: &str) -> String {
    format!("bubus:{channel}:dead")
}

/// The de-duplication key of one event for one group.
pub(crate) fn seen_key(channel: &str, group: &str, event_id: &uuid::Uuid) -> String {
    format!("bubus:{channel}:seen:{group}:{event_id}")
}

/// A consumer name unique to this process and bridge.
pub(crate) fn default_consumer() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "host".to_owned());
    format!("{host}-{}-{:08x}", std::process::id(), fastrand::u32(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_url_forms() {
        let u = RedisUrl::parse("redis://127.0.0.1:6379").unwrap();
        assert_eq!((u.db, u.channel.as_deref()), (0, None));
        assert_eq!(u.connect, "redis://127.0.0.1:6379/0");
        let u = RedisUrl::parse("redis://user:pw@h:1/3/my_chan").unwrap();
        assert_eq!((u.db, u.channel.as_deref()), (3, Some("my_chan")));
        assert_eq!(u.connect, "redis://user:pw@h:1/3");
        let u = RedisUrl::parse("rediss://h:1/2").unwrap();
        assert_eq!((u.db, u.channel), (2, None));
    }

    #[test]
    fn bad_urls_say_why() {
        let err = |u| RedisUrl::parse(u).unwrap_err().to_string();
        assert!(err("http://h:1").contains("redis://"));
        assert!(err("redis://h:1/x").contains("numeric"));
        assert!(err("redis://h:1/0/a/b").contains("/<db>/<channel>"));
        assert!(err("not a url").contains("invalid Redis URL"));
    }
}
