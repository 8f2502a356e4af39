//! Replaying a log into a bus.

use std::collections::{HashSet, VecDeque};

use uuid::Uuid;

use crate::bus::EventBus;
use crate::error::DispatchError;
use crate::event::AnyEvent;

use super::{WalError, WalRecord};

/// How many replayed events may be in flight (dispatched, not completed) by default.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;

/// How many line errors a [`ReplaySummary`] keeps (it counts them all).
const KEPT_ERRORS: usize = 100;

/// Which logged child events (those with an `event_parent_id`) [`replay_with`] dispatches.
///
/// Replay re-runs handlers, and handlers dispatch their children again (with new ids); replaying
/// the logged children as well would run them twice.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplayChildren {
    /// Skip every event that has a parent: only root events are replayed, and their handlers
    /// recreate the rest of the tree.
    #[default]
    Skip,
    /// Skip children whose parent came earlier in the log (their parent's handlers recreate
    /// them); replay children whose parent is not in the log — e.g. events forwarded
    /// into a logged bus by a handler of a bus that has no log. Right for logs with dispatch
    /// records, where a parent always comes before its children; in completion-only logs (the
    /// Python runtime's) children come first, so there they are replayed and recreated too.
    SkipIfParentReplayed,
    /// Replay every event, children included. Their parent's handlers may dispatch them again.
    All,
}

/// Options for [`replay_with`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ReplayOptions {
    /// Which child events to replay. Default: [`ReplayChildren::Skip`].
    pub children: ReplayChildren,
    /// How many replayed events may be in flight before replay waits for the oldest to
    /// complete. Default: [`DEFAULT_MAX_IN_FLIGHT`].
    pub max_in_flight: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            children: ReplayChildren::Skip,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

impl ReplayOptions {
    /// The defaults.
    pub fn new() -> Self {
        ReplayOptions::default()
    }

    /// Sets which child events to replay.
    pub fn children(mut self, children: ReplayChildren) -> Self {
        self.children = children;
        self
    }

    /// Sets how many replayed events may be in flight at once (at least 1).
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }
}

/// What a replay did.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ReplaySummary {
    /// Events dispatched into the bus.
    pub replayed: u64,
    /// Records of an event already replayed or skipped (its completion record after its
    /// dispatch record, or the same event logged twice).
    pub duplicates: u64,
    /// Child events not replayed, per [`ReplayOptions::children`].
    pub skipped_children: u64,
    /// Lines that were not events ([`WalError::is_line_error`]).
    pub bad_lines: u64,
    /// The first 100 of those line errors, in log order.
    pub errors: Vec<WalError>,
}

/// Replays a log into `bus` with the default [`ReplayOptions`]: every root event in the log is
/// dispatched again, once, in log order, and its handlers run again. See [`replay_with`].
///
/// ```
/// use bubus::wal::{self, WalReader};
/// use bubus::{AnyEvent, EventBus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let log = concat!(
///     r#"{"event_type":"Ping","event_id":"0190a6a0-0000-7000-8000-000000000001","n":1}"#, "\n",
///     "garbage\n",
///     r#"{"event_type":"Ping","event_id":"0190a6a0-0000-7000-8000-000000000001","event_status":"completed","n":1}"#, "\n",
/// );
/// let bus = EventBus::new("Replayed");
/// bus.on_pattern("Ping", |event: AnyEvent| event.payload_json().map(|p| p["n"].clone()));
///
/// let summary = wal::replay(WalReader::new(log.as_bytes()), &bus).await?;
/// assert_eq!((summary.replayed, summary.duplicates, summary.bad_lines), (1, 1, 1));
/// let replayed = &bus.event_history()[0];
/// assert_eq!(replayed.event_id().to_string(), "0190a6a0-0000-7000-8000-000000000001");
/// assert_eq!(replayed.event_results()[0].result, Some(serde_json::json!(1)));
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// As [`replay_with`].
///
/// # Cancel safety
///
/// As [`replay_with`].
pub async fn replay<I>(records: I, bus: &EventBus) -> Result<ReplaySummary, WalError>
where
    I: IntoIterator<Item = Result<WalRecord, WalError>>,
{
    replay_with(records, bus, ReplayOptions::default()).await
}

