//! Wire metadata an event read from JSON carries that the model does not interpret: kept as data
//! here, read and written by the wire layer (`wire/extra.rs`).

use serde_json::{Map, Value};

/// The wire metadata of an event read from JSON that the model does not hold elsewhere.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct EventExtra {
    /// `event_blocks_parent_completion` as the JSON said it. Unset, it is derived from the
    /// event's lineage (`wire::extra::blocks_parent_completion`).
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
