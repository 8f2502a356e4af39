//! Running a call under a policy: the semaphore slot, then the attempts with their timeouts and
//! waits.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use super::filter::{self, Outcome};
use super::registry::Receiver;
use super::semaphore::Guard;
use super::{Config, Retry, RetryError};

impl Retry {
    /// Runs `f` until it succeeds, under this policy.
    ///
    /// `f` is called once per attempt and returns the attempt's future. With a semaphore, the
    /// call first takes a slot, and holds it until it returns.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use bubus::retry::Retry;
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// let policy = Retry::new().max_attempts(3).retry_after(Duration::from_millis(10));
    /// let mut attempts = 0;
    /// let value = policy
    ///     .run(|| {
    ///         attempts += 1;
    ///         let n = attempts;
    ///         async move { if n < 3 { Err("not yet") } else { Ok(n) } }
    ///     })
    ///     .await;
    /// assert_eq!(value.ok(), Some(3));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// * [`RetryError::Failed`] with the last error, when attempts ran out or an error is not
    ///   one the policy retries;
    /// * [`RetryError::AttemptTimeout`] when the last attempt timed out;
    /// * [`RetryError::SemaphoreTimeout`] (strict policies), [`RetryError::LimitMismatch`] and
    ///   [`RetryError::SemaphoreIo`] (strict cross-process policies) when no slot was taken; then
    ///   `f` was never called.
    ///
    /// # Panics
    ///
    /// Like any tokio timer, if the policy has a per-attempt timeout, a wait between attempts or
    /// a semaphore timeout and the call runs outside a tokio runtime with the time driver
    /// enabled.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future cancels the running attempt (its future is dropped), stops waiting,
    /// and gives back the semaphore slot at once. Nothing is left behind.
    pub async fn run<F, Fut, T, E>(&self, f: F) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display + 'static,
    {
        self.execute(None, &self.cfg.default_name, f).await
    }

