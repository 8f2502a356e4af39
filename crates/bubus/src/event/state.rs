//! What changes about an event after it is created ([`EventState`], behind the event's lock) and
//! the buses it went through ([`BusLink`], [`BusSlot`]).

use std::any::Any;
use std::mem::ManuallyDrop;
use std::sync::{Arc, Weak};

use smallvec::SmallVec;
use uuid::Uuid;

use super::config::{EventSettings, EventStatus};
use super::extra::EventExtra;
use super::inner::{EventInner, no_parent};
use crate::handler::HandlerId;
use crate::result::ResultRecord;
use crate::time::{Stamp, Timestamp};

/// Where one bus is with this event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum BusPhase {
    Queued,
    Processing,
    Done,
}

/// A bus as an event's path records it: its label and, for a bus of this process, the bus
/// while it lives. Each bus has one, shared by every event dispatched to it, so the path entry
/// and the event's [`BusSlot`] on that bus cost one reference count between them.
pub(crate) struct BusLink {
    pub(crate) label: Arc<str>,
    /// The bus, type-erased: the event model does not name the engine, which reads it back
    /// (`BusLink::upgrade` in `bus`).
    pub(crate) bus: Weak<dyn Any + Send + Sync>,
    /// Whether the event's `event_path` shows this entry. Not for a bus an event restored from a
    /// snapshot is queued on without its path naming it: the path stays as the snapshot said.
    pub(crate) listed: bool,
}

impl BusLink {
    /// A bus known only by its label (another process's, or from a snapshot).
    pub(crate) fn remote(label: impl Into<Arc<str>>) -> Arc<Self> {
        Arc::new(BusLink {
            label: label.into(),
            bus: Weak::<()>::new(),
            listed: true,
        })
    }

    /// The same bus, left out of the `event_path` of the events it is pushed on.
    pub(crate) fn unlisted(&self) -> Arc<Self> {
        Arc::new(BusLink {
            label: Arc::clone(&self.label),
            bus: self.bus.clone(),
            listed: false,
        })
    }
}

impl std::ops::Deref for BusLink {
    type Target = str;

    fn deref(&self) -> &str {
        &self.label
    }
}

impl std::fmt::Display for BusLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label)
    }
}

impl std::fmt::Debug for BusLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.label, f)
    }
}

/// One bus the event was dispatched to. (While the bus has work to do, it keeps itself alive:
/// see `BusState::busy`.)
pub(crate) struct BusSlot {
    /// Where the bus is in the event's path ([`EventState::slot_bus`]). A `u32`: 8 bytes less
    /// in every event (a path is never four billion buses long).
    pub(crate) link: u32,
    pub(crate) bus_id: Uuid,
    pub(crate) phase: BusPhase,
    /// The event's sequence number in the bus's history.
    pub(crate) history_seq: u64,
    /// The bus wants to hear of the event's completion: its history tracks completions (a
    /// bound, TTLs, only in-flight events kept), or it has middlewares.
    pub(crate) tell: bool,
}

/// An event's children (held strongly; each child holds its parent weakly).
///
/// The vector is dropped by hand ([`Drop`] below), so that the event's teardown is one capacity
/// check, inlined, for the usual event that never had a child (instead of a call to the vector's
/// drop glue: about 20 instructions per event under callgrind).
#[derive(Default)]
pub(crate) struct Children(ManuallyDrop<Vec<Arc<EventInner>>>);

impl std::ops::Deref for Children {
    type Target = Vec<Arc<EventInner>>;

    fn deref(&self) -> &Vec<Arc<EventInner>> {
        &self.0
    }
}

impl std::ops::DerefMut for Children {
    fn deref_mut(&mut self) -> &mut Vec<Arc<EventInner>> {
        &mut self.0
    }
}

impl Drop for Children {
    /// Most events have no children, and never allocated for one: one check.
    #[inline(always)]
    fn drop(&mut self) {
        if self.0.capacity() != 0 {
            self.drop_tree();
        }
    }
}

impl Children {
    /// Drops the children (and their vector) without recursing: a chain of events thousands of
    /// levels deep (each holding the next) would otherwise drop one level per stack frame. A
    /// child this is the last strong holder of gives up its own children to the loop first.
    #[inline(never)]
    fn drop_tree(&mut self) {
        // What stays behind is an empty vector, which owns no allocation.
        let mut stack = std::mem::take(&mut *self.0);
        while let Some(child) = stack.pop() {
            if Arc::strong_count(&child) == 1 {
                stack.append(&mut child.state.lock().children);
            }
            drop(child);
        }
    }
}

