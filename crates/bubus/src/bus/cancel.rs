//! Cascading cancellation: a timed-out handler, a timed-out event or a losing first-completion
//! handler cancels the events it caused, on every bus, recursively.

use std::sync::Arc;
use std::time::Duration;

use smallvec::SmallVec;

use super::BusInner;
use super::limits::fmt_secs;
use crate::error::CancelCause;
use crate::event::inner::EventInner;
use crate::handler::HandlerMeta;

/// Cancels each event in `roots` and all its descendants. Copies still queued on a bus are taken
/// off the queue and get cancelled results; handlers already running are woken and abort at
/// their next await; handlers not yet started are cancelled when their turn comes.
pub(crate) fn cancel_events(roots: impl IntoIterator<Item = Arc<EventInner>>, cause: &CancelCause) {
    let mut stack: Vec<Arc<EventInner>> = roots.into_iter().collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(event) = stack.pop() {
        if !seen.insert(event.id) || event.is_complete() {
            continue;
        }
        event.mark_cancelled(cause);
        let queued_on: SmallVec<[Arc<BusInner>; 2]> = event.state.lock().queued_buses();
        for bus in queued_on {
            if let Some((claimed, _)) = bus.claim(&event) {
                bus.cancel_unprocessed(&claimed, cause);
            }
        }
        stack.extend(event.state.lock().children.iter().cloned());
    }
}

/// The cause of cancelling what `event`'s handlers dispatched when the event timed out after
/// `timeout` on `bus` (written when first read). Out of line, so the processing that calls it
/// stays as small as it was with a plain string.
#[inline(never)]
pub(crate) fn event_timed_out(
    event: &EventInner,
    timeout: Option<Duration>,
    bus: &BusInner,
) -> CancelCause {
    let (label, on) = (event.label_owned(), Arc::clone(&bus.label));
    CancelCause::written(move |f| {
        write!(
            f,
            "event {label} timed out after {}s on {on}",
            fmt_secs(timeout)
        )
    })
}

/// The cause of cancelling what `handler` dispatched when it timed out after `timeout` on
/// `event` (written when first read).
#[inline(never)]
pub(crate) fn handler_timed_out(
    handler: &Arc<HandlerMeta>,
    event: &EventInner,
    timeout: Option<Duration>,
) -> CancelCause {
    let (handler, label) = (Arc::clone(handler), event.label_owned());
    CancelCause::written(move |f| {
        write!(
            f,
            "parent handler {}({label}) timed out after {}s",
            handler.label_display(),
            fmt_secs(timeout)
        )
    })
}

/// The children that the results at `indices` dispatched.
pub(crate) fn children_of_results(event: &EventInner, indices: &[usize]) -> Vec<Arc<EventInner>> {
    let st = event.state.lock();
    let ids: SmallVec<[uuid::Uuid; 4]> = indices
        .iter()
        .filter_map(|&i| st.results.get(i))
        .flat_map(|r| r.children.iter().copied())
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    st.children
        .iter()
        .filter(|c| ids.contains(&c.id))
        .cloned()
        .collect()
}
