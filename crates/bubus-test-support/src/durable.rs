//! What the durable-mode tests of the Redis and NATS transports share: their event, waiting for a
//! condition, and the consumer-group run both make (a group shares its events among its members,
//! another group gets every one).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus::bridge::{Bridge, BridgeMetrics};
use bubus::{AnyEvent, DynEvent, EventHandle};
use serde_json::json;
use tokio::sync::Notify;

/// How long [`within`] waits.
pub const WAIT: Duration = Duration::from_secs(60);

/// The durable tests' event: `DurablePing {n}`.
pub fn ping(n: u64) -> AnyEvent {
    EventHandle::new(DynEvent::new("DurablePing", json!({ "n": n })).expect("event")).to_any()
}

/// `fut`'s output; panics naming `what` if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("{what} never happened"))
}

/// Waits until `bridge`'s counters satisfy `done` ([`Bridge::wait_metrics`], woken on every
/// change); panics naming `what` after [`WAIT`].
pub async fn metrics_reach(what: &str, bridge: &Bridge, done: impl Fn(&BridgeMetrics) -> bool) {
    within(what, bridge.wait_metrics(done)).await;
}

/// Waits until the counters of one of `bridges` satisfy `done`; panics naming `what` after
/// [`WAIT`].
pub async fn any_metrics_reach(
    what: &str,
    bridges: &[Bridge],
    done: impl Fn(&BridgeMetrics) -> bool,
) {
    let done = &done;
    within(
        what,
        futures_util::future::select_all(
            bridges
                .iter()
                .map(|bridge| Box::pin(bridge.wait_metrics(done))),
        ),
    )
    .await;
}

/// A count of handler runs that wakes whoever waits on it at every change. Counters made with
/// [`Counter::beside`] share one wake-up, so a condition over several of them can be awaited.
#[derive(Clone, Debug, Default)]
pub struct Counter {
    n: Arc<AtomicUsize>,
    changed: Arc<Notify>,
}

impl Counter {
    /// A new counter, at zero, whose changes wake the waiters of `self` too.
    pub fn beside(&self) -> Counter {
        Counter {
            n: Arc::default(),
            changed: Arc::clone(&self.changed),
        }
    }

    /// One more.
    pub fn bump(&self) {
        self.n.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// The count.
    pub fn get(&self) -> usize {
        self.n.load(Ordering::SeqCst)
    }

    /// Waits until `cond` holds, looking again at each change of this counter or of one made
    /// beside it; panics naming `what` after [`WAIT`].
    pub async fn until(&self, what: &str, cond: impl Fn() -> bool) {
        within(what, async {
            loop {
                // Registered before the look: a change between the look and the await wakes it.
                let changed = self.changed.notified();
                if cond() {
                    return;
                }
                changed.await;
            }
        })
        .await;
    }
}

/// Three members of the group `workers` (the third joins halfway) and one of `audit`, each made
/// by `start` with the counter its handler of `DurablePing` bumps; `sender` sends 300 events.
/// The workers handle each event once between them, every member takes load, and `audit` sees
/// them all.
pub async fn one_group_shares_the_events_another_group_gets_them_all(
    start: impl AsyncFn(&'static str, Counter) -> Bridge,
    sender: impl Future<Output = Bridge>,
) {
    const N: u64 = 300;
    let first = Counter::default();
    let counts: Vec<Counter> = (0..4).map(|_| first.beside()).collect();
    let mut bridges = Vec::new();
    // Three members of `workers` (the third joins later), one of `audit`.
    for (group, count) in [
        ("workers", &counts[0]),
        ("workers", &counts[1]),
        ("audit", &counts[3]),
    ] {
        let b = start(group, count.clone()).await;
        b.start().await.expect("start");
        bridges.push(b);
    }
    let sender = sender.await;
    for n in 0..N / 2 {
        sender.send(&ping(n)).await.expect("send");
    }
    let total = |c: &[Counter]| c[..3].iter().map(Counter::get).sum::<usize>();
    let changes = &counts[0];
    changes
        .until("the first half", || total(&counts) == (N / 2) as usize)
        .await;
    let late = start("workers", counts[2].clone()).await;
    late.start().await.expect("start");
    bridges.push(late);
    for n in N / 2..N {
        sender.send(&ping(n)).await.expect("send");
    }
    changes
        .until("every event handled by the workers", || {
            total(&counts) == N as usize
        })
        .await;
    changes
        .until("every event seen by the audit group", || {
            counts[3].get() == N as usize
        })
        .await;
    assert!(
        counts[0].get() > 0 && counts[1].get() > 0,
        "both members work"
    );
    assert!(
        counts[2].get() > 0,
        "the member that joined later takes load"
    );
    for b in bridges {
        b.close().await.expect("close");
    }
    assert_eq!(
        total(&counts),
        N as usize,
        "no event handled twice in the group"
    );
}
