//! The plain mode against a real Python `abxbus[bridges]==2.5.79` process on the same Redis
//! (127.0.0.1:6379), both ways: the family's URL form, channel and payload.

use bubus_redis::RedisTransport;
use bubus_test_support::engine_bridge_peer;

fn url() -> String {
    format!(
        "redis://127.0.0.1:6379/0/interop_{}",
        uuid::Uuid::new_v4().simple()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sends_rust_receives_typed() {
    let url = url();
    engine_bridge_peer::python_sends_rust_receives_typed(
        RedisTransport::pubsub(&url).expect("transport"),
        vec!["redis".into(), url],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sends_python_receives() {
    let url = url();
    let u = url.clone();
    engine_bridge_peer::rust_sends_python_receives(
        async move { RedisTransport::pubsub(&u).expect("transport") },
        vec!["redis".into(), url],
    )
    .await;
}
