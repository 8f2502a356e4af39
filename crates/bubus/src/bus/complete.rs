//! Completion, the last step of the handler path: a bus is done with an event
//! ([`finish_on_bus`]), the event completes once nothing is outstanding on any bus and every
//! child completed ([`complete_locked`], under the event's lock), and what completion tells —
//! the buses' histories, middlewares, the waiters, then the parent, which may complete in turn —
//! runs with no lock held ([`completed`]). The event data model only keeps the flags; every
//! decision about completing is made here.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use smallvec::SmallVec;

use super::history::CompletedInfo;
use super::{BusInner, BusState};
use crate::event::EventStatus;
use crate::event::inner::{BusPhase, EventInner, EventState};
use crate::time::Timestamp;

/// What is left to do after an event completed, outside its lock. `'a`: the bus the caller
/// finished the event on, told through the caller's reference rather than a counted one.
pub(crate) struct Completion<'a> {
    parent: Option<Arc<EventInner>>,
    /// Buses to tell (their history tracks completions, or they have middlewares), with the
    /// event's sequence number in their history.
    buses: Told<'a>,
    /// What the buses' histories need to know, read under the event's lock.
    history: CompletedInfo,
    /// With no bus to tell, the completion flag is already set, under the event's lock, which
    /// orders it against waiters registering (they register under the same lock); then this is
    /// whether one had. With buses to tell, the flag is set after them.
    waited: bool,
    /// Whether one of the buses to tell has middlewares (a borrowed bus has none).
    middlewares: bool,
}

/// A bus to tell of a completion: the caller's own, borrowed (no reference count taken and
/// dropped), or another, upgraded from the event's path.
enum BusRef<'a> {
    Borrowed(&'a BusInner),
    Owned(Arc<BusInner>),
}

impl std::ops::Deref for BusRef<'_> {
    type Target = BusInner;

    #[inline]
    fn deref(&self) -> &BusInner {
        match self {
            BusRef::Borrowed(bus) => bus,
            BusRef::Owned(bus) => bus,
        }
    }
}

