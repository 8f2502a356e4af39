//! Worker processes for multi-process tests: the test binary runs itself again with one test
//! selected and a role in the environment; the worker reports on stdout with `@@` lines that the
//! parent collects (and keeps, even after it SIGKILLs the worker).

use std::io::{self, BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

const ROLE_VAR: &str = "BUBUS_TEST_WORKER";

/// The role this process was started with by [`Worker::spawn`], `None` in a normal test run.
///
/// The worker entry point is an `#[ignore]`d test that returns at once without a role:
///
/// ```no_run
/// #[test]
/// #[ignore = "a worker process of the fault tests"]
/// fn worker() {
///     let Some(role) = bubus_test_support::servers::worker_role() else { return };
///     println!("@@hello {role}");
/// }
/// ```
pub fn worker_role() -> Option<String> {
    std::env::var(ROLE_VAR).ok()
}

#[derive(Debug, Default)]
struct Lines {
    lines: Mutex<(Vec<String>, bool)>,
    changed: Condvar,
}

/// A worker process: this test binary running one (ignored) test with a role.
#[derive(Debug)]
pub struct Worker {
    role: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Lines>,
}

impl Worker {
    /// Runs the current test binary's test `test` (its full path, e.g. `worker` or
    /// `faults::worker`) with [`worker_role`] = `role` and the given environment.
    ///
    /// Its `@@` lines on stdout are collected (without the `@@`); stderr is inherited.
    pub fn spawn(test: &str, role: &str, env: &[(&str, String)]) -> io::Result<Worker> {
        let exe = std::env::current_exe()?;
        let mut command = Command::new(exe);
        command
            .args([
                test,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE_VAR, role);
        for (key, value) in env {
            command.env(key, value);
        }
        Self::spawn_command(role, command)
    }

    /// Runs any command as a worker (a peer process in another language that reports with `@@`
    /// lines the same way); `role` names it in messages.
    pub fn spawn_command(role: &str, mut command: Command) -> io::Result<Worker> {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = command.spawn()?;
        let stdin = child.stdin.take();
        let lines = Arc::new(Lines::default());
        if let Some(stdout) = child.stdout.take() {
            let lines = Arc::clone(&lines);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    // The harness writes `test <name> ... ` before the test's first line.
                    if let Some(at) = line.find("@@") {
                        lines.lines.lock().0.push(line[at + 2..].to_owned());
                        lines.changed.notify_all();
                    }
                }
                lines.lines.lock().1 = true;
                lines.changed.notify_all();
            });
        }
        Ok(Worker {
            role: role.to_owned(),
            child,
            stdin,
            lines,
        })
    }

    /// The role it runs.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Every report line so far (without the `@@`).
    pub fn reports(&self) -> Vec<String> {
        self.lines.lines.lock().0.clone()
    }

    /// How many report lines so far.
    pub fn report_count(&self) -> usize {
        self.lines.lines.lock().0.len()
    }

    /// Waits until `done` holds for the reports so far, or the worker's stdout closed (it
    /// exited), or `timeout` passed; returns whether `done` held.
    pub fn wait_reports(&self, timeout: Duration, mut done: impl FnMut(&[String]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lines.lines.lock();
        loop {
            if done(&state.0) {
                return true;
            }
            if state.1
                || self
                    .lines
                    .changed
                    .wait_until(&mut state, deadline)
                    .timed_out()
            {
                return done(&state.0);
            }
        }
    }

    /// Waits for a report line starting with `prefix`; returns it.
    pub fn wait_report(&self, prefix: &str, timeout: Duration) -> Option<String> {
        let mut found = None;
        self.wait_reports(timeout, |lines| {
            found = lines.iter().find(|l| l.starts_with(prefix)).cloned();
            found.is_some()
        });
        found
    }

    /// Whether its stdout closed (it exited, or is about to).
    pub fn has_exited(&self) -> bool {
        self.lines.lines.lock().1
    }

    /// Writes one line to the worker's stdin (a command for it).
    pub fn send_line(&mut self, line: &str) -> io::Result<()> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::other("worker stdin closed"))?;
        writeln!(stdin, "{line}")?;
        stdin.flush()
    }

    /// Closes the worker's stdin (a worker reading commands sees end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// SIGKILLs the worker and reaps it; its reports so far stay readable.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.wait_reports(Duration::from_secs(10), |_| false);
    }

    /// Waits for the worker to exit, then for its last report lines.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        self.stdin = None;
        let status = self.child.wait()?;
        self.wait_reports(Duration::from_secs(10), |_| false);
        Ok(status)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
