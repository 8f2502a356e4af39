//! The workloads on ractor: one actor answering requests through reply ports (W1: `call`, and
//! reply ports sent with `cast` for the batch), one actor per handler for W2, `cast` then a
//! `call` behind the casts for W3 (a mailbox is FIFO, so its answer means every cast was handled).

use std::ops::Range;

use ractor::concurrency::{JoinHandle, oneshot};
use ractor::rpc::CallResult;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use super::{Plan, fail, reply, value, weight};
use crate::{Measured, Work, timed};

/// What the actors take.
#[derive(Debug)]
pub enum PeerMsg {
    /// W1 and W2: answer through the port.
    Request(u64, RpcReplyPort<u64>),
    /// W3: add to the sum.
    Notice(u64),
    /// W3: answer once everything before it was handled.
    Barrier(RpcReplyPort<u64>),
}

/// W1 and W3's actor (its state is W3's sum); W2's actors answer `value + weight`.
#[derive(Debug)]
pub struct Responder;

impl Actor for Responder {
    type Msg = PeerMsg;
    /// W2's weight (0 for W1), and W3's sum.
    type State = (u64, u64);
    type Arguments = u64;

    async fn pre_start(
        &self,
        _myself: ActorRef<PeerMsg>,
        weight: u64,
    ) -> Result<(u64, u64), ActorProcessingErr> {
        Ok((weight, 0))
    }

    async fn handle(
        &self,
        _myself: ActorRef<PeerMsg>,
        msg: PeerMsg,
        state: &mut (u64, u64),
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            PeerMsg::Request(v, port) => {
                let answer = if state.0 == 0 { reply(v) } else { v + state.0 };
                let _ = port.send(answer);
            }
            PeerMsg::Notice(v) => state.1 += v,
            PeerMsg::Barrier(port) => {
                let _ = port.send(state.1);
            }
        }
        Ok(())
    }
}

async fn spawn(weight: u64) -> Result<(ActorRef<PeerMsg>, JoinHandle<()>), String> {
    Actor::spawn(None, Responder, weight)
        .await
        .map_err(fail("spawn"))
}

/// Runs `work`.
///
/// # Errors
///
/// A failed spawn, send or reply.
pub async fn run(work: Work, plan: Plan) -> Result<Measured, String> {
    let mut actors = Vec::new();
    match work {
        Work::W2 => {
            for j in 0..plan.width {
                actors.push(spawn(weight(j)).await?);
            }
        }
        _ => actors.push(spawn(0).await?),
    }
    let refs: Vec<ActorRef<PeerMsg>> = actors.iter().map(|(a, _)| a.clone()).collect();
    let pass = |range: Range<u64>| {
        let refs = &refs;
        async move {
            match work {
                Work::W1Seq => w1_seq(&refs[0], range).await,
                Work::W1Batch => w1_batch(&refs[0], range, plan.width).await,
                Work::W2 => w2(refs, range).await,
                Work::W3 => w3(&refs[0], range).await,
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
    for (actor, handle) in actors {
        actor.stop(None);
        handle.await.map_err(fail("join"))?;
    }
    Ok(Measured { elapsed, checksum })
}

async fn w1_seq(actor: &ActorRef<PeerMsg>, range: Range<u64>) -> Result<u64, String> {
    let mut checksum = 0;
    for i in range {
        let answer = actor
            .call(|port| PeerMsg::Request(value(i), port), None)
            .await
            .map_err(fail("call"))?;
        checksum += success(answer)?;
    }
    Ok(checksum)
}

async fn w1_batch(actor: &ActorRef<PeerMsg>, range: Range<u64>, batch: u64) -> Result<u64, String> {
    let mut checksum = 0;
    let mut pending = Vec::with_capacity(batch as usize);
    let mut i = range.start;
    while i < range.end {
        let end = (i + batch).min(range.end);
        for k in i..end {
            let (port, answer) = oneshot();
            actor
                .cast(PeerMsg::Request(value(k), port.into()))
                .map_err(fail("cast"))?;
            pending.push(answer);
        }
        for answer in pending.drain(..) {
            checksum += answer.await.map_err(fail("reply"))?;
        }
        i = end;
    }
    Ok(checksum)
}

async fn w2(actors: &[ActorRef<PeerMsg>], range: Range<u64>) -> Result<u64, String> {
    let mut checksum = 0;
    let mut pending = Vec::with_capacity(actors.len());
    for i in range {
        for actor in actors {
            let (port, answer) = oneshot();
            actor
                .cast(PeerMsg::Request(value(i), port.into()))
                .map_err(fail("cast"))?;
            pending.push(answer);
        }
        let mut results = Vec::with_capacity(actors.len());
        for answer in pending.drain(..) {
            results.push(answer.await.map_err(fail("reply"))?);
        }
        checksum += results.iter().sum::<u64>();
    }
    Ok(checksum)
}

async fn w3(actor: &ActorRef<PeerMsg>, range: Range<u64>) -> Result<u64, String> {
    for i in range {
        actor
            .cast(PeerMsg::Notice(value(i)))
            .map_err(fail("cast"))?;
    }
    let sum = actor
        .call(PeerMsg::Barrier, None)
        .await
        .map_err(fail("call"))?;
    success(sum)
}

fn success<T>(result: CallResult<T>) -> Result<T, String> {
    match result {
        CallResult::Success(value) => Ok(value),
        CallResult::Timeout => Err("call timed out".to_owned()),
        CallResult::SenderError => Err("the actor dropped the reply port".to_owned()),
    }
}
