//! One handler run: the serial-handler lock, the handler context, panics, timeouts, slow
//! warnings and cancellation, and recording the outcome.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use futures_util::FutureExt;
use tokio::time::{Instant, Sleep};
use tracing::Instrument;

use super::BusInner;
use super::cancel::{cancel_events, children_of_results};
use super::limits::{HandlerLimits, PhaseClock, fmt_secs};
use super::process::done_on_bus_locked;
use crate::context::{self, HandlerCtx, HeldLocks};
use crate::error::{HandlerError, HandlerErrorKind};
use crate::event::inner::EventInner;
use crate::event::{AnyEvent, EventConfig, EventStatus};
use crate::handler::{HandlerCall, HandlerEntry};
use crate::result::{ResultRecord, ResultSlot, ResultStatus};
use crate::time::Timestamp;

/// One handler of one event on one bus, about to run (the caller holds the serial-handler lock
/// if the handler is serial).
pub(crate) struct HandlerRun<'a> {
    pub(crate) bus: &'a Arc<BusInner>,
    pub(crate) event: &'a Arc<EventInner>,
    pub(crate) entry: &'a HandlerEntry,
    pub(crate) index: usize,
    pub(crate) held: &'a HeldLocks,
    pub(crate) config: &'a EventConfig,
    /// The event's processing clock on this bus: its deadline (the handler's timer is only
    /// armed if it would fire earlier).
    pub(crate) phase: &'a PhaseClock<'a>,
}

/// What starting a handler did.
pub(crate) enum Started<'a> {
    /// Finished without waiting (a sync handler, or one that never ran): recorded.
    Done,
    /// Finished without waiting and, started as the last one, finished the event on its bus too
    /// (all but leaving the bus's in-flight count: [`super::process::leave_bus`]).
    Finished,
    /// Waiting on its future: finish it with [`Running::finish`].
    Running(Running<'a>),
}

type CaughtOutcome = Result<Result<ResultSlot, HandlerError>, Box<dyn std::any::Any + Send>>;
type HandlerFuture<'a> = Pin<Box<dyn Future<Output = CaughtOutcome> + Send + 'a>>;

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
    pub(crate) fn start(self, last: bool) -> Started<'a> {
        let (bus, event, index) = (self.bus, self.event, self.index);
        if let Some(cause) = event.is_cancelled().then(|| event.cancel_cause()).flatten() {
            finish_result(bus, event, index, Err(cancelled(&cause)));
            return Started::Done;
        }
        let Some((event_started, span, user_context)) =
            mark_started(event, index, &self.entry.meta)
        else {
            return Started::Done;
        };
        bus.hook_results(event, &[index], EventStatus::Started);
        if event_started {
            bus.hook_event(event, EventStatus::Started);
        }
        let ctx = || HandlerCtx {
            event: Arc::clone(event),
            bus_id: bus.id,
            result_index: index,
            held: self.held.clone(),
        };
        let any = AnyEvent::from_inner(Arc::clone(event));
        // The handler sees the context of the event's dispatch, not of whoever runs it (a
        // queue-jumping parent, another bus's run loop). Scoping is skipped when neither has one.
        let scope_context = user_context.is_some() || context::has_context();
        let call = std::panic::catch_unwind(AssertUnwindSafe(|| {
            let _entered = span.enter();
            let call = || context::sync_scope(ctx(), || self.entry.func.0.call(any));
            if scope_context {
                context::context_sync_scope(user_context.clone(), call)
            } else {
                call()
            }
        }));
        let outcome = match call {
            Ok(HandlerCall::Ready(outcome)) => outcome,
            Err(panic) => Err(HandlerError::panicked(panic)),
            Ok(HandlerCall::Pending(fut)) => {
                let fut =
                    context::scope(ctx(), AssertUnwindSafe(fut).catch_unwind()).instrument(span);
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
                return Started::Running(Running {
                    run: self,
                    fut,
                    guard,
                });
            }
        };
        if record(bus, event, index, outcome, last) {
            Started::Finished
        } else {
            Started::Done
        }
    }

    /// Starts the handler and, if it waits, drives it to the end.
    pub(crate) async fn run(self) {
        if let Started::Running(running) = self.start(false) {
            running.finish().await;
        }
    }
}

impl Running<'_> {
    /// Drives the handler's future under its timeout, slow warning and the event's
    /// cancellation, then records the outcome; a timeout cancels the events the handler caused.
    pub(crate) async fn finish(self) {
        let Running {
            run,
            fut,
            mut guard,
        } = self;
        let HandlerRun {
            bus,
            event,
            entry,
            index,
            config,
            phase,
            ..
        } = run;
        let limits = HandlerLimits::resolve(&entry.meta, config, bus, phase);
        let outcome = drive(fut, event, &limits, &entry.meta).await;
        guard.armed = false;
        let timed_out = matches!(&outcome, Err(err) if err.is_timeout());
        record(bus, event, index, outcome, false);
        if timed_out {
            // A timed-out handler's queued and running descendants are cancelled too.
            let cause = format!(
                "parent handler {}({}) timed out after {}s",
                entry.meta.label(),
                event.label(),
                limits.timeout.map(fmt_secs).unwrap_or_default()
            );
            cancel_events(children_of_results(event, &[index]), &cause);
        }
    }
}

