//! The floor: the least a tokio program can do for each workload — an unbounded channel to one
//! consumer task that calls the handler(s), a oneshot back for the reply. No ids, no history,
//! no per-handler records, no isolation between handlers.
//!
//! `floor-records` is the same pipeline with one thing bubus does added: every handler run leaves
//! a result record (which handler, an id, a status, when it started and ended, its value or an
//! error slot), and the sender reads the values from the records. W2's "bubus per delivery" is
//! measured against it as well as against the bare floor, whose 10 000 closure calls in a loop
//! keep nothing per handler.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::{Plan, fail, reply, value, weight};
use crate::{Measured, Work, timed};

enum Msg {
    Request(u64, oneshot::Sender<u64>),
    Fanout(u64, oneshot::Sender<Vec<u64>>),
    FanoutRecords(u64, oneshot::Sender<Vec<Record>>),
    Notice(u64),
    Barrier(oneshot::Sender<()>),
}

type Handler = Box<dyn Fn(u64) -> u64 + Send + Sync>;

/// One handler run's result, as `floor-records` keeps it.
#[derive(Debug)]
struct Record {
    handler: u32,
    id: u64,
    status: Status,
    value: Option<u64>,
    error: Option<Box<str>>,
    started_at: Instant,
    completed_at: Instant,
}

#[derive(Debug, PartialEq)]
enum Status {
    Started,
    Completed,
}

/// Runs `handler` (number `index`) on `v`, recording the run.
fn run_recorded(handler: &Handler, index: usize, v: u64, next_id: &mut u64) -> Record {
    *next_id += 1;
    let mut record = Record {
        handler: index as u32,
        id: *next_id,
        status: Status::Started,
        value: None,
        error: None,
        started_at: Instant::now(),
        completed_at: Instant::now(),
    };
    record.value = Some(handler(v));
    record.status = Status::Completed;
    record.completed_at = Instant::now();
    record
}

/// The value a record holds, if it completed without an error.
fn value_of(record: &Record) -> u64 {
    debug_assert!(
        record.completed_at >= record.started_at && record.id > 0 && record.handler < u32::MAX
    );
    match (&record.status, &record.error) {
        (Status::Completed, None) => record.value.unwrap_or(0),
        _ => 0,
    }
}

/// Runs `work`; with `records`, as `floor-records` (see the module docs).
///
/// # Errors
///
/// A channel closed early.
pub async fn run(work: Work, plan: Plan, records: bool) -> Result<Measured, String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let sum = Arc::new(AtomicU64::new(0));
    let handlers: Vec<Handler> = match work {
        _ if records && work != Work::W2 => {
            // One handler, recorded like W2's: W1 replies, W3 adds to the sum.
            let s = Arc::clone(&sum);
            vec![Box::new(move |v: u64| match work {
                Work::W3 => {
                    s.fetch_add(v, Ordering::Relaxed);
                    0
                }
                _ => reply(v),
            }) as Handler]
        }
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
        let mut next_id = 0u64;
        while let Some(msg) = rx.recv().await {
            match msg {
                Msg::Request(v, back) if records => {
                    let record = run_recorded(&handlers[0], 0, v, &mut next_id);
                    let _ = back.send(value_of(&record));
                }
                Msg::Request(v, back) => {
                    let _ = back.send(reply(v));
                }
                Msg::Fanout(v, back) => {
                    let results = handlers.iter().map(|h| h(v)).collect();
                    let _ = back.send(results);
                }
                Msg::FanoutRecords(v, back) => {
                    let mut results = Vec::with_capacity(handlers.len());
                    for (index, handler) in handlers.iter().enumerate() {
                        results.push(run_recorded(handler, index, v, &mut next_id));
                    }
                    let _ = back.send(results);
                }
                Msg::Notice(v) if records => {
                    let record = run_recorded(&handlers[0], 0, v, &mut next_id);
                    std::hint::black_box(record);
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
                Work::W2 if records => w2_records(&tx, range).await,
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

async fn w2_records(
    tx: &mpsc::UnboundedSender<Msg>,
    range: std::ops::Range<u64>,
) -> Result<u64, String> {
    let mut checksum = 0;
    for i in range {
        let (back, answer) = oneshot::channel();
        tx.send(Msg::FanoutRecords(value(i), back))
            .map_err(|_| "consumer gone")?;
        let records = answer.await.map_err(fail("results"))?;
        checksum += records.iter().map(value_of).sum::<u64>();
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
