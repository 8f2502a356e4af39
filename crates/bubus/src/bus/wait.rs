//! Waiting for an event: plain waiting outside handlers, queue-jumping inside them.

use std::any::Any;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use smallvec::SmallVec;

use super::BusInner;
use super::handler_context::{self, HandlerCtx, HeldLocks, LockRef};
use super::phase::process_event;
use super::run_loop::lock_addr;
use crate::error::WaitError;
use crate::event::inner::{
    BusPhase, EventInner, EventState, jumper_registered, jumper_unregistered,
};
use crate::lock::{FairLock, Loan};

/// Waits until `event` is completed.
///
/// Outside a handler this is a plain wait. Inside a handler, the bus running the handler is busy
/// with it, so waiting in queue order could deadlock; instead the event and its queued
/// descendants are processed right away (queue-jump), on every bus where they are queued, then the
/// wait continues for whatever is still running elsewhere.
pub(crate) fn wait_for(event: &Arc<EventInner>) -> WaitFor<'_> {
    WaitFor {
        event,
        waiting: Waiting::Start,
    }
}

/// The future of [`wait_for`].
pub(crate) struct WaitFor<'a> {
    event: &'a Arc<EventInner>,
    waiting: Waiting,
}

impl Future for WaitFor<'_> {
    type Output = Result<(), WaitError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.waiting.poll(this.event, cx)
    }
}

/// A wait's own future, boxed: the paths other than [`Waiting::Alone`].
type WaitBox = Pin<Box<dyn WaitJob>>;

