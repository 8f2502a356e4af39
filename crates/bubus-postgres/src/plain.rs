//! The family's wire (abxbus 2.5 `PostgresEventBridge`): one flat table, upserted by
//! `event_id`, and a `NOTIFY` with the JSON-encoded id.
//!
//! Table: `event_id TEXT PRIMARY KEY, event_created_at TEXT, event_type TEXT, event_payload TEXT`
//! plus one `TEXT` column per `event_*` key an emitted event has (added on first use); every
//! value is stored JSON-encoded (strings quoted), `NULL` for null, and `event_payload` holds the
//! whole event. The notification's payload is the JSON-encoded id (quotes included). A receiver
//! reads the row by that text, takes `event_payload` and overlays every non-null `event_*`
//! column. Delivery is at-most-once: a receiver that is not listening when the notification is
//! sent never hears of the row.

use std::collections::HashSet;

use parking_lot::Mutex;
use serde_json::{Map, Value};
use tokio_postgres::Client;

use crate::error::PgError;

/// The family's table: creates it, writes events into it and reads them back.
#[derive(Debug)]
pub(crate) struct PlainTable {
    pub(crate) table: String,
    pub(crate) channel: String,
    columns: Mutex<HashSet<String>>,
}

impl PlainTable {
    pub(crate) fn new(table: String, channel: String) -> PlainTable {
        PlainTable {
            table,
            channel,
            columns: Mutex::new(HashSet::new()),
        }
    }

