//! Ports `tests/test_retry.py::TestMultiprocessSemaphore`: semaphores shared by real OS
//! processes through the abxbus slot files — the limit holds across processes, a full semaphore
//! times out, a killed process's slot is taken over, slots are reused across runs, lax mode runs
//! without a slot, processes with different limits each count to their own — and with real
//! Python abxbus processes holding slots of the same semaphore.
//!
//! The Rust children are this test binary run again with `<test name> --exact`: each test
//! function plays the child when `BUBUS_RETRY_CHILD` is set. The Python ones run
//! `interop/python/semaphore_peer.py`. A child reports on stdout (`@@acquired`, `@@done ok`, …)
//! and, in the `hold` role, keeps its slots until the parent writes a line to its stdin — so the
//! parent drives every step and waits for each report instead of sleeping.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use bubus::retry::{Retry, RetryError, SemaphoreScope};

#[derive(Debug, thiserror::Error)]
#[error("fail")]
struct Fail;

const CHILD: &str = "BUBUS_RETRY_CHILD";
/// Longest wait for one report from a child; only reached if something is broken.
const REPORT_TIMEOUT: Duration = Duration::from_secs(30);

fn policy(dir: &Path, name: &str, limit: usize, timeout: Option<Duration>, lax: bool) -> Retry {
    policy_in(Some(dir), name, limit, timeout, lax)
}

/// Without `dir`, the policy uses the family's default directory
/// (`ABXBUS_MULTIPROCESS_SEMAPHORE_DIR`, …).
fn policy_in(
    dir: Option<&Path>,
    name: &str,
    limit: usize,
    timeout: Option<Duration>,
    lax: bool,
) -> Retry {
    let policy = Retry::new()
        .semaphore_scope(SemaphoreScope::MultiProcess)
        .semaphore_name(name)
        .semaphore_limit(limit)
        .semaphore_timeout(timeout);
    let policy = if lax {
        policy.semaphore_lax()
    } else {
        policy.semaphore_strict()
    };
    match dir {
        Some(dir) => policy.semaphore_dir(dir),
        None => policy,
    }
}

// --- The child side -----------------------------------------------------------------------------

/// Runs the child role if this process is a child; returns whether it was.
fn child_role() -> bool {
    let Ok(role) = std::env::var(CHILD) else {
        return false;
    };
    let var = |key: &str| std::env::var(key).unwrap_or_default();
    let dir = std::env::var_os("BUBUS_RETRY_DIR").map(PathBuf::from);
    let name = var("BUBUS_RETRY_NAME");
    let limit: usize = var("BUBUS_RETRY_LIMIT").parse().unwrap_or(1);
    let timeout = var("BUBUS_RETRY_TIMEOUT_MS")
        .parse()
        .ok()
        .map(Duration::from_millis);
    let lax = var("BUBUS_RETRY_LAX") == "1";
    let policy = policy_in(dir.as_deref(), &name, limit, timeout, lax);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("child runtime");
    let result = runtime.block_on(policy.run(|| async {
        println!("@@acquired");
        if role == "hold" {
            // Hold the slot until the parent says so (or goes away).
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        }
        println!("@@releasing");
        Ok::<_, Fail>(())
    }));
    let outcome = match result {
        Ok(()) => "ok",
        Err(RetryError::SemaphoreTimeout { .. }) => "semaphore-timeout",
        Err(RetryError::LimitMismatch { .. }) => "limit-mismatch",
        Err(RetryError::SemaphoreIo { .. }) => "io",
        Err(_) => "other-error",
    };
    println!("@@done {outcome}");
    true
}

// --- The parent side ----------------------------------------------------------------------------

/// A directory of lock files for one test, removed afterwards.
struct LockDir(PathBuf);

impl LockDir {
    fn new(test: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bubus-retry-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        LockDir(dir)
    }
}

impl Drop for LockDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Spec<'a> {
    test: &'a str,
    dir: &'a Path,
    name: &'a str,
    limit: usize,
    timeout: Option<Duration>,
    lax: bool,
}

