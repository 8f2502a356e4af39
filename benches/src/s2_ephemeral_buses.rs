//! S2 `500-buses-x-100-events` — 500 buses × 100 events × 1 handler.
//!
//! For each `b` in 0..500, one after the other: a new bus `PerfEphemeralBus_{b}` (history 128,
//! drop) with one sync handler (`checksum += batch_id * 7 + value`); 100 `PerfSimpleEvent`s
//! (`batch_id = b`, `value = (b * 100 + i) % 89 + 1`) dispatched naively (all of them, stopping at
//! the first refusal), awaited, then `wait_until_idle`; sample memory; trim; `stop(0, clear)`;
//! sample memory every 10 buses.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bubus::bus::HistoryFull;
use bubus::{EventBus, EventHandle};
use serde_json::json;

use crate::events::{PerfSimpleEvent, PerfTrimEphemeralEvent};
use crate::harness::{
    HISTORY_LIMIT_EPHEMERAL_BUS, MemoryTracker, cpu_ms, dispatch_error, elapsed_ms, settle,
    trim_history,
};
use crate::report::{Metrics, ScenarioResult, checksum_extras};
use crate::{Options, Scenario};

fn value(bus_index: u64, events_per_bus: u64, i: u64) -> u64 {
    ((bus_index * events_per_bus + i) % 89) + 1
}

/// Runs S2.
pub async fn run(scenario: &Scenario, options: &Options) -> ScenarioResult {
    match measure(scenario, options).await {
        Ok(result) => result,
        Err(err) => ScenarioResult::failed(scenario.id, options, err),
    }
}

async fn measure(scenario: &Scenario, options: &Options) -> Result<ScenarioResult, String> {
    let total_buses = options.counts.s2_buses;
    let events_per_bus = options.counts.s2_events_per_bus;
    let attempted_events = total_buses * events_per_bus;

    let processed = Arc::new(AtomicU64::new(0));
    let checksum = Arc::new(AtomicU64::new(0));
    let mut expected_checksum = 0u64;
    let mut dispatched_events = 0u64;
    let mut first_error: Option<String> = None;

    let mut memory = MemoryTracker::new();
    let cpu_start = cpu_ms();
    let started = Instant::now();

    let mut queued = Vec::with_capacity(events_per_bus as usize);
    for bus_index in 0..total_buses {
        let bus = EventBus::builder(format!("PerfEphemeralBus_{bus_index}"))
            .max_history_size(Some(HISTORY_LIMIT_EPHEMERAL_BUS))
            .history_full(HistoryFull::DropOldest)
            .build();
        let (p, c) = (Arc::clone(&processed), Arc::clone(&checksum));
        bus.on(move |event: EventHandle<PerfSimpleEvent>| {
            p.fetch_add(1, Ordering::Relaxed);
            let contribution = event.batch_id * 7 + event.value;
            c.fetch_add(contribution, Ordering::Relaxed);
            contribution
        });

        let events: Vec<PerfSimpleEvent> = (0..events_per_bus)
            .map(|i| PerfSimpleEvent {
                batch_id: bus_index,
                value: value(bus_index, events_per_bus, i),
            })
            .collect();

        // The reference's `_dispatch_naive`.
        for event in events {
            match bus.dispatch(event) {
                Ok(handle) => queued.push(handle),
                Err(err) => {
                    first_error.get_or_insert_with(|| dispatch_error(&err));
                    break;
                }
            }
        }
        let queued_count = queued.len() as u64;
        if !queued.is_empty() {
            for handle in queued.drain(..) {
                if let Err(err) = handle.await {
                    first_error.get_or_insert_with(|| format!("WaitError: {err}"));
                }
            }
            bus.wait_until_idle(None).await;
        }
        dispatched_events += queued_count;
        expected_checksum += (0..queued_count)
            .map(|i| bus_index * 7 + value(bus_index, events_per_bus, i))
            .sum::<u64>();

        memory.sample();
        trim_history(&bus, PerfTrimEphemeralEvent {}).await?;
        bus.stop_and_clear(Some(Duration::ZERO)).await;

        if bus_index % 10 == 0 {
            memory.sample();
        }
    }

    let total_ms = elapsed_ms(started);
    let cpu_end = cpu_ms();
    settle().await;
    memory.sample();

    let processed = processed.load(Ordering::Relaxed);
    let checksum = checksum.load(Ordering::Relaxed);
    let error = first_error.or_else(|| {
        if dispatched_events != attempted_events {
            Some(format!(
                "dispatched {dispatched_events} of {attempted_events}"
            ))
        } else if processed != dispatched_events {
            Some(format!("processed {processed} of {dispatched_events}"))
        } else if checksum != expected_checksum {
            Some(format!(
                "checksum {checksum} != expected {expected_checksum}"
            ))
        } else {
            None
        }
    });

    let mut extra = checksum_extras(processed, checksum, expected_checksum);
    extra.insert("attempted_events".into(), json!(attempted_events));

    Ok(ScenarioResult::measured(
        scenario,
        options,
        Metrics {
            error,
            extra,
            ..Metrics::over(
                dispatched_events,
                (dispatched_events, "event"),
                total_ms,
                &memory,
                (cpu_start, cpu_end),
            )
        },
    ))
}
