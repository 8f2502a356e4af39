//! Per-handler results and the helpers that aggregate them.
//!
//! The helpers come in two shapes, on purpose:
//!
//! * `event_result()` (and `ResultsQuery::one`) answers "what did the handlers return?" and
//!   returns `Result<R, ResultError>`: no handler returning a value is an error
//!   ([`ResultError::NoResult`](crate::error::ResultError::NoResult)), as a failed handler is, because the
//!   caller asked for a value;
//! * `first()` / `race()` answer "did any handler return something?" and return
//!   `Result<Option<R>, ResultError>`: `None` is an ordinary answer, and handler errors are not
//!   raised (only waiting can fail), as in the reference runtimes.
//!
//! The list and map helpers (`event_results_list`, `…_by_handler_id`, `…_flat_dict`, …) follow
//! the first shape, with an empty list or map instead of `NoResult` where the reference allows it;
//! [`ResultsQuery`] sets each policy explicitly (`raise_if_any` / `ignore_errors`,
//! `raise_if_none` / `allow_none`).

mod aggregate;
mod flat;
pub(crate) mod scalar;
mod slot;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{HandlerError, HandlerErrorKind};
use crate::event::inner::EventInner;
use crate::event::{AnyEvent, EventHandle, EventPayload, EventResultValue};
use crate::handler::{HandlerId, HandlerMeta};
use crate::time::{Stamp, Timestamp};

pub use aggregate::ResultsQuery;
pub use flat::{FlatDict, FlatList};
pub(crate) use slot::ResultSlot;

/// Where one handler is with one event.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResultStatus {
    /// Waiting to run (for its turn, or for the serial-handler lock).
    Pending,
    /// Running.
    Started,
    /// Returned a value.
    Completed,
    /// Failed: returned an error, panicked, timed out, or was cancelled or aborted.
    Error,
}

impl ResultStatus {
    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResultStatus::Pending => "pending",
            ResultStatus::Started => "started",
            ResultStatus::Completed => "completed",
            ResultStatus::Error => "error",
        }
    }
}

impl fmt::Display for ResultStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The live record of one handler run, stored on the event.
pub(crate) struct ResultRecord {
    pub(crate) id: Uuid,
    pub(crate) handler: Arc<HandlerMeta>,
    pub(crate) status: ResultStatus,
    pub(crate) value: ResultSlot,
    /// Boxed: most results have none, and the record is stored inline in its event.
    pub(crate) error: Option<Box<HandlerError>>,
    /// When the handler started and finished ([`started_at`](Self::started_at),
    /// [`completed_at`](Self::completed_at)): a word each, where an `Option<Timestamp>` takes two.
    started: Stamp,
    completed: Stamp,
    pub(crate) children: ChildIds,
}

/// The ids of the events a handler dispatched, in order: one word, where a `Vec` takes three
/// (most handlers dispatch none, and the record is stored inline in its event, once per handler
/// run).
#[derive(Default)]
// The box is the point: a thin pointer in the record for the usual empty list, the vector's
// three words only once a child is linked.
#[allow(clippy::box_collection)]
pub(crate) struct ChildIds(Option<Box<Vec<Uuid>>>);

impl ChildIds {
    /// Appends `id`.
    pub(crate) fn push(&mut self, id: Uuid) {
        self.0.get_or_insert_default().push(id);
    }

    /// The ids.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[Uuid] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    /// Whether no id was ever added (nothing is allocated).
    #[inline(always)]
    fn is_unallocated(&self) -> bool {
        self.0.is_none()
    }
}

impl std::ops::Deref for ChildIds {
    type Target = [Uuid];

    #[inline(always)]
    fn deref(&self) -> &[Uuid] {
        self.as_slice()
    }
}

impl From<Vec<Uuid>> for ChildIds {
    fn from(ids: Vec<Uuid>) -> Self {
        ChildIds((!ids.is_empty()).then(|| Box::new(ids)))
    }
}