/// The buses a [`Completion`] tells, with the event's sequence number in each one's history:
/// usually none or one, held without a list. (Several, the rare case, are on the heap: a list
/// held inline would make every [`Completion`] that much larger to build and move.)
enum Told<'a> {
    None,
    One((BusRef<'a>, u64)),
    Many(Vec<(BusRef<'a>, u64)>),
}

impl<'a> Told<'a> {
    /// Inlined for the usual case, the first bus; the others are added out of line.
    #[inline]
    fn push(&mut self, bus: BusRef<'a>, seq: u64) {
        match self {
            Told::None => *self = Told::One((bus, seq)),
            _ => self.push_more(bus, seq),
        }
    }

    #[cold]
    #[inline(never)]
    fn push_more(&mut self, bus: BusRef<'a>, seq: u64) {
        *self = match std::mem::replace(self, Told::None) {
            Told::None => Told::One((bus, seq)),
            Told::One(first) => Told::Many(vec![first, (bus, seq)]),
            Told::Many(mut many) => {
                many.push((bus, seq));
                Told::Many(many)
            }
        };
    }

    fn is_empty(&self) -> bool {
        matches!(self, Told::None)
    }

    fn as_slice(&self) -> &[(BusRef<'a>, u64)] {
        match self {
            Told::None => &[],
            Told::One(one) => std::slice::from_ref(one),
            Told::Many(many) => many,
        }
    }
}

/// What [`process_event`] leaves to its caller: the event is finished on the bus, but still
/// counted in flight there until the caller calls [`leave_bus`] (the run loop folds it into its
/// next look at the queue). Only a finished `process_event` returns it: one dropped halfway
/// leaves the bus itself.
#[must_use = "the event is still counted in flight on the bus: call `leave` or `owe`"]
pub(crate) struct Processed(pub(super) ());

impl Processed {
    /// Leaves the bus now.
    pub(crate) fn leave(self, bus: &BusInner) {
        leave_bus(bus, 1);
    }
}

/// Marks this bus done with the event and completes it if nothing else is outstanding, then
/// leaves the bus.
pub(crate) fn finish_on_bus(bus: &BusInner, event: &Arc<EventInner>) {
    // Complete first: whoever `wait_until_idle` wakes must already see the event completed (and
    // gone from a bus that keeps only in-flight events).
    done_on_bus(bus, event);
    leave_bus(bus, 1);
}

/// [`done_on_bus_locked`] under the event's lock, then the completion it found, if any.
pub(super) fn done_on_bus(bus: &BusInner, event: &Arc<EventInner>) {
    let completion = done_on_bus_locked(bus, event, &mut event.state.lock());
    if let Some(completion) = completion {
        completed(event, completion);
    }
}

/// Under the event's lock: marks `bus`'s slot of it done, and completes the event if nothing
/// else is outstanding (the caller runs the returned [`Completion`] once the lock is released).
/// Inlined: the completion is built in its caller's frame, not returned through one of its own.
#[inline(always)]
pub(crate) fn done_on_bus_locked<'a>(
    bus: &'a BusInner,
    event: &EventInner,
    es: &mut EventState,
) -> Option<Completion<'a>> {
    // The usual event: on this bus alone. Its slot is read once, for the completion too.
    if let [slot] = &mut es.buses[..]
        && slot.phase != BusPhase::Done
        && slot.bus_id == bus.id
    {
        slot.phase = BusPhase::Done;
        let (tell, link, seq) = (slot.tell, slot.link, slot.history_seq);
        if !mark_completed(event, es) {
            return None;
        }
        let mut buses = Told::None;
        let mut middlewares = false;
        if tell && let Some(bus) = tell_bus(es, bus.id, link, Some(bus), &mut middlewares) {
            buses.push(bus, seq);
        }
        return Some(completion(event, es, buses, middlewares));
    }
    // One walk of the slots: marks `bus`'s first one not yet done (its active slot) done, and
    // sees whether every other one is done too.
    let mut marked = false;
    let mut all_done = true;
    for slot in &mut es.buses {
        if slot.phase == BusPhase::Done {
            continue;
        }
        if !marked && slot.bus_id == bus.id {
            slot.phase = BusPhase::Done;
            marked = true;
        } else {
            all_done = false;
        }
    }
    if !all_done {
        return None;
    }
    complete_done_locked(event, es, Some(bus))
}

/// The end of `events` events' processing on `bus`, after [`done_on_bus_locked`] and their
/// completion: that many fewer in flight; if that leaves the bus idle, its idle waiters are woken.
pub(crate) fn leave_bus(bus: &BusInner, events: usize) {
    let idle = leave_locked(&mut bus.state.lock(), events);
    after_leave(bus, idle);
}

/// `events` fewer in flight on the bus whose state `st` is. `Some` if that left the bus idle:
/// pass it to [`after_leave`] once the lock is released.
pub(super) fn leave_locked(st: &mut BusState, events: usize) -> Option<Option<Arc<BusInner>>> {
    if events == 0 {
        return None;
    }
    st.in_flight = st.in_flight.saturating_sub(events);
    BusInner::is_idle(st).then(|| st.busy.take())
}

/// After [`leave_locked`], with no lock held: if the bus became idle, wakes its idle waiters and
/// lets go of the reference it kept to itself while busy.
pub(super) fn after_leave(bus: &BusInner, idle: Option<Option<Arc<BusInner>>>) {
    if let Some(busy) = idle {
        bus.notify_idle();
        // Possibly the last reference to the bus: dropped with no lock held.
        drop(busy);
    }
}

/// Bookkeeping when an event completes, for the buses that need it: those that keep only
/// in-flight events forget it, and middlewares hear of it.
///
/// Each bus's history update ([`BusInner::history_completed`]) takes that bus's lock, once per
/// completion, on top of the run loop's own look at the queue (the S1 cost `docs/performance.md`
/// names). It is not folded into the run loop's next look at the queue, as leaving the bus is,
/// because of two orders callers rely on: the history must show the event completed before its
/// waiters are woken (a woken awaiter may dispatch at once into a history that is full but for
/// this event: `HistoryFull` if it is not yet marked), and before the bus's in-flight count drops
/// (`wait_until_idle` must see it completed). Taking it out from under the bus lock needs the
/// history behind a lock of its own (or an atomic "completed" mark per entry that eviction reads),
/// so that completion does not contend with dispatch and the run loop.
#[inline(always)]
fn on_event_completed(
    event: &Arc<EventInner>,
    buses: &Told<'_>,
    info: CompletedInfo,
    middlewares: bool,
) {
    // The usual one bus without a walk of a list.
    match buses {
        Told::None => {}
        Told::One((bus, seq)) => bus.history_completed(event, *seq, info),
        Told::Many(many) => {
            for (bus, seq) in many {
                bus.history_completed(event, *seq, info);
            }
        }
    }
    // Most buses have no middleware: nothing to collect then (seen under the event's lock).
    if middlewares {
        tell_middlewares(event, buses.as_slice());
    }
}

/// The bus of a [`Completion`]'s entry, if it has middlewares.
#[inline]
fn with_middlewares<'b>((bus, _): &'b (BusRef<'_>, u64)) -> Option<&'b Arc<BusInner>> {
    match bus {
        BusRef::Owned(bus) if !bus.middlewares.is_empty() => Some(bus),
        _ => None,
    }
}

/// The middlewares of the buses told of a completion hear of it (out of line: most buses have
/// none).
#[cold]
#[inline(never)]
fn tell_middlewares(event: &Arc<EventInner>, buses: &[(BusRef<'_>, u64)]) {
    let with_middlewares: SmallVec<[Arc<BusInner>; 2]> = buses
        .iter()
        .filter_map(with_middlewares)
        .map(Arc::clone)
        .collect();
    super::hook_completed(event, &with_middlewares);
}

/// Under the event's lock: if the event can complete (every bus done, every result final,
/// every linked child completed), marks it completed and returns what to do once the lock is
/// released ([`completed`]). `current`: the bus the caller finished the event on, if any, told
/// through the caller's reference.
pub(crate) fn complete_locked<'a>(
    event: &EventInner,
    st: &mut EventState,
    current: Option<&'a BusInner>,
) -> Option<Completion<'a>> {
    if st.buses.iter().any(|slot| slot.phase != BusPhase::Done) {
        return None;
    }
    complete_done_locked(event, st, current)
}

/// [`complete_locked`] once every bus slot of the event is known to be done (the caller
/// walked them).
#[inline(always)]
fn complete_done_locked<'a>(
    event: &EventInner,
    st: &mut EventState,
    current: Option<&'a BusInner>,
) -> Option<Completion<'a>> {
    if !mark_completed(event, st) {
        return None;
    }
    let mut buses = Told::None;
    let mut middlewares = false;
    for slot in st.buses.iter().filter(|s| s.tell) {
        if let Some(bus) = tell_bus(st, slot.bus_id, slot.link, current, &mut middlewares) {
            buses.push(bus, slot.history_seq);
        }
    }
    Some(completion(event, st, buses, middlewares))
}

/// Under the event's lock, once every bus slot of the event is done: marks it completed if
/// nothing else is outstanding (every result final, every linked child completed) and nobody
/// did before; returns whether it did.
#[inline(always)]
fn mark_completed(event: &EventInner, st: &mut EventState) -> bool {
    // `status` is set under this lock, the flag only after the completion hooks ran: either
    // says another caller completed it.
    if event.is_complete()
        || st.status == EventStatus::Completed
        || st.buses.is_empty()
        || st.incomplete_children > 0
    {
        return false;
    }
    // Every result final, and the last of them to complete, in one pass.
    let mut last_result = None;
    for result in &st.results {
        if !result.status.is_terminal() {
            return false;
        }
        last_result = last_result.max(result.completed_at());
    }
    // Without children, the event completed when its last handler did (as in the Python
    // runtime); with children, when the last of them completed, i.e. now.
    let at = match last_result {
        Some(at) if st.children.is_empty() => at,
        _ => Timestamp::now(),
    };
    st.status = EventStatus::Completed;
    st.set_completed_at(Some(at));
    if st.started_at().is_none() {
        st.set_started_at(Some(at));
    }
    true
}

/// The bus of the event's slot for bus `bus_id` (at `link` in its path), to tell of its
/// completion: the caller's bus (`current`), while it lives (as upgrading its link would find),
/// borrowed unless it has middlewares (they are handed the bus itself); any other bus,
/// upgraded (`None` if it is gone), noting in `middlewares` whether it has any.
#[inline(always)]
fn tell_bus<'a>(
    st: &EventState,
    bus_id: uuid::Uuid,
    link: u32,
    current: Option<&'a BusInner>,
    middlewares: &mut bool,
) -> Option<BusRef<'a>> {
    let path = st.path.get(link as usize);
    match current {
        Some(bus)
            if bus_id == bus.id
                && bus.middlewares.is_empty()
                && path.is_some_and(|link| link.bus.strong_count() > 0) =>
        {
            Some(BusRef::Borrowed(bus))
        }
        _ => {
            let bus = path?.upgrade()?;
            *middlewares |= !bus.middlewares.is_empty();
            Some(BusRef::Owned(bus))
        }
    }
}

