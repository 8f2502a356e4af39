//! The JSON wire format shared with the Python and TypeScript runtimes.

pub(crate) mod decode;
pub(crate) mod depth;
pub(crate) mod encode;
pub(crate) mod extra;
mod kind;
pub(crate) mod raw;
pub(crate) mod schema;
mod validate;
mod validate_text;

pub(crate) use kind::metadata_field;

use std::sync::Arc;

use serde_json::{Map, Value};

pub use depth::MAX_JSON_DEPTH;

use crate::event::{AnyEvent, EventHandle, EventPayload, EventResultValue};
use crate::result::EventResult;

/// JSON that is not an event (or a result) any bubus runtime writes. Names the offending field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", if field.is_empty() { String::new() } else { format!("invalid `{field}`: ") })]
pub struct DecodeError {
    field: String,
    message: String,
}

impl DecodeError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        DecodeError {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The offending field (`event_status`, `event_results[2].handler_id`, …); empty when the
    /// input as a whole is wrong (not JSON, not an object).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl AnyEvent {
    /// The event's canonical JSON: every `event_*` key (null when unset) in the reference order,
    /// then the payload fields. No `event_results` — the form bridges and logs carry.
    ///
    /// ```
    /// use bubus::{DynEvent, EventHandle};
    /// use serde_json::json;
    ///
    /// let event = EventHandle::new(DynEvent::new("Ping", json!({"n": 1})).unwrap());
    /// let json = event.to_json();
    /// assert_eq!(json["event_type"], "Ping");
    /// assert_eq!(json["event_status"], "pending");
    /// assert_eq!(json["event_timeout"], serde_json::Value::Null);
    /// assert_eq!(json["n"], 1);
    /// assert_eq!(json["event_created_at"].as_str().unwrap().len(), 30);
    /// ```
    pub fn to_json(&self) -> Value {
        Value::Object(encode::event_json(self.inner(), false))
    }

    /// As [`to_json`](Self::to_json), plus `event_results`: every handler's result, as an object
    /// keyed by handler id (the form the Python and TypeScript runtimes write and require).
    ///
    /// ```
    /// use bubus::{AnyEvent, DynEvent, EventBus};
    /// use serde_json::json;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bubus::Error> {
    /// let bus = EventBus::new("Pinger");
    /// let handler = bus.on_pattern("Ping", |_event: AnyEvent| json!("pong"));
    /// let event = bus.dispatch(DynEvent::new("Ping", json!({}))?)?;
    /// event.clone().await?;
    ///
    /// let json = event.to_json_with_results();
    /// let result = &json["event_results"][handler.id().to_string()];
    /// assert_eq!(result["handler_id"], handler.id().to_string());
    /// assert_eq!(result["result"], "pong");
    /// # Ok(()) }
    /// ```
    pub fn to_json_with_results(&self) -> Value {
        Value::Object(encode::event_json(self.inner(), true))
    }

    /// [`to_json`](Self::to_json) as compact text (what a bridge sends, a log line holds).
    ///
    /// An event read from text ([`from_json_str`](Self::from_json_str), a log reader) writes its
    /// payload fields as the compact text they were read as, without parsing them — the same
    /// values; numbers and string escapes are spelled as they came. So copying or printing a log
    /// costs about the size of its lines, whatever their payloads hold.
    pub fn to_json_string(&self) -> String {
        text(encode::event_json_text(self.inner(), false))
    }

    /// [`to_json_with_results`](Self::to_json_with_results) as compact text, written as
    /// [`to_json_string`](Self::to_json_string) writes it.
    pub fn to_json_string_with_results(&self) -> String {
        text(encode::event_json_text(self.inner(), true))
    }

