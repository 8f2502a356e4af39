//! Events and results to their canonical JSON (design §4): every built-in `event_*` key present
//! (null when unset), in the Python runtime's order, payload fields after them; timestamps in the
//! canonical 30-character `Z` form; errors as `{"type", "message"}`.

use std::sync::{Arc, Weak};

use serde_json::{Map, Value};

use super::extra::{blocks_parent_completion, write_unknown};
use crate::event::DynEvent;
use crate::event::inner::{BusPhase, EventInner};
use crate::result::{ResultRecord, ResultSlot};
use crate::time::{Timestamp, secs_value};

mod python1;
pub(crate) use python1::event_json_python1;

fn ts(t: Option<Timestamp>) -> Value {
    t.map_or(Value::Null, |t| Value::String(t.to_string()))
}

fn mode<T: serde::Serialize>(m: Option<T>) -> Value {
    m.and_then(|m| serde_json::to_value(m).ok())
        .unwrap_or(Value::Null)
}

/// The event's JSON object. With `results`, `event_results` is appended as an object keyed by
/// handler id (what the Python and TypeScript runtimes write since abxbus 2.5; the form bus
/// snapshots and result-carrying log records use); without, it is omitted, as on bridges.
pub(crate) fn event_json(event: &EventInner, results: bool) -> Map<String, Value> {
    event_map(event, results, payload_or_empty(event), false)
}

fn payload_or_empty(event: &EventInner) -> Map<String, Value> {
    match event.payload_json() {
        Ok(payload) => payload,
        Err(err) => {
            tracing::warn!(event = %event.label(), error = %err, "payload could not be serialized");
            Map::new()
        }
    }
}

/// [`event_json`] as compact text. An event read from text writes its payload fields, and its
/// results, as the text they were read as, without parsing them: a log copied or printed costs
/// about its own size.
pub(crate) fn event_json_text(event: &EventInner, results: bool) -> Vec<u8> {
    if !results {
        return event_text(event);
    }
    event_json_text_via_map(event, results)
}

/// The keys [`event_map`] writes for every event, in its order (before the unknown keys and the
/// payload).
const METADATA_KEYS: [&str; 20] = [
    "event_type",
    "event_version",
    "event_timeout",
    "event_slow_timeout",
    "event_concurrency",
    "event_handler_timeout",
    "event_handler_slow_timeout",
    "event_handler_concurrency",
    "event_handler_completion",
    "event_blocks_parent_completion",
    "event_result_type",
    "event_id",
    "event_path",
    "event_parent_id",
    "event_emitted_by_handler_id",
    "event_pending_bus_count",
    "event_created_at",
    "event_status",
    "event_started_at",
    "event_completed_at",
];

