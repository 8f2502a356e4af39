//! `bubus tree`: the parent/child tree of a log's or a mirror's events, drawn by
//! `EventBus::log_tree`.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use bubus::wal::WalReader;
use bubus::{AnyEvent, EventBus};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::cli::{ColorWhen, Format, TreeArgs};
use crate::mirror;
use crate::output::{Diagnostics, Failure, Result, paint, stdout, style};

pub(crate) fn run(args: &TreeArgs, color: ColorWhen, diag: &Diagnostics) -> Result<()> {
    let events = match resolve_format(&args.file, args.format)? {
        Format::Sqlite => {
            crate::bridge_table::read_sqlite_events(&args.file, args.table.as_deref(), diag)?
        }
        _ => read_wal(&args.file, diag)?,
    };
    let tree = render(&events)?;
    let mut out = stdout(color);
    for line in tree.lines() {
        writeln!(out, "{}", colorize(line)).map_err(|e| Failure::stdout(&e))?;
    }
    out.flush().map_err(|e| Failure::stdout(&e))
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

/// The latest record of each event of a log, in the order the events first appear.
pub(crate) fn read_wal(path: &Path, diag: &Diagnostics) -> Result<Vec<AnyEvent>> {
    let reader = WalReader::open(path).map_err(|e| Failure::wal(path, &e))?;
    let mut index: HashMap<Uuid, usize> = HashMap::new();
    let mut events: Vec<AnyEvent> = Vec::new();
    for item in reader {
        match item {
            Ok(record) => match index.get(&record.event.event_id()) {
                Some(&i) => events[i] = record.event,
                None => {
                    index.insert(record.event.event_id(), events.len());
                    events.push(record.event);
                }
            },
            Err(error) => {
                if !diag.wal_line_error(path, &error, 0) {
                    return Err(Failure::wal(path, &error));
                }
            }
        }
    }
    Ok(events)
}

/// The tree `EventBus::log_tree` draws for these events: they are restored, with their results,
/// into the history of a bus that never runs (from a snapshot holding them), and drawn from there.
pub(crate) fn render(events: &[AnyEvent]) -> Result<String> {
    if events.is_empty() {
        return Ok("(no events)".to_owned());
    }
    let mut history = Map::with_capacity(events.len());
    for event in events {
        history.insert(event.event_id().to_string(), event.to_json_with_results());
    }
    let mut snapshot = Map::new();
    snapshot.insert("id".into(), Value::String(Uuid::nil().to_string()));
    snapshot.insert("name".into(), Value::String("bubus".into()));
    snapshot.insert("max_history_size".into(), Value::Null);
    snapshot.insert("event_history".into(), Value::Object(history));
    let bus = EventBus::restore(&Value::Object(snapshot))
        .map_err(|e| Failure::new(format!("cannot rebuild the events: {e}")))?;
    Ok(bus.log_tree())
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
