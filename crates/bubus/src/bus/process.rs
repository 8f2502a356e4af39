//! Processing: the per-bus run loop, running an event's handlers, recording results, and stopping.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use smallvec::SmallVec;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use super::cancel::{cancel_events, children_of_results};
use super::handler_run::{HandlerRun, Running, Started, interrupted, is_winner};
use super::handlers::HandlerList;
use super::limits::PhaseClock;
use super::{BusInner, BusState, limits};
use crate::context::{self, HeldLocks};
use crate::error::{DispatchError, HandlerError, HandlerErrorKind};
use crate::event::inner::{BusPhase, Completion, EventInner, EventState};
use crate::event::{EventConfig, EventStatus, HandlerCompletion, HandlerConcurrency};
use crate::handler::{HandlerEntry, HandlerId};
use crate::lock::{FairGuard, FairLock};
use crate::result::{ResultRecord, ResultStatus};
use rustc_hash::FxHashMap;
use uuid::Uuid;

/// Identity of an event lock, for the re-entrancy check of queue-jumps.
pub(crate) fn lock_addr(lock: &FairLock) -> usize {
    lock as *const FairLock as usize
}

enum Step {
    Ran,
    Idle,
}

impl BusInner {
    /// Makes sure a run loop exists to process what is about to be enqueued (starting it on the
    /// first dispatch, or again if the runtime it ran on has shut down).
    pub(crate) fn ensure_run_loop(
        self: &Arc<Self>,
        st: &mut BusState,
    ) -> Result<(), DispatchError> {
        let alive = st.run_loop.as_ref().is_some_and(|h| !h.is_finished());
        if alive {
            return Ok(());
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(DispatchError::NoRuntime {
                bus: self.label.to_string(),
            });
        };
        st.loop_parked = false;
        st.run_loop = Some(runtime.spawn(run_loop(Arc::downgrade(self), Arc::clone(&self.wake))));
        Ok(())
    }

    /// Wakes the run loop if it is waiting for work.
    pub(crate) fn notify_run_loop(&self, st: &mut BusState) {
        if st.loop_parked {
            st.loop_parked = false;
            self.wake.notify_one();
        }
    }

    /// Processes the event at the head of the queue under its event lock. The events the run
    /// loop `owes` a [`leave_bus`] are accounted for under the lock it looks at the queue with,
    /// and the event it processes here is added to them. The event lock stays held in `owed`
    /// after the event, for the next one (see [`Owed::kept`]).
    async fn run_next<'a>(self: &'a Arc<Self>, owed: &mut Owed<'a>) -> Step {
        let kept = owed.kept.take();
        let taken = {
            let mut st = self.state.lock();
            let left = leave_locked(&mut st, std::mem::take(&mut owed.events));
            let Some(head) = st.queue.front() else {
                drop(st);
                drop(kept);
                after_leave(self, left);
                return Step::Idle;
            };
            // The usual case: the head's event lock is the one still held from the previous
            // event, with nobody waiting for it, or it is free. Take it and the head at once.
            let lock = self.event_lock(head);
            let fast = lock.and_then(|lock| match kept {
                Some(permit) if permit.holds(lock) && !permit.is_contended() => {
                    Some((lock, permit))
                }
                other => {
                    drop(other);
                    Some((lock, lock.try_acquire()?))
                }
            });
            match fast {
                Some((lock, permit)) => {
                    let handlers = st.handlers.for_event(&head.event_type);
                    Ok((st.take_queued(0), handlers, lock, permit))
                }
                None => Err((Arc::clone(head), lock)),
            }
        };
        let (head, lock) = match taken {
            Ok((event, handlers, lock, permit)) => {
                if let Some(event) = event {
                    let held = HeldLocks::one(lock_addr(lock));
                    process_event(self, &event, handlers, &held).await.owe(owed);
                }
                owed.kept = Some(permit);
                return Step::Ran;
            }
            Err(slow) => slow,
        };
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
        Step::Ran
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

