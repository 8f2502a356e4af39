//! `bubus tail`: print a log's records; with `--follow`, the live monitor.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use bubus::wal::{RecordKind, WalError, WalFollower, WalReader, WalRecord};

use crate::cli::{ColorWhen, TailArgs};
use crate::output::{Diagnostics, Failure, Result, stdout};
use crate::pretty::Pretty;

/// How many lines `tail` starts with when neither `--lines` nor `--from-start` is given.
const DEFAULT_LINES: u64 = 10;

/// How often `--follow` looks for new lines (and for the log to appear).
const POLL_INTERVAL: Duration = Duration::from_millis(100);

pub(crate) async fn run(args: &TailArgs, color: ColorWhen, diag: &Diagnostics) -> Result<()> {
    let mut printer = Printer {
        out: stdout(color),
        pretty: Pretty::new(),
        json: args.json,
        flush_each: args.follow,
    };
    let lines = if args.from_start {
        None
    } else {
        Some(args.lines.unwrap_or(DEFAULT_LINES))
    };
    if crate::mirror::is_sqlite(&args.wal).unwrap_or(false) {
        return tail_table(args, lines, &mut printer, diag).await;
    }
    if args.follow {
        follow(&args.wal, lines, &mut printer, diag).await
    } else {
        let (first_line, offset) = match lines {
            None => (1, 0),
            Some(n) => {
                let file = File::open(&args.wal).map_err(|e| Failure::io("open", &args.wal, &e))?;
                last_lines(file, n).map_err(|e| Failure::io("read", &args.wal, &e))?
            }
        };
        print_range(&args.wal, first_line, offset, None, &mut printer, diag)?;
        printer.flush()
    }
}

struct Printer<W: Write> {
    out: W,
    pretty: Pretty,
    json: bool,
    /// Flush after every record (following: records show up as they come).
    flush_each: bool,
}

impl<W: Write> Printer<W> {
    fn print(&mut self, record: &WalRecord) -> Result<()> {
        let written = if self.json {
            // As text: the payload is written as it was read, never parsed into a tree.
            let json = if record.kind == RecordKind::Completed {
                record.event.to_json_string_with_results()
            } else {
                record.event.to_json_string()
            };
            self.out
                .write_all(json.as_bytes())
                .and_then(|()| self.out.write_all(b"\n"))
        } else {
            let line = self.pretty.line(record);
            writeln!(self.out, "{line}")
        };
        written.map_err(|e| Failure::stdout(&e))?;
        if self.flush_each {
            self.flush()?;
        }
        Ok(())
    }

    /// A bridge table row's event: with its results if it has any.
    fn print_event(&mut self, event: &bubus::AnyEvent) -> Result<()> {
        let completed = crate::bridge_table::is_completed(event);
        let written = if self.json {
            let json = if completed || !event.event_results().is_empty() {
                event.to_json_string_with_results()
            } else {
                event.to_json_string()
            };
            self.out
                .write_all(json.as_bytes())
                .and_then(|()| self.out.write_all(b"\n"))
        } else {
            let line = self.pretty.event_line(event, completed);
            writeln!(self.out, "{line}")
        };
        written.map_err(|e| Failure::stdout(&e))?;
        if self.flush_each {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Failure::stdout(&e))
    }
}

/// Prints the records of lines `first_line..=last_line` (all the rest without `last_line`),
/// reading from `offset`, the byte where `first_line` starts.
fn print_range<W: Write>(
    path: &Path,
    first_line: u64,
    offset: u64,
    last_line: Option<u64>,
    printer: &mut Printer<W>,
    diag: &Diagnostics,
) -> Result<()> {
    let mut file = File::open(path).map_err(|e| Failure::io("open", path, &e))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(|e| Failure::io("read", path, &e))?;
    // The reader numbers lines from 1 at `offset`.
    let base = first_line - 1;
    let past_end = |line: u64| last_line.is_some_and(|last| line + base > last);
    for item in WalReader::new(BufReader::with_capacity(64 * 1024, file)) {
        match item {
            Ok(record) => {
                if past_end(record.line) {
                    break;
                }
                printer.print(&record)?;
            }
            Err(error) => {
                if error.line().is_some_and(past_end) {
                    break;
                }
                if !diag.wal_line_error(path, &error, base) {
                    return Err(Failure::wal(path, &error));
                }
            }
        }
    }
    Ok(())
}

