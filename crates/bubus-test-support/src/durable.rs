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
        within(what, self.changes_until(cond)).await;
    }

    /// [`until`](Self::until) without a limit.
    async fn changes_until(&self, cond: impl Fn() -> bool) {
        loop {
            // Registered before the look: a change between the look and the await wakes it.
            let changed = self.changed.notified();
            if cond() {
                return;
            }
            changed.await;
        }
    }
}

/// One member of the run of [`one_group_shares_the_events_another_group_gets_them_all`]: the
/// counter its handler of `DurablePing` bumps and, for a member of the shared group, the rule
/// that makes every member take load whatever the engine's way of spreading messages.
#[derive(Clone, Debug)]
pub struct Member {
    count: Counter,
    /// The shared group's members (their counters) and how many of them have joined; `None`
    /// for a member of a group of its own.
    shared: Option<Arc<Shared>>,
}

#[derive(Debug)]
struct Shared {
    counts: Vec<Counter>,
    joined: AtomicUsize,
}

impl Shared {
    fn everyone_took_one(&self) -> bool {
        self.counts[..self.joined.load(Ordering::SeqCst)]
            .iter()
            .all(|c| c.get() > 0)
    }
}

impl Member {
    /// What the member's handler does with each event: a member of the shared group that
    /// handled an event already waits until every member that has joined handled one too
    /// (its first event it handles at once), then counts the event.
    ///
    /// The engine decides which member gets which message; this only holds back, for a
    /// moment, the members that got some, so the assertion that every member takes load cannot
    /// be defeated by the others taking everything first. The held event keeps its claim in the
    /// group's dedup store (renewed while the handler runs), so nobody else runs it meanwhile.
    pub async fn handle(&self) {
        if let Some(shared) = &self.shared {
            if self.count.get() > 0 {
                // No limit here: when the run goes wrong, the test's own wait names what did
                // not happen.
                self.count
                    .changes_until(|| shared.everyone_took_one())
                    .await;
            }
        }
        self.count.bump();
    }
}

/// Three members of the group `workers` (the third joins halfway) and one of `audit`, each made
/// by `start` with the [`Member`] whose [`handle`](Member::handle) its handler of `DurablePing`
/// awaits; `sender` sends 300 events. The workers handle each event once between them, every
/// member takes load, and `audit` sees them all.
///
/// Every member takes load by construction, not by luck: a worker that handled an event waits
/// until every worker that has joined handled one ([`Member::handle`]), so the two first ones
/// share the first 150 events and, once the third has joined, they are held until it handled
/// one of the last 150. That only finishes if the engine really hands messages to each member
/// of the group, including one that joined later; what it checks is that it does.
///
/// For the members that wait not to hold every event between them (the third would then get
/// none, and the run would end in a timeout), `start` must make members that hold few messages
/// at once: a transport read batch and a bridge `max_in_flight` of a few (8), so that what two
/// held members can have read, buffered and dispatched (their batches, the transport's channel
/// of at least 16, what the bridge dispatched) stays well below 150 and below the engine's own
/// limit of unacknowledged messages per group (JetStream's `max_ack_pending`, 16 batches).
pub async fn one_group_shares_the_events_another_group_gets_them_all(
    start: impl AsyncFn(&'static str, Member) -> Bridge,
    sender: impl Future<Output = Bridge>,
) {
    const N: u64 = 300;
    let first = Counter::default();
    let counts: Vec<Counter> = (0..4).map(|_| first.beside()).collect();
    let shared = Arc::new(Shared {
        counts: counts[..3].to_vec(),
        joined: AtomicUsize::new(2),
    });
    let worker = |index: usize| Member {
        count: counts[index].clone(),
        shared: Some(Arc::clone(&shared)),
    };
    let audit = Member {
        count: counts[3].clone(),
        shared: None,
    };
    let mut bridges = Vec::new();
    // Two members of `workers` (a third joins later), one of `audit`.
    for (group, member) in [
        ("workers", worker(0)),
        ("workers", worker(1)),
        ("audit", audit),
    ] {
        let b = start(group, member).await;
        b.start().await.expect("start");
        bridges.push(b);
    }
    let sender = sender.await;
    for n in 0..N / 2 {
        sender.send(&ping(n)).await.expect("send");
    }
    let total = |c: &[Counter]| c[..3].iter().map(Counter::get).sum::<usize>();
    let changes = &counts[0];
    // Each is held once it took one until the other took one too.
    changes
        .until("both members take load", || {
            counts[0].get() > 0 && counts[1].get() > 0
        })
        .await;
    changes
        .until("the first half", || total(&counts) == (N / 2) as usize)
        .await;
    // From here the two first members, after the first half, wait for the third to take one.
    shared.joined.store(3, Ordering::SeqCst);
    let late = start("workers", worker(2)).await;
    late.start().await.expect("start");
    bridges.push(late);
    for n in N / 2..N {
        sender.send(&ping(n)).await.expect("send");
    }
    // The two first members are held once they take one of these: unless the engine hands
    // the member that joined later some of them, this never happens.
    changes
        .until("the member that joined later takes load", || {
            counts[2].get() > 0
        })
        .await;
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
    for b in bridges {
        b.close().await.expect("close");
    }
    assert_eq!(
        total(&counts),
        N as usize,
        "no event handled twice in the group"
    );
}
