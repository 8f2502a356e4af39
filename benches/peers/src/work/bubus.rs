//! The workloads on bubus: one bus with S1's history bound (512, dropping the oldest), the
//! handlers sync closures returning their answer, results read with the result helpers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bubus::bus::HistoryFull;
use bubus::{Event, EventBus, EventHandle, handler::HandlerOptions};
use serde::{Deserialize, Serialize};

use super::{Plan, fail, reply, value, weight};
use crate::{Measured, Work, timed};

/// W1's request.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
pub struct PeerRequest {
    /// The request's value.
    pub value: u64,
}

/// W2's message.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
pub struct PeerFanout {
    /// The message's value.
    pub value: u64,
}

/// W3's message.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
pub struct PeerNotice {
    /// The message's value.
    pub value: u64,
}

fn bus() -> EventBus {
    EventBus::builder("PeersBus")
        .max_history_size(Some(bubus_benches::harness::HISTORY_LIMIT_STREAM))
        .history_full(HistoryFull::DropOldest)
        .build()
}

/// Runs `work`.
///
/// # Errors
///
/// A failed dispatch or result.
pub async fn run(work: Work, plan: Plan) -> Result<Measured, String> {
    let bus = bus();
    let measured = match work {
        Work::W1Seq | Work::W1Batch => {
            bus.on(|event: EventHandle<PeerRequest>| reply(event.value));
            w1(&bus, plan.warmup_range(), plan.width).await?;
            let (checksum, elapsed) = timed(w1(&bus, plan.timed_range(), plan.width)).await;
            Measured {
                elapsed,
                checksum: checksum?,
            }
        }
        Work::W2 => {
            for j in 0..plan.width {
                let w = weight(j);
                // Unique names: registration under one closure's default name probes ids one by
                // one (issue 20), which is not what this measures.
                bus.on_with(
                    move |event: EventHandle<PeerFanout>| event.value + w,
                    HandlerOptions::new().name(format!("fanout_{j}")),
                );
            }
            w2(&bus, plan.warmup_range()).await?;
            let (checksum, elapsed) = timed(w2(&bus, plan.timed_range())).await;
            Measured {
                elapsed,
                checksum: checksum?,
            }
        }
        Work::W3 => {
            let sum = Arc::new(AtomicU64::new(0));
            let s = Arc::clone(&sum);
            bus.on(move |event: EventHandle<PeerNotice>| {
                s.fetch_add(event.value, Ordering::Relaxed);
            });
            w3(&bus, plan.warmup_range()).await?;
            let before = sum.load(Ordering::Relaxed);
            let (done, elapsed) = timed(w3(&bus, plan.timed_range())).await;
            done?;
            Measured {
                elapsed,
                checksum: sum.load(Ordering::Relaxed) - before,
            }
        }
    };
    bus.stop_and_clear(Some(std::time::Duration::ZERO)).await;
    Ok(measured)
}

async fn w1(bus: &EventBus, range: std::ops::Range<u64>, batch: u64) -> Result<u64, String> {
    let mut checksum = 0;
    if batch <= 1 {
        for i in range {
            let event = bus
                .dispatch(PeerRequest { value: value(i) })
                .map_err(fail("dispatch"))?;
            checksum += event.event_result().await.map_err(fail("event_result"))?;
        }
        return Ok(checksum);
    }
    let mut pending = Vec::with_capacity(batch as usize);
    let mut i = range.start;
    while i < range.end {
        let end = (i + batch).min(range.end);
        for k in i..end {
            pending.push(
                bus.dispatch(PeerRequest { value: value(k) })
                    .map_err(fail("dispatch"))?,
            );
        }
        for event in pending.drain(..) {
            checksum += event.event_result().await.map_err(fail("event_result"))?;
        }
        i = end;
    }
    Ok(checksum)
}

async fn w2(bus: &EventBus, range: std::ops::Range<u64>) -> Result<u64, String> {
    let mut checksum = 0;
    for i in range {
        let event = bus
            .dispatch(PeerFanout { value: value(i) })
            .map_err(fail("dispatch"))?;
        let results = event
            .event_results_list()
            .await
            .map_err(fail("event_results_list"))?;
        checksum += results.iter().sum::<u64>();
    }
    Ok(checksum)
}

async fn w3(bus: &EventBus, range: std::ops::Range<u64>) -> Result<(), String> {
    for i in range {
        // Fire and forget: the handle is dropped at once.
        drop(
            bus.dispatch(PeerNotice { value: value(i) })
                .map_err(fail("dispatch"))?,
        );
    }
    bus.wait_until_idle(None).await;
    Ok(())
}
