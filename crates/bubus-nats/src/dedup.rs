//! The persisted de-duplication store of durable mode: a JetStream key-value bucket whose entry
//! per event holds a member's claim (`claim:<owner>:<expiry, ms since the epoch>`), taken and
//! renewed with compare-and-set on the entry's revision, or the mark that the event was
//! handled (`1`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::kv::{CreateErrorKind, Operation, UpdateErrorKind};
use async_nats::jetstream::{kv, stream};
use bubus::bridge::{BoxFuture, Claim, DedupStore, TransportError};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::durable::retry;
use crate::transport::Shared;

/// Claims and remembers event ids in a JetStream key-value bucket
/// (`bubus_seen_<stream>_<group>`, entries expire after the dedup TTL): a member claims an
/// event atomically before its handlers run (`create`, or `update` at the revision it read
/// when the claim there expired), renews the claim while they run, and marks the event handled
/// once they completed. Every member of the consumer group, and a restarted one, skips what
/// another handled and waits for what another is handling. From
/// [`NatsTransport::dedup_store`](crate::NatsTransport::dedup_store).
#[derive(Clone, Debug)]
pub struct NatsDedup {
    shared: Arc<Shared>,
    bucket: Arc<OnceCell<kv::Store>>,
    /// `claim:<id of this store>:`.
    owner: String,
}

/// One look at an event's entry.
enum Step {
    Claim(Claim),
    /// Another member wrote the entry between our read and our write: look again.
    Raced,
}

type AnyError = Box<dyn std::error::Error + Send + Sync>;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A claim's owner prefix and expiry, or `None` for the handled mark.
fn parse_claim(value: &[u8]) -> Option<(&[u8], u64)> {
    let rest = value.strip_prefix(b"claim:")?;
    let colon = rest.iter().rposition(|b| *b == b':')?;
    let expiry = std::str::from_utf8(&rest[colon + 1..]).ok()?.parse().ok()?;
    Some((&value[..6 + colon + 1], expiry))
}

impl NatsDedup {
    /// Races lost in a row before a claim answers `Held` (the entry is busy).
    const RACES: usize = 8;

    pub(crate) fn new(shared: Arc<Shared>, owner: uuid::Uuid) -> Self {
        NatsDedup {
            shared,
            bucket: Arc::default(),
            owner: format!("claim:{}:", owner.simple()),
        }
    }

    fn claim_value(&self) -> bytes::Bytes {
        let expiry = now_ms().saturating_add(
            u64::try_from(self.shared.options.claim_lease.as_millis()).unwrap_or(u64::MAX),
        );
        bytes::Bytes::from(format!("{}{expiry}", self.owner))
    }

