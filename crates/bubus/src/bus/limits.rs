//! Timeouts and slow-warning thresholds, resolved for one event (and one handler) on the bus that
//! processes it, at processing time.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use super::BusInner;
use crate::event::EventConfig;
use crate::event::inner::EventInner;
use crate::handler::HandlerMeta;

fn min_opt(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `event.event_timeout ?? bus.event_timeout`.
pub(crate) fn event_timeout(config: &EventConfig, bus: &BusInner) -> Option<Duration> {
    config.event_timeout.or(bus.config.event_timeout)
}

/// `event.event_slow_timeout ?? bus.event_slow_timeout`.
pub(crate) fn event_slow_timeout(config: &EventConfig, bus: &BusInner) -> Option<Duration> {
    config.event_slow_timeout.or(bus.config.event_slow_timeout)
}

/// The handler's own timeout if it set one (even "none"), else the event's handler timeout, else
/// the bus's event timeout; then capped by the event's effective timeout.
pub(crate) fn handler_timeout(
    handler: &HandlerMeta,
    config: &EventConfig,
    bus: &BusInner,
) -> Option<Duration> {
    let own = match handler.timeout {
        Some(explicit) => explicit,
        None => config.event_handler_timeout.or(bus.config.event_timeout),
    };
    min_opt(own, event_timeout(config, bus))
}

/// The handler's own slow threshold if set, else the event's handler slow threshold, else the
/// event's slow threshold, else the bus's handler slow threshold. Only armed when the handler can
/// outlive it.
pub(crate) fn handler_slow_timeout(
    handler: &HandlerMeta,
    config: &EventConfig,
    bus: &BusInner,
    timeout: Option<Duration>,
) -> Option<Duration> {
    let slow = match handler.slow_timeout {
        Some(explicit) => explicit,
        None => config
            .event_handler_slow_timeout
            .or(config.event_slow_timeout)
            .or(bus.config.event_handler_slow_timeout),
    }?;
    match timeout {
        Some(timeout) if timeout <= slow => None,
        _ => Some(slow),
    }
}

/// When the timers of one handler run fire, measured from when it acquired the handler lock.
#[derive(Copy, Clone, Debug)]
pub(crate) struct HandlerLimits {
    /// The handler's timeout, for messages.
    pub(crate) timeout: Option<Duration>,
    /// Its deadline — unset when the event's deadline comes first or at the same time: then the
    /// event timer fires and the handler is reported aborted, not timed out.
    pub(crate) deadline: Option<Instant>,
    pub(crate) slow_at: Option<Instant>,
}

impl HandlerLimits {
    pub(crate) fn resolve(
        handler: &HandlerMeta,
        config: &EventConfig,
        bus: &BusInner,
        event_deadline: Option<Instant>,
    ) -> Self {
        let now = Instant::now();
        let timeout = handler_timeout(handler, config, bus);
        let deadline = timeout
            .and_then(|d| now.checked_add(d))
            .filter(|deadline| event_deadline.is_none_or(|event| *deadline < event));
        let slow_timeout = handler_slow_timeout(handler, config, bus, timeout);
        let slow_at = slow_timeout.and_then(|d| now.checked_add(d));
        HandlerLimits {
            timeout,
            deadline,
            slow_at,
        }
    }
}

/// When an event's processing on one bus started, for its timeout and slow warning (the caller
/// works those out and passes them in). The clock is read only when something first waits (most
/// events never do); the time already spent by handlers that ran without waiting is taken from
/// their start timestamps (of the results at `indices`, passed to each method). Less than a
/// millisecond of it is not counted: that is below the timers' resolution.
pub(crate) struct PhaseClock {
    start: OnceLock<Instant>,
}

impl PhaseClock {
    pub(crate) fn new() -> Self {
        PhaseClock {
            start: OnceLock::new(),
        }
    }

    fn start(&self, event: &EventInner, indices: &[usize]) -> Instant {
        *self.start.get_or_init(|| {
            let now = Instant::now();
            let first_start = {
                let st = event.state.lock();
                indices
                    .iter()
                    .filter_map(|&i| st.results.get(i)?.started_at())
                    .min()
            };
            let spent = first_start.map(|at| at.elapsed()).unwrap_or_default();
            // `spent` is wall-clock time; it only applies to the timers' clock when that clock
            // is the wall clock. Under tokio's paused test clock (which only moves when
            // advanced) no time passes while handlers run without waiting.
            if spent < Duration::from_millis(1) || !wall_clock(now) {
                now
            } else {
                now.checked_sub(spent).unwrap_or(now)
            }
        })
    }

    /// `after` past the start: when the event's `timeout` fires on this bus, or its slow-event
    /// warning (`None` when there is no such limit).
    pub(crate) fn after(
        &self,
        after: Option<Duration>,
        event: &EventInner,
        indices: &[usize],
    ) -> Option<Instant> {
        let after = after?;
        self.start(event, indices).checked_add(after)
    }

    /// Time since processing started.
    pub(crate) fn elapsed(&self, event: &EventInner, indices: &[usize]) -> Duration {
        self.start(event, indices).elapsed()
    }
}

/// A deadline and a slow-warning time, for the event phase and for one handler. Each timer is
/// registered with tokio only when first polled, i.e. once what it guards is pending.
pub(crate) struct Timers {
    deadline: Option<Instant>,
    slow_at: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
    slow: Option<Pin<Box<Sleep>>>,
}

impl Timers {
    pub(crate) fn new(deadline: Option<Instant>, slow_at: Option<Instant>) -> Self {
        Timers {
            deadline,
            slow_at,
            timer: None,
            slow: None,
        }
    }

    /// `Ready` once the deadline passed; `warn` runs once, when the slow-warning time passed.
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>, warn: impl FnOnce()) -> Poll<()> {
        if let Some(deadline) = self.deadline {
            // A deadline already past (tiny timeouts) fires now, not at the timer's next tick,
            // and without making (and allocating) a timer.
            if self.timer.is_none() && Instant::now() >= deadline {
                return Poll::Ready(());
            }
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        if let Some(at) = self.slow_at {
            let slow = self
                .slow
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if slow.as_mut().poll(cx).is_ready() {
                self.slow_at = None;
                self.slow = None;
                warn();
            }
        }
        Poll::Pending
    }
}

/// Whether tokio's clock, read as `now`, is the wall clock (not paused or advanced by a test):
/// the two agree but for the time between the two reads.
fn wall_clock(now: Instant) -> bool {
    const TOLERANCE: Duration = Duration::from_micros(200);
    let wall = std::time::Instant::now();
    let now = now.into_std();
    wall.checked_duration_since(now)
        .or_else(|| now.checked_duration_since(wall))
        .is_some_and(|drift| drift < TOLERANCE)
}

/// 12.5 s → `"12.5"`, 60 s → `"60.0"`, no timeout → `""`: seconds as the reference runtimes
/// print them, written straight into the message that holds them.
pub(crate) fn fmt_secs(duration: Option<Duration>) -> Secs {
    Secs(duration)
}

/// What [`fmt_secs`] returns.
pub(crate) struct Secs(Option<Duration>);

impl std::fmt::Display for Secs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(duration) => write!(f, "{:?}", duration.as_secs_f64()),
            None => Ok(()),
        }
    }
}
