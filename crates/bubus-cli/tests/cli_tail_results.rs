//! `bubus tail` and `bubus tail --json` show results as the text they were written as: a
//! record whose size is in a result is never parsed into a tree (a 16 MiB line of small numbers
//! takes the CLI tens of megabytes, not a gigabyte), and a number no `f64` holds keeps its
//! digits.

mod support;

use support::{path_str, run, stderr, stdout, temp_dir};

const BIG: &str = "123456789012345678901234567890";

fn record() -> String {
    format!(
        r#"{{"event_type":"Report","event_id":"018f8e40-1234-7000-8000-000000000001","event_status":"completed","event_created_at":"2026-01-01T00:00:00.000000000Z","event_completed_at":"2026-01-01T00:00:00.001000000Z","event_results":{{"h1":{{"id":"018f8e40-1234-7000-9000-000000000001","status":"completed","handler_id":"h1","handler_name":"app::reports::build","started_at":"2026-01-01T00:00:00.000000000Z","completed_at":"2026-01-01T00:00:00.001000000Z","result":[{BIG}, 2, 3],"error":null,"event_children":[]}}}}}}"#
    )
}

#[test]
fn results_are_shown_as_written() {
    let dir = temp_dir("tail-results");
    let wal = dir.join("reports.jsonl");
    std::fs::write(&wal, format!("{}\n", record())).unwrap();

    let output = run(&["tail", path_str(&wal)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let line = stdout(&output);
    assert!(line.contains("✅ reports::build"), "{line}");
    assert!(line.contains(&format!("→ [{BIG},2,3]")), "{line}");

    let output = run(&["tail", "--json", path_str(&wal)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains(&format!(r#""result":[{BIG},2,3]"#)),
        "{}",
        stdout(&output)
    );
}