/// [`event_json_text`] without results (what a bridge sends, a log line holds), written straight
/// into the text: the same bytes as building [`event_map`] and writing it, without a map of
/// ~20 owned keys and values per event.
fn event_text(event: &EventInner) -> Vec<u8> {
    use std::io::Write as _;

    let text_fields = event
        .own_payload::<DynEvent>()
        .and_then(DynEvent::text_fields);
    let payload = match text_fields {
        Some(_) => Map::new(),
        None => payload_or_empty(event),
    };
    let fields = text_fields.unwrap_or_default();
    let result_type = (event.kind.result_schema)(event).unwrap_or(Value::Null);
    let mut text = Vec::with_capacity(
        640 + fields
            .iter()
            .map(|(key, value)| key.len() + value.len() + 4)
            .sum::<usize>(),
    );
    let st = event.state.lock();
    let c = &st.config;
    // (Writing JSON into a vector cannot fail.)
    let put = |text: &mut Vec<u8>, key: &str, value: &dyn erased::Json| {
        push_key(text, key);
        value.write(text);
    };
    text.push(b'{');
    put(&mut text, "event_type", &event.event_type());
    put(&mut text, "event_version", &event.version());
    put(&mut text, "event_timeout", &secs_value(c.event_timeout));
    put(
        &mut text,
        "event_slow_timeout",
        &secs_value(c.event_slow_timeout),
    );
    put(&mut text, "event_concurrency", &c.event_concurrency);
    put(
        &mut text,
        "event_handler_timeout",
        &secs_value(c.event_handler_timeout),
    );
    put(
        &mut text,
        "event_handler_slow_timeout",
        &secs_value(c.event_handler_slow_timeout),
    );
    put(
        &mut text,
        "event_handler_concurrency",
        &c.event_handler_concurrency,
    );
    put(
        &mut text,
        "event_handler_completion",
        &c.event_handler_completion,
    );
    put(
        &mut text,
        "event_blocks_parent_completion",
        &blocks_parent_completion(st.wire_extra(), st.emitted_by_handler_id.is_some()),
    );
    put(&mut text, "event_result_type", &result_type);
    push_key(&mut text, "event_id");
    let _ = write!(text, "\"{}\"", event.id);
    push_key(&mut text, "event_path");
    text.push(b'[');
    for (i, link) in st.listed_path().enumerate() {
        if i > 0 {
            text.push(b',');
        }
        let _ = serde_json::to_writer(&mut text, &link.to_string());
    }
    text.push(b']');
    push_key(&mut text, "event_parent_id");
    match st.parent_id {
        Some(id) => {
            let _ = write!(text, "\"{id}\"");
        }
        None => text.extend_from_slice(b"null"),
    }
    put(
        &mut text,
        "event_emitted_by_handler_id",
        &st.emitted_by_handler_id.as_ref().map(ToString::to_string),
    );
    put(
        &mut text,
        "event_pending_bus_count",
        &st.buses
            .iter()
            .filter(|s| s.phase != BusPhase::Done)
            .count(),
    );
    push_key(&mut text, "event_created_at");
    let _ = write!(text, "\"{}\"", event.created_at);
    put(&mut text, "event_status", &st.status.as_str());
    put(&mut text, "event_started_at", &ts(st.started_at()));
    put(&mut text, "event_completed_at", &ts(st.completed_at()));
    // As `event_map` then `event_json_text_via_map`: unknown keys after the built-in ones (never
    // one of them), payload fields after those (never a key already written); an
    // `event_results` key is dropped from the map (only a text field can still write it).
    let unknown = st.wire_extra().map(|e| &e.unknown);
    for (key, value) in unknown.into_iter().flatten() {
        if !METADATA_KEYS.contains(&key.as_str()) && key != "event_results" {
            put(&mut text, key, value);
        }
    }
    let written = |key: &str| {
        METADATA_KEYS.contains(&key)
            || (key != "event_results" && unknown.is_some_and(|u| u.contains_key(key)))
    };
    for (key, value) in &payload {
        if !written(key) && key != "event_results" {
            put(&mut text, key, value);
        }
    }
    for (key, value) in fields {
        if !written(key) {
            push_key(&mut text, key);
            text.extend_from_slice(value.as_bytes());
        }
    }
    drop(st);
    text.push(b'}');
    text
}

/// Values [`event_text`] writes, behind one `dyn` (the closure that writes a field takes any).
mod erased {
    use serde::Serialize;

    pub(super) trait Json {
        fn write(&self, text: &mut Vec<u8>);
    }

    impl<T: Serialize + ?Sized> Json for T {
        fn write(&self, text: &mut Vec<u8>) {
            let _ = serde_json::to_writer(text, self);
        }
    }
}

/// [`event_json_text`] through the event's map (with results).
fn event_json_text_via_map(event: &EventInner, results: bool) -> Vec<u8> {
    let text_fields = event
        .own_payload::<DynEvent>()
        .and_then(DynEvent::text_fields)
        // A forwarding handler's result is the event's whole JSON, payload included: written
        // from the parsed form.
        .filter(|_| !(results && has_forwarded_result(event)));
    let (mut out, fields) = match text_fields {
        Some(fields) => (event_map(event, results, Map::new(), true), fields),
        None => (
            event_map(event, results, payload_or_empty(event), true),
            &[][..],
        ),
    };
    let event_results = out.shift_remove("event_results");
    let mut text = Vec::with_capacity(
        512 + fields
            .iter()
            .map(|(key, value)| key.len() + value.len() + 4)
            .sum::<usize>(),
    );
    // (Writing JSON into a vector cannot fail.)
    text.push(b'{');
    for (key, value) in &out {
        push_key(&mut text, key);
        let _ = serde_json::to_writer(&mut text, value);
    }
    for (key, value) in fields {
        if !out.contains_key(key) {
            push_key(&mut text, key);
            text.extend_from_slice(value.as_bytes());
        }
    }
    if let Some(results) = &event_results {
        push_key(&mut text, "event_results");
        write_results(&mut text, event, results);
    }
    text.push(b'}');
    text
}

