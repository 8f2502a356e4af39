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
    /// The index in `lists` of each pattern's list.
    by_pattern: FxHashMap<Arc<str>, usize>,
    /// The handler lists, each with its pattern (`None`: a vacant place, reused before the
    /// vector grows). A registered handler's `ids` entry names its list by index, so removing
    /// it finds the list without hashing the pattern; the index stays while the list has
    /// handlers.
    lists: Vec<Option<PatternList>>,
    /// Indices of vacant `lists`.
    vacant_lists: Vec<usize>,
    /// The pattern of the last registration, as shared by
    /// [`share_pattern`](Self::share_pattern), and its list's index (checked by the pattern's
    /// address): a handler registered again and again finds its list without hashing its pattern.
    recent_list: Option<(Arc<str>, usize)>,
    /// Every registered id, with its list's index and whether it is a restored placeholder:
    /// keeps registration and removal by id O(1) in the number of handlers.
    ids: FxHashMap<HandlerId, (usize, bool)>,
    /// An explicit id or a placeholder was added since the table was last cleared. Until then
    /// `ids` holds derived ids of live handlers only, each of which is held once (its name's slot
    /// hands each occurrence out once), so a new derived id is not looked up there.
    mixed_ids: bool,
    /// The slot in `slots` of each (handler name, pattern) with live handlers (and of the idle
    /// one, `idle_name`).
    names: FxHashMap<(Arc<str>, Arc<str>), usize>,
    /// The live handlers of each (handler name, pattern): how many, and which default-id
    /// occurrences they hold, so the next registration of the same name finds its occurrence
    /// without probing ids one by one. Each handler entry names its slot by index, so removing
    /// it counts it out without hashing its name; vacant slots are listed in `vacant`.
    slots: Vec<NameSlot>,
    /// Indices of vacant `slots`, reused before the vector grows.
    vacant: Vec<usize>,
    /// The slot of the last registration (checked by its key before use): a handler registered
    /// again and again finds its slot without hashing its name.
    recent_slot: usize,
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
    memo: Option<Memo>,
    /// The memo's previous answer, kept up to date as the memo is: a bus that alternates two
    /// event types (a parent and the child its handler dispatches) swaps the two instead of
    /// looking either up.
    second: Option<Memo>,
    /// The index of the one list kept in `lists` after it emptied (lists of other patterns are
    /// dropped when they empty): a handler registered and removed again and again reuses its
    /// pattern's entry, list and name. Emptying another pattern's list drops this one if it is
    /// still empty, so at most one empty list is kept.
    idle_pattern: Option<usize>,
    /// The one (handler name, pattern) whose slot is kept after its last handler was removed
    /// (reset as a new slot; its first derived id is kept), as `idle_pattern` is.
    idle_name: Option<usize>,
    /// The name and pattern text of the last registration: the next registration of the same
    /// texts shares them instead of allocating its own.
    recent: (Recent, Recent),
}

/// One pattern's handlers.
struct PatternList {
    pattern: Arc<str>,
    list: HandlerList,
}

/// A [`for_event`](HandlerTable::for_event) answer kept for the next event of the same type.
struct Memo {
    /// The event type.
    name: &'static str,
    /// The index of its list in `lists` (`None`: it had none when looked up), by which a change
    /// to that list is recognised.
    list: Option<usize>,
    handlers: Handlers,
}

/// A text shared by consecutive registrations, and the `&'static str` it was last given as:
/// the same static text again is recognised by its address, without comparing it.
#[derive(Default)]
struct Recent {
    shared: Option<Arc<str>>,
    from: Option<&'static str>,
}

/// An event type's handlers on one bus: those of its type, then the wildcard ones.
pub(crate) type Handlers = (Option<HandlerList>, Option<HandlerList>);

/// The live handlers registered under one (handler name, pattern).
#[derive(Default)]
struct NameSlot {
    /// The (handler name, pattern) it counts; `None` while the slot is vacant.
    key: Option<(Arc<str>, Arc<str>)>,
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
    #[inline]
    pub(crate) fn share_pattern(&mut self, text: Cow<'static, str>) -> Arc<str> {
        share(&mut self.recent.1, text)
    }

