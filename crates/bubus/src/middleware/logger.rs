//! [`LoggerMiddleware`]: one log line per completed event.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

use parking_lot::Mutex;
use serde_json::{Map, Value};

use super::Middleware;
use crate::bus::EventBus;
use crate::event::{AnyEvent, EventStatus};

/// The `tracing` target of what this middleware logs.
const TARGET: &str = "bubus::middleware::logger";

/// A [`Middleware`] that logs every event its buses complete — the Rust counterpart of the
/// Python runtime's `LoggerEventBusMiddleware`.
///
/// When an event completes it:
///
/// * emits a `tracing` event at `INFO` (target `bubus::middleware::logger`) with the bus label,
///   the event's id and type, and its [summary](Self::summary);
/// * writes the line `[{bus label}] {summary}` (the summary as compact JSON) to each sink:
///   stdout with [`stdout`](Self::stdout), a file with [`file`](Self::file) (appended to, parent
///   directories created), any writer with [`writer`](Self::writer);
/// * when `DEBUG` is enabled for that target, logs the bus's [`log_tree`](EventBus::log_tree).
///
/// The summary is the event's `event_*` metadata only — no payload fields, which may hold
/// anything — so the log is safe to keep. The Python middleware always prints to stdout; here
/// stdout is opt-in, as a library should not write to it unasked.
///
/// One logger shared by several buses logs each event once, when it completes, under the label
/// of the first of those buses it went through. Lines are written inline, before whoever awaits
/// the event resumes, and flushed at once; a write that fails is reported with `tracing` at
/// `WARN` and never disturbs the bus.
///
/// ```
/// use std::sync::Arc;
/// use bubus::middleware::LoggerMiddleware;
/// use bubus::{AnyEvent, DynEvent, EventBus};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = std::env::temp_dir().join(format!("bubus-doc-logger-{}", std::process::id()));
/// let path = dir.join("events.log");
/// let logger = LoggerMiddleware::new().file(&path)?;
/// let bus = EventBus::builder("Orders").middleware(Arc::new(logger)).build();
/// bus.on_pattern("OrderPlaced", |_event: AnyEvent| json!("ok"));
///
/// bus.dispatch(DynEvent::new("OrderPlaced", json!({"card_number": "4242"}))?)?.await?;
///
/// let log = std::fs::read_to_string(&path)?;
/// assert!(log.starts_with(&format!("[{}] {{", bus.label())));
/// assert!(log.contains(r#""event_type":"OrderPlaced""#));
/// assert!(!log.contains("4242")); // payload fields are never logged
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct LoggerMiddleware {
    sinks: Vec<Sink>,
}

struct Sink {
    name: String,
    out: Mutex<Box<dyn Write + Send>>,
}

impl LoggerMiddleware {
    /// A logger that only emits `tracing` events; add sinks with the builder methods.
    pub fn new() -> Self {
        LoggerMiddleware::default()
    }

    /// Also prints each line to stdout, as the Python middleware does.
    pub fn stdout(self) -> Self {
        self.writer_named("stdout".to_owned(), io::stdout())
    }

    /// Also appends each line to the file at `path`, creating it and its parent directories.
    ///
    /// # Errors
    ///
    /// The I/O error if the directories cannot be created or the file cannot be opened.
    pub fn file(self, path: impl AsRef<Path>) -> io::Result<Self> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file: File = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(self.writer_named(path.display().to_string(), file))
    }

    /// Also writes each line (with its `\n`) to `writer`, flushing after each.
    pub fn writer(self, writer: impl Write + Send + 'static) -> Self {
        self.writer_named("writer".to_owned(), writer)
    }

    fn writer_named(mut self, name: String, writer: impl Write + Send + 'static) -> Self {
        self.sinks.push(Sink {
            name,
            out: Mutex::new(Box::new(writer)),
        });
        self
    }

    /// The event's log-safe summary: its `event_*` fields as in its JSON
    /// ([`AnyEvent::to_json`]), without payload fields and without `event_results` (the
    /// reference's `event_log_safe_summary()`).
    ///
    /// ```
    /// use bubus::middleware::LoggerMiddleware;
    /// use bubus::{DynEvent, EventHandle};
    /// use serde_json::json;
    ///
    /// let event = EventHandle::new(DynEvent::new("Login", json!({"password": "hunter2"})).unwrap());
    /// let summary = LoggerMiddleware::summary(event.as_ref());
    /// assert_eq!(summary["event_type"], "Login");
    /// assert!(summary.get("password").is_none());
    /// ```
    pub fn summary(event: &AnyEvent) -> Value {
        let summary: Map<String, Value> = match event.to_json() {
            Value::Object(map) => map
                .into_iter()
                .filter(|(key, _)| key.starts_with("event_") && !key.contains("results"))
                .collect(),
            _ => Map::new(),
        };
        Value::Object(summary)
    }
}

impl Middleware for LoggerMiddleware {
    fn on_event_change(&self, bus: &EventBus, event: &AnyEvent, status: EventStatus) {
        if status != EventStatus::Completed {
            return;
        }
        let summary = Self::summary(event).to_string();
        tracing::info!(
            target: TARGET,
            bus = %bus.label(),
            event_id = %event.event_id(),
            event_type = %event.event_type(),
            "✅ {} completed event {summary}",
            bus.label()
        );
        if !self.sinks.is_empty() {
            let line = format!("[{}] {summary}\n", bus.label());
            for sink in &self.sinks {
                let mut out = sink.out.lock();
                let written = out.write_all(line.as_bytes()).and_then(|()| out.flush());
                if let Err(error) = written {
                    tracing::warn!(
                        target: TARGET,
                        sink = %sink.name,
                        %error,
                        "could not write the event log line"
                    );
                }
            }
        }
        if tracing::enabled!(target: TARGET, tracing::Level::DEBUG) {
            let tree = bus.log_tree();
            // `log_tree` already logs the tree line by line when its own target is enabled.
            if !tracing::enabled!(target: "bubus::bus", tracing::Level::DEBUG) {
                tracing::debug!(target: TARGET, bus = %bus.label(), "event tree:\n{tree}");
            }
        }
    }
}

impl fmt::Debug for LoggerMiddleware {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoggerMiddleware")
            .field(
                "sinks",
                &self
                    .sinks
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
