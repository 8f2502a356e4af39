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
