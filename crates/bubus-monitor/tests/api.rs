//! The monitor's HTTP side without a browser: access rules, replay, metrics, statistics,
//! sources merged by event id, bounded memory.

mod support;

use std::sync::Arc;

use bubus::wal::WalMiddleware;
use bubus::{AnyEvent, DynEvent, EventBus, HandlerError};
use bubus_monitor::{
    JsonlTarget, Monitor, RunningMonitor, SqliteSource, Status, StreamSource, WalSource,
};
use serde_json::{Value, json};
use support::{http, temp_dir};

fn event(n: u64, parent: Option<u64>, status: &str) -> Value {
    json!({
        "event_id": format!("0190a000-0000-7000-8000-{n:012x}"),
        "event_type": if parent.is_some() { "Child" } else { "Order" },
        "event_parent_id": parent.map(|p| format!("0190a000-0000-7000-8000-{p:012x}")),
        "event_path": ["Shop#0001"],
        "event_status": status,
        "event_created_at": "2026-01-01T00:00:00.000000000Z",
        "event_completed_at": if status == "completed" { json!("2026-01-01T00:00:00.250000000Z") } else { Value::Null },
        "customer": format!("customer-{n}"),
    })
}

fn id(n: u64) -> String {
    format!("0190a000-0000-7000-8000-{n:012x}")
}

async fn monitor_of(
    events: Vec<Value>,
    configure: impl FnOnce(bubus_monitor::MonitorBuilder) -> bubus_monitor::MonitorBuilder,
) -> RunningMonitor {
    let last = events
        .last()
        .and_then(|e| e["event_id"].as_str())
        .map(str::to_owned);
    let builder = Monitor::builder()
        .source(StreamSource::new(
            "test",
            futures_util::stream::iter(events),
        ))
        .bind(([127, 0, 0, 1], 0).into());
    let monitor = configure(builder).start().await.expect("starts");
    if let Some(last) = last {
        support::event(&monitor, &last, |_| true).await;
    }
    monitor
}

#[tokio::test]
async fn off_loopback_every_request_needs_the_token() {
    let monitor = Monitor::builder()
        .bind(([0, 0, 0, 0], 0).into())
        .start()
        .await
        .expect("starts");
    let token = monitor.token().expect("a generated token").to_owned();
    assert!(token.len() >= 32);
    assert!(monitor.url().ends_with(&format!("/?token={token}")));
    let addr = ([127, 0, 0, 1], monitor.local_addr().port()).into();

    for path in [
        "/",
        "/api/stats",
        "/metrics",
        "/api/stream",
        "/assets/app.js",
    ] {
        let (status, _, _) = http(addr, "GET", path, &[], None).await;
        assert_eq!(status, 401, "{path} without the token");
    }
    let (status, _, _) = http(addr, "GET", "/?token=wrong", &[], None).await;
    assert_eq!(status, 401);
    let (status, head, body) = http(addr, "GET", &format!("/?token={token}"), &[], None).await;
    assert_eq!(status, 200);
    assert!(body.contains("bubus monitor"));
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .expect("the page keeps the token in a cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(head.to_ascii_lowercase().contains("httponly"));
    let (status, _, _) = http(addr, "GET", "/api/info", &[("Cookie", &cookie)], None).await;
    assert_eq!(status, 200, "the cookie carries the token");
    let bearer = format!("Bearer {token}");
    let (status, _, body) =
        http(addr, "GET", "/metrics", &[("Authorization", &bearer)], None).await;
    assert_eq!(status, 200);
    assert!(body.contains("# EOF"), "OpenMetrics text: {body}");
    monitor.shutdown().await;

    // A token can be set, also on loopback; an empty one is refused.
    let monitor = Monitor::builder()
        .bind(([127, 0, 0, 1], 0).into())
        .token("s3cret")
        .start()
        .await
        .expect("starts");
    let (status, _, _) = http(monitor.local_addr(), "GET", "/api/info", &[], None).await;
    assert_eq!(status, 401);
    let (status, _, _) = http(
        monitor.local_addr(),
        "GET",
        "/api/info",
        &[("Authorization", "Bearer s3cret")],
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert!(matches!(
        Monitor::builder().token("").start().await,
        Err(bubus_monitor::MonitorError::EmptyToken)
    ));
}

#[tokio::test]
async fn on_loopback_only_loopback_host_names_and_same_origin_posts() {
    let monitor = monitor_of(vec![event(1, None, "completed")], |b| b).await;
    let addr = monitor.local_addr();
    let (status, _, _) = http(
        addr,
        "GET",
        "/api/info",
        &[("Host", "evil.example:7474")],
        None,
    )
    .await;
    assert_eq!(status, 403, "a DNS name rebound to 127.0.0.1");
    let (status, _, _) = http(
        addr,
        "GET",
        "/api/info",
        &[("Host", "localhost:7474")],
        None,
    )
    .await;
    assert_eq!(status, 200);
    let host = addr.to_string();
    let body = r#"{"ids":["x"],"confirm":true}"#;
    let (status, _, _) = http(
        addr,
        "POST",
        "/api/replay",
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/json"),
        ],
        Some(body),
    )
    .await;
    assert_eq!(status, 403, "a cross-origin POST");
    let origin = format!("http://{host}");
    let (status, _, _) = http(
        addr,
        "POST",
        "/api/replay",
        &[("Origin", &origin), ("Content-Type", "application/json")],
        Some(body),
    )
    .await;
    assert_eq!(
        status, 409,
        "same origin gets through (and finds no replay target)"
    );
}

#[tokio::test]
async fn replay_asks_for_confirmation_and_writes_fresh_copies() {
    let dir = temp_dir("replay");
    let inbox = dir.join("inbox.jsonl");
    let monitor = monitor_of(
        vec![event(1, None, "completed"), event(2, Some(1), "completed")],
        |b| b.replay_target(JsonlTarget::new(&inbox)),
    )
    .await;
    let addr = monitor.local_addr();
    let json = [("Content-Type", "application/json")];
    let ask =
        |body: String| async move { http(addr, "POST", "/api/replay", &json, Some(&body)).await };
    let (status, _, body) = ask(json!({"ids": [id(1)]}).to_string()).await;
    assert_eq!(status, 400, "{body}");
    assert!(!inbox.exists(), "nothing replayed without confirmation");
    let (status, _, body) =
        ask(json!({"ids": [id(1), id(1), "nope"], "confirm": true}).to_string()).await;
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["replayed"].as_array().unwrap().len(), 1, "{answer}");
    assert_eq!(answer["skipped"][0]["id"], "nope");
    let copy_id = answer["replayed"][0]["replay"].as_str().unwrap().to_owned();
    assert_ne!(copy_id, id(1));

    let text = std::fs::read_to_string(&inbox).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1);
    let copy = AnyEvent::from_json_str(lines[0]).expect("the inbox line is an event");
    assert_eq!(copy.event_id().to_string(), copy_id);
    assert_eq!(copy.event_type(), "Order");
    assert_eq!(copy.event_parent_id(), None);
    assert_eq!(copy.event_status(), bubus::EventStatus::Pending);
    assert_eq!(copy.payload_json().unwrap()["customer"], "customer-1");
    let original = monitor.event(&id(1)).unwrap();
    assert_eq!(original.replays, vec![copy_id]);

    let (status, _, _) =
        ask(json!({"ids": [id(1)], "confirm": true, "target": "jsonl:elsewhere"}).to_string())
            .await;
    assert_eq!(status, 409, "an unknown target");
}

