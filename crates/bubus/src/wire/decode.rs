//! Events and results from JSON written by any bubus runtime: the current Python and TypeScript
//! formats, and the older Python 1.x one. Bad input is rejected with an error naming the field.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::DecodeError;
use super::depth::{MAX_JSON_DEPTH, value_depth};
use super::extra::{EventExtra, is_forward_compatible_key};
use super::raw::{RawObject, compact, numbers_in_range};
use super::schema::ResultType;
use crate::error::{HandlerError, HandlerErrorKind, WireError};
use crate::event::inner::{EventInner, RestoredEvent};
use crate::event::{
    DEFAULT_EVENT_VERSION, DynEvent, EventConcurrency, EventConfig, EventStatus, HandlerCompletion,
    HandlerConcurrency,
};
use crate::handler::{HandlerId, HandlerMeta};
use crate::result::{ResultRecord, ResultSlot, ResultStatus};
use crate::time::Timestamp;

/// Payload keys the reference runtimes reserve for their own API.
const RESERVED_KEYS: &[&str] = &["bus", "first", "toString", "toJSON", "fromJSON"];

fn err(field: impl Into<String>, message: impl Into<String>) -> DecodeError {
    DecodeError::new(field, message)
}

/// Refuses a value nested deeper than `limit` (what `dispatch` would refuse, and what could not
/// be written back readably).
fn check_depth(field: &str, v: &Value, limit: usize) -> Result<(), DecodeError> {
    if matches!(v, Value::Array(_) | Value::Object(_)) && value_depth(v, limit) > limit {
        return Err(err(
            field,
            format!("nests more than {limit} levels of arrays and objects"),
        ));
    }
    Ok(())
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn string<'a>(field: &str, v: &'a Value) -> Result<&'a str, DecodeError> {
    v.as_str()
        .ok_or_else(|| err(field, format!("expected a string, got {}", kind_of(v))))
}

fn opt_string(field: &str, v: &Value) -> Result<Option<String>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        other => string(field, other).map(|s| Some(s.to_owned())),
    }
}

fn uuid(field: &str, v: &Value) -> Result<Uuid, DecodeError> {
    let text = string(field, v)?;
    Uuid::parse_str(text).map_err(|e| err(field, format!("expected a UUID, got {text:?} ({e})")))
}

fn opt_uuid(field: &str, v: &Value) -> Result<Option<Uuid>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        other => uuid(field, other).map(Some),
    }
}

fn timestamp(field: &str, v: &Value) -> Result<Timestamp, DecodeError> {
    let text = string(field, v)?;
    // The reference runtimes accept at most 9 fraction digits; more would be silently cut.
    let fraction_digits = text.split_once('.').map_or(0, |(_, rest)| {
        rest.bytes().take_while(u8::is_ascii_digit).count()
    });
    if fraction_digits > 9 {
        return Err(err(
            field,
            format!("{text:?} has {fraction_digits} fraction digits; at most 9 are allowed"),
        ));
    }
    Timestamp::parse(text).map_err(|e| err(field, e.to_string()))
}

fn opt_timestamp(field: &str, v: &Value) -> Result<Option<Timestamp>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        other => timestamp(field, other).map(Some),
    }
}

/// Seconds as the wire gives them; a negative number reads as zero ("already expired", as the
/// reference runtimes treat it).
fn opt_seconds(field: &str, v: &Value) -> Result<Option<Duration>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(|secs| Some(crate::time::duration_from_secs(secs)))
            .ok_or_else(|| err(field, "expected a finite number of seconds")),
        other => Err(err(
            field,
            format!(
                "expected a number of seconds or null, got {}",
                kind_of(other)
            ),
        )),
    }
}

fn opt_enum<T: serde::de::DeserializeOwned>(
    field: &str,
    v: &Value,
    expected: &str,
) -> Result<Option<T>, DecodeError> {
    match v {
        Value::Null => Ok(None),
        other => serde_json::from_value(other.clone())
            .map(Some)
            .map_err(|_| err(field, format!("expected {expected} or null, got {other}"))),
    }
}