    /// Creates the table and its indexes if missing and learns its columns.
    pub(crate) async fn ensure_schema(&self, client: &Client) -> Result<(), PgError> {
        let t = &self.table;
        let created_idx = index_name(t, "event_created_at_idx");
        let type_idx = index_name(t, "event_type_idx");
        client
            .batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS \"{t}\" (\"event_id\" TEXT PRIMARY KEY, \
                 \"event_created_at\" TEXT, \"event_type\" TEXT, \"event_payload\" TEXT); \
                 CREATE INDEX IF NOT EXISTS \"{created_idx}\" ON \"{t}\" (\"event_created_at\"); \
                 CREATE INDEX IF NOT EXISTS \"{type_idx}\" ON \"{t}\" (\"event_type\");"
            ))
            .await
            .or_else(ignore_concurrent_ddl)?;
        let rows = client
            .query(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
                &[&self.table],
            )
            .await?;
        let mut columns = self.columns.lock();
        columns.clear();
        columns.extend(rows.iter().filter_map(|r| r.try_get::<_, String>(0).ok()));
        Ok(())
    }

    /// Upserts `event` (its JSON object) and notifies the channel.
    pub(crate) async fn write(
        &self,
        client: &Client,
        event: &Map<String, Value>,
    ) -> Result<(), PgError> {
        let Some(Value::String(id)) = event.get("event_id") else {
            return Err(PgError::Decode {
                event_id: String::new(),
                message: "event without a string event_id".into(),
            });
        };
        // Columns: every event_* key (sorted, as the family writes them) and event_payload.
        let mut keys: Vec<&str> = event
            .keys()
            .map(String::as_str)
            .filter(|k| k.starts_with("event_") && *k != "event_payload")
            .filter(|k| crate::url::is_identifier(k))
            .chain(["event_payload"])
            .collect();
        keys.sort_unstable();
        let missing: Vec<&str> = {
            let columns = self.columns.lock();
            keys.iter()
                .copied()
                .filter(|k| !columns.contains(*k))
                .collect()
        };
        if !missing.is_empty() {
            let sql: String = missing
                .iter()
                .map(|k| {
                    format!(
                        "ALTER TABLE \"{}\" ADD COLUMN IF NOT EXISTS \"{k}\" TEXT;",
                        self.table
                    )
                })
                .collect();
            client
                .batch_execute(&sql)
                .await
                .or_else(ignore_concurrent_ddl)?;
            self.columns
                .lock()
                .extend(missing.iter().map(|k| (*k).to_owned()));
        }
        let payload_text = Value::Object(event.clone()).to_string();
        let values: Vec<Option<String>> = keys
            .iter()
            .map(|k| {
                if *k == "event_payload" {
                    Some(payload_text.clone())
                } else {
                    match event.get(*k) {
                        None | Some(Value::Null) => None,
                        Some(v) => Some(v.to_string()),
                    }
                }
            })
            .collect();
        let columns: Vec<String> = keys.iter().map(|k| format!("\"{k}\"")).collect();
        let placeholders: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
        let updates: Vec<String> = keys
            .iter()
            .filter(|k| **k != "event_id")
            .map(|k| format!("\"{k}\" = EXCLUDED.\"{k}\""))
            .collect();
        let sql = format!(
            "INSERT INTO \"{}\" ({}) VALUES ({}) ON CONFLICT (\"event_id\") DO UPDATE SET {}",
            self.table,
            columns.join(", "),
            placeholders.join(", "),
            updates.join(", ")
        );
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        client.execute(&sql, &params).await?;
        let id_payload = Value::String(id.clone()).to_string();
        client
            .execute("SELECT pg_notify($1, $2)", &[&self.channel, &id_payload])
            .await?;
        Ok(())
    }

    /// Writes a completion record (results back): a row keyed `"<id>:completion"` holding the
    /// record as its `event_payload`, and a notification with that key. Family receivers read
    /// it, fail to validate it as an event and skip it.
    pub(crate) async fn write_completion(
        &self,
        client: &Client,
        event_id: &str,
        text: &str,
    ) -> Result<(), PgError> {
        let key = Value::String(format!("{event_id}:completion")).to_string();
        client
            .execute(
                &format!(
                    "INSERT INTO \"{}\" (\"event_id\", \"event_payload\") VALUES ($1, $2) \
                     ON CONFLICT (\"event_id\") DO UPDATE SET \"event_payload\" = EXCLUDED.\"event_payload\"",
                    self.table
                ),
                &[&key, &text],
            )
            .await?;
        client
            .execute("SELECT pg_notify($1, $2)", &[&self.channel, &key])
            .await?;
        Ok(())
    }

    /// Reads the row a notification named (its payload is the stored, JSON-encoded id) and
    /// rebuilds the event's JSON text: `event_payload` overlaid with every non-null `event_*`
    /// column (a completion record is returned as stored). `None` when there is no such row.
    pub(crate) async fn read(
        &self,
        client: &Client,
        id_payload: &str,
    ) -> Result<Option<String>, PgError> {
        let sql = format!(
            "SELECT row_to_json(t)::text FROM \"{}\" t WHERE \"event_id\" = $1",
            self.table
        );
        let Some(row) = client.query_opt(&sql, &[&id_payload]).await? else {
            return Ok(None);
        };
        let text: String = row.try_get(0)?;
        let bad = |message: String| PgError::Decode {
            event_id: id_payload.to_owned(),
            message,
        };
        let Value::Object(columns) =
            serde_json::from_str::<Value>(&text).map_err(|e| bad(e.to_string()))?
        else {
            return Err(bad("row is not an object".into()));
        };
        if let Some(Value::String(payload)) = columns.get("event_payload") {
            if payload.starts_with("{\"bubus_completion\"") {
                return Ok(Some(payload.clone()));
            }
        }
        Ok(Some(Value::Object(rebuild(columns)).to_string()))
    }
}

/// The family's receive rule, from a row's columns (values as stored: JSON text or null).
pub(crate) fn rebuild(columns: Map<String, Value>) -> Map<String, Value> {
    let mut event = match columns.get("event_payload") {
        Some(Value::String(text)) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        },
        _ => Map::new(),
    };
    for (key, raw) in columns {
        if key == "event_payload" || !key.starts_with("event_") {
            continue;
        }
        let Value::String(text) = raw else { continue };
        let value = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
        event.insert(key, value);
    }
    event
}

fn index_name(table: &str, suffix: &str) -> String {
    let mut name = format!("{table}_{suffix}");
    name.truncate(63);
    name
}

/// Two bridges creating the same table at once can collide in the catalog (a unique violation
/// on `pg_type`); the loser's table exists all the same.
pub(crate) fn ignore_concurrent_ddl(e: tokio_postgres::Error) -> Result<(), PgError> {
    match e.code().map(|c| c.code()) {
        Some("23505") | Some("42P07") | Some("42701") => Ok(()),
        _ => Err(e.into()),
    }
}
