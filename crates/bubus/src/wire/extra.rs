//! Keys another runtime wrote that this version does not interpret: kept from the JSON an event,
//! a result or a bus snapshot was read from, and written back with it, so a newer runtime's
//! metadata survives a trip through this one.

use serde_json::{Map, Value};

pub(crate) use crate::event::extra::EventExtra;
pub(crate) use crate::result::UnknownKeys;

/// `event_blocks_parent_completion`: as read from the wire, else whether the event was linked to
/// its parent by a dispatch from one of the parent's handlers — in this crate's model every such
/// child blocks its parent's completion, and no other event does.
pub(crate) fn blocks_parent_completion(extra: Option<&EventExtra>, linked_to_parent: bool) -> bool {
    extra
        .and_then(|extra| extra.blocks_parent_completion)
        .unwrap_or(linked_to_parent)
}

/// Whether an unknown key of a result or a handler entry is one a newer runtime may have added
/// (`handler_*`, `event_*`, `eventbus_*`), and so is kept rather than rejected.
pub(crate) fn is_forward_compatible_key(key: &str) -> bool {
    key.starts_with("handler_") || key.starts_with("event_") || key.starts_with("eventbus_")
}

/// Writes `unknown` into `out` after the keys it already has; a key already there (one a later
/// version of this crate writes itself) is left as it is.
pub(crate) fn write_unknown(out: &mut Map<String, Value>, unknown: Option<&Map<String, Value>>) {
    for (key, value) in unknown.into_iter().flatten() {
        if !out.contains_key(key) {
            out.insert(key.clone(), value.clone());
        }
    }
}
