//! The shared state behind every handle to one event.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use serde_json::{Map, Value};
use smallvec::SmallVec;
use tokio::sync::Notify;
use uuid::Uuid;

use super::config::{EventConcurrency, EventConfig, EventSettings, EventStatus};
use super::dynamic::DynEvent;
use super::extra::EventExtra;
pub(crate) use super::payload::{copy_json, copy_typed};
use super::result_type::ResultType;
pub(crate) use super::state::{BusLink, BusPhase, BusSlot, EventState, RareState};
use crate::error::HandlerError;
use crate::handler::HandlerId;
use crate::lock::FairLock;
use crate::result::{ResultRecord, ResultSlot, ResultStatus};
use crate::time::{Stamp, Timestamp};

/// A payload as the core stores it: the user's struct behind `Any`, in the event's own
/// allocation (`EventInner<E>`, used as `EventInner<ErasedPayload>`). A dynamic event's payload
/// is an `Arc<DynEvent>`, shared with its [`DynEvent`] views.
pub(crate) type ErasedPayload = dyn Any + Send + Sync;

/// Per-type operations the untyped core needs (a hand-rolled vtable, one static per event type).
pub(crate) struct EventKind {
    /// Validates (and normalises, in place) a handler's return value against the event's result
    /// type. On an error the value is left null.
    pub(crate) check_result: fn(&EventInner, &mut ResultSlot) -> Result<(), HandlerError>,
    /// Serializes a typed payload to its JSON object.
    pub(crate) payload_json: fn(&ErasedPayload) -> Result<Map<String, Value>, String>,
    /// The type name and version of the events of this kind whose own [`Names`] are not given
    /// (every typed event: its type's constants). Empty for the dynamic kind, whose events all
    /// carry their names.
    /// (A `Cow`, borrowed: the handler lookup's memo knows a static name by its address.)
    pub(crate) event_type: Cow<'static, str>,
    pub(crate) version: &'static str,
    /// The result type's JSON Schema (`event_result_type`).
    pub(crate) result_schema: fn(&EventInner) -> Option<Value>,
    /// The event `header` describes, with a payload re-read from this event's payload's JSON (as
    /// the reference runtimes' `event_reset()` rebuilds an event from its dump).
    pub(crate) copy: fn(&EventInner, Header) -> Arc<EventInner>,
    /// Whether the payload's JSON nests within what can be read back (checked at dispatch).
    /// `None` for a payload type that cannot nest ([`Event::__SHALLOW_PAYLOAD`]): no call, no
    /// walk (a call through this pointer, to a check that folds to `Ok`, was about 45
    /// instructions of every dispatch).
    ///
    /// [`Event::__SHALLOW_PAYLOAD`]: crate::Event::__SHALLOW_PAYLOAD
    pub(crate) check_depth: Option<DepthCheck>,
}

/// The [`EventKind`] of a payload type. Implemented where the JSON code is (`wire/kind.rs`): the
/// model names the operations, the wire layer supplies them.
pub(crate) trait KindOf {
    const KIND: &'static EventKind;
}

/// A field nested too deep to be read back: its path and depth (`wire::depth`).
pub(crate) type TooDeepField = (String, usize);

/// An [`EventKind`]'s payload depth check.
pub(crate) type DepthCheck = fn(&EventInner) -> Result<(), TooDeepField>;

pub(crate) struct EventInner<P: ?Sized = ErasedPayload> {
    pub(crate) id: Uuid,
    pub(crate) created_at: Timestamp,
    /// The event's operations, and a typed event's type name and version
    /// ([`event_type`](Self::event_type), [`version`](Self::version)).
    pub(crate) kind: &'static EventKind,
    /// A dynamic event's names and result schema, and the payload seen as another type
    /// (`payload.rs`), in one box: made with a dynamic event, and for a typed one on the first
    /// look at its payload as another type (rarely wanted): 16 bytes in every event (a typed
    /// event's names are its kind's).
    extra: Extra,
    pub(crate) state: Mutex<EventState>,
    complete: AtomicBool,
    /// Someone waits (or waited) for the completion notification.
    waited: AtomicBool,
    cancelled: AtomicBool,
    /// Woken on completion, and on progress inside the event's subtree while a handler is
    /// queue-jumping it.
    pub(crate) notify: Notify,
    /// The serial-handler lock: one handler of this event at a time, across every bus.
    pub(crate) handler_lock: FairLock,
    /// `config.event_concurrency`, readable without the lock (the run loop checks it for every
    /// event it takes off the queue). Written together with the config.
    concurrency: AtomicU8,
    /// [`base_bytes`](Self::base_bytes) of an event whose payload is not a dynamic one (the size
    /// of the event, known when it is built), so the history's estimate of every dispatch reads
    /// it instead of asking the payload's type; 0 for a dynamic payload, whose text is counted
    /// when asked.
    fixed_bytes: u32,
    /// The payload as it was created (last: the field that makes the struct unsized).
    pub(crate) payload: P,
}

