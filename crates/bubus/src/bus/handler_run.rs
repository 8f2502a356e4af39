//! One handler run: the serial-handler lock, the handler context, panics, timeouts, slow
//! warnings and cancellation, and recording the outcome.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use futures_util::FutureExt;
use smallvec::SmallVec;
use tokio::time::Instant;
use tracing::Instrument;

use super::BusInner;
use super::cancel::{cancel_events, children_of_results, handler_timed_out};
use super::complete::{completed, done_on_bus_locked};
use super::handler_context::{self, BusOf, CtxParts, HeldLocks};
use super::limits::{HandlerLimits, Timers, fmt_secs};
use super::phase::Phase;
use crate::context;
use crate::error::{CancelCause, HandlerError, HandlerErrorKind};
use crate::event::inner::{EventInner, OwnedEventLabel};
use crate::event::{AnyEvent, EventStatus};
use crate::handler::{HandlerCall, HandlerEntry, HandlerMeta};
use crate::result::{ResultRecord, ResultSlot, ResultStatus};
use crate::time::Timestamp;

/// One handler of one event on one bus, about to run (the caller holds the serial-handler lock
/// if the handler is serial).
pub(crate) struct HandlerRun<'a> {
    /// The event's handler phase on this bus (its deadline: the handler's timer is only armed if
    /// it would fire earlier).
    pub(crate) phase: &'a Phase<'a>,
    pub(crate) entry: &'a HandlerEntry,
    /// The index of the handler's result.
    pub(crate) index: usize,
}

/// What starting a handler did. `W`, what is left of one that waits: a [`Running`] from
/// [`HandlerRun::start`], its future and guard ([`Pending`]) from a [`Call`].
pub(crate) enum Started<W> {
    /// Finished without waiting (a sync handler, or one that never ran): recorded.
    Done,
    /// Finished without waiting and, started as the last one, finished the event on its bus too
    /// (all but leaving the bus's in-flight count: [`super::complete::leave_bus`]).
    Finished,
    /// Waiting on its future: finish it with [`Running::finish`].
    Running(W),
}

/// A [`Call`]'s handler waiting on its future, guarded: the caller drives it ([`Running`]).
pub(crate) type Pending<'a> = (HandlerFuture<'a>, RunGuard<'a>);

type CaughtOutcome = Result<Result<ResultSlot, HandlerError>, Box<dyn std::any::Any + Send>>;
pub(crate) type HandlerFuture<'a> = Pin<Box<dyn Future<Output = CaughtOutcome> + Send + 'a>>;

/// A handler whose future is pending.
pub(crate) struct Running<'a> {
    run: HandlerRun<'a>,
    fut: HandlerFuture<'a>,
    guard: RunGuard<'a>,
}

impl<'a> HandlerRun<'a> {
    /// Marks the handler started and calls it inside its handler context. A sync handler (or an
    /// async one that finishes on its first poll) is recorded here: no future is boxed, no timer
    /// armed, no clock read beyond its timestamps. The `last` handler of the event on this bus
    /// that finishes so also finishes the event here, under the lock that records its outcome
    /// ([`Started::Finished`]).
    pub(crate) fn start(self, last: bool) -> Started<Running<'a>> {
        let Phase {
            bus, event, held, ..
        } = *self.phase;
        let index = self.index;
        if let Some(cause) = event.is_cancelled().then(|| event.cancel_cause()).flatten() {
            interrupt_results(bus, event, &[index], Interrupt::Cancelled(&cause));
            return Started::Done;
        }
        let Some((event_started, span, user_context)) =
            mark_started(event, index, &self.entry.meta)
        else {
            return Started::Done;
        };
        let call = Call {
            bus,
            event,
            held,
            entry: self.entry,
            index,
        };
        match call.run::<false>(last, event_started, span, user_context) {
            Started::Done => Started::Done,
            Started::Finished => Started::Finished,
            Started::Running((fut, guard)) => Started::Running(Running {
                run: self,
                fut,
                guard,
            }),
        }
    }

    /// Starts the handler and, if it waits, drives it to the end.
    pub(crate) async fn run(self) {
        if let Started::Running(running) = self.start(false) {
            running.finish().await;
        }
    }
}

