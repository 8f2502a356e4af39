//! The claim semantics every [`DedupStore`] must have, checked against a real store: one
//! winner per event, the holder's own claim, renew, release, confirm, and (for stores with a
//! lease) expiry and take-over.

use std::time::Duration;

use bubus::bridge::{Claim, DedupStore};
use uuid::Uuid;

fn held(claim: Claim, what: &str) -> Duration {
    match claim {
        Claim::Held { retry_after } => retry_after,
        other => panic!("{what}: expected Held, got {other:?}"),
    }
}

/// `first` and `second` are two members of one group (two claim owners on one store);
/// `other_group` a member of another group.
///
/// # Panics
///
/// When a store answers otherwise than the model says.
pub async fn check_claims(
    first: &dyn DedupStore,
    second: &dyn DedupStore,
    other_group: &dyn DedupStore,
) {
    let id = Uuid::new_v4();
    assert_eq!(first.claim(id).await.expect("claim"), Claim::Won);
    let wait = held(
        second.claim(id).await.expect("claim"),
        "a claim held by another",
    );
    if let Some(lease) = first.lease() {
        assert!(
            wait <= lease + Duration::from_secs(1),
            "{wait:?} > lease {lease:?}"
        );
    }
    // The holder claiming again (a redelivery to it) keeps its claim.
    assert_eq!(first.claim(id).await.expect("claim"), Claim::Won);
    // Another group handles the event on its own.
    assert_eq!(other_group.claim(id).await.expect("claim"), Claim::Won);
    assert!(first.renew(id).await.expect("renew"));
    if first.lease().is_some() {
        assert!(
            !second.renew(id).await.expect("renew"),
            "renewed a claim it does not hold"
        );
    }
    // A release by a non-holder changes nothing; the holder's frees the event at once.
    second.release(id).await.expect("release");
    held(
        second.claim(id).await.expect("claim"),
        "after a stranger's release",
    );
    first.release(id).await.expect("release");
    assert_eq!(second.claim(id).await.expect("claim"), Claim::Won);
    held(
        first.claim(id).await.expect("claim"),
        "the new holder's claim",
    );
    second.confirm(id).await.expect("confirm");
    assert_eq!(first.claim(id).await.expect("claim"), Claim::Done);
    assert_eq!(second.claim(id).await.expect("claim"), Claim::Done);
    assert!(!first.renew(id).await.expect("renew") || first.lease().is_none());

    // Two copies claimed at once: one wins.
    for _ in 0..20 {
        let id = Uuid::new_v4();
        let (a, b) = tokio::join!(first.claim(id), second.claim(id));
        let (a, b) = (a.expect("claim"), b.expect("claim"));
        let wins = [a, b].iter().filter(|c| **c == Claim::Won).count();
        assert_eq!(wins, 1, "{a:?} / {b:?}");
        assert!(
            matches!(a, Claim::Held { .. }) || matches!(b, Claim::Held { .. }),
            "{a:?} / {b:?}"
        );
    }
}

/// `first` and `second` are two members of one group whose claims last a short lease: a claim
/// whose holder stops renewing it is taken over once the lease has passed, and the former
/// holder can no longer renew it.
///
/// # Panics
///
/// When a store answers otherwise than the model says.
pub async fn check_expiry(first: &dyn DedupStore, second: &dyn DedupStore) {
    let lease = first.lease().expect("a store with a lease");
    let id = Uuid::new_v4();
    // Taken before the claim: the store starts the lease somewhere within the claim's round
    // trip, which on a loaded machine can last longer than any slack allowed below.
    let started = std::time::Instant::now();
    assert_eq!(first.claim(id).await.expect("claim"), Claim::Won);
    // The store's own clock decides the expiry: wait as long as it says, as a member would.
    let deadline = started + lease * 10 + Duration::from_secs(5);
    loop {
        match second.claim(id).await.expect("claim") {
            Claim::Won => break,
            Claim::Held { retry_after } => {
                assert!(std::time::Instant::now() < deadline, "never expired");
                tokio::time::sleep(retry_after.min(lease)).await;
            }
            Claim::Done => panic!("an unconfirmed claim reads as done"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        started.elapsed() + Duration::from_millis(50) >= lease,
        "taken over after {:?}, before the lease {lease:?}",
        started.elapsed()
    );
    assert!(
        !first.renew(id).await.expect("renew"),
        "renewed a lost claim"
    );
    held(
        first.claim(id).await.expect("claim"),
        "the taken-over claim",
    );
}
