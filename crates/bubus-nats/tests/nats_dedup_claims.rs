//! The durable mode's dedup store on the shared NATS server (127.0.0.1:4222): an atomic claim
//! per event in a JetStream key-value bucket (`create`, `update` at the revision read), renewed,
//! released, confirmed, and taken over once expired — shared by the members of a group and
//! kept when a transport goes away.

use std::time::Duration;

use bubus::bridge::{Claim, DedupStore};
use bubus_nats::NatsTransport;
use bubus_test_support::dedup_claims;

const SERVER: &str = "nats://127.0.0.1:4222";

async fn transport(subject: &str, group: &str, claim_lease: Duration) -> NatsTransport {
    NatsTransport::builder(SERVER, subject)
        .jetstream()
        .group(group)
        .claim_lease(claim_lease)
        .build()
        .await
        .expect("transport")
}

fn channel() -> String {
    format!("claims_{}", uuid::Uuid::new_v4().simple())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_give_one_winner_per_event_and_follow_the_model() {
    let channel = channel();
    let lease = Duration::from_secs(30);
    let first = transport(&channel, "g", lease).await.dedup_store();
    let second = transport(&channel, "g", lease).await.dedup_store();
    let other = transport(&channel, "other", lease).await.dedup_store();
    dedup_claims::check_claims(&first, &second, &other).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_claim_is_taken_over() {
    let channel = channel();
    let lease = Duration::from_millis(300);
    let first = transport(&channel, "g", lease).await.dedup_store();
    let second = transport(&channel, "g", lease).await.dedup_store();
    dedup_claims::check_expiry(&first, &second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_event_stays_done_for_a_new_transport_of_the_group() {
    let channel = channel();
    let id = uuid::Uuid::new_v4();
    let lease = Duration::from_secs(30);
    let first = transport(&channel, "g", lease).await.dedup_store();
    assert_eq!(first.claim(id).await.expect("claim"), Claim::Won);
    first.confirm(id).await.expect("confirm");
    drop(first);
    let later = transport(&channel, "g", lease).await.dedup_store();
    assert_eq!(later.claim(id).await.expect("claim"), Claim::Done);
}
