//! The leaf errors, one enum per operation family, which the event model returns; the crate's
//! root [`Error`](crate::Error) that wraps them all lives above every layer, in `umbrella`.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why [`EventBus::dispatch`](crate::EventBus::dispatch) refused an event. Nothing was enqueued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// The bus was stopped with [`EventBus::stop`](crate::EventBus::stop).
    #[error("{bus} is stopped and accepts no more events")]
    Stopped {
        /// The bus label (`Name#abcd`).
        bus: String,
    },
    /// The bus's history is full of events that have not completed yet, so nothing can be evicted
    /// to make room. Completed events are always evicted first; this is backpressure, not a dead
    /// bus: dispatch succeeds again as soon as an event completes.
    #[error(
        "{bus} refused the event: history is full ({size}/{max} events, none completed); wait \
         for events to complete, raise max_history_size, or drop the oldest \
         (HistoryFull::DropOldest, the family's max_history_drop)"
    )]
    HistoryFull {
        /// The bus label.
        bus: String,
        /// Events in the history.
        size: usize,
        /// `max_history_size`.
        max: usize,
    },
    /// `dispatch` was called outside a tokio runtime, so the bus could not start processing.
    #[error("{bus} cannot start outside a tokio runtime; dispatch from within one")]
    NoRuntime {
        /// The bus label.
        bus: String,
    },
    /// A payload field (or the result schema) nests arrays and objects deeper than
    /// [`MAX_JSON_DEPTH`](crate::wire::MAX_JSON_DEPTH): its JSON — a log line, a bridge message, a
    /// snapshot — could not be read back by this crate or any runtime of the family.
    #[error(
        "{bus} refused {event}: `{field}` nests {depth} levels of arrays and objects, more than \
         the {limit} that can be read back"
    )]
    TooDeep {
        /// The bus label.
        bus: String,
        /// `Type#abcd` of the event.
        event: String,
        /// The offending payload field (`event_result_type` for the schema; empty when a map
        /// payload's key is not known).
        field: String,
        /// How deep it nests (at least: the walk stops past the limit).
        depth: usize,
        /// [`MAX_JSON_DEPTH`](crate::wire::MAX_JSON_DEPTH).
        limit: usize,
    },
    /// The dispatching handler already re-entered itself through nested events as many times
    /// as the bus's [`max_handler_recursion_depth`](crate::bus::BusConfig::max_handler_recursion_depth)
    /// allows.
    #[error(
        "{bus} refused {event}: handler {handler} already re-entered itself {depth} times \
         through nested events (max_handler_recursion_depth = {max})"
    )]
    HandlerRecursion {
        /// The bus label.
        bus: String,
        /// `Type#abcd` of the refused event.
        event: String,
        /// Label of the dispatching handler.
        handler: String,
        /// How many of the events that led here that handler dispatched.
        depth: usize,
        /// `max_handler_recursion_depth`.
        max: usize,
    },
}

/// Why waiting for an event did not end with the event completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The event was never dispatched on any bus, so nothing will ever process it.
    #[error("event {event} was never dispatched, so it can never complete")]
    NotDispatched {
        /// `Type#abcd` of the event.
        event: String,
    },
    /// A handler awaited its own event, or an ancestor of it: that event can only complete after
    /// the handler returns, so the wait could never end.
    #[error(
        "handler {handler} awaited {event}, which cannot complete before the handler returns \
         (it is the handler's own event or one of its ancestors)"
    )]
    WouldDeadlock {
        /// `Type#abcd` of the awaited event.
        event: String,
        /// Label of the waiting handler.
        handler: String,
    },
    /// The bus stopped while waiting for an event to be dispatched on it.
    #[error("{bus} stopped while waiting for an event")]
    Stopped {
        /// The bus label.
        bus: String,
    },
    /// The wait's own timeout elapsed first (the event itself goes on).
    #[error("timed out after {timeout:?} waiting for {event}")]
    Timeout {
        /// `Type#abcd` of the event.
        event: String,
        /// The timeout that elapsed.
        timeout: Duration,
    },
}

/// Why a result helper (`event_result`, `event_results_list`, …) returned no value.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ResultError {
    /// Waiting for the event failed.
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// Exactly one handler failed and `raise_if_any` applies (see
    /// [`ResultsQuery::ignore_errors`](crate::result::ResultsQuery::ignore_errors)).
    #[error(transparent)]
    Handler(HandlerError),
    /// Several handlers failed and `raise_if_any` applies.
    #[error("{event} had {} handler errors: {}", errors.len(), join(errors))]
    Handlers {
        /// `Type#abcd` of the event.
        event: String,
        /// Every error, in result order.
        errors: Vec<HandlerError>,
    },
    /// No handler returned a value that passed the include filter, and `raise_if_none` applies
    /// (see [`ResultsQuery::allow_none`](crate::result::ResultsQuery::allow_none)).
    #[error("expected at least one handler of {event} to return a non-null result, but none did")]
    NoResult {
        /// `Type#abcd` of the event.
        event: String,
    },
    /// `flat_dict`: two handlers returned the same key and `raise_if_conflicts` applies (see
    /// [`ResultsQuery::allow_conflicts`](crate::result::ResultsQuery::allow_conflicts)).
    #[error(
        "handler results of {event} would overwrite values from previous handlers: {keys:?} \
         (allow_conflicts(), the family's raise_if_conflicts=False, lets the later handler win)"
    )]
    Conflict {
        /// `Type#abcd` of the event.
        event: String,
        /// The keys returned by more than one handler.
        keys: Vec<String>,
    },
}

