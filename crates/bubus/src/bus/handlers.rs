//! The handler table of one bus: handlers by pattern, in registration order.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::collections::hash_map::Entry;
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
    /// The live handlers of each (handler name, pattern): how many, and which default-id
    /// occurrences they hold, so the next registration of the same name finds its occurrence
    /// without probing ids one by one.
    names: FxHashMap<(Arc<str>, Arc<str>), NameSlot>,
    /// Default ids already derived on this bus, by (handler name, pattern, occurrence): a
    /// handler registered again and again (a one-off closure) skips the SHA-1 of its uuid5.
    derived: FxHashMap<(Arc<str>, Arc<str>, usize), HandlerId>,
    /// Whether `"*"` has handlers: saves a second lookup per event when it has none.
    has_wildcard: bool,
    /// The last [`for_event`](Self::for_event) answer for an event type named by a `&'static
    /// str` (every typed event's), keyed by the string's address and length: a run of events of
    /// one type skips the hash lookup. Cleared before any change to the table, so it never holds
    /// a list's `Arc` while the list is copied on write.
    memo: Option<(usize, usize, Handlers)>,
}

/// An event type's handlers on one bus: those of its type, then the wildcard ones.
pub(crate) type Handlers = (Option<HandlerList>, Option<HandlerList>);

/// The live handlers registered under one (handler name, pattern).
#[derive(Default)]
struct NameSlot {
    /// How many are registered (not counting restored placeholders).
    live: usize,
    /// Default-id occurrences below `next` that are free again (their handler was removed).
    free: BTreeSet<usize>,
    /// The lowest occurrence never handed out.
    next: usize,
    /// The duplicate-name warning was given for this name and pattern.
    warned: bool,
}

/// How many derived ids a bus remembers before it starts over.
const DERIVED_ID_CACHE: usize = 1024;

impl HandlerTable {
    /// The default id for a new registration of `name` on `pattern`: the lowest occurrence not
    /// held by a live handler of that name and pattern ([`HandlerId::derive`]). O(log n).
    ///
    /// Counts the registration in its name's slot already (it is then added with
    /// [`add_counted`](Self::add_counted)), and says whether it is the first duplicate of its
    /// name and pattern, as [`first_duplicate`](Self::first_duplicate) would have before it: one
    /// lookup of the slot instead of three.
    pub(crate) fn next_default_id(
        &mut self,
        bus_name: &str,
        name: &Arc<str>,
        pattern: &Arc<str>,
    ) -> (HandlerId, usize, bool) {
        let HandlerTable {
            names,
            derived,
            ids,
            ..
        } = self;
        let slot = names
            .entry((Arc::clone(name), Arc::clone(pattern)))
            .or_default();
        let duplicate = slot.live > 0 && !slot.warned;
        slot.warned |= duplicate;
        slot.live += 1;
        loop {
            let occurrence = match slot.free.pop_first() {
                Some(occurrence) => occurrence,
                None => {
                    slot.next += 1;
                    slot.next - 1
                }
            };
            let id = derived_id(derived, bus_name, name, pattern, occurrence);
            // An explicit id may hold it already: that occurrence stays taken.
            if !matches!(ids.get(&id), Some((_, false))) {
                return (id, occurrence, duplicate);
            }
        }
    }

    /// Whether a live handler named `name` is registered for `pattern`, and the duplicate
    /// warning was not given for them yet (it is marked given).
    pub(crate) fn first_duplicate(&mut self, name: &Arc<str>, pattern: &Arc<str>) -> bool {
        match self.names.get_mut(&(Arc::clone(name), Arc::clone(pattern))) {
            Some(slot) if slot.live > 0 && !slot.warned => {
                slot.warned = true;
                true
            }
            _ => false,
        }
    }

    /// Counts a live handler in (or out of) its name's slot.
    fn count_name(&mut self, entry: &HandlerEntry, added: bool) {
        count_name(&mut self.names, entry, added);
    }

    /// Adds a handler; one with the same id that is a restored placeholder is replaced in place
    /// (it keeps its position), which is how a restored bus re-binds its handlers.
    pub(crate) fn add(&mut self, entry: Arc<HandlerEntry>) {
        count_name(&mut self.names, &entry, true);
        self.add_counted(entry);
    }

    /// [`add`](Self::add) of a handler already counted in its name's slot (by
    /// [`next_default_id`](Self::next_default_id)).
    pub(crate) fn add_counted(&mut self, entry: Arc<HandlerEntry>) {
        self.memo = None;
        let pattern = Arc::clone(&entry.meta.pattern);
        let list = self.by_pattern.entry(Arc::clone(&pattern)).or_default();
        // The id's entry is written either way; whether it was a placeholder's decides where the
        // handler goes.
        let replaces_stub = match self.ids.entry(entry.meta.id.clone()) {
            Entry::Occupied(mut known) => {
                let was_stub =
                    matches!(known.get(), (stub_pattern, true) if *stub_pattern == pattern);
                known.insert((Arc::clone(&pattern), entry.stub));
                was_stub
            }
            Entry::Vacant(new) => {
                new.insert((Arc::clone(&pattern), entry.stub));
                false
            }
        };
        if replaces_stub {
            if let Some(pos) = list
                .iter()
                .position(|h| h.stub && h.meta.id == entry.meta.id)
            {
                Arc::make_mut(list)[pos] = entry;
                return;
            }
        }
        if &*pattern == "*" {
            self.has_wildcard = true;
        }
        Arc::make_mut(list).push(entry);
    }

