//! [`RedisTransport`]: one transport, two modes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bubus::bridge::{BoxFuture, Capabilities, DeliveryStream, Message, Transport, TransportError};
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use crate::config::{DEFAULT_CHANNEL, DEFAULT_GROUP, Mode, Options, RedisUrl, default_consumer};
use crate::dedup::RedisDedup;
use crate::{conn, pubsub, streams};

/// State shared by the transport, its listener task and its ackers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) options: Options,
    pub(crate) client: redis::Client,
    /// Sends, acks, claims: never a blocking command.
    pub(crate) commands: ConnectionManager,
    pub(crate) closed: watch::Sender<bool>,
    pub(crate) listening: AtomicBool,
    pub(crate) reconnects: AtomicU64,
    pub(crate) in_flight: streams::InFlight,
}

/// A bubus bridge transport over Redis: the family's pub/sub channel ([`Mode::PubSub`]) or a
/// Redis Stream read through a consumer group ([`Mode::Streams`]).
///
/// Attaching one is the same call as for any transport:
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use bubus::EventBus;
/// use bubus::bridge::Bridge;
/// use bubus_redis::RedisTransport;
///
/// let bus = EventBus::new("Orders");
/// // The family's form: redis://host:port/<db>/<channel> (channel `abxbus_events` by default).
/// let plain = RedisTransport::pubsub("redis://127.0.0.1:6379/0/orders")?;
/// // At-least-once, shared by every process of the group `workers`.
/// let durable = RedisTransport::builder("redis://127.0.0.1:6379/0/orders")?
///     .streams()
///     .group("workers")
///     .build()?;
/// let bridge = Bridge::builder(durable).dedup(std::sync::Arc::new(
///     RedisTransport::streams("redis://127.0.0.1:6379/0/orders")?.dedup_store(),
/// )).build();
/// bridge.attach(&bus);
/// bridge.start().await?;
/// # drop(plain); Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct RedisTransport {
    shared: Arc<Shared>,
}

/// Options for a [`RedisTransport`]; from [`RedisTransport::builder`].
#[derive(Debug)]
#[must_use]
pub struct RedisBuilder {
    url: RedisUrl,
    channel: Option<String>,
    mode: Mode,
    group: String,
    consumer: Option<String>,
    lease: Duration,
    batch: usize,
    block: Duration,
    max_len: Option<usize>,
    dedup_ttl: Duration,
    claim_lease: Option<Duration>,
    send_timeout: Duration,
    duplicate_window: Duration,
    from_start: bool,
}

impl RedisBuilder {
    /// The channel (and in durable mode the stream `bubus:<channel>`); precedence as in the
    /// family: this, then the URL's second path segment, then `abxbus_events`.
    pub fn channel(mut self, channel: impl Into<String>) -> Self {
        self.channel = Some(channel.into());
        self
    }

    /// Plain mode (the default): the family's pub/sub, at-most-once.
    pub fn pubsub(mut self) -> Self {
        self.mode = Mode::PubSub;
        self
    }

    /// Durable mode: a Redis Stream and a consumer group, at-least-once.
    pub fn streams(mut self) -> Self {
        self.mode = Mode::Streams;
        self
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The consumer group (durable mode; default `bubus`). Processes in one group share the
    /// events (each is handled by one of them); give each process its own group to broadcast.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// This consumer's name in the group (default: host, pid and a random suffix). A name kept
    /// across restarts gets its own unacked entries back at once instead of after the lease.
    pub fn consumer(mut self, consumer: impl Into<String>) -> Self {
        self.consumer = Some(consumer.into());
        self
    }

    /// How long an entry delivered to a consumer stays its own without a heartbeat (default
    /// 30 s). A consumer renews the lease of what it is handling every third of it; entries of a
    /// consumer that died are reclaimed by the others once their lease has passed.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// Entries read per round trip (default 64).
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.clamp(1, 10_000);
        self
    }

