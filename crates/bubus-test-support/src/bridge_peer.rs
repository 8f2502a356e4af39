//! Python `abxbus` 2.5 on the other end of a bridge (`interop/python/abxbus25_sqlite_http_peer.py`,
//! with abxbus's own `SQLiteEventBridge` / `HTTPEventBridge`), and the field-by-field comparison
//! of what crossed.
//!
//! The family's bridges reset a received event (`event_reset()`): a new `event_id`, an empty
//! path, no parent, pending. A Rust bridge keeps the sender's id, parent and path and appends its
//! own buses. [`compare_to_python`] and [`compare_from_python`] check every field with exactly
//! those differences.
//!
//! The events the peer sends and expects ([`OrderPlaced`] with its nested [`LineItem`]s, and the
//! child [`ChargeCard`] its handler [`place_order`] dispatches) are declared here once for every
//! bridge's interop test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use bubus::{Event, EventHandle};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::peers::{abxbus_python, workspace_root};

/// One line of an [`OrderPlaced`]: the nested payload the comparison checks field by field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineItem {
    /// The product.
    pub sku: String,
    /// How many.
    pub quantity: i64,
    /// Free-form options (`"wrap": "blue"`).
    pub options: std::collections::BTreeMap<String, String>,
}

/// The event both sides send: an order with nested items.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = i64)]
pub struct OrderPlaced {
    /// The order's id.
    pub order_id: String,
    /// Its lines.
    pub items: Vec<LineItem>,
    /// A note (non-ASCII in the peer's events).
    pub note: Option<String>,
}

/// The child event [`place_order`] dispatches.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
pub struct ChargeCard {
    /// The order it charges for.
    pub order_id: String,
    /// The amount.
    pub cents: i64,
}

/// Dispatches and awaits the child charge (linked to the order: the handler's bus is current).
///
/// # Errors
///
/// The dispatch or the charge's result failing.
pub async fn place_order(order: EventHandle<OrderPlaced>) -> Result<i64, bubus::Error> {
    let bus = bubus::bus::current_bus().expect("handlers run with a current bus");
    let charge = bus.dispatch(ChargeCard {
        order_id: order.order_id.clone(),
        cents: 1999,
    })?;
    charge.event_result().await?;
    Ok(1999)
}

fn script() -> PathBuf {
    workspace_root().join("interop/python/abxbus25_sqlite_http_peer.py")
}

fn command(args: &[&str]) -> Command {
    let mut command = Command::new(abxbus_python());
    command
        .arg(script())
        .args(args)
        .current_dir(workspace_root().join("interop/python"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// What the peer printed: `@@sent` / `@@received` events, `@@ok` checks, `@@mismatch`es.
#[derive(Debug, Default)]
pub struct PeerOutput {
    /// The events of `@@sent` or `@@received` lines, in order.
    pub events: Vec<Value>,
    /// The checks that held.
    pub ok: Vec<String>,
}

fn parse(stdout: &str, stderr: &str, success: bool, tag: &str) -> PeerOutput {
    let mismatches: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("@@mismatch"))
        .collect();
    assert!(
        success && mismatches.is_empty(),
        "the Python peer failed:\n{}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        mismatches.join("\n")
    );
    let prefix = format!("@@{tag} ");
    PeerOutput {
        events: stdout
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|j| serde_json::from_str(j).expect("the peer prints JSON"))
            .collect(),
        ok: stdout
            .lines()
            .filter_map(|l| l.strip_prefix("@@ok "))
            .map(str::to_owned)
            .collect(),
    }
}

/// Runs `abxbus25_sqlite_http_peer.py send <args…>` to the end: Python emits a typed `OrderPlaced`
/// whose handler emits and awaits a `ChargeCard`, both forwarded to its bridge. Returns the
/// events as handed to the bridge.
pub fn python_send(args: &[&str]) -> PeerOutput {
    let mut full = vec!["send"];
    full.extend_from_slice(args);
    let out = command(&full).output().expect("run the Python peer");
    parse(
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
        out.status.success(),
        "sent",
    )
}

/// A Python listener that printed `@@ready`.
#[derive(Debug)]
pub struct PythonListener {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: std::thread::JoinHandle<String>,
    seen: String,
    address: Option<String>,
}

/// Reads `child`'s stderr to the end on a thread of its own, from the start: a peer writing
/// more than a pipe holds to an unread stderr would block, and so would whoever waits for its
/// stdout to end.
fn drain_stderr(child: &mut Child) -> std::thread::JoinHandle<String> {
    let mut stderr = child.stderr.take().expect("piped");
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    })
}