    fn claim_at(
        &self,
        event: &Arc<EventInner>,
        head_only: bool,
    ) -> Option<(Arc<EventInner>, Handlers)> {
        let mut st = self.state.lock();
        let pos = if head_only {
            st.queue
                .front()
                .filter(|e| Arc::ptr_eq(e, event))
                .map(|_| 0)?
        } else {
            st.queue.iter().position(|e| Arc::ptr_eq(e, event))?
        };
        let handlers = st.handlers.for_event(&event.event_type);
        st.take_queued(pos).map(|event| (event, handlers))
    }

    /// Stops the bus (see [`EventBus::stop`](super::EventBus::stop)).
    pub(crate) async fn stop(self: &Arc<Self>, clear: bool) {
        let inside_own_handler =
            context::with_current(|ctx| ctx.bus_id == self.id).unwrap_or(false);
        let (run_loop, mut parallel, queued) = {
            let mut st = self.state.lock();
            let first_stop = !st.stopped;
            st.stopped = true;
            let nothing_in_flight = st.in_flight == 0;
            let queued: Vec<_> = st.queue.drain(..).collect();
            st.in_flight += queued.len();
            let run_loop = if first_stop && !inside_own_handler {
                st.run_loop.take().map(|handle| (handle, nothing_in_flight))
            } else {
                None
            };
            let parallel = if inside_own_handler {
                tokio::task::JoinSet::new()
            } else {
                std::mem::take(&mut st.parallel_tasks)
            };
            (run_loop, parallel, queued)
        };
        self.wake.notify_one();
        // Abort what is running; the processing guards record the interrupted handlers.
        if let Some((handle, nothing_in_flight)) = run_loop {
            handle.abort();
            // With nothing in flight the run loop is between events and has nothing to
            // record: the abort reaches it on its own, without this task waiting for that
            // hand-off (on a multi-thread runtime, a round trip between threads).
            if !nothing_in_flight {
                let _ = handle.await;
            }
        }
        parallel.shutdown().await;
        for event in queued {
            let cause = format!(
                "{} was stopped before it processed {}",
                self.label,
                event.label()
            );
            self.cancel_unprocessed(&event, &cause);
        }
        self.release_waiters();
        if clear {
            let (history, handlers) = {
                let mut st = self.state.lock();
                (st.history.take(), st.handlers.clear())
            };
            drop(history);
            drop(handlers);
        }
        self.notify_idle();
    }

