//! Registering and removing handlers: the public side of the handler table (`handlers.rs`).

use std::sync::Arc;

use super::EventBus;
use crate::handler::{
    EventHandler, HandlerEntry, HandlerId, HandlerInput, HandlerMeta, HandlerOptions, IntoHandler,
    input_pattern,
};
use crate::time::Timestamp;

impl EventBus {
    /// Subscribes a handler; the pattern is the handler's event type (`EventHandle<E>` →
    /// `E::EVENT_TYPE`; `AnyEvent` → `"*"`).
    ///
    /// Handlers may be sync or async functions, closures, or [`method`](crate::handler::method)s
    /// of a shared service. They return the event's result type, or a `Result` of it. Handlers of
    /// one event run in this order: those registered for the exact type, in registration order,
    /// then the `"*"` handlers, in registration order.
    ///
    /// ```
    /// use bubus::{AnyEvent, Event, EventBus, EventHandle};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
    /// #[event(result = u64)]
    /// struct Square { n: u64 }
    ///
    /// let bus = EventBus::new("Math");
    /// let typed = bus.on(|e: EventHandle<Square>| e.n * e.n);          // sync closure
    /// let logger = bus.on(|e: AnyEvent| async move { let _ = e.event_type(); }); // all events
    /// assert_eq!(typed.event_pattern(), "Square");
    /// assert_eq!(logger.event_pattern(), "*");
    /// ```
    #[track_caller]
    pub fn on<I: HandlerInput, M>(&self, handler: impl IntoHandler<I, M>) -> EventHandler {
        self.register(
            handler,
            HandlerOptions::new(),
            std::panic::Location::caller(),
        )
    }

    /// Subscribes a handler to an explicit pattern: an event type name, or `"*"` for every event.
    ///
    /// A typed handler (`EventHandle<E>`) subscribed to another type's name receives those events
    /// decoded as `E`; a payload that does not decode becomes an error result naming the field.
    #[track_caller]
    pub fn on_pattern<I: HandlerInput, M>(
        &self,
        pattern: &str,
        handler: impl IntoHandler<I, M>,
    ) -> EventHandler {
        self.register(
            handler,
            HandlerOptions::new().pattern(pattern),
            std::panic::Location::caller(),
        )
    }

    /// Subscribes a handler with explicit options (pattern, id, name, timeouts).
    #[track_caller]
    pub fn on_with<I: HandlerInput, M>(
        &self,
        handler: impl IntoHandler<I, M>,
        options: HandlerOptions,
    ) -> EventHandler {
        self.register(handler, options, std::panic::Location::caller())
    }

    fn register<I: HandlerInput, M>(
        &self,
        handler: impl IntoHandler<I, M>,
        options: HandlerOptions,
        location: &'static std::panic::Location<'static>,
    ) -> EventHandler {
        let pattern: Arc<str> = match options.pattern {
            Some(p) if !p.is_empty() => Arc::from(p),
            _ => Arc::from(input_pattern::<I>()),
        };
        let name: Arc<str> = match options.name {
            Some(n) => Arc::from(n),
            None => Arc::from(handler.__handler_name().as_ref()),
        };
        let file_path: Option<Arc<str>> = match options.file_path {
            Some(p) => Some(Arc::from(p)),
            None if self.inner.config.event_handler_detect_file_paths => {
                Some(location_label(location))
            }
            None => None,
        };
        let forward_target = handler.__forward_target();
        let func = handler.__into_handler_fn();
        let mut st = self.inner.state.lock();
        let (id, occurrence) = match options.id {
            Some(id) => (id, None),
            None => {
                let (id, occurrence) =
                    st.handlers
                        .next_default_id(&self.inner.name, &name, &pattern);
                (id, Some(occurrence))
            }
        };
        if st.handlers.first_duplicate(&name, &pattern) {
            if self.inner.config.warn_on_duplicate_handler_names {
                tracing::warn!(
                    bus = %self.inner.label,
                    handler = %name,
                    pattern = %pattern,
                    "handler {name} is already registered for {pattern}: results keyed by handler \
                     name will keep only one of them; give handlers unique names (warned once \
                     per name and pattern)"
                );
            } else {
                tracing::debug!(
                    bus = %self.inner.label,
                    handler = %name,
                    pattern = %pattern,
                    "handler is already registered for this pattern; it will run once per registration"
                );
            }
        }
        let meta = Arc::new(HandlerMeta {
            id,
            name,
            file_path,
            pattern,
            registered_at: Timestamp::now(),
            timeout: options.timeout,
            slow_timeout: options.slow_timeout,
            concurrency: options.concurrency,
            forward_target,
            bus_id: self.inner.id,
            bus_name: Arc::clone(&self.inner.name),
            bus_label: Arc::clone(&self.inner.label),
            // Written on the wire as abxbus 2.5 does, with the snapshot entry and each result.
            wire_extra: options.result_ttl.map(|ttl| {
                let mut keys = serde_json::Map::new();
                keys.insert("handler_result_ttl".into(), serde_json::Value::from(ttl));
                Arc::new(keys)
            }),
        });
        if options.result_ttl.is_some() {
            self.inner
                .result_ttl_handlers
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        st.handlers.add(Arc::new(HandlerEntry {
            meta: Arc::clone(&meta),
            func,
            stub: false,
            occurrence,
        }));
        drop(st);
        let handler = EventHandler { meta };
        self.inner.hook_handlers_change(&handler, true);
        handler
    }

    /// Unsubscribes a handler. Results it already produced stay on their events. Returns whether
    /// it was registered.
    pub fn off(&self, handler: &EventHandler) -> bool {
        self.off_by_id(&handler.meta.id)
    }

    /// Unsubscribes the handler with this id. Returns whether it was registered.
    pub fn off_by_id(&self, id: &HandlerId) -> bool {
        let removed = self.inner.state.lock().handlers.remove_id(id);
        match removed {
            Some(entry) => {
                let handler = EventHandler {
                    meta: Arc::clone(&entry.meta),
                };
                // The closure is dropped here, outside the bus lock.
                drop(entry);
                self.inner.hook_handlers_change(&handler, false);
                true
            }
            None => false,
        }
    }

    /// Unsubscribes every handler registered for `pattern` (`"*"` removes the wildcard handlers
    /// only). Returns how many were removed.
    pub fn off_pattern(&self, pattern: &str) -> usize {
        let removed = self.inner.state.lock().handlers.remove_pattern(pattern);
        for entry in &removed {
            let handler = EventHandler {
                meta: Arc::clone(&entry.meta),
            };
            self.inner.hook_handlers_change(&handler, false);
        }
        removed.len()
    }

    /// The registered handlers.
    pub fn handlers(&self) -> Vec<EventHandler> {
        let st = self.inner.state.lock();
        let mut all: Vec<EventHandler> = st
            .handlers
            .all()
            .map(|h| EventHandler {
                meta: Arc::clone(&h.meta),
            })
            .collect();
        all.sort_by_key(|h| h.meta.registered_at);
        all
    }
}

/// `file:line` of a registration site, formatted once per site (a program has finitely many; a
/// one-off handler registered in a loop should not format it every time).
fn location_label(location: &'static std::panic::Location<'static>) -> Arc<str> {
    static LABELS: crate::memo::Memo<usize, Arc<str>> = crate::memo::Memo::new();
    LABELS.get_or_insert_with(std::ptr::from_ref(location) as usize, || {
        Arc::from(format!("{}:{}", location.file(), location.line()))
    })
}