impl PythonListener {
    /// Starts `abxbus25_sqlite_http_peer.py listen <args…>` and waits until its bridge listens.
    pub fn start(args: &[&str]) -> Self {
        let mut full = vec!["listen"];
        full.extend_from_slice(args);
        let mut child = command(&full).spawn().expect("start the Python peer");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
        let stderr = drain_stderr(&mut child);
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).expect("read the peer's stdout");
            if n == 0 {
                let _ = child.wait();
                panic!(
                    "the Python peer exited before it was ready:\n{seen}\n--- stderr ---\n{}",
                    stderr.join().unwrap_or_default()
                );
            }
            seen.push_str(&line);
            if let Some(rest) = line.trim().strip_prefix("@@ready") {
                let address = rest.trim();
                break PythonListener {
                    child,
                    stdout,
                    stderr,
                    seen,
                    address: (!address.is_empty()).then(|| address.to_owned()),
                };
            }
        }
    }

    /// Where it listens, when its ready line says (`@@ready <URL>`: an HTTP listener started
    /// on port 0 names the port it bound).
    pub fn address(&self) -> Option<&str> {
        self.address.as_deref()
    }

    /// Waits for it to exit (once it received what it waits for, or its own 60 s deadline).
    pub fn finish(mut self) -> PeerOutput {
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).expect("read the peer");
        let status = self.child.wait().expect("the peer exits");
        let stderr = self.stderr.join().unwrap_or_default();
        let stdout = self.seen + &rest;
        parse(&stdout, &stderr, status.success(), "received")
    }
}

/// Keys the family's `event_reset()` rewrites on receipt, with what it writes.
fn family_reset(key: &str, received: &Value, received_bus: &str) -> Option<Result<(), String>> {
    let expect = |ok: bool, what: &str| Some(if ok { Ok(()) } else { Err(what.to_owned()) });
    match key {
        "event_id" => expect(received.is_string(), "a new id"),
        "event_path" => {
            let path: Vec<&str> = received
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            expect(
                path.len() == 1 && path[0].starts_with(received_bus),
                "only the receiving bridge's bus",
            )
        }
        "event_parent_id" | "event_emitted_by_handler_id" => expect(received.is_null(), "null"),
        "event_blocks_parent_completion" => expect(received == &Value::Bool(false), "false"),
        "event_status" => expect(
            matches!(received.as_str(), Some("pending" | "started" | "completed")),
            "its own status",
        ),
        "event_started_at" | "event_completed_at" | "event_pending_bus_count" => Some(Ok(())),
        _ => None,
    }
}