/// Marks the result started; `None` if it is no longer pending. Otherwise returns, read under
/// the same lock: whether this also started the event, the handler's span, and the user context
/// of the event's dispatch.
fn mark_started(
    event: &EventInner,
    index: usize,
    handler: &crate::handler::HandlerMeta,
) -> Option<(bool, tracing::Span, Option<crate::context::ContextMap>)> {
    let mut es = event.state.lock();
    let now = Timestamp::now_shared();
    let result = es.results.get_mut(index)?;
    if result.status != ResultStatus::Pending {
        return None;
    }
    result.status = ResultStatus::Started;
    result.started_at = Some(now);
    let event_started = es.status == EventStatus::Pending;
    if event_started {
        es.status = EventStatus::Started;
        es.started_at = Some(now);
    }
    let span = handler_span(event, handler, es.dispatch_span.as_deref());
    Some((event_started, span, es.dispatch_context.clone()))
}

/// The handler's `tracing` span, a child of the span current where the event was dispatched (so
/// a child event's handlers nest under the handler that dispatched it). When the subscriber
/// does not want handler spans, the dispatch span itself is entered instead, so spans the handler
/// opens still have the right parent.
fn handler_span(
    event: &EventInner,
    handler: &crate::handler::HandlerMeta,
    dispatch_span: Option<&tracing::Span>,
) -> tracing::Span {
    let span = tracing::debug_span!(
        parent: dispatch_span.and_then(tracing::Span::id),
        "bubus.handler",
        bus = %handler.bus_label,
        event_type = %event.event_type,
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
    handler: &crate::handler::HandlerMeta,
) -> Result<ResultSlot, HandlerError> {
    tokio::pin!(fut);
    let mut timeout: Option<Pin<Box<Sleep>>> = None;
    let mut slow: Option<Pin<Box<Sleep>>> = None;
    let mut slow_warned = false;
    let mut cancel: Option<Pin<Box<tokio::sync::futures::Notified<'_>>>> = None;
    let started = Instant::now();
    std::future::poll_fn(|cx| {
        if event.is_cancelled() {
            return Poll::Ready(Err(aborted(event)));
        }
        if let Poll::Ready(outcome) = fut.as_mut().poll(cx) {
            return Poll::Ready(match outcome {
                Ok(outcome) => outcome,
                Err(panic) => Err(HandlerError::panicked(panic)),
            });
        }
        if let Some(deadline) = limits.deadline {
            // A deadline already past (tiny timeouts) fires now rather than at the timer's next
            // tick.
            let expired = timeout.is_none() && Instant::now() >= deadline;
            let timer = timeout.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if expired || timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(HandlerError::with_kind(
                    HandlerErrorKind::Timeout,
                    format!(
                        "Event handler {}({}) timed out after {}s",
                        handler.label(),
                        event.label(),
                        limits.timeout.map(fmt_secs).unwrap_or_default()
                    ),
                )));
            }
        }
        if let (Some(at), false) = (limits.slow_at, slow_warned) {
            let timer = slow.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if timer.as_mut().poll(cx).is_ready() {
                slow_warned = true;
                slow = None;
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
            }
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
                return Poll::Ready(Err(aborted(event)));
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

fn cancelled(cause: &str) -> HandlerError {
    HandlerError::with_kind(HandlerErrorKind::Cancelled, format!("Cancelled: {cause}"))
}

fn aborted(event: &EventInner) -> HandlerError {
    let cause = event
        .cancel_cause()
        .unwrap_or_else(|| Arc::from("the event was cancelled"));
    HandlerError::with_kind(HandlerErrorKind::Aborted, format!("Aborted: {cause}"))
}

/// Validates the outcome against the event's result type and records it (unless something —
/// a timeout, a cancellation — already recorded a final status). If `finish_bus`, also finishes
/// the event on `bus` under the same lock; returns whether it did.
fn record(
    bus: &BusInner,
    event: &Arc<EventInner>,
    index: usize,
    outcome: Result<ResultSlot, HandlerError>,
    finish_bus: bool,
) -> bool {
    let outcome = outcome.and_then(|slot| (event.kind.check_result)(event, slot));
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
    let completion = finish_bus.then(|| done_on_bus_locked(bus, event, &mut es));
    drop(es);
    if finished {
        bus.hook_results(event, &[index], EventStatus::Completed);
    }
    match completion {
        Some(Some(completion)) => event.completed(completion),
        Some(None) => {}
        None => return false,
    }
    true
}

fn finish_result(
    bus: &BusInner,
    event: &Arc<EventInner>,
    index: usize,
    outcome: Result<ResultSlot, HandlerError>,
) {
    let finished = event
        .state
        .lock()
        .results
        .get_mut(index)
        .is_some_and(|r| r.finish(outcome));
    if finished {
        bus.hook_results(event, &[index], EventStatus::Completed);
    }
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
struct RunGuard<'a> {
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
        let finished = {
            let mut es = self.event.state.lock();
            match es.results.get_mut(self.index) {
                Some(result) => {
                    let error = interrupted(result, self.event);
                    result.finish(Err(error))
                }
                None => false,
            }
        };
        if finished {
            self.bus
                .hook_results(self.event, &[self.index], EventStatus::Completed);
        }
    }
}

/// The error for a result whose processing was dropped before it finished.
pub(crate) fn interrupted(result: &ResultRecord, event: &EventInner) -> HandlerError {
    if result.status == ResultStatus::Pending {
        HandlerError::with_kind(
            HandlerErrorKind::Cancelled,
            format!(
                "Cancelled: {} was interrupted before this handler started",
                event.label()
            ),
        )
    } else {
        HandlerError::with_kind(
            HandlerErrorKind::Aborted,
            format!(
                "Event handler {}({}) was interrupted while running",
                result.handler.label(),
                event.label()
            ),
        )
    }
}
