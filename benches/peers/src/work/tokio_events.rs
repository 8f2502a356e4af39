//! The workloads on tokio-events: its own request/reply (`request` / `respond`) for W1 (the batch
//! keeps its requests in flight together, joined), closures for W2 and W3. It has no results per
//! handler and no wait until idle: a W2 message carries an unbounded channel for the results,
//! and W3 counts handled messages ([`Progress`]).

use std::ops::Range;
use std::sync::Arc;

use futures::future::try_join_all;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_events::{Event, EventBus, EventBusBuilder};

use super::progress::Progress;
use super::{Plan, fail, reply, value, weight};
use crate::{Measured, Work, timed};

/// W1's request.
#[derive(Clone, Debug, Serialize, Deserialize, tokio_events::Event)]
pub struct PeerRequest {
    value: u64,
}

/// W1's reply.
#[derive(Clone, Debug, Serialize, Deserialize, tokio_events::Event)]
pub struct PeerReply {
    value: u64,
}

/// W2's message, with the channel every handler's result goes back on.
#[derive(Clone, Debug)]
pub struct PeerFanout {
    value: u64,
    results: mpsc::UnboundedSender<u64>,
}

// In process only: it never crosses a wire, so it has no encoding.
impl Event for PeerFanout {
    fn event_type() -> &'static str {
        "PeerFanout"
    }

    fn serialize_event(&self) -> tokio_events::Result<Vec<u8>> {
        Err(tokio_events::Error::internal(
            "PeerFanout is in-process only",
        ))
    }

    fn deserialize_event(_bytes: &[u8]) -> tokio_events::Result<Self> {
        Err(tokio_events::Error::internal(
            "PeerFanout is in-process only",
        ))
    }
}

/// W3's message.
#[derive(Clone, Debug, Serialize, Deserialize, tokio_events::Event)]
pub struct PeerNotice {
    value: u64,
}

/// Runs `work`.
///
/// # Errors
///
/// A failed subscription, publish or request.
pub async fn run(work: Work, plan: Plan) -> Result<Measured, String> {
    let bus = EventBusBuilder::new()
        .build()
        .await
        .map_err(fail("build"))?;
    let mut subscriptions = Vec::new();
    let progress = Arc::new(Progress::default());
    match work {
        Work::W1Seq | Work::W1Batch => subscriptions.push(
            bus.respond(|request: PeerRequest| async move {
                PeerReply {
                    value: reply(request.value),
                }
            })
            .await
            .map_err(fail("respond"))?,
        ),
        Work::W2 => {
            for j in 0..plan.width {
                let w = weight(j);
                subscriptions.push(
                    bus.subscribe(move |message: PeerFanout| async move {
                        let _ = message.results.send(message.value + w);
                    })
                    .await
                    .map_err(fail("subscribe"))?,
                );
            }
        }
        Work::W3 => {
            let p = Arc::clone(&progress);
            subscriptions.push(
                bus.subscribe(move |message: PeerNotice| {
                    p.handled(message.value);
                    async {}
                })
                .await
                .map_err(fail("subscribe"))?,
            );
        }
    }
    let pass = |range: Range<u64>| {
        let (bus, progress) = (&bus, &progress);
        async move {
            match work {
                Work::W1Seq | Work::W1Batch => w1(bus, range, plan.width).await,
                Work::W2 => w2(bus, range, plan.width).await,
                Work::W3 => w3(bus, progress, range).await,
            }
        }
    };
    pass(plan.warmup_range()).await?;
    let before = progress.sum();
    let (checksum, elapsed) = timed(pass(plan.timed_range())).await;
    let checksum = match work {
        Work::W3 => checksum.map(|_| progress.sum() - before)?,
        _ => checksum?,
    };
    for subscription in subscriptions {
        bus.unsubscribe(subscription)
            .await
            .map_err(fail("unsubscribe"))?;
    }
    Ok(Measured { elapsed, checksum })
}

async fn request(bus: &EventBus, i: u64) -> Result<u64, String> {
    let answer: PeerReply = bus
        .request(PeerRequest { value: value(i) })
        .await
        .map_err(fail("request"))?;
    Ok(answer.value)
}

async fn w1(bus: &EventBus, range: Range<u64>, batch: u64) -> Result<u64, String> {
    let mut checksum = 0;
    if batch <= 1 {
        for i in range {
            checksum += request(bus, i).await?;
        }
        return Ok(checksum);
    }
    let mut i = range.start;
    while i < range.end {
        let end = (i + batch).min(range.end);
        let answers = try_join_all((i..end).map(|k| request(bus, k))).await?;
        checksum += answers.iter().sum::<u64>();
        i = end;
    }
    Ok(checksum)
}

async fn w2(bus: &EventBus, range: Range<u64>, handlers: u64) -> Result<u64, String> {
    let mut checksum = 0;
    for i in range {
        let (results, mut received) = mpsc::unbounded_channel();
        bus.publish(PeerFanout {
            value: value(i),
            results,
        })
        .await
        .map_err(fail("publish"))?;
        let mut collected = Vec::with_capacity(handlers as usize);
        while (collected.len() as u64) < handlers {
            collected.push(received.recv().await.ok_or("results channel closed")?);
        }
        checksum += collected.iter().sum::<u64>();
    }
    Ok(checksum)
}

async fn w3(bus: &EventBus, progress: &Progress, range: Range<u64>) -> Result<u64, String> {
    let end = range.end;
    for i in range {
        bus.publish(PeerNotice { value: value(i) })
            .await
            .map_err(fail("publish"))?;
    }
    progress.expect(end);
    progress.wait().await;
    Ok(0)
}
