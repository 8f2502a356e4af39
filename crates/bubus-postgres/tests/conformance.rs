//! The bridge model's transport conformance suite, for the plain and the durable mode, on the
//! shared server (a fresh table per check).

mod support;

use bubus_postgres::{DurableOptions, PgTransport};
use bubus_test_support::conformance::TransportFactory;
use std::time::Duration;
use support::*;

struct Plain;

impl TransportFactory for Plain {
    type Transport = PgTransport;
    /// (URL, channel)
    type Medium = (String, String);

    async fn medium(&self) -> (String, String) {
        (shared_url(&unique("cf_plain")), unique("cf_ch"))
    }

    async fn endpoint(&self, medium: &(String, String)) -> PgTransport {
        let t = PgTransport::plain(&medium.0, Some(&medium.1))
            .await
            .unwrap();
        t
    }

    async fn inject(&self, medium: &(String, String), text: &str) -> bool {
        let t = PgTransport::plain(&medium.0, Some(&medium.1))
            .await
            .unwrap();
        t.inject_raw(text).await.unwrap();
        true
    }
}

struct Durable;

fn opts(group: &str) -> DurableOptions {
    DurableOptions::new(group)
        .retry_delay(Duration::ZERO)
        .poll_interval(Duration::from_millis(200))
}

impl TransportFactory for Durable {
    type Transport = PgTransport;
    type Medium = String;

    async fn medium(&self) -> String {
        shared_url(&unique("cf_durable"))
    }

    /// Each endpoint its own group (broadcast), like a second process with its own bus.
    async fn endpoint(&self, medium: &String) -> PgTransport {
        PgTransport::durable(medium, opts(&unique("g")))
            .await
            .unwrap()
    }

    async fn endpoint_named(&self, medium: &String, name: &str) -> PgTransport {
        PgTransport::durable(medium, opts(name)).await.unwrap()
    }

    async fn inject(&self, medium: &String, text: &str) -> bool {
        let t = PgTransport::durable(medium, opts("inject")).await.unwrap();
        t.inject_raw(text).await.unwrap();
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