    /// Approximate cap of the stream's length (`XADD … MAXLEN ~ n`); default 1 000 000.
    /// `None` keeps everything. Entries trimmed before a group read them are lost to it.
    pub fn max_len(mut self, max_len: Option<usize>) -> Self {
        self.max_len = max_len;
        self
    }

    /// How long the de-duplication store remembers a handled event (default 24 h).
    pub fn dedup_ttl(mut self, ttl: Duration) -> Self {
        self.dedup_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// How long a [dedup store](RedisTransport::dedup_store)'s claim on an event lasts without
    /// renewal (default: three leases). While a member's handlers run it renews the claim every
    /// third of this; a copy of the event delivered to another member meanwhile (a redelivery
    /// after a cut connection outlasted the lease) waits instead of running again. A claim of a
    /// member that died is taken over after this.
    pub fn claim_lease(mut self, lease: Duration) -> Self {
        self.claim_lease = Some(lease.max(Duration::from_millis(100)));
        self
    }

    /// How long a send keeps retrying while the server is unreachable (default 30 s).
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// How long a sent event's id is remembered by the server so that sending it again adds
    /// nothing (default 2 min; the `Nats-Msg-Id` window of Redis).
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window.max(Duration::from_secs(1));
        self
    }

    /// A group created by this bridge starts at the beginning of the stream, so it also takes
    /// the entries added before it existed (the default; `XGROUP CREATE … 0`). A group that
    /// already exists keeps its position either way.
    pub fn from_start(mut self) -> Self {
        self.from_start = true;
        self
    }

    /// A group created by this bridge only takes the entries added after it was created
    /// (`XGROUP CREATE … $`), e.g. a monitor that should not replay the stream's history.
    pub fn from_now(mut self) -> Self {
        self.from_start = false;
        self
    }

    /// Builds the transport (no connection is made until it is used).
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] when the URL or a name is not usable.
    pub fn build(self) -> Result<RedisTransport, TransportError> {
        let channel = self
            .channel
            .or(self.url.channel.clone())
            .unwrap_or_else(|| DEFAULT_CHANNEL.to_owned());
        if channel.is_empty() || self.group.is_empty() {
            return Err(TransportError::Config(
                "Redis channel and group must not be empty".into(),
            ));
        }
        let client = redis::Client::open(self.url.connect.as_str())
            .map_err(|e| TransportError::Config(format!("Redis URL: {e}")))?;
        let commands = conn::manager(&client, Some(Duration::from_secs(10)))?;
        let options = Options {
            url: self.url,
            channel,
            mode: self.mode,
            group: self.group,
            consumer: self.consumer.unwrap_or_else(default_consumer),
            lease: self.lease,
            batch: self.batch,
            block: self.block,
            max_len: self.max_len,
            dedup_ttl: self.dedup_ttl,
            claim_lease: self.claim_lease.unwrap_or(self.lease * 3),
            send_timeout: self.send_timeout,
            duplicate_window: self.duplicate_window,
            from_start: self.from_start,
        };
        Ok(RedisTransport {
            shared: Arc::new(Shared {
                options,
                client,
                commands,
                closed: watch::channel(false).0,
                listening: AtomicBool::new(false),
                reconnects: AtomicU64::new(0),
                in_flight: streams::InFlight::default(),
            }),
        })
    }
}

