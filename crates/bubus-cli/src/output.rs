//! Where output goes: stdout (coloured or not), diagnostics on stderr, progress bars, and the
//! error that ends a command.

use std::fmt::{self, Display};
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anstream::{AutoStream, ColorChoice};
use anstyle::{AnsiColor, Style};
use bubus::wal::WalError;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ColorWhen;

/// Logs with at least this many lines get a progress bar (on a terminal).
pub(crate) const PROGRESS_MIN_LINES: u64 = 10_000;

/// What ends a command early: printed as `error: …`, exit status 2. A closed stdout (`bubus tail
/// log | head`) ends it quietly, with status 0.
#[derive(Debug)]
pub(crate) enum Failure {
    Message(String),
    BrokenPipe,
}

impl Failure {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Failure::Message(message.into())
    }

    /// An I/O error about `path`: `cannot {doing} {path}: {error}`.
    pub(crate) fn io(doing: &str, path: &Path, error: &io::Error) -> Self {
        if error.kind() == io::ErrorKind::BrokenPipe {
            return Failure::BrokenPipe;
        }
        Failure::new(format!("cannot {doing} {}: {error}", path.display()))
    }

    /// Writing to stdout failed.
    pub(crate) fn stdout(error: &io::Error) -> Self {
        if error.kind() == io::ErrorKind::BrokenPipe {
            Failure::BrokenPipe
        } else {
            Failure::new(format!("cannot write to stdout: {error}"))
        }
    }

    /// A log that cannot be opened or read.
    pub(crate) fn wal(path: &Path, error: &WalError) -> Self {
        match error {
            WalError::Open { source, .. } => Failure::io("open", path, source),
            WalError::Read { line, source } => Failure::new(format!(
                "cannot read {} after line {line}: {source}",
                path.display()
            )),
            other => Failure::new(format!("{}: {}", path.display(), chain(other))),
        }
    }
}

impl Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Message(message) => f.write_str(message),
            Failure::BrokenPipe => f.write_str("broken pipe"),
        }
    }
}

/// An error and its sources, `what: why: why`, for one line of output.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(crate) type Result<T, E = Failure> = std::result::Result<T, E>;

/// The styles of everything we print. Escapes are always written; [`stdout`] strips them when
/// colours are off.
pub(crate) mod style {
    use super::*;

    pub(crate) const DIM: Style = Style::new().dimmed();
    pub(crate) const BOLD: Style = Style::new().bold();
    pub(crate) const BUS: Style = AnsiColor::Cyan.on_default();
    pub(crate) const DISPATCHED: Style = AnsiColor::Yellow.on_default();
    pub(crate) const STARTED: Style = AnsiColor::Blue.on_default();
    pub(crate) const OK: Style = AnsiColor::Green.on_default();
    pub(crate) const ERROR: Style = AnsiColor::Red.on_default();
    pub(crate) const ERROR_BOLD: Style = AnsiColor::Red.on_default().bold();
    pub(crate) const WARNING_BOLD: Style = AnsiColor::Yellow.on_default().bold();
}

/// `text` in `style` (escapes included).
pub(crate) fn paint(style: Style, text: impl Display) -> String {
    format!("{}{text}{}", style.render(), style.render_reset())
}

fn choice(when: ColorWhen) -> ColorChoice {
    match when {
        ColorWhen::Auto => ColorChoice::Auto,
        ColorWhen::Always => ColorChoice::Always,
        ColorWhen::Never => ColorChoice::Never,
    }
}

/// Stdout, buffered, with colour escapes kept or stripped per `--color` (auto: kept on a terminal
/// unless `NO_COLOR` is set).
pub(crate) fn stdout(when: ColorWhen) -> io::BufWriter<AutoStream<io::Stdout>> {
    io::BufWriter::with_capacity(64 * 1024, AutoStream::new(io::stdout(), choice(when)))
}

