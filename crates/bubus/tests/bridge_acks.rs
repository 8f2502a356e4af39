//! The bridge's acknowledgements: `completed` counts acked deliveries, a nack says why, and a
//! receiving bus with no room is backpressure — never a dead letter.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bubus::bridge::{
    Acker, BoxFuture, Bridge, DeliveryStream, MemoryMedium, MemoryTransport, Transport,
    TransportError,
};
use bubus::{AnyEvent, DynEvent, EventBus, HandlerError};
use futures_util::StreamExt;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

/// A durable memory endpoint whose acks wait for a permit of `gate` (an engine that is slow to
/// confirm an ack: a remote commit, a double ack), announcing on `started` when one begins.
#[derive(Debug)]
struct SlowAcks {
    inner: MemoryTransport,
    gate: Arc<Semaphore>,
    started: mpsc::UnboundedSender<()>,
}

struct SlowAcker {
    inner: Box<dyn Acker>,
    gate: Arc<Semaphore>,
    started: mpsc::UnboundedSender<()>,
}

impl Acker for SlowAcker {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async move {
            let _ = self.started.send(());
            let _permit = self.gate.acquire().await;
            self.inner.ack().await
        })
    }

    fn nack(
        self: Box<Self>,
        delay: Option<Duration>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        self.inner.nack(delay, reason)
    }
}

impl Transport for SlowAcks {
    fn kind(&self) -> &str {
        self.inner.kind()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn capabilities(&self) -> bubus::bridge::Capabilities {
        self.inner.capabilities()
    }

    fn send<'a>(
        &'a self,
        message: &'a bubus::bridge::Message,
    ) -> BoxFuture<'a, Result<(), TransportError>> {
        self.inner.send(message)
    }

    fn listen(&self) -> BoxFuture<'_, Result<DeliveryStream, TransportError>> {
        let (gate, started) = (Arc::clone(&self.gate), self.started.clone());
        Box::pin(async move {
            let stream = self.inner.listen().await?;
            let wrapped: DeliveryStream = Box::pin(stream.map(move |item| {
                item.map(|mut delivery| match delivery.take_acker() {
                    Some(inner) => delivery.with_acker(SlowAcker {
                        inner,
                        gate: Arc::clone(&gate),
                        started: started.clone(),
                    }),
                    None => delivery,
                })
            }));
            Ok(wrapped)
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        self.inner.close()
    }
}

#[tokio::test]
async fn completed_counts_a_delivery_once_its_ack_is_done() {
    let medium = MemoryMedium::durable();
    let gate = Arc::new(Semaphore::new(0));
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let receiver = Bridge::new(SlowAcks {
        inner: medium.transport_in_group("receivers"),
        gate: Arc::clone(&gate),
        started: started_tx,
    });
    let bus = EventBus::new("Receiver");
    bus.on_pattern("Ping", |_: AnyEvent| ());
    receiver.attach(&bus);
    receiver.start().await.unwrap();
    let sender = Bridge::new(medium.transport());

    sender
        .send(&bubus::EventHandle::new(DynEvent::new("Ping", json!({"n": 1})).unwrap()).to_any())
        .await
        .unwrap();
    // The event completed on the bus and its ack began, but the engine has not confirmed it.
    started.recv().await.unwrap();
    assert_eq!(receiver.metrics().completed, 0, "not acked yet");
    assert_eq!(medium.pending(), 1, "the engine still holds it");

    gate.add_permits(1);
    receiver.wait_metrics(|m| m.completed >= 1).await;
    assert_eq!(medium.pending(), 0, "completed means acked");
    sender.close().await.unwrap();
    receiver.close().await.unwrap();
}

#[tokio::test]
async fn a_nack_carries_the_handler_error_to_the_engine() {
    let medium = MemoryMedium::durable();
    let receiver = Bridge::builder(medium.transport_in_group("receivers"))
        .max_deliveries(2)
        .build();
    let bus = EventBus::new("Receiver");
    bus.on_pattern("Write", |e: AnyEvent| -> Result<(), HandlerError> {
        Err(HandlerError::new(
            "OSError",
            format!("disk full (attempt at {})", e.event_id()),
        ))
    });
    receiver.attach(&bus);
    receiver.start().await.unwrap();
    let sender = Bridge::new(medium.transport());
    sender
        .send(&bubus::EventHandle::new(DynEvent::new("Write", json!({})).unwrap()).to_any())
        .await
        .unwrap();
    receiver.wait_metrics(|m| m.dead_lettered >= 1).await;
    let metrics = receiver.metrics();
    assert_eq!((metrics.nacked, metrics.dead_lettered), (1, 1));
    let dead = medium.dead_letters();
    assert_eq!(dead.len(), 1);
    assert!(dead[0].reason.contains("disk full"), "{}", dead[0].reason);
    // The first failure's reason reached the engine with the nack.
    let last = dead[0].last_error.as_deref().expect("the nack's reason");
    assert!(
        last.contains("OSError") && last.contains("disk full"),
        "{last}"
    );
    sender.close().await.unwrap();
    receiver.close().await.unwrap();
}