/// The `event_results` object [`event_map`] built (with results held as text left null), with
/// those results written as their text.
fn write_results(text: &mut Vec<u8>, event: &EventInner, results: &Value) {
    let texts: Vec<Option<Arc<str>>> = event
        .state
        .lock()
        .results
        .iter()
        .map(|r| match &r.value {
            ResultSlot::Text(raw) => Some(Arc::clone(raw)),
            _ => None,
        })
        .collect();
    let Value::Object(map) = results else {
        let _ = serde_json::to_writer(&mut *text, results);
        return;
    };
    // One entry per record, in order (`results_insert`); anything else is written as it is.
    if map.len() != texts.len() || texts.iter().all(Option::is_none) {
        let _ = serde_json::to_writer(&mut *text, results);
        return;
    }
    text.push(b'{');
    for ((key, record), raw) in map.iter().zip(texts) {
        push_key(text, key);
        match (record, raw) {
            (Value::Object(fields), Some(raw)) => {
                text.push(b'{');
                for (name, value) in fields {
                    push_key(text, name);
                    if name == "result" {
                        text.extend_from_slice(raw.as_bytes());
                    } else {
                        let _ = serde_json::to_writer(&mut *text, value);
                    }
                }
                text.push(b'}');
            }
            (record, _) => {
                let _ = serde_json::to_writer(&mut *text, record);
            }
        }
    }
    text.push(b'}');
}

fn has_forwarded_result(event: &EventInner) -> bool {
    event
        .state
        .lock()
        .results
        .iter()
        .any(|r| r.value.is_forwarded())
}

/// `"key":` after the `{` or a `,`.
fn push_key(text: &mut Vec<u8>, key: &str) {
    if text.last() != Some(&b'{') {
        text.push(b',');
    }
    let _ = serde_json::to_writer(&mut *text, key);
    text.push(b':');
}

/// The event's JSON object with `payload` as its payload fields.
/// With `text_results`, results held as text are left null (the text writer splices them in).
fn event_map(
    event: &EventInner,
    results: bool,
    payload: Map<String, Value>,
    text_results: bool,
) -> Map<String, Value> {
    let result_type = (event.kind.result_schema)(event).unwrap_or(Value::Null);
    let st = event.state.lock();
    let c = &st.config;
    let mut out = Map::with_capacity(20 + payload.len());
    out.insert(
        "event_type".into(),
        Value::String(event.event_type().to_owned()),
    );
    out.insert(
        "event_version".into(),
        Value::String(event.version().to_owned()),
    );
    out.insert("event_timeout".into(), secs_value(c.event_timeout));
    out.insert(
        "event_slow_timeout".into(),
        secs_value(c.event_slow_timeout),
    );
    out.insert("event_concurrency".into(), mode(c.event_concurrency));
    out.insert(
        "event_handler_timeout".into(),
        secs_value(c.event_handler_timeout),
    );
    out.insert(
        "event_handler_slow_timeout".into(),
        secs_value(c.event_handler_slow_timeout),
    );
    out.insert(
        "event_handler_concurrency".into(),
        mode(c.event_handler_concurrency),
    );
    out.insert(
        "event_handler_completion".into(),
        mode(c.event_handler_completion),
    );
    out.insert(
        "event_blocks_parent_completion".into(),
        Value::Bool(blocks_parent_completion(
            st.wire_extra(),
            st.emitted_by_handler_id.is_some(),
        )),
    );
    out.insert("event_result_type".into(), result_type);
    out.insert("event_id".into(), Value::String(event.id.to_string()));
    out.insert(
        "event_path".into(),
        Value::Array(
            st.listed_path()
                .map(|l| Value::String(l.to_string()))
                .collect(),
        ),
    );
    out.insert(
        "event_parent_id".into(),
        st.parent_id
            .map_or(Value::Null, |id| Value::String(id.to_string())),
    );
    out.insert(
        "event_emitted_by_handler_id".into(),
        st.emitted_by_handler_id
            .as_ref()
            .map_or(Value::Null, |id| Value::String(id.to_string())),
    );
    out.insert(
        "event_pending_bus_count".into(),
        Value::from(
            st.buses
                .iter()
                .filter(|s| s.phase != BusPhase::Done)
                .count(),
        ),
    );
    out.insert("event_created_at".into(), ts(Some(event.created_at)));
    out.insert(
        "event_status".into(),
        Value::String(st.status.as_str().to_owned()),
    );
    out.insert("event_started_at".into(), ts(st.started_at()));
    out.insert("event_completed_at".into(), ts(st.completed_at()));
    write_unknown(&mut out, st.wire_extra().map(|e| &e.unknown));
    for (key, value) in payload {
        out.entry(key).or_insert(value);
    }
    if results {
        // A forwarding result is this same event: reuse the JSON built above rather than
        // locking the event again.
        let this = Value::Object(out.clone());
        let forwarded = |target: &Weak<EventInner>| match target.upgrade() {
            Some(target) if std::ptr::addr_eq(Arc::as_ptr(&target), event) => this.clone(),
            Some(_) | None => Value::Null,
        };
        let mut results = Map::with_capacity(st.results.len());
        for record in &st.results {
            let json = Value::Object(result_json(record, event.id, &forwarded, text_results));
            results_insert(&mut results, record, json);
        }
        drop(st);
        out.insert("event_results".into(), Value::Object(results));
    }
    out
}

