//! `bubus tree`, `tail` and `convert` on a bridge table (the `abxbus_events` table SQLite
//! bridges write), as they read a log or a history mirror.

mod support;

use std::path::Path;

use bubus::wal::WalReader;
use bubus_sqlite::BridgeTable;
use bubus_sqlite::rusqlite::Connection;
use support::{Running, path_str, run, shop_run, stderr, stdout, temp_dir};

/// The latest state of every event of a log, written as a bridge would write it (each record
/// an upsert). Returns how many events (rows).
fn bridge_from_wal(wal: &Path, db: &Path, table: &str) -> usize {
    let mut out = BridgeTable::open(db, table).unwrap();
    let mut ids = std::collections::HashSet::new();
    for record in WalReader::open(wal).unwrap() {
        let record = record.unwrap();
        out.write_json(&record.event.to_json_string_with_results())
            .unwrap();
        ids.insert(record.event.event_id());
    }
    ids.len()
}

#[test]
fn tree_of_a_bridge_table_is_the_tree_of_the_log() {
    let dir = temp_dir("bridge-tree");
    let wal = dir.join("shop.jsonl");
    let db = dir.join("bridge.sqlite3");
    let live = shop_run(&wal, None);
    bridge_from_wal(&wal, &db, "abxbus_events");

    let output = run(&["tree", path_str(&db)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    assert_eq!(stdout(&output), format!("{live}\n"));

    // Converted to a log, the same tree again.
    let back = dir.join("back.jsonl");
    let output = run(&["convert", path_str(&db), path_str(&back)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(&["tree", path_str(&back)]);
    assert_eq!(stdout(&output), format!("{live}\n"));
}

#[test]
fn bad_rows_are_reported_with_their_rowid_and_skipped() {
    let dir = temp_dir("bridge-bad");
    let wal = dir.join("shop.jsonl");
    let db = dir.join("bridge.sqlite3");
    let live = shop_run(&wal, None);
    BridgeTable::open(&db, "abxbus_events").unwrap();
    Connection::open(&db)
        .unwrap()
        .execute(
            "INSERT INTO abxbus_events (event_id, event_payload) VALUES ('\"x\"', '{broken')",
            [],
        )
        .unwrap();
    bridge_from_wal(&wal, &db, "abxbus_events");

    let output = run(&["tree", "--color", "never", path_str(&db)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{live}\n"));
    let warning = stderr(&output);
    assert!(
        warning.contains("abxbus_events row 1: invalid JSON in event_payload"),
        "{warning}"
    );
    let strict = run(&["tree", "--strict", path_str(&db)]);
    assert_eq!(strict.status.code(), Some(1));
}

#[test]
fn tail_prints_rows_in_insertion_order() {
    let dir = temp_dir("bridge-tail");
    let wal = dir.join("shop.jsonl");
    let db = dir.join("bridge.sqlite3");
    shop_run(&wal, None);
    let rows = bridge_from_wal(&wal, &db, "abxbus_events");
    assert!(rows > 3);

    let all = run(&["tail", "--json", "--from-start", path_str(&db)]);
    assert!(all.status.success(), "{}", stderr(&all));
    let lines: Vec<serde_json::Value> = stdout(&all)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), rows);
    let last_two = run(&["tail", "--json", "-n", "2", path_str(&db)]);
    let tail: Vec<serde_json::Value> = stdout(&last_two)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(tail, lines[rows - 2..]);
    let pretty = run(&["tail", "--color", "never", "-n", "1", path_str(&db)]);
    assert!(stdout(&pretty).contains("Shop#"), "{}", stdout(&pretty));
}

#[test]
fn tail_follows_a_bridge_table() {
    let dir = temp_dir("bridge-follow");
    let db = dir.join("bridge.sqlite3");
    let mut table = BridgeTable::open(&db, "abxbus_events").unwrap();
    table
        .write_json(
            r#"{"event_id":"0190a1b2-0000-7000-8000-000000000001","event_type":"Ping","n":1}"#,
        )
        .unwrap();
    let mut tail = Running::spawn(&["tail", "-f", "--json", path_str(&db)]);
    tail.expect_stdout("the existing row", |l| l.contains(r#""n":1"#));
    table
        .write_json(
            r#"{"event_id":"0190a1b2-0000-7000-8000-000000000002","event_type":"Ping","n":2}"#,
        )
        .unwrap();
    tail.expect_stdout("the new row", |l| l.contains(r#""n":2"#));
}

#[test]
fn several_bridge_tables_need_a_choice() {
    let dir = temp_dir("bridge-choice");
    let wal = dir.join("shop.jsonl");
    let db = dir.join("bridge.sqlite3");
    let live = shop_run(&wal, None);
    bridge_from_wal(&wal, &db, "orders_events");
    BridgeTable::open(&db, "billing_events").unwrap();

    let output = run(&["tree", path_str(&db)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--table"), "{}", stderr(&output));
    let output = run(&["tree", "--table", "orders_events", path_str(&db)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{live}\n"));
    let output = run(&["tree", "--table", "nope", path_str(&db)]);
    assert!(stderr(&output).contains("billing_events, orders_events"));
}