/// A handler call whose result is already marked started: what [`HandlerRun::start`] does
/// once it marked it, and all that the handler phase's fast path does for the usual single
/// serial handler, which its selection marked started ([`super::phase`]), with no handler phase
/// built (see [`Call::run_marked`]).
pub(crate) struct Call<'a> {
    pub(crate) bus: &'a Arc<BusInner>,
    pub(crate) event: &'a Arc<EventInner>,
    pub(crate) held: &'a HeldLocks,
    pub(crate) entry: &'a HandlerEntry,
    /// The index of the handler's result.
    pub(crate) index: usize,
}

impl<'a> Call<'a> {
    /// Calls the handler, its result marked started under the lock that selected it, by the
    /// handler phase's fast path, which takes it only when the handler's span is none, the event
    /// has no dispatch context and the bus no middlewares (nothing to read or tell here).
    /// Inlined into that path.
    #[inline(always)]
    pub(crate) fn run_marked(self, last: bool) -> Started<Pending<'a>> {
        self.run::<true>(last, false, tracing::Span::none(), None)
    }

    /// Calls the handler (its result marked started) inside its handler context; a sync handler
    /// (or an async one done on its first poll) is recorded here, and, if `last`, finishes the
    /// event on the bus (see [`HandlerRun::start`]). `event_started`: marking it started the
    /// event too; `span` and `user_context`: the handler's span and the context of the event's
    /// dispatch. `MARKED`: called by [`run_marked`](Self::run_marked), or by
    /// [`HandlerRun::start`]; the two copies are of different types, the handler call's closure
    /// and its unwinding frame too, so each has a single caller and is inlined into it.
    #[inline(always)]
    fn run<const MARKED: bool>(
        self,
        last: bool,
        event_started: bool,
        span: tracing::Span,
        user_context: Option<crate::context::ContextMap>,
    ) -> Started<Pending<'a>> {
        let Call {
            bus,
            event,
            held,
            entry,
            index,
        } = self;
        // Middlewares are fixed when the bus is built: one look at them for the whole run.
        let hooks = !bus.middlewares.is_empty();
        if hooks {
            bus.hook_results(event, &[index], EventStatus::Started);
            if event_started {
                bus.hook_event(event, EventStatus::Started);
            }
        }
        let ctx = CtxParts {
            event,
            bus: BusOf::Running(bus),
            result_index: index,
            held,
        };
        let any = AnyEvent::from_inner(Arc::clone(event));
        // The handler sees the context of the event's dispatch, not of whoever runs it (a
        // queue-jumping parent, another bus's run loop). Scoping is skipped when neither has one.
        let scope_context = user_context.is_some() || context::has_context();
        let call = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _entered = span.enter();
            let call = || handler_context::sync_scope(ctx, || entry.func.0.call(any));
            if scope_context {
                context::context_sync_scope(user_context.clone(), call)
            } else {
                call()
            }
        }));
        let (outcome, checked) = match call {
            Ok(HandlerCall::Ready(outcome)) => (outcome, false),
            Ok(HandlerCall::Checked(outcome)) => (outcome, true),
            Err(panic) => (Err(HandlerError::panicked(panic)), false),
            Ok(HandlerCall::Pending(fut)) => {
                let fut = handler_context::scope(ctx.build(), AssertUnwindSafe(fut).catch_unwind())
                    .instrument(span);
                let fut: HandlerFuture<'a> = if scope_context {
                    Box::pin(context::context_scope(user_context, fut))
                } else {
                    Box::pin(fut)
                };
                let guard = RunGuard {
                    bus,
                    event,
                    index,
                    armed: true,
                };
                return Started::Running((fut, guard));
            }
        };
        if record(bus, event, index, outcome, checked, last, hooks) {
            Started::Finished
        } else {
            Started::Done
        }
    }
}

impl<'a> Running<'a> {
    /// The run of `run`, whose call ([`Call`]) left `fut` pending under `guard`.
    pub(crate) fn new(run: HandlerRun<'a>, fut: HandlerFuture<'a>, guard: RunGuard<'a>) -> Self {
        Running { run, fut, guard }
    }

