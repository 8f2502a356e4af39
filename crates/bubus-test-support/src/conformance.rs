//! The conformance suite every bridge transport runs against itself: the contract of
//! [`bubus::bridge::Transport`] and the bridge policy over it, with capability flags deciding
//! which checks apply (an engine without acks is not asked to redeliver).
//!
//! A transport crate implements [`TransportFactory`] for its engine and expands
//! [`transport_conformance!`](crate::transport_conformance) in a test file:
//!
//! ```ignore
//! struct Factory;
//! impl bubus_test_support::conformance::TransportFactory for Factory { /* … */ }
//! bubus_test_support::transport_conformance!(Factory);
//! ```
//!
//! Every check has a bounded wait ([`WAIT`]) so a broken transport fails instead of hanging.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus::bridge::{Bridge, Transport};
use bubus::{AnyEvent, DynEvent, EventBus};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::watch;

/// How long a check waits for what it expects before failing.
pub const WAIT: Duration = Duration::from_secs(30);

/// Makes the transports under test: fresh media (a file, a socket path, a stream name), and
/// endpoints on them.
pub trait TransportFactory: Send + Sync {
    /// The transport.
    type Transport: Transport + Clone;
    /// What endpoints share (a path, a URL, a channel name).
    type Medium: Send + Sync;

    /// A fresh medium no other check uses.
    fn medium(&self) -> impl Future<Output = Self::Medium> + Send;

    /// A new endpoint on `medium` (as a second process would open it).
    fn endpoint(&self, medium: &Self::Medium) -> impl Future<Output = Self::Transport> + Send;

    /// An endpoint that is the same consumer each time it is opened with `name` (a cursor file,
    /// a consumer group, a durable consumer): a restarted process. Defaults to a new endpoint.
    fn endpoint_named(
        &self,
        medium: &Self::Medium,
        name: &str,
    ) -> impl Future<Output = Self::Transport> + Send {
        let _ = name;
        self.endpoint(medium)
    }

    /// Puts raw `text` on the medium as one message, bypassing the transport's sender (to feed
    /// bad input). Returns `false` if the medium cannot carry arbitrary text (then the bad
    /// input check is skipped).
    fn inject(&self, medium: &Self::Medium, text: &str) -> impl Future<Output = bool> + Send {
        let _ = (medium, text);
        async { false }
    }
}

/// Counts handler runs and lets a test await a count.
#[derive(Clone, Debug)]
pub struct Tally {
    tx: Arc<watch::Sender<usize>>,
    seen: Arc<Mutex<Vec<Value>>>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Tally {
    /// Zero.
    pub fn new() -> Self {
        Tally {
            tx: Arc::new(watch::channel(0).0),
            seen: Arc::default(),
        }
    }

    /// Records one run, with the event's JSON.
    pub fn record(&self, event: &AnyEvent) {
        self.seen.lock().push(event.to_json());
        self.tx.send_modify(|n| *n += 1);
    }

    /// How many so far.
    pub fn count(&self) -> usize {
        *self.tx.borrow()
    }

    /// The JSON of every recorded event, in order.
    pub fn events(&self) -> Vec<Value> {
        self.seen.lock().clone()
    }

    /// Waits until at least `n` were recorded; panics after [`WAIT`].
    #[track_caller]
    pub fn wait_for(&self, n: usize) -> impl Future<Output = ()> + Send + '_ {
        let caller = std::panic::Location::caller();
        async move {
            let mut rx = self.tx.subscribe();
            let reached = tokio::time::timeout(WAIT, rx.wait_for(|c| *c >= n)).await;
            assert!(
                matches!(reached, Ok(Ok(_))),
                "{caller}: expected {n} handled events, got {}",
                self.count()
            );
        }
    }

    /// A `"*"`-style handler recording into this tally.
    pub fn handler(&self) -> impl Fn(AnyEvent) + Send + Sync + Clone + 'static {
        let tally = self.clone();
        move |event: AnyEvent| tally.record(&event)
    }
}

fn ping(n: usize) -> DynEvent {
    DynEvent::new(
        "ConformancePing",
        json!({"n": n, "label": format!("ping {n}")}),
    )
    .expect("a valid dynamic event")
}

