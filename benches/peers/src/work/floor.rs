//! The floor: the least a tokio program can do for each workload — an unbounded channel to one
//! consumer task that calls the handler(s), a oneshot back for the reply. No ids, no history,
//! no per-handler records, no isolation between handlers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::{Plan, fail, reply, value, weight};
use crate::{Measured, Work, timed};

enum Msg {
    Request(u64, oneshot::Sender<u64>),
    Fanout(u64, oneshot::Sender<Vec<u64>>),
    Notice(u64),
    Barrier(oneshot::Sender<()>),
}

type Handler = Box<dyn Fn(u64) -> u64 + Send + Sync>;

/// Runs `work`.
///
/// # Errors
///
/// A channel closed early.
pub async fn run(work: Work, plan: Plan) -> Result<Measured, String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let sum = Arc::new(AtomicU64::new(0));
    let handlers: Vec<Handler> = match work {
        Work::W2 => (0..plan.width)
            .map(|j| {
                let w = weight(j);
                Box::new(move |v: u64| v + w) as Handler
            })
            .collect(),
        _ => Vec::new(),
    };
    let s = Arc::clone(&sum);
    let consumer = tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Request(v, back) => {
                    let _ = back.send(reply(v));
                }
                Msg::Fanout(v, back) => {
                    let results = handlers.iter().map(|h| h(v)).collect();
                    let _ = back.send(results);
                }
                Msg::Notice(v) => {
                    s.fetch_add(v, Ordering::Relaxed);
                }
                Msg::Barrier(back) => {
                    let _ = back.send(());
                }
            }
        }
    });
    let pass = |range: std::ops::Range<u64>| {
        let tx = tx.clone();
        async move {
            match work {
                Work::W1Seq | Work::W1Batch => w1(&tx, range, plan.width).await,
                Work::W2 => w2(&tx, range).await,
                Work::W3 => w3(&tx, range).await.map(|()| 0),
            }
        }
    };
    pass(plan.warmup_range()).await?;
    let before = sum.load(Ordering::Relaxed);
    let (checksum, elapsed) = timed(pass(plan.timed_range())).await;
    let checksum = match work {
        Work::W3 => checksum.map(|_| sum.load(Ordering::Relaxed) - before)?,
        _ => checksum?,
    };
    drop(tx);
    consumer.await.map_err(fail("consumer"))?;
    Ok(Measured { elapsed, checksum })
}

async fn w1(
    tx: &mpsc::UnboundedSender<Msg>,
    range: std::ops::Range<u64>,
    batch: u64,
) -> Result<u64, String> {
    let mut checksum = 0;
    let mut pending = Vec::with_capacity(batch as usize);
    let mut i = range.start;
    while i < range.end {
        let end = (i + batch.max(1)).min(range.end);
        for k in i..end {
            let (back, answer) = oneshot::channel();
            tx.send(Msg::Request(value(k), back))
                .map_err(|_| "consumer gone")?;
            pending.push(answer);
        }
        for answer in pending.drain(..) {
            checksum += answer.await.map_err(fail("reply"))?;
        }
        i = end;
    }
    Ok(checksum)
}

async fn w2(tx: &mpsc::UnboundedSender<Msg>, range: std::ops::Range<u64>) -> Result<u64, String> {
    let mut checksum = 0;
    for i in range {
        let (back, answer) = oneshot::channel();
        tx.send(Msg::Fanout(value(i), back))
            .map_err(|_| "consumer gone")?;
        checksum += answer.await.map_err(fail("results"))?.iter().sum::<u64>();
    }
    Ok(checksum)
}

async fn w3(tx: &mpsc::UnboundedSender<Msg>, range: std::ops::Range<u64>) -> Result<(), String> {
    for i in range {
        tx.send(Msg::Notice(value(i)))
            .map_err(|_| "consumer gone")?;
    }
    let (back, idle) = oneshot::channel();
    tx.send(Msg::Barrier(back)).map_err(|_| "consumer gone")?;
    idle.await.map_err(fail("barrier"))
}