/// A boxed wait's future: an `Option` of it, so that it can be made in its place on the heap
/// ([`boxed_in_place`]).
pub(crate) trait WaitJob: Send {
    fn poll_wait(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WaitError>>;
}

impl<F: Future<Output = Result<(), WaitError>> + Send> WaitJob for Option<F> {
    fn poll_wait(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WaitError>> {
        match self.as_pin_mut() {
            Some(fut) => fut.poll(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// The future `make` makes, boxed in its place on the heap: `Box::pin` of a queue-jump's wait
/// (about 700 bytes) built it on the stack and copied it over.
#[inline(always)]
fn boxed_in_place<F: Future<Output = Result<(), WaitError>> + Send + 'static>(
    make: impl FnOnce() -> F,
) -> WaitBox {
    let mut slot: Pin<Box<Option<F>>> = Box::pin(None);
    slot.set(Some(make()));
    slot
}

/// Where a wait for an event is: the state of [`wait_for`]'s future, for an event its owner
/// passes in on each poll (a [`WaitFor`] borrows it, an `EventFuture` owns it). The usual await
/// on a current-thread runtime, of an event the awaiter processes itself ([`process_alone`]),
/// is spelled out here, so it needs no allocation of its own; every other path is an `async`
/// block, boxed.
pub(crate) enum Waiting {
    /// Not polled yet.
    Start,
    /// Processing the event in the awaiting task ([`process_alone`]).
    Alone(Detached),
    /// Processed here and completed: spending a unit of the task's budget.
    Budget,
    /// Any other wait.
    Boxed(WaitBox),
    /// Finished.
    Done,
}

impl Waiting {
    /// Polls the wait for `event` (the same event on every poll).
    #[inline]
    pub(crate) fn poll(
        &mut self,
        event: &Arc<EventInner>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), WaitError>> {
        match self {
            Waiting::Start => self.first_poll(event, cx),
            Waiting::Alone(job) => {
                let Poll::Ready(processed) = Pin::new(job).poll(cx) else {
                    return Poll::Pending;
                };
                self.processed(event, processed, cx)
            }
            Waiting::Budget => self.spend_budget(cx),
            Waiting::Boxed(wait) => {
                let Poll::Ready(result) = wait.as_mut().poll_wait(cx) else {
                    return Poll::Pending;
                };
                *self = Waiting::Done;
                Poll::Ready(result)
            }
            Waiting::Done => Poll::Ready(Ok(())),
        }
    }

    /// The first poll: [`start`]s the wait and goes on with it in the same poll. The usual
    /// await on a current-thread runtime, processed here, polls its job at once and never
    /// stores it unless it waits.
    fn first_poll(
        &mut self,
        event: &Arc<EventInner>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), WaitError>> {
        match start(event, cx) {
            Ok(Begin::Done) => {
                *self = Waiting::Done;
                Poll::Ready(Ok(()))
            }
            Ok(Begin::Alone(bus)) => match process_alone(event, bus, cx) {
                Ok(processed) => self.processed(event, processed, cx),
                Err(job) => {
                    *self = Waiting::Alone(job);
                    Poll::Pending
                }
            },
            Ok(Begin::Wait(wait)) => {
                *self = Waiting::Boxed(wait);
                self.poll(event, cx)
            }
            Err(err) => {
                *self = Waiting::Done;
                Poll::Ready(Err(err))
            }
        }
    }

    /// After [`process_alone`]'s job: done if it processed the event to completion (once a unit
    /// of the task's budget is spent), else a plain wait.
    fn processed(
        &mut self,
        event: &Arc<EventInner>,
        processed: bool,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), WaitError>> {
        if processed && event.is_complete() {
            // Other tasks keep their turn: this awaiter yields once its budget is spent, as if
            // it had waited.
            return self.spend_budget(cx);
        }
        *self = Waiting::Boxed(boxed_wait(event));
        self.poll(event, cx)
    }

    /// Spends a unit of the task's budget, then is done.
    #[inline]
    fn spend_budget(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WaitError>> {
        let Poll::Ready(()) = Pin::new(&mut super::run_loop::spend_budget(|| {})).poll(cx) else {
            *self = Waiting::Budget;
            return Poll::Pending;
        };
        *self = Waiting::Done;
        Poll::Ready(Ok(()))
    }
}

/// How a wait begins ([`start`]).
enum Begin {
    /// The event is complete.
    Done,
    /// Processing the event in the awaiting task, on this bus ([`process_alone`]).
    Alone(Arc<BusInner>),
    /// Any other wait.
    Wait(WaitBox),
}

/// The first poll of a wait: what to do, or the error to report. Inside a handler, the
/// queue-jump's first pass is done here ([`jump_first`]).
fn start(event: &Arc<EventInner>, cx: &mut Context<'_>) -> Result<Begin, WaitError> {
    if event.is_complete() {
        return Ok(Begin::Done);
    }
    if let Some(ctx) = handler_context::current() {
        return jump_first(event, ctx, cx);
    }
    let flavor = tokio::runtime::Handle::try_current()
        .ok()
        .map(|h| h.runtime_flavor());
    let current_thread = flavor == Some(tokio::runtime::RuntimeFlavor::CurrentThread);
    // Under one lock: whether the event was dispatched; on a current-thread runtime, the bus
    // `process_alone` would take it on.
    let queued = if_dispatched(event, |st| {
        if current_thread && tokio::task::coop::has_budget_remaining() {
            queued_on(st)
        } else {
            Queued::Elsewhere
        }
    })?;
    Ok(match flavor {
        // On a multi-thread runtime: if the event is next in line on a bus that is free, process
        // it here instead of waking that bus's run loop and waiting for it; if it is being
        // processed, it is likely done in a moment.
        Some(tokio::runtime::RuntimeFlavor::MultiThread) => {
            let event = Arc::clone(event);
            Begin::Wait(Box::pin(Some(async move {
                while !event.is_complete() && help_along(&event).await {}
                spin_while_processing(&event);
                wait_complete(&event).await;
                Ok(())
            })))
        }
        // On a current-thread runtime, only an event alone on a bus nobody else is ready to run
        // before: see `process_alone`, and `process_each` for an event queued on several buses.
        _ => match queued {
            Queued::One(bus) => Begin::Alone(bus),
            Queued::Several => Begin::Wait(process_each(event)),
            Queued::Elsewhere => Begin::Wait(boxed_wait(event)),
        },
    })
}

/// `read` of the event's state, under its lock, if the event was dispatched; a wait for one
/// that never was is an error.
#[inline]
fn if_dispatched<T>(
    event: &EventInner,
    read: impl FnOnce(&EventState) -> T,
) -> Result<T, WaitError> {
    let st = event.state.lock();
    if st.buses.is_empty() {
        drop(st);
        return Err(WaitError::NotDispatched {
            event: event.label(),
        });
    }
    Ok(read(&st))
}

/// A plain wait for completion, boxed.
fn boxed_wait(event: &Arc<EventInner>) -> WaitBox {
    let event = Arc::clone(event);
    Box::pin(Some(async move {
        wait_complete(&event).await;
        Ok(())
    }))
}

/// Waits for `event` from inside the handler `ctx`: queue-jumps it. The first poll does the
/// jump's passes itself, each processing polled at once in its own job ([`Detached::start`]),
/// while they make progress: the usual jump (a handler awaiting its child, processed here to
/// completion) needs no future of its own, nor a registration on the event. A processing that
/// waits goes on in a boxed wait (which takes it up, then the rest of the jump), as does a
/// jump with nothing to process here ([`queue_jump`]: it registers, looks again, and waits).
fn jump_first(
    event: &Arc<EventInner>,
    ctx: HandlerCtx,
    cx: &mut Context<'_>,
) -> Result<Begin, WaitError> {
    // Under one lock: whether the event was dispatched, whether it is the handler's own child.
    let own_child = if_dispatched(event, |st| st.parent_id == Some(ctx.event.id))?;
    // The usual await, a handler's own child, cannot be one of its ancestors: no walk up a chain
    // that may be thousands of levels deep (nor a look-up of the handler's bus for it).
    if Arc::ptr_eq(&ctx.event, event) || (!own_child && is_ancestor(event, &ctx)) {
        return Err(WaitError::WouldDeadlock {
            event: event.label(),
            handler: ctx
                .handler()
                .map(|handler| handler.label())
                .unwrap_or_default(),
        });
    }
    // Past the nesting limit the jobs run on tasks of their own (`process_now`).
    if ctx.held.depth < MAX_INLINE_JUMPS {
        loop {
            let mut progressed = false;
            let mut stack: SmallVec<[Arc<EventInner>; 4]> = smallvec::smallvec![Arc::clone(event)];
            while let Some(current) = stack.pop() {
                if current.is_complete() {
                    continue;
                }
                for bus in queued_buses(&current) {
                    let job = JumpJob::new(&bus, &current, &ctx);
                    if let Err(job) = Detached::start(|| job.run(false), cx) {
                        let event = Arc::clone(event);
                        return Ok(Begin::Wait(boxed_in_place(|| async move {
                            job.await;
                            queue_jump(&event, &ctx).await;
                            Ok(())
                        })));
                    }
                    progressed = true;
                }
                push_incomplete_children(&current, &mut stack);
            }
            if event.is_complete() {
                return Ok(Begin::Done);
            }
            if !progressed {
                break;
            }
        }
    }
    let event = Arc::clone(event);
    Ok(Begin::Wait(boxed_in_place(|| async move {
        queue_jump(&event, &ctx).await;
        Ok(())
    })))
}

/// The buses where `event` is queued (and alive), in dispatch order.
fn queued_buses(event: &EventInner) -> SmallVec<[Arc<BusInner>; 2]> {
    let st = event.state.lock();
    st.buses
        .iter()
        .filter(|slot| slot.phase == BusPhase::Queued)
        .filter_map(|slot| st.slot_bus(slot))
        .collect()
}

/// Pushes `event`'s incomplete children on a queue-jump's `stack`, last first (so the first is
/// popped first); completed ones (the usual case by then) are not copied out at all.
fn push_incomplete_children(event: &EventInner, stack: &mut SmallVec<[Arc<EventInner>; 4]>) {
    stack.extend(
        event
            .state
            .lock()
            .children
            .iter()
            .rev()
            .filter(|child| !child.is_complete())
            .cloned(),
    );
}

/// Whether `event` is an ancestor of the handler `ctx`'s event.
fn is_ancestor(event: &EventInner, ctx: &HandlerCtx) -> bool {
    let bus = ctx.bus();
    let lookup = |id| bus.as_ref().and_then(|bus| bus.find_event_by_id(id));
    ctx.event.has_ancestor(event, &lookup)
}

/// On a multi-thread runtime, an event already being processed on another thread usually
/// completes within a microsecond or two: checking for that briefly is much cheaper than parking
/// this thread and having the other one wake it.
fn spin_while_processing(event: &EventInner) {
    const SPINS: usize = 128;
    let processing = event
        .state
        .lock()
        .buses
        .iter()
        .any(|slot| slot.phase == BusPhase::Processing);
    if !processing {
        return;
    }
    for _ in 0..SPINS {
        if event.is_complete() {
            return;
        }
        std::hint::spin_loop();
    }
}

/// Processes `event` in the awaiting task on a bus where it is at the head of the queue and the
/// bus's event lock is free — the same work, in the same order, that the bus's run loop would do
/// next, minus the hand-off between tasks (and threads). Returns whether it processed anything.
///
/// The processing survives the awaiter: if the awaiting future is dropped halfway through, the
/// rest is spawned onto the runtime, so giving up on the wait never cancels the event.
///
/// Used on a multi-thread runtime, where the hand-off crosses threads. A current-thread runtime
/// runs the bus's run loop on this thread as soon as the awaiter yields, and other tasks that
/// were ready before the awaiter (other buses' run loops) must keep their turn: there only
/// [`process_alone`]'s narrower case is taken.
async fn help_along(event: &Arc<EventInner>) -> bool {
    let candidates: SmallVec<[Arc<BusInner>; 2]> = event.state.lock().queued_buses();
    for bus in candidates {
        let at_head = bus
            .state
            .lock()
            .queue
            .front()
            .is_some_and(|e| Arc::ptr_eq(e, event));
        let free = bus.event_lock(event).is_none_or(FairLock::is_free);
        if at_head && free && Detached::new(|| help_job(bus, Arc::clone(event), Claim::Head)).await
        {
            return true;
        }
    }
    false
}

/// Where an event is queued, for an awaiter on a current-thread runtime ([`queued_on`]).
enum Queued {
    /// On this bus only (alive): [`process_alone`] may process it.
    One(Arc<BusInner>),
    /// On several buses: [`process_each`] may process it.
    Several,
    /// Nowhere (or on a bus that is gone): a plain wait.
    Elsewhere,
}

/// Where an event is queued. The caller checked the task's budget first.
fn queued_on(st: &EventState) -> Queued {
    let mut queued = st
        .buses
        .iter()
        .filter(|slot| slot.phase == BusPhase::Queued);
    let Some(slot) = queued.next() else {
        return Queued::Elsewhere;
    };
    if queued.next().is_some() {
        return Queued::Several;
    }
    st.slot_bus(slot).map_or(Queued::Elsewhere, Queued::One)
}

/// [`process_alone`] for an event queued on several buses (dispatched on one and forwarded, or
/// dispatched on each): on a current-thread runtime, processes it in the awaiting task on each
/// bus in turn, in dispatch order, while on each it is what the runtime would run next — alone
/// in that bus's queue, its event lock free, and no run loop active but those of the buses it is
/// still queued on alone (each of which would run it next, and which it is processed on after
/// this one). Where that does not hold (or the processing on a bus waits), the rest is left to
/// the run loops and the awaiter waits for completion as usual. Without this, the awaiter waits
/// for each bus's run loop to process the event, and its wake-up — when it is the task a
/// current-thread runtime is blocked on — costs a zero-timeout poll of the I/O driver (a system
/// call) as the runtime's queue empties.
fn process_each(event: &Arc<EventInner>) -> WaitBox {
    let event = Arc::clone(event);
    boxed_in_place(|| async move {
        let buses: SmallVec<[Arc<BusInner>; 2]> = event.state.lock().queued_buses();
        let mut processed = true;
        for (i, bus) in buses.iter().enumerate() {
            let others = buses[i + 1..]
                .iter()
                .filter(|next| {
                    let st = next.state.lock();
                    st.loop_active_counted()
                        && st.queue.len() == 1
                        && st.queue.front().is_some_and(|e| Arc::ptr_eq(e, &event))
                })
                .count();
            let (bus, claimed) = (Arc::clone(bus), Arc::clone(&event));
            if !Detached::new(|| help_job(bus, claimed, Claim::Alone(others))).await {
                processed = false;
                break;
            }
        }
        if processed && event.is_complete() {
            // As after `process_alone`: this awaiter yields once its budget is spent.
            super::run_loop::spend_budget(|| {}).await;
        } else {
            wait_complete(&event).await;
        }
        Ok(())
    })
}

/// On a current-thread runtime, processes `event` in the awaiting task when that is exactly
/// what the runtime would do next for it: the event is queued on one bus only (`bus`, found by
/// [`queued_on_one`] while the task had budget left), alone in that bus's queue, its event lock
/// is free, and no other bus's run loop on a current-thread runtime is active (one that is may
/// be ready to run, with events dispatched before this one, ahead of this bus's run loop). That
/// saves the hand-off to the run loop and back — two task switches and a wake-up of the awaiter
/// — for a request awaited right after its dispatch. A queued batch is left to the run loop,
/// which takes it faster. Returns whether it processed the event; as with [`help_along`], the
/// processing survives the awaiter.
///
/// Its event lock is looked up once, by [`help_job`], which takes it only if it is free (and,
/// for [`Claim::Alone`], only if there is one: a parallel event is left to the run loop).
///
/// Polls the processing at once: `Ok` with whether it processed the event if it finished on
/// that poll (the usual case), else the processing to go on with.
fn process_alone(
    event: &Arc<EventInner>,
    bus: Arc<BusInner>,
    cx: &mut Context<'_>,
) -> Result<bool, Detached> {
    Detached::start(|| help_job(bus, Arc::clone(event), Claim::Alone(0)), cx)
}

/// Which queued event a helper may take.
#[derive(Clone, Copy)]
enum Claim {
    /// The head of the queue.
    Head,
    /// The only event queued, with no other run loop active but this many known ones
    /// ([`process_alone`], [`process_each`]).
    Alone(usize),
}

async fn help_job(bus: Arc<BusInner>, event: Arc<EventInner>, claim: Claim) -> bool {
    let lock = bus.event_lock(&event);
    let permit = match lock.map(FairLock::try_acquire) {
        Some(Some(permit)) => Some(permit),
        Some(None) => return false,
        None if matches!(claim, Claim::Alone(_)) => return false,
        None => None,
    };
    // Still at the head now that the lock is ours? Then it is ours to process.
    let claimed = match claim {
        Claim::Head => bus.claim_head(&event),
        Claim::Alone(others) => bus.claim_alone(&event, others),
    };
    let Some((event, handlers)) = claimed else {
        return false;
    };
    let held = lock
        .map(|l| HeldLocks::one(lock_addr(l)))
        .unwrap_or_default();
    process_event(&bus, &event, handlers, &held)
        .await
        .leave(&bus);
    drop(permit);
    true
}

/// A future that, if dropped before it finishes, finishes on its own task.
///
/// The future lives on the heap so that it can move to a task of its own halfway through.
/// Allocating and freeing it cost about 280 instructions per await (W1 sequential, issue 20,
/// measured while the processing future was over a kilobyte, past the allocator's thread cache;
/// `phase.rs` has since boxed the handler phase's slow path, which made it smaller). So each
/// thread keeps the last finished one's allocation ([`SPARE`], and a few more in
/// [`MORE_SPARES`]) and the next `Detached` of the same type reuses it. Its type is erased ([`Job`]) so that a wait's state ([`Waiting`]) can
/// hold one.
pub(crate) struct Detached {
    slot: Option<Pin<Box<dyn Job>>>,
}

/// A [`Detached`] future's slot: `Some` future until it finishes.
trait Job: Send {
    fn poll_job(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool>;

    /// Drops the finished future and keeps the allocation for the next one of its type.
    fn finish(self: Pin<Box<Self>>);
}

impl<F: Future<Output = bool> + Send + 'static> Job for Option<F> {
    fn poll_job(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        match self.as_pin_mut() {
            Some(fut) => fut.poll(cx),
            None => Poll::Ready(false),
        }
    }

    fn finish(mut self: Pin<Box<Self>>) {
        self.set(None);
        keep_spare(self);
    }
}

thread_local! {
    /// A finished [`Detached`]'s allocation (an `Option<Pin<Box<Option<F>>>>` for some `F`),
    /// for the next one of the same type on this thread.
    static SPARE: RefCell<Option<Box<dyn Any>>> = const { RefCell::new(None) };
    /// More of them, of other types or while [`SPARE`] is full: an await inside a handler nests
    /// jobs of two types (a queue-jump inside a queue-jump, a helper's job inside a handler's
    /// wait), which would otherwise take each other's place in [`SPARE`] and allocate every time.
    static MORE_SPARES: RefCell<Vec<Box<dyn Any>>> = const { RefCell::new(Vec::new()) };
}

/// How many allocations [`MORE_SPARES`] keeps.
const MAX_MORE_SPARES: usize = 4;

impl Detached {
    /// The future `make` makes, made in its place on the heap: a processing future passed in
    /// by value was copied there, about 190 instructions per await (W1 sequential).
    #[inline(never)]
    fn new<F: Future<Output = bool> + Send + 'static>(make: impl FnOnce() -> F) -> Self {
        Detached {
            slot: Some(filled(make)),
        }
    }

    /// [`new`](Self::new) and a first poll, in place: a future that finishes on it (the usual
    /// case) is never reached through the type-erased slot. `Err` is the future to go on with.
    #[inline(never)]
    fn start<F: Future<Output = bool> + Send + 'static>(
        make: impl FnOnce() -> F,
        cx: &mut Context<'_>,
    ) -> Result<bool, Self> {
        let mut slot = filled(make);
        // Polled and finished here, inline, not through `Job`'s methods (W1 sequential +80 per
        // await through them).
        let polled = match slot.as_mut().as_pin_mut() {
            Some(fut) => fut.poll(cx),
            None => Poll::Ready(false),
        };
        let Poll::Ready(done) = polled else {
            return Err(Detached { slot: Some(slot) });
        };
        slot.set(None);
        keep_spare(slot);
        Ok(done)
    }
}

/// The future `make` makes, in this thread's spare allocation for its type if there is one.
#[inline(always)]
fn filled<F: Future<Output = bool> + Send + 'static>(
    make: impl FnOnce() -> F,
) -> Pin<Box<Option<F>>> {
    let mut slot = take_spare::<F>()
        .or_else(take_more_spare)
        .unwrap_or_else(|| Box::pin(None));
    slot.set(Some(make()));
    slot
}

fn take_spare<F: 'static>() -> Option<Pin<Box<Option<F>>>> {
    SPARE
        .try_with(|spare| {
            let mut spare = spare.try_borrow_mut().ok()?;
            spare
                .as_mut()?
                .downcast_mut::<Option<Pin<Box<Option<F>>>>>()?
                .take()
        })
        .ok()
        .flatten()
}

/// [`take_spare`] when [`SPARE`] holds none of its type.
#[cold]
#[inline(never)]
fn take_more_spare<F: 'static>() -> Option<Pin<Box<Option<F>>>> {
    MORE_SPARES
        .try_with(|spares| {
            spares.try_borrow_mut().ok()?.iter_mut().find_map(|spare| {
                spare
                    .downcast_mut::<Option<Pin<Box<Option<F>>>>>()
                    .and_then(Option::take)
            })
        })
        .ok()
        .flatten()
}

/// Keeps the allocation of a finished future (`slot` holds `None`) for the next one.
fn keep_spare<F: 'static>(slot: Pin<Box<Option<F>>>) {
    let _ = SPARE.try_with(|spare| {
        let Ok(mut spare) = spare.try_borrow_mut() else {
            return;
        };
        match spare
            .as_mut()
            .and_then(|any| any.downcast_mut::<Option<Pin<Box<Option<F>>>>>())
        {
            Some(kept @ None) => *kept = Some(slot),
            Some(Some(_)) => keep_more_spare(slot),
            None => keep_other_spare(&mut spare, slot),
        }
    });
}

