//! The event bus.
//!
//! # Where things live
//!
//! The handler path, in the order an event takes it (read the files in this order):
//!
//! | step | file |
//! | --- | --- |
//! | `dispatch`: path, history entry, queue, wake the run loop | `dispatch.rs` |
//! | the run loop: next event off the queue under its event lock | `run_loop.rs` |
//! | the handler phase: every handler of the event on this bus, the event timeout | `phase.rs` |
//! | one handler: context, panics, handler timeout, recording its result | `handler_run.rs` |
//! | the task-local handler context (which handler is running; locks it holds) | `handler_context.rs` |
//! | completion: the bus done with the event, the event complete, who is told | `complete.rs` |
//! | `.await` on an event: waiting, queue-jumping from inside a handler | `wait.rs` |
//! | what makes handles and result queries awaitable | `awaiting.rs` |
//!
//! Beside the path: `stop.rs` (stopping: abort, cancel what is queued), `cancel.rs` (cascading
//! cancellation of descendants), `limits.rs` (timeouts and slow thresholds, resolved; the timer
//! helper), `handlers.rs` (the handler table), `history.rs` and `ttl.rs` (the history, its bound
//! and expiry), `find.rs` (`find`; `expect` in `find/expect.rs`, and the future waiters `dispatch`
//! resolves in `find/waiters.rs`), `forward.rs` (forwarding between buses), `hooks.rs` (middleware
//! calls), `snapshot.rs` (snapshots and restore; restoring handlers and events in
//! `snapshot/restore.rs`), `config.rs` (the builder).
//!
//! This file holds `EventBus` with its public methods, `BusInner`/`BusState`, and the engine's
//! side of the event model's bus links. It is over 500 lines because `EventBus`'s public methods
//! stay in the module that defines the type: rustc names a method of an `impl` block in another
//! module by that module's path in its errors (`bubus::bus::register::<impl EventBus>::on`
//! instead of `EventBus::on`), which is what users read when a handler has the wrong type (the
//! trybuild fixtures check it). About 200 of its lines are those methods' docs and examples.

mod awaiting;
mod cancel;
mod complete;
mod config;
mod dispatch;
mod find;
mod forward;
pub(crate) mod handler_context;
mod handler_run;
mod handlers;
mod history;
mod hooks;
mod limits;
mod phase;
mod run_loop;
mod snapshot;
mod stop;
mod ttl;
mod wait;

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::lock::FairLock;
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

use crate::event::inner::{BusLink, BusPhase, BusSlot, EventInner, EventState, short_id};
use crate::event::{AnyEvent, Event, EventConcurrency, EventHandle, HandleEvent, IntoEvent};
use crate::handler::{
    EventHandler, HandlerEntry, HandlerId, HandlerInput, HandlerMeta, HandlerOptions, IntoHandler,
    input_pattern,
};
use crate::middleware::Middleware;
use crate::time::Timestamp;
use crate::{DispatchError, EventStatus};

pub use awaiting::EventFuture;
pub use config::{BusConfig, EventBusBuilder, HistoryFull, LockDomain};
pub use find::{Expect, FindQuery};
pub use forward::Forwarder;
pub use handler_context::{
    InCurrentHandler, current_bus, current_event, current_handler_id, in_current_handler,
    in_handler,
};
pub(crate) use handlers::HandlerTable;
pub(crate) use hooks::hook_completed;
pub(crate) use wait::wait_for;

/// An in-process event bus: handlers subscribe to event types, `dispatch` enqueues events, and a
/// per-bus task processes them in FIFO order.
///
/// `EventBus` is a cheap handle (`Clone` shares the same bus). The bus starts its processing task
/// on the first dispatch, inside the current tokio runtime. It lives while any handle to it exists
/// or any event is queued on it; dropping every handle after the queue drains frees it.
///
/// ```
/// use bubus::{Event, EventBus, EventHandle};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// #[event(result = String)]
/// struct UserLoginEvent {
///     username: String,
///     is_admin: bool,
/// }
///
/// async fn handle_login(event: EventHandle<UserLoginEvent>) -> String {
///     format!("{} logged in (admin={})", event.username, event.is_admin)
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let bus = EventBus::new("AppBus");
/// bus.on(handle_login);
///
/// let event = bus.dispatch(UserLoginEvent { username: "alice".into(), is_admin: true })?;
/// assert_eq!(event.event_result().await?, "alice logged in (admin=true)");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<BusInner>,
}