impl ResultRecord {
    /// A pending result of the event with id `event_id`, created at `at`. Its id's time part is
    /// the event id's when that is a UUIDv7 (made from the same creation time for an event built
    /// here), else made from `at`: ids only need to be unique, and this saves turning a clock
    /// reading into one on every handler run.
    #[inline]
    pub(crate) fn pending(handler: Arc<HandlerMeta>, event_id: Uuid, at: Timestamp) -> Self {
        Self::pending_with_id(new_result_id(event_id, at), handler)
    }

    /// A pending result with the id `id` (one read from JSON).
    #[inline(always)]
    pub(crate) fn pending_with_id(id: Uuid, handler: Arc<HandlerMeta>) -> Self {
        ResultRecord {
            id,
            handler,
            status: ResultStatus::Pending,
            value: ResultSlot::Null,
            error: None,
            started: Stamp::NONE,
            completed: Stamp::NONE,
            children: ChildIds::default(),
        }
    }

    /// Whether the record owns nothing but its handler reference (a null or scalar value, no
    /// error, no children): the usual finished record, which [`drop_plain`](Self::drop_plain)
    /// drops.
    #[inline(always)]
    pub(crate) fn owns_only_handler(&self) -> bool {
        self.value.owns_nothing() && self.error.is_none() && self.children.is_unallocated()
    }

    /// Drops a record that [owns only its handler reference](Self::owns_only_handler): the
    /// reference, with no call to the drop glue of the parts that own nothing.
    #[inline(always)]
    pub(crate) fn drop_plain(self) {
        let ResultRecord {
            handler,
            value,
            error,
            children,
            ..
        } = self;
        debug_assert!(value.owns_nothing() && error.is_none() && children.is_unallocated());
        // Forgotten first: were the handler reference's drop to unwind, nothing would be left
        // to drop (and nothing is kept aside for that).
        std::mem::forget(value);
        std::mem::forget(error);
        std::mem::forget(children);
        drop(handler);
    }

    /// When the handler started, if it did.
    #[inline(always)]
    pub(crate) fn started_at(&self) -> Option<Timestamp> {
        self.started.get()
    }

    /// When the handler finished, if it did.
    #[inline(always)]
    pub(crate) fn completed_at(&self) -> Option<Timestamp> {
        self.completed.get()
    }

    /// Sets when the handler started (`None`: not started).
    #[inline(always)]
    pub(crate) fn set_started_at(&mut self, at: Option<Timestamp>) {
        self.started = Stamp::new(at);
    }

    /// Marks the handler's run started at `now`.
    #[inline(always)]
    pub(crate) fn mark_started(&mut self, now: Timestamp) {
        self.status = ResultStatus::Started;
        self.set_started_at(Some(now));
    }

    /// Sets when the handler finished (`None`: not finished).
    #[inline(always)]
    pub(crate) fn set_completed_at(&mut self, at: Option<Timestamp>) {
        self.completed = Stamp::new(at);
    }

    /// Records a terminal outcome unless one is already recorded (a cancellation or timeout that
    /// got there first wins). Returns whether it was recorded. (Inlined: the outcome is not
    /// passed through memory, once per handler run. The outcome is stored before the clock is
    /// read, so it is not kept aside across that call.)
    #[inline(always)]
    pub(crate) fn finish(&mut self, outcome: Result<ResultSlot, HandlerError>) -> bool {
        // The terminal check is made in each arm, on the parts: the outcome as a whole is never
        // needed again, so it is not copied aside to be dropped.
        match outcome {
            Ok(value) => {
                if self.status.is_terminal() {
                    drop(value);
                    return false;
                }
                // Almost always null (nothing recorded yet): nothing to drop, and no call to
                // the slot's drop glue for it.
                if self.value.is_null() {
                    std::mem::forget(std::mem::replace(&mut self.value, value));
                } else {
                    self.replace_value(value);
                }
                self.status = ResultStatus::Completed;
            }
            Err(err) => {
                if self.status.is_terminal() {
                    drop(err);
                    return false;
                }
                self.error = Some(Box::new(err));
                self.status = ResultStatus::Error;
            }
        }
        let now = Timestamp::now_shared();
        if self.started.is_none() {
            self.set_started_at(Some(now));
        }
        self.set_completed_at(Some(now));
        true
    }

