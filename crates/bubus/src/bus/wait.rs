//! Waiting for an event: plain waiting outside handlers, queue-jumping inside them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use smallvec::SmallVec;

use super::BusInner;
use super::process::{lock_addr, process_event};
use crate::context::{self, HandlerCtx, HeldLocks};
use crate::error::WaitError;
use crate::event::inner::{BusPhase, EventInner};
use crate::lock::FairLock;

/// Waits until `event` is completed.
///
/// Outside a handler this is a plain wait. Inside a handler, the bus running the handler is busy
/// with it, so waiting in queue order could deadlock; instead the event and its queued
/// descendants are processed right away (queue-jump), on every bus where they are queued, then the
/// wait continues for whatever is still running elsewhere.
pub(crate) async fn wait_for(event: Arc<EventInner>) -> Result<(), WaitError> {
    if event.is_complete() {
        return Ok(());
    }
    if event.state.lock().buses.is_empty() {
        return Err(WaitError::NotDispatched {
            event: event.label(),
        });
    }
    match context::current() {
        None => {
            // Outside a handler, on a multi-thread runtime: if the event is next in line on a
            // bus that is free, process it here instead of waking that bus's run loop and
            // waiting for it; if it is being processed, it is likely done in a moment.
            let multi_thread = tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
            if multi_thread {
                while !event.is_complete() && help_along(&event).await {}
                spin_while_processing(&event);
            }
            wait_complete(&event).await;
            Ok(())
        }
        Some(ctx) => {
            let bus = ctx.bus();
            let lookup = |id| bus.as_ref().and_then(|bus| bus.find_event_by_id(id));
            if Arc::ptr_eq(&ctx.event, &event) || ctx.event.has_ancestor(&event, &lookup) {
                return Err(WaitError::WouldDeadlock {
                    event: event.label(),
                    handler: ctx
                        .handler()
                        .map(|handler| handler.label())
                        .unwrap_or_default(),
                });
            }
            queue_jump(&event, &ctx).await;
            Ok(())
        }
    }
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
/// Only worth it where the hand-off crosses threads (the caller checks): on a current-thread
/// runtime the run loop runs on this thread as soon as the awaiter yields, and other tasks that
/// were ready before the awaiter (other buses' run loops) keep their turn.
async fn help_along(event: &Arc<EventInner>) -> bool {
    let candidates: SmallVec<[Arc<BusInner>; 2]> = {
        let st = event.state.lock();
        st.buses
            .iter()
            .filter(|slot| slot.phase == BusPhase::Queued)
            .filter_map(|slot| st.slot_bus(slot))
            .collect()
    };
    for bus in candidates {
        let at_head = bus
            .state
            .lock()
            .queue
            .front()
            .is_some_and(|e| Arc::ptr_eq(e, event));
        let free = bus.event_lock(event).is_none_or(FairLock::is_free);
        if at_head && free && Detached::new(help_job(bus, Arc::clone(event))).await {
            return true;
        }
    }
    false
}

async fn help_job(bus: Arc<BusInner>, event: Arc<EventInner>) -> bool {
    let lock = bus.event_lock(&event);
    let permit = match lock.map(FairLock::try_acquire) {
        Some(Some(permit)) => Some(permit),
        Some(None) => return false,
        None => None,
    };
    // Still at the head now that the lock is ours? Then it is ours to process.
    let Some((event, handlers)) = bus.claim_head(&event) else {
        return false;
    };
    let held: HeldLocks = lock
        .map(|l| smallvec::smallvec![lock_addr(l)])
        .unwrap_or_default();
    process_event(&bus, &event, handlers, &held)
        .await
        .leave(&bus);
    drop(permit);
    true
}

/// A future that, if dropped before it finishes, finishes on its own task.
struct Detached {
    fut: Option<Pin<Box<dyn Future<Output = bool> + Send>>>,
}

impl Detached {
    fn new(fut: impl Future<Output = bool> + Send + 'static) -> Self {
        Detached {
            fut: Some(Box::pin(fut)),
        }
    }
}

impl Future for Detached {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let Some(fut) = self.fut.as_mut() else {
            return Poll::Ready(false);
        };
        match fut.as_mut().poll(cx) {
            Poll::Ready(done) => {
                self.fut = None;
                Poll::Ready(done)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if let Some(fut) = self.fut.take() {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    fut.await;
                });
            }
        }
    }
}

async fn wait_complete(event: &EventInner) {
    event.mark_waited(&event.state.lock());
    loop {
        let notified = event.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if event.is_complete() {
            return;
        }
        notified.await;
    }
}

/// Registers a queue-jumping waiter on an event for as long as it lives, so that new descendants
/// dispatched elsewhere wake it.
struct JumpWaiter<'a>(&'a EventInner);

impl<'a> JumpWaiter<'a> {
    fn new(event: &'a EventInner) -> Self {
        let mut st = event.state.lock();
        event.mark_waited(&st);
        st.jump_waiters += 1;
        drop(st);
        JumpWaiter(event)
    }
}

impl Drop for JumpWaiter<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock();
        st.jump_waiters = st.jump_waiters.saturating_sub(1);
    }
}

async fn queue_jump(event: &Arc<EventInner>, ctx: &HandlerCtx) {
    let _waiter = JumpWaiter::new(event);
    loop {
        let notified = event.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if event.is_complete() {
            return;
        }
        let progressed = jump_pass(event, ctx).await;
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
/// anything was processed.
async fn jump_pass(event: &Arc<EventInner>, ctx: &HandlerCtx) -> bool {
    let mut progressed = false;
    let mut stack = vec![Arc::clone(event)];
    while let Some(current) = stack.pop() {
        if current.is_complete() {
            continue;
        }
        let queued_on: SmallVec<[Arc<BusInner>; 2]> = {
            let st = current.state.lock();
            st.buses
                .iter()
                .filter(|slot| slot.phase == BusPhase::Queued)
                .filter_map(|slot| st.slot_bus(slot))
                .collect()
        };
        for bus in queued_on {
            if process_now(&bus, &current, ctx).await {
                progressed = true;
            }
        }
        let children: Vec<Arc<EventInner>> = current.state.lock().children.clone();
        stack.extend(children.into_iter().rev());
    }
    progressed
}

/// Processes `event` on `bus` now, under the bus's event lock unless the waiting handler's chain
/// already holds it.
async fn process_now(bus: &Arc<BusInner>, event: &Arc<EventInner>, ctx: &HandlerCtx) -> bool {
    let mut held = ctx.held.clone();
    let lock = bus
        .event_lock(event)
        .filter(|lock| !held.contains(&lock_addr(lock)));
    let _permit = match lock {
        Some(lock) => {
            let permit = lock.acquire().await;
            held.push(lock_addr(lock));
            Some(permit)
        }
        None => None,
    };
    let Some((event, handlers)) = bus.claim(event) else {
        return false;
    };
    process_event(bus, &event, handlers, &held).await.leave(bus);
    true
}
