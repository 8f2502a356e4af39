//! History mirrors (the SQLite tables of `bubus_sqlite::SqliteHistoryMirror`): reading the events
//! back, and writing log records into one.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bubus::middleware::Middleware;
use bubus::{AnyEvent, EventBus, EventStatus};
use bubus_sqlite::rusqlite::{self, Connection, OpenFlags, OptionalExtension};
use bubus_sqlite::{MirrorOptions, SqliteHistoryMirror};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::output::{Diagnostics, Failure, Result};

/// What every SQLite database starts with.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Whether the file starts like an SQLite database.
pub(crate) fn is_sqlite(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let mut file = std::fs::File::open(path)?;
    let mut read = 0;
    while read < head.len() {
        match file.read(&mut head[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(read == head.len() && &head == SQLITE_MAGIC)
}

/// Whether the name says SQLite (`.sqlite`, `.sqlite3`, `.db`).
pub(crate) fn has_sqlite_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "sqlite" | "sqlite3" | "db"))
}

/// Whether the name says JSON lines (`.jsonl`, `.ndjson`, `.json`, `.log`, `.wal`).
pub(crate) fn has_wal_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        matches!(
            e.to_ascii_lowercase().as_str(),
            "jsonl" | "ndjson" | "json" | "log" | "wal"
        )
    })
}

fn sql_error(path: &Path, error: &rusqlite::Error) -> Failure {
    Failure::new(format!("cannot read {}: {error}", path.display()))
}

/// Whether the database has a history mirror's `events_log` table.
pub(crate) fn is_mirror(path: &Path) -> Result<bool> {
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Failure::new(format!("cannot open {}: {e}", path.display())))?;
    db.busy_timeout(Duration::from_secs(5))
        .map_err(|e| sql_error(path, &e))?;
    has_table(&db, "events_log").map_err(|e| sql_error(path, &e))
}

/// The events of a mirror, in the order they first appear in `events_log` (dispatch order), each
/// rebuilt from its latest `events_log` row and the latest row of each of its results (in the
/// order the results first appear). Rows that do not decode are reported and skipped.
pub(crate) fn read_events(path: &Path, diag: &Diagnostics) -> Result<Vec<AnyEvent>> {
    let db = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| Failure::new(format!("cannot open {}: {e}", path.display())))?;
    // A live mirror may be committing.
    db.busy_timeout(Duration::from_secs(5))
        .map_err(|e| sql_error(path, &e))?;
    if !has_table(&db, "events_log").map_err(|e| sql_error(path, &e))? {
        return Err(Failure::new(format!(
            "{} is not a bubus history mirror: it has no `events_log` table",
            path.display()
        )));
    }

    let name = path.display();
    // A row whose id or JSON column is not text (NULL, a BLOB, a number) is reported and
    // skipped; the event's other rows still count.
    let bad_row = |table: &str, row: i64, column: &str, found: &str| {
        diag.bad_input(format_args!(
            "{name}: {table} row {row}: {column} is {found}, not text"
        ));
    };

    // event id → (row of the latest state, its JSON); ids in order of first appearance.
    let mut order: Vec<String> = Vec::new();
    let mut latest: HashMap<String, (i64, String)> = HashMap::new();
    {
        let mut query = db
            .prepare("SELECT id, event_id, event_json FROM events_log ORDER BY id")
            .map_err(|e| sql_error(path, &e))?;
        let rows = query
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, text(row, 1)?, text(row, 2)?))
            })
            .map_err(|e| sql_error(path, &e))?;
        for row in rows {
            let (id, event_id, json) = row.map_err(|e| sql_error(path, &e))?;
            let event_id = match event_id {
                Ok(event_id) => event_id,
                Err(found) => {
                    bad_row("events_log", id, "event_id", found);
                    continue;
                }
            };
            let json = match json {
                Ok(json) => json,
                Err(found) => {
                    bad_row("events_log", id, "event_json", found);
                    continue;
                }
            };
            if latest.insert(event_id.clone(), (id, json)).is_none() {
                order.push(event_id);
            }
        }
    }

    // event id → result id → (row, JSON), results in order of first appearance.
    let mut results: HashMap<String, Vec<(String, i64, String)>> = HashMap::new();
    if has_table(&db, "event_results_log").map_err(|e| sql_error(path, &e))? {
        let mut query = db
            .prepare(
                "SELECT id, event_id, event_result_id, event_result_json FROM event_results_log \
                 WHERE event_result_json IS NOT NULL ORDER BY id",
            )
            .map_err(|e| sql_error(path, &e))?;
        let rows = query
            .query_map([], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    text(row, 1)?,
                    text(row, 2)?,
                    text(row, 3)?,
                ))
            })
            .map_err(|e| sql_error(path, &e))?;
        for row in rows {
            let (id, event_id, result_id, json) = row.map_err(|e| sql_error(path, &e))?;
            let (event_id, result_id, json) = match (event_id, result_id, json) {
                (Ok(event_id), Ok(result_id), Ok(json)) => (event_id, result_id, json),
                (event_id, result_id, json) => {
                    let (column, found) = [
                        ("event_id", event_id.err()),
                        ("event_result_id", result_id.err()),
                        ("event_result_json", json.err()),
                    ]
                    .into_iter()
                    .find_map(|(column, found)| Some((column, found?)))
                    .unwrap_or(("event_result_json", "not text"));
                    bad_row("event_results_log", id, column, found);
                    continue;
                }
            };
            let list = results.entry(event_id).or_default();
            match list.iter_mut().find(|(r, _, _)| *r == result_id) {
                Some(slot) => *slot = (result_id, id, json),
                None => list.push((result_id, id, json)),
            }
        }
    }

    let mut events = Vec::with_capacity(order.len());
    for event_id in order {
        let Some((row, json)) = latest.remove(&event_id) else {
            continue;
        };
        // The event's text with its results added as text: decoded once, its payload never
        // parsed (see `AnyEvent::from_json_str`).
        let event_json = json.trim_end();
        let Some(body) = event_json
            .strip_suffix('}')
            .filter(|body| is_json_object(event_json) && body.trim_start() != "{")
        else {
            let what = if serde_json::from_str::<&serde_json::value::RawValue>(event_json).is_ok() {
                "event_json is not a JSON object (with an event_type)"
            } else {
                "invalid JSON in event_json"
            };
            diag.bad_input(format_args!("{name}: events_log row {row}: {what}"));
            continue;
        };
        let mut text = String::with_capacity(json.len() + 64);
        text.push_str(body);
        if let Some(rows) = results.remove(&event_id) {
            text.push_str(",\"event_results\":[");
            let mut first = true;
            for (_, result_row, json) in rows {
                if !is_json_object(&json) {
                    diag.bad_input(format_args!(
                        "{name}: event_results_log row {result_row}: \
                         event_result_json is not a JSON object"
                    ));
                    continue;
                }
                if !first {
                    text.push(',');
                }
                first = false;
                text.push_str(&json);
            }
            text.push(']');
        }
        text.push('}');
        match AnyEvent::from_json_str(&text) {
            Ok(event) => events.push(event),
            Err(e) => diag.bad_input(format_args!("{name}: events_log row {row}: {e}")),
        }
    }
    Ok(events)
}