    /// Replaces a value already recorded (rare): out of line, so the usual path keeps no copy
    /// of the new value aside for the old one's drop.
    #[cold]
    #[inline(never)]
    fn replace_value(&mut self, value: ResultSlot) {
        self.value = value;
    }

    /// The default "truthy" include filter of the reference helpers: completed, no error, not
    /// null, not a forwarded event.
    pub(crate) fn is_truthy(&self) -> bool {
        self.status == ResultStatus::Completed
            && self.error.is_none()
            && !self.value.is_null()
            && !self.value.is_forwarded()
    }

    pub(crate) fn snapshot<R: EventResultValue>(&self, event_id: Uuid) -> EventResult<R> {
        let (result, conversion_error) = match self.value.extract::<R>() {
            None => (None, None),
            Some(Ok(value)) => (Some(value), None),
            Some(Err(err)) => (None, Some(err)),
        };
        let forwarded_event_id = match &self.value {
            ResultSlot::Forwarded { event_id, .. } => Some(*event_id),
            _ => None,
        };
        EventResult {
            id: self.id,
            status: self.status,
            event_id,
            handler_id: self.handler.id.clone(),
            handler_name: self.handler.name.to_string(),
            handler_file_path: self.handler.file_path.as_deref().map(str::to_owned),
            handler_event_pattern: self.handler.pattern.to_string(),
            handler_timeout: self.handler.timeout.flatten(),
            handler_slow_timeout: self.handler.slow_timeout.flatten(),
            handler_registered_at: self.handler.registered_at,
            eventbus_id: self.handler.bus_id,
            eventbus_name: self.handler.bus_name.to_string(),
            started_at: self.started_at(),
            completed_at: self.completed_at(),
            result,
            result_json: self.value.to_json(),
            forwarded_event_id,
            error: self.error.as_deref().cloned().or(conversion_error),
            event_children: self.children.to_vec(),
            wire_extra: self.handler.wire_extra.clone(),
        }
    }
}

/// Ids for the results of one event (see [`new_result_id`]), with the event id's
/// version looked at once rather than for each result (an event may have thousands).
pub(crate) struct ResultIds {
    /// The event id's first half when it is a UUIDv7.
    high: Option<u64>,
    at: Timestamp,
}

impl ResultIds {
    /// Ids for results of the event with id `event_id`, created at `at`.
    #[inline]
    pub(crate) fn new(event_id: Uuid, at: Timestamp) -> Self {
        let high = (event_id.get_version_num() == 7).then(|| event_id.as_u64_pair().0);
        ResultIds { high, at }
    }

    /// The next id.
    #[inline]
    pub(crate) fn next(&self) -> Uuid {
        match self.high {
            Some(high) => Uuid::from_u64_pair(high, (0b10 << 62) | (fastrand::u64(..) >> 2)),
            None => crate::event::inner::new_event_id(self.at),
        }
    }
}

/// A new UUIDv7 for a result of the event with id `event_id`: the event id's first half (its
/// time part, version included) when it is a UUIDv7, else one made from `at`, and fresh random
/// bits in the second half, which alone keep result ids unique (62 bits, as for event ids).
#[inline]
fn new_result_id(event_id: Uuid, at: Timestamp) -> Uuid {
    ResultIds::new(event_id, at).next()
}

/// A snapshot of one handler's run for one event on one bus.
///
/// `R` is the event's result type for [`EventHandle::event_results`], JSON for
/// [`AnyEvent::event_results`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EventResult<R = Value> {
    /// The result's id (UUIDv7).
    pub id: Uuid,
    /// Pending, started, completed or error.
    pub status: ResultStatus,
    /// The event it belongs to.
    pub event_id: Uuid,
    /// The handler that produced it.
    pub handler_id: HandlerId,
    /// The handler's name.
    pub handler_name: String,
    /// Where the handler was registered (`file:line`), when detection is on.
    pub handler_file_path: Option<String>,
    /// The pattern the handler was registered for.
    pub handler_event_pattern: String,
    /// The handler's own timeout, if set.
    pub handler_timeout: Option<std::time::Duration>,
    /// The handler's own slow-warning threshold, if set.
    pub handler_slow_timeout: Option<std::time::Duration>,
    /// When the handler was registered.
    pub handler_registered_at: Timestamp,
    /// The id of the bus that ran the handler.
    pub eventbus_id: Uuid,
    /// The name of the bus that ran the handler.
    pub eventbus_name: String,
    /// When the handler started.
    pub started_at: Option<Timestamp>,
    /// When the handler finished.
    pub completed_at: Option<Timestamp>,
    /// The returned value; `None` while running, for null values, forwards and errors.
    pub result: Option<R>,
    /// The returned value as JSON (`null` when there is none).
    pub result_json: Value,
    /// Set when the handler forwarded the event to another bus (its result is the event itself).
    pub forwarded_event_id: Option<Uuid>,
    /// Why the handler failed.
    pub error: Option<HandlerError>,
    /// Ids of the events the handler dispatched.
    pub event_children: Vec<Uuid>,
    /// Keys of the result's JSON this version does not know, written back by `to_json`.
    pub(crate) wire_extra: UnknownKeys,
}

