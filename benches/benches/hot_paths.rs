//! Micro-benchmarks of bubus's hot operations, on a current-thread tokio runtime:
//!
//! * `dispatch_await/{1,10}_handlers` — dispatch one event and await it, with 1 or 10 sync handlers;
//! * `queue_jump/child` — a parent whose async handler dispatches a child and awaits it (the child
//!   jumps the queue); compare with `dispatch_await/1_handlers` for the jump's own cost;
//! * `forward/3_buses` — dispatch on A, forwarded A → B → C, one handler on C, await;
//! * `find/10k_history/{newest,oldest}` — `find` in a 10 000-event history: the most recent match,
//!   and a match on the oldest event (a full scan);
//! * `json/{encode,decode}` — a completed event to its wire JSON text, and back.
//!
//! `cargo bench -p bubus-benches` runs them; `cargo test` runs each once, as a check.

use std::hint::black_box;

use bubus::bus::HistoryFull;
use bubus::{AnyEvent, Event, EventBus, EventHandle};
use criterion::{Criterion, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
struct Ping {
    n: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
struct Parent {
    n: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
struct Child {
    n: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct UserLoginEvent {
    username: String,
    is_admin: bool,
    attempt: u64,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime")
}

/// A bus that keeps a small history, so millions of iterations stay in bounded memory.
fn bench_bus(name: &str) -> EventBus {
    EventBus::builder(name)
        .max_history_size(Some(128))
        .history_full(HistoryFull::DropOldest)
        .build()
}

fn dispatch_await(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("dispatch_await");
    for handlers in [1u64, 10] {
        let bus = bench_bus("DispatchBus");
        for k in 0..handlers {
            bus.on(move |e: EventHandle<Ping>| e.n + k);
        }
        let bus = &bus;
        group.bench_function(format!("{handlers}_handlers"), |b| {
            b.to_async(&rt).iter(|| async move {
                let event = bus.dispatch(Ping { n: 1 }).expect("dispatch");
                black_box(event.await.expect("completes"))
            });
        });
    }
    group.finish();
}

fn queue_jump(c: &mut Criterion) {
    let rt = runtime();
    let bus = bench_bus("QueueJumpBus");
    bus.on(|e: EventHandle<Parent>| async move {
        let bus = e.event_bus().expect("a handler runs on a bus");
        let child = bus.dispatch(Child { n: e.n })?;
        // Awaiting inside the handler processes the child right now, ahead of the queue.
        let child = child.await?;
        Ok::<_, bubus::Error>(child.n)
    });
    bus.on(|e: EventHandle<Child>| e.n + 1);
    let bus = &bus;
    c.bench_function("queue_jump/child", |b| {
        b.to_async(&rt).iter(|| async move {
            let event = bus.dispatch(Parent { n: 1 }).expect("dispatch");
            black_box(event.await.expect("completes"))
        });
    });
}

fn forward(c: &mut Criterion) {
    let rt = runtime();
    let (a, b_bus, c_bus) = (bench_bus("A"), bench_bus("B"), bench_bus("C"));
    a.forward_to(&b_bus);
    b_bus.forward_to(&c_bus);
    c_bus.on(|e: EventHandle<Ping>| e.n);
    let a = &a;
    c.bench_function("forward/3_buses", |b| {
        b.to_async(&rt).iter(|| async move {
            let event = a.dispatch(Ping { n: 1 }).expect("dispatch");
            black_box(event.await.expect("completes"))
        });
    });
}

fn find(c: &mut Criterion) {
    const HISTORY: u64 = 10_000;
    let rt = runtime();
    let bus = EventBus::builder("FindBus")
        .max_history_size(Some(HISTORY as usize))
        .build();
    bus.on(|e: EventHandle<Ping>| e.n);
    rt.block_on(async {
        for n in 0..HISTORY {
            bus.dispatch(Ping { n }).expect("dispatch");
        }
        bus.wait_until_idle(None).await;
    });
    assert_eq!(bus.event_history().len() as u64, HISTORY);
    let bus = &bus;
    let mut group = c.benchmark_group("find/10k_history");
    group.bench_function("newest", |b| {
        b.to_async(&rt).iter(|| async move {
            let found = bus.find::<Ping>().await.expect("a match");
            black_box(found.n)
        });
    });
    group.bench_function("oldest", |b| {
        b.to_async(&rt).iter(|| async move {
            let found = bus
                .find::<Ping>()
                .matching(|e| e.n == 0)
                .await
                .expect("a match");
            black_box(found.n)
        });
    });
    group.finish();
}

fn json(c: &mut Criterion) {
    let rt = runtime();
    let bus = bench_bus("JsonBus");
    bus.on(|e: EventHandle<UserLoginEvent>| format!("{} logged in", e.username));
    let event = rt
        .block_on(async {
            bus.dispatch(UserLoginEvent {
                username: "alice".into(),
                is_admin: true,
                attempt: 3,
            })
            .expect("dispatch")
            .await
        })
        .expect("completes");
    let text = event.to_json_string();
    AnyEvent::from_json_str(&text).expect("the wire JSON decodes");

    let mut group = c.benchmark_group("json");
    group.bench_function("encode", |b| b.iter(|| black_box(event.to_json_string())));
    group.bench_function("decode", |b| {
        b.iter(|| black_box(AnyEvent::from_json_str(black_box(&text)).expect("decodes")))
    });
    group.finish();
}

criterion_group!(benches, dispatch_await, queue_jump, forward, find, json);
criterion_main!(benches);
