//! Dispatch: linking, loop prevention, the history bound, and enqueueing.

use std::sync::Arc;

use super::BusInner;
use super::handler_context;
use crate::context;
use crate::error::DispatchError;
use crate::event::inner::{EventInner, EventState};

impl BusInner {
    /// `max_handler_recursion_depth`: how many of the events from `parent` up were dispatched by
    /// the handler dispatching `event` now.
    #[cold]
    fn check_recursion(
        &self,
        event: &EventInner,
        parent: &Arc<EventInner>,
        handler_id: &crate::handler::HandlerId,
        max: usize,
    ) -> Result<(), DispatchError> {
        let mut depth = 0;
        let mut current = Some(Arc::clone(parent));
        while let Some(ancestor) = current {
            let st = ancestor.state.lock();
            if st.emitted_by_handler_id.as_ref() == Some(handler_id) {
                depth += 1;
                if depth >= max {
                    drop(st);
                    let handler = handler_context::with_current(|ctx| ctx.handler())
                        .flatten()
                        .map(|h| h.label())
                        .unwrap_or_default();
                    return Err(DispatchError::HandlerRecursion {
                        bus: self.label.to_string(),
                        event: event.label(),
                        handler,
                        depth,
                        max,
                    });
                }
            }
            current = st.parent.upgrade();
        }
        Ok(())
    }

    /// The payload depth check of a payload type that can nest, out of line.
    #[inline(never)]
    fn check_depth(
        &self,
        event: &EventInner,
        check: crate::event::inner::DepthCheck,
    ) -> Result<(), DispatchError> {
        check(event).map_err(|(field, depth)| DispatchError::TooDeep {
            bus: self.label.to_string(),
            event: event.label(),
            field,
            depth,
            limit: crate::wire::MAX_JSON_DEPTH,
        })
    }

    /// Enqueues `event` on this bus. See [`EventBus::dispatch`](super::EventBus::dispatch).
    /// `created`: for an event built from a payload within this `dispatch` call (not a handle
    /// built earlier, restored or forwarded), tokio's clock read just before it was built
    /// (see [`History::push`]).
    ///
    /// [`History::push`]: super::history::History::push
    pub(crate) fn dispatch(
        self: &Arc<Self>,
        event: &Arc<EventInner>,
        created: Option<tokio::time::Instant>,
    ) -> Result<(), DispatchError> {
        // The handler running in this task (if any) becomes the parent of a new event.
        let parent = handler_context::with_current(|ctx| {
            if Arc::ptr_eq(ctx.event, event) {
                return None;
            }
            let handler_id = ctx.handler()?.id.clone();
            Some((Arc::clone(ctx.event), handler_id, ctx.result_index))
        })
        .flatten();
        if let (Some(max), Some((parent, handler_id, _))) =
            (self.config.max_handler_recursion_depth, &parent)
        {
            self.check_recursion(event, parent, handler_id, max)?;
        }
        // What is dispatched can be written and read back (a log, a bridge, a snapshot).
        // (A payload type that cannot nest has no check: one load and a branch.)
        if let Some(check) = event.kind.check_depth {
            self.check_depth(event, check)?;
        }

        let mut st = self.state.lock();
        if st.stopped {
            return Err(DispatchError::Stopped {
                bus: self.label.to_string(),
            });
        }
        let mut es = event.state.lock();
        if self.already_visited(&es) {
            // Loop prevention: an event never re-enters a bus already in its path.
            return Ok(());
        }
        // Start (or restart) the run loop before touching the history, so a refused dispatch
        // evicts nothing.
        self.ensure_run_loop(&mut st)?;
        self.expire(&mut st);
        if let Some(max) = self.config.max_history_size {
            if max > 0 {
                self.make_room(&mut st, max)?;
            }
        }

        let link = {
            let first_dispatch = es.buses.is_empty();
            if first_dispatch {
                // What the dispatching code has in scope reaches the handlers. (With no
                // subscriber listening at any level, no span can be current.)
                if tracing::level_filters::LevelFilter::current()
                    != tracing::level_filters::LevelFilter::OFF
                {
                    let span = tracing::Span::current();
                    if !span.is_none() {
                        es.rare_mut().dispatch_span = Some(span);
                    }
                }
                es.set_dispatch_context(context::current_context());
            }
            es.path.push(Arc::clone(&self.link));
            let link = es.path.len() - 1;
            es.push_slot(self, link, st.history.next_seq());
            match parent {
                Some((parent, handler_id, result_index))
                    if first_dispatch && es.parent_id.is_none() =>
                {
                    es.parent_id = Some(parent.id);
                    es.parent = Arc::downgrade(&parent);
                    es.emitted_by_handler_id = Some(handler_id);
                    Some((parent, result_index))
                }
                _ => None,
            }
        };
        drop(es);
        // Linked before it is enqueued, so the child cannot complete before its parent counts it.
        let has_parent = link.is_some();
        if let Some((parent, result_index)) = link {
            parent.link_child(event, result_index);
        }

        let seq = st.history.push(Arc::clone(event), created);
        st.queue.push_back(Arc::clone(event), seq);
        if st.busy.is_none() {
            st.busy = Some(Arc::clone(self));
        }
        self.notify_run_loop(&mut st);
        drop(st);

        tracing::trace!(bus = %self.label, event = %event.label(), "dispatched");
        if has_parent {
            event.notify_jumping_ancestors();
        }
        self.resolve_find_waiters(event);
        self.hook_dispatched(event);
        Ok(())
    }

    /// Whether `event` went through this bus already. A new event (no bus, no path: the usual
    /// case) is answered with two length checks, without walking either list.
    #[inline(always)]
    fn already_visited(&self, es: &EventState) -> bool {
        if es.buses.is_empty() && es.path.is_empty() {
            return false;
        }
        self.visited_before(es)
    }

    fn visited_before(&self, es: &EventState) -> bool {
        es.buses.iter().any(|slot| slot.bus_id == self.id)
            || es.path.iter().any(|link| link.label == self.label)
    }
}
