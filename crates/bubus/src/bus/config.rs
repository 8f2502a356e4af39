//! Bus configuration, its builder, and lock domains.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::lock::FairLock;
use uuid::Uuid;

use super::EventBus;
use crate::event::{EventConcurrency, HandlerCompletion, HandlerConcurrency, Ttl};
use crate::middleware::Middleware;

/// A bus's defaults. Events resolve every unset option against the bus processing them, when it
/// processes them. Read it with [`EventBus::config`]; set it with [`EventBus::builder`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BusConfig {
    /// Default event concurrency. Default: bus-serial.
    pub event_concurrency: EventConcurrency,
    /// Default handler concurrency. Default: serial.
    pub event_handler_concurrency: HandlerConcurrency,
    /// Default handler completion. Default: all.
    pub event_handler_completion: HandlerCompletion,
    /// Default event timeout (`None`: no timeout). Default: 60 s.
    pub event_timeout: Option<Duration>,
    /// Slow-event warning threshold. Default: 300 s.
    pub event_slow_timeout: Option<Duration>,
    /// Slow-handler warning threshold. Default: 30 s.
    pub event_handler_slow_timeout: Option<Duration>,
    /// How many events the history keeps (`None`: unbounded; `Some(0)`: only in-flight events).
    /// Default: 100.
    pub max_history_size: Option<usize>,
    /// The family's `max_history_drop`: what to do when the history is full and no event in it
    /// has completed. `false` (default, [`HistoryFull::Reject`]) refuses the dispatch with
    /// [`DispatchError::HistoryFull`](crate::DispatchError::HistoryFull); `true`
    /// ([`HistoryFull::DropOldest`]) evicts the oldest events even though they have not
    /// completed. Completed events are always evicted first, in both modes. Set it with
    /// [`EventBusBuilder::history_full`].
    pub max_history_drop: bool,
    /// How long a completed event stays in the history (abxbus 2.5's `event_ttl`): `None`
    /// (default) or [`Ttl::Never`] until evicted, [`Ttl::After`] that long after it completed.
    /// An event's own `event_ttl` overrides it. See [`EventBusBuilder::event_ttl`].
    pub event_ttl: Option<Ttl>,
    /// How long the results this bus's handlers left on a completed event stay on it (abxbus
    /// 2.5's `event_result_ttl`); the event's own value and a handler's `handler_result_ttl`
    /// override it. `None`: until the event is evicted (default).
    pub event_result_ttl: Option<Ttl>,
    /// Record where each handler was registered (`file:line`). Default: true; turn it off with
    /// [`EventBusBuilder::disable_handler_file_paths`].
    pub event_handler_detect_file_paths: bool,
    /// How many times one handler may re-enter itself through nested events: a handler whose
    /// chain of ancestor events was already dispatched this many times by the same handler gets
    /// [`DispatchError::HandlerRecursion`](crate::DispatchError::HandlerRecursion) from the next
    /// dispatch. `None` (default): no limit — a chain of handlers awaiting children may be as
    /// deep as memory allows.
    pub max_handler_recursion_depth: Option<usize>,
    /// Log a `tracing` warning when a handler is registered for a pattern that already has a
    /// handler of the same name (results keyed by handler name then keep only one of them) —
    /// once per name and pattern. Default: true, as in abxbus 2.5; turn it off with
    /// [`EventBusBuilder::disable_duplicate_handler_name_warning`].
    pub warn_on_duplicate_handler_names: bool,
    /// Keys of the snapshot a restored bus was read from that this version does not know:
    /// written back by its snapshots.
    pub(crate) snapshot_extra: crate::wire::extra::UnknownKeys,
}

impl Default for BusConfig {
    fn default() -> Self {
        BusConfig {
            event_concurrency: EventConcurrency::BusSerial,
            event_handler_concurrency: HandlerConcurrency::Serial,
            event_handler_completion: HandlerCompletion::All,
            event_timeout: Some(Duration::from_secs(60)),
            event_slow_timeout: Some(Duration::from_secs(300)),
            event_handler_slow_timeout: Some(Duration::from_secs(30)),
            max_history_size: Some(100),
            max_history_drop: false,
            event_ttl: None,
            event_result_ttl: None,
            event_handler_detect_file_paths: true,
            max_handler_recursion_depth: None,
            warn_on_duplicate_handler_names: true,
            snapshot_extra: None,
        }
    }
}

