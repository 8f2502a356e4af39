//! The handler phase: every handler of one event on one bus, in the event's handler-concurrency
//! and completion modes, under the event's timeout and slow warning. One handler's run is in
//! [`super::handler_run`]; the end of the phase in [`super::complete`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;
use tokio::time::Instant;
use uuid::Uuid;

use super::BusInner;
use super::cancel::{cancel_events, children_of_results, event_timed_out};
use super::complete::{Processed, done_on_bus, finish_on_bus};
use super::handler_context::HeldLocks;
use super::handler_run::{
    Call, HandlerRun, Interrupt, Running, Started, interrupt_results, is_winner,
};
use super::handlers::HandlerList;
use super::handlers::Handlers;
use super::limits::{self, PhaseClock, Timers};
use crate::error::CancelCause;
use crate::event::config::EventSettings;
use crate::event::inner::{BusPhase, EventInner, EventState};
use crate::event::{EventConfig, EventStatus, HandlerCompletion, HandlerConcurrency};
use crate::handler::{HandlerEntry, HandlerId};
use crate::lock::FairGuard;
use crate::result::{ResultIds, ResultRecord, ResultStatus};
use crate::time::Timestamp;

/// Runs `handlers` (those registered on `bus` for `event`, read when it was taken off the queue)
/// on `event`, then finishes the event on that bus. `held` are the event locks already held by
/// whoever is running this (a queue-jump re-enters them).
pub(crate) async fn process_event(
    bus: &Arc<BusInner>,
    event: &Arc<EventInner>,
    (exact, wildcard): Handlers,
    held: &HeldLocks,
) -> Processed {
    // The selection is written in place: the event's config straight from its state into the
    // processing future, the runs of several handlers into `many`; only the usual single run
    // is returned (two words).
    let mut many = Many::default();
    // The event's config: its type's by reference, or a copy of its own (written only then).
    let own_config;
    let config: &EventConfig;
    let one;
    // The usual single serial handler is marked started under the same lock, holding the
    // serial-handler lock from here (see [`start_single`]).
    let mut marked = None;
    {
        let mut es = event.state.lock();
        config = match &es.config {
            EventSettings::Shared(shared) => shared,
            EventSettings::Own(own) => {
                own_config = **own;
                &own_config
            }
        };
        one = select_runs(
            bus,
            event,
            &mut es,
            &exact,
            &wildcard,
            config,
            &mut many,
            &mut marked,
        );
    }
    // The usual single serial handler, marked started: called right here, with no handler
    // phase built unless it waits.
    let mut pending = None;
    if let Some(permit) = marked {
        let Some((entry, index)) = one else {
            unreachable!("only a single run is marked started");
        };
        // In first-completion mode a single handler has no other to cancel: its run ends the
        // phase either way, but the event is finished on the bus after it, not by it.
        let first = Plan::first(bus, config);
        let call = Call {
            bus,
            event,
            held,
            entry,
            index,
        };
        match call.run_marked(!first) {
            Started::Finished => return Processed(()),
            Started::Done => {
                drop(permit);
                done_on_bus(bus, event);
                return Processed(());
            }
            Started::Running((fut, run_guard)) => pending = Some((fut, run_guard, permit)),
        }
    }
    let one_run;
    let (runs, indices, overrides) = match one {
        Some(run) => {
            one_run = [run];
            let [(entry, index)] = &one_run;
            (
                &one_run[..],
                std::slice::from_ref(index),
                Overrides::of(entry),
            )
        }
        None => (&many.runs[..], &many.indices[..], many.overrides),
    };
    if !bus.middlewares.is_empty() {
        bus.hook_event(event, EventStatus::Pending);
        bus.hook_results(event, indices, EventStatus::Pending);
    }
    let phase = Phase {
        bus,
        event,
        runs,
        indices,
        held,
        config,
        // The event's hard timeout covers the whole handler phase on this bus, from now.
        clock: PhaseClock::new(),
        plan: Plan::new(bus, config, overrides),
    };
    // Forgotten once the phase ends: it only acts if the future is dropped before.
    let guard = ProcessGuard { phase: &phase };
    let ready = match pending {
        // The marked single run waits: the phase goes on with it.
        Some((fut, run_guard, permit)) => {
            let run = phase.runs[0];
            Ready::Rest {
                next: 1,
                waiting: Some((Running::new(phase.run(run), fut, run_guard), permit, run.1)),
            }
        }
        None => phase.run_ready(),
    };
    let timed_out = match ready {
        Ready::Finished => {
            std::mem::forget(guard);
            return Processed(());
        }
        Ready::AllDone => false,
        // The slow path lives in an allocation of its own, made only when it is taken: inline,
        // it would make every processing future (built and moved for each event, on the fast
        // path too) over a kilobyte.
        Ready::Rest { next, waiting } => phase.slow(next, waiting).await,
    };
    std::mem::forget(guard);
    if timed_out {
        // The handlers' queued and running descendants are cancelled too (the cause is written
        // only if there are any).
        let children = children_of_results(event, indices);
        if !children.is_empty() {
            let cause = event_timed_out(event, phase.timeout(), bus);
            cancel_events(children, &cause);
        }
    }
    done_on_bus(bus, event);
    Processed(())
}

