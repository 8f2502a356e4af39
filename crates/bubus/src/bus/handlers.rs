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
    /// one type skips the hash lookup. Adding or removing a handler lets go of the memo's copy
    /// of the list it changes before changing it (so the list is not copied on write for it),
    /// then puts the changed list back: registering and removing a handler of the memo's event
    /// type keeps the memo.
    memo: Option<(&'static str, Handlers)>,
    /// The one pattern whose emptied handler list is kept in `by_pattern` (lists of other
    /// patterns are dropped when they empty): a handler registered and removed again and again
    /// reuses its pattern's entry, list and name. Emptying another pattern's list drops this one
    /// if it is still empty, so at most one empty list is kept.
    idle_pattern: Option<Arc<str>>,
    /// The one (handler name, pattern) whose slot is kept in `names` after its last handler was
    /// removed (reset as a new slot; its first derived id is kept), as `idle_pattern` is.
    idle_name: Option<(Arc<str>, Arc<str>)>,
    /// The name and pattern text of the last registration: the next registration of the same
    /// texts shares them instead of allocating its own.
    recent: (Option<Arc<str>>, Option<Arc<str>>),
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
    /// The default id of occurrence 0, once derived: not reset with the rest of the slot when
    /// its last handler is removed (it depends on the name and pattern alone).
    first_id: Option<HandlerId>,
}

/// A list emptied with more room than this is dropped rather than kept for reuse.
const IDLE_LIST_CAPACITY: usize = 16;

/// How many derived ids a bus remembers before it starts over.
const DERIVED_ID_CACHE: usize = 1024;

impl HandlerTable {
    /// The pattern `text` as an `Arc`: the last registration's when it is the same text.
    pub(crate) fn share_pattern(&mut self, text: Cow<'_, str>) -> Arc<str> {
        share(&mut self.recent.1, text)
    }

    /// The handler name `text` as an `Arc`: the last registration's when it is the same text.
    pub(crate) fn share_name(&mut self, text: Cow<'_, str>) -> Arc<str> {
        share(&mut self.recent.0, text)
    }

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
            let id = if occurrence == 0 {
                // Kept in the slot rather than in `derived`: a name registered once (most are)
                // adds nothing there, and a one-off handler's kept slot keeps its id.
                match &slot.first_id {
                    Some(id) => id.clone(),
                    None => {
                        let key = (Arc::clone(name), Arc::clone(pattern), 0);
                        let id = match derived.get(&key) {
                            Some(id) => id.clone(),
                            None => HandlerId::derive(bus_name, name, pattern, 0),
                        };
                        slot.first_id = Some(id.clone());
                        id
                    }
                }
            } else {
                derived_id(derived, bus_name, name, pattern, occurrence)
            };
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

    /// Counts a live handler out of its name's slot. The slot of a name with no live handler
    /// left is reset (its next registration starts over at occurrence 0) and kept as
    /// `idle_name`; the slot kept before is dropped if it is still idle, its first id going to
    /// `derived`.
    fn uncount_name(&mut self, entry: &HandlerEntry) {
        if entry.stub {
            return;
        }
        let key = (
            Arc::clone(&entry.meta.name),
            Arc::clone(&entry.meta.pattern),
        );
        let Some(slot) = self.names.get_mut(&key) else {
            return;
        };
        slot.live = slot.live.saturating_sub(1);
        if slot.live > 0 {
            if let Some(occurrence) = entry.occurrence {
                if occurrence < slot.next {
                    slot.free.insert(occurrence);
                }
            }
            return;
        }
        // Nothing of this name is left: its next registration starts over at occurrence 0.
        *slot = NameSlot {
            first_id: slot.first_id.take(),
            ..NameSlot::default()
        };
        let Some(old) = self.idle_name.replace(key) else {
            return;
        };
        if Some(&old) == self.idle_name.as_ref() {
            return;
        }
        if let Entry::Occupied(slot) = self.names.entry(old) {
            if slot.get().live == 0 {
                let (key, slot) = slot.remove_entry();
                if let Some(id) = slot.first_id {
                    remember_id(&mut self.derived, (key.0, key.1, 0), id);
                }
            }
        }
    }

    /// Adds a handler; one with the same id that is a restored placeholder is replaced in place
    /// (it keeps its position), which is how a restored bus re-binds its handlers.
    pub(crate) fn add(&mut self, entry: Arc<HandlerEntry>) {
        if !entry.stub {
            let key = (
                Arc::clone(&entry.meta.name),
                Arc::clone(&entry.meta.pattern),
            );
            self.names.entry(key).or_default().live += 1;
        }
        self.add_counted(entry);
    }

