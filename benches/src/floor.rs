//! The floor: a minimal hand-written tokio pipeline doing S1's irreducible work — allocate the
//! event, send it to one consumer task, call one handler, store its result, signal completion —
//! in S1's batches, with S1's checksum. S1's time over the floor's is the overhead of everything
//! bubus does beyond that (ids, timestamps, lineage, history, results, locks).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::harness::{STREAM_BATCH_SIZE, elapsed_ms};
use crate::s1_events::expected_checksum;

struct FloorEvent {
    batch_id: u64,
    value: u64,
    result: AtomicU64,
    done: Option<oneshot::Sender<()>>,
}

/// One floor run.
#[derive(Clone, Debug, PartialEq)]
pub struct FloorOutcome {
    /// Wall time.
    pub total_ms: f64,
    /// Events pushed through.
    pub events: u64,
    /// `Err` when a count or the checksum is wrong.
    pub ok: Result<(), String>,
}

impl FloorOutcome {
    /// Milliseconds per event.
    pub fn ms_per_event(&self) -> f64 {
        self.total_ms / self.events.max(1) as f64
    }
}

/// Pushes `total` events through the pipeline, awaiting each batch of 512 as S1 does.
pub async fn run(total: u64) -> FloorOutcome {
    let (tx, mut rx) = mpsc::unbounded_channel::<Box<FloorEvent>>();
    let checksum = Arc::new(AtomicU64::new(0));
    let processed = Arc::new(AtomicU64::new(0));
    let (c, p) = (Arc::clone(&checksum), Arc::clone(&processed));
    let consumer = tokio::spawn(async move {
        let handler = |e: &FloorEvent| {
            p.fetch_add(1, Ordering::Relaxed);
            c.fetch_add(e.value + e.batch_id, Ordering::Relaxed);
            e.value
        };
        while let Some(mut event) = rx.recv().await {
            let result = handler(&event);
            event.result.store(result, Ordering::Relaxed);
            if let Some(done) = event.done.take() {
                let _ = done.send(());
            }
        }
    });

    let started = Instant::now();
    let mut waiters = Vec::with_capacity(STREAM_BATCH_SIZE as usize);
    let mut i = 0;
    while i < total {
        let end = (i + STREAM_BATCH_SIZE).min(total);
        while i < end {
            let (done, wait) = oneshot::channel();
            let event = Box::new(FloorEvent {
                batch_id: i / STREAM_BATCH_SIZE,
                value: (i % 97) + 1,
                result: AtomicU64::new(0),
                done: Some(done),
            });
            if tx.send(event).is_err() {
                break;
            }
            waiters.push(wait);
            i += 1;
        }
        for wait in waiters.drain(..) {
            let _ = wait.await;
        }
    }
    let total_ms = elapsed_ms(started);
    drop(tx);
    let _ = consumer.await;

    let (processed, checksum) = (
        processed.load(Ordering::Relaxed),
        checksum.load(Ordering::Relaxed),
    );
    let ok = if processed != total {
        Err(format!("floor processed {processed} of {total}"))
    } else if checksum != expected_checksum(total) {
        Err(format!(
            "floor checksum {checksum} != {}",
            expected_checksum(total)
        ))
    } else {
        Ok(())
    };
    FloorOutcome {
        total_ms,
        events: total,
        ok,
    }
}
