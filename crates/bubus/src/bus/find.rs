//! `find` and `expect`: looking up events in a bus's history and waiting for future ones.
//!
//! This file holds [`FindQuery`], the lookup; `find/expect.rs` holds [`Expect`], built on it, and
//! `find/waiters.rs` the bus's registry of future waiters that `dispatch` resolves.

mod expect;
mod waiters;

pub use expect::Expect;
pub(crate) use waiters::FindWaiters;
use waiters::{FindWaiter, Registered, WaiterRegistration};

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use smallvec::SmallVec;
use tokio::sync::oneshot;
use tokio::time::Instant;
use uuid::Uuid;

use super::EventBus;
use crate::error::DispatchError;
use crate::event::inner::EventInner;
use crate::event::{AnyEvent, IntoEvent};
use crate::handler::HandlerInput;

/// How far back [`FindQuery`] looks in the history.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Past {
    None,
    All,
    Within(Duration),
}

/// How long [`FindQuery`] waits for a future event.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Wait {
    None,
    Forever,
    Within(Duration),
}

type Predicate<T> = Arc<dyn Fn(&T) -> bool + Send + Sync>;

/// Every filter of a query, applied to one event: the typed match, or `None`.
type Matcher<T> = Arc<dyn Fn(&AnyEvent) -> Option<T> + Send + Sync>;

/// A lookup of one event on one bus: in its history, or among events dispatched from now on, or
/// both. Build it with [`EventBus::find`] / [`EventBus::find_pattern`], then `.await` it.
///
/// * History is searched newest first: the **most recent** match wins, whatever its status
///   (pending, started or completed). Only this bus's history is searched.
/// * A future match resolves as soon as a matching event is **dispatched** on this bus — before
///   its handlers run — so await the returned handle if you need it completed.
/// * The future wait starts when the query becomes a future (`.await`, or
///   [`IntoFuture::into_future`]), not at its first poll — like tokio's `Notify::notified()` — so
///   a find can be created before the code that dispatches and awaited after it.
/// * Defaults: search all history, do not wait. Both off: resolves to `None` at once.
/// * Filters combine: the pattern, [`child_of`](Self::child_of), [`field`](Self::field)
///   equalities, then the [`matching`](Self::matching) predicate last.
///
/// Resolves to `None` when nothing matched (or the wait timed out, or the bus stopped).
///
/// ```
/// use std::time::Duration;
/// use bubus::{Event, EventBus, EventHandle};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// struct OrderPlaced { order_id: u32 }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let bus = EventBus::new("Orders");
/// bus.dispatch(OrderPlaced { order_id: 1 })?.await?;
///
/// // In the history:
/// let found = bus.find::<OrderPlaced>().matching(|e| e.order_id == 1).await;
/// assert!(found.is_some());
///
/// // Or the next one dispatched (within a second), waiting from before the dispatch:
/// let waiter = bus.find::<OrderPlaced>().no_past().future_within(Duration::from_secs(1));
/// let next = waiter.into_future();
/// bus.dispatch(OrderPlaced { order_id: 2 })?;
/// assert_eq!(next.await.unwrap().order_id, 2);
/// # Ok(()) }
/// ```
#[must_use = "a find does nothing until awaited"]
pub struct FindQuery<T> {
    bus: EventBus,
    pattern: Arc<str>,
    past: Past,
    wait: Wait,
    child_of: Option<AnyEvent>,
    fields: Vec<(String, Value)>,
    predicate: Option<Predicate<T>>,
    _input: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for FindQuery<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FindQuery")
            .field("bus", &self.bus.label())
            .field("pattern", &self.pattern)
            .field("past", &self.past)
            .field("future", &self.wait)
            .field("child_of", &self.child_of.as_ref().map(AnyEvent::label))
            .field("fields", &self.fields)
            .field("predicate", &self.predicate.is_some())
            .finish()
    }
}

