//! The durable mode on the shared server: delivery and ack, groups (competing and broadcast),
//! the transactional outbox, failures into dead letters and replay.

mod support;

use std::collections::HashSet;
use std::time::Duration;

use bubus_postgres::{DurableOptions, GroupStart, PgBridge};
use support::*;

fn opts(group: &str) -> DurableOptions {
    DurableOptions::new(group)
        .retry_delay(Duration::ZERO)
        .poll_interval(Duration::from_millis(200))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_once_then_acked() {
    let url = shared_url(&unique("dq_once"));
    let consumer = PgBridge::durable(&url, opts("g")).await.unwrap();
    let producer = PgBridge::durable(&url, opts("g")).await.unwrap();
    for n in 0..200 {
        producer.send(&ping(n)).await.unwrap();
    }
    let mut deliveries = consumer.subscribe().unwrap();
    let mut seen = Vec::new();
    while seen.len() < 200 {
        let d = deliveries.recv().await.unwrap();
        assert_eq!(d.attempt(), 1);
        seen.push(n_of(d.event()));
        d.ack();
    }
    // One publisher: its order is kept.
    assert_eq!(seen, (0..200).collect::<Vec<_>>());
    // Acks are written asynchronously; wait for them through the server's count.
    while consumer.pending().await.unwrap() != 0 {
        tokio::task::yield_now().await;
    }
    // A group created later starts at the beginning; one created with `New` does not.
    let late = PgBridge::durable(&url, opts("late")).await.unwrap();
    assert_eq!(late.pending().await.unwrap(), 200);
    let fresh = PgBridge::durable(&url, opts("fresh").start(GroupStart::New))
        .await
        .unwrap();
    assert_eq!(fresh.pending().await.unwrap(), 0);
    producer.send(&ping(999)).await.unwrap();
    assert_eq!(fresh.pending().await.unwrap(), 1);
    assert_eq!(late.pending().await.unwrap(), 201);
    assert_eq!(consumer.pending().await.unwrap(), 1);
    for b in [consumer, producer, late, fresh] {
        b.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_id_twice_is_one_event() {
    let url = shared_url(&unique("dq_dup"));
    let b = PgBridge::durable(&url, opts("g")).await.unwrap();
    let e = ping(1);
    b.send(&e).await.unwrap();
    b.send(&e).await.unwrap();
    let c = client().await;
    assert!(!b.publish_in(&c, &e).await.unwrap());
    assert_eq!(b.pending().await.unwrap(), 1);
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_publishes_with_the_transaction() {
    let url = shared_url(&unique("dq_outbox"));
    let b = PgBridge::durable(&url, opts("g")).await.unwrap();
    let mut c = client().await;
    let side = unique("dq_side");
    c.batch_execute(&format!("CREATE TABLE {side} (n BIGINT)"))
        .await
        .unwrap();

    // Rolled back: neither the row nor the event.
    let tx = c.transaction().await.unwrap();
    tx.execute(&format!("INSERT INTO {side} VALUES (1)"), &[])
        .await
        .unwrap();
    assert!(b.publish_in(&tx, &ping(1)).await.unwrap());
    tx.rollback().await.unwrap();
    assert_eq!(b.pending().await.unwrap(), 0);

    // Committed: both, and the consumer is woken by the commit.
    let mut deliveries = b.subscribe().unwrap();
    let tx = c.transaction().await.unwrap();
    tx.execute(&format!("INSERT INTO {side} VALUES (2)"), &[])
        .await
        .unwrap();
    assert!(b.publish_in(&tx, &ping(2)).await.unwrap());
    tx.commit().await.unwrap();
    let d = deliveries.recv().await.unwrap();
    assert_eq!(n_of(d.event()), 2);
    d.ack();
    c.batch_execute(&format!("DROP TABLE {side}"))
        .await
        .unwrap();
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_members_split_broadcast_groups_all() {
    let url = shared_url(&unique("dq_groups"));
    let a = PgBridge::durable(&url, opts("workers").batch(8))
        .await
        .unwrap();
    let b = PgBridge::durable(&url, opts("workers").batch(8))
        .await
        .unwrap();
    let audit = PgBridge::durable(&url, opts("audit")).await.unwrap();
    let mut da = a.subscribe().unwrap();
    let mut db = b.subscribe().unwrap();
    let mut dc = audit.subscribe().unwrap();
    for n in 0..300 {
        a.send(&ping(n)).await.unwrap();
    }
    let mut from_a = HashSet::new();
    let mut from_b = HashSet::new();
    while from_a.len() + from_b.len() < 300 {
        tokio::select! {
            Some(d) = da.recv() => { assert!(from_a.insert(n_of(d.event()))); d.ack(); }
            Some(d) = db.recv() => { assert!(from_b.insert(n_of(d.event()))); d.ack(); }
        }
    }
    assert!(from_a.is_disjoint(&from_b), "an event reached both members");
    assert_eq!(from_a.len() + from_b.len(), 300);
    let mut all = HashSet::new();
    while all.len() < 300 {
        let d = dc.recv().await.unwrap();
        assert!(all.insert(n_of(d.event())));
        d.ack();
    }
    for x in [a, b, audit] {
        x.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_go_to_dead_letters_and_replay() {
    let url = shared_url(&unique("dq_dead"));
    let b = PgBridge::durable(&url, opts("g").max_deliveries(3))
        .await
        .unwrap();
    let mut deliveries = b.subscribe().unwrap();
    let poison = ping(7);
    b.send(&poison).await.unwrap();
    for attempt in 1..=3 {
        let d = deliveries.recv().await.unwrap();
        assert_eq!(d.attempt(), attempt);
        d.nack(format!("Boom: attempt {attempt}"));
    }
    // The third failure dead-letters it; wait for the row.
    let dead = loop {
        let dead = b.dead_letters().await.unwrap();
        if !dead.is_empty() {
            break dead;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event_id, poison.event_id().to_string());
    assert_eq!(dead[0].attempts, 3);
    assert_eq!(dead[0].error.as_deref(), Some("Boom: attempt 3"));
    assert_eq!(b.pending().await.unwrap(), 0);
    // The same list without a bridge (what the CLI shows).
    let listed = bubus_postgres::list_dead_letters(&url, None).await.unwrap();
    assert_eq!(listed, dead);

    assert_eq!(b.replay_dead_letters(None).await.unwrap(), 1);
    assert!(b.dead_letters().await.unwrap().is_empty());
    let d = deliveries.recv().await.unwrap();
    assert_eq!(n_of(d.event()), 7);
    assert_eq!(d.attempt(), 1);
    d.ack();
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_rows_are_dead_lettered() {
    let table = unique("dq_bad");
    let url = shared_url(&table);
    let b = PgBridge::durable(&url, opts("g").max_deliveries(2))
        .await
        .unwrap();
    let mut deliveries = b.subscribe().unwrap();
    let c = client().await;
    c.execute(
        &format!(
            "INSERT INTO {table} (event_id, event_type, body) VALUES ('x', 'Bad', '{{not json')"
        ),
        &[],
    )
    .await
    .unwrap();
    b.send(&ping(1)).await.unwrap();
    // The good event still arrives; the bad one never does.
    let d = deliveries.recv().await.unwrap();
    assert_eq!(n_of(d.event()), 1);
    d.ack();
    let dead = loop {
        let dead = b.dead_letters().await.unwrap();
        if !dead.is_empty() {
            break dead;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!(dead[0].event_id, "x");
    assert!(dead[0].error.as_deref().unwrap().starts_with("DecodeError"));
    assert_eq!(b.stats().undecodable, 2);
    b.close().await;
}

#[tokio::test]
async fn plain_table_is_refused_as_durable() {
    let table = unique("dq_plain");
    let url = shared_url(&table);
    let plain = PgBridge::plain(&url, None).await.unwrap();
    let err = PgBridge::durable(&url, opts("g")).await.unwrap_err();
    assert!(
        matches!(err, bubus_postgres::PgError::NotDurableTable(ref t) if *t == table),
        "{err}"
    );
    assert!(matches!(
        plain.publish_in(&client().await, &ping(1)).await,
        Err(bubus_postgres::PgError::NotDurable)
    ));
    plain.close().await;
}
