//! Capturing what the code under test logs through `tracing`.
//!
//! [`capture_logs`] installs one recording subscriber as the test binary's global default (once;
//! a global subscriber leaves no room for the race between a thread-scoped default and
//! `tracing`'s per-call-site interest cache) and collects the events emitted on the calling
//! thread until the returned guard is dropped. Tests on tokio's current-thread runtime (the
//! default of `#[tokio::test]`) run the bus on that thread, so they see everything the bus logs.
//!
//! A test binary that installs its own global subscriber cannot use this module.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Once};

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Level, Metadata, Subscriber, span};

/// One event a capture recorded.
#[derive(Clone, Debug)]
pub struct LogEvent {
    /// Its level.
    pub level: Level,
    /// Its target (usually the module path).
    pub target: String,
    /// The `message` field.
    pub message: String,
    /// Every other field as `name=value `, in order.
    pub fields: String,
}

impl fmt::Display for LogEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {} {}",
            self.level, self.target, self.message, self.fields
        )
    }
}

/// The events recorded by one capture; clones share them.
#[derive(Clone, Debug, Default)]
pub struct Logs(Arc<Mutex<Vec<LogEvent>>>);

impl Logs {
    /// A copy of every event so far, in order.
    pub fn events(&self) -> Vec<LogEvent> {
        self.0.lock().clone()
    }

    /// Every event's message, in order.
    pub fn messages(&self) -> Vec<String> {
        self.0.lock().iter().map(|e| e.message.clone()).collect()
    }

    /// Every event (as `LEVEL target: message fields`) that contains `needle`.
    pub fn lines_with(&self, needle: &str) -> Vec<String> {
        self.0
            .lock()
            .iter()
            .map(ToString::to_string)
            .filter(|line| line.contains(needle))
            .collect()
    }

    /// How many events contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines_with(needle).len()
    }
}

/// Records events of this thread at `min_level` and above until dropped; derefs to [`Logs`].
#[derive(Debug)]
pub struct LogCapture {
    logs: Logs,
    previous: Option<(Logs, Level)>,
}

impl std::ops::Deref for LogCapture {
    type Target = Logs;
    fn deref(&self) -> &Logs {
        &self.logs
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = self.previous.take());
    }
}

thread_local! {
    static CAPTURE: RefCell<Option<(Logs, Level)>> = const { RefCell::new(None) };
}

/// Captures every event of this thread (all levels) until the guard is dropped.
///
/// ```
/// let logs = bubus_test_support::logs::capture_logs();
/// tracing::warn!(attempt = 2, "retrying");
/// assert_eq!(logs.messages(), ["retrying"]);
/// assert_eq!(logs.count("attempt=2"), 1);
/// ```
///
/// # Panics
///
/// If the test binary already has a different global subscriber.
pub fn capture_logs() -> LogCapture {
    capture_logs_at(Level::TRACE)
}

/// Captures the events of this thread at `min_level` and above (`Level::WARN`: warnings and
/// errors) until the guard is dropped.
///
/// # Panics
///
/// If the test binary already has a different global subscriber.
pub fn capture_logs_at(min_level: Level) -> LogCapture {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        #[expect(
            clippy::expect_used,
            reason = "a test helper: a clear panic is the report"
        )]
        tracing::subscriber::set_global_default(Recorder)
            .expect("capture_logs needs to be the test binary's global tracing subscriber");
    });
    let logs = Logs::default();
    let previous = CAPTURE.with(|c| c.borrow_mut().replace((logs.clone(), min_level)));
    LogCapture { logs, previous }
}

/// The global subscriber: hands each event to the capture of the thread it was emitted on.
struct Recorder;

impl Subscriber for Recorder {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        Interest::always()
    }

    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }

    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}

    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        CAPTURE.with(|c| {
            let capture = c.borrow();
            let Some((logs, min_level)) = capture.as_ref() else {
                return;
            };
            let meta = event.metadata();
            // `Level` orders TRACE as the greatest: "at least WARN" is `<= WARN`.
            if *meta.level() > *min_level {
                return;
            }
            let mut fields = Fields::default();
            event.record(&mut fields);
            logs.0.lock().push(LogEvent {
                level: *meta.level(),
                target: meta.target().to_owned(),
                message: fields.message,
                fields: fields.rest,
            });
        });
    }

    fn enter(&self, _: &span::Id) {}

    fn exit(&self, _: &span::Id) {}
}

#[derive(Default)]
struct Fields {
    message: String,
    rest: String,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            let _ = write!(self.rest, "{}={value:?} ", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_owned();
        } else {
            let _ = write!(self.rest, "{}={value} ", field.name());
        }
    }
}
