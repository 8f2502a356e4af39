//! The persisted de-duplication store of durable mode: one key per event and group, holding a
//! member's claim (`claim:<owner>`, expiring after the claim lease) or the mark that the event
//! was handled (`1`, expiring after the dedup TTL).

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bubus::bridge::{BoxFuture, Claim, DedupStore, TransportError};
use redis::Script;
use uuid::Uuid;

use crate::config::seen_key;
use crate::conn;
use crate::transport::Shared;

/// `SET NX PX` takes a free key; the owner's own claim is extended; anything that is not a
/// claim is the handled mark. Returns `{1}` won, `{2}` done, `{3, pttl}` held.
const CLAIM: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, 0}
end
local v = redis.call('GET', KEYS[1])
if v == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, 0}
end
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {1, 0}
end
if string.sub(v, 1, 6) ~= 'claim:' then
  return {2, 0}
end
return {3, redis.call('PTTL', KEYS[1])}
";

/// Extends the claim if the owner still holds it: 1, else 0.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
";

/// Deletes the claim if the owner still holds it.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

static CLAIM_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CLAIM));
static RENEW_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW));
static RELEASE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE));

/// Claims and remembers event ids in Redis, one key per event and group
/// (`bubus:<channel>:seen:<group>:<event_id>`): a member claims an event atomically before its
/// handlers run (the key holds its claim, expiring after the claim lease unless renewed), then
/// marks it handled (the key expires after the dedup TTL). Every process of the group, and a
/// restarted one, skips what another handled, and waits for what another is handling. From
/// [`RedisTransport::dedup_store`](crate::RedisTransport::dedup_store).
#[derive(Clone, Debug)]
pub struct RedisDedup {
    shared: Arc<Shared>,
    /// `claim:<id of this store>`.
    owner: String,
}

impl RedisDedup {
    pub(crate) fn new(shared: Arc<Shared>, owner: Uuid) -> Self {
        RedisDedup {
            shared,
            owner: format!("claim:{}", owner.simple()),
        }
    }

    fn key(&self, id: &Uuid) -> String {
        seen_key(&self.shared.options.channel, &self.shared.options.group, id)
    }

    fn lease_ms(&self) -> u64 {
        u64::try_from(self.shared.options.claim_lease.as_millis()).unwrap_or(u64::MAX)
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        what: &str,
        script: &Script,
        event_id: &Uuid,
        with_lease: bool,
    ) -> Result<T, TransportError> {
        let mut invocation = script.key(self.key(event_id));
        invocation.arg(&self.owner);
        if with_lease {
            invocation.arg(self.lease_ms());
        }
        let con = self.shared.commands.clone();
        conn::retry(what, self.shared.options.send_timeout, || {
            let mut con = con.clone();
            let invocation = &invocation;
            async move { invocation.invoke_async::<T>(&mut con).await }
        })
        .await
    }
}

impl DedupStore for RedisDedup {
    fn claim(&self, event_id: Uuid) -> BoxFuture<'_, Result<Claim, TransportError>> {
        Box::pin(async move {
            let (state, pttl): (i64, i64) = self
                .script("Redis claim (dedup)", &CLAIM_SCRIPT, &event_id, true)
                .await?;
            Ok(match state {
                1 => Claim::Won,
                2 => Claim::Done,
                // A key without expiry (-1) or gone meanwhile (-2): look again shortly.
                _ => Claim::Held {
                    retry_after: Duration::from_millis(u64::try_from(pttl).unwrap_or(0).max(100)),
                },
            })
        })
    }

    fn renew(&self, event_id: Uuid) -> BoxFuture<'_, Result<bool, TransportError>> {
        Box::pin(async move {
            let held: i64 = self
                .script("Redis renew (dedup)", &RENEW_SCRIPT, &event_id, true)
                .await?;
            Ok(held == 1)
        })
    }

    fn confirm(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
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

    fn release(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.script::<i64>("Redis release (dedup)", &RELEASE_SCRIPT, &event_id, false)
                .await
                .map(drop)
        })
    }

    fn lease(&self) -> Option<Duration> {
        Some(self.shared.options.claim_lease)
    }
}
