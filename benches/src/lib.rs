//! The reference performance suite of the bubus family, for the Rust bubus.
//!
//! Five scenarios, re-implemented from the Python and TypeScript `bubus` performance harness with
//! the same bus counts, events, handlers, history bounds, batch sizes, checksums and memory
//! method, so their `ms/event` and `kb/event` sit next to the published figures:
//!
//! | id | what |
//! | --- | --- |
//! | `50k-events` | 1 bus × 50 000 events × 1 sync handler, awaited in batches of 512 |
//! | `500-buses-x-100-events` | 500 buses one after the other, each 100 events × 1 handler, then stopped |
//! | `1-event-x-50k-parallel-handlers` | 1 event × 50 000 parallel handlers (per handler) |
//! | `50k-one-off-handlers` | 50 000 × (register a handler, dispatch, await, unregister) |
//! | `worst-case-forwarding-timeouts` | 3 buses, forwarding, near-zero timeouts, queue-jump, `find` |
//!
//! plus the floor ([`floor`]): a hand-written tokio pipeline doing S1's irreducible work, run in
//! the same process right after S1, so S1 is always reported as a ratio to it.
//!
//! The binary (`cargo run --release -p bubus-benches`) runs each scenario in its own process and
//! prints the reference's table; `docs/performance.md` describes it. [`Counts::SMOKE`] runs the
//! same code with small counts: the smoke test checks every checksum that way.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

pub mod bridge_probe;
pub mod events;
pub mod floor;
pub mod harness;
pub mod report;
pub mod s1_events;
pub mod s2_ephemeral_buses;
pub mod s3_parallel_handlers;
pub mod s4_one_off_handlers;
pub mod s5_worst_case;

pub use harness::{Counts, Options, RuntimeFlavor};
pub use report::ScenarioResult;

/// One scenario of the suite.
#[derive(Debug)]
pub struct Scenario {
    /// The reference's id.
    pub id: &'static str,
    /// The reference's human name (`scenario` in its JSON).
    pub name: &'static str,
    /// The reference's table column.
    pub column: &'static str,
    /// What `ms_per_event` is per.
    pub unit: &'static str,
}

/// The five scenarios, in the reference's order.
pub const SCENARIOS: [Scenario; 5] = [
    Scenario {
        id: "50k-events",
        name: "50k events",
        column: "1 bus x 50k events x 1 handler",
        unit: "event",
    },
    Scenario {
        id: "500-buses-x-100-events",
        name: "500 buses x 100 events",
        column: "500 buses x 100 events x 1 handler",
        unit: "event",
    },
    Scenario {
        id: "1-event-x-50k-parallel-handlers",
        name: "1 event x 50k parallel handlers",
        column: "1 bus x 1 event x 50k parallel handlers",
        unit: "handler",
    },
    Scenario {
        id: "50k-one-off-handlers",
        name: "50k one-off handlers over 50k events",
        column: "1 bus x 50k events x 50k one-off handlers",
        unit: "event",
    },
    Scenario {
        id: "worst-case-forwarding-timeouts",
        name: "worst-case forwarding + timeouts",
        column: "Worst case (N buses x N events x N handlers)",
        unit: "event",
    },
];

/// The scenario with this id.
pub fn scenario(id: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|s| s.id == id)
}

/// Runs one scenario as the reference's `run_perf_scenario_by_id` does, inside the current
/// runtime: the warm-up (if enabled), the scenario, the post-scenario memory rounds; after S1,
/// the floor. A scenario still running after [`Options::hang_guard`] fails as hung — a guard
/// against deadlocks, far above any expected time, never a performance assertion.
pub async fn run_scenario(id: &str, options: &Options) -> ScenarioResult {
    let Some(scenario) = scenario(id) else {
        return ScenarioResult::failed(id, options, format!("unknown scenario {id:?}"));
    };
    if options.warmup {
        if let Err(err) = harness::warmup(&options.counts).await {
            return ScenarioResult::failed(id, options, format!("warm-up failed: {err}"));
        }
    }
    let body = run_body(scenario, options);
    let mut result = match tokio::time::timeout(options.hang_guard, body).await {
        Ok(result) => result,
        Err(_) => ScenarioResult::failed(
            id,
            options,
            format!("hung: no result after {}s", options.hang_guard.as_secs()),
        ),
    };
    result.heap_delta_after_gc_mb = harness::heap_delta_after_gc_mb().await;
    if scenario.id == SCENARIOS[0].id {
        attach_floor(&mut result, options).await;
    }
    result
}

async fn run_body(scenario: &'static Scenario, options: &Options) -> ScenarioResult {
    match scenario.id {
        "50k-events" => s1_events::run(scenario, options).await,
        "500-buses-x-100-events" => s2_ephemeral_buses::run(scenario, options).await,
        "1-event-x-50k-parallel-handlers" => s3_parallel_handlers::run(scenario, options).await,
        "50k-one-off-handlers" => s4_one_off_handlers::run(scenario, options).await,
        _ => s5_worst_case::run(scenario, options).await,
    }
}

async fn attach_floor(result: &mut ScenarioResult, options: &Options) {
    // A short run first, as the scenario had its warm-up.
    let _ = floor::run(options.counts.warmup_events).await;
    let floor = floor::run(options.counts.s1_events).await;
    match floor.ok {
        Ok(()) => {
            let floor_ms = floor.ms_per_event();
            result.floor_ms_per_event = Some(floor_ms);
            result
                .extra
                .insert("floor_total_ms".into(), floor.total_ms.into());
            if result.ok && floor_ms > 0.0 {
                result.ratio_to_floor = Some(result.ms_per_event / floor_ms);
            }
        }
        Err(err) => result.floor_error = Some(err),
    }
}

/// Runs one scenario on a runtime of its own (the flavor in `options`), turning a panic into a
/// failed result.
pub fn run_scenario_blocking(id: &str, options: &Options) -> ScenarioResult {
    let runtime = match options.runtime.build() {
        Ok(runtime) => runtime,
        Err(err) => return ScenarioResult::failed(id, options, format!("no runtime: {err}")),
    };
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        runtime.block_on(run_scenario(id, options))
    }));
    // Whatever a failed scenario left running must not keep the process waiting.
    runtime.shutdown_timeout(Duration::from_secs(1));
    outcome.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned());
        ScenarioResult::failed(id, options, format!("panicked: {message}"))
    })
}