#[tokio::test]
async fn metrics_and_statistics_count_events_handlers_and_failures() {
    let mut order = event(1, None, "completed");
    order["event_results"] = json!({
        "h1": {"id": "r1", "handler_id": "h1", "handler_name": "shop::charge", "eventbus_name": "Shop",
               "eventbus_id": "0190a000-0000-7000-8000-000000000001", "status": "completed",
               "started_at": "2026-01-01T00:00:00.000000000Z", "completed_at": "2026-01-01T00:00:00.004000000Z",
               "result": 1999, "error": null},
        "h2": {"id": "r2", "handler_id": "h2", "handler_name": "shop::audit", "eventbus_name": "Shop",
               "eventbus_id": "0190a000-0000-7000-8000-000000000001", "status": "error",
               "started_at": "2026-01-01T00:00:00.000000000Z", "completed_at": "2026-01-01T00:00:00.001000000Z",
               "result": null, "error": {"type": "AuditError", "message": "disk full"}},
    });
    let monitor = monitor_of(
        vec![
            event(1, None, "pending"),
            order,
            event(2, None, "completed"),
        ],
        |b| b,
    )
    .await;
    let addr = monitor.local_addr();
    let (_, _, metrics) = http(addr, "GET", "/metrics", &[], None).await;
    for line in [
        r#"bubus_events_total{event_type="Order"} 2"#,
        r#"bubus_events_completed_total{event_type="Order"} 2"#,
        r#"bubus_events_failed_total{event_type="Order"} 1"#,
        r#"bubus_handler_results_total{event_type="Order",handler="shop::audit",bus="Shop#0001",status="error"} 1"#,
        r#"bubus_handler_results_total{event_type="Order",handler="shop::charge",bus="Shop#0001",status="completed"} 1"#,
        r#"bubus_handler_duration_seconds_count{event_type="Order",handler="shop::charge"} 1"#,
        r#"bubus_event_duration_seconds_sum{event_type="Order"} 0.5"#,
        "bubus_monitor_events_in_memory 2",
    ] {
        assert!(metrics.contains(line), "no {line} in\n{metrics}");
    }
    let (_, _, stats) = http(addr, "GET", "/api/stats", &[], None).await;
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["total"]["events"], 2);
    assert_eq!(stats["total"]["failed"], 1);
    assert_eq!(
        stats["by_type"][0]["event_ms"],
        json!([250.0, 250.0, 250.0])
    );
    assert_eq!(stats["by_bus"][0]["key"], "Shop#0001");
    assert_eq!(stats["failures"][0]["error_type"], "AuditError");
    assert_eq!(stats["failures"][0]["handler"], "shop::audit");
    assert_eq!(stats["failures"][0]["in_memory"], 1);
    let (_, _, ids) = http(
        addr,
        "GET",
        "/api/failures/events?error_type=AuditError&handler=shop%3A%3Aaudit",
        &[],
        None,
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&ids).unwrap()["ids"],
        json!([id(1)])
    );
    let detail = monitor.event(&id(1)).unwrap();
    assert_eq!(detail.results.len(), 2);
    assert_eq!(detail.results[0].duration_ms, Some(4.0));
    assert_eq!(detail.results[0].result.as_deref(), Some("1999"));
    assert_eq!(detail.results[1].status, "error");

    let (_, _, found) = http(addr, "GET", "/api/search?q=CUSTOMER-2", &[], None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&found).unwrap()["ids"],
        json!([id(2)])
    );
    let (_, _, found) = http(addr, "GET", "/api/search?q=disk%20full", &[], None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&found).unwrap()["ids"],
        json!([id(1)])
    );
    let (status, _, _) = http(addr, "GET", "/api/events/nope", &[], None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn memory_stays_bounded_evicting_old_completed_trees() {
    // 2 000 trees of a parent and a child; room for 500 events.
    let mut events = Vec::new();
    for n in 0..2_000u64 {
        events.push(event(2 * n, None, "completed"));
        events.push(event(2 * n + 1, Some(2 * n), "completed"));
    }
    let monitor = monitor_of(events, |b| b.max_events(500)).await;
    assert!(monitor.events_in_memory() <= 500);
    assert!(monitor.event(&id(0)).is_none(), "the oldest trees went");
    let newest = monitor.event(&id(3_998)).expect("the newest tree stays");
    assert_eq!(newest.children, vec![id(3_999)]);
    let (_, _, stats) = http(monitor.local_addr(), "GET", "/api/stats", &[], None).await;
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(
        stats["total"]["events"], 4_000,
        "statistics count evicted events too"
    );
    assert_eq!(
        stats["evicted"].as_u64().unwrap() + stats["in_memory"].as_u64().unwrap(),
        4_000
    );
}

/// A real bus writing both a log and a history mirror: two sources, one view.
#[tokio::test]
async fn a_log_and_a_mirror_of_one_bus_merge_by_event_id() {
    let dir = temp_dir("merge");
    let log = dir.join("shop.jsonl");
    let db = dir.join("history.sqlite3");
    let monitor = Monitor::builder()
        .source(WalSource::new(&log))
        .source(SqliteSource::new(&db))
        .bind(([127, 0, 0, 1], 0).into())
        .start()
        .await
        .expect("starts");

    let wal = Arc::new(WalMiddleware::open(&log).unwrap());
    let mirror = Arc::new(bubus_sqlite::SqliteHistoryMirror::open(&db).unwrap());
    let bus = EventBus::builder("Shop")
        .middleware(wal)
        .middleware(mirror.clone())
        .build();
    bus.on_pattern("Order", |e: AnyEvent| -> Result<(), HandlerError> {
        let payload = e.payload_json()?;
        if payload["n"] == 2 {
            return Err(HandlerError::new("Boom", "no"));
        }
        Ok(())
    });
    let mut ids = Vec::new();
    for n in 1..=2 {
        let event = bus
            .dispatch(DynEvent::new("Order", json!({"n": n})).unwrap())
            .unwrap();
        ids.push(event.event_id().to_string());
        let _ = event.await;
    }
    mirror.flush().unwrap();

    for id in &ids {
        let detail = support::event(&monitor, id, |d| {
            d.sources.len() == 2 && d.summary.status == Status::Completed && d.results.len() == 1
        })
        .await;
        assert_eq!(detail.summary.path, vec![bus.label()]);
    }
    assert_eq!(
        monitor.events_in_memory(),
        2,
        "one entry per event, whichever source"
    );
    let failed = monitor.event(&ids[1]).unwrap();
    assert_eq!(failed.results[0].error_type.as_deref(), Some("Boom"));
    assert_eq!(failed.results[0].bus, bus.label());
    let (_, _, info) = http(monitor.local_addr(), "GET", "/api/info", &[], None).await;
    let info: Value = serde_json::from_str(&info).unwrap();
    assert_eq!(
        info["sources"][0]["records"], 4,
        "a dispatch and a completion record per event: {info}"
    );
    assert_eq!(info["sources"][1]["bad"], 0);
}
