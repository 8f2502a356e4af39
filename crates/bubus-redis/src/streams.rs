//! Durable mode: a Redis Stream per channel, read through a consumer group.
//!
//! * send: `XADD bubus:<channel> MAXLEN ~ n * kind … event_id … event_type … event <json>`;
//! * listen: `XREADGROUP GROUP <group> <consumer> … STREAMS bubus:<channel> >` on a connection
//!   of its own (the read blocks), and every half lease `XAUTOCLAIM` of entries whose consumer
//!   has not renewed them for a lease (it died): they are delivered again, with their delivery
//!   count as the attempt;
//! * while an entry is handled, its lease is renewed every third of the lease
//!   (`XCLAIM … JUSTID`, which does not count a delivery);
//! * ack: `XACK`; nack: the entry's idle time is set so that it is reclaimed after the delay;
//!   dead letter: `XADD bubus:<channel>:dead …` and `XACK` in one `MULTI`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bubus::bridge::{
    Acker, BadInput, BoxFuture, Delivery, DeliveryStream, Message, MessageKind, TransportError,
};
use parking_lot::Mutex;
use redis::Value;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamPendingCountReply, StreamReadReply};
use tokio::sync::mpsc;

use crate::conn;
use crate::pubsub::tokio_stream;
use crate::transport::Shared;
use bubus::bridge::Backoff;

/// Entries this consumer holds (delivered, not yet acked): their leases are renewed.
#[derive(Debug, Default)]
pub(crate) struct InFlight(Mutex<HashSet<String>>);

impl InFlight {
    fn insert(&self, id: &str) -> bool {
        self.0.lock().insert(id.to_owned())
    }
    fn remove(&self, id: &str) {
        self.0.lock().remove(id);
    }
    fn contains(&self, id: &str) -> bool {
        self.0.lock().contains(id)
    }
    fn snapshot(&self) -> Vec<String> {
        self.0.lock().iter().cloned().collect()
    }
}

/// Adds an entry unless the same message was added within the duplicate window: the
/// `Nats-Msg-Id` of Redis. A send retried after a lost reply (the server restarted between
/// running the `XADD` and answering) adds nothing the second time.
const IDEMPOTENT_XADD: &str = r"
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  if ARGV[2] ~= '' then
    return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
  end
  return redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
end
return false
";

fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Completion => "completion",
        _ => "event",
    }
}

pub(crate) async fn send(shared: &Shared, message: &Message) -> Result<(), TransportError> {
    static SCRIPT: std::sync::LazyLock<redis::Script> =
        std::sync::LazyLock::new(|| redis::Script::new(IDEMPOTENT_XADD));
    let o = &shared.options;
    let kind = kind_name(message.kind());
    let marker = format!("bubus:{}:sent:{}:{kind}", o.channel, message.event_id());
    let mut invocation = SCRIPT.key(o.stream_key());
    invocation
        .key(marker)
        .arg(o.duplicate_window.as_secs().max(1))
        .arg(o.max_len.map(|n| n.to_string()).unwrap_or_default())
        .arg("kind")
        .arg(kind)
        .arg("event_id")
        .arg(message.event_id().to_string())
        .arg("event_type")
        .arg(message.event_type())
        .arg("event")
        .arg(message.text());
    let con = shared.commands.clone();
    conn::retry("Redis XADD", o.send_timeout, || {
        let mut con = con.clone();
        let invocation = &invocation;
        async move { invocation.invoke_async::<Value>(&mut con).await }
    })
    .await?;
    Ok(())
}

/// Creates the group if it does not exist (and the stream with it).
async fn ensure_group(
    shared: &Shared,
    con: &mut redis::aio::ConnectionManager,
) -> redis::RedisResult<()> {
    let start = if shared.options.from_start { "0" } else { "$" };
    let created: redis::RedisResult<Value> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(shared.options.stream_key())
        .arg(&shared.options.group)
        .arg(start)
        .arg("MKSTREAM")
        .query_async(con)
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
        Err(e) => Err(e),
    }
}

pub(crate) async fn listen(shared: Arc<Shared>) -> Result<DeliveryStream, TransportError> {
    let o = &shared.options;
    let reader = conn::manager(&shared.client, Some(o.block + Duration::from_secs(10)))?;
    {
        let mut con = reader.clone();
        let s = Arc::clone(&shared);
        conn::retry("Redis XGROUP CREATE", o.send_timeout, || {
            let s = Arc::clone(&s);
            let mut con = con.clone();
            async move { ensure_group(&s, &mut con).await }
        })
        .await?;
        let _ = &mut con;
    }
    let (tx, rx) = mpsc::channel::<Result<Delivery, BadInput>>(o.batch.max(16));
    tokio::spawn(read_loop(Arc::clone(&shared), reader, tx));
    tokio::spawn(heartbeat(Arc::clone(&shared)));
    Ok(Box::pin(tokio_stream(rx)))
}

