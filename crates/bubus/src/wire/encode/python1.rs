//! The event's JSON in the form Python bubus 1.x reads and writes (the `bubus` 1.5.x interop).

use serde_json::{Map, Value};

use super::mode;
use crate::event::inner::EventInner;
use crate::time::{Timestamp, secs_value};
use crate::wire::extra::write_unknown;

/// `2026-01-02T03:04:05.123456Z`: the 6-digit `Z` form Python 1.x writes (its `datetime` holds
/// microseconds; the nanoseconds are truncated, as Python truncates them on input).
fn ts_micros(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| {
        let text = t.to_string();
        match text.get(..26) {
            Some(micros) if text.len() == 30 => Value::String(format!("{micros}Z")),
            _ => Value::String(text),
        }
    })
}

/// A bus label `Name#ab12` (the last 4 hex digits of the bus id) back to the bus name `Name`:
/// Python 1.x paths hold bus names, which must be identifiers. Entries that are not labels
/// (names read from Python 1.x) stay as they are.
pub(crate) fn bus_name_of(entry: &str) -> &str {
    match entry.rsplit_once('#') {
        Some((name, suffix))
            if !name.is_empty()
                && suffix.len() == 4
                && suffix.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            name
        }
        _ => entry,
    }
}

/// The event's JSON as Python bubus 1.x (`BaseEvent` of 1.5.x, checked against 1.5.6) reads and
/// writes it: `event_schema` instead of `event_version`, bus names in `event_path`,
/// `event_processed_at` for the completion time, 6-digit `Z` timestamps. `event_timeout` only
/// when set, so the receiving class's default applies otherwise; no `event_result_type` (1.x
/// holds a Python type there, and the receiving class supplies its own); no `event_status`,
/// `event_started_at`, `event_completed_at` (properties in 1.x, derived from
/// `event_processed_at`); the newer configuration keys and `event_emitted_by_handler_id` only
/// when set (1.x keeps them as extra fields and writes them back); never `event_results`.
pub(crate) fn event_json_python1(event: &EventInner) -> Map<String, Value> {
    let payload = match event.payload_json() {
        Ok(payload) => payload,
        Err(err) => {
            tracing::warn!(event = %event.label(), error = %err, "payload could not be serialized");
            Map::new()
        }
    };
    let st = event.state.lock();
    let c = &st.config;
    let mut out = Map::with_capacity(12 + payload.len());
    out.insert(
        "event_type".into(),
        Value::String(event.event_type().to_owned()),
    );
    out.insert(
        "event_schema".into(),
        Value::String(format!("{}@{}", event.event_type(), event.version())),
    );
    if let Some(timeout) = c.event_timeout {
        out.insert(
            "event_timeout".into(),
            Value::from(crate::time::secs_of(timeout)),
        );
    }
    out.insert("event_id".into(), Value::String(event.id.to_string()));
    out.insert(
        "event_path".into(),
        Value::Array(
            st.listed_path()
                .map(|l| Value::String(bus_name_of(l).to_owned()))
                .collect(),
        ),
    );
    out.insert(
        "event_parent_id".into(),
        st.parent_id
            .map_or(Value::Null, |id| Value::String(id.to_string())),
    );
    out.insert("event_created_at".into(), ts_micros(Some(event.created_at)));
    out.insert("event_processed_at".into(), ts_micros(st.completed_at()));
    let extras = [
        ("event_slow_timeout", secs_value(c.event_slow_timeout)),
        ("event_concurrency", mode(c.event_concurrency)),
        ("event_handler_timeout", secs_value(c.event_handler_timeout)),
        (
            "event_handler_slow_timeout",
            secs_value(c.event_handler_slow_timeout),
        ),
        (
            "event_handler_concurrency",
            mode(c.event_handler_concurrency),
        ),
        ("event_handler_completion", mode(c.event_handler_completion)),
        (
            "event_emitted_by_handler_id",
            st.emitted_by_handler_id
                .as_ref()
                .map_or(Value::Null, |id| Value::String(id.to_string())),
        ),
        (
            "event_blocks_parent_completion",
            st.wire_extra()
                .and_then(|e| e.blocks_parent_completion)
                .map_or(Value::Null, Value::Bool),
        ),
    ];
    for (key, value) in extras {
        if !value.is_null() {
            out.insert(key.into(), value);
        }
    }
    write_unknown(&mut out, st.wire_extra().map(|e| &e.unknown));
    drop(st);
    for (key, value) in payload {
        out.entry(key).or_insert(value);
    }
    out
}