/// What a dispatch does when the bus's history is full and none of its events has completed:
/// the family's `max_history_drop` (`False` is [`Reject`](Self::Reject), `True` is
/// [`DropOldest`](Self::DropOldest)). Set it with [`EventBusBuilder::history_full`]; completed
/// events are always evicted first, whichever is chosen.
///
/// ```
/// use bubus::{DispatchError, DynEvent, EventBus, bus::HistoryFull};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let strict = EventBus::builder("Strict").max_history_size(Some(1)).build();
/// let _first = strict.dispatch(DynEvent::new("Job", json!({}))?)?; // not processed yet
/// let refused = strict.dispatch(DynEvent::new("Job", json!({}))?);
/// assert!(matches!(refused, Err(DispatchError::HistoryFull { .. })));
///
/// let lossy = EventBus::builder("Lossy")
///     .max_history_size(Some(1))
///     .history_full(HistoryFull::DropOldest)
///     .build();
/// let _first = lossy.dispatch(DynEvent::new("Job", json!({}))?)?;
/// let second = lossy.dispatch(DynEvent::new("Job", json!({}))?)?; // the first leaves the history
/// second.await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HistoryFull {
    /// Refuse the dispatch with
    /// [`DispatchError::HistoryFull`](crate::DispatchError::HistoryFull) (the default;
    /// `max_history_drop=False`).
    #[default]
    Reject,
    /// Evict the oldest events even though they have not completed; they still run to
    /// completion, outside the history (`max_history_drop=True`).
    DropOldest,
}

/// The scope of `global-serial` event concurrency: every bus in one domain processes at most one
/// global-serial event at a time.
///
/// Buses use [`LockDomain::process`] unless built with another one, so tests (or independent
/// subsystems) can make their own domain and never contend with the rest of the process.
#[derive(Clone)]
pub struct LockDomain {
    pub(crate) lock: Arc<FairLock>,
}

impl LockDomain {
    /// A new, independent domain.
    pub fn new() -> Self {
        LockDomain {
            lock: Arc::new(FairLock::new()),
        }
    }

    /// The process-wide default domain.
    pub fn process() -> Self {
        static PROCESS: OnceLock<LockDomain> = OnceLock::new();
        PROCESS.get_or_init(LockDomain::new).clone()
    }
}

impl Default for LockDomain {
    fn default() -> Self {
        LockDomain::process()
    }
}

impl fmt::Debug for LockDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LockDomain({:p})", Arc::as_ptr(&self.lock))
    }
}

impl PartialEq for LockDomain {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.lock, &other.lock)
    }
}

/// Builds an [`EventBus`] with non-default options.
///
/// ```
/// use bubus::{EventBus, event::EventConcurrency};
///
/// let bus = EventBus::builder("Orders")
///     .event_concurrency(EventConcurrency::Parallel)
///     .max_history_size(Some(1_000))
///     .event_timeout(None)
///     .build();
/// assert_eq!(bus.config().max_history_size, Some(1_000));
/// ```
#[derive(Clone, Debug)]
#[must_use = "call .build() to create the bus"]
pub struct EventBusBuilder {
    pub(crate) name: String,
    pub(crate) id: Option<Uuid>,
    pub(crate) config: BusConfig,
    pub(crate) domain: Option<LockDomain>,
    pub(crate) middlewares: Middlewares,
}

/// The middlewares of a bus, in order.
#[derive(Clone, Default)]
pub(crate) struct Middlewares(pub(crate) Vec<Arc<dyn Middleware>>);

impl fmt::Debug for Middlewares {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} middleware(s)", self.0.len())
    }
}

impl EventBusBuilder {
    pub(crate) fn new(name: impl Into<String>) -> Self {
        EventBusBuilder {
            name: name.into(),
            id: None,
            config: BusConfig::default(),
            domain: None,
            middlewares: Middlewares::default(),
        }
    }

    /// Use this id instead of a new UUIDv7 (labels and restored snapshots depend on it).
    pub fn id(mut self, id: Uuid) -> Self {
        self.id = Some(id);
        self
    }

    /// Default event concurrency.
    pub fn event_concurrency(mut self, mode: EventConcurrency) -> Self {
        self.config.event_concurrency = mode;
        self
    }

    /// Default handler concurrency.
    pub fn event_handler_concurrency(mut self, mode: HandlerConcurrency) -> Self {
        self.config.event_handler_concurrency = mode;
        self
    }

    /// Default handler completion.
    pub fn event_handler_completion(mut self, mode: HandlerCompletion) -> Self {
        self.config.event_handler_completion = mode;
        self
    }

