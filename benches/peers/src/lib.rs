//! bubus side by side with what a Rust developer would otherwise reach for, on identical work.
//!
//! Two comparisons, each run interleaved (every subject once per round, in an order that rotates
//! from round to round) on both tokio runtimes, every run checked by a checksum:
//!
//! * **The workloads** ([`Work`]) on bubus, two actor frameworks ([ractor], [kameo]), two
//!   event-bus crates ([jaeb], [tokio-events]) and a hand-written tokio floor ([`Subject`]):
//!   request/response one at a time and with 1 000 in flight, one event fanned out to 10 000
//!   handlers with every result collected, and fire-and-forget followed by a wait until idle.
//! * **The family scenarios** S1–S5 (`bubus-benches`, `docs/performance.md`) on bubus and on
//!   upstream's own Rust port, the [`abxbus`](https://crates.io/crates/abxbus) crate, written
//!   against its API with the same counts and checksums ([`family`]).
//!
//! The binary runs each measurement in a child process (`bubus-peers one <case>`) and prints
//! the tables; `docs/performance.md` ("Against other Rust crates") explains what is measured
//! and what each peer does not do that bubus does.
//!
//! [ractor]: https://crates.io/crates/ractor
//! [kameo]: https://crates.io/crates/kameo
//! [jaeb]: https://crates.io/crates/jaeb
//! [tokio-events]: https://crates.io/crates/tokio-events

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use bubus_benches::Counts;
use serde::{Deserialize, Serialize};

pub mod family;
pub mod report;
pub mod work;

pub use bubus_benches::RuntimeFlavor;

/// A workload run on every [`Subject`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Work {
    /// W1: a request, its reply awaited before the next request is sent.
    W1Seq,
    /// W1 batched: [`Sizes::w1_batch`] requests sent, then their replies awaited.
    W1Batch,
    /// W2: one message delivered to [`Sizes::w2_handlers`] handlers, every handler's result
    /// collected by the sender.
    W2,
    /// W3: messages sent without waiting, then one wait until all of them were handled.
    W3,
}

impl Work {
    /// Every workload, in table order.
    pub const ALL: [Work; 4] = [Work::W1Seq, Work::W1Batch, Work::W2, Work::W3];

    /// The id used on the command line.
    pub fn id(self) -> &'static str {
        match self {
            Work::W1Seq => "w1-seq",
            Work::W1Batch => "w1-batch",
            Work::W2 => "w2",
            Work::W3 => "w3",
        }
    }

    /// The table's row label.
    pub fn label(self) -> &'static str {
        match self {
            Work::W1Seq => "W1 request/response, sequential",
            Work::W1Batch => "W1 batched, 1k in flight",
            Work::W2 => "W2 fan-out to 10 000 handlers (full runs), results collected",
            Work::W3 => "W3 fire-and-forget + wait until idle",
        }
    }
}

/// Who runs a [`Work`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Subject {
    /// This crate's subject.
    Bubus,
    /// `ractor` 0.16 actors (`call` / `cast`).
    Ractor,
    /// `kameo` 0.22 actors (`ask` / `tell`).
    Kameo,
    /// `jaeb` 0.5 event bus, async handlers.
    Jaeb,
    /// `tokio-events` 0.3 event bus (its `request`/`respond` for W1).
    TokioEvents,
    /// Hand-written tokio: channels, a task, oneshots.
    Floor,
    /// The floor, plus a result record per handler run (handler, id, status, start and end
    /// time, value or error), as bubus keeps: what "the least that records every result" costs.
    FloorRecords,
}

impl Subject {
    /// Every subject, in table order.
    pub const ALL: [Subject; 7] = [
        Subject::Bubus,
        Subject::Ractor,
        Subject::Kameo,
        Subject::Jaeb,
        Subject::TokioEvents,
        Subject::Floor,
        Subject::FloorRecords,
    ];

    /// The id used on the command line and in the table.
    pub fn id(self) -> &'static str {
        match self {
            Subject::Bubus => "bubus",
            Subject::Ractor => "ractor",
            Subject::Kameo => "kameo",
            Subject::Jaeb => "jaeb",
            Subject::TokioEvents => "tokio-events",
            Subject::Floor => "floor",
            Subject::FloorRecords => "floor-records",
        }
    }
}

/// An implementation of the family scenarios.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum FamilyImpl {
    /// bubus, through `bubus-benches`' own scenario code.
    Bubus,
    /// The `abxbus` crate 2.5.79.
    Abxbus,
}

impl FamilyImpl {
    /// Both, in table order.
    pub const ALL: [FamilyImpl; 2] = [FamilyImpl::Bubus, FamilyImpl::Abxbus];

    /// The id used on the command line.
    pub fn id(self) -> &'static str {
        match self {
            FamilyImpl::Bubus => "bubus",
            FamilyImpl::Abxbus => "abxbus",
        }
    }
}

/// One measurement: a workload on a subject, or a family scenario on an implementation.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Case {
    /// A workload.
    Work(Work, Subject),
    /// A family scenario (index into [`family::SCENARIOS`]).
    Family(usize, FamilyImpl),
}

impl Case {
    /// Every case: the workloads on every subject, then the scenarios on both implementations.
    pub fn all() -> Vec<Case> {
        let mut cases = Vec::new();
        for work in Work::ALL {
            for subject in Subject::ALL {
                cases.push(Case::Work(work, subject));
            }
        }
        for scenario in 0..family::SCENARIOS.len() {
            for imp in FamilyImpl::ALL {
                cases.push(Case::Family(scenario, imp));
            }
        }
        cases
    }