type Runs<'a> = SmallVec<[(&'a HandlerEntry, usize); 4]>;

/// Marks the event processing on `bus` (under the event's state lock `es`) and picks the handlers
/// to run, each with the index of its (new, pending) result: the usual single run is returned;
/// any other selection is written to `many` (left empty if nothing runs).
///
/// Inlined, for the usual case (one handler, no result yet). Any other case is [`select_many`],
/// out of line.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn select_runs<'h, 'e>(
    bus: &BusInner,
    event: &'e Arc<EventInner>,
    es: &mut EventState,
    exact: &'h Option<HandlerList>,
    wildcard: &'h Option<HandlerList>,
    config: &EventConfig,
    many: &mut Many<'h>,
    marked: &mut Option<FairGuard<'e>>,
) -> Option<(&'h HandlerEntry, usize)> {
    // Queued until now (or already processing, for a restored event).
    if let Some(slot) = es.active_slot(bus) {
        slot.phase = BusPhase::Processing;
    }
    // The usual case: one handler, and no result yet (none from another bus or a snapshot),
    // nor room for more than one.
    if es.results.is_empty() && !es.results.spilled() {
        if let Some(entry) = single(exact, wildcard) {
            if forward_loops(es, entry) {
                return None;
            }
            let mut record =
                ResultRecord::pending(Arc::clone(&entry.meta), event.id, event.created_at);
            *marked = start_single(bus, event, es, config, entry, &mut record);
            // The vector is empty and inline (it owns nothing): replaced by one holding the
            // record, written once, where a push copies the record aside for its growth path.
            std::mem::forget(std::mem::replace(
                &mut *es.results,
                SmallVec::from_buf([record]),
            ));
            return Some((&**entry, 0));
        }
    }
    select_many(event, es, exact, wildcard, many);
    None
}

/// Marks `record`, the new result of the single selected handler `entry`, started (and the
/// event, if this starts it), under the event's state lock `es` that selected it, when the
/// handler runs serially and its run needs nothing else read under that lock: no middlewares to
/// tell first, the event not cancelled, no dispatch span or context (and no handler span: `DEBUG`
/// is off), and the serial-handler lock free (taken here, and returned). [`process_event`] then
/// calls the handler itself ([`Call::run_marked`]), with no look of its own at the event's state
/// (one lock and unlock and one lookup of the result fewer per event) and no handler phase built
/// unless the handler waits. `None`: not taken (nothing changed).
#[inline(always)]
fn start_single<'e>(
    bus: &BusInner,
    event: &'e EventInner,
    es: &mut EventState,
    config: &EventConfig,
    entry: &HandlerEntry,
    record: &mut ResultRecord,
) -> Option<FairGuard<'e>> {
    // What `Plan::all_serial` says of a single handler.
    let mode = config
        .event_handler_concurrency
        .unwrap_or(bus.config.event_handler_concurrency);
    if mode != HandlerConcurrency::Serial
        || entry.meta.concurrency == Some(HandlerConcurrency::Parallel)
        || !bus.middlewares.is_empty()
        || event.is_cancelled()
        || es
            .rare()
            .is_some_and(|rare| rare.dispatch_span.is_some() || rare.dispatch_context.is_some())
        || tracing::level_enabled!(tracing::Level::DEBUG)
    {
        return None;
    }
    let permit = event.handler_lock.try_acquire()?;
    let now = Timestamp::now_shared();
    record.mark_started(now);
    es.mark_started(now);
    Some(permit)
}