    /// Called after the handlers of `pattern` changed.
    fn update_wildcard(&mut self, pattern: &str) {
        if pattern == "*" {
            self.has_wildcard = self.by_pattern.contains_key("*");
        }
    }

    /// Removes the handler with this id; returns it if it was registered.
    pub(crate) fn remove_id(&mut self, id: &HandlerId) -> Option<Arc<HandlerEntry>> {
        self.memo = None;
        let (pattern, _) = self.ids.remove(id)?;
        let Entry::Occupied(mut handlers) = self.by_pattern.entry(Arc::clone(&pattern)) else {
            return None;
        };
        let pos = handlers.get().iter().position(|h| &h.meta.id == id)?;
        let list = Arc::make_mut(handlers.get_mut());
        let removed = list.remove(pos);
        if list.is_empty() {
            handlers.remove();
        }
        self.update_wildcard(&pattern);
        self.count_name(&removed, false);
        Some(removed)
    }

    /// Removes every handler registered for `pattern`.
    pub(crate) fn remove_pattern(&mut self, pattern: &str) -> Vec<Arc<HandlerEntry>> {
        self.memo = None;
        let removed: Vec<Arc<HandlerEntry>> = self
            .by_pattern
            .remove(pattern)
            .map(|list| list.iter().cloned().collect())
            .unwrap_or_default();
        for entry in &removed {
            self.ids.remove(&entry.meta.id);
            self.count_name(entry, false);
        }
        self.update_wildcard(pattern);
        removed
    }

    /// Handlers for an event type: exact-type handlers first, then wildcard handlers, each in
    /// registration order.
    ///
    /// Inlined into the run loop: the usual case (the memo holds the event's type) is a few
    /// comparisons and the reference counts; the rest is [`for_event_slow`](Self::for_event_slow).
    #[allow(
        clippy::ptr_arg,
        reason = "the memo needs to know whether the name is a `&'static str`"
    )]
    #[inline]
    pub(crate) fn for_event(&mut self, event_type: &Cow<'static, str>) -> Handlers {
        if self.ids.is_empty() {
            return (None, None);
        }
        if let (Cow::Borrowed(name), Some((ptr, len, handlers))) = (event_type, &self.memo) {
            // A `&'static str` is never freed, so its address and length name its text for good.
            if (*ptr, *len) == (name.as_ptr() as usize, name.len()) {
                return handlers.clone();
            }
        }
        self.for_event_slow(event_type)
    }

    /// [`for_event`](Self::for_event) past the memo: looks the handlers up, and remembers them
    /// for a `&'static str` type name.
    #[allow(
        clippy::ptr_arg,
        reason = "the memo needs to know whether the name is a `&'static str`"
    )]
    #[inline(never)]
    fn for_event_slow(&mut self, event_type: &Cow<'static, str>) -> Handlers {
        let Cow::Borrowed(name) = event_type else {
            return self.lookup(event_type);
        };
        let handlers = self.lookup(name);
        self.memo = Some((name.as_ptr() as usize, name.len(), handlers.clone()));
        handlers
    }

    fn lookup(&self, event_type: &str) -> Handlers {
        (
            self.by_pattern.get(event_type).cloned(),
            if self.has_wildcard {
                self.by_pattern.get("*").cloned()
            } else {
                None
            },
        )
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<HandlerEntry>> {
        self.by_pattern.values().flat_map(|list| list.iter())
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn clear(&mut self) -> Vec<Arc<HandlerEntry>> {
        self.memo = None;
        self.ids.clear();
        self.names.clear();
        self.has_wildcard = false;
        self.by_pattern
            .drain()
            .flat_map(|(_, list)| list.iter().cloned().collect::<Vec<_>>())
            .collect()
    }
}

/// The default id of the `occurrence`-th registration of `name` on `pattern` on the bus
/// `bus_name` ([`HandlerId::derive`]), remembered in `derived` for the next registration.
fn derived_id(
    derived: &mut FxHashMap<(Arc<str>, Arc<str>, usize), HandlerId>,
    bus_name: &str,
    name: &Arc<str>,
    pattern: &Arc<str>,
    occurrence: usize,
) -> HandlerId {
    let key = (Arc::clone(name), Arc::clone(pattern), occurrence);
    if let Some(id) = derived.get(&key) {
        return id.clone();
    }
    if derived.len() >= DERIVED_ID_CACHE {
        derived.clear();
    }
    let id = HandlerId::derive(bus_name, name, pattern, occurrence);
    derived.insert(key, id.clone());
    id
}

/// [`HandlerTable::count_name`] on the name index alone (so it can run while a handler list of
/// the table is borrowed).
fn count_name(
    names: &mut FxHashMap<(Arc<str>, Arc<str>), NameSlot>,
    entry: &HandlerEntry,
    added: bool,
) {
    if entry.stub {
        return;
    }
    let key = (
        Arc::clone(&entry.meta.name),
        Arc::clone(&entry.meta.pattern),
    );
    if added {
        names.entry(key).or_default().live += 1;
        return;
    }
    let Entry::Occupied(mut slot) = names.entry(key) else {
        return;
    };
    let live = &mut slot.get_mut().live;
    *live = live.saturating_sub(1);
    if *live == 0 {
        // Nothing of this name is left: its next registration starts over at occurrence 0.
        slot.remove();
        return;
    }
    let slot = slot.get_mut();
    if let Some(occurrence) = entry.occurrence {
        if occurrence < slot.next {
            slot.free.insert(occurrence);
        }
    }
}
