//! The family scenarios S1–S5 on bubus (the `bubus-benches` code itself) and on the `abxbus`
//! crate ([`abxbus`]: the same buses, bounds, events, batches and checksums, written against its
//! API). Each run does the warm-up of `bubus-benches` first (bubus), or the same count of events
//! through an `abxbus` bus (abxbus), then the scenario; nothing else runs in its process.

use bubus_benches::{Options, RuntimeFlavor};
use serde_json::Value;

use crate::{Case, FamilyImpl, Outcome, Sizes};

pub mod abxbus;

/// One family scenario.
#[derive(Debug)]
pub struct FamilyScenario {
    /// `s1` … `s5`.
    pub short: &'static str,
    /// Its `bubus-benches` id.
    pub id: &'static str,
    /// The table's row label.
    pub label: &'static str,
}

/// S1–S5.
pub const SCENARIOS: [FamilyScenario; 5] = [
    FamilyScenario {
        short: "s1",
        id: "50k-events",
        label: "S1 1 bus x 50k events x 1 handler (µs/event)",
    },
    FamilyScenario {
        short: "s2",
        id: "500-buses-x-100-events",
        label: "S2 500 buses x 100 events (µs/event)",
    },
    FamilyScenario {
        short: "s3",
        id: "1-event-x-50k-parallel-handlers",
        label: "S3 1 event x 50k parallel handlers (µs/handler)",
    },
    FamilyScenario {
        short: "s4",
        id: "50k-one-off-handlers",
        label: "S4 50k one-off handlers (µs/event)",
    },
    FamilyScenario {
        short: "s5",
        id: "worst-case-forwarding-timeouts",
        label: "S5 worst case: forwarding, timeouts, queue-jump (µs/event)",
    },
];

/// What scenario `index` divides its time by, and the unit's name.
pub fn units(index: usize, sizes: &Sizes) -> (u64, &'static str) {
    let c = &sizes.family;
    match index {
        0 => (c.s1_events, "event"),
        1 => (c.s2_buses * c.s2_events_per_bus, "event"),
        2 => (c.s3_handlers, "handler"),
        3 => (c.s4_events, "event"),
        _ => (c.s5_iterations * 3, "event"),
    }
}

/// Runs scenario `index` on `imp`.
pub async fn run(index: usize, imp: FamilyImpl, runtime: RuntimeFlavor, sizes: &Sizes) -> Outcome {
    let case = Case::Family(index, imp);
    let (units, unit) = units(index, sizes);
    let done = match imp {
        FamilyImpl::Bubus => run_bubus(index, runtime, sizes).await,
        FamilyImpl::Abxbus => abxbus::run(index, sizes).await,
    };
    match done {
        Ok(Done {
            total_ms,
            checksum,
            expected_checksum,
            error,
        }) => Outcome {
            case: case.to_string(),
            runtime: runtime.name().to_owned(),
            error: error.or_else(|| {
                (checksum != expected_checksum)
                    .then(|| format!("checksum {checksum} != expected {expected_checksum}"))
            }),
            total_ms,
            units,
            unit: unit.to_owned(),
            checksum,
            expected_checksum,
        },
        Err(err) => Outcome::failed(case, runtime, err),
    }
}

/// A finished scenario run.
#[derive(Clone, Debug, PartialEq)]
pub struct Done {
    /// Wall time of the timed part.
    pub total_ms: f64,
    /// The checksum it computed (S5: the parents' part).
    pub checksum: u64,
    /// The checksum it had to compute.
    pub expected_checksum: u64,
    /// A count or bound that was wrong, or what failed.
    pub error: Option<String>,
}

async fn run_bubus(index: usize, runtime: RuntimeFlavor, sizes: &Sizes) -> Result<Done, String> {
    let scenario = bubus_benches::scenario(SCENARIOS[index].id).ok_or("unknown scenario")?;
    let options = Options {
        counts: sizes.family,
        runtime,
        warmup: true,
        hang_guard: Options::full().hang_guard,
    };
    bubus_benches::harness::warmup(&options.counts).await?;
    // The scenario alone: `bubus-benches` would also run its floor after S1.
    let result = match index {
        0 => bubus_benches::s1_events::run(scenario, &options).await,
        1 => bubus_benches::s2_ephemeral_buses::run(scenario, &options).await,
        2 => bubus_benches::s3_parallel_handlers::run(scenario, &options).await,
        3 => bubus_benches::s4_one_off_handlers::run(scenario, &options).await,
        _ => bubus_benches::s5_worst_case::run(scenario, &options).await,
    };
    let number = |key: &str| result.extra.get(key).and_then(Value::as_u64);
    let (checksum, expected) = if index == 4 {
        (
            number("parent_checksum"),
            number("expected_parent_checksum"),
        )
    } else {
        (number("checksum"), number("expected_checksum"))
    };
    Ok(Done {
        total_ms: result.total_ms,
        checksum: checksum.unwrap_or(0),
        expected_checksum: expected.unwrap_or(0),
        error: result.error.or_else(|| {
            (checksum.is_none() || expected.is_none()).then(|| "no checksum".to_owned())
        }),
    })
}
