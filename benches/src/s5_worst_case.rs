//! S5 `worst-case-forwarding-timeouts` — Worst case (N buses × N events × N handlers).
//!
//! Buses `PerfWorstCaseA/B/C` (history 128, drop). Static handlers: on B a sync `WCParent`
//! handler; on C an async `WCChild` handler that dispatches a `WCGrandchild` on its own bus, yields
//! once if the child carries a timeout, and awaits the grandchild (queue-jump), and a sync
//! `WCGrandchild` handler.
//!
//! 500 iterations, `value = i % 37 + 1`:
//!
//! 1. register an ephemeral async `WCParent` handler on A that dispatches a `WCChild` on its bus
//!    (A, which has no child handler) — with a 1e-7 s `event_timeout` when `i % 5 == 0` —,
//!    forwards the same child to C, and awaits it, ignoring errors;
//! 2. dispatch one `WCParent` on A and the same event on B, await it, remove the handler;
//! 3. every 10th iteration, `find` a `WCParent` on A (history, or up to 1 ms ahead);
//! 4. every 5th iteration, sample memory.
//!
//! Then `wait_until_idle` on A, B and C, and count C's timed-out and cancelled results. Figures
//! are per `3 × 500` events.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bubus::bus::HistoryFull;
use bubus::{Event, EventBus, EventHandle};
use serde_json::{Map, json};

use crate::events::{WCChild, WCGrandchild, WCParent, WCTrimEvent};
use crate::harness::{
    HISTORY_LIMIT_WORST_CASE, MemoryTracker, WORST_CASE_IMMEDIATE_TIMEOUT, cpu_ms, dispatch_error,
    elapsed_ms, settle, trim_history,
};
use crate::report::{Metrics, ScenarioResult};
use crate::{Options, Scenario};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Default)]
struct Counters {
    parent_handled_a: AtomicU64,
    parent_handled_b: AtomicU64,
    child_handled: AtomicU64,
    grandchild_handled: AtomicU64,
    /// The reference's checksum over every handler that ran.
    checksum: AtomicU64,
    /// The parents' part of it, which does not depend on timeouts.
    parent_checksum: AtomicU64,
    /// Dispatches or waits that failed inside handlers (the reference would raise there).
    handler_errors: AtomicU64,
}