/// How a Rust child finds the directory: given to the policy, or the family's default read from
/// `ABXBUS_MULTIPROCESS_SEMAPHORE_DIR` (as the Python peers find it).
#[derive(Clone, Copy, PartialEq)]
enum DirFrom {
    Policy,
    Environment,
}

/// A running child; killed if still running when dropped.
struct Child {
    label: String,
    process: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    reports: mpsc::Receiver<String>,
    stderr: Arc<parking_lot::Mutex<String>>,
}

impl Spec<'_> {
    fn spawn(&self, role: &str, label: &str) -> Child {
        self.spawn_with(role, label, DirFrom::Policy)
    }

    fn spawn_with(&self, role: &str, label: &str, dir_from: DirFrom) -> Child {
        let mut command = Command::new(std::env::current_exe().expect("test binary path"));
        command
            .args([self.test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, role)
            .env("ABXBUS_MULTIPROCESS_SEMAPHORE_DIR", self.dir)
            .env("BUBUS_RETRY_NAME", self.name)
            .env("BUBUS_RETRY_LIMIT", self.limit.to_string())
            .env("BUBUS_RETRY_LAX", if self.lax { "1" } else { "0" });
        match self.timeout {
            Some(t) => command.env("BUBUS_RETRY_TIMEOUT_MS", t.as_millis().to_string()),
            None => command.env_remove("BUBUS_RETRY_TIMEOUT_MS"),
        };
        match dir_from {
            DirFrom::Policy => command.env("BUBUS_RETRY_DIR", self.dir),
            DirFrom::Environment => command.env_remove("BUBUS_RETRY_DIR"),
        };
        Child::start(command, label)
    }

    /// A Python abxbus process using the same semaphore: `hold` takes `count` slots and keeps
    /// them until released; `once` takes one, waiting at most the spec's timeout.
    fn spawn_python(&self, role: &str, count: usize, label: &str) -> Child {
        let script =
            bubus_test_support::peers::workspace_root().join("interop/python/semaphore_peer.py");
        let mut command = Command::new(bubus_test_support::peers::abxbus_python());
        command
            .arg(script)
            .arg(role)
            .arg(self.name)
            .arg(self.limit.to_string())
            .env("ABXBUS_MULTIPROCESS_SEMAPHORE_DIR", self.dir);
        if role == "hold" {
            command.arg(count.to_string());
        } else {
            let timeout = self.timeout.unwrap_or(Duration::from_secs(30));
            command.arg(timeout.as_secs_f64().to_string());
        }
        Child::start(command, label)
    }
}

