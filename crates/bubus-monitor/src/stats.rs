//! Counts, rates and latency percentiles per event type and per bus, and the same numbers as
//! Prometheus metrics.

use std::collections::HashMap;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::model::{FailureGroup, HandlerRow};

/// How many distinct event types, buses or handlers get their own statistics and metric labels;
/// the rest are counted together under `(other)`, so memory stays bounded.
const MAX_KEYS: usize = 500;
/// How many recent durations each percentile is computed over.
const RESERVOIR: usize = 1_024;
const OTHER: &str = "(other)";

type Labels = Vec<(&'static str, String)>;

/// Events per second over the last minute, in one-second buckets of the events' own times.
struct Rate {
    buckets: [(u64, u32); 60],
}

impl Default for Rate {
    fn default() -> Self {
        Rate {
            buckets: [(0, 0); 60],
        }
    }
}

impl Rate {
    fn add(&mut self, at_ms: f64) {
        let sec = (at_ms / 1000.0).max(0.0) as u64;
        let slot = &mut self.buckets[(sec % 60) as usize];
        if slot.0 == sec {
            slot.1 = slot.1.saturating_add(1);
        } else {
            *slot = (sec, 1);
        }
    }

    /// Events per second over the `window` seconds before `now_ms` (the current second excluded,
    /// it is still filling).
    fn per_second(&self, now_ms: f64, window: u64) -> f64 {
        let now = (now_ms / 1000.0).max(0.0) as u64;
        let from = now.saturating_sub(window);
        let n: u64 = self
            .buckets
            .iter()
            .filter(|(sec, _)| *sec >= from && *sec < now)
            .map(|(_, n)| u64::from(*n))
            .sum();
        n as f64 / window as f64
    }
}

/// The last [`RESERVOIR`] durations.
#[derive(Default)]
struct Reservoir {
    values: Vec<f64>,
    next: usize,
}

impl Reservoir {
    fn add(&mut self, value: f64) {
        if self.values.len() < RESERVOIR {
            self.values.push(value);
        } else {
            self.values[self.next] = value;
            self.next = (self.next + 1) % RESERVOIR;
        }
    }

    fn percentiles(&self) -> Option<[f64; 3]> {
        if self.values.is_empty() {
            return None;
        }
        let mut sorted = self.values.clone();
        sorted.sort_by(f64::total_cmp);
        let at = |p: f64| {
            let rank = (p * sorted.len() as f64).ceil() as usize;
            sorted[rank.clamp(1, sorted.len()) - 1]
        };
        Some([at(0.5), at(0.9), at(0.99)])
    }
}

#[derive(Default)]
struct KeyStats {
    events: u64,
    completed: u64,
    failed: u64,
    rate: Rate,
    handler_ms: Reservoir,
    event_ms: Reservoir,
}

/// One row of the statistics table.
#[derive(Clone, Debug, Serialize)]
pub struct StatsRow {
    /// The event type or bus.
    pub key: String,
    /// Events seen.
    pub events: u64,
    /// Events completed.
    pub completed: u64,
    /// Events with at least one failed handler.
    pub failed: u64,
    /// Events per second over the last 10 s.
    pub rate_10s: f64,
    /// Events per second over the last 60 s.
    pub rate_60s: f64,
    /// Handler run time percentiles (p50, p90, p99) in milliseconds, over recent results.
    pub handler_ms: Option<[f64; 3]>,
    /// Event time from creation to completion, percentiles (p50, p90, p99) in milliseconds.
    pub event_ms: Option<[f64; 3]>,
}

/// What the page's statistics and failure views show.
#[derive(Clone, Debug, Serialize)]
pub struct StatsSnapshot {
    /// Events held.
    pub in_memory: usize,
    /// Events evicted so far.
    pub evicted: u64,
    /// All events together.
    pub total: StatsRow,
    /// Per event type, most events first.
    pub by_type: Vec<StatsRow>,
    /// Per bus, most events first.
    pub by_bus: Vec<StatsRow>,
    /// Failure groups, most failures first.
    pub failures: Vec<FailureGroup>,
}

/// The statistics and the metrics registry.
pub struct Stats {
    total: KeyStats,
    by_type: HashMap<String, KeyStats>,
    by_bus: HashMap<String, KeyStats>,
    handlers: HashMap<String, ()>,
    registry: Registry,
    events: Family<Labels, Counter>,
    bus_events: Family<Labels, Counter>,
    completed: Family<Labels, Counter>,
    failed: Family<Labels, Counter>,
    results: Family<Labels, Counter>,
    handler_seconds: Family<Labels, Histogram>,
    event_seconds: Family<Labels, Histogram>,
    pub(crate) evicted: Counter,
    pub(crate) replays: Counter,
    in_memory: Gauge,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("events", &self.total.events)
            .field("types", &self.by_type.len())
            .field("buses", &self.by_bus.len())
            .finish_non_exhaustive()
    }
}

