//! The merged view of every source: events by id, their handler rows, trees, failure groups and
//! statistics, with bounded memory.
//!
//! Sources feed it canonical event JSON (and, for history mirrors, single result rows). The same
//! event seen by two sources (a WAL and a mirror of one bus, or two buses of two processes joined
//! by a bridge) is one entry: fields are merged by event id, the furthest status wins, results
//! are merged by result id.
//!
//! Every change gets a sequence number, so a page can ask for "what changed since N" and never
//! misses an update however fast events come (see [`Model::changes_since`]).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::stats::{Stats, StatsSnapshot};

/// How many events a monitor keeps by default.
pub const DEFAULT_MAX_EVENTS: usize = 100_000;

/// The longest result shown in a handler row (longer ones are cut, the raw view has them whole).
const RESULT_PREVIEW: usize = 200;
/// An event whose JSON is longer than this is kept without it (no raw view, no replay).
const MAX_RAW_LEN: usize = 1 << 20;
/// How many removals are remembered for pages catching up; a page further behind starts over.
const REMOVED_LOG: usize = 200_000;
/// How many event ids a failure group remembers for replay.
const GROUP_IDS: usize = 1_000;
/// How many failure groups are kept (the least recently failing go first).
const MAX_GROUPS: usize = 1_000;

/// An event's status as the monitor shows it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Dispatched, not started.
    Pending,
    /// A handler started.
    Started,
    /// Every handler is done.
    Completed,
}

impl Status {
    fn parse(text: &str) -> Status {
        match text {
            "completed" => Status::Completed,
            "started" => Status::Started,
            _ => Status::Pending,
        }
    }
}

/// One handler's outcome on one event.
#[derive(Clone, Debug, Serialize)]
pub struct HandlerRow {
    /// The result id (or the handler id when the source gives none).
    pub id: String,
    /// The handler id.
    pub handler_id: String,
    /// The handler's name.
    pub handler: String,
    /// The bus (label) it ran on.
    pub bus: String,
    /// `pending`, `started`, `completed` or `error`.
    pub status: String,
    /// Start time, Unix milliseconds.
    pub started: Option<f64>,
    /// End time, Unix milliseconds.
    pub completed: Option<f64>,
    /// Run time in milliseconds.
    pub duration_ms: Option<f64>,
    /// The result as compact JSON, cut at 200 characters.
    pub result: Option<String>,
    /// The error's type.
    pub error_type: Option<String>,
    /// The error's message.
    pub error_message: Option<String>,
    #[serde(skip)]
    counted: bool,
}

impl HandlerRow {
    fn rank(&self) -> u8 {
        match self.status.as_str() {
            "completed" | "error" => 2,
            "started" => 1,
            _ => 0,
        }
    }

    fn terminal(&self) -> bool {
        self.rank() == 2
    }
}

/// What the page's list holds for one event (short keys: a page may hold 100 000 of them).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Event id.
    pub id: String,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Parent event id.
    pub parent: Option<String>,
    /// The buses it went through (`event_path`).
    pub path: Vec<String>,
    /// Its status.
    pub status: Status,
    /// Creation time, Unix milliseconds.
    pub created: Option<f64>,
    /// Completion time, Unix milliseconds.
    pub done: Option<f64>,
    /// Handler results recorded.
    pub handlers: usize,
    /// Handler results that are errors.
    pub errors: usize,
    /// The event this one is a replay of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
}

/// Everything about one event, for its detail view.
#[derive(Clone, Debug, Serialize)]
pub struct Detail {
    /// The list entry.
    #[serde(flatten)]
    pub summary: Summary,
    /// Start time, Unix milliseconds.
    pub started: Option<f64>,
    /// One row per handler result.
    pub results: Vec<HandlerRow>,
    /// Child event ids (those in memory).
    pub children: Vec<String>,
    /// Events replayed from this one.
    pub replays: Vec<String>,
    /// The sources it was seen in.
    pub sources: Vec<String>,
    /// The event's latest JSON (with its results), when kept.
    pub raw: Option<Value>,
}

/// A failure group: the errors of one type raised by one handler.
#[derive(Clone, Debug, Serialize)]
pub struct FailureGroup {
    /// The error type.
    pub error_type: String,
    /// The handler name.
    pub handler: String,
    /// How many handler results failed so.
    pub count: u64,
    /// The last failure's message.
    pub last_message: String,
    /// The last failure's time, Unix milliseconds.
    pub last_seen: Option<f64>,
    /// How many of the failing events it remembers (the last 1 000) are still in memory: those
    /// a replay of the group re-dispatches. Their ids: [`Model::group_events`].
    pub in_memory: usize,
}