/// A field of the event object being decoded: parsed already, or the text of its value.
enum Field<'a> {
    Parsed(&'a Value),
    Text(&'a RawValue),
}

/// The value of a metadata field's text when it is one of the constants most of them hold
/// (`null`, a boolean, `[]`), without parsing it.
fn constant(text: &str) -> Option<&'static Value> {
    static NULL: Value = Value::Null;
    static TRUE: Value = Value::Bool(true);
    static FALSE: Value = Value::Bool(false);
    static EMPTY: Value = Value::Array(Vec::new());
    match text {
        "null" => Some(&NULL),
        "false" => Some(&FALSE),
        "true" => Some(&TRUE),
        "[]" => Some(&EMPTY),
        _ => None,
    }
}

/// Whether a key is a payload field (not metadata, nor reserved).
fn is_payload_key(key: &str) -> bool {
    !key.starts_with("event_") && !key.starts_with("model_") && !RESERVED_KEYS.contains(&key)
}

/// Parses an event object. Missing keys take their defaults (a new id, now, pending, …).
pub(crate) fn decode_event(value: &Value) -> Result<Arc<EventInner>, DecodeError> {
    let Value::Object(object) = value else {
        return Err(err(
            "",
            format!("expected an event object, got {}", kind_of(value)),
        ));
    };
    decode_fields(object.iter().map(|(k, v)| (k.as_str(), Field::Parsed(v))))
}

/// Parses an event from its JSON text. The payload fields are not parsed: they are kept as
/// compact text (see `raw.rs`), so reading an event costs close to its text whatever it carries.
pub(crate) fn decode_event_text(text: &str) -> Result<Arc<EventInner>, DecodeError> {
    let RawObject(fields) = serde_json::from_str(text).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => err("", e.to_string()),
        _ => err("", format!("invalid JSON: {e}")),
    })?;
    decode_fields(fields.iter().map(|(k, v)| (&**k, Field::Text(v))))
}

