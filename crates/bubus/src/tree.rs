//! The event tree printer behind [`EventBus::log_tree`](crate::EventBus::log_tree).
//!
//! This file walks the trees and draws them; `tree/result_line.rs` formats each handler result's
//! line.

mod result_line;

pub(crate) use result_line::ResultLine;
use result_line::{clock, result_line};

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use uuid::Uuid;

use crate::event::inner::EventInner;
use crate::time::Timestamp;

/// How many levels of a tree are drawn with their own indentation; deeper levels keep the
/// indentation of this one and say how much deeper they are, so a chain of events thousands of
/// levels deep prints in output linear in its length.
const MAX_DRAWN_DEPTH: usize = 32;

/// Renders the events (a bus's history) as parent/child trees. Roots are events without a parent
/// in `events`; each event lists its handler results (sorted by start time) with the events each
/// handler dispatched nested under it, then children no handler claimed.
pub(crate) fn render(events: &[Arc<EventInner>]) -> String {
    let mut out = String::new();
    let _ = write_lines(events, &mut out);
    out.truncate(out.trim_end_matches('\n').len());
    out
}

/// Writes the parent/child tree of `events` — the tree [`EventBus::log_tree`] draws for a bus's
/// history — to `out`, a line at a time, without collecting it first. For events read from a log
/// (`bubus tree` draws a log this way) or gathered from several buses.
///
/// ```
/// use bubus::{DynEvent, EventBus};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let bus = EventBus::new("TreeBus");
/// bus.on(|_: bubus::AnyEvent| json!("done"));
/// let event = bus.dispatch(DynEvent::new("Ping", json!({})).unwrap())?.await?;
/// let mut out = Vec::new();
/// bubus::tree::write_tree(&[event.to_any()], &mut out).unwrap();
/// assert_eq!(String::from_utf8(out).unwrap(), format!("{}\n", bus.log_tree()));
/// # Ok(()) }
/// ```
///
/// [`EventBus::log_tree`]: crate::EventBus::log_tree
///
/// # Errors
///
/// What writing to `out` returned.
pub fn write_tree(
    events: &[crate::AnyEvent],
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let inners: Vec<Arc<EventInner>> = events.iter().map(|e| Arc::clone(e.inner())).collect();
    write_io(&inners, out)
}

/// What the event tree draws of one event, and nothing else: its ids, label, times and a line
/// per handler result. A reader that draws the tree of a large log keeps these instead of the
/// events (a log's events hold their payloads and results; these hold about what is printed).
///
/// ```
/// use bubus::{DynEvent, EventBus, tree::TreeEvent};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let bus = EventBus::new("TreeBus");
/// bus.on(|_: bubus::AnyEvent| json!("done"));
/// let event = bus.dispatch(DynEvent::new("Ping", json!({})).unwrap())?.await?;
/// let records = [TreeEvent::new(&event.to_any())];
/// let mut out = Vec::new();
/// bubus::tree::write_tree_events(&records, &mut out).unwrap();
/// assert_eq!(String::from_utf8(out).unwrap(), format!("{}\n", bus.log_tree()));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TreeEvent {
    id: Uuid,
    parent_id: Option<Uuid>,
    label: Box<str>,
    created_at: Timestamp,
    completed_at: Option<Timestamp>,
    results: Box<[ResultLine]>,
}

impl TreeEvent {
    /// What [`write_tree_events`] draws of `event`, as it is now.
    pub fn new(event: &crate::AnyEvent) -> Self {
        let inner = event.inner();
        let st = inner.state.lock();
        TreeEvent {
            id: inner.id,
            parent_id: st.parent_id,
            label: inner.label().into(),
            created_at: inner.created_at,
            completed_at: st.completed_at(),
            results: st.results.iter().map(result_line).collect(),
        }
    }

    /// The event's id.
    pub fn event_id(&self) -> Uuid {
        self.id
    }
}

impl From<&crate::AnyEvent> for TreeEvent {
    fn from(event: &crate::AnyEvent) -> Self {
        TreeEvent::new(event)
    }
}

/// [`write_tree`] for events kept as [`TreeEvent`]s: the same lines, except that children are
/// found only among `events` (a live event also knows children that left its bus's history).
///
/// # Errors
///
/// What writing to `out` returned.
pub fn write_tree_events(
    events: &[TreeEvent],
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let refs: Vec<&TreeEvent> = events.iter().collect();
    write_io(&refs, out)
}

