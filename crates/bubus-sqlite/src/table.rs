//! The bridge table: the family's flat `abxbus_events` table, written and read row by row.
//!
//! One row per event, keyed by `event_id`; every column value is the JSON text of the value
//! (strings quoted), `NULL` for null; one `TEXT` column per `event_*` key, added the first time
//! an event has it; the whole event in `event_payload`. A write is an upsert by `event_id`; unlike
//! the family's, a rewrite of an existing row also moves it to the end of the insertion order, so
//! a reader that already passed it reads it again (and de-duplicates by `event_id`).
//!
//! Rows are read in insertion order (SQLite's `rowid`), not by `event_created_at`: a row inserted
//! late with an older creation time is still read, and a reader's position is one integer that can
//! be saved and resumed from (see [`BridgeTable::save_cursor`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// The family's default bridge table name.
pub const DEFAULT_TABLE: &str = "abxbus_events";

/// The column holding the whole event.
const PAYLOAD: &str = "event_payload";

/// The key of a bridge's completion record (`bubus::bridge::COMPLETION_KEY`).
const COMPLETION: &str = "bubus_completion";

/// The table persisted cursors live in (one row per table and consumer name).
const CURSORS: &str = "bubus_bridge_cursors";

/// What went wrong opening, writing or reading a bridge table.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TableError {
    /// SQLite failed (cannot open the file, the database is locked for longer than the busy
    /// timeout, the disk is full, …).
    #[error("{path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
    /// A table name or an `event_*` key that cannot be a column name (`[A-Za-z_][A-Za-z0-9_]*`).
    #[error("invalid {what}: {name:?} (use only [A-Za-z0-9_], starting with a letter or _)")]
    Identifier {
        /// `table name` or `event field name`.
        what: &'static str,
        /// The name.
        name: String,
    },
    /// The event to write is not a JSON object with a string `event_id`.
    #[error("cannot write event: {0}")]
    Event(String),
}

/// Why a row could not be turned back into an event's JSON.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("row {rowid}: {message}")]
pub struct RowError {
    /// The row's `rowid`: where the bad row is.
    pub rowid: i64,
    /// What is wrong with it.
    pub message: String,
}

/// One row read from a bridge table: its insertion position and the event's JSON (the
/// `event_payload` object with every non-null `event_*` column laid over it, as the family reads
/// it), or why that could not be built.
#[derive(Debug)]
pub struct TableRow {
    /// The row's `rowid`, its position in insertion order.
    pub rowid: i64,
    /// The event's JSON object, or what is wrong with the row.
    pub event: Result<Map<String, Value>, RowError>,
}

/// A connection to one bridge table in one SQLite file.
///
/// ```
/// use bubus_sqlite::BridgeTable;
/// use serde_json::json;
///
/// # let dir = std::env::temp_dir().join(format!("bubus-table-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("bridge.sqlite3");
/// let mut writer = BridgeTable::open(&path, "abxbus_events")?;
/// let reader = BridgeTable::open(&path, "abxbus_events")?;
/// let start = reader.last_rowid()?;
///
/// writer.write_json(r#"{"event_id":"0190a1b2-0000-7000-8000-000000000001","event_type":"Ping","n":1}"#)?;
/// let rows = reader.read_after(start, 100)?;
/// let event = rows[0].event.as_ref().unwrap();
/// assert_eq!(event["event_type"], "Ping");
/// assert_eq!(event["n"], 1);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<_, bubus_sqlite::TableError>(())
/// ```
#[derive(Debug)]
pub struct BridgeTable {
    conn: Connection,
    path: PathBuf,
    table: String,
    columns: HashSet<String>,
    /// The prepared upsert per sorted column list, so a stream of events of one shape builds its
    /// SQL once.
    upserts: HashMap<Vec<String>, String>,
}

