//! `bubus tree`: the event tree of a log or a history mirror, as `EventBus::log_tree` draws it.

mod support;

use support::{golden, path_str, run, shop_run, stderr, stdout, temp_dir};

#[test]
fn the_tree_of_a_log_is_the_live_bus_tree() {
    let dir = temp_dir("tree-wal");
    let wal = dir.join("shop.jsonl");
    let live = shop_run(&wal, None);

    let output = run(&["tree", path_str(&wal)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    // Rebuilt from the latest record of each event: the same tree, timings included.
    assert_eq!(stdout(&output), format!("{live}\n"));

    let tree = stdout(&output);
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 10, "{tree}");
    assert!(lines[0].starts_with("├── OrderPlaced#"));
    assert!(lines[1].starts_with("│   ├── ✅ Shop#") && lines[1].contains("::place_order#"));
    assert!(lines[1].ends_with("→ 1999"), "{}", lines[1]);
    assert!(lines[2].starts_with("│   │   └── ChargeCard#"));
    assert!(lines[3].ends_with("→ 'charged 1999 cents'"), "{}", lines[3]);
    assert!(lines[4].starts_with("│   └── ✅ Shop#") && lines[4].ends_with("→ None"));
    assert!(lines[5].starts_with("└── OrderPlaced#"));
    assert!(lines[9].starts_with("    └── ❌ Shop#"), "{}", lines[9]);
    assert!(
        lines[9].ends_with("☠️ AuditError: disk full"),
        "{}",
        lines[9]
    );
}

#[test]
fn the_tree_of_a_history_mirror_is_the_same() {
    let dir = temp_dir("tree-sqlite");
    let wal = dir.join("shop.jsonl");
    let db = dir.join("shop.sqlite3");
    let live = shop_run(&wal, Some(&db));

    // Found to be SQLite from its content, whatever its name.
    let renamed = dir.join("history.data");
    std::fs::copy(&db, &renamed).unwrap();
    for path in [&db, &renamed] {
        let output = run(&["tree", path_str(path)]);
        assert!(output.status.success(), "{}", stderr(&output));
        assert_eq!(stdout(&output), format!("{live}\n"));
    }
    let output = run(&["tree", "--format", "sqlite", path_str(&db)]);
    assert_eq!(stdout(&output), format!("{live}\n"));
}

#[test]
fn the_tree_of_a_python_log() {
    let output = run(&["tree", path_str(&golden("wire/python156/py_wal.jsonl"))]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "├── OrderPlaced#bf35 [18:01:43.395]\n\
         │   └── ShipmentRequested#3785 [18:01:43.398]\n\
         └── AuditLogged#ead6 [18:01:43.395 (0.004s)]\n"
    );
}

#[test]
fn bad_lines_are_reported_and_the_rest_is_drawn() {
    let dir = temp_dir("tree-bad");
    let wal = dir.join("pings.jsonl");
    support::write_pings_around(&wal, "garbage", 2);

    let output = run(&["tree", path_str(&wal)]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output).lines().count(), 2);
    assert!(stderr(&output).starts_with(&format!("warning: {}:2: ", wal.display())));
    assert_eq!(
        run(&["--strict", "tree", path_str(&wal)]).status.code(),
        Some(1)
    );

    let empty = dir.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    assert_eq!(stdout(&run(&["tree", path_str(&empty)])), "(no events)\n");
}

#[test]
fn the_wrong_kind_of_file_is_an_error() {
    let dir = temp_dir("tree-wrong");
    let wal = dir.join("shop.jsonl");
    support::shop_wal(&wal);
    let output = run(&["tree", "--format", "sqlite", path_str(&wal)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with("error: "),
        "{}",
        stderr(&output)
    );

    // An SQLite database that is neither a mirror nor a bridge database.
    let db = dir.join("other.sqlite3");
    let conn = bubus_sqlite::rusqlite::Connection::open(&db).unwrap();
    conn.execute_batch("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(conn);
    let output = run(&["tree", path_str(&db)]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        stderr(&output),
        format!(
            "error: {} is neither a bubus history mirror (no `events_log` table) nor a bridge \
             database (no table with `event_id` and `event_payload` columns)\n",
            db.display()
        )
    );
}

#[test]
fn tree_colours() {
    let dir = temp_dir("tree-colour");
    let wal = dir.join("shop.jsonl");
    support::shop_wal(&wal);
    let plain = stdout(&run(&["tree", path_str(&wal)]));
    let coloured = stdout(&run(&["tree", "--color", "always", path_str(&wal)]));
    assert!(!plain.contains('\x1b'));
    assert!(coloured.contains("\x1b[1mOrderPlaced#"), "{coloured}");
    assert!(coloured.contains("\x1b[31m❌"), "{coloured}");
    assert_ne!(plain, coloured);
}