    /// Records a cancelled result (`Cancelled: {cause}`) for every handler that would have run
    /// `event` here, then finishes it on this bus, so waiters on events that will never be
    /// processed here (the bus stopped, the event was cancelled) never hang. `event` must have
    /// been claimed.
    pub(crate) fn cancel_unprocessed(&self, event: &Arc<EventInner>, cause: &str) {
        let (exact, wildcard) = self.state.lock().handlers.for_event(&event.event_type);
        let created: SmallVec<[usize; 4]> = {
            let mut es = event.state.lock();
            let first = es.results.len();
            for entry in exact
                .iter()
                .flat_map(|l| l.iter())
                .chain(wildcard.iter().flat_map(|l| l.iter()))
            {
                es.results.push(ResultRecord::pending(
                    Arc::clone(&entry.meta),
                    event.created_at,
                ));
            }
            (first..es.results.len()).collect()
        };
        // The hooks see what processing shows them: the event pending, each result pending,
        // then each result completed (cancelled).
        self.hook_event(event, EventStatus::Pending);
        self.hook_results(event, &created, EventStatus::Pending);
        {
            let mut es = event.state.lock();
            for &index in &created {
                if let Some(record) = es.results.get_mut(index) {
                    record.finish(Err(HandlerError::with_kind(
                        HandlerErrorKind::Cancelled,
                        format!("Cancelled: {cause}"),
                    )));
                }
            }
        }
        self.hook_results(event, &created, EventStatus::Completed);
        finish_on_bus(self, event);
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
                match bus.run_next(&mut owed).await {
                    Step::Ran => {
                        if !tokio::task::coop::has_budget_remaining() {
                            // About to yield: nobody waits behind a lock held by a parked task.
                            drop(owed.kept.take());
                        }
                        tokio::task::consume_budget().await;
                    }
                    Step::Idle => break,
                }
            }
            drop(owed.kept.take());
            let mut st = bus.state.lock();
            let left = leave_locked(&mut st, std::mem::take(&mut owed.events));
            let stopped = st.stopped;
            let more = !st.queue.is_empty();
            if !stopped && !more {
                st.loop_parked = true;
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

/// The handlers an event runs with on one bus: those of its type, then the wildcard ones.
pub(crate) type Handlers = (Option<HandlerList>, Option<HandlerList>);

/// Runs `handlers` (those registered on `bus` for `event`, read when it was taken off the queue)
/// on `event`, then finishes the event on that bus. `held` are the event locks already held by
/// whoever is running this (a queue-jump re-enters them).
pub(crate) async fn process_event(
    bus: &Arc<BusInner>,
    event: &Arc<EventInner>,
    (exact, wildcard): Handlers,
    held: &HeldLocks,
) -> Processed {
    let (runs, indices, config) = {
        let mut es = event.state.lock();
        // Queued until now (or already processing, for a restored event).
        if let Some(slot) = es.active_slot(bus) {
            slot.phase = BusPhase::Processing;
        }
        let mut runs: Runs<'_> = SmallVec::new();
        let mut indices: SmallVec<[usize; 4]> = SmallVec::new();
        // Results the event already has (from another bus, or a restored snapshot): a handler
        // that already has one is not run again. Indexed when there are many, so that an event
        // with thousands of handlers stays linear.
        let prior = es.results.len();
        let prior_index: Option<FxHashMap<(HandlerId, Uuid), usize>> = (prior > 16).then(|| {
            es.results
                .iter()
                .enumerate()
                .map(|(i, r)| ((r.handler.id.clone(), r.handler.bus_id), i))
                .collect()
        });
        for entry in exact
            .iter()
            .flat_map(|l| l.iter())
            .chain(wildcard.iter().flat_map(|l| l.iter()))
        {
            // Loop prevention: a forwarder to a bus the event already went through is skipped,
            // and a handler that already ran for this event does not run again.
            if let Some((target_id, target_label)) = &entry.meta.forward_target {
                if es.buses.iter().any(|slot| slot.bus_id == *target_id)
                    || es.path.iter().any(|label| label.label == *target_label)
                {
                    continue;
                }
            }
            let existing = match &prior_index {
                _ if prior == 0 => None,
                Some(index) => index
                    .get(&(entry.meta.id.clone(), entry.meta.bus_id))
                    .copied(),
                None => es.results[..prior].iter().position(|r| {
                    r.handler.id == entry.meta.id && r.handler.bus_id == entry.meta.bus_id
                }),
            };
            if let Some(pos) = existing {
                // A result seeded as pending (a restored snapshot) runs with the live handler;
                // one already started or finished is never run again.
                if es.results[pos].status == ResultStatus::Pending {
                    es.results[pos].handler = Arc::clone(&entry.meta);
                    runs.push((&**entry, pos));
                    indices.push(pos);
                }
                continue;
            }
            es.results.push(ResultRecord::pending(
                Arc::clone(&entry.meta),
                event.created_at,
            ));
            runs.push((&**entry, es.results.len() - 1));
            indices.push(es.results.len() - 1);
        }
        (runs, indices, es.config)
    };
    bus.hook_event(event, EventStatus::Pending);
    bus.hook_results(event, &indices, EventStatus::Pending);
    let mut guard = ProcessGuard {
        bus,
        event,
        indices: &indices,
        armed: true,
    };

    // The event's hard timeout covers the whole handler phase on this bus, from now.
    let timeout = limits::event_timeout(&config, bus);
    let clock = PhaseClock::new(
        event,
        &indices,
        timeout,
        limits::event_slow_timeout(&config, bus),
    );
    let plan = Plan::new(bus, &config, &runs);
    let timed_out = match run_ready(bus, event, &runs, held, &config, &clock, &plan) {
        Ready::Finished => {
            guard.armed = false;
            return Processed(());
        }
        Ready::AllDone => false,
        Ready::Rest { next, waiting } => {
            let phase = run_handlers(
                bus, event, &runs, next, waiting, held, &config, &clock, &plan,
            );
            tokio::pin!(phase);
            drive_phase(phase, bus, event, &indices, timeout, &clock).await
        }
    };
    if timed_out {
        let cause = format!(
            "event {} timed out after {}s on {}",
            event.label(),
            timeout.map(limits::fmt_secs).unwrap_or_default(),
            bus.label
        );
        cancel_events(children_of_results(event, &indices), &cause);
    }
    guard.armed = false;
    done_on_bus(bus, event);
    Processed(())
}

/// What [`process_event`] leaves to its caller: the event is finished on the bus, but still
/// counted in flight there until the caller calls [`leave_bus`] (the run loop folds it into its
/// next look at the queue). Only a finished `process_event` returns it: one dropped halfway
/// leaves the bus itself.
#[must_use = "the event is still counted in flight on the bus: call `leave` or `owe`"]
pub(crate) struct Processed(());

impl Processed {
    /// Leaves the bus now.
    pub(crate) fn leave(self, bus: &BusInner) {
        leave_bus(bus, 1);
    }

    /// Leaves the bus at the run loop's next look at the queue.
    fn owe(self, owed: &mut Owed<'_>) {
        owed.events += 1;
    }
}

type Runs<'a> = SmallVec<[(&'a HandlerEntry, usize); 4]>;