/// An event's payload seen as other types, each made once (`payload.rs`).
#[derive(Default)]
pub(super) struct PayloadViews {
    /// The payload decoded as another type.
    pub(super) decoded: OnceLock<(TypeId, Arc<dyn Any + Send + Sync>)>,
    /// A typed payload's JSON view.
    pub(super) json: OnceLock<Arc<DynEvent>>,
}

/// An event's type name, version and result schema when they are not its kind's: a dynamic
/// event's (every event read from JSON is one).
#[derive(Clone)]
pub(crate) struct Names {
    pub(crate) event_type: Cow<'static, str>,
    pub(crate) version: Cow<'static, str>,
    /// A result schema that came with the event.
    pub(crate) result_type: Option<Arc<ResultType>>,
}

/// What an event's [`Extra`] cell holds.
#[derive(Default)]
struct ExtraParts {
    /// `None` for an event whose names are its kind's (a typed event).
    names: Option<Names>,
    views: PayloadViews,
}

/// The cell of an event's [`ExtraParts`]. Dropped by hand, as the state's rare parts are: the
/// event's teardown is one inlined check for the usual typed event that never had a view,
/// instead of a call to the cell's drop glue.
struct Extra(ManuallyDrop<OnceLock<Box<ExtraParts>>>);

impl Extra {
    /// The cell of an event with the names `names` (empty for a typed event's: its kind's).
    #[inline(always)]
    fn new(names: Option<Names>) -> Self {
        Extra(ManuallyDrop::new(match names {
            None => OnceLock::new(),
            Some(names) => OnceLock::from(Box::new(ExtraParts {
                names: Some(names),
                views: PayloadViews::default(),
            })),
        }))
    }

    /// The event's own names, if it has any.
    #[inline(always)]
    fn names(&self) -> Option<&Names> {
        self.0.get()?.names.as_ref()
    }

    /// Drops the parts (out of line: most events never have them).
    #[inline(never)]
    fn drop_value(&mut self) {
        // What stays behind is an empty cell, which owns nothing.
        drop(self.0.take());
    }
}

impl Drop for Extra {
    #[inline(always)]
    fn drop(&mut self) {
        if self.0.get().is_some() {
            self.drop_value();
        }
    }
}

impl<P: ?Sized> EventInner<P> {
    /// The event's type name (a typed event's is its type's constant).
    #[inline(always)]
    pub(crate) fn event_type(&self) -> &str {
        self.event_type_cow()
    }

    /// [`event_type`](Self::event_type) as the `Cow` it is stored as: borrowed for a static name.
    #[inline(always)]
    pub(crate) fn event_type_cow(&self) -> &Cow<'static, str> {
        match self.extra.names() {
            Some(names) => &names.event_type,
            None => &self.kind.event_type,
        }
    }

    /// The event's version.
    #[inline]
    pub(crate) fn version(&self) -> &str {
        match self.extra.names() {
            Some(names) => &names.version,
            None => self.kind.version,
        }
    }

    /// A result schema that came with the event (dynamic events only).
    #[inline]
    pub(crate) fn result_type(&self) -> Option<&Arc<ResultType>> {
        self.extra.names()?.result_type.as_ref()
    }

    /// The event's own names (`None`: its kind's), for a copy of it.
    fn own_names(&self) -> Option<Names> {
        self.extra.names().cloned()
    }
}

impl EventInner {
    /// The payload's views, made (empty) on first use.
    pub(super) fn views(&self) -> &PayloadViews {
        &self.extra.0.get_or_init(Box::default).views
    }
}