impl Counters {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

fn worst_case_bus(name: &str) -> EventBus {
    EventBus::builder(name)
        .max_history_size(Some(HISTORY_LIMIT_WORST_CASE))
        .history_full(HistoryFull::DropOldest)
        .build()
}

/// Runs S5.
pub async fn run(scenario: &Scenario, options: &Options) -> ScenarioResult {
    match measure(scenario, options).await {
        Ok(result) => result,
        Err(err) => ScenarioResult::failed(scenario.id, options, err),
    }
}

fn register_static_handlers(bus_b: &EventBus, bus_c: &EventBus, counters: &Arc<Counters>) {
    let c = Arc::clone(counters);
    bus_b.on(move |event: EventHandle<WCParent>| {
        Counters::add(&c.parent_handled_b, 1);
        Counters::add(&c.checksum, event.value + 3);
        Counters::add(&c.parent_checksum, event.value + 3);
        event.value + 3
    });

    let c = Arc::clone(counters);
    bus_c.on(move |event: EventHandle<WCChild>| child_on_c(event, Arc::clone(&c)));

    let c = Arc::clone(counters);
    bus_c.on(move |event: EventHandle<WCGrandchild>| {
        Counters::add(&c.grandchild_handled, 1);
        let contribution = event.value * 3 + event.iteration;
        Counters::add(&c.checksum, contribution);
        contribution
    });
}

/// C's `WCChild` handler.
async fn child_on_c(event: EventHandle<WCChild>, c: Arc<Counters>) -> Result<u64, BoxError> {
    Counters::add(&c.child_handled, 1);
    let contribution = event.value * 2 + event.iteration;
    Counters::add(&c.checksum, contribution);
    let outcome: Result<(), BoxError> = async {
        let bus = event.event_bus().ok_or("the child has no bus")?;
        let grandchild = bus.dispatch(WCGrandchild {
            iteration: event.iteration,
            value: event.value + 1,
        })?;
        if event.event_config().event_timeout.is_some() {
            tokio::task::yield_now().await;
        }
        grandchild.await?;
        Ok(())
    }
    .await;
    if outcome.is_err() {
        Counters::add(&c.handler_errors, 1);
    }
    outcome.map(|()| contribution)
}

/// The `WCParent` handler registered on A for one iteration.
async fn parent_on_a(
    event: EventHandle<WCParent>,
    c: Arc<Counters>,
    bus_c: EventBus,
    should_timeout: bool,
) -> u64 {
    Counters::add(&c.parent_handled_a, 1);
    Counters::add(&c.checksum, event.value + 11);
    Counters::add(&c.parent_checksum, event.value + 11);
    let Some(bus) = event.event_bus() else {
        Counters::add(&c.handler_errors, 1);
        return event.value + 11;
    };
    let mut child = EventHandle::new(WCChild {
        iteration: event.iteration,
        value: event.value,
    });
    if should_timeout {
        child = child.with_event_timeout(WORST_CASE_IMMEDIATE_TIMEOUT);
    }
    match bus.dispatch(child) {
        Ok(child) => {
            if bus_c.dispatch(&child).is_err() {
                Counters::add(&c.handler_errors, 1);
            }
            // The reference swallows whatever awaiting the child raises.
            let _ = child.await;
        }
        Err(_) => Counters::add(&c.handler_errors, 1),
    }
    event.value + 11
}

async fn measure(scenario: &Scenario, options: &Options) -> Result<ScenarioResult, String> {
    let total_iterations = options.counts.s5_iterations;
    let bus_a = worst_case_bus("PerfWorstCaseA");
    let bus_b = worst_case_bus("PerfWorstCaseB");
    let bus_c = worst_case_bus("PerfWorstCaseC");
    let counters = Arc::new(Counters::default());
    register_static_handlers(&bus_b, &bus_c, &counters);

    let mut memory = MemoryTracker::new();
    let cpu_start = cpu_ms();
    let started = Instant::now();

    let mut expected_parent_checksum = 0u64;
    let outcome: Result<(), String> = async {
        for iteration in 0..total_iterations {
            let should_timeout = iteration % 5 == 0;
            let value = (iteration % 37) + 1;
            expected_parent_checksum += (value + 11) + (value + 3);

            let entry = {
                let (c, bus_c) = (Arc::clone(&counters), bus_c.clone());
                bus_a.on(move |event: EventHandle<WCParent>| {
                    parent_on_a(event, Arc::clone(&c), bus_c.clone(), should_timeout)
                })
            };
            let parent = EventHandle::new(WCParent { iteration, value });
            let on_a = bus_a
                .dispatch(parent.clone())
                .map_err(|e| dispatch_error(&e))?;
            bus_b.dispatch(&parent).map_err(|e| dispatch_error(&e))?;
            on_a.await.map_err(|e| format!("WaitError: {e}"))?;
            bus_a.off(&entry);

            if iteration % 10 == 0 {
                let _ = bus_a
                    .find::<WCParent>()
                    .future_within(Duration::from_millis(1))
                    .await;
            }
            if iteration % 5 == 0 {
                memory.sample();
            }
        }
        bus_a.wait_until_idle(None).await;
        bus_b.wait_until_idle(None).await;
        bus_c.wait_until_idle(None).await;
        Ok(())
    }
    .await;

    let (mut timeout_count, mut cancel_count) = (0u64, 0u64);
    for event in bus_c.event_history() {
        for error in event.event_errors() {
            if error.is_timeout() {
                timeout_count += 1;
            }
            if error.is_cancelled() || error.is_aborted() {
                cancel_count += 1;
            }
        }
    }

    let total_ms = elapsed_ms(started);
    let cpu_end = cpu_ms();
    let estimated_events = total_iterations * 3;

    let parent_a = Counters::get(&counters.parent_handled_a);
    let parent_b = Counters::get(&counters.parent_handled_b);
    let parent_checksum = Counters::get(&counters.parent_checksum);
    let handler_errors = Counters::get(&counters.handler_errors);
    let leaked_handlers = bus_a
        .handlers()
        .iter()
        .filter(|h| h.event_pattern() == WCParent::EVENT_TYPE)
        .count();
    let history_lens = [&bus_a, &bus_b, &bus_c].map(|bus| bus.event_history().len());
    let error = outcome.err().or_else(|| {
        if parent_a != total_iterations {
            Some(format!(
                "bus A handled {parent_a} of {total_iterations} parents"
            ))
        } else if parent_b != total_iterations {
            Some(format!(
                "bus B handled {parent_b} of {total_iterations} parents"
            ))
        } else if leaked_handlers != 0 {
            Some(format!("{leaked_handlers} WCParent handlers left on bus A"))
        } else if parent_checksum != expected_parent_checksum {
            Some(format!(
                "parent checksum {parent_checksum} != expected {expected_parent_checksum}"
            ))
        } else if handler_errors != 0 {
            Some(format!(
                "{handler_errors} dispatches or waits failed in handlers"
            ))
        } else {
            history_lens
                .iter()
                .find(|len| **len > HISTORY_LIMIT_WORST_CASE)
                .map(|len| format!("history {len} over its bound {HISTORY_LIMIT_WORST_CASE}"))
        }
    });

    let mut extra = Map::new();
    extra.insert("parent_handled_a".into(), json!(parent_a));
    extra.insert("parent_handled_b".into(), json!(parent_b));
    extra.insert(
        "child_handled".into(),
        json!(Counters::get(&counters.child_handled)),
    );
    extra.insert(
        "grandchild_handled".into(),
        json!(Counters::get(&counters.grandchild_handled)),
    );
    extra.insert("timeout_count".into(), json!(timeout_count));
    extra.insert("cancel_count".into(), json!(cancel_count));
    extra.insert("checksum".into(), json!(Counters::get(&counters.checksum)));
    extra.insert("parent_checksum".into(), json!(parent_checksum));
    extra.insert(
        "expected_parent_checksum".into(),
        json!(expected_parent_checksum),
    );

    let result = ScenarioResult::measured(
        scenario,
        options,
        Metrics {
            error,
            extra,
            ..Metrics::over(
                estimated_events,
                (estimated_events, "event"),
                total_ms,
                &memory,
                (cpu_start, cpu_end),
            )
        },
    );

    trim_history(&bus_a, WCTrimEvent {}).await?;
    trim_history(&bus_b, WCTrimEvent {}).await?;
    trim_history(&bus_c, WCTrimEvent {}).await?;
    settle().await;
    for bus in [&bus_a, &bus_b, &bus_c] {
        bus.stop_and_clear(Some(Duration::ZERO)).await;
    }
    Ok(result)
}