/// [`keep_spare`] when [`SPARE`] is empty or holds another type.
#[cold]
#[inline(never)]
fn keep_other_spare<F: 'static>(spare: &mut Option<Box<dyn Any>>, slot: Pin<Box<Option<F>>>) {
    match spare {
        None => *spare = Some(Box::new(Some(slot))),
        Some(_) => keep_more_spare(slot),
    }
}

/// [`keep_spare`] when [`SPARE`] is full or holds another type: in an empty entry of
/// [`MORE_SPARES`] of its type, else in a new entry while there is room.
#[cold]
#[inline(never)]
fn keep_more_spare<F: 'static>(slot: Pin<Box<Option<F>>>) {
    let _ = MORE_SPARES.try_with(|spares| {
        let Ok(mut spares) = spares.try_borrow_mut() else {
            return;
        };
        let empty = spares.iter_mut().find_map(|spare| {
            spare
                .downcast_mut::<Option<Pin<Box<Option<F>>>>>()
                .filter(|kept| kept.is_none())
        });
        if let Some(kept) = empty {
            *kept = Some(slot);
            return;
        }
        if spares.len() < MAX_MORE_SPARES {
            spares.push(Box::new(Some(slot)));
        }
    });
}

impl Future for Detached {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let Some(slot) = self.slot.as_mut() else {
            return Poll::Ready(false);
        };
        let Poll::Ready(done) = slot.as_mut().poll_job(cx) else {
            return Poll::Pending;
        };
        if let Some(slot) = self.slot.take() {
            slot.finish();
        }
        Poll::Ready(done)
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(mut slot) = self.slot.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(std::future::poll_fn(move |cx| slot.as_mut().poll_job(cx)));
            }
        }
    }
}