    /// Drives the handler's future under its timeout, slow warning and the event's
    /// cancellation, then records the outcome; a timeout cancels the events the handler caused.
    pub(crate) async fn finish(self) {
        let Running {
            run,
            fut,
            mut guard,
        } = self;
        let HandlerRun {
            phase,
            entry,
            index,
        } = run;
        let Phase {
            bus, event, config, ..
        } = *phase;
        let limits = HandlerLimits::resolve(&entry.meta, config, bus, phase.deadline());
        let outcome = drive(fut, event, &limits, &entry.meta).await;
        guard.armed = false;
        let timed_out = matches!(&outcome, Err(err) if err.is_timeout());
        record(
            bus,
            event,
            index,
            outcome,
            false,
            false,
            !bus.middlewares.is_empty(),
        );
        if timed_out {
            // A timed-out handler's queued and running descendants are cancelled too (the cause
            // is written only if there are any).
            let children = children_of_results(event, &[index]);
            if !children.is_empty() {
                let cause = handler_timed_out(&entry.meta, event, limits.timeout);
                cancel_events(children, &cause);
            }
        }
    }
}

/// Marks the result started; `None` if it is no longer pending. Otherwise returns, read under
/// the same lock: whether this also started the event, the handler's span, and the user context
/// of the event's dispatch.
fn mark_started(
    event: &EventInner,
    index: usize,
    handler: &HandlerMeta,
) -> Option<(bool, tracing::Span, Option<crate::context::ContextMap>)> {
    let mut es = event.state.lock();
    let now = Timestamp::now_shared();
    let result = es.results.get_mut(index)?;
    if result.status != ResultStatus::Pending {
        return None;
    }
    result.mark_started(now);
    let event_started = es.mark_started(now);
    let span = handler_span(event, handler, es.dispatch_span());
    Some((event_started, span, es.dispatch_context().cloned()))
}

/// The handler's `tracing` span, a child of the span current where the event was dispatched (so
/// a child event's handlers nest under the handler that dispatched it). When the subscriber
/// does not want handler spans, the dispatch span itself is entered instead, so spans the handler
/// opens still have the right parent.
fn handler_span(
    event: &EventInner,
    handler: &HandlerMeta,
    dispatch_span: Option<&tracing::Span>,
) -> tracing::Span {
    let span = tracing::debug_span!(
        parent: dispatch_span.and_then(tracing::Span::id),
        "bubus.handler",
        bus = %handler.bus_label,
        event_type = %event.event_type(),
        event_id = %event.id,
        handler = %handler.name,
    );
    if span.is_disabled() {
        dispatch_span.cloned().unwrap_or_else(tracing::Span::none)
    } else {
        span
    }
}

/// Polls a handler future; only once it is pending are its timers armed: the timeout (drops the
/// future: `EventHandlerTimeoutError`), the slow warning (logs once), and cancellation of the
/// event (drops the future: `EventHandlerAbortedError`).
async fn drive<F: Future<Output = CaughtOutcome>>(
    fut: F,
    event: &EventInner,
    limits: &HandlerLimits,
    handler: &Arc<HandlerMeta>,
) -> Result<ResultSlot, HandlerError> {
    tokio::pin!(fut);
    let mut timers = Timers::new(limits.deadline, limits.slow_at);
    let mut cancel: Option<Pin<Box<tokio::sync::futures::Notified<'_>>>> = None;
    let started = Instant::now();
    std::future::poll_fn(|cx| {
        if event.is_cancelled() {
            return Poll::Ready(Err(aborted(event, handler)));
        }
        if let Poll::Ready(outcome) = fut.as_mut().poll(cx) {
            return Poll::Ready(match outcome {
                Ok(outcome) => outcome,
                Err(panic) => Err(HandlerError::panicked(panic)),
            });
        }
        let fired = timers.poll(cx, || {
            tracing::warn!(
                bus = %handler.bus_label,
                event = %event.label(),
                handler = %handler.label(),
                elapsed_s = started.elapsed().as_secs_f64(),
                "⚠️ Slow event handler: {}.on({}, {}) still running after {:.1}s",
                handler.bus_label,
                event.label(),
                handler.label(),
                started.elapsed().as_secs_f64()
            );
        });
        if fired.is_ready() {
            return Poll::Ready(Err(HandlerError::with_kind_deferred(
                HandlerErrorKind::Timeout,
                Written::HandlerTimeout(Arc::clone(handler), event.label_owned(), limits.timeout),
            )));
        }
        // Wake up if the event gets cancelled; re-check after registering so a cancellation
        // between the first check and the registration is not missed.
        loop {
            let notified = cancel.get_or_insert_with(|| {
                let mut notified = Box::pin(event.notify.notified());
                notified.as_mut().enable();
                notified
            });
            if event.is_cancelled() {
                return Poll::Ready(Err(aborted(event, handler)));
            }
            if notified.as_mut().poll(cx).is_ready() {
                cancel = None;
                continue;
            }
            break;
        }
        Poll::Pending
    })
    .await
}

