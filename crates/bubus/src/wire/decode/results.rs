//! An event's `event_results`: each result record, its handler error, and the text path that
//! keeps a large `result` as text instead of parsing it.

use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{check_depth, err, kind_of, opt_seconds, opt_string, opt_timestamp, opt_uuid, uuid};
use crate::error::{HandlerError, HandlerErrorKind, WireError};
use crate::handler::{HandlerId, HandlerMeta};
use crate::result::{ResultRecord, ResultSlot, ResultStatus};
use crate::time::Timestamp;
use crate::wire::DecodeError;
use crate::wire::depth::MAX_JSON_DEPTH;
use crate::wire::extra::is_forward_compatible_key;
use crate::wire::raw::{RawObject, compact, numbers_in_range};
use crate::wire::schema::ResultType;

/// What a result needs to know about the event that carries it.
pub(super) struct EventContext<'a> {
    /// The event's id, if its JSON gave one (results must then name the same event).
    pub(super) id: Option<Uuid>,
    pub(super) event_type: &'a str,
    pub(super) created_at: Timestamp,
    pub(super) result_type: Option<&'a ResultType>,
}

/// `event_results` as a list (TypeScript, bus snapshots) or a map keyed by handler id (Python).
pub(super) fn decode_results(
    raw: &Value,
    event: &EventContext<'_>,
) -> Result<Vec<ResultRecord>, DecodeError> {
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
pub(super) type TextResults = Vec<Option<Box<str>>>;

/// `event_results` from its text: every record's fields parsed, except a `result` that is an
/// array, an object (not a forwarded event) or a string, which is kept as compact text — checked
/// against the nesting limit here, given to its record by [`set_text_result`] once the record is
/// decoded (the records come back in the same order). Returns the results with those `result`s
/// as null, and the texts by record.
pub(super) fn results_from_text(text: &str) -> Result<(Value, TextResults), DecodeError> {
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
pub(super) fn set_text_result(
    record: &mut ResultRecord,
    text: Box<str>,
    result_type: Option<&ResultType>,
) {
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
    let mut record = ResultRecord::pending_with_id(id, Arc::new(meta));
    record.status = status;
    record.set_started_at(opt_timestamp(&field("started_at"), get("started_at"))?);
    record.set_completed_at(opt_timestamp(&field("completed_at"), get("completed_at"))?);
    record.children = children.into();
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