    /// The event's JSON as Python bubus 1.x reads and writes it (checked against bubus 1.5.6,
    /// whose `BaseEvent` rejects the canonical form: its `event_path` entries must be bus names,
    /// not `Name#ab12` labels). For talking to services that still run 1.x; everything else
    /// should use [`to_json`](Self::to_json).
    ///
    /// The differences from the canonical form (`docs/wire-format.md` has the full table):
    ///
    /// * `event_schema: "{event_type}@{event_version}"` instead of `event_version`;
    /// * `event_path` holds bus names (`OrdersBus`), not labels (`OrdersBus#ab12`);
    /// * timestamps have 6 fraction digits (`2026-01-02T03:04:05.123456Z`), truncated;
    /// * `event_processed_at` is the completion time; no `event_status`, `event_started_at`,
    ///   `event_completed_at` (1.x derives them from `event_processed_at`);
    /// * `event_timeout` only when set (1.x then applies its own default, 300 s);
    /// * no `event_result_type` (1.x holds a Python type there; the receiving class brings its
    ///   own), no `event_results`, no `event_pending_bus_count`;
    /// * the configuration keys 1.x does not know (`event_concurrency`, …) and
    ///   `event_emitted_by_handler_id` only when set: 1.x keeps them as extra fields and writes
    ///   them back, so they survive a trip through a 1.x service.
    ///
    /// 1.x also requires `event_type` and every bus name to be a Python identifier; events whose
    /// names are not cannot cross into it whatever the format.
    ///
    /// [`from_json`](Self::from_json) reads this form (and what 1.x writes) back.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bubus::{DynEvent, EventHandle};
    /// use serde_json::json;
    ///
    /// let event = EventHandle::new(DynEvent::new("Ping", json!({"n": 1})).unwrap())
    ///     .with_event_timeout(Duration::from_secs(5));
    /// let json = event.to_json_python1();
    /// assert_eq!(json["event_schema"], "Ping@0.0.1");
    /// assert_eq!(json["event_timeout"], 5.0);
    /// assert_eq!(json["event_processed_at"], serde_json::Value::Null);
    /// assert!(json.get("event_status").is_none());
    /// assert_eq!(json["event_created_at"].as_str().unwrap().len(), 27);
    /// ```
    pub fn to_json_python1(&self) -> Value {
        Value::Object(encode::event_json_python1(self.inner()))
    }

    /// An event from the JSON any bubus runtime writes: this crate's, the current Python and
    /// TypeScript ones, or Python 1.x. Keeps its id, path, parent, configuration, status,
    /// timestamps and results (a list or a map); the payload becomes a [`DynEvent`](crate::DynEvent)
    /// that typed handlers decode on demand. Results are checked against `event_result_type`.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] naming the field: a missing `event_type`, wrong types, an unknown
    /// `event_*` key, a malformed id or timestamp, a bad status.
    pub fn from_json(value: &Value) -> Result<AnyEvent, DecodeError> {
        decode::decode_event(value).map(AnyEvent::from_inner)
    }

    /// [`from_json`](Self::from_json) for text.
    ///
    /// # Errors
    ///
    /// A [`DecodeError`]; truncated or invalid JSON is reported with its position.
    pub fn from_json_str(text: &str) -> Result<AnyEvent, DecodeError> {
        decode::decode_event_text(text).map(AnyEvent::from_inner)
    }

    /// A fresh, undispatched copy of this event with a new id: same type, payload, configuration,
    /// path and parent; pending, no results. (The reference runtimes' `event_reset()`.)
    ///
    /// Like the reference runtimes, which rebuild the event from its dump, the copy's payload is
    /// read back from the payload's JSON: fields the payload does not serialize start from what
    /// its deserializer gives them. A typed payload that cannot be read back from its own JSON
    /// is carried as that JSON; its typed handlers then fail with the decode error.
    pub fn event_reset(&self) -> AnyEvent {
        AnyEvent::from_inner(self.inner().fresh_copy(false))
    }

    /// A fresh, undispatched copy that keeps the event id — how an event crosses into another
    /// process while keeping its lineage.
    pub fn event_reset_keep_id(&self) -> AnyEvent {
        AnyEvent::from_inner(self.inner().fresh_copy(true))
    }
}

impl<P: EventPayload> EventHandle<P> {
    /// See [`AnyEvent::to_json`].
    pub fn to_json(&self) -> Value {
        self.as_ref().to_json()
    }

    /// See [`AnyEvent::to_json_with_results`].
    pub fn to_json_with_results(&self) -> Value {
        self.as_ref().to_json_with_results()
    }

    /// See [`AnyEvent::to_json_string`].
    pub fn to_json_string(&self) -> String {
        self.as_ref().to_json_string()
    }

    /// See [`AnyEvent::to_json_string_with_results`].
    pub fn to_json_string_with_results(&self) -> String {
        self.as_ref().to_json_string_with_results()
    }

    /// See [`AnyEvent::to_json_python1`].
    pub fn to_json_python1(&self) -> Value {
        self.as_ref().to_json_python1()
    }
}

