//! The handler table of one bus: handlers by pattern, in registration order.

use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::handler::{HandlerEntry, HandlerId};

/// Handlers of one pattern. Shared copy-on-write: processing an event takes a cheap clone of the
/// `Arc`, and registration only copies the list while an event is being processed with it.
pub(crate) type HandlerList = Arc<Vec<Arc<HandlerEntry>>>;

#[derive(Default)]
pub(crate) struct HandlerTable {
    by_pattern: FxHashMap<Arc<str>, HandlerList>,
    /// Every registered id, with its pattern and whether it is a restored placeholder: keeps
    /// registration and removal by id O(1) in the number of handlers.
    ids: FxHashMap<HandlerId, (Arc<str>, bool)>,
    /// Default ids already derived on this bus, by (handler name, pattern, occurrence): a
    /// handler registered again and again (a one-off closure) skips the SHA-1 of its uuid5.
    derived: FxHashMap<(Arc<str>, Arc<str>, usize), HandlerId>,
    /// Whether `"*"` has handlers: saves a second lookup per event when it has none.
    has_wildcard: bool,
}

/// How many derived ids a bus remembers before it starts over.
const DERIVED_ID_CACHE: usize = 1024;

impl HandlerTable {
    /// The default id of the `occurrence`-th registration of `name` on `pattern` on the bus
    /// `bus_name` ([`HandlerId::derive`]), remembered for the next registration.
    pub(crate) fn derived_id(
        &mut self,
        bus_name: &str,
        name: &Arc<str>,
        pattern: &Arc<str>,
        occurrence: usize,
    ) -> HandlerId {
        let key = (Arc::clone(name), Arc::clone(pattern), occurrence);
        if let Some(id) = self.derived.get(&key) {
            return id.clone();
        }
        if self.derived.len() >= DERIVED_ID_CACHE {
            self.derived.clear();
        }
        let id = HandlerId::derive(bus_name, name, pattern, occurrence);
        self.derived.insert(key, id.clone());
        id
    }

    /// Adds a handler; one with the same id that is a restored placeholder is replaced in place
    /// (it keeps its position), which is how a restored bus re-binds its handlers.
    pub(crate) fn add(&mut self, entry: Arc<HandlerEntry>) {
        let pattern = Arc::clone(&entry.meta.pattern);
        let list = self.by_pattern.entry(Arc::clone(&pattern)).or_default();
        let replaces_stub = matches!(
            self.ids.get(&entry.meta.id),
            Some((stub_pattern, true)) if *stub_pattern == pattern
        );
        if replaces_stub {
            if let Some(pos) = list
                .iter()
                .position(|h| h.stub && h.meta.id == entry.meta.id)
            {
                self.ids
                    .insert(entry.meta.id.clone(), (pattern, entry.stub));
                Arc::make_mut(list)[pos] = entry;
                return;
            }
        }
        if &*pattern == "*" {
            self.has_wildcard = true;
        }
        self.ids
            .insert(entry.meta.id.clone(), (pattern, entry.stub));
        Arc::make_mut(list).push(entry);
    }

    /// Called after the handlers of `pattern` changed.
    fn update_wildcard(&mut self, pattern: &str) {
        if pattern == "*" {
            self.has_wildcard = self.by_pattern.contains_key("*");
        }
    }

    /// Whether a handler (not a restored placeholder) with this id is registered.
    pub(crate) fn contains_live_id(&self, id: &HandlerId) -> bool {
        matches!(self.ids.get(id), Some((_, false)))
    }

    /// Removes the handler with this id; returns it if it was registered.
    pub(crate) fn remove_id(&mut self, id: &HandlerId) -> Option<Arc<HandlerEntry>> {
        let (pattern, _) = self.ids.remove(id)?;
        let list = self.by_pattern.get_mut(&pattern)?;
        let pos = list.iter().position(|h| &h.meta.id == id)?;
        let list = Arc::make_mut(list);
        let removed = list.remove(pos);
        if list.is_empty() {
            self.by_pattern.remove(&pattern);
        }
        self.update_wildcard(&pattern);
        Some(removed)
    }

    /// Removes every handler registered for `pattern`.
    pub(crate) fn remove_pattern(&mut self, pattern: &str) -> Vec<Arc<HandlerEntry>> {
        let removed: Vec<Arc<HandlerEntry>> = self
            .by_pattern
            .remove(pattern)
            .map(|list| list.iter().cloned().collect())
            .unwrap_or_default();
        for entry in &removed {
            self.ids.remove(&entry.meta.id);
        }
        self.update_wildcard(pattern);
        removed
    }

    /// Handlers for an event type: exact-type handlers first, then wildcard handlers, each in
    /// registration order.
    pub(crate) fn for_event(&self, event_type: &str) -> (Option<HandlerList>, Option<HandlerList>) {
        if self.ids.is_empty() {
            return (None, None);
        }
        (
            self.by_pattern.get(event_type).cloned(),
            if self.has_wildcard {
                self.by_pattern.get("*").cloned()
            } else {
                None
            },
        )
    }

    pub(crate) fn pattern_list(&self, pattern: &str) -> Option<&HandlerList> {
        self.by_pattern.get(pattern)
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<HandlerEntry>> {
        self.by_pattern.values().flat_map(|list| list.iter())
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn clear(&mut self) -> Vec<Arc<HandlerEntry>> {
        self.ids.clear();
        self.has_wildcard = false;
        self.by_pattern
            .drain()
            .flat_map(|(_, list)| list.iter().cloned().collect::<Vec<_>>())
            .collect()
    }
}
