//! `bubus replay`: a log through a fresh bus whose one handler forwards every event to a JSONL
//! file or stdout.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bubus::wal::{ReplayOptions, ReplaySummary, WalReader, replay_with};
use bubus::{AnyEvent, EventBus, HandlerError};
use tokio::sync::Notify;

use crate::cli::ReplayArgs;
use crate::output::{Diagnostics, Failure, Result, count_lines};

pub(crate) async fn run(args: &ReplayArgs, diag: &Diagnostics) -> Result<()> {
    let to_stdout = args.to.as_os_str() == "-";
    if !to_stdout && same_file(&args.wal, &args.to) {
        return Err(Failure::new(format!(
            "refusing to append the replay of {} to itself",
            args.wal.display()
        )));
    }
    let reader = WalReader::open(&args.wal).map_err(|e| Failure::wal(&args.wal, &e))?;
    let sink = Arc::new(Sink::open(&args.to, to_stdout)?);

    let bus = EventBus::new(args.bus_name.clone());
    let handler_sink = Arc::clone(&sink);
    bus.on_pattern("*", move |event: AnyEvent| handler_sink.write_event(&event));

    let bar = if args.no_progress {
        None
    } else {
        let total = count_lines(&args.wal).unwrap_or(0);
        diag.progress(true, total, "replaying")
    };
    let records = reader.inspect(|item| match item {
        Ok(record) => {
            if let Some(bar) = &bar {
                bar.set_position(record.line);
            }
        }
        Err(error) => {
            // Line errors are reported here, as they are met; replay counts them too.
            diag.wal_line_error(&args.wal, error, 0);
        }
    });

    let started = Instant::now();
    let options = ReplayOptions::new()
        .children(args.children.into())
        .max_in_flight(args.max_in_flight);
    let outcome = tokio::select! {
        outcome = replay_with(records, &bus, options) => outcome,
        () = sink.failed.notified() => {
            diag.finish_progress();
            return Err(sink.take_failure(&args.to));
        }
    };
    diag.finish_progress();
    let summary = outcome.map_err(|e| Failure::wal(&args.wal, &e))?;
    sink.flush().map_err(|e| sink.failure_of(&args.to, &e))?;
    if sink.has_failed() {
        return Err(sink.take_failure(&args.to));
    }
    diag.note(summary_line(
        &summary,
        &args.wal,
        started.elapsed(),
        to_stdout,
        &args.to,
    ));
    Ok(())
}

/// `replayed 3 events from orders.jsonl to stdout in 12.0ms (3 duplicate records, 2 child events
/// skipped, 1 bad line)`.
fn summary_line(
    summary: &ReplaySummary,
    wal: &Path,
    elapsed: std::time::Duration,
    to_stdout: bool,
    to: &Path,
) -> String {
    let plural = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let target = if to_stdout {
        "stdout".to_owned()
    } else {
        to.display().to_string()
    };
    let mut details = Vec::new();
    if summary.duplicates > 0 {
        details.push(plural(
            summary.duplicates,
            "duplicate record",
            "duplicate records",
        ));
    }
    if summary.skipped_children > 0 {
        details.push(format!(
            "{} skipped",
            plural(summary.skipped_children, "child event", "child events")
        ));
    }
    if summary.bad_lines > 0 {
        details.push(plural(summary.bad_lines, "bad line", "bad lines"));
    }
    let mut line = format!(
        "replayed {} from {} to {target} in {}",
        plural(summary.replayed, "event", "events"),
        wal.display(),
        crate::pretty::duration(elapsed),
    );
    if !details.is_empty() {
        line.push_str(&format!(" ({})", details.join(", ")));
    }
    line
}

/// Where the replayed events go. The first write error stops the replay.
struct Sink {
    out: Mutex<BufWriter<Box<dyn Write + Send>>>,
    error: Mutex<Option<io::Error>>,
    failed: Notify,
}

impl Sink {
    fn open(to: &Path, to_stdout: bool) -> Result<Sink> {
        let out: Box<dyn Write + Send> = if to_stdout {
            Box::new(io::stdout())
        } else {
            if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| Failure::io("create", dir, &e))?;
            }
            Box::new(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(to)
                    .map_err(|e| Failure::io("open", to, &e))?,
            )
        };
        Ok(Sink {
            out: Mutex::new(BufWriter::with_capacity(64 * 1024, out)),
            error: Mutex::new(None),
            failed: Notify::new(),
        })
    }

    /// The forwarding handler: the event's canonical JSON as one line.
    fn write_event(&self, event: &AnyEvent) -> Result<(), HandlerError> {
        let mut line = event.to_json_string();
        line.push('\n');
        let written = match self.out.lock() {
            Ok(mut out) => out.write_all(line.as_bytes()),
            Err(_) => Err(io::Error::other("the output was poisoned")),
        };
        written.map_err(|error| {
            let handler_error = HandlerError::new("IoError", error.to_string());
            if let Ok(mut slot) = self.error.lock() {
                slot.get_or_insert(error);
            }
            self.failed.notify_one();
            handler_error
        })
    }

    fn flush(&self) -> io::Result<()> {
        match self.out.lock() {
            Ok(mut out) => out.flush(),
            Err(_) => Err(io::Error::other("the output was poisoned")),
        }
    }

    fn has_failed(&self) -> bool {
        self.error.lock().map(|e| e.is_some()).unwrap_or(true)
    }

    fn take_failure(&self, to: &Path) -> Failure {
        match self.error.lock().ok().and_then(|mut e| e.take()) {
            Some(error) => self.failure_of(to, &error),
            None => Failure::new("cannot write the replayed events"),
        }
    }

    fn failure_of(&self, to: &Path, error: &io::Error) -> Failure {
        if to.as_os_str() == "-" {
            Failure::stdout(error)
        } else {
            Failure::io("write to", to, error)
        }
    }
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| -> Option<PathBuf> { std::fs::canonicalize(p).ok() };
    match (canonical(a), canonical(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}
