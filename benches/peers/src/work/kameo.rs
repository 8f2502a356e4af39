//! The workloads on kameo: one actor answering `ask`s (the batch enqueues its asks, then awaits
//! the replies), one actor per handler for W2, `tell`s then an `ask` behind them for W3 (a
//! mailbox is FIFO). Actors are spawned with kameo's default mailbox (bounded, 64).

use std::ops::Range;

use kameo::Actor;
use kameo::actor::{ActorRef, Spawn};
use kameo::message::{Context, Message};

use super::{Plan, fail, reply, value, weight};
use crate::{Measured, Work, timed};

/// W1 and W3's actor; W2's actors answer `value + weight`.
#[derive(Debug, Actor)]
pub struct Responder {
    weight: u64,
    sum: u64,
}

/// W1 and W2's request.
#[derive(Debug)]
pub struct Request(pub u64);

/// W3's message.
#[derive(Debug)]
pub struct Notice(pub u64);

/// W3's barrier: answers the sum so far.
#[derive(Debug)]
pub struct Barrier;

impl Message<Request> for Responder {
    type Reply = u64;

    async fn handle(&mut self, msg: Request, _ctx: &mut Context<Self, u64>) -> u64 {
        if self.weight == 0 {
            reply(msg.0)
        } else {
            msg.0 + self.weight
        }
    }
}

impl Message<Notice> for Responder {
    type Reply = ();

    async fn handle(&mut self, msg: Notice, _ctx: &mut Context<Self, ()>) {
        self.sum += msg.0;
    }
}

impl Message<Barrier> for Responder {
    type Reply = u64;

    async fn handle(&mut self, _msg: Barrier, _ctx: &mut Context<Self, u64>) -> u64 {
        self.sum
    }
}

/// Runs `work`.
///
/// # Errors
///
/// A failed send or reply.
pub async fn run(work: Work, plan: Plan) -> Result<Measured, String> {
    let weights: Vec<u64> = match work {
        Work::W2 => (0..plan.width).map(weight).collect(),
        _ => vec![0],
    };
    let actors: Vec<ActorRef<Responder>> = weights
        .into_iter()
        .map(|weight| Responder::spawn(Responder { weight, sum: 0 }))
        .collect();
    let pass = |range: Range<u64>| {
        let actors = &actors;
        async move {
            match work {
                Work::W1Seq => w1_seq(&actors[0], range).await,
                Work::W1Batch => w1_batch(&actors[0], range, plan.width).await,
                Work::W2 => w2(actors, range).await,
                Work::W3 => w3(&actors[0], range).await,
            }
        }
    };
    pass(plan.warmup_range()).await?;
    let (checksum, elapsed) = timed(pass(plan.timed_range())).await;
    let mut checksum = checksum?;
    if work == Work::W3 {
        // The barrier answered the sum over both passes.
        checksum -= super::w3_expected(plan.warmup_range());
    }
    for actor in &actors {
        actor.stop_gracefully().await.map_err(fail("stop"))?;
    }
    for actor in &actors {
        actor.wait_for_shutdown().await;
    }
    Ok(Measured { elapsed, checksum })
}

async fn w1_seq(actor: &ActorRef<Responder>, range: Range<u64>) -> Result<u64, String> {
    let mut checksum = 0;
    for i in range {
        checksum += actor.ask(Request(value(i))).await.map_err(fail("ask"))?;
    }
    Ok(checksum)
}

async fn w1_batch(
    actor: &ActorRef<Responder>,
    range: Range<u64>,
    batch: u64,
) -> Result<u64, String> {
    let mut checksum = 0;
    let mut pending = Vec::with_capacity(batch as usize);
    let mut i = range.start;
    while i < range.end {
        let end = (i + batch).min(range.end);
        for k in i..end {
            pending.push(
                actor
                    .ask(Request(value(k)))
                    .enqueue()
                    .await
                    .map_err(fail("enqueue"))?,
            );
        }
        for answer in pending.drain(..) {
            checksum += answer.await.map_err(fail("reply"))?;
        }
        i = end;
    }
    Ok(checksum)
}

async fn w2(actors: &[ActorRef<Responder>], range: Range<u64>) -> Result<u64, String> {
    let mut checksum = 0;
    let mut pending = Vec::with_capacity(actors.len());
    for i in range {
        for actor in actors {
            pending.push(
                actor
                    .ask(Request(value(i)))
                    .enqueue()
                    .await
                    .map_err(fail("enqueue"))?,
            );
        }
        let mut results = Vec::with_capacity(actors.len());
        for answer in pending.drain(..) {
            results.push(answer.await.map_err(fail("reply"))?);
        }
        checksum += results.iter().sum::<u64>();
    }
    Ok(checksum)
}

async fn w3(actor: &ActorRef<Responder>, range: Range<u64>) -> Result<u64, String> {
    for i in range {
        actor.tell(Notice(value(i))).await.map_err(fail("tell"))?;
    }
    actor.ask(Barrier).await.map_err(fail("ask"))
}
