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
    put(&mut text, "event_type", &&*event.event_type);
    put(&mut text, "event_version", &&*event.version);
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
        &blocks_parent_completion(st.wire_extra.as_deref(), st.emitted_by_handler_id.is_some()),
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
    put(&mut text, "event_started_at", &ts(st.started_at));
    put(&mut text, "event_completed_at", &ts(st.completed_at));
    // As `event_map` then `event_json_text_via_map`: unknown keys after the built-in ones (never
    // one of them), payload fields after those (never a key already written); an
    // `event_results` key is dropped from the map (only a text field can still write it).
    let unknown = st.wire_extra.as_deref().map(|e| &e.unknown);
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
        Value::String(event.event_type.to_string()),
    );
    out.insert(
        "event_version".into(),
        Value::String(event.version.to_string()),
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
            st.wire_extra.as_deref(),
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
    out.insert("event_started_at".into(), ts(st.started_at));
    out.insert("event_completed_at".into(), ts(st.completed_at));
    write_unknown(&mut out, st.wire_extra.as_deref().map(|e| &e.unknown));
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
    out.insert("started_at".into(), ts(record.started_at));
    out.insert("completed_at".into(), ts(record.completed_at));
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
        Value::String(event.event_type.to_string()),
    );
    out.insert(
        "event_schema".into(),
        Value::String(format!("{}@{}", event.event_type, event.version)),
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
    out.insert("event_processed_at".into(), ts_micros(st.completed_at));
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
            st.wire_extra
                .as_ref()
                .and_then(|e| e.blocks_parent_completion)
                .map_or(Value::Null, Value::Bool),
        ),
    ];
    for (key, value) in extras {
        if !value.is_null() {
            out.insert(key.into(), value);
        }
    }
    write_unknown(&mut out, st.wire_extra.as_deref().map(|e| &e.unknown));
    drop(st);
    for (key, value) in payload {
        out.entry(key).or_insert(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{AnyEvent, EventBus, EventHandle};

    /// The direct writer and the map it replaces give the same bytes.
    fn same_text(event: &AnyEvent) {
        let direct = String::from_utf8(event_text(event.inner())).unwrap();
        let via_map = String::from_utf8(event_json_text_via_map(event.inner(), false)).unwrap();
        assert_eq!(direct, via_map);
        serde_json::from_str::<Value>(&direct).unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn the_direct_writer_writes_what_the_map_writes() {
        let plain = EventHandle::new(
            DynEvent::new(
                "Ping",
                json!({"n": 1, "s": "a\"b", "nested": {"x": [1.5, null]}}),
            )
            .unwrap(),
        )
        .to_any();
        same_text(&plain);
        let configured = EventHandle::new(DynEvent::new("Ping", json!({})).unwrap())
            .with_event_timeout(std::time::Duration::from_millis(1500))
            .to_any();
        same_text(&configured);
        // Read from text: payload fields kept as text, unknown metadata, every setting, a path
        // and a parent.
        let text = r#"{"event_type":"Pong","event_version":"2.0","event_timeout":2.5,
            "event_slow_timeout":null,"event_concurrency":"parallel",
            "event_handler_timeout":1,"event_handler_slow_timeout":0.5,
            "event_handler_concurrency":"serial","event_handler_completion":"first",
            "event_blocks_parent_completion":true,"event_result_type":{"type":"string"},
            "event_id":"018f6b1e-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
            "event_path":["A#ab12","B#cd34"],
            "event_parent_id":"018f6b1e-3c4d-7e5f-8a9b-0c1d2e3f4a5c",
            "event_emitted_by_handler_id":"018f6b1e-3c4d-7e5f-8a9b-0c1d2e3f4a5d",
            "event_pending_bus_count":0,"event_created_at":"2026-01-02T03:04:05.123456789Z",
            "event_status":"completed","event_started_at":"2026-01-02T03:04:05.2Z",
            "event_completed_at":"2026-01-02T03:04:06Z","event_future_key":{"a":[1,2]},
            "z": [ 1 , 2 ],"a":"x\u00e9"}"#;
        let read = AnyEvent::from_json_str(text).unwrap();
        same_text(&read);
        same_text(&read.event_reset_keep_id());
        // Read from a value: payload fields parsed.
        let value: Value = serde_json::from_str(text).unwrap();
        same_text(&AnyEvent::from_json(&value).unwrap());
        // Dispatched and completed on a bus, with a child.
        let bus = EventBus::new("EncodeBus");
        let child_bus = bus.clone();
        bus.on_pattern("Parent", move |_event: AnyEvent| {
            let child = child_bus
                .dispatch(DynEvent::new("Child", json!({"k": true})).unwrap())
                .unwrap();
            same_text(&child.to_any());
        });
        let parent = bus
            .dispatch(DynEvent::new("Parent", json!({"p": 1})).unwrap())
            .unwrap();
        same_text(&parent.to_any());
        let _ = (&parent).await;
        same_text(&parent.to_any());
        bus.wait_until_idle(None).await;
        for event in bus.event_history() {
            same_text(&event);
        }
    }
}