/// A bridge table (an SQLite file): one line per row, in insertion order; with `--follow`, each
/// row as it is written.
async fn tail_table<W: Write>(
    args: &TailArgs,
    lines: Option<u64>,
    printer: &mut Printer<W>,
    diag: &Diagnostics,
) -> Result<()> {
    use crate::bridge_table as bt;
    let path = &args.wal;
    let name = bt::pick_table(path, args.table.as_deref())?;
    let table = bt::open(path, &name)?;
    let mut cursor = match lines {
        None => 0,
        Some(n) => bt::start_for_last(&table, n)?,
    };
    let mut interrupt = if args.follow {
        Some(Interrupt::listen())
    } else {
        None
    };
    loop {
        let rows = bt::read_after(&table, cursor, 4_096)?;
        let full = rows.len() == 4_096;
        for row in rows {
            cursor = row.rowid;
            if let Some(event) = bt::row_event(path, &name, row, diag) {
                printer.print_event(&event)?;
            }
        }
        printer.flush()?;
        if full {
            continue;
        }
        let Some(interrupt) = interrupt.as_mut() else {
            return Ok(());
        };
        tokio::select! {
            () = interrupt.recv() => return Ok(()),
            () = tokio::time::sleep(bt::POLL_INTERVAL) => {}
        }
    }
}

/// `--follow`: the records already there (per `lines`), then each one appended, until Ctrl-C.
async fn follow<W: Write>(
    path: &Path,
    lines: Option<u64>,
    printer: &mut Printer<W>,
    diag: &Diagnostics,
) -> Result<()> {
    // Listening from the start: a Ctrl-C at any point from here on ends the command cleanly.
    let mut interrupt = Interrupt::listen();
    // A log that does not exist yet holds, once it appears, only lines written after we started:
    // every one of them is printed, whatever `lines` says.
    let mut lines = lines;
    let mut follower = loop {
        match WalFollower::open(path) {
            Ok(follower) => break follower.poll_interval(POLL_INTERVAL),
            Err(WalError::Open { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                diag.note(format_args!(
                    "waiting for {} to be created (Ctrl-C to stop)",
                    path.display()
                ));
                loop {
                    tokio::select! {
                        () = tokio::time::sleep(POLL_INTERVAL) => {}
                        () = interrupt.recv() => return printer.flush(),
                    }
                    if path.exists() {
                        break;
                    }
                }
                lines = None;
            }
            Err(error) => return Err(Failure::wal(path, &error)),
        }
    };
    if let Some(n) = lines {
        // Skip what is there without decoding it, then print its last `n` lines with a reader:
        // lines appended meanwhile are the follower's.
        let existing = follower
            .skip_existing()
            .map_err(|e| Failure::wal(path, &e))?;
        let first = existing.saturating_sub(n) + 1;
        if first <= existing {
            let offset = line_offset(path, first).map_err(|e| Failure::io("read", path, &e))?;
            print_range(path, first, offset, Some(existing), printer, diag)?;
        }
    }
    printer.flush()?;
    loop {
        tokio::select! {
            item = follower.next_record() => match item {
                Ok(record) => printer.print(&record)?,
                Err(error) => {
                    if !diag.wal_line_error(path, &error, 0) {
                        // A read error: the follower tries again on the next call.
                        diag.warning(Failure::wal(path, &error));
                        tokio::select! {
                            () = tokio::time::sleep(POLL_INTERVAL) => {}
                            () = interrupt.recv() => break,
                        }
                    }
                }
            },
            () = interrupt.recv() => break,
        }
    }
    printer.flush()
}

/// Ctrl-C (and SIGTERM on Unix), listened to from creation on, so a signal that arrives at any
/// point ends the command cleanly rather than killing it.
pub(crate) struct Interrupt {
    #[cfg(unix)]
    signals: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
    #[cfg(windows)]
    ctrl_c: Option<tokio::signal::windows::CtrlC>,
}

impl Interrupt {
    pub(crate) fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let signals = signal(SignalKind::interrupt())
                .and_then(|int| Ok((int, signal(SignalKind::terminate())?)))
                .ok();
            Interrupt { signals }
        }
        #[cfg(windows)]
        {
            Interrupt {
                ctrl_c: tokio::signal::windows::ctrl_c().ok(),
            }
        }
        #[cfg(not(any(unix, windows)))]
        {
            Interrupt {}
        }
    }

    /// Resolves on the next signal; never if signals cannot be listened to. Cancel safe.
    pub(crate) async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some((int, term)) = &mut self.signals {
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
            }
            return;
        }
        #[cfg(windows)]
        if let Some(ctrl_c) = &mut self.ctrl_c {
            ctrl_c.recv().await;
            return;
        }
        std::future::pending::<()>().await;
    }
}