fn decode_fields<'a>(
    fields: impl Iterator<Item = (&'a str, Field<'a>)>,
) -> Result<Arc<EventInner>, DecodeError> {
    let mut event_type: Option<String> = None;
    let mut version: Option<String> = None;
    let mut legacy_version: Option<String> = None;
    let mut config = EventConfig::UNSET;
    let mut result_type: Option<Arc<ResultType>> = None;
    let mut id: Option<Uuid> = None;
    let mut path: Vec<String> = Vec::new();
    let mut parent_id: Option<Uuid> = None;
    let mut emitted_by: Option<String> = None;
    let mut created_at: Option<Timestamp> = None;
    let mut status = EventStatus::Pending;
    let mut started_at: Option<Timestamp> = None;
    let mut completed_at: Option<Timestamp> = None;
    let mut processed_at: Option<Timestamp> = None;
    let mut raw_results: Option<Cow<'a, Value>> = None;
    let mut text_results: TextResults = Vec::new();
    let mut payload = Map::new();
    let mut text_payload: Vec<(String, Box<str>)> = Vec::new();
    let mut extra = EventExtra::default();

    for (key, field) in fields {
        let k = key;
        if is_payload_key(k) {
            match field {
                Field::Parsed(v) => {
                    check_depth(k, v, MAX_JSON_DEPTH)?;
                    payload.insert(key.to_owned(), v.clone());
                }
                Field::Text(text) => {
                    let (compact, _) = compact(text.get(), MAX_JSON_DEPTH).map_err(|_| {
                        err(
                            k,
                            format!(
                                "nests more than {MAX_JSON_DEPTH} levels of arrays and objects"
                            ),
                        )
                    })?;
                    if !numbers_in_range(&compact) {
                        return Err(err(k, "holds a number out of range"));
                    }
                    text_payload.push((key.to_owned(), compact));
                }
            }
            continue;
        }
        if let ("event_results", Field::Text(text)) = (k, &field) {
            // Each record's fields are parsed; its result stays text (see `results_from_text`).
            let (value, raws) = results_from_text(text.get())?;
            raw_results = Some(Cow::Owned(value));
            text_results = raws;
            continue;
        }
        let v: Cow<'a, Value> = match field {
            Field::Parsed(v) => Cow::Borrowed(v),
            Field::Text(text) => match constant(text.get()) {
                Some(v) => Cow::Borrowed(v),
                None => Cow::Owned(
                    serde_json::from_str(text.get())
                        .map_err(|e| err(k, format!("invalid JSON: {e}")))?,
                ),
            },
        };
        if k == "event_results" {
            raw_results = Some(v);
            continue;
        }
        let v = &*v;
        check_depth(k, v, MAX_JSON_DEPTH)?;
        match k {
            "event_type" => {
                let t = string(k, v)?;
                if t.is_empty() || t == "*" {
                    return Err(err(k, format!("{t:?} is not an event type name")));
                }
                event_type = Some(t.to_owned());
            }
            "event_version" => version = Some(string(k, v)?.to_owned()),
            // Python 1.x: "module.Class@version".
            "event_schema" => {
                if let Some(schema) = opt_string(k, v)? {
                    legacy_version = schema.rsplit_once('@').map(|(_, ver)| ver.to_owned());
                }
            }
            "event_timeout" => config.event_timeout = opt_seconds(k, v)?,
            "event_slow_timeout" => config.event_slow_timeout = opt_seconds(k, v)?,
            "event_handler_timeout" => config.event_handler_timeout = opt_seconds(k, v)?,
            "event_handler_slow_timeout" => config.event_handler_slow_timeout = opt_seconds(k, v)?,
            "event_concurrency" => {
                config.event_concurrency = opt_enum::<EventConcurrency>(
                    k,
                    v,
                    "\"global-serial\", \"bus-serial\" or \"parallel\"",
                )?
            }
            "event_handler_concurrency" => {
                config.event_handler_concurrency =
                    opt_enum::<HandlerConcurrency>(k, v, "\"serial\" or \"parallel\"")?
            }
            "event_handler_completion" => {
                config.event_handler_completion =
                    opt_enum::<HandlerCompletion>(k, v, "\"all\" or \"first\"")?
            }
            "event_blocks_parent_completion" => {
                extra.blocks_parent_completion = match v {
                    Value::Null => None,
                    Value::Bool(blocks) => Some(*blocks),
                    other => {
                        return Err(err(
                            k,
                            format!("expected a boolean or null, got {}", kind_of(other)),
                        ));
                    }
                }
            }
            "event_result_type" => {
                result_type = match v {
                    Value::Object(_) | Value::Bool(_) => Some(ResultType::intern(v.clone())),
                    // Python 1.x wrote `str(type)`: informative only.
                    Value::Null | Value::String(_) => None,
                    other => {
                        return Err(err(
                            k,
                            format!(
                                "expected a JSON Schema object or null, got {}",
                                kind_of(other)
                            ),
                        ));
                    }
                }
            }
            "event_id" => id = Some(uuid(k, v)?),
            "event_path" => {
                let Value::Array(items) = v else {
                    return Err(err(
                        k,
                        format!("expected a list of bus labels, got {}", kind_of(v)),
                    ));
                };
                path = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| string(&format!("event_path[{i}]"), item).map(str::to_owned))
                    .collect::<Result<_, _>>()?;
            }
            "event_parent_id" => parent_id = opt_uuid(k, v)?,
            "event_emitted_by_handler_id" => emitted_by = opt_string(k, v)?,
            "event_pending_bus_count" => {
                if !v.is_null() && v.as_u64().is_none() {
                    return Err(err(k, format!("expected a non-negative integer, got {v}")));
                }
            }
            "event_created_at" => created_at = opt_timestamp(k, v)?,
            "event_status" => {
                status = match v {
                    Value::Null => EventStatus::Pending,
                    other => serde_json::from_value(other.clone()).map_err(|_| {
                        err(
                            k,
                            format!(
                                "expected \"pending\", \"started\" or \"completed\", got {other}"
                            ),
                        )
                    })?,
                }
            }
            "event_started_at" => started_at = opt_timestamp(k, v)?,
            "event_completed_at" => completed_at = opt_timestamp(k, v)?,
            // Python 1.x.
            "event_processed_at" => processed_at = opt_timestamp(k, v)?,
            // Metadata a newer runtime added: kept and written back, never a reason to refuse
            // the event (it is not payload: `event_*` keys are reserved for metadata).
            _ if k.starts_with("event_") => {
                extra.unknown.insert(key.to_owned(), v.clone());
            }
            _ if k.starts_with("model_") => {
                return Err(err(k, "model_* keys are reserved by the Python runtime"));
            }
            _ => {
                return Err(err(
                    k,
                    "reserved by the reference runtimes for their own API",
                ));
            }
        }
    }

    let event_type = event_type.ok_or_else(|| err("event_type", "missing"))?;
    let created_at = created_at.unwrap_or_else(Timestamp::now);
    if completed_at.is_none() && processed_at.is_some() {
        // A 1.x event with a processing time was completed (1.x derives its status and start
        // time from it when no results are attached, which is always the case on the wire).
        completed_at = processed_at;
        started_at = started_at.or(processed_at);
        status = EventStatus::Completed;
    }
    let version = version
        .or(legacy_version)
        .unwrap_or_else(|| DEFAULT_EVENT_VERSION.to_owned());
    let mut results = match raw_results.as_deref() {
        None | Some(Value::Null) => Vec::new(),
        Some(raw) => decode_results(
            raw,
            &EventContext {
                id,
                event_type: &event_type,
                created_at,
                result_type: result_type.as_deref(),
            },
        )?,
    };
    for (record, text) in results.iter_mut().zip(text_results) {
        if let Some(text) = text {
            set_text_result(record, text, result_type.as_deref());
        }
    }
    // Read from text, the fields stay text; read from a value, they are values.
    let payload = if text_payload.is_empty() {
        DynEvent::from_parts(event_type.clone(), payload)
    } else {
        DynEvent::from_text_fields(event_type.clone(), text_payload)
    };
    Ok(EventInner::restored(RestoredEvent {
        id: id.unwrap_or_else(|| crate::event::inner::new_event_id(created_at)),
        event_type,
        version,
        created_at,
        payload,
        result_type,
        config,
        status,
        started_at,
        completed_at,
        parent_id,
        emitted_by_handler_id: emitted_by.map(HandlerId::from),
        path,
        results,
        wire_extra: extra.boxed(),
    }))
}

