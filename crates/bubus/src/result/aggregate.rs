//! Result aggregation: the reference runtimes' `event_result*` helpers, typed.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use smallvec::SmallVec;

use super::EventResult;
use super::flat::{FlatDict, FlatList};
use crate::error::{HandlerError, ResultError};
use crate::event::EventResultValue;
use crate::event::inner::{EventInner, EventState};
use crate::handler::{HandlerId, HandlerMeta};

type Include<R> = Box<dyn Fn(&EventResult<R>) -> bool + Send + Sync>;

/// Result helpers with options. Get one from `EventHandle::results()` or `AnyEvent::results()`,
/// set options, then call one of the async methods.
///
/// Every method first waits for the event to complete (queue-jumping when called inside a
/// handler), then reads the results in the order the handlers were scheduled — registration order
/// on each bus, buses in the order they processed the event.
///
/// Each method has the family's defaults for its two raise policies; set them with
/// [`raise_if_any`](Self::raise_if_any) / [`ignore_errors`](Self::ignore_errors) (a handler
/// failed) and [`raise_if_none`](Self::raise_if_none) / [`allow_none`](Self::allow_none) (no
/// result passed the include filter):
///
/// | method | a handler failed | no result | returns |
/// | --- | --- | --- | --- |
/// | [`one`](Self::one) | raise | raise | the first included value |
/// | [`list`](Self::list) | raise | raise | every included value |
/// | [`by_handler_id`](Self::by_handler_id) | raise | raise | values keyed by handler id |
/// | [`by_handler_name`](Self::by_handler_name) | raise | raise | values keyed by handler name |
/// | [`flat_dict`](Self::flat_dict) | raise | allow | map results merged into one |
/// | [`flat_list`](Self::flat_list) | raise | raise | list results concatenated |
/// | [`first`](Self::first) | ignore | allow | the first included value |
/// | [`filtered`](Self::filtered) | raise | raise | the included results, keyed by handler id |
///
/// The default include filter keeps completed results with a non-null value that are not
/// forwarded events; [`include`](Self::include) replaces it.
///
/// ```
/// use bubus::{Event, EventBus, EventHandle, HandlerError};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// #[event(result = u32)]
/// struct Count;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let bus = EventBus::new("Counter");
/// bus.on(|_: EventHandle<Count>| 1);
/// bus.on(|_: EventHandle<Count>| -> Result<u32, HandlerError> { Err(HandlerError::new("ValueError", "no")) });
/// bus.on(|_: EventHandle<Count>| 3);
///
/// let event = bus.dispatch(Count)?;
/// assert!(event.event_results_list().await.is_err()); // one handler failed
/// let values = event.results().ignore_errors().list().await?;
/// assert_eq!(values, vec![1, 3]);
/// let big = event.results().ignore_errors().include(|r| r.result > Some(2)).list().await?;
/// assert_eq!(big, vec![3]);
/// # Ok(()) }
/// ```
pub struct ResultsQuery<R> {
    pub(crate) event: Arc<EventInner>,
    /// How long [`wait`](Self::wait) (in `bus`, next to the waiting code) waits.
    pub(crate) timeout: Option<Duration>,
    include: Option<Include<R>>,
    raise_if_any: Option<bool>,
    raise_if_none: Option<bool>,
    raise_if_conflicts: bool,
    _result: PhantomData<fn() -> R>,
}

impl<R> fmt::Debug for ResultsQuery<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResultsQuery")
            .field("event", &self.event.label())
            .field("timeout", &self.timeout)
            .field("custom_include", &self.include.is_some())
            .field("raise_if_any", &self.raise_if_any)
            .field("raise_if_none", &self.raise_if_none)
            .field("raise_if_conflicts", &self.raise_if_conflicts)
            .finish()
    }
}

struct Collected<R> {
    /// Each value with the handler that returned it (one reference count, no copy of its id or
    /// name until a helper keys by them).
    /// One inline: most events have one handler, and `event_result` reads one value.
    values: SmallVec<[(Arc<HandlerMeta>, R); 1]>,
    errors: Vec<HandlerError>,
}

impl<R: EventResultValue> ResultsQuery<R> {
    pub(crate) fn new(event: Arc<EventInner>) -> Self {
        ResultsQuery {
            event,
            timeout: None,
            include: None,
            raise_if_any: None,
            raise_if_none: None,
            raise_if_conflicts: true,
            _result: PhantomData,
        }
    }