impl<R> EventResult<R> {
    /// Whether the handler timed out.
    pub fn is_timeout(&self) -> bool {
        self.error
            .as_ref()
            .is_some_and(|e| e.kind() == HandlerErrorKind::Timeout)
    }
}

fn snapshots<R: EventResultValue>(inner: &EventInner) -> Vec<EventResult<R>> {
    let st = inner.state.lock();
    st.results
        .iter()
        .map(|r| r.snapshot::<R>(inner.id))
        .collect()
}

impl<P: EventPayload> EventHandle<P> {
    /// One snapshot per handler run so far, on every bus, in the order handlers were scheduled.
    pub fn event_results(&self) -> Vec<EventResult<P::Result>> {
        snapshots(self.inner())
    }

    /// Result helpers with options (timeout, include filter, raise policies).
    pub fn results(&self) -> ResultsQuery<P::Result> {
        ResultsQuery::new(Arc::clone(self.inner()))
    }
}

impl AnyEvent {
    /// One snapshot per handler run so far, with values as JSON.
    pub fn event_results(&self) -> Vec<EventResult<Value>> {
        snapshots(self.inner())
    }

    /// Result helpers with options, values as JSON.
    pub fn results(&self) -> ResultsQuery<Value> {
        ResultsQuery::new(Arc::clone(self.inner()))
    }
}

/// The future of `event_result()`: an event already complete when it is first polled (W1
/// batched awaits mostly those) is read at once — the completion flag, then the first value —
/// without entering the wait, whose state an `async fn` kept (and saved and restored around)
/// in every poll.
struct FirstResult<'a, R, W> {
    event: &'a Arc<EventInner>,
    /// The wait ([`EventInner::completion`]): made with the future (it does nothing until
    /// polled), polled only if the event was not complete at the first poll.
    wait: W,
    waiting: bool,
    result: std::marker::PhantomData<fn() -> R>,
}

/// The future of `event_result()` for `event`.
#[inline]
fn first_result<R>(
    event: &Arc<EventInner>,
) -> FirstResult<'_, R, impl Future<Output = Result<(), crate::error::WaitError>> + Unpin + '_> {
    FirstResult {
        event,
        wait: event.completion(),
        waiting: false,
        result: std::marker::PhantomData,
    }
}

impl<R, W> Future for FirstResult<'_, R, W>
where
    R: EventResultValue,
    W: Future<Output = Result<(), crate::error::WaitError>> + Unpin,
{
    type Output = Result<R, crate::error::ResultError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.waiting {
            if this.event.is_complete() {
                // `results().one()` without building the query.
                return Poll::Ready(aggregate::event_result::<R>(this.event));
            }
            this.waiting = true;
        }
        match Pin::new(&mut this.wait).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Err(err.into())),
            Poll::Ready(Ok(())) => Poll::Ready(aggregate::event_result::<R>(this.event)),
        }
    }
}

