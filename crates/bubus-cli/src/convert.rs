//! `bubus convert`: a write-ahead log to a history mirror, and back.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use bubus::EventStatus;
use bubus::wal::{DEFAULT_MAX_LINE_LEN, RecordKind, WalReader, WalWriter};

use crate::cli::{ConvertArgs, Format};
use crate::mirror::{self, MirrorWriter};
use crate::output::{Diagnostics, Failure, Result, count_lines};
use crate::tree::resolve_format;

pub(crate) fn run(args: &ConvertArgs, diag: &Diagnostics) -> Result<()> {
    let from = resolve_format(&args.input, args.from)?;
    let to_sqlite = from != Format::Sqlite;
    check_output(args, to_sqlite)?;

    // Written next to OUT, moved into place once complete.
    let temp = temp_path(&args.output);
    remove_sqlite_files(&temp);
    let outcome = if to_sqlite {
        wal_to_sqlite(&args.input, &temp, !args.no_progress, diag)
    } else {
        sqlite_to_wal(&args.input, args.table.as_deref(), &temp, diag)
    };
    let written = match outcome {
        Ok(written) => written,
        Err(failure) => {
            remove_sqlite_files(&temp);
            return Err(failure);
        }
    };
    if args.force && to_sqlite {
        // The journal files of a database being replaced must not outlive it.
        remove_sqlite_files(&args.output);
    }
    if let Err(e) = std::fs::rename(&temp, &args.output) {
        remove_sqlite_files(&temp);
        return Err(Failure::io("write", &args.output, &e));
    }
    diag.note(format_args!(
        "converted {} {} from {} to {}",
        written,
        if written == 1 { "event" } else { "events" },
        args.input.display(),
        args.output.display()
    ));
    Ok(())
}

/// OUT must be new (or empty) unless `--force`, must not be IN, and must not be named like the
/// other kind of file.
fn check_output(args: &ConvertArgs, to_sqlite: bool) -> Result<()> {
    let (input, output) = (&args.input, &args.output);
    if let (Ok(a), Ok(b)) = (std::fs::canonicalize(input), std::fs::canonicalize(output)) {
        if a == b {
            return Err(Failure::new(format!(
                "{} is both the input and the output",
                input.display()
            )));
        }
    }
    if to_sqlite && mirror::has_wal_extension(output) {
        return Err(Failure::new(format!(
            "{} is a write-ahead log, so the output is an SQLite database, but {} is named like \
             a log (use a .sqlite3 or .db name)",
            input.display(),
            output.display()
        )));
    }
    if !to_sqlite && mirror::has_sqlite_extension(output) {
        return Err(Failure::new(format!(
            "{} is an SQLite database, so the output is a write-ahead log, but {} is named like \
             a database (use a .jsonl name)",
            input.display(),
            output.display()
        )));
    }
    match std::fs::metadata(output) {
        Ok(meta) if meta.is_dir() => {
            Err(Failure::new(format!("{} is a directory", output.display())))
        }
        Ok(meta) if meta.len() > 0 && !args.force => Err(Failure::new(format!(
            "{} already exists (use --force to replace it)",
            output.display()
        ))),
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Failure::io("check", output, &e)),
    }
}

/// `OUT.partial-{pid}`, beside OUT.
fn temp_path(output: &Path) -> PathBuf {
    let mut name = output
        .file_name()
        .map(OsString::from)
        .unwrap_or_else(|| OsString::from("bubus-convert"));
    name.push(format!(".partial-{}", std::process::id()));
    output.with_file_name(name)
}

/// Removes a file and the journal files SQLite may keep beside it.
fn remove_sqlite_files(path: &Path) {
    let _ = std::fs::remove_file(path);
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}

/// Every record of the log into a mirror: dispatch records as `pending` event rows, completion
/// records as result rows and a `completed` event row. Returns the number of distinct events.
fn wal_to_sqlite(input: &Path, output: &Path, progress: bool, diag: &Diagnostics) -> Result<u64> {
    // First pass: the full ids of the buses the log names (from handler results), so every row
    // of a bus gets the same id; and the line count, for the progress bar.
    let mut known = HashMap::new();
    for_each_line(input, |line| {
        if line.windows(13).any(|w| w == b"event_results") {
            mirror::buses_in_line(line, &mut known);
        }
    })
    .map_err(|e| Failure::io("read", input, &e))?;

    let total = if progress {
        count_lines(input).unwrap_or(0)
    } else {
        0
    };
    let bar = diag.progress(progress, total, "converting");
    let mut writer = MirrorWriter::create(output, known)?;
    let reader = WalReader::open(input).map_err(|e| Failure::wal(input, &e))?;
    let mut seen = std::collections::HashSet::new();
    for item in reader {
        match item {
            Ok(record) => {
                if let Some(bar) = &bar {
                    bar.set_position(record.line);
                }
                seen.insert(record.event.event_id());
                match record.kind {
                    RecordKind::Completed => writer.completed(&record.event),
                    _ => writer.dispatched(&record.event),
                }
            }
            Err(error) => {
                if !diag.wal_line_error(input, &error, 0) {
                    diag.finish_progress();
                    return Err(Failure::wal(input, &error));
                }
            }
        }
    }
    diag.finish_progress();
    writer
        .finish()
        .map_err(|e| Failure::new(format!("cannot write {}: {e}", output.display())))?;
    Ok(seen.len() as u64)
}

/// One record per event of the mirror, in dispatch order: its latest state, with its results;
/// or of the bridge table, in insertion order.
fn sqlite_to_wal(
    input: &Path,
    table: Option<&str>,
    output: &Path,
    diag: &Diagnostics,
) -> Result<u64> {
    let events = crate::bridge_table::read_sqlite_events(input, table, diag)?;
    let writer = WalWriter::open(output).map_err(|e| Failure::wal(output, &e))?;
    for event in &events {
        let written = if event.event_status() == EventStatus::Completed
            || !event.event_results().is_empty()
        {
            writer.append_event_with_results(event)
        } else {
            writer.append_event(event)
        };
        written.map_err(|e| Failure::new(e.to_string()))?;
    }
    writer.sync().map_err(|e| Failure::new(e.to_string()))?;
    Ok(events.len() as u64)
}

/// Calls `f` with every line of the file (without its newline) no longer than the readers'
/// limit; longer ones are skipped without being held in memory.
fn for_each_line(path: &Path, mut f: impl FnMut(&[u8])) -> io::Result<()> {
    let mut input = BufReader::with_capacity(64 * 1024, File::open(path)?);
    let mut line = Vec::new();
    let mut too_long = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            if !too_long && !line.is_empty() {
                f(&line);
            }
            return Ok(());
        }
        let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let body = &chunk[..if done { used - 1 } else { used }];
        if line.len() + body.len() > DEFAULT_MAX_LINE_LEN {
            too_long = true;
            line.clear();
        } else if !too_long {
            line.extend_from_slice(body);
        }
        input.consume(used);
        if done {
            if !too_long {
                f(&line);
            }
            line.clear();
            too_long = false;
        }
    }
}
