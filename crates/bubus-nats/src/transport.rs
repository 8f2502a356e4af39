//! [`NatsTransport`]: one transport, two modes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use bubus::bridge::{BoxFuture, Capabilities, DeliveryStream, Message, Transport, TransportError};
use tokio::sync::watch;

use crate::config::{
    DEFAULT_GROUP, DEFAULT_SUBJECT, Mode, Options, stream_name_for, valid_name, valid_subject,
};
use crate::dedup::NatsDedup;
use crate::{core, durable};

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) options: Options,
    pub(crate) client: async_nats::Client,
    pub(crate) js: jetstream::Context,
    pub(crate) closed: watch::Sender<bool>,
    pub(crate) listening: AtomicBool,
    pub(crate) reconnects: Arc<AtomicU64>,
    pub(crate) setup_done: tokio::sync::OnceCell<()>,
}

/// A bubus bridge transport over NATS: the family's core subject ([`Mode::Core`]) or a
/// JetStream stream and durable consumer ([`Mode::JetStream`]).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use bubus::EventBus;
/// use bubus::bridge::Bridge;
/// use bubus_nats::NatsTransport;
///
/// let bus = EventBus::new("Orders");
/// // The family's form: a server and a subject.
/// let plain = NatsTransport::core("nats://127.0.0.1:4222", "orders").await?;
/// // At-least-once, shared by every process of the group `workers`.
/// let durable = NatsTransport::builder("nats://127.0.0.1:4222", "orders")
///     .jetstream()
///     .group("workers")
///     .build()
///     .await?;
/// let bridge = Bridge::builder(durable.clone()).dedup(std::sync::Arc::new(durable.dedup_store())).build();
/// bridge.attach(&bus);
/// bridge.start().await?;
/// # drop(plain); Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct NatsTransport {
    shared: Arc<Shared>,
}

/// Options for a [`NatsTransport`]; from [`NatsTransport::builder`].
#[derive(Debug)]
#[must_use]
pub struct NatsBuilder {
    server: String,
    subject: String,
    mode: Mode,
    stream: Option<String>,
    group: String,
    lease: Duration,
    batch: usize,
    dedup_ttl: Duration,
    claim_lease: Option<Duration>,
    duplicate_window: Duration,
    send_timeout: Duration,
    from_start: bool,
    max_messages: i64,
}

impl NatsBuilder {
    /// Plain mode (the default): the family's core NATS subject, at-most-once.
    pub fn core(mut self) -> Self {
        self.mode = Mode::Core;
        self
    }

    /// Durable mode: a JetStream stream on the subject and a durable consumer.
    pub fn jetstream(mut self) -> Self {
        self.mode = Mode::JetStream;
        self
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The JetStream stream's name (default `BUBUS_<subject>`).
    pub fn stream(mut self, name: impl Into<String>) -> Self {
        self.stream = Some(name.into());
        self
    }

    /// The durable consumer (default `bubus`): processes with the same one share the events;
    /// give each process its own to broadcast.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = group.into();
        self
    }

    /// The consumer's ack wait (default 30 s): a delivery not acked, nor kept alive by the
    /// progress acks a receiver sends every third of it while the event runs, is delivered
    /// again (to any member).
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(300));
        self
    }

    /// Messages pulled per request (default 64).
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.clamp(1, 10_000);
        self
    }

    /// How long the de-duplication bucket remembers a handled event (default 24 h).
    pub fn dedup_ttl(mut self, ttl: Duration) -> Self {
        self.dedup_ttl = ttl.max(Duration::from_secs(1));
        self
    }

    /// How long a [dedup store](NatsTransport::dedup_store)'s claim on an event lasts without
    /// renewal (default: three leases). While a member's handlers run it renews the claim every
    /// third of this; a copy of the event delivered to another member meanwhile (a redelivery
    /// after a cut connection outlasted the ack wait) waits instead of running again. A claim
    /// of a member that died is taken over after this. Claims carry their expiry as the
    /// claiming machine's clock reads it: members' clocks must agree to well within this.
    pub fn claim_lease(mut self, lease: Duration) -> Self {
        self.claim_lease = Some(lease.max(Duration::from_millis(100)));
        self
    }

    /// The stream's duplicate window for `Nats-Msg-Id` (default 2 min), used when the stream
    /// is created.
    pub fn duplicate_window(mut self, window: Duration) -> Self {
        self.duplicate_window = window;
        self
    }

    /// How long a send keeps retrying while the server is unreachable (default 30 s).
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// A consumer created by this bridge starts at the beginning of the stream, so it also
    /// takes the messages published before it existed (the default; deliver policy `all`). A
    /// consumer that already exists keeps its position either way.
    pub fn from_start(mut self) -> Self {
        self.from_start = true;
        self
    }

    /// A consumer created by this bridge only takes the messages published after it was
    /// created (deliver policy `new`), e.g. a monitor that should not replay the stream.
    pub fn from_now(mut self) -> Self {
        self.from_start = false;
        self
    }

    /// The stream's cap in messages (default 1 000 000, oldest dropped; `-1`: none).
    pub fn max_messages(mut self, n: i64) -> Self {
        self.max_messages = n;
        self
    }

    /// Connects (in the background: a server that is not up yet is retried with backoff) and
    /// builds the transport.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] for a bad server address, subject or name.
    pub async fn build(self) -> Result<NatsTransport, TransportError> {
        if !valid_subject(&self.subject) {
            return Err(TransportError::Config(format!(
                "invalid NATS subject {:?}",
                self.subject
            )));
        }
        let stream = self
            .stream
            .unwrap_or_else(|| stream_name_for(&self.subject));
        if !valid_name(&stream) || !valid_name(&self.group) {
            return Err(TransportError::Config(format!(
                "NATS stream and group names may hold only letters, digits, '_' and '-': {stream:?}, {:?}",
                self.group
            )));
        }
        let reconnects = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&reconnects);
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(5))
            .ping_interval(Duration::from_secs(5))
            .reconnect_delay_callback(|attempts| {
                let base = Duration::from_millis(50).saturating_mul(1 << attempts.min(7));
                base.min(Duration::from_secs(5))
                    .mul_f64(0.5 + fastrand::f64() / 2.0)
            })
            .event_callback(move |event| {
                let counter = Arc::clone(&counter);
                async move {
                    match event {
                        async_nats::Event::Disconnected => {
                            tracing::warn!("NATS connection lost; reconnecting");
                        }
                        async_nats::Event::Connected => {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        other => tracing::debug!(event = %other, "NATS"),
                    }
                }
            })
            .connect(self.server.as_str())
            .await
            .map_err(|e| TransportError::Config(format!("NATS server {:?}: {e}", self.server)))?;
        let js = jetstream::new(client.clone());
        let options = Options {
            server: self.server,
            subject: self.subject,
            mode: self.mode,
            stream,
            group: self.group,
            lease: self.lease,
            batch: self.batch,
            dedup_ttl: self.dedup_ttl,
            claim_lease: self.claim_lease.unwrap_or(self.lease * 3),
            duplicate_window: self.duplicate_window,
            send_timeout: self.send_timeout,
            from_start: self.from_start,
            max_messages: self.max_messages,
        };
        Ok(NatsTransport {
            shared: Arc::new(Shared {
                options,
                client,
                js,
                closed: watch::channel(false).0,
                listening: AtomicBool::new(false),
                reconnects,
                setup_done: tokio::sync::OnceCell::new(),
            }),
        })
    }
}

