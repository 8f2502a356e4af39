//! The bridge model over the in-memory transport: the conformance suite (plain and durable
//! media) and the bridge policy's own checks.

use bubus::bridge::{MemoryMedium, MemoryTransport};
use bubus_test_support::conformance::TransportFactory;

struct Plain;

impl TransportFactory for Plain {
    type Transport = MemoryTransport;
    type Medium = MemoryMedium;

    async fn medium(&self) -> MemoryMedium {
        MemoryMedium::new()
    }

    async fn endpoint(&self, medium: &MemoryMedium) -> MemoryTransport {
        medium.transport()
    }

    async fn inject(&self, medium: &MemoryMedium, text: &str) -> bool {
        medium.inject(text);
        true
    }
}

struct Durable;

impl TransportFactory for Durable {
    type Transport = MemoryTransport;
    type Medium = MemoryMedium;

    async fn medium(&self) -> MemoryMedium {
        MemoryMedium::durable()
    }

    async fn endpoint(&self, medium: &MemoryMedium) -> MemoryTransport {
        medium.transport()
    }

    async fn endpoint_named(&self, medium: &MemoryMedium, name: &str) -> MemoryTransport {
        medium.transport_in_group(name)
    }

    async fn inject(&self, medium: &MemoryMedium, text: &str) -> bool {
        medium.inject(text);
        true
    }
}

mod plain {
    use super::*;
    bubus_test_support::transport_conformance!(Plain);
}

mod durable {
    use super::*;
    bubus_test_support::transport_conformance!(Durable);
}

mod policy {
    use std::time::Duration;

    use bubus::bridge::{Bridge, MemoryMedium};
    use bubus::{AnyEvent, DynEvent, EventBus};
    use serde_json::json;

    /// A far side that does not return results (a family runtime, or a bridge with results back
    /// off) never answers: the sender's handler fails with `NoReply` when its wait runs out.
    #[tokio::test(start_paused = true)]
    async fn a_far_side_that_never_answers_fails_the_sender_at_its_timeout() {
        let medium = MemoryMedium::new();
        let (a, b) = (EventBus::new("A"), EventBus::new("B"));
        let sender = Bridge::builder(medium.transport())
            .results_back()
            .reply_timeout(Duration::from_secs(5))
            .build();
        let plain = Bridge::new(medium.transport());
        sender.attach(&a);
        plain.attach(&b);
        b.on_pattern("Ping", |_e: AnyEvent| json!("handled on B"));
        sender.start().await.expect("start");
        plain.start().await.expect("start");
        let arrived = std::future::IntoFuture::into_future(b.expect_pattern("Ping"));
        let sent = a
            .dispatch(DynEvent::new("Ping", json!({})).expect("event"))
            .expect("dispatch");
        arrived.await.expect("B got it");
        let err = sent.event_result().await.expect_err("no reply");
        let message = err.to_string();
        assert!(message.contains("no completion"), "{message}");
        assert!(message.contains(&sent.event_id().to_string()), "{message}");
        sender.close().await.expect("close");
        plain.close().await.expect("close");
    }

    /// A transport whose sends never finish (a peer that stopped reading).
    #[derive(Debug)]
    struct Stuck;

    impl bubus::bridge::Transport for Stuck {
        fn kind(&self) -> &str {
            "Stuck"
        }

        fn describe(&self) -> String {
            "stuck".into()
        }

        fn capabilities(&self) -> bubus::bridge::Capabilities {
            bubus::bridge::Capabilities::at_most_once()
        }

        fn send<'a>(
            &'a self,
            _message: &'a bubus::bridge::Message,
        ) -> bubus::bridge::BoxFuture<'a, Result<(), bubus::bridge::TransportError>> {
            Box::pin(std::future::pending())
        }

        fn listen(
            &self,
        ) -> bubus::bridge::BoxFuture<
            '_,
            Result<bubus::bridge::DeliveryStream, bubus::bridge::TransportError>,
        > {
            let nothing: bubus::bridge::DeliveryStream = Box::pin(futures_util::stream::pending());
            Box::pin(async { Ok(nothing) })
        }

        fn close(&self) -> bubus::bridge::BoxFuture<'_, Result<(), bubus::bridge::TransportError>> {
            Box::pin(async { Ok(()) })
        }
    }

    /// A send given up halfway (its handler timed out, so its future was dropped) is no longer
    /// in flight: closing does not wait for it.
    #[tokio::test(start_paused = true)]
    async fn close_does_not_wait_for_a_send_whose_handler_timed_out() {
        let a = EventBus::new("A");
        let bridge = Bridge::new(Stuck);
        bridge.attach(&a);
        let sent = a
            .dispatch(
                bubus::EventHandle::new(DynEvent::new("Ping", json!({})).expect("event"))
                    .with_event_handler_timeout(Duration::from_secs(1)),
            )
            .expect("dispatch");
        let errors = sent.await.expect("done").event_errors();
        assert!(!errors.is_empty(), "the send timed out");
        tokio::time::timeout(Duration::from_secs(60), bridge.close())
            .await
            .expect("close returns")
            .expect("close");
    }

    /// Closing waits for the sends in flight and refuses new ones.
    #[tokio::test]
    async fn close_refuses_new_sends() {
        let medium = MemoryMedium::new();
        let a = EventBus::new("A");
        let bridge = Bridge::new(medium.transport());
        bridge.attach(&a);
        bridge.close().await.expect("close");
        let sent = a
            .dispatch(DynEvent::new("Ping", json!({})).expect("event"))
            .expect("dispatch");
        let errors = sent.await.expect("done").event_errors();
        assert!(errors[0].to_string().contains("is closed"), "{errors:?}");
        assert!(bridge.is_closed());
    }
}
