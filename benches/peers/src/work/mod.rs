//! The workloads, one module per subject. Every subject does the same work with the same values:
//!
//! * request `i` carries `value(i)`; its reply is `reply(value)`; W1's checksum is the sum of
//!   the replies the sender received;
//! * W2's handler `j` answers `value + weight(j)`; the checksum is the sum of every answer the
//!   sender collected;
//! * W3's handler adds `value` to a shared sum; the checksum is that sum once the wait is over.
//!
//! Setup (buses, actors, 10 000 handler registrations), a warm-up pass of [`Sizes::warmup`]
//! messages through the same code, and teardown are outside the timed part.

use crate::{Measured, Outcome, RuntimeFlavor, Sizes, Subject, Work};

pub mod bubus;
pub mod floor;
pub mod jaeb;
pub mod kameo;
pub mod progress;
pub mod ractor;
pub mod tokio_events;

/// The value request `i` carries.
pub fn value(i: u64) -> u64 {
    i % 1000 + 1
}

/// The reply to a request carrying `value`.
pub fn reply(value: u64) -> u64 {
    value * 2 + 1
}

/// W2 handler `j`'s weight: it answers `value + weight(j)`.
pub fn weight(j: u64) -> u64 {
    j % 29 + 1
}

/// W1's checksum over requests `range`.
pub fn w1_expected(range: std::ops::Range<u64>) -> u64 {
    range.map(|i| reply(value(i))).sum()
}

/// W2's checksum over messages `range` with `handlers` handlers.
pub fn w2_expected(range: std::ops::Range<u64>, handlers: u64) -> u64 {
    let weights: u64 = (0..handlers).map(weight).sum();
    range.map(|i| value(i) * handlers + weights).sum()
}

/// W3's checksum over messages `range`.
pub fn w3_expected(range: std::ops::Range<u64>) -> u64 {
    range.map(value).sum()
}

/// Which part of a workload a pass runs: the warm-up before the timed part, or the timed part.
/// Messages of the timed part are numbered from `warmup`, so a sum kept across both passes can
/// be told apart.
#[derive(Copy, Clone, Debug)]
pub struct Plan {
    /// Untimed messages first.
    pub warmup: u64,
    /// Timed messages.
    pub messages: u64,
    /// W1 batched: messages in flight; W2: handlers.
    pub width: u64,
}

impl Plan {
    /// The warm-up messages' numbers.
    pub fn warmup_range(&self) -> std::ops::Range<u64> {
        0..self.warmup
    }

    /// The timed messages' numbers.
    pub fn timed_range(&self) -> std::ops::Range<u64> {
        self.warmup..self.warmup + self.messages
    }
}

/// What `work` runs on `subject`.
///
/// One exception to "the same sizes everywhere": tokio-events' W1 batched runs a tenth of the
/// messages with a twentieth of the warm-up. Each of its requests in flight is a temporary
/// subscription that every reply is matched against, so a batch of 1 000 costs about 6 ms per
/// message (two minutes per run at the full count); the per-message figure stays the same.
pub fn plan(work: Work, subject: Subject, sizes: &Sizes) -> Plan {
    let plan = base_plan(work, sizes);
    if (work, subject) == (Work::W1Batch, Subject::TokioEvents) {
        return Plan {
            warmup: (plan.warmup / 20).max(1),
            messages: (plan.messages / 10).max(plan.width.min(plan.messages)),
            ..plan
        };
    }
    plan
}

fn base_plan(work: Work, sizes: &Sizes) -> Plan {
    match work {
        Work::W1Seq => Plan {
            warmup: sizes.warmup,
            messages: sizes.w1_messages,
            width: 1,
        },
        Work::W1Batch => Plan {
            warmup: sizes.warmup,
            messages: sizes.w1_messages,
            width: sizes.w1_batch,
        },
        Work::W2 => Plan {
            warmup: (sizes.w2_messages / 10).max(1),
            messages: sizes.w2_messages,
            width: sizes.w2_handlers,
        },
        Work::W3 => Plan {
            warmup: sizes.warmup,
            messages: sizes.w3_messages,
            width: 1,
        },
    }
}

/// Runs `work` on `subject` and checks its checksum.
pub async fn run(work: Work, subject: Subject, runtime: RuntimeFlavor, sizes: &Sizes) -> Outcome {
    let plan = plan(work, subject, sizes);
    let measured = match subject {
        Subject::Bubus => bubus::run(work, plan).await,
        Subject::Ractor => ractor::run(work, plan).await,
        Subject::Kameo => kameo::run(work, plan).await,
        Subject::Jaeb => jaeb::run(work, plan).await,
        Subject::TokioEvents => tokio_events::run(work, plan).await,
        Subject::Floor => floor::run(work, plan, false).await,
        Subject::FloorRecords => floor::run(work, plan, true).await,
    };
    let expected = match work {
        Work::W1Seq | Work::W1Batch => w1_expected(plan.timed_range()),
        Work::W2 => w2_expected(plan.timed_range(), plan.width),
        Work::W3 => w3_expected(plan.timed_range()),
    };
    let case = crate::Case::Work(work, subject);
    match measured {
        Ok(Measured { elapsed, checksum }) => Outcome {
            case: case.to_string(),
            runtime: runtime.name().to_owned(),
            error: (checksum != expected)
                .then(|| format!("checksum {checksum} != expected {expected}")),
            total_ms: elapsed.as_secs_f64() * 1000.0,
            units: plan.messages,
            unit: "msg".to_owned(),
            checksum,
            expected_checksum: expected,
        },
        Err(err) => Outcome::failed(case, runtime, err),
    }
}

/// Turns any error into the run's failure text, with what was being done.
pub(crate) fn fail<E: std::fmt::Debug>(context: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{context}: {e:?}")
}
