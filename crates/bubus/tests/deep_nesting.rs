//! Deep nesting never aborts the process: a chain of handlers that each dispatch and await a
//! child, 10 000 levels deep, completes on the multi-thread and current-thread runtimes, awaited
//! from the test's main task and from a spawned task (on a worker thread's 2 MiB stack).

use bubus::{EventBus, EventHandle};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = u64)]
struct Level {
    below: u64,
}

fn levels() -> u64 {
    std::env::var("BUBUS_DEEP_LEVELS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// A bus whose `Level` handler dispatches and awaits the level below, until the last one.
/// The history is unbounded: every level is unfinished until the deepest one completes.
fn chain_bus() -> EventBus {
    let bus = EventBus::builder("DeepBus").max_history_size(None).build();
    let b = bus.clone();
    bus.on(move |level: EventHandle<Level>| {
        let bus = b.clone();
        async move {
            if level.below == 0 {
                return Ok(0);
            }
            let depth = bus
                .dispatch(Level {
                    below: level.below - 1,
                })?
                .event_result()
                .await?;
            Ok::<_, bubus::Error>(depth + 1)
        }
    });
    bus
}

async fn run_chain() {
    let bus = chain_bus();
    let root = bus.dispatch(Level { below: levels() }).unwrap();
    assert_eq!(root.event_result().await.unwrap(), levels());
    assert!(bus.wait_until_idle(None).await);
    assert_eq!(bus.event_history().len() as u64, levels() + 1);
    bus.stop(None, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_levels_from_main_on_the_multi_thread_runtime() {
    run_chain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_levels_from_a_spawned_task_on_the_multi_thread_runtime() {
    tokio::spawn(run_chain()).await.unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn ten_thousand_levels_from_main_on_the_current_thread_runtime() {
    run_chain().await;
}

#[tokio::test(flavor = "current_thread")]
async fn ten_thousand_levels_from_a_spawned_task_on_the_current_thread_runtime() {
    tokio::spawn(run_chain()).await.unwrap();
}
