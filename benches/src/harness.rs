//! What every scenario shares: the reference constants, sizes, runtimes, the memory tracker, CPU
//! time, settling, trimming and the warm-up run.

use std::time::{Duration, Instant};

use bubus::bus::HistoryFull;
use bubus::{DispatchError, Event, EventBus, EventHandle};

use crate::events::{PerfWarmupEvent, PerfWarmupTrimEvent};

/// History bound of the single-bus stream scenario (S1) and the warm-up bus.
pub const HISTORY_LIMIT_STREAM: usize = 512;
/// History bound of S4's bus.
pub const HISTORY_LIMIT_ON_OFF: usize = 128;
/// History bound of each of S2's buses.
pub const HISTORY_LIMIT_EPHEMERAL_BUS: usize = 128;
/// History bound of S3's bus.
pub const HISTORY_LIMIT_FIXED_HANDLERS: usize = 128;
/// History bound of S5's buses.
pub const HISTORY_LIMIT_WORST_CASE: usize = 128;
/// What the reference trims each bus's history to before stopping it.
pub const TRIM_TARGET: usize = 1;
/// S5's near-zero child timeout, in milliseconds…
pub const WORST_CASE_IMMEDIATE_TIMEOUT_MS: f64 = 0.0001;
/// …in seconds, as the family's `event_timeout` takes it…
pub const WORST_CASE_IMMEDIATE_TIMEOUT_SECONDS: f64 = WORST_CASE_IMMEDIATE_TIMEOUT_MS / 1000.0;
/// …and as the `Duration` bubus takes (the same 0.0001 ms).
pub const WORST_CASE_IMMEDIATE_TIMEOUT: std::time::Duration = std::time::Duration::from_nanos(100);
/// S1's (and the warm-up's reference) batch size.
pub const STREAM_BATCH_SIZE: u64 = 512;
/// How long the reference lets the runtime settle before its last memory sample.
pub const SETTLE: Duration = Duration::from_millis(50);

/// How many buses, events, handlers and iterations a run uses: the reference's, or a reduced set
/// for the smoke test (same code paths, same batch sizes and history bounds).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Counts {
    /// S1: events on one bus.
    pub s1_events: u64,
    /// S2: buses, one after the other.
    pub s2_buses: u64,
    /// S2: events per bus.
    pub s2_events_per_bus: u64,
    /// S3: handlers of the one event.
    pub s3_handlers: u64,
    /// S4: events, each with its own one-off handler.
    pub s4_events: u64,
    /// S5: iterations (3 events each in the reference's accounting).
    pub s5_iterations: u64,
    /// Warm-up: events, and the batch they are awaited in.
    pub warmup_events: u64,
    /// Warm-up batch size.
    pub warmup_batch: u64,
}

impl Counts {
    /// The reference's sizes.
    pub const FULL: Counts = Counts {
        s1_events: 50_000,
        s2_buses: 500,
        s2_events_per_bus: 100,
        s3_handlers: 50_000,
        s4_events: 50_000,
        s5_iterations: 500,
        warmup_events: 2048,
        warmup_batch: 256,
    };

    /// Small enough for a debug build in seconds, large enough to evict from every history and to
    /// hit every periodic step (memory samples, timeouts, `find`).
    pub const SMOKE: Counts = Counts {
        s1_events: 2048,
        s2_buses: 11,
        s2_events_per_bus: 100,
        s3_handlers: 500,
        s4_events: 1001,
        s5_iterations: 50,
        warmup_events: 256,
        warmup_batch: 128,
    };
}

/// Which tokio runtime the scenarios run on.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum RuntimeFlavor {
    /// `new_multi_thread` with this many workers (2 by default, the reference machine's cores).
    MultiThread {
        /// Worker threads.
        workers: usize,
    },
    /// `new_current_thread`.
    CurrentThread,
}

impl Default for RuntimeFlavor {
    fn default() -> Self {
        RuntimeFlavor::MultiThread { workers: 2 }
    }
}