/// The error of a running handler whose event was cancelled.
fn aborted(event: &EventInner, handler: &Arc<HandlerMeta>) -> HandlerError {
    let cause = event
        .cancel_cause()
        .unwrap_or_else(|| CancelCause::text("the event was cancelled"));
    Interrupt::Cancelled(&cause).error(ResultStatus::Started, handler, event)
}

/// Validates the outcome against the event's result type and records it (unless something —
/// a timeout, a cancellation — already recorded a final status). If `finish_bus`, also finishes
/// the event on `bus` under the same lock; returns whether it did. `checked`: whether the
/// handler found the outcome to pass the check already (`HandlerCall::Checked`). `hooks`:
/// whether `bus` has middlewares to tell of the result. Inlined into its two
/// callers (a sync handler's outcome is recorded in the frame that called it, not copied into
/// one of its own first).
#[inline(always)]
fn record(
    bus: &BusInner,
    event: &Arc<EventInner>,
    index: usize,
    mut outcome: Result<ResultSlot, HandlerError>,
    checked: bool,
    finish_bus: bool,
    hooks: bool,
) -> bool {
    // A null result (a handler returning `()`, the usual case) passes every result check (the
    // typed one and the dynamic one alike leave it as it is), so it skips the call, and the
    // outcome stays where it is.
    if !checked
        && let Ok(slot) = &mut outcome
        && !slot.is_null()
        && let Err(err) = (event.kind.check_result)(event, slot)
    {
        // What it replaces is `Ok(Null)` (a slot that fails the check is left null): nothing
        // to drop.
        std::mem::forget(std::mem::replace(&mut outcome, Err(err)));
    }
    let mut es = event.state.lock();
    let Some(result) = es.results.get_mut(index) else {
        return false;
    };
    if let Err(err) = &outcome {
        if !result.status.is_terminal() {
            tracing::warn!(
                event = %event.label(),
                handler = %result.handler.label(),
                bus = %result.handler.bus_label,
                error = %err,
                "event handler failed"
            );
        }
    }
    let finished = result.finish(outcome);
    let completion = if finish_bus {
        done_on_bus_locked(bus, event, &mut es)
    } else {
        None
    };
    drop(es);
    if finished && hooks {
        bus.hook_results(event, &[index], EventStatus::Completed);
    }
    if let Some(completion) = completion {
        completed(event, completion);
    }
    finish_bus
}

/// Whether the result at `index` wins first-completion mode: completed without error, with a
/// value that is not null and not a forwarded event (`0`, `""` and `false` win).
pub(crate) fn is_winner(event: &EventInner, index: usize) -> bool {
    event
        .state
        .lock()
        .results
        .get(index)
        .is_some_and(ResultRecord::is_truthy)
}

/// If a running handler's future is dropped (the event timed out, the bus stopped, a
/// first-completion winner was found), records it as aborted.
pub(crate) struct RunGuard<'a> {
    bus: &'a BusInner,
    event: &'a Arc<EventInner>,
    index: usize,
    armed: bool,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        interrupt_results(self.bus, self.event, &[self.index], Interrupt::Dropped);
    }
}

/// Why results are finished by someone other than their handler: each gets an error, a
/// `Cancelled` one if its handler had not started, an `Aborted` one if it was running.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Interrupt<'a> {
    /// The event, or this bus's processing of it, was cancelled (`Cancelled: {cause}` /
    /// `Aborted: {cause}`).
    Cancelled(&'a CancelCause),
    /// The event's timeout on this bus fired.
    EventTimeout(Duration),
    /// The processing was dropped before it finished (the bus stopped, the caller gave up).
    Dropped,
}