/// Waits for `event` to complete. The completion wakes waiters with `notify_waiters`, which a
/// `Notified` hears from its creation on: made before the check, it needs no registration
/// (`enable`) until it is polled.
async fn wait_complete(event: &EventInner) {
    event.mark_waited(&event.state.lock());
    loop {
        let notified = event.notify.notified();
        tokio::pin!(notified);
        if event.is_complete() {
            return;
        }
        notified.await;
        // The usual wake-up is the completion itself: no second registration to find that out.
        if event.is_complete() {
            return;
        }
    }
}

/// Registers a queue-jumping waiter on an event while it looks for work or waits, so that new
/// descendants dispatched elsewhere wake it. While it processes something it is not registered:
/// it looks at the whole subtree again afterwards anyway, and waking it (and every other waiter
/// up a deep chain of awaits) for each event dispatched meanwhile would cost a wake-up per
/// ancestor per dispatch.
struct JumpWaiter<'a> {
    event: &'a EventInner,
    registered: bool,
}

impl<'a> JumpWaiter<'a> {
    fn new(event: &'a EventInner) -> Self {
        // Marked waited and registered under one lock.
        let mut st = event.state.lock();
        event.mark_waited(&st);
        st.jump_waiters += 1;
        jumper_registered();
        drop(st);
        JumpWaiter {
            event,
            registered: true,
        }
    }