/// Whether `text` is one JSON object (checked without building it).
fn is_json_object(text: &str) -> bool {
    serde_json::from_str::<&serde_json::value::RawValue>(text)
        .is_ok_and(|raw| raw.get().starts_with('{'))
}

/// A text column: `Err(what it holds instead)` for NULL, a BLOB, a number or text that is not
/// UTF-8.
fn text(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<Result<String, &'static str>> {
    use rusqlite::types::ValueRef;
    Ok(match row.get_ref(column)? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| "text that is not UTF-8"),
        ValueRef::Null => Err("NULL"),
        ValueRef::Blob(_) => Err("a BLOB"),
        ValueRef::Integer(_) => Err("an integer"),
        ValueRef::Real(_) => Err("a real number"),
    })
}

fn has_table(db: &Connection, name: &str) -> rusqlite::Result<bool> {
    db.query_row(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |_| Ok(()),
    )
    .optional()
    .map(|found| found.is_some())
}

/// Writes log records into a history mirror through [`SqliteHistoryMirror`]'s own hooks, as if
/// the buses that logged them had the mirror: the rows are exactly a mirror's.
pub(crate) struct MirrorWriter {
    mirror: SqliteHistoryMirror,
    /// Bus label (`Name#ab12`) → full id, learnt from handler results.
    known: HashMap<String, Uuid>,
    buses: HashMap<Uuid, EventBus>,
}

impl MirrorWriter {
    /// Creates the database at `path`. `known` maps the bus labels of the log to their ids.
    pub(crate) fn create(path: &Path, known: HashMap<String, Uuid>) -> Result<Self> {
        let mirror = SqliteHistoryMirror::open_with(path, MirrorOptions::new())
            .map_err(|e| Failure::new(e.to_string()))?;
        Ok(MirrorWriter {
            mirror,
            known,
            buses: HashMap::new(),
        })
    }

    /// A dispatch record: an `events_log` row (phase `pending`) on the bus it was dispatched on
    /// (the last of its `event_path`).
    pub(crate) fn dispatched(&mut self, event: &AnyEvent) {
        let bus = self.bus_of_path(event, false);
        self.mirror
            .on_event_change(&bus, event, EventStatus::Pending);
    }

