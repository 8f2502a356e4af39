//! Which handler of which event on which bus is running: set around every handler call (and
//! every poll of an async handler), so it is task-local. It links child events to their parent
//! and tells an `.await` on an event that it must queue-jump. (The user's context values, carried
//! the same way, are the layer below: `crate::context`.)

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use smallvec::SmallVec;
use tokio::task::futures::TaskLocalFuture;

use super::{BusInner, EventBus};
use crate::context::{ContextMap, context_scope, current_context};
use crate::event::AnyEvent;
use crate::event::inner::EventInner;
use crate::handler::{HandlerId, HandlerMeta};
use uuid::Uuid;

/// The event locks held by the chain of handlers that led here (bus locks and the global lock),
/// by address: a queue-jump re-enters them instead of waiting for itself.
#[derive(Default)]
pub(crate) struct HeldLocks {
    pub(crate) addrs: SmallVec<[usize; 2]>,
    /// The same locks, owned, once a queue-jump is in the chain (a jump lends them all, so that
    /// the processing it started may outlive its awaiter). `None` where the chain is one
    /// processing: its lock (if any) is the event lock of the handler's event on its bus.
    pub(crate) owned: Option<Arc<[LockRef]>>,
    /// How many queue-jumps are nested on this task's stack.
    pub(crate) depth: u32,
}

impl HeldLocks {
    /// The lock held by a run loop (or an outside helper) for one event.
    pub(crate) fn one(addr: usize) -> Self {
        HeldLocks {
            addrs: smallvec::smallvec![addr],
            owned: None,
            depth: 0,
        }
    }

    pub(crate) fn contains(&self, addr: usize) -> bool {
        self.addrs.contains(&addr)
    }
}

/// Cloned for every handler run (its context carries the chain's locks): the one or two
/// addresses of the usual chain are copied as words, where the derived clone pushes them one by
/// one through `extend` (and `from_slice` calls `memcpy`).
impl Clone for HeldLocks {
    fn clone(&self) -> Self {
        let addrs = match *self.addrs.as_slice() {
            [] => SmallVec::new(),
            [a] => SmallVec::from_buf_and_len([a, 0], 1),
            [a, b] => SmallVec::from_buf([a, b]),
            ref more => SmallVec::from_slice(more),
        };
        HeldLocks {
            addrs,
            owned: self.owned.clone(),
            depth: self.depth,
        }
    }
}

/// An event lock, owned: a bus's own lock (kept alive through the bus) or a domain's.
#[derive(Clone)]
pub(crate) enum LockRef {
    Bus(Arc<BusInner>),
    Domain(Arc<crate::lock::FairLock>),
}

impl std::ops::Deref for LockRef {
    type Target = crate::lock::FairLock;

    fn deref(&self) -> &crate::lock::FairLock {
        match self {
            LockRef::Bus(bus) => &bus.bus_lock,
            LockRef::Domain(lock) => lock,
        }
    }
}

/// The running handler: its event, the bus running it and its result. Only the event is held
/// (one reference count per handler run); the bus and the handler are looked up through it when
/// asked for, which is rare next to setting the context up around every handler call.
#[derive(Clone)]
pub(crate) struct HandlerCtx {
    pub(crate) event: Arc<EventInner>,
    pub(crate) bus_id: Uuid,
    pub(crate) result_index: usize,
    pub(crate) held: HeldLocks,
}

/// What a [`HandlerCtx`] is built from, borrowed from the handler's run: copied into the
/// context where it is needed (in the thread's slot, for a sync handler).
#[derive(Clone, Copy)]
pub(crate) struct CtxParts<'a> {
    pub(crate) event: &'a Arc<EventInner>,
    pub(crate) bus_id: Uuid,
    pub(crate) result_index: usize,
    pub(crate) held: &'a HeldLocks,
}

impl CtxParts<'_> {
    /// The context, built where it is to be kept.
    #[inline(always)]
    pub(crate) fn build(self) -> HandlerCtx {
        HandlerCtx {
            event: Arc::clone(self.event),
            bus_id: self.bus_id,
            result_index: self.result_index,
            held: self.held.clone(),
        }
    }
}

impl HandlerCtx {
    /// The bus running the handler (alive while the handler runs: its processing holds it).
    pub(crate) fn bus(&self) -> Option<Arc<BusInner>> {
        let st = self.event.state.lock();
        st.buses
            .iter()
            .find(|slot| slot.bus_id == self.bus_id)
            .and_then(|slot| st.slot_bus(slot))
    }

