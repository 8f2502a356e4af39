//! The run loop: one task per bus that takes events off the queue in FIFO order, under their
//! event lock, and hands each to the handler phase ([`process_event`]).

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use tokio::sync::Notify;

use super::complete::{Processed, after_leave, leave_bus, leave_locked};
use super::handler_context::HeldLocks;
use super::handlers::Handlers;
use super::phase::process_event;
use super::{BusInner, BusState};
use crate::error::DispatchError;
use crate::event::inner::EventInner;
use crate::lock::{FairGuard, FairLock};

/// Spends one unit of the task's coop budget, as `tokio::task::consume_budget` does, but tested
/// and spent in one look at the budget (instead of a look to test it and one to spend it), in a
/// future small enough to be polled inline where it is awaited. Once the budget is spent,
/// `before_yield` runs and the task yields.
#[inline]
pub(crate) fn spend_budget<F: FnMut()>(before_yield: F) -> SpendBudget<F> {
    SpendBudget { before_yield }
}

/// The future of [`spend_budget`].
pub(crate) struct SpendBudget<F> {
    before_yield: F,
}

impl<F: FnMut() + Unpin> Future for SpendBudget<F> {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match tokio::task::coop::poll_proceed(cx) {
            Poll::Ready(spent) => {
                // The unit stays spent: the guard, which would give it back unless told that
                // progress was made, is forgotten instead (no call to tell it, none to drop it).
                std::mem::forget(spent);
                Poll::Ready(())
            }
            Poll::Pending => {
                (self.get_mut().before_yield)();
                Poll::Pending
            }
        }
    }
}

/// Identity of an event lock, for the re-entrancy check of queue-jumps.
pub(crate) fn lock_addr(lock: &FairLock) -> usize {
    lock as *const FairLock as usize
}

