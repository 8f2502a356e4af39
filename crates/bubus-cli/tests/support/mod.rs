//! Shared by the CLI tests: running the built `bubus` binary, and logs written by a real bus.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use bubus::wal::WalMiddleware;
use bubus::{AnyEvent, Event, EventBus, EventHandle, HandlerError};
use serde::{Deserialize, Serialize};

/// The `bubus` binary, with colours left to `--color` (no `NO_COLOR` / `CLICOLOR_FORCE` from the
/// environment running the tests).
pub fn bubus() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bubus"));
    command
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR");
    command
}

/// Runs `bubus args…` to completion.
pub fn run(args: &[&str]) -> Output {
    bubus().args(args).output().expect("the bubus binary runs")
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

/// A fresh directory for one test.
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bubus-cli-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A committed golden of the core crate.
pub fn golden(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../bubus/tests/golden")
        .join(path)
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temp path")
}

/// An order was placed; its handler charges the card through the bus (a child event).
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
pub struct OrderPlaced {
    pub order_id: u64,
    pub cents: u64,
}

/// Charge a card (a child of `OrderPlaced`).
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
pub struct ChargeCard {
    pub order_id: u64,
    pub cents: u64,
}

pub async fn place_order(order: EventHandle<OrderPlaced>) -> Result<u64, bubus::Error> {
    let bus = bubus::bus::current_bus().expect("handlers run with a current bus");
    let charge = bus.dispatch(ChargeCard {
        order_id: order.order_id,
        cents: order.cents,
    })?;
    charge.event_result().await?;
    Ok(order.cents)
}

pub fn charge_card(charge: EventHandle<ChargeCard>) -> String {
    format!("charged {} cents", charge.cents)
}

/// Fails for order 2 (registered by type name: it returns nothing).
pub fn audit(order: AnyEvent) -> Result<(), HandlerError> {
    let payload = order.payload_json()?;
    if payload.get("order_id").and_then(serde_json::Value::as_u64) == Some(2) {
        return Err(HandlerError::new("AuditError", "disk full"));
    }
    Ok(())
}

/// The shop's handlers on `bus`.
pub fn register_shop(bus: &EventBus) {
    bus.on(place_order);
    bus.on(charge_card);
    bus.on_pattern("OrderPlaced", audit);
}

/// A log written by a real bus: two orders (the second one's audit fails), each with a child
/// charge — 4 events, 8 records.
pub fn shop_wal(path: &Path) {
    shop_run(path, None);
}

/// Runs the shop (see [`shop_wal`]) with a log at `wal` and, if given, a history mirror at
/// `mirror`. Returns the bus's `log_tree()`.
pub fn shop_run(wal: &Path, mirror: Option<&Path>) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let log = Arc::new(WalMiddleware::open(wal).expect("open the log"));
        let mut builder = EventBus::builder("Shop").middleware(log.clone());
        let mirror = mirror.map(|path| {
            Arc::new(bubus_sqlite::SqliteHistoryMirror::open(path).expect("open the mirror"))
        });
        if let Some(mirror) = &mirror {
            builder = builder.middleware(mirror.clone());
        }
        let bus = builder.build();
        register_shop(&bus);
        for (order_id, cents) in [(1, 1_999), (2, 4_500)] {
            bus.dispatch(OrderPlaced { order_id, cents })
                .expect("dispatch")
                .await
                .expect("completes");
        }
        assert_eq!(log.error_count(), 0);
        if let Some(mirror) = mirror {
            mirror.flush().expect("mirror rows written");
            mirror.close();
            assert_eq!(mirror.error_count(), 0);
        }
        bus.log_tree()
    })
}

/// How long a test waits for the binary to show something before failing.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// A `bubus` process left running (`tail --follow`), its output read line by line by threads.
pub struct Running {
    child: Option<std::process::Child>,
    pid: u32,
    stdout: std::sync::mpsc::Receiver<String>,
    stderr: std::sync::mpsc::Receiver<String>,
    /// Everything read so far, for failure messages.
    seen: Vec<String>,
}

impl Running {
    pub fn spawn(args: &[&str]) -> Running {
        use std::io::BufRead;
        use std::process::Stdio;
        let mut child = bubus()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the bubus binary starts");
        let lines = |stream: Box<dyn std::io::Read + Send>| {
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            rx
        };
        let stdout = lines(Box::new(child.stdout.take().expect("piped stdout")));
        let stderr = lines(Box::new(child.stderr.take().expect("piped stderr")));
        Running {
            pid: child.id(),
            child: Some(child),
            stdout,
            stderr,
            seen: Vec::new(),
        }
    }

    /// Reads stdout until a line matches, and returns it (the lines before it are dropped).
    pub fn expect_stdout(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        Self::expect(&self.stdout, &mut self.seen, "stdout", what, matches)
    }

    /// Reads stderr until a line matches, and returns it.
    pub fn expect_stderr(&mut self, what: &str, matches: impl Fn(&str) -> bool) -> String {
        Self::expect(&self.stderr, &mut self.seen, "stderr", what, matches)
    }

    fn expect(
        lines: &std::sync::mpsc::Receiver<String>,
        seen: &mut Vec<String>,
        stream: &str,
        what: &str,
        matches: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    seen.push(format!("{stream}: {line}"));
                    if matches(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no {what} on {stream} ({e}); seen so far:\n{}",
                    seen.join("\n")
                ),
            }
        }
    }

    /// Sends SIGINT (Ctrl-C) and waits for the process to exit.
    #[cfg(unix)]
    pub fn interrupt(&mut self) -> std::process::ExitStatus {
        let sent = Command::new("kill")
            .args(["-INT", &self.pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let mut child = self.child.take().expect("still running");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(PATIENCE) {
            Ok(status) => status.expect("wait for the process"),
            Err(_) => {
                let _ = Command::new("kill")
                    .args(["-KILL", &self.pid.to_string()])
                    .status();
                panic!("bubus did not exit on Ctrl-C");
            }
        }
    }

    /// The rest of stdout, once the process has exited.
    pub fn rest_of_stdout(&self) -> Vec<String> {
        self.stdout.iter().collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Appends `text` to the file (created if missing).
pub fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for appending");
    file.write_all(text.as_bytes()).expect("append");
}

/// A dispatch record of a `Ping` event, as one line.
pub fn ping_line(n: u64) -> String {
    format!(
        r#"{{"event_type":"Ping","event_id":"0190a6a0-0000-7000-8000-{n:012x}","event_path":["Pinger#0001"],"n":{n}}}"#
    ) + "\n"
}

/// Writes a log of `Ping` 1, the line `bad` (newline added), then `Ping` `last`.
pub fn write_pings_around(path: &Path, bad: &str, last: u64) {
    let text = [ping_line(1), format!("{bad}\n"), ping_line(last)].concat();
    std::fs::write(path, text).expect("write the log");
}