    /// The running handler, from its result record.
    pub(crate) fn handler(&self) -> Option<Arc<HandlerMeta>> {
        self.event
            .state
            .lock()
            .results
            .get(self.result_index)
            .map(|result| Arc::clone(&result.handler))
    }
}

std::thread_local! {
    /// The context of the handler running on this thread: set around a sync handler's call and
    /// around each poll (and the drop) of an async handler's future, so it is the task's for as
    /// long as the handler lives — what `tokio::task_local!` does, but a sync handler's context is
    /// built in the slot and taken out of it, not swapped in and out.
    static CURRENT: RefCell<Option<HandlerCtx>> = const { RefCell::new(None) };
}

/// A copy of the current handler context, if a handler is running. Outside a handler (every
/// await from ordinary code asks) the answer is [`in_handler`]'s few loads, inlined; only a
/// context that is there is copied out, out of line.
#[inline]
pub(crate) fn current() -> Option<HandlerCtx> {
    if in_handler() { copy_current() } else { None }
}

#[inline(never)]
fn copy_current() -> Option<HandlerCtx> {
    with_current(Clone::clone)
}

// Inlined: `dispatch` asks on every event, and outside a handler the answer is a few loads.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(&HandlerCtx) -> R) -> Option<R> {
    CURRENT
        .try_with(|current| current.borrow().as_ref().map(f))
        .ok()
        .flatten()
}

/// Runs `f` (a sync handler's call) with the context of `ctx` current, then puts back the one
/// that was, even if `f` panics. When none was (the usual case), the context is built in the
/// thread's slot and taken out of it again, through one look-up of the slot for both.
#[inline]
pub(crate) fn sync_scope<R>(ctx: CtxParts<'_>, f: impl FnOnce() -> R) -> R {
    /// Empties the slot if `f` panics (on return, [`sync_scope`] empties it itself, inlined).
    struct Leave<'a>(&'a RefCell<Option<HandlerCtx>>);

    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            let _inner = self.0.replace(None);
        }
    }

    CURRENT.with(|slot| {
        {
            let mut current = slot.borrow_mut();
            if current.is_some() {
                drop(current);
                return nested_sync_scope(ctx, f);
            }
            // The slot is empty: what `replace` returns has nothing to drop.
            std::mem::forget(current.replace(ctx.build()));
        }
        let leave = Leave(slot);
        let out = f();
        std::mem::forget(leave);
        // The handler's context is dropped once the slot is released: its drop may end a bus,
        // which must not find the slot borrowed.
        let _inner = slot.borrow_mut().take();
        out
    })
}

/// [`sync_scope`] inside another handler's context (a queue-jump run from a handler): the two
/// are swapped.
#[cold]
#[inline(never)]
fn nested_sync_scope<R>(ctx: CtxParts<'_>, f: impl FnOnce() -> R) -> R {
    let mut ctx = Some(ctx.build());
    enter(&mut ctx, f).unwrap_or_else(|_| slot_gone())
}

/// `fut` (an async handler's future) with `ctx` current around each of its polls, and its drop.
pub(crate) fn scope<F: Future + Unpin>(ctx: HandlerCtx, fut: F) -> Scope<F> {
    Scope {
        ctx: Some(ctx),
        fut: Some(fut),
    }
}

/// The future [`scope`] returns.
pub(crate) struct Scope<F> {
    /// The context, while it is not current (between polls).
    ctx: Option<HandlerCtx>,
    /// `None` once it finished (dropped inside the scope, as it would be when it finishes).
    fut: Option<F>,
}

/// Runs `f` with `ctx` current (moved into the thread's slot and back afterwards, even if `f`
/// panics); `Err` if the thread's slot is gone (the thread is ending).
fn enter<R>(
    ctx: &mut Option<HandlerCtx>,
    f: impl FnOnce() -> R,
) -> Result<R, std::thread::AccessError> {
    struct Leave<'a>(&'a mut Option<HandlerCtx>);

    impl Drop for Leave<'_> {
        fn drop(&mut self) {
            CURRENT.with(|current| std::mem::swap(self.0, &mut current.borrow_mut()));
        }
    }

    CURRENT.try_with(|current| std::mem::swap(ctx, &mut current.borrow_mut()))?;
    let _leave = Leave(ctx);
    Ok(f())
}

/// Entering a handler context on a thread whose slot is gone (the thread is ending): tokio's
/// task-local scope panics there too.
#[cold]
fn slot_gone() -> ! {
    panic!("the handler context is gone (the thread is ending)")
}