/// How the handlers of one event run on one bus: the event's handler-concurrency mode (each
/// handler may override it) and completion mode.
struct Plan {
    mode: HandlerConcurrency,
    /// First-completion mode: the first truthy result wins and the rest are cancelled.
    first: bool,
    /// Some handler overrides the event's mode.
    mixed: bool,
}

impl Plan {
    fn new(bus: &BusInner, config: &EventConfig, runs: &Runs<'_>) -> Self {
        let mode = config
            .event_handler_concurrency
            .unwrap_or(bus.config.event_handler_concurrency);
        Plan {
            mode,
            first: config
                .event_handler_completion
                .unwrap_or(bus.config.event_handler_completion)
                == HandlerCompletion::First,
            mixed: runs
                .iter()
                .any(|(entry, _)| entry.meta.concurrency.is_some_and(|m| m != mode)),
        }
    }

    /// Every handler runs serially, in order, under the event's serial-handler lock.
    fn all_serial(&self) -> bool {
        self.mode == HandlerConcurrency::Serial && !self.mixed
    }

    /// In first-completion mode, whether the result at `index` (just finished) won; if it did,
    /// the event's other handlers on this bus that have not finished are cancelled or aborted.
    #[inline]
    fn first_won(
        &self,
        bus: &BusInner,
        event: &Arc<EventInner>,
        runs: &Runs<'_>,
        index: usize,
    ) -> bool {
        self.first && won(bus, event, runs, index)
    }
}

#[cold]
fn won(bus: &BusInner, event: &Arc<EventInner>, runs: &Runs<'_>, index: usize) -> bool {
    if !is_winner(event, index) {
        return false;
    }
    let losers: SmallVec<[usize; 4]> = runs
        .iter()
        .map(|(_, i)| *i)
        .filter(|i| *i != index)
        .collect();
    cancel_losers(bus, event, &losers);
    true
}

/// What [`run_ready`] left for the handler phase.
enum Ready<'a> {
    /// Every handler finished (or was cancelled by a first-completion winner).
    AllDone,
    /// Every handler finished, the last one finishing the event on the bus as well
    /// ([`Started::Finished`]).
    Finished,
    /// Runs from `next` on are still to start; `waiting` is a serial handler that started and
    /// waits, with its result index and the serial-handler lock it holds.
    Rest {
        next: usize,
        waiting: Option<(Running<'a>, FairGuard<'a>, usize)>,
    },
}

