//! One view over processes of two runtimes: the Rust demo shop and a Python abxbus 2.5 process
//! (`interop/python/monitor_peer.py`), each writing its own log, watched by one monitor.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use bubus_monitor::{Monitor, Status, WalSource};
use bubus_test_support::peers;
use serde_json::Value;
use support::{Demo, http, temp_dir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_python_processes_in_one_view() {
    let python = peers::abxbus_python();
    let dir = temp_dir("peers");
    let rust_log = dir.join("shop.jsonl");
    let py_log = dir.join("pyshop.jsonl");
    let monitor = Monitor::builder()
        .source(WalSource::new(&rust_log))
        .source(WalSource::new(&py_log))
        .bind(([127, 0, 0, 1], 0).into())
        .start()
        .await
        .expect("starts");

    let mut demo = Demo::spawn(&rust_log, &dir.join("inbox.jsonl"));
    let rust_order = demo.order(1, 1_999, false);

    let script = peers::workspace_root().join("interop/python/monitor_peer.py");
    let mut py = Command::new(python)
        .arg(&script)
        .arg(&py_log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the Python peer");
    let mut stdin = py.stdin.take().expect("stdin");
    writeln!(stdin, "order 7 fail").expect("write");
    stdin.flush().expect("flush");
    let mut stdout = BufReader::new(py.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("the peer answers");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"completed"), "{line}");
    let (py_order, py_child) = (words[1].to_owned(), words[2].to_owned());
    drop(stdin);
    let _ = py.wait();

    let order = support::event(&monitor, &py_order, |d| {
        d.summary.status == Status::Completed && d.children.len() == 1
    })
    .await;
    assert_eq!(order.summary.event_type, "PyOrder");
    assert_eq!(order.children, vec![py_child.clone()]);
    assert!(order.summary.path[0].starts_with("PyShop#"));
    let audit = order
        .results
        .iter()
        .find(|r| r.handler.ends_with("audit"))
        .expect("the audit handler's row");
    assert_eq!(audit.status, "error");
    assert_eq!(audit.error_type.as_deref(), Some("ValueError"));
    assert_eq!(audit.error_message.as_deref(), Some("ledger is read-only"));
    let child = monitor.event(&py_child).expect("the Python child");
    assert_eq!(child.summary.parent.as_deref(), Some(py_order.as_str()));
    assert_eq!(
        child.results[0].result.as_deref(),
        Some(r#""charged order 7""#)
    );

    support::event(&monitor, &rust_order, |d| {
        d.summary.status == Status::Completed
    })
    .await;
    let (_, _, stats) = http(monitor.local_addr(), "GET", "/api/stats", &[], None).await;
    let stats: Value = serde_json::from_str(&stats).unwrap();
    let buses: Vec<&str> = stats["by_bus"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["key"].as_str())
        .collect();
    for prefix in ["Shop#", "Warehouse#", "PyShop#"] {
        assert!(
            buses.iter().any(|b| b.starts_with(prefix)),
            "{prefix} in {buses:?}"
        );
    }
    let groups: Vec<(&str, &str)> = stats["failures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["error_type"].as_str().unwrap(),
                g["handler"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        groups.contains(&("ValueError", "__main__.audit")),
        "{groups:?}"
    );
    monitor.shutdown().await;
}
