//! Awaiting an event's handle from outside any tokio runtime: a thread with no runtime, polling
//! with `futures::executor::block_on`, while the bus runs on a runtime elsewhere.
//!
//! Outside a handler an await only waits for the completion notification; processing an event in
//! the awaiting task is reserved for tokio runtimes (docs/ARCHITECTURE.md, "Awaiting and
//! queue-jump"). So from a plain thread the await must resolve, the event having been processed
//! by its bus's run loop on the bus's runtime, and its results must read as they would inside
//! one.

use std::future::IntoFuture;
use std::sync::mpsc;
use std::thread;

use bubus::{EventBus, EventHandle, EventStatus, WaitError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct Job {
    n: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct Step {
    n: u64,
}

/// The handlers answer with the name of the thread they ran on, so a test can tell where an
/// event was processed. `Job` dispatches a `Step` and awaits it (a queue-jump on the bus's
/// runtime).
fn bus_on_current_runtime(name: &str) -> EventBus {
    let bus = EventBus::new(name);
    bus.on(|step: EventHandle<Step>| format!("step {} on {}", step.n, thread_name()));
    bus.on(|job: EventHandle<Job>| async move {
        let bus = job.event_bus().expect("the handler's bus");
        let step = bus
            .dispatch(Step { n: job.n * 10 })
            .expect("dispatch the step");
        let step = step.event_result().await.expect("the step's result");
        format!("job {} on {} after {step}", job.n, thread_name())
    });
    bus
}

fn thread_name() -> String {
    thread::current().name().unwrap_or("unnamed").to_owned()
}

/// Awaits `job` on a new thread with no runtime (`block_on` from the `futures` crate) and
/// returns what the awaited handle reports.
fn await_on_plain_thread(job: EventHandle<Job>) -> (EventStatus, String) {
    thread::Builder::new()
        .name("plain".into())
        .spawn(move || {
            assert!(tokio::runtime::Handle::try_current().is_err());
            futures::executor::block_on(async move {
                let job = job.await.expect("the awaited job");
                let status = job.event_status();
                (status, job.event_result().await.expect("the job's result"))
            })
        })
        .expect("spawn the awaiting thread")
        .join()
        .expect("the awaiting thread")
}

#[test]
fn await_from_a_plain_thread_while_the_bus_runs_on_a_multi_thread_runtime() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bus-worker")
        .enable_all()
        .build()
        .expect("runtime");
    let job = {
        let _entered = runtime.enter();
        let bus = bus_on_current_runtime("OutsideMulti");
        bus.dispatch(Job { n: 7 }).expect("dispatch")
    };
    let (status, result) = await_on_plain_thread(job);
    assert_eq!(status, EventStatus::Completed);
    assert_eq!(result, "job 7 on bus-worker after step 70 on bus-worker");
}

#[test]
fn await_from_a_plain_thread_while_the_bus_runs_on_a_current_thread_runtime_elsewhere() {
    let (handles, received) = mpsc::channel();
    let (finished, done) = tokio::sync::oneshot::channel::<()>();
    let runtime_thread = thread::Builder::new()
        .name("bus-runtime".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let bus = bus_on_current_runtime("OutsideCurrent");
                let jobs: Vec<_> = (1..=3)
                    .map(|n| bus.dispatch(Job { n }).expect("dispatch"))
                    .collect();
                handles.send(jobs).expect("hand the jobs over");
                // The runtime (and so the bus's run loop) runs until the other thread has its
                // results.
                done.await.expect("the awaiting side's signal");
            });
        })
        .expect("spawn the runtime thread");
    let jobs = received.recv().expect("the dispatched jobs");
    assert!(tokio::runtime::Handle::try_current().is_err());
    let results: Vec<_> = futures::executor::block_on(async {
        let mut results = Vec::new();
        // The last one first: awaiting it does not depend on the others being awaited.
        for job in jobs.into_iter().rev() {
            let job = job.await.expect("the awaited job");
            assert_eq!(job.event_status(), EventStatus::Completed);
            results.push(job.event_result().await.expect("the job's result"));
        }
        results
    });
    finished
        .send(())
        .expect("the runtime thread waits for the signal");
    runtime_thread.join().expect("the runtime thread");
    assert_eq!(
        results,
        [3, 2, 1].map(|n| format!(
            "job {n} on bus-runtime after step {} on bus-runtime",
            n * 10
        ))
    );
}

#[test]
fn awaiting_an_event_never_dispatched_outside_any_runtime_fails_at_once() {
    let job = EventHandle::new(Job { n: 1 });
    let err = futures::executor::block_on(job.into_future()).expect_err("never dispatched");
    assert!(matches!(err, WaitError::NotDispatched { .. }), "{err:?}");
}