/// Replays a log into `bus`.
///
/// `records` is usually a [`WalReader`](super::WalReader). For each record, in log order:
///
/// * an event seen before in this replay (by `event_id`) is skipped as a duplicate — so an event
///   logged with a dispatch record and a completion record is replayed once;
/// * a child event is skipped or not per [`ReplayOptions::children`];
/// * otherwise a fresh copy is dispatched: same id, type, payload, configuration, parent id and
///   creation time, but pending, with no results and an empty path (replay is a new run on this
///   bus, not a forwarding hop, so loop prevention does not drop an event whose logged path
///   names a bus with the same label). Handlers see it as new and run again; typed handlers
///   decode its JSON payload.
///
/// Line errors are counted and kept in the summary (and logged at warn level); replay goes on.
/// At most [`max_in_flight`](ReplayOptions::max_in_flight) replayed events are in flight at a
/// time, and a dispatch refused because the bus's history is full waits for the oldest replayed
/// event to complete, then retries. Replay returns once every replayed event has completed.
///
/// Replaying into a bus that writes the same log is safe: the records it appends carry ids
/// already replayed, so a reader still reading that file skips them as duplicates. The set of
/// ids seen is kept for the whole replay (16 bytes per event, plus overhead).
///
/// # Errors
///
/// [`WalError::Read`] if reading the log fails; [`WalError::Dispatch`] if the bus refuses an
/// event for another reason (it is stopped; the history is full of events other than replayed
/// ones). Replay stops there; events already replayed keep running.
///
/// # Cancel safety
///
/// Not cancel safe: dropping the future stops replay part-way (events already dispatched keep
/// running, and the records taken from `records` are lost).
pub async fn replay_with<I>(
    records: I,
    bus: &EventBus,
    options: ReplayOptions,
) -> Result<ReplaySummary, WalError>
where
    I: IntoIterator<Item = Result<WalRecord, WalError>>,
{
    let max_in_flight = options.max_in_flight.max(1);
    let mut summary = ReplaySummary::default();
    let mut seen: HashSet<Uuid> = HashSet::new();
    let mut in_flight: VecDeque<AnyEvent> = VecDeque::new();

    for item in records {
        let record = match item {
            Ok(record) => record,
            Err(error) if error.is_line_error() => {
                tracing::warn!(
                    error = &error as &(dyn std::error::Error + 'static),
                    "skipping a bad write-ahead log line"
                );
                summary.bad_lines += 1;
                if summary.errors.len() < KEPT_ERRORS {
                    summary.errors.push(error);
                }
                continue;
            }
            Err(error) => return Err(error),
        };
        let event = &record.event;
        if !seen.insert(event.event_id()) {
            summary.duplicates += 1;
            continue;
        }
        if let Some(parent) = event.event_parent_id() {
            let skip = match options.children {
                ReplayChildren::Skip => true,
                ReplayChildren::SkipIfParentReplayed => seen.contains(&parent),
                ReplayChildren::All => false,
            };
            if skip {
                summary.skipped_children += 1;
                continue;
            }
        }

        let copy = event.event_reset_keep_id();
        copy.inner().state.lock().path.clear();
        loop {
            match bus.dispatch(&copy) {
                Ok(_) => break,
                Err(DispatchError::HistoryFull { .. }) if !in_flight.is_empty() => {
                    wait_oldest(&mut in_flight).await;
                }
                Err(source) => {
                    return Err(WalError::Dispatch {
                        line: record.line,
                        source,
                    });
                }
            }
        }
        summary.replayed += 1;
        in_flight.push_back(copy);
        while in_flight.front().is_some_and(AnyEvent::is_complete) {
            in_flight.pop_front();
        }
        if in_flight.len() >= max_in_flight {
            wait_oldest(&mut in_flight).await;
        }
    }
    while !in_flight.is_empty() {
        wait_oldest(&mut in_flight).await;
    }
    Ok(summary)
}

async fn wait_oldest(in_flight: &mut VecDeque<AnyEvent>) {
    if let Some(oldest) = in_flight.pop_front() {
        // Cannot fail: the event was dispatched, and replay is not one of its handlers.
        let _ = oldest.await;
    }
}
