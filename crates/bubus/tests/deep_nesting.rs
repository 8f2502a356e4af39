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
    bus.stop_and_clear(None).await;
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

/// The opt-in limit: with `max_handler_recursion_depth(Some(5))`, the handler that would
/// re-enter itself a sixth time gets a named dispatch error (never an abort), and handles it.
#[tokio::test]
async fn max_handler_recursion_depth_refuses_the_offending_dispatch() {
    let bus = EventBus::builder("RecursionBus")
        .max_handler_recursion_depth(Some(5))
        .build();
    let b = bus.clone();
    bus.on(move |level: EventHandle<Level>| {
        let bus = b.clone();
        async move {
            match bus.dispatch(Level {
                below: level.below + 1,
            }) {
                Ok(child) => Ok::<_, bubus::Error>(child.event_result().await?),
                Err(bubus::DispatchError::HandlerRecursion { depth, max, .. }) => {
                    assert_eq!((depth, max), (5, 5));
                    Ok(level.below)
                }
                Err(other) => Err(other.into()),
            }
        }
    });
    let root = bus.dispatch(Level { below: 0 }).unwrap();
    // The root (dispatched from outside) and five nested levels ran; the sixth was refused.
    assert_eq!(root.event_result().await.unwrap(), 5);
    assert_eq!(bus.event_history().len(), 6);

    // Without the option there is no limit.
    assert_eq!(chain_bus().config().max_handler_recursion_depth, None);
}