fn write_io<N: Node>(events: &[N], out: &mut impl std::io::Write) -> std::io::Result<()> {
    /// Line by line into an `io::Write`, keeping its error.
    struct Lines<'a, W: std::io::Write> {
        out: &'a mut W,
        error: Option<std::io::Error>,
    }
    impl<W: std::io::Write> std::fmt::Write for Lines<'_, W> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.out.write_all(s.as_bytes()).map_err(|e| {
                self.error = Some(e);
                std::fmt::Error
            })
        }
    }
    let mut lines = Lines { out, error: None };
    match write_lines(events, &mut lines) {
        Ok(()) => Ok(()),
        Err(_) => Err(lines
            .error
            .unwrap_or_else(|| std::io::Error::other("formatting the tree failed"))),
    }
}

/// An event as the tree sees it: a live event, or a [`TreeEvent`] kept from one.
pub(crate) trait Node: Clone {
    fn id(&self) -> Uuid;
    fn parent_id(&self) -> Option<Uuid>;
    fn created_at(&self) -> Timestamp;
    fn label(&self) -> String;
    /// When it completed, a line per result, and the children it links to itself.
    fn parts(&self) -> (Option<Timestamp>, Vec<ResultLine>, Vec<Self>);
}

impl Node for Arc<EventInner> {
    fn id(&self) -> Uuid {
        self.id
    }
    fn parent_id(&self) -> Option<Uuid> {
        self.state.lock().parent_id
    }
    fn created_at(&self) -> Timestamp {
        self.created_at
    }
    fn label(&self) -> String {
        EventInner::label(self)
    }
    fn parts(&self) -> (Option<Timestamp>, Vec<ResultLine>, Vec<Self>) {
        let st = self.state.lock();
        let results = st.results.iter().map(result_line).collect();
        (st.completed_at(), results, st.children.clone())
    }
}

impl Node for &TreeEvent {
    fn id(&self) -> Uuid {
        self.id
    }
    fn parent_id(&self) -> Option<Uuid> {
        self.parent_id
    }
    fn created_at(&self) -> Timestamp {
        self.created_at
    }
    fn label(&self) -> String {
        self.label.to_string()
    }
    fn parts(&self) -> (Option<Timestamp>, Vec<ResultLine>, Vec<Self>) {
        (self.completed_at, self.results.to_vec(), Vec::new())
    }
}

/// [`render`], a line at a time (each ending in a newline) into `out`, without recursion: the
/// work left is an explicit stack. Events whose parents form a cycle (possible in a log: A's
/// parent is B, B's parent is A) are drawn after the trees, from the oldest one, marked `↻`.
pub(crate) fn write_lines<N: Node>(
    events: &[N],
    out: &mut dyn std::fmt::Write,
) -> std::fmt::Result {
    if events.is_empty() {
        return out.write_str("(No events in history)\n");
    }
    let ids: HashSet<Uuid> = events.iter().map(Node::id).collect();
    let mut by_parent: HashMap<Uuid, Vec<N>> = HashMap::new();
    let mut roots = Vec::new();
    for event in events {
        match event.parent_id() {
            Some(parent) if parent != event.id() && ids.contains(&parent) => {
                by_parent.entry(parent).or_default().push(event.clone());
            }
            _ => roots.push(event.clone()),
        }
    }
    drop(ids);
    roots.sort_by_key(Node::created_at);
    for children in by_parent.values_mut() {
        children.sort_by_key(Node::created_at);
    }
    let mut drawer = Drawer {
        by_parent: &by_parent,
        seen: HashSet::new(),
        stack: Vec::new(),
        in_cycle: false,
    };
    let count = roots.len();
    for (i, root) in roots.into_iter().enumerate() {
        drawer.draw(root, Indent::root(), i + 1 == count, out)?;
    }
    // What no root led to sits on (or under) a parent cycle.
    let mut rest: Vec<&N> = events
        .iter()
        .filter(|e| !drawer.seen.contains(&e.id()))
        .collect();
    rest.sort_by_key(|e| e.created_at());
    drawer.in_cycle = true;
    for event in rest {
        if !drawer.seen.contains(&event.id()) {
            drawer.draw(event.clone(), Indent::root(), true, out)?;
        }
    }
    Ok(())
}

/// The indentation of one level: drawn for the first [`MAX_DRAWN_DEPTH`] levels, counted below.
#[derive(Clone)]
struct Indent {
    text: Arc<str>,
    depth: usize,
}

impl Indent {
    fn root() -> Self {
        Indent {
            text: Arc::from(""),
            depth: 0,
        }
    }

    /// The indentation under an entry drawn at this one (`last`: the last of its siblings).
    fn under(&self, last: bool) -> Self {
        let text = if self.depth < MAX_DRAWN_DEPTH {
            Arc::from(format!(
                "{}{}",
                self.text,
                if last { "    " } else { "│   " }
            ))
        } else {
            Arc::clone(&self.text)
        };
        Indent {
            text,
            depth: self.depth + 1,
        }
    }

