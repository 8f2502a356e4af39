//! The workloads on jaeb with async handlers (each invocation is a task of the bus). jaeb has no
//! replies and no wait until idle: a request carries a oneshot for its reply, a W2 message an
//! unbounded channel for the results, and W3 counts handled messages ([`Progress`]).

use std::ops::Range;
use std::sync::{Arc, Mutex};

use jaeb::{EventBus, EventHandler, HandlerResult};
use tokio::sync::{mpsc, oneshot};

use super::progress::Progress;
use super::{Plan, fail, reply, value, weight};
use crate::{Measured, Work, timed};

/// W1's request, with the channel its reply goes back on.
#[derive(Debug)]
pub struct Request {
    value: u64,
    reply: Mutex<Option<oneshot::Sender<u64>>>,
}

/// W2's message, with the channel every handler's result goes back on.
#[derive(Debug)]
pub struct Fanout {
    value: u64,
    results: mpsc::UnboundedSender<u64>,
}

/// W3's message.
#[derive(Debug)]
pub struct Notice {
    value: u64,
}

struct Responder;

impl EventHandler<Request> for Responder {
    async fn handle(&self, event: &Request, _bus: &EventBus) -> HandlerResult {
        let sender = event.reply.lock().map_err(|_| "poisoned")?.take();
        if let Some(sender) = sender {
            let _ = sender.send(reply(event.value));
        }
        Ok(())
    }
}

struct Weighted(u64);

impl EventHandler<Fanout> for Weighted {
    async fn handle(&self, event: &Fanout, _bus: &EventBus) -> HandlerResult {
        let _ = event.results.send(event.value + self.0);
        Ok(())
    }
}

struct Counter(Arc<Progress>);

impl EventHandler<Notice> for Counter {
    async fn handle(&self, event: &Notice, _bus: &EventBus) -> HandlerResult {
        self.0.handled(event.value);
        Ok(())
    }
}

/// Runs `work`.
///
/// # Errors
///
/// A failed subscription, publish or reply.
pub async fn run(work: Work, plan: Plan) -> Result<Measured, String> {
    let bus = EventBus::builder().build().await.map_err(fail("build"))?;
    let mut subscriptions = Vec::new();
    let progress = Arc::new(Progress::default());
    match work {
        Work::W1Seq | Work::W1Batch => subscriptions.push(
            bus.subscribe::<Request, _, _>(Responder)
                .await
                .map_err(fail("subscribe"))?,
        ),
        Work::W2 => {
            for j in 0..plan.width {
                subscriptions.push(
                    bus.subscribe::<Fanout, _, _>(Weighted(weight(j)))
                        .await
                        .map_err(fail("subscribe"))?,
                );
            }
        }
        Work::W3 => subscriptions.push(
            bus.subscribe::<Notice, _, _>(Counter(Arc::clone(&progress)))
                .await
                .map_err(fail("subscribe"))?,
        ),
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
    drop(subscriptions);
    bus.shutdown().await.map_err(fail("shutdown"))?;
    Ok(Measured { elapsed, checksum })
}

async fn w1(bus: &EventBus, range: Range<u64>, batch: u64) -> Result<u64, String> {
    let mut checksum = 0;
    let mut pending = Vec::with_capacity(batch as usize);
    let mut i = range.start;
    while i < range.end {
        let end = (i + batch.max(1)).min(range.end);
        for k in i..end {
            let (sender, answer) = oneshot::channel();
            bus.publish(Request {
                value: value(k),
                reply: Mutex::new(Some(sender)),
            })
            .await
            .map_err(fail("publish"))?;
            pending.push(answer);
        }
        for answer in pending.drain(..) {
            checksum += answer.await.map_err(fail("reply"))?;
        }
        i = end;
    }
    Ok(checksum)
}

async fn w2(bus: &EventBus, range: Range<u64>, handlers: u64) -> Result<u64, String> {
    let mut checksum = 0;
    for i in range {
        let (results, mut received) = mpsc::unbounded_channel();
        bus.publish(Fanout {
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
        bus.publish(Notice { value: value(i) })
            .await
            .map_err(fail("publish"))?;
    }
    progress.expect(end);
    progress.wait().await;
    Ok(0)
}