fn histogram() -> Histogram {
    // 100 µs … ~3.3 min.
    Histogram::new(exponential_buckets(0.000_1, 2.0, 22))
}

fn key<'a, V: Default>(map: &'a mut HashMap<String, V>, name: &str) -> (&'a mut V, String) {
    let name = if map.contains_key(name) || map.len() < MAX_KEYS {
        name
    } else {
        OTHER
    };
    let name = name.to_owned();
    (map.entry(name.clone()).or_default(), name)
}

impl Stats {
    pub(crate) fn new() -> Stats {
        let mut registry = Registry::with_prefix("bubus");
        let events = Family::<Labels, Counter>::default();
        let bus_events = Family::<Labels, Counter>::default();
        let completed = Family::<Labels, Counter>::default();
        let failed = Family::<Labels, Counter>::default();
        let results = Family::<Labels, Counter>::default();
        let handler_seconds =
            Family::<Labels, Histogram>::new_with_constructor(histogram as fn() -> Histogram);
        let event_seconds =
            Family::<Labels, Histogram>::new_with_constructor(histogram as fn() -> Histogram);
        let evicted = Counter::default();
        let replays = Counter::default();
        let in_memory = Gauge::default();
        registry.register("events", "Events seen, by event type", events.clone());
        registry.register(
            "bus_events",
            "Events seen on each bus of their path, by bus",
            bus_events.clone(),
        );
        registry.register(
            "events_completed",
            "Events completed, by event type",
            completed.clone(),
        );
        registry.register(
            "events_failed",
            "Events with at least one failed handler, by event type",
            failed.clone(),
        );
        registry.register(
            "handler_results",
            "Handler results that finished, by event type, handler, bus and status (completed or error)",
            results.clone(),
        );
        registry.register(
            "handler_duration_seconds",
            "Handler run time, by event type and handler",
            handler_seconds.clone(),
        );
        registry.register(
            "event_duration_seconds",
            "Time from an event's creation to its completion, by event type",
            event_seconds.clone(),
        );
        registry.register(
            "monitor_evicted_events",
            "Events the monitor evicted from memory",
            evicted.clone(),
        );
        registry.register(
            "monitor_replays",
            "Events replayed from the monitor",
            replays.clone(),
        );
        registry.register(
            "monitor_events_in_memory",
            "Events the monitor holds",
            in_memory.clone(),
        );
        Stats {
            total: KeyStats::default(),
            by_type: HashMap::new(),
            by_bus: HashMap::new(),
            handlers: HashMap::new(),
            registry,
            events,
            bus_events,
            completed,
            failed,
            results,
            handler_seconds,
            event_seconds,
            evicted,
            replays,
            in_memory,
        }
    }

    pub(crate) fn on_new_event(&mut self, event_type: &str, created: Option<f64>) {
        let (stats, name) = key(&mut self.by_type, event_type);
        stats.events += 1;
        self.total.events += 1;
        if let Some(at) = created {
            stats.rate.add(at);
            self.total.rate.add(at);
        }
        self.events.get_or_create(&vec![("event_type", name)]).inc();
        self.in_memory.inc();
    }

    pub(crate) fn on_removed(&mut self) {
        self.in_memory.dec();
    }

    pub(crate) fn on_bus(&mut self, bus: &str, created: Option<f64>) {
        let (stats, name) = key(&mut self.by_bus, bus);
        stats.events += 1;
        if let Some(at) = created {
            stats.rate.add(at);
        }
        self.bus_events.get_or_create(&vec![("bus", name)]).inc();
    }