/// Diagnostics on stderr (`warning: …` for bad input, kept apart from the output on stdout),
/// counting the bad lines, and keeping them clear of a progress bar.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    color: ColorChoice,
    bad: AtomicU64,
    bar: Mutex<Option<ProgressBar>>,
}

impl Diagnostics {
    pub(crate) fn new(when: ColorWhen) -> Self {
        Diagnostics {
            color: choice(when),
            bad: AtomicU64::new(0),
            bar: Mutex::new(None),
        }
    }

    /// How many bad lines (or rows) were reported.
    pub(crate) fn bad_count(&self) -> u64 {
        self.bad.load(Ordering::Relaxed)
    }

    /// Prints one line on stderr, above the progress bar if there is one.
    fn eprint(&self, line: &str) {
        let bar = self.bar.lock().ok().and_then(|bar| bar.clone());
        let print = || {
            let _ = writeln!(AutoStream::new(io::stderr().lock(), self.color), "{line}");
        };
        match bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// `error: …`.
    pub(crate) fn error(&self, message: impl Display) {
        self.eprint(&format!("{} {message}", paint(style::ERROR_BOLD, "error:")));
    }

    /// `warning: …`.
    pub(crate) fn warning(&self, message: impl Display) {
        self.eprint(&format!(
            "{} {message}",
            paint(style::WARNING_BOLD, "warning:")
        ));
    }

    /// `note: …` (status messages, summaries).
    pub(crate) fn note(&self, message: impl Display) {
        self.eprint(&format!("{} {message}", paint(style::BOLD, "note:")));
    }

    /// A bad line or row of the input: reported and counted.
    pub(crate) fn bad_input(&self, message: impl Display) {
        self.bad.fetch_add(1, Ordering::Relaxed);
        self.warning(message);
    }

    /// Reports a line error of a log (`path:line: what`), `offset` being added to its line
    /// number (for a reader that started part-way through the file). Returns `false` if the error
    /// is not about one line (the log cannot be read any further).
    pub(crate) fn wal_line_error(&self, path: &Path, error: &WalError, offset: u64) -> bool {
        let path = path.display();
        match error {
            WalError::BadLine { line, error } => {
                self.bad_input(format_args!("{path}:{}: {error}", line + offset));
            }
            WalError::PartialLine { line, error } => self.bad_input(format_args!(
                "{path}:{}: incomplete last line (a write cut short?): {error}",
                line + offset
            )),
            WalError::LineTooLong { line, len, max } => self.bad_input(format_args!(
                "{path}:{}: line of {len} bytes skipped (the limit is {max})",
                line + offset
            )),
            other if other.is_line_error() => {
                self.bad_input(format_args!("{path}: {}", chain(other)));
            }
            _ => return false,
        }
        true
    }

    /// A progress bar of `total` lines on stderr, if stderr is a terminal, `enabled`, and the
    /// input is long enough to need one. Diagnostics printed while it shows go above it.
    pub(crate) fn progress(&self, enabled: bool, total: u64, what: &str) -> Option<ProgressBar> {
        if !enabled || total < PROGRESS_MIN_LINES || !io::stderr().is_terminal() {
            return None;
        }
        let style = ProgressStyle::with_template(
            "{prefix} {wide_bar} {pos}/{len} lines ({percent}%, {per_sec}, {eta} left)",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar =
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(10))
                .with_style(style)
                .with_prefix(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar.clone());
        }
        Some(bar)
    }

    /// Removes the progress bar.
    pub(crate) fn finish_progress(&self) {
        if let Some(bar) = self.bar.lock().ok().and_then(|mut bar| bar.take()) {
            bar.finish_and_clear();
        }
    }
}

/// The number of lines of a file (a last line without a newline counts), reading it once.
pub(crate) fn count_lines(path: &Path) -> io::Result<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut lines = 0u64;
    let mut last = b'\n';
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    Ok(lines + u64::from(last != b'\n'))
}
