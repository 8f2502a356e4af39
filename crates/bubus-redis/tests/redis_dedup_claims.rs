//! The durable mode's dedup store on the shared Redis (127.0.0.1:6379): an atomic claim per
//! event (`SET NX PX` in a script), renewed, released, confirmed, and taken over once expired —
//! shared by the members of a group and kept when a transport goes away.

use std::time::Duration;

use bubus::bridge::{Claim, DedupStore};
use bubus_redis::RedisTransport;
use bubus_test_support::dedup_claims;

const URL: &str = "redis://127.0.0.1:6379/0";

fn transport(channel: &str, group: &str, claim_lease: Duration) -> RedisTransport {
    RedisTransport::builder(URL)
        .expect("url")
        .channel(channel)
        .streams()
        .group(group)
        .claim_lease(claim_lease)
        .build()
        .expect("transport")
}

fn channel() -> String {
    format!("claims_{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_give_one_winner_per_event_and_follow_the_model() {
    let channel = channel();
    let lease = Duration::from_secs(30);
    let first = transport(&channel, "g", lease).dedup_store();
    let second = transport(&channel, "g", lease).dedup_store();
    let other = transport(&channel, "other", lease).dedup_store();
    dedup_claims::check_claims(&first, &second, &other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_claim_is_taken_over() {
    let channel = channel();
    let lease = Duration::from_millis(300);
    let first = transport(&channel, "g", lease).dedup_store();
    let second = transport(&channel, "g", lease).dedup_store();
    dedup_claims::check_expiry(&first, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_event_stays_done_for_a_new_transport_of_the_group() {
    let channel = channel();
    let id = uuid::Uuid::new_v4();
    let lease = Duration::from_secs(30);
    let first = transport(&channel, "g", lease).dedup_store();
    assert_eq!(first.claim(id).await.expect("claim"), Claim::Won);
    first.confirm(id).await.expect("confirm");
    drop(first);
    let later = transport(&channel, "g", lease).dedup_store();
    assert_eq!(later.claim(id).await.expect("claim"), Claim::Done);
}
