//! `bubus monitor`: the web monitor behind the command line. The page itself is tested in a
//! browser by crates/bubus-monitor/tests/browser.rs; here, the command: its URL, its sources,
//! its access token, Ctrl-C.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use support::{PATIENCE, Running, append, path_str, ping_line, run, shop_wal, stderr, temp_dir};

/// One GET over a fresh connection; (status, body). `stop` ends reading early once the body so
/// far satisfies it (for the endless event stream).
fn get(port: u16, path: &str, stop: impl Fn(&str) -> bool) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                if stop(&text) {
                    break;
                }
            }
            Err(e) => panic!("reading {path}: {e}; so far:\n{text}"),
        }
    }
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

fn port_of(url_line: &str) -> u16 {
    let rest = url_line
        .strip_prefix("bubus monitor: http://127.0.0.1:")
        .unwrap_or_else(|| panic!("not a URL line: {url_line}"));
    rest.split('/').next().unwrap().parse().expect("a port")
}

#[cfg(unix)]
#[test]
fn monitor_serves_a_log_and_stops_on_ctrl_c() {
    let dir = temp_dir("monitor-log");
    let wal = dir.join("shop.jsonl");
    let inbox = dir.join("inbox.jsonl");
    shop_wal(&wal);
    let ids: Vec<String> = bubus::wal::WalReader::open(&wal)
        .unwrap()
        .map(|r| r.unwrap().event.event_id().to_string())
        .collect();
    assert_eq!(ids.len(), 8);

    let mut monitor = Running::spawn(&[
        "monitor",
        path_str(&wal),
        "--port",
        "0",
        "--replay-to",
        path_str(&inbox),
    ]);
    let line = monitor.expect_stdout("the URL", |l| l.starts_with("bubus monitor: "));
    assert!(line.ends_with('/'), "no token on loopback: {line}");
    let port = port_of(&line);

    // Every event of the log comes through the live stream.
    let (status, stream) = get(port, "/api/stream", |text| {
        ids.iter().all(|id| text.contains(id.as_str()))
    });
    assert_eq!(status, 200);
    assert!(stream.contains("event: events"));
    let (status, page) = get(port, "/", |_| false);
    assert_eq!(status, 200);
    assert!(page.contains(r#"<script src="/assets/app.js">"#));
    let (_, info) = get(port, "/api/info", |_| false);
    assert!(
        info.contains(&format!("\"jsonl:{}\"", inbox.display())),
        "{info}"
    );
    assert!(
        info.contains(&format!("\"wal:{}\"", wal.display())),
        "{info}"
    );
    let (_, metrics) = get(port, "/metrics", |_| false);
    assert!(
        metrics.contains(r#"bubus_events_total{event_type="OrderPlaced"} 2"#),
        "{metrics}"
    );

    assert!(
        monitor.interrupt().success(),
        "Ctrl-C ends it with status 0"
    );
}

/// A JSONL bridge as a source: what is sent on it once the monitor listens shows.
#[test]
fn monitor_listens_on_a_jsonl_bridge() {
    let dir = temp_dir("monitor-bridge");
    let bridge = dir.join("bridge.jsonl");
    append(&bridge, &ping_line(1)); // sent before: a bridge listener starts at the end
    let mut monitor = Running::spawn(&[
        "monitor",
        &format!("jsonl:{}", bridge.display()),
        "--port",
        "0",
    ]);
    let port = port_of(&monitor.expect_stdout("the URL", |l| l.starts_with("bubus monitor: ")));

    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    write!(
        stream,
        "GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    let mut read_until = |stream: &mut TcpStream, done: &dyn Fn(&str) -> bool| {
        let mut buf = [0u8; 16 * 1024];
        while !done(&text) {
            let n = stream
                .read(&mut buf)
                .unwrap_or_else(|e| panic!("reading the stream: {e}; so far:\n{text}"));
            assert!(n > 0, "the stream ended; so far:\n{text}");
            text.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    };
    // The statistics (every second) say when the source listens.
    read_until(&mut stream, &|t| t.contains(r#""ready":true"#));
    append(&bridge, &ping_line(2));
    read_until(&mut stream, &|t| {
        t.contains("0190a6a0-0000-7000-8000-000000000002")
    });
    assert!(
        !text.contains("0190a6a0-0000-7000-8000-000000000001"),
        "sent before it listened"
    );
    assert!(text.contains(&format!("bridge:jsonl:{}", bridge.display())));
}

#[test]
fn monitor_off_loopback_needs_the_token_it_prints() {
    let mut monitor = Running::spawn(&[
        "monitor",
        "nothing-yet.jsonl",
        "--host",
        "0.0.0.0",
        "--port",
        "0",
    ]);
    let line = monitor.expect_stdout("the URL", |l| l.starts_with("bubus monitor: "));
    let port = port_of(&line);
    let token = line.split_once("?token=").expect("a token in the URL").1;
    monitor.expect_stderr("the note about the token", |l| {
        l.contains("needs the token")
    });
    let (status, _) = get(port, "/api/info", |_| false);
    assert_eq!(status, 401);
    let (status, _) = get(port, &format!("/api/info?token={token}"), |_| false);
    assert_eq!(status, 200);
}

#[test]
fn monitor_refuses_sources_it_cannot_read() {
    let out = run(&["monitor", "amqp://127.0.0.1:5672"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not built into this command"),
        "{}",
        stderr(&out)
    );
    let out = run(&["monitor"]);
    assert_eq!(out.status.code(), Some(2), "a source is required");
}

/// A bridge engine's URL as a source: an event sent on it once the monitor listens shows. The
/// plain modes are at-most-once and a subscription reaches the server a little after the
/// monitor says it listens, so the same event (one id) is sent again until it shows.
fn sees_what_is_sent_on<F, Fut>(url: &str, transport: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = std::sync::Arc<dyn bubus::bridge::Transport>>,
{
    let mut monitor = Running::spawn(&["monitor", url, "--port", "0"]);
    let port = port_of(&monitor.expect_stdout("the URL", |l| l.starts_with("bubus monitor: ")));
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        stream,
        "GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
    )
    .expect("send");
    let mut text = String::new();
    let mut buf = [0u8; 16 * 1024];
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    while !text.contains(r#""ready":true"#) {
        let n = stream.read(&mut buf).expect("the stream");
        assert!(n > 0, "the stream ended: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let id = format!("0190a6a0-0000-7000-8000-{:012x}", std::process::id());
    let line =
        format!(r#"{{"event_type":"Ping","event_id":"{id}","event_path":["Pinger#0001"],"n":1}}"#);
    let event = bubus::AnyEvent::from_json_str(&line).expect("an event");
    // Its own thread drives the client's connection between the sends.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let sender = runtime.block_on(transport());
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(300)))
        .expect("timeout");
    let mut sent = 0;
    while !text.contains(&id) {
        if sent < 100 {
            runtime
                .block_on(async {
                    sender.send(&bubus::bridge::Message::event(&event)).await?;
                    sender.flush().await
                })
                .expect("sent");
            sent += 1;
        } else {
            panic!("{url}: the event never showed; so far:\n{text}");
        }
        match stream.read(&mut buf) {
            Ok(0) => panic!("the stream ended: {text}"),
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the stream: {e}"),
        }
    }
    assert!(text.contains("bridge:"), "the source is named: {text}");
    let _ = runtime.block_on(sender.close());
    assert!(monitor.interrupt().success());
}

type Shared = std::sync::Arc<dyn bubus::bridge::Transport>;

#[cfg(unix)]
#[test]
fn monitor_listens_on_a_redis_channel() {
    let url = format!(
        "redis://127.0.0.1:6379/0/monitor_test_{}",
        std::process::id()
    );
    sees_what_is_sent_on(&url, || async {
        std::sync::Arc::new(bubus_redis::RedisTransport::pubsub(&url).expect("a Redis transport"))
            as Shared
    });
}

#[cfg(unix)]
#[test]
fn monitor_listens_on_a_nats_subject() {
    let url = format!("nats://127.0.0.1:4222/monitor.test.{}", std::process::id());
    let (server, subject) = bubus_nats::split_url(&url);
    sees_what_is_sent_on(&url, || async move {
        let transport = bubus_nats::NatsTransport::core(&server, &subject)
            .await
            .expect("a NATS transport");
        std::sync::Arc::new(transport) as Shared
    });
}

#[cfg(unix)]
#[test]
fn monitor_listens_on_a_postgresql_channel() {
    let url = format!(
        "postgresql://postgres@127.0.0.1:5432/test/monitor_test_{}",
        std::process::id()
    );
    sees_what_is_sent_on(&url, || async {
        let transport = bubus_postgres::PgTransport::plain(&url, None)
            .await
            .expect("a PostgreSQL transport");
        std::sync::Arc::new(transport) as Shared
    });
}