/// An event's result records, one per handler run (one inline: most events have a single
/// handler per bus).
///
/// The vector is dropped by hand ([`Drop`] below), so that the event's teardown, for the usual
/// event with one finished record that owns nothing but its handler reference (a null or scalar
/// value, no error, no children), is a few inlined checks and one reference count, instead of
/// calls to the vector's and the record's drop glue.
#[derive(Default)]
pub(crate) struct Results(ManuallyDrop<SmallVec<[ResultRecord; 1]>>);

impl Results {
    /// Drops every record (and the vector's allocation, if it has one): the shapes the inlined
    /// check does not take.
    #[inline(never)]
    fn drop_all(&mut self) {
        // What stays behind is an empty inline vector, which owns nothing.
        let mut records = std::mem::take(&mut *self.0);
        // Each usual record (an event may have thousands) costs its handler reference's count
        // alone, as in `drop`.
        for record in records.drain(..) {
            if record.owns_only_handler() {
                record.drop_plain();
            } else {
                drop(record);
            }
        }
    }
}

impl From<SmallVec<[ResultRecord; 1]>> for Results {
    #[inline]
    fn from(records: SmallVec<[ResultRecord; 1]>) -> Self {
        Results(ManuallyDrop::new(records))
    }
}

impl std::ops::Deref for Results {
    type Target = SmallVec<[ResultRecord; 1]>;

    #[inline(always)]
    fn deref(&self) -> &SmallVec<[ResultRecord; 1]> {
        &self.0
    }
}

impl std::ops::DerefMut for Results {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut SmallVec<[ResultRecord; 1]> {
        &mut self.0
    }
}

impl<'a> IntoIterator for &'a Results {
    type Item = &'a ResultRecord;
    type IntoIter = std::slice::Iter<'a, ResultRecord>;

    #[inline(always)]
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a mut Results {
    type Item = &'a mut ResultRecord;
    type IntoIter = std::slice::IterMut<'a, ResultRecord>;

    #[inline(always)]
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter_mut()
    }
}

impl Drop for Results {
    #[inline(always)]
    fn drop(&mut self) {
        if !self.0.spilled() {
            match self.0.len() {
                0 => return,
                1 if self.0[0].owns_only_handler() => {
                    // The vector left empty and inline owns nothing.
                    if let Some(record) = self.0.pop() {
                        record.drop_plain();
                    }
                    return;
                }
                _ => {}
            }
        }
        self.drop_all();
    }
}

/// An optional boxed value most events never have (the [`RareState`]), read and written as the
/// `Option` it derefs to. Dropped by hand, as [`Children`] is: the event's teardown is one
/// inlined check for the usual `None`, instead of a call to the box's drop glue (about 10
/// instructions per field and event under callgrind).
pub(crate) struct Rare<T>(ManuallyDrop<Option<Box<T>>>);

impl<T> Rare<T> {
    /// No value.
    #[inline(always)]
    pub(crate) const fn none() -> Self {
        Rare(ManuallyDrop::new(None))
    }

    /// Drops the value (out of line: most events never have one).
    #[inline(never)]
    fn drop_value(&mut self) {
        drop(self.0.take());
    }
}

impl<T> From<Option<Box<T>>> for Rare<T> {
    fn from(value: Option<Box<T>>) -> Self {
        Rare(ManuallyDrop::new(value))
    }
}

impl<T> std::ops::Deref for Rare<T> {
    type Target = Option<Box<T>>;

    fn deref(&self) -> &Option<Box<T>> {
        &self.0
    }
}

impl<T> std::ops::DerefMut for Rare<T> {
    fn deref_mut(&mut self) -> &mut Option<Box<T>> {
        &mut self.0
    }
}

impl<T> Drop for Rare<T> {
    #[inline(always)]
    fn drop(&mut self) {
        if self.0.is_some() {
            self.drop_value();
        }
    }
}

/// What most events never have, in one box made when the first of them is set
/// ([`EventState::rare_mut`]): 8 bytes in every event instead of 40.
#[derive(Default)]
pub(crate) struct RareState {
    /// Why the event was cancelled (its handlers not yet finished end cancelled or aborted).
    pub(crate) cancel_cause: Option<crate::error::CancelCause>,
    /// The `tracing` span current where the event was first dispatched: the parent of its
    /// handlers' spans.
    pub(crate) dispatch_span: Option<tracing::Span>,
    /// The user context values in scope where the event was first dispatched.
    pub(crate) dispatch_context: Option<crate::context::ContextMap>,
    /// Wire metadata this version does not model, from the JSON the event was read from.
    pub(crate) wire_extra: Option<Box<EventExtra>>,
}