/// Everything a new event is made of but its payload.
pub(crate) struct Header {
    parts: Parts,
    state: EventState,
}

impl Header {
    /// The event, its payload in the same allocation.
    #[inline(always)]
    pub(super) fn with_payload<P: Any + Send + Sync>(self, payload: P) -> Arc<EventInner> {
        let Header { parts, state } = self;
        parts.build(state.config.event_concurrency, move || state, payload)
    }
}

/// The fields of a new event that are given, not made empty ([`Parts::build`]).
struct Parts {
    id: Uuid,
    created_at: Timestamp,
    kind: &'static EventKind,
    /// `None`: the kind's (a typed event's).
    names: Option<Names>,
    complete: bool,
}

impl Parts {
    /// The event, built inside its allocation, with the state `state` makes there.
    ///
    /// `Arc::new` evaluates the event on the stack and then copies it (728 bytes, about 100
    /// instructions of `memcpy` per event under callgrind), because the stack copy must stay
    /// droppable while the allocation may unwind. `Arc::new_cyclic` allocates first; with every
    /// field computed beforehand, nothing between the literal and its write can unwind, and the
    /// fields (a new event's state too, made by `state` in place) are stored straight into the
    /// allocation.
    /// `concurrency` is the state's `config.event_concurrency`, given apart so that the state
    /// can still be made in place.
    #[inline(always)]
    fn build<P: Any + Send + Sync>(
        self,
        concurrency: Option<EventConcurrency>,
        state: impl FnOnce() -> EventState,
        payload: P,
    ) -> Arc<EventInner> {
        build_with(concurrency, move || self, state, payload)
    }
}

/// [`Parts::build`] with the parts, too, made in place by `parts`: what `parts` captures is all
/// that must be kept (and dropped, should the allocation unwind) across the allocation. A typed
/// event's parts are constants and two words of time and id, so nothing of them is written to
/// the stack first (parts built before the allocation are stored there as well, for the
/// unwinding path alone).
#[inline(always)]
fn build_with<P: Any + Send + Sync>(
    concurrency: Option<EventConcurrency>,
    parts: impl FnOnce() -> Parts,
    state: impl FnOnce() -> EventState,
    payload: P,
) -> Arc<EventInner> {
    let concurrency = encode_concurrency(concurrency);
    let fixed_bytes = if (&payload as &dyn Any).is::<Arc<DynEvent>>() {
        0
    } else {
        u32::try_from(std::mem::size_of::<EventInner<P>>()).unwrap_or(0)
    };
    Arc::<EventInner<P>>::new_cyclic(move |_| {
        let parts = parts();
        EventInner {
            id: parts.id,
            created_at: parts.created_at,
            kind: parts.kind,
            extra: Extra::new(parts.names),
            state: Mutex::new(state()),
            complete: AtomicBool::new(parts.complete),
            waited: AtomicBool::new(false),
            cancelled: AtomicBool::new(false),
            notify: Notify::new(),
            handler_lock: FairLock::new(),
            concurrency: AtomicU8::new(concurrency),
            fixed_bytes,
            payload,
        }
    })
}

/// No parent (`Weak::new` needs a sized type; an empty one unsizes).
pub(super) fn no_parent() -> Weak<EventInner> {
    Weak::<EventInner<()>>::new()
}

fn encode_concurrency(mode: Option<EventConcurrency>) -> u8 {
    match mode {
        None => 0,
        Some(EventConcurrency::GlobalSerial) => 1,
        Some(EventConcurrency::BusSerial) => 2,
        Some(EventConcurrency::Parallel) => 3,
    }
}

/// An event as read from JSON: everything its JSON said.
pub(crate) struct RestoredEvent {
    pub(crate) id: Uuid,
    pub(crate) event_type: String,
    pub(crate) version: String,
    pub(crate) created_at: Timestamp,
    pub(crate) payload: DynEvent,
    pub(crate) result_type: Option<Arc<ResultType>>,
    pub(crate) config: EventConfig,
    pub(crate) status: EventStatus,
    pub(crate) started_at: Option<Timestamp>,
    pub(crate) completed_at: Option<Timestamp>,
    pub(crate) parent_id: Option<Uuid>,
    pub(crate) emitted_by_handler_id: Option<HandlerId>,
    pub(crate) path: Vec<String>,
    pub(crate) results: Vec<ResultRecord>,
    pub(crate) wire_extra: Option<Box<EventExtra>>,
}