impl RuntimeFlavor {
    /// `multi-thread` or `current-thread`, as recorded in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            RuntimeFlavor::MultiThread { .. } => "multi-thread",
            RuntimeFlavor::CurrentThread => "current-thread",
        }
    }

    /// Worker threads (1 for current-thread).
    pub fn workers(self) -> usize {
        match self {
            RuntimeFlavor::MultiThread { workers } => workers,
            RuntimeFlavor::CurrentThread => 1,
        }
    }

    /// `tokio multi-thread, 2 workers`, for the table.
    pub fn describe(self) -> String {
        match self {
            RuntimeFlavor::MultiThread { workers } => {
                format!("tokio multi-thread, {workers} workers")
            }
            RuntimeFlavor::CurrentThread => "tokio current-thread".to_owned(),
        }
    }

    /// Builds the runtime, with IO and time enabled.
    ///
    /// # Errors
    ///
    /// The IO error of a runtime that could not be created.
    pub fn build(self) -> std::io::Result<tokio::runtime::Runtime> {
        match self {
            RuntimeFlavor::MultiThread { workers } => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(workers.max(1))
                .enable_all()
                .build(),
            RuntimeFlavor::CurrentThread => tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build(),
        }
    }
}

/// How a run is set up.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Sizes.
    pub counts: Counts,
    /// The runtime each scenario runs on.
    pub runtime: RuntimeFlavor,
    /// Run the warm-up before each scenario, as the TypeScript harness does.
    pub warmup: bool,
    /// How long a scenario may run before it is reported as hung (a deadlock guard, not a time
    /// limit: far above any plausible run).
    pub hang_guard: Duration,
}

impl Options {
    /// The reference's sizes on the default runtime, with warm-up.
    pub fn full() -> Self {
        Options {
            counts: Counts::FULL,
            runtime: RuntimeFlavor::default(),
            warmup: true,
            hang_guard: Duration::from_secs(600),
        }
    }

    /// Reduced sizes on `runtime`, with warm-up and a shorter hang guard.
    pub fn smoke(runtime: RuntimeFlavor) -> Self {
        Options {
            counts: Counts::SMOKE,
            runtime,
            warmup: true,
            hang_guard: Duration::from_secs(60),
        }
    }

    /// Whether these are the smoke sizes (the numbers are then not measurements).
    pub fn is_smoke(&self) -> bool {
        self.counts != Counts::FULL
    }
}

/// The process's resident set size in bytes (`VmRSS` of `/proc/self/status`); `None` where
/// there is no procfs.
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line["VmRSS:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// User + system CPU time of the whole process (every thread), in milliseconds, from
/// `/proc/self/stat` (clock ticks of 10 ms: coarse, but comparable across runtimes).
pub fn cpu_ms() -> Option<f64> {
    // USER_HZ: fixed at 100 for /proc on every Linux architecture.
    const TICK_MS: f64 = 10.0;
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may contain spaces; the fields we need follow its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11); // state is field 3; utime is field 14
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * TICK_MS)
}

/// The resident set size read from `/proc/self/statm` through a file opened once: one `pread`
/// per sample (about 1 µs), where opening and reading `/proc/self/status` ([`rss_bytes`]) costs
/// about 20 µs. S5 samples every 5 iterations and S2 after every bus, inside the timed part, so
/// with `rss_bytes` the sampling alone was about a quarter of S5's time and a fifth of S2's.
/// `statm`'s resident count is the same figure as `VmRSS`, in pages.
#[derive(Debug)]
struct StatmReader {
    file: std::fs::File,
    page_bytes: u64,
}

impl StatmReader {
    fn open() -> Option<Self> {
        Some(StatmReader {
            file: std::fs::File::open("/proc/self/statm").ok()?,
            page_bytes: rustix::param::page_size() as u64,
        })
    }

    fn rss_bytes(&self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        // Seven numbers of at most 20 digits each, with their separators.
        let mut buf = [0u8; 160];
        let len = self.file.read_at(&mut buf, 0).ok()?;
        let text = std::str::from_utf8(&buf[..len]).ok()?;
        let resident: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
        Some(resident * self.page_bytes)
    }
}

/// The reference's `MemoryTracker`: RSS at construction is the baseline, [`sample`](Self::sample)
/// keeps the peak, and the result is the peak's growth over the baseline per unit.
#[derive(Debug)]
pub struct MemoryTracker {
    reader: Option<StatmReader>,
    baseline: Option<u64>,
    peak: Option<u64>,
}

