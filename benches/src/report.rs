//! Scenario results (the reference's JSON fields) and the reference's wide markdown table.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{Options, SCENARIOS, Scenario};

/// One scenario's outcome, with the reference's field names (`_scenario_result` in
/// `performance_scenarios.py`) plus the runtime, the floor (S1 only) and scenario extras.
impl Metrics {
    /// The figures of a timed part that ran `total_events` events, `units` of `unit` (`event`,
    /// or `handler` for S3) — the throughput counts the events —, with the memory tracker's peak
    /// and the CPU time between two [`cpu_ms`](crate::harness::cpu_ms) readings; no error and no
    /// extras yet.
    pub fn over(
        total_events: u64,
        (units, unit): (u64, &'static str),
        total_ms: f64,
        memory: &crate::harness::MemoryTracker,
        (cpu_start, cpu_end): (Option<f64>, Option<f64>),
    ) -> Self {
        Metrics {
            total_events,
            units,
            unit,
            total_ms,
            throughput_events: total_events,
            peak_rss_kb_per_event: memory.peak_rss_kb_per(units.max(1)),
            cpu_ms: cpu_start.zip(cpu_end).map(|(a, b)| (b - a).max(0.0)),
            error: None,
            extra: Map::new(),
        }
    }
}

/// The extras every counting scenario reports: how many handler calls it saw and its checksum
/// against the expected one.
pub fn checksum_extras(processed: u64, checksum: u64, expected: u64) -> Map<String, Value> {
    let mut extra = Map::new();
    extra.insert("processed_count".into(), processed.into());
    extra.insert("checksum".into(), checksum.into());
    extra.insert("expected_checksum".into(), expected.into());
    extra
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScenarioResult {
    /// The scenario id (`50k-events`, …).
    pub scenario: String,
    /// The same id, as the reference's runtime script adds it.
    pub scenario_id: String,
    /// The reference's human name (`50k events`, …).
    pub scenario_name: String,
    /// Whether every count and checksum matched and nothing failed.
    pub ok: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// Events dispatched (S3: 1; S5: 3 per iteration).
    pub total_events: u64,
    /// Wall time of the timed part.
    pub total_ms: f64,
    /// `total_ms` per unit.
    pub ms_per_event: f64,
    /// `event` or `handler` (S3).
    pub ms_per_event_unit: String,
    /// `0.001ms/event`.
    pub ms_per_event_label: String,
    /// Peak RSS growth over the baseline, in KiB per unit; `null` without procfs.
    pub peak_rss_kb_per_event: Option<f64>,
    /// `event` or `handler` (S3).
    pub peak_rss_unit: String,
    /// `0.012kb/event`.
    pub peak_rss_kb_per_event_label: Option<String>,
    /// Events (S3: the one event) per second.
    pub throughput: u64,
    /// `multi-thread` or `current-thread`.
    pub runtime: String,
    /// The runtime's worker threads (1 for current-thread).
    pub worker_threads: usize,
    /// Reduced counts: correctness only, the numbers are not measurements.
    pub smoke: bool,
    /// RSS growth across the reference's post-scenario collection rounds, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heap_delta_after_gc_mb: Option<f64>,
    /// S1 only: the floor pipeline's time per event in the same process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_ms_per_event: Option<f64>,
    /// S1 only: `ms_per_event / floor_ms_per_event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_to_floor: Option<f64>,
    /// S1 only: why the floor failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor_error: Option<String>,
    /// Scenario-specific figures: `processed_count`, `checksum`, `expected_checksum`, `cpu_ms`, …
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// What a scenario measured, before it becomes a [`ScenarioResult`].
#[derive(Clone, Debug)]
pub struct Metrics {
    /// The reference's `total_events`.
    pub total_events: u64,
    /// What `ms_per_event` and the memory figure divide by.
    pub units: u64,
    /// `event` or `handler`.
    pub unit: &'static str,
    /// Wall time of the timed part.
    pub total_ms: f64,
    /// What the throughput counts (S3: 1 event; otherwise the events).
    pub throughput_events: u64,
    /// From the memory tracker.
    pub peak_rss_kb_per_event: Option<f64>,
    /// CPU time of the timed part, when known.
    pub cpu_ms: Option<f64>,
    /// The failure, if any: an error raised along the way, or a wrong count or checksum.
    pub error: Option<String>,
    /// Scenario-specific figures.
    pub extra: Map<String, Value>,
}

impl ScenarioResult {
    /// A result from what a scenario measured.
    pub fn measured(scenario: &Scenario, options: &Options, m: Metrics) -> Self {
        let units = m.units.max(1);
        let ms_per_event = m.total_ms / units as f64;
        let mut extra = m.extra;
        if let Some(cpu) = m.cpu_ms {
            extra.insert("cpu_ms".into(), cpu.into());
            extra.insert("cpu_ms_per_event".into(), (cpu / units as f64).into());
        }
        ScenarioResult {
            scenario: scenario.id.to_owned(),
            scenario_id: scenario.id.to_owned(),
            scenario_name: scenario.name.to_owned(),
            ok: m.error.is_none(),
            error: m.error,
            total_events: m.total_events,
            total_ms: m.total_ms,
            ms_per_event,
            ms_per_event_unit: m.unit.to_owned(),
            ms_per_event_label: format!("{ms_per_event:.3}ms/{}", m.unit),
            peak_rss_kb_per_event: m.peak_rss_kb_per_event,
            peak_rss_unit: m.unit.to_owned(),
            peak_rss_kb_per_event_label: m
                .peak_rss_kb_per_event
                .map(|kb| format!("{kb:.3}kb/{}", m.unit)),
            throughput: (m.throughput_events as f64 / (m.total_ms / 1000.0).max(1e-9)).round()
                as u64,
            runtime: options.runtime.name().to_owned(),
            worker_threads: options.runtime.workers(),
            smoke: options.is_smoke(),
            heap_delta_after_gc_mb: None,
            floor_ms_per_event: None,
            ratio_to_floor: None,
            floor_error: None,
            extra,
        }
    }

    /// A scenario that raised before it could measure anything (the reference's
    /// `run_perf_scenario_by_id` fallback), or a child process that gave no result.
    pub fn failed(id: &str, options: &Options, error: impl Into<String>) -> Self {
        let name = crate::scenario(id).map_or(id, |s| s.name);
        let unit = crate::scenario(id).map_or("event", |s| s.unit);
        ScenarioResult {
            scenario: id.to_owned(),
            scenario_id: id.to_owned(),
            scenario_name: name.to_owned(),
            ok: false,
            error: Some(error.into()),
            total_events: 0,
            total_ms: 0.0,
            ms_per_event: 0.0,
            ms_per_event_unit: unit.to_owned(),
            ms_per_event_label: format!("0.000ms/{unit}"),
            peak_rss_kb_per_event: None,
            peak_rss_unit: unit.to_owned(),
            peak_rss_kb_per_event_label: None,
            throughput: 0,
            runtime: options.runtime.name().to_owned(),
            worker_threads: options.runtime.workers(),
            smoke: options.is_smoke(),
            heap_delta_after_gc_mb: None,
            floor_ms_per_event: None,
            ratio_to_floor: None,
            floor_error: None,
            extra: Map::new(),
        }
    }
}

/// One table cell, as the reference prints it: `` `X.XXXms/<unit>`, `Y.YYYkb/<unit>` `` or
/// `` `failed: <error, at most 42 characters>` ``.
pub fn format_cell(result: &ScenarioResult) -> String {
    if !result.ok {
        let error = result.error.as_deref().unwrap_or("failed");
        let compact = error.replace('\n', " ");
        let compact = compact.trim();
        let compact = if compact.chars().count() > 42 {
            format!("{}...", compact.chars().take(39).collect::<String>())
        } else {
            compact.to_owned()
        };
        return format!("`failed: {compact}`");
    }
    let latency = format!("{:.3}ms/{}", result.ms_per_event, result.ms_per_event_unit);
    match result.peak_rss_kb_per_event {
        Some(kb) => format!("`{latency}`, `{kb:.3}kb/{}`", result.peak_rss_unit),
        None => format!("`{latency}`"),
    }
}

/// The reference's markdown matrix: a header of the five scenario columns and one row of cells
/// (`n/a` for a scenario that did not run).
pub fn table(runtime_label: &str, results: &[ScenarioResult]) -> String {
    let mut header = vec!["Runtime"];
    header.extend(SCENARIOS.iter().map(|s| s.column));
    let mut row = vec![runtime_label.to_owned()];
    for s in &SCENARIOS {
        row.push(
            results
                .iter()
                .find(|r| r.scenario == s.id)
                .map_or_else(|| "`n/a`".to_owned(), format_cell),
        );
    }
    let separator = vec![" ------------------ "; header.len()].join("|");
    format!(
        "| {} |\n|{separator}|\n| {} |\n",
        header.join(" | "),
        row.join(" | ")
    )
}

/// The line under the table: the floor and S1's ratio to it.
pub fn floor_line(results: &[ScenarioResult]) -> Option<String> {
    let s1 = results.iter().find(|r| r.scenario == SCENARIOS[0].id)?;
    Some(
        match (&s1.floor_error, s1.floor_ms_per_event, s1.ratio_to_floor) {
            (Some(err), _, _) => {
                format!("Floor (hand-written tokio pipeline, S1's work): failed: {err}")
            }
            (None, Some(floor), Some(ratio)) if s1.ok => format!(
                "Floor (hand-written tokio pipeline, S1's work): {floor:.6} ms/event ({:.3} µs); \
             S1 {:.6} ms/event = {ratio:.2}x the floor",
                floor * 1000.0,
                s1.ms_per_event
            ),
            (None, Some(floor), _) => format!(
                "Floor (hand-written tokio pipeline, S1's work): {floor:.6} ms/event; S1 failed, no ratio"
            ),
            (None, None, _) => return None,
        },
    )
}

/// The reference's per-scenario log line, with more precision than the table's three decimals.
pub fn detail_line(result: &ScenarioResult) -> String {
    let unit = &result.ms_per_event_unit;
    let mut parts = vec![
        format!("events={}", result.total_events),
        format!("total={:.3}ms", result.total_ms),
        format!(
            "latency={:.6}ms/{unit} ({:.3}µs)",
            result.ms_per_event,
            result.ms_per_event * 1000.0
        ),
    ];
    if let Some(kb) = result.peak_rss_kb_per_event {
        parts.push(format!("peak_rss={kb:.3}kb/{}", result.peak_rss_unit));
    }
    parts.push(format!("throughput={}/s", result.throughput));
    if let Some(cpu) = result.extra.get("cpu_ms").and_then(Value::as_f64) {
        parts.push(format!("cpu={cpu:.0}ms"));
    }
    for key in ["timeout_count", "cancel_count"] {
        if let Some(n) = result.extra.get(key) {
            parts.push(format!("{key}={n}"));
        }
    }
    parts.push(format!("ok={}", if result.ok { "yes" } else { "no" }));
    if let Some(err) = &result.error {
        parts.push(format!("error={err}"));
    }
    format!("[rust] {}: {}", result.scenario, parts.join(" "))
}

/// The median of several runs of one scenario: the run with the median `ms_per_event`, with the
/// floor (S1) replaced by the median floor of all runs and the ratio recomputed. A failed run
/// fails the whole: it is returned as it is. `runs` and every run's `ms_per_event` are added to
/// the extras.
pub fn median_run(mut runs: Vec<ScenarioResult>) -> ScenarioResult {
    assert!(!runs.is_empty(), "at least one run");
    if let Some(pos) = runs.iter().position(|r| !r.ok) {
        return runs.swap_remove(pos);
    }
    let count = runs.len();
    let per_run: Vec<f64> = runs.iter().map(|r| r.ms_per_event).collect();
    let mut floors: Vec<f64> = runs.iter().filter_map(|r| r.floor_ms_per_event).collect();
    runs.sort_by(|a, b| a.ms_per_event.total_cmp(&b.ms_per_event));
    let mut result = runs.swap_remove(count / 2);
    if count > 1 {
        if !floors.is_empty() {
            floors.sort_by(f64::total_cmp);
            let floor = floors[floors.len() / 2];
            result.floor_ms_per_event = Some(floor);
            if floor > 0.0 {
                result.ratio_to_floor = Some(result.ms_per_event / floor);
            }
        }
        result.extra.insert("runs".into(), count.into());
        result
            .extra
            .insert("ms_per_event_runs".into(), per_run.into());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_result() -> ScenarioResult {
        let options = Options::full();
        ScenarioResult::measured(
            &SCENARIOS[2],
            &options,
            Metrics {
                total_events: 1,
                units: 50_000,
                unit: "handler",
                total_ms: 60.0,
                throughput_events: 1,
                peak_rss_kb_per_event: Some(0.25),
                cpu_ms: None,
                error: None,
                extra: Map::new(),
            },
        )
    }

    #[test]
    fn cells_read_like_the_reference() {
        assert_eq!(
            format_cell(&ok_result()),
            "`0.001ms/handler`, `0.250kb/handler`"
        );
        let failed = ScenarioResult::failed(
            "50k-events",
            &Options::full(),
            "checksum 1 != 2 after a long explanation\nthat goes on",
        );
        assert_eq!(
            format_cell(&failed),
            "`failed: checksum 1 != 2 after a long explanatio...`"
        );
    }

    #[test]
    fn results_round_trip_through_json() {
        let mut result = ok_result();
        result.extra.insert("checksum".into(), 42.into());
        let line = serde_json::to_string(&result).unwrap();
        assert!(line.starts_with(r#"{"scenario":"1-event-x-50k-parallel-handlers""#));
        let back: ScenarioResult = serde_json::from_str(&line).unwrap();
        assert_eq!(back, result);
    }

    #[test]
    fn the_table_has_every_column_and_marks_missing_ones() {
        let table = table("Rust", &[ok_result()]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].contains("1 bus x 1 event x 50k parallel handlers"));
        assert_eq!(lines[2].matches("`n/a`").count(), 4);
    }

    #[test]
    fn the_median_run_is_reported_with_the_median_floor() {
        let run = |ms: f64, floor: f64| {
            let mut result = ok_result();
            result.ms_per_event = ms;
            result.floor_ms_per_event = Some(floor);
            result.ratio_to_floor = Some(ms / floor);
            result
        };
        let median = median_run(vec![run(3.0, 1.0), run(1.0, 0.5), run(2.0, 4.0)]);
        assert_eq!(median.ms_per_event, 2.0);
        assert_eq!(median.floor_ms_per_event, Some(1.0));
        assert_eq!(median.ratio_to_floor, Some(2.0));
        assert_eq!(median.extra["runs"], 3);
        assert_eq!(
            median.extra["ms_per_event_runs"],
            serde_json::json!([3.0, 1.0, 2.0])
        );

        // One run alone is reported as it is; a failed run fails the whole.
        assert_eq!(median_run(vec![run(5.0, 1.0)]), run(5.0, 1.0));
        let failed = ScenarioResult::failed("50k-events", &Options::full(), "checksum");
        let result = median_run(vec![run(1.0, 1.0), failed.clone(), run(2.0, 1.0)]);
        assert_eq!(result, failed);
    }
}