/// The receiving bus keeps 2 unfinished events at most and its handler is held: the events
/// behind them are waited for (and after `room_timeout`, handed back), never dead-lettered;
/// once the handler runs again, every event is handled exactly once.
#[tokio::test(start_paused = true)]
async fn a_receiving_bus_without_room_is_backpressure_not_a_dead_letter() {
    const N: usize = 10;
    let medium = MemoryMedium::durable();
    let receiver = Bridge::builder(medium.transport_in_group("receivers"))
        .max_deliveries(2)
        .room_timeout(Some(Duration::from_secs(5)))
        .build();
    let bus = EventBus::builder("Receiver")
        .max_history_size(Some(2))
        .event_timeout(None)
        .build();
    let gate = Arc::new(Semaphore::new(0));
    let handled = Arc::new(Mutex::new(Vec::new()));
    {
        let (gate, handled) = (Arc::clone(&gate), Arc::clone(&handled));
        bus.on_pattern("Job", move |e: AnyEvent| {
            let (gate, handled) = (Arc::clone(&gate), Arc::clone(&handled));
            async move {
                let _permit = gate.acquire().await;
                handled
                    .lock()
                    .push(e.to_json()["n"].as_u64().unwrap_or(u64::MAX));
            }
        });
    }
    receiver.attach(&bus);
    receiver.start().await.unwrap();
    let sender = Bridge::new(medium.transport());
    for n in 0..N {
        let job = DynEvent::new("Job", json!({ "n": n })).unwrap();
        sender
            .send(&bubus::EventHandle::new(job).to_any())
            .await
            .unwrap();
    }
    // The bus stays full for longer than the room timeout, several times over: the waiting
    // events are handed back again and again, and none of them is given up on.
    receiver
        .wait_metrics(|m| m.nacked + m.dead_lettered >= N as u64)
        .await;
    assert_eq!(
        receiver.metrics().dead_lettered,
        0,
        "{:?}",
        receiver.metrics()
    );
    assert!(medium.dead_letters().is_empty());

    gate.add_permits(N * 10);
    receiver.wait_metrics(|m| m.completed >= N as u64).await;
    let handled = handled.lock().clone();
    assert_eq!(handled.len(), N, "each handled once: {handled:?}");
    assert_eq!(handled.iter().collect::<HashSet<_>>().len(), N);
    assert!(medium.dead_letters().is_empty());
    sender.close().await.unwrap();
    receiver.close().await.unwrap();
}

/// A sender that listens in the competing group it sends to: the group is one consumer, and
/// the sender is a member that already handled its event. So when its own listener is the
/// member the engine hands the event to, it acks it as an echo (counted in `loops`, not run
/// again, not redelivered to the others); when another member gets it, that member runs it.
/// Every event ends either way: nothing is lost from the group, dead-lettered, or run twice by
/// one member. (For every event to reach the other processes, give the sender a group of its
/// own — one group per process broadcasts — or send without listening in that group.)
#[tokio::test]
async fn a_sender_in_its_own_competing_group_acks_its_echo_as_handled_by_the_group() {
    const K: u64 = 50;
    let medium = MemoryMedium::durable();
    let (a, b) = (EventBus::new("A"), EventBus::new("B"));
    let ran = |bus: &EventBus| {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        bus.on_pattern("Job", move |e: AnyEvent| s.lock().push(e.event_id()));
        seen
    };
    let (ran_a, ran_b) = (ran(&a), ran(&b));
    let bridge_a = Bridge::new(medium.transport_in_group("workers"));
    let bridge_b = Bridge::new(medium.transport_in_group("workers"));
    bridge_a.attach(&a);
    bridge_b.attach(&b);
    bridge_a.start().await.unwrap();
    bridge_b.start().await.unwrap();

    for n in 0..K {
        a.dispatch(DynEvent::new("Job", json!({ "n": n })).unwrap())
            .unwrap()
            .await
            .unwrap();
    }
    // Settled when every event was either acked by the sender as its echo or completed on B.
    loop {
        let (loops, completed) = (bridge_a.metrics().loops, bridge_b.metrics().completed);
        if loops + completed >= K {
            break;
        }
        tokio::select! {
            () = bridge_a.wait_metrics(move |m| m.loops > loops) => {}
            () = bridge_b.wait_metrics(move |m| m.completed > completed) => {}
        }
    }
    let (ma, mb) = (bridge_a.metrics(), bridge_b.metrics());
    assert_eq!(
        ma.loops + mb.completed,
        K,
        "each event ended once: {ma:?} {mb:?}"
    );
    assert_eq!((ma.dispatched, ma.nacked, mb.nacked), (0, 0, 0));
    assert_eq!(
        ran_a.lock().len() as u64,
        K,
        "the sender ran each of its events once"
    );
    let on_b: HashSet<_> = ran_b.lock().iter().copied().collect();
    assert_eq!(
        on_b.len(),
        ran_b.lock().len(),
        "the other member ran none twice"
    );
    assert_eq!(on_b.len() as u64, mb.completed);
    assert_eq!(medium.pending(), 0, "nothing left in the group");
    assert!(medium.dead_letters().is_empty());
    bridge_a.close().await.unwrap();
    bridge_b.close().await.unwrap();
}
