//! Costs that must not grow with what a bus holds, each timed on a current-thread runtime,
//! several rounds, medians:
//!
//! * `evict` — fire-and-forget into a history bounded to 512 with `HistoryFull::DropOldest`: every
//!   dispatch past the 512th makes room in a history full of unfinished events (µs per event);
//! * `register` — one closure registered N times under its default name (ms in all);
//! * `results` — one event, 10 000 handlers, `event_results_list()` (µs per handler);
//! * `waiters` — N `find` waiters that time out after 1 s: the time past that second (ms);
//! * `unrelated` — dispatch and await events while 100 000 `find` waiters wait for another
//!   type (µs per event).
//!
//! `cargo bench -p bubus-benches --bench history_paths -- [rounds] [waiters] [registrations]`
//! (defaults 5, 100 000 and 3 000); `cargo test` runs it once with small counts, as a check.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use bubus::bus::HistoryFull;
use bubus::{AnyEvent, DynEvent, Event, EventBus, EventHandle};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
struct Ping {
    n: u64,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// µs per event: `events` dispatched without awaiting (so the history fills with unfinished
/// events), then the bus drained.
async fn evict(events: u64) -> f64 {
    let bus = EventBus::builder("EvictBench")
        .max_history_size(Some(512))
        .history_full(HistoryFull::DropOldest)
        .build();
    bus.on(|e: EventHandle<Ping>| e.n);
    let start = Instant::now();
    for n in 0..events {
        let _ = bus.dispatch(Ping { n }).expect("dispatch");
    }
    assert!(bus.wait_until_idle(None).await);
    let elapsed = start.elapsed();
    assert!(bus.event_history().len() <= 512);
    elapsed.as_secs_f64() * 1e6 / events as f64
}

/// ms for `count` registrations of one closure under its default name.
fn register(count: usize) -> f64 {
    let bus = EventBus::new("RegisterBench");
    let start = Instant::now();
    for _ in 0..count {
        bus.on(|e: EventHandle<Ping>| e.n);
    }
    let elapsed = start.elapsed();
    assert_eq!(bus.handlers().len(), count);
    elapsed.as_secs_f64() * 1e3
}

/// µs per handler: one event fanned out to `handlers` handlers, results listed.
async fn results(handlers: usize) -> f64 {
    let bus = EventBus::builder("ResultsBench")
        .disable_handler_file_paths()
        .build();
    for i in 0..handlers {
        bus.on_with(
            |e: EventHandle<Ping>| e.n + 1,
            bubus::handler::HandlerOptions::new().name(format!("h{i}")),
        );
    }
    let rounds = 5;
    let start = Instant::now();
    for n in 0..rounds {
        let event = bus.dispatch(Ping { n }).expect("dispatch");
        let values = event.event_results_list().await.expect("results");
        assert_eq!(values.len(), handlers);
    }
    start.elapsed().as_secs_f64() * 1e6 / (rounds as f64 * handlers as f64)
}

/// ms past the 1 s timeout for `count` find waiters to time out.
async fn waiters(count: usize) -> f64 {
    let bus = EventBus::new("WaiterBench");
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..count {
        let find = bus
            .find_pattern("Never")
            .no_past()
            .future_within(Duration::from_secs(1))
            .into_future();
        tasks.spawn(find);
    }
    let mut resolved = 0;
    while let Some(found) = tasks.join_next().await {
        assert!(found.expect("a waiter task").is_none());
        resolved += 1;
    }
    assert_eq!(resolved, count);
    (start.elapsed().as_secs_f64() - 1.0) * 1e3
}

/// µs per event dispatched and awaited while `unrelated` waiters wait for another type.
async fn unrelated(unrelated: usize, events: u64) -> f64 {
    let bus = EventBus::builder("UnrelatedBench")
        .max_history_size(Some(128))
        .history_full(HistoryFull::DropOldest)
        .build();
    bus.on(|e: EventHandle<Ping>| e.n);
    // `into_future` registers the waiter; the futures are polled only at the end, so the
    // timed loop does nothing but dispatch.
    let waiting: Vec<_> = (0..unrelated)
        .map(|_| bus.find_pattern("Other").no_past().future().into_future())
        .collect();
    let start = Instant::now();
    for n in 0..events {
        bus.dispatch(Ping { n })
            .expect("dispatch")
            .await
            .expect("await");
    }
    let elapsed = start.elapsed();
    bus.dispatch(DynEvent::new("Other", serde_json::json!({})).expect("event"))
        .expect("dispatch");
    for find in waiting {
        let found: Option<AnyEvent> = find.await;
        assert!(found.is_some());
    }
    elapsed.as_secs_f64() * 1e6 / events as f64
}

fn main() {
    // `cargo test` runs bench targets with `--bench`-less arguments; keep that run small.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let testing = !std::env::args().any(|a| a == "--bench");
    let arg = |i: usize, default: usize| -> usize {
        args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
    };
    let (rounds, waiter_count, registrations) = if testing {
        (1, 2_000, 200)
    } else {
        (arg(0, 5), arg(1, 100_000), arg(2, 3_000))
    };
    let (events, handlers, unrelated_count) = if testing {
        (2_000, 200, 2_000)
    } else {
        (50_000, 10_000, 100_000)
    };
    let rt = runtime();
    let mut figures: Vec<(&str, String, Vec<f64>)> = vec![
        (
            "evict",
            format!("µs/event, {events} events, history 512"),
            vec![],
        ),
        (
            "register",
            format!("ms for {registrations} registrations"),
            vec![],
        ),
        (
            "results",
            format!("µs/handler, {handlers} handlers"),
            vec![],
        ),
        (
            "waiters",
            format!("ms past 1 s for {waiter_count} waiters"),
            vec![],
        ),
        (
            "unrelated",
            format!("µs/event with {unrelated_count} unrelated waiters"),
            vec![],
        ),
    ];
    for _ in 0..rounds {
        figures[0].2.push(rt.block_on(evict(events)));
        figures[1].2.push(register(registrations));
        figures[2].2.push(rt.block_on(results(handlers)));
        figures[3].2.push(rt.block_on(waiters(waiter_count)));
        figures[4]
            .2
            .push(rt.block_on(unrelated(unrelated_count, events / 10)));
    }
    for (name, unit, values) in figures {
        println!(
            "{name:10} {:>12.3}  ({unit}; median of {rounds})",
            median(values)
        );
    }
}