    async fn try_claim(&self, bucket: &kv::Store, key: &str) -> Result<Step, AnyError> {
        match bucket.create(key, self.claim_value()).await {
            Ok(_) => return Ok(Step::Claim(Claim::Won)),
            Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        let Some(entry) = bucket.entry(key).await? else {
            return Ok(Step::Raced);
        };
        if entry.operation != Operation::Put {
            return Ok(Step::Raced);
        }
        let Some((owner, expiry)) = parse_claim(&entry.value) else {
            return Ok(Step::Claim(Claim::Done));
        };
        let now = now_ms();
        if owner != self.owner.as_bytes() && expiry > now {
            return Ok(Step::Claim(Claim::Held {
                retry_after: Duration::from_millis((expiry - now).max(100)),
            }));
        }
        // Ours already (a redelivery here), or expired: take it at the revision read.
        match bucket.update(key, self.claim_value(), entry.revision).await {
            Ok(_) => Ok(Step::Claim(Claim::Won)),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(Step::Raced),
            Err(e) => Err(e.into()),
        }
    }

    /// Renews the claim if this store holds it: whether it did.
    async fn try_renew(&self, bucket: &kv::Store, key: &str) -> Result<bool, AnyError> {
        let Some(entry) = bucket.entry(key).await? else {
            return Ok(false);
        };
        let ours = entry.operation == Operation::Put
            && parse_claim(&entry.value).is_some_and(|(owner, _)| owner == self.owner.as_bytes());
        if !ours {
            return Ok(false);
        }
        match bucket.update(key, self.claim_value(), entry.revision).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes the claim if this store holds it.
    async fn try_release(&self, bucket: &kv::Store, key: &str) -> Result<(), AnyError> {
        let Some(entry) = bucket.entry(key).await? else {
            return Ok(());
        };
        let ours = entry.operation == Operation::Put
            && parse_claim(&entry.value).is_some_and(|(owner, _)| owner == self.owner.as_bytes());
        if ours {
            // Written meanwhile (taken over): the new holder's claim stays.
            if let Err(e) = bucket
                .delete_expect_revision(key, Some(entry.revision))
                .await
            {
                tracing::debug!(error = %e, "NATS dedup release lost a race");
            }
        }
        Ok(())
    }

    async fn bucket(&self) -> Result<&kv::Store, TransportError> {
        self.bucket
            .get_or_try_init(|| async {
                let o = &self.shared.options;
                retry("NATS dedup bucket", o.send_timeout, || async {
                    let name = o.dedup_bucket();
                    if let Ok(store) = self.shared.js.get_key_value(&name).await {
                        return Ok(store);
                    }
                    // The bucket's stream, made directly: `create_key_value` of this client
                    // cannot read the answer of a 2.9 server.
                    self.shared
                        .js
                        .get_or_create_stream(stream::Config {
                            name: format!("KV_{name}"),
                            subjects: vec![format!("$KV.{name}.>")],
                            max_messages_per_subject: 1,
                            max_age: o.dedup_ttl,
                            allow_rollup: true,
                            deny_delete: true,
                            allow_direct: true,
                            discard: stream::DiscardPolicy::New,
                            storage: stream::StorageType::File,
                            ..Default::default()
                        })
                        .await?;
                    self.shared
                        .js
                        .get_key_value(&name)
                        .await
                        .map_err(Into::into)
                })
                .await
            })
            .await
    }
}

impl DedupStore for NatsDedup {
    fn claim(&self, event_id: Uuid) -> BoxFuture<'_, Result<Claim, TransportError>> {
        Box::pin(async move {
            let bucket = self.bucket().await?;
            let key = event_id.to_string();
            for _ in 0..Self::RACES {
                let step = retry("NATS dedup claim", self.shared.options.send_timeout, || {
                    self.try_claim(bucket, &key)
                })
                .await?;
                if let Step::Claim(claim) = step {
                    return Ok(claim);
                }
            }
            Ok(Claim::Held {
                retry_after: Duration::from_millis(100),
            })
        })
    }

    fn renew(&self, event_id: Uuid) -> BoxFuture<'_, Result<bool, TransportError>> {
        Box::pin(async move {
            let bucket = self.bucket().await?;
            let key = event_id.to_string();
            retry("NATS dedup renew", self.shared.options.send_timeout, || {
                self.try_renew(bucket, &key)
            })
            .await
        })
    }

    fn confirm(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            let bucket = self.bucket().await?;
            let key = event_id.to_string();
            retry(
                "NATS dedup put",
                self.shared.options.send_timeout,
                || async {
                    bucket
                        .put(&key, bytes::Bytes::from_static(b"1"))
                        .await
                        .map(drop)
                        .map_err(Into::into)
                },
            )
            .await
        })
    }

    fn release(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            let bucket = self.bucket().await?;
            let key = event_id.to_string();
            retry(
                "NATS dedup release",
                self.shared.options.send_timeout,
                || self.try_release(bucket, &key),
            )
            .await
        })
    }

    fn lease(&self) -> Option<Duration> {
        Some(self.shared.options.claim_lease)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_claim;

    #[test]
    fn claims_parse_and_the_mark_does_not() {
        let (owner, expiry) = parse_claim(b"claim:abc:1700000000000").expect("a claim");
        assert_eq!(owner, b"claim:abc:");
        assert_eq!(expiry, 1_700_000_000_000);
        assert!(parse_claim(b"1").is_none());
        assert!(parse_claim(b"claim:abc:soon").is_none());
        assert!(parse_claim(b"claim:").is_none());
    }
}
