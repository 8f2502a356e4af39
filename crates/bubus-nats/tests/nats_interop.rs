//! Against a real Python `abxbus[bridges]==2.5.79` process on the same NATS server
//! (127.0.0.1:4222), both ways: the plain mode on the family's subject and payload, and the
//! durable mode, whose stream captures the same subject (a family publisher feeds a durable
//! consumer; a family subscriber sees what a durable sender publishes).

use bubus_nats::{Mode, NatsTransport};
use bubus_test_support::engine_bridge_peer;

const SERVER: &str = "nats://127.0.0.1:4222";

fn subject() -> String {
    format!("interop_{}", uuid::Uuid::new_v4().simple())
}

async fn transport(subject: &str, mode: Mode) -> NatsTransport {
    NatsTransport::builder(SERVER, subject)
        .mode(mode)
        .build()
        .await
        .expect("transport")
}

async fn python_sends_rust_receives_typed(mode: Mode) {
    let subject = subject();
    engine_bridge_peer::python_sends_rust_receives_typed(
        transport(&subject, mode).await,
        vec!["nats".into(), SERVER.into(), subject],
    )
    .await;
}

async fn rust_sends_python_receives(mode: Mode) {
    let subject = subject();
    let s = subject.clone();
    engine_bridge_peer::rust_sends_python_receives(
        async move { transport(&s, mode).await },
        vec!["nats".into(), SERVER.into(), subject],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_python_sends_rust_receives_typed() {
    python_sends_rust_receives_typed(Mode::Core).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_rust_sends_python_receives() {
    rust_sends_python_receives(Mode::Core).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_consumer_receives_what_python_publishes() {
    python_sends_rust_receives_typed(Mode::JetStream).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_subscriber_receives_what_jetstream_publishes() {
    rust_sends_python_receives(Mode::JetStream).await;
}
