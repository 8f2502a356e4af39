//! S1–S5 on the `abxbus` crate 2.5.79, upstream's Rust port: a bus is a thread of its own, events
//! are JSON-backed (`BaseEvent` with a payload map), handlers registered with `on_raw_sync` /
//! `on_raw`, awaited with `now()`. The buses, history bounds, events, batches and checksums are
//! those of `bubus-benches` (`docs/performance.md`); handler file-path detection is off, as in
//! the crate's own performance tests. The memory samples inside the timed part are those of
//! `bubus-benches` too (`MemoryTracker`, at the same points), so both sides do the same work.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use abxbus::base_event::BaseEvent;
use abxbus::event_bus::{EventBus, EventBusOptions};
use abxbus::event_handler::EventHandlerOptions;
use abxbus::types::EventHandlerConcurrencyMode;
use bubus_benches::harness::{
    HISTORY_LIMIT_EPHEMERAL_BUS, HISTORY_LIMIT_FIXED_HANDLERS, HISTORY_LIMIT_ON_OFF,
    HISTORY_LIMIT_STREAM, HISTORY_LIMIT_WORST_CASE, MemoryTracker, SETTLE, STREAM_BATCH_SIZE,
    WORST_CASE_IMMEDIATE_TIMEOUT_SECONDS,
};
use serde_json::{Map, Value, json};

use super::Done;
use crate::Sizes;

/// How long a `wait_until_idle` may take before the run fails (a hang guard, not a limit).
const IDLE_GUARD_SECONDS: f64 = 120.0;

fn bus(name: String, history: usize, parallel: bool) -> Arc<EventBus> {
    EventBus::new_with_options(
        Some(name),
        EventBusOptions {
            max_history_size: Some(history),
            max_history_drop: true,
            event_handler_detect_file_paths: false,
            event_handler_concurrency: if parallel {
                EventHandlerConcurrencyMode::Parallel
            } else {
                EventHandlerConcurrencyMode::Serial
            },
            ..EventBusOptions::default()
        },
    )
}

fn event(event_type: &str, fields: &[(&str, u64)]) -> Arc<BaseEvent> {
    let payload: Map<String, Value> = fields
        .iter()
        .map(|(key, value)| ((*key).to_owned(), json!(value)))
        .collect();
    BaseEvent::new(event_type, payload)
}