    fn write(&self, out: &mut dyn std::fmt::Write) -> std::fmt::Result {
        out.write_str(&self.text)?;
        if self.depth > MAX_DRAWN_DEPTH {
            write!(out, "┆+{} ", self.depth - MAX_DRAWN_DEPTH)?;
        }
        Ok(())
    }
}

/// What is left to draw.
enum Item<N> {
    Event {
        event: N,
        indent: Indent,
        last: bool,
    },
    Result {
        line: String,
        indent: Indent,
        last: bool,
    },
}

struct Drawer<'a, N> {
    by_parent: &'a HashMap<Uuid, Vec<N>>,
    seen: HashSet<Uuid>,
    stack: Vec<Item<N>>,
    /// Drawing what sits on a parent cycle: an event met again is the cycle closing.
    in_cycle: bool,
}

impl<N: Node> Drawer<'_, N> {
    fn draw(
        &mut self,
        root: N,
        indent: Indent,
        last: bool,
        out: &mut dyn std::fmt::Write,
    ) -> std::fmt::Result {
        let cycle_root = self.in_cycle;
        self.stack.push(Item::Event {
            event: root,
            indent,
            last,
        });
        let mut first = true;
        while let Some(item) = self.stack.pop() {
            match item {
                Item::Result { line, indent, last } => {
                    indent.write(out)?;
                    out.write_str(if last { "└── " } else { "├── " })?;
                    out.write_str(&line)?;
                    out.write_char('\n')?;
                }
                Item::Event {
                    event,
                    indent,
                    last,
                } => {
                    let marker = if first && cycle_root { "↻ " } else { "" };
                    first = false;
                    self.event(&event, &indent, last, marker, out)?;
                }
            }
        }
        Ok(())
    }

    /// Draws one event's line and queues its results and children.
    fn event(
        &mut self,
        event: &N,
        indent: &Indent,
        is_last: bool,
        marker: &str,
        out: &mut dyn std::fmt::Write,
    ) -> std::fmt::Result {
        let connector = if is_last { "└── " } else { "├── " };
        if !self.seen.insert(event.id()) {
            if self.in_cycle {
                indent.write(out)?;
                writeln!(out, "{connector}↻ {} (parent cycle)", event.label())?;
            }
            return Ok(());
        }
        let (completed_at, mut results, live_children) = event.parts();
        let created_at = event.created_at();
        indent.write(out)?;
        write!(
            out,
            "{connector}{marker}{} [{}",
            event.label(),
            clock(created_at)
        )?;
        if let Some(done) = completed_at {
            write!(
                out,
                " ({:.3}s)",
                done.duration_since(created_at).as_secs_f64()
            )?;
        }
        out.write_str("]\n")?;

        results.sort_by_key(|r| r.started_at);
        let child_indent = indent.under(is_last);
        let mut by_id: HashMap<Uuid, N> =
            live_children.iter().map(|c| (c.id(), c.clone())).collect();
        if let Some(known) = self.by_parent.get(&event.id()) {
            for child in known {
                by_id.entry(child.id()).or_insert_with(|| child.clone());
            }
        }
        let claimed: HashSet<Uuid> = results
            .iter()
            .flat_map(|r| r.children.iter().copied())
            .collect();
        // In the order they were linked, then the history's: ties in creation time keep it.
        let mut listed = HashSet::new();
        let mut unclaimed: Vec<N> = live_children
            .iter()
            .chain(self.by_parent.get(&event.id()).into_iter().flatten())
            .filter(|c| !claimed.contains(&c.id()) && listed.insert(c.id()))
            .cloned()
            .collect();
        unclaimed.sort_by_key(Node::created_at);

        // Queued in reverse: the stack gives them back in drawing order.
        let total = results.len() + unclaimed.len();
        let offset = results.len();
        for (i, child) in unclaimed.into_iter().enumerate().rev() {
            self.stack.push(Item::Event {
                event: child,
                indent: child_indent.clone(),
                last: offset + i + 1 == total,
            });
        }
        for (i, result) in results.into_iter().enumerate().rev() {
            let last = i + 1 == total;
            let grand_indent = child_indent.under(last);
            let children: Vec<N> = result
                .children
                .iter()
                .filter_map(|id| by_id.get(id).cloned())
                .collect();
            let n = children.len();
            for (j, child) in children.into_iter().enumerate().rev() {
                self.stack.push(Item::Event {
                    event: child,
                    indent: grand_indent.clone(),
                    last: j + 1 == n,
                });
            }
            self.stack.push(Item::Result {
                line: result.line.into(),
                indent: child_indent.clone(),
                last,
            });
        }
        Ok(())
    }
}