    /// Registers (or not): under the event's lock, which a dispatch reads the count under after
    /// queueing, so a dispatch either sees the waiter or happened before its next look.
    fn register(&mut self, on: bool) {
        if self.registered == on {
            return;
        }
        let mut st = self.event.state.lock();
        if on {
            st.jump_waiters += 1;
            jumper_registered();
        } else {
            st.jump_waiters = st.jump_waiters.saturating_sub(1);
            jumper_unregistered();
        }
        self.registered = on;
    }
}

impl Drop for JumpWaiter<'_> {
    fn drop(&mut self) {
        self.register(false);
    }
}

async fn queue_jump(event: &Arc<EventInner>, ctx: &HandlerCtx) {
    let mut waiter = JumpWaiter::new(event);
    loop {
        // Hears the completion, and new descendants (both `notify_waiters`), from here on, with
        // no registration until it is polled (as in `wait_complete`).
        let notified = event.notify.notified();
        tokio::pin!(notified);
        if event.is_complete() {
            return;
        }
        let progressed = jump_pass(event, ctx, &mut waiter).await;
        if event.is_complete() {
            return;
        }
        if !progressed {
            notified.await;
        }
    }
}

/// One pass over the event and its incomplete descendants (parents before children, siblings in
/// dispatch order), processing each one on every bus where it is still queued. Returns whether
/// anything was processed (then the caller looks again: something dispatched while the waiter
/// was not registered may be in a part of the tree this pass had already looked at).
async fn jump_pass(event: &Arc<EventInner>, ctx: &HandlerCtx, waiter: &mut JumpWaiter<'_>) -> bool {
    let mut progressed = false;
    // Inline for the usual tree (an event and a child or two): no allocation.
    let mut stack: SmallVec<[Arc<EventInner>; 4]> = smallvec::smallvec![Arc::clone(event)];
    while let Some(current) = stack.pop() {
        if current.is_complete() {
            continue;
        }
        for bus in queued_buses(&current) {
            waiter.register(false);
            process_now(&bus, &current, ctx).await;
            waiter.register(true);
            // Processed here or claimed by someone else meanwhile: either way, look again.
            progressed = true;
        }
        push_incomplete_children(&current, &mut stack);
    }
    progressed
}

