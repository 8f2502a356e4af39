//! Restoring a snapshot's handlers (as placeholders until re-bound) and its events (history and
//! queue), for [`EventBus::restore`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{HANDLER_KEYS, unknown_keys};
use crate::bus::EventBus;
use crate::event::AnyEvent;
use crate::event::inner::EventInner;
use crate::handler::{HandlerEntry, HandlerFn, HandlerId, HandlerMeta};
use crate::time::Timestamp;
use crate::wire::DecodeError;
use crate::wire::extra::{blocks_parent_completion, is_forward_compatible_key};

/// A handler placeholder that returns null.
fn stub_fn() -> HandlerFn {
    HandlerFn(Box::new(StubHandler))
}

struct StubHandler;

impl crate::handler::ErasedHandler for StubHandler {
    fn call(&self, _event: AnyEvent) -> crate::handler::HandlerCall {
        crate::handler::HandlerCall::Ready(Ok(crate::result::ResultSlot::Null))
    }
}

pub(super) fn restore_handlers(
    bus: &EventBus,
    obj: &Map<String, Value>,
) -> Result<(), DecodeError> {
    let Some(handlers) = obj.get("handlers").filter(|v| !v.is_null()) else {
        return Ok(());
    };
    let Value::Object(handlers) = handlers else {
        return Err(DecodeError::new(
            "handlers",
            "expected an object keyed by handler id",
        ));
    };
    // Registration order: `handlers_by_key` lists ids per pattern in order; fall back to the
    // order of `handlers`.
    let mut order: Vec<String> = Vec::new();
    if let Some(Value::Object(by_key)) = obj.get("handlers_by_key") {
        for (key, ids) in by_key {
            let Value::Array(ids) = ids else {
                return Err(DecodeError::new(
                    format!("handlers_by_key.{key}"),
                    "expected a list of ids",
                ));
            };
            for id in ids {
                if let Some(id) = id.as_str() {
                    if !order.iter().any(|o| o == id) {
                        order.push(id.to_owned());
                    }
                }
            }
        }
    }
    for id in handlers.keys() {
        if !order.iter().any(|o| o == id) {
            order.push(id.clone());
        }
    }
    let mut st = bus.inner.state.lock();
    for id in order {
        let Some(Value::Object(h)) = handlers.get(&id) else {
            continue;
        };
        let field = |name: &str| format!("handlers.{id}.{name}");
        let text = |name: &str| h.get(name).and_then(Value::as_str).map(str::to_owned);
        let seconds = |name: &str| -> Result<Option<Option<Duration>>, DecodeError> {
            match h.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(|s| Some(Some(crate::time::duration_from_secs(s))))
                    .ok_or_else(|| DecodeError::new(field(name), "expected a number")),
            }
        };
        let registered_at = match text("handler_registered_at") {
            Some(t) => Timestamp::parse(&t)
                .map_err(|e| DecodeError::new(field("handler_registered_at"), e.to_string()))?,
            None => Timestamp::now(),
        };
        let meta = HandlerMeta {
            id: HandlerId::from(id.as_str()),
            name: Arc::from(text("handler_name").unwrap_or_else(|| "anonymous".into())),
            file_path: text("handler_file_path").map(Arc::from),
            pattern: Arc::from(text("event_pattern").unwrap_or_else(|| "*".into())),
            registered_at,
            timeout: seconds("handler_timeout")?,
            slow_timeout: seconds("handler_slow_timeout")?,
            concurrency: None,
            forward_target: None,
            bus_id: bus.inner.id,
            bus_name: Arc::clone(&bus.inner.name),
            bus_label: Arc::clone(&bus.inner.label),
            wire_extra: unknown_keys(h, HANDLER_KEYS, is_forward_compatible_key),
        };
        st.handlers.add(Arc::new(HandlerEntry {
            meta: Arc::new(meta),
            func: stub_fn(),
            stub: true,
            occurrence: None,
            slot: usize::MAX,
        }));
    }
    Ok(())
}