/// Adds a result to an `event_results` object under its handler id. Two results of one handler
/// id (two buses with the same name and handler, whose deterministic ids coincide) cannot share
/// the key: the later one is keyed by its own result id instead, so neither is lost.
fn results_insert(results: &mut Map<String, Value>, record: &ResultRecord, json: Value) {
    let key = record.handler.id.to_string();
    if results.contains_key(&key) {
        results.insert(record.id.to_string(), json);
    } else {
        results.insert(key, json);
    }
}

/// One result's JSON object (§2.2), every key present. `forwarded` renders the event a forwarding
/// handler returned.
pub(crate) fn result_json(
    record: &ResultRecord,
    event_id: uuid::Uuid,
    forwarded: &dyn Fn(&Weak<EventInner>) -> Value,
    text_results: bool,
) -> Map<String, Value> {
    let h = &record.handler;
    let mut out = Map::with_capacity(17);
    out.insert("id".into(), Value::String(record.id.to_string()));
    out.insert(
        "status".into(),
        Value::String(record.status.as_str().to_owned()),
    );
    out.insert("event_id".into(), Value::String(event_id.to_string()));
    out.insert("handler_id".into(), Value::String(h.id.to_string()));
    out.insert("handler_name".into(), Value::String(h.name.to_string()));
    out.insert(
        "handler_file_path".into(),
        h.file_path
            .as_deref()
            .map_or(Value::Null, |p| Value::String(p.to_owned())),
    );
    out.insert("handler_timeout".into(), secs_value(h.timeout.flatten()));
    out.insert(
        "handler_slow_timeout".into(),
        secs_value(h.slow_timeout.flatten()),
    );
    out.insert("handler_registered_at".into(), ts(Some(h.registered_at)));
    out.insert(
        "handler_event_pattern".into(),
        Value::String(h.pattern.to_string()),
    );
    out.insert("eventbus_id".into(), Value::String(h.bus_id.to_string()));
    out.insert(
        "eventbus_name".into(),
        Value::String(h.bus_name.to_string()),
    );
    out.insert("started_at".into(), ts(record.started_at()));
    out.insert("completed_at".into(), ts(record.completed_at()));
    let result = match &record.value {
        // A forwarding handler's result is the event itself (without its results).
        ResultSlot::Forwarded { event, .. } => forwarded(event),
        ResultSlot::Text(_) if text_results => Value::Null,
        other => other.to_json(),
    };
    out.insert("result".into(), result);
    out.insert(
        "error".into(),
        record.error.as_ref().map_or(Value::Null, |e| {
            serde_json::to_value(e.to_wire()).unwrap_or(Value::Null)
        }),
    );
    out.insert(
        "event_children".into(),
        Value::Array(
            record
                .children
                .iter()
                .map(|id| Value::String(id.to_string()))
                .collect(),
        ),
    );
    write_unknown(&mut out, h.wire_extra.as_deref());
    out
}

#[cfg(test)]
mod tests;