    /// [`add`](Self::add) of a handler already counted in its name's slot (by
    /// [`next_default_id`](Self::next_default_id)).
    pub(crate) fn add_counted(&mut self, entry: Arc<HandlerEntry>) {
        let pattern = Arc::clone(&entry.meta.pattern);
        let (exact, wild) = self.memo_release(&pattern);
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
        if &*pattern == "*" {
            self.has_wildcard = true;
        }
        let list = self.by_pattern.entry(Arc::clone(&pattern)).or_default();
        let stub_pos = if replaces_stub {
            list.iter()
                .position(|h| h.stub && h.meta.id == entry.meta.id)
        } else {
            None
        };
        match stub_pos {
            Some(pos) => Arc::make_mut(list)[pos] = entry,
            None => Arc::make_mut(list).push(entry),
        }
        let list = Arc::clone(list);
        self.memo_restore(exact, wild, Some(list));
    }

    /// Takes the memo's copies of `pattern`'s list out of it, so that changing the list does not
    /// copy it; says which of them it took ([`memo_restore`](Self::memo_restore) puts the
    /// changed list back).
    fn memo_release(&mut self, pattern: &str) -> (bool, bool) {
        let Some((name, (exact, wild))) = &mut self.memo else {
            return (false, false);
        };
        let took = (*name == pattern, pattern == "*");
        if took.0 {
            *exact = None;
        }
        if took.1 {
            *wild = None;
        }
        took
    }

    /// Puts `list` (the changed list of the pattern given to
    /// [`memo_release`](Self::memo_release); `None` or empty when it has no handlers) back into
    /// the memo where that took it from.
    fn memo_restore(&mut self, exact: bool, wild: bool, list: Option<HandlerList>) {
        if !(exact || wild) {
            return;
        }
        let Some((_, handlers)) = &mut self.memo else {
            return;
        };
        let list = list.filter(|list| !list.is_empty());
        if wild {
            handlers.1 = list.clone();
        }
        if exact {
            handlers.0 = list;
        }
    }

    /// Called after the handlers of `pattern` changed.
    fn update_wildcard(&mut self, pattern: &str) {
        if pattern == "*" {
            self.has_wildcard = self
                .by_pattern
                .get("*")
                .is_some_and(|list| !list.is_empty());
        }
    }

    /// Removes the handler with this id; returns it if it was registered.
    pub(crate) fn remove_id(&mut self, id: &HandlerId) -> Option<Arc<HandlerEntry>> {
        let (pattern, _) = self.ids.remove(id)?;
        let (exact, wild) = self.memo_release(&pattern);
        let Entry::Occupied(mut handlers) = self.by_pattern.entry(Arc::clone(&pattern)) else {
            self.memo = None;
            return None;
        };
        let Some(pos) = handlers.get().iter().position(|h| &h.meta.id == id) else {
            self.memo = None;
            return None;
        };
        let list = Arc::make_mut(handlers.get_mut());
        let removed = list.remove(pos);
        let mut dropped = None;
        if list.is_empty() {
            if list.capacity() > IDLE_LIST_CAPACITY {
                handlers.remove();
            } else {
                // Kept for the pattern's next registration; the list kept before is dropped.
                dropped = self.idle_pattern.replace(Arc::clone(&pattern));
            }
            if let Some(old) = dropped.filter(|old| *old != pattern) {
                if self
                    .by_pattern
                    .get(&old)
                    .is_some_and(|list| list.is_empty())
                {
                    self.by_pattern.remove(&old);
                }
            }
            self.memo_restore(exact, wild, None);
        } else {
            let list = Arc::clone(handlers.get());
            self.memo_restore(exact, wild, Some(list));
        }
        self.update_wildcard(&pattern);
        self.uncount_name(&removed);
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
            self.uncount_name(entry);
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
        if let (Cow::Borrowed(name), Some((known, handlers))) = (event_type, &self.memo) {
            // A `&'static str` is never freed, so its address and length name its text for good.
            if (known.as_ptr(), known.len()) == (name.as_ptr(), name.len()) {
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
        self.memo = Some((name, handlers.clone()));
        handlers
    }

    fn lookup(&self, event_type: &str) -> Handlers {
        (
            self.by_pattern
                .get(event_type)
                .filter(|list| !list.is_empty())
                .cloned(),
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
        self.idle_pattern = None;
        self.idle_name = None;
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
    let id = HandlerId::derive(bus_name, name, pattern, occurrence);
    remember_id(derived, key, id.clone());
    id
}

/// Remembers a derived id in `derived`, which starts over when it is full.
fn remember_id(
    derived: &mut FxHashMap<(Arc<str>, Arc<str>, usize), HandlerId>,
    key: (Arc<str>, Arc<str>, usize),
    id: HandlerId,
) {
    if derived.len() >= DERIVED_ID_CACHE {
        derived.clear();
    }
    derived.insert(key, id);
}

/// `text` as an `Arc`: `recent` when it holds the same text, else a new one, which `recent`
/// then holds.
fn share(recent: &mut Option<Arc<str>>, text: Cow<'_, str>) -> Arc<str> {
    if let Some(known) = recent {
        if **known == *text {
            return Arc::clone(known);
        }
    }
    let shared: Arc<str> = Arc::from(text);
    *recent = Some(Arc::clone(&shared));
    shared
}
