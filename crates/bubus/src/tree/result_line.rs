//! What the tree prints for one handler result: its status, handler, timing and value (a long
//! list or dict summarised by its item count).

use std::fmt::Write as _;

use serde_json::Value;
use uuid::Uuid;

use crate::event::inner::short_id;
use crate::result::{ResultSlot, ResultStatus};
use crate::time::Timestamp;
use crate::wire::raw::Strings;

/// One handler result as the tree draws it.
#[derive(Clone, Debug)]
pub(crate) struct ResultLine {
    pub(super) started_at: Option<Timestamp>,
    pub(super) line: Box<str>,
    pub(super) children: Box<[Uuid]>,
}

pub(super) fn result_line(r: &crate::result::ResultRecord) -> ResultLine {
    let icon = match r.status {
        ResultStatus::Completed => "✅",
        ResultStatus::Error => "❌",
        ResultStatus::Started => "🏃",
        ResultStatus::Pending => "⏳",
    };
    let mut line = format!("{icon} {}.{}", r.handler.bus_label, r.handler.label());
    if let Some(started) = r.started_at() {
        let _ = write!(line, " [{}", clock(started));
        if let Some(done) = r.completed_at() {
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
        started_at: r.started_at(),
        line: line.into(),
        children: r.children.as_slice().into(),
    }
}

/// `HH:MM:SS.mmm` (UTC).
pub(super) fn clock(at: Timestamp) -> String {
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
        // Held as text: a list or dict is summarised by counting its items, not parsed.
        ResultSlot::Text(text) if text.starts_with(['[', '{']) => {
            let kind = if text.starts_with('[') {
                "list"
            } else {
                "dict"
            };
            format!("{kind}({} items)", top_level_items(text))
        }
        other => match other.to_json() {
            Value::Null => "None".to_owned(),
            Value::String(s) => format!("'{s}'"),
            Value::Object(map) => format!("dict({} items)", map.len()),
            Value::Array(items) => format!("list({} items)", items.len()),
            v => v.to_string(),
        },
    }
}

/// How many items the compact JSON array or object `text` holds (its top-level commas, plus one).
fn top_level_items(text: &str) -> usize {
    let (mut depth, mut commas, mut empty) = (0usize, 0usize, true);
    let mut strings = Strings::default();
    for c in text.chars() {
        if strings.in_literal(c) {
            empty = false;
            continue;
        }
        match c {
            '[' | '{' => {
                if depth == 1 {
                    empty = false;
                }
                depth += 1;
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 1 => commas += 1,
            _ if depth == 1 => empty = false,
            _ => {}
        }
    }
    if empty { 0 } else { commas + 1 }
}

#[cfg(test)]
mod tests {
    use super::top_level_items;

    #[test]
    fn items_are_counted_at_the_top_level_only() {
        assert_eq!(top_level_items("[]"), 0);
        assert_eq!(top_level_items("{}"), 0);
        assert_eq!(top_level_items("[1]"), 1);
        assert_eq!(top_level_items(r#"[1,[2,3],{"a":[4,5]},"x,y"]"#), 4);
        assert_eq!(top_level_items(r#"{"a":1,"b\",":[1,2]}"#), 2);
    }
}