pub(crate) struct BusInner {
    pub(crate) id: Uuid,
    pub(crate) name: Arc<str>,
    pub(crate) label: Arc<str>,
    pub(crate) config: BusConfig,
    pub(crate) domain: LockDomain,
    /// The bus-serial event lock.
    pub(crate) bus_lock: FairLock,
    pub(crate) state: Mutex<BusState>,
    /// Wakes the run loop; shared with it so it can wait without keeping the bus alive.
    pub(crate) wake: Arc<Notify>,
    pub(crate) idle: Notify,
    /// Someone called `wait_until_idle` on this bus (so becoming idle must notify).
    pub(crate) idle_waited: AtomicBool,
    /// `find(future)` waiters, resolved at dispatch.
    pub(crate) find_waiters: Mutex<find::FindWaiters>,
    pub(crate) waiter_count: AtomicUsize,
    /// Wakes [`EventBus::dispatch_when_room`] callers when the history may have room.
    pub(crate) room: Notify,
    /// How many `dispatch_when_room` callers wait (so completions only notify when one does).
    pub(crate) room_waiters: AtomicUsize,
    /// A handler with a `handler_result_ttl` was registered (so completions must be heard).
    pub(crate) result_ttl_handlers: AtomicBool,
    /// Every history entry numbered below this is gone, and no TTL is tracked: a completion of
    /// one of them has nothing to do in the history (`history_completed` returns without the
    /// bus lock). Written under the bus lock by a completion that found its entry gone (evicted
    /// before it completed, in drop mode: the events of a producer far ahead of the run loop,
    /// whose first completion so lets the others skip the lock), and set to `0` by one that may
    /// track a TTL; a stale read only takes the locked path.
    pub(crate) evicted_below: AtomicU64,
    pub(crate) middlewares: Arc<[Arc<dyn Middleware>]>,
    /// This bus as event paths record it (and a weak reference to it, for handing `EventBus`
    /// handles to middlewares).
    pub(crate) link: Arc<BusLink>,
}

pub(crate) struct BusState {
    pub(crate) queue: Queue,
    pub(crate) history: history::History,
    pub(crate) handlers: HandlerTable,
    /// Events taken off the queue and not yet finished on this bus.
    pub(crate) in_flight: usize,
    /// The run loop waits for work (set and cleared through [`set_loop_parked`](Self::set_loop_parked)).
    loop_parked: bool,
    /// The run loop runs on a current-thread runtime, so it is counted in
    /// [`run_loop::ACTIVE_CURRENT_THREAD_LOOPS`] while it is not parked.
    loop_counted: bool,
    /// The run loop was woken (or started) for work and has not looked at the queue since. If
    /// someone else takes the last queued event meanwhile (an awaiter processing it itself, a
    /// queue-jump), the loop has nothing left to do: it is marked parked again ([`took`]), so
    /// that it no longer counts as active (`wait::process_each` looks at that count). It still
    /// runs once, for nothing; a dispatch meanwhile marks it active again without waking it a
    /// second time.
    ///
    /// [`took`]: Self::took
    loop_woken: bool,
    pub(crate) stopped: bool,
    pub(crate) run_loop: Option<JoinHandle<()>>,
    /// Events of `parallel` concurrency, each processed on its own task.
    pub(crate) parallel_tasks: JoinSet<()>,
    pub(crate) warned_drop: bool,
    /// The bus itself while it has queued or in-flight events, so dropping every `EventBus`
    /// handle never strands them; released when the bus becomes idle.
    pub(crate) busy: Option<Arc<BusInner>>,
    /// The bus evicts unfinished events (`max_history_drop` with a bound), so its history
    /// tracks which it started.
    pub(crate) track_started: bool,
}

impl BusState {
    /// Takes the queued event at `pos` (0: the head) for processing.
    pub(crate) fn take_queued(&mut self, pos: usize) -> Option<Arc<EventInner>> {
        let (event, seq) = remove_at(&mut self.queue.entries, pos)?;
        Some(self.took(event, seq))
    }

    /// [`take_queued`](Self::take_queued) of the head, the usual position: inlined into the
    /// run loop and the awaiter's own processing, which have just looked at the head under the
    /// same lock, so the queue's emptiness is not checked twice and no call is made.
    #[inline(always)]
    pub(crate) fn take_head(&mut self) -> Option<Arc<EventInner>> {
        let (event, seq) = self.queue.entries.pop_front()?;
        Some(self.took(event, seq))
    }

    /// Accounts for `event` (history entry `seq`), just taken off the queue.
    #[inline(always)]
    fn took(&mut self, event: Arc<EventInner>, seq: u64) -> Arc<EventInner> {
        self.in_flight += 1;
        if self.loop_woken && self.queue.entries.is_empty() {
            // Taken by someone else than the run loop it was woken for (see `loop_woken`).
            self.set_loop_parked(true);
        }
        if self.track_started {
            // Drop mode evicts events this bus started before those still queued here.
            self.history.mark_started(seq);
        }
        event
    }
}

