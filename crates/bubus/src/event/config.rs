//! Per-event configuration and the status/mode enums shared by events, handlers and buses.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where an event is in its life: the only three states an event has, in both reference runtimes.
///
/// An event never has an error state: failures are recorded on its handler results.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventStatus {
    /// Dispatched, not yet picked up by any bus.
    Pending,
    /// At least one handler started on some bus.
    Started,
    /// Every handler on every bus it reached is done and every descendant event is completed.
    Completed,
}

impl EventStatus {
    /// The wire spelling (`"pending"`, `"started"`, `"completed"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            EventStatus::Pending => "pending",
            EventStatus::Started => "started",
            EventStatus::Completed => "completed",
        }
    }
}

impl fmt::Display for EventStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How events on a bus may overlap (`event_concurrency`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventConcurrency {
    /// One event at a time across every bus of the same lock domain.
    #[serde(rename = "global-serial")]
    GlobalSerial,
    /// One event at a time on each bus; different buses overlap. The default.
    #[default]
    #[serde(rename = "bus-serial")]
    BusSerial,
    /// Events on the same bus overlap.
    #[serde(rename = "parallel")]
    Parallel,
}

impl EventConcurrency {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            EventConcurrency::GlobalSerial => "global-serial",
            EventConcurrency::BusSerial => "bus-serial",
            EventConcurrency::Parallel => "parallel",
        }
    }
}

/// How the handlers of one event may overlap (`event_handler_concurrency`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlerConcurrency {
    /// One handler at a time per event, in handler order, across every bus the event reached.
    #[default]
    Serial,
    /// Every handler of the event starts at once.
    Parallel,
}

impl HandlerConcurrency {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            HandlerConcurrency::Serial => "serial",
            HandlerConcurrency::Parallel => "parallel",
        }
    }
}

/// When an event's handler phase on a bus is over (`event_handler_completion`).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlerCompletion {
    /// After every handler finished.
    #[default]
    All,
    /// After the first handler that returns a non-null value without error; the rest are cancelled.
    First,
}

impl HandlerCompletion {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            HandlerCompletion::All => "all",
            HandlerCompletion::First => "first",
        }
    }
}

/// The configuration an event carries (the reference's `event_*` config fields).
///
/// Every field is optional: `None` means "the processing bus's default, at processing time", so a
/// forwarded event picks up each bus's own defaults unless the event sets a value. Timeouts are
/// [`Duration`]s here and seconds on the wire (serde reads and writes them as seconds too).
///
/// Event types declare defaults with `#[event(...)]`; a single event overrides them with the
/// `with_*` methods of [`EventHandle`](crate::EventHandle) before it is dispatched.
///
/// New fields may be added: build one from [`EventConfig::UNSET`] with the `with_*` setters
/// (`const`, so they work in an `EVENT_DEFAULTS` constant).
///
/// ```
/// use std::time::Duration;
/// use bubus::{event::EventConfig, event::HandlerCompletion};
///
/// const DEFAULTS: EventConfig = EventConfig::UNSET
///     .with_event_timeout(Some(Duration::from_secs(5)))
///     .with_event_handler_completion(Some(HandlerCompletion::First));
/// assert_eq!(DEFAULTS.event_timeout, Some(Duration::from_secs(5)));
/// assert_eq!(DEFAULTS.event_slow_timeout, None);
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EventConfig {
    /// Hard budget for the whole handler phase on one bus.
    #[serde(default, with = "crate::time::opt_secs")]
    pub event_timeout: Option<Duration>,
    /// Threshold after which a still-running event logs a warning.
    #[serde(default, with = "crate::time::opt_secs")]
    pub event_slow_timeout: Option<Duration>,
    /// Event concurrency override.
    pub event_concurrency: Option<EventConcurrency>,
    /// Cap on each handler's run time.
    #[serde(default, with = "crate::time::opt_secs")]
    pub event_handler_timeout: Option<Duration>,
    /// Threshold after which a still-running handler logs a warning.
    #[serde(default, with = "crate::time::opt_secs")]
    pub event_handler_slow_timeout: Option<Duration>,
    /// Handler concurrency override.
    pub event_handler_concurrency: Option<HandlerConcurrency>,
    /// Handler completion override.
    pub event_handler_completion: Option<HandlerCompletion>,
}

/// An event's configuration as its state holds it: the event type's defaults by reference until
/// one field of this event is set, then the event's own copy. 16 bytes in every event instead of
/// the configuration's 72, and no allocation for the usual event, whose configuration is its
/// type's (usually all unset).
#[derive(Clone)]
pub(crate) enum EventSettings {
    Shared(&'static EventConfig),
    Own(Box<EventConfig>),
}

impl EventSettings {
    /// The event's own copy of `config` (the type's defaults when it equals them: unset).
    pub(crate) fn owned(config: EventConfig) -> Self {
        if config == EventConfig::UNSET {
            EventSettings::Shared(&EventConfig::UNSET)
        } else {
            EventSettings::Own(Box::new(config))
        }
    }
}

impl std::ops::Deref for EventSettings {
    type Target = EventConfig;