/// What the run loop found at the head of the queue ([`BusInner::take_next`]).
enum Next<'a> {
    /// The queue is empty.
    Idle,
    /// The head, taken off the queue with the handlers to run it with, under its event lock,
    /// held.
    Ready(Arc<EventInner>, Handlers, &'a FairLock, FairGuard<'a>),
    /// The head's event lock, held, but no head to take after all (not expected: the head was
    /// just seen under the same lock).
    Gone(FairGuard<'a>),
    /// The head, still queued, and the event lock it waits for (none for a parallel event).
    Wait(Arc<EventInner>, Option<&'a FairLock>),
}

/// How many buses whose run loop lives on a current-thread runtime have it running or ready to
/// run (not parked waiting for work), in the process. An awaiter on a current-thread runtime
/// processes the event it waits for itself only when no other bus's run loop is active (see
/// `wait::process_alone`): an active one may be ready to run before it, with events dispatched
/// earlier.
pub(crate) static ACTIVE_CURRENT_THREAD_LOOPS: AtomicUsize = AtomicUsize::new(0);

impl BusState {
    /// Marks the run loop parked (waiting for work, or gone) or not, keeping
    /// [`ACTIVE_CURRENT_THREAD_LOOPS`] in step.
    pub(crate) fn set_loop_parked(&mut self, parked: bool) {
        if self.loop_parked == parked {
            return;
        }
        self.loop_parked = parked;
        if self.loop_counted {
            if parked {
                ACTIVE_CURRENT_THREAD_LOOPS.fetch_sub(1, Ordering::Relaxed);
            } else {
                ACTIVE_CURRENT_THREAD_LOOPS.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether this bus's run loop is the only active one on current-thread runtimes, or none
    /// is (see [`ACTIVE_CURRENT_THREAD_LOOPS`]).
    pub(crate) fn no_other_active_loop(&self, others: usize) -> bool {
        let own = usize::from(self.loop_counted && !self.loop_parked);
        ACTIVE_CURRENT_THREAD_LOOPS.load(Ordering::Relaxed) == own + others
    }

    /// Whether the run loop is counted in [`ACTIVE_CURRENT_THREAD_LOOPS`] now.
    pub(crate) fn loop_active_counted(&self) -> bool {
        self.loop_counted && !self.loop_parked
    }
}

impl BusInner {
    /// Makes sure a run loop exists to process what is about to be enqueued (starting it on the
    /// first dispatch, or again if the runtime it ran on has shut down).
    ///
    /// Inlined into every dispatch: the usual case (the run loop is alive) is one load; starting
    /// one is [`start_run_loop`](Self::start_run_loop), out of line.
    #[inline]
    pub(crate) fn ensure_run_loop(
        self: &Arc<Self>,
        st: &mut BusState,
    ) -> Result<(), DispatchError> {
        let alive = st.run_loop.as_ref().is_some_and(|h| !h.is_finished());
        if alive {
            return Ok(());
        }
        self.start_run_loop(st)
    }

    /// Starts the run loop (see [`ensure_run_loop`](Self::ensure_run_loop)).
    #[cold]
    #[inline(never)]
    fn start_run_loop(self: &Arc<Self>, st: &mut BusState) -> Result<(), DispatchError> {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(DispatchError::NoRuntime {
                bus: self.label.to_string(),
            });
        };
        // Counted on the runtime it runs on from now: parked while it changes flavour.
        st.set_loop_parked(true);
        st.loop_counted = runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread;
        st.set_loop_parked(false);
        st.loop_woken = true;
        st.run_loop = Some(runtime.spawn(run_loop(Arc::downgrade(self), Arc::clone(&self.wake))));
        Ok(())
    }

    /// Wakes the run loop if it is waiting for work.
    pub(crate) fn notify_run_loop(&self, st: &mut BusState) {
        if st.loop_parked {
            st.set_loop_parked(false);
            // Already woken and not yet run (it was only marked parked again: see
            // `loop_woken`)? It will see this event: no second wake-up.
            if !st.loop_woken {
                st.loop_woken = true;
                self.wake.notify_one();
            }
        }
    }

    /// Looks at the head of the queue for the run loop. The events the run loop `owes` a
    /// [`leave_bus`] are accounted for under the lock it looks at the queue with. The usual case,
    /// [`Next::Ready`], takes the head off the queue with its event lock; the run loop processes
    /// it with [`process_event`] right in its own future, with no future of its own for the step
    /// (built and dropped once per event otherwise).
    ///
    /// Inlined into the run loop, its only caller: the [`Next`] it returns is then never written
    /// out and read back.
    #[inline(always)]
    fn take_next<'a>(&'a self, owed: &mut Owed<'a>) -> Next<'a> {
        let kept = owed.kept.take();
        let mut guard = self.state.lock();
        let st = &mut *guard;
        st.loop_woken = false;
        let left = leave_locked(st, std::mem::take(&mut owed.events));
        let Some(head) = st.queue.front() else {
            drop(guard);
            drop(kept);
            after_leave(self, left);
            return Next::Idle;
        };
        // The usual case: the head's event lock is the one still held from the previous
        // event, with nobody waiting for it, or it is free. Take it and the head at once.
        let lock = self.event_lock(head);
        let fast = lock.and_then(|lock| match kept {
            Some(permit) if permit.holds(lock) && !permit.is_contended() => Some((lock, permit)),
            other => {
                drop(other);
                Some((lock, lock.try_acquire()?))
            }
        });
        match fast {
            Some((lock, permit)) => {
                let handlers = st.handlers.for_event(head.event_type_cow());
                match st.take_head() {
                    Some(event) => Next::Ready(event, handlers, lock, permit),
                    None => Next::Gone(permit),
                }
            }
            None => Next::Wait(Arc::clone(head), lock),
        }
    }

    /// Processes `head` (the head of the queue when the run loop looked) once its event `lock`
    /// is free; a parallel event (no lock) is processed in a task of its own. The event lock
    /// stays held in `owed` after the event, for the next one (see [`Owed::kept`]).
    async fn run_waiting<'a>(
        self: &'a Arc<Self>,
        head: Arc<EventInner>,
        lock: Option<&'a FairLock>,
        owed: &mut Owed<'a>,
    ) {
        match lock {
            None => {
                if let Some((event, handlers)) = self.claim(&head) {
                    let bus = Arc::clone(self);
                    let mut st = self.state.lock();
                    while st.parallel_tasks.try_join_next().is_some() {}
                    st.parallel_tasks.spawn(async move {
                        process_event(&bus, &event, handlers, &HeldLocks::default())
                            .await
                            .leave(&bus);
                    });
                }
            }
            Some(lock) => {
                let permit = lock.acquire().await;
                // The head may have been queue-jumped while we waited for the lock.
                if let Some((event, handlers)) = self.claim(&head) {
                    let held = HeldLocks::one(lock_addr(lock));
                    process_event(self, &event, handlers, &held).await.owe(owed);
                }
                owed.kept = Some(permit);
            }
        }
    }

    /// Takes `event` off this bus's queue for processing, with the handlers to run it with (read
    /// under the same lock); `None` if it is no longer queued here (someone else took it).
    /// [`process_event`] marks it processing.
    pub(crate) fn claim(&self, event: &Arc<EventInner>) -> Option<(Arc<EventInner>, Handlers)> {
        self.claim_at(event, false)
    }

    /// [`claim`](Self::claim), only if `event` is at the head of the queue.
    pub(crate) fn claim_head(
        &self,
        event: &Arc<EventInner>,
    ) -> Option<(Arc<EventInner>, Handlers)> {
        self.claim_at(event, true)
    }

    /// [`claim`](Self::claim), only if `event` is the only event queued and no other bus's run
    /// loop on a current-thread runtime is active but for `others` known ones
    /// (`wait::process_alone`, `wait::process_each`).
    pub(crate) fn claim_alone(
        &self,
        event: &Arc<EventInner>,
        others: usize,
    ) -> Option<(Arc<EventInner>, Handlers)> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let alone = st.queue.len() == 1 && st.queue.front().is_some_and(|e| Arc::ptr_eq(e, event));
        if !alone || !st.no_other_active_loop(others) {
            return None;
        }
        let handlers = st.handlers.for_event(event.event_type_cow());
        st.take_head().map(|event| (event, handlers))
    }

    fn claim_at(
        &self,
        event: &Arc<EventInner>,
        head_only: bool,
    ) -> Option<(Arc<EventInner>, Handlers)> {
        let mut guard = self.state.lock();
        let st = &mut *guard;
        let pos = if head_only {
            st.queue
                .front()
                .filter(|e| Arc::ptr_eq(e, event))
                .map(|_| 0)?
        } else {
            st.queue.iter().position(|e| Arc::ptr_eq(e, event))?
        };
        let handlers = st.handlers.for_event(event.event_type_cow());
        st.take_queued(pos).map(|event| (event, handlers))
    }
}

impl Processed {
    /// Leaves the bus at the run loop's next look at the queue.
    fn owe(self, owed: &mut Owed<'_>) {
        owed.events += 1;
    }
}

/// How many events the run loop processes per upgrade of its weak reference to the bus.
const EVENTS_PER_UPGRADE: usize = 64;

/// What the run loop carries from one event to the next. If the run loop is dropped while it
/// carries something (the bus was stopped), the lock is released and the events leave the bus.
pub(crate) struct Owed<'a> {
    bus: &'a BusInner,
    /// Events processed whose [`leave_bus`] is folded into the next look at the queue (one
    /// bus-lock round trip per event fewer).
    events: usize,
    /// The event lock of the last event, still held: the next event under the same lock takes
    /// it over instead of releasing and re-acquiring it (two atomic operations per event fewer).
    /// Released as soon as someone waits for it, when the queue is empty, and before the run
    /// loop yields to the runtime between events, so it is only ever kept by a run loop that is
    /// running.
    kept: Option<FairGuard<'a>>,
}