/// A bus's queue: its events in FIFO order, each with its sequence number in the bus's history
/// (so taking one up marks it started there without a look into the event's own state).
#[derive(Default)]
pub(crate) struct Queue {
    entries: VecDeque<(Arc<EventInner>, u64)>,
}

impl Queue {
    /// Appends `event`, whose history entry is `seq`.
    pub(crate) fn push_back(&mut self, event: Arc<EventInner>, seq: u64) {
        self.entries.push_back((event, seq));
    }

    /// The head.
    pub(crate) fn front(&self) -> Option<&Arc<EventInner>> {
        self.entries.front().map(|(event, _)| event)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The events, head first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Arc<EventInner>> + '_ {
        self.entries.iter().map(|(event, _)| event)
    }

    /// Takes every event out, head first.
    pub(crate) fn drain(&mut self) -> Vec<Arc<EventInner>> {
        self.entries.drain(..).map(|(event, _)| event).collect()
    }
}

/// `deque.remove(pos)`, with `pop_front`'s shortcut for the front — the usual position (the
/// queue's head) and one `VecDeque::remove` does not special-case.
fn remove_at<T>(deque: &mut VecDeque<T>, pos: usize) -> Option<T> {
    if pos == 0 {
        deque.pop_front()
    } else {
        deque.remove(pos)
    }
}

impl Drop for BusInner {
    fn drop(&mut self) {
        // A run loop that was counted as active and never parked (its runtime shut down, or it
        // was aborted while running) is not counted any more.
        self.state.get_mut().set_loop_parked(true);
        // Lets a parked run loop notice the bus is gone and exit.
        self.wake.notify_one();
    }
}

impl EventBus {
    /// A bus with default options. The name shows up in labels (`Name#abcd`), handler ids and
    /// logs.
    pub fn new(name: impl Into<String>) -> Self {
        EventBus::builder(name).build()
    }

    /// A builder for a bus with non-default options.
    pub fn builder(name: impl Into<String>) -> EventBusBuilder {
        EventBusBuilder::new(name)
    }

    pub(crate) fn from_builder(builder: EventBusBuilder) -> Self {
        let id = builder
            .id
            .unwrap_or_else(|| crate::event::inner::new_event_id(Timestamp::now()));
        let name: Arc<str> = if builder.name.is_empty() {
            Arc::from("EventBus")
        } else {
            Arc::from(builder.name)
        };
        let label: Arc<str> = Arc::from(format!("{name}#{}", short_id(&id)));
        let middlewares: Arc<[Arc<dyn Middleware>]> = Arc::from(builder.middlewares.0);
        let track_started = builder.config.max_history_drop
            && builder.config.max_history_size.is_some_and(|max| max > 0);
        EventBus {
            inner: Arc::new_cyclic(|self_ref| BusInner {
                id,
                name,
                label: Arc::clone(&label),
                config: builder.config,
                domain: builder.domain.unwrap_or_default(),
                bus_lock: FairLock::new(),
                state: Mutex::new(BusState {
                    queue: Queue::default(),
                    history: history::History::default(),
                    handlers: HandlerTable::default(),
                    in_flight: 0,
                    loop_parked: true,
                    loop_counted: false,
                    loop_woken: false,
                    stopped: false,
                    run_loop: None,
                    busy: None,
                    parallel_tasks: JoinSet::new(),
                    warned_drop: false,
                    track_started,
                }),
                wake: Arc::new(Notify::new()),
                idle: Notify::new(),
                idle_waited: AtomicBool::new(false),
                find_waiters: Mutex::new(find::FindWaiters::default()),
                waiter_count: AtomicUsize::new(0),
                room: Notify::new(),
                room_waiters: AtomicUsize::new(0),
                result_ttl_handlers: AtomicBool::new(false),
                evicted_below: AtomicU64::new(0),
                middlewares,
                link: Arc::new(BusLink {
                    label: Arc::clone(&label),
                    bus: self_ref.clone() as Weak<dyn Any + Send + Sync>,
                    listed: true,
                }),
            }),
        }
    }

    pub(crate) fn from_inner(inner: Arc<BusInner>) -> Self {
        EventBus { inner }
    }

    /// The bus id (UUIDv7 unless set with [`EventBusBuilder::id`]).
    pub fn id(&self) -> Uuid {
        self.inner.id
    }

    /// The bus name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// `Name#abcd`: the name and the last four hex digits of the id, as recorded in `event_path`.
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// The bus's defaults.
    pub fn config(&self) -> &BusConfig {
        &self.inner.config
    }

    /// The domain whose lock `global-serial` events take.
    pub fn lock_domain(&self) -> &LockDomain {
        &self.inner.domain
    }