/// Serial handlers run one at a time, in order: those that finish without waiting (sync
/// handlers, async ones done on their first poll) run right here, with no future built for the
/// handler phase — the usual case, and the cheapest. The first one that waits, or a serial-handler
/// lock held elsewhere, hands over to [`run_handlers`], which goes on in the same order.
#[allow(clippy::too_many_arguments)]
fn run_ready<'a, 'e: 'a>(
    bus: &'a Arc<BusInner>,
    event: &'a Arc<EventInner>,
    runs: &'a Runs<'e>,
    held: &'a HeldLocks,
    config: &'a EventConfig,
    clock: &'a PhaseClock<'a>,
    plan: &Plan,
) -> Ready<'a> {
    if !plan.all_serial() {
        return Ready::Rest {
            next: 0,
            waiting: None,
        };
    }
    let mut next = 0;
    while let Some(&(entry, index)) = runs.get(next) {
        let Some(permit) = event.handler_lock.try_acquire() else {
            break;
        };
        next += 1;
        let run = HandlerRun {
            bus,
            event,
            entry,
            index,
            held,
            config,
            phase: clock,
        };
        match run.start(next == runs.len() && !plan.first) {
            Started::Finished => return Ready::Finished,
            Started::Done => {
                drop(permit);
                if plan.first_won(bus, event, runs, index) {
                    return Ready::AllDone;
                }
            }
            Started::Running(running) => {
                return Ready::Rest {
                    next,
                    waiting: Some((running, permit, index)),
                };
            }
        }
    }
    if next == runs.len() {
        Ready::AllDone
    } else {
        Ready::Rest {
            next,
            waiting: None,
        }
    }
}

/// Runs the handlers from `runs[next]` on (after `waiting`, a serial handler [`run_ready`] left
/// running) in the event's handler-concurrency mode and completion mode.
#[allow(clippy::too_many_arguments)]
async fn run_handlers<'a, 'e: 'a>(
    bus: &'a Arc<BusInner>,
    event: &'a Arc<EventInner>,
    runs: &'a Runs<'e>,
    next: usize,
    waiting: Option<(Running<'a>, FairGuard<'a>, usize)>,
    held: &'a HeldLocks,
    config: &'a EventConfig,
    clock: &'a PhaseClock<'a>,
    plan: &Plan,
) {
    let mode = plan.mode;
    macro_rules! handler_run {
        ($entry:expr, $index:expr) => {
            HandlerRun {
                bus,
                event,
                entry: $entry,
                index: $index,
                held,
                config,
                phase: clock,
            }
        };
    }

    if plan.all_serial() {
        // One at a time, in order, each under the event's serial-handler lock (shared with
        // every other bus processing this event).
        if let Some((running, permit, index)) = waiting {
            running.finish().await;
            drop(permit);
            if plan.first_won(bus, event, runs, index) {
                return;
            }
        }
        for &(entry, index) in &runs[next..] {
            {
                let _permit = event.handler_lock.acquire().await;
                handler_run!(entry, index).run().await;
            }
            if plan.first_won(bus, event, runs, index) {
                return;
            }
        }
        return;
    }

    // Every handler starts now, in order; those that wait are driven together. Handlers that
    // finish without waiting cost no future at all.
    let mut running: FuturesUnordered<Pin<Box<dyn Future<Output = usize> + Send + '_>>> =
        FuturesUnordered::new();
    for &(entry, index) in runs.iter() {
        let serial = entry.meta.concurrency.unwrap_or(mode) == HandlerConcurrency::Serial;
        // A handler starts when it first runs — a sync one here, an async one at its first
        // poll — before the next handler starts. Serial ones queue for the serial lock in order.
        let mut fut: Pin<Box<dyn Future<Output = usize> + Send + '_>> = if serial {
            Box::pin(async move {
                let _permit = event.handler_lock.acquire().await;
                handler_run!(entry, index).run().await;
                index
            })
        } else {
            match handler_run!(entry, index).start(false) {
                Started::Done | Started::Finished => {
                    if plan.first_won(bus, event, runs, index) {
                        return;
                    }
                    continue;
                }
                Started::Running(handler) => Box::pin(async move {
                    handler.finish().await;
                    index
                }),
            }
        };
        let done = futures_util::poll!(fut.as_mut()).is_ready();
        if !done {
            running.push(fut);
        }
        if done && plan.first_won(bus, event, runs, index) {
            return;
        }
    }
    while let Some(index) = running.next().await {
        if plan.first_won(bus, event, runs, index) {
            // Dropping `running` drops the losers still running; they are already recorded.
            return;
        }
    }
}

