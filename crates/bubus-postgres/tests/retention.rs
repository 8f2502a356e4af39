//! The durable mode's bookkeeping on the shared server: pruning of acknowledged events and their
//! dedup rows after the retention (never a pending, leased or dead-lettered one), and deliveries
//! handed back because another member holds the event's claim, which never count toward the
//! dead letters.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use bubus::bridge::{Claim, DedupStore, Delivery, DeliveryStream, Transport};
use bubus_postgres::{DurableOptions, PgTransport};
use futures_util::StreamExt;
use support::*;

/// The consumers' own pruning stays out of the way of the explicit `prune()` calls.
const NOT_DURING_THE_TEST: Duration = Duration::from_secs(3600);

/// The next delivery (a guard against a hang, not a timing assertion).
async fn next(stream: &mut DeliveryStream) -> Delivery {
    tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("a delivery within a minute")
        .expect("the stream is open")
        .expect("a readable delivery")
}

fn n_in(d: &Delivery) -> u64 {
    let v: serde_json::Value = serde_json::from_str(d.text()).unwrap();
    v["n"].as_u64().unwrap()
}

async fn event_ids(table: &str) -> Vec<String> {
    let rows = client()
        .await
        .query(
            &format!("SELECT event_id FROM \"{table}\" ORDER BY seq"),
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

async fn dedup_rows(table: &str) -> i64 {
    client()
        .await
        .query_one(&format!("SELECT count(*) FROM \"{table}_dedup\""), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_deletes_only_acknowledged_events_past_the_retention() {
    let table = unique("prune");
    let t = PgTransport::durable(
        &shared_url(&table),
        DurableOptions::new("g")
            .retention(Duration::ZERO)
            .prune_interval(NOT_DURING_THE_TEST)
            .retry_delay(Duration::ZERO)
            .poll_interval(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    let events: Vec<_> = (0..4).map(ping).collect();
    let ids: Vec<String> = events.iter().map(|e| e.event_id().to_string()).collect();
    for e in &events {
        t.send_event(e).await.unwrap();
    }
    let mut stream = t.listen().await.unwrap();
    let mut by_n: HashMap<u64, Delivery> = HashMap::new();
    for _ in 0..4 {
        let d = next(&mut stream).await;
        by_n.insert(n_in(&d), d);
    }
    // 0 acknowledged; 1 failed, waiting an hour for its retry; 2 leased, its handlers running
    // (the dedup claim held); 3 dead-lettered.
    let mut take = |n: u64| by_n.get_mut(&n).unwrap().take_acker().unwrap();
    take(0).ack().await.unwrap();
    take(1)
        .nack(Some(Duration::from_secs(3600)), "failed".into())
        .await
        .unwrap();
    let running = take(2);
    let id2 = events[2].event_id();
    assert_eq!(t.dedup().claim(id2).await.unwrap(), Claim::Won);
    take(3).dead_letter("poison".into()).await.unwrap();
    assert_eq!(dedup_rows(&table).await, 2, "0's mark and 2's claim");

    let pruned = t.prune().await.unwrap();
    assert_eq!((pruned.events, pruned.dedup_rows), (1, 1));
    assert_eq!(event_ids(&table).await, ids[1..].to_vec());
    assert_eq!(dedup_rows(&table).await, 1, "2's claim stays");

    // The dead letter's event is still there to replay; once 2 and 3 are acknowledged, they go.
    assert_eq!(t.replay_dead_letters(None).await.unwrap(), 1);
    let mut replayed = next(&mut stream).await;
    assert_eq!(n_in(&replayed), 3);
    running.ack().await.unwrap();
    replayed.take_acker().unwrap().ack().await.unwrap();
    let pruned = t.prune().await.unwrap();
    assert_eq!((pruned.events, pruned.dedup_rows), (2, 2));
    assert_eq!(event_ids(&table).await, vec![ids[1].clone()]);
    assert_eq!(dedup_rows(&table).await, 0);
    assert_eq!(t.pending().await.unwrap(), 1, "1 still waits for its retry");
    t.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_waits_for_every_group_and_can_be_switched_off() {
    let table = unique("prune");
    let url = shared_url(&table);
    let a = PgTransport::durable(
        &url,
        DurableOptions::new("a")
            .retention(Duration::ZERO)
            .prune_interval(NOT_DURING_THE_TEST),
    )
    .await
    .unwrap();
    let b = PgTransport::durable(&url, DurableOptions::new("b").keep_everything())
        .await
        .unwrap();
    a.send_event(&ping(0)).await.unwrap();
    let mut from_a = a.listen().await.unwrap();
    next(&mut from_a)
        .await
        .take_acker()
        .unwrap()
        .ack()
        .await
        .unwrap();
    // Group b has not acknowledged it: it stays.
    assert_eq!(a.prune().await.unwrap().events, 0);
    let mut from_b = b.listen().await.unwrap();
    next(&mut from_b)
        .await
        .take_acker()
        .unwrap()
        .ack()
        .await
        .unwrap();
    // b keeps everything: its own pruning does nothing; a's deletes the event and both marks.
    assert_eq!(b.prune().await.unwrap().events, 0);
    assert_eq!(event_ids(&table).await.len(), 1);
    let pruned = a.prune().await.unwrap();
    assert_eq!((pruned.events, pruned.dedup_rows), (1, 2));
    assert!(event_ids(&table).await.is_empty());
    a.close().await.unwrap();
    b.close().await.unwrap();
}

/// What the bridge does with a delivery whose claim another member holds (a slow handler
/// there): it hands the delivery back for later, without running it. However often that
/// happens, it is not a failed delivery: the event is never dead-lettered for it, and its
/// attempt count stays that of the deliveries that reached a handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_handed_back_for_a_held_claim_are_not_failures() {
    let url = shared_url(&unique("held"));
    let slow = PgTransport::durable(&url, DurableOptions::new("g"))
        .await
        .unwrap();
    let max = 2;
    let member = PgTransport::durable(
        &url,
        DurableOptions::new("g")
            .max_deliveries(max)
            .retry_delay(Duration::ZERO)
            .poll_interval(Duration::from_millis(50)),
    )
    .await
    .unwrap();
    let event = ping(7);
    let id = event.event_id();
    // The slow member's handlers run the event (a copy of it reached it first).
    assert_eq!(slow.dedup().claim(id).await.unwrap(), Claim::Won);
    member.send_event(&event).await.unwrap();
    let mut stream = member.listen().await.unwrap();
    for _ in 0..(max * 3) {
        let mut d = next(&mut stream).await;
        assert_eq!(d.attempt(), 1);
        assert!(matches!(
            member.dedup().claim(id).await.unwrap(),
            Claim::Held { .. }
        ));
        d.take_acker()
            .unwrap()
            .nack(
                Some(Duration::ZERO),
                "another receiver holds the event's claim".into(),
            )
            .await
            .unwrap();
    }
    assert!(member.dead_letters().await.unwrap().is_empty());
    // The slow member finishes: the copy here is a duplicate, acknowledged without running.
    slow.dedup().confirm(id).await.unwrap();
    let mut d = next(&mut stream).await;
    assert_eq!(member.dedup().claim(id).await.unwrap(), Claim::Done);
    d.take_acker().unwrap().ack().await.unwrap();
    assert_eq!(member.pending().await.unwrap(), 0);
    assert!(member.dead_letters().await.unwrap().is_empty());

    // A handler failure still counts: `max` failed deliveries and it is a dead letter.
    let poison = ping(8);
    member.send_event(&poison).await.unwrap();
    for attempt in 1..=max {
        let mut d = next(&mut stream).await;
        assert_eq!(d.attempt(), attempt);
        assert_eq!(
            member.dedup().claim(poison.event_id()).await.unwrap(),
            Claim::Won
        );
        member.dedup().release(poison.event_id()).await.unwrap();
        let acker = d.take_acker().unwrap();
        if attempt < max {
            acker.nack(None, "handler failed".into()).await.unwrap();
        } else {
            acker.dead_letter("handler failed".into()).await.unwrap();
        }
    }
    assert_eq!(member.dead_letters().await.unwrap().len(), 1);
    member.close().await.unwrap();
    slow.close().await.unwrap();
}
