//! S3 `1-event-x-50k-parallel-handlers` — 1 bus × 1 event × 50k parallel handlers.
//!
//! Bus `PerfFixedHandlersBus` (history 128, drop, parallel handler concurrency) with 50 000
//! distinct sync handlers registered *before* the baseline, handler `i` named `fixed_handler_{i}`
//! with weight `i % 29 + 1` (`checksum += base_value + weight`). Timed: dispatch one
//! `PerfFixedHandlersEvent { base_value: 11 }`, await it, `wait_until_idle`. Figures are per
//! handler. Then settle, sample, trim and stop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bubus::bus::HistoryFull;
use bubus::{EventBus, EventHandle, event::HandlerConcurrency, handler::HandlerOptions};
use serde_json::json;

use crate::events::{PerfFixedHandlersEvent, PerfTrimFixedHandlersEvent};
use crate::harness::{
    HISTORY_LIMIT_FIXED_HANDLERS, MemoryTracker, cpu_ms, dispatch_error, elapsed_ms, settle,
    trim_history,
};
use crate::report::{Metrics, ScenarioResult, checksum_extras};
use crate::{Options, Scenario};

const BASE_VALUE: u64 = 11;

/// Runs S3.
pub async fn run(scenario: &Scenario, options: &Options) -> ScenarioResult {
    match measure(scenario, options).await {
        Ok(result) => result,
        Err(err) => ScenarioResult::failed(scenario.id, options, err),
    }
}

async fn measure(scenario: &Scenario, options: &Options) -> Result<ScenarioResult, String> {
    let total_handlers = options.counts.s3_handlers;
    let bus = EventBus::builder("PerfFixedHandlersBus")
        .max_history_size(Some(HISTORY_LIMIT_FIXED_HANDLERS))
        .history_full(HistoryFull::DropOldest)
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();

    let processed = Arc::new(AtomicU64::new(0));
    let checksum = Arc::new(AtomicU64::new(0));
    let mut expected_checksum = 0u64;
    let registration_started = Instant::now();
    for i in 0..total_handlers {
        let weight = (i % 29) + 1;
        expected_checksum += BASE_VALUE + weight;
        let (p, c) = (Arc::clone(&processed), Arc::clone(&checksum));
        bus.on_with(
            move |event: EventHandle<PerfFixedHandlersEvent>| {
                p.fetch_add(1, Ordering::Relaxed);
                let contribution = event.base_value + weight;
                c.fetch_add(contribution, Ordering::Relaxed);
                contribution
            },
            HandlerOptions::new().name(format!("fixed_handler_{i}")),
        );
    }

    // Not part of the measurement, as in the reference; recorded because it can dominate the run.
    let registration_ms = elapsed_ms(registration_started);

    let mut memory = MemoryTracker::new();
    let cpu_start = cpu_ms();
    let started = Instant::now();

    let mut error = None;
    match bus.dispatch(PerfFixedHandlersEvent {
        base_value: BASE_VALUE,
    }) {
        Ok(event) => {
            if let Err(err) = event.await {
                error = Some(format!("WaitError: {err}"));
            }
            bus.wait_until_idle(None).await;
        }
        Err(err) => error = Some(dispatch_error(&err)),
    }

    let total_ms = elapsed_ms(started);
    let cpu_end = cpu_ms();
    settle().await;
    memory.sample();

    let processed = processed.load(Ordering::Relaxed);
    let checksum = checksum.load(Ordering::Relaxed);
    let registered = bus.handlers().len() as u64;
    let error = error.or_else(|| {
        if processed != total_handlers {
            Some(format!("processed {processed} of {total_handlers}"))
        } else if checksum != expected_checksum {
            Some(format!(
                "checksum {checksum} != expected {expected_checksum}"
            ))
        } else if registered != total_handlers {
            Some(format!(
                "{registered} handlers registered, not {total_handlers}"
            ))
        } else {
            None
        }
    });

    let mut extra = checksum_extras(processed, checksum, expected_checksum);
    extra.insert("total_handlers".into(), json!(total_handlers));
    extra.insert("registration_ms".into(), json!(registration_ms));

    let result = ScenarioResult::measured(
        scenario,
        options,
        Metrics {
            error,
            extra,
            ..Metrics::over(
                1,
                (total_handlers, "handler"),
                total_ms,
                &memory,
                (cpu_start, cpu_end),
            )
        },
    );

    trim_history(&bus, PerfTrimFixedHandlersEvent {}).await?;
    bus.stop_and_clear(Some(Duration::ZERO)).await;
    Ok(result)
}
