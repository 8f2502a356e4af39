//! The bridge conformance suite over NATS (127.0.0.1:4222), both modes.

use std::time::Duration;

use bubus_nats::{Mode, NatsTransport};
use bubus_test_support::conformance::TransportFactory;

const SERVER: &str = "nats://127.0.0.1:4222";

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

struct Factory(Mode);

impl TransportFactory for Factory {
    type Transport = NatsTransport;
    type Medium = String;

    async fn medium(&self) -> String {
        unique("conformance")
    }

    async fn endpoint(&self, subject: &String) -> NatsTransport {
        // Each endpoint is its own durable consumer: every endpoint sees every event.
        self.endpoint_named(subject, &unique("g")).await
    }

    async fn endpoint_named(&self, subject: &String, name: &str) -> NatsTransport {
        NatsTransport::builder(SERVER, subject)
            .mode(self.0)
            .group(name)
            .lease(Duration::from_secs(2))
            .build()
            .await
            .expect("transport")
    }

    async fn inject(&self, subject: &String, text: &str) -> bool {
        // A core publish: the stream of durable mode captures the subject too.
        let client = async_nats::connect(SERVER).await.expect("connect");
        client
            .publish(subject.clone(), text.to_owned().into())
            .await
            .expect("publish");
        client.flush().await.expect("flush");
        true
    }
}

mod core {
    use super::*;
    bubus_test_support::transport_conformance!(Factory(Mode::Core));
}

mod jetstream {
    use super::*;
    bubus_test_support::transport_conformance!(Factory(Mode::JetStream));
}
