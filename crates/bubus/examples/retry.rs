//! The database service from the bubus README's retry section: a service method that handles
//! query events is retried with exponential backoff when the connection drops, and every
//! instance of the service shares one concurrency limit.
//!
//! Run it with `cargo run --example retry`: each retry is logged as a warning.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use bubus::retry::{Retry, SemaphoreScope};
use bubus::{Event, EventBus, EventHandle, event::HandlerConcurrency};
use serde::{Deserialize, Serialize};

/// Run a query. Its handlers return the rows.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = Vec<String>)]
struct DatabaseEvent {
    query: String,
}

#[derive(Debug, thiserror::Error)]
#[error("connection to the database was reset")]
struct ConnectionError;

/// How many queries run at once, over every service.
#[derive(Default)]
struct Load {
    running: AtomicUsize,
    most: AtomicUsize,
}

/// A service with its own database connection, which drops on the first two attempts.
struct DatabaseService {
    name: String,
    attempts: AtomicU32,
    load: Arc<Load>,
}

impl DatabaseService {
    /// Handles [`DatabaseEvent`]s; registered through the retry policy below.
    async fn execute_query(
        self: Arc<Self>,
        event: EventHandle<DatabaseEvent>,
    ) -> Result<Vec<String>, ConnectionError> {
        let attempt = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        let running = self.load.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.load.most.fetch_max(running, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.load.running.fetch_sub(1, Ordering::SeqCst);
        if attempt <= 2 {
            return Err(ConnectionError);
        }
        Ok(vec![format!("{}: rows of `{}`", self.name, event.query)])
    }
}

#[tokio::main]
async fn main() -> Result<(), bubus::Error> {
    // Show the retry warnings.
    tracing_subscriber::fmt().with_target(false).init();

    // Handlers of one event run concurrently, so the limit below is what bounds the database.
    let bus = EventBus::builder("DatabaseBus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();

    // The README's policy, with the waits scaled down from seconds to tens of milliseconds.
    let policy = Retry::new()
        .retries(5) //                                up to 6 attempts
        .retry_after(Duration::from_millis(50)) //     then 100 ms, 200 ms, …
        .backoff_factor(2.0)
        .timeout(Duration::from_secs(10)) //           per attempt
        .retry_on::<ConnectionError>() //              other errors fail at once…
        .retry_on_timeout() //                         …but timeouts are retried too
        .semaphore_limit(2) //                         two queries at a time…
        .semaphore_scope(SemaphoreScope::Type) //      …across every DatabaseService
        .semaphore_name("execute_query")
        .semaphore_timeout(Duration::from_secs(30)) // wait up to 30 s for a slot
        .semaphore_strict(); //                        then fail rather than overload

    let load = Arc::new(Load::default());
    for n in 1..=3 {
        let service = Arc::new(DatabaseService {
            name: format!("replica-{n}"),
            attempts: AtomicU32::new(0),
            load: Arc::clone(&load),
        });
        bus.on(policy.method(&service, DatabaseService::execute_query));
    }

    let event = bus.dispatch(DatabaseEvent {
        query: "SELECT * FROM users".into(),
    })?;
    let rows = event.event_results_list().await?;
    for row in &rows {
        println!("{row:?}");
    }
    let most = load.most.load(Ordering::SeqCst);
    println!("most queries running at once: {most}");
    assert_eq!(rows.len(), 3);
    assert!(most <= 2);
    Ok(())
}
