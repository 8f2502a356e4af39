//! Durable mode on the shared NATS server (127.0.0.1:4222): poison events land in dead letters
//! and replay from there, sends are de-duplicated by `Nats-Msg-Id`, and durable consumers give competing consumers or broadcast.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bubus::AnyEvent;
use bubus::bridge::{Bridge, Message};
use bubus_nats::{NatsBuilder, NatsTransport};
use bubus_test_support::durable::{self, Member, any_metrics_reach, metrics_reach, ping};

const SERVER: &str = "nats://127.0.0.1:4222";

fn channel() -> String {
    format!("durable_{}", uuid::Uuid::new_v4().simple())
}

async fn transport(subject: &str, group: &str) -> NatsTransport {
    transport_with(subject, group, |b| b).await
}

async fn transport_with(
    subject: &str,
    group: &str,
    more: impl FnOnce(NatsBuilder) -> NatsBuilder,
) -> NatsTransport {
    more(
        NatsTransport::builder(SERVER, subject)
            .jetstream()
            .group(group)
            .lease(Duration::from_secs(2)),
    )
    .build()
    .await
    .expect("transport")
}

async fn stream_messages(t: &NatsTransport) -> u64 {
    let js = async_nats::jetstream::new(async_nats::connect(SERVER).await.expect("connect"));
    let stream = js.get_stream(t.stream_name()).await.expect("stream");
    stream.get_info().await.expect("info").state.messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_lands_in_dead_letters_and_replays() {
    let channel = channel();
    let receiver = transport(&channel, "workers").await;
    let healed = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(AtomicUsize::new(0));
    let bridge = Bridge::builder(receiver.clone())
        .dedup(Arc::new(receiver.dedup_store()))
        .max_deliveries(3)
        .build();
    let (h, r) = (Arc::clone(&healed), Arc::clone(&runs));
    bridge.on("DurablePing", move |_e: AnyEvent| {
        r.fetch_add(1, Ordering::SeqCst);
        if h.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(std::io::Error::other("poison"))
        }
    });
    bridge.start().await.expect("start");
    let sender = Bridge::new(transport(&channel, "senders").await);
    let event = ping(1);
    sender.send(&event).await.expect("send");
    metrics_reach("the dead letter", &bridge, |m| m.dead_lettered == 1).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        3,
        "delivered max_deliveries times"
    );

    let letters = receiver.dead_letters(10).await.expect("list");
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter.event_id, event.event_id().to_string());
    assert_eq!(letter.event_type, "DurablePing");
    assert_eq!(letter.deliveries, 3);
    assert_eq!(letter.group, "workers");
    assert!(letter.reason.contains("poison"), "{}", letter.reason);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&letter.text).expect("json")["n"],
        1
    );

    // Something that is not an event at all is dead-lettered at once.
    let client = async_nats::connect(SERVER).await.expect("connect");
    client
        .publish(channel.clone(), "{not json".into())
        .await
        .expect("publish");
    client.flush().await.expect("flush");
    metrics_reach("the bad message dead-lettered", &bridge, |m| {
        m.dead_lettered == 2
    })
    .await;

    healed.store(true, Ordering::SeqCst);
    assert!(
        receiver
            .replay_dead_letter(letter.seq)
            .await
            .expect("replay")
    );
    metrics_reach("the replayed event handled", &bridge, |m| m.completed == 1).await;
    assert_eq!(runs.load(Ordering::SeqCst), 4);
    let left = receiver.dead_letters(10).await.expect("list");
    assert_eq!(left.len(), 1, "only the bad message is left: {left:?}");
    assert!(
        !receiver
            .replay_dead_letter(letter.seq)
            .await
            .expect("replay"),
        "gone"
    );
    bridge.close().await.expect("close");
    sender.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_event_is_added_once() {
    let channel = channel();
    let t = transport(&channel, "g").await;
    let message = Message::event(&ping(1));
    for _ in 0..3 {
        bubus::bridge::Transport::send(&t, &message)
            .await
            .expect("send");
    }
    bubus::bridge::Transport::send(&t, &Message::event(&ping(2)))
        .await
        .expect("send");
    assert_eq!(stream_messages(&t).await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_group_shares_the_events_another_group_gets_them_all() {
    let channel = channel();
    durable::one_group_shares_the_events_another_group_gets_them_all(
        async |group: &'static str, member: Member| {
            // Few messages held per member (see the helper): a small read batch, few in flight.
            let t = transport_with(&channel, group, |b| b.batch(8)).await;
            let bridge = Bridge::builder(t.clone())
                .dedup(Arc::new(t.dedup_store()))
                .max_in_flight(8)
                .build();
            bridge.on("DurablePing", move |_e: AnyEvent| {
                let member = member.clone();
                async move { member.handle().await }
            });
            bridge
        },
        async { Bridge::new(transport(&channel, "senders").await) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_keeps_its_delivery_with_progress_acks() {
    // Two members with a 2 s ack wait; the event's handler takes 3.5 s. Without progress acks
    // the server would deliver it again and the other member would run it a second time. (A 1 s
    // ack wait left a loaded machine only ~0.7 s of scheduling delay before a progress ack came
    // too late.)
    let channel = channel();
    let runs = Arc::new(AtomicUsize::new(0));
    let mut bridges = Vec::new();
    for _ in 0..2 {
        let t = NatsTransport::builder(SERVER, &channel)
            .jetstream()
            .group("slow")
            .lease(Duration::from_secs(2))
            .build()
            .await
            .expect("transport");
        let bridge = Bridge::builder(t.clone())
            .dedup(Arc::new(t.dedup_store()))
            .build();
        let r = Arc::clone(&runs);
        bridge.on("DurablePing", move |_e: AnyEvent| {
            let r = Arc::clone(&r);
            async move {
                r.fetch_add(1, Ordering::SeqCst);
                // The work itself.
                tokio::time::sleep(Duration::from_millis(3500)).await;
            }
        });
        bridge.start().await.expect("start");
        bridges.push(bridge);
    }
    let sender = Bridge::new(transport(&channel, "senders").await);
    sender.send(&ping(1)).await.expect("send");
    any_metrics_reach("the slow event completed", &bridges, |m| m.completed >= 1).await;
    assert_eq!(
        bridges.iter().map(|b| b.metrics().completed).sum::<u64>(),
        1
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    for b in bridges {
        assert_eq!(b.metrics().duplicates, 0);
        b.close().await.expect("close");
    }
}