/// Renews the lease of every entry this consumer holds, every third of the lease.
async fn heartbeat(shared: Arc<Shared>) {
    let mut closed = shared.closed.subscribe();
    let period = shared.options.lease / 3;
    loop {
        tokio::select! {
            _ = closed.changed() => return,
            () = tokio::time::sleep(period) => {}
        }
        let ids = shared.in_flight.snapshot();
        for chunk in ids.chunks(500) {
            let mut cmd = redis::cmd("XCLAIM");
            cmd.arg(shared.options.stream_key())
                .arg(&shared.options.group)
                .arg(&shared.options.consumer)
                .arg(0)
                .arg(chunk)
                .arg("JUSTID");
            let mut con = shared.commands.clone();
            if let Err(e) = cmd.query_async::<Value>(&mut con).await {
                tracing::debug!(error = %e, "Redis lease renewal failed");
            }
        }
    }
}

struct Reader {
    shared: Arc<Shared>,
    con: redis::aio::ConnectionManager,
    tx: mpsc::Sender<Result<Delivery, BadInput>>,
    origin: String,
}

async fn read_loop(
    shared: Arc<Shared>,
    con: redis::aio::ConnectionManager,
    tx: mpsc::Sender<Result<Delivery, BadInput>>,
) {
    let origin = format!("redis stream {}", shared.options.stream_key());
    let mut closed = shared.closed.subscribe();
    let mut reader = Reader {
        shared,
        con,
        tx,
        origin,
    };
    let mut backoff = Backoff::default();
    let claim_every = reader.shared.options.lease / 2;
    let mut next_claim = tokio::time::Instant::now();
    let mut claim_cursor = "0-0".to_owned();
    // Entries delivered to this consumer name before (a restart under the same name) first.
    let mut own_pending = true;
    loop {
        if *closed.borrow() {
            return;
        }
        let round = async {
            if own_pending {
                own_pending = reader.read(Some("0")).await?;
                return Ok::<bool, redis::RedisError>(true);
            }
            if tokio::time::Instant::now() >= next_claim {
                let (next, more) = reader.claim(&claim_cursor).await?;
                claim_cursor = next;
                if !more {
                    next_claim = tokio::time::Instant::now() + claim_every;
                }
            }
            reader.read(None).await
        };
        let outcome = tokio::select! {
            _ = closed.changed() => return,
            outcome = round => outcome,
        };
        match outcome {
            Ok(true) => backoff.reset(),
            Ok(false) => return,
            Err(e) => {
                if e.code() == Some("NOGROUP") {
                    tracing::warn!(
                        "Redis consumer group is gone (server lost its data?); creating it again"
                    );
                    let _ = ensure_group(&reader.shared, &mut reader.con).await;
                } else {
                    reader.shared.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "Redis stream read failed; retrying");
                }
                tokio::select! {
                    _ = closed.changed() => return,
                    () = backoff.wait() => {}
                }
            }
        }
    }
}

