//! Running part of a test in a separate OS process: the test binary starts itself again,
//! running one entry test in a *role* with arguments, and talks to it over its stdout.
//!
//! In the test file, one entry test dispatches roles:
//!
//! ```ignore
//! #[test]
//! fn role_entry() {
//!     let Some((role, args)) = bubus_test_support::roles::current() else { return };
//!     match role.as_str() {
//!         "receiver" => run_receiver(args),
//!         other => panic!("unknown role {other}"),
//!     }
//! }
//! ```
//!
//! and a test spawns it: `let mut child = RoleChild::spawn("role_entry", "receiver", json!({..}))`,
//! then awaits what the role [`report`]s (`child.wait_for("ready").await`) and may
//! [`kill`](RoleChild::kill) it (SIGKILL) to test crash recovery.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

const ROLE_ENV: &str = "BUBUS_TEST_ROLE";
const ARGS_ENV: &str = "BUBUS_TEST_ROLE_ARGS";
const PREFIX: &str = "@@role ";

/// The role and arguments this process was started in, if it was started by
/// [`RoleChild::spawn`].
pub fn current() -> Option<(String, Value)> {
    let role = std::env::var(ROLE_ENV).ok()?;
    let args = std::env::var(ARGS_ENV)
        .ok()
        .and_then(|a| serde_json::from_str(&a).ok())
        .unwrap_or(Value::Null);
    Some((role, args))
}

/// Tells the parent something (one line on stdout, flushed).
pub fn report(line: impl std::fmt::Display) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{PREFIX}{line}");
    let _ = out.flush();
}

/// A role running in a child process.
#[derive(Debug)]
pub struct RoleChild {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl RoleChild {
    /// Starts this test binary again, running the test `entry` in `role` with `args`.
    ///
    /// # Panics
    ///
    /// If the process cannot be started.
    pub fn spawn(entry: &str, role: &str, args: Value) -> RoleChild {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = Command::new(exe)
            .args([entry, "--exact", "--nocapture", "--test-threads", "1"])
            .env(ROLE_ENV, role)
            .env(ARGS_ENV, args.to_string())
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the role process");
        let stdout = child.stdout.take().expect("piped stdout");
        RoleChild {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The child's process id.
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    /// The next report from the role (`None` once it exited).
    pub async fn next_report(&mut self) -> Option<String> {
        loop {
            let line = self.lines.next_line().await.ok()??;
            // libtest may have written `test role_entry ... ` on the same line first.
            if let Some(at) = line.find(PREFIX) {
                return Some(line[at + PREFIX.len()..].to_owned());
            }
        }
    }

    /// Waits for a report starting with `prefix`; returns it.
    ///
    /// # Panics
    ///
    /// If the role exits first.
    pub async fn wait_for(&mut self, prefix: &str) -> String {
        loop {
            match self.next_report().await {
                Some(r) if r.starts_with(prefix) => return r,
                Some(_) => {}
                None => panic!("the role exited before reporting {prefix:?}"),
            }
        }
    }

    /// Kills the process with SIGKILL and waits for it to be gone.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Waits for the process to exit; returns whether it succeeded.
    pub async fn wait(&mut self) -> bool {
        // Drain stdout so the child never blocks writing.
        while self.next_report().await.is_some() {}
        self.child
            .wait()
            .await
            .map(|s| s.success())
            .unwrap_or(false)
    }
}