macro_rules! result_helpers {
    ($ty:ty, $r:ty $(, $p:ident)?) => {
        impl$(<$p: EventPayload>)? $ty {
            /// Waits for the event (queue-jumping inside a handler), then returns the first
            /// handler's non-null value. Fails if any handler failed or none returned a value.
            ///
            /// The reference's `event_result()`; see [`ResultsQuery::one`] for options.
            ///
            /// # Errors
            ///
            /// [`ResultError::Handler`](crate::error::ResultError::Handler) /
            /// [`Handlers`](crate::error::ResultError::Handlers) when handlers failed,
            /// [`NoResult`](crate::error::ResultError::NoResult) when none returned a value,
            /// [`Wait`](crate::error::ResultError::Wait) when the event cannot be awaited.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe: dropping the future stops waiting and leaves the event untouched.
            pub fn event_result(
                &self,
            ) -> impl std::future::Future<Output = Result<$r, crate::error::ResultError>> + '_ {
                first_result::<$r>(self.inner())
            }

            /// Waits for the event, then returns every handler's non-null value in result
            /// order. Fails if any handler failed or none returned a value.
            ///
            /// # Errors
            ///
            /// As [`event_result`](Self::event_result).
            ///
            /// # Cancel safety
            ///
            /// Cancel safe.
            pub async fn event_results_list(&self) -> Result<Vec<$r>, crate::error::ResultError> {
                self.results().list().await
            }

            /// Waits for the event, then returns the non-null values keyed by handler id.
            ///
            /// # Errors
            ///
            /// As [`event_result`](Self::event_result).
            ///
            /// # Cancel safety
            ///
            /// Cancel safe.
            pub async fn event_results_by_handler_id(
                &self,
            ) -> Result<indexmap::IndexMap<HandlerId, $r>, crate::error::ResultError> {
                self.results().by_handler_id().await
            }

            /// Waits for the event, then returns the non-null values keyed by handler name
            /// (a later handler with the same name overwrites an earlier one).
            ///
            /// # Errors
            ///
            /// As [`event_result`](Self::event_result).
            ///
            /// # Cancel safety
            ///
            /// Cancel safe.
            pub async fn event_results_by_handler_name(
                &self,
            ) -> Result<indexmap::IndexMap<String, $r>, crate::error::ResultError> {
                self.results().by_handler_name().await
            }

            /// Waits for the event, then returns the results (status, value, error, timing)
            /// that completed with a non-null value, keyed by handler id: the reference's
            /// `event_results_filtered`. See [`ResultsQuery::filtered`] for another filter.
            ///
            /// # Errors
            ///
            /// As [`event_result`](Self::event_result).
            ///
            /// # Cancel safety
            ///
            /// Cancel safe.
            pub async fn event_results_filtered(
                &self,
            ) -> Result<indexmap::IndexMap<HandlerId, EventResult<$r>>, crate::error::ResultError> {
                self.results().filtered().await
            }

            /// Waits for the event, then merges the handlers' map results into one map. A key
            /// returned by two handlers is an error (see
            /// [`ResultsQuery::allow_conflicts`] to let the last handler win). No results
            /// is not an error: the merged map is empty.
            ///
            /// # Errors
            ///
            /// [`ResultError::Conflict`](crate::error::ResultError::Conflict), and as
            /// [`event_result`](Self::event_result) for failed handlers.
            ///
            /// # Cancel safety
            ///
            /// Cancel safe.
            pub async fn event_results_flat_dict(&self) -> Result<$r, crate::error::ResultError>
            where
                $r: FlatDict,
            {
                self.results().flat_dict().await
            }

            /// Waits for the event, then concatenates the handlers' list results.
            ///
            /// # Errors
            ///
            /// As [`event_result`](Self::event_result).
            ///
            /// # Cancel safety
            ///
            /// Cancel safe.
            pub async fn event_results_flat_list(&self) -> Result<$r, crate::error::ResultError>
            where
                $r: FlatList,
            {
                self.results().flat_list().await
            }

            /// Waits for the event, then returns the first non-null value its handlers returned
            /// (in result order), `None` if none did. Handler errors are not raised. Reading only:
            /// the event runs in whatever completion mode it has; see [`race`](Self::race) to make
            /// the first value win and cancel the rest.
            ///
            /// # Errors
            ///
            /// Only [`ResultError::Wait`](crate::error::ResultError::Wait).
            ///
            /// # Cancel safety
            ///
            /// Cancel safe.
            pub async fn first(&self) -> Result<Option<$r>, crate::error::ResultError> {
                self.results().first().await
            }

            /// Switches the event to first-completion mode — the first handler to return a
            /// non-null value wins and the rest are cancelled — then waits for it and returns the
            /// winning value (`None` if no handler returned one). Handler errors are not raised.
            /// The same as setting
            /// [`HandlerCompletion::First`](crate::event::HandlerCompletion::First) with
            /// `set_event_handler_completion` and calling [`first`](Self::first); what Python and
            /// TypeScript bubus call `await event.first()`.
            ///
            /// Switching only affects processing that has not started yet.
            ///
            /// # Errors
            ///
            /// Only [`ResultError::Wait`](crate::error::ResultError::Wait).
            ///
            /// # Cancel safety
            ///
            /// Cancel safe. The mode switch stays when the future is dropped.
            pub async fn race(&self) -> Result<Option<$r>, crate::error::ResultError> {
                self.set_event_handler_completion(Some(crate::event::HandlerCompletion::First));
                self.results().first().await
            }
        }
    };
}