    /// The handler name `text` as an `Arc`: the last registration's when it is the same text.
    #[inline]
    pub(crate) fn share_name(&mut self, text: Cow<'static, str>) -> Arc<str> {
        share(&mut self.recent.0, text)
    }

    /// The index of the slot of (`name`, `pattern`), made (vacant, not counted) if it has none.
    /// The last registration's slot is recognised by its key's addresses, without hashing.
    fn slot_of(&mut self, name: &Arc<str>, pattern: &Arc<str>) -> usize {
        if let Some(NameSlot {
            key: Some((known_name, known_pattern)),
            ..
        }) = self.slots.get(self.recent_slot)
        {
            if Arc::ptr_eq(known_name, name) && Arc::ptr_eq(known_pattern, pattern) {
                return self.recent_slot;
            }
        }
        self.slot_of_slow(name, pattern)
    }

    #[inline(never)]
    fn slot_of_slow(&mut self, name: &Arc<str>, pattern: &Arc<str>) -> usize {
        let HandlerTable {
            names,
            slots,
            vacant,
            ..
        } = self;
        let index = *names
            .entry((Arc::clone(name), Arc::clone(pattern)))
            .or_insert_with(|| {
                let slot = NameSlot {
                    key: Some((Arc::clone(name), Arc::clone(pattern))),
                    ..NameSlot::default()
                };
                match vacant.pop() {
                    Some(index) => {
                        slots[index] = slot;
                        index
                    }
                    None => {
                        slots.push(slot);
                        slots.len() - 1
                    }
                }
            });
        self.recent_slot = index;
        index
    }