impl EventInner {
    /// An event restored from JSON, as a dynamic event. A completed one stays completed.
    pub(crate) fn restored(parts: RestoredEvent) -> Arc<Self> {
        let dynamic = Arc::new(parts.payload);
        let complete = parts.status == EventStatus::Completed;
        Header {
            parts: Parts {
                id: parts.id,
                created_at: parts.created_at,
                kind: <DynEvent as KindOf>::KIND,
                names: Some(Names {
                    event_type: Cow::Owned(parts.event_type),
                    version: Cow::Owned(parts.version),
                    result_type: parts.result_type,
                }),
                complete,
            },
            state: EventState {
                status: parts.status,
                started: Stamp::new(parts.started_at),
                completed: Stamp::new(parts.completed_at.or(if complete {
                    Some(parts.created_at)
                } else {
                    None
                })),
                parent_id: parts.parent_id,
                emitted_by_handler_id: parts.emitted_by_handler_id,
                path: parts.path.into_iter().map(BusLink::remote).collect(),
                results: SmallVec::from_vec(parts.results).into(),
                rare: parts
                    .wire_extra
                    .map(|extra| {
                        Box::new(RareState {
                            wire_extra: Some(extra),
                            ..RareState::default()
                        })
                    })
                    .into(),
                ..EventState::pending(EventSettings::owned(parts.config))
            },
        }
        .with_payload(dynamic)
    }

    /// A pending, undispatched copy: same type, payload, configuration, path and parent; a new
    /// id unless `keep_id`. The payload is re-read from its JSON (see [`EventKind::copy`]).
    /// Appends the terminal results recorded elsewhere (a bridge's completion record, decoded
    /// into `from`) to this event's results; handlers this event already has a result for are
    /// skipped, and so are the far side's forwarding handlers. Returns how many were added.
    pub(crate) fn merge_foreign_results(&self, from: &EventInner) -> usize {
        let theirs = std::mem::take(&mut *from.state.lock().results);
        let mut st = self.state.lock();
        let mut added = 0;
        for record in theirs {
            let terminal = matches!(
                record.status,
                crate::result::ResultStatus::Completed | crate::result::ResultStatus::Error
            );
            // The far side's forwarding handlers (its bridge's inbound bus forwarding to its
            // bus) are plumbing: their result is the event itself.
            let forwarding = matches!(&record.value, crate::result::ResultSlot::Json(v) if crate::result::is_event_json(v));
            if !terminal
                || forwarding
                || st.results.iter().any(|r| r.handler.id == record.handler.id)
            {
                continue;
            }
            st.results.push(record);
            added += 1;
        }
        added
    }

    pub(crate) fn fresh_copy(&self, keep_id: bool) -> Arc<EventInner> {
        let created_at = Timestamp::now();
        let state = {
            let st = self.state.lock();
            let dispatch_context = st.dispatch_context().cloned();
            let wire_extra = EventExtra::for_copy(st.wire_extra());
            let rare = (dispatch_context.is_some() || wire_extra.is_some()).then(|| {
                Box::new(RareState {
                    dispatch_context,
                    wire_extra,
                    ..RareState::default()
                })
            });
            EventState {
                parent_id: st.parent_id,
                emitted_by_handler_id: st.emitted_by_handler_id.clone(),
                path: st.path.clone(),
                rare: rare.into(),
                ..EventState::pending(st.config.clone())
            }
        };
        let header = Header {
            parts: Parts {
                id: if keep_id {
                    self.id
                } else {
                    new_event_id(created_at)
                },
                created_at: if keep_id { self.created_at } else { created_at },
                kind: self.kind,
                names: self.own_names(),
                complete: false,
            },
            state,
        };
        (self.kind.copy)(self, header)
    }

