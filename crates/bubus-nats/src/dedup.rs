//! The persisted de-duplication store of durable mode: a JetStream key-value bucket.

use std::sync::Arc;

use async_nats::jetstream::{kv, stream};
use bubus::bridge::{BoxFuture, DedupStore, TransportError};
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::durable::retry;
use crate::transport::Shared;

/// Remembers handled event ids in a JetStream key-value bucket
/// (`bubus_seen_<stream>_<group>`, entries expire after the dedup TTL): every member of the
/// consumer group, and a restarted one, skips what another already handled. From
/// [`NatsTransport::dedup_store`](crate::NatsTransport::dedup_store).
#[derive(Clone, Debug)]
pub struct NatsDedup {
    shared: Arc<Shared>,
    bucket: Arc<OnceCell<kv::Store>>,
}

impl NatsDedup {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        NatsDedup {
            shared,
            bucket: Arc::default(),
        }
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
    fn seen(&self, event_id: Uuid) -> BoxFuture<'_, Result<bool, TransportError>> {
        Box::pin(async move {
            let bucket = self.bucket().await?;
            let key = event_id.to_string();
            retry(
                "NATS dedup get",
                self.shared.options.send_timeout,
                || async {
                    bucket
                        .get(&key)
                        .await
                        .map(|v| v.is_some())
                        .map_err(Into::into)
                },
            )
            .await
        })
    }

    fn record(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
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
}