pub(super) fn restore_events(bus: &EventBus, obj: &Map<String, Value>) -> Result<(), DecodeError> {
    let mut events: Vec<Arc<EventInner>> = Vec::new();
    // One event per id: two entries with one `event_id` (under different keys) would restore
    // as two events that the next snapshot, keyed by id, writes as one.
    let mut seen: std::collections::HashSet<Uuid> = std::collections::HashSet::new();
    match obj.get("event_history") {
        None | Some(Value::Null) => {}
        Some(Value::Object(history)) => {
            for (key, value) in history {
                let event = crate::wire::decode::decode_event(value).map_err(|e| {
                    let inner = if e.field().is_empty() {
                        String::new()
                    } else {
                        format!(".{}", e.field())
                    };
                    DecodeError::new(format!("event_history.{key}{inner}"), e.message())
                })?;
                once(&mut seen, &event, || format!("event_history.{key}"))?;
                events.push(event);
            }
        }
        Some(Value::Array(history)) => {
            for (i, value) in history.iter().enumerate() {
                let event = crate::wire::decode::decode_event(value).map_err(|e| {
                    DecodeError::new(format!("event_history[{i}].{}", e.field()), e.message())
                })?;
                once(&mut seen, &event, || format!("event_history[{i}]"))?;
                events.push(event);
            }
        }
        Some(_) => {
            return Err(DecodeError::new(
                "event_history",
                "expected an object keyed by event id",
            ));
        }
    }
    let by_id: HashMap<Uuid, Arc<EventInner>> =
        events.iter().map(|e| (e.id, Arc::clone(e))).collect();
    // Re-link parents and children that are both in the snapshot. A child that does not block
    // its parent's completion (abxbus 2.5's `event_blocks_parent_completion: false`) is listed
    // among its children, but its parent does not wait for it.
    for event in &events {
        let (parent, blocks) = {
            let st = event.state.lock();
            let parent = st.parent_id.and_then(|id| by_id.get(&id).cloned());
            let blocks =
                blocks_parent_completion(st.wire_extra(), st.emitted_by_handler_id.is_some());
            (parent, blocks)
        };
        if let Some(parent) = parent {
            if blocks {
                event.state.lock().parent = Arc::downgrade(&parent);
            }
            let mut pst = parent.state.lock();
            pst.children.push(Arc::clone(event));
            if blocks && !event.is_complete() {
                pst.incomplete_children += 1;
            }
        }
    }
    let mut queue: Vec<Arc<EventInner>> = Vec::new();
    match obj.get("pending_event_queue") {
        None | Some(Value::Null) => {}
        Some(Value::Array(ids)) => {
            for (i, id) in ids.iter().enumerate() {
                let field = format!("pending_event_queue[{i}]");
                let id = id
                    .as_str()
                    .and_then(|s| Uuid::parse_str(s).ok())
                    .ok_or_else(|| DecodeError::new(&field, "expected an event id"))?;
                let event = by_id.get(&id).cloned().ok_or_else(|| {
                    DecodeError::new(&field, format!("no event {id} in event_history"))
                })?;
                if queue.iter().any(|q| Arc::ptr_eq(q, &event)) {
                    return Err(DecodeError::new(
                        &field,
                        format!("event {id} is queued twice"),
                    ));
                }
                queue.push(event);
            }
        }
        Some(_) => {
            return Err(DecodeError::new(
                "pending_event_queue",
                "expected a list of event ids",
            ));
        }
    }
    let inner = &bus.inner;
    let mut st = inner.state.lock();
    for event in &events {
        if event.is_complete() || queue.iter().any(|q| Arc::ptr_eq(q, event)) {
            continue;
        }
        // An event that was in flight when the snapshot was taken cannot resume mid-handler:
        // it is queued again after the pending ones, and its finished results are kept.
        queue.push(Arc::clone(event));
    }
    let mut seqs: rustc_hash::FxHashMap<*const EventInner, u64> = rustc_hash::FxHashMap::default();
    for event in events {
        let complete = event.is_complete();
        let ptr = Arc::as_ptr(&event);
        let ttl = if complete {
            inner.earliest_ttl(&event)
        } else {
            None
        };
        let (completed_at, bytes) = {
            let es = event.state.lock();
            (es.completed_at(), event.approx_bytes(&es))
        };
        let seq = st.history.push(event, None);
        if complete {
            // TTLs count from the completion the snapshot recorded.
            let ago = completed_at.map_or(Duration::ZERO, |at| {
                Duration::from_nanos(
                    crate::time::Timestamp::now()
                        .as_unix_nanos()
                        .saturating_sub(at.as_unix_nanos()),
                )
            });
            st.history.mark_completed_ago(seq, ttl, ago, bytes);
        }
        seqs.insert(ptr, seq);
    }
    // An event queued here whose path does not name this bus (the snapshot's runtime put it
    // straight into the queue) keeps its path as it was: this bus is on it, unlisted.
    let unlisted = inner.link.unlisted();
    let mut queued = Vec::with_capacity(queue.len());
    for event in queue {
        let seq = match seqs.get(&Arc::as_ptr(&event)) {
            Some(&seq) => seq,
            None => st.history.push(Arc::clone(&event), None),
        };
        let mut es = event.state.lock();
        // The snapshot's path names this bus by label only: from now on it is this bus.
        let link = match es.path.iter().position(|l| l.label == inner.label) {
            Some(pos) => {
                es.path[pos] = Arc::clone(&inner.link);
                pos
            }
            None => {
                es.path.push(Arc::clone(&unlisted));
                es.path.len() - 1
            }
        };
        es.push_slot(inner, link, seq);
        drop(es);
        queued.push((event, seq));
    }
    if !queued.is_empty() && st.busy.is_none() {
        st.busy = Some(Arc::clone(inner));
    }
    for (event, seq) in queued {
        st.queue.push_back(event, seq);
    }
    inner.expire(&mut st);
    Ok(())
}

/// Fails with `field` when `event`'s id was already restored from another history entry.
fn once(
    seen: &mut std::collections::HashSet<Uuid>,
    event: &EventInner,
    field: impl FnOnce() -> String,
) -> Result<(), DecodeError> {
    if seen.insert(event.id) {
        Ok(())
    } else {
        Err(DecodeError::new(
            field(),
            format!("event {} appears twice in event_history", event.id),
        ))
    }
}