    /// A new, pending event with its own names (a dynamic event's), built in place
    /// ([`Parts::build`]).
    #[inline(always)]
    pub(crate) fn new<P: Any + Send + Sync>(
        event_type: Cow<'static, str>,
        version: Cow<'static, str>,
        kind: &'static EventKind,
        payload: P,
        result_type: Option<Arc<ResultType>>,
        config: &'static EventConfig,
    ) -> Arc<EventInner> {
        let created_at = Timestamp::now_inline();
        Parts {
            id: new_event_id(created_at),
            created_at,
            kind,
            names: Some(Names {
                event_type,
                version,
                result_type,
            }),
            complete: false,
        }
        .build(
            config.event_concurrency,
            move || EventState::pending(EventSettings::Shared(config)),
            payload,
        )
    }

    /// [`new`](Self::new) for a typed event: its type and version are its kind's and it has no
    /// result schema of its own, so all that is kept across the allocation is the payload, the
    /// time and the id (see [`build_with`]).
    #[inline(always)]
    pub(crate) fn new_typed<P: Any + Send + Sync>(
        kind: &'static EventKind,
        payload: P,
        config: &'static EventConfig,
    ) -> Arc<EventInner> {
        let created_at = Timestamp::now_inline();
        let id = new_event_id(created_at);
        build_with(
            config.event_concurrency,
            move || Parts {
                id,
                created_at,
                kind,
                names: None,
                complete: false,
            },
            move || EventState::pending(EventSettings::Shared(config)),
            payload,
        )
    }

    /// The event's own `event_concurrency`, without taking its lock.
    pub(crate) fn concurrency(&self) -> Option<EventConcurrency> {
        match self.concurrency.load(Ordering::Acquire) {
            1 => Some(EventConcurrency::GlobalSerial),
            2 => Some(EventConcurrency::BusSerial),
            3 => Some(EventConcurrency::Parallel),
            _ => None,
        }
    }

    /// Sets `event_concurrency` (in the config, which must be `st`, and its lock-free copy).
    pub(crate) fn set_concurrency(&self, st: &mut EventState, mode: Option<EventConcurrency>) {
        st.config.event_concurrency = mode;
        self.concurrency
            .store(encode_concurrency(mode), Ordering::Release);
    }

    #[inline]
    pub(crate) fn is_complete(&self) -> bool {
        self.complete.load(Ordering::SeqCst)
    }

    /// Sets the completion flag (the engine decides when: `bus::complete`).
    pub(crate) fn set_complete(&self, order: Ordering) {
        self.complete.store(true, order);
    }

    /// Whether someone registered for the completion notification ([`mark_waited`](Self::mark_waited)).
    pub(crate) fn is_waited(&self, order: Ordering) -> bool {
        self.waited.load(order)
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Marks the event cancelled (first cause wins) and wakes its running handlers so they abort.
    /// Returns false if it was already cancelled.
    pub(crate) fn mark_cancelled(&self, cause: &crate::error::CancelCause) -> bool {
        {
            let mut st = self.state.lock();
            if self.cancelled.swap(true, Ordering::AcqRel) {
                return false;
            }
            st.rare_mut().cancel_cause = Some(cause.clone());
        }
        self.notify.notify_waiters();
        true
    }

    pub(crate) fn cancel_cause(&self) -> Option<crate::error::CancelCause> {
        self.state.lock().cancel_cause().cloned()
    }

    /// `Type#abcd`.
    pub(crate) fn label(&self) -> String {
        self.label_display().to_string()
    }

    /// The label as a [`Display`](std::fmt::Display) value, written straight into the text
    /// that holds it (no `String` of its own).
    pub(crate) fn label_display(&self) -> EventLabel<'_> {
        EventLabel {
            event_type: self.event_type(),
            id: &self.id,
        }
    }

    /// [`label_display`](Self::label_display) owning its parts (a typed event's type name is not
    /// copied), for a message written later.
    pub(crate) fn label_owned(&self) -> OwnedEventLabel {
        OwnedEventLabel {
            event_type: self.event_type_cow().clone(),
            id: self.id,
        }
    }

    /// Whether the payload as it was created is a `P` (not through a dynamic event's `Arc`).
    #[inline]
    pub(crate) fn payload_is<P: Any>(&self) -> bool {
        (&self.payload as &dyn Any).is::<P>()
    }

    /// The payload as it was created, if it is a `P` (a typed event's struct, or the
    /// [`DynEvent`] of a dynamic one).
    pub(crate) fn own_payload<P: Any>(&self) -> Option<&P> {
        let payload: &dyn Any = &self.payload;
        payload.downcast_ref::<P>().or_else(|| {
            (&**payload.downcast_ref::<Arc<DynEvent>>()? as &dyn Any).downcast_ref::<P>()
        })
    }