    /// Stop waiting after `timeout` with [`WaitError::Timeout`](crate::WaitError::Timeout) (the event itself goes on).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Keep only results for which `filter` returns true (replaces the default filter). Results
    /// without a value are never returned, whatever the filter says.
    #[must_use]
    pub fn include(
        mut self,
        filter: impl Fn(&EventResult<R>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.include = Some(Box::new(filter));
        self
    }

    /// Fail when any handler failed (one error → that error, several → all of them): the
    /// family's `raise_if_any=True`, the default of every method but [`first`](Self::first).
    #[must_use]
    pub fn raise_if_any(mut self) -> Self {
        self.raise_if_any = Some(true);
        self
    }

    /// Return the values of the handlers that succeeded even when others failed (the family's
    /// `raise_if_any=False`).
    #[must_use]
    pub fn ignore_errors(mut self) -> Self {
        self.raise_if_any = Some(false);
        self
    }

    /// Fail with [`ResultError::NoResult`] when no result passes the include filter: the
    /// family's `raise_if_none=True`, the default of every method but [`first`](Self::first)
    /// and `flat_dict`.
    #[must_use]
    pub fn raise_if_none(mut self) -> Self {
        self.raise_if_none = Some(true);
        self
    }

    /// Return nothing (`None`, an empty list or map) when no result passes the include filter
    /// (the family's `raise_if_none=False`).
    #[must_use]
    pub fn allow_none(mut self) -> Self {
        self.raise_if_none = Some(false);
        self
    }

    /// `flat_dict` only: fail with [`ResultError::Conflict`] when two handlers return the same
    /// key (the default; the family's `raise_if_conflicts=True`).
    #[must_use]
    pub fn raise_if_conflicts(mut self) -> Self {
        self.raise_if_conflicts = true;
        self
    }

    /// `flat_dict` only: when two handlers return the same key, the later handler's value wins
    /// (the family's `raise_if_conflicts=False`).
    #[must_use]
    pub fn allow_conflicts(mut self) -> Self {
        self.raise_if_conflicts = false;
        self
    }

    /// The first included value, or `None` (only after [`allow_none`](Self::allow_none)).
    ///
    /// # Errors
    ///
    /// See [`ResultError`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future stops waiting and leaves the event untouched.
    pub async fn one(self) -> Result<Option<R>, ResultError> {
        self.first_included(true, true).await
    }

    /// Every included value, in result order.
    ///
    /// # Errors
    ///
    /// See [`ResultError`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn list(self) -> Result<Vec<R>, ResultError> {
        let collected = self.collect(true, true).await?;
        // Spilled (many handlers): reuses the values' allocation.
        Ok(collected
            .values
            .into_vec()
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Included values keyed by handler id, in result order.
    ///
    /// # Errors
    ///
    /// See [`ResultError`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn by_handler_id(self) -> Result<IndexMap<HandlerId, R>, ResultError> {
        let collected = self.collect(true, true).await?;
        Ok(collected
            .values
            .into_iter()
            .map(|(handler, v)| (handler.id.clone(), v))
            .collect())
    }

    /// Included values keyed by handler name; a later handler with the same name wins.
    ///
    /// # Errors
    ///
    /// See [`ResultError`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn by_handler_name(self) -> Result<IndexMap<String, R>, ResultError> {
        let collected = self.collect(true, true).await?;
        Ok(collected
            .values
            .into_iter()
            .map(|(handler, v)| (handler.name.to_string(), v))
            .collect())
    }

