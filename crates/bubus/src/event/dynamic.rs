//! Dynamic events: a type name and a JSON payload, for forwarding, bridges and other runtimes.

use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use super::config::EventConfig;
use super::handle::AnyEvent;
use super::inner::{EventInner, KindOf};
use super::result_type::ResultType;
use super::{DEFAULT_EVENT_VERSION, EventPayload, sealed};
use crate::error::HandlerError;

/// Payload keys the reference runtimes reserve for their own API.
const RESERVED_KEYS: &[&str] = &["bus", "first", "toString", "toJSON", "fromJSON"];

/// An event known only by its type name and JSON payload.
///
/// Dynamic events share the bus with typed ones: a typed handler subscribed to `"UserLoginEvent"`
/// receives a dynamic `"UserLoginEvent"` decoded once into its struct, and dynamic handlers see typed
/// events through their JSON form. Handlers of a dynamic event return JSON.
///
/// ```
/// use bubus::DynEvent;
/// use serde_json::json;
///
/// let event = DynEvent::new("UserLoginEvent", json!({"username": "alice", "is_admin": true}))?;
/// assert_eq!(event.event_type(), "UserLoginEvent");
/// assert_eq!(event.payload()["username"], "alice");
///
/// assert!(DynEvent::new("Bad", json!([1, 2])).is_err());
/// # Ok::<(), bubus::event::DynEventError>(())
/// ```
#[derive(Clone)]
pub struct DynEvent {
    event_type: String,
    payload: Payload,
    result_schema: Option<Value>,
}

/// The payload fields: parsed, or — for an event read from text — each field's compact JSON text,
/// parsed on first use. Text is what a log reader that never looks at the payload keeps: a
/// parsed value of many small items takes several times its text.
#[derive(Clone)]
enum Payload {
    Parsed(Map<String, Value>),
    Text {
        fields: Vec<(String, Box<str>)>,
        parsed: OnceLock<Map<String, Value>>,
    },
}

impl std::fmt::Debug for DynEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynEvent")
            .field("event_type", &self.event_type)
            .field("payload", self.payload())
            .field("result_schema", &self.result_schema)
            .finish()
    }
}

impl PartialEq for DynEvent {
    fn eq(&self, other: &Self) -> bool {
        self.event_type == other.event_type
            && self.result_schema == other.result_schema
            && self.payload() == other.payload()
    }
}

/// Why a [`DynEvent`] could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DynEventError {
    /// The type name was empty or the wildcard `*`.
    #[error("invalid event_type {0:?}: it must be a non-empty name other than \"*\"")]
    InvalidType(String),
    /// The payload was not a JSON object.
    #[error("the payload of {event_type} must be a JSON object, got {found}")]
    NotAnObject {
        /// The event type.
        event_type: String,
        /// What the payload was instead.
        found: &'static str,
    },
    /// A payload key is reserved for event metadata or by the other runtimes.
    #[error("payload field {field:?} of {event_type} is reserved: {reason}")]
    ReservedField {
        /// The event type.
        event_type: String,
        /// The offending key.
        field: String,
        /// Why it is reserved.
        reason: &'static str,
    },
}

impl DynEvent {
    /// A dynamic event from a type name and a JSON object payload.
    ///
    /// # Errors
    ///
    /// Fails if the type name is empty or `"*"`, if the payload is not an object, or if a payload
    /// key is reserved (`event_*` and `model_*` keys, `bus`, `first`, `toString`, `toJSON`,
    /// `fromJSON`).
    ///
    /// The error converts into [`crate::Error`], so `?` works where other bus errors do:
    ///
    /// ```
    /// use bubus::{DynEvent, EventBus};
    /// use serde_json::json;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bubus::Error> {
    /// let bus = EventBus::new("AppBus");
    /// bus.on_pattern("UserLoginEvent", |_: bubus::AnyEvent| json!("welcome"));
    /// let login = DynEvent::new("UserLoginEvent", json!({"username": "alice"}))?;
    /// bus.dispatch(login)?.await?;
    /// # Ok(()) }
    /// ```
    pub fn new(event_type: impl Into<String>, payload: Value) -> Result<Self, DynEventError> {
        let event_type = event_type.into();
        match payload {
            Value::Object(map) => DynEvent::from_map(event_type, map),
            Value::Null => DynEvent::from_map(event_type, Map::new()),
            other => Err(DynEventError::NotAnObject {
                event_type,
                found: match other {
                    Value::Bool(_) => "a boolean",
                    Value::Number(_) => "a number",
                    Value::String(_) => "a string",
                    Value::Array(_) => "an array",
                    Value::Null | Value::Object(_) => "an object",
                },
            }),
        }
    }

