//! S1 `50k-events` — 1 bus × 50k events × 1 handler.
//!
//! Bus `Perf50kBus` (history 512, drop), one sync handler on `PerfSimpleEvent`
//! (`checksum += value + batch_id`). Event `i` has `batch_id = i / 512`, `value = i % 97 + 1`;
//! events are dispatched in batches of 512, each batch awaited then `wait_until_idle`; memory is
//! sampled whenever the dispatched count is a multiple of 2048. Then sample, trim, stop the
//! clock, settle, sample.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bubus::bus::HistoryFull;
use bubus::{EventBus, EventHandle};
use serde_json::json;

use crate::events::{PerfSimpleEvent, PerfTrimEvent};
use crate::harness::{
    HISTORY_LIMIT_STREAM, MemoryTracker, STREAM_BATCH_SIZE, cpu_ms, dispatch_error, elapsed_ms,
    settle, trim_history,
};
use crate::report::{Metrics, ScenarioResult, checksum_extras};
use crate::{Options, Scenario};

/// How many early event ids are checked for eviction afterwards.
const SAMPLED_EARLY_EVENTS: usize = 64;

/// `Σ (i % 97 + 1) + i / 512` over the first `events` events.
pub fn expected_checksum(events: u64) -> u64 {
    (0..events)
        .map(|i| (i % 97) + 1 + i / STREAM_BATCH_SIZE)
        .sum()
}

/// Runs S1.
pub async fn run(scenario: &Scenario, options: &Options) -> ScenarioResult {
    match measure(scenario, options).await {
        Ok(result) => result,
        Err(err) => ScenarioResult::failed(scenario.id, options, err),
    }
}

async fn measure(scenario: &Scenario, options: &Options) -> Result<ScenarioResult, String> {
    let total_events = options.counts.s1_events;
    let bus = EventBus::builder("Perf50kBus")
        .max_history_size(Some(HISTORY_LIMIT_STREAM))
        .history_full(HistoryFull::DropOldest)
        .build();

    let processed = Arc::new(AtomicU64::new(0));
    let checksum = Arc::new(AtomicU64::new(0));
    let (p, c) = (Arc::clone(&processed), Arc::clone(&checksum));
    bus.on(move |event: EventHandle<PerfSimpleEvent>| {
        p.fetch_add(1, Ordering::Relaxed);
        c.fetch_add(event.value + event.batch_id, Ordering::Relaxed);
        event.value
    });

    let mut memory = MemoryTracker::new();
    let cpu_start = cpu_ms();
    let started = Instant::now();

    let mut dispatched = 0u64;
    let mut error: Option<String> = None;
    let mut sampled_early_ids = Vec::with_capacity(SAMPLED_EARLY_EVENTS);
    let mut batch = Vec::with_capacity(STREAM_BATCH_SIZE as usize);
    while dispatched < total_events {
        let this_batch = STREAM_BATCH_SIZE.min(total_events - dispatched);
        for _ in 0..this_batch {
            let i = dispatched;
            let event = PerfSimpleEvent {
                batch_id: i / STREAM_BATCH_SIZE,
                value: (i % 97) + 1,
            };
            match bus.dispatch(event) {
                Ok(handle) => {
                    if sampled_early_ids.len() < SAMPLED_EARLY_EVENTS {
                        sampled_early_ids.push(handle.event_id());
                    }
                    batch.push(handle);
                    dispatched += 1;
                }
                Err(err) => {
                    error = Some(dispatch_error(&err));
                    break;
                }
            }
        }
        if !batch.is_empty() {
            for handle in batch.drain(..) {
                if let Err(err) = handle.await {
                    error.get_or_insert_with(|| format!("WaitError: {err}"));
                }
            }
            bus.wait_until_idle(None).await;
        }
        if dispatched % 2048 == 0 {
            memory.sample();
        }
        if error.is_some() {
            break;
        }
    }
    memory.sample();

    trim_history(&bus, PerfTrimEvent {}).await?;
    let total_ms = elapsed_ms(started);
    let cpu_end = cpu_ms();
    settle().await;
    memory.sample();

    let processed = processed.load(Ordering::Relaxed);
    let checksum = checksum.load(Ordering::Relaxed);
    let expected = expected_checksum(dispatched);
    let history_len = bus.event_history().len();
    let sampled_evicted_count = sampled_early_ids
        .iter()
        .filter(|id| bus.find_event_by_id(**id).is_none())
        .count();

    let error = error.or_else(|| {
        if dispatched != total_events {
            Some(format!("dispatched {dispatched} of {total_events}"))
        } else if processed != dispatched {
            Some(format!("processed {processed} of {dispatched}"))
        } else if checksum != expected {
            Some(format!("checksum {checksum} != expected {expected}"))
        } else if history_len > HISTORY_LIMIT_STREAM {
            Some(format!(
                "history {history_len} over its bound {HISTORY_LIMIT_STREAM}"
            ))
        } else {
            None
        }
    });

    let mut extra = checksum_extras(processed, checksum, expected);
    extra.insert("attempted_events".into(), json!(total_events));
    extra.insert("sampled_evicted_count".into(), json!(sampled_evicted_count));
    extra.insert("history_len".into(), json!(history_len));

    let result = ScenarioResult::measured(
        scenario,
        options,
        Metrics {
            error,
            extra,
            ..Metrics::over(
                dispatched,
                (dispatched, "event"),
                total_ms,
                &memory,
                (cpu_start, cpu_end),
            )
        },
    );
    bus.stop_and_clear(Some(Duration::ZERO)).await;
    Ok(result)
}