    /// Like [`run`](Retry::run), for a call on `receiver`: the receiver of the [`Type`] scope
    /// (its type) and of the [`Instance`] scope (the receiver itself). Other scopes ignore it.
    ///
    /// [`Type`]: crate::retry::SemaphoreScope::Type
    /// [`Instance`]: crate::retry::SemaphoreScope::Instance
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use bubus::retry::{Retry, RetryError, SemaphoreScope};
    ///
    /// struct Client { policy: Retry }
    ///
    /// impl Client {
    ///     async fn get(&self, path: &str) -> Result<String, RetryError<std::io::Error>> {
    ///         // At most 2 requests at once per client.
    ///         self.policy.run_on(self, || async move { Ok(format!("GET {path}")) }).await
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let policy = Retry::new()
    ///     .retries(2)
    ///     .semaphore_limit(2)
    ///     .semaphore_scope(SemaphoreScope::Instance);
    /// let client = Client { policy };
    /// assert_eq!(client.get("/").await.ok().as_deref(), Some("GET /"));
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`run`](Retry::run).
    ///
    /// # Panics
    ///
    /// As [`run`](Retry::run).
    ///
    /// # Cancel safety
    ///
    /// As [`run`](Retry::run): dropping the future cancels the attempt and frees the slot.
    pub fn run_on<'a, S, F, Fut, T, E>(
        &'a self,
        receiver: &'a S,
        f: F,
    ) -> impl Future<Output = Result<T, RetryError<E>>> + 'a
    where
        S: ?Sized + 'static,
        F: FnMut() -> Fut + 'a,
        Fut: Future<Output = Result<T, E>> + 'a,
        T: 'a,
        E: fmt::Display + 'static,
    {
        let target = Receiver::of(receiver);
        // The receiver stays borrowed while the call runs, so its address names only it; the
        // future needs neither `S: Sync` nor the receiver itself.
        let borrow: PhantomData<fn() -> &'a S> = PhantomData;
        async move {
            let _borrow = borrow;
            self.execute(Some(target), &self.cfg.default_name, f).await
        }
    }

    /// Takes a slot (if any), then runs the attempts with the slot marked as held.
    pub(super) async fn execute<F, Fut, T, E>(
        &self,
        receiver: Option<Receiver>,
        label: &str,
        f: F,
    ) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display + 'static,
    {
        let guard: Guard = self.acquire(receiver, label).await?;
        let result = match guard.held() {
            Some(held) => Guard::scope(held, self.attempts(label, f)).await,
            None => self.attempts(label, f).await,
        };
        drop(guard);
        result
    }

    async fn attempts<F, Fut, T, E>(&self, label: &str, mut f: F) -> Result<T, RetryError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: fmt::Display + 'static,
    {
        let cfg = &*self.cfg;
        let started = tokio::time::Instant::now();
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let failure = match cfg.timeout {
                Some(limit) => match tokio::time::timeout(limit, f()).await {
                    Ok(Ok(value)) => return Ok(value),
                    Ok(Err(err)) => Failure::Error(err),
                    Err(_elapsed) => Failure::Timeout(limit),
                },
                None => match f().await {
                    Ok(value) => return Ok(value),
                    Err(err) => Failure::Error(err),
                },
            };
            let retryable = {
                let outcome = match &failure {
                    Failure::Error(err) => Outcome::Error(err, std::any::type_name::<E>()),
                    Failure::Timeout(_) => Outcome::Timeout,
                };
                filter::should_retry(&cfg.matchers, &outcome, label)
            };
            let reason = match &failure {
                Failure::Error(err) => err.to_string(),
                Failure::Timeout(limit) => format!("timed out after {limit:?}"),
            };
            if !retryable || attempt >= cfg.max_attempts {
                if !retryable {
                    tracing::debug!(
                        target: "bubus::retry",
                        retry = label,
                        attempt,
                        error = %reason,
                        "error is not retried"
                    );
                } else if attempt > 1 {
                    tracing::warn!(
                        target: "bubus::retry",
                        retry = label,
                        attempts = attempt,
                        elapsed = ?started.elapsed(),
                        error = %reason,
                        "giving up after {attempt} attempts"
                    );
                }
                return Err(match failure {
                    Failure::Error(error) => RetryError::Failed {
                        error,
                        attempts: attempt,
                    },
                    Failure::Timeout(timeout) => RetryError::AttemptTimeout {
                        attempts: attempt,
                        timeout,
                    },
                });
            }
            drop(failure);
            let delay = cfg.delay_after(attempt);
            tracing::warn!(
                target: "bubus::retry",
                retry = label,
                attempt,
                max_attempts = cfg.max_attempts,
                delay = ?delay,
                error = %reason,
                "attempt {attempt}/{} failed; retrying",
                cfg.max_attempts
            );
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// How one attempt failed.
enum Failure<E> {
    Error(E),
    Timeout(Duration),
}

impl Config {
    /// The wait after attempt `failed` (1-based) failed.
    fn delay_after(&self, failed: u32) -> Duration {
        if self.retry_after.is_zero() {
            return Duration::ZERO;
        }
        let exponent = i32::try_from(failed.saturating_sub(1)).unwrap_or(i32::MAX);
        let mut secs = self.retry_after.as_secs_f64() * self.backoff_factor.powi(exponent);
        if self.jitter > 0.0 {
            secs *= 1.0 + self.jitter * (2.0 * fastrand::f64() - 1.0);
        }
        if let Some(max) = self.max_delay {
            secs = secs.min(max.as_secs_f64());
        }
        match Duration::try_from_secs_f64(secs) {
            Ok(delay) => delay,
            Err(_) if secs > 0.0 => self.max_delay.unwrap_or(Duration::MAX),
            Err(_) => Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let policy = Retry::new()
            .retry_after(Duration::from_millis(100))
            .backoff_factor(2.0)
            .max_delay(Duration::from_millis(500));
        let cfg = &*policy.cfg;
        let waits: Vec<_> = (1..=5).map(|k| cfg.delay_after(k)).collect();
        assert_eq!(
            waits,
            [100, 200, 400, 500, 500]
                .map(Duration::from_millis)
                .to_vec()
        );
        let huge = Retry::new()
            .retry_after(Duration::from_secs(1))
            .backoff_factor(1e300);
        assert_eq!(huge.cfg.delay_after(10), Duration::MAX);
        assert_eq!(Retry::new().cfg.delay_after(3), Duration::ZERO);
    }
}
