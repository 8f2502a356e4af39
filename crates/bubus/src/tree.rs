//! The event tree printer behind [`EventBus::log_tree`](crate::EventBus::log_tree).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use crate::event::inner::{EventInner, short_id};
use crate::result::{ResultSlot, ResultStatus};
use crate::time::Timestamp;

/// Renders the events (a bus's history) as parent/child trees. Roots are events without a parent
/// in `events`; each event lists its handler results (sorted by start time) with the events each
/// handler dispatched nested under it, then children no handler claimed.
pub(crate) fn render(events: &[Arc<EventInner>]) -> String {
    if events.is_empty() {
        return "(No events in history)".to_owned();
    }
    let ids: HashSet<Uuid> = events.iter().map(|e| e.id).collect();
    let mut by_parent: HashMap<Uuid, Vec<Arc<EventInner>>> = HashMap::new();
    let mut roots = Vec::new();
    for event in events {
        let parent = event.state.lock().parent_id;
        match parent {
            Some(parent) if parent != event.id && ids.contains(&parent) => {
                by_parent.entry(parent).or_default().push(Arc::clone(event));
            }
            _ => roots.push(Arc::clone(event)),
        }
    }
    roots.sort_by_key(|e| e.created_at);
    for children in by_parent.values_mut() {
        children.sort_by_key(|e| e.created_at);
    }
    let mut out = String::new();
    let mut seen = HashSet::new();
    let count = roots.len();
    for (i, root) in roots.iter().enumerate() {
        event_lines(&mut out, root, "", i + 1 == count, &by_parent, &mut seen);
    }
    out.truncate(out.trim_end_matches('\n').len());
    out
}

struct ResultLine {
    started_at: Option<Timestamp>,
    line: String,
    children: Vec<Uuid>,
}

fn event_lines(
    out: &mut String,
    event: &Arc<EventInner>,
    indent: &str,
    is_last: bool,
    by_parent: &HashMap<Uuid, Vec<Arc<EventInner>>>,
    seen: &mut HashSet<Uuid>,
) {
    if !seen.insert(event.id) {
        return;
    }
    let connector = if is_last { "└── " } else { "├── " };
    let (completed_at, mut results, live_children) = {
        let st = event.state.lock();
        let results: Vec<ResultLine> = st
            .results
            .iter()
            .map(|r| {
                let icon = match r.status {
                    ResultStatus::Completed => "✅",
                    ResultStatus::Error => "❌",
                    ResultStatus::Started => "🏃",
                    ResultStatus::Pending => "⏳",
                };
                let mut line = format!("{icon} {}.{}", r.handler.bus_label, r.handler.label());
                if let Some(started) = r.started_at {
                    let _ = write!(line, " [{}", clock(started));
                    if let Some(done) = r.completed_at {
                        let _ = write!(
                            line,
                            " ({:.3}s)",
                            done.duration_since(started).as_secs_f64()
                        );
                    }
                    line.push(']');
                }
                match (r.status, &r.error) {
                    (ResultStatus::Error, Some(err)) => {
                        let _ = write!(line, " ☠️ {}: {}", err.error_type(), err.message());
                    }
                    (ResultStatus::Completed, _) => {
                        let _ = write!(line, " → {}", format_value(&r.value));
                    }
                    _ => {}
                }
                ResultLine {
                    started_at: r.started_at,
                    line,
                    children: r.children.clone(),
                }
            })
            .collect();
        (st.completed_at, results, st.children.clone())
    };
    let mut line = format!(
        "{indent}{connector}{} [{}",
        event.label(),
        clock(event.created_at)
    );
    if let Some(done) = completed_at {
        let _ = write!(
            line,
            " ({:.3}s)",
            done.duration_since(event.created_at).as_secs_f64()
        );
    }
    line.push(']');
    out.push_str(&line);
    out.push('\n');

    results.sort_by_key(|r| r.started_at);
    let child_indent = format!("{indent}{}", if is_last { "    " } else { "│   " });
    let mut by_id: HashMap<Uuid, Arc<EventInner>> = live_children
        .iter()
        .map(|c| (c.id, Arc::clone(c)))
        .collect();
    if let Some(known) = by_parent.get(&event.id) {
        for child in known {
            by_id.entry(child.id).or_insert_with(|| Arc::clone(child));
        }
    }
    let claimed: HashSet<Uuid> = results
        .iter()
        .flat_map(|r| r.children.iter().copied())
        .collect();
    let mut unclaimed: Vec<Arc<EventInner>> = by_id
        .values()
        .filter(|c| !claimed.contains(&c.id))
        .cloned()
        .collect();
    unclaimed.sort_by_key(|c| c.created_at);

    let total = results.len() + unclaimed.len();
    for (i, result) in results.iter().enumerate() {
        let last = i + 1 == total;
        out.push_str(&child_indent);
        out.push_str(if last { "└── " } else { "├── " });
        out.push_str(&result.line);
        out.push('\n');
        let grand_indent = format!("{child_indent}{}", if last { "    " } else { "│   " });
        let children: Vec<Arc<EventInner>> = result
            .children
            .iter()
            .filter_map(|id| by_id.get(id).cloned())
            .collect();
        let n = children.len();
        for (j, child) in children.iter().enumerate() {
            event_lines(out, child, &grand_indent, j + 1 == n, by_parent, seen);
        }
    }
    let offset = results.len();
    for (i, child) in unclaimed.iter().enumerate() {
        event_lines(
            out,
            child,
            &child_indent,
            offset + i + 1 == total,
            by_parent,
            seen,
        );
    }
}

/// `HH:MM:SS.mmm` (UTC).
fn clock(at: Timestamp) -> String {
    let text = at.to_string();
    text.get(11..23).unwrap_or(&text).to_owned()
}

fn format_value(value: &ResultSlot) -> String {
    match value {
        ResultSlot::Null => "None".to_owned(),
        ResultSlot::Forwarded { event, event_id } => match event.upgrade() {
            Some(e) => format!("Event({})", e.label()),
            None => format!("Event(#{})", short_id(event_id)),
        },
        other => match other.to_json() {
            Value::Null => "None".to_owned(),
            Value::String(s) => format!("'{s}'"),
            Value::Object(map) => format!("dict({} items)", map.len()),
            Value::Array(items) => format!("list({} items)", items.len()),
            v => v.to_string(),
        },
    }
}
