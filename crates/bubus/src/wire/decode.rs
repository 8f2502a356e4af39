//! Events and results from JSON written by any bubus runtime: the current Python and TypeScript
//! formats, and the older Python 1.x one. Bad input is rejected with an error naming the field.
//!
//! This file decodes an event's fields; `decode/results.rs` decodes its `event_results`. The
//! small field readers at the top (`string`, `uuid`, `timestamp`, …) serve both.

mod results;

use results::{EventContext, TextResults, decode_results, results_from_text, set_text_result};

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::DecodeError;
use super::depth::{MAX_JSON_DEPTH, value_depth};
use super::extra::EventExtra;
use super::raw::{RawObject, compact, numbers_in_range};
use super::schema::ResultType;
use crate::event::inner::{EventInner, RestoredEvent};
use crate::event::{
    DEFAULT_EVENT_VERSION, DynEvent, EventConcurrency, EventConfig, EventStatus, HandlerCompletion,
    HandlerConcurrency,
};
use crate::handler::HandlerId;
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