impl Reader {
    /// `XREADGROUP` of new entries (`None`) or of this consumer's pending ones (`Some("0")`).
    /// Returns, for new entries, whether to go on; for pending ones, whether there were any.
    async fn read(&mut self, pending_from: Option<&str>) -> redis::RedisResult<bool> {
        let o = &self.shared.options;
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&o.group)
            .arg(&o.consumer)
            .arg("COUNT")
            .arg(o.batch);
        if pending_from.is_none() {
            cmd.arg("BLOCK").arg(o.block.as_millis() as u64);
        }
        cmd.arg("STREAMS")
            .arg(o.stream_key())
            .arg(pending_from.unwrap_or(">"));
        let reply: Option<StreamReadReply> = cmd.query_async(&mut self.con).await?;
        let entries: Vec<StreamId> = reply
            .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
            .unwrap_or_default();
        let any = !entries.is_empty();
        let attempt = if pending_from.is_some() { 2 } else { 1 };
        for entry in entries {
            // A pending entry without fields was deleted from the stream: nothing to deliver.
            if pending_from.is_some() && entry.map.is_empty() {
                self.ack_gone(&entry.id).await;
                continue;
            }
            if !self.deliver(entry, attempt).await {
                return Ok(false);
            }
        }
        Ok(if pending_from.is_some() { any } else { true })
    }

    /// `XAUTOCLAIM` of entries idle longer than the lease; returns the next cursor and whether
    /// the scan has more.
    async fn claim(&mut self, cursor: &str) -> redis::RedisResult<(String, bool)> {
        let o = &self.shared.options;
        let reply: StreamAutoClaimReply = redis::cmd("XAUTOCLAIM")
            .arg(o.stream_key())
            .arg(&o.group)
            .arg(&o.consumer)
            .arg(o.lease.as_millis() as u64)
            .arg(cursor)
            .arg("COUNT")
            .arg(o.batch)
            .query_async(&mut self.con)
            .await?;
        let claimed: Vec<StreamId> = reply
            .claimed
            .into_iter()
            .filter(|e| !self.shared.in_flight.contains(&e.id))
            .collect();
        let counts = if let (Some(first), Some(last)) = (claimed.first(), claimed.last()) {
            let pending: StreamPendingCountReply = redis::cmd("XPENDING")
                .arg(o.stream_key())
                .arg(&o.group)
                .arg(&first.id)
                .arg(&last.id)
                .arg(claimed.len().max(1) * 4)
                .arg(&o.consumer)
                .query_async(&mut self.con)
                .await?;
            pending
                .ids
                .into_iter()
                .map(|p| (p.id, p.times_delivered))
                .collect::<HashMap<_, _>>()
        } else {
            HashMap::new()
        };
        if !claimed.is_empty() {
            tracing::info!(
                count = claimed.len(),
                "Redis: reclaimed entries of a consumer whose lease expired"
            );
        }
        for entry in claimed {
            let attempt = counts.get(&entry.id).copied().unwrap_or(2).max(2);
            if !self
                .deliver(entry, u32::try_from(attempt).unwrap_or(u32::MAX))
                .await
            {
                return Ok(("0-0".to_owned(), false));
            }
        }
        let more = reply.next_stream_id != "0-0";
        Ok((reply.next_stream_id, more))
    }

    async fn ack_gone(&mut self, id: &str) {
        let o = &self.shared.options;
        let _ = redis::cmd("XACK")
            .arg(o.stream_key())
            .arg(&o.group)
            .arg(id)
            .query_async::<Value>(&mut self.con)
            .await;
    }

    /// Hands one entry to the bridge; `false` once nobody listens.
    async fn deliver(&mut self, entry: StreamId, attempt: u32) -> bool {
        let text = match entry.map.get("event") {
            Some(Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            // Not one of ours: the bridge fails to read it and dead-letters it in the end.
            _ => String::new(),
        };
        self.shared.in_flight.insert(&entry.id);
        let acker = StreamAcker {
            shared: Arc::clone(&self.shared),
            id: entry.id.clone(),
            text: text.clone(),
            attempt,
        };
        let delivery = Delivery::new(text, format!("{} {}", self.origin, entry.id))
            .with_attempt(attempt)
            .with_acker(acker);
        self.tx.send(Ok(delivery)).await.is_ok()
    }
}

/// Acknowledges one stream entry.
#[derive(Debug)]
struct StreamAcker {
    shared: Arc<Shared>,
    id: String,
    text: String,
    attempt: u32,
}

impl StreamAcker {
    async fn run(self, what: &str, pipe: redis::Pipeline) -> Result<(), TransportError> {
        let con = self.shared.commands.clone();
        let result = conn::retry(what, self.shared.options.send_timeout, || {
            let mut con = con.clone();
            let pipe = pipe.clone();
            async move { pipe.query_async::<Value>(&mut con).await }
        })
        .await;
        self.shared.in_flight.remove(&self.id);
        result.map(drop)
    }
}

impl Acker for StreamAcker {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async move {
            let o = &self.shared.options;
            let mut pipe = redis::pipe();
            pipe.cmd("XACK")
                .arg(o.stream_key())
                .arg(&o.group)
                .arg(&self.id);
            self.run("Redis XACK", pipe).await
        })
    }

    fn nack(
        self: Box<Self>,
        delay: Option<Duration>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async move {
            let o = &self.shared.options;
            // A pending entry has no field for it; the dead letter records the final reason.
            tracing::debug!(id = %self.id, reason = %reason, "bubus-redis: entry handed back");
            // The entry stays pending; an idle time of `lease - delay` makes it reclaimable
            // (by any member, this one included) once `delay` has passed.
            let idle = o.lease.saturating_sub(delay.unwrap_or_default());
            let mut pipe = redis::pipe();
            pipe.cmd("XCLAIM")
                .arg(o.stream_key())
                .arg(&o.group)
                .arg(&o.consumer)
                .arg(0)
                .arg(&self.id)
                .arg("IDLE")
                .arg(idle.as_millis() as u64)
                .arg("JUSTID");
            self.run("Redis XCLAIM (nack)", pipe).await
        })
    }

    fn dead_letter(
        self: Box<Self>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async move {
            let o = &self.shared.options;
            let (event_id, event_type) = crate::dead::ids_of(&self.text);
            let failed_at = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            let mut pipe = redis::pipe();
            pipe.atomic();
            pipe.cmd("XADD")
                .arg(o.dead_key())
                .arg("*")
                .arg("event_id")
                .arg(event_id)
                .arg("event_type")
                .arg(event_type)
                .arg("event")
                .arg(&self.text)
                .arg("reason")
                .arg(&reason)
                .arg("deliveries")
                .arg(self.attempt)
                .arg("group")
                .arg(&o.group)
                .arg("entry")
                .arg(&self.id)
                .arg("failed_at_ms")
                .arg(failed_at)
                .ignore();
            pipe.cmd("XACK")
                .arg(o.stream_key())
                .arg(&o.group)
                .arg(&self.id)
                .ignore();
            self.run("Redis dead letter", pipe).await
        })
    }
}
