//! `bubus tree`: the parent/child tree of a log's or a mirror's events, drawn by
//! `EventBus::log_tree`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use bubus::tree::TreeEvent;
use bubus::wal::WalReader;
use uuid::Uuid;

use crate::cli::{ColorWhen, Format, TreeArgs};
use crate::mirror;
use crate::output::{Diagnostics, Failure, Result, paint, stdout, style};

pub(crate) fn run(args: &TreeArgs, color: ColorWhen, diag: &Diagnostics) -> Result<()> {
    let events = match resolve_format(&args.file, args.format)? {
        Format::Sqlite => {
            crate::bridge_table::read_sqlite_events(&args.file, args.table.as_deref(), diag)?
                .iter()
                .map(TreeEvent::new)
                .collect()
        }
        _ => read_wal(&args.file, diag)?,
    };
    let mut out = stdout(color);
    if events.is_empty() {
        writeln!(out, "(no events)").map_err(|e| Failure::stdout(&e))?;
    } else {
        // Drawn a line at a time from what the tree shows of each event (kept as it was read,
        // instead of the events with their payloads and results): nothing else is collected.
        let mut lines = ColorLines {
            out: &mut out,
            line: Vec::new(),
        };
        bubus::tree::write_tree_events(&events, &mut lines).map_err(|e| Failure::stdout(&e))?;
    }
    out.flush().map_err(|e| Failure::stdout(&e))
}

/// Colours each line written through it (see [`colorize`]).
struct ColorLines<'a, W: Write> {
    out: &'a mut W,
    line: Vec<u8>,
}

impl<W: Write> Write for ColorLines<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for &byte in buf {
            if byte == b'\n' {
                let line = String::from_utf8_lossy(&self.line);
                writeln!(self.out, "{}", colorize(&line))?;
                self.line.clear();
            } else {
                self.line.push(byte);
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// `--format auto`: SQLite if the file starts like a database, or is empty with an SQLite name.
pub(crate) fn resolve_format(path: &Path, format: Format) -> Result<Format> {
    if format != Format::Auto {
        return Ok(format);
    }
    let meta = std::fs::metadata(path).map_err(|e| Failure::io("open", path, &e))?;
    let sqlite = mirror::is_sqlite(path).map_err(|e| Failure::io("read", path, &e))?
        || (meta.len() == 0 && mirror::has_sqlite_extension(path));
    Ok(if sqlite { Format::Sqlite } else { Format::Wal })
}

/// What the tree draws of the latest record of each event of a log, in the order the events
/// first appear.
pub(crate) fn read_wal(path: &Path, diag: &Diagnostics) -> Result<Vec<TreeEvent>> {
    let reader = WalReader::open(path).map_err(|e| Failure::wal(path, &e))?;
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    let mut events: Vec<TreeEvent> = Vec::new();
    for item in reader {
        match item {
            Ok(record) => {
                let event = TreeEvent::new(&record.event);
                match index.get(&event.event_id()) {
                    Some(&i) => events[i] = event,
                    None => {
                        index.insert(event.event_id(), events.len());
                        events.push(event);
                    }
                }
            }
            Err(error) => {
                if !diag.wal_line_error(path, &error, 0) {
                    return Err(Failure::wal(path, &error));
                }
            }
        }
    }
    Ok(events)
}

/// Colours one line of the tree: events in bold, timings dimmed, failed handlers and their
/// errors in red. (The escapes are stripped again when colours are off.)
fn colorize(line: &str) -> String {
    let body_start = line
        .char_indices()
        .find(|&(_, c)| !matches!(c, '│' | '├' | '└' | '─' | ' '))
        .map_or(line.len(), |(i, _)| i);
    let (branches, body) = line.split_at(body_start);
    let (head, timing, tail) = match body.find(" [") {
        Some(open) => match body[open..].find(']') {
            Some(len) => (
                &body[..open],
                &body[open..=open + len],
                &body[open + len + 1..],
            ),
            None => (body, "", ""),
        },
        None => (body, "", ""),
    };
    let is_handler = ["✅", "❌", "🏃", "⏳"]
        .iter()
        .any(|icon| head.starts_with(icon));
    let head = if !is_handler {
        paint(style::BOLD, head)
    } else if head.starts_with('❌') {
        paint(style::ERROR, head)
    } else {
        head.to_owned()
    };
    let tail = if tail.starts_with(" ☠") {
        paint(style::ERROR, tail)
    } else {
        tail.to_owned()
    };
    format!(
        "{}{head}{}{tail}",
        paint(style::DIM, branches),
        if timing.is_empty() {
            String::new()
        } else {
            paint(style::DIM, timing)
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> String {
        let mut out = Vec::new();
        let mut stream = anstream::StripStream::new(&mut out);
        let _ = stream.write_all(text.as_bytes());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn colouring_keeps_the_text() {
        for line in [
            "└── UserLoginEvent#d6f9 [16:40:37.772 (0.000s)]",
            "    └── ✅ AppBus#f3e1.quickstart::handle_login#8eab [16:40:37.772 (0.000s)] → 'ok'",
            "    │   ├── ❌ AppBus#f3e1.x#8eab [16:40:37.772 (0.000s)] ☠️ ValueError: boom [x]",
            "(no events)",
            "",
        ] {
            assert_eq!(plain(&colorize(line)), line);
        }
    }
}