    /// Subscribes a handler; the pattern is the handler's event type (`EventHandle<E>` →
    /// `E::EVENT_TYPE`; `AnyEvent` → `"*"`).
    ///
    /// Handlers may be sync or async functions, closures, or [`method`](crate::handler::method)s
    /// of a shared service. They return the event's result type, or a `Result` of it. Handlers of
    /// one event run in this order: those registered for the exact type, in registration order,
    /// then the `"*"` handlers, in registration order.
    ///
    /// ```
    /// use bubus::{AnyEvent, Event, EventBus, EventHandle};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
    /// #[event(result = u64)]
    /// struct Square { n: u64 }
    ///
    /// let bus = EventBus::new("Math");
    /// let typed = bus.on(|e: EventHandle<Square>| e.n * e.n);          // sync closure
    /// let logger = bus.on(|e: AnyEvent| async move { let _ = e.event_type(); }); // all events
    /// assert_eq!(typed.event_pattern(), "Square");
    /// assert_eq!(logger.event_pattern(), "*");
    /// ```
    #[track_caller]
    pub fn on<I: HandlerInput, M>(&self, handler: impl IntoHandler<I, M>) -> EventHandler {
        self.register(
            handler,
            HandlerOptions::new(),
            std::panic::Location::caller(),
        )
    }

    /// Subscribes a handler to an explicit pattern: an event type name, or `"*"` for every event.
    ///
    /// A typed handler (`EventHandle<E>`) subscribed to another type's name receives those events
    /// decoded as `E`; a payload that does not decode becomes an error result naming the field.
    #[track_caller]
    pub fn on_pattern<I: HandlerInput, M>(
        &self,
        pattern: &str,
        handler: impl IntoHandler<I, M>,
    ) -> EventHandler {
        self.register(
            handler,
            HandlerOptions::new().pattern(pattern),
            std::panic::Location::caller(),
        )
    }

    /// Subscribes a handler with explicit options (pattern, id, name, timeouts).
    #[track_caller]
    pub fn on_with<I: HandlerInput, M>(
        &self,
        handler: impl IntoHandler<I, M>,
        options: HandlerOptions,
    ) -> EventHandler {
        self.register(handler, options, std::panic::Location::caller())
    }

