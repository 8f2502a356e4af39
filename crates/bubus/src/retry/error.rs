//! [`RetryError`]: why a retried call gave up, and how it is recorded on a handler's result.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{HandlerError, HandlerErrorKind};
use crate::umbrella::Error;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a call run through a [`Retry`](super::Retry) policy did not return a value.
///
/// `E` is the error type of the wrapped function. The variants other than
/// [`Failed`](RetryError::Failed) are the policy's own failures (timeouts, semaphores).
///
/// It converts into the crate's root [`Error`](crate::Error) for any `E` that a handler could
/// return (the inner error becomes a [`HandlerError`]), so `?` works in functions returning
/// `bubus::Error`.
///
/// ```
/// use bubus::retry::{Retry, RetryError};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let policy = Retry::new().max_attempts(2);
/// let err = policy
///     .run(|| async { Err::<(), _>(std::io::Error::other("disk on fire")) })
///     .await
///     .unwrap_err();
/// assert_eq!(err.attempts(), 2);
/// assert_eq!(err.to_string(), "failed after 2 attempts: disk on fire");
/// assert!(matches!(err, RetryError::Failed { .. }));
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RetryError<E = HandlerError> {
    /// The function failed and was not tried again: its attempts ran out, or the error is not
    /// one the policy retries. Carries the last error.
    Failed {
        /// The error of the last attempt.
        error: E,
        /// How many attempts ran.
        attempts: u32,
    },
    /// The last attempt ran past the per-attempt timeout and was cancelled.
    AttemptTimeout {
        /// How many attempts ran (the last one timed out).
        attempts: u32,
        /// The per-attempt timeout.
        timeout: Duration,
    },
    /// No semaphore slot became free within the semaphore timeout, and the policy is not lax.
    SemaphoreTimeout {
        /// The semaphore, as `name`, `Type.name`, `Type@address.name` or `name (multiprocess)`.
        semaphore: String,
        /// Its limit.
        limit: usize,
        /// How long the call waited.
        timeout: Duration,
    },
    /// The semaphore is already in use with another limit. Two callers sharing a name must agree
    /// on the limit; silently using either one would break the other's guarantee.
    LimitMismatch {
        /// The semaphore.
        semaphore: String,
        /// The limit this call asked for.
        limit: usize,
        /// The limit it is in use with.
        existing: usize,
    },
    /// A cross-process semaphore could not use its slot files, and the policy is not lax.
    SemaphoreIo {
        /// The semaphore.
        semaphore: String,
        /// The directory holding its slot files.
        dir: PathBuf,
        /// What went wrong.
        source: Arc<std::io::Error>,
    },
}

impl<E> RetryError<E> {
    /// How many attempts ran (0 when the call never started: a semaphore failure).
    pub fn attempts(&self) -> u32 {
        match self {
            RetryError::Failed { attempts, .. } | RetryError::AttemptTimeout { attempts, .. } => {
                *attempts
            }
            _ => 0,
        }
    }

    /// The wrapped function's last error, if that is why the call gave up.
    pub fn inner(&self) -> Option<&E> {
        match self {
            RetryError::Failed { error, .. } => Some(error),
            _ => None,
        }
    }

    /// The wrapped function's last error, if that is why the call gave up.
    pub fn into_inner(self) -> Option<E> {
        match self {
            RetryError::Failed { error, .. } => Some(error),
            _ => None,
        }
    }

    /// Whether the last attempt timed out.
    pub fn is_attempt_timeout(&self) -> bool {
        matches!(self, RetryError::AttemptTimeout { .. })
    }

    /// Whether no semaphore slot became free in time.
    pub fn is_semaphore_timeout(&self) -> bool {
        matches!(self, RetryError::SemaphoreTimeout { .. })
    }

    /// Converts the wrapped function's error, keeping everything else.
    pub fn map_inner<F>(self, f: impl FnOnce(E) -> F) -> RetryError<F> {
        match self {
            RetryError::Failed { error, attempts } => RetryError::Failed {
                error: f(error),
                attempts,
            },
            RetryError::AttemptTimeout { attempts, timeout } => {
                RetryError::AttemptTimeout { attempts, timeout }
            }
            RetryError::SemaphoreTimeout {
                semaphore,
                limit,
                timeout,
            } => RetryError::SemaphoreTimeout {
                semaphore,
                limit,
                timeout,
            },
            RetryError::LimitMismatch {
                semaphore,
                limit,
                existing,
            } => RetryError::LimitMismatch {
                semaphore,
                limit,
                existing,
            },
            RetryError::SemaphoreIo {
                semaphore,
                dir,
                source,
            } => RetryError::SemaphoreIo {
                semaphore,
                dir,
                source,
            },
        }
    }