impl<R: EventResultValue> EventResult<R> {
    /// The result's JSON (§2.2 of the reference wire format), every key present.
    pub fn to_json(&self) -> Value {
        let mut out = Map::with_capacity(17);
        let ts = |t: Option<crate::time::Timestamp>| {
            t.map_or(Value::Null, |t| Value::String(t.to_string()))
        };
        out.insert("id".into(), Value::String(self.id.to_string()));
        out.insert(
            "status".into(),
            Value::String(self.status.as_str().to_owned()),
        );
        out.insert("event_id".into(), Value::String(self.event_id.to_string()));
        out.insert(
            "handler_id".into(),
            Value::String(self.handler_id.to_string()),
        );
        out.insert(
            "handler_name".into(),
            Value::String(self.handler_name.clone()),
        );
        out.insert(
            "handler_file_path".into(),
            self.handler_file_path
                .clone()
                .map_or(Value::Null, Value::String),
        );
        out.insert(
            "handler_timeout".into(),
            crate::time::secs_value(self.handler_timeout),
        );
        out.insert(
            "handler_slow_timeout".into(),
            crate::time::secs_value(self.handler_slow_timeout),
        );
        out.insert(
            "handler_registered_at".into(),
            ts(Some(self.handler_registered_at)),
        );
        out.insert(
            "handler_event_pattern".into(),
            Value::String(self.handler_event_pattern.clone()),
        );
        out.insert(
            "eventbus_id".into(),
            Value::String(self.eventbus_id.to_string()),
        );
        out.insert(
            "eventbus_name".into(),
            Value::String(self.eventbus_name.clone()),
        );
        out.insert("started_at".into(), ts(self.started_at));
        out.insert("completed_at".into(), ts(self.completed_at));
        out.insert("result".into(), self.result_json.clone());
        out.insert(
            "error".into(),
            self.error.as_ref().map_or(Value::Null, |e| {
                serde_json::to_value(e.to_wire()).unwrap_or(Value::Null)
            }),
        );
        out.insert(
            "event_children".into(),
            Value::Array(
                self.event_children
                    .iter()
                    .map(|id| Value::String(id.to_string()))
                    .collect(),
            ),
        );
        extra::write_unknown(&mut out, self.wire_extra.as_deref());
        Value::Object(out)
    }
}

/// JSON text as a `String` (it is UTF-8: the encoder writes only strings and JSON it validated).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

pub(crate) fn _assert_send_sync() {
    fn check<T: Send + Sync>() {}
    check::<DecodeError>();
    check::<Arc<schema::ResultType>>();
}

/// Whether two JSON values are equal, numbers by their mathematical value as JSON Schema's
/// `const`/`enum`/`uniqueItems` and the reference runtimes' `==` compare them: `1` equals `1.0`,
/// integers compare exactly (`18446744073709551615` is not `18446744073709551614`, which they
/// would be as `f64`s), an integer and a float only when the float is that integer exactly.
/// Objects compare as maps (key order ignored), arrays element by element.
pub(crate) fn json_eq(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    /// The number as an exact integer, if it is one (an integral float converts exactly while
    /// within `i128`, whose range holds every `u64` and `i64`).
    fn as_int(n: &serde_json::Number) -> Option<i128> {
        if let Some(u) = n.as_u64() {
            return Some(i128::from(u));
        }
        if let Some(i) = n.as_i64() {
            return Some(i128::from(i));
        }
        let f = n.as_f64()?;
        (f.fract() == 0.0 && f.abs() < 1e38).then_some(f as i128)
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (as_int(x), as_int(y)) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64().is_some_and(|x| y.as_f64() == Some(x)),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| json_eq(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod json_eq_tests {
    use super::json_eq;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_mathematical_value() {
        assert!(json_eq(&json!(1), &json!(1.0)));
        assert!(json_eq(&json!(-3), &json!(-3.0)));
        assert!(json_eq(&json!(0.5), &json!(0.5)));
        assert!(!json_eq(&json!(1), &json!(1.5)));
        assert!(!json_eq(&json!(1), &json!("1")));
        // Integers beyond f64's 53 bits compare exactly, not as the same rounded f64.
        assert!(json_eq(&json!(u64::MAX), &json!(u64::MAX)));
        assert!(!json_eq(&json!(u64::MAX), &json!(u64::MAX - 1)));
        assert!(!json_eq(&json!(i64::MIN), &json!(i64::MIN + 1)));
        assert!(!json_eq(
            &json!(9_007_199_254_740_993_u64),
            &json!(9_007_199_254_740_992.0)
        ));
        assert!(json_eq(
            &json!(9_007_199_254_740_992_u64),
            &json!(9_007_199_254_740_992.0)
        ));
    }

    #[test]
    fn containers_compare_element_by_element_and_key_by_key() {
        assert!(json_eq(
            &json!({"a": [1, {"b": 2.0}]}),
            &json!({"a": [1.0, {"b": 2}]})
        ));
        assert!(json_eq(&json!({"a": 1, "b": 2}), &json!({"b": 2, "a": 1})));
        assert!(!json_eq(&json!([1, 2]), &json!([2, 1])));
        assert!(!json_eq(&json!({"a": 1}), &json!({"a": 1, "b": null})));
    }
}
