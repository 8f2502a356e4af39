//! Dead letters of durable bridges, shown on the page and replayed from it.
//!
//! A durable bridge (Redis Streams, NATS JetStream, the PostgreSQL outbox) moves an event that
//! kept failing to its dead letters. A [`DeadLetterStore`] lists them and puts one (or all) back
//! for delivery through the engine crate's own API; the monitor lists them when the page asks
//! (nothing is kept in memory) and replays only a request that says `"confirm": true`.

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::replay::ReplayError;

/// The most dead letters listed per store.
pub const MAX_DEAD_LETTERS: usize = 1_000;

/// One dead letter, whatever the engine.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its id in the store (what [`DeadLetterStore::replay`] takes).
    pub id: String,
    /// The event's id (empty when the message was not readable).
    pub event_id: String,
    /// The event's type (empty when the message was not readable).
    pub event_type: String,
    /// The consumer group that gave up on it.
    pub group: String,
    /// Why (the last error).
    pub reason: String,
    /// How many deliveries failed.
    pub deliveries: u32,
    /// When it was dead-lettered, as the engine says it (empty when it does not).
    pub failed_at: String,
    /// The message as it was received.
    pub text: String,
}

impl DeadLetter {
    /// A dead letter with its id and message text; the event's id and type are read from the
    /// text when it is an event.
    pub fn new(id: impl Into<String>, text: impl Into<String>) -> DeadLetter {
        let text = text.into();
        let (event_id, event_type) = ids_of(&text);
        DeadLetter {
            id: id.into(),
            event_id,
            event_type,
            text,
            ..DeadLetter::default()
        }
    }

    /// Sets the consumer group.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// Sets why it failed.
    #[must_use]
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Sets how many deliveries failed.
    #[must_use]
    pub fn deliveries(mut self, n: u32) -> Self {
        self.deliveries = n;
        self
    }

    /// Sets when it was dead-lettered.
    #[must_use]
    pub fn failed_at(mut self, at: impl Into<String>) -> Self {
        self.failed_at = at.into();
        self
    }
}

fn ids_of(text: &str) -> (String, String) {
    #[derive(serde::Deserialize)]
    struct Ids {
        #[serde(default)]
        event_id: Option<String>,
        #[serde(default)]
        event_type: Option<String>,
    }
    serde_json::from_str::<Ids>(text)
        .map(|i| {
            (
                i.event_id.unwrap_or_default(),
                i.event_type.unwrap_or_default(),
            )
        })
        .unwrap_or_default()
}

/// Where a durable bridge keeps its dead letters: listed on the page's "Dead letters" tab,
/// replayed from it after a confirmation.
///
/// Implemented here for the three durable engines (cargo features `redis`, `nats`, `postgres`,
/// on by default): [`RedisDeadLetters`], [`NatsDeadLetters`], [`PgDeadLetters`].
pub trait DeadLetterStore: Send + Sync + 'static {
    /// How the page names the store (`dead letters of redis:… stream bubus:orders:dead`).
    fn name(&self) -> String;

    /// The dead letters, oldest first, at most `limit`.
    fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, ReplayError>>;

    /// Puts the dead letter `id` back for delivery and removes it from the dead letters;
    /// whether it existed.
    fn replay<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, ReplayError>>;

    /// Replays every dead letter; how many.
    fn replay_all(&self) -> BoxFuture<'_, Result<usize, ReplayError>> {
        Box::pin(async move {
            let mut n = 0;
            // Bounded: a letter that fails again while we replay is not chased for ever.
            for _ in 0..100 {
                let batch = self.list(500).await?;
                if batch.is_empty() {
                    break;
                }
                for letter in batch {
                    if self.replay(&letter.id).await? {
                        n += 1;
                    }
                }
            }
            Ok(n)
        })
    }
}

fn refused(e: impl std::fmt::Display) -> ReplayError {
    ReplayError::Refused(e.to_string())
}

#[cfg(feature = "redis")]
pub use self::redis::RedisDeadLetters;

#[cfg(feature = "redis")]
mod redis {
    use super::*;
    use bubus::bridge::Transport;
    use bubus_redis::RedisTransport;

