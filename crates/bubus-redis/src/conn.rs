//! Connections that heal: a reconnecting command connection, and retries with backoff for
//! commands that failed because the server went away.

use std::future::Future;
use std::time::{Duration, Instant};

use bubus::bridge::TransportError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisError, RetryMethod};

use bubus::bridge::Backoff;

/// A connection manager that connects on first use and reconnects (with backoff) after a
/// server restart or a cut connection; `response_timeout` bounds one command.
pub(crate) fn manager(
    client: &redis::Client,
    response_timeout: Option<Duration>,
) -> Result<ConnectionManager, TransportError> {
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(6)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_secs(2))
        .set_connection_timeout(Some(Duration::from_secs(5)))
        .set_response_timeout(response_timeout);
    ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|e| TransportError::other("Redis connection", e))
}

/// Whether trying again later can help (the connection broke, the server is loading its data).
pub(crate) fn transient(e: &RedisError) -> bool {
    !matches!(e.retry_method(), RetryMethod::NoRetry)
}

/// Runs `op` until it succeeds, fails for good, or `deadline_after` has passed, waiting with
/// backoff between tries.
pub(crate) async fn retry<T, F, Fut>(
    what: &str,
    deadline_after: Duration,
    mut op: F,
) -> Result<T, TransportError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RedisError>>,
{
    let deadline = Instant::now() + deadline_after;
    let mut backoff = Backoff::default();
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if transient(&e) && Instant::now() < deadline => {
                tracing::debug!(error = %e, "{what}: retrying");
                backoff.wait().await;
            }
            Err(e) => return Err(TransportError::other(what.to_owned(), e)),
        }
    }
}