/// The [`Completion`] of an event just marked completed ([`mark_completed`]), which tells
/// `buses` (`middlewares`: whether one of them has any).
#[inline(always)]
fn completion<'a>(
    event: &EventInner,
    st: &EventState,
    buses: Told<'a>,
    middlewares: bool,
) -> Completion<'a> {
    // Nobody to tell first: complete now. The lock orders this against `mark_waited`, so a
    // plain store does (a waiter that registered before is seen here; one that registers
    // after sees the flag).
    let waited = if buses.is_empty() {
        event.set_complete(Ordering::Release);
        event.is_waited(Ordering::Relaxed)
    } else {
        false
    };
    let history = if buses.is_empty() {
        CompletedInfo::default()
    } else {
        CompletedInfo {
            state_bytes: EventInner::state_bytes(st),
            own_ttl: st.has_own_ttl(),
        }
    };
    // Most events have no parent: their link is the empty `Weak`, seen without the call to
    // upgrade it (a parent already gone, likewise).
    let parent = if st.parent.strong_count() == 0 {
        None
    } else {
        st.parent.upgrade()
    };
    Completion {
        parent,
        buses,
        waited,
        middlewares,
        history,
    }
}

/// After [`complete_locked`], with no lock held: bus bookkeeping and
/// middlewares, then the waiters, then the parent (which may complete in turn). Inlined into
/// its callers, with this event's own step: the completion is moved once, not through a frame
/// of its own; only an event with a parent calls out.
#[inline]
pub(crate) fn completed(event: &Arc<EventInner>, completion: Completion<'_>) {
    if let Some(parent) = announce_completed(event, completion) {
        child_completed(parent);
    }
}