    /// A dynamic event from a type name and a payload map.
    ///
    /// # Errors
    ///
    /// As [`DynEvent::new`].
    pub fn from_map(
        event_type: impl Into<String>,
        payload: Map<String, Value>,
    ) -> Result<Self, DynEventError> {
        let event_type = event_type.into();
        if event_type.is_empty() || event_type == "*" {
            return Err(DynEventError::InvalidType(event_type));
        }
        for key in payload.keys() {
            let reason = if key.starts_with("event_") {
                Some("event_* keys are event metadata")
            } else if key.starts_with("model_") {
                Some("model_* keys are reserved by the Python runtime")
            } else if RESERVED_KEYS.contains(&key.as_str()) {
                Some("the reference runtimes use it for their own API")
            } else {
                None
            };
            if let Some(reason) = reason {
                return Err(DynEventError::ReservedField {
                    event_type,
                    field: key.clone(),
                    reason,
                });
            }
        }
        Ok(DynEvent {
            event_type,
            payload: Payload::Parsed(payload),
            result_schema: None,
        })
    }

    pub(crate) fn from_parts(event_type: String, payload: Map<String, Value>) -> Self {
        DynEvent {
            event_type,
            payload: Payload::Parsed(payload),
            result_schema: None,
        }
    }

    /// A payload read from text: each field's compact JSON text (valid JSON, checked by the
    /// decoder), parsed on first use.
    pub(crate) fn from_text_fields(event_type: String, fields: Vec<(String, Box<str>)>) -> Self {
        DynEvent {
            event_type,
            payload: Payload::Text {
                fields,
                parsed: OnceLock::new(),
            },
            result_schema: None,
        }
    }

    /// The payload fields as the compact JSON text they were read from, if the event was read
    /// from text: what encoders write instead of parsing them.
    pub(crate) fn text_fields(&self) -> Option<&[(String, Box<str>)]> {
        match &self.payload {
            Payload::Text { fields, .. } => Some(fields),
            Payload::Parsed(_) => None,
        }
    }

    /// How many payload fields it has, without parsing them.
    pub(crate) fn payload_len(&self) -> usize {
        match &self.payload {
            Payload::Parsed(map) => map.len(),
            Payload::Text { fields, .. } => fields.len(),
        }
    }

    /// Whether the payload has been parsed (or never was text).
    pub(crate) fn is_parsed(&self) -> bool {
        match &self.payload {
            Payload::Parsed(_) => true,
            Payload::Text { parsed, .. } => parsed.get().is_some(),
        }
    }

    /// Declares the JSON Schema handlers' results must match (`event_result_type`); results are
    /// checked against it when recorded (with the `schema` feature).
    #[must_use]
    pub fn with_result_schema(mut self, schema: Value) -> Self {
        self.result_schema = Some(schema);
        self
    }

    /// The declared result schema, if any.
    pub fn result_schema(&self) -> Option<&Value> {
        self.result_schema.as_ref()
    }

    /// The `event_type`.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The payload fields.
    pub fn payload(&self) -> &Map<String, Value> {
        match &self.payload {
            Payload::Parsed(map) => map,
            Payload::Text { fields, parsed } => parsed.get_or_init(|| {
                fields
                    .iter()
                    .map(|(key, text)| {
                        // The decoder checked the text; a failure here cannot happen, and would
                        // leave the field null rather than panic.
                        let value = serde_json::from_str(text).unwrap_or(Value::Null);
                        (key.clone(), value)
                    })
                    .collect()
            }),
        }
    }

    /// One payload field.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.payload().get(key)
    }

    /// Decodes the payload into a typed event struct.
    ///
    /// # Errors
    ///
    /// Returns the decode error, naming the offending field.
    pub fn decode<E: super::Event>(
        &self,
    ) -> Result<E, serde_path_to_error::Error<serde_json::Error>> {
        serde_path_to_error::deserialize(self.payload())
    }
}

impl std::ops::Index<&str> for DynEvent {
    type Output = Value;
    fn index(&self, key: &str) -> &Value {
        self.payload().get(key).unwrap_or(&Value::Null)
    }
}

impl sealed::Sealed for DynEvent {}

impl EventPayload for DynEvent {
    type Result = Value;

    fn __new_event(self) -> AnyEvent {
        let result_type = self.result_schema.clone().map(ResultType::intern);
        let inner = EventInner::new(
            self.event_type.clone().into(),
            DEFAULT_EVENT_VERSION.into(),
            <DynEvent as KindOf>::KIND,
            Arc::new(self),
            result_type,
            &EventConfig::UNSET,
        );
        AnyEvent::from_inner(inner)
    }

    fn __resolve(event: &AnyEvent) -> Result<Option<Arc<Self>>, HandlerError> {
        event.inner().dyn_view()
    }

    fn __default_pattern() -> &'static str {
        "*"
    }
}
