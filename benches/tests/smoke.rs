//! The performance scenarios with reduced counts: every checksum and count must match, on both
//! runtimes, in process and through the binary (one child process per scenario). Correctness
//! only — nothing here looks at a time.

use std::process::Command;

use bubus_benches::{Options, RuntimeFlavor, SCENARIOS, ScenarioResult, run_scenario_blocking};

fn check(id: &str, runtime: RuntimeFlavor) {
    let result = run_scenario_blocking(id, &Options::smoke(runtime));
    assert!(
        result.ok,
        "{id} on {}: {:?}\n{result:#?}",
        runtime.name(),
        result.error
    );
    assert_eq!(result.scenario, id);
    assert!(result.smoke);
    if let Some(expected) = result.extra.get("expected_checksum") {
        assert_eq!(
            result.extra.get("checksum"),
            Some(expected),
            "{id}: checksum"
        );
    }
}

fn check_both_runtimes(id: &str) {
    check(id, RuntimeFlavor::CurrentThread);
    check(id, RuntimeFlavor::MultiThread { workers: 2 });
}

#[test]
fn s1_50k_events() {
    check_both_runtimes("50k-events");
}

#[test]
fn s1_reports_its_ratio_to_the_floor() {
    let result = run_scenario_blocking("50k-events", &Options::smoke(RuntimeFlavor::CurrentThread));
    assert!(result.ok, "{:?}", result.error);
    assert_eq!(result.floor_error, None);
    assert!(result.floor_ms_per_event.is_some());
    assert!(result.ratio_to_floor.is_some());
    assert_eq!(result.extra["sampled_evicted_count"], 64);
}

#[test]
fn s2_500_buses_x_100_events() {
    check_both_runtimes("500-buses-x-100-events");
}

#[test]
fn s3_1_event_x_50k_parallel_handlers() {
    check_both_runtimes("1-event-x-50k-parallel-handlers");
}

#[test]
fn s4_50k_one_off_handlers() {
    check_both_runtimes("50k-one-off-handlers");
}

#[test]
fn s5_worst_case_forwarding_timeouts() {
    check_both_runtimes("worst-case-forwarding-timeouts");
}

#[test]
fn an_unknown_scenario_fails_instead_of_measuring() {
    let result = run_scenario_blocking("nope", &Options::smoke(RuntimeFlavor::CurrentThread));
    assert!(!result.ok);
    assert_eq!(
        bubus_benches::report::format_cell(&result),
        "`failed: unknown scenario \"nope\"`"
    );
}

#[test]
fn the_binary_runs_every_scenario_in_its_own_process() {
    let output = Command::new(env!("CARGO_BIN_EXE_bubus-benches"))
        .args(["--all", "--smoke", "--json", "--no-warmup"])
        .output()
        .expect("the bench binary starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "exit {}\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(!stdout.contains("failed:"), "{stdout}");
    for s in &SCENARIOS {
        assert!(
            stdout.contains(s.column),
            "no {} column:\n{stdout}",
            s.column
        );
    }
    assert!(stdout.contains("x the floor"), "{stdout}");

    let results: Vec<ScenarioResult> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a result line"))
        .collect();
    let ids: Vec<&str> = results.iter().map(|r| r.scenario.as_str()).collect();
    assert_eq!(ids, SCENARIOS.map(|s| s.id));
    for result in &results {
        assert!(result.ok, "{}: {:?}", result.scenario, result.error);
        assert_eq!(result.runtime, "multi-thread");
        assert_eq!(result.worker_threads, 2);
    }
}
