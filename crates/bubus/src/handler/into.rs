//! Turning functions, closures and methods into handlers, with the return type checked against the
//! event's result type at compile time.
//!
//! A handler's default name, from its type name, is made in `into/name.rs`.

mod name;

use name::handler_name_of;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use serde_json::Value;

use crate::error::HandlerError;
use crate::event::{AnyEvent, EventHandle, EventPayload, EventResultValue};
use crate::result::ResultSlot;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
type BoxOutcome = Pin<Box<dyn Future<Output = Result<ResultSlot, HandlerError>> + Send>>;

/// What calling a handler produced: a value right away (sync handlers), or a future.
pub(crate) enum HandlerCall {
    Ready(Result<ResultSlot, HandlerError>),
    /// A value right away that is known to pass the event's result check (see
    /// [`checked_outcome`]): recorded without it.
    Checked(Result<ResultSlot, HandlerError>),
    Pending(BoxOutcome),
}

pub(crate) trait ErasedHandler: Send + Sync + 'static {
    fn call(&self, event: AnyEvent) -> HandlerCall;
}

/// A handler with its argument and return types erased. Produced by [`IntoHandler`].
pub struct HandlerFn(pub(crate) Box<dyn ErasedHandler>);

impl fmt::Debug for HandlerFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandlerFn")
    }
}

mod sealed {
    pub trait Sealed {}
}

/// What a handler can take as its argument: [`EventHandle<E>`] for a typed event (or
/// `EventHandle<DynEvent>` for the JSON view), or [`AnyEvent`] for any event.
///
/// The argument type also decides the default pattern ([`EventBus::on`](crate::EventBus::on)):
/// `EventHandle<E>` subscribes to `E::EVENT_TYPE`, `AnyEvent` and `EventHandle<DynEvent>` to `"*"`.
pub trait HandlerInput: sealed::Sealed + Sized + Send + 'static {
    /// What the handler must return (through [`HandlerOutput`]).
    type Output: EventResultValue;

    #[doc(hidden)]
    fn __pattern() -> &'static str;

    #[doc(hidden)]
    fn __extract(event: AnyEvent) -> Result<Self, HandlerError>;

    /// Whether the event's result check is the typed one for [`Output`](Self::Output): the
    /// event was created as this input's own event type (not a dynamic event viewed as it).
    #[doc(hidden)]
    #[inline]
    fn __typed_check(&self) -> bool {
        false
    }
}

impl<P: EventPayload> sealed::Sealed for EventHandle<P> {}
impl<P: EventPayload> HandlerInput for EventHandle<P> {
    type Output = P::Result;

    fn __pattern() -> &'static str {
        P::__default_pattern()
    }

    // Inlined into the handler's call: built once per run.
    #[inline]
    fn __extract(event: AnyEvent) -> Result<Self, HandlerError> {
        let payload = P::__resolve(&event)?;
        Ok(EventHandle::from_parts(event.into_inner(), payload))
    }

    // A handle without a view is of its event's own payload type, and an event created as a
    // typed `P` has `P`'s kind (a dynamic event's own payload is a `DynEvent`). The type
    // comparison folds to a constant.
    #[inline]
    fn __typed_check(&self) -> bool {
        std::any::TypeId::of::<P>() != std::any::TypeId::of::<crate::event::DynEvent>()
            && self.has_own_payload()
    }
}

/// A sync handler's outcome, marked as checked when it passes the event's result check as it
/// is: the event's check is the typed one for `T` (`typed_check`), `T` cannot nest, and the
/// value is stored as a `T`. The check then returns at once, so the call to it is skipped (all
/// but the variant test folds to constants for the usual scalar result types).
#[inline(always)]
fn checked_outcome<T: 'static>(
    typed_check: bool,
    outcome: Result<ResultSlot, HandlerError>,
) -> HandlerCall {
    if crate::result::scalar::is_flat::<T>()
        && typed_check
        && matches!(&outcome, Ok(slot) if slot.holds::<T>())
    {
        HandlerCall::Checked(outcome)
    } else {
        HandlerCall::Ready(outcome)
    }
}

impl sealed::Sealed for AnyEvent {}
impl HandlerInput for AnyEvent {
    type Output = Value;

    fn __pattern() -> &'static str {
        "*"
    }

    fn __extract(event: AnyEvent) -> Result<Self, HandlerError> {
        Ok(event)
    }
}

pub(crate) fn input_pattern<I: HandlerInput>() -> &'static str {
    I::__pattern()
}

/// The outcome of one handler call, ready to be recorded. Produced by [`HandlerOutput`].
pub struct HandlerOutcome(pub(crate) Result<ResultSlot, HandlerError>);

impl fmt::Debug for HandlerOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandlerOutcome")
    }
}

