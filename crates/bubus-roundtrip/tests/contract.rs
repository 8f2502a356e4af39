//! The binary's contract: modes, files, exit statuses and error messages.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_abxbus-rust-roundtrip");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bubus-roundtrip-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the binary on `input`; returns (exit code, stderr, output if written).
fn run(mode: &str, input: &str, name: &str) -> (i32, String, Option<Value>) {
    let dir = scratch(name);
    let (inp, out) = (dir.join("in.json"), dir.join("out.json"));
    std::fs::write(&inp, input).unwrap();
    let _ = std::fs::remove_file(&out);
    let done = Command::new(BIN)
        .arg(mode)
        .arg(&inp)
        .arg(&out)
        .output()
        .unwrap();
    let written = std::fs::read_to_string(&out)
        .ok()
        .map(|text| serde_json::from_str(&text).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
    (
        done.status.code().unwrap(),
        String::from_utf8_lossy(&done.stderr).into_owned(),
        written,
    )
}

#[test]
fn events_are_written_back_in_order_with_everything_they_carry() {
    let input = json!([
        {"event_type": "A", "event_id": "018f8e40-1234-7000-8000-000000000001", "x": [1, {"y": null}]},
        {
            "event_type": "B",
            "event_id": "018f8e40-1234-7000-8000-000000000002",
            "event_parent_id": "018f8e40-1234-7000-8000-000000000001",
            "event_path": ["Py#aaaa"],
            "event_status": "completed",
            "event_future_key": {"kept": true},
            "event_results": {
                "4bb4e5c0-1e0a-5a4e-9a1b-0d6f1c2e3a4b": {
                    "id": "018f8e40-1234-7000-8000-0000000000a1",
                    "status": "completed",
                    "event_id": "018f8e40-1234-7000-8000-000000000002",
                    "handler_id": "4bb4e5c0-1e0a-5a4e-9a1b-0d6f1c2e3a4b",
                    "handler_name": "h",
                    "handler_result_ttl": 5,
                    "eventbus_id": "018f8e40-1234-7000-8000-00000000aaaa",
                    "eventbus_name": "Py",
                    "result": "ok",
                    "error": null,
                    "event_children": []
                }
            }
        }
    ]);
    let (code, stderr, out) = run("events", &input.to_string(), "events");
    assert_eq!(code, 0, "{stderr}");
    let out = out.expect("written");
    let out = out.as_array().unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(out[0]["x"], input[0]["x"]);
    assert!(out[0].get("event_results").is_none(), "none in, none out");
    for key in [
        "event_id",
        "event_parent_id",
        "event_path",
        "event_status",
        "event_future_key",
    ] {
        assert_eq!(out[1][key], input[1][key], "{key}");
    }
    // Every key of the result, the one this version does not know included (missing ones are
    // filled in with their defaults).
    let id = "4bb4e5c0-1e0a-5a4e-9a1b-0d6f1c2e3a4b";
    for (key, value) in input[1]["event_results"][id].as_object().unwrap() {
        assert_eq!(&out[1]["event_results"][id][key], value, "{key}");
    }
}

#[test]
fn a_bus_snapshot_is_restored_and_written_back() {
    let path = bubus_test_support::peers::workspace_root()
        .join("crates/bubus/tests/golden/wire/snapshots/py25_queued.json");
    let input: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let (code, stderr, out) = run("bus", &input.to_string(), "bus");
    assert_eq!(code, 0, "{stderr}");
    let out = out.expect("written");
    for key in [
        "id",
        "name",
        "event_ttl",
        "handlers",
        "handlers_by_key",
        "pending_event_queue",
    ] {
        assert_eq!(out[key], input[key], "{key}");
    }
}

#[test]
fn bad_input_fails_with_a_message_naming_what_is_wrong() {
    let (code, stderr, out) = run("events", "{\"event_type\": \"A\"}", "shape");
    assert_eq!((code, out), (1, None));
    assert!(stderr.contains("expects a JSON array"), "{stderr}");

    let (code, stderr, _) = run(
        "events",
        r#"[{"event_type": "A"}, {"event_type": "B", "event_status": "done"}]"#,
        "decode",
    );
    assert_eq!(code, 1);
    assert!(
        stderr.contains("event [1]") && stderr.contains("event_status"),
        "{stderr}"
    );

    let (code, stderr, _) = run("bus", "[1, 2", "json");
    assert_eq!(code, 1);
    assert!(stderr.contains("not JSON"), "{stderr}");

    let (code, stderr, _) = run("bus", r#"{"name": "x"}"#, "bus-shape");
    assert_eq!(code, 1);
    assert!(
        stderr.contains("bus snapshot") && stderr.contains("id"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_with_status_2() {
    for args in [&[][..], &["events"][..], &["sideways", "a", "b"][..]] {
        let done = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(done.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&done.stderr).contains("usage:"));
    }
    let dir = scratch("missing");
    let done = Command::new(BIN)
        .args(["events"])
        .arg(dir.join("absent.json"))
        .arg(dir.join("out.json"))
        .output()
        .unwrap();
    assert_eq!(done.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&done.stderr).contains("cannot read"));
    let _ = std::fs::remove_dir_all(&dir);
}
