//! A live monitor for [`bubus`] buses: a local web page that watches events from one or more
//! sources at once — write-ahead logs being written ([`WalSource`]), history mirrors
//! ([`SqliteSource`]), bridge transports ([`TransportSource`]), any stream of event JSON
//! ([`StreamSource`]) — from Rust, Python and TypeScript processes alike, and replays what
//! failed.
//!
//! The `bubus monitor` command (crate `bubus-cli`) is this crate behind a command line:
//!
//! ```console
//! $ bubus monitor shop.jsonl history.sqlite3 --replay-to inbox.jsonl
//! bubus monitor: http://127.0.0.1:7474/
//! ```
//!
//! # What the page shows
//!
//! * **Events**: live trees — children under their parents, across buses and processes (events
//!   are merged by `event_id`, whichever source saw them) — that grow in place; per event its
//!   type, status, the buses on its path and its timings; on selection, one row per handler
//!   with its bus, status, run time and result or error, the children, the sources that saw it,
//!   and the raw JSON. The list is virtualised (only the rows on screen are in the page), so it
//!   stays responsive with 100 000 events.
//! * **Filters**: by type, status, bus and age; search by id or by any text of the payload or
//!   of an error (done by the monitor over the whole JSON it keeps). Pause freezes the view
//!   while updates keep arriving; resume shows them. `#event=ID` in the URL opens one event.
//! * **Failures**, grouped by error type and handler, with counts, the last message and the
//!   events; replay one event or a whole group.
//! * **Statistics**: per event type and per bus, counts, events/s over 10 s and 60 s, handler
//!   and event latency percentiles (p50, p90, p99).
//! * `/metrics`: the same counts and latencies for Prometheus (OpenMetrics text).
//!
//! # Memory
//!
//! At most [`max_events`](MonitorBuilder::max_events) events are kept (100 000 by default).
//! Past that, the oldest trees whose every event completed are evicted first; trees still
//! running are kept unless the monitor is a quarter over its bound. Statistics keep counting
//! evicted events; percentiles are over the last 1 024 durations of each type or bus; at most
//! 500 types, buses and handlers get their own rows and metric labels (the rest count as
//! `(other)`).
//!
//! # Replay
//!
//! Replay sends a fresh copy of an event — same type and payload, a new id, no parent, no
//! results — to a [`ReplayTarget`]: a JSONL inbox ([`JsonlTarget`]) that the process dispatches
//! from, or a bridge transport ([`TransportTarget`]). The page asks for confirmation first; the
//! monitor links the copy to its original when the copy shows up in a source.
//!
//! # Dead letters
//!
//! The durable bridges (Redis Streams, NATS JetStream, the PostgreSQL outbox) move an event
//! that kept failing to their dead letters. Given a [`DeadLetterStore`]
//! ([`dead_letters`](MonitorBuilder::dead_letters): [`RedisDeadLetters`], [`NatsDeadLetters`],
//! [`PgDeadLetters`]), the page's "Dead letters" tab lists them — group, event, deliveries, the
//! last error, the message — and replays one or all of them after a confirmation, through the
//! engine crate's own replay: the event goes back on its stream or table with its own id, for
//! the groups to take again. Letters are read from the engine when the page asks (at most
//! [`MAX_DEAD_LETTERS`] per store), never kept.
//!
//! # Access
//!
//! The monitor binds `127.0.0.1` by default and then answers only requests addressed to a
//! loopback host name (so no web page can reach it through DNS rebinding). Bound to any other
//! address it requires an access token ([`token`](MonitorBuilder::token); one is generated when
//! none is given): the URL it prints carries it (`?token=…`; the page keeps it in a cookie), or
//! send `Authorization: Bearer TOKEN` (Prometheus: `authorization: {credentials: TOKEN}`).
//! State-changing requests must come from the page's own origin.
//!
//! # Example
//!
//! ```no_run
//! use bubus_monitor::{JsonlTarget, Monitor, SqliteSource, WalSource};
//!
//! # async fn run() -> Result<(), bubus_monitor::MonitorError> {
//! let monitor = Monitor::builder()
//!     .source(WalSource::new("shop.jsonl"))
//!     .source(SqliteSource::new("history.sqlite3"))
//!     .replay_target(JsonlTarget::new("inbox.jsonl"))
//!     .bind(([127, 0, 0, 1], 7474).into())
//!     .start()
//!     .await?;
//! println!("open {}", monitor.url());
//! monitor.wait().await;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod dead;
mod model;
mod replay;
mod server;
mod source;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