    fn register<I: HandlerInput, M>(
        &self,
        handler: impl IntoHandler<I, M>,
        options: HandlerOptions,
        location: &'static std::panic::Location<'static>,
    ) -> EventHandler {
        let pattern: std::borrow::Cow<'static, str> = match options.pattern {
            Some(p) if !p.is_empty() => std::borrow::Cow::Owned(p),
            _ => std::borrow::Cow::Borrowed(input_pattern::<I>()),
        };
        let name: std::borrow::Cow<'static, str> = match options.name {
            Some(n) => std::borrow::Cow::Owned(n),
            None => handler.__handler_name(),
        };
        let file_path: Option<Arc<str>> = match options.file_path {
            Some(p) => Some(Arc::from(p)),
            None if self.inner.config.event_handler_detect_file_paths => {
                Some(location_label(location))
            }
            None => None,
        };
        let forward_target = handler.__forward_target();
        let func = handler.__into_handler_fn();
        let mut st = self.inner.state.lock();
        // A handler registered again and again shares its name and pattern with the last one.
        let pattern = st.handlers.share_pattern(pattern);
        let name = st.handlers.share_name(name);
        // The handler is counted in its name's slot as its id is made (a derived id), and
        // whether it is a duplicate comes from the same lookup.
        let (id, occurrence, slot, duplicate) = match options.id {
            Some(id) => {
                let (slot, duplicate) = st.handlers.count_name(&name, &pattern);
                (id, None, slot, duplicate)
            }
            None => {
                let (id, occurrence, slot, duplicate) =
                    st.handlers
                        .next_default_id(&self.inner.name, &name, &pattern);
                (id, Some(occurrence), slot, duplicate)
            }
        };
        if duplicate {
            if self.inner.config.warn_on_duplicate_handler_names {
                tracing::warn!(
                    bus = %self.inner.label,
                    handler = %name,
                    pattern = %pattern,
                    "handler {name} is already registered for {pattern}: results keyed by handler \
                     name will keep only one of them; give handlers unique names (warned once \
                     per name and pattern)"
                );
            } else {
                tracing::debug!(
                    bus = %self.inner.label,
                    handler = %name,
                    pattern = %pattern,
                    "handler is already registered for this pattern; it will run once per registration"
                );
            }
        }
        let meta = Arc::new(HandlerMeta {
            id,
            name,
            file_path,
            pattern,
            registered_at: Timestamp::now(),
            timeout: options.timeout,
            slow_timeout: options.slow_timeout,
            concurrency: options.concurrency,
            forward_target,
            bus_id: self.inner.id,
            bus_name: Arc::clone(&self.inner.name),
            bus_label: Arc::clone(&self.inner.label),
            // Written on the wire as abxbus 2.5 does, with the snapshot entry and each result.
            wire_extra: options.result_ttl.map(|ttl| {
                let mut keys = serde_json::Map::new();
                keys.insert(
                    "handler_result_ttl".into(),
                    serde_json::Value::from(ttl.as_secs()),
                );
                Arc::new(keys)
            }),
        });
        if options.result_ttl.is_some() {
            self.inner
                .result_ttl_handlers
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let entry = Arc::new(HandlerEntry {
            meta: Arc::clone(&meta),
            func,
            stub: false,
            occurrence,
            slot,
        });
        st.handlers.add_counted(entry);
        drop(st);
        let handler = EventHandler { meta };
        self.inner.hook_handlers_change(&handler, true);
        handler
    }

    /// Unsubscribes a handler. Results it already produced stay on their events. Returns whether
    /// it was registered.
    pub fn off(&self, handler: &EventHandler) -> bool {
        self.off_by_id(&handler.meta.id)
    }

    /// Unsubscribes the handler with this id. Returns whether it was registered.
    pub fn off_by_id(&self, id: &HandlerId) -> bool {
        let removed = self.inner.state.lock().handlers.remove_id(id);
        match removed {
            Some(entry) => {
                let handler = EventHandler {
                    meta: Arc::clone(&entry.meta),
                };
                // The closure is dropped here, outside the bus lock.
                drop(entry);
                self.inner.hook_handlers_change(&handler, false);
                true
            }
            None => false,
        }
    }

    /// Unsubscribes every handler registered for `pattern` (`"*"` removes the wildcard handlers
    /// only). Returns how many were removed.
    pub fn off_pattern(&self, pattern: &str) -> usize {
        let removed = self.inner.state.lock().handlers.remove_pattern(pattern);
        for entry in &removed {
            let handler = EventHandler {
                meta: Arc::clone(&entry.meta),
            };
            self.inner.hook_handlers_change(&handler, false);
        }
        removed.len()
    }

    /// The registered handlers.
    pub fn handlers(&self) -> Vec<EventHandler> {
        let st = self.inner.state.lock();
        let mut all: Vec<EventHandler> = st
            .handlers
            .all()
            .map(|h| EventHandler {
                meta: Arc::clone(&h.meta),
            })
            .collect();
        all.sort_by_key(|h| h.meta.registered_at);
        all
    }

    /// Enqueues an event and returns at once with a handle to it.
    ///
    /// Accepts a new typed event, a [`DynEvent`](crate::DynEvent), or a handle to an existing
    /// event — dispatching an existing event on another bus forwards it there (its `event_path`
    /// grows by this bus's label); dispatching it on a bus already in its path does nothing.
    ///
    /// Inside a handler, the new event's parent is the event being handled (unless it has an
    /// explicit parent id), and awaiting it processes it right away (queue-jump).
    ///
    /// Never blocks, never waits for processing. Alias: `emit`.
    ///
    /// # Errors
    ///
    /// [`DispatchError::Stopped`] after [`stop`](Self::stop);
    /// [`DispatchError::HistoryFull`] when the history is full of unfinished events (see
    /// [`EventBusBuilder::history_full`]); [`DispatchError::NoRuntime`] outside a tokio runtime.
    /// Nothing is enqueued when it fails.
    #[doc(alias = "emit")]
    pub fn dispatch<T: IntoEvent>(&self, event: T) -> Result<T::Handle, DispatchError> {
        // A new event is dated on tokio's clock before it is built (see `History::push`).
        let created = T::FRESH.then(tokio::time::Instant::now);
        let handle = event.__into_event();
        self.inner.dispatch(handle.__any().inner(), created)?;
        Ok(handle)
    }

    /// Like [`dispatch`](Self::dispatch), but when the history is full of unfinished events
    /// ([`DispatchError::HistoryFull`]) it waits — up to `timeout`, or for as long as it takes
    /// with `None` — until one of them completes and makes room, then dispatches. A producer
    /// faster than the handlers so waits for them instead of spinning on `HistoryFull`.
    ///
    /// Waiting producers are woken when an event of this bus's history completes; several may
    /// race for the room, and the losers wait again. Inside a handler, waiting for room that
    /// only the handler's own event could make waits until the timeout.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bubus::{DynEvent, EventBus};
    /// use serde_json::json;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bubus::Error> {
    /// let bus = EventBus::builder("Ingest").max_history_size(Some(8)).build();
    /// bus.on_pattern("Row", |_: bubus::AnyEvent| async { tokio::task::yield_now().await });
    /// for n in 0..100 {
    ///     // `dispatch` would fail with HistoryFull once 8 rows are unfinished.
    ///     let row = DynEvent::new("Row", json!({ "n": n })).unwrap();
    ///     bus.dispatch_when_room(row, Some(Duration::from_secs(5))).await?;
    /// }
    /// assert!(bus.wait_until_idle(None).await);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`DispatchError::HistoryFull`] when the timeout elapsed with the history still full;
    /// otherwise as [`dispatch`](Self::dispatch).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: until it returns, nothing was dispatched.
    pub async fn dispatch_when_room<T: IntoEvent>(
        &self,
        event: T,
        timeout: Option<Duration>,
    ) -> Result<T::Handle, DispatchError> {
        // A new event is dated on tokio's clock on the first try only (see `History::push`):
        // after waiting for room, its age is worked out from its `event_created_at`.
        let mut created = T::FRESH.then(tokio::time::Instant::now);
        let handle = event.__into_event();
        let event = handle.__any().inner();
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let _waiting = RoomWaiter::new(&self.inner);
        loop {
            let room = self.inner.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let full = match self.inner.dispatch(event, created.take()) {
                Err(full @ DispatchError::HistoryFull { .. }) => full,
                Err(other) => return Err(other),
                Ok(()) => return Ok(handle),
            };
            match deadline {
                None => room.await,
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, room).await.is_err() {
                        return Err(full);
                    }
                }
            }
        }
    }

    /// Waits until the queue is empty and no event is being processed on this bus. Returns
    /// `false` if `timeout` elapsed first (the bus keeps working).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn wait_until_idle(&self, timeout: Option<Duration>) -> bool {
        {
            // A restored bus has a queue but no run loop until something starts it.
            let mut st = self.inner.state.lock();
            if !st.queue.is_empty() && !st.stopped {
                let _ = self.inner.ensure_run_loop(&mut st);
            }
        }
        let wait = self.inner.wait_idle();
        match timeout {
            None => {
                wait.await;
                true
            }
            Some(t) => tokio::time::timeout(t, wait).await.is_ok(),
        }
    }

    /// Stops the bus: first waits up to `timeout` for it to become idle (if given), then stops
    /// processing. Events still queued and handlers still running get error results
    /// (cancelled / aborted), so nothing that awaits them hangs. The history and the handlers
    /// stay (see [`stop_and_clear`](Self::stop_and_clear)). Dispatching afterwards fails with
    /// [`DispatchError::Stopped`]. Idempotent.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe while it waits for the running event to be aborted: cancelling it then
    /// leaves the bus stopped with that event still being torn down in the background.
    pub async fn stop(&self, timeout: Option<Duration>) {
        self.stop_inner(timeout, false).await;
    }

    /// As [`stop`](Self::stop), then drops the history and the handlers too (the reference's
    /// `stop(clear=True)`), so the bus holds nothing but its name.
    ///
    /// # Cancel safety
    ///
    /// As [`stop`](Self::stop).
    pub async fn stop_and_clear(&self, timeout: Option<Duration>) {
        self.stop_inner(timeout, true).await;
    }

    async fn stop_inner(&self, timeout: Option<Duration>, clear: bool) {
        if let Some(t) = timeout {
            if !t.is_zero() {
                self.wait_until_idle(Some(t)).await;
            }
        }
        self.inner.stop(clear).await;
    }

    /// Whether [`stop`](Self::stop) was called.
    pub fn is_stopped(&self) -> bool {
        self.inner.state.lock().stopped
    }

    /// The events in this bus's history, oldest first (pending, started and completed).
    pub fn event_history(&self) -> Vec<AnyEvent> {
        let mut st = self.inner.state.lock();
        self.inner.expire(&mut st);
        st.history
            .iter()
            .map(|e| AnyEvent::from_inner(Arc::clone(e)))
            .collect()
    }

    /// History events with this status.
    pub fn events_with_status(&self, status: EventStatus) -> Vec<AnyEvent> {
        let events: Vec<Arc<EventInner>> = {
            let mut st = self.inner.state.lock();
            self.inner.expire(&mut st);
            st.history.iter().cloned().collect()
        };
        events
            .into_iter()
            .filter(|e| e.state.lock().status == status)
            .map(AnyEvent::from_inner)
            .collect()
    }

    /// History events not yet started.
    pub fn events_pending(&self) -> Vec<AnyEvent> {
        self.events_with_status(EventStatus::Pending)
    }

    /// History events started and not completed.
    pub fn events_started(&self) -> Vec<AnyEvent> {
        self.events_with_status(EventStatus::Started)
    }

    /// Completed history events.
    pub fn events_completed(&self) -> Vec<AnyEvent> {
        self.events_with_status(EventStatus::Completed)
    }

    /// The estimated bytes this bus's history holds (see [`crate::memory`]).
    pub fn history_bytes(&self) -> usize {
        let mut st = self.inner.state.lock();
        self.inner.expire(&mut st);
        st.history.bytes()
    }

    /// How many events are queued, not yet taken up for processing.
    pub fn queue_len(&self) -> usize {
        self.inner.state.lock().queue.len()
    }

    /// An event in this bus's history (or queue) by id.
    pub fn find_event_by_id(&self, id: Uuid) -> Option<AnyEvent> {
        self.inner.find_event_by_id(id).map(AnyEvent::from_inner)
    }

    /// Whether `event` descends from `ancestor` (its parent, grandparent, …). Follows live parent
    /// links, and this bus's history for parents no longer linked. An event is not its own child.
    pub fn event_is_child_of(
        &self,
        event: impl AsRef<AnyEvent>,
        ancestor: impl AsRef<AnyEvent>,
    ) -> bool {
        let event = event.as_ref().inner();
        let ancestor = ancestor.as_ref().inner();
        if Arc::ptr_eq(event, ancestor) {
            return false;
        }
        event.has_ancestor(ancestor, &|id| self.inner.find_event_by_id(id))
    }

    /// Whether `event` is an ancestor of `descendant`.
    pub fn event_is_parent_of(
        &self,
        event: impl AsRef<AnyEvent>,
        descendant: impl AsRef<AnyEvent>,
    ) -> bool {
        self.event_is_child_of(descendant, event)
    }

    /// Looks up an event of type `E` in this bus's history (most recent first) and/or waits for
    /// one to be dispatched: see [`FindQuery`]. Defaults: all history, no waiting.
    pub fn find<E: Event>(&self) -> FindQuery<EventHandle<E>> {
        FindQuery::new(self.clone(), Arc::from(E::EVENT_TYPE))
    }

    /// Like [`find`](Self::find), by event type name, or `"*"` for any event.
    pub fn find_pattern(&self, pattern: &str) -> FindQuery<AnyEvent> {
        FindQuery::new(self.clone(), Arc::from(pattern))
    }

    /// The parent/child tree of this bus's history: each event with its handlers' status, result
    /// or error and duration, and the events each handler dispatched nested under it. Also logged
    /// line by line at `debug` level through `tracing`.
    pub fn log_tree(&self) -> String {
        let events: Vec<Arc<EventInner>> =
            self.inner.state.lock().history.iter().cloned().collect();
        let tree = crate::tree::render(&events);
        for line in tree.lines() {
            tracing::debug!(bus = %self.inner.label, "{line}");
        }
        tree
    }
}