/// How many queue-jumps may nest on one task's stack: a deeper one runs on a fresh task (which
/// the awaiter waits for), so a chain of handlers awaiting children thousands of levels deep
/// never overflows a thread's stack.
const MAX_INLINE_JUMPS: u32 = 16;

/// Processes `event` on `bus` now, under the bus's event lock unless the waiting handler's chain
/// already holds it (then the chain lends it). The processing is a job of its own: if the
/// awaiter gives up halfway (a timeout, a `select!`, a future polled once and dropped), the job
/// goes on by itself, still holding what it borrowed, so dropping an await never cancels the
/// event.
async fn process_now(bus: &Arc<BusInner>, event: &Arc<EventInner>, ctx: &HandlerCtx) -> bool {
    let job = JumpJob::new(bus, event, ctx);
    if ctx.held.depth >= MAX_INLINE_JUMPS {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            return runtime.spawn(job.run(true)).await.unwrap_or(false);
        }
    }
    Detached::new(|| job.run(false)).await
}

/// One queue-jump: an event to process on a bus, with loans of every lock the awaiting chain
/// holds (taken before the awaiter can go away) and the lock to acquire, if the chain does not
/// hold it.
struct JumpJob {
    bus: Arc<BusInner>,
    event: Arc<EventInner>,
    held: HeldLocks,
    needed: Option<LockRef>,
    _loans: SmallVec<[Loan<LockRef>; 2]>,
}