    /// Default event timeout; `None` for none.
    pub fn event_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.config.event_timeout = timeout;
        self
    }

    /// Slow-event warning threshold; `None` for none.
    pub fn event_slow_timeout(mut self, threshold: Option<Duration>) -> Self {
        self.config.event_slow_timeout = threshold;
        self
    }

    /// Slow-handler warning threshold; `None` for none.
    pub fn event_handler_slow_timeout(mut self, threshold: Option<Duration>) -> Self {
        self.config.event_handler_slow_timeout = threshold;
        self
    }

    /// History bound: `None` for unbounded, `Some(0)` to keep only in-flight events.
    pub fn max_history_size(mut self, size: Option<usize>) -> Self {
        self.config.max_history_size = size;
        self
    }

    /// What a dispatch does when the history is full of unfinished events (the family's
    /// `max_history_drop`): [`HistoryFull::Reject`] (the default) refuses it,
    /// [`HistoryFull::DropOldest`] evicts the oldest of them.
    pub fn history_full(mut self, policy: HistoryFull) -> Self {
        self.config.max_history_drop = policy == HistoryFull::DropOldest;
        self
    }

    /// Completed events leave the history this long after they completed (abxbus 2.5's
    /// `event_ttl`): a [`Duration`] ([`Duration::ZERO`]: at completion) or [`Ttl::Never`]
    /// (as when unset, the default). An event's own TTL ([`EventHandle::with_event_ttl`](crate::EventHandle::with_event_ttl))
    /// overrides it.
    ///
    /// Expiry happens at the bus's cleanup points — a dispatch, a completion, a read of the
    /// history (`event_history`, `find`, `filter`, …) — not on a timer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bubus::{DynEvent, EventBus};
    /// use serde_json::json;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), bubus::Error> {
    /// let bus = EventBus::builder("Recent").event_ttl(Duration::from_secs(60)).build();
    /// bus.dispatch(DynEvent::new("Tick", json!({})).unwrap())?.await?;
    /// assert_eq!(bus.event_history().len(), 1);
    /// tokio::time::sleep(Duration::from_secs(61)).await;
    /// assert!(bus.event_history().is_empty());
    /// # Ok(()) }
    /// ```
    pub fn event_ttl(mut self, ttl: impl Into<Ttl>) -> Self {
        self.config.event_ttl = Some(ttl.into());
        self
    }

    /// The results this bus's handlers leave on completed events are removed from them this
    /// long after the event completed (abxbus 2.5's `event_result_ttl`; unset: never, the
    /// default). The event's own value and a handler's
    /// [`result_ttl`](crate::handler::HandlerOptions::result_ttl) override it.
    pub fn event_result_ttl(mut self, ttl: impl Into<Ttl>) -> Self {
        self.config.event_result_ttl = Some(ttl.into());
        self
    }

    /// Do not record the `file:line` of each handler registration (the family's
    /// `event_handler_detect_file_paths=False`): handlers' `handler_file_path` stays unset, and
    /// snapshots carry no registration sites. Recording is on by default.
    pub fn disable_handler_file_paths(mut self) -> Self {
        self.config.event_handler_detect_file_paths = false;
        self
    }

    /// How many times one handler may re-enter itself through nested events (see
    /// [`BusConfig::max_handler_recursion_depth`]); `None` for no limit (the default).
    pub fn max_handler_recursion_depth(mut self, depth: Option<usize>) -> Self {
        self.config.max_handler_recursion_depth = depth;
        self
    }

    /// Do not warn when a handler's name is already registered for its pattern (the family's
    /// `warn_on_duplicate_handler_names=False`; see
    /// [`BusConfig::warn_on_duplicate_handler_names`]). The warning is on by default.
    pub fn disable_duplicate_handler_name_warning(mut self) -> Self {
        self.config.warn_on_duplicate_handler_names = false;
        self
    }

    /// The domain whose global lock `global-serial` events take.
    pub fn lock_domain(mut self, domain: LockDomain) -> Self {
        self.domain = Some(domain);
        self
    }

    /// Adds a middleware; several run in the order added. See [`crate::middleware`].
    pub fn middleware(mut self, middleware: Arc<dyn Middleware>) -> Self {
        self.middlewares.0.push(middleware);
        self
    }

    /// Creates the bus. It starts processing on its first dispatch.
    pub fn build(self) -> EventBus {
        EventBus::from_builder(self)
    }
}