impl MemoryTracker {
    /// Takes the baseline now.
    pub fn new() -> Self {
        let reader = StatmReader::open();
        let baseline = reader.as_ref().and_then(StatmReader::rss_bytes);
        MemoryTracker {
            reader,
            baseline,
            peak: baseline,
        }
    }

    /// Samples RSS, keeping the peak.
    pub fn sample(&mut self) {
        let now = self.reader.as_ref().and_then(StatmReader::rss_bytes);
        if let (Some(now), Some(peak)) = (now, self.peak.as_mut()) {
            *peak = (*peak).max(now);
        }
    }

    /// `max(0, peak - baseline) / 1024 / units`, in KiB per unit; `None` without procfs or units.
    pub fn peak_rss_kb_per(&self, units: u64) -> Option<f64> {
        let (baseline, peak) = (self.baseline?, self.peak?);
        (units > 0).then(|| peak.saturating_sub(baseline) as f64 / 1024.0 / units as f64)
    }
}

impl Default for MemoryTracker {
    fn default() -> Self {
        MemoryTracker::new()
    }
}

/// Milliseconds since `start`.
pub fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// The reference's `_wait_for_runtime_settle`.
pub async fn settle() {
    tokio::time::sleep(SETTLE).await;
}

/// A dispatch error as the reference words exceptions (`Type: message`).
pub fn dispatch_error(err: &DispatchError) -> String {
    format!("DispatchError: {err}")
}

/// The reference's `_trim_bus_history_to_one_event`: dispatch one trim event, await it, wait for
/// idle, and check the history bound.
///
/// The reference first lowers the bus's bound to [`TRIM_TARGET`] (with drop) and restores it
/// afterwards. bubus fixes a bus's history bound when the bus is built, so this does everything
/// but that, and checks the history against the bus's own bound instead of [`TRIM_TARGET`].
///
/// # Errors
///
/// The dispatch or wait error, or the history over its bound — the reference's assertion.
pub async fn trim_history<E: Event>(bus: &EventBus, trim_event: E) -> Result<(), String> {
    let event = bus.dispatch(trim_event).map_err(|e| dispatch_error(&e))?;
    event.await.map_err(|e| format!("WaitError: {e}"))?;
    bus.wait_until_idle(None).await;
    let target = bus.config().max_history_size;
    let len = bus.event_history().len();
    match target {
        Some(max) if len > max => Err(format!(
            "AssertionError: trim failed for {bus}: {len}/{max}"
        )),
        _ => Ok(()),
    }
}

/// The TypeScript harness's warm-up, run before each scenario: a bus with history 512 (drop) and
/// a no-op handler gets 2048 events awaited in batches of 256, is trimmed and stopped, and the
/// runtime settles.
///
/// # Errors
///
/// What went wrong, if anything did.
pub async fn warmup(counts: &Counts) -> Result<(), String> {
    let bus = EventBus::builder("PerfWarmupBus")
        .max_history_size(Some(HISTORY_LIMIT_STREAM))
        .history_full(HistoryFull::DropOldest)
        .build();
    bus.on(|_: EventHandle<PerfWarmupEvent>| {});
    let mut pending = Vec::with_capacity(counts.warmup_batch as usize);
    let mut sent = 0;
    while sent < counts.warmup_events {
        for _ in 0..counts.warmup_batch.min(counts.warmup_events - sent) {
            pending.push(
                bus.dispatch(PerfWarmupEvent {})
                    .map_err(|e| dispatch_error(&e))?,
            );
            sent += 1;
        }
        for event in pending.drain(..) {
            event.await.map_err(|e| format!("WaitError: {e}"))?;
        }
        bus.wait_until_idle(None).await;
    }
    trim_history(&bus, PerfWarmupTrimEvent {}).await?;
    bus.stop_and_clear(Some(Duration::ZERO)).await;
    settle().await;
    Ok(())
}

/// The reference's `_measure_heap_delta_after_gc`: RSS growth, in MiB, across four rounds of
/// (collect garbage + sleep 15 ms) — with nothing to collect here, the sleeps alone.
pub async fn heap_delta_after_gc_mb() -> Option<f64> {
    let before = rss_bytes()?;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    let after = rss_bytes()?;
    let delta = after.saturating_sub(before) as f64 / (1024.0 * 1024.0);
    Some((delta * 1000.0).round() / 1000.0)
}