struct Group {
    count: u64,
    last_message: String,
    last_seen: Option<f64>,
    touched: u64,
    events: VecDeque<String>,
}

struct Entry {
    summary: Summary,
    started: Option<f64>,
    /// Creation to completion, in milliseconds.
    duration: Option<f64>,
    results: Vec<HandlerRow>,
    children: Vec<String>,
    replays: Vec<String>,
    sources: u64,
    /// The latest JSON of the event without its results.
    raw: Option<Arc<str>>,
    seq: u64,
    /// How many entries of `path` were counted in the per-bus statistics.
    buses_counted: usize,
    completed_counted: bool,
    failed_counted: bool,
}

/// Changes for a page: events added or changed and events removed since a sequence number.
#[derive(Debug, Serialize)]
pub struct Changes {
    /// The sequence number to ask from next time.
    pub seq: u64,
    /// The page is too far behind: it must drop what it has (everything comes in `events`).
    pub reset: bool,
    /// Added or changed events, oldest change first.
    pub events: Vec<Summary>,
    /// Ids of events evicted since.
    pub removed: Vec<String>,
}

/// The merged model. Guarded by the [`Monitor`](crate::Monitor)'s lock.
pub struct Model {
    events: HashMap<String, Entry>,
    /// seq → event id, for every event's latest change.
    changed: BTreeMap<u64, String>,
    removed: VecDeque<(u64, String)>,
    /// The oldest removal a page may still catch up from.
    removed_floor: u64,
    seq: u64,
    /// Root ids in the order they were first seen, for eviction (may name evicted events).
    roots: VecDeque<String>,
    /// Children seen before their parent: parent id → child ids.
    orphans: HashMap<String, Vec<String>>,
    groups: HashMap<(String, String), Group>,
    group_clock: u64,
    max_events: usize,
    evicted: u64,
    source_names: Vec<String>,
    /// Replayed event id → original id, for replays not seen yet.
    replay_notes: HashMap<String, String>,
    /// Statistics and metrics.
    pub stats: Stats,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("events", &self.events.len())
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

/// Unix nanoseconds of an ISO timestamp (`null`, absent or unreadable: `None`).
fn nanos(value: Option<&Value>) -> Option<u64> {
    let text = value?.as_str()?;
    Some(bubus::time::Timestamp::parse(text).ok()?.as_unix_nanos())
}

/// Unix milliseconds of an ISO timestamp.
fn millis(value: Option<&Value>) -> Option<f64> {
    nanos(value).map(|n| n as f64 / 1e6)
}

/// Milliseconds from one timestamp to another, computed in nanoseconds (a Unix time in
/// milliseconds as an `f64` keeps only about a microsecond).
fn span_ms(from: Option<&Value>, to: Option<&Value>) -> Option<f64> {
    let (from, to) = (nanos(from)?, nanos(to)?);
    (to >= from).then(|| (to - from) as f64 / 1e6)
}

/// The bus label `Name#ab12` of a result (its `eventbus_name`, and the last four hex digits
/// of its `eventbus_id`), as event paths name buses.
fn bus_label(json: &Map<String, Value>) -> String {
    let name = text(json.get("eventbus_name")).unwrap_or_default();
    match json.get("eventbus_id").and_then(Value::as_str) {
        Some(id) if !name.contains('#') && id.len() >= 4 && id.is_ascii() => {
            format!("{name}#{}", &id[id.len() - 4..])
        }
        _ => name,
    }
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// A handler row from a result's JSON (`None` when it names neither a result nor a handler).
fn handler_row(json: &Map<String, Value>) -> Option<HandlerRow> {
    let handler_id = text(json.get("handler_id"));
    let id = text(json.get("id")).or_else(|| handler_id.clone())?;
    let started = millis(json.get("started_at"));
    let completed = millis(json.get("completed_at"));
    let error = json.get("error").filter(|e| !e.is_null());
    let (error_type, error_message) = match error {
        Some(Value::Object(e)) => (
            text(e.get("type")).or_else(|| Some("Error".into())),
            text(e.get("message")),
        ),
        // Python 1.x: `"error": "ValueError: message"`.
        Some(Value::String(s)) => match s.split_once(": ") {
            Some((t, m)) if !t.contains(' ') => (Some(t.to_owned()), Some(m.to_owned())),
            _ => (Some("Error".into()), Some(s.clone())),
        },
        Some(other) => (Some("Error".into()), Some(other.to_string())),
        None => (None, None),
    };
    let mut status = text(json.get("status")).unwrap_or_else(|| "pending".into());
    if error_type.is_some() && status == "completed" {
        status = "error".into();
    }
    let result = json
        .get("result")
        .filter(|r| !r.is_null())
        .map(|r| cut(r.to_string(), RESULT_PREVIEW));
    Some(HandlerRow {
        id,
        handler_id: handler_id.unwrap_or_default(),
        handler: text(json.get("handler_name")).unwrap_or_else(|| "?".into()),
        bus: bus_label(json),
        status,
        started,
        completed,
        duration_ms: span_ms(json.get("started_at"), json.get("completed_at")),
        result,
        error_type,
        error_message,
        counted: false,
    })
}

impl Model {
    /// An empty model that keeps at most `max_events` events.
    pub fn new(max_events: usize) -> Model {
        Model {
            events: HashMap::new(),
            changed: BTreeMap::new(),
            removed: VecDeque::new(),
            removed_floor: 0,
            seq: 0,
            roots: VecDeque::new(),
            orphans: HashMap::new(),
            groups: HashMap::new(),
            group_clock: 0,
            max_events: max_events.max(1),
            evicted: 0,
            source_names: Vec::new(),
            replay_notes: HashMap::new(),
            stats: Stats::new(),
        }
    }

    /// Registers a source by name; returns its index.
    pub fn add_source(&mut self, name: String) -> usize {
        self.source_names.push(name);
        self.source_names.len() - 1
    }

    /// The names of the sources.
    pub fn source_names(&self) -> &[String] {
        &self.source_names
    }

    /// The latest sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// How many events are held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// How many events were evicted so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    fn bump(&mut self, id: &str) -> u64 {
        self.seq += 1;
        let seq = self.seq;
        if let Some(entry) = self.events.get_mut(id) {
            self.changed.remove(&entry.seq);
            entry.seq = seq;
            self.changed.insert(seq, id.to_owned());
        }
        seq
    }

    /// Merges an event's JSON (canonical, as any runtime writes it; with or without
    /// `event_results`, as a list or keyed by handler id). Returns `false` when it has no
    /// `event_id` or `event_type`.
    pub fn ingest_event(&mut self, source: usize, mut json: Map<String, Value>) -> bool {
        let (Some(id), Some(event_type)) =
            (text(json.get("event_id")), text(json.get("event_type")))
        else {
            return false;
        };
        let results = json.remove("event_results");
        let raw = serde_json::to_string(&json)
            .ok()
            .filter(|raw| raw.len() <= MAX_RAW_LEN)
            .map(Arc::<str>::from);
        let status = Status::parse(
            json.get("event_status")
                .and_then(Value::as_str)
                .unwrap_or(""),
        );
        let path: Vec<String> = match json.get("event_path") {
            Some(Value::Array(items)) => items.iter().filter_map(|v| text(Some(v))).collect(),
            _ => Vec::new(),
        };
        let parent = text(json.get("event_parent_id"));
        let created = millis(json.get("event_created_at"));
        let duration = span_ms(json.get("event_created_at"), json.get("event_completed_at"));
        let started = millis(json.get("event_started_at"));
        let done = millis(json.get("event_completed_at"));

        let is_new = !self.events.contains_key(&id);
        if is_new {
            self.insert_new(&id, &event_type, parent.clone(), created);
        }
        let Some(entry) = self.events.get_mut(&id) else {
            return false;
        };
        entry.sources |= 1u64 << source.min(63);
        if status >= entry.summary.status {
            entry.summary.status = status;
            if raw.is_some() {
                entry.raw = raw;
            }
        }
        if path.len() >= entry.summary.path.len() {
            entry.summary.path = path;
        }
        entry.summary.created = entry.summary.created.or(created);
        entry.started = entry.started.or(started);
        entry.summary.done = entry.summary.done.or(done);
        entry.duration = entry.duration.or(duration);
        if entry.summary.parent.is_none() && parent.is_some() {
            // A parent learnt late (a source that did not name it first).
            if let Some(p) = parent.filter(|p| !self.closes_cycle(&id, p)) {
                if let Some(entry) = self.events.get_mut(&id) {
                    entry.summary.parent = Some(p.clone());
                }
                self.link_child(&p, &id);
            }
        }
        match results {
            Some(Value::Object(map)) => {
                for (_, r) in map {
                    if let Value::Object(r) = r {
                        self.merge_result(&id, &r);
                    }
                }
            }
            Some(Value::Array(list)) => {
                for r in list {
                    if let Value::Object(r) = r {
                        self.merge_result(&id, &r);
                    }
                }
            }
            _ => {}
        }
        self.count(&id);
        self.bump(&id);
        if is_new {
            self.evict();
        }
        true
    }

    /// Merges one handler result's JSON into its event (a history mirror's `event_results_log`
    /// row). An event not seen yet gets a placeholder of type `event_type`.
    pub fn ingest_result(
        &mut self,
        source: usize,
        event_id: &str,
        event_type: &str,
        json: &Map<String, Value>,
    ) {
        if !self.events.contains_key(event_id) {
            self.insert_new(event_id, event_type, None, None);
        }
        if let Some(entry) = self.events.get_mut(event_id) {
            entry.sources |= 1u64 << source.min(63);
        }
        self.merge_result(event_id, json);
        self.count(event_id);
        self.bump(event_id);
        self.evict();
    }

    fn insert_new(
        &mut self,
        id: &str,
        event_type: &str,
        parent: Option<String>,
        created: Option<f64>,
    ) {
        self.stats.on_new_event(event_type, created);
        let event_type = event_type.to_owned();
        // Lineage that loops (an event its own ancestor) is bad input: the link is dropped.
        let parent = parent.filter(|p| !self.closes_cycle(id, p));
        let mut children = self.orphans.remove(id).unwrap_or_default();
        children.retain(|c| self.events.contains_key(c));
        self.events.insert(
            id.to_owned(),
            Entry {
                summary: Summary {
                    id: id.to_owned(),
                    event_type,
                    parent: parent.clone(),
                    path: Vec::new(),
                    status: Status::Pending,
                    created,
                    done: None,
                    handlers: 0,
                    errors: 0,
                    replay_of: self.replay_notes.remove(id),
                },
                started: None,
                duration: None,
                results: Vec::new(),
                children,
                replays: Vec::new(),
                sources: 0,
                raw: None,
                seq: 0,
                buses_counted: 0,
                completed_counted: false,
                failed_counted: false,
            },
        );
        match &parent {
            Some(p) => self.link_child(p, id),
            None => self.roots.push_back(id.to_owned()),
        }
    }

    /// Whether making `parent` the parent of `id` would make `id` its own ancestor.
    fn closes_cycle(&self, id: &str, parent: &str) -> bool {
        let mut cur = Some(parent);
        let mut steps = 0;
        while let Some(c) = cur {
            if c == id || steps > 100_000 {
                return true;
            }
            steps += 1;
            cur = self.events.get(c).and_then(|e| e.summary.parent.as_deref());
        }
        false
    }

    fn link_child(&mut self, parent: &str, child: &str) {
        match self.events.get_mut(parent) {
            Some(p) => {
                if !p.children.iter().any(|c| c == child) {
                    p.children.push(child.to_owned());
                }
            }
            None => {
                // Evicted with the rest of its tree when it is a root; until then it counts
                // as one for eviction.
                self.orphans
                    .entry(parent.to_owned())
                    .or_default()
                    .push(child.to_owned());
                self.roots.push_back(child.to_owned());
            }
        }
    }

    fn merge_result(&mut self, event_id: &str, json: &Map<String, Value>) {
        let Some(row) = handler_row(json) else { return };
        let Some(entry) = self.events.get_mut(event_id) else {
            return;
        };
        let slot = match entry.results.iter().position(|r| r.id == row.id) {
            Some(i) => {
                if row.rank() < entry.results[i].rank() {
                    return;
                }
                let counted = entry.results[i].counted;
                entry.results[i] = HandlerRow { counted, ..row };
                i
            }
            None => {
                entry.results.push(row);
                entry.results.len() - 1
            }
        };
        entry.summary.handlers = entry.results.len();
        entry.summary.errors = entry
            .results
            .iter()
            .filter(|r| r.error_type.is_some())
            .count();
        let r = &mut entry.results[slot];
        if r.terminal() && !r.counted {
            r.counted = true;
            let r = r.clone();
            let event_type = entry.summary.event_type.clone();
            self.stats.on_result(&event_type, &r);
            if let Some(error_type) = &r.error_type {
                self.group_clock += 1;
                let group = self
                    .groups
                    .entry((error_type.clone(), r.handler.clone()))
                    .or_insert_with(|| Group {
                        count: 0,
                        last_message: String::new(),
                        last_seen: None,
                        touched: 0,
                        events: VecDeque::new(),
                    });
                group.count += 1;
                group.last_message = r.error_message.clone().unwrap_or_default();
                group.last_seen = r.completed.or(group.last_seen);
                group.touched = self.group_clock;
                if !group.events.iter().any(|e| e == event_id) {
                    group.events.push_back(event_id.to_owned());
                    if group.events.len() > GROUP_IDS {
                        group.events.pop_front();
                    }
                }
                if self.groups.len() > MAX_GROUPS {
                    let oldest = self
                        .groups
                        .iter()
                        .min_by_key(|(_, g)| g.touched)
                        .map(|(k, _)| k.clone());
                    if let Some(key) = oldest {
                        self.groups.remove(&key);
                    }
                }
            }
        }
    }

    /// Updates the statistics for what became known about the event.
    fn count(&mut self, id: &str) {
        let Some(entry) = self.events.get_mut(id) else {
            return;
        };
        let event_type = entry.summary.event_type.clone();
        for bus in entry.summary.path.iter().skip(entry.buses_counted) {
            self.stats.on_bus(bus, entry.summary.created);
        }
        entry.buses_counted = entry.buses_counted.max(entry.summary.path.len());
        if entry.summary.status == Status::Completed && !entry.completed_counted {
            entry.completed_counted = true;
            self.stats
                .on_completed(&event_type, &entry.summary.path, entry.duration);
        }
        if entry.summary.errors > 0 && !entry.failed_counted {
            entry.failed_counted = true;
            self.stats.on_failed(&event_type, &entry.summary.path);
        }
    }

    /// Records that `replay` is a replay of `original` (both are shown linked).
    pub fn note_replay(&mut self, original: &str, replay: &str) {
        if let Some(entry) = self.events.get_mut(original) {
            entry.replays.push(replay.to_owned());
            self.bump(original);
        }
        self.stats.replays.inc();
        match self.events.get_mut(replay) {
            Some(entry) => {
                entry.summary.replay_of = Some(original.to_owned());
                self.bump(replay);
            }
            None => {
                // The replayed event arrives later from a source: the link is made then.
                if self.replay_notes.len() >= GROUP_IDS * 10 {
                    self.replay_notes.clear();
                }
                self.replay_notes
                    .insert(replay.to_owned(), original.to_owned());
            }
        }
    }

    /// Evicts the oldest completed trees while more than `max_events` are held. A tree with an
    /// unfinished event is kept, unless the model is a quarter over its bound: then the oldest
    /// trees go whatever their state, so memory stays bounded.
    fn evict(&mut self) {
        const SCAN: usize = 64;
        let hard = self.max_events + self.max_events / 4;
        while self.events.len() > self.max_events {
            let mut victim = None;
            for (i, root) in self.roots.iter().enumerate().take(SCAN) {
                if !self.events.contains_key(root) {
                    victim = Some(i);
                    break;
                }
                if self.events.len() > hard || self.tree_complete(root) {
                    victim = Some(i);
                    break;
                }
            }
            let Some(i) = victim else { break };
            let Some(root) = self.roots.remove(i) else {
                break;
            };
            self.remove_tree(&root);
        }
        // Stale root names of evicted trees do not pile up.
        while self
            .roots
            .front()
            .is_some_and(|r| !self.events.contains_key(r))
        {
            self.roots.pop_front();
        }
    }

    fn tree_complete(&self, root: &str) -> bool {
        let mut stack = vec![root];
        let mut seen = 0usize;
        while let Some(id) = stack.pop() {
            let Some(entry) = self.events.get(id) else {
                continue;
            };
            seen += 1;
            if entry.summary.status != Status::Completed || seen > 10_000 {
                return false;
            }
            stack.extend(entry.children.iter().map(String::as_str));
        }
        true
    }

    fn remove_tree(&mut self, root: &str) {
        let mut stack = vec![root.to_owned()];
        while let Some(id) = stack.pop() {
            let Some(entry) = self.events.remove(&id) else {
                continue;
            };
            self.changed.remove(&entry.seq);
            self.orphans.remove(&id);
            // A child whose parent never came: no longer waiting for it.
            if let Some(parent) = &entry.summary.parent {
                if let Some(waiting) = self.orphans.get_mut(parent) {
                    waiting.retain(|c| *c != id);
                    if waiting.is_empty() {
                        self.orphans.remove(parent);
                    }
                }
            }
            stack.extend(entry.children);
            self.seq += 1;
            self.removed.push_back((self.seq, id));
            self.evicted += 1;
            self.stats.evicted.inc();
            self.stats.on_removed();
            if self.removed.len() > REMOVED_LOG {
                if let Some((seq, _)) = self.removed.pop_front() {
                    self.removed_floor = seq;
                }
            }
        }
    }

    /// What changed after `since`, at most `limit` events. A page that is further behind than
    /// the removal log reaches gets `reset` and everything from the start.
    pub fn changes_since(&self, since: u64, limit: usize) -> Changes {
        let (since, reset) = if since < self.removed_floor {
            (0, true)
        } else {
            (since, false)
        };
        let mut events = Vec::new();
        let mut last = since;
        for (&seq, id) in self.changed.range(since + 1..) {
            if events.len() >= limit {
                break;
            }
            if let Some(entry) = self.events.get(id) {
                events.push(entry.summary.clone());
            }
            last = seq;
        }
        let caught_up = events.len() < limit;
        let upto = if caught_up { self.seq } else { last };
        let removed = if since == 0 {
            Vec::new()
        } else {
            let start = self.removed.partition_point(|(seq, _)| *seq <= since);
            self.removed
                .range(start..)
                .take_while(|(seq, _)| *seq <= upto)
                .map(|(_, id)| id.clone())
                .collect()
        };
        Changes {
            seq: upto,
            reset,
            events,
            removed,
        }
    }

    /// One event's detail.
    pub fn detail(&self, id: &str) -> Option<Detail> {
        let entry = self.events.get(id)?;
        let raw = entry.raw.as_deref().and_then(|raw| {
            let mut value: Map<String, Value> = serde_json::from_str(raw).ok()?;
            let results: Vec<Value> = entry
                .results
                .iter()
                .filter_map(|r| serde_json::to_value(r).ok())
                .collect();
            value.insert("event_results".into(), Value::Array(results));
            Some(Value::Object(value))
        });
        Some(Detail {
            summary: entry.summary.clone(),
            started: entry.started,
            results: entry.results.clone(),
            children: entry.children.clone(),
            replays: entry.replays.clone(),
            sources: (0..self.source_names.len())
                .filter(|i| *i < 64 && entry.sources & (1 << i) != 0)
                .map(|i| self.source_names[i].clone())
                .collect(),
            raw,
        })
    }

    /// The event's kept JSON without results, for replay.
    pub fn raw(&self, id: &str) -> Option<Arc<str>> {
        self.events.get(id)?.raw.clone()
    }

    /// The failure groups, most failures first (at most `limit`).
    pub fn failure_groups(&self, limit: usize) -> Vec<FailureGroup> {
        let mut groups: Vec<FailureGroup> = self
            .groups
            .iter()
            .map(|((error_type, handler), g)| FailureGroup {
                error_type: error_type.clone(),
                handler: handler.clone(),
                count: g.count,
                last_message: g.last_message.clone(),
                last_seen: g.last_seen,
                in_memory: g
                    .events
                    .iter()
                    .filter(|id| self.events.contains_key(*id))
                    .count(),
            })
            .collect();
        groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.error_type.cmp(&b.error_type))
                .then_with(|| a.handler.cmp(&b.handler))
        });
        groups.truncate(limit);
        groups
    }

    /// The ids of the events a failure group names (those in memory).
    pub fn group_events(&self, error_type: &str, handler: &str) -> Vec<String> {
        self.groups
            .get(&(error_type.to_owned(), handler.to_owned()))
            .map(|g| {
                g.events
                    .iter()
                    .filter(|id| self.events.contains_key(*id))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ids of the events whose id, type or JSON contains `needle` (case-insensitive), at most
    /// `limit`.
    pub fn search(&self, needle: &str, limit: usize) -> Vec<String> {
        let needle = needle.to_lowercase();
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        for entry in self.events.values() {
            if found.len() >= limit {
                break;
            }
            let hit = entry.summary.id.contains(&needle)
                || entry.summary.event_type.to_lowercase().contains(&needle)
                || entry
                    .raw
                    .as_deref()
                    .is_some_and(|raw| contains_ignore_case(raw, &needle))
                || entry.results.iter().any(|r| {
                    r.error_message
                        .as_deref()
                        .is_some_and(|m| contains_ignore_case(m, &needle))
                });
            if hit && seen.insert(entry.summary.id.as_str()) {
                found.push(entry.summary.id.clone());
            }
        }
        found
    }

    /// The statistics the page shows.
    pub fn stats_snapshot(&self, now_ms: f64) -> StatsSnapshot {
        self.stats.snapshot(
            now_ms,
            self.events.len(),
            self.evicted,
            self.failure_groups(200),
        )
    }
}

fn contains_ignore_case(haystack: &str, lower_needle: &str) -> bool {
    if haystack.is_ascii() && lower_needle.is_ascii() {
        let n = lower_needle.as_bytes();
        return n.is_empty()
            || haystack
                .as_bytes()
                .windows(n.len())
                .any(|w| w.eq_ignore_ascii_case(n));
    }
    haystack.to_lowercase().contains(lower_needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: &str, parent: Option<&str>, status: &str) -> Map<String, Value> {
        let Value::Object(map) = json!({
            "event_id": id,
            "event_type": "Ping",
            "event_parent_id": parent,
            "event_path": ["Bus#0001"],
            "event_status": status,
            "event_created_at": "2026-01-01T00:00:00.000000000Z",
            "event_completed_at": if status == "completed" { json!("2026-01-01T00:00:00.010000000Z") } else { Value::Null },
            "n": 1
        }) else {
            unreachable!()
        };
        map
    }

    #[test]
    fn events_merge_by_id_and_status_never_goes_back() {
        let mut m = Model::new(10);
        let s = m.add_source("a".into());
        assert!(m.ingest_event(s, event("e1", None, "completed")));
        assert!(m.ingest_event(s, event("e1", None, "pending")));
        assert_eq!(m.len(), 1);
        assert_eq!(m.detail("e1").unwrap().summary.status, Status::Completed);
    }

    #[test]
    fn children_before_parents_are_linked() {
        let mut m = Model::new(10);
        m.ingest_event(0, event("c", Some("p"), "completed"));
        m.ingest_event(0, event("p", None, "completed"));
        assert_eq!(m.detail("p").unwrap().children, vec!["c".to_owned()]);
    }

    #[test]
    fn eviction_takes_old_completed_trees_first() {
        let mut m = Model::new(4);
        m.ingest_event(0, event("open", None, "started"));
        m.ingest_event(0, event("p1", None, "completed"));
        m.ingest_event(0, event("c1", Some("p1"), "completed"));
        m.ingest_event(0, event("p2", None, "completed"));
        let seq = m.seq();
        m.ingest_event(0, event("p3", None, "completed"));
        assert!(m.detail("open").is_some(), "an unfinished tree stays");
        assert!(m.detail("p1").is_none() && m.detail("c1").is_none());
        assert_eq!(m.len(), 3);
        let changes = m.changes_since(seq, 100);
        assert_eq!(changes.removed.len(), 2);
        assert_eq!(m.evicted(), 2);
        // A quarter over the bound, unfinished trees go too, oldest first.
        for i in 0..10 {
            m.ingest_event(0, event(&format!("s{i}"), None, "started"));
        }
        assert!(m.len() <= 5, "{}", m.len());
        assert!(m.detail("open").is_none());
        assert!(m.detail("s9").is_some());
    }

    #[test]
    fn children_whose_parent_never_comes_do_not_pile_up() {
        let mut m = Model::new(10);
        for i in 0..100 {
            m.ingest_event(
                0,
                event(&format!("c{i}"), Some(&format!("gone{i}")), "completed"),
            );
        }
        assert_eq!(m.len(), 10);
        assert!(m.orphans.len() <= 10, "{}", m.orphans.len());
        assert!(m.roots.len() <= 10 + 64, "{}", m.roots.len());
    }

    /// A page that applies every change it is sent holds what the model holds, whatever
    /// comes in which order: parents after children, repeated states, evictions, results alone.
    #[test]
    fn random_feeds_keep_a_page_in_step_with_the_model() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        for round in 0..50 {
            let bound = 1 + next(20) as usize;
            let mut m = Model::new(bound);
            let mut page = std::collections::HashSet::new();
            let mut seq = 0;
            for _ in 0..300 {
                let id = format!("e{}", next(60));
                let parent = (next(3) == 0).then(|| format!("e{}", next(60)));
                let status = ["pending", "started", "completed"][next(3) as usize];
                if next(5) == 0 {
                    let row = json!({"id": format!("r{}", next(4)), "handler_name": "h", "status": "error",
                        "error": {"type": "E", "message": "m"}});
                    let Value::Object(row) = row else {
                        unreachable!()
                    };
                    m.ingest_result(0, &id, "T", &row);
                } else if parent.as_deref() != Some(id.as_str()) {
                    m.ingest_event(next(2) as usize, event(&id, parent.as_deref(), status));
                }
                assert!(
                    m.len() <= bound + bound / 4 + 1,
                    "round {round}: {}",
                    m.len()
                );
                let changes = m.changes_since(seq, 1 + next(5) as usize);
                if changes.reset {
                    page.clear();
                }
                for gone in &changes.removed {
                    page.remove(gone);
                }
                for e in &changes.events {
                    page.insert(e.id.clone());
                }
                seq = changes.seq;
            }
            loop {
                let changes = m.changes_since(seq, 7);
                for gone in &changes.removed {
                    page.remove(gone);
                }
                for e in &changes.events {
                    page.insert(e.id.clone());
                }
                if changes.seq == seq {
                    break;
                }
                seq = changes.seq;
            }
            let held: std::collections::HashSet<String> = m.events.keys().cloned().collect();
            assert_eq!(page, held, "round {round}");
        }
    }

    #[test]
    fn lineage_that_loops_is_cut() {
        let mut m = Model::new(10);
        m.ingest_event(0, event("a", Some("b"), "completed"));
        m.ingest_event(0, event("b", Some("a"), "completed"));
        m.ingest_event(0, event("c", Some("c"), "completed"));
        let (a, b) = (m.detail("a").unwrap(), m.detail("b").unwrap());
        assert_eq!(a.summary.parent.as_deref(), Some("b"));
        assert_eq!(
            b.summary.parent, None,
            "the link that closes the loop is dropped"
        );
        assert_eq!(b.children, vec!["a".to_owned()]);
        assert_eq!(m.detail("c").unwrap().summary.parent, None);
        assert!(m.tree_complete("b"));
    }

    #[test]
    fn changes_since_pages_and_catches_up() {
        let mut m = Model::new(100);
        for i in 0..10 {
            m.ingest_event(0, event(&format!("e{i}"), None, "pending"));
        }
        let first = m.changes_since(0, 4);
        assert_eq!(first.events.len(), 4);
        let rest = m.changes_since(first.seq, 100);
        assert_eq!(rest.events.len(), 6);
        assert_eq!(rest.seq, m.seq());
        m.ingest_event(0, event("e3", None, "completed"));
        let again = m.changes_since(rest.seq, 100);
        assert_eq!(again.events.len(), 1);
        assert_eq!(again.events[0].id, "e3");
    }

    #[test]
    fn failures_group_by_error_type_and_handler() {
        let mut m = Model::new(100);
        for (id, handler) in [("a", "h1"), ("b", "h1"), ("c", "h2")] {
            let mut e = event(id, None, "completed");
            e.insert(
                "event_results".into(),
                json!({"x": {"id": format!("r-{id}"), "handler_id": "x", "handler_name": handler,
                    "status": "error", "started_at": "2026-01-01T00:00:00.000000000Z",
                    "completed_at": "2026-01-01T00:00:00.002000000Z",
                    "error": {"type": "Boom", "message": "no"}}}),
            );
            m.ingest_event(0, e);
        }
        let groups = m.failure_groups(10);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].handler, "h1");
        assert_eq!(groups[0].count, 2);
        assert_eq!(
            m.group_events("Boom", "h1"),
            vec!["a".to_owned(), "b".to_owned()]
        );
        // The same result seen again is not counted twice.
        let mut e = event("a", None, "completed");
        e.insert(
            "event_results".into(),
            json!([{"id": "r-a", "handler_name": "h1", "status": "error", "error": {"type": "Boom", "message": "no"}}]),
        );
        m.ingest_event(0, e);
        assert_eq!(m.failure_groups(10)[0].count, 2);
    }

    #[test]
    fn search_finds_payload_text() {
        let mut m = Model::new(100);
        let mut e = event("e1", None, "pending");
        e.insert("customer".into(), json!("Zoë Example"));
        m.ingest_event(0, e);
        m.ingest_event(0, event("e2", None, "pending"));
        assert_eq!(m.search("zoë", 10), vec!["e1".to_owned()]);
        assert_eq!(m.search("EXAMPLE", 10), vec!["e1".to_owned()]);
        assert_eq!(m.search("e2", 10), vec!["e2".to_owned()]);
    }
}