fn field(event: &BaseEvent, key: &str) -> u64 {
    event
        .inner
        .lock()
        .event_extra_payload
        .get(key)
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

async fn idle(bus: &EventBus) -> Result<(), String> {
    if bus.wait_until_idle(Some(IDLE_GUARD_SECONDS)).await {
        Ok(())
    } else {
        Err(format!(
            "{} not idle after {IDLE_GUARD_SECONDS}s",
            bus.label()
        ))
    }
}

/// The warm-up of `bubus-benches` on an `abxbus` bus: a no-op handler, the warm-up's events
/// awaited in its batches, then the bus destroyed and the runtime left to settle.
async fn warmup(sizes: &Sizes) -> Result<(), String> {
    let counts = &sizes.family;
    let bus = bus("PerfWarmupBus".into(), HISTORY_LIMIT_STREAM, false);
    bus.on_raw_sync("PerfWarmupEvent", "warmup", |_| Ok(Value::Null));
    let mut sent = 0;
    while sent < counts.warmup_events {
        let batch: Vec<_> = (0..counts.warmup_batch.min(counts.warmup_events - sent))
            .map(|_| bus.emit_base(event("PerfWarmupEvent", &[])))
            .collect();
        sent += batch.len() as u64;
        for e in batch {
            e.now().await?;
        }
        idle(&bus).await?;
    }
    bus.destroy();
    tokio::time::sleep(SETTLE).await;
    Ok(())
}

/// Runs scenario `index` (0 = S1).
///
/// # Errors
///
/// What failed outside the scenario's own checks.
pub async fn run(index: usize, sizes: &Sizes) -> Result<Done, String> {
    warmup(sizes).await?;
    match index {
        0 => s1(sizes).await,
        1 => s2(sizes).await,
        2 => s3(sizes).await,
        3 => s4(sizes).await,
        _ => s5(sizes).await,
    }
}

fn done(started: Instant, checksum: u64, expected: u64, error: Option<String>) -> Done {
    Done {
        total_ms: started.elapsed().as_secs_f64() * 1000.0,
        checksum,
        expected_checksum: expected,
        error,
    }
}

/// S1: one bus, events in batches of 512, each batch awaited, then idle.
async fn s1(sizes: &Sizes) -> Result<Done, String> {
    let total = sizes.family.s1_events;
    let bus = bus("Perf50kBus".into(), HISTORY_LIMIT_STREAM, false);
    let (processed, checksum) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (p, c) = (Arc::clone(&processed), Arc::clone(&checksum));
    bus.on_raw_sync("PerfSimpleEvent", "handler", move |e| {
        let (value, batch_id) = (field(&e, "value"), field(&e, "batch_id"));
        p.fetch_add(1, Ordering::Relaxed);
        c.fetch_add(value + batch_id, Ordering::Relaxed);
        Ok(json!(value))
    });
    let mut memory = MemoryTracker::new();
    let started = Instant::now();
    let mut i = 0;
    while i < total {
        let end = (i + STREAM_BATCH_SIZE).min(total);
        let batch: Vec<_> = (i..end)
            .map(|k| {
                bus.emit_base(event(
                    "PerfSimpleEvent",
                    &[("batch_id", k / STREAM_BATCH_SIZE), ("value", k % 97 + 1)],
                ))
            })
            .collect();
        for e in batch {
            e.now().await?;
        }
        idle(&bus).await?;
        i = end;
        if i % 2048 == 0 {
            memory.sample();
        }
    }
    memory.sample();
    let processed = processed.load(Ordering::Relaxed);
    let history = bus.event_history_size();
    let error = if processed != total {
        Some(format!("processed {processed} of {total}"))
    } else if history > HISTORY_LIMIT_STREAM {
        Some(format!("history {history} over {HISTORY_LIMIT_STREAM}"))
    } else {
        None
    };
    let result = done(
        started,
        checksum.load(Ordering::Relaxed),
        bubus_benches::s1_events::expected_checksum(total),
        error,
    );
    bus.destroy();
    Ok(result)
}

/// S2: buses one after the other, 100 events each, awaited, then the bus destroyed.
async fn s2(sizes: &Sizes) -> Result<Done, String> {
    let (buses, per_bus) = (sizes.family.s2_buses, sizes.family.s2_events_per_bus);
    let checksum = Arc::new(AtomicU64::new(0));
    let value = |b: u64, i: u64| (b * per_bus + i) % 89 + 1;
    let mut expected = 0;
    let mut memory = MemoryTracker::new();
    let started = Instant::now();
    for b in 0..buses {
        let bus = bus(
            format!("PerfEphemeralBus_{b}"),
            HISTORY_LIMIT_EPHEMERAL_BUS,
            false,
        );
        let c = Arc::clone(&checksum);
        bus.on_raw_sync("PerfSimpleEvent", "handler", move |e| {
            let contribution = field(&e, "batch_id") * 7 + field(&e, "value");
            c.fetch_add(contribution, Ordering::Relaxed);
            Ok(json!(contribution))
        });
        let events: Vec<_> = (0..per_bus)
            .map(|i| {
                expected += b * 7 + value(b, i);
                bus.emit_base(event(
                    "PerfSimpleEvent",
                    &[("batch_id", b), ("value", value(b, i))],
                ))
            })
            .collect();
        for e in events {
            e.now().await?;
        }
        idle(&bus).await?;
        memory.sample();
        bus.destroy();
        if b % 10 == 0 {
            memory.sample();
        }
    }
    Ok(done(
        started,
        checksum.load(Ordering::Relaxed),
        expected,
        None,
    ))
}

/// S3: 50 000 parallel handlers (registered before the clock starts), one event.
async fn s3(sizes: &Sizes) -> Result<Done, String> {
    let handlers = sizes.family.s3_handlers;
    let bus = bus(
        "PerfFixedHandlersBus".into(),
        HISTORY_LIMIT_FIXED_HANDLERS,
        true,
    );
    let checksum = Arc::new(AtomicU64::new(0));
    let mut expected = 0;
    for i in 0..handlers {
        let weight = i % 29 + 1;
        expected += 11 + weight;
        let c = Arc::clone(&checksum);
        let name = format!("fixed_handler_{i}");
        bus.on_raw_sync_with_options(
            "PerfFixedHandlersEvent",
            &name,
            EventHandlerOptions {
                id: Some(name.clone()),
                detect_handler_file_path: Some(false),
                ..EventHandlerOptions::default()
            },
            move |e| {
                let contribution = field(&e, "base_value") + weight;
                c.fetch_add(contribution, Ordering::Relaxed);
                Ok(json!(contribution))
            },
        );
    }
    let started = Instant::now();
    bus.emit_base(event("PerfFixedHandlersEvent", &[("base_value", 11)]))
        .now()
        .await?;
    idle(&bus).await?;
    let result = done(started, checksum.load(Ordering::Relaxed), expected, None);
    bus.destroy();
    Ok(result)
}

/// S4: for each event, a new handler registered, the event awaited, the handler removed.
async fn s4(sizes: &Sizes) -> Result<Done, String> {
    let total = sizes.family.s4_events;
    let bus = bus("PerfOnOffBus".into(), HISTORY_LIMIT_ON_OFF, false);
    let checksum = Arc::new(AtomicU64::new(0));
    let mut expected = 0;
    let mut memory = MemoryTracker::new();
    let started = Instant::now();
    for i in 0..total {
        let (weight, value) = (i % 13 + 1, i % 101 + 1);
        expected += value + weight;
        let c = Arc::clone(&checksum);
        let handler = bus.on_raw_sync("PerfRequestEvent", "one_off_handler", move |e| {
            let contribution = field(&e, "value") + weight;
            c.fetch_add(contribution, Ordering::Relaxed);
            Ok(json!(contribution))
        });
        bus.emit_base(event("PerfRequestEvent", &[("value", value)]))
            .now()
            .await?;
        bus.off("PerfRequestEvent", Some(&handler.id));
        if i % 1000 == 0 {
            memory.sample();
        }
    }
    idle(&bus).await?;
    let result = done(started, checksum.load(Ordering::Relaxed), expected, None);
    bus.destroy();
    Ok(result)
}

/// Returns `Pending` once, waking itself: a yield that needs no particular executor (the crate
/// runs handlers on threads of its own).
#[derive(Debug, Default)]
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[derive(Debug, Default)]
struct Counters {
    parent_a: AtomicU64,
    parent_b: AtomicU64,
    parent_checksum: AtomicU64,
}

/// S5: three buses; a parent handled on A and B, whose handler on A emits a child (one in five
/// with a near-zero timeout) forwarded to C, where its handler emits and awaits a grandchild.
async fn s5(sizes: &Sizes) -> Result<Done, String> {
    let iterations = sizes.family.s5_iterations;
    let history = HISTORY_LIMIT_WORST_CASE;
    let (bus_a, bus_b, bus_c) = (
        bus("PerfWorstCaseA".into(), history, false),
        bus("PerfWorstCaseB".into(), history, false),
        bus("PerfWorstCaseC".into(), history, false),
    );
    let counters = Arc::new(Counters::default());

    let c = Arc::clone(&counters);
    bus_b.on_raw_sync("WCParent", "parent_on_b", move |e| {
        let value = field(&e, "value");
        c.parent_b.fetch_add(1, Ordering::Relaxed);
        c.parent_checksum.fetch_add(value + 3, Ordering::Relaxed);
        Ok(json!(value + 3))
    });
    bus_c.on_raw("WCChild", "child_on_c", |child| async move {
        let (iteration, value) = (field(&child, "iteration"), field(&child, "value"));
        let bus = child.event_bus().ok_or("the child has no bus")?;
        let grandchild = bus.emit_base(event(
            "WCGrandchild",
            &[("iteration", iteration), ("value", value + 1)],
        ));
        if child.inner.lock().event_timeout.is_some() {
            YieldOnce::default().await;
        }
        grandchild.now().await?;
        Ok(json!(value * 2 + iteration))
    });
    bus_c.on_raw_sync("WCGrandchild", "grandchild_on_c", |e| {
        Ok(json!(field(&e, "value") * 3 + field(&e, "iteration")))
    });

    let mut expected = 0;
    let mut memory = MemoryTracker::new();
    let started = Instant::now();
    for iteration in 0..iterations {
        let should_timeout = iteration % 5 == 0;
        let value = iteration % 37 + 1;
        expected += (value + 11) + (value + 3);
        let (c, forward_to) = (Arc::clone(&counters), Arc::clone(&bus_c));
        let handler = bus_a.on_raw("WCParent", "parent_on_a", move |parent| {
            let (c, forward_to) = (Arc::clone(&c), Arc::clone(&forward_to));
            async move {
                let value = field(&parent, "value");
                c.parent_a.fetch_add(1, Ordering::Relaxed);
                c.parent_checksum.fetch_add(value + 11, Ordering::Relaxed);
                let bus = parent.event_bus().ok_or("the parent has no bus")?;
                let child = event(
                    "WCChild",
                    &[("iteration", field(&parent, "iteration")), ("value", value)],
                );
                if should_timeout {
                    child.inner.lock().event_timeout = Some(WORST_CASE_IMMEDIATE_TIMEOUT_SECONDS);
                }
                let child = bus.emit_base(child);
                forward_to.emit_base(Arc::clone(&child));
                // As the reference, whatever awaiting the child raises is ignored.
                let _ = child.now().await;
                Ok(json!(value + 11))
            }
        });
        let parent = event("WCParent", &[("iteration", iteration), ("value", value)]);
        bus_a.emit_base(Arc::clone(&parent));
        bus_b.emit_base(Arc::clone(&parent));
        parent.now().await?;
        bus_a.off("WCParent", Some(&handler.id));
        if iteration % 10 == 0 {
            let _ = bus_a.find("WCParent", true, Some(0.001), None).await;
        }
        if iteration % 5 == 0 {
            memory.sample();
        }
    }
    for bus in [&bus_a, &bus_b, &bus_c] {
        idle(bus).await?;
    }
    let elapsed = started.elapsed();
    let (a, b) = (
        counters.parent_a.load(Ordering::Relaxed),
        counters.parent_b.load(Ordering::Relaxed),
    );
    let error = if a != iterations {
        Some(format!("bus A handled {a} of {iterations} parents"))
    } else if b != iterations {
        Some(format!("bus B handled {b} of {iterations} parents"))
    } else {
        None
    };
    for bus in [&bus_a, &bus_b, &bus_c] {
        bus.destroy();
    }
    Ok(Done {
        total_ms: elapsed.as_secs_f64() * 1000.0,
        checksum: counters.parent_checksum.load(Ordering::Relaxed),
        expected_checksum: expected,
        error,
    })
}