async fn wait_metric(
    bridge: &Bridge,
    what: &str,
    pred: impl Fn(&bubus::bridge::BridgeMetrics) -> bool,
) {
    let waited = tokio::time::timeout(WAIT, bridge.wait_metrics(pred)).await;
    assert!(
        waited.is_ok(),
        "{}: {what} never happened; metrics {:?}",
        bridge.name(),
        bridge.metrics()
    );
}

/// A bus on each side, attached; returns (sender bus, receiver bus, tally of the receiver's
/// `ConformancePing` handler, sender bridge, receiver bridge).
async fn pair<F: TransportFactory>(
    factory: &F,
    medium: &F::Medium,
    results_back: bool,
) -> (EventBus, EventBus, Tally, Bridge, Bridge) {
    let a = EventBus::builder("ConformanceA")
        .max_history_size(None)
        .build();
    let b = EventBus::builder("ConformanceB")
        .max_history_size(None)
        .build();
    let tally = Tally::new();
    let h = tally.handler();
    b.on_pattern("ConformancePing", move |e: AnyEvent| {
        h(e.clone());
        json!({"handled_by": "B", "n": e.to_json()["n"]})
    });
    let mut ba = Bridge::builder(factory.endpoint(medium).await);
    let mut bb = Bridge::builder(factory.endpoint(medium).await);
    if results_back {
        ba = ba.results_back();
        bb = bb.results_back();
    }
    let (ba, bb) = (ba.build(), bb.build());
    ba.attach(&a);
    bb.attach(&b);
    bb.start().await.expect("receiver starts");
    if !ba.transport().capabilities().single_listener {
        ba.start().await.expect("sender starts");
    }
    (a, b, tally, ba, bb)
}

/// One event goes from one endpoint's sender to the other's listener, with its lineage: the
/// receiver keeps `event_id`, `event_parent_id`, the sender's path and the payload, and the
/// receiving bus appends itself to `event_path`.
pub async fn delivers_with_lineage<F: TransportFactory>(factory: &F) {
    let medium = factory.medium().await;
    let (a, b, tally, ba, bb) = pair(factory, &medium, false).await;
    let parent = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
    let sent = a.dispatch(ping(1)).expect("dispatch");
    sent.set_event_parent_id(Some(parent));
    tally.wait_for(1).await;
    let got = &tally.events()[0];
    assert_eq!(got["event_id"], sent.event_id().to_string());
    assert_eq!(got["event_parent_id"], parent.to_string());
    assert_eq!(got["n"], 1);
    assert_eq!(got["label"], "ping 1");
    let path: Vec<String> = serde_json::from_value(got["event_path"].clone()).expect("a path");
    assert_eq!(path.first().map(String::as_str), Some(a.label()));
    assert_eq!(path.last().map(String::as_str), Some(b.label()));
    assert!(path.iter().any(|p| p.starts_with(bb.name())), "{path:?}");
    ba.close().await.expect("close");
    bb.close().await.expect("close");
}

/// Many events all arrive (in order where the transport orders), and closing the sender right
/// after sending loses none of them (close flushes).
pub async fn delivers_all_and_close_flushes<F: TransportFactory>(factory: &F) {
    const N: usize = 300;
    let medium = factory.medium().await;
    let (a, _b, tally, ba, bb) = pair(factory, &medium, false).await;
    let ordered = ba.transport().capabilities().ordered;
    let mut handles = Vec::new();
    for n in 0..N {
        handles.push(a.dispatch(ping(n)).expect("dispatch"));
    }
    for h in handles {
        h.await.expect("sent");
    }
    ba.close().await.expect("close flushes");
    tally.wait_for(N).await;
    let ns: Vec<u64> = tally
        .events()
        .iter()
        .map(|e| e["n"].as_u64().unwrap_or(u64::MAX))
        .collect();
    let mut sorted = ns.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), N, "every event once");
    if ordered {
        assert!(ns.windows(2).all(|w| w[0] < w[1]), "in order: {ns:?}");
    }
    bb.close().await.expect("close");
}

