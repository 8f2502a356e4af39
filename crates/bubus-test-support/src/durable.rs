//! What the durable-mode tests of the Redis and NATS transports share: their event, waiting for a
//! condition, and the consumer-group run both make (a group shares its events among its members,
//! another group gets every one).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus::bridge::Bridge;
use bubus::{AnyEvent, DynEvent, EventHandle};
use serde_json::json;

/// How long [`eventually`] waits.
pub const WAIT: Duration = Duration::from_secs(60);

/// The durable tests' event: `DurablePing {n}`.
pub fn ping(n: u64) -> AnyEvent {
    EventHandle::new(DynEvent::new("DurablePing", json!({ "n": n })).expect("event")).to_any()
}

/// Waits until `cond` holds; panics naming `what` after [`WAIT`].
pub async fn eventually(what: &str, cond: impl Fn() -> bool) {
    tokio::time::timeout(WAIT, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} never happened"));
}

/// Three members of the group `workers` (the third joins halfway) and one of `audit`, each made
/// by `start` with the counter its handler of `DurablePing` bumps; `sender` sends 300 events.
/// The workers handle each event once between them, every member takes load, and `audit` sees
/// them all.
pub async fn one_group_shares_the_events_another_group_gets_them_all(
    start: impl AsyncFn(&'static str, Arc<AtomicUsize>) -> Bridge,
    sender: impl Future<Output = Bridge>,
) {
    const N: u64 = 300;
    let counts: Vec<Arc<AtomicUsize>> = (0..4).map(|_| Arc::default()).collect();
    let mut bridges = Vec::new();
    // Three members of `workers` (the third joins later), one of `audit`.
    for (group, count) in [
        ("workers", &counts[0]),
        ("workers", &counts[1]),
        ("audit", &counts[3]),
    ] {
        let b = start(group, Arc::clone(count)).await;
        b.start().await.expect("start");
        bridges.push(b);
    }
    let sender = sender.await;
    for n in 0..N / 2 {
        sender.send(&ping(n)).await.expect("send");
    }
    let total = |c: &[Arc<AtomicUsize>]| {
        c[..3]
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .sum::<usize>()
    };
    eventually("the first half", || total(&counts) == (N / 2) as usize).await;
    let late = start("workers", Arc::clone(&counts[2])).await;
    late.start().await.expect("start");
    bridges.push(late);
    for n in N / 2..N {
        sender.send(&ping(n)).await.expect("send");
    }
    eventually("every event handled by the workers", || {
        total(&counts) == N as usize
    })
    .await;
    eventually("every event seen by the audit group", || {
        counts[3].load(Ordering::SeqCst) == N as usize
    })
    .await;
    assert!(
        counts[0].load(Ordering::SeqCst) > 0 && counts[1].load(Ordering::SeqCst) > 0,
        "both members work"
    );
    assert!(
        counts[2].load(Ordering::SeqCst) > 0,
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