fn join(errors: &[HandlerError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What kind of failure a [`HandlerError`] records.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandlerErrorKind {
    /// The handler returned an error.
    Failed,
    /// The handler panicked; the panic was caught and the bus kept running.
    Panicked,
    /// The handler ran past its own timeout (`EventHandlerTimeoutError`).
    Timeout,
    /// The handler was cancelled before it started (`EventHandlerCancelledError`).
    Cancelled,
    /// The handler was interrupted while running (`EventHandlerAbortedError`).
    Aborted,
    /// The handler's return value did not match the event's result type
    /// (`EventHandlerResultSchemaError`).
    ResultSchema,
    /// The event's payload could not be decoded into the handler's event type.
    PayloadDecode,
}

impl HandlerErrorKind {
    /// The error type name this kind carries on the wire, where it has a fixed one.
    pub const fn wire_type(self) -> Option<&'static str> {
        match self {
            HandlerErrorKind::Failed => None,
            HandlerErrorKind::Panicked => Some("EventHandlerPanicError"),
            HandlerErrorKind::Timeout => Some("EventHandlerTimeoutError"),
            HandlerErrorKind::Cancelled => Some("EventHandlerCancelledError"),
            HandlerErrorKind::Aborted => Some("EventHandlerAbortedError"),
            HandlerErrorKind::ResultSchema => Some("EventHandlerResultSchemaError"),
            HandlerErrorKind::PayloadDecode => Some("EventPayloadDecodeError"),
        }
    }
}

/// A handler's failure, as recorded on its [`EventResult`](crate::EventResult).
///
/// It carries the error's type name and message, which is exactly what crosses the wire
/// (`{"type": "...", "message": "..."}`), plus the original error as [`source`] when it was raised
/// in this process.
///
/// Handlers return it — or any `std::error::Error`, or `anyhow::Error` — from a `Result`:
///
/// ```
/// use bubus::HandlerError;
///
/// let err = HandlerError::new("ValueError", "boom");
/// assert_eq!(err.error_type(), "ValueError");
/// assert_eq!(err.to_string(), "ValueError: boom");
/// ```
///
/// [`source`]: std::error::Error::source
#[derive(Clone)]
pub struct HandlerError {
    pub(crate) kind: HandlerErrorKind,
    pub(crate) error_type: Cow<'static, str>,
    pub(crate) message: Message,
    pub(crate) source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl HandlerError {
    /// A handler failure with an explicit type name (as another runtime would report it) and
    /// message.
    pub fn new(error_type: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        HandlerError {
            kind: HandlerErrorKind::Failed,
            error_type: error_type.into(),
            message: Message::Text(message.into()),
            source: None,
        }
    }

    pub(crate) fn with_kind(kind: HandlerErrorKind, message: impl Into<String>) -> Self {
        HandlerError {
            kind,
            error_type: Cow::Borrowed(kind.wire_type().unwrap_or("Error")),
            message: Message::Text(message.into()),
            source: None,
        }
    }

    /// [`with_kind`](Self::with_kind) with a message written from `parts` when it is first read
    /// (or displayed): the engine's timeout and interruption errors, most of which nobody reads,
    /// keep their labels and seconds instead of formatting them.
    pub(crate) fn with_kind_deferred(
        kind: HandlerErrorKind,
        parts: impl fmt::Display + Send + Sync + 'static,
    ) -> Self {
        HandlerError {
            kind,
            error_type: Cow::Borrowed(kind.wire_type().unwrap_or("Error")),
            message: Message::Deferred(Arc::new(Deferred {
                text: OnceLock::new(),
                parts,
            })),
            source: None,
        }
    }

    pub(crate) fn panicked(payload: Box<dyn Any + Send>) -> Self {
        let message = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_owned()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "handler panicked".to_owned()
        };
        HandlerError::with_kind(HandlerErrorKind::Panicked, message)
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> HandlerErrorKind {
        self.kind
    }

    /// The error type name (`"EventHandlerTimeoutError"`, `"ParseIntError"`, `"ValueError"`…).
    pub fn error_type(&self) -> &str {
        &self.error_type
    }

    /// The error message.
    pub fn message(&self) -> &str {
        self.message.as_str()
    }

    /// Whether the handler timed out (`EventHandlerTimeoutError`).
    pub fn is_timeout(&self) -> bool {
        self.kind == HandlerErrorKind::Timeout
    }

    /// Whether the handler was cancelled before it started (`EventHandlerCancelledError`).
    pub fn is_cancelled(&self) -> bool {
        self.kind == HandlerErrorKind::Cancelled
    }

    /// Whether the handler was interrupted while running (`EventHandlerAbortedError`).
    pub fn is_aborted(&self) -> bool {
        self.kind == HandlerErrorKind::Aborted
    }

    /// The wire form, `{"type": ..., "message": ...}`.
    pub fn to_wire(&self) -> WireError {
        WireError {
            error_type: self.error_type.to_string(),
            message: self.message().to_owned(),
        }
    }

    /// Rebuilds an error read from the wire. The type name is kept; the kind is recovered from
    /// the reference runtimes' standard error names.
    pub fn from_wire(wire: WireError) -> Self {
        let kind = [
            HandlerErrorKind::Timeout,
            HandlerErrorKind::Cancelled,
            HandlerErrorKind::Aborted,
            HandlerErrorKind::ResultSchema,
            HandlerErrorKind::Panicked,
            HandlerErrorKind::PayloadDecode,
        ]
        .into_iter()
        .find(|k| k.wire_type() == Some(wire.error_type.as_str()))
        .unwrap_or(HandlerErrorKind::Failed);
        HandlerError {
            kind,
            error_type: Cow::Owned(wire.error_type),
            message: Message::Text(wire.message),
            source: None,
        }
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = self.message();
        if message.is_empty() {
            f.write_str(&self.error_type)
        } else {
            write!(f, "{}: {}", self.error_type, message)
        }
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HandlerError")
            .field("kind", &self.kind)
            .field("error_type", &self.error_type)
            .field("message", &self.message())
            .finish()
    }
}

/// A [`HandlerError`]'s message: its text, or the parts it is written from when first read.
#[derive(Clone)]
pub(crate) enum Message {
    Text(String),
    Deferred(Arc<Deferred<dyn fmt::Display + Send + Sync>>),
}

/// A message's parts and, once read, its text.
pub(crate) struct Deferred<T: ?Sized> {
    text: OnceLock<String>,
    parts: T,
}

impl Message {
    fn as_str(&self) -> &str {
        match self {
            Message::Text(text) => text,
            Message::Deferred(deferred) => deferred.text.get_or_init(|| deferred.parts.to_string()),
        }
    }
}

/// Why an event was cancelled, shared by every event and result a cancellation reaches: the
/// text, or what writes it, written when first displayed (most causes never are; writing one —
/// labels, seconds as a float — cost several hundred instructions).
#[derive(Clone)]
pub(crate) struct CancelCause(Arc<Deferred<CauseWriter>>);

type CauseWriter = dyn Fn(&mut fmt::Formatter<'_>) -> fmt::Result + Send + Sync;

impl CancelCause {
    /// The cause `write` writes.
    pub(crate) fn written(
        write: impl Fn(&mut fmt::Formatter<'_>) -> fmt::Result + Send + Sync + 'static,
    ) -> Self {
        CancelCause(Arc::new(Deferred {
            text: OnceLock::new(),
            parts: write,
        }))
    }

    /// A cause that is fixed text.
    pub(crate) fn text(text: &'static str) -> Self {
        CancelCause::written(move |f| f.write_str(text))
    }
}

impl fmt::Display for CancelCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.text.get() {
            Some(text) => f.write_str(text),
            None => (self.0.parts)(f),
        }
    }
}

impl fmt::Debug for CancelCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.text.get_or_init(|| self.to_string());
        fmt::Debug::fmt(text, f)
    }
}