/// Two buses wired both ways over one medium: each event is handled once per bus and the
/// echo ends (loop prevention), on media where a listener also gets its own messages too.
pub async fn two_way_wiring_handles_each_event_once_per_bus<F: TransportFactory>(factory: &F) {
    let medium = factory.medium().await;
    let a = EventBus::new("EchoA");
    let b = EventBus::new("EchoB");
    let (ta, tb) = (Tally::new(), Tally::new());
    a.on_pattern("ConformancePing", ta.handler());
    b.on_pattern("ConformancePing", tb.handler());
    let ba = Bridge::new(factory.endpoint(&medium).await);
    let bb = Bridge::new(factory.endpoint(&medium).await);
    // Where only one endpoint can listen, B listens and A only sends.
    let single = ba.transport().capabilities().single_listener;
    ba.attach(&a);
    bb.attach(&b);
    bb.start().await.expect("start");
    if !single {
        ba.start().await.expect("start");
    }
    a.dispatch(ping(1)).expect("dispatch").await.expect("done");
    b.dispatch(ping(2)).expect("dispatch").await.expect("done");
    let a_gets = if single { 1 } else { 2 };
    ta.wait_for(a_gets).await;
    tb.wait_for(2).await;
    // Let any echo arrive: a further round-trip of one more event through both.
    a.dispatch(ping(3)).expect("dispatch");
    ta.wait_for(a_gets + 1).await;
    tb.wait_for(3).await;
    ba.close().await.expect("close");
    bb.close().await.expect("close");
    assert_eq!(ta.count(), a_gets + 1, "A handled each event once");
    assert_eq!(tb.count(), 3, "B handled each event once");
}

/// The same event (same `event_id`) delivered twice reaches the handlers once.
pub async fn deduplicates_by_event_id<F: TransportFactory>(factory: &F) {
    let medium = factory.medium().await;
    let (_a, _b, tally, ba, bb) = pair(factory, &medium, false).await;
    let event = bubus::EventHandle::new(ping(7)).to_any();
    ba.send(&event).await.expect("send");
    // The second copy bypasses the sender where the medium allows: engines that drop a
    // re-sent id themselves (JetStream's `Nats-Msg-Id`, Redis Streams' idempotent add) would
    // never deliver it, and the receiver's de-duplication is what is checked here.
    if !factory.inject(&medium, &event.to_json_string()).await {
        ba.send(&event).await.expect("send again");
    }
    let marker = bubus::EventHandle::new(ping(8)).to_any();
    ba.send(&marker).await.expect("send");
    tally.wait_for(2).await;
    wait_metric(&bb, "the duplicate counted", |m| m.duplicates >= 1).await;
    assert_eq!(tally.count(), 2);
    ba.close().await.expect("close");
    bb.close().await.expect("close");
}