    /// What a retried handler records on its result: the function's own last error unchanged
    /// (type name, message and source, as the other runtimes re-raise it), a timed-out last
    /// attempt as an `EventHandlerTimeoutError`, and the semaphore failures under the names the
    /// TypeScript runtime uses (`SemaphoreTimeoutError`, …).
    pub fn into_handler_error(self) -> HandlerError
    where
        E: Into<BoxError> + 'static,
    {
        match self {
            RetryError::Failed { error, .. } => HandlerError::from_error(error),
            other => {
                let message = Own(&other).to_string();
                match other {
                    RetryError::AttemptTimeout { .. } => HandlerError::with_kind(
                        HandlerErrorKind::Timeout,
                        format!("RetryTimeoutError: {message}"),
                    ),
                    RetryError::SemaphoreTimeout { .. } => {
                        HandlerError::new("SemaphoreTimeoutError", message)
                    }
                    RetryError::LimitMismatch { .. } => {
                        HandlerError::new("SemaphoreLimitMismatchError", message)
                    }
                    _ => HandlerError::new("SemaphoreIoError", message),
                }
            }
        }
    }
}

/// The message of the policy's own failures (every variant but `Failed`), which needs no
/// `E: Display`.
struct Own<'a, E>(&'a RetryError<E>);

impl<E> fmt::Display for Own<'_, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            RetryError::Failed { attempts, .. } => {
                write!(f, "failed after {attempts} attempt{}", plural(*attempts))
            }
            RetryError::AttemptTimeout { attempts, timeout } => write!(
                f,
                "attempt {attempts} timed out after {timeout:?} (per-attempt timeout)"
            ),
            RetryError::SemaphoreTimeout {
                semaphore,
                limit,
                timeout,
            } => write!(
                f,
                "failed to acquire semaphore \"{semaphore}\" within {timeout:?} (limit={limit})"
            ),
            RetryError::LimitMismatch {
                semaphore,
                limit,
                existing,
            } => write!(
                f,
                "semaphore \"{semaphore}\" is in use with limit {existing}, but this call asked \
                 for limit {limit}; callers sharing a semaphore name must use the same limit"
            ),
            RetryError::SemaphoreIo {
                semaphore,
                dir,
                source,
            } => write!(
                f,
                "cross-process semaphore \"{semaphore}\" cannot use its lock files in {}: {source}",
                dir.display()
            ),
        }
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

// The cause's message is part of the message (so a log line says what went wrong), and `source`
// continues with the cause's own source, so no message is reported twice in an error chain.
impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryError::Failed { error, .. } => write!(f, "{}: {error}", Own(self)),
            _ => Own(self).fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for RetryError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RetryError::Failed { error, .. } => error.source(),
            RetryError::SemaphoreIo { source, .. } => source.source(),
            _ => None,
        }
    }
}

/// `?` from a retried call into the crate's root error. The wrapped function's error is kept as
/// a [`HandlerError`] (type name, message and source).
impl<E> From<RetryError<E>> for Error
where
    E: Into<BoxError> + 'static,
{
    fn from(err: RetryError<E>) -> Self {
        Error::Retry(err.map_inner(HandlerError::from_error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection refused")]
    struct ConnectionError;

    #[test]
    fn handler_errors_keep_the_inner_error_type() {
        let err = RetryError::Failed {
            error: ConnectionError,
            attempts: 3,
        };
        let recorded = err.into_handler_error();
        assert_eq!(recorded.error_type(), "ConnectionError");
        assert_eq!(recorded.message(), "connection refused");

        let timeout = RetryError::<ConnectionError>::AttemptTimeout {
            attempts: 2,
            timeout: Duration::from_millis(50),
        };
        let recorded = timeout.into_handler_error();
        assert!(recorded.is_timeout());
        assert!(
            recorded
                .message()
                .starts_with("RetryTimeoutError: attempt 2")
        );

        let sem = RetryError::<ConnectionError>::SemaphoreTimeout {
            semaphore: "db".into(),
            limit: 1,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(
            sem.into_handler_error().error_type(),
            "SemaphoreTimeoutError"
        );
    }

    #[test]
    fn converts_into_the_root_error() {
        let err: Error = RetryError::Failed {
            error: ConnectionError,
            attempts: 1,
        }
        .into();
        assert_eq!(
            err.to_string(),
            "failed after 1 attempt: ConnectionError: connection refused"
        );
        let Error::Retry(inner) = err else {
            panic!("expected Error::Retry");
        };
        assert_eq!(
            inner.inner().map(HandlerError::error_type),
            Some("ConnectionError")
        );
    }
}
