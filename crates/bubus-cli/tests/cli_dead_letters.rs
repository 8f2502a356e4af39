//! `bubus dead-letters list|replay URL` against the durable Redis and NATS bridges on the shared
//! servers (127.0.0.1:6379, 127.0.0.1:4222).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bubus::bridge::{Bridge, Transport};
use bubus::{AnyEvent, DynEvent, EventHandle};
use bubus_test_support::durable::metrics_reach;
use serde_json::{Value, json};
use support::{run, stderr, stdout};

/// A receiver whose handler fails until healed, a poison event dead-lettered after 2
/// deliveries; then the CLI lists it, replays it, and the healed receiver handles it.
async fn list_and_replay(url: &str, receiver: impl Transport + Clone, sender: impl Transport) {
    let healed = Arc::new(AtomicBool::new(false));
    let bridge = Bridge::builder(receiver).max_deliveries(2).build();
    let h = Arc::clone(&healed);
    bridge.on("CliPoison", move |_e: AnyEvent| {
        if h.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(std::io::Error::other("still broken"))
        }
    });
    bridge.start().await.expect("start");
    let event =
        EventHandle::new(DynEvent::new("CliPoison", json!({"n": 7})).expect("event")).to_any();
    let sender = Bridge::new(sender);
    sender.send(&event).await.expect("send");
    metrics_reach("the dead letter", &bridge, |m| m.dead_lettered == 1).await;

    let url_owned = url.to_owned();
    let listed = tokio::task::spawn_blocking(move || run(&["dead-letters", "list", &url_owned]))
        .await
        .expect("cli");
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    let short = &event.event_id().to_string()[32..];
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains(&format!("CliPoison#{short}")), "{text}");
    assert!(
        text.contains("deliveries=2") && text.contains("still broken"),
        "{text}"
    );

    let url_owned = url.to_owned();
    let json_out =
        tokio::task::spawn_blocking(move || run(&["dead-letters", "list", "--json", &url_owned]))
            .await
            .expect("cli");
    let letter: Value = serde_json::from_str(stdout(&json_out).trim()).expect("one JSON line");
    assert_eq!(letter["event_id"], event.event_id().to_string());
    assert_eq!(letter["event"]["n"], 7);
    let id = letter["id"].as_str().expect("an id").to_owned();

    healed.store(true, Ordering::SeqCst);
    let url_owned = url.to_owned();
    let replayed =
        tokio::task::spawn_blocking(move || run(&["dead-letters", "replay", &url_owned, &id]))
            .await
            .expect("cli");
    assert!(replayed.status.success(), "{}", stderr(&replayed));
    assert_eq!(stdout(&replayed).trim(), "replayed 1");
    metrics_reach("the replayed event handled", &bridge, |m| m.completed == 1).await;

    let url_owned = url.to_owned();
    let rest = tokio::task::spawn_blocking(move || {
        (
            run(&["dead-letters", "list", &url_owned]),
            run(&["dead-letters", "replay", "--all", &url_owned]),
        )
    })
    .await
    .expect("cli");
    assert_eq!(stdout(&rest.0), "", "no dead letters left");
    assert_eq!(stdout(&rest.1).trim(), "replayed 0");
    bridge.close().await.expect("close");
    sender.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_dead_letters_list_and_replay() {
    let url = format!(
        "redis://127.0.0.1:6379/0/cli_{}",
        uuid::Uuid::new_v4().simple()
    );
    let t = |group: &str| {
        bubus_redis::RedisTransport::builder(&url)
            .expect("url")
            .streams()
            .group(group)
            .lease(Duration::from_secs(2))
            .build()
            .expect("transport")
    };
    list_and_replay(&url, t("workers"), t("senders")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_dead_letters_list_and_replay() {
    let subject = format!("cli_{}", uuid::Uuid::new_v4().simple());
    let t = async |group: &str| {
        bubus_nats::NatsTransport::builder("nats://127.0.0.1:4222", &subject)
            .jetstream()
            .group(group)
            .lease(Duration::from_secs(2))
            .build()
            .await
            .expect("transport")
    };
    let url = format!("nats://127.0.0.1:4222/{subject}");
    list_and_replay(&url, t("workers").await, t("senders").await).await;
}

#[test]
fn other_urls_are_refused_with_the_forms_that_work() {
    let out = run(&["dead-letters", "list", "mysql://localhost/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("redis://")
            && stderr(&out).contains("nats://")
            && stderr(&out).contains("postgresql://"),
        "{}",
        stderr(&out)
    );
    let out = run(&["dead-letters", "replay", "redis://127.0.0.1:6379/0/x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--all"), "{}", stderr(&out));
}
