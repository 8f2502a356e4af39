//! Bus snapshots: a bus's configuration, handlers, history and pending queue as JSON (the
//! reference runtimes' §2.4 shape), and a bus restored from one.
//!
//! This file writes a snapshot and reads the bus's configuration back; `snapshot/restore.rs`
//! restores the handlers and events.

mod restore;

use restore::{restore_events, restore_handlers};

use std::sync::Arc;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{EventBus, EventBusBuilder};
use crate::event::inner::EventInner;
use crate::event::{EventConcurrency, HandlerCompletion, HandlerConcurrency, Ttl};
use crate::handler::{HandlerEntry, HandlerMeta};
use crate::time::secs_value;
use crate::wire::DecodeError;
use crate::wire::encode::event_json;
use crate::wire::extra::{UnknownKeys, write_unknown};

/// The keys of a bus snapshot this version reads.
const BUS_KEYS: &[&str] = &[
    "id",
    "name",
    "max_history_size",
    "max_history_drop",
    "event_concurrency",
    "event_timeout",
    "event_slow_timeout",
    "event_ttl",
    "event_result_ttl",
    "event_handler_concurrency",
    "event_handler_completion",
    "event_handler_slow_timeout",
    "event_handler_detect_file_paths",
    "handlers",
    "handlers_by_key",
    "event_history",
    "pending_event_queue",
];

/// The keys of a snapshot's handler entry this version reads.
const HANDLER_KEYS: &[&str] = &[
    "id",
    "handler_name",
    "handler_file_path",
    "handler_timeout",
    "handler_slow_timeout",
    "handler_registered_at",
    "event_pattern",
    "eventbus_name",
    "eventbus_id",
];

/// The keys of `object` outside `known` that `keep` accepts, in order; `None` if there are none.
fn unknown_keys(
    object: &Map<String, Value>,
    known: &[&str],
    keep: fn(&str) -> bool,
) -> UnknownKeys {
    let unknown: Map<String, Value> = object
        .iter()
        .filter(|(key, _)| !known.contains(&key.as_str()) && keep(key))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    (!unknown.is_empty()).then(|| Arc::new(unknown))
}

fn opt_ttl(v: Option<Ttl>) -> Value {
    v.map_or(Value::Null, |ttl| Value::from(ttl.as_secs()))
}

impl EventBus {
    /// The bus as JSON, in the shape the Python and TypeScript runtimes use for bus snapshots:
    /// configuration, handlers (metadata only), `handlers_by_key`, the history (each event with
    /// its `event_results`) and the ids of the queued events in order.
    ///
    /// Restore it with [`EventBus::restore`].
    pub fn snapshot(&self) -> Value {
        let inner = &self.inner;
        let (handlers, history, queue) = {
            let st = inner.state.lock();
            let mut handlers: Vec<Arc<HandlerEntry>> = st.handlers.all().cloned().collect();
            handlers.sort_by_key(|h| h.meta.registered_at);
            let mut history: Vec<Arc<EventInner>> = st.history.iter().cloned().collect();
            // Queued events are always in the snapshot's history, so every queue id resolves.
            for queued in st.queue.iter() {
                if !history.iter().any(|e| Arc::ptr_eq(e, queued)) {
                    history.push(Arc::clone(queued));
                }
            }
            (
                handlers,
                history,
                st.queue.iter().map(|e| e.id).collect::<Vec<_>>(),
            )
        };
        let c = &inner.config;
        let mut out = Map::new();
        out.insert("id".into(), Value::String(inner.id.to_string()));
        out.insert("name".into(), Value::String(inner.name.to_string()));
        out.insert(
            "max_history_size".into(),
            c.max_history_size.map_or(Value::Null, Value::from),
        );
        out.insert("max_history_drop".into(), Value::Bool(c.max_history_drop));
        out.insert(
            "event_concurrency".into(),
            Value::String(c.event_concurrency.as_str().into()),
        );
        out.insert("event_timeout".into(), secs_value(c.event_timeout));
        out.insert(
            "event_slow_timeout".into(),
            secs_value(c.event_slow_timeout),
        );
        // abxbus 2.5's history TTLs, where it writes them.
        out.insert("event_ttl".into(), opt_ttl(c.event_ttl));
        out.insert("event_result_ttl".into(), opt_ttl(c.event_result_ttl));
        out.insert(
            "event_handler_concurrency".into(),
            Value::String(c.event_handler_concurrency.as_str().into()),
        );
        out.insert(
            "event_handler_completion".into(),
            Value::String(c.event_handler_completion.as_str().into()),
        );
        out.insert(
            "event_handler_slow_timeout".into(),
            secs_value(c.event_handler_slow_timeout),
        );
        out.insert(
            "event_handler_detect_file_paths".into(),
            Value::Bool(c.event_handler_detect_file_paths),
        );
        write_unknown(&mut out, c.snapshot_extra.as_deref());
        let mut handler_map = Map::new();
        let mut by_key: Map<String, Value> = Map::new();
        for h in &handlers {
            handler_map.insert(h.meta.id.to_string(), handler_json(&h.meta));
            let ids = by_key
                .entry(h.meta.pattern.to_string())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(ids) = ids {
                ids.push(Value::String(h.meta.id.to_string()));
            }
        }
        out.insert("handlers".into(), Value::Object(handler_map));
        out.insert("handlers_by_key".into(), Value::Object(by_key));
        let mut events = Map::new();
        for event in &history {
            events.insert(event.id.to_string(), Value::Object(event_json(event, true)));
        }
        out.insert("event_history".into(), Value::Object(events));
        out.insert(
            "pending_event_queue".into(),
            Value::Array(
                queue
                    .iter()
                    .map(|id| Value::String(id.to_string()))
                    .collect(),
            ),
        );
        Value::Object(out)
    }