#[cfg(feature = "nats")]
#[doc(inline)]
pub use dead::NatsDeadLetters;
#[cfg(feature = "postgres")]
#[doc(inline)]
pub use dead::PgDeadLetters;
#[cfg(feature = "redis")]
#[doc(inline)]
pub use dead::RedisDeadLetters;
#[doc(inline)]
pub use dead::{DeadLetter, DeadLetterStore, MAX_DEAD_LETTERS};
#[doc(inline)]
pub use model::{
    Changes, DEFAULT_MAX_EVENTS, Detail, FailureGroup, HandlerRow, Model, Status, Summary,
};
#[doc(inline)]
pub use replay::{JsonlTarget, ReplayError, ReplayTarget, TransportTarget};
#[doc(inline)]
pub use source::{
    POLL_INTERVAL, Sink, Source, SourceStatus, SqliteSource, StreamSource, TransportSource,
    WalSource,
};
#[doc(inline)]
pub use stats::{Stats, StatsRow, StatsSnapshot};

/// The default address: `127.0.0.1:7474`.
pub const DEFAULT_ADDR: ([u8; 4], u16) = ([127, 0, 0, 1], 7474);

/// Why a monitor could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// An empty access token was given.
    #[error("the access token must not be empty")]
    EmptyToken,
}

/// What the server, the sources and the page share.
pub(crate) struct Shared {
    pub(crate) model: Mutex<Model>,
    pub(crate) notify: watch::Sender<u64>,
    pub(crate) sources: Vec<Arc<Mutex<SourceStatus>>>,
    pub(crate) targets: Vec<Box<dyn ReplayTarget>>,
    pub(crate) dead: Vec<Box<dyn DeadLetterStore>>,
    pub(crate) token: Option<String>,
    pub(crate) max_events: usize,
}

impl Shared {
    /// Wakes the pages' streams.
    pub(crate) fn changed(&self) {
        self.notify.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The live monitor: see the [crate docs](crate).
#[derive(Debug)]
pub struct Monitor {
    _private: (),
}

impl Monitor {
    /// A monitor with no source yet, to bind on [`DEFAULT_ADDR`].
    pub fn builder() -> MonitorBuilder {
        MonitorBuilder {
            sources: Vec::new(),
            targets: Vec::new(),
            dead: Vec::new(),
            addr: DEFAULT_ADDR.into(),
            token: None,
            max_events: DEFAULT_MAX_EVENTS,
        }
    }
}

/// Configures and starts a monitor.
pub struct MonitorBuilder {
    sources: Vec<Box<dyn Source>>,
    targets: Vec<Box<dyn ReplayTarget>>,
    dead: Vec<Box<dyn DeadLetterStore>>,
    addr: SocketAddr,
    token: Option<String>,
    max_events: usize,
}

impl std::fmt::Debug for MonitorBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MonitorBuilder")
            .field(
                "sources",
                &self.sources.iter().map(|s| s.name()).collect::<Vec<_>>(),
            )
            .field(
                "targets",
                &self.targets.iter().map(|t| t.name()).collect::<Vec<_>>(),
            )
            .field(
                "dead_letters",
                &self.dead.iter().map(|d| d.name()).collect::<Vec<_>>(),
            )
            .field("addr", &self.addr)
            .field("max_events", &self.max_events)
            .finish_non_exhaustive()
    }
}

impl MonitorBuilder {
    /// Adds a source of events.
    #[must_use]
    pub fn source(mut self, source: impl Source) -> Self {
        self.sources.push(Box::new(source));
        self
    }

    /// Adds a replay target (the first one is the default).
    #[must_use]
    pub fn replay_target(mut self, target: impl ReplayTarget) -> Self {
        self.targets.push(Box::new(target));
        self
    }

    /// Adds a durable bridge's dead letters: the page lists them and replays one or all of
    /// them, after a confirmation.
    #[must_use]
    pub fn dead_letters(mut self, store: impl DeadLetterStore) -> Self {
        self.dead.push(Box::new(store));
        self
    }