impl<T> Clone for FindQuery<T> {
    fn clone(&self) -> Self {
        FindQuery {
            bus: self.bus.clone(),
            pattern: Arc::clone(&self.pattern),
            past: self.past,
            wait: self.wait,
            child_of: self.child_of.clone(),
            fields: self.fields.clone(),
            predicate: self.predicate.clone(),
            _input: PhantomData,
        }
    }
}

impl<T: HandlerInput + Clone + Sync> FindQuery<T> {
    pub(crate) fn new(bus: EventBus, pattern: Arc<str>) -> Self {
        FindQuery {
            bus,
            pattern,
            past: Past::All,
            wait: Wait::None,
            child_of: None,
            fields: Vec::new(),
            predicate: None,
            _input: PhantomData,
        }
    }

    /// Search the whole history (the default).
    pub fn past(mut self) -> Self {
        self.past = Past::All;
        self
    }

    /// Do not search the history: only a future dispatch can match.
    pub fn no_past(mut self) -> Self {
        self.past = Past::None;
        self
    }

    /// Search only events created less than `window` ago, measured on tokio's clock (so a test
    /// can pause and advance it). An event that came from elsewhere counts its age from its
    /// `event_created_at`.
    pub fn past_within(mut self, window: Duration) -> Self {
        self.past = Past::Within(window);
        self
    }

    /// Wait for a matching event to be dispatched, for as long as it takes (or until the bus
    /// stops). A history match is returned at once without waiting.
    pub fn future(mut self) -> Self {
        self.wait = Wait::Forever;
        self
    }

    /// Do not wait for a future dispatch (the default): resolve from the history alone.
    pub fn no_future(mut self) -> Self {
        self.wait = Wait::None;
        self
    }

    /// Wait up to `timeout` for a matching event to be dispatched.
    pub fn future_within(mut self, timeout: Duration) -> Self {
        self.wait = Wait::Within(timeout);
        self
    }

    /// Only events descending from `ancestor` (children, grandchildren, …).
    pub fn child_of(mut self, ancestor: impl AsRef<AnyEvent>) -> Self {
        self.child_of = Some(ancestor.as_ref().clone());
        self
    }

    /// Only events whose field `name` equals `value`: a payload field, or a metadata field such as
    /// `event_status`, `event_id`, `event_parent_id` or `event_timeout`, compared as JSON (numbers
    /// by value: `11` matches `11.0`).
    pub fn field(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// Only events the predicate accepts; it runs after every other filter. Several calls must
    /// all accept.
    pub fn matching(mut self, predicate: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.predicate = Some(match self.predicate.take() {
            None => Arc::new(predicate),
            Some(previous) => Arc::new(move |event: &T| previous(event) && predicate(event)),
        });
        self
    }

    /// Finds a match, or dispatches `make()`'s event on this bus when there is none — the
    /// debouncing pattern, in one call. Await the returned handle to wait for completion.
    ///
    /// ```
    /// use std::time::Duration;
    /// use bubus::{Event, EventBus};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
    /// struct Refresh { key: String }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bubus::Error> {
    /// let bus = EventBus::new("Cache");
    /// let refresh = |key: &str| {
    ///     let key = key.to_owned();
    ///     bus.find::<Refresh>()
    ///         .past_within(Duration::from_secs(10))
    ///         .matching({ let key = key.clone(); move |e| e.key == key })
    ///         .or_dispatch(move || Refresh { key })
    /// };
    /// let first = refresh("users").await?;
    /// let again = refresh("users").await?; // reuses the recent event
    /// assert_eq!(first.event_id(), again.event_id());
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// The dispatch error, when it had to dispatch and the bus refused.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe until it dispatches; dispatching itself is synchronous.
    pub async fn or_dispatch<P>(self, make: impl FnOnce() -> P) -> Result<T, DispatchError>
    where
        P: IntoEvent<Handle = T>,
    {
        let bus = self.bus.clone();
        match self.start().await {
            Some(found) => Ok(found),
            None => bus.dispatch(make()),
        }
    }

    fn matcher(&self) -> Matcher<T> {
        let pattern = Arc::clone(&self.pattern);
        let child_of = self.child_of.clone();
        let fields = self.fields.clone();
        let predicate = self.predicate.clone();
        let bus = Arc::downgrade(&self.bus.inner);
        Arc::new(move |event: &AnyEvent| {
            if &*pattern != "*" && event.event_type() != &*pattern {
                return None;
            }
            if let Some(ancestor) = &child_of {
                let lookup = |id| bus.upgrade().and_then(|b| b.find_event_by_id(id));
                if Arc::ptr_eq(event.inner(), ancestor.inner())
                    || !event.inner().has_ancestor(ancestor.inner(), &lookup)
                {
                    return None;
                }
            }
            if !fields.is_empty() {
                let payload = event.payload_json().ok();
                for (name, want) in &fields {
                    let have = crate::wire::metadata_field(event.inner(), name)
                        .or_else(|| payload.as_ref().and_then(|p| p.get(name).cloned()));
                    if !have.is_some_and(|have| crate::wire::json_eq(&have, want)) {
                        return None;
                    }
                }
            }
            let typed = T::__extract(event.clone()).ok()?;
            match &predicate {
                Some(predicate) if !predicate(&typed) => None,
                _ => Some(typed),
            }
        })
    }

    /// Registers the future waiter (if the query waits) right away, then returns the lookup.
    ///
    /// Registering before the first poll lets a find be created, the event dispatched, and the
    /// find awaited afterwards — as with tokio's `Notify::notified()`. It also happens before the
    /// history is searched, so an event dispatched in between is seen by one or the other.
    fn start(self) -> impl Future<Output = Option<T>> + Send + 'static {
        let matcher = self.matcher();
        let waiter = if self.wait == Wait::None {
            None
        } else {
            self.register(&matcher)
        };
        self.search(matcher, waiter)
    }

