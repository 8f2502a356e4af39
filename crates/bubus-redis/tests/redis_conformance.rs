//! The bridge conformance suite over Redis (127.0.0.1:6379), both modes.

use std::time::Duration;

use bubus_redis::{Mode, RedisTransport};
use bubus_test_support::conformance::TransportFactory;

const URL: &str = "redis://127.0.0.1:6379/0";

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

struct Factory(Mode);

impl TransportFactory for Factory {
    type Transport = RedisTransport;
    type Medium = String;

    async fn medium(&self) -> String {
        unique("conformance")
    }

    async fn endpoint(&self, channel: &String) -> RedisTransport {
        // Each endpoint is its own group: every endpoint sees every event, as in pub/sub.
        self.endpoint_named(channel, &unique("g")).await
    }

    async fn endpoint_named(&self, channel: &String, name: &str) -> RedisTransport {
        RedisTransport::builder(URL)
            .expect("url")
            .channel(channel.clone())
            .mode(self.0)
            .group(name)
            .consumer(name)
            .lease(Duration::from_secs(2))
            .build()
            .expect("transport")
    }

    async fn inject(&self, channel: &String, text: &str) -> bool {
        let client = redis::Client::open(URL).expect("client");
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .expect("connect");
        let mut cmd = match self.0 {
            Mode::PubSub => redis::cmd("PUBLISH"),
            _ => redis::cmd("XADD"),
        };
        match self.0 {
            Mode::PubSub => cmd.arg(channel).arg(text),
            _ => cmd
                .arg(format!("bubus:{channel}"))
                .arg("*")
                .arg("event")
                .arg(text),
        };
        cmd.query_async::<redis::Value>(&mut con)
            .await
            .expect("inject");
        true
    }
}

mod pubsub {
    use super::*;
    bubus_test_support::transport_conformance!(Factory(Mode::PubSub));
}

mod streams {
    use super::*;
    bubus_test_support::transport_conformance!(Factory(Mode::Streams));
}