    /// A rough size of what holding this event costs before it has results: the event itself
    /// and its payload (the text of a payload read from text). For the history's memory
    /// estimate; takes no lock.
    #[inline]
    pub(crate) fn base_bytes(&self) -> usize {
        if self.fixed_bytes != 0 {
            return self.fixed_bytes as usize;
        }
        let payload = self.dyn_event().map_or(0, |d| {
            d.text_fields().map_or(d.payload_len() * 64, |fields| {
                fields.iter().map(|(k, v)| k.len() + v.len() + 32).sum()
            })
        });
        std::mem::size_of_val(self) + payload
    }

    /// [`base_bytes`](Self::base_bytes) plus the result records, children and path the state
    /// `st` (this event's, locked) holds.
    pub(crate) fn approx_bytes(&self, st: &EventState) -> usize {
        self.base_bytes() + Self::state_bytes(st)
    }

    /// What [`approx_bytes`](Self::approx_bytes) adds to [`base_bytes`](Self::base_bytes) (which
    /// reads nothing that changes, so needs no lock).
    pub(crate) fn state_bytes(st: &EventState) -> usize {
        st.results.len() * std::mem::size_of::<crate::result::ResultRecord>()
            + st.children.len() * std::mem::size_of::<Arc<EventInner>>()
            + st.path.len() * std::mem::size_of::<Arc<BusLink>>()
    }

    /// Registers interest in the completion notification: the completer only pays for
    /// `notify_waiters` when someone is waiting. Called under the event's lock (`_locked`), which
    /// `bus::complete::complete_locked` may set the completion flag under. A waiter
    /// checks [`is_complete`](Self::is_complete) after this and after creating its `Notified`.
    pub(crate) fn mark_waited(&self, _locked: &EventState) {
        self.waited.store(true, Ordering::SeqCst);
    }

    /// Links `child` under this event and under the result of the handler that dispatched it.
    /// Called before the child is enqueued anywhere, so the child cannot complete unseen.
    pub(crate) fn link_child(&self, child: &Arc<EventInner>, result_index: usize) {
        let mut st = self.state.lock();
        if st.children.iter().any(|c| Arc::ptr_eq(c, child)) {
            return;
        }
        st.children.push(Arc::clone(child));
        if !child.is_complete() {
            st.incomplete_children += 1;
        }
        if let Some(result) = st.results.get_mut(result_index) {
            result.children.push(child.id);
        }
    }

    /// Whether `ancestor` is this event's parent, grandparent, … (following live links first, then
    /// ids through `lookup` for parents that are no longer linked).
    pub(crate) fn has_ancestor(
        &self,
        ancestor: &EventInner,
        lookup: &dyn Fn(Uuid) -> Option<Arc<EventInner>>,
    ) -> bool {
        let (mut parent, mut parent_id) = {
            let st = self.state.lock();
            (st.parent.upgrade(), st.parent_id)
        };
        let mut hops = 0usize;
        while let Some(id) = parent_id {
            if id == ancestor.id {
                return true;
            }
            hops += 1;
            if hops > 10_000 {
                return false;
            }
            let next = parent.take().or_else(|| lookup(id));
            let Some(next) = next else { return false };
            let st = next.state.lock();
            parent = st.parent.upgrade();
            parent_id = st.parent_id;
        }
        false
    }

    /// Signals a handler queue-jumping one of this event's ancestors that the subtree changed.
    /// Called after the event was queued.
    pub(crate) fn notify_jumping_ancestors(&self) {
        // Nobody looking for work anywhere (the usual case, and every level of a deep chain of
        // awaits, whose jumpers are all busy processing): no walk up the chain. The fence pairs
        // with the one in `jumper_registered`: either this load sees the jumper, or the
        // jumper's next look at the tree sees this event queued.
        std::sync::atomic::fence(Ordering::SeqCst);
        if JUMPERS_LOOKING.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut parent = self.state.lock().parent.upgrade();
        while let Some(p) = parent {
            let (waiting, next) = {
                let st = p.state.lock();
                (st.jump_waiters > 0, st.parent.upgrade())
            };
            if waiting {
                p.notify.notify_waiters();
            }
            parent = next;
        }
    }
}

