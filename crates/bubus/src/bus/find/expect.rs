//! [`Expect`]: `find` for a future event that fails instead of resolving to nothing.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::time::Duration;

use serde_json::Value;

use super::FindQuery;
use crate::error::WaitError;
use crate::event::AnyEvent;
use crate::handler::HandlerInput;

/// Waits for the next matching event dispatched on a bus — the seed API's `expect`. Built with
/// [`EventBus::expect`](crate::EventBus::expect); `.await` it.
///
/// Unlike [`FindQuery`] it fails instead of returning nothing: with [`WaitError::Timeout`] when
/// the timeout elapses, [`WaitError::Stopped`] when the bus stops.
///
/// ```
/// use std::time::Duration;
/// use bubus::{Event, EventBus};
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Clone, Debug, Serialize, Deserialize, Event)]
/// struct AuthResponse { user: String, ok: bool }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::Error> {
/// let bus = EventBus::new("Auth");
/// let expect = bus
///     .expect::<AuthResponse>()
///     .include(|e| e.user == "alice")
///     .exclude(|e| !e.ok)
///     .timeout(Duration::from_secs(5));
/// let (response, _) = tokio::join!(expect.into_future(), async {
///     bus.dispatch(AuthResponse { user: "alice".into(), ok: true })
/// });
/// assert!(response?.ok);
/// # Ok(()) }
/// ```
#[must_use = "an expect does nothing until awaited"]
pub struct Expect<T> {
    query: FindQuery<T>,
    timeout: Option<Duration>,
}

impl<T> fmt::Debug for Expect<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expect")
            .field("query", &self.query)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl<T: HandlerInput + Clone + Sync> Expect<T> {
    pub(crate) fn new(query: FindQuery<T>) -> Self {
        Expect {
            query: query.no_past().future(),
            timeout: None,
        }
    }

    /// Only events the predicate accepts (several calls must all accept).
    pub fn include(mut self, predicate: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.query = self.query.matching(predicate);
        self
    }

    /// Never events the predicate accepts (overrides `include`).
    pub fn exclude(mut self, predicate: impl Fn(&T) -> bool + Send + Sync + 'static) -> Self {
        self.query = self.query.matching(move |event| !predicate(event));
        self
    }

    /// Only events descending from `ancestor`.
    pub fn child_of(mut self, ancestor: impl AsRef<AnyEvent>) -> Self {
        self.query = self.query.child_of(ancestor);
        self
    }

    /// Only events whose field `name` equals `value` (see [`FindQuery::field`]).
    pub fn field(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.query = self.query.field(name, value);
        self
    }

    /// Also accept a matching event already in the history (the most recent one); by default
    /// only a future dispatch matches.
    pub fn past(mut self) -> Self {
        self.query = self.query.past();
        self
    }

    /// Give up after `timeout` with [`WaitError::Timeout`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self.query = self.query.future_within(timeout);
        self
    }
}

impl<T: HandlerInput + Clone + Sync> IntoFuture for Expect<T> {
    type Output = Result<T, WaitError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<T, WaitError>> + Send>>;

    /// Registers the waiter now, like [`FindQuery`]'s `into_future`.
    fn into_future(self) -> Self::IntoFuture {
        let bus = self.query.bus.clone();
        let what = self.query.pattern.to_string();
        let timeout = self.timeout;
        let find = self.query.start();
        Box::pin(async move {
            match find.await {
                Some(found) => Ok(found),
                None if bus.is_stopped() => Err(WaitError::Stopped {
                    bus: bus.label().to_owned(),
                }),
                None => Err(WaitError::Timeout {
                    event: what,
                    timeout: timeout.unwrap_or_default(),
                }),
            }
        })
    }
}