impl Interrupt<'_> {
    /// The error for a result of `handler` on `event` whose status is `status` (not final).
    pub(crate) fn error(
        self,
        status: ResultStatus,
        handler: &Arc<HandlerMeta>,
        event: &EventInner,
    ) -> HandlerError {
        let started = status != ResultStatus::Pending;
        let (kind, written) = match (self, started) {
            (Interrupt::Cancelled(cause), false) => (
                HandlerErrorKind::Cancelled,
                Written::Cancelled(cause.clone()),
            ),
            (Interrupt::Cancelled(cause), true) => {
                (HandlerErrorKind::Aborted, Written::Aborted(cause.clone()))
            }
            (Interrupt::EventTimeout(secs), false) => (
                HandlerErrorKind::Cancelled,
                Written::EventTimeoutCancelled(event.label_owned(), secs),
            ),
            (Interrupt::EventTimeout(secs), true) => (
                HandlerErrorKind::Aborted,
                Written::EventTimeoutAborted(Arc::clone(handler), event.label_owned(), secs),
            ),
            (Interrupt::Dropped, false) => (
                HandlerErrorKind::Cancelled,
                Written::DroppedCancelled(event.label_owned()),
            ),
            (Interrupt::Dropped, true) => (
                HandlerErrorKind::Aborted,
                Written::DroppedAborted(Arc::clone(handler), event.label_owned()),
            ),
        };
        HandlerError::with_kind_deferred(kind, written)
    }
}

/// The parts of a handler error message the engine writes, kept until the message is read
/// ([`HandlerError::with_kind_deferred`]): most timeout and interruption messages never are, and
/// writing one (labels, seconds as a float) cost 100–200 instructions.
enum Written {
    /// The event was cancelled before the handler started.
    Cancelled(CancelCause),
    /// The event was cancelled while the handler ran.
    Aborted(CancelCause),
    /// The handler ran past its timeout.
    HandlerTimeout(Arc<HandlerMeta>, OwnedEventLabel, Option<Duration>),
    /// The event timed out before the handler started.
    EventTimeoutCancelled(OwnedEventLabel, Duration),
    /// The event timed out while the handler ran.
    EventTimeoutAborted(Arc<HandlerMeta>, OwnedEventLabel, Duration),
    /// The processing was dropped before the handler started.
    DroppedCancelled(OwnedEventLabel),
    /// The processing was dropped while the handler ran.
    DroppedAborted(Arc<HandlerMeta>, OwnedEventLabel),
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Written::Cancelled(cause) => write!(f, "Cancelled: {cause}"),
            Written::Aborted(cause) => write!(f, "Aborted: {cause}"),
            Written::HandlerTimeout(handler, event, timeout) => write!(
                f,
                "Event handler {}({event}) timed out after {}s",
                handler.label_display(),
                fmt_secs(*timeout)
            ),
            Written::EventTimeoutCancelled(event, secs) => write!(
                f,
                "Cancelled: event {event} timed out after {}s",
                fmt_secs(Some(*secs))
            ),
            Written::EventTimeoutAborted(handler, event, secs) => write!(
                f,
                "Event handler {}({event}) was interrupted because the event timed out after {}s",
                handler.label_display(),
                fmt_secs(Some(*secs))
            ),
            Written::DroppedCancelled(event) => write!(
                f,
                "Cancelled: {event} was interrupted before this handler started"
            ),
            Written::DroppedAborted(handler, event) => write!(
                f,
                "Event handler {}({event}) was interrupted while running",
                handler.label_display()
            ),
        }
    }
}

/// Finishes the results at `indices` that are not final yet with the error `why` gives them
/// (cancelled if their handler had not started, aborted if it was running), tells the hooks, and
/// returns the indices it finished.
pub(crate) fn interrupt_results(
    bus: &BusInner,
    event: &Arc<EventInner>,
    indices: &[usize],
    why: Interrupt<'_>,
) -> SmallVec<[usize; 4]> {
    let mut finished: SmallVec<[usize; 4]> = SmallVec::new();
    {
        let mut es = event.state.lock();
        for &index in indices {
            let Some(result) = es.results.get_mut(index) else {
                continue;
            };
            if result.status.is_terminal() {
                continue;
            }
            let error = why.error(result.status, &result.handler, event);
            if result.finish(Err(error)) {
                finished.push(index);
            }
        }
    }
    bus.hook_results(event, &finished, EventStatus::Completed);
    finished
}
