//! `bubus tail --follow`: the live monitor. Each test runs the binary, waits for what it prints
//! (never for a fixed time), and stops it.

mod support;

use std::sync::Arc;

use bubus::EventBus;
use bubus::wal::WalMiddleware;
use support::{OrderPlaced, Running, append, path_str, ping_line, register_shop, temp_dir};

#[test]
fn follow_prints_records_as_they_are_appended() {
    let dir = temp_dir("follow-append");
    let wal = dir.join("pings.jsonl");
    append(&wal, &(1..=3).map(ping_line).collect::<String>());

    let mut tail = Running::spawn(&["tail", "-f", "-n", "1", "--json", path_str(&wal)]);
    // The last line of what is there, and then what is appended.
    let first = tail.expect_stdout("the last existing record", |l| l.contains(r#""n":3"#));
    assert!(!first.contains(r#""n":2"#));
    append(&wal, &ping_line(4));
    tail.expect_stdout("the appended record", |l| l.contains(r#""n":4"#));
    // A record written in two pieces is printed once whole.
    let line = ping_line(5);
    let (start, end) = line.split_at(20);
    append(&wal, start);
    append(&wal, end);
    let whole = tail.expect_stdout("the record written in pieces", |l| l.contains("Ping"));
    let json: serde_json::Value = serde_json::from_str(&whole).unwrap();
    assert_eq!(json["n"], 5);
}

#[test]
fn follow_reports_bad_lines_and_goes_on() {
    let dir = temp_dir("follow-bad");
    let wal = dir.join("pings.jsonl");
    append(&wal, &ping_line(1));

    let mut tail = Running::spawn(&["tail", "--follow", "--color", "never", path_str(&wal)]);
    tail.expect_stdout("the first record", |l| l.contains("Ping#0001 dispatched"));
    append(&wal, "{oops\n");
    append(&wal, &ping_line(3));
    let warning = tail.expect_stderr("the bad line", |l| l.starts_with("warning:"));
    assert!(
        warning.starts_with(&format!("warning: {}:2: invalid JSON", wal.display())),
        "{warning}"
    );
    tail.expect_stdout("the record after the bad line", |l| {
        l.contains("Ping#0003 dispatched")
    });
}

#[test]
fn follow_waits_for_the_log_to_be_created() {
    let dir = temp_dir("follow-create");
    let wal = dir.join("later.jsonl");

    let mut tail = Running::spawn(&["tail", "-f", path_str(&wal)]);
    let note = tail.expect_stderr("the waiting note", |l| l.starts_with("note:"));
    assert!(note.contains("waiting for"), "{note}");
    append(&wal, &ping_line(1));
    // Everything in a log that appears later is new.
    tail.expect_stdout("the first record", |l| l.contains("Ping#0001 dispatched"));
}

#[cfg(unix)]
#[test]
fn ctrl_c_ends_following_cleanly() {
    let dir = temp_dir("follow-interrupt");
    let wal = dir.join("pings.jsonl");
    append(&wal, &ping_line(1));

    let mut tail = Running::spawn(&["tail", "-f", path_str(&wal)]);
    tail.expect_stdout("the first record", |l| l.contains("Ping#0001"));
    let status = tail.interrupt();
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(tail.rest_of_stdout().is_empty());

    // Also while waiting for the log to appear.
    let mut tail = Running::spawn(&["tail", "-f", path_str(&dir.join("never.jsonl"))]);
    tail.expect_stderr("the waiting note", |l| l.contains("waiting for"));
    assert_eq!(tail.interrupt().code(), Some(0));
}

/// The live monitor of a running bus: events show up when they are dispatched and when they
/// complete, with their durations and every handler's outcome.
#[test]
fn follow_monitors_a_live_bus() {
    let dir = temp_dir("follow-live");
    let wal = dir.join("shop.jsonl");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let log = Arc::new(WalMiddleware::open(&wal).unwrap());
    let bus = EventBus::builder("Shop").middleware(log.clone()).build();
    register_shop(&bus);
    let first = runtime.block_on(async {
        bus.dispatch(OrderPlaced {
            order_id: 1,
            cents: 1_999,
        })
        .unwrap()
        .await
        .unwrap()
    });

    let mut monitor = Running::spawn(&["tail", "-f", "--color", "never", path_str(&wal)]);
    monitor.expect_stdout("the first order's completion", |l| {
        l.contains(&format!("{} completed (", first.label()))
    });

    // The bus goes on while the monitor watches.
    let second = runtime.block_on(async {
        bus.dispatch(OrderPlaced {
            order_id: 2,
            cents: 4_500,
        })
        .unwrap()
        .await
        .unwrap()
    });
    let label = second.label();
    let dispatched = monitor.expect_stdout("the dispatch", |l| l.contains(&label));
    assert!(
        dispatched.ends_with(&format!("{} {label} dispatched", bus.label())),
        "{dispatched}"
    );
    let charge = monitor.expect_stdout("the child's completion", |l| {
        l.contains("ChargeCard#") && l.contains("completed")
    });
    assert!(charge.contains(&format!("child of {label}")), "{charge}");
    assert!(charge.contains(r#"→ "charged 4500 cents""#), "{charge}");
    let completed = monitor.expect_stdout("the completion", |l| l.contains(&label));
    assert!(
        completed.contains(&format!("{label} completed (")),
        "{completed}"
    );
    assert!(
        completed.contains("✅ support::place_order ("),
        "{completed}"
    );
    assert!(completed.contains(") → 4500"), "{completed}");
    assert!(
        completed.ends_with("☠ AuditError: disk full") && completed.contains("❌ support::audit ("),
        "{completed}"
    );
}

#[test]
fn follow_from_now_prints_every_line_of_a_log_that_appears_later() {
    let dir = temp_dir("follow-create-n0");
    let wal = dir.join("later.jsonl");

    let mut tail = Running::spawn(&["tail", "-f", "-n", "0", "--json", path_str(&wal)]);
    tail.expect_stderr("the waiting note", |l| l.contains("waiting for"));
    // The log appears with two lines already in it (written before the monitor looks again):
    // both were written after `tail -n 0` started, so both are printed.
    let staged = dir.join("staged.jsonl");
    append(&staged, &(1..=2).map(ping_line).collect::<String>());
    std::fs::rename(&staged, &wal).unwrap();
    tail.expect_stdout("the first line", |l| l.contains(r#""n":1"#));
    tail.expect_stdout("the second line", |l| l.contains(r#""n":2"#));
    append(&wal, &ping_line(3));
    tail.expect_stdout("a line appended after", |l| l.contains(r#""n":3"#));
}