/// What a result needs to know about the event that carries it.
struct EventContext<'a> {
    /// The event's id, if its JSON gave one (results must then name the same event).
    id: Option<Uuid>,
    event_type: &'a str,
    created_at: Timestamp,
    result_type: Option<&'a ResultType>,
}

/// `event_results` as a list (TypeScript, bus snapshots) or a map keyed by handler id (Python).
fn decode_results(raw: &Value, event: &EventContext<'_>) -> Result<Vec<ResultRecord>, DecodeError> {
    let entries: Vec<(String, Option<&str>, &Value)> = match raw {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("event_results[{i}]"), None, item))
            .collect(),
        Value::Object(map) => map
            .iter()
            .map(|(key, item)| (format!("event_results.{key}"), Some(key.as_str()), item))
            .collect(),
        other => {
            return Err(err(
                "event_results",
                format!(
                    "expected a list or a map of results, got {}",
                    kind_of(other)
                ),
            ));
        }
    };
    entries
        .into_iter()
        .map(|(field, key, item)| decode_result(&field, key, item, event))
        .collect()
}

/// Every key an EventResult object has (§2.2). Both reference runtimes reject any other key; we
/// keep `handler_*`, `event_*` and `eventbus_*` keys a newer runtime may have added
/// ([`is_forward_compatible_key`]) and reject the rest. (Python 1.x never puts results on the
/// wire: its WAL lines and dumps exclude them.)
const RESULT_KEYS: &[&str] = &[
    "id",
    "status",
    "event_id",
    "handler_id",
    "handler_name",
    "handler_file_path",
    "handler_timeout",
    "handler_slow_timeout",
    "handler_registered_at",
    "handler_event_pattern",
    "eventbus_id",
    "eventbus_name",
    "started_at",
    "completed_at",
    "result",
    "error",
    "event_children",
];

