//! Stopping a bus: the run loop and parallel tasks are aborted (their guards record what was
//! interrupted), and what is still queued gets cancelled results.

use std::sync::Arc;

use smallvec::SmallVec;

use super::BusInner;
use super::complete::finish_on_bus;
use super::handler_context;
use super::handler_run::{Interrupt, interrupt_results};
use crate::error::CancelCause;
use crate::event::EventStatus;
use crate::event::inner::EventInner;
use crate::result::ResultRecord;

impl BusInner {
    /// Stops the bus (see [`EventBus::stop`](super::EventBus::stop)).
    pub(crate) async fn stop(self: &Arc<Self>, clear: bool) {
        let inside_own_handler =
            handler_context::with_current(|ctx| ctx.is_on(self)).unwrap_or(false);
        let (run_loop, mut parallel, queued) = {
            let mut st = self.state.lock();
            let first_stop = !st.stopped;
            st.stopped = true;
            let nothing_in_flight = st.in_flight == 0;
            let queued = st.queue.drain();
            st.in_flight += queued.len();
            let run_loop = if first_stop && !inside_own_handler {
                // Aborted below: it will not park by itself.
                st.set_loop_parked(true);
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
            let (bus, label) = (Arc::clone(&self.label), event.label_owned());
            let cause = CancelCause::written(move |f| {
                write!(f, "{bus} was stopped before it processed {label}")
            });
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
    pub(crate) fn cancel_unprocessed(&self, event: &Arc<EventInner>, cause: &CancelCause) {
        let (exact, wildcard) = self.state.lock().handlers.for_event(event.event_type_cow());
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
                    event.id,
                    event.created_at,
                ));
            }
            (first..es.results.len()).collect()
        };
        // The hooks see what processing shows them: the event pending, each result pending,
        // then each result completed (cancelled).
        self.hook_event(event, EventStatus::Pending);
        self.hook_results(event, &created, EventStatus::Pending);
        interrupt_results(self, event, &created, Interrupt::Cancelled(cause));
        finish_on_bus(self, event);
    }
}