    /// The included results themselves — status, value, error, timing — keyed by handler id, in
    /// result order: the reference's `event_results_filtered`. With the default include filter,
    /// the completed results with a non-null value; [`include`](Self::include) chooses others
    /// (errors too, if it accepts them).
    ///
    /// ```
    /// use bubus::{Event, EventBus, EventHandle, HandlerError, result::ResultStatus};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
    /// #[event(result = u32)]
    /// struct Probe;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bubus::Error> {
    /// let bus = EventBus::new("Probes");
    /// bus.on(|_: EventHandle<Probe>| 7);
    /// bus.on(|_: EventHandle<Probe>| -> Result<u32, HandlerError> { Err(HandlerError::new("IOError", "down")) });
    ///
    /// let event = bus.dispatch(Probe)?;
    /// let failed = event
    ///     .results()
    ///     .ignore_errors()
    ///     .include(|r| r.status == ResultStatus::Error)
    ///     .filtered()
    ///     .await?;
    /// assert_eq!(failed.len(), 1);
    /// let ok = event.event_results_filtered().await;
    /// assert!(ok.is_err()); // by default a failed handler raises, as in the reference
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// See [`ResultError`]; both raise policies default to on.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn filtered(self) -> Result<IndexMap<HandlerId, EventResult<R>>, ResultError> {
        self.wait().await?;
        let raise_if_any = self.raise_if_any.unwrap_or(true);
        let raise_if_none = self.raise_if_none.unwrap_or(true);
        let mut kept = IndexMap::new();
        let mut errors = Vec::new();
        {
            let st = self.event.state.lock();
            for record in &st.results {
                if let Some(err) = &record.error {
                    errors.push(HandlerError::clone(err));
                }
                let snapshot = record.snapshot::<R>(self.event.id);
                if record.error.is_none() {
                    if let Some(err) = &snapshot.error {
                        errors.push(err.clone());
                    }
                }
                let included = match &self.include {
                    Some(include) => include(&snapshot),
                    None => record.is_truthy() && snapshot.result.is_some(),
                };
                if included {
                    kept.insert(snapshot.handler_id.clone(), snapshot);
                }
            }
        }
        if raise_if_any && !errors.is_empty() {
            return Err(handler_errors(&self.event, errors));
        }
        if raise_if_none && kept.is_empty() {
            return Err(ResultError::NoResult {
                event: self.event.label(),
            });
        }
        Ok(kept)
    }

    /// The first included value without raising: `None` if no handler returned one or all
    /// failed. (Does not switch the event to first-completion mode; the handle's `first()` does.)
    ///
    /// # Errors
    ///
    /// Only waiting errors, unless raise policies were set explicitly.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn first(self) -> Result<Option<R>, ResultError> {
        self.first_included(false, false).await
    }

    /// The first included value ([`one`](Self::one) and [`first`](Self::first), each with its
    /// defaults): with the default include filter, read without collecting ([`first_value`]).
    async fn first_included(
        &self,
        default_any: bool,
        default_none: bool,
    ) -> Result<Option<R>, ResultError> {
        self.wait().await?;
        let raise_if_any = self.raise_if_any.unwrap_or(default_any);
        let raise_if_none = self.raise_if_none.unwrap_or(default_none);
        if self.include.is_none() {
            return first_value(&self.event, raise_if_any, raise_if_none);
        }
        let collected = self.check(self.read(), raise_if_any, raise_if_none)?;
        Ok(collected.values.into_iter().next().map(|(_, v)| v))
    }

    async fn collect(
        &self,
        default_any: bool,
        default_none: bool,
    ) -> Result<Collected<R>, ResultError> {
        self.collect_shaped(default_any, default_none, |_| true)
            .await
    }

    /// As `collect`, keeping only the values `shape` accepts: `flat_dict` and `flat_list` of JSON
    /// results keep objects / arrays only, so a value of another shape is not a result for
    /// `raise_if_none` either (the reference ANDs the include filter with "is a dict / list").
    async fn collect_shaped(
        &self,
        default_any: bool,
        default_none: bool,
        shape: impl Fn(&R) -> bool,
    ) -> Result<Collected<R>, ResultError> {
        self.wait().await?;
        let raise_if_any = self.raise_if_any.unwrap_or(default_any);
        let raise_if_none = self.raise_if_none.unwrap_or(default_none);
        let mut collected = self.read();
        collected.values.retain(|(_, value)| shape(value));
        self.check(collected, raise_if_any, raise_if_none)
    }

    fn check(
        &self,
        collected: Collected<R>,
        raise_if_any: bool,
        raise_if_none: bool,
    ) -> Result<Collected<R>, ResultError> {
        if raise_if_any && !collected.errors.is_empty() {
            return Err(handler_errors(&self.event, collected.errors));
        }
        if raise_if_none && collected.values.is_empty() {
            return Err(no_result(&self.event));
        }
        Ok(collected)
    }

    fn read(&self) -> Collected<R> {
        let st = self.event.state.lock();
        let mut values = SmallVec::new();
        let mut errors = Vec::new();
        for record in &st.results {
            if let Some(err) = &record.error {
                errors.push(HandlerError::clone(err));
            }
            match &self.include {
                None => {
                    if !record.is_truthy() {
                        continue;
                    }
                    match record.value.extract::<R>() {
                        Some(Ok(value)) => values.push((Arc::clone(&record.handler), value)),
                        Some(Err(err)) => errors.push(err),
                        None => {}
                    }
                }
                Some(include) => {
                    let snapshot = record.snapshot::<R>(self.event.id);
                    if record.error.is_none() {
                        // A stored value that does not convert to `R` is an error, not a silent
                        // omission (the snapshot carries the conversion error).
                        if let Some(err) = &snapshot.error {
                            errors.push(err.clone());
                        }
                    }
                    if !include(&snapshot) {
                        continue;
                    }
                    if let Some(value) = snapshot.result {
                        values.push((Arc::clone(&record.handler), value));
                    }
                }
            }
        }
        Collected { values, errors }
    }
}