/// [`select_runs`] for any number of handlers, under the event's state lock `es`, into `many`.
#[inline(never)]
fn select_many<'h>(
    event: &Arc<EventInner>,
    es: &mut EventState,
    exact: &'h Option<HandlerList>,
    wildcard: &'h Option<HandlerList>,
    many: &mut Many<'h>,
) {
    // The handlers' own concurrency overrides are read in the same pass, while each handler is
    // at hand, rather than in another pass over them (an event with thousands of handlers would
    // fetch each one again).
    let Many {
        runs,
        indices,
        overrides,
    } = many;
    // Results the event already has (from another bus, or a restored snapshot): a handler
    // that already has one is not run again. Indexed when there are many, so that an event
    // with thousands of handlers stays linear.
    let prior = es.results.len();
    // One allocation for the records of every handler (growing one at a time would copy them
    // about log2(n) times).
    let expected = exact.as_ref().map_or(0, |l| l.len()) + wildcard.as_ref().map_or(0, |l| l.len());
    es.results.reserve(expected);
    // The run list and its indices too, when they outgrow their inline room (an event with
    // thousands of handlers): grown by doubling they would be copied about log2(n) times, and
    // leave the freed smaller copies resident.
    if expected > runs.inline_size() {
        runs.reserve_exact(expected);
        indices.reserve_exact(expected);
    }
    let prior_index: Option<FxHashMap<(HandlerId, Uuid), usize>> = (prior > 16).then(|| {
        es.results
            .iter()
            .enumerate()
            .map(|(i, r)| ((r.handler.id.clone(), r.handler.bus_id), i))
            .collect()
    });
    let ids = ResultIds::new(event.id, event.created_at);
    let slice = |list: &'h Option<HandlerList>| list.as_deref().map_or(&[][..], Vec::as_slice);
    for entry in slice(exact).iter().chain(slice(wildcard)) {
        // Loop prevention: a forwarder to a bus the event already went through is skipped,
        // and a handler that already ran for this event does not run again.
        if forward_loops(es, entry) {
            continue;
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
                overrides.note(entry.meta.concurrency);
                runs.push((&**entry, pos));
                indices.push(pos);
            }
            continue;
        }
        overrides.note(entry.meta.concurrency);
        es.results.push(ResultRecord::pending_with_id(
            ids.next(),
            Arc::clone(&entry.meta),
        ));
        runs.push((&**entry, es.results.len() - 1));
        indices.push(es.results.len() - 1);
    }
}

/// The only handler of `exact` and `wildcard`, if there is exactly one.
#[inline]
fn single<'h>(
    exact: &'h Option<HandlerList>,
    wildcard: &'h Option<HandlerList>,
) -> Option<&'h Arc<HandlerEntry>> {
    match (
        exact.as_deref().map(Vec::as_slice),
        wildcard.as_deref().map(Vec::as_slice),
    ) {
        (Some([one]), None | Some([])) | (None | Some([]), Some([one])) => Some(one),
        _ => None,
    }
}

/// Loop prevention: whether `entry` forwards to a bus the event already went through.
#[inline]
fn forward_loops(es: &EventState, entry: &HandlerEntry) -> bool {
    entry
        .meta
        .forward_target
        .as_ref()
        .is_some_and(|(target_id, target_label)| {
            es.buses.iter().any(|slot| slot.bus_id == *target_id)
                || es.path.iter().any(|label| label.label == *target_label)
        })
}

/// The handlers [`select_runs`] picked when not exactly one runs, each with the index of its
/// result, and the concurrency overrides among them.
#[derive(Default)]
struct Many<'h> {
    runs: Runs<'h>,
    indices: SmallVec<[usize; 4]>,
    overrides: Overrides,
}

/// Which handler-concurrency modes the selected handlers' own overrides name.
#[derive(Clone, Copy, Default)]
struct Overrides {
    serial: bool,
    parallel: bool,
}

impl Overrides {
    /// The override of `entry`, the only handler selected.
    fn of(entry: &HandlerEntry) -> Self {
        let mut overrides = Overrides::default();
        overrides.note(entry.meta.concurrency);
        overrides
    }

    #[inline(always)]
    fn note(&mut self, concurrency: Option<HandlerConcurrency>) {
        match concurrency {
            None => {}
            Some(HandlerConcurrency::Serial) => self.serial = true,
            Some(HandlerConcurrency::Parallel) => self.parallel = true,
        }
    }

    /// Whether some override differs from `mode`.
    fn differ_from(self, mode: HandlerConcurrency) -> bool {
        match mode {
            HandlerConcurrency::Serial => self.parallel,
            HandlerConcurrency::Parallel => self.serial,
        }
    }
}