impl RedisTransport {
    /// Options for a transport on `url` (`redis[s]://[user:pass@]host:port[/<db>[/<channel>]]`).
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] when the URL is not the family's form.
    pub fn builder(url: &str) -> Result<RedisBuilder, TransportError> {
        Ok(RedisBuilder {
            url: RedisUrl::parse(url)?,
            channel: None,
            mode: Mode::PubSub,
            group: DEFAULT_GROUP.to_owned(),
            consumer: None,
            lease: Duration::from_secs(30),
            batch: 64,
            block: Duration::from_secs(2),
            max_len: Some(1_000_000),
            dedup_ttl: Duration::from_secs(24 * 3600),
            claim_lease: None,
            send_timeout: Duration::from_secs(30),
            duplicate_window: Duration::from_secs(120),
            from_start: true,
        })
    }

    /// The family's plain mode on `url`: pub/sub, at-most-once.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] when the URL is not the family's form.
    pub fn pubsub(url: &str) -> Result<Self, TransportError> {
        Self::builder(url)?.pubsub().build()
    }

    /// Durable mode on `url` with the default group `bubus`.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] when the URL is not the family's form.
    pub fn streams(url: &str) -> Result<Self, TransportError> {
        Self::builder(url)?.streams().build()
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.shared.options.mode
    }

    /// The channel (plain mode) whose stream is `bubus:<channel>` (durable mode).
    pub fn channel(&self) -> &str {
        &self.shared.options.channel
    }

    /// The consumer group (durable mode).
    pub fn group(&self) -> &str {
        &self.shared.options.group
    }

    /// This consumer's name in the group.
    pub fn consumer(&self) -> &str {
        &self.shared.options.consumer
    }

    /// How often the listener lost its connection and reconnected.
    pub fn reconnects(&self) -> u64 {
        self.shared.reconnects.load(Ordering::Relaxed)
    }

    /// The persisted de-duplication store of this channel and group: one key per event
    /// (`bubus:<channel>:seen:<group>:<event_id>`) holding a member's claim while its handlers
    /// run (expiring after the [claim lease](RedisBuilder::claim_lease)) and, once they
    /// completed, the mark that it was handled (expiring after the dedup TTL) — so every process
    /// of the group, and a restarted one, runs each event once. Each store is one claim owner.
    pub fn dedup_store(&self) -> RedisDedup {
        RedisDedup::new(Arc::clone(&self.shared), uuid::Uuid::new_v4())
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Transport for RedisTransport {
    fn kind(&self) -> &str {
        "RedisEventBridge"
    }

    fn describe(&self) -> String {
        let o = &self.shared.options;
        match o.mode {
            Mode::PubSub => format!("redis:{} channel {}", o.url.connect, o.channel),
            Mode::Streams => format!(
                "redis:{} stream {} group {} consumer {}",
                o.url.connect,
                o.stream_key(),
                o.group,
                o.consumer
            ),
        }
    }

    fn capabilities(&self) -> Capabilities {
        match self.shared.options.mode {
            Mode::PubSub => Capabilities::at_most_once()
                .with_receives_own(true)
                .with_ordered(true),
            Mode::Streams => Capabilities::at_most_once()
                .with_durable(true)
                .with_acks(true)
                .with_redelivery(true)
                .with_dead_letters(true)
                .with_receives_own(true)
                .with_ordered(true),
        }
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            if *self.shared.closed.borrow() {
                return Err(TransportError::Closed);
            }
            match self.shared.options.mode {
                Mode::PubSub => pubsub::send(&self.shared, message).await,
                Mode::Streams => streams::send(&self.shared, message).await,
            }
        })
    }

    fn listen(&self) -> BoxFuture<'_, Result<DeliveryStream, TransportError>> {
        Box::pin(async move {
            if *self.shared.closed.borrow() {
                return Err(TransportError::Closed);
            }
            if self.shared.listening.swap(true, Ordering::SeqCst) {
                return Err(TransportError::Config(
                    "this Redis transport is already listening".into(),
                ));
            }
            let shared = Arc::clone(&self.shared);
            let result = match shared.options.mode {
                Mode::PubSub => pubsub::listen(shared).await,
                Mode::Streams => streams::listen(shared).await,
            };
            if result.is_err() {
                self.shared.listening.store(false, Ordering::SeqCst);
            }
            result
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.shared.closed.send_replace(true);
            Ok(())
        })
    }
}