    /// The address to listen on (port 0: any free port; see [`RunningMonitor::local_addr`]).
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Requires this access token (always required, and generated if not given, when the
    /// address is not a loopback one).
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Keeps at most this many events (default [`DEFAULT_MAX_EVENTS`]).
    #[must_use]
    pub fn max_events(mut self, max: usize) -> Self {
        self.max_events = max.max(1);
        self
    }

    /// Binds the address, starts the sources and serves the page.
    ///
    /// # Errors
    ///
    /// [`MonitorError::Bind`] when the address cannot be listened on, [`MonitorError::EmptyToken`]
    /// for an empty token.
    pub async fn start(self) -> Result<RunningMonitor, MonitorError> {
        let token = match self.token {
            Some(t) if t.is_empty() => return Err(MonitorError::EmptyToken),
            Some(t) => Some(t),
            None if !self.addr.ip().is_loopback() => {
                Some(uuid::Uuid::new_v4().simple().to_string())
            }
            None => None,
        };
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .map_err(|source| MonitorError::Bind {
                addr: self.addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| MonitorError::Bind {
            addr: self.addr,
            source,
        })?;
        let mut model = Model::new(self.max_events);
        let mut statuses = Vec::new();
        for source in &self.sources {
            let name = source.name();
            model.add_source(name.clone());
            statuses.push(Arc::new(Mutex::new(SourceStatus {
                name,
                ..SourceStatus::default()
            })));
        }
        let (notify, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            model: Mutex::new(model),
            notify,
            sources: statuses.clone(),
            targets: self.targets,
            dead: self.dead,
            token: token.clone(),
            max_events: self.max_events,
        });
        let closers: Vec<_> = self
            .sources
            .iter()
            .filter_map(|s| s.on_shutdown())
            .collect();
        let mut tasks = Vec::new();
        for (index, (source, status)) in self.sources.into_iter().zip(statuses).enumerate() {
            let sink = Sink::new(shared.clone(), index, status);
            tasks.push(tokio::spawn(source.run(sink)));
        }
        let (stop, stopped) = oneshot::channel::<()>();
        let app = server::router(shared.clone());
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await;
            if let Err(error) = served {
                tracing::error!("the monitor's server stopped: {error}");
            }
        });
        Ok(RunningMonitor {
            local_addr,
            token,
            stop: Some(stop),
            server: Some(server),
            tasks,
            closers,
            shared,
        })
    }
}

/// A monitor serving its page. Dropping it stops it.
pub struct RunningMonitor {
    local_addr: SocketAddr,
    token: Option<String>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
    tasks: Vec<JoinHandle<()>>,
    closers: Vec<futures_util::future::BoxFuture<'static, ()>>,
    shared: Arc<Shared>,
}

/// How long shutdown waits for a source's transport to close.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl std::fmt::Debug for RunningMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningMonitor")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl RunningMonitor {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The page's URL, with the access token when there is one.
    pub fn url(&self) -> String {
        let host = if self.local_addr.ip().is_unspecified() {
            "127.0.0.1".to_owned()
        } else {
            match self.local_addr {
                SocketAddr::V4(a) => a.ip().to_string(),
                SocketAddr::V6(a) => format!("[{}]", a.ip()),
            }
        };
        let port = self.local_addr.port();
        match &self.token {
            Some(token) => format!("http://{host}:{port}/?token={token}"),
            None => format!("http://{host}:{port}/"),
        }
    }

    /// The access token, if one is required.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// How many events the monitor holds now.
    pub fn events_in_memory(&self) -> usize {
        self.shared.model.lock().len()
    }

    /// One event's detail, if it is in memory.
    pub fn event(&self, id: &str) -> Option<Detail> {
        self.shared.model.lock().detail(id)
    }

    /// Waits until the event `id` is in memory (a source read it), and returns its detail.
    /// The condition is checked again on every change the sources make, so `f` decides when
    /// the detail is the one wanted (`|d| d.summary.status == Status::Completed`).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches.
    pub async fn wait_for_event(&self, id: &str, f: impl Fn(&Detail) -> bool) -> Detail {
        let mut changed = self.shared.notify.subscribe();
        loop {
            if let Some(detail) = self.event(id).filter(&f) {
                return detail;
            }
            if changed.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Waits until every source reads ([`SourceStatus::ready`]; a stream that ended counts as
    /// done): what is written from then on is seen — a bridge transport listens from the end of
    /// its medium, so a test sends only once this returned.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: it only watches.
    pub async fn wait_ready(&self) {
        let mut changed = self.shared.notify.subscribe();
        loop {
            let all = self.shared.sources.iter().all(|s| {
                let s = s.lock();
                s.ready || s.ended
            });
            if all {
                return;
            }
            if changed.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Serves until the server stops (it does not by itself: use this with a signal, or
    /// [`shutdown`](Self::shutdown) from elsewhere).
    ///
    /// # Cancel safety
    ///
    /// Cancelling the future drops the monitor, which stops it.
    pub async fn wait(mut self) {
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    /// Stops serving (open pages are disconnected) and stops the sources (a transport source's
    /// transport is closed: its socket file removed, its listener unbound).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        for task in &self.tasks {
            task.abort();
        }
        for closer in std::mem::take(&mut self.closers) {
            let _ = tokio::time::timeout(CLOSE_WAIT, closer).await;
        }
        // Open event streams hold connections: do not wait on them forever.
        if let Some(server) = self.server.take() {
            server.abort();
            let _ = server.await;
        }
    }
}

impl Drop for RunningMonitor {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(server) = &self.server {
            server.abort();
        }
    }
}