/// What a handler may return for result type `T`: `T` itself, or `Result<T, E>` for any error
/// type `E` (`std::error::Error`, `anyhow::Error`, [`HandlerError`], …).
///
/// Handlers taking [`AnyEvent`] return JSON, `()`, or a forwarded event (the result of
/// [`EventBus::dispatch`](crate::EventBus::dispatch) on another bus).
///
/// The bound is what makes the compiler reject a handler whose return type is not the event's
/// result type.
#[diagnostic::on_unimplemented(
    message = "handler returns `{Self}`, but the event's handlers must return `{T}`",
    label = "the handler's return type does not match the event's result type",
    note = "a handler of an event with `#[event(result = T)]` returns `T` or `Result<T, E>`"
)]
pub trait HandlerOutput<T> {
    #[doc(hidden)]
    fn __into_outcome(self) -> HandlerOutcome;
}

impl<T: EventResultValue> HandlerOutput<T> for T {
    fn __into_outcome(self) -> HandlerOutcome {
        HandlerOutcome(Ok(ResultSlot::from_value(self)))
    }
}

impl<T: EventResultValue, E: Into<BoxError> + 'static> HandlerOutput<T> for Result<T, E> {
    fn __into_outcome(self) -> HandlerOutcome {
        HandlerOutcome(match self {
            Ok(value) => Ok(ResultSlot::from_value(value)),
            Err(err) => Err(HandlerError::from_error(err)),
        })
    }
}

impl HandlerOutput<Value> for () {
    fn __into_outcome(self) -> HandlerOutcome {
        HandlerOutcome(Ok(ResultSlot::Null))
    }
}

impl<E: Into<BoxError> + 'static> HandlerOutput<Value> for Result<(), E> {
    fn __into_outcome(self) -> HandlerOutcome {
        HandlerOutcome(
            self.map(|()| ResultSlot::Null)
                .map_err(HandlerError::from_error),
        )
    }
}

fn forwarded(event: &AnyEvent) -> ResultSlot {
    ResultSlot::Forwarded {
        event_id: event.event_id(),
        event: Box::new(Arc::downgrade(event.inner())),
    }
}

impl HandlerOutput<Value> for AnyEvent {
    fn __into_outcome(self) -> HandlerOutcome {
        HandlerOutcome(Ok(forwarded(&self)))
    }
}

impl<E: Into<BoxError> + 'static> HandlerOutput<Value> for Result<AnyEvent, E> {
    fn __into_outcome(self) -> HandlerOutcome {
        HandlerOutcome(match self {
            Ok(event) => Ok(forwarded(&event)),
            Err(err) => Err(HandlerError::from_error(err)),
        })
    }
}

/// Anything that can be registered as a handler for input `I`: `Fn(I) -> R` (sync), `Fn(I) -> Fut`
/// (async), or a [`Method`] of a shared service. `M` is an inference marker; never name it.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid event handler",
    label = "not a handler: check its argument and return types",
    note = "a handler takes `EventHandle<E>` (or `AnyEvent`) and returns the event's result type `E::Result` or `Result<E::Result, Err>`, directly (sync) or from a future (async); it must be `Send + Sync + 'static`"
)]
pub trait IntoHandler<I, M>: Send + Sync + 'static {
    #[doc(hidden)]
    fn __into_handler_fn(self) -> HandlerFn;

    #[doc(hidden)]
    fn __handler_name(&self) -> Cow<'static, str> {
        handler_name_of::<Self>()
    }

    /// For forwarding handlers: the id and label of the bus they forward to.
    #[doc(hidden)]
    fn __forward_target(&self) -> Option<(uuid::Uuid, Arc<str>)> {
        None
    }
}

#[doc(hidden)]
#[derive(Debug)]
pub struct SyncMarker;
#[doc(hidden)]
#[derive(Debug)]
pub struct AsyncMarker;

struct SyncFn<F, I, R> {
    f: F,
    _types: PhantomData<fn(I) -> R>,
}

impl<F, I, R> ErasedHandler for SyncFn<F, I, R>
where
    F: Fn(I) -> R + Send + Sync + 'static,
    I: HandlerInput,
    R: HandlerOutput<I::Output> + 'static,
{
    fn call(&self, event: AnyEvent) -> HandlerCall {
        match I::__extract(event) {
            Ok(input) => {
                let typed_check = input.__typed_check();
                checked_outcome::<I::Output>(typed_check, (self.f)(input).__into_outcome().0)
            }
            Err(err) => HandlerCall::Ready(Err(err)),
        }
    }
}

struct AsyncFn<F, I, Fut> {
    f: F,
    _types: PhantomData<fn(I) -> Fut>,
}

impl<F, I, Fut> ErasedHandler for AsyncFn<F, I, Fut>
where
    F: Fn(I) -> Fut + Send + Sync + 'static,
    I: HandlerInput,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput<I::Output>,
{
    fn call(&self, event: AnyEvent) -> HandlerCall {
        match I::__extract(event) {
            Ok(input) => {
                let fut = (self.f)(input);
                HandlerCall::Pending(Box::pin(async move { fut.await.__into_outcome().0 }))
            }
            Err(err) => HandlerCall::Ready(Err(err)),
        }
    }
}