/// Where the last `n` lines of the file start: (line number, byte offset). A last line without a
/// newline counts. For `n == 0`, the end of the file.
fn last_lines(mut file: File, n: u64) -> io::Result<(u64, u64)> {
    let mut buf = vec![0u8; 256 * 1024];
    // Starts of the last `n` lines seen (plus the one being read), oldest first.
    let mut starts: std::collections::VecDeque<(u64, u64)> = std::collections::VecDeque::new();
    let mut pos = 0u64;
    let mut line = 1u64;
    let mut at_line_start = true;
    loop {
        let len = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for (i, &byte) in buf[..len].iter().enumerate() {
            if at_line_start {
                starts.push_back((line, pos + i as u64));
                if starts.len() as u64 > n {
                    starts.pop_front();
                }
                at_line_start = false;
            }
            if byte == b'\n' {
                line += 1;
                at_line_start = true;
            }
        }
        pos += len as u64;
    }
    Ok(starts.front().copied().unwrap_or((line, pos)))
}

/// The byte offset where line `target` (from 1) starts.
fn line_offset(path: &Path, target: u64) -> io::Result<u64> {
    let mut file = File::open(path)?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut pos = 0u64;
    let mut line = 1u64;
    while line < target {
        let len = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(len) => len,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        for (i, &byte) in buf[..len].iter().enumerate() {
            if byte == b'\n' {
                line += 1;
                if line == target {
                    return Ok(pos + i as u64 + 1);
                }
            }
        }
        pos += len as u64;
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_lines(path: &Path, n: u64) -> io::Result<(u64, u64)> {
        super::last_lines(File::open(path)?, n)
    }

    fn file_with(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "bubus-cli-tail-{}-{name}.jsonl",
            std::process::id()
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn last_lines_finds_where_they_start() {
        let path = file_with("last", "a\nbb\n\nccc\n");
        assert_eq!(last_lines(&path, 1).unwrap(), (4, 6));
        assert_eq!(last_lines(&path, 2).unwrap(), (3, 5));
        assert_eq!(last_lines(&path, 10).unwrap(), (1, 0));
        assert_eq!(last_lines(&path, 0).unwrap(), (5, 10));
        let path = file_with("partial", "a\nbb");
        assert_eq!(last_lines(&path, 1).unwrap(), (2, 2));
        let path = file_with("empty", "");
        assert_eq!(last_lines(&path, 3).unwrap(), (1, 0));
    }

    #[test]
    fn line_offset_counts_newlines() {
        let path = file_with("offset", "a\nbb\n\nccc\n");
        assert_eq!(line_offset(&path, 1).unwrap(), 0);
        assert_eq!(line_offset(&path, 2).unwrap(), 2);
        assert_eq!(line_offset(&path, 4).unwrap(), 6);
        assert_eq!(line_offset(&path, 9).unwrap(), 10);
    }
}