/// Queue-jumpers registered on some event (looking for work or parked), process-wide.
static JUMPERS_LOOKING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A queue-jumper registered (before it looks at the tree of the event it waits for).
pub(crate) fn jumper_registered() {
    JUMPERS_LOOKING.fetch_add(1, Ordering::SeqCst);
    std::sync::atomic::fence(Ordering::SeqCst);
}

/// A queue-jumper unregistered.
pub(crate) fn jumper_unregistered() {
    JUMPERS_LOOKING.fetch_sub(1, Ordering::SeqCst);
}

impl std::fmt::Debug for EventInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

/// An event's label, `Type#abcd`, written when displayed.
pub(crate) struct EventLabel<'a> {
    event_type: &'a str,
    id: &'a Uuid,
}

impl std::fmt::Display for EventLabel<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        f.write_str(self.event_type)?;
        f.write_str("#")?;
        f.write_str(short_id_in(self.id, &mut buf))
    }
}

/// [`EventLabel`] owning its parts ([`EventInner::label_owned`]).
pub(crate) struct OwnedEventLabel {
    event_type: Cow<'static, str>,
    id: Uuid,
}

impl std::fmt::Display for OwnedEventLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        EventLabel {
            event_type: &self.event_type,
            id: &self.id,
        }
        .fmt(f)
    }
}

/// Last four hex digits of an id, as the reference runtimes print it.
pub(crate) fn short_id(id: &Uuid) -> String {
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    short_id_in(id, &mut buf).to_owned()
}

/// [`short_id`], written in `buf`.
fn short_id_in<'b>(id: &Uuid, buf: &'b mut [u8; uuid::fmt::Hyphenated::LENGTH]) -> &'b str {
    let text = id.hyphenated().encode_lower(buf);
    &text[text.len() - 4..]
}

/// A UUIDv7 (RFC 9562 layout) whose time part is the event's creation time. The 12 bits below
/// the millisecond timestamp carry the sub-millisecond time, so ids created in the same millisecond
/// still sort by creation; the rest is random. (Inlined: one per event built.)
#[inline]
pub(crate) fn new_event_id(at: Timestamp) -> Uuid {
    let nanos = at.as_unix_nanos();
    let millis = (nanos / 1_000_000) & ((1 << 48) - 1);
    // The sub-millisecond fraction in the 12 bits after the version (RFC 9562 method 3), so ids
    // of one process sort by their timestamps.
    let sub_ms = (nanos % 1_000_000) * 4096 / 1_000_000;
    let random = fastrand::u64(..) >> 2;
    // Two 64-bit halves: cheaper than assembling one u128.
    Uuid::from_u64_pair((millis << 16) | (0x7 << 12) | sub_ms, (0b10 << 62) | random)
}

impl ResultStatus {
    pub(crate) fn is_terminal(self) -> bool {
        matches!(self, ResultStatus::Completed | ResultStatus::Error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event in flight is one allocation of this size (plus its payload): a typed event's
    /// names are its kind's, and the rare parts (a dynamic event's names, the payload's views)
    /// one cell.
    #[test]
    fn events_stay_small() {
        assert_eq!(std::mem::size_of::<Extra>(), 16);
        assert!(std::mem::size_of::<EventInner<()>>() <= 416);
    }

    #[test]
    fn event_ids_are_uuid7_with_the_timestamp_and_its_sub_millisecond_fraction() {
        let at = Timestamp::from_unix_nanos(1_752_180_000_123_456_789);
        let id = new_event_id(at);
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        let (secs, nanos) = id
            .get_timestamp()
            .expect("a v7 id has a timestamp")
            .to_unix();
        assert_eq!((secs, nanos), (1_752_180_000, 123_000_000));
        // 456_789 ns of the millisecond, in 12 bits.
        let sub_ms = (id.as_u128() >> 64) & 0xFFF;
        assert_eq!(sub_ms, 456_789 * 4096 / 1_000_000);
        // Same instant, different random bits; a later instant sorts after.
        assert_ne!(new_event_id(at), id);
        let later = new_event_id(Timestamp::from_unix_nanos(at.as_unix_nanos() + 1_000));
        assert!(later > id);
    }
}
