//! The plain mode (the family's table + NOTIFY) through the same faults as the durable mode: it
//! is at-most-once, so this run reports how many events were lost while the listener was
//! reconnecting — and checks that the senders never failed, the listener came back each time,
//! and no event ran its handlers twice.
//!
//! Run: `cargo test -p bubus-postgres --test plain_faults -- --nocapture`.

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use bubus::bridge::Bridge;
use bubus::{AnyEvent, DynEvent, EventBus, EventHandle};
use bubus_postgres::PgTransport;
use bubus_test_support::conformance::Tally;
use bubus_test_support::postgres_server::PgServer;
use serde_json::json;
use tokio::sync::watch;

const TASKS: u64 = 4;
const PER_TASK: u64 = 2_500;
const TOTAL: u64 = TASKS * PER_TASK;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_mode_reports_what_it_loses_across_two_restarts() {
    let server = PgServer::start();
    let url = format!("{}/plain_faults", server.url());
    let channel = "plain_faults";

    let bus = EventBus::builder("PlainReceiver")
        .max_history_size(Some(0))
        .build();
    let tally = Tally::new();
    bus.on_pattern("Work", tally.handler());
    let receiver = Bridge::new(PgTransport::plain(&url, Some(channel)).await.unwrap());
    receiver.attach(&bus);
    receiver.start().await.unwrap();

    let sender = PgTransport::plain(&url, Some(channel)).await.unwrap();
    let (progress_tx, mut progress) = watch::channel(0u64);
    let progress_tx = Arc::new(progress_tx);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let sender = sender.clone();
        let progress_tx = progress_tx.clone();
        tasks.push(tokio::spawn(async move {
            for k in 0..PER_TASK {
                let e: AnyEvent = EventHandle::new(
                    DynEvent::new("Work", json!({ "v": t * 100_000 + k })).unwrap(),
                )
                .into();
                // Sends retry through the restarts: none fails.
                sender.send_event(&e).await.unwrap();
                progress_tx.send_modify(|n| *n += 1);
            }
        }));
    }
    for third in 1..=2u64 {
        progress
            .wait_for(|n| *n >= third * TOTAL / 3)
            .await
            .unwrap();
        server.restart();
    }
    for t in tasks {
        t.await.unwrap();
    }
    // A marker sent after everything: once it arrives, the listener is back and everything it
    // will ever get has arrived (one connection, notifications in commit order).
    let marker: AnyEvent =
        EventHandle::new(DynEvent::new("Work", json!({ "v": u64::MAX })).unwrap()).into();
    let marker_id = marker.event_id().to_string();
    wait_listening(&server.url(), channel).await;
    sender.send_event(&marker).await.unwrap();
    loop {
        if tally
            .events()
            .iter()
            .any(|e| e["event_id"] == marker_id.as_str())
        {
            break;
        }
        tally.wait_for(tally.count() + 1).await;
    }
    let events = tally.events();
    let received: HashSet<u64> = events
        .iter()
        .filter_map(|e| e["v"].as_u64())
        .filter(|v| *v != u64::MAX)
        .collect();
    let lost = TOTAL - received.len() as u64;
    println!(
        "plain (at-most-once): {TOTAL} sent, {} received, {lost} lost across 2 server restarts",
        received.len()
    );
    assert_eq!(
        events.len() - 1,
        received.len(),
        "an event ran its handlers twice"
    );
    assert!(
        received
            .iter()
            .all(|v| v / 100_000 < TASKS && v % 100_000 < PER_TASK)
    );
    receiver.close().await.unwrap();
}

/// Waits until a backend of `url` listens on `channel` (the receiver reconnected).
async fn wait_listening(url: &str, channel: &str) {
    let (c, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    loop {
        let row = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query = $1",
                &[&format!("LISTEN \"{channel}\";")],
            )
            .await
            .unwrap();
        if row.get::<_, i64>(0) > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
