//! `bubus convert`: a write-ahead log to a history mirror and back, with the same events, results
//! and tree on every side.

mod support;

use bubus::wal::{RecordKind, WalReader};
use bubus::{EventStatus, result::ResultStatus};
use bubus_sqlite::rusqlite::Connection;
use support::{golden, path_str, run, shop_run, stderr, stdout, temp_dir};

/// `(event_id, kind, status, number of results)` of every record of a log, in order.
fn records(path: &std::path::Path) -> Vec<(String, RecordKind, EventStatus, usize)> {
    WalReader::open(path)
        .expect("open the log")
        .map(|record| {
            let record = record.expect("a good record");
            (
                record.event.event_id().to_string(),
                record.kind,
                record.event.event_status(),
                record.event.event_results().len(),
            )
        })
        .collect()
}

#[test]
fn a_log_becomes_a_mirror_with_the_same_tree() {
    let dir = temp_dir("convert-wal");
    let wal = dir.join("shop.jsonl");
    let db = dir.join("shop.sqlite3");
    let live = shop_run(&wal, None);

    let output = run(&["convert", "--no-progress", path_str(&wal), path_str(&db)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert!(
        stderr(&output).contains("converted 4 events from"),
        "{}",
        stderr(&output)
    );

    // The rows a mirror would have written: a pending and a completed row per event, one row
    // per handler result, queryable with plain SQL.
    let conn = Connection::open(&db).unwrap();
    let phases: Vec<(String, i64)> = conn
        .prepare("SELECT phase, COUNT(*) FROM events_log GROUP BY phase ORDER BY phase")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        phases,
        [("completed".to_string(), 4), ("pending".to_string(), 4)]
    );
    let errors: Vec<(String, String)> = conn
        .prepare(
            "SELECT handler_name, error_repr FROM event_results_log \
             WHERE status = 'error' ORDER BY id",
        )
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].0.ends_with("audit"), "{errors:?}");
    assert_eq!(errors[0].1, "AuditError: disk full");
    let results: i64 = conn
        .query_row("SELECT COUNT(*) FROM event_results_log", [], |row| {
            row.get(0)
        })
        .unwrap();
    // Two orders × two handlers, two charges × one handler.
    assert_eq!(results, 6);
    drop(conn);

    // No temporary file is left behind.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["shop.jsonl", "shop.sqlite3"]);

    let output = run(&["tree", path_str(&db)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{live}\n"));
}

#[test]
fn a_mirror_becomes_a_log_that_reads_back_intact() {
    let dir = temp_dir("convert-sqlite");
    let wal = dir.join("shop.jsonl");
    let db = dir.join("shop.sqlite3");
    let back = dir.join("back.jsonl");
    let live = shop_run(&wal, Some(&db));

    let output = run(&["convert", path_str(&db), path_str(&back)]);
    assert!(output.status.success(), "{}", stderr(&output));

    // One completion record per event, in dispatch order, results included.
    let (original, dispatched): (Vec<_>, Vec<_>) = records(&wal)
        .into_iter()
        .partition(|(_, kind, _, _)| *kind == RecordKind::Completed);
    let mut by_dispatch: Vec<_> = dispatched.into_iter().map(|(id, ..)| id).collect();
    by_dispatch.dedup();
    let converted = records(&back);
    assert_eq!(
        converted
            .iter()
            .map(|(id, ..)| id.clone())
            .collect::<Vec<_>>(),
        by_dispatch
    );
    for (id, kind, status, results) in &converted {
        assert_eq!(*kind, RecordKind::Completed);
        assert_eq!(*status, EventStatus::Completed);
        let (.., expected) = original
            .iter()
            .find(|(other, ..)| other == id)
            .expect("the event is in the original log");
        assert_eq!(results, expected, "results of {id}");
    }

    // Every result kept its handler, status and value or error.
    let events: Vec<_> = WalReader::open(&back)
        .unwrap()
        .map(|record| record.unwrap().event)
        .collect();
    let first = &events[0];
    let statuses: Vec<ResultStatus> = first.event_results().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [ResultStatus::Completed, ResultStatus::Completed]);
    assert_eq!(
        first.event_results()[0].result,
        Some(serde_json::json!(1999))
    );

    // And the log draws the same tree as the bus did.
    let output = run(&["tree", path_str(&back)]);
    assert_eq!(stdout(&output), format!("{live}\n"));
}