impl Child {
    fn start(mut command: Command, label: &str) -> Child {
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut process = command.spawn().expect("spawn child");
        let stdout = process.stdout.take().expect("child stdout");
        let (tx, reports) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest may print `test name ... ` on the same line first.
                if let Some((_, report)) = line.split_once("@@") {
                    if tx.send(report.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        let stderr = Arc::new(parking_lot::Mutex::new(String::new()));
        let mut child_stderr = process.stderr.take().expect("child stderr");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut child_stderr, &mut text);
            sink.lock().push_str(&text);
        });
        Child {
            label: label.to_owned(),
            stdin: process.stdin.take(),
            process,
            reports,
            stderr,
        }
    }

    /// Waits for the child's next report and checks it.
    fn expect(&mut self, report: &str) {
        match self.reports.recv_timeout(REPORT_TIMEOUT) {
            Ok(got) => assert_eq!(got, report, "child {}", self.label),
            Err(err) => panic!(
                "child {} sent no report ({err}) while the test expected {report:?}; stderr:\n{}",
                self.label,
                self.stderr.lock()
            ),
        }
    }

    /// Lets a `hold` child give its slot back.
    fn release(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        self.expect("releasing");
        self.expect("done ok");
    }

    fn exits_cleanly(mut self) {
        drop(self.stdin.take());
        let status = self.process.wait().expect("wait for child");
        assert!(
            status.success(),
            "child {} exited with {status}",
            self.label
        );
    }

    /// Kills the child (no cleanup runs in it) and waits until it is gone.
    fn kill(mut self) {
        self.process.kill().expect("kill child");
        let status = self.process.wait().expect("wait for child");
        assert!(!status.success());
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[test]
fn processes_share_one_limit() {
    if child_role() {
        return;
    }
    let dir = LockDir::new("share");
    let spec = |timeout_ms: u64| Spec {
        test: "processes_share_one_limit",
        dir: &dir.0,
        name: "test_multiprocess_sem",
        limit: 3,
        timeout: Some(Duration::from_millis(timeout_ms)),
        lax: false,
    };

    // Three processes fill the three slots.
    let mut holders: Vec<Child> = (0..3)
        .map(|i| spec(30_000).spawn("hold", &format!("holder {i}")))
        .collect();
    for holder in &mut holders {
        holder.expect("acquired");
    }

    // A fourth cannot get one.
    let mut late = spec(300).spawn("once", "late");
    late.expect("done semaphore-timeout");
    late.exits_cleanly();

    // One that waits long enough gets the slot a holder gives back.
    let mut waiter = spec(30_000).spawn("hold", "waiter");
    let mut first = holders.remove(0);
    first.release();
    first.exits_cleanly();
    waiter.expect("acquired");

    holders.push(waiter);
    for mut holder in holders {
        holder.release();
        holder.exits_cleanly();
    }

    // The slots are reusable by a new batch of processes.
    let mut batch: Vec<Child> = (0..3)
        .map(|i| spec(30_000).spawn("hold", &format!("second batch {i}")))
        .collect();
    for child in &mut batch {
        child.expect("acquired");
    }
    for mut child in batch {
        child.release();
        child.exits_cleanly();
    }
}

#[test]
fn a_killed_process_releases_its_slot() {
    if child_role() {
        return;
    }
    let dir = LockDir::new("death");
    let spec = |timeout_ms: u64| Spec {
        test: "a_killed_process_releases_its_slot",
        dir: &dir.0,
        name: "test_death_sem",
        limit: 2,
        timeout: Some(Duration::from_millis(timeout_ms)),
        lax: false,
    };
    let mut doomed: Vec<Child> = (0..2)
        .map(|i| spec(30_000).spawn("hold", &format!("doomed {i}")))
        .collect();
    for child in &mut doomed {
        child.expect("acquired");
    }
    let mut full = spec(200).spawn("once", "while full");
    full.expect("done semaphore-timeout");
    full.exits_cleanly();

    for child in doomed {
        child.kill();
    }

    let mut survivors: Vec<Child> = (0..2)
        .map(|i| spec(30_000).spawn("hold", &format!("survivor {i}")))
        .collect();
    for child in &mut survivors {
        child.expect("acquired");
    }
    for mut child in survivors {
        child.release();
        child.exits_cleanly();
    }
}

#[test]
fn waiting_processes_take_freed_slots_one_by_one() {
    if child_role() {
        return;
    }
    let dir = LockDir::new("order");
    let spec = Spec {
        test: "waiting_processes_take_freed_slots_one_by_one",
        dir: &dir.0,
        name: "test_concurrent_order_sem",
        limit: 2,
        timeout: Some(Duration::from_secs(30)),
        lax: false,
    };
    let mut first = spec.spawn("hold", "first");
    let mut second = spec.spawn("hold", "second");
    first.expect("acquired");
    second.expect("acquired");

    let mut waiters: Vec<Child> = (0..3)
        .map(|i| spec.spawn("once", &format!("waiter {i}")))
        .collect();
    // With `second` still holding, the single slot `first` frees serves every waiter in turn.
    first.release();
    first.exits_cleanly();
    for waiter in &mut waiters {
        waiter.expect("acquired");
        waiter.expect("releasing");
        waiter.expect("done ok");
    }
    for waiter in waiters {
        waiter.exits_cleanly();
    }
    second.release();
    second.exits_cleanly();
}

#[test]
fn processes_with_different_limits_each_count_to_their_own() {
    if child_role() {
        return;
    }
    // As in every abxbus runtime: the slot files say nothing about the limit, so a process
    // takes any of the first `limit` slots its own limit allows.
    let dir = LockDir::new("limits");
    let spec = |limit: usize, timeout_ms: u64| Spec {
        test: "processes_with_different_limits_each_count_to_their_own",
        dir: &dir.0,
        name: "test_limits_sem",
        limit,
        timeout: Some(Duration::from_millis(timeout_ms)),
        lax: false,
    };
    let mut holder = spec(1, 30_000).spawn("hold", "limit 1");
    holder.expect("acquired");

    // Slot 0 is taken: another process with limit 1 waits in vain, one with limit 2 takes
    // slot 1.
    let mut one = spec(1, 200).spawn("once", "limit 1, full");
    one.expect("done semaphore-timeout");
    one.exits_cleanly();
    let mut two = spec(2, 30_000).spawn("once", "limit 2");
    two.expect("acquired");
    two.expect("releasing");
    two.expect("done ok");
    two.exits_cleanly();

    holder.release();
    holder.exits_cleanly();
}

#[test]
fn a_lax_process_runs_without_a_slot_when_none_frees() {
    if child_role() {
        return;
    }
    let dir = LockDir::new("lax");
    let spec = |timeout_ms: u64, lax: bool| Spec {
        test: "a_lax_process_runs_without_a_slot_when_none_frees",
        dir: &dir.0,
        name: "test_lax_sem",
        limit: 1,
        timeout: Some(Duration::from_millis(timeout_ms)),
        lax,
    };
    let mut holder = spec(30_000, false).spawn("hold", "holder");
    holder.expect("acquired");

    let mut lax = spec(100, true).spawn("once", "lax");
    lax.expect("acquired");
    lax.expect("releasing");
    lax.expect("done ok");
    lax.exits_cleanly();

    holder.release();
    holder.exits_cleanly();
}

// --- With Python abxbus processes --------------------------------------------------------------

#[test]
fn rust_and_python_processes_share_one_limit() {
    if child_role() {
        return;
    }
    let dir = LockDir::new("python");
    let spec = |timeout_ms: u64| Spec {
        test: "rust_and_python_processes_share_one_limit",
        dir: &dir.0,
        name: "shared_with_python",
        limit: 3,
        timeout: Some(Duration::from_millis(timeout_ms)),
        lax: false,
    };

    // Python takes two of the three slots, a Rust process (finding the directory where Python
    // does, from ABXBUS_MULTIPROCESS_SEMAPHORE_DIR) the third.
    let mut python = spec(30_000).spawn_python("hold", 2, "python holder");
    python.expect("acquired");
    python.expect("acquired");
    let mut rust = spec(30_000).spawn_with("hold", "rust holder", DirFrom::Environment);
    rust.expect("acquired");

    // Full for both runtimes.
    let mut rust_late = spec(300).spawn("once", "rust, full");
    rust_late.expect("done semaphore-timeout");
    rust_late.exits_cleanly();
    let mut python_late = spec(300).spawn_python("once", 1, "python, full");
    python_late.expect("done semaphore-timeout");
    python_late.exits_cleanly();

    // Python gives its slots back: a Rust process can take one; Rust gives its back: a Python
    // process can take one.
    python.release();
    python.exits_cleanly();
    let mut rust_next = spec(30_000).spawn("once", "rust, after python");
    rust_next.expect("acquired");
    rust_next.expect("releasing");
    rust_next.expect("done ok");
    rust_next.exits_cleanly();
    rust.release();
    rust.exits_cleanly();
    let mut python_next = spec(30_000).spawn_python("once", 1, "python, after rust");
    python_next.expect("acquired");
    python_next.expect("releasing");
    python_next.expect("done ok");
    python_next.exits_cleanly();

    // Nothing is left behind.
    let left: Vec<_> = std::fs::read_dir(&dir.0).unwrap().collect();
    assert!(left.is_empty(), "slot files left: {left:?}");
}

#[test]
fn slots_of_a_killed_python_process_are_taken_over() {
    if child_role() {
        return;
    }
    let dir = LockDir::new("python-killed");
    let spec = |timeout_ms: u64| Spec {
        test: "slots_of_a_killed_python_process_are_taken_over",
        dir: &dir.0,
        name: "python_dies",
        limit: 2,
        timeout: Some(Duration::from_millis(timeout_ms)),
        lax: false,
    };
    let mut python = spec(30_000).spawn_python("hold", 2, "python holder");
    python.expect("acquired");
    python.expect("acquired");
    let mut full = spec(200).spawn("once", "while python holds");
    full.expect("done semaphore-timeout");
    full.exits_cleanly();

    python.kill();
    let mut rust: Vec<Child> = (0..2)
        .map(|i| spec(30_000).spawn("hold", &format!("rust {i}")))
        .collect();
    for child in &mut rust {
        child.expect("acquired");
    }
    // And a Python process waits for Rust's slots like for its own.
    let mut python_late = spec(300).spawn_python("once", 1, "python, full");
    python_late.expect("done semaphore-timeout");
    python_late.exits_cleanly();
    for mut child in rust {
        child.release();
        child.exits_cleanly();
    }
}

// --- In one process -----------------------------------------------------------------------------

#[tokio::test]
async fn tasks_of_one_process_share_the_limit_too() {
    let dir = LockDir::new("tasks");
    let policy = policy(&dir.0, "in_process", 1, None, false);
    let active = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let call = || {
        let (active, max) = (Arc::clone(&active), Arc::clone(&max));
        policy.run(move || {
            let (active, max) = (Arc::clone(&active), Arc::clone(&max));
            async move {
                let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                active.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, Fail>(())
            }
        })
    };
    let (a, b, c) = tokio::join!(call(), call(), call());
    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    assert_eq!(max.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_unusable_directory_fails_strict_calls_and_lets_lax_ones_run() {
    let dir = LockDir::new("unusable");
    std::fs::write(&dir.0, b"not a directory").expect("write file");
    let strict = policy(&dir.0, "unusable", 2, Some(Duration::from_secs(5)), false);
    let err = strict
        .run(|| async { Ok::<_, Fail>(()) })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, RetryError::SemaphoreIo { dir: d, .. } if *d == dir.0),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("cannot use its lock files"),
        "{err}"
    );

    let lax = policy(
        &dir.0,
        "unusable_lax",
        2,
        Some(Duration::from_secs(5)),
        true,
    );
    let result = lax.run(|| async { Ok::<_, Fail>("ran") }).await;
    assert_eq!(result.ok(), Some("ran"));
    let _ = std::fs::remove_file(&dir.0);
}

/// Port of `test_semaphore_file_disappears`: the directory is removed while calls hold slots;
/// later calls recreate it and everything completes.
#[tokio::test]
async fn calls_survive_the_directory_being_removed() {
    let dir = LockDir::new("disappear");
    let policy = policy(
        &dir.0,
        "disappearing_sem",
        2,
        Some(Duration::from_secs(5)),
        true,
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let call = || {
        let (runs, path) = (Arc::clone(&runs), dir.0.clone());
        policy.run(move || {
            let (runs, path) = (Arc::clone(&runs), path.clone());
            async move {
                if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                    std::fs::remove_dir_all(&path).expect("remove lock dir");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<_, Fail>("completed")
            }
        })
    };
    let (a, b, c) = tokio::join!(call(), call(), call());
    assert_eq!([a.ok(), b.ok(), c.ok()], [Some("completed"); 3]);
    assert_eq!(runs.load(Ordering::SeqCst), 3);
}
