//! Dead letters of durable mode: the stream `bubus:<channel>:dead`, listed and replayed.

use bubus::bridge::TransportError;
use redis::Value;
use redis::streams::StreamRangeReply;

use crate::conn;
use crate::transport::RedisTransport;

/// An event that kept failing, as it was moved to the dead-letter stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its entry id in the dead-letter stream (what [`RedisTransport::replay_dead_letter`] takes).
    pub id: String,
    /// The event's id (empty when the message was not readable).
    pub event_id: String,
    /// The event's type (empty when the message was not readable).
    pub event_type: String,
    /// The message text as it was received.
    pub text: String,
    /// Why it failed (the last error).
    pub reason: String,
    /// How many times it was delivered.
    pub deliveries: u32,
    /// The consumer group it failed in.
    pub group: String,
    /// When it was dead-lettered (ms since the Unix epoch).
    pub failed_at_ms: u64,
}

/// The `event_id` and `event_type` of a message text, when it has them.
pub(crate) fn ids_of(text: &str) -> (String, String) {
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

fn field(map: &std::collections::HashMap<String, Value>, name: &str) -> String {
    match map.get(name) {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(Value::SimpleString(s)) => s.clone(),
        Some(Value::Int(i)) => i.to_string(),
        _ => String::new(),
    }
}

impl RedisTransport {
    /// The dead letters of this channel (every group's), oldest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// The server could not be reached within the send timeout.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, TransportError> {
        let shared = self.shared();
        let key = shared.options.dead_key();
        let con = shared.commands.clone();
        let reply: StreamRangeReply =
            conn::retry("Redis XRANGE", shared.options.send_timeout, || {
                let mut con = con.clone();
                let key = key.clone();
                async move {
                    redis::cmd("XRANGE")
                        .arg(key)
                        .arg("-")
                        .arg("+")
                        .arg("COUNT")
                        .arg(limit.max(1))
                        .query_async(&mut con)
                        .await
                }
            })
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|e| DeadLetter {
                event_id: field(&e.map, "event_id"),
                event_type: field(&e.map, "event_type"),
                text: field(&e.map, "event"),
                reason: field(&e.map, "reason"),
                deliveries: field(&e.map, "deliveries").parse().unwrap_or(0),
                group: field(&e.map, "group"),
                failed_at_ms: field(&e.map, "failed_at_ms").parse().unwrap_or(0),
                id: e.id,
            })
            .collect())
    }

    /// Puts one dead letter back on the stream (every group receives it again; groups that
    /// handled it skip it by their dedup store) and removes it from the dead letters, in one
    /// `MULTI`. Returns whether it existed.
    ///
    /// # Errors
    ///
    /// The server could not be reached within the send timeout.
    pub async fn replay_dead_letter(&self, id: &str) -> Result<bool, TransportError> {
        let shared = self.shared();
        let key = shared.options.dead_key();
        let con = shared.commands.clone();
        let found: StreamRangeReply =
            conn::retry("Redis XRANGE", shared.options.send_timeout, || {
                let mut con = con.clone();
                let key = key.clone();
                async move {
                    redis::cmd("XRANGE")
                        .arg(key)
                        .arg(id)
                        .arg(id)
                        .query_async(&mut con)
                        .await
                }
            })
            .await?;
        let Some(entry) = found.ids.into_iter().next() else {
            return Ok(false);
        };
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut add = redis::cmd("XADD");
        add.arg(shared.options.stream_key()).arg("*");
        add.arg("kind").arg("event");
        add.arg("event_id").arg(field(&entry.map, "event_id"));
        add.arg("event_type").arg(field(&entry.map, "event_type"));
        add.arg("event").arg(field(&entry.map, "event"));
        add.arg("replayed_from").arg(&entry.id);
        pipe.add_command(add).ignore();
        pipe.cmd("XDEL").arg(&key).arg(&entry.id).ignore();
        conn::retry("Redis replay", shared.options.send_timeout, || {
            let mut con = con.clone();
            let pipe = pipe.clone();
            async move { pipe.query_async::<Value>(&mut con).await }
        })
        .await?;
        Ok(true)
    }

    /// Replays every dead letter (see [`replay_dead_letter`](Self::replay_dead_letter));
    /// returns how many.
    ///
    /// # Errors
    ///
    /// The server could not be reached within the send timeout.
    pub async fn replay_dead_letters(&self) -> Result<usize, TransportError> {
        let mut n = 0;
        loop {
            let batch = self.dead_letters(500).await?;
            if batch.is_empty() {
                return Ok(n);
            }
            for letter in batch {
                if self.replay_dead_letter(&letter.id).await? {
                    n += 1;
                }
            }
        }
    }
}
