//! `bubus replay`: a log through a fresh bus that forwards each event to a JSONL target.

mod support;

use bubus::wal::{self, WalReader};
use bubus::{AnyEvent, EventBus};
use serde_json::Value;
use support::{golden, path_str, register_shop, run, shop_wal, stderr, stdout, temp_dir};

fn events_of(text: &str) -> Vec<AnyEvent> {
    text.lines()
        .map(|line| AnyEvent::from_json_str(line).unwrap())
        .collect()
}

/// The events of a log, once each, in the order they first appear.
fn logged(path: &std::path::Path) -> Vec<AnyEvent> {
    let mut events: Vec<AnyEvent> = Vec::new();
    for record in WalReader::open(path).unwrap() {
        let event = record.unwrap().event;
        if !events.iter().any(|e| e.event_id() == event.event_id()) {
            events.push(event);
        }
    }
    events
}

#[test]
fn replay_writes_each_root_event_once_to_stdout() {
    let dir = temp_dir("replay-stdout");
    let wal = dir.join("shop.jsonl");
    shop_wal(&wal);
    let originals = logged(&wal);

    let output = run(&["replay", path_str(&wal)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let replayed = events_of(&stdout(&output));
    // The two orders; their charges are recreated by the handlers of whoever replays this.
    let roots: Vec<&AnyEvent> = originals
        .iter()
        .filter(|e| e.event_parent_id().is_none())
        .collect();
    assert_eq!(replayed.len(), 2);
    for (replayed, original) in replayed.iter().zip(roots) {
        assert_eq!(replayed.event_id(), original.event_id());
        assert_eq!(replayed.event_type(), "OrderPlaced");
        assert_eq!(
            replayed.payload_json().unwrap(),
            original.payload_json().unwrap()
        );
        assert_eq!(replayed.event_created_at(), original.event_created_at());
        let path = replayed.event_path();
        assert_eq!(path.len(), 1);
        assert!(path[0].starts_with("Replay#"), "{path:?}");
        assert!(replayed.event_results().is_empty());
    }
    let err = stderr(&output);
    assert!(
        err.starts_with(&format!(
            "note: replayed 2 events from {} to stdout in ",
            wal.display()
        )),
        "{err}"
    );
    assert!(
        err.ends_with(" (4 duplicate records, 2 child events skipped)\n"),
        "{err}"
    );
}

#[test]
fn replay_children_all_writes_every_event_in_log_order() {
    let dir = temp_dir("replay-all");
    let wal = dir.join("shop.jsonl");
    shop_wal(&wal);
    let originals = logged(&wal);

    let output = run(&[
        "replay",
        path_str(&wal),
        "--children",
        "all",
        "--bus-name",
        "Again",
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let replayed = events_of(&stdout(&output));
    let ids = |events: &[AnyEvent]| events.iter().map(AnyEvent::event_id).collect::<Vec<_>>();
    assert_eq!(ids(&replayed), ids(&originals));
    assert_eq!(
        replayed[1].event_parent_id(),
        Some(replayed[0].event_id()),
        "lineage is kept"
    );
    assert!(replayed[0].event_path()[0].starts_with("Again#"));
    assert!(stderr(&output).ends_with(" (4 duplicate records)\n"));
}

#[test]
fn the_output_is_a_log_that_replays_into_a_bus() {
    let dir = temp_dir("replay-file");
    let wal = dir.join("shop.jsonl");
    let out = dir.join("out/replayed.jsonl");
    shop_wal(&wal);

    let output = run(&["replay", path_str(&wal), "--to", path_str(&out)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), "");
    assert!(stderr(&output).contains(&format!(" to {} in ", out.display())));
    // Appended to, not replaced.
    let output = run(&["replay", path_str(&wal), "--to", path_str(&out)]);
    assert!(output.status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 4);

    // Fed to a bus with the shop's handlers, the orders run again and recreate their charges.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let shop = EventBus::new("Shop");
        register_shop(&shop);
        let summary = wal::replay(WalReader::open(&out).unwrap(), &shop)
            .await
            .unwrap();
        assert_eq!((summary.replayed, summary.duplicates), (2, 2));
        let history = shop.event_history();
        assert_eq!(history.len(), 4);
        let charges: Vec<Value> = history
            .iter()
            .filter(|e| e.event_type() == "ChargeCard")
            .map(|e| e.event_results()[0].result_json.clone())
            .collect();
        assert_eq!(charges, ["charged 1999 cents", "charged 4500 cents"]);
    });
}

#[test]
fn bad_lines_are_reported_counted_and_skipped() {
    let dir = temp_dir("replay-bad");
    let wal = dir.join("pings.jsonl");
    support::write_pings_around(&wal, "{\"event_type\": 7}", 3);

    let output = run(&["replay", path_str(&wal)]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output).lines().count(), 2);
    let err = stderr(&output);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with(&format!(
            "warning: {}:2: invalid `event_type`",
            wal.display()
        )),
        "{err}"
    );
    assert!(lines[1].ends_with(" (1 bad line)"), "{err}");

    let output = run(&["replay", "--strict", path_str(&wal)]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(stdout(&output).lines().count(), 2);
}

#[test]
fn a_python_log_replays() {
    let path = golden("wire/python156/py_wal.jsonl");
    let output = run(&["replay", path_str(&path), "--children", "all"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let types: Vec<String> = events_of(&stdout(&output))
        .iter()
        .map(|e| e.event_type().to_owned())
        .collect();
    assert_eq!(types, ["AuditLogged", "ShipmentRequested", "OrderPlaced"]);

    // By default, only the root.
    let output = run(&["replay", path_str(&path)]);
    assert_eq!(events_of(&stdout(&output)).len(), 1);
}

#[test]
fn replay_refuses_bad_targets() {
    let dir = temp_dir("replay-refuse");
    let wal = dir.join("shop.jsonl");
    shop_wal(&wal);
    let before = std::fs::read(&wal).unwrap();

    let output = run(&["replay", path_str(&wal), "--to", path_str(&wal)]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with("error: refusing to append the replay of "));
    assert_eq!(std::fs::read(&wal).unwrap(), before);

    let output = run(&["replay", path_str(&dir.join("missing.jsonl"))]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with("error: cannot open "));

    let output = run(&["replay", path_str(&wal), "--children", "some"]);
    assert_eq!(output.status.code(), Some(2));
}
