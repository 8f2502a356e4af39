//! How each concurrency option changes the order in which handlers run, with printed timelines.
//!
//! Every handler logs when it starts and ends (milliseconds since the scenario started) and sleeps
//! for a while in between, so overlapping runs show up as interleaved lines.
//!
//! Run it with `cargo run --example concurrency`.

use std::sync::Arc;
use std::time::Duration;

use bubus::{
    Event, EventBus, EventHandle, bus::LockDomain, event::EventConcurrency,
    event::HandlerCompletion, event::HandlerConcurrency, handler::HandlerOptions,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct Job {
    id: u32,
}

/// Timeline lines, printed sorted by time at the end of each scenario.
#[derive(Clone)]
struct Timeline {
    start: Instant,
    lines: Arc<Mutex<Vec<(u128, String)>>>,
}

impl Timeline {
    fn new() -> Self {
        Timeline {
            start: Instant::now(),
            lines: Arc::default(),
        }
    }

    fn log(&self, what: String) {
        self.lines
            .lock()
            .push((self.start.elapsed().as_millis(), what));
    }

    fn print(&self, title: &str) {
        println!("== {title}");
        let mut lines = self.lines.lock().clone();
        lines.sort_by_key(|(at, _)| *at);
        for (at, what) in lines {
            println!("  {at:>4} ms  {what}");
        }
        println!();
    }
}

/// Registers a handler named `name` that sleeps `ms` milliseconds and logs its start and end.
fn worker(bus: &EventBus, timeline: &Timeline, name: &'static str, ms: u64) {
    let timeline = timeline.clone();
    let bus_name = bus.name().to_owned();
    bus.on_with(
        move |event: EventHandle<Job>| {
            let timeline = timeline.clone();
            let bus_name = bus_name.clone();
            async move {
                timeline.log(format!("{bus_name} {name} start job {}", event.id));
                tokio::time::sleep(Duration::from_millis(ms)).await;
                timeline.log(format!("{bus_name} {name} end   job {}", event.id));
                format!("{name} did job {}", event.id)
            }
        },
        HandlerOptions::new().name(name),
    );
}

async fn run_jobs(buses: &[&EventBus], jobs: u32) -> Result<(), bubus::Error> {
    let mut handles = Vec::new();
    for id in 0..jobs {
        for bus in buses {
            handles.push(bus.dispatch(Job { id })?);
        }
    }
    for handle in handles {
        handle.await?;
    }
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), bubus::Error> {
    // bus-serial (default): one event at a time per bus; two buses overlap.
    let timeline = Timeline::new();
    let a = EventBus::new("A");
    let b = EventBus::new("B");
    worker(&a, &timeline, "a1", 30);
    worker(&b, &timeline, "b1", 30);
    run_jobs(&[&a, &b], 2).await?;
    timeline.print("bus-serial: each bus runs its jobs in order, buses overlap");

    // global-serial: one event at a time across every bus of the lock domain.
    let timeline = Timeline::new();
    let domain = LockDomain::new();
    let a = EventBus::builder("A")
        .event_concurrency(EventConcurrency::GlobalSerial)
        .lock_domain(domain.clone())
        .build();
    let b = EventBus::builder("B")
        .event_concurrency(EventConcurrency::GlobalSerial)
        .lock_domain(domain)
        .build();
    worker(&a, &timeline, "a1", 30);
    worker(&b, &timeline, "b1", 30);
    run_jobs(&[&a, &b], 2).await?;
    timeline.print("global-serial: one job at a time across both buses");

    // parallel events: jobs on the same bus overlap.
    let timeline = Timeline::new();
    let bus = EventBus::builder("P")
        .event_concurrency(EventConcurrency::Parallel)
        .build();
    worker(&bus, &timeline, "h1", 30);
    run_jobs(&[&bus], 3).await?;
    timeline.print("parallel events: all jobs on one bus at once");

    // serial handlers (default): one handler of an event at a time, in registration order.
    let timeline = Timeline::new();
    let bus = EventBus::new("S");
    worker(&bus, &timeline, "first", 20);
    worker(&bus, &timeline, "second", 10);
    run_jobs(&[&bus], 1).await?;
    timeline.print("serial handlers: second starts when first ends");

    // parallel handlers: every handler of an event starts at once.
    let timeline = Timeline::new();
    let bus = EventBus::builder("H")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    worker(&bus, &timeline, "first", 20);
    worker(&bus, &timeline, "second", 10);
    run_jobs(&[&bus], 1).await?;
    timeline.print("parallel handlers: both start together, second ends first");

    // first completion: the first handler to return a value wins, the others are cancelled.
    let timeline = Timeline::new();
    let bus = EventBus::builder("First")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .event_handler_completion(HandlerCompletion::First)
        .build();
    worker(&bus, &timeline, "slow_source", 50);
    worker(&bus, &timeline, "fast_source", 10);
    let event = bus.dispatch(Job { id: 0 })?;
    let winner = event.race().await?;
    timeline.print("first completion: the slow source never ends");
    println!("  winner: {winner:?}");
    for result in event.event_results() {
        let outcome = match (&result.result, &result.error) {
            (Some(value), _) => format!("returned {value:?}"),
            (None, Some(err)) => err.to_string(),
            (None, None) => "no value".to_owned(),
        };
        println!("  {}: {outcome}", result.handler_name);
    }
    Ok(())
}
