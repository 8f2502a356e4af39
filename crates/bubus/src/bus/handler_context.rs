//! Which handler of which event on which bus is running: set around every handler call (and
//! every poll of an async handler), so it is task-local. It links child events to their parent
//! and tells an `.await` on an event that it must queue-jump. (The user's context values, carried
//! the same way, are the layer below: `crate::context`.)

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use smallvec::SmallVec;
use tokio::task::futures::TaskLocalFuture;

use super::{BusInner, EventBus};
use crate::context::{ContextMap, context_scope, current_context};
use crate::event::AnyEvent;
use crate::event::inner::EventInner;
use crate::handler::{HandlerId, HandlerMeta};

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

/// The running handler: its event, the bus running it and its result. The event and the bus
/// are held (the bus weakly: a context carried into a spawned task does not keep the bus alive);
/// the handler is looked up through the event's results when asked for, which is rare next to
/// setting the context up around every handler call.
#[derive(Clone)]
pub(crate) struct HandlerCtx {
    pub(crate) event: Arc<EventInner>,
    pub(crate) bus: Weak<BusInner>,
    pub(crate) result_index: usize,
    pub(crate) held: HeldLocks,
}

/// The bus running a handler, as its context has it.
#[derive(Clone, Copy)]
pub(crate) enum BusOf<'a> {
    /// Borrowed from the processing that runs the handler.
    Running(&'a Arc<BusInner>),
    /// An owned context's ([`HandlerCtx`]).
    Kept(&'a Weak<BusInner>),
}

/// The running handler's context, borrowed: what the thread's slot points at while a handler
/// runs (the sync handler's run builds it on its stack; each poll of an async handler's
/// [`Scope`] borrows it from the context the scope owns), and what [`with_current`] lends.
#[derive(Clone, Copy)]
pub(crate) struct CtxParts<'a> {
    pub(crate) event: &'a Arc<EventInner>,
    pub(crate) bus: BusOf<'a>,
    pub(crate) result_index: usize,
    pub(crate) held: &'a HeldLocks,
}

impl CtxParts<'_> {
    /// The context, owned (an async handler's scope, a copy of the current one).
    #[inline(always)]
    pub(crate) fn build(self) -> HandlerCtx {
        HandlerCtx {
            event: Arc::clone(self.event),
            bus: match self.bus {
                BusOf::Running(bus) => Arc::downgrade(bus),
                BusOf::Kept(bus) => bus.clone(),
            },
            result_index: self.result_index,
            held: self.held.clone(),
        }
    }

    /// The bus running the handler (alive while the handler runs: its processing holds it).
    pub(crate) fn bus(&self) -> Option<Arc<BusInner>> {
        match self.bus {
            BusOf::Running(bus) => Some(Arc::clone(bus)),
            BusOf::Kept(bus) => bus.upgrade(),
        }
    }

    /// Whether the handler runs on `bus`.
    pub(crate) fn is_on(&self, bus: &BusInner) -> bool {
        match self.bus {
            BusOf::Running(running) => std::ptr::eq(Arc::as_ptr(running), bus),
            BusOf::Kept(kept) => std::ptr::eq(kept.as_ptr(), bus),
        }
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

impl HandlerCtx {
    /// The context, borrowed.
    #[inline(always)]
    pub(crate) fn parts(&self) -> CtxParts<'_> {
        CtxParts {
            event: &self.event,
            bus: BusOf::Kept(&self.bus),
            result_index: self.result_index,
            held: &self.held,
        }
    }

    /// The bus running the handler (alive while the handler runs: its processing holds it).
    pub(crate) fn bus(&self) -> Option<Arc<BusInner>> {
        self.parts().bus()
    }

    /// The running handler, from its result record.
    pub(crate) fn handler(&self) -> Option<Arc<HandlerMeta>> {
        self.parts().handler()
    }
}

std::thread_local! {
    /// The context of the handler running on this thread, borrowed from the frame that runs it
    /// (null outside a handler): set around a sync handler's call and around each poll (and the
    /// drop) of an async handler's future, so it is the task's for as long as the handler lives —
    /// what `tokio::task_local!` does, with a pointer swapped in and out instead of a context
    /// moved into the slot and back (cloned into it for a sync handler, and dropped after). A
    /// `Cell` of a pointer has no destructor: the slot is never gone, and reaching it is a load,
    /// with no check that its destructor is registered.
    static CURRENT: Cell<*const CtxParts<'static>> = const { Cell::new(std::ptr::null()) };
}