    /// A bus rebuilt from a [`snapshot`](Self::snapshot) — ours or another runtime's.
    ///
    /// The bus gets the snapshot's id, name and configuration, its history (with every result)
    /// and its pending queue. Handlers come back as placeholders that return nothing; register
    /// the real handlers again — the same functions on the same patterns get the same
    /// deterministic ids — and each one takes its placeholder's place. The queue is processed
    /// in order from the first dispatch (or `wait_until_idle`) on; results already completed in
    /// the snapshot are not run again, pending ones are.
    ///
    /// Events keep their `event_path` as the snapshot has it, including queued events whose path
    /// does not name this bus (another runtime may put events straight into its queue). Parents
    /// and children both in the snapshot are linked again; a child whose JSON says
    /// `"event_blocks_parent_completion": false` (abxbus 2.5) is listed among its parent's
    /// children, but the parent does not wait for it. Keys this version does not know — of the
    /// bus, its handler entries, its events and their results — are kept and written back by
    /// [`snapshot`](Self::snapshot).
    ///
    /// ```
    /// use bubus::{AnyEvent, DynEvent, EventBus};
    /// use serde_json::json;
    ///
    /// fn greet(event: AnyEvent) -> serde_json::Value {
    ///     json!(format!("hello {}", event.payload_json().unwrap()["name"]))
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bubus::Error> {
    /// let bus = EventBus::new("Greeter");
    /// bus.on_pattern("Greet", greet);
    /// bus.dispatch(DynEvent::new("Greet", json!({"name": "ada"}))?)?.await?;
    /// let snapshot = bus.snapshot();
    ///
    /// let restored = EventBus::restore(&snapshot)?;
    /// restored.on_pattern("Greet", greet); // re-binds by its deterministic id
    /// assert_eq!(restored.id(), bus.id());
    /// assert_eq!(restored.event_history().len(), 1);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// A [`DecodeError`] naming the field when the snapshot is malformed (missing `id` or
    /// `name`, a bad event, a queue id with no event).
    pub fn restore(snapshot: &Value) -> Result<EventBus, DecodeError> {
        let Value::Object(obj) = snapshot else {
            return Err(DecodeError::new("", "expected a bus snapshot object"));
        };
        let string = |key: &str| -> Result<String, DecodeError> {
            obj.get(key)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| DecodeError::new(key, "missing or not a string"))
        };
        let id = Uuid::parse_str(&string("id")?)
            .map_err(|e| DecodeError::new("id", format!("expected a UUID ({e})")))?;
        let mut builder = EventBusBuilder::new(string("name")?).id(id);
        let f64_of = |key: &str| -> Result<Option<f64>, DecodeError> {
            match obj.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| DecodeError::new(key, "expected a number or null")),
            }
        };
        if obj.contains_key("max_history_size") {
            builder.config.max_history_size = match obj.get("max_history_size") {
                Some(Value::Null) | None => None,
                Some(v) => Some(
                    v.as_u64()
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| {
                            DecodeError::new(
                                "max_history_size",
                                "expected a non-negative integer or null",
                            )
                        })?,
                ),
            };
        }
        if let Some(v) = obj.get("max_history_drop") {
            builder.config.max_history_drop = v
                .as_bool()
                .ok_or_else(|| DecodeError::new("max_history_drop", "expected a boolean"))?;
        }
        if let Some(v) = obj.get("event_concurrency").filter(|v| !v.is_null()) {
            builder.config.event_concurrency =
                serde_json::from_value::<EventConcurrency>(v.clone()).map_err(|_| {
                    DecodeError::new("event_concurrency", format!("unknown mode {v}"))
                })?;
        }
        if let Some(v) = obj
            .get("event_handler_concurrency")
            .filter(|v| !v.is_null())
        {
            builder.config.event_handler_concurrency =
                serde_json::from_value::<HandlerConcurrency>(v.clone()).map_err(|_| {
                    DecodeError::new("event_handler_concurrency", format!("unknown mode {v}"))
                })?;
        }
        if let Some(v) = obj.get("event_handler_completion").filter(|v| !v.is_null()) {
            builder.config.event_handler_completion =
                serde_json::from_value::<HandlerCompletion>(v.clone()).map_err(|_| {
                    DecodeError::new("event_handler_completion", format!("unknown mode {v}"))
                })?;
        }
        for (key, slot) in [
            ("event_timeout", &mut builder.config.event_timeout),
            ("event_slow_timeout", &mut builder.config.event_slow_timeout),
            (
                "event_handler_slow_timeout",
                &mut builder.config.event_handler_slow_timeout,
            ),
        ] {
            if obj.contains_key(key) {
                *slot = f64_of(key)?.map(crate::time::duration_from_secs);
            }
        }
        for (key, slot) in [
            ("event_ttl", &mut builder.config.event_ttl),
            ("event_result_ttl", &mut builder.config.event_result_ttl),
        ] {
            if obj.contains_key(key) {
                *slot = f64_of(key)?.map(Ttl::from_secs);
            }
        }
        if let Some(v) = obj.get("event_handler_detect_file_paths") {
            builder.config.event_handler_detect_file_paths = v.as_bool().ok_or_else(|| {
                DecodeError::new("event_handler_detect_file_paths", "expected a boolean")
            })?;
        }
        // Options a newer runtime added (history TTLs, …) are kept and written back.
        builder.config.snapshot_extra = unknown_keys(obj, BUS_KEYS, |_| true);
        let bus = builder.build();
        restore_handlers(&bus, obj)?;
        restore_events(&bus, obj)?;
        Ok(bus)
    }
}

fn handler_json(meta: &HandlerMeta) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), Value::String(meta.id.to_string()));
    out.insert("handler_name".into(), Value::String(meta.name.to_string()));
    out.insert(
        "handler_file_path".into(),
        meta.file_path
            .as_deref()
            .map_or(Value::Null, |p| Value::String(p.to_owned())),
    );
    out.insert("handler_timeout".into(), secs_value(meta.timeout.flatten()));
    out.insert(
        "handler_slow_timeout".into(),
        secs_value(meta.slow_timeout.flatten()),
    );
    out.insert(
        "handler_registered_at".into(),
        Value::String(meta.registered_at.to_string()),
    );
    out.insert(
        "event_pattern".into(),
        Value::String(meta.pattern.to_string()),
    );
    out.insert(
        "eventbus_name".into(),
        Value::String(meta.bus_name.to_string()),
    );
    out.insert("eventbus_id".into(), Value::String(meta.bus_id.to_string()));
    write_unknown(&mut out, meta.wire_extra.as_deref());
    Value::Object(out)
}
