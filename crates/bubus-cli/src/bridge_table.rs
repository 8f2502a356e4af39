//! Bridge tables (the family's `abxbus_events` table that SQLite bridges write): reading their
//! events for `tree`, `tail` and `convert`.

use std::path::Path;
use std::time::Duration;

use bubus::{AnyEvent, EventStatus};
use bubus_sqlite::{BridgeTable, DEFAULT_TABLE, TableRow};
use serde_json::Value;

use crate::output::{Diagnostics, Failure, Result};

/// Rows read per query.
const BATCH: usize = 4_096;

/// The bridge table to read: `requested`, or the only one, or `abxbus_events` among several.
pub(crate) fn pick_table(path: &Path, requested: Option<&str>) -> Result<String> {
    let tables = BridgeTable::tables_in(path)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))?;
    if let Some(name) = requested {
        if tables.iter().any(|t| t == name) {
            return Ok(name.to_owned());
        }
        return Err(Failure::new(format!(
            "{} has no bridge table {name:?} (bridge tables: {})",
            path.display(),
            list(&tables)
        )));
    }
    match tables.as_slice() {
        [] => Err(Failure::new(format!(
            "{} is neither a bubus history mirror (no `events_log` table) nor a bridge database \
             (no table with `event_id` and `event_payload` columns)",
            path.display()
        ))),
        [one] => Ok(one.clone()),
        many if many.iter().any(|t| t == DEFAULT_TABLE) => Ok(DEFAULT_TABLE.to_owned()),
        many => Err(Failure::new(format!(
            "{} has several bridge tables ({}): pick one with --table",
            path.display(),
            list(many)
        ))),
    }
}

fn list(tables: &[String]) -> String {
    if tables.is_empty() {
        "none".to_owned()
    } else {
        tables.join(", ")
    }
}

/// Opens a bridge table read-only.
pub(crate) fn open(path: &Path, table: &str) -> Result<BridgeTable> {
    BridgeTable::open_read_only(path, table)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())))
}

/// The event of a row, or `None` (reported) if the row does not make one.
pub(crate) fn row_event(
    path: &Path,
    table: &str,
    row: TableRow,
    diag: &Diagnostics,
) -> Option<AnyEvent> {
    let name = path.display();
    match row.event {
        Ok(map) => match AnyEvent::from_json(&Value::Object(map)) {
            Ok(event) => Some(event),
            Err(e) => {
                diag.bad_input(format_args!("{name}: {table} row {}: {e}", row.rowid));
                None
            }
        },
        Err(e) => {
            diag.bad_input(format_args!("{name}: {table} {e}"));
            None
        }
    }
}

/// Rows after `rowid`, up to `limit`.
pub(crate) fn read_after(table: &BridgeTable, rowid: i64, limit: usize) -> Result<Vec<TableRow>> {
    table
        .read_after(rowid, limit)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", table.path().display())))
}

/// The events of an SQLite file: a history mirror's (unless `table` is given), or a bridge
/// table's.
pub(crate) fn read_sqlite_events(
    path: &Path,
    table: Option<&str>,
    diag: &Diagnostics,
) -> Result<Vec<AnyEvent>> {
    if table.is_none() && crate::mirror::is_mirror(path)? {
        return crate::mirror::read_events(path, diag);
    }
    let table = pick_table(path, table)?;
    read_events(path, &table, diag)
}

/// Every event of the table, in insertion order. Rows that do not decode are reported and
/// skipped.
pub(crate) fn read_events(path: &Path, table: &str, diag: &Diagnostics) -> Result<Vec<AnyEvent>> {
    let reader = open(path, table)?;
    let mut events = Vec::new();
    let mut cursor = 0;
    loop {
        let rows = read_after(&reader, cursor, BATCH)?;
        let Some(last) = rows.last() else { break };
        cursor = last.rowid;
        events.extend(
            rows.into_iter()
                .filter_map(|row| row_event(path, table, row, diag)),
        );
    }
    Ok(events)
}

/// The rowid after which the last `n` rows start.
pub(crate) fn start_for_last(table: &BridgeTable, n: u64) -> Result<i64> {
    table
        .start_of_last(n)
        .map_err(|e| Failure::new(format!("cannot read {}: {e}", table.path().display())))
}

/// Whether a row's event reads as completed (printed as a completion record).
pub(crate) fn is_completed(event: &AnyEvent) -> bool {
    event.event_status() == EventStatus::Completed
}

/// How often `tail --follow` polls a bridge table.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(100);