impl JumpJob {
    fn new(bus: &Arc<BusInner>, event: &Arc<EventInner>, ctx: &HandlerCtx) -> Self {
        // The chain's locks: shared already once a queue-jump is in the chain, else the one
        // lock of the processing the handler runs in (see `chain_lock`), not yet allocated.
        let shared = ctx.held.owned.as_ref();
        let first = match shared {
            Some(_) => None,
            None => chain_lock(bus, ctx),
        };
        let chain: &[LockRef] = shared.map_or(first.as_slice(), |owned| &owned[..]);
        let loans = chain
            .iter()
            .filter_map(|lock| FairLock::lend(lock.clone()).ok())
            .collect();
        let needed = bus
            .event_lock_ref(event)
            .filter(|lock| !ctx.held.contains(lock_addr(lock)));
        let mut held = ctx.held.clone();
        let owned: Arc<[LockRef]> = match (&needed, shared) {
            (Some(lock), _) => {
                held.addrs.push(lock_addr(lock));
                chain.iter().cloned().chain([lock.clone()]).collect()
            }
            (None, Some(owned)) => Arc::clone(owned),
            (None, None) => chain.into(),
        };
        held.owned = Some(owned);
        JumpJob {
            bus: Arc::clone(bus),
            event: Arc::clone(event),
            held,
            needed,
            _loans: loans,
        }
    }

    /// Processes the event; `fresh` when it runs on a task of its own (its stack starts over).
    async fn run(mut self, fresh: bool) -> bool {
        self.held.depth = if fresh { 0 } else { self.held.depth + 1 };
        let _permit = match &self.needed {
            Some(lock) => Some(lock.acquire().await),
            None => None,
        };
        let Some((event, handlers)) = self.bus.claim(&self.event) else {
            return false;
        };
        process_event(&self.bus, &event, handlers, &self.held)
            .await
            .leave(&self.bus);
        true
    }
}

/// The lock held by the processing the awaiting handler runs in (a run loop, an outside
/// helper), where no queue-jump is in its chain yet: the handler event's lock on the handler's
/// bus, if it holds one.
/// `bus` is the jump's: usually the handler's own, which then needs no lookup.
fn chain_lock(bus: &Arc<BusInner>, ctx: &HandlerCtx) -> Option<LockRef> {
    let &addr = ctx.held.addrs.first()?;
    let lock = if ctx.parts().is_on(bus) {
        bus.event_lock_ref(&ctx.event)
    } else {
        ctx.bus()?.event_lock_ref(&ctx.event)
    };
    lock.filter(|lock| lock_addr(lock) == addr)
}