fn valid_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl BridgeTable {
    /// Opens (creating them if needed) the file and the table, in WAL mode with a 30 s busy
    /// timeout, as the family does (and `synchronous=NORMAL`).
    ///
    /// # Errors
    ///
    /// [`TableError::Identifier`] for a bad table name; [`TableError::Sqlite`] if the file cannot
    /// be opened or the table created.
    pub fn open(path: impl AsRef<Path>, table: &str) -> Result<Self, TableError> {
        let path = path.as_ref().to_path_buf();
        if !valid_identifier(table) {
            return Err(TableError::Identifier {
                what: "table name",
                name: table.to_owned(),
            });
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // A missing folder is SQLite's "unable to open database file"; make it.
            let _ = std::fs::create_dir_all(parent);
        }
        let sql = |source| TableError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(sql)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        // In WAL mode a commit survives the process being killed either way; NORMAL only
        // risks the last commits on a power loss, and saves an fsync per write.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS \"{table}\" (
                \"event_id\" TEXT PRIMARY KEY,
                \"event_created_at\" TEXT,
                \"event_type\" TEXT,
                \"event_payload\" JSON
            );
            CREATE INDEX IF NOT EXISTS \"{table}_event_created_at_idx\" ON \"{table}\" (\"event_created_at\");
            CREATE INDEX IF NOT EXISTS \"{table}_event_type_idx\" ON \"{table}\" (\"event_type\");"
        ))
        .map_err(sql)?;
        let mut this = BridgeTable {
            conn,
            path,
            table: table.to_owned(),
            columns: HashSet::new(),
            upserts: HashMap::new(),
        };
        this.refresh_columns()?;
        Ok(this)
    }

    /// Opens an existing bridge table without writing to the file (no table is created, no
    /// journal mode set): for tools that only read.
    ///
    /// # Errors
    ///
    /// [`TableError::Sqlite`] if the file cannot be opened or has no such table.
    pub fn open_read_only(path: impl AsRef<Path>, table: &str) -> Result<Self, TableError> {
        let path = path.as_ref().to_path_buf();
        if !valid_identifier(table) {
            return Err(TableError::Identifier {
                what: "table name",
                name: table.to_owned(),
            });
        }
        let sql = |source| TableError::Sqlite {
            path: path.clone(),
            source,
        };
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
        let mut this = BridgeTable {
            conn,
            path,
            table: table.to_owned(),
            columns: HashSet::new(),
            upserts: HashMap::new(),
        };
        this.refresh_columns()?;
        if this.columns.is_empty() {
            return Err(TableError::Sqlite {
                path: this.path.clone(),
                source: rusqlite::Error::InvalidParameterName(format!("no table {table:?}")),
            });
        }
        Ok(this)
    }

    /// The bridge tables of a database: tables with an `event_id` and an `event_payload` column.
    ///
    /// # Errors
    ///
    /// [`TableError::Sqlite`] if the file cannot be read.
    pub fn tables_in(path: impl AsRef<Path>) -> Result<Vec<String>, TableError> {
        let path = path.as_ref();
        let sql = |source| TableError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(sql)?;
        let mut query = conn
            .prepare(
                "SELECT m.name FROM sqlite_master m WHERE m.type = 'table' \
                 AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) WHERE name = 'event_id') \
                 AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) WHERE name = 'event_payload') \
                 ORDER BY m.name",
            )
            .map_err(sql)?;
        let names = query
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(sql)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql)?;
        Ok(names)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    fn sql(&self, source: rusqlite::Error) -> TableError {
        TableError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn refresh_columns(&mut self) -> Result<(), TableError> {
        let names = {
            let mut query = self
                .conn
                .prepare(&format!("PRAGMA table_info(\"{}\")", self.table))
                .map_err(|e| self.sql(e))?;
            query
                .query_map([], |row| row.get::<_, String>(1))
                .map_err(|e| self.sql(e))?
                .collect::<Result<HashSet<_>, _>>()
                .map_err(|e| self.sql(e))?
        };
        self.columns = names;
        Ok(())
    }

    /// Upserts one event given as compact JSON text (what `AnyEvent::to_json_string` gives):
    /// one column per top-level `event_*` key (added to the table if missing), the whole text in
    /// `event_payload`.
    ///
    /// # Errors
    ///
    /// [`TableError::Event`] if the text is not a JSON object with a string `event_id`;
    /// [`TableError::Identifier`] for an `event_*` key that cannot be a column name;
    /// [`TableError::Sqlite`] if the write fails.
    pub fn write_json(&mut self, json: &str) -> Result<(), TableError> {
        self.write_keyed(json, None)
    }

    /// Writes a record that is not an event (a bridge's completion record, whose text starts
    /// with `{"bubus_completion":`) under the row id `key`: its text in `event_payload`, no
    /// `event_type`. The family's readers fail to read it as an event and skip it.
    ///
    /// # Errors
    ///
    /// As [`write_json`](Self::write_json).
    pub fn write_record(&mut self, key: &str, json: &str) -> Result<(), TableError> {
        self.write_keyed(json, Some(key))
    }

    fn write_keyed(&mut self, json: &str, key: Option<&str>) -> Result<(), TableError> {
        let id_text: Box<RawValue>;
        let mut fields: HashMap<String, &RawValue> = serde_json::from_str(json)
            .map_err(|e| TableError::Event(format!("not a JSON object: {e}")))?;
        if let Some(key) = key {
            fields.retain(|k, _| !k.starts_with("event_"));
            id_text = RawValue::from_string(Value::String(key.to_owned()).to_string())
                .map_err(|e| TableError::Event(e.to_string()))?;
            fields.insert("event_id".to_owned(), &id_text);
        }
        match fields.get("event_id") {
            Some(id) if id.get().starts_with('"') => {}
            _ => return Err(TableError::Event("no string `event_id`".into())),
        }
        let mut keys: Vec<&str> = fields
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("event_") && *k != PAYLOAD)
            .collect();
        for key in &keys {
            if !valid_identifier(key) {
                return Err(TableError::Identifier {
                    what: "event field name",
                    name: (*key).to_owned(),
                });
            }
        }
        keys.push(PAYLOAD);
        keys.sort_unstable();
        self.ensure_columns(&keys)?;

        let key: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
        if !self.upserts.contains_key(&key) {
            let columns = keys
                .iter()
                .map(|k| format!("\"{k}\""))
                .collect::<Vec<_>>()
                .join(", ");
            let values = keys
                .iter()
                .map(|k| if *k == PAYLOAD { "json(?)" } else { "?" })
                .collect::<Vec<_>>()
                .join(", ");
            // A rewrite moves the row to the end (a new rowid), so readers see it again and
            // their de-duplication decides; the family keeps the row where it was.
            let updates = std::iter::once(format!(
                "rowid = (SELECT MAX(rowid) + 1 FROM \"{}\")",
                self.table
            ))
            .chain(
                keys.iter()
                    .filter(|k| **k != "event_id")
                    .map(|k| format!("\"{k}\" = excluded.\"{k}\"")),
            )
            .collect::<Vec<_>>()
            .join(", ");
            let sql = format!(
                "INSERT INTO \"{}\" ({columns}) VALUES ({values}) \
                 ON CONFLICT(\"event_id\") DO UPDATE SET {updates}",
                self.table
            );
            self.upserts.insert(key.clone(), sql);
        }
        let sql = &self.upserts[&key];
        let values: Vec<Option<&str>> = keys
            .iter()
            .map(|k| {
                if *k == PAYLOAD {
                    Some(json)
                } else {
                    let raw = fields[*k].get();
                    (raw != "null").then_some(raw)
                }
            })
            .collect();
        let mut statement = self.conn.prepare_cached(sql).map_err(|e| self.sql(e))?;
        statement
            .execute(rusqlite::params_from_iter(values))
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Adds the missing columns; a column another process added meanwhile is not an error.
    fn ensure_columns(&mut self, keys: &[&str]) -> Result<(), TableError> {
        if keys.iter().all(|k| self.columns.contains(*k)) {
            return Ok(());
        }
        self.refresh_columns()?;
        for key in keys {
            if self.columns.contains(*key) {
                continue;
            }
            let kind = if *key == PAYLOAD { "JSON" } else { "TEXT" };
            let added = self.conn.execute(
                &format!("ALTER TABLE \"{}\" ADD COLUMN \"{key}\" {kind}", self.table),
                [],
            );
            match added {
                Ok(_) => {}
                Err(e) if e.to_string().contains("duplicate column") => {}
                Err(e) => return Err(self.sql(e)),
            }
            self.columns.insert((*key).to_owned());
        }
        Ok(())
    }

    /// The `rowid` of the newest row (0 for an empty table): where a reader that only wants what
    /// is written from now on starts.
    ///
    /// # Errors
    ///
    /// [`TableError::Sqlite`] if the read fails.
    pub fn last_rowid(&self) -> Result<i64, TableError> {
        self.conn
            .query_row(
                &format!("SELECT COALESCE(MAX(rowid), 0) FROM \"{}\"", self.table),
                [],
                |row| row.get(0),
            )
            .map_err(|e| self.sql(e))
    }

    /// The `rowid` after which the last `n` rows start (0 if the table has `n` rows or fewer):
    /// `read_after(start_of_last(n), n)` reads the last `n` rows.
    ///
    /// # Errors
    ///
    /// [`TableError::Sqlite`] if the read fails.
    pub fn start_of_last(&self, n: u64) -> Result<i64, TableError> {
        let offset = i64::try_from(n).unwrap_or(i64::MAX);
        self.conn
            .query_row(
                &format!(
                    "SELECT rowid FROM \"{}\" ORDER BY rowid DESC LIMIT 1 OFFSET ?1",
                    self.table
                ),
                [offset],
                |row| row.get(0),
            )
            .optional()
            .map(|rowid| rowid.unwrap_or(0))
            .map_err(|e| self.sql(e))
    }

    /// Up to `limit` rows inserted after `rowid`, in insertion order.
    ///
    /// # Errors
    ///
    /// [`TableError::Sqlite`] if the read fails. A row that does not make an event's JSON is
    /// returned with its [`RowError`], not as an error of the whole read.
    pub fn read_after(&self, rowid: i64, limit: usize) -> Result<Vec<TableRow>, TableError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut query = self
            .conn
            .prepare_cached(&format!(
                "SELECT rowid, * FROM \"{}\" WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
                self.table
            ))
            .map_err(|e| self.sql(e))?;
        let names: Vec<String> = query
            .column_names()
            .iter()
            .map(|n| (*n).to_owned())
            .collect();
        let mut rows = query
            .query(params![rowid, limit])
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| self.sql(e))? {
            let rowid: i64 = row.get(0).map_err(|e| self.sql(e))?;
            out.push(TableRow {
                rowid,
                event: row_event(rowid, &names, row),
            });
        }
        Ok(out)
    }

    /// The saved position of the reader called `consumer` on this table, if it saved one.
    ///
    /// # Errors
    ///
    /// [`TableError::Sqlite`] if the read fails.
    pub fn load_cursor(&self, consumer: &str) -> Result<Option<i64>, TableError> {
        let exists: bool = self
            .conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                [CURSORS],
                |row| row.get(0),
            )
            .map_err(|e| self.sql(e))?;
        if !exists {
            return Ok(None);
        }
        self.conn
            .query_row(
                &format!(
                    "SELECT last_rowid FROM \"{CURSORS}\" WHERE table_name = ?1 AND consumer = ?2"
                ),
                params![self.table, consumer],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.sql(e))
    }

    /// Saves `rowid` as the position of the reader called `consumer` (in the table
    /// `bubus_bridge_cursors` of the same file; the family's readers ignore it).
    ///
    /// # Errors
    ///
    /// [`TableError::Sqlite`] if the write fails.
    pub fn save_cursor(&self, consumer: &str, rowid: i64) -> Result<(), TableError> {
        let mut statement = self
            .conn
            .prepare_cached(&format!(
                "INSERT INTO \"{CURSORS}\" (table_name, consumer, last_rowid) VALUES (?1, ?2, ?3) \
                 ON CONFLICT(table_name, consumer) DO UPDATE SET last_rowid = excluded.last_rowid"
            ))
            .or_else(|_| {
                self.conn.execute_batch(&format!(
                    "CREATE TABLE IF NOT EXISTS \"{CURSORS}\" (
                        table_name TEXT NOT NULL,
                        consumer TEXT NOT NULL,
                        last_rowid INTEGER NOT NULL,
                        PRIMARY KEY (table_name, consumer)
                    )"
                ))?;
                self.conn.prepare_cached(&format!(
                    "INSERT INTO \"{CURSORS}\" (table_name, consumer, last_rowid) VALUES (?1, ?2, ?3) \
                     ON CONFLICT(table_name, consumer) DO UPDATE SET last_rowid = excluded.last_rowid"
                ))
            })
            .map_err(|e| self.sql(e))?;
        statement
            .execute(params![self.table, consumer, rowid])
            .map_err(|e| self.sql(e))?;
        Ok(())
    }
}

