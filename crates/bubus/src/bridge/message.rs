//! What a bridge makes of one received message: an event, or a completion record.

use serde_json::Value;

use crate::event::AnyEvent;
use crate::wire::DecodeError;

/// The key of a completion record on the wire: `{"bubus_completion": <event with results>}`.
pub const COMPLETION_KEY: &str = "bubus_completion";

/// One received message, decoded: see [`decode_message`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Incoming {
    /// An event (any runtime's wire form), as sent: its id, path, parent and status as the
    /// sender had them.
    Event(AnyEvent),
    /// A completion record: the far side's event with its results (`event_results`).
    Completion(AnyEvent),
}

/// Decodes one message's text the way a [`Bridge`](super::Bridge) does: a completion record
/// (`{"bubus_completion": {...}}`) or an event.
///
/// ```
/// use bubus::bridge::{Incoming, decode_message};
///
/// let text = r#"{"event_type":"Ping","n":1}"#;
/// assert!(matches!(decode_message(text), Ok(Incoming::Event(e)) if e.event_type() == "Ping"));
/// assert!(decode_message("{oops").is_err());
/// ```
///
/// # Errors
///
/// A [`DecodeError`] naming the field, as [`AnyEvent::from_json_str`] reports it (inside a
/// completion record, under `bubus_completion.`).
pub fn decode_message(text: &str) -> Result<Incoming, DecodeError> {
    if is_completion(text) {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| DecodeError::new("", format!("invalid JSON: {e}")))?;
        let Value::Object(mut record) = value else {
            return Err(DecodeError::new("", "expected a completion record object"));
        };
        let Some(event) = record.remove(COMPLETION_KEY) else {
            return Err(DecodeError::new(COMPLETION_KEY, "missing"));
        };
        if !record.is_empty() {
            return Err(DecodeError::new(
                "",
                "a completion record has no key but `bubus_completion`",
            ));
        }
        if event.get("event_id").is_none() {
            return Err(DecodeError::new(
                format!("{COMPLETION_KEY}.event_id"),
                "missing",
            ));
        }
        return AnyEvent::from_json(&event)
            .map(Incoming::Completion)
            .map_err(|e| DecodeError::new(format!("{COMPLETION_KEY}.{}", e.field()), e.message()));
    }
    AnyEvent::from_json_str(text).map(Incoming::Event)
}

/// Whether the text's first key is the completion key (cheap: no parse).
fn is_completion(text: &str) -> bool {
    let rest = text.trim_start();
    let Some(rest) = rest.strip_prefix('{') else {
        return false;
    };
    rest.trim_start()
        .strip_prefix('"')
        .and_then(|r| r.strip_prefix(COMPLETION_KEY))
        .is_some_and(|r| r.starts_with('"'))
}