/// A handler error: `{"type", "message"}` (Python), `{}` (TypeScript serializes `Error` objects
/// without their text), `{"name", "message"}` (a JavaScript error copied field by field), or a
/// bare message string.
fn decode_error(field: &str, value: &Value) -> Result<Option<HandlerError>, DecodeError> {
    let text = |name: &str, v: Option<&Value>| -> Result<Option<String>, DecodeError> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(err(
                format!("{field}.{name}"),
                format!("expected a string, got {}", kind_of(other)),
            )),
        }
    };
    match value {
        Value::Null => Ok(None),
        Value::String(message) => Ok(Some(HandlerError::new("Error", message.clone()))),
        Value::Object(obj) => {
            let error_type = match text("type", obj.get("type"))? {
                Some(t) => Some(t),
                None => text("name", obj.get("name"))?,
            };
            let message = text("message", obj.get("message"))?.unwrap_or_default();
            Ok(Some(HandlerError::from_wire(WireError {
                error_type: error_type
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "Error".to_owned()),
                message,
            })))
        }
        other => Err(err(
            field,
            format!(
                "expected {{\"type\": ..., \"message\": ...}}, a string or null, got {}",
                kind_of(other)
            ),
        )),
    }
}

/// The results [`results_from_text`] kept as text, by record.
type TextResults = Vec<Option<Box<str>>>;

/// `event_results` from its text: every record's fields parsed, except a `result` that is an
/// array, an object (not a forwarded event) or a string, which is kept as compact text — checked
/// against the nesting limit here, given to its record by [`set_text_result`] once the record is
/// decoded (the records come back in the same order). Returns the results with those `result`s
/// as null, and the texts by record.
fn results_from_text(text: &str) -> Result<(Value, TextResults), DecodeError> {
    let invalid = |field: &str, e: serde_json::Error| err(field, format!("invalid JSON: {e}"));
    let first = text.trim_start().as_bytes().first().copied();
    let records: Vec<(String, Option<String>, &RawValue)> = match first {
        Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(text)
            .map_err(|e| invalid("event_results", e))?
            .into_iter()
            .enumerate()
            .map(|(i, record)| (format!("event_results[{i}]"), None, record))
            .collect(),
        Some(b'{') => {
            let RawObject(map) =
                serde_json::from_str(text).map_err(|e| invalid("event_results", e))?;
            map.into_iter()
                .map(|(key, record)| {
                    (
                        format!("event_results.{key}"),
                        Some(key.into_owned()),
                        record,
                    )
                })
                .collect()
        }
        _ => {
            let value = serde_json::from_str(text).map_err(|e| invalid("event_results", e))?;
            return Ok((value, Vec::new()));
        }
    };
    let mut texts = Vec::with_capacity(records.len());
    let mut list = Vec::with_capacity(records.len());
    let mut map = Map::new();
    for (field, key, record) in records {
        let mut kept = None;
        let value = match serde_json::from_str::<RawObject<'_>>(record.get()) {
            Ok(RawObject(fields)) => {
                let mut object = Map::with_capacity(fields.len());
                for (name, raw) in fields {
                    let value = if name == "result" && keeps_as_text(raw.get()) {
                        let (compact, _) = compact(raw.get(), MAX_JSON_DEPTH).map_err(|_| {
                            err(
                                format!("{field}.result"),
                                format!(
                                    "nests more than {MAX_JSON_DEPTH} levels of arrays and objects"
                                ),
                            )
                        })?;
                        if !numbers_in_range(&compact) {
                            return Err(err(
                                format!("{field}.result"),
                                "holds a number out of range",
                            ));
                        }
                        kept = Some(compact);
                        Value::Null
                    } else {
                        serde_json::from_str(raw.get())
                            .map_err(|e| invalid(&format!("{field}.{name}"), e))?
                    };
                    object.insert(name.into_owned(), value);
                }
                Value::Object(object)
            }
            // Not an object: decoding it names the problem.
            Err(_) => serde_json::from_str(record.get()).map_err(|e| invalid(&field, e))?,
        };
        texts.push(kept);
        match key {
            Some(key) => {
                map.insert(key, value);
            }
            None => list.push(value),
        }
    }
    let value = if first == Some(b'[') {
        Value::Array(list)
    } else {
        Value::Object(map)
    };
    Ok((value, texts))
}

