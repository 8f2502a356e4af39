//! The real peers of the interop, bridge and semaphore tests: Python `abxbus` (with its bridges),
//! Python `bubus` 1.5.6 and TypeScript `abxbus`, installed on first use by `interop/env.sh` from
//! the package registries (pinned in `interop/requirements*.txt` and `interop/node`).
//!
//! A missing peer fails the test with the installer's message: these tests never pass by skipping.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (the folder with the top-level `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn env_sh(what: &str) -> PathBuf {
    let script = workspace_root().join("interop/env.sh");
    let out = Command::new(&script)
        .arg(what)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "interop/env.sh {what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(!path.is_empty(), "interop/env.sh {what} printed no path");
    PathBuf::from(path)
}

/// A `python` whose environment has `abxbus[bridges]` (Python abxbus 2.5, redis, nats-py, asyncpg).
pub fn abxbus_python() -> PathBuf {
    env_sh("python-abxbus")
}

/// A `python` whose environment has `bubus` 1.5.6.
pub fn bubus_python() -> PathBuf {
    env_sh("python-bubus")
}

/// A folder whose `node_modules` holds TypeScript `abxbus`: run `node` there (as its working
/// directory) so `import "abxbus"` resolves.
pub fn node_abxbus_dir() -> PathBuf {
    env_sh("node-abxbus")
}

/// Runs a peer's check script and returns the checks that held (its `@@ok <check>` lines).
///
/// The scripts of `interop/` print `@@ok <check>` for every check that held and
/// `@@mismatch <check>: <what>` for every field that did not, and exit non-zero if any did not;
/// this fails the test with the mismatches, the script's output and its stderr in that case.
pub fn run_checks(mut command: Command, what: &str) -> Vec<String> {
    let done = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let stdout = String::from_utf8_lossy(&done.stdout);
    let mismatches: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("@@mismatch"))
        .collect();
    assert!(
        done.status.success() && mismatches.is_empty(),
        "{what} failed ({}):\n{}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
        done.status,
        mismatches.join("\n"),
        String::from_utf8_lossy(&done.stderr),
    );
    stdout
        .lines()
        .filter_map(|line| line.strip_prefix("@@ok "))
        .map(str::to_owned)
        .collect()
}