impl NatsTransport {
    /// Options for a transport on `server` (`nats://host:port`) and `subject`.
    pub fn builder(server: &str, subject: &str) -> NatsBuilder {
        NatsBuilder {
            server: server.to_owned(),
            subject: if subject.is_empty() {
                DEFAULT_SUBJECT.to_owned()
            } else {
                subject.to_owned()
            },
            mode: Mode::Core,
            stream: None,
            group: DEFAULT_GROUP.to_owned(),
            lease: Duration::from_secs(30),
            batch: 64,
            dedup_ttl: Duration::from_secs(24 * 3600),
            claim_lease: None,
            duplicate_window: Duration::from_secs(120),
            send_timeout: Duration::from_secs(30),
            from_start: true,
            max_messages: 1_000_000,
        }
    }

    /// The family's plain mode: core NATS on `subject`, at-most-once.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] for a bad server address or subject.
    pub async fn core(server: &str, subject: &str) -> Result<Self, TransportError> {
        Self::builder(server, subject).core().build().await
    }

    /// Durable mode with the default stream and consumer.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] for a bad server address or subject.
    pub async fn jetstream(server: &str, subject: &str) -> Result<Self, TransportError> {
        Self::builder(server, subject).jetstream().build().await
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.shared.options.mode
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.shared.options.subject
    }

    /// The JetStream stream (durable mode).
    pub fn stream_name(&self) -> &str {
        &self.shared.options.stream
    }

    /// The durable consumer (durable mode).
    pub fn group(&self) -> &str {
        &self.shared.options.group
    }

    /// How many times the client (re)connected.
    pub fn connects(&self) -> u64 {
        self.shared.reconnects.load(Ordering::Relaxed)
    }

    /// The persisted de-duplication store of this stream and consumer: a JetStream key-value
    /// bucket (`bubus_seen_<stream>_<group>`, entries expire after the dedup TTL) holding each
    /// event's claim while a member's handlers run and its mark once they completed, on top of
    /// the stream's own `Nats-Msg-Id` duplicate window. Each store is one claim owner.
    pub fn dedup_store(&self) -> NatsDedup {
        NatsDedup::new(Arc::clone(&self.shared), uuid::Uuid::new_v4())
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl Transport for NatsTransport {
    fn kind(&self) -> &str {
        "NATSEventBridge"
    }

    fn describe(&self) -> String {
        let o = &self.shared.options;
        match o.mode {
            Mode::Core => format!("nats:{} subject {}", o.server, o.subject),
            Mode::JetStream => format!(
                "nats:{} subject {} stream {} consumer {}",
                o.server, o.subject, o.stream, o.group
            ),
        }
    }

    fn capabilities(&self) -> Capabilities {
        match self.shared.options.mode {
            Mode::Core => Capabilities::at_most_once()
                .with_receives_own(true)
                .with_ordered(true),
            Mode::JetStream => Capabilities::at_most_once()
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
                Mode::Core => core::send(&self.shared, message).await,
                Mode::JetStream => durable::send(&self.shared, message).await,
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
                    "this NATS transport is already listening".into(),
                ));
            }
            let shared = Arc::clone(&self.shared);
            let result = match shared.options.mode {
                Mode::Core => core::listen(shared).await,
                Mode::JetStream => durable::listen(shared).await,
            };
            if result.is_err() {
                self.shared.listening.store(false, Ordering::SeqCst);
            }
            result
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.shared
                .client
                .flush()
                .await
                .map_err(|e| TransportError::other("NATS flush", e))
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            if self.shared.closed.send_replace(true) {
                return Ok(());
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), self.shared.client.flush()).await;
            Ok(())
        })
    }
}