    /// The default id for a new registration of `name` on `pattern`: the lowest occurrence not
    /// held by a live handler of that name and pattern ([`HandlerId::derive`]). O(log n).
    ///
    /// Counts the registration in its name's slot already (it is then added with
    /// [`add_counted`](Self::add_counted)), and says whether it is the first duplicate of its
    /// name and pattern, as [`count_name`](Self::count_name) does: one lookup of the slot.
    /// Returns the id, its occurrence, the slot's index and the duplicate flag.
    pub(crate) fn next_default_id(
        &mut self,
        bus_name: &str,
        name: &Arc<str>,
        pattern: &Arc<str>,
    ) -> (HandlerId, usize, usize, bool) {
        let index = self.slot_of(name, pattern);
        let HandlerTable {
            slots,
            derived,
            ids,
            mixed_ids,
            ..
        } = self;
        let slot = &mut slots[index];
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
            if !*mixed_ids || !matches!(ids.get(&id), Some((_, false))) {
                return (id, occurrence, index, duplicate);
            }
        }
    }

    /// Counts a handler with an explicit id in its name's slot: returns the slot's index, and
    /// whether a live handler named `name` was registered for `pattern` already and the
    /// duplicate warning was not given for them yet (it is marked given).
    pub(crate) fn count_name(&mut self, name: &Arc<str>, pattern: &Arc<str>) -> (usize, bool) {
        let index = self.slot_of(name, pattern);
        let slot = &mut self.slots[index];
        let duplicate = slot.live > 0 && !slot.warned;
        slot.warned |= duplicate;
        slot.live += 1;
        (index, duplicate)
    }

    /// Counts a live handler out of its name's slot. The slot of a name with no live handler
    /// left is reset (its next registration starts over at occurrence 0) and kept as
    /// `idle_name`; the slot kept before is dropped if it is still idle, its first id going to
    /// `derived`.
    fn uncount_name(&mut self, entry: &HandlerEntry) {
        if entry.stub {
            return;
        }
        let index = entry.slot;
        let slot = &mut self.slots[index];
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
        // Reset in place: the key, the ambiguity and the first id depend on the name and
        // pattern alone.
        if !slot.free.is_empty() {
            slot.free.clear();
        }
        slot.next = 0;
        slot.warned = false;
        match self.idle_name.replace(index) {
            Some(old) if old != index => self.drop_idle_slot(old),
            _ => {}
        }
    }

    /// Drops the slot at `index` if it is still idle (no live handler), its first id going to
    /// `derived`.
    #[inline(never)]
    fn drop_idle_slot(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if slot.live != 0 {
            return;
        }
        let Some(key) = slot.key.take() else {
            return;
        };
        let first_id = slot.first_id.take();
        *slot = NameSlot::default();
        self.vacant.push(index);
        let Some((key, _)) = self.names.remove_entry(&key) else {
            return;
        };
        if let Some(id) = first_id {
            remember_id(&mut self.derived, (key.0, key.1, 0), id);
        }
    }

    /// Adds a restored placeholder ([`HandlerEntry::stub`]); one with the same id that is a
    /// placeholder is replaced in place.
    pub(crate) fn add(&mut self, entry: Arc<HandlerEntry>) {
        debug_assert!(entry.stub, "a live handler is counted first");
        self.add_counted(entry);
    }

    /// The index of `pattern`'s list, made (empty) if it has none. The last registration's list
    /// is recognised by its pattern's address, without hashing.
    #[inline]
    fn list_of(&mut self, pattern: &Arc<str>) -> usize {
        if let Some((known, index)) = &self.recent_list {
            if Arc::ptr_eq(known, pattern) {
                return *index;
            }
        }
        self.list_of_slow(pattern)
    }

    #[inline(never)]
    fn list_of_slow(&mut self, pattern: &Arc<str>) -> usize {
        let index = match self.by_pattern.get(&**pattern) {
            Some(&index) => index,
            None => {
                let list = PatternList {
                    pattern: Arc::clone(pattern),
                    list: HandlerList::default(),
                };
                let index = match self.vacant_lists.pop() {
                    Some(index) => {
                        self.lists[index] = Some(list);
                        index
                    }
                    None => {
                        self.lists.push(Some(list));
                        self.lists.len() - 1
                    }
                };
                self.by_pattern.insert(Arc::clone(pattern), index);
                index
            }
        };
        self.recent_list = Some((Arc::clone(pattern), index));
        index
    }

    /// Drops the list at `index` (its handlers, if any, are the caller's to account for).
    #[inline(never)]
    fn drop_list(&mut self, index: usize) {
        let Some(dropped) = self.lists[index].take() else {
            return;
        };
        self.by_pattern.remove(&*dropped.pattern);
        self.vacant_lists.push(index);
        for memo in [&mut self.memo, &mut self.second].into_iter().flatten() {
            if memo.list == Some(index) {
                memo.list = None;
            }
        }
        if matches!(&self.recent_list, Some((_, known)) if *known == index) {
            self.recent_list = None;
        }
        if self.idle_pattern == Some(index) {
            self.idle_pattern = None;
        }
    }

    /// Adds a handler already counted in its name's slot (by
    /// [`next_default_id`](Self::next_default_id) or [`count_name`](Self::count_name)), or a
    /// placeholder; one with the same id that is a restored placeholder is replaced in place (it
    /// keeps its position), which is how a restored bus re-binds its handlers.
    pub(crate) fn add_counted(&mut self, entry: Arc<HandlerEntry>) {
        let index = self.list_of(&entry.meta.pattern);
        if entry.stub || entry.occurrence.is_none() {
            self.mixed_ids = true;
        }
        // The id's entry is written either way; whether it was a placeholder's decides where the
        // handler goes.
        let replaces_stub = match self.ids.entry(entry.meta.id.clone()) {
            Entry::Occupied(mut known) => {
                let was_stub = *known.get() == (index, true);
                known.insert((index, entry.stub));
                was_stub
            }
            Entry::Vacant(new) => {
                new.insert((index, entry.stub));
                false
            }
        };
        let HandlerTable {
            lists,
            memo,
            second,
            has_wildcard,
            ..
        } = self;
        let Some(PatternList { pattern, list }) = &mut lists[index] else {
            unreachable!("list_of gives a list");
        };
        let wild = &**pattern == "*";
        *has_wildcard |= wild;
        let taken = memo_release(memo, second, index, pattern, wild);
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
        memo_restore(memo, second, taken, Some(&*list));
    }

    /// Forgets both memos.
    fn memo_clear(&mut self) {
        self.memo = None;
        self.second = None;
    }

    /// Removes the handler with this id; returns it if it was registered.
    pub(crate) fn remove_id(&mut self, id: &HandlerId) -> Option<Arc<HandlerEntry>> {
        let (index, _) = self.ids.remove(id)?;
        let HandlerTable {
            lists,
            memo,
            second,
            has_wildcard,
            ..
        } = self;
        let Some(PatternList { pattern, list }) = &mut lists[index] else {
            self.memo_clear();
            return None;
        };
        let Some(pos) = list.iter().position(|h| h.meta.id == *id) else {
            self.memo_clear();
            return None;
        };
        let wild = &**pattern == "*";
        let taken = memo_release(memo, second, index, pattern, wild);
        let handlers = Arc::make_mut(list);
        let removed = handlers.remove(pos);
        let emptied = handlers.is_empty();
        if wild {
            *has_wildcard = !emptied;
        }
        if emptied {
            let keep = handlers.capacity() <= IDLE_LIST_CAPACITY;
            memo_restore(memo, second, taken, None);
            if keep {
                // Kept for the pattern's next registration; the list kept before is dropped.
                if let Some(old) = self.idle_pattern.replace(index) {
                    if old != index {
                        self.drop_idle_list(old);
                    }
                }
            } else {
                self.drop_list(index);
            }
        } else {
            memo_restore(memo, second, taken, Some(&*list));
        }
        self.uncount_name(&removed);
        Some(removed)
    }

    /// Drops the list at `index` if it is still empty.
    #[inline(never)]
    fn drop_idle_list(&mut self, index: usize) {
        if matches!(&self.lists[index], Some(kept) if kept.list.is_empty()) {
            self.drop_list(index);
        }
    }

    /// Removes every handler registered for `pattern`.
    pub(crate) fn remove_pattern(&mut self, pattern: &str) -> Vec<Arc<HandlerEntry>> {
        self.memo_clear();
        let Some(&index) = self.by_pattern.get(pattern) else {
            return Vec::new();
        };
        let removed: Vec<Arc<HandlerEntry>> = self.lists[index]
            .as_ref()
            .map(|kept| kept.list.iter().cloned().collect())
            .unwrap_or_default();
        self.drop_list(index);
        for entry in &removed {
            self.ids.remove(&entry.meta.id);
            self.uncount_name(entry);
        }
        if pattern == "*" {
            self.has_wildcard = false;
        }
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
        if let (Cow::Borrowed(name), Some(memo)) = (event_type, &self.memo) {
            // A `&'static str` is never freed, so its address and length name its text for good.
            if (memo.name.as_ptr(), memo.name.len()) == (name.as_ptr(), name.len()) {
                return memo.handlers.clone();
            }
        }
        self.for_event_slow(event_type)
    }

    /// [`for_event`](Self::for_event) past the memo: swaps the two memos when the second holds
    /// the type, else looks the handlers up and remembers them for a `&'static str` type name
    /// (the memo's answer becoming the second).
    #[allow(
        clippy::ptr_arg,
        reason = "the memo needs to know whether the name is a `&'static str`"
    )]
    #[inline(never)]
    fn for_event_slow(&mut self, event_type: &Cow<'static, str>) -> Handlers {
        let Cow::Borrowed(name) = event_type else {
            return self.lookup(event_type).0;
        };
        if let Some(memo) = &self.second {
            if (memo.name.as_ptr(), memo.name.len()) == (name.as_ptr(), name.len()) {
                let handlers = memo.handlers.clone();
                std::mem::swap(&mut self.memo, &mut self.second);
                return handlers;
            }
        }
        let (handlers, list) = self.lookup(name);
        self.second = self.memo.replace(Memo {
            name,
            list,
            handlers: handlers.clone(),
        });
        handlers
    }

    /// The handlers of `event_type`, and the index of its list if it has one.
    fn lookup(&self, event_type: &str) -> (Handlers, Option<usize>) {
        let list_of = |pattern: &str| {
            let index = *self.by_pattern.get(pattern)?;
            Some((index, &self.lists[index].as_ref()?.list))
        };
        let exact = list_of(event_type);
        let handlers = (
            exact
                .map(|(_, list)| list)
                .filter(|list| !list.is_empty())
                .cloned(),
            if self.has_wildcard {
                list_of("*").map(|(_, list)| Arc::clone(list))
            } else {
                None
            },
        );
        (handlers, exact.map(|(index, _)| index))
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<HandlerEntry>> {
        self.lists
            .iter()
            .flatten()
            .flat_map(|kept| kept.list.iter())
    }

    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    pub(crate) fn clear(&mut self) -> Vec<Arc<HandlerEntry>> {
        self.memo_clear();
        self.ids.clear();
        self.mixed_ids = false;
        self.names.clear();
        self.slots.clear();
        self.vacant.clear();
        self.idle_pattern = None;
        self.idle_name = None;
        self.has_wildcard = false;
        self.recent_list = None;
        self.by_pattern.clear();
        self.vacant_lists.clear();
        self.lists
            .drain(..)
            .flatten()
            .flat_map(|kept| kept.list.iter().cloned().collect::<Vec<_>>())
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

/// `text` as an `Arc`: `recent`'s when it holds the same text (the same `&'static str` is
/// recognised by its address), else a new one, which `recent` then holds.
#[inline]
fn share(recent: &mut Recent, text: Cow<'static, str>) -> Arc<str> {
    if let (Some(known), Cow::Borrowed(text), Some(from)) = (&recent.shared, &text, recent.from) {
        if std::ptr::eq(*text, from) {
            return Arc::clone(known);
        }
    }
    share_slow(recent, text)
}

#[inline(never)]
fn share_slow(recent: &mut Recent, text: Cow<'static, str>) -> Arc<str> {
    if let Some(known) = &recent.shared {
        if **known == *text {
            let known = Arc::clone(known);
            if let Cow::Borrowed(text) = text {
                recent.from = Some(text);
            }
            return known;
        }
    }
    recent.from = match text {
        Cow::Borrowed(text) => Some(text),
        Cow::Owned(_) => None,
    };
    let shared: Arc<str> = Arc::from(text);
    recent.shared = Some(Arc::clone(&shared));
    shared
}

/// Which of a memo's two lists [`memo_release`] took: the event type's own, the wildcard one.
type TakenLists = (bool, bool);

/// What [`memo_release`] took: from the memo, from the second memo.
type Taken = (TakenLists, TakenLists);

const NOTHING: TakenLists = (false, false);

/// Takes the memos' copies of the list at `index` (of `pattern`; `wild`: the pattern is `"*"`)
/// out of them, so that changing the list does not copy it; says which it took
/// ([`memo_restore`] puts the changed list back).
#[inline]
fn memo_release(
    memo: &mut Option<Memo>,
    second: &mut Option<Memo>,
    index: usize,
    pattern: &str,
    wild: bool,
) -> Taken {
    (
        release(memo, index, pattern, wild),
        release(second, index, pattern, wild),
    )
}

/// Takes `memo`'s copies of the list at `index` out of it; says which it took. A memo of an
/// event type that had no list when looked up is recognised by its name (and then given the
/// list's index).
#[inline]
fn release(memo: &mut Option<Memo>, index: usize, pattern: &str, wild: bool) -> TakenLists {
    let Some(memo) = memo else {
        return NOTHING;
    };
    let exact = match memo.list {
        Some(known) => known == index,
        None => memo.name == pattern,
    };
    if exact {
        memo.list = Some(index);
        memo.handlers.0 = None;
    }
    if wild {
        memo.handlers.1 = None;
    }
    (exact, wild)
}

/// Puts `list` (the changed list given to [`memo_release`]; `None` or empty when it has no
/// handlers) back into the memos where that took it from.
#[inline(always)]
fn memo_restore(
    memo: &mut Option<Memo>,
    second: &mut Option<Memo>,
    taken: Taken,
    list: Option<&HandlerList>,
) {
    if taken == (NOTHING, NOTHING) {
        return;
    }
    let list = list.filter(|list| !list.is_empty());
    restore(memo, taken.0, list);
    restore(second, taken.1, list);
}

/// Puts `list` back into `memo` where [`release`] took it from.
#[inline]
fn restore(memo: &mut Option<Memo>, (exact, wild): TakenLists, list: Option<&HandlerList>) {
    let Some(memo) = memo else {
        return;
    };
    if wild {
        memo.handlers.1 = list.cloned();
    }
    if exact {
        memo.handlers.0 = list.cloned();
    }
}