/// First-completion mode found its winner: the other handlers on this bus are cancelled (not
/// started) or aborted (running), and the events they dispatched are cancelled too.
fn cancel_losers(bus: &BusInner, event: &Arc<EventInner>, indices: &[usize]) {
    let mut losers: SmallVec<[usize; 4]> = SmallVec::new();
    {
        let mut es = event.state.lock();
        for &index in indices {
            let Some(result) = es.results.get_mut(index) else {
                continue;
            };
            let error = match result.status {
                ResultStatus::Pending => HandlerError::with_kind(
                    HandlerErrorKind::Cancelled,
                    "Cancelled: first() resolved",
                ),
                ResultStatus::Started => {
                    HandlerError::with_kind(HandlerErrorKind::Aborted, "Aborted: first() resolved")
                }
                ResultStatus::Completed | ResultStatus::Error => continue,
            };
            result.finish(Err(error));
            losers.push(index);
        }
    }
    bus.hook_results(event, &losers, EventStatus::Completed);
    cancel_events(children_of_results(event, &losers), "first() resolved");
}

/// Polls the handler phase under the event's timeout and slow warning (armed only once the phase
/// is pending). On timeout, records pending handlers as cancelled and running ones as aborted,
/// and returns true; the caller drops the phase.
#[allow(clippy::too_many_arguments)]
async fn drive_phase<F: Future<Output = ()>>(
    mut phase: Pin<&mut F>,
    bus: &BusInner,
    event: &Arc<EventInner>,
    indices: &[usize],
    timeout: Option<Duration>,
    clock: &PhaseClock<'_>,
) -> bool {
    let mut timer: Option<Pin<Box<Sleep>>> = None;
    let mut slow: Option<Pin<Box<Sleep>>> = None;
    let mut slow_warned = false;
    std::future::poll_fn(|cx| {
        if phase.as_mut().poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        if let Some(deadline) = clock.deadline() {
            // A deadline already past (tiny timeouts) fires now, not at the timer's next tick.
            let expired = timer.is_none() && Instant::now() >= deadline;
            let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if expired || t.as_mut().poll(cx).is_ready() {
                record_event_timeout(bus, event, indices, timeout.unwrap_or_default());
                return Poll::Ready(true);
            }
        }
        if let (false, Some(at)) = (slow_warned, clock.slow_at()) {
            let t = slow.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if t.as_mut().poll(cx).is_ready() {
                slow_warned = true;
                slow = None;
                tracing::warn!(
                    bus = %bus.label,
                    event = %event.label(),
                    handlers = indices.len(),
                    "⚠️ Slow event processing: {}.on({}, {} handlers) still running after {:.2}s",
                    bus.label,
                    event.label(),
                    indices.len(),
                    clock.elapsed().as_secs_f64()
                );
            }
        }
        Poll::Pending
    })
    .await
}

