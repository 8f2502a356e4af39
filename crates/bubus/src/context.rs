//! The user's context values: typed values set around code with [`with_context`] and read with
//! [`context`], carried by a task-local into the handlers of the events dispatched there. (The
//! handler context — which handler of which event is running — is the engine's:
//! `bus/handler_context.rs`.)

use std::any::{Any, TypeId};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::task::futures::TaskLocalFuture;

/// Typed values in scope: what [`with_context`] sets and [`context`] reads. Immutable; a new scope
/// makes a new map.
#[derive(Clone, Default)]
pub(crate) struct ContextMap(Arc<Vec<(TypeId, Arc<dyn Any + Send + Sync>)>>);

impl ContextMap {
    fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.0
            .iter()
            .find(|(id, _)| *id == TypeId::of::<T>())
            .and_then(|(_, value)| Arc::clone(value).downcast::<T>().ok())
    }

    fn with<T: Any + Send + Sync>(&self, value: T) -> ContextMap {
        let mut values: Vec<_> = self
            .0
            .iter()
            .filter(|(id, _)| *id != TypeId::of::<T>())
            .cloned()
            .collect();
        values.push((TypeId::of::<T>(), Arc::new(value)));
        ContextMap(Arc::new(values))
    }
}

tokio::task_local! {
    static USER_CONTEXT: Option<ContextMap>;
}

/// Whether [`with_context`] ever made a map in this process. Until then no scope anywhere holds
/// one (every map in scope comes from a `with_context`, directly or through the events dispatched
/// inside it), so reading the task-local (a call, and a borrow check) can be skipped. Set before
/// the first map is made: whatever later hands that map to another thread (the lock an event's
/// state is behind) makes the store visible there too.
static CONTEXT_MADE: AtomicBool = AtomicBool::new(false);

/// The user context values in scope here (captured by `dispatch`).
#[inline]
pub(crate) fn current_context() -> Option<ContextMap> {
    if !CONTEXT_MADE.load(Ordering::Relaxed) {
        return None;
    }
    USER_CONTEXT.try_with(Clone::clone).ok().flatten()
}

/// Whether any user context is in scope here.
pub(crate) fn has_context() -> bool {
    CONTEXT_MADE.load(Ordering::Relaxed) && USER_CONTEXT.try_with(Option::is_some).unwrap_or(false)
}

pub(crate) fn context_sync_scope<R>(map: Option<ContextMap>, f: impl FnOnce() -> R) -> R {
    USER_CONTEXT.sync_scope(map, f)
}

pub(crate) fn context_scope<F: Future>(
    map: Option<ContextMap>,
    fut: F,
) -> TaskLocalFuture<Option<ContextMap>, F> {
    USER_CONTEXT.scope(map, fut)
}

/// Runs `fut` with `value` added to the context — the Rust counterpart of the reference runtimes'
/// ContextVars. Every event dispatched inside it carries the context to its handlers (through
/// queue-jumps, forwarding and child events), where [`context`] reads it. A handler that sets its
/// own value with `with_context` affects only what it runs and dispatches, never its caller.
///
/// ```
/// use bubus::{AnyEvent, DynEvent, EventBus};
/// use serde_json::json;
///
/// #[derive(Debug, PartialEq)]
/// struct RequestId(String);
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let bus = EventBus::new("Api");
/// bus.on(|_: AnyEvent| json!(bubus::context::context::<RequestId>().map(|id| id.0.clone())));
///
/// let event = bubus::context::with_context(RequestId("req-42".into()), async {
///     bus.dispatch(DynEvent::new("Handle", json!({})).unwrap())
/// })
/// .await?;
/// assert_eq!(event.event_result().await?, "req-42");
/// // Outside the scope, nothing is set.
/// assert!(bubus::context::context::<RequestId>().is_none());
/// # Ok(()) }
/// ```
pub fn with_context<T: Any + Send + Sync, F: Future>(
    value: T,
    fut: F,
) -> impl Future<Output = F::Output> {
    CONTEXT_MADE.store(true, Ordering::Relaxed);
    let map = current_context().unwrap_or_default().with(value);
    USER_CONTEXT.scope(Some(map), fut)
}

/// The context value of type `T` in scope: set by [`with_context`] around this code, or — inside a
/// handler — around the dispatch of the event being handled.
pub fn context<T: Any + Send + Sync>() -> Option<Arc<T>> {
    current_context().and_then(|map| map.get::<T>())
}
