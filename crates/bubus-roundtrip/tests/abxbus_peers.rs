//! The roundtrip binary against the real peers: Python abxbus 2.5.79 (pip) and TypeScript abxbus
//! (npm) write events and bus snapshots, the binary reads and writes them back, and the peer
//! compares every field and loads the result back (`interop/python/abxbus25_roundtrip.py`,
//! `interop/node/abxbus_roundtrip.mjs`).

use std::path::{Path, PathBuf};
use std::process::Command;

use bubus_test_support::peers;

const BIN: &str = env!("CARGO_BIN_EXE_abxbus-rust-roundtrip");

fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "bubus-roundtrip-peer-{}-{name}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs a peer's check (see `peers::run_checks`) and clears its working folder.
fn run_peer(command: Command, what: &str, dir: &Path) -> Vec<String> {
    let passed = peers::run_checks(command, what);
    let _ = std::fs::remove_dir_all(dir);
    passed
}

#[test]
fn python_abxbus_events_and_snapshots_come_back_with_every_field() {
    let dir = workdir("python");
    let mut command = Command::new(peers::abxbus_python());
    command
        .arg(peers::workspace_root().join("interop/python/abxbus25_roundtrip.py"))
        .arg(BIN)
        .arg(&dir);
    let passed = run_peer(command, "the Python abxbus roundtrip", &dir);
    // Every event and the snapshot were checked, not just a few.
    for check in [
        "events CountEvent",
        "events ChainEvent",
        "events InvoiceEvent",
        "completed CountEvent",
        "completed TextEvent",
        "future keys",
        "bus: every field of every history event came back",
        "bus: every field of every history event survives Python restoring it",
        "bus: the restored queue drains, keeping the seeded result",
    ] {
        assert!(
            passed.iter().any(|ok| ok.starts_with(check)),
            "no `{check}` check passed: {passed:#?}"
        );
    }
    let field_checks = passed
        .iter()
        .filter(|ok| ok.ends_with("every field came back"))
        .count();
    assert_eq!(field_checks, 15, "{passed:#?}");
}

#[test]
fn typescript_abxbus_events_and_snapshots_come_back_with_every_field() {
    let dir = workdir("typescript");
    let mut command = Command::new("node");
    command
        .current_dir(peers::node_abxbus_dir())
        .arg(peers::workspace_root().join("interop/node/abxbus_roundtrip.mjs"))
        .arg(BIN)
        .arg(&dir);
    let passed = run_peer(command, "the TypeScript abxbus roundtrip", &dir);
    for check in [
        "events TsCount",
        "events TsInvoice",
        "completed TsCount",
        "completed TsText",
        "bus: every field of every history event came back",
        "bus: every field survives TypeScript restoring it",
    ] {
        assert!(
            passed.iter().any(|ok| ok.starts_with(check)),
            "no `{check}` check passed: {passed:#?}"
        );
    }
}