impl<F: Future + Unpin> Future for Scope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Scope { ctx, fut } = self.get_mut();
        let polled = enter(ctx, || {
            let Some(inner) = fut.as_mut() else {
                panic!("handler scope polled after completion");
            };
            let poll = Pin::new(inner).poll(cx);
            if poll.is_ready() {
                *fut = None;
            }
            poll
        });
        polled.unwrap_or_else(|_| slot_gone())
    }
}

impl<F> Drop for Scope<F> {
    fn drop(&mut self) {
        if std::mem::needs_drop::<F>() && self.fut.is_some() {
            // Dropped with its context current, where possible; else dropped as it is.
            let Scope { ctx, fut } = self;
            let _ = enter(ctx, || *fut = None);
        }
    }
}

/// The bus running the current handler of `event`, else the last live bus it was dispatched to.
pub(crate) fn bus_for(event: &Arc<EventInner>) -> Option<EventBus> {
    if let Some(Some(bus)) =
        with_current(|ctx| Arc::ptr_eq(&ctx.event, event).then(|| ctx.bus()).flatten())
    {
        return Some(EventBus::from_inner(bus));
    }
    let st = event.state.lock();
    st.buses
        .iter()
        .rev()
        .find_map(|slot| st.slot_bus(slot))
        .map(EventBus::from_inner)
}

/// The event whose handler is running in the current task, if any.
///
/// ```
/// use bubus::{AnyEvent, EventBus};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// assert!(bubus::bus::current_event().is_none());
/// let bus = EventBus::new("Ctx");
/// bus.on(|event: AnyEvent| {
///     assert_eq!(bubus::bus::current_event().unwrap().event_id(), event.event_id());
/// });
/// bus.dispatch(bubus::DynEvent::new("Ping", serde_json::json!({}))?)?.await?;
/// # Ok(()) }
/// ```
pub fn current_event() -> Option<AnyEvent> {
    with_current(|ctx| AnyEvent::from_inner(Arc::clone(&ctx.event)))
}

/// The id of the handler running in the current task, if any.
pub fn current_handler_id() -> Option<HandlerId> {
    with_current(|ctx| ctx.handler().map(|handler| handler.id.clone())).flatten()
}

/// The bus running the current handler, if any.
pub fn current_bus() -> Option<EventBus> {
    with_current(HandlerCtx::bus)
        .flatten()
        .map(EventBus::from_inner)
}

/// Whether the current task is running an event handler.
// Inlined: every await outside a handler asks, and the answer is a few loads.
#[inline]
pub fn in_handler() -> bool {
    with_current(|_| ()).is_some()
}

/// Carries the current handler context into a future that will run elsewhere (typically
/// `tokio::spawn`), so events it dispatches are still linked to the running event and carry the
/// same [`with_context`](crate::context::with_context) values, and awaits in it still queue-jump. Outside a handler the future
/// runs unchanged.
///
/// ```
/// use bubus::{AnyEvent, DynEvent, EventBus};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let bus = EventBus::new("Spawner");
/// let inner = bus.clone();
/// bus.on_pattern("Parent", move |_: AnyEvent| {
///     let bus = inner.clone();
///     async move {
///         let task = tokio::spawn(bubus::bus::in_current_handler(async move {
///             bus.dispatch(DynEvent::new("Child", json!({})).unwrap())
///         }));
///         let child = task.await.unwrap().unwrap();
///         assert!(child.event_parent_id().is_some());
///     }
/// });
/// bus.dispatch(DynEvent::new("Parent", json!({}))?)?.await?;
/// # Ok(()) }
/// ```
pub fn in_current_handler<F: Future>(fut: F) -> InCurrentHandler<F> {
    match current() {
        Some(ctx) => InCurrentHandler {
            inner: Either::Scoped(scope(ctx, Box::pin(context_scope(current_context(), fut)))),
        },
        None => InCurrentHandler {
            inner: Either::Plain(Box::pin(fut)),
        },
    }
}

/// The future returned by [`in_current_handler`].
#[must_use = "futures do nothing unless polled"]
pub struct InCurrentHandler<F: Future> {
    inner: Either<F>,
}

/// A future with the handler context and the user context values in scope.
type Scoped<F> = Scope<Pin<Box<TaskLocalFuture<Option<ContextMap>, F>>>>;

enum Either<F: Future> {
    Scoped(Scoped<F>),
    Plain(Pin<Box<F>>),
}

impl<F: Future> std::fmt::Debug for InCurrentHandler<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InCurrentHandler")
    }
}

impl<F: Future> Future for InCurrentHandler<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        match &mut self.inner {
            Either::Scoped(fut) => Pin::new(fut).poll(cx),
            Either::Plain(fut) => fut.as_mut().poll(cx),
        }
    }
}
