//! The durable mode on the shared server, through the bridge: delivery and ack, groups
//! (competing and broadcast), the transactional outbox, failures into dead letters and replay.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus::EventBus;
use bubus::bridge::Bridge;
use bubus_postgres::{DurableOptions, GroupStart, PgTransport};
use bubus_test_support::conformance::Tally;
use support::*;

fn opts(group: &str) -> DurableOptions {
    DurableOptions::new(group)
        .retry_delay(Duration::ZERO)
        .poll_interval(Duration::from_millis(200))
}

/// A bus with a `Ping` tally, attached to a started bridge over `transport`.
async fn receiver(transport: &PgTransport, name: &str) -> (EventBus, Tally, Bridge) {
    let bus = EventBus::builder(name).max_history_size(None).build();
    let tally = Tally::new();
    bus.on_pattern("Ping", tally.handler());
    let bridge = transport.bridge().build();
    bridge.attach(&bus);
    bridge.start().await.unwrap();
    (bus, tally, bridge)
}

/// Polls the group's count of unacknowledged deliveries until it is `n`.
async fn wait_pending(t: &PgTransport, n: i64) {
    while t.pending().await.unwrap() != n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the group's dead letters until there is one (the bridge counts a dead letter just
/// before it is written).
async fn wait_dead(t: &PgTransport) -> Vec<bubus_postgres::DeadLetter> {
    loop {
        let dead = t.dead_letters().await.unwrap();
        if !dead.is_empty() {
            return dead;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The `n` of a `Ping` seen by a handler.
fn h_count(e: &bubus::AnyEvent) -> u64 {
    e.payload_json().unwrap()["n"].as_u64().unwrap()
}

/// Waits until two members together handled `n` events.
async fn wait_both(a: &Tally, b: &Tally, n: usize) {
    while a.count() + b.count() < n {
        let (ca, cb) = (a.count(), b.count());
        tokio::select! {
            () = a.wait_for(ca + 1) => {}
            () = b.wait_for(cb + 1) => {}
        }
    }
}

fn ns(tally: &Tally) -> Vec<u64> {
    tally
        .events()
        .iter()
        .map(|e| e["n"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_once_in_order_then_acked() {
    let url = shared_url(&unique("dq_once"));
    let consumer = PgTransport::durable(&url, opts("g")).await.unwrap();
    let producer = PgTransport::durable(&url, opts("g")).await.unwrap();
    for n in 0..200 {
        producer.send_event(&ping(n)).await.unwrap();
    }
    let (_bus, tally, bridge) = receiver(&consumer, "Once").await;
    tally.wait_for(200).await;
    // One publisher: its order is kept.
    assert_eq!(ns(&tally), (0..200).collect::<Vec<_>>());
    // Every delivery is acknowledged (the bridge counts `completed` just before it acks).
    bridge.wait_metrics(|m| m.completed >= 200).await;
    wait_pending(&consumer, 0).await;
    // A group created later starts at the beginning; one created with `New` does not.
    let late = PgTransport::durable(&url, opts("late")).await.unwrap();
    assert_eq!(late.pending().await.unwrap(), 200);
    let fresh = PgTransport::durable(&url, opts("fresh").start(GroupStart::New))
        .await
        .unwrap();
    assert_eq!(fresh.pending().await.unwrap(), 0);
    producer.send_event(&ping(999)).await.unwrap();
    assert_eq!(fresh.pending().await.unwrap(), 1);
    assert_eq!(late.pending().await.unwrap(), 201);
    tally.wait_for(201).await;
    bridge.close().await.unwrap();
    assert_eq!(tally.count(), 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_twice_runs_the_handlers_once() {
    let url = shared_url(&unique("dq_dup"));
    let t = PgTransport::durable(&url, opts("g")).await.unwrap();
    let e = ping(1);
    // At-least-once on the wire: a producer publishing again (the outbox after a send); a
    // plain send of an id already published is skipped.
    t.send_event(&e).await.unwrap();
    t.send_event(&e).await.unwrap();
    assert_eq!(t.pending().await.unwrap(), 1);
    t.publish_in(&client().await, &e).await.unwrap();
    assert_eq!(t.pending().await.unwrap(), 2);
    let (_bus, tally, bridge) = receiver(&t, "Dup").await;
    bridge
        .wait_metrics(|m| m.completed + m.duplicates >= 2)
        .await;
    assert_eq!(tally.count(), 1);
    assert_eq!(bridge.metrics().duplicates, 1);
    wait_pending(&t, 0).await;
    bridge.close().await.unwrap();

    // Another process of the group (a fresh dedup window) gets the id again later: the
    // persisted dedup table still knows it.
    let again = PgTransport::durable(&url, opts("g")).await.unwrap();
    // (A send skips an id already published; `publish_in` writes what it is given.)
    again.publish_in(&client().await, &e).await.unwrap();
    let (_bus, tally, bridge) = receiver(&again, "Dup2").await;
    bridge.wait_metrics(|m| m.duplicates >= 1).await;
    assert_eq!(tally.count(), 0);
    bridge.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbox_publishes_with_the_transaction() {
    let url = shared_url(&unique("dq_outbox"));
    let t = PgTransport::durable(&url, opts("g")).await.unwrap();
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
    t.publish_in(&tx, &ping(1)).await.unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(t.pending().await.unwrap(), 0);

    // Committed: both, and the consumer is woken by the commit.
    let (_bus, tally, bridge) = receiver(&t, "Outbox").await;
    let tx = c.transaction().await.unwrap();
    tx.execute(&format!("INSERT INTO {side} VALUES (2)"), &[])
        .await
        .unwrap();
    t.publish_in(&tx, &ping(2)).await.unwrap();
    tx.commit().await.unwrap();
    tally.wait_for(1).await;
    assert_eq!(ns(&tally), [2]);
    c.batch_execute(&format!("DROP TABLE {side}"))
        .await
        .unwrap();
    bridge.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_members_split_broadcast_groups_all() {
    let url = shared_url(&unique("dq_groups"));
    let a = PgTransport::durable(&url, opts("workers").batch(8))
        .await
        .unwrap();
    let b = PgTransport::durable(&url, opts("workers").batch(8))
        .await
        .unwrap();
    let audit = PgTransport::durable(&url, opts("audit")).await.unwrap();
    let (_ba, ta, bridge_a) = receiver(&a, "WorkerA").await;
    let (_bb, tb, bridge_b) = receiver(&b, "WorkerB").await;
    let (_bc, tc, bridge_c) = receiver(&audit, "Audit").await;
    for n in 0..300 {
        a.send_event(&ping(n)).await.unwrap();
    }
    tc.wait_for(300).await;
    let mut all: Vec<u64> = ns(&tc);
    all.sort_unstable();
    assert_eq!(
        all,
        (0..300).collect::<Vec<_>>(),
        "the broadcast group got every event once"
    );
    wait_both(&ta, &tb, 300).await;
    let from_a: HashSet<u64> = ns(&ta).into_iter().collect();
    let from_b: HashSet<u64> = ns(&tb).into_iter().collect();
    assert!(from_a.is_disjoint(&from_b), "an event reached both members");
    assert_eq!(from_a.len() + from_b.len(), 300);
    assert_eq!(ta.count() + tb.count(), 300);
    for x in [bridge_a, bridge_b, bridge_c] {
        x.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_added_later_takes_load() {
    let url = shared_url(&unique("dq_scale"));
    let a = PgTransport::durable(&url, opts("workers").batch(4).max_in_flight(4))
        .await
        .unwrap();
    let bus_a = EventBus::builder("SlowA").max_history_size(None).build();
    let ta = Tally::new();
    let h = ta.handler();
    // B's tally exists before B joins: A, after its first event, cannot go on until B has
    // handled one — the work can only finish if the member added later takes some of it.
    let tb = Tally::new();
    let b_handled = tb.clone();
    bus_a.on_pattern("Ping", move |e: bubus::AnyEvent| {
        let (h, b_handled) = (h.clone(), b_handled.clone());
        async move {
            if b_handled.count() == 0 && h_count(&e) > 0 {
                b_handled.wait_for(1).await;
            }
            h(e);
        }
    });
    let bridge_a = a.bridge().build();
    bridge_a.attach(&bus_a);
    bridge_a.start().await.unwrap();
    for n in 0..200 {
        a.send_event(&ping(n)).await.unwrap();
    }
    ta.wait_for(1).await;
    // Joins while A is busy, without restarting A.
    let b = PgTransport::durable(&url, opts("workers")).await.unwrap();
    let bus_b = EventBus::builder("FastB").max_history_size(None).build();
    bus_b.on_pattern("Ping", tb.handler());
    let bridge_b = b.bridge().build();
    bridge_b.attach(&bus_b);
    bridge_b.start().await.unwrap();
    wait_both(&ta, &tb, 200).await;
    assert!(tb.count() > 0, "the new member took some of the work");
    assert_eq!(ta.count() + tb.count(), 200);
    bridge_a.close().await.unwrap();
    bridge_b.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_go_to_dead_letters_and_replay() {
    let url = shared_url(&unique("dq_dead"));
    let t = PgTransport::durable(&url, opts("g").max_deliveries(3))
        .await
        .unwrap();
    let bus = EventBus::new("Poisoned");
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    // Fails its first 3 runs (so the event is dead-lettered), then works (after replay).
    bus.on_pattern("Ping", move |_e: bubus::AnyEvent| {
        if r.fetch_add(1, Ordering::SeqCst) < 3 {
            Err(std::io::Error::other("poison"))
        } else {
            Ok(())
        }
    });
    let bridge = t.bridge().build();
    bridge.attach(&bus);
    bridge.start().await.unwrap();
    let poison = ping(7);
    t.send_event(&poison).await.unwrap();
    bridge.wait_metrics(|m| m.dead_lettered >= 1).await;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let dead = wait_dead(&t).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event_id, poison.event_id().to_string());
    assert_eq!(dead[0].attempts, 3);
    assert!(
        dead[0].error.as_deref().unwrap().contains("poison"),
        "{dead:?}"
    );
    assert_eq!(t.pending().await.unwrap(), 0);
    // The same list without a transport (what the CLI shows).
    let listed = bubus_postgres::list_dead_letters(&url, None).await.unwrap();
    assert_eq!(listed, dead);

    assert_eq!(t.replay_dead_letters(None).await.unwrap(), 1);
    assert!(t.dead_letters().await.unwrap().is_empty());
    bridge.wait_metrics(|m| m.completed >= 1).await;
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    bridge.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_rows_are_dead_lettered() {
    let url = shared_url(&unique("dq_bad"));
    let t = PgTransport::durable(&url, opts("g")).await.unwrap();
    let (_bus, tally, bridge) = receiver(&t, "Bad").await;
    t.inject_raw("{not json").await.unwrap();
    t.send_event(&ping(1)).await.unwrap();
    // The good event still arrives; the bad one goes to the dead letters.
    tally.wait_for(1).await;
    bridge.wait_metrics(|m| m.dead_lettered >= 1).await;
    let dead = wait_dead(&t).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body, "{not json");
    assert_eq!(bridge.metrics().invalid, 1);
    bridge.close().await.unwrap();
}

#[tokio::test]
async fn plain_table_is_refused_as_durable() {
    let table = unique("dq_plain");
    let url = shared_url(&table);
    let plain = PgTransport::plain(&url, None).await.unwrap();
    let err = PgTransport::durable(&url, opts("g")).await.unwrap_err();
    assert!(
        matches!(err, bubus_postgres::PgError::NotDurableTable(ref t) if *t == table),
        "{err}"
    );
    assert!(matches!(
        plain.publish_in(&client().await, &ping(1)).await,
        Err(bubus_postgres::PgError::NotDurable)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_keeps_its_lease() {
    let url = shared_url(&unique("dq_lease"));
    // 2 s: a 1 s lease left a loaded machine only ~0.7 s of scheduling delay before a renewal
    // came too late.
    let lease = opts("workers").lease(Duration::from_secs(2));
    let a = PgTransport::durable(&url, lease.clone()).await.unwrap();
    let bus_a = EventBus::new("SlowA");
    let ta = Tally::new();
    let h = ta.handler();
    // Runs for two and a half leases: the lease is renewed meanwhile, so no other member gets it.
    bus_a.on_pattern("Ping", move |e: bubus::AnyEvent| {
        let h = h.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            h(e);
        }
    });
    let bridge_a = a.bridge().build();
    bridge_a.attach(&bus_a);
    bridge_a.start().await.unwrap();
    a.send_event(&ping(1)).await.unwrap();
    let b = PgTransport::durable(&url, lease).await.unwrap();
    let (_bus_b, tb, bridge_b) = receiver(&b, "IdleB").await;
    ta.wait_for(1).await;
    wait_pending(&a, 0).await;
    assert_eq!(tb.count(), 0, "the event was taken from a live member");
    let dedup_rows = client()
        .await
        .query_one(
            &format!(
                "SELECT count(*) FROM {}_dedup WHERE done_at IS NOT NULL",
                url.rsplit('/').next().unwrap()
            ),
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(dedup_rows, 1);
    bridge_a.close().await.unwrap();
    bridge_b.close().await.unwrap();
}
