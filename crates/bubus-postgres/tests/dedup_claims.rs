//! The durable mode's dedup store on the shared server: an atomic claim per (group, event) in
//! `T_dedup` (`INSERT … ON CONFLICT DO UPDATE` with a lease), renewed, released, taken over
//! once expired, and turned into the group's mark by the ack.

mod support;

use std::time::Duration;

use bubus::bridge::{Claim, DedupStore};
use bubus_postgres::{DurableOptions, PgTransport};
use bubus_test_support::dedup_claims;
use support::*;

async fn transport(url: &str, group: &str, claim_lease: Duration) -> PgTransport {
    PgTransport::durable(url, DurableOptions::new(group).claim_lease(claim_lease))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_give_one_winner_per_event_and_follow_the_model() {
    let url = shared_url(&unique("claims"));
    let lease = Duration::from_secs(30);
    let (a, b, other) = (
        transport(&url, "g", lease).await,
        transport(&url, "g", lease).await,
        transport(&url, "other", lease).await,
    );
    dedup_claims::check_claims(&*a.dedup(), &*b.dedup(), &*other.dedup()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_claim_is_taken_over() {
    let url = shared_url(&unique("claims"));
    let lease = Duration::from_secs(1);
    let (a, b) = (
        transport(&url, "g", lease).await,
        transport(&url, "g", lease).await,
    );
    dedup_claims::check_expiry(&*a.dedup(), &*b.dedup()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedup_table_of_the_earlier_shape_keeps_its_marks() {
    let table = unique("claims");
    let done = uuid::Uuid::new_v4();
    let c = client().await;
    c.batch_execute(&format!(
        "CREATE TABLE \"{table}_dedup\" (group_name TEXT NOT NULL, event_id TEXT NOT NULL, \
           done_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (group_name, event_id));
         INSERT INTO \"{table}_dedup\" (group_name, event_id) VALUES ('g', '{done}');"
    ))
    .await
    .unwrap();
    let t = transport(&shared_url(&table), "g", Duration::from_secs(30)).await;
    let store = t.dedup();
    assert_eq!(store.claim(done).await.unwrap(), Claim::Done);
    assert_eq!(store.claim(uuid::Uuid::new_v4()).await.unwrap(), Claim::Won);
}
