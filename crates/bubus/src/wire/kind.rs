//! The JSON side of each event type's [`EventKind`]: serializing a typed payload, checking a
//! handler's result against the result type (its schema, how deep it nests), the depth of a
//! payload. The event model names these operations; they are supplied here.

use std::borrow::Cow;

use crate::time::secs_value;
use serde_json::{Map, Value};

use crate::error::{HandlerError, HandlerErrorKind};
use crate::event::inner::{
    BusPhase, ErasedPayload, EventInner, EventKind, KindOf, copy_json, copy_typed,
};
use crate::event::{DynEvent, Event, EventResultValue};
use crate::result::ResultSlot;
use crate::time::Timestamp;

impl<E: Event> KindOf for E {
    const KIND: &'static EventKind = &EventKind {
        event_type: Cow::Borrowed(E::EVENT_TYPE),
        version: E::EVENT_VERSION,
        check_result: check_typed::<E::Result>,
        payload_json: typed_payload_json::<E>,
        result_schema: |_| E::__result_schema(),
        copy: copy_typed::<E>,
        check_depth: if E::__SHALLOW_PAYLOAD {
            None
        } else {
            Some(|event| {
                event
                    .own_payload::<E>()
                    .map_or(Ok(()), super::depth::check_payload)
            })
        },
    };
}

/// Dynamic events accept any JSON result, unless they carry a result schema (from another
/// runtime, or set on the [`DynEvent`]): then results are checked against it.
impl KindOf for DynEvent {
    const KIND: &'static EventKind = &EventKind {
        // Every dynamic event carries its own names.
        event_type: Cow::Borrowed(""),
        version: "",
        check_result: check_dyn,
        payload_json: |_| Err("dynamic payloads are not typed".to_owned()),
        result_schema: |event| event.result_type().map(|t| t.schema.clone()),
        copy: copy_json,
        check_depth: Some(super::depth::check_dyn_event),
    };
}

fn check_typed<R: EventResultValue>(
    _event: &EventInner,
    slot: &mut ResultSlot,
) -> Result<(), HandlerError> {
    // The usual result: a value stored as an `R` of a type that cannot nest (a number, a
    // flag, a string), which passes both checks as it is.
    if super::depth::is_flat::<R>() && slot.holds::<R>() {
        return Ok(());
    }
    check_typed_other::<R>(slot)
}

/// [`check_typed`] for any other result (out of line: the usual one needs no frame).
#[inline(never)]
fn check_typed_other<R: EventResultValue>(slot: &mut ResultSlot) -> Result<(), HandlerError> {
    slot.check_as::<R>()?;
    super::depth::check_result::<R>(slot)
}

fn typed_payload_json<E: Event>(payload: &ErasedPayload) -> Result<Map<String, Value>, String> {
    let Some(event) = payload.downcast_ref::<E>() else {
        return Err(format!("payload is not a {}", std::any::type_name::<E>()));
    };
    match serde_json::to_value(event) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(Value::Null) => Ok(Map::new()),
        Ok(other) => Err(format!(
            "{} serialized to {} instead of a JSON object",
            E::EVENT_TYPE,
            json_kind(&other)
        )),
        Err(err) => Err(err.to_string()),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn check_dyn(event: &EventInner, slot: &mut ResultSlot) -> Result<(), HandlerError> {
    slot.check_as::<Value>()?;
    super::depth::check_result::<Value>(slot)?;
    if let (Some(result_type), ResultSlot::Json(value)) = (event.result_type(), &*slot) {
        result_type.check(value).map_err(|reason| {
            let snippet: String = value.to_string().chars().take(60).collect();
            HandlerError::with_kind(
                HandlerErrorKind::ResultSchema,
                format!(
                    "handler returned a value that did not match event_result_type of {}: \
                     {snippet}: {reason}",
                    event.label()
                ),
            )
        })?;
    }
    Ok(())
}

/// A metadata field of `event` by its wire name (`event_status`, `event_timeout`, …), as
/// JSON, or `None` if `name` is not one.
pub(crate) fn metadata_field(event: &EventInner, name: &str) -> Option<Value> {
    fn ts(t: Option<Timestamp>) -> Value {
        t.map_or(Value::Null, |t| Value::String(t.to_string()))
    }
    fn mode<T: serde::Serialize>(m: Option<T>) -> Value {
        m.and_then(|m| serde_json::to_value(m).ok())
            .unwrap_or(Value::Null)
    }
    if !name.starts_with("event_") {
        return None;
    }
    let st = event.state.lock();
    let c = &st.config;
    Some(match name {
        "event_id" => Value::String(event.id.to_string()),
        "event_type" => Value::String(event.event_type().to_owned()),
        "event_version" => Value::String(event.version().to_owned()),
        "event_status" => Value::String(st.status.as_str().to_owned()),
        "event_parent_id" => st
            .parent_id
            .map_or(Value::Null, |id| Value::String(id.to_string())),
        "event_emitted_by_handler_id" => st
            .emitted_by_handler_id
            .as_ref()
            .map_or(Value::Null, |id| Value::String(id.to_string())),
        "event_path" => Value::Array(
            st.listed_path()
                .map(|l| Value::String(l.to_string()))
                .collect(),
        ),
        "event_pending_bus_count" => Value::from(
            st.buses
                .iter()
                .filter(|s| s.phase != BusPhase::Done)
                .count(),
        ),
        "event_created_at" => ts(Some(event.created_at)),
        "event_started_at" => ts(st.started_at()),
        "event_completed_at" => ts(st.completed_at()),
        "event_timeout" => secs_value(c.event_timeout),
        "event_slow_timeout" => secs_value(c.event_slow_timeout),
        "event_handler_timeout" => secs_value(c.event_handler_timeout),
        "event_handler_slow_timeout" => secs_value(c.event_handler_slow_timeout),
        "event_concurrency" => mode(c.event_concurrency),
        "event_handler_concurrency" => mode(c.event_handler_concurrency),
        "event_handler_completion" => mode(c.event_handler_completion),
        _ => return None,
    })
}
