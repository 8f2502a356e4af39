//! Which failures a policy retries: error types (looked up through the error's source chain),
//! typed predicates, and per-attempt timeouts.

use std::any::{Any, TypeId};
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use crate::error::HandlerError;
use crate::umbrella::Error;

type DynError = dyn StdError + 'static;
type Predicate = dyn Fn(&dyn Any) -> Option<bool> + Send + Sync;

/// One entry of a policy's retry filter. An empty filter retries every failure.
#[derive(Clone)]
pub(super) enum Matcher {
    /// The error is, or was caused by, an error of one type.
    Type {
        name: &'static str,
        matches: fn(&DynError) -> bool,
        id: TypeId,
    },
    /// A predicate over the function's own error type; `None` when the type does not match.
    If {
        expects: &'static str,
        predicate: Arc<Predicate>,
    },
    /// A timed-out attempt.
    Timeout,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Matcher::Type { name, .. } => write!(f, "retry_on::<{name}>"),
            Matcher::If { expects, .. } => write!(f, "retry_if(&{expects})"),
            Matcher::Timeout => f.write_str("retry_on_timeout"),
        }
    }
}

impl Matcher {
    pub(super) fn of_type<X: StdError + 'static>() -> Self {
        Matcher::Type {
            name: std::any::type_name::<X>(),
            matches: |err| err.is::<X>(),
            id: TypeId::of::<X>(),
        }
    }

    pub(super) fn predicate<E: 'static>(f: impl Fn(&E) -> bool + Send + Sync + 'static) -> Self {
        Matcher::If {
            expects: std::any::type_name::<E>(),
            predicate: Arc::new(move |err: &dyn Any| err.downcast_ref::<E>().map(&f)),
        }
    }
}

/// What an attempt ended with, as the filter sees it.
pub(super) enum Outcome<'a> {
    Error(&'a (dyn Any + 'static), &'static str),
    Timeout,
}

/// Whether `outcome` should be retried under `matchers` (`label` names the call in logs).
pub(super) fn should_retry(matchers: &[Matcher], outcome: &Outcome<'_>, label: &str) -> bool {
    if matchers.is_empty() {
        return true;
    }
    matchers.iter().any(|m| match (m, outcome) {
        (Matcher::Timeout, Outcome::Timeout) => true,
        (Matcher::Type { matches, id, .. }, Outcome::Error(err, _)) => {
            (**err).type_id() == *id || chain_of(*err).is_some_and(|e| walk(e, *matches))
        }
        (Matcher::If { expects, predicate }, Outcome::Error(err, actual)) => predicate(*err)
            .unwrap_or_else(|| {
                tracing::warn!(
                    target: "bubus::retry",
                    retry = label,
                    expects = *expects,
                    actual = *actual,
                    "retry_if predicate takes another error type than the function returns; \
                     the error is not retried"
                );
                false
            }),
        _ => false,
    })
}

/// The error types whose source chain we can walk without knowing the function's error type:
/// the ones that carry other errors in this crate and in std.
fn chain_of<'a>(err: &'a (dyn Any + 'static)) -> Option<&'a DynError> {
    if let Some(e) = err.downcast_ref::<HandlerError>() {
        return Some(e);
    }
    if let Some(e) = err.downcast_ref::<Error>() {
        return Some(e);
    }
    if let Some(e) = err.downcast_ref::<Box<dyn StdError + Send + Sync + 'static>>() {
        return Some(&**e);
    }
    if let Some(e) = err.downcast_ref::<Box<dyn StdError + 'static>>() {
        return Some(&**e);
    }
    if let Some(e) = err.downcast_ref::<Arc<dyn StdError + Send + Sync + 'static>>() {
        return Some(&**e);
    }
    if let Some(e) = err.downcast_ref::<std::io::Error>() {
        return Some(e);
    }
    None
}

fn walk(mut err: &DynError, matches: fn(&DynError) -> bool) -> bool {
    // Bounded, in case a source chain loops.
    for _ in 0..64 {
        if matches(err) {
            return true;
        }
        // `io::Error` hides a custom inner error behind `get_ref`, not `source`.
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if matches(inner) {
                return true;
            }
        }
        match err.source() {
            Some(next) => err = next,
            None => return false,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("conn")]
    struct ConnectionError;

    #[derive(Debug, thiserror::Error)]
    #[error("wrapped")]
    struct Wrapper(#[source] ConnectionError);

    fn outcome<E: 'static>(e: &E) -> Outcome<'_> {
        Outcome::Error(e, std::any::type_name::<E>())
    }

    #[test]
    fn type_matchers_see_through_carriers() {
        let m = [Matcher::of_type::<ConnectionError>()];
        assert!(should_retry(&m, &outcome(&ConnectionError), "t"));
        let handler = HandlerError::from_error(Wrapper(ConnectionError));
        assert!(should_retry(&m, &outcome(&handler), "t"));
        let boxed: Box<dyn StdError + Send + Sync> = Box::new(Wrapper(ConnectionError));
        assert!(should_retry(&m, &outcome(&boxed), "t"));
        let io = std::io::Error::other(ConnectionError);
        assert!(should_retry(&m, &outcome(&io), "t"));
        assert!(!should_retry(&m, &outcome(&std::fmt::Error), "t"));
        assert!(!should_retry(&m, &Outcome::Timeout, "t"));
    }

    #[test]
    fn predicates_of_another_type_never_match() {
        let m = [Matcher::predicate(|_: &ConnectionError| true)];
        assert!(should_retry(&m, &outcome(&ConnectionError), "t"));
        assert!(!should_retry(&m, &outcome(&std::fmt::Error), "t"));
        assert!(should_retry(&[], &Outcome::Timeout, "t"));
        assert!(should_retry(&[Matcher::Timeout], &Outcome::Timeout, "t"));
    }
}
