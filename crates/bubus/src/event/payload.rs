//! An event's payload seen as other types: a typed view decoded (once) from a dynamic payload's
//! JSON, a typed payload's JSON view, and copies that re-read the payload (`event_reset`).

use std::any::{Any, TypeId};
use std::sync::Arc;

use serde_json::{Map, Value};

use super::Event;
use super::dynamic::DynEvent;
use super::inner::{EventInner, Header};
use crate::error::{HandlerError, HandlerErrorKind};

pub(crate) fn copy_typed<E: Event>(event: &EventInner, header: Header) -> Arc<EventInner> {
    match event.decode::<E>() {
        Ok(payload) => header.with_payload(payload),
        Err(_) => copy_json(event, header),
    }
}

/// The copy carries the payload's JSON. For a typed payload that does not survive its own JSON
/// round trip, its handlers decode it on demand and report why they cannot.
pub(crate) fn copy_json(event: &EventInner, header: Header) -> Arc<EventInner> {
    let json = event.dyn_payload().unwrap_or_else(|err| {
        tracing::warn!(event = %event.label(), error = %err, "event copied without its payload");
        Arc::new(DynEvent::from_parts(
            event.event_type().to_owned(),
            Map::new(),
        ))
    });
    header.with_payload(json)
}

impl EventInner {
    /// A dynamic event's payload (or a copied one's that carries its JSON).
    pub(super) fn dyn_event(&self) -> Option<&Arc<DynEvent>> {
        self.payload.downcast_ref::<Arc<DynEvent>>()
    }

    /// The payload as `E`: `None` if it is one already ([`own_payload`](Self::own_payload)),
    /// otherwise decoded (once) from its JSON.
    // Out of line: the usual handler's payload is its own type (`Event::__resolve`), and this
    // call stays out of its run.
    #[inline(never)]
    pub(crate) fn typed_view<E: Event>(&self) -> Result<Option<Arc<E>>, HandlerError> {
        if self.own_payload::<E>().is_some() {
            return Ok(None);
        }
        self.decode_cached::<E>().map(Some)
    }

    /// The payload as a [`DynEvent`]: `None` if it is one already, otherwise the JSON view
    /// ([`dyn_payload`](Self::dyn_payload)).
    pub(crate) fn dyn_view(&self) -> Result<Option<Arc<DynEvent>>, HandlerError> {
        match self.dyn_event() {
            Some(_) => Ok(None),
            None => self.dyn_payload().map(Some),
        }
    }

    fn decode_cached<E: Event>(&self) -> Result<Arc<E>, HandlerError> {
        let decoded_cell = &self.views().decoded;
        if let Some((type_id, value)) = decoded_cell.get() {
            if *type_id == TypeId::of::<E>() {
                if let Ok(typed) = Arc::clone(value).downcast::<E>() {
                    return Ok(typed);
                }
            }
        }
        let decoded: Arc<E> = Arc::new(self.decode::<E>()?);
        let erased: Arc<dyn Any + Send + Sync> = decoded.clone();
        // Another handler may have raced us to it; either value is the same decode.
        let _ = decoded_cell.set((TypeId::of::<E>(), erased));
        Ok(decoded)
    }

    fn decode<E: Event>(&self) -> Result<E, HandlerError> {
        let map = match self.dyn_event() {
            Some(dynamic) => return decode_map::<E>(self, dynamic.payload()),
            None => (self.kind.payload_json)(&self.payload)
                .map_err(|msg| decode_error::<E>(self, &msg))?,
        };
        decode_map::<E>(self, &map)
    }

    /// The payload as a [`DynEvent`] (the JSON view), built once for typed events.
    pub(crate) fn dyn_payload(&self) -> Result<Arc<DynEvent>, HandlerError> {
        match self.dyn_event() {
            Some(dynamic) => Ok(Arc::clone(dynamic)),
            None => {
                let json_cell = &self.views().json;
                if let Some(view) = json_cell.get() {
                    return Ok(Arc::clone(view));
                }
                let map = (self.kind.payload_json)(&self.payload).map_err(|msg| {
                    HandlerError::with_kind(
                        HandlerErrorKind::PayloadDecode,
                        format!("{} payload could not be serialized: {msg}", self.label()),
                    )
                })?;
                let view = Arc::new(DynEvent::from_parts(self.event_type().to_owned(), map));
                Ok(Arc::clone(json_cell.get_or_init(|| view)))
            }
        }
    }

    /// The payload as a JSON object.
    pub(crate) fn payload_json(&self) -> Result<Map<String, Value>, HandlerError> {
        self.dyn_payload().map(|d| d.payload().clone())
    }
}

fn decode_map<E: Event>(inner: &EventInner, map: &Map<String, Value>) -> Result<E, HandlerError> {
    serde_path_to_error::deserialize::<_, E>(map).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." {
            String::new()
        } else {
            format!(" field `{path}`:")
        };
        decode_error::<E>(inner, &format!("{field} {}", err.inner()))
    })
}

fn decode_error<E: Event>(inner: &EventInner, msg: &str) -> HandlerError {
    HandlerError::with_kind(
        HandlerErrorKind::PayloadDecode,
        format!(
            "{} payload could not be decoded as {}:{msg}",
            inner.label(),
            std::any::type_name::<E>()
        ),
    )
}
