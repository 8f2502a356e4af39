//! Retried handlers: [`Retry::handler`] and [`Retry::method`] wrap a handler so it can be passed
//! to [`EventBus::on`](crate::EventBus::on).

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::registry::Receiver;
use super::{Retry, RetryError};
use crate::error::HandlerError;
use crate::handler::{HandlerFn, HandlerInput, HandlerOutput, IntoHandler, Method, method};

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A handler run through a [`Retry`] policy: see [`Retry::handler`].
///
/// Its handler name is the wrapped function's, so handler ids and logs are the same as without
/// the wrapper.
pub struct RetryHandler<F> {
    policy: Retry,
    f: F,
}

/// A method of a shared service run through a [`Retry`] policy, with the service as the
/// receiver of the per-type and per-instance scopes: see [`Retry::method`].
pub struct RetryMethod<S, F> {
    policy: Retry,
    service: Arc<S>,
    f: F,
}

impl<F> fmt::Debug for RetryHandler<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryHandler")
            .field("handler", &std::any::type_name::<F>())
            .field("policy", &self.policy)
            .finish()
    }
}

impl<S, F> fmt::Debug for RetryMethod<S, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryMethod")
            .field("method", &std::any::type_name::<F>())
            .field("policy", &self.policy)
            .finish()
    }
}

/// Inference marker of the retried handlers' [`IntoHandler`] implementations; never name it.
#[doc(hidden)]
#[derive(Debug)]
pub struct RetryMarker;

