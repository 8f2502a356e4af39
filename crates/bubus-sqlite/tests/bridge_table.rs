//! The bridge table layer: the family's `abxbus_events` layout, upserts, the insertion-ordered
//! cursor and its persistence, and bad rows.

use bubus::{AnyEvent, DynEvent, EventHandle};
use bubus_sqlite::rusqlite::Connection;
use bubus_sqlite::{BridgeTable, DEFAULT_TABLE};
use serde_json::{Value, json};

fn temp_db(name: &str) -> std::path::PathBuf {
    let dir =
        std::env::temp_dir().join(format!("bubus-bridge-table-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("bridge.sqlite3")
}

fn event(kind: &str, payload: Value) -> AnyEvent {
    EventHandle::new(DynEvent::new(kind, payload).unwrap())
        .as_ref()
        .clone()
}

#[test]
fn rows_have_the_family_layout_and_read_back_as_the_event() {
    let path = temp_db("layout");
    let mut table = BridgeTable::open(&path, DEFAULT_TABLE).unwrap();
    let sent = event("OrderPlaced", json!({"order_id": 7, "note": "é"}));
    table.write_json(&sent.to_json_string()).unwrap();

    let db = Connection::open(&path).unwrap();
    let (id, kind, status, payload): (String, String, String, String) = db
        .query_row(
            "SELECT event_id, event_type, event_status, event_payload FROM abxbus_events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    // Every column value is JSON text: strings are quoted.
    assert_eq!(id, format!("\"{}\"", sent.event_id()));
    assert_eq!(kind, "\"OrderPlaced\"");
    assert_eq!(status, "\"pending\"");
    // The whole event is in event_payload.
    let payload: Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(payload, sent.to_json());
    // A null value is SQL NULL.
    let timeout: Option<String> = db
        .query_row("SELECT event_timeout FROM abxbus_events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(timeout, None);

    let rows = table.read_after(0, 10).unwrap();
    assert_eq!(rows.len(), 1);
    let read = AnyEvent::from_json(&Value::Object(rows[0].event.clone().unwrap())).unwrap();
    assert_eq!(read.to_json(), sent.to_json());
}

#[test]
fn columns_are_added_on_demand_and_writes_upsert_by_id() {
    let path = temp_db("upsert");
    let mut table = BridgeTable::open(&path, "custom_events").unwrap();
    table
        .write_json(r#"{"event_id":"a","event_type":"A","x":1}"#)
        .unwrap();
    table
        .write_json(r#"{"event_id":"a","event_type":"A","event_extra_key":[1,2],"x":2}"#)
        .unwrap();
    let db = Connection::open(&path).unwrap();
    let (count, extra, payload): (i64, String, String) = db
        .query_row(
            "SELECT COUNT(*), MAX(event_extra_key), MAX(event_payload) FROM custom_events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(count, 1);
    assert_eq!(extra, "[1,2]");
    assert_eq!(serde_json::from_str::<Value>(&payload).unwrap()["x"], 2);
    // Another connection that cached the old columns still writes rows with the new key.
    let mut other = BridgeTable::open(&path, "custom_events").unwrap();
    table
        .write_json(r#"{"event_id":"b","event_type":"B","event_newer":true}"#)
        .unwrap();
    other
        .write_json(r#"{"event_id":"c","event_type":"C","event_newer":false}"#)
        .unwrap();
    assert_eq!(other.read_after(0, 10).unwrap().len(), 3);
}

#[test]
fn bad_names_and_non_events_are_refused() {
    let path = temp_db("names");
    assert!(BridgeTable::open(&path, "drop table; --").is_err());
    let mut table = BridgeTable::open(&path, DEFAULT_TABLE).unwrap();
    assert!(table.write_json("[1]").is_err());
    assert!(table.write_json(r#"{"event_type":"A"}"#).is_err());
    assert!(
        table
            .write_json(r#"{"event_id":"a","event_bad key":1}"#)
            .is_err()
    );
    assert_eq!(table.read_after(0, 10).unwrap().len(), 0);
}

#[test]
fn the_cursor_follows_insertion_order_not_creation_time() {
    let path = temp_db("late");
    let mut table = BridgeTable::open(&path, DEFAULT_TABLE).unwrap();
    let reader = BridgeTable::open(&path, DEFAULT_TABLE).unwrap();
    table
        .write_json(r#"{"event_id":"new","event_type":"A","event_created_at":"2026-01-02T00:00:00.000000000Z"}"#)
        .unwrap();
    let first = reader.read_after(0, 10).unwrap();
    assert_eq!(first.len(), 1);
    let cursor = first[0].rowid;
    // Written later, created earlier: the family's (created_at, id) cursor skips it.
    table
        .write_json(r#"{"event_id":"old","event_type":"A","event_created_at":"2020-01-01T00:00:00.000000000Z"}"#)
        .unwrap();
    let next = reader.read_after(cursor, 10).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].event.as_ref().unwrap()["event_id"], "old");
    assert_eq!(reader.last_rowid().unwrap(), next[0].rowid);
}

#[test]
fn a_saved_cursor_survives_reopening() {
    let path = temp_db("cursor");
    let table = BridgeTable::open(&path, DEFAULT_TABLE).unwrap();
    assert_eq!(table.load_cursor("orders").unwrap(), None);
    table.save_cursor("orders", 41).unwrap();
    table.save_cursor("orders", 42).unwrap();
    table.save_cursor("billing", 7).unwrap();
    drop(table);
    let table = BridgeTable::open(&path, DEFAULT_TABLE).unwrap();
    assert_eq!(table.load_cursor("orders").unwrap(), Some(42));
    assert_eq!(table.load_cursor("billing").unwrap(), Some(7));
    let other = BridgeTable::open(&path, "other_events").unwrap();
    assert_eq!(other.load_cursor("orders").unwrap(), None);
}

#[test]
fn a_bad_row_is_reported_with_its_rowid_and_the_next_is_read() {
    let path = temp_db("bad");
    let mut table = BridgeTable::open(&path, DEFAULT_TABLE).unwrap();
    let db = Connection::open(&path).unwrap();
    db.execute(
        "INSERT INTO abxbus_events (event_id, event_payload) VALUES ('\"x\"', '{not json')",
        [],
    )
    .unwrap();
    db.execute(
        "INSERT INTO abxbus_events (event_id, event_payload) VALUES ('\"y\"', '[1]')",
        [],
    )
    .unwrap();
    table
        .write_json(r#"{"event_id":"z","event_type":"Good"}"#)
        .unwrap();
    let rows = table.read_after(0, 10).unwrap();
    assert_eq!(rows.len(), 3);
    let err = rows[0].event.as_ref().unwrap_err();
    assert_eq!(err.rowid, rows[0].rowid);
    assert!(err.message.contains("invalid JSON"), "{err}");
    assert!(
        rows[1]
            .event
            .as_ref()
            .unwrap_err()
            .message
            .contains("not a JSON object")
    );
    assert_eq!(rows[2].event.as_ref().unwrap()["event_type"], "Good");
}

#[test]
fn tables_in_lists_bridge_tables_only() {
    let path = temp_db("list");
    BridgeTable::open(&path, "b_events").unwrap();
    BridgeTable::open(&path, "a_events").unwrap();
    BridgeTable::open(&path, "a_events")
        .unwrap()
        .save_cursor("x", 1)
        .unwrap();
    assert_eq!(
        BridgeTable::tables_in(&path).unwrap(),
        ["a_events", "b_events"]
    );
}

#[test]
fn a_rewritten_row_moves_to_the_end_and_is_read_again() {
    let path = temp_db("rewrite");
    let mut table = BridgeTable::open(&path, DEFAULT_TABLE).unwrap();
    table
        .write_json(r#"{"event_id":"a","event_type":"A"}"#)
        .unwrap();
    table
        .write_json(r#"{"event_id":"b","event_type":"B"}"#)
        .unwrap();
    let read = table.read_after(0, 10).unwrap();
    let cursor = read[1].rowid;
    // The newest row rewritten: still a new position, not its old one.
    table
        .write_json(r#"{"event_id":"b","event_type":"B","x":2}"#)
        .unwrap();
    table
        .write_json(r#"{"event_id":"a","event_type":"A","x":1}"#)
        .unwrap();
    let again = table.read_after(cursor, 10).unwrap();
    let ids: Vec<_> = again
        .iter()
        .map(|r| r.event.as_ref().unwrap()["event_id"].clone())
        .collect();
    assert_eq!(ids, [json!("b"), json!("a")]);
    assert_eq!(again[1].event.as_ref().unwrap()["x"], 1);
    assert_eq!(table.read_after(0, 10).unwrap().len(), 2);
}