/// Every field of each event Rust sent (`sent`, by `order_id`+type) against what the Python
/// listener received: equal, except the keys the family resets on receipt (see the module docs),
/// which must hold the reset values; `event_result_type` without the `title` and `format` Python
/// drops when it rebuilds the schema; `event_ttl` and `event_result_ttl` (abxbus 2.5.79 keys the
/// Rust wire does not write) null. `received_bus` is the prefix of the Python bridge's inbound
/// bus name (`SQLiteEventBridge_`, `HTTPEventBridge_`).
pub fn compare_to_python(sent: &[Value], received: &[Value], received_bus: &str) {
    assert_eq!(sent.len(), received.len(), "{received:#?}");
    let mut problems = Vec::new();
    for sent in sent {
        let kind = &sent["event_type"];
        let Some(got) = received.iter().find(|r| &r["event_type"] == kind) else {
            problems.push(format!("{kind}: not received"));
            continue;
        };
        let (Some(sent), Some(got)) = (sent.as_object(), got.as_object()) else {
            problems.push(format!("{kind}: not an object"));
            continue;
        };
        for (key, value) in sent {
            let other = got.get(key).unwrap_or(&Value::Null);
            if let Some(verdict) = family_reset(key, other, received_bus) {
                if let Err(what) = verdict {
                    problems.push(format!("{kind}.{key}: expected {what}, got {other}"));
                }
                continue;
            }
            if key == "event_results" {
                continue;
            }
            if key == "event_result_type" {
                // Python rebuilds the schema from the type it makes of it: `title` and `format`
                // (Rust's `int64`) do not survive; the type does.
                let strip = |v: &Value| {
                    let mut v = v.clone();
                    if let Some(map) = v.as_object_mut() {
                        map.remove("title");
                        map.remove("format");
                    }
                    v
                };
                if !same(&strip(value), &strip(other)) {
                    problems.push(format!("{kind}.{key}: sent {value}, received {other}"));
                }
                continue;
            }
            if !same(value, other) {
                problems.push(format!("{kind}.{key}: sent {value}, received {other}"));
            }
        }
        for (key, value) in got {
            // abxbus 2.5.79 has two keys the Rust wire does not write; they arrive as its
            // defaults.
            let family_default =
                matches!(key.as_str(), "event_ttl" | "event_result_ttl") && value.is_null();
            if !sent.contains_key(key) && key != "event_results" && !family_default {
                problems.push(format!("{kind}.{key}: received but never sent ({value})"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every field of each event Python sent (`sent`, its `@@sent` dumps) against what the Rust
/// receiver's handler saw (`received`, `AnyEvent::to_json`): the same id, parent, payload,
/// configuration and creation time; the path extended by the Rust buses (`rust_buses`, labels in
/// order); status, timestamps and results the receiver's own (the event is processed afresh).
pub fn compare_from_python(sent: &[Value], received: &[Value], rust_buses: &[String]) {
    assert_eq!(sent.len(), received.len(), "{received:#?}");
    let mut problems = Vec::new();
    for sent in sent {
        let id = &sent["event_id"];
        let Some(got) = received.iter().find(|r| &r["event_id"] == id) else {
            problems.push(format!("{id}: not received with its id"));
            continue;
        };
        let kind = &sent["event_type"];
        let (Some(sent), Some(got)) = (sent.as_object(), got.as_object()) else {
            continue;
        };
        for (key, value) in sent {
            let other = got.get(key).unwrap_or(&Value::Null);
            match key.as_str() {
                "event_path" => {
                    let mut expected = value.as_array().cloned().unwrap_or_default();
                    expected.extend(rust_buses.iter().cloned().map(Value::String));
                    if other != &Value::Array(expected.clone()) {
                        problems.push(format!(
                            "{kind}.event_path: expected {}, got {other}",
                            Value::Array(expected)
                        ));
                    }
                }
                // The receiver's own processing.
                "event_status"
                | "event_started_at"
                | "event_completed_at"
                | "event_pending_bus_count"
                | "event_results" => {}
                _ => {
                    if !same(value, other) {
                        problems.push(format!("{kind}.{key}: sent {value}, received {other}"));
                    }
                }
            }
        }
        for key in got.keys() {
            if !sent.contains_key(key) {
                problems.push(format!("{kind}.{key}: received but never sent"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// JSON equality where numbers compare by value (`12.5` = `12.5`, `1` = `1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => same_map(x, y),
        _ => a == b,
    }
}

fn same_map(x: &Map<String, Value>, y: &Map<String, Value>) -> bool {
    x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
}

/// How long the Rust side of an interop test waits for what the peer sends.
pub const PEER_WAIT: Duration = Duration::from_secs(60);