impl Drop for Owed<'_> {
    fn drop(&mut self) {
        drop(self.kept.take());
        if self.events > 0 {
            leave_bus(self.bus, self.events);
        }
    }
}

async fn run_loop(bus: Weak<BusInner>, wake: Arc<Notify>) {
    loop {
        {
            let Some(bus) = bus.upgrade() else { return };
            let mut owed = Owed {
                bus: &bus,
                events: 0,
                kept: None,
            };
            for _ in 0..EVENTS_PER_UPGRADE {
                match bus.take_next(&mut owed) {
                    Next::Idle => break,
                    Next::Ready(event, handlers, lock, permit) => {
                        let held = HeldLocks::one(lock_addr(lock));
                        process_event(&bus, &event, handlers, &held)
                            .await
                            .owe(&mut owed);
                        owed.kept = Some(permit);
                    }
                    Next::Gone(permit) => owed.kept = Some(permit),
                    Next::Wait(head, lock) => bus.run_waiting(head, lock, &mut owed).await,
                }
                // One unit of the task's coop budget per event. About to yield: nobody waits
                // behind a lock held by a parked task.
                spend_budget(|| drop(owed.kept.take())).await;
            }
            drop(owed.kept.take());
            let mut st = bus.state.lock();
            let left = leave_locked(&mut st, std::mem::take(&mut owed.events));
            let stopped = st.stopped;
            let more = !st.queue.is_empty();
            if stopped || !more {
                // Stopped, it ends; otherwise it parks until a dispatch wakes it.
                st.set_loop_parked(true);
            }
            drop(st);
            after_leave(&bus, left);
            if stopped {
                return;
            }
            if more {
                continue;
            }
        }
        wake.notified().await;
    }
}