/// One step of [`completed`]: this event's bookkeeping and waiters. Returns its parent, which
/// is to hear of it.
#[inline(always)]
fn announce_completed(
    event: &Arc<EventInner>,
    completion: Completion<'_>,
) -> Option<Arc<EventInner>> {
    // Middlewares hear of the completion before anyone waiting for it is released, so
    // whoever awaited an event sees what they did (a log line, a mirrored row).
    let waited = if completion.buses.is_empty() {
        completion.waited
    } else {
        on_event_completed(
            event,
            &completion.buses,
            completion.history,
            completion.middlewares,
        );
        // Outside the lock, the flag and `waited` order each other (both `SeqCst`).
        event.set_complete(Ordering::SeqCst);
        event.is_waited(Ordering::SeqCst)
    };
    if waited {
        event.notify.notify_waiters();
    }
    completion.parent
}

/// A child of `parent` completed: one fewer to wait for; if that completes the parent, its
/// completion is announced, and so on up the chain.
#[inline(never)]
fn child_completed(mut parent: Arc<EventInner>) {
    loop {
        let next = {
            let mut pst = parent.state.lock();
            pst.incomplete_children = pst.incomplete_children.saturating_sub(1);
            complete_locked(&parent, &mut pst, None)
        };
        let Some(completion) = next else {
            return;
        };
        match announce_completed(&parent, completion) {
            Some(grandparent) => parent = grandparent,
            None => return,
        }
    }
}