    #[inline]
    fn deref(&self) -> &EventConfig {
        match self {
            EventSettings::Shared(config) => config,
            EventSettings::Own(config) => config,
        }
    }
}

impl std::ops::DerefMut for EventSettings {
    /// The event's own copy, made on the first write.
    fn deref_mut(&mut self) -> &mut EventConfig {
        if let EventSettings::Shared(config) = *self {
            *self = EventSettings::Own(Box::new(*config));
        }
        match self {
            EventSettings::Own(config) => config,
            EventSettings::Shared(_) => unreachable!("made owned above"),
        }
    }
}

impl EventConfig {
    /// A configuration with every field unset.
    pub const UNSET: EventConfig = EventConfig {
        event_timeout: None,
        event_slow_timeout: None,
        event_concurrency: None,
        event_handler_timeout: None,
        event_handler_slow_timeout: None,
        event_handler_concurrency: None,
        event_handler_completion: None,
    };

    /// Sets `event_timeout`: the hard budget for the whole handler phase on one bus.
    #[must_use]
    pub const fn with_event_timeout(mut self, value: Option<Duration>) -> Self {
        self.event_timeout = value;
        self
    }

    /// Sets `event_slow_timeout`: the slow-event warning threshold.
    #[must_use]
    pub const fn with_event_slow_timeout(mut self, value: Option<Duration>) -> Self {
        self.event_slow_timeout = value;
        self
    }

    /// Sets `event_concurrency`: the event concurrency override.
    #[must_use]
    pub const fn with_event_concurrency(mut self, value: Option<EventConcurrency>) -> Self {
        self.event_concurrency = value;
        self
    }

    /// Sets `event_handler_timeout`: the cap on each handler's run time.
    #[must_use]
    pub const fn with_event_handler_timeout(mut self, value: Option<Duration>) -> Self {
        self.event_handler_timeout = value;
        self
    }

    /// Sets `event_handler_slow_timeout`: the slow-handler warning threshold.
    #[must_use]
    pub const fn with_event_handler_slow_timeout(mut self, value: Option<Duration>) -> Self {
        self.event_handler_slow_timeout = value;
        self
    }

    /// Sets `event_handler_concurrency`: the handler concurrency override.
    #[must_use]
    pub const fn with_event_handler_concurrency(
        mut self,
        value: Option<HandlerConcurrency>,
    ) -> Self {
        self.event_handler_concurrency = value;
        self
    }

    /// Sets `event_handler_completion`: the handler completion override.
    #[must_use]
    pub const fn with_event_handler_completion(mut self, value: Option<HandlerCompletion>) -> Self {
        self.event_handler_completion = value;
        self
    }
}

/// How long a completed event stays in a bus's history, or a handler's result on its event
/// (abxbus 2.5's `event_ttl`, `event_result_ttl` and `handler_result_ttl`).
///
/// On the wire a TTL is seconds, and a negative number means [`Ttl::Never`]. A [`Duration`]
/// converts into [`Ttl::After`].
///
/// ```
/// use std::time::Duration;
/// use bubus::event::Ttl;
///
/// assert_eq!(Ttl::from(Duration::from_secs(60)), Ttl::After(Duration::from_secs(60)));
/// assert_eq!(Ttl::Never.duration(), None);
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ttl {
    /// Removed this long after the event completed; [`Duration::ZERO`]: at completion.
    After(Duration),
    /// Kept until evicted: this overrides a TTL set further out (a bus's, an event's).
    Never,
}

impl Ttl {
    /// The duration, `None` for [`Ttl::Never`].
    pub const fn duration(self) -> Option<Duration> {
        match self {
            Ttl::After(d) => Some(d),
            Ttl::Never => None,
        }
    }

    /// Seconds as the wire carries them (`-1` for never).
    pub(crate) fn as_secs(self) -> f64 {
        match self {
            Ttl::After(d) => crate::time::secs_of(d),
            Ttl::Never => -1.0,
        }
    }

    /// From the wire's seconds: negative (or NaN) is never.
    pub(crate) fn from_secs(secs: f64) -> Ttl {
        if secs.is_nan() || secs < 0.0 {
            Ttl::Never
        } else {
            Ttl::After(crate::time::duration_from_secs(secs))
        }
    }
}

impl From<Duration> for Ttl {
    fn from(d: Duration) -> Self {
        Ttl::After(d)
    }
}