/// A copy of the current handler context, if a handler is running.
#[inline]
pub(crate) fn current() -> Option<HandlerCtx> {
    with_current(|ctx| ctx.build())
}

// Inlined: `dispatch` asks on every event, and outside a handler the answer is a load and a test.
#[inline]
#[allow(unsafe_code)]
pub(crate) fn with_current<R>(f: impl FnOnce(&CtxParts<'_>) -> R) -> Option<R> {
    let current = CURRENT.with(Cell::get);
    // SAFETY: the slot is null or points at the `CtxParts` of an `enter` whose call is still on
    // this thread's stack: `enter` sets it for the span of its `f` only and puts back what was
    // there when `f` returns or unwinds (a nested `enter` does the same, so the outer pointer,
    // put back, is live again). This call runs on this thread inside that span, so the
    // `CtxParts` outlives the borrow, and `f` cannot keep the borrow: it takes any lifetimes,
    // and `R` names none of them. (The slot's `'static` stands for the erased lifetime.)
    // Why `unsafe` (measured, round 10): the slot was a `RefCell<Option<HandlerCtx>>` the
    // context was cloned into around every sync handler call (its event's reference count, its
    // locks) and taken out of and dropped after it; the pointer swap took instructions per message
    // from 2 752 to 2 588 on W3, 2 957 -> 2 795 on S1, 3 442 -> 3 271 on W1 sequential and
    // 2 981 -> 2 818 on W1 batched.
    unsafe { current.as_ref() }.map(f)
}

/// Runs `f` (a sync handler's call) with `ctx` current, then puts back the context that was
/// (none, unless a queue-jump runs this from another handler), even if `f` panics.
#[inline(always)]
pub(crate) fn sync_scope<R>(ctx: CtxParts<'_>, f: impl FnOnce() -> R) -> R {
    enter(&ctx, f)
}

/// Runs `f` with `ctx` current: its address in the thread's slot for the span of `f`, and what
/// was there put back afterwards, even if `f` panics ([`with_current`] relies on this).
#[inline(always)]
fn enter<R>(ctx: &CtxParts<'_>, f: impl FnOnce() -> R) -> R {
    /// Puts back the slot's previous pointer.
    struct Leave(*const CtxParts<'static>);

    impl Drop for Leave {
        #[inline(always)]
        fn drop(&mut self) {
            CURRENT.with(|current| current.set(self.0));
        }
    }

    let ptr: *const CtxParts<'_> = ctx;
    let _leave = Leave(CURRENT.with(|current| current.replace(ptr.cast())));
    f()
}

/// `fut` (an async handler's future) with `ctx` current around each of its polls, and its drop.
pub(crate) fn scope<F: Future + Unpin>(ctx: HandlerCtx, fut: F) -> Scope<F> {
    Scope {
        ctx,
        fut: Some(fut),
    }
}

/// The future [`scope`] returns.
pub(crate) struct Scope<F> {
    /// The context, made current around each poll.
    ctx: HandlerCtx,
    /// `None` once it finished (dropped inside the scope, as it would be when it finishes).
    fut: Option<F>,
}

impl<F: Future + Unpin> Future for Scope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Scope { ctx, fut } = self.get_mut();
        enter(&ctx.parts(), || {
            let Some(inner) = fut.as_mut() else {
                panic!("handler scope polled after completion");
            };
            let poll = Pin::new(inner).poll(cx);
            if poll.is_ready() {
                *fut = None;
            }
            poll
        })
    }
}

impl<F> Drop for Scope<F> {
    fn drop(&mut self) {
        if std::mem::needs_drop::<F>() && self.fut.is_some() {
            // Dropped with its context current, as it would be if it finished.
            let Scope { ctx, fut } = self;
            enter(&ctx.parts(), || *fut = None);
        }
    }
}

/// The bus running the current handler of `event`, else the last live bus it was dispatched to.
pub(crate) fn bus_for(event: &Arc<EventInner>) -> Option<EventBus> {
    if let Some(Some(bus)) =
        with_current(|ctx| Arc::ptr_eq(ctx.event, event).then(|| ctx.bus()).flatten())
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
    with_current(|ctx| AnyEvent::from_inner(Arc::clone(ctx.event)))
}

/// The id of the handler running in the current task, if any.
pub fn current_handler_id() -> Option<HandlerId> {
    with_current(|ctx| ctx.handler().map(|handler| handler.id.clone())).flatten()
}

/// The bus running the current handler, if any.
pub fn current_bus() -> Option<EventBus> {
    with_current(|ctx| ctx.bus())
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