fn record_event_timeout(
    bus: &BusInner,
    event: &Arc<EventInner>,
    indices: &[usize],
    timeout: Duration,
) {
    let secs = limits::fmt_secs(timeout);
    let label = event.label();
    let mut finished: SmallVec<[usize; 4]> = SmallVec::new();
    let mut es = event.state.lock();
    for &index in indices {
        let Some(result) = es.results.get_mut(index) else {
            continue;
        };
        let error = match result.status {
            ResultStatus::Pending => HandlerError::with_kind(
                HandlerErrorKind::Cancelled,
                format!("Cancelled: event {label} timed out after {secs}s"),
            ),
            ResultStatus::Started => HandlerError::with_kind(
                HandlerErrorKind::Aborted,
                format!(
                    "Event handler {}({label}) was interrupted because the event timed out after {secs}s",
                    result.handler.label()
                ),
            ),
            ResultStatus::Completed | ResultStatus::Error => continue,
        };
        result.finish(Err(error));
        finished.push(index);
    }
    drop(es);
    bus.hook_results(event, &finished, EventStatus::Completed);
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
fn done_on_bus(bus: &BusInner, event: &Arc<EventInner>) {
    let completion = done_on_bus_locked(bus, event, &mut event.state.lock());
    if let Some(completion) = completion {
        event.completed(completion);
    }
}

/// Under the event's lock: marks `bus`'s slot of it done, and completes the event if nothing
/// else is outstanding (the caller runs the returned [`Completion`] once the lock is released).
pub(crate) fn done_on_bus_locked(
    bus: &BusInner,
    event: &EventInner,
    es: &mut EventState,
) -> Option<Completion> {
    if let Some(slot) = es.active_slot(bus) {
        slot.phase = BusPhase::Done;
    }
    event.complete_locked(es)
}

/// The end of `events` events' processing on `bus`, after [`done_on_bus_locked`] and their
/// completion: that many fewer in flight; if that leaves the bus idle, its idle waiters are woken.
pub(crate) fn leave_bus(bus: &BusInner, events: usize) {
    let idle = leave_locked(&mut bus.state.lock(), events);
    after_leave(bus, idle);
}

/// `events` fewer in flight on the bus whose state `st` is. `Some` if that left the bus idle:
/// pass it to [`after_leave`] once the lock is released.
fn leave_locked(st: &mut BusState, events: usize) -> Option<Option<Arc<BusInner>>> {
    if events == 0 {
        return None;
    }
    st.in_flight = st.in_flight.saturating_sub(events);
    BusInner::is_idle(st).then(|| st.busy.take())
}

/// After [`leave_locked`], with no lock held: if the bus became idle, wakes its idle waiters and
/// lets go of the reference it kept to itself while busy.
fn after_leave(bus: &BusInner, idle: Option<Option<Arc<BusInner>>>) {
    if let Some(busy) = idle {
        bus.notify_idle();
        // Possibly the last reference to the bus: dropped with no lock held.
        drop(busy);
    }
}

/// Bookkeeping when an event completes, for the buses that need it: those that keep only
/// in-flight events forget it, and middlewares hear of it.
pub(crate) fn on_event_completed(
    event: &Arc<EventInner>,
    buses: &[(Arc<BusInner>, u64)],
    info: super::CompletedInfo,
) {
    for (bus, seq) in buses {
        bus.history_completed(event, *seq, info);
    }
    let with_middlewares: SmallVec<[Arc<BusInner>; 2]> = buses
        .iter()
        .filter(|(bus, _)| !bus.middlewares.is_empty())
        .map(|(bus, _)| Arc::clone(bus))
        .collect();
    if !with_middlewares.is_empty() {
        super::hook_completed(event, &with_middlewares);
    }
}

/// If the processing future is dropped (bus stopped, timeout, cancelled caller), records what
/// never ran as cancelled and what was running as aborted, and finishes the event on the bus.
struct ProcessGuard<'a> {
    bus: &'a BusInner,
    event: &'a Arc<EventInner>,
    indices: &'a [usize],
    armed: bool,
}

impl Drop for ProcessGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut finished: SmallVec<[usize; 4]> = SmallVec::new();
        {
            let mut es = self.event.state.lock();
            for &index in self.indices {
                if let Some(result) = es.results.get_mut(index) {
                    let error = interrupted(result, self.event);
                    if result.finish(Err(error)) {
                        finished.push(index);
                    }
                }
            }
        }
        self.bus
            .hook_results(self.event, &finished, EventStatus::Completed);
        finish_on_bus(self.bus, self.event);
    }
}
