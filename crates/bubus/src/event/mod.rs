//! Events: the [`Event`] trait, typed and dynamic payloads, and the handles that carry metadata.

pub(crate) mod config;
mod dynamic;
pub(crate) mod extra;
mod handle;
pub(crate) mod inner;
mod payload;
pub(crate) mod result_type;
mod state;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use config::{
    EventConcurrency, EventConfig, EventStatus, HandlerCompletion, HandlerConcurrency, Ttl,
};
pub use dynamic::{DynEvent, DynEventError};
pub(crate) use handle::HandleEvent;
pub use handle::{AnyEvent, EventHandle, IntoEvent};

/// The `event_version` an event type has unless it declares one.
pub const DEFAULT_EVENT_VERSION: &str = "0.0.1";

/// An event type: a serde struct plus the type of value its handlers return.
///
/// Implement it with `#[derive(Event)]` (the default `macros` feature):
///
/// ```
/// use bubus::Event;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// #[event(result = String)]
/// struct UserLoginEvent {
///     username: String,
///     is_admin: bool,
/// }
///
/// assert_eq!(UserLoginEvent::EVENT_TYPE, "UserLoginEvent");
/// ```
///
/// The struct is the event's payload only; the bus keeps the metadata (id, path, timestamps,
/// results, …) beside it and flattens both into one JSON object on the wire. `Result` is what every
/// handler of this event must return — the compiler rejects a handler that returns anything else.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// What handlers of this event return. `()` when they return nothing meaningful.
    type Result: EventResultValue;
    /// The `event_type` string: the routing key, and the type name other runtimes see.
    const EVENT_TYPE: &'static str;
    /// The `event_version` string.
    const EVENT_VERSION: &'static str = DEFAULT_EVENT_VERSION;
    /// Configuration every event of this type starts with (timeouts, concurrency overrides).
    const EVENT_DEFAULTS: EventConfig = EventConfig::UNSET;

    /// The JSON Schema of [`Result`](Event::Result), sent as `event_result_type` so other
    /// runtimes can check what handlers return. `#[derive(Event)]` provides it when the result
    /// type implements `schemars::JsonSchema` (and the `schema` feature is on); `None` otherwise.
    #[doc(hidden)]
    fn __result_schema() -> Option<serde_json::Value> {
        None
    }

    /// Whether the payload's JSON cannot nest too deep to be read back, so that dispatch need
    /// not walk it: `#[derive(Event)]` sets it for a struct (without generics) whose every field
    /// is a scalar (numbers, strings, booleans, ids, timestamps, options of these) written as
    /// serde derives it (no `with`, `serialize_with`, `flatten`, … on a field, no `into`,
    /// `remote`, … on the struct). It assumes `Serialize` is derived too.
    #[doc(hidden)]
    const __SHALLOW_PAYLOAD: bool = false;
}

/// A type handlers may return: serializable (results cross the wire), cloneable (the result helpers
/// hand out copies), and thread-safe. Implemented for every such type.
pub trait EventResultValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> EventResultValue for T {}

pub(crate) mod sealed {
    /// Keeps [`EventPayload`](super::EventPayload) implemented only by this crate.
    pub trait Sealed {}
}

/// What an [`EventHandle`] can carry: any [`Event`] type, or a [`DynEvent`] (type name + JSON).
///
/// Sealed: implement [`Event`] instead.
pub trait EventPayload: sealed::Sealed + Send + Sync + Sized + 'static {
    /// What handlers return for this payload: `E::Result` for typed events, JSON for dynamic ones.
    type Result: EventResultValue;

    #[doc(hidden)]
    fn __new_event(self) -> AnyEvent;

    /// `None`: the event's own payload is a `Self`; otherwise a decoded view of it.
    #[doc(hidden)]
    fn __resolve(event: &AnyEvent) -> Result<Option<std::sync::Arc<Self>>, crate::HandlerError>;

    #[doc(hidden)]
    fn __default_pattern() -> &'static str;
}

impl<E: Event> sealed::Sealed for E {}