/// Whether a result's text is kept as text: a string, an array, or an object that is not a
/// forwarded event (those are decoded as events are).
fn keeps_as_text(text: &str) -> bool {
    match text.trim_start().as_bytes().first() {
        Some(b'"' | b'[') => true,
        Some(b'{') => serde_json::from_str::<RawObject<'_>>(text)
            .is_ok_and(|RawObject(fields)| !fields.contains_key("event_type")),
        _ => false,
    }
}

/// Gives a decoded record the result [`results_from_text`] kept as text. A completed result of an
/// event with a result schema is checked against it as [`decode_result`] checks a parsed one,
/// walking the text (no `Value` tree of a result that may be megabytes long).
fn set_text_result(record: &mut ResultRecord, text: Box<str>, result_type: Option<&ResultType>) {
    if let (Some(result_type), ResultStatus::Completed) = (result_type, record.status) {
        if let Err(reason) = result_type.check_text(&text) {
            let snippet: String = text.chars().take(60).collect();
            record.status = ResultStatus::Error;
            record.value = ResultSlot::Null;
            record.error = Some(Box::new(HandlerError::with_kind(
                HandlerErrorKind::ResultSchema,
                format!(
                    "result {snippet} of handler {} did not match event_result_type: {reason}",
                    record.handler.name
                ),
            )));
            return;
        }
    }
    record.value = ResultSlot::Text(Arc::from(text));
}

pub(crate) use crate::result::is_event_json;