    /// Registers a future waiter on the bus; `None` if the bus is stopped (nothing will ever be
    /// dispatched there again).
    fn register(&self, matcher: &Matcher<T>) -> Option<Registered> {
        let (tx, rx) = oneshot::channel();
        let m = Arc::clone(matcher);
        let waiter = self.bus.inner.add_waiter(|key| FindWaiter {
            key,
            pattern: Arc::clone(&self.pattern),
            matches: Box::new(move |event| m(event).is_some()),
            tx: Mutex::new(Some(tx)),
        });
        let registration = WaiterRegistration {
            bus: Arc::clone(&self.bus.inner),
            pattern: Arc::clone(&waiter.pattern),
            key: waiter.key,
        };
        // Checked after registering: `stop` marks the bus stopped before it releases the waiters,
        // so either it releases this one or this check sees it stopped.
        if self.bus.is_stopped() {
            return None;
        }
        Some((registration, rx))
    }

    async fn search(self, matcher: Matcher<T>, waiter: Option<Registered>) -> Option<T> {
        if let Some((_, found)) = self.search_past(&matcher, 1).pop() {
            return Some(found);
        }
        self.wait_future(&matcher, waiter)
            .await
            .map(|(_, found)| found)
    }

    /// Up to `limit` matches in the history, newest first, with their ids.
    fn search_past(&self, matcher: &Matcher<T>, limit: usize) -> Vec<(Uuid, T)> {
        let mut found = Vec::new();
        if self.past == Past::None || limit == 0 {
            return found;
        }
        // Ages are measured on tokio's clock: an event is in the window while it is younger
        // than the window (a zero window holds nothing). A window reaching back before the
        // clock's origin holds everything.
        let window = match self.past {
            Past::Within(window) => Some((Instant::now(), window)),
            _ => None,
        };
        // Newest first, in batches: the batch is taken under the lock (only cheap type and
        // age checks there), the matcher — which may run user code — without it. Each batch
        // resumes below the last entry looked at, so events pushed meanwhile are not seen and
        // none is looked at twice.
        let pattern = Arc::clone(&self.pattern);
        let candidate = |created: Instant, event: &Arc<EventInner>| {
            (&*pattern == "*" || event.event_type() == &*pattern)
                && window
                    .is_none_or(|(now, window)| now.saturating_duration_since(created) < window)
        };
        let mut before = None;
        let mut first = true;
        // The first batch holds as many candidates as the query wants matches (`limit`), and
        // each next one twice the last, up to `MAX_BATCH`, while the matcher rejects them: the
        // usual `find` (one match, the newest candidate) takes one event, not the history's
        // newest 64 (S5: a find cost about 10 000 instructions with 64-event batches).
        const MAX_BATCH: usize = 64;
        let mut batch_len = limit.min(MAX_BATCH);
        let mut batch: SmallVec<[Arc<EventInner>; 4]> = SmallVec::new();
        loop {
            {
                let mut st = self.bus.inner.state.lock();
                if first {
                    self.bus.inner.expire(&mut st);
                    first = false;
                }
                let mut scanned = 0;
                for (seq, created, event) in st.history.newest_before(before) {
                    before = Some(seq);
                    scanned += 1;
                    if candidate(created, event) {
                        batch.push(Arc::clone(event));
                        if batch.len() == batch_len {
                            break;
                        }
                    }
                }
                if scanned == 0 {
                    break;
                }
            }
            batch_len = (batch_len * 2).min(MAX_BATCH);
            for event in batch.drain(..) {
                let id = event.id;
                if let Some(matched) = matcher(&AnyEvent::from_inner(event)) {
                    found.push((id, matched));
                    if found.len() >= limit {
                        return found;
                    }
                }
            }
        }
        found
    }