/// The event's JSON from a row, as the family reads it: the `event_payload` object, then every
/// non-null `event_*` column decoded from its JSON text (kept as a string if it is not JSON).
fn row_event(
    rowid: i64,
    names: &[String],
    row: &rusqlite::Row<'_>,
) -> Result<Map<String, Value>, RowError> {
    let bad = |message: String| RowError { rowid, message };
    let mut event = Map::new();
    let mut columns = Vec::new();
    for (i, name) in names.iter().enumerate().skip(1) {
        let value = row.get_ref(i).map_err(|e| bad(e.to_string()))?;
        if name == PAYLOAD {
            let text = match value {
                ValueRef::Null => continue,
                ValueRef::Text(t) | ValueRef::Blob(t) => t,
                _ => return Err(bad("event_payload is not text".into())),
            };
            match serde_json::from_slice::<Value>(text) {
                // A completion record is delivered as it was written.
                Ok(Value::Object(map)) if map.contains_key(COMPLETION) => return Ok(map),
                Ok(Value::Object(map)) => event = map,
                Ok(_) => return Err(bad("event_payload is not a JSON object".into())),
                Err(e) => return Err(bad(format!("invalid JSON in event_payload: {e}"))),
            }
        } else if name.starts_with("event_") {
            let value = match value {
                ValueRef::Null => continue,
                ValueRef::Text(t) => match serde_json::from_slice::<Value>(t) {
                    Ok(v) => v,
                    Err(_) => Value::String(String::from_utf8_lossy(t).into_owned()),
                },
                ValueRef::Integer(n) => Value::from(n),
                ValueRef::Real(f) => Value::from(f),
                ValueRef::Blob(_) => return Err(bad(format!("{name} is a blob"))),
            };
            columns.push((name.clone(), value));
        }
    }
    for (name, value) in columns {
        event.insert(name, value);
    }
    if event.is_empty() {
        return Err(bad("neither event_payload nor any event_* column".into()));
    }
    Ok(event)
}