impl fmt::Debug for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.inner.state.lock();
        f.debug_struct("EventBus")
            .field("label", &self.inner.label)
            .field("queue", &st.queue.len())
            .field("in_flight", &st.in_flight)
            .field("history", &st.history.len())
            .field("handlers", &st.handlers.len())
            .field("stopped", &st.stopped)
            .finish()
    }
}

impl fmt::Display for EventBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.label)
    }
}

impl PartialEq for EventBus {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl BusInner {
    /// The event lock an event takes on this bus, resolved now: none for parallel events.
    pub(crate) fn event_lock(&self, event: &EventInner) -> Option<&FairLock> {
        match event.concurrency().unwrap_or(self.config.event_concurrency) {
            EventConcurrency::GlobalSerial => Some(&self.domain.lock),
            EventConcurrency::BusSerial => Some(&self.bus_lock),
            EventConcurrency::Parallel => None,
        }
    }

    /// [`event_lock`](Self::event_lock), owned.
    pub(crate) fn event_lock_ref(
        self: &Arc<Self>,
        event: &EventInner,
    ) -> Option<handler_context::LockRef> {
        use handler_context::LockRef;
        match event.concurrency().unwrap_or(self.config.event_concurrency) {
            EventConcurrency::GlobalSerial => Some(LockRef::Domain(Arc::clone(&self.domain.lock))),
            EventConcurrency::BusSerial => Some(LockRef::Bus(Arc::clone(self))),
            EventConcurrency::Parallel => None,
        }
    }