impl<F, I, R> IntoHandler<I, (SyncMarker, R)> for F
where
    F: Fn(I) -> R + Send + Sync + 'static,
    I: HandlerInput,
    R: HandlerOutput<I::Output> + 'static,
{
    fn __into_handler_fn(self) -> HandlerFn {
        HandlerFn(Box::new(SyncFn {
            f: self,
            _types: PhantomData,
        }))
    }
}

impl<F, I, Fut> IntoHandler<I, (AsyncMarker, Fut)> for F
where
    F: Fn(I) -> Fut + Send + Sync + 'static,
    I: HandlerInput,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput<I::Output>,
{
    fn __into_handler_fn(self) -> HandlerFn {
        HandlerFn(Box::new(AsyncFn {
            f: self,
            _types: PhantomData,
        }))
    }
}

/// A method of a shared service (`Arc<S>`) as a handler: see [`method`].
pub struct Method<S, F> {
    service: Arc<S>,
    f: F,
}

impl<S, F> fmt::Debug for Method<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Method")
            .field("method", &std::any::type_name::<F>())
            .finish()
    }
}

/// Registers a method of a shared service as a handler; the handler name is the method's path
/// (`my_crate::AuthService::login`).
///
/// ```
/// use std::sync::Arc;
/// use bubus::{Event, EventBus, EventHandle, handler::method};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// #[event(result = String)]
/// struct Greet { name: String }
///
/// struct Greeter { greeting: String }
///
/// impl Greeter {
///     async fn greet(self: Arc<Self>, event: EventHandle<Greet>) -> String {
///         format!("{}, {}!", self.greeting, event.name)
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let bus = EventBus::new("Greetings");
/// let greeter = Arc::new(Greeter { greeting: "Hello".into() });
/// let handler = bus.on(method(&greeter, Greeter::greet));
/// assert!(handler.handler_name().ends_with("Greeter::greet"));
///
/// let event = bus.dispatch(Greet { name: "Ada".into() })?;
/// assert_eq!(event.event_result().await?, "Hello, Ada!");
/// # Ok(()) }
/// ```
pub fn method<S, F>(service: &Arc<S>, f: F) -> Method<S, F> {
    Method {
        service: Arc::clone(service),
        f,
    }
}

struct SyncMethod<S, F, I, R> {
    service: Arc<S>,
    f: F,
    _types: PhantomData<fn(I) -> R>,
}

impl<S, F, I, R> ErasedHandler for SyncMethod<S, F, I, R>
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, I) -> R + Send + Sync + 'static,
    I: HandlerInput,
    R: HandlerOutput<I::Output> + 'static,
{
    fn call(&self, event: AnyEvent) -> HandlerCall {
        match I::__extract(event) {
            Ok(input) => {
                let typed_check = input.__typed_check();
                checked_outcome::<I::Output>(
                    typed_check,
                    (self.f)(Arc::clone(&self.service), input)
                        .__into_outcome()
                        .0,
                )
            }
            Err(err) => HandlerCall::Ready(Err(err)),
        }
    }
}

struct AsyncMethod<S, F, I, Fut> {
    service: Arc<S>,
    f: F,
    _types: PhantomData<fn(I) -> Fut>,
}

impl<S, F, I, Fut> ErasedHandler for AsyncMethod<S, F, I, Fut>
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, I) -> Fut + Send + Sync + 'static,
    I: HandlerInput,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput<I::Output>,
{
    fn call(&self, event: AnyEvent) -> HandlerCall {
        match I::__extract(event) {
            Ok(input) => {
                let fut = (self.f)(Arc::clone(&self.service), input);
                HandlerCall::Pending(Box::pin(async move { fut.await.__into_outcome().0 }))
            }
            Err(err) => HandlerCall::Ready(Err(err)),
        }
    }
}

impl<S, F, I, R> IntoHandler<I, (SyncMarker, SyncMarker, R)> for Method<S, F>
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, I) -> R + Send + Sync + 'static,
    I: HandlerInput,
    R: HandlerOutput<I::Output> + 'static,
{
    fn __into_handler_fn(self) -> HandlerFn {
        HandlerFn(Box::new(SyncMethod {
            service: self.service,
            f: self.f,
            _types: PhantomData,
        }))
    }

    fn __handler_name(&self) -> Cow<'static, str> {
        handler_name_of::<F>()
    }
}

impl<S, F, I, Fut> IntoHandler<I, (AsyncMarker, AsyncMarker, Fut)> for Method<S, F>
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, I) -> Fut + Send + Sync + 'static,
    I: HandlerInput,
    Fut: Future + Send + 'static,
    Fut::Output: HandlerOutput<I::Output>,
{
    fn __into_handler_fn(self) -> HandlerFn {
        HandlerFn(Box::new(AsyncMethod {
            service: self.service,
            f: self.f,
            _types: PhantomData,
        }))
    }

    fn __handler_name(&self) -> Cow<'static, str> {
        handler_name_of::<F>()
    }
}
