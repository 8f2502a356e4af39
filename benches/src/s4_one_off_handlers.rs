//! S4 `50k-one-off-handlers` — 1 bus × 50k events × 50k one-off handlers.
//!
//! Bus `PerfOnOffBus` (history 128, drop). For each `i` in 0..50 000: a new closure handler
//! (`checksum += value + weight`, `weight = i % 13 + 1`) is registered, one
//! `PerfRequestEvent { value: i % 101 + 1 }` is dispatched and awaited, and the handler is
//! removed; memory is sampled every 1000 events. Then `wait_until_idle`. Also checks that no
//! handler is left registered.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bubus::bus::HistoryFull;
use bubus::{Event, EventBus, EventHandle};
use serde_json::json;

use crate::events::{PerfRequestEvent, PerfTrimOnOffEvent};
use crate::harness::{
    HISTORY_LIMIT_ON_OFF, MemoryTracker, cpu_ms, dispatch_error, elapsed_ms, settle, trim_history,
};
use crate::report::{Metrics, ScenarioResult, checksum_extras};
use crate::{Options, Scenario};

/// Runs S4.
pub async fn run(scenario: &Scenario, options: &Options) -> ScenarioResult {
    match measure(scenario, options).await {
        Ok(result) => result,
        Err(err) => ScenarioResult::failed(scenario.id, options, err),
    }
}

async fn measure(scenario: &Scenario, options: &Options) -> Result<ScenarioResult, String> {
    let total_events = options.counts.s4_events;
    let bus = EventBus::builder("PerfOnOffBus")
        .max_history_size(Some(HISTORY_LIMIT_ON_OFF))
        .history_full(HistoryFull::DropOldest)
        .build();

    let processed = Arc::new(AtomicU64::new(0));
    let checksum = Arc::new(AtomicU64::new(0));
    let mut expected_checksum = 0u64;
    let mut error: Option<String> = None;

    let mut memory = MemoryTracker::new();
    let cpu_start = cpu_ms();
    let started = Instant::now();

    for i in 0..total_events {
        let weight = (i % 13) + 1;
        let value = (i % 101) + 1;
        expected_checksum += value + weight;

        let (p, c) = (Arc::clone(&processed), Arc::clone(&checksum));
        let entry = bus.on(move |event: EventHandle<PerfRequestEvent>| {
            p.fetch_add(1, Ordering::Relaxed);
            let contribution = event.value + weight;
            c.fetch_add(contribution, Ordering::Relaxed);
            contribution
        });

        match bus.dispatch(PerfRequestEvent { value }) {
            Ok(event) => {
                if let Err(err) = event.await {
                    error = Some(format!("WaitError: {err}"));
                    break;
                }
            }
            Err(err) => {
                error = Some(dispatch_error(&err));
                break;
            }
        }

        bus.off(&entry);

        if i % 1000 == 0 {
            memory.sample();
        }
    }

    bus.wait_until_idle(None).await;
    let total_ms = elapsed_ms(started);
    let cpu_end = cpu_ms();
    settle().await;
    memory.sample();

    let processed = processed.load(Ordering::Relaxed);
    let checksum = checksum.load(Ordering::Relaxed);
    let leaked_handlers = bus
        .handlers()
        .iter()
        .filter(|h| h.event_pattern() == PerfRequestEvent::EVENT_TYPE)
        .count();
    let error = error.or_else(|| {
        if processed != total_events {
            Some(format!("processed {processed} of {total_events}"))
        } else if checksum != expected_checksum {
            Some(format!(
                "checksum {checksum} != expected {expected_checksum}"
            ))
        } else if leaked_handlers != 0 {
            Some(format!(
                "{leaked_handlers} one-off handlers left registered"
            ))
        } else {
            None
        }
    });

    let mut extra = checksum_extras(processed, checksum, expected_checksum);
    extra.insert("attempted_events".into(), json!(total_events));

    let result = ScenarioResult::measured(
        scenario,
        options,
        Metrics {
            error,
            extra,
            ..Metrics::over(
                processed,
                (processed, "event"),
                total_ms,
                &memory,
                (cpu_start, cpu_end),
            )
        },
    );

    trim_history(&bus, PerfTrimOnOffEvent {}).await?;
    bus.stop_and_clear(Some(Duration::ZERO)).await;
    Ok(result)
}
