//! What the mirror costs the bus: `cargo run --release -p bubus-sqlite --example throughput`.
//!
//! Dispatches and awaits events one at a time (one sync handler each: 6 rows per event) on a bus
//! without a mirror, with a middleware that only builds the rows' JSON, with a background-writer
//! mirror and with an inline mirror, and prints the time per event. The background mirror runs
//! twice: a burst that fits in its queue (the hooks' cost), and a long run that does not (the
//! writer's pace: hooks wait for it). For both it prints how long the writer needed to catch up
//! after the last event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bubus::middleware::Middleware;
use bubus::{AnyEvent, DynEvent, EventBus, EventResult, EventStatus};
use bubus_sqlite::{MirrorOptions, SqliteHistoryMirror, WriteMode};
use serde_json::{Value, json};

/// Fits in the default queue (16 384 rows).
const BURST: u32 = 2_000;
/// Does not.
const SUSTAINED: u32 = 20_000;

/// Builds the same JSON the mirror's rows hold, and drops it: the hooks' share of the cost.
struct SerializeOnly;

impl Middleware for SerializeOnly {
    fn on_event_change(&self, bus: &EventBus, event: &AnyEvent, _status: EventStatus) {
        std::hint::black_box((event.to_json_string(), bus.label().to_owned()));
    }

    fn on_event_result_change(
        &self,
        bus: &EventBus,
        _event: &AnyEvent,
        result: &EventResult<Value>,
        _status: EventStatus,
    ) {
        std::hint::black_box((result.to_json().to_string(), bus.label().to_owned()));
    }
}

async fn run(
    mirror: Option<Arc<dyn Middleware>>,
    events: u32,
) -> Result<Duration, Box<dyn std::error::Error>> {
    let mut builder = EventBus::builder("Throughput").max_history_size(Some(1_000));
    if let Some(mirror) = mirror {
        builder = builder.middleware(mirror);
    }
    let bus = builder.build();
    bus.on_pattern("Tick", |_event: AnyEvent| json!("ok"));
    let started = Instant::now();
    for n in 0..events {
        let event = DynEvent::new("Tick", json!({ "n": n }))?;
        bus.dispatch(event)?.await?;
    }
    Ok(started.elapsed())
}

fn per_event(elapsed: Duration, events: u32) -> String {
    format!("{:.1} µs", elapsed.as_secs_f64() * 1e6 / f64::from(events))
}

async fn background(dir: &std::path::Path, events: u32) -> Result<(), Box<dyn std::error::Error>> {
    let mirror = Arc::new(SqliteHistoryMirror::open(
        dir.join(format!("background-{events}.sqlite3")),
    )?);
    let elapsed = run(Some(mirror.clone()), events).await?;
    let flush_started = Instant::now();
    mirror.flush()?;
    let catch_up = flush_started.elapsed();
    println!(
        "background, {events:>6} events: {} per event in the bus; writer done {:.0} ms after \
         the last event ({:.0} rows/s overall)",
        per_event(elapsed, events),
        catch_up.as_secs_f64() * 1e3,
        f64::from(events) * 6.0 / (elapsed + catch_up).as_secs_f64()
    );
    mirror.close();
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("bubus-sqlite-throughput-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    let plain = run(None, BURST).await?;
    println!(
        "no mirror:                  {} per event",
        per_event(plain, BURST)
    );
    let serialize = run(Some(Arc::new(SerializeOnly)), BURST).await?;
    println!(
        "rows built, not kept:       {} per event",
        per_event(serialize, BURST)
    );

    background(&dir, BURST).await?;
    background(&dir, SUSTAINED).await?;

    let inline = Arc::new(SqliteHistoryMirror::open_with(
        dir.join("inline.sqlite3"),
        MirrorOptions::new().write_mode(WriteMode::Inline),
    )?);
    let elapsed = run(Some(inline.clone()), BURST).await?;
    println!(
        "inline:                     {} per event",
        per_event(elapsed, BURST)
    );
    inline.close();

    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}