/// Bad input (not JSON, not an event) is skipped and counted; the next good message arrives.
pub async fn bad_input_never_stops_the_listener<F: TransportFactory>(factory: &F) {
    let medium = factory.medium().await;
    let (a, _b, tally, ba, bb) = pair(factory, &medium, false).await;
    if !factory.inject(&medium, "{not json").await {
        return;
    }
    assert!(factory.inject(&medium, r#"{"event_type": 5}"#).await);
    assert!(factory.inject(&medium, "[1,2,3]").await);
    a.dispatch(ping(1)).expect("dispatch");
    tally.wait_for(1).await;
    wait_metric(&bb, "three bad messages counted", |m| m.invalid >= 3).await;
    ba.close().await.expect("close");
    bb.close().await.expect("close");
}

/// With results back on both sides, the sender's handle completes with the receiver's
/// results merged. (Skipped where only one endpoint can listen: the reply needs the sender to
/// listen too.)
pub async fn results_travel_back<F: TransportFactory>(factory: &F) {
    let medium = factory.medium().await;
    if factory
        .endpoint(&medium)
        .await
        .capabilities()
        .single_listener
    {
        return;
    }
    let (a, _b, _tally, ba, bb) = pair(factory, &medium, true).await;
    let sent = a.dispatch(ping(5)).expect("dispatch");
    let results = tokio::time::timeout(WAIT, sent.event_results_list())
        .await
        .expect("completes")
        .expect("results");
    assert_eq!(results, [json!({"handled_by": "B", "n": 5})]);
    ba.close().await.expect("close");
    bb.close().await.expect("close");
}

/// Durable transports: what is sent while no listener runs is delivered when one starts.
pub async fn durable_delivers_what_was_sent_while_down<F: TransportFactory>(factory: &F) {
    let medium = factory.medium().await;
    let sender = factory.endpoint(&medium).await;
    if !sender.capabilities().durable {
        return;
    }
    let ba = Bridge::new(sender);
    // A listener that started once (a consumer group, a cursor) and went away.
    let first = Bridge::new(factory.endpoint_named(&medium, "late").await);
    first.start().await.expect("start");
    first.close().await.expect("close");
    for n in 0..10 {
        ba.send(&bubus::EventHandle::new(ping(n)).to_any())
            .await
            .expect("send");
    }
    let b = EventBus::new("Late");
    let tally = Tally::new();
    b.on_pattern("ConformancePing", tally.handler());
    let bb = Bridge::new(factory.endpoint_named(&medium, "late").await);
    bb.attach(&b);
    bb.start().await.expect("start");
    tally.wait_for(10).await;
    ba.close().await.expect("close");
    bb.close().await.expect("close");
}

/// Transports with acks and redelivery: an event whose handler fails is delivered again, and
/// one that keeps failing goes to the dead letters after `max_deliveries`.
pub async fn redelivers_failures_then_dead_letters<F: TransportFactory>(factory: &F) {
    let medium = factory.medium().await;
    let sender = factory.endpoint(&medium).await;
    let caps = sender.capabilities();
    if !(caps.acks && caps.redelivery) {
        return;
    }
    let ba = Bridge::new(sender);
    let b = EventBus::new("Flaky");
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let tally = Tally::new();
    let t = tally.clone();
    b.on_pattern("ConformancePing", move |e: AnyEvent| {
        let run = r.fetch_add(1, Ordering::SeqCst);
        let n = e.to_json()["n"].as_u64().unwrap_or(0);
        // n = 1 fails once then succeeds; n = 2 always fails.
        if (n == 1 && run == 0) || n == 2 {
            return Err(std::io::Error::other("flaky"));
        }
        t.record(&e);
        Ok(())
    });
    let bb = Bridge::builder(factory.endpoint(&medium).await)
        .max_deliveries(3)
        .build();
    bb.attach(&b);
    bb.start().await.expect("start");
    ba.send(&bubus::EventHandle::new(ping(1)).to_any())
        .await
        .expect("send");
    tally.wait_for(1).await;
    ba.send(&bubus::EventHandle::new(ping(2)).to_any())
        .await
        .expect("send");
    // Both counts awaited: a nack is counted once the engine confirmed it, and the engine may
    // deliver the event again (and the bridge dead-letter it) before that confirmation is in.
    wait_metric(&bb, "a dead letter and three nacks", |m| {
        m.dead_lettered >= 1 && m.nacked >= 3
    })
    .await;
    assert_eq!(bb.metrics().nacked, 3, "one retry for n=1, two for n=2");
    ba.close().await.expect("close");
    bb.close().await.expect("close");
}

/// Expands to one `#[tokio::test]` per conformance check for `$factory` (an expression of a
/// type implementing [`TransportFactory`]).
#[macro_export]
macro_rules! transport_conformance {
    ($factory:expr) => {
        mod transport_conformance {
            use super::*;
            use $crate::conformance as c;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delivers_with_lineage() {
                c::delivers_with_lineage(&$factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn delivers_all_and_close_flushes() {
                c::delivers_all_and_close_flushes(&$factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_way_wiring_handles_each_event_once_per_bus() {
                c::two_way_wiring_handles_each_event_once_per_bus(&$factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn deduplicates_by_event_id() {
                c::deduplicates_by_event_id(&$factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn bad_input_never_stops_the_listener() {
                c::bad_input_never_stops_the_listener(&$factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn results_travel_back() {
                c::results_travel_back(&$factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn durable_delivers_what_was_sent_while_down() {
                c::durable_delivers_what_was_sent_while_down(&$factory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redelivers_failures_then_dead_letters() {
                c::redelivers_failures_then_dead_letters(&$factory).await;
            }
        }
    };
}