impl Retry {
    /// Wraps an async handler so each call runs through this policy; pass the result to
    /// [`EventBus::on`](crate::EventBus::on) (or `on_pattern`, `on_with`).
    ///
    /// The handler returns `Result<T, E>`. What it records on its
    /// [`EventResult`](crate::EventResult): the value of the attempt that succeeded, else the last
    /// error as the handler returned it (type name, message and source), a timed-out last
    /// attempt as an `EventHandlerTimeoutError`, or the semaphore failure
    /// ([`RetryError::into_handler_error`]).
    ///
    /// Per-type and per-instance scopes have no receiver here and fall back to the global
    /// semaphore of the policy's name; use [`Retry::method`] for those.
    ///
    /// The bus's own handler and event timeouts bound the whole retried call: attempts, waits
    /// and semaphore wait together.
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use bubus::{Event, EventBus, EventHandle};
    /// use bubus::retry::Retry;
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
    /// #[event(result = String)]
    /// struct FetchEvent { url: String }
    ///
    /// static CALLS: AtomicU32 = AtomicU32::new(0);
    ///
    /// async fn fetch(event: EventHandle<FetchEvent>) -> Result<String, std::io::Error> {
    ///     if CALLS.fetch_add(1, Ordering::SeqCst) < 2 {
    ///         return Err(std::io::Error::other("connection reset"));
    ///     }
    ///     Ok(format!("body of {}", event.url))
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() -> Result<(), bubus::Error> {
    /// let bus = EventBus::new("AppBus");
    /// let policy = Retry::new().retries(3).retry_after(Duration::from_millis(100));
    /// let handler = bus.on(policy.handler(fetch));
    /// assert!(handler.handler_name().ends_with("fetch"));
    ///
    /// let event = bus.dispatch(FetchEvent { url: "https://example.com".into() })?;
    /// assert_eq!(event.event_result().await?, "body of https://example.com");
    /// assert_eq!(CALLS.load(Ordering::SeqCst), 3);
    /// # Ok(()) }
    /// ```
    pub fn handler<I, F, Fut, R, E>(&self, f: F) -> RetryHandler<F>
    where
        I: HandlerInput + Clone + Sync,
        F: Fn(I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: Send + 'static,
        E: Into<BoxError> + fmt::Display + Send + 'static,
        Result<R, HandlerError>: HandlerOutput<I::Output>,
    {
        RetryHandler {
            policy: self.clone(),
            f,
        }
    }

    /// Wraps an async method of a shared service
    /// (`async fn m(self: Arc<Self>, event) -> Result<T, E>`) like
    /// [`handler::method`](crate::handler::method) does, with each call run through this policy
    /// and the service as the receiver of the [`Type`] and [`Instance`] scopes.
    ///
    /// [`Type`]: crate::retry::SemaphoreScope::Type
    /// [`Instance`]: crate::retry::SemaphoreScope::Instance
    ///
    /// ```
    /// use std::sync::Arc;
    /// use bubus::{Event, EventBus, EventHandle};
    /// use bubus::retry::{Retry, SemaphoreScope};
    /// use serde::{Deserialize, Serialize};
    ///
    /// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
    /// #[event(result = u64)]
    /// struct CountRows { table: String }
    ///
    /// struct Database;
    ///
    /// impl Database {
    ///     async fn count_rows(
    ///         self: Arc<Self>,
    ///         event: EventHandle<CountRows>,
    ///     ) -> Result<u64, std::io::Error> {
    ///         Ok(event.table.len() as u64)
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), bubus::Error> {
    /// let bus = EventBus::new("Db");
    /// let policy = Retry::new()
    ///     .retries(2)
    ///     .semaphore_limit(4)
    ///     .semaphore_scope(SemaphoreScope::Type); // every Database shares 4 slots
    /// bus.on(policy.method(&Arc::new(Database), Database::count_rows));
    /// let event = bus.dispatch(CountRows { table: "users".into() })?;
    /// assert_eq!(event.event_result().await?, 5);
    /// # Ok(()) }
    /// ```
    pub fn method<S, I, F, Fut, R, E>(&self, service: &Arc<S>, f: F) -> RetryMethod<S, F>
    where
        S: Send + Sync + 'static,
        I: HandlerInput + Clone + Sync,
        F: Fn(Arc<S>, I) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
        R: Send + 'static,
        E: Into<BoxError> + fmt::Display + Send + 'static,
        Result<R, HandlerError>: HandlerOutput<I::Output>,
    {
        RetryMethod {
            policy: self.clone(),
            service: Arc::clone(service),
            f,
        }
    }
}

// Kept out of the compiler's suggestions for handlers that do not type-check.
#[diagnostic::do_not_recommend]
impl<I, F, Fut, R, E, M> IntoHandler<I, (RetryMarker, M)> for RetryHandler<F>
where
    I: HandlerInput + Clone + Sync,
    F: Fn(I) -> Fut + IntoHandler<I, M> + Send + Sync + 'static,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    R: Send + 'static,
    E: Into<BoxError> + fmt::Display + Send + 'static,
    Result<R, HandlerError>: HandlerOutput<I::Output>,
{
    fn __into_handler_fn(self) -> HandlerFn {
        let name: Arc<str> = Arc::from(<F as IntoHandler<I, M>>::__handler_name(&self.f).as_ref());
        let RetryHandler { policy, f } = self;
        let f = Arc::new(f);
        let wrapped = move |input: I| {
            let policy = policy.clone();
            let f = Arc::clone(&f);
            let name = Arc::clone(&name);
            async move {
                policy
                    .execute(None, &name, || f(input.clone()))
                    .await
                    .map_err(RetryError::into_handler_error)
            }
        };
        wrapped.__into_handler_fn()
    }

    fn __handler_name(&self) -> Cow<'static, str> {
        <F as IntoHandler<I, M>>::__handler_name(&self.f)
    }
}

#[diagnostic::do_not_recommend]
impl<S, I, F, Fut, R, E, M> IntoHandler<I, (RetryMarker, M)> for RetryMethod<S, F>
where
    S: Send + Sync + 'static,
    I: HandlerInput + Clone + Sync,
    F: Fn(Arc<S>, I) -> Fut + Clone + Send + Sync + 'static,
    Method<S, F>: IntoHandler<I, M>,
    Fut: Future<Output = Result<R, E>> + Send + 'static,
    R: Send + 'static,
    E: Into<BoxError> + fmt::Display + Send + 'static,
    Result<R, HandlerError>: HandlerOutput<I::Output>,
{
    fn __into_handler_fn(self) -> HandlerFn {
        let name: Arc<str> =
            Arc::from(<Self as IntoHandler<I, (RetryMarker, M)>>::__handler_name(&self).as_ref());
        let RetryMethod { policy, service, f } = self;
        let wrapped = move |input: I| {
            let policy = policy.clone();
            let service = Arc::clone(&service);
            let f = f.clone();
            let name = Arc::clone(&name);
            async move {
                let receiver = Receiver::of::<S>(&service);
                policy
                    .execute(Some(receiver), &name, || {
                        f(Arc::clone(&service), input.clone())
                    })
                    .await
                    .map_err(RetryError::into_handler_error)
            }
        };
        wrapped.__into_handler_fn()
    }

    fn __handler_name(&self) -> Cow<'static, str> {
        <Method<S, F> as IntoHandler<I, M>>::__handler_name(&method(&self.service, self.f.clone()))
    }
}