/// What handler errors raise: the one error itself, or all of them.
fn handler_errors(event: &EventInner, mut errors: Vec<HandlerError>) -> ResultError {
    if errors.len() == 1 {
        ResultError::Handler(errors.remove(0))
    } else {
        ResultError::Handlers {
            event: event.label(),
            errors,
        }
    }
}

fn no_result(event: &EventInner) -> ResultError {
    ResultError::NoResult {
        event: event.label(),
    }
}

/// The first value under the default include filter of a completed event, with the given raise
/// policies: what collecting every value and error and taking the first value returns, read in
/// one pass under one lock without building either list. Only the first value is kept; after
/// it, a value stored as an `R` is not read (it cannot fail to convert), and with errors not
/// raising the pass stops there. An error that raises ends the pass: the
/// errors are then listed by [`raised_errors`].
#[inline]
pub(crate) fn first_value<R: EventResultValue>(
    event: &EventInner,
    raise_if_any: bool,
    raise_if_none: bool,
) -> Result<Option<R>, ResultError> {
    let first = {
        let st = event.state.lock();
        let mut first: Option<R> = None;
        for record in &st.results {
            if record.error.is_some() {
                if raise_if_any {
                    return Err(raised_errors::<R>(event, &st));
                }
                continue;
            }
            if !record.is_truthy() {
                continue;
            }
            if first.is_some() {
                // Past the first value, only a value that fails to convert changes the answer:
                // none does when errors do not raise, and a value stored as an `R` cannot.
                if !raise_if_any {
                    break;
                }
                if record.value.holds::<R>() {
                    continue;
                }
            }
            match record.value.extract::<R>() {
                Some(Ok(value)) => {
                    first.get_or_insert(value);
                }
                Some(Err(_)) if raise_if_any => {
                    return Err(raised_errors::<R>(event, &st));
                }
                Some(Err(_)) | None => {}
            }
        }
        first
    };
    if raise_if_none && first.is_none() {
        return Err(no_result(event));
    }
    Ok(first)
}

/// What [`first_value`] raises when a handler failed or a value does not convert to `R`: every
/// such error, in result order.
#[cold]
#[inline(never)]
fn raised_errors<R: EventResultValue>(event: &EventInner, st: &EventState) -> ResultError {
    let mut errors = Vec::new();
    for record in &st.results {
        if let Some(err) = &record.error {
            errors.push(HandlerError::clone(err));
        } else if record.is_truthy() {
            if let Some(Err(err)) = record.value.extract::<R>() {
                errors.push(err);
            }
        }
    }
    handler_errors(event, errors)
}

/// `event_result()` of a completed event: [`ResultsQuery::one`] with its defaults.
#[inline]
pub(crate) fn event_result<R: EventResultValue>(event: &EventInner) -> Result<R, ResultError> {
    first_value(event, true, true)?.ok_or_else(|| no_result(event))
}

impl<R: EventResultValue + FlatDict> ResultsQuery<R> {
    /// Merges the included map results into one map, in result order. Results that are not maps
    /// (for JSON results) are not included, and empty maps are skipped.
    ///
    /// # Errors
    ///
    /// [`ResultError::Conflict`] when two handlers return the same key (unless
    /// [`allow_conflicts`](Self::allow_conflicts)); otherwise see [`ResultError`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn flat_dict(self) -> Result<R, ResultError> {
        let collected = self
            .collect_shaped(true, false, |v| v.__keys().is_some())
            .await?;
        let mut merged = R::__empty();
        let mut conflicts = Vec::new();
        for (_, value) in collected.values {
            let Some(keys) = value.__keys() else { continue };
            if keys.is_empty() {
                continue;
            }
            if self.raise_if_conflicts {
                let existing = merged.__keys().unwrap_or_default();
                conflicts.extend(keys.into_iter().filter(|k| existing.contains(k)));
            }
            merged.__merge(value);
        }
        if !conflicts.is_empty() {
            conflicts.sort();
            conflicts.dedup();
            return Err(ResultError::Conflict {
                event: self.event.label(),
                keys: conflicts,
            });
        }
        Ok(merged)
    }
}

impl<R: EventResultValue + FlatList> ResultsQuery<R> {
    /// Concatenates the included list results, in result order. Results that are not lists (for
    /// JSON results) are not included.
    ///
    /// # Errors
    ///
    /// See [`ResultError`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe.
    pub async fn flat_list(self) -> Result<R, ResultError> {
        let collected = self.collect_shaped(true, true, R::__is_list).await?;
        let mut merged = R::__empty();
        for (_, value) in collected.values {
            merged.__extend(value);
        }
        Ok(merged)
    }
}