    /// The dead letters of a Redis Streams bridge (the stream `bubus:<channel>:dead`, every
    /// group's), through [`RedisTransport::dead_letters`] and
    /// [`RedisTransport::replay_dead_letter`]: a replayed letter is added to the events stream
    /// again, so every group receives it (groups that handled it skip it).
    ///
    /// ```no_run
    /// use bubus_monitor::{Monitor, RedisDeadLetters};
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let monitor = Monitor::builder()
    ///     .dead_letters(RedisDeadLetters::new("redis://127.0.0.1:6379/0/orders")?)
    ///     .start()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[derive(Debug)]
    pub struct RedisDeadLetters {
        transport: RedisTransport,
    }

    impl RedisDeadLetters {
        /// The dead letters of the bridge on `url` (`redis://host:port/<db>/<channel>`).
        ///
        /// # Errors
        ///
        /// The URL is not the family's form.
        pub fn new(url: &str) -> Result<Self, bubus::bridge::TransportError> {
            Ok(RedisDeadLetters {
                transport: RedisTransport::builder(url)?.streams().build()?,
            })
        }

        /// The dead letters of `transport`'s channel (a durable one).
        pub fn from_transport(transport: RedisTransport) -> Self {
            RedisDeadLetters { transport }
        }
    }

    impl DeadLetterStore for RedisDeadLetters {
        fn name(&self) -> String {
            // Every group's letters: the transport's own group is not part of the name.
            let described = self.transport.describe();
            let stream = described.split(" group ").next().unwrap_or(&described);
            format!("dead letters of {stream}:dead")
        }

        fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, ReplayError>> {
            Box::pin(async move {
                Ok(self
                    .transport
                    .dead_letters(limit)
                    .await
                    .map_err(refused)?
                    .into_iter()
                    .map(|d| {
                        DeadLetter::new(d.id, d.text)
                            .group(d.group)
                            .reason(d.reason)
                            .deliveries(d.deliveries)
                            .failed_at(ms_to_rfc3339(d.failed_at_ms))
                    })
                    .collect())
            })
        }

        fn replay<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, ReplayError>> {
            Box::pin(async move {
                // A stream entry id is `<ms>-<seq>`: anything else names no letter (and would
                // be a Redis error).
                let entry_id = id.split_once('-').is_some_and(|(ms, seq)| {
                    !ms.is_empty()
                        && !seq.is_empty()
                        && ms.bytes().all(|b| b.is_ascii_digit())
                        && seq.bytes().all(|b| b.is_ascii_digit())
                });
                if !entry_id {
                    return Ok(false);
                }
                self.transport.replay_dead_letter(id).await.map_err(refused)
            })
        }
    }

    fn ms_to_rfc3339(ms: u64) -> String {
        if ms == 0 {
            return String::new();
        }
        let nanos = i128::from(ms) * 1_000_000;
        time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_default()
    }
}

#[cfg(feature = "nats")]
pub use self::nats::NatsDeadLetters;

#[cfg(feature = "nats")]
mod nats {
    use super::*;
    use bubus::bridge::Transport;
    use bubus_nats::NatsTransport;

    /// The dead letters of a JetStream bridge (the stream `<stream>_DEAD`, every consumer's),
    /// through [`NatsTransport::dead_letters`] and [`NatsTransport::replay_dead_letter`]: a
    /// replayed letter is published on the subject again, so every consumer receives it
    /// (consumers that handled it skip it). Ids are the letters' sequence numbers.
    #[derive(Debug)]
    pub struct NatsDeadLetters {
        transport: NatsTransport,
    }

    impl NatsDeadLetters {
        /// The dead letters of `transport`'s stream (build it with `.jetstream()`, and
        /// `.stream(name)` when the stream is not the default `BUBUS_<subject>`).
        pub fn from_transport(transport: NatsTransport) -> Self {
            NatsDeadLetters { transport }
        }
    }

    impl DeadLetterStore for NatsDeadLetters {
        fn name(&self) -> String {
            // Every consumer's letters: the transport's own consumer is not part of the name.
            let described = self.transport.describe();
            let stream = described.split(" consumer ").next().unwrap_or(&described);
            format!("dead letters of {stream}_DEAD")
        }

        fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, ReplayError>> {
            Box::pin(async move {
                Ok(self
                    .transport
                    .dead_letters(limit)
                    .await
                    .map_err(refused)?
                    .into_iter()
                    .map(|d| {
                        DeadLetter::new(d.seq.to_string(), d.text)
                            .group(d.group)
                            .reason(d.reason)
                            .deliveries(d.deliveries)
                    })
                    .collect())
            })
        }

        fn replay<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, ReplayError>> {
            Box::pin(async move {
                let Ok(seq) = id.parse::<u64>() else {
                    return Ok(false);
                };
                self.transport
                    .replay_dead_letter(seq)
                    .await
                    .map_err(refused)
            })
        }
    }
}

#[cfg(feature = "postgres")]
pub use self::postgres::PgDeadLetters;

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;

    /// The dead letters of a PostgreSQL outbox (the table `<table>_dead`, every group's),
    /// through [`bubus_postgres::list_dead_letters`] and
    /// [`bubus_postgres::replay_dead_letters`]: a replayed letter is delivered to its group
    /// again, attempts from zero. Ids are `<seq>:<group>`.
    #[derive(Debug)]
    pub struct PgDeadLetters {
        url: String,
    }

    impl PgDeadLetters {
        /// The dead letters of the outbox on `url` (`postgresql://user@host:port/db[/table]`,
        /// table `bubus_events` by default). Each call connects anew.
        pub fn new(url: impl Into<String>) -> Self {
            PgDeadLetters { url: url.into() }
        }
    }

    fn describe(url: &str) -> String {
        // Never show a password.
        match url.split_once("://").and_then(|(s, rest)| {
            let (userinfo, host) = rest.split_once('@')?;
            let user = userinfo.split(':').next().unwrap_or("");
            Some(format!("{s}://{user}@{host}"))
        }) {
            Some(clean) => clean,
            None => url.to_owned(),
        }
    }

    impl DeadLetterStore for PgDeadLetters {
        fn name(&self) -> String {
            format!("dead letters of postgres:{}", describe(&self.url))
        }

        fn list(&self, limit: usize) -> BoxFuture<'_, Result<Vec<DeadLetter>, ReplayError>> {
            Box::pin(async move {
                let mut letters = bubus_postgres::list_dead_letters(&self.url, None)
                    .await
                    .map_err(refused)?;
                letters.truncate(limit);
                Ok(letters
                    .into_iter()
                    .map(|d| {
                        let mut letter = DeadLetter::new(format!("{}:{}", d.seq, d.group), d.body)
                            .group(d.group)
                            .reason(d.error.unwrap_or_default())
                            .deliveries(u32::try_from(d.attempts).unwrap_or(0))
                            .failed_at(d.dead_at);
                        letter.event_id = d.event_id;
                        letter.event_type = d.event_type;
                        letter
                    })
                    .collect())
            })
        }

        fn replay<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, ReplayError>> {
            Box::pin(async move {
                let Some((seq, group)) = id.split_once(':') else {
                    return Ok(false);
                };
                let Ok(seq) = seq.parse::<i64>() else {
                    return Ok(false);
                };
                // The engine replays by group and event id: find the letter's event id.
                let letters = bubus_postgres::list_dead_letters(&self.url, Some(group))
                    .await
                    .map_err(refused)?;
                let Some(letter) = letters.into_iter().find(|d| d.seq == seq) else {
                    return Ok(false);
                };
                let n = bubus_postgres::replay_dead_letters(
                    &self.url,
                    Some(group),
                    Some(&letter.event_id),
                )
                .await
                .map_err(refused)?;
                Ok(n > 0)
            })
        }
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn passwords_are_not_shown() {
            assert_eq!(
                super::describe("postgresql://me:secret@db:5432/test"),
                "postgresql://me@db:5432/test"
            );
            assert_eq!(
                super::describe("postgresql://db/test"),
                "postgresql://db/test"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_reads_its_event_ids_from_the_text() {
        let l = DeadLetter::new("1-0", r#"{"event_id":"x","event_type":"Order"}"#).group("g");
        assert_eq!((l.event_id.as_str(), l.event_type.as_str()), ("x", "Order"));
        assert_eq!(l.group, "g");
        let l = DeadLetter::new("2-0", "not json");
        assert!(l.event_id.is_empty() && l.event_type.is_empty());
    }
}
