//! Keys another runtime wrote that this version does not interpret: kept from the JSON an event,
//! a result or a bus snapshot was read from, and written back with it, so a newer runtime's
//! metadata survives a trip through this one.

use std::sync::Arc;

use serde_json::{Map, Value};

/// The wire metadata of an event read from JSON that the model does not hold elsewhere.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct EventExtra {
    /// `event_blocks_parent_completion` as the JSON said it. Unset, it is derived from the
    /// event's lineage ([`blocks_parent_completion`]).
    pub(crate) blocks_parent_completion: Option<bool>,
    /// `event_*` keys this version does not know, in their input order.
    pub(crate) unknown: Map<String, Value>,
}

impl EventExtra {
    /// `None` when there is nothing to keep.
    pub(crate) fn boxed(self) -> Option<Box<EventExtra>> {
        (self.blocks_parent_completion.is_some() || !self.unknown.is_empty())
            .then(|| Box::new(self))
    }

    /// What a fresh copy of the event (`event_reset`) keeps: the unknown keys. Whether it blocks
    /// its parent's completion is a fact about the original's run, derived again for the copy.
    pub(crate) fn for_copy(extra: Option<&EventExtra>) -> Option<Box<EventExtra>> {
        extra.and_then(|extra| {
            EventExtra {
                blocks_parent_completion: None,
                unknown: extra.unknown.clone(),
            }
            .boxed()
        })
    }
}

/// `event_blocks_parent_completion`: as read from the wire, else whether the event was linked to
/// its parent by a dispatch from one of the parent's handlers — in this crate's model every such
/// child blocks its parent's completion, and no other event does.
pub(crate) fn blocks_parent_completion(extra: Option<&EventExtra>, linked_to_parent: bool) -> bool {
    extra
        .and_then(|extra| extra.blocks_parent_completion)
        .unwrap_or(linked_to_parent)
}

/// Keys of a result object or a handler entry, or of a bus snapshot, that this version does not
/// know, kept and written back. Shared: every result of a handler refers to the same map.
pub(crate) type UnknownKeys = Option<Arc<Map<String, Value>>>;

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