#[test]
fn a_python_log_converts_both_ways() {
    let dir = temp_dir("convert-python");
    let db = dir.join("py.db");
    let back = dir.join("py.jsonl");
    let source = golden("wire/python156/py_wal.jsonl");

    let output = run(&["convert", "--no-progress", path_str(&source), path_str(&db)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = run(&["convert", path_str(&db), path_str(&back)]);
    assert!(output.status.success(), "{}", stderr(&output));

    let tree_of = |path: &std::path::Path| stdout(&run(&["tree", path_str(path)]));
    let expected = tree_of(&source);
    assert!(expected.contains("OrderPlaced#bf35"), "{expected}");
    assert_eq!(tree_of(&db), expected);
    assert_eq!(tree_of(&back), expected);
}

#[test]
fn bad_lines_are_reported_and_skipped() {
    let dir = temp_dir("convert-bad");
    let wal = dir.join("pings.jsonl");
    let db = dir.join("pings.sqlite3");
    support::write_pings_around(&wal, "{\"event_type\": ", 2);

    let output = run(&["convert", "--no-progress", path_str(&wal), path_str(&db)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).starts_with(&format!("warning: {}:2: ", wal.display())),
        "{}",
        stderr(&output)
    );
    let conn = Connection::open(&db).unwrap();
    let events: i64 = conn
        .query_row(
            "SELECT COUNT(DISTINCT event_id) FROM events_log",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(events, 2);
    drop(conn);

    // --strict: the good lines are still converted, but the exit status says the input was bad.
    let strict = dir.join("strict.sqlite3");
    let output = run(&[
        "--strict",
        "convert",
        "--no-progress",
        path_str(&wal),
        path_str(&strict),
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).ends_with("error: 1 bad line in the input (--strict)\n"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&run(&["tree", path_str(&strict)])).contains("Ping#"));
    let leftovers = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            name.to_string_lossy().contains(".partial-")
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn the_output_is_protected() {
    let dir = temp_dir("convert-refuse");
    let wal = dir.join("shop.jsonl");
    support::shop_wal(&wal);
    let db = dir.join("shop.sqlite3");
    std::fs::write(&db, "keep me").unwrap();

    // An existing output is kept unless --force.
    let output = run(&["convert", "--no-progress", path_str(&wal), path_str(&db)]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        stderr(&output),
        format!(
            "error: {} already exists (use --force to replace it)\n",
            db.display()
        )
    );
    assert_eq!(std::fs::read_to_string(&db).unwrap(), "keep me");
    let output = run(&[
        "convert",
        "--force",
        "--no-progress",
        path_str(&wal),
        path_str(&db),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&run(&["tree", path_str(&db)])).contains("OrderPlaced#"));

    // The input is never the output, and the output is named for what it will hold.
    let refused = |input: &std::path::Path, output: &std::path::Path, why: &str| {
        let result = run(&["convert", path_str(input), path_str(output)]);
        assert_eq!(result.status.code(), Some(2));
        assert!(stderr(&result).contains(why), "{}", stderr(&result));
    };
    refused(&wal, &wal, "is both the input and the output");
    refused(&wal, &dir.join("out.jsonl"), "is named like a log");
    refused(&db, &dir.join("out.db"), "is named like a database");

    // A missing input is an error, not an empty output.
    let missing = dir.join("missing.jsonl");
    let out = dir.join("missing.sqlite3");
    let output = run(&["convert", path_str(&missing), path_str(&out)]);
    assert_ne!(output.status.code(), Some(0));
    assert!(
        stderr(&output).starts_with("error: "),
        "{}",
        stderr(&output)
    );
    assert!(!out.exists());
}

/// A mirror whose tables accept anything (as tables written by other tools may): its columns
/// lose their `NOT NULL`.
fn loosen(db: &Connection) {
    for table in ["events_log", "event_results_log"] {
        db.execute_batch(&format!(
            "ALTER TABLE {table} RENAME TO old_{table};
             CREATE TABLE {table} AS SELECT * FROM old_{table};
             DROP TABLE old_{table};"
        ))
        .unwrap();
    }
}

#[test]
fn rows_whose_json_is_null_or_a_blob_are_reported_and_skipped() {
    let dir = temp_dir("convert-null-rows");
    let wal = dir.join("shop.jsonl");
    let db = dir.join("shop.sqlite3");
    shop_run(&wal, Some(&db));
    let conn = Connection::open(&db).unwrap();
    loosen(&conn);
    let events: Vec<String> = conn
        .prepare("SELECT DISTINCT event_id FROM events_log ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(events.len(), 4);
    // The first event's latest row has no JSON; every row of the second holds a BLOB; one
    // result row of the third has a BLOB id; one event row of the fourth has a NULL event id.
    let latest = |id: &str| -> i64 {
        conn.query_row(
            "SELECT MAX(id) FROM events_log WHERE event_id = ?1",
            [id],
            |row| row.get(0),
        )
        .unwrap()
    };
    let nulled = latest(&events[0]);
    conn.execute(
        "UPDATE events_log SET event_json = NULL WHERE id = ?1",
        [nulled],
    )
    .unwrap();
    let blobbed = conn
        .execute(
            "UPDATE events_log SET event_json = CAST(event_json AS BLOB) WHERE event_id = ?1",
            [&events[1]],
        )
        .unwrap();
    let result_row: i64 = conn
        .query_row(
            "SELECT MIN(id) FROM event_results_log WHERE event_id = ?1",
            [&events[2]],
            |row| row.get(0),
        )
        .unwrap();
    conn.execute(
        "UPDATE event_results_log SET event_result_id = CAST(event_result_id AS BLOB) WHERE id = ?1",
        [result_row],
    )
    .unwrap();
    let no_id = latest(&events[3]);
    conn.execute(
        "UPDATE events_log SET event_id = NULL WHERE id = ?1",
        [no_id],
    )
    .unwrap();
    drop(conn);

    let back = dir.join("back.jsonl");
    let output = run(&["convert", path_str(&db), path_str(&back)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let warnings: Vec<String> = stderr(&output)
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .map(str::to_owned)
        .collect();
    let name = db.display();
    let expected = [
        format!("warning: {name}: events_log row {nulled}: event_json is NULL, not text"),
        format!(
            "warning: {name}: event_results_log row {result_row}: event_result_id is a BLOB, not text"
        ),
        format!("warning: {name}: events_log row {no_id}: event_id is NULL, not text"),
    ];
    for warning in &expected {
        assert!(
            warnings.contains(warning),
            "{warning} missing from {warnings:#?}"
        );
    }
    let blob_warnings = warnings
        .iter()
        .filter(|w| w.contains("event_json is a BLOB, not text"))
        .count();
    assert_eq!(blob_warnings, blobbed);
    assert_eq!(warnings.len(), expected.len() + blobbed);

    // The others are converted: the first from its previous row, the third without the bad
    // result row, the fourth from its earlier rows; the second has no row left.
    let converted: Vec<_> = records(&back).into_iter().map(|(id, ..)| id).collect();
    assert_eq!(
        converted,
        [events[0].clone(), events[2].clone(), events[3].clone()]
    );

    // --strict says the input was bad.
    let strict = dir.join("strict.jsonl");
    let output = run(&["--strict", "convert", path_str(&db), path_str(&strict)]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
}