    pub(crate) fn on_completed(
        &mut self,
        event_type: &str,
        path: &[String],
        duration_ms: Option<f64>,
    ) {
        for bus in path {
            let (stats, _) = key(&mut self.by_bus, bus);
            stats.completed += 1;
            if let Some(ms) = duration_ms {
                stats.event_ms.add(ms);
            }
        }
        let (stats, name) = key(&mut self.by_type, event_type);
        stats.completed += 1;
        self.total.completed += 1;
        if let Some(ms) = duration_ms {
            stats.event_ms.add(ms);
            self.total.event_ms.add(ms);
            self.event_seconds
                .get_or_create(&vec![("event_type", name.clone())])
                .observe(ms / 1000.0);
        }
        self.completed
            .get_or_create(&vec![("event_type", name)])
            .inc();
    }

    pub(crate) fn on_failed(&mut self, event_type: &str, path: &[String]) {
        for bus in path {
            key(&mut self.by_bus, bus).0.failed += 1;
        }
        let (stats, name) = key(&mut self.by_type, event_type);
        stats.failed += 1;
        self.total.failed += 1;
        self.failed.get_or_create(&vec![("event_type", name)]).inc();
    }

    pub(crate) fn on_result(&mut self, event_type: &str, row: &HandlerRow) {
        let (_, handler) = key(&mut self.handlers, &row.handler);
        let (type_stats, type_name) = key(&mut self.by_type, event_type);
        if let Some(ms) = row.duration_ms {
            type_stats.handler_ms.add(ms);
        }
        let (bus_stats, bus_name) = key(&mut self.by_bus, &row.bus);
        if let Some(ms) = row.duration_ms {
            bus_stats.handler_ms.add(ms);
            self.total.handler_ms.add(ms);
            self.handler_seconds
                .get_or_create(&vec![
                    ("event_type", type_name.clone()),
                    ("handler", handler.clone()),
                ])
                .observe(ms / 1000.0);
        }
        let status = if row.error_type.is_some() {
            "error"
        } else {
            "completed"
        };
        self.results
            .get_or_create(&vec![
                ("event_type", type_name),
                ("handler", handler),
                ("bus", bus_name),
                ("status", status.to_owned()),
            ])
            .inc();
    }

    /// The metrics in the Prometheus text format (OpenMetrics).
    pub fn encode_metrics(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub(crate) fn snapshot(
        &self,
        now_ms: f64,
        in_memory: usize,
        evicted: u64,
        failures: Vec<FailureGroup>,
    ) -> StatsSnapshot {
        let row = |key: &str, s: &KeyStats| StatsRow {
            key: key.to_owned(),
            events: s.events,
            completed: s.completed,
            failed: s.failed,
            rate_10s: s.rate.per_second(now_ms, 10),
            rate_60s: s.rate.per_second(now_ms, 60),
            handler_ms: s.handler_ms.percentiles(),
            event_ms: s.event_ms.percentiles(),
        };
        let rows = |map: &HashMap<String, KeyStats>| {
            let mut rows: Vec<StatsRow> = map.iter().map(|(k, s)| row(k, s)).collect();
            rows.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| a.key.cmp(&b.key)));
            rows
        };
        StatsSnapshot {
            in_memory,
            evicted,
            total: row("all", &self.total),
            by_type: rows(&self.by_type),
            by_bus: rows(&self.by_bus),
            failures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut r = Reservoir::default();
        for v in 1..=100 {
            r.add(f64::from(v));
        }
        assert_eq!(r.percentiles(), Some([50.0, 90.0, 99.0]));
        for _ in 0..RESERVOIR {
            r.add(7.0);
        }
        assert_eq!(r.percentiles(), Some([7.0, 7.0, 7.0]));
    }

    #[test]
    fn rates_count_whole_past_seconds() {
        let mut rate = Rate::default();
        let now = 1_000_000.0 * 1000.0;
        for i in 0..30 {
            rate.add(now - 1000.0 - f64::from(i) * 100.0); // 30 events over the last 3 s
        }
        rate.add(now); // the current second does not count yet
        assert!((rate.per_second(now, 10) - 3.0).abs() < 1e-9);
        assert!((rate.per_second(now, 60) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn keys_past_the_cap_count_as_other() {
        let mut stats = Stats::new();
        for i in 0..MAX_KEYS + 5 {
            stats.on_new_event(&format!("T{i}"), None);
        }
        assert_eq!(stats.by_type.len(), MAX_KEYS + 1);
        assert_eq!(stats.by_type[OTHER].events, 5);
        assert!(
            stats
                .encode_metrics()
                .contains("bubus_events_total{event_type=\"(other)\"} 5")
        );
    }
}
