//! Dead letters of durable mode: the stream `<stream>_DEAD`, listed and replayed.

use async_nats::HeaderMap;
use bubus::bridge::TransportError;

use crate::durable::{publish, retry, setup};
use crate::transport::NatsTransport;

/// An event that kept failing, as it was moved to the dead-letter stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its sequence in the dead-letter stream (what [`NatsTransport::replay_dead_letter`] takes).
    pub seq: u64,
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
    /// The durable consumer it failed in.
    pub group: String,
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

fn header(headers: Option<&HeaderMap>, name: &str) -> String {
    headers
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
        .unwrap_or_default()
}

impl NatsTransport {
    /// The dead letters of this stream (every consumer's), oldest first, at most `limit`.
    ///
    /// # Errors
    ///
    /// The server could not be reached within the send timeout.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, TransportError> {
        let shared = self.shared();
        setup(shared).await?;
        let name = shared.options.dead_stream();
        let stream = retry(
            "NATS dead-letter stream",
            shared.options.send_timeout,
            || async { shared.js.get_stream(&name).await.map_err(Into::into) },
        )
        .await?;
        let info = retry("NATS stream info", shared.options.send_timeout, || async {
            stream.get_info().await.map(|i| i.state).map_err(Into::into)
        })
        .await?;
        let mut out = Vec::new();
        if info.messages == 0 {
            return Ok(out);
        }
        let mut seq = info.first_sequence;
        while seq <= info.last_sequence && out.len() < limit {
            if let Ok(raw) = stream.get_raw_message(seq).await {
                let headers = Some(&raw.headers);
                out.push(DeadLetter {
                    seq,
                    event_id: header(headers, "Bubus-Event-Id"),
                    event_type: header(headers, "Bubus-Event-Type"),
                    text: String::from_utf8_lossy(&raw.payload).into_owned(),
                    reason: header(headers, "Bubus-Reason"),
                    deliveries: header(headers, "Bubus-Deliveries").parse().unwrap_or(0),
                    group: header(headers, "Bubus-Group"),
                });
            }
            seq += 1;
        }
        Ok(out)
    }

    /// Publishes one dead letter on the subject again (with a fresh `Nats-Msg-Id`, so the
    /// duplicate window does not drop it; consumers that handled it skip it by their dedup
    /// store) and deletes it from the dead letters. Returns whether it existed.
    ///
    /// # Errors
    ///
    /// The server could not be reached within the send timeout.
    pub async fn replay_dead_letter(&self, seq: u64) -> Result<bool, TransportError> {
        let shared = self.shared();
        setup(shared).await?;
        let name = shared.options.dead_stream();
        let stream = retry(
            "NATS dead-letter stream",
            shared.options.send_timeout,
            || async { shared.js.get_stream(&name).await.map_err(Into::into) },
        )
        .await?;
        let Ok(raw) = stream.get_raw_message(seq).await else {
            return Ok(false);
        };
        let id = format!(
            "replay:{}:{seq}:{}",
            shared.options.stream,
            uuid::Uuid::new_v4()
        );
        publish(
            shared,
            &shared.options.subject,
            raw.payload.clone(),
            id,
            HeaderMap::new(),
        )
        .await?;
        retry(
            "NATS delete dead letter",
            shared.options.send_timeout,
            || async {
                stream
                    .delete_message(seq)
                    .await
                    .map(drop)
                    .map_err(Into::into)
            },
        )
        .await?;
        Ok(true)
    }

    /// Replays every dead letter; returns how many.
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
                if self.replay_dead_letter(letter.seq).await? {
                    n += 1;
                }
            }
        }
    }
}
