//! `bubus monitor` on the socket, HTTP and durable bridges: the monitor binds its own socket or
//! HTTP listener (and never one a live receiver serves), reads durable engines through a group
//! of its own (the real consumers' groups still get every event), and lists and replays the
//! durable engines' dead letters over its HTTP API — against the shared Redis, NATS and
//! PostgreSQL servers.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus::bridge::{Bridge, Transport, UnixSocketTransport};
use bubus::{AnyEvent, DynEvent, EventHandle};
use serde_json::{Value, json};
use support::{Running, temp_dir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request over a fresh connection; (status, body).
async fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut text = Vec::new();
    tokio::time::timeout(support::PATIENCE, stream.read_to_end(&mut text))
        .await
        .expect("an answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&text).into_owned();
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

async fn get_json(port: u16, path: &str) -> Value {
    let (status, body) = http(port, "GET", path, None).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Waits for `cond`, looking again every 20 ms (the monitor is another process: its API is
/// all there is to watch).
async fn eventually<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    tokio::time::timeout(Duration::from_secs(60), async {
        while !cond().await {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} never happened"));
}

/// Fails the test when `f` takes longer than a minute.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .expect("done within a minute")
}

/// Starts `bubus monitor ARGS --port 0`; its port.
async fn monitor(args: &[&str]) -> (Running, u16) {
    let mut all = vec!["monitor"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--port", "0"]);
    let owned: Vec<String> = all.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = owned.iter().map(String::as_str).collect();
        let mut running = Running::spawn(&args);
        let line = running.expect_stdout("the URL", |l| l.starts_with("bubus monitor: "));
        let port = line
            .strip_prefix("bubus monitor: http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("not a URL line: {line}"));
        (running, port)
    })
    .await
    .expect("the monitor starts")
}

async fn sources(port: u16) -> Vec<Value> {
    get_json(port, "/api/info").await["sources"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Waits until every source of the monitor listens.
async fn ready(port: u16) {
    eventually("the sources listening", || async {
        sources(port).await.iter().all(|s| s["ready"] == true)
    })
    .await;
}

async fn has_event(port: u16, id: &str) -> bool {
    http(port, "GET", &format!("/api/events/{id}"), None)
        .await
        .0
        == 200
}

fn ping(n: u64) -> AnyEvent {
    EventHandle::new(DynEvent::new("MonitorPing", json!({ "n": n })).expect("event")).to_any()
}

async fn stop(mut running: Running) {
    let status = tokio::task::spawn_blocking(move || running.interrupt())
        .await
        .expect("interrupt");
    assert!(status.success(), "Ctrl-C ends the monitor with status 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_binds_a_unix_socket_of_its_own() {
    let dir = temp_dir("monitor-socket");
    let path = dir.join("monitor.sock");
    let source = format!("unix:{}", path.display());
    let (running, port) = monitor(&[&source]).await;
    ready(port).await;
    let sender = Bridge::new(UnixSocketTransport::new(path.to_str().expect("utf-8")).unwrap());
    let event = ping(1);
    sender
        .send(&event)
        .await
        .expect("sent to the monitor's socket");
    let id = event.event_id().to_string();
    eventually("the event on the page", || has_event(port, &id)).await;
    assert_eq!(
        sources(port).await[0]["name"],
        format!("bridge:unix://{}", path.display())
    );
    sender.close().await.expect("close");
    stop(running).await;
    assert!(
        !path.exists(),
        "the monitor removes its socket when it stops"
    );
}

/// A socket a live receiver serves is not taken over: the monitor says why and the receiver
/// keeps getting its events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_never_takes_a_live_receivers_socket() {
    let dir = temp_dir("monitor-socket-taken");
    let path = dir.join("app.sock");
    let path_text = path.to_str().expect("utf-8").to_owned();
    let receiver = Bridge::new(UnixSocketTransport::new(&path_text).unwrap());
    let (tx, mut got) = tokio::sync::mpsc::unbounded_channel();
    receiver.on("MonitorPing", move |e: AnyEvent| {
        let _ = tx.send(e.event_id().to_string());
    });
    receiver.start().await.expect("the receiver listens");

    let source = format!("unix:{path_text}");
    let (running, port) = monitor(&[&source]).await;
    eventually("the monitor's warning", || async {
        sources(port).await[0]["last_warning"]
            .as_str()
            .is_some_and(|w| w.contains(&path_text))
    })
    .await;
    assert_eq!(sources(port).await[0]["ready"], false);

    let sender = Bridge::new(UnixSocketTransport::new(&path_text).unwrap());
    let event = ping(2);
    sender.send(&event).await.expect("sent");
    let received = tokio::time::timeout(support::PATIENCE, got.recv())
        .await
        .expect("in time")
        .expect("the receiver's event");
    assert_eq!(received, event.event_id().to_string());
    assert!(!has_event(port, &event.event_id().to_string()).await);
    sender.close().await.expect("close");
    stop(running).await;
    receiver.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_listens_for_http_posts() {
    // Port 0: the monitor binds a free port itself and prints the URL it listens on, so no
    // other process can take the port between choosing and binding it.
    let (mut running, port) = monitor(&["http://127.0.0.1:0/events"]).await;
    let (running, url) = tokio::task::spawn_blocking(move || {
        let line = running.expect_stdout("the HTTP bridge's URL", |l| {
            l.starts_with("bubus monitor: HTTP bridge listening on ")
        });
        let url = line
            .strip_prefix("bubus monitor: HTTP bridge listening on ")
            .expect("the prefix")
            .to_owned();
        (running, url)
    })
    .await
    .expect("the monitor names its HTTP listener");
    let http_port: u16 = url
        .strip_prefix("http://127.0.0.1:")
        .and_then(|rest| rest.strip_suffix("/events"))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("not the bridge's URL: {url}"));
    assert_ne!(http_port, 0);
    ready(port).await;
    assert_eq!(
        sources(port).await[0]["name"],
        format!("bridge:http: send_to -, listen_on 127.0.0.1:{http_port}")
    );
    let sender = Bridge::new(bubus_http::HttpTransport::new().send_to(&url).expect("url"));
    let event = ping(3);
    sender.send(&event).await.expect("POSTed to the monitor");
    let id = event.event_id().to_string();
    eventually("the event on the page", || has_event(port, &id)).await;
    // Only the path given is the bridge's.
    let (status, _) = http(http_port, "POST", "/other", Some(&json!({}))).await;
    assert_eq!(status, 404);
    sender.close().await.expect("close");
    stop(running).await;
}

/// An HTTP address another listener holds: the monitor says so (on stderr and on the page) and
/// keeps running, trying again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_warns_when_its_http_address_is_taken() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = holder.local_addr().expect("addr");
    let url = format!("http://{taken}/events");
    let (mut running, port) = monitor(&[&url]).await;
    let expected = format!("warning: {url}: cannot listen yet");
    let (running, line) = tokio::task::spawn_blocking(move || {
        let line = running.expect_stderr("the warning", |l| l.contains(&expected));
        (running, line)
    })
    .await
    .expect("the warning");
    assert!(line.contains("keeps trying"), "{line}");
    eventually("the page's warning", || async {
        sources(port).await[0]["last_warning"].is_string()
    })
    .await;
    assert_eq!(sources(port).await[0]["ready"], false);
    stop(running).await;
    drop(holder);
}

/// A durable bridge through the monitor's own group: the real consumers' group `workers` (one
/// handler failing for `MonitorPoison`, dead-lettered at the first failure) still handles every
/// event; the monitor shows them all; its API lists the dead letter and, confirmed, replays it
/// — the real consumer gets it again.
async fn durable_source(monitor_url: &str, real: impl Transport, sender: impl Transport) {
    let pings = Arc::new(AtomicUsize::new(0));
    let poisons = Arc::new(AtomicUsize::new(0));
    let bridge = Bridge::builder(real).max_deliveries(1).build();
    let p = Arc::clone(&pings);
    bridge.on("MonitorPing", move |_e: AnyEvent| {
        p.fetch_add(1, Ordering::SeqCst);
    });
    let p = Arc::clone(&poisons);
    bridge.on("MonitorPoison", move |_e: AnyEvent| {
        p.fetch_add(1, Ordering::SeqCst);
        Err::<(), _>(std::io::Error::other("poisoned on purpose"))
    });
    bridge.start().await.expect("the real consumer starts");

    let (running, port) = monitor(&[monitor_url]).await;
    ready(port).await;
    let sender = Bridge::new(sender);
    let events: Vec<AnyEvent> = (0..5).map(ping).collect();
    for event in &events {
        sender.send(event).await.expect("send");
    }
    let poison =
        EventHandle::new(DynEvent::new("MonitorPoison", json!({"n": 99})).expect("event")).to_any();
    let poison_id = poison.event_id().to_string();
    sender.send(&poison).await.expect("send");

    // Nothing taken from the real consumers: they handle every event.
    within(bridge.wait_metrics(|m| m.completed >= 5 && m.dead_lettered == 1)).await;
    assert_eq!(pings.load(Ordering::SeqCst), 5);
    assert_eq!(poisons.load(Ordering::SeqCst), 1);
    // And the monitor shows every one.
    for event in events.iter().chain([&poison]) {
        let id = event.event_id().to_string();
        eventually("the event on the page", || has_event(port, &id)).await;
    }

    let info = get_json(port, "/api/info").await;
    let store = info["dead_letter_stores"][0]
        .as_str()
        .expect("the engine's dead letters")
        .to_owned();
    // The engine may list it a moment after the bridge counted it.
    eventually("the dead letter listed", || async {
        get_json(port, "/api/dead-letters").await["stores"][0]["letters"]
            .as_array()
            .is_some_and(|l| !l.is_empty())
    })
    .await;
    let listed = get_json(port, "/api/dead-letters").await;
    let letters = listed["stores"][0]["letters"].as_array().expect("letters");
    let letter = letters
        .iter()
        .find(|l| l["event_id"] == poison_id.as_str())
        .unwrap_or_else(|| panic!("the poison's dead letter: {listed}"));
    assert_eq!(letter["event_type"], "MonitorPoison");
    assert!(
        letter["reason"]
            .as_str()
            .is_some_and(|r| r.contains("poisoned on purpose")),
        "{letter}"
    );
    assert_eq!(letters.len(), 1, "the monitor's group dead-letters nothing");
    let id = letter["id"].as_str().expect("an id").to_owned();

    // A replay needs the confirmation.
    let unconfirmed = json!({"store": store, "id": id});
    let (status, _) = http(port, "POST", "/api/dead-letters/replay", Some(&unconfirmed)).await;
    assert_eq!(status, 400);
    let (status, _) = http(
        port,
        "POST",
        "/api/dead-letters/replay",
        Some(&json!({"store": store, "id": "no-such-letter", "confirm": true})),
    )
    .await;
    assert_eq!(status, 404);
    let confirmed = json!({"store": store, "id": id, "confirm": true});
    let (status, body) = http(port, "POST", "/api/dead-letters/replay", Some(&confirmed)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).expect("json")["replayed"],
        1
    );
    // The real consumer gets it again (and, still poisoned, dead-letters it again).
    within(bridge.wait_metrics(|m| m.dead_lettered == 2)).await;
    assert_eq!(poisons.load(Ordering::SeqCst), 2);
    eventually("the second dead letter listed", || async {
        get_json(port, "/api/dead-letters").await["stores"][0]["letters"]
            .as_array()
            .is_some_and(|l| l.len() == 1 && l[0]["event_id"] == poison_id.as_str())
    })
    .await;

    // `bubus dead-letters` takes the monitor's durable form of the URL too.
    let url = monitor_url.to_owned();
    let listed = tokio::task::spawn_blocking(move || support::run(&["dead-letters", "list", &url]))
        .await
        .expect("cli");
    assert!(listed.status.success(), "{}", support::stderr(&listed));
    assert!(
        support::stdout(&listed).contains("MonitorPoison"),
        "{}",
        support::stdout(&listed)
    );

    stop(running).await;
    sender.close().await.expect("close");
    bridge.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_reads_redis_streams_through_its_own_group() {
    let url = format!(
        "redis://127.0.0.1:6379/0/monitor_{}",
        uuid::Uuid::new_v4().simple()
    );
    let t = |group: &str| {
        bubus_redis::RedisTransport::builder(&url)
            .expect("url")
            .streams()
            .group(group)
            .build()
            .expect("transport")
    };
    let durable = url.replacen("redis://", "redis+durable://", 1);
    durable_source(&durable, t("workers"), t("senders")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_reads_jetstream_through_its_own_consumer() {
    let subject = format!("monitor_{}", uuid::Uuid::new_v4().simple());
    let t = async |group: &str| {
        bubus_nats::NatsTransport::builder("nats://127.0.0.1:4222", &subject)
            .jetstream()
            .group(group)
            .build()
            .await
            .expect("transport")
    };
    let url = format!("nats+durable://127.0.0.1:4222/{subject}");
    durable_source(&url, t("workers").await, t("senders").await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitor_reads_the_postgres_outbox_through_its_own_group() {
    let table = format!("monitor_{}_{:08x}", std::process::id(), fastrand::u32(..));
    let url = format!("postgresql://postgres@127.0.0.1:5432/test/{table}");
    let t = async |group: &str| {
        bubus_postgres::PgTransport::durable(
            &url,
            bubus_postgres::DurableOptions::new(group)
                .max_deliveries(1)
                .poll_interval(Duration::from_millis(100)),
        )
        .await
        .expect("transport")
    };
    let real = t("workers").await;
    // Sending needs no group of its own: the real consumer's transport sends too.
    let sender = real.clone();
    let durable = url.replacen("postgresql://", "postgresql+durable://", 1);
    durable_source(&durable, real, sender).await;
}