fn decode_result(
    at: &str,
    key: Option<&str>,
    value: &Value,
    event: &EventContext<'_>,
) -> Result<ResultRecord, DecodeError> {
    let Value::Object(object) = value else {
        return Err(err(
            at,
            format!("expected a result object, got {}", kind_of(value)),
        ));
    };
    let field = |name: &str| format!("{at}.{name}");
    let get = |name: &str| object.get(name).unwrap_or(&Value::Null);
    let mut unknown_keys = Map::new();
    for (key, v) in object {
        if RESULT_KEYS.contains(&key.as_str()) {
            continue;
        }
        if !is_forward_compatible_key(key) {
            return Err(err(field(key), "not a key of an EventResult"));
        }
        check_depth(&field(key), v, MAX_JSON_DEPTH)?;
        unknown_keys.insert(key.clone(), v.clone());
    }

    let id = match object.get("id") {
        Some(v) => uuid(&field("id"), v)?,
        None => crate::event::inner::new_event_id(event.created_at),
    };
    if let Some(owner) = opt_uuid(&field("event_id"), get("event_id"))? {
        if event.id.is_some_and(|id| id != owner) {
            return Err(err(
                field("event_id"),
                format!("the result belongs to event {owner}, not to this one"),
            ));
        }
    }
    let status: ResultStatus = match get("status") {
        Value::Null => ResultStatus::Pending,
        other => serde_json::from_value(other.clone()).map_err(|_| {
            err(
                field("status"),
                format!(
                    "expected \"pending\", \"started\", \"completed\" or \"error\", got {other}"
                ),
            )
        })?,
    };
    let handler_id = match (opt_string(&field("handler_id"), get("handler_id"))?, key) {
        (Some(id), _) => id,
        (None, Some(key)) => key.to_owned(),
        (None, None) => return Err(err(field("handler_id"), "missing")),
    };
    let handler_name = opt_string(&field("handler_name"), get("handler_name"))?
        .unwrap_or_else(|| "anonymous".to_owned());
    let bus_id = opt_uuid(&field("eventbus_id"), get("eventbus_id"))?.unwrap_or(Uuid::nil());
    let bus_name = opt_string(&field("eventbus_name"), get("eventbus_name"))?
        .unwrap_or_else(|| "EventBus".to_owned());
    let bus_label = format!("{bus_name}#{}", crate::event::inner::short_id(&bus_id));
    let meta = HandlerMeta {
        id: HandlerId::from(handler_id),
        name: Arc::from(handler_name),
        file_path: opt_string(&field("handler_file_path"), get("handler_file_path"))?
            .map(Arc::from),
        pattern: Arc::from(
            opt_string(
                &field("handler_event_pattern"),
                get("handler_event_pattern"),
            )?
            .unwrap_or_else(|| event.event_type.to_owned()),
        ),
        registered_at: opt_timestamp(
            &field("handler_registered_at"),
            get("handler_registered_at"),
        )?
        .unwrap_or(event.created_at),
        timeout: opt_seconds(&field("handler_timeout"), get("handler_timeout"))?.map(Some),
        slow_timeout: opt_seconds(&field("handler_slow_timeout"), get("handler_slow_timeout"))?
            .map(Some),
        concurrency: None,
        forward_target: None,
        bus_id,
        bus_name: Arc::from(bus_name),
        bus_label: Arc::from(bus_label),
        wire_extra: (!unknown_keys.is_empty()).then(|| Arc::new(unknown_keys)),
    };
    let error = decode_error(&field("error"), get("error"))?;
    let children = match get("event_children") {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| uuid(&field(&format!("event_children[{i}]")), item))
            .collect::<Result<_, _>>()?,
        other => {
            return Err(err(
                field("event_children"),
                format!("expected a list of ids, got {}", kind_of(other)),
            ));
        }
    };
    let mut record = ResultRecord::pending(Arc::new(meta), event.created_at);
    record.id = id;
    record.status = status;
    record.started_at = opt_timestamp(&field("started_at"), get("started_at"))?;
    record.completed_at = opt_timestamp(&field("completed_at"), get("completed_at"))?;
    record.children = children;
    record.error = error.map(Box::new);
    let value = get("result");
    // A forwarding handler's result is the forwarded event: its fields may nest as deep as any
    // event's.
    let result_limit = MAX_JSON_DEPTH + usize::from(is_event_json(value));
    check_depth(&field("result"), value, result_limit)?;
    if !value.is_null() {
        record.value = ResultSlot::Json(Box::new(value.clone()));
        // A result from another runtime is checked against the event's result schema, as the
        // reference runtimes check a handler's return value: a mismatch becomes an error result
        // and the value is dropped.
        if let (Some(result_type), ResultStatus::Completed) = (event.result_type, status) {
            if !is_event_json(value) {
                if let Err(reason) = result_type.check(value) {
                    let snippet: String = value.to_string().chars().take(60).collect();
                    record.status = ResultStatus::Error;
                    record.value = ResultSlot::Null;
                    record.error = Some(Box::new(HandlerError::with_kind(
                        HandlerErrorKind::ResultSchema,
                        format!(
                            "result {snippet} of handler {} did not match event_result_type: \
                             {reason}",
                            record.handler.name
                        ),
                    )));
                }
            }
        }
    }
    Ok(record)
}