/// One event's handler phase on one bus: what each of its steps, and each handler run, reads.
pub(crate) struct Phase<'a> {
    pub(crate) bus: &'a Arc<BusInner>,
    pub(crate) event: &'a Arc<EventInner>,
    /// The handlers to run, in order, each with the index of its result.
    runs: &'a [(&'a HandlerEntry, usize)],
    /// The result indices of `runs`.
    indices: &'a [usize],
    /// The event locks already held by whoever runs the phase (a queue-jump re-enters them).
    pub(crate) held: &'a HeldLocks,
    /// The event's config, read when the phase started (a copy in the processing future,
    /// borrowed here: not copied again into the phase).
    pub(crate) config: &'a EventConfig,
    /// When the phase started (for the event's timeout on this bus and its slow warning).
    clock: PhaseClock,
    plan: Plan,
}

impl<'a> Phase<'a> {
    /// When the event's timeout fires on this bus.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.clock.after(self.timeout(), self.event, self.indices)
    }

    /// The event's timeout on this bus.
    fn timeout(&self) -> Option<Duration> {
        limits::event_timeout(self.config, self.bus)
    }

    /// The handler run of `runs[i]`.
    fn run(&'a self, (entry, index): (&'a HandlerEntry, usize)) -> HandlerRun<'a> {
        HandlerRun {
            phase: self,
            entry,
            index,
        }
    }

    /// In first-completion mode, whether the result at `index` (just finished) won; if it did,
    /// the event's other handlers on this bus that have not finished are cancelled or aborted.
    #[inline]
    fn first_won(&self, index: usize) -> bool {
        self.plan.first && self.won(index)
    }

    #[cold]
    fn won(&self, index: usize) -> bool {
        if !is_winner(self.event, index) {
            return false;
        }
        let losers: SmallVec<[usize; 4]> = self
            .indices
            .iter()
            .copied()
            .filter(|i| *i != index)
            .collect();
        // The other handlers on this bus are cancelled (not started) or aborted (running), and
        // the events they dispatched are cancelled too.
        let cause = &CancelCause::text("first() resolved");
        let losers = interrupt_results(self.bus, self.event, &losers, Interrupt::Cancelled(cause));
        cancel_events(children_of_results(self.event, &losers), cause);
        true
    }

    /// Serial handlers run one at a time, in order: those that finish without waiting (sync
    /// handlers, async ones done on their first poll) run right here, with no future built for
    /// the handler phase. The first one that waits, or a serial-handler lock held elsewhere,
    /// hands over to [`run_handlers`](Self::run_handlers), which goes on in the same order. (The
    /// usual single serial handler, marked started under the lock that selected it, is called
    /// before any phase is built: see [`process_event`].)
    ///
    /// Inlined into [`process_event`], its only caller.
    #[inline(always)]
    fn run_ready(&'a self) -> Ready<'a> {
        if !self.plan.all_serial() {
            return Ready::Rest {
                next: 0,
                waiting: None,
            };
        }
        let mut next = 0;
        while let Some(&run) = self.runs.get(next) {
            let Some(permit) = self.event.handler_lock.try_acquire() else {
                break;
            };
            next += 1;
            match self
                .run(run)
                .start(next == self.runs.len() && !self.plan.first)
            {
                Started::Finished => return Ready::Finished,
                Started::Done => {
                    drop(permit);
                    if self.first_won(run.1) {
                        return Ready::AllDone;
                    }
                }
                Started::Running(running) => {
                    return Ready::Rest {
                        next,
                        waiting: Some((running, permit, run.1)),
                    };
                }
            }
        }
        if next == self.runs.len() {
            Ready::AllDone
        } else {
            Ready::Rest {
                next,
                waiting: None,
            }
        }
    }

    /// Runs the handlers from `runs[next]` on (after `waiting`, a serial handler
    /// [`run_ready`](Self::run_ready) left running) in the event's handler-concurrency mode and
    /// completion mode.
    async fn run_handlers(
        &'a self,
        next: usize,
        waiting: Option<(Running<'a>, FairGuard<'a>, usize)>,
    ) {
        let event = self.event;
        if self.plan.all_serial() {
            // One at a time, in order, each under the event's serial-handler lock (shared with
            // every other bus processing this event).
            if let Some((running, permit, index)) = waiting {
                running.finish().await;
                drop(permit);
                if self.first_won(index) {
                    return;
                }
            }
            for &run in &self.runs[next..] {
                {
                    let _permit = event.handler_lock.acquire().await;
                    self.run(run).run().await;
                }
                if self.first_won(run.1) {
                    return;
                }
            }
            return;
        }

        // Every handler starts now, in order; those that wait are driven together. Handlers that
        // finish without waiting cost no future at all.
        let mode = self.plan.mode;
        let mut running: FuturesUnordered<Pin<Box<dyn Future<Output = usize> + Send + '_>>> =
            FuturesUnordered::new();
        for &run in self.runs {
            let (entry, index) = run;
            // Here the event's mode is parallel unless some handler overrides it (all serial
            // runs above): only then is each handler's own mode read.
            let serial = self.plan.mixed
                && entry.meta.concurrency.unwrap_or(mode) == HandlerConcurrency::Serial;
            // A handler starts when it first runs — a sync one here, an async one at its first
            // poll — before the next handler starts. Serial ones queue for the serial lock in
            // order.
            let mut fut: Pin<Box<dyn Future<Output = usize> + Send + '_>> = if serial {
                Box::pin(async move {
                    let _permit = event.handler_lock.acquire().await;
                    self.run(run).run().await;
                    index
                })
            } else {
                match self.run(run).start(false) {
                    Started::Done | Started::Finished => {
                        if self.first_won(index) {
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
            if done && self.first_won(index) {
                return;
            }
        }
        while let Some(index) = running.next().await {
            if self.first_won(index) {
                // Dropping `running` drops the losers still running; they are already recorded.
                return;
            }
        }
    }

    /// The rest of the handler phase after [`run_ready`](Self::run_ready), under the event's
    /// timeout: whether it timed out. Boxed: see [`process_event`].
    fn slow(
        &'a self,
        next: usize,
        waiting: Option<(Running<'a>, FairGuard<'a>, usize)>,
    ) -> Pin<Box<impl Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let handlers = self.run_handlers(next, waiting);
            tokio::pin!(handlers);
            self.drive(handlers).await
        })
    }

    /// Polls the handler phase under the event's timeout and slow warning (armed only once the
    /// phase is pending). On timeout, records pending handlers as cancelled and running ones as
    /// aborted, and returns true; the caller drops the phase.
    async fn drive<F: Future<Output = ()>>(&self, mut handlers: Pin<&mut F>) -> bool {
        let (bus, event) = (self.bus, self.event);
        let mut timers: Option<Timers> = None;
        std::future::poll_fn(|cx| {
            if handlers.as_mut().poll(cx).is_ready() {
                return Poll::Ready(false);
            }
            let timers = timers.get_or_insert_with(|| {
                let slow = limits::event_slow_timeout(self.config, bus);
                Timers::new(self.deadline(), self.clock.after(slow, event, self.indices))
            });
            let fired = timers.poll(cx, || {
                tracing::warn!(
                    bus = %bus.label,
                    event = %event.label(),
                    handlers = self.indices.len(),
                    "⚠️ Slow event processing: {}.on({}, {} handlers) still running after {:.2}s",
                    bus.label,
                    event.label(),
                    self.indices.len(),
                    self.clock.elapsed(event, self.indices).as_secs_f64()
                );
            });
            if fired.is_ready() {
                let timeout = self.timeout().unwrap_or_default();
                interrupt_results(bus, event, self.indices, Interrupt::EventTimeout(timeout));
                return Poll::Ready(true);
            }
            Poll::Pending
        })
        .await
    }
}

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
    fn new(bus: &BusInner, config: &EventConfig, overrides: Overrides) -> Self {
        let mode = config
            .event_handler_concurrency
            .unwrap_or(bus.config.event_handler_concurrency);
        Plan {
            mode,
            first: Plan::first(bus, config),
            mixed: overrides.differ_from(mode),
        }
    }

    /// Whether the event's handler phase on `bus` is in first-completion mode.
    #[inline(always)]
    fn first(bus: &BusInner, config: &EventConfig) -> bool {
        config
            .event_handler_completion
            .unwrap_or(bus.config.event_handler_completion)
            == HandlerCompletion::First
    }

    /// Every handler runs serially, in order, under the event's serial-handler lock.
    fn all_serial(&self) -> bool {
        self.mode == HandlerConcurrency::Serial && !self.mixed
    }
}

/// What [`Phase::run_ready`] left for the handler phase.
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

/// If the processing future is dropped (bus stopped, timeout, cancelled caller), records what
/// never ran as cancelled and what was running as aborted, and finishes the event on the bus.
struct ProcessGuard<'a> {
    phase: &'a Phase<'a>,
}

impl Drop for ProcessGuard<'_> {
    fn drop(&mut self) {
        let Phase {
            bus,
            event,
            indices,
            ..
        } = *self.phase;
        interrupt_results(bus, event, indices, Interrupt::Dropped);
        finish_on_bus(bus, event);
    }
}