    /// Reads `w1-seq/bubus` or `s1/abxbus`.
    pub fn parse(text: &str) -> Option<Case> {
        Case::all()
            .into_iter()
            .find(|case| case.to_string() == text)
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Case::Work(work, subject) => write!(f, "{}/{}", work.id(), subject.id()),
            Case::Family(index, imp) => {
                write!(f, "{}/{}", family::SCENARIOS[*index].short, imp.id())
            }
        }
    }
}

/// How much work a run does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// W1 sequential and batched: requests.
    pub w1_messages: u64,
    /// W1 batched: requests in flight at once.
    pub w1_batch: u64,
    /// W2: handlers each message reaches.
    pub w2_handlers: u64,
    /// W2: messages.
    pub w2_messages: u64,
    /// W3: messages.
    pub w3_messages: u64,
    /// Messages each workload runs untimed before its timed part (W2: messages / 10, at least 1).
    pub warmup: u64,
    /// The family scenarios' sizes.
    pub family: Counts,
}

impl Sizes {
    /// The measured sizes.
    pub const FULL: Sizes = Sizes {
        w1_messages: 20_000,
        w1_batch: 1_000,
        w2_handlers: 10_000,
        w2_messages: 20,
        w3_messages: 50_000,
        warmup: 2_000,
        family: Counts::FULL,
    };

    /// Small enough for a debug build in seconds: the same code, every checksum checked.
    pub const SMOKE: Sizes = Sizes {
        w1_messages: 300,
        w1_batch: 100,
        w2_handlers: 100,
        w2_messages: 3,
        w3_messages: 500,
        warmup: 50,
        family: Counts::SMOKE,
    };

    /// These sizes with the per-message counts multiplied by `factor` (everything else — batch,
    /// handlers, warm-up — unchanged), so that the difference between two runs is `factor - 1`
    /// times the per-message cost: how `scripts/peers-instructions.sh` counts instructions.
    pub fn scaled(self, factor: u64) -> Sizes {
        let f = factor.max(1);
        Sizes {
            w1_messages: self.w1_messages * f,
            w2_messages: self.w2_messages * f,
            w3_messages: self.w3_messages * f,
            family: Counts {
                s1_events: self.family.s1_events * f,
                s2_buses: self.family.s2_buses * f,
                s3_handlers: self.family.s3_handlers * f,
                s4_events: self.family.s4_events * f,
                s5_iterations: self.family.s5_iterations * f,
                ..self.family
            },
            ..self
        }
    }

    /// Whether these are the smoke sizes (or scaled from them).
    pub fn is_smoke(&self) -> bool {
        self.w2_handlers == Sizes::SMOKE.w2_handlers
    }
}

/// What one run of a case measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// `w1-seq/bubus`.
    pub case: String,
    /// `current-thread` or `multi-thread`.
    pub runtime: String,
    /// `Err` when a count or the checksum is wrong, or the run failed.
    pub error: Option<String>,
    /// Wall time of the timed part.
    pub total_ms: f64,
    /// What the time is divided by (messages; S3: handlers).
    pub units: u64,
    /// `msg`, `event` or `handler`.
    pub unit: String,
    /// The checksum the run computed, and the one it had to compute.
    pub checksum: u64,
    /// The expected checksum.
    pub expected_checksum: u64,
}

impl Outcome {
    /// Microseconds per unit.
    pub fn us_per_unit(&self) -> f64 {
        self.total_ms * 1000.0 / self.units.max(1) as f64
    }

    /// Whether the run succeeded.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }

    /// Whether this run fails the command: every failure of bubus, a peer or the floor does
    /// (a wrong checksum there is a wrong answer, or a bug in this harness); a failure of the
    /// `abxbus` crate does not — its races (docs/performance.md) are what the table reports,
    /// and the smoke test checks this harness's code for it with a strict checksum.
    pub fn is_fatal(&self) -> bool {
        self.error.is_some()
            && !self
                .case
                .ends_with(&format!("/{}", FamilyImpl::Abxbus.id()))
    }

    /// A failed run.
    pub fn failed(case: Case, runtime: RuntimeFlavor, error: impl Into<String>) -> Outcome {
        Outcome {
            case: case.to_string(),
            runtime: runtime.name().to_owned(),
            error: Some(error.into()),
            total_ms: 0.0,
            units: 0,
            unit: String::new(),
            checksum: 0,
            expected_checksum: 0,
        }
    }
}

/// What a workload implementation returns: the wall time of its timed part and its checksum.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Measured {
    /// Wall time of the timed part (setup, warm-up and teardown excluded).
    pub elapsed: Duration,
    /// The checksum over the timed part.
    pub checksum: u64,
}

/// Times `body`, returning its value and the time it took.
pub async fn timed<T>(body: impl Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let value = body.await;
    (value, started.elapsed())
}

/// Runs one case in this process on a runtime of its own, turning a panic into a failed run.
pub fn run_case_blocking(case: Case, runtime: RuntimeFlavor, sizes: &Sizes) -> Outcome {
    let rt = match runtime.build() {
        Ok(rt) => rt,
        Err(err) => return Outcome::failed(case, runtime, format!("no runtime: {err}")),
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(run_case(case, runtime, sizes))
    }));
    // Whatever a failed run left running must not keep the process waiting.
    rt.shutdown_timeout(Duration::from_secs(1));
    outcome.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        Outcome::failed(case, runtime, format!("panicked: {message}"))
    })
}

/// Runs one case inside the current runtime.
pub async fn run_case(case: Case, runtime: RuntimeFlavor, sizes: &Sizes) -> Outcome {
    match case {
        Case::Work(work, subject) => work::run(work, subject, runtime, sizes).await,
        Case::Family(index, imp) => family::run(index, imp, runtime, sizes).await,
    }
}
