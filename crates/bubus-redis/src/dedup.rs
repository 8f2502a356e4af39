//! The persisted de-duplication store of durable mode.

use std::sync::Arc;

use bubus::bridge::{BoxFuture, DedupStore, TransportError};
use uuid::Uuid;

use crate::config::seen_key;
use crate::conn;
use crate::transport::Shared;

/// Remembers handled event ids in Redis, one key per event and group
/// (`bubus:<channel>:seen:<group>:<event_id>`, expiring after the dedup TTL): every process of
/// the group, and a restarted one, skips what another already handled. From
/// [`RedisTransport::dedup_store`](crate::RedisTransport::dedup_store).
#[derive(Clone, Debug)]
pub struct RedisDedup {
    shared: Arc<Shared>,
}

impl RedisDedup {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        RedisDedup { shared }
    }

    fn key(&self, id: &Uuid) -> String {
        seen_key(&self.shared.options.channel, &self.shared.options.group, id)
    }
}

impl DedupStore for RedisDedup {
    fn seen(&self, event_id: Uuid) -> BoxFuture<'_, Result<bool, TransportError>> {
        Box::pin(async move {
            let key = self.key(&event_id);
            let con = self.shared.commands.clone();
            conn::retry("Redis EXISTS", self.shared.options.send_timeout, || {
                let mut con = con.clone();
                let key = key.clone();
                async move {
                    redis::cmd("EXISTS")
                        .arg(key)
                        .query_async::<i64>(&mut con)
                        .await
                }
            })
            .await
            .map(|n| n > 0)
        })
    }

    fn record(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            let key = self.key(&event_id);
            let ttl = self.shared.options.dedup_ttl.as_secs().max(1);
            let con = self.shared.commands.clone();
            conn::retry(
                "Redis SET (dedup)",
                self.shared.options.send_timeout,
                || {
                    let mut con = con.clone();
                    let key = key.clone();
                    async move {
                        redis::cmd("SET")
                            .arg(key)
                            .arg(1)
                            .arg("EX")
                            .arg(ttl)
                            .query_async::<redis::Value>(&mut con)
                            .await
                    }
                },
            )
            .await
            .map(drop)
        })
    }
}