    pub(crate) fn find_event_by_id(&self, id: Uuid) -> Option<Arc<EventInner>> {
        let st = self.state.lock();
        st.history
            .iter()
            .rev()
            .chain(st.queue.iter())
            .find(|e| e.id == id)
            .cloned()
    }

    fn is_idle(st: &BusState) -> bool {
        st.queue.is_empty() && st.in_flight == 0
    }

    /// Wakes `wait_until_idle` callers, if there ever were any.
    pub(crate) fn notify_idle(&self) {
        if self.idle_waited.load(std::sync::atomic::Ordering::SeqCst) {
            self.idle.notify_waiters();
        }
    }

    async fn wait_idle(&self) {
        self.idle_waited
            .store(true, std::sync::atomic::Ordering::SeqCst);
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if BusInner::is_idle(&self.state.lock()) {
                return;
            }
            notified.await;
        }
    }
}

/// Counts a [`EventBus::dispatch_when_room`] caller among the bus's room waiters while it lives.
struct RoomWaiter<'a>(&'a BusInner);

impl<'a> RoomWaiter<'a> {
    fn new(bus: &'a BusInner) -> Self {
        bus.room_waiters
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        RoomWaiter(bus)
    }
}

impl Drop for RoomWaiter<'_> {
    fn drop(&mut self) {
        self.0
            .room_waiters
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// `file:line` of a registration site, formatted once per site (a program has finitely many; a
/// one-off handler registered in a loop should not format it every time).
fn location_label(location: &'static std::panic::Location<'static>) -> Arc<str> {
    static LABELS: crate::memo::Memo<usize, Arc<str>> = crate::memo::Memo::new();
    // The thread's last answer, in front of the table: a handler registered again and again
    // from one place skips the lock and the hash.
    std::thread_local! {
        static LAST: std::cell::RefCell<Option<(usize, Arc<str>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let key = std::ptr::from_ref(location) as usize;
    let last = LAST.try_with(|last| match &*last.borrow() {
        Some((known, label)) if *known == key => Some(Arc::clone(label)),
        _ => None,
    });
    if let Ok(Some(label)) = last {
        return label;
    }
    let label = LABELS.get_or_insert_with(key, || {
        Arc::from(format!("{}:{}", location.file(), location.line()))
    });
    let _ = LAST.try_with(|last| *last.borrow_mut() = Some((key, Arc::clone(&label))));
    label
}

/// # Names from Python and TypeScript bubus
///
/// The family's spellings of what this crate names otherwise, for code ported from there (see
/// also the crate docs' table).
impl EventBus {
    /// Alias of [`dispatch`](Self::dispatch), the newer reference runtimes' name for it.
    ///
    /// # Errors
    ///
    /// As [`dispatch`](Self::dispatch).
    pub fn emit<T: IntoEvent>(&self, event: T) -> Result<T::Handle, DispatchError> {
        self.dispatch(event)
    }

    /// Waits for the next event of type `E` dispatched on this bus (the seed API's `expect`;
    /// `find::<E>().no_past().future()` in this crate's terms): see [`Expect`].
    pub fn expect<E: Event>(&self) -> Expect<EventHandle<E>> {
        Expect::new(self.find::<E>())
    }

    /// Like [`expect`](Self::expect), by event type name, or `"*"` for any event.
    pub fn expect_pattern(&self, pattern: &str) -> Expect<AnyEvent> {
        Expect::new(self.find_pattern(pattern))
    }
}

// The engine's side of the event model's references to buses: the model keeps them type-erased
// and never names the engine (scripts/check-layers.py).

impl BusLink {
    /// The bus, while it lives (a bus of this process). Inlined: an awaiter processing its
    /// event itself asks for it on every await (`wait::queued_on_one`).
    #[inline]
    pub(crate) fn upgrade(&self) -> Option<Arc<BusInner>> {
        self.bus.upgrade()?.downcast::<BusInner>().ok()
    }
}

impl EventState {
    /// The bus of one of this event's slots, if it is still alive.
    #[inline]
    pub(crate) fn slot_bus(&self, slot: &BusSlot) -> Option<Arc<BusInner>> {
        self.path.get(slot.link as usize)?.upgrade()
    }

    /// The live buses the event is queued on, in dispatch order.
    pub(crate) fn queued_buses(&self) -> smallvec::SmallVec<[Arc<BusInner>; 2]> {
        self.buses
            .iter()
            .filter(|slot| slot.phase == BusPhase::Queued)
            .filter_map(|slot| self.slot_bus(slot))
            .collect()
    }

    /// A slot for `bus` (whose entry is at `link` in the path), queued. Inlined into `dispatch`,
    /// its one caller.
    #[inline]
    pub(crate) fn push_slot(&mut self, bus: &BusInner, link: usize, history_seq: u64) {
        self.buses.push(BusSlot {
            link: link as u32,
            bus_id: bus.id,
            phase: BusPhase::Queued,
            history_seq,
            tell: bus.hears_completions() || self.has_own_ttl(),
        });
    }

    /// `bus`'s slot of this event while the bus is not done with it.
    pub(crate) fn active_slot(&mut self, bus: &BusInner) -> Option<&mut BusSlot> {
        self.buses
            .iter_mut()
            .find(|s| s.bus_id == bus.id && s.phase != BusPhase::Done)
    }
}