impl std::error::Error for HandlerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// A handler error as it travels between runtimes: `{"type": "...", "message": "..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireError {
    /// The error type name.
    #[serde(rename = "type")]
    pub error_type: String,
    /// The error message.
    pub message: String,
}

/// `alloc::string::String` → `String`, `my_crate::MyError<u8>` → `MyError<u8>`.
pub(crate) fn short_type_name(full: &str) -> String {
    let head = full.split('<').next().unwrap_or(full);
    let start = head.rfind("::").map_or(0, |i| i + 2);
    full[start..].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("bad input {0}")]
    struct MyError(u32);

    #[test]
    fn user_errors_keep_type_name_message_and_source() {
        let err = HandlerError::from_error(MyError(7));
        assert_eq!(err.error_type(), "MyError");
        assert_eq!(err.message(), "bad input 7");
        assert_eq!(err.kind(), HandlerErrorKind::Failed);
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn handler_errors_pass_through_unchanged() {
        let err = HandlerError::from_error(HandlerError::new("ValueError", "boom"));
        assert_eq!(err.error_type(), "ValueError");
        let boxed: BoxError = Box::new(HandlerError::new("KeyError", "k"));
        let err = HandlerError::from_error(boxed);
        assert_eq!(err.error_type(), "KeyError");
    }

    #[test]
    fn wire_round_trip_recovers_kind() {
        let err = HandlerError::with_kind(HandlerErrorKind::Timeout, "too slow");
        let back = HandlerError::from_wire(err.to_wire());
        assert!(back.is_timeout());
        assert_eq!(back.to_string(), "EventHandlerTimeoutError: too slow");
    }

    #[test]
    fn short_names() {
        assert_eq!(short_type_name("alloc::string::String"), "String");
        assert_eq!(short_type_name("a::b::E<c::D>"), "E<c::D>");
        assert_eq!(short_type_name("anyhow::Error"), "Error");
    }
}