/// Everything about an event that changes after it is created.
pub(crate) struct EventState {
    /// Read through `Deref`; a write makes the event's own copy.
    pub(crate) config: EventSettings,
    pub(crate) status: EventStatus,
    /// When the event started and completed ([`started_at`](Self::started_at),
    /// [`completed_at`](Self::completed_at)): a word each, where an `Option<Timestamp>` takes
    /// two.
    pub(super) started: Stamp,
    pub(super) completed: Stamp,
    pub(crate) parent_id: Option<Uuid>,
    /// Set only when this event was linked into its parent's children (and counted there).
    pub(crate) parent: Weak<EventInner>,
    pub(crate) emitted_by_handler_id: Option<HandlerId>,
    /// The buses the event went through, in order (`event_path`).
    pub(crate) path: SmallVec<[Arc<BusLink>; 2]>,
    pub(crate) buses: SmallVec<[BusSlot; 1]>,
    pub(crate) results: Results,
    /// Inline, with their counters: every event a handler dispatches is linked here.
    pub(crate) children: Children,
    pub(crate) incomplete_children: u32,
    pub(crate) jump_waiters: u32,
    /// The cancel cause, dispatch span and context, and wire metadata ([`RareState`]).
    pub(super) rare: Rare<RareState>,
}

impl EventState {
    /// The state of a new, pending event.
    #[inline(always)]
    pub(super) fn pending(config: EventSettings) -> Self {
        EventState {
            config,
            status: EventStatus::Pending,
            started: Stamp::NONE,
            completed: Stamp::NONE,
            parent_id: None,
            parent: no_parent(),
            emitted_by_handler_id: None,
            path: SmallVec::new(),
            buses: SmallVec::new(),
            results: Results::default(),
            children: Children::default(),
            incomplete_children: 0,
            jump_waiters: 0,
            rare: Rare::none(),
        }
    }

    /// The `event_path` entries: the buses the event went through, as its JSON lists them.
    pub(crate) fn listed_path(&self) -> impl Iterator<Item = &BusLink> {
        self.path
            .iter()
            .filter(|link| link.listed)
            .map(|link| &**link)
    }

    /// When the event started (its first handler, or its completion without one).
    #[inline]
    pub(crate) fn started_at(&self) -> Option<Timestamp> {
        self.started.get()
    }

    #[inline]
    pub(crate) fn set_started_at(&mut self, at: Option<Timestamp>) {
        self.started = Stamp::new(at);
    }

    /// Marks the event started at `now` (its first handler run starting), if it is still
    /// pending; returns whether it was.
    #[inline(always)]
    pub(crate) fn mark_started(&mut self, now: Timestamp) -> bool {
        let pending = self.status == EventStatus::Pending;
        if pending {
            self.status = EventStatus::Started;
            self.set_started_at(Some(now));
        }
        pending
    }

    /// When the event completed.
    #[inline]
    pub(crate) fn completed_at(&self) -> Option<Timestamp> {
        self.completed.get()
    }

    #[inline]
    pub(crate) fn set_completed_at(&mut self, at: Option<Timestamp>) {
        self.completed = Stamp::new(at);
    }

    /// The rare parts, if any was ever set.
    #[inline(always)]
    pub(crate) fn rare(&self) -> Option<&RareState> {
        self.rare.as_deref()
    }

    /// The rare parts, made (empty) on first use.
    pub(crate) fn rare_mut(&mut self) -> &mut RareState {
        self.rare.get_or_insert_with(Box::default)
    }

    /// Why the event was cancelled.
    pub(crate) fn cancel_cause(&self) -> Option<&crate::error::CancelCause> {
        self.rare()?.cancel_cause.as_ref()
    }

    /// The `tracing` span current where the event was first dispatched.
    #[inline]
    pub(crate) fn dispatch_span(&self) -> Option<&tracing::Span> {
        self.rare()?.dispatch_span.as_ref()
    }

    /// The user context values in scope where the event was first dispatched.
    #[inline]
    pub(crate) fn dispatch_context(&self) -> Option<&crate::context::ContextMap> {
        self.rare()?.dispatch_context.as_ref()
    }

    /// Sets the dispatch context (`None`: none; no box made for it).
    #[inline]
    pub(crate) fn set_dispatch_context(&mut self, context: Option<crate::context::ContextMap>) {
        if context.is_some() || self.rare.is_some() {
            self.rare_mut().dispatch_context = context;
        }
    }

    /// Wire metadata this version does not model, from the JSON the event was read from.
    #[inline]
    pub(crate) fn wire_extra(&self) -> Option<&EventExtra> {
        self.rare()?.wire_extra.as_deref()
    }

    /// The wire metadata, made (empty) on first use.
    pub(crate) fn wire_extra_mut(&mut self) -> &mut EventExtra {
        self.rare_mut()
            .wire_extra
            .get_or_insert_with(Default::default)
    }
}