result_helpers!(EventHandle<P>, P::Result, P);
result_helpers!(AnyEvent, Value);

/// Keys of a result object or a handler entry, or of a bus snapshot, that this version does not
/// know, kept and written back (`wire::extra`). Shared: every result of a handler refers to the
/// same map.
pub(crate) type UnknownKeys = Option<Arc<serde_json::Map<String, serde_json::Value>>>;

/// A forwarding handler's result is the event it forwarded, as that event's JSON: not a value
/// of the result type (the reference runtimes skip it when validating too).
pub(crate) fn is_event_json(value: &serde_json::Value) -> bool {
    value.as_object().is_some_and(|o| {
        o.get("event_type")
            .is_some_and(serde_json::Value::is_string)
            && o.get("event_id").is_some_and(serde_json::Value::is_string)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A time is kept as given, and none stays none, in one word.
    #[test]
    fn record_times_round_trip_in_a_word() {
        assert_eq!(std::mem::size_of::<Stamp>(), 8);
        let at = Timestamp::from_unix_nanos(1_752_180_000_123_456_789);
        assert_eq!(Stamp::new(Some(at)).get(), Some(at));
        assert_eq!(Stamp::new(None).get(), None);
        // The earliest instant the wire accepts is kept too.
        let early: Timestamp = "1991-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(Stamp::new(Some(early)).get(), Some(early));
    }

    /// A record is stored inline in its event, one per handler run: its size is kept down
    /// (the value slot in four words, the dispatched children's ids in one).
    #[test]
    fn records_stay_small() {
        assert!(std::mem::size_of::<ResultSlot>() <= 32);
        assert_eq!(std::mem::size_of::<ChildIds>(), 8);
        assert!(std::mem::size_of::<ResultRecord>() <= 96);
    }

    #[test]
    fn child_ids_keep_their_order() {
        let mut ids = ChildIds::default();
        assert!(ids.is_unallocated() && ids.is_empty());
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        ids.push(a);
        ids.push(b);
        assert_eq!(ids.as_slice(), &[a, b]);
        assert!(ChildIds::from(Vec::new()).is_unallocated());
        assert_eq!(&*ChildIds::from(vec![b, a]), &[b, a]);
    }

    #[test]
    fn result_ids_are_unique_uuid7_with_the_event_time() {
        let at = Timestamp::from_unix_nanos(1_752_180_000_123_456_789);
        let event_id = crate::event::inner::new_event_id(at);
        let id = new_result_id(event_id, at);
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(id.get_timestamp(), event_id.get_timestamp());
        assert_ne!(id, event_id);
        assert_ne!(new_result_id(event_id, at), id);
        // An event id of another version (a v4 from elsewhere) lends nothing: the id is a new
        // event-style id made from the creation time (`new_event_id`, tested in event/inner.rs).
        let v4 = Uuid::from_u128(0x1234_5678_9abc_4def_8123_4567_89ab_cdef);
        let id = new_result_id(v4, at);
        assert_eq!(id.get_version_num(), 7);
        assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(
            id.get_timestamp(),
            crate::event::inner::new_event_id(at).get_timestamp()
        );
    }
}