    /// A completion record (or any record with results): a row per result (phase `completed`,
    /// on the result's bus), then an `events_log` row (phase per the event's status) on the bus
    /// it was first dispatched on.
    pub(crate) fn completed(&mut self, event: &AnyEvent) {
        for result in event.event_results() {
            let bus = self.bus(result.eventbus_id, &result.eventbus_name);
            let phase = match result.status {
                bubus::result::ResultStatus::Pending => EventStatus::Pending,
                bubus::result::ResultStatus::Started => EventStatus::Started,
                _ => EventStatus::Completed,
            };
            self.mirror
                .on_event_result_change(&bus, event, &result, phase);
        }
        let bus = self.bus_of_path(event, true);
        self.mirror
            .on_event_change(&bus, event, event.event_status());
    }

    /// Commits every row and closes the database.
    pub(crate) fn finish(self) -> Result<()> {
        if let Err(e) = self.mirror.flush() {
            return Err(Failure::new(crate::output::chain(&e)));
        }
        self.mirror.close();
        match self.mirror.take_error() {
            Some(error) => Err(Failure::new(crate::output::chain(&error))),
            None => Ok(()),
        }
    }

    fn bus(&mut self, id: Uuid, name: &str) -> EventBus {
        self.buses
            .entry(id)
            .or_insert_with(|| EventBus::builder(name).id(id).build())
            .clone()
    }

    /// The bus an `event_path` entry names: by its full id when the log's results gave it, else
    /// with an id made up from the label (ending in its four hex digits, so the label is the
    /// same). An event with an empty path gets its first result's bus, or `unknown#0000`.
    fn bus_of_path(&mut self, event: &AnyEvent, first: bool) -> EventBus {
        let path = event.event_path();
        let entry = if first { path.first() } else { path.last() };
        let Some(label) = entry else {
            return match event.event_results().first() {
                Some(result) => self.bus(result.eventbus_id, &result.eventbus_name),
                None => self.bus(Uuid::nil(), "unknown"),
            };
        };
        if let Some(&id) = self.known.get(label.as_str()) {
            let name = label.rsplit_once('#').map_or(label.as_str(), |(n, _)| n);
            return self.bus(id, name);
        }
        let (name, id) = made_up_bus(label);
        self.bus(id, name)
    }
}

impl std::fmt::Debug for MirrorWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorWriter")
            .field("mirror", &self.mirror)
            .finish_non_exhaustive()
    }
}

/// A stable bus name and id for a path entry whose full id the log never gives: `Name#ab12` →
/// (`Name`, an id ending in `ab12`); a bare name (Python 1.x paths) → (name, an id from it).
fn made_up_bus(label: &str) -> (&str, Uuid) {
    let mut bytes = *Uuid::new_v5(&Uuid::NAMESPACE_OID, label.as_bytes()).as_bytes();
    match label.rsplit_once('#') {
        Some((name, suffix))
            if !name.is_empty()
                && suffix.len() == 4
                && suffix.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            if let Ok(tail) = u16::from_str_radix(suffix, 16) {
                bytes[14..].copy_from_slice(&tail.to_be_bytes());
            }
            (name, Uuid::from_bytes(bytes))
        }
        _ => (label, Uuid::from_bytes(bytes)),
    }
}

/// The label `Name#ab12` of the bus a result names.
pub(crate) fn bus_label(name: &str, id: &Uuid) -> String {
    let text = id.to_string();
    format!("{name}#{}", &text[text.len().saturating_sub(4)..])
}

/// The buses named by the handler results of a log's lines, without decoding the events: label
/// → id. Lines that are not JSON are ignored here (the conversion proper reports them).
pub(crate) fn buses_in_line(line: &[u8], known: &mut HashMap<String, Uuid>) {
    let Ok(Value::Object(object)) = serde_json::from_slice::<Value>(line) else {
        return;
    };
    let mut add = |result: &Map<String, Value>| {
        let id = result
            .get("eventbus_id")
            .and_then(Value::as_str)
            .and_then(|id| Uuid::parse_str(id).ok());
        let name = result.get("eventbus_name").and_then(Value::as_str);
        if let (Some(id), Some(name)) = (id, name) {
            known.entry(bus_label(name, &id)).or_insert(id);
        }
    };
    match object.get("event_results") {
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_object).for_each(&mut add),
        Some(Value::Object(map)) => map.values().filter_map(Value::as_object).for_each(&mut add),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_buses_keep_their_label() {
        let (name, id) = made_up_bus("Orders#3e1f");
        assert_eq!(name, "Orders");
        assert_eq!(bus_label(name, &id), "Orders#3e1f");
        assert_eq!(made_up_bus("Orders#3e1f").1, id);
        let (name, id) = made_up_bus("MainBus");
        assert_eq!(name, "MainBus");
        assert_ne!(id, Uuid::nil());
    }
}