    async fn wait_future(
        &self,
        matcher: &Matcher<T>,
        waiter: Option<Registered>,
    ) -> Option<(Uuid, T)> {
        let (_registration, rx) = waiter?;
        let received = match self.wait {
            Wait::Within(timeout) => tokio::time::timeout(timeout, rx).await.ok()?,
            _ => rx.await,
        };
        let event = received.ok().flatten()?;
        Some((event.event_id(), matcher(&event)?))
    }

    /// Every match, newest first, up to `limit` (abxbus 2.5's `filter`): the history's
    /// matches, then — if the query waits ([`future`](Self::future),
    /// [`future_within`](Self::future_within)) and fewer than `limit` were found — the next
    /// matching event dispatched.
    ///
    /// ```
    /// use bubus::{Event, EventBus};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
    /// struct Reading { value: u32 }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bubus::Error> {
    /// let bus = EventBus::new("Sensors");
    /// for value in [3, 8, 1, 9] {
    ///     bus.dispatch(Reading { value })?.await?;
    /// }
    /// let high = bus.find::<Reading>().matching(|r| r.value > 2).filter(None).await;
    /// let values: Vec<u32> = high.iter().map(|r| r.value).collect();
    /// assert_eq!(values, [9, 8, 3]); // newest first
    /// assert_eq!(bus.find::<Reading>().filter(Some(2)).await.len(), 2);
    /// # Ok(()) }
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub fn filter(self, limit: Option<usize>) -> impl Future<Output = Vec<T>> + Send + 'static {
        let limit = limit.unwrap_or(usize::MAX);
        let matcher = self.matcher();
        let waiter = if self.wait == Wait::None || limit == 0 {
            None
        } else {
            self.register(&matcher)
        };
        async move {
            let mut found = self.search_past(&matcher, limit);
            if found.len() < limit {
                // The waiter was registered before the history was searched: an event
                // dispatched in between is seen by both, and counted once.
                if let Some((id, next)) = self.wait_future(&matcher, waiter).await {
                    if !found.iter().any(|(seen, _)| *seen == id) {
                        found.push((id, next));
                    }
                }
            }
            found.into_iter().map(|(_, found)| found).collect()
        }
    }
}

impl<T: HandlerInput + Clone + Sync> IntoFuture for FindQuery<T> {
    type Output = Option<T>;
    type IntoFuture = Pin<Box<dyn Future<Output = Option<T>> + Send>>;

    /// Registers the future waiter now (see [`FindQuery`]); the history is searched when the
    /// returned future is first polled.
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.start())
    }
}
