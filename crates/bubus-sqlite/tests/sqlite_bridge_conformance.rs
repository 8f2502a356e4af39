//! The bridge conformance suite over the SQLite transport: plain (the family's: a listener
//! starts at the newest row) and with consumer names (a saved cursor, acks, resume).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus_sqlite::rusqlite::Connection;
use bubus_sqlite::{BridgeTable, SqliteTransport};
use bubus_test_support::conformance::TransportFactory;

static MEDIA: AtomicUsize = AtomicUsize::new(0);

struct Medium {
    path: PathBuf,
    endpoints: AtomicUsize,
}

fn medium() -> Medium {
    let n = MEDIA.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "bubus-sqlite-conformance-{}-{n}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bridge.sqlite3");
    BridgeTable::open(&path, "abxbus_events").unwrap();
    Medium {
        path,
        endpoints: AtomicUsize::new(0),
    }
}

fn inject(medium: &Medium, text: &str) -> bool {
    let n = medium.endpoints.fetch_add(1, Ordering::Relaxed);
    Connection::open(&medium.path)
        .unwrap()
        .execute(
            "INSERT INTO abxbus_events (event_id, event_payload) VALUES (?1, ?2)",
            (format!("\"injected-{n}\""), text),
        )
        .unwrap();
    true
}

fn transport(medium: &Medium) -> SqliteTransport {
    SqliteTransport::new(&medium.path).poll_interval(Duration::from_millis(5))
}

struct Plain;

impl TransportFactory for Plain {
    type Transport = SqliteTransport;
    type Medium = Medium;

    async fn medium(&self) -> Medium {
        medium()
    }

    async fn endpoint(&self, medium: &Medium) -> SqliteTransport {
        transport(medium)
    }

    async fn inject(&self, medium: &Medium, text: &str) -> bool {
        inject(medium, text)
    }
}

struct Consumers;

impl TransportFactory for Consumers {
    type Transport = SqliteTransport;
    type Medium = Medium;

    async fn medium(&self) -> Medium {
        medium()
    }

    async fn endpoint(&self, medium: &Medium) -> SqliteTransport {
        let n = medium.endpoints.fetch_add(1, Ordering::Relaxed);
        transport(medium).consumer(format!("endpoint-{n}"))
    }

    async fn endpoint_named(&self, medium: &Medium, name: &str) -> SqliteTransport {
        transport(medium).consumer(name)
    }

    async fn inject(&self, medium: &Medium, text: &str) -> bool {
        inject(medium, text)
    }
}

/// The suite's checks, one test each. De-duplication is checked by [`dedup_of_a_rewritten_row`]
/// instead of the suite's own check, which sends the same event twice back to back: on a table
/// keyed by `event_id` the second write is an upsert of the first, so whether the listener
/// reads one row or two depends on whether it polled in between.
macro_rules! suite {
    ($factory:expr) => {
        use bubus_test_support::conformance as c;

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn delivers_with_lineage() {
            c::delivers_with_lineage(&$factory).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn delivers_all_and_close_flushes() {
            c::delivers_all_and_close_flushes(&$factory).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn two_way_wiring_handles_each_event_once_per_bus() {
            c::two_way_wiring_handles_each_event_once_per_bus(&$factory).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn deduplicates_a_rewritten_row() {
            super::dedup_of_a_rewritten_row(&$factory).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn bad_input_never_stops_the_listener() {
            c::bad_input_never_stops_the_listener(&$factory).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn results_travel_back() {
            c::results_travel_back(&$factory).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn durable_delivers_what_was_sent_while_down() {
            c::durable_delivers_what_was_sent_while_down(&$factory).await;
        }
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn redelivers_failures_then_dead_letters() {
            c::redelivers_failures_then_dead_letters(&$factory).await;
        }
    };
}

/// The same event written again after the listener handled it: the rewrite moves the row to
/// the end, the listener reads it again, and the bridge drops the duplicate by `event_id`.
async fn dedup_of_a_rewritten_row<
    F: TransportFactory<Transport = SqliteTransport, Medium = Medium>,
>(
    factory: &F,
) {
    use bubus::bridge::Bridge;
    use bubus::{DynEvent, EventBus, EventHandle};
    use bubus_test_support::conformance::{Tally, WAIT};
    use serde_json::json;

    let medium = factory.medium().await;
    let sender = Bridge::new(factory.endpoint(&medium).await);
    let bus = EventBus::new("DedupB");
    let tally = Tally::new();
    bus.on_pattern("ConformancePing", tally.handler());
    let receiver = Bridge::new(factory.endpoint(&medium).await);
    receiver.attach(&bus);
    receiver.start().await.unwrap();
    let ping = |n: u64| {
        EventHandle::new(DynEvent::new("ConformancePing", json!({"n": n})).unwrap()).to_any()
    };
    let event = ping(7);
    sender.send(&event).await.unwrap();
    tokio::time::timeout(WAIT, tally.wait_for(1)).await.unwrap();
    sender.send(&event).await.unwrap();
    sender.send(&ping(8)).await.unwrap();
    tokio::time::timeout(WAIT, tally.wait_for(2)).await.unwrap();
    tokio::time::timeout(WAIT, receiver.wait_metrics(|m| m.duplicates >= 1))
        .await
        .unwrap_or_else(|_| panic!("no duplicate counted: {:?}", receiver.metrics()));
    assert_eq!(tally.count(), 2);
    sender.close().await.unwrap();
    receiver.close().await.unwrap();
}

mod plain {
    use super::*;
    suite!(Plain);
}

mod consumers {
    use super::*;
    suite!(Consumers);
}
