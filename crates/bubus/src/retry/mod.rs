//! Retry with backoff, per-attempt timeouts and scoped semaphores, for any async function and
//! for event handlers.
//!
//! A [`Retry`] is a policy: how many attempts, how long each may take, how long to wait between
//! them, which errors are worth another try, and how many calls may run at once. Build it once,
//! then run calls through it:
//!
//! * [`Retry::run`] runs any async closure;
//! * [`Retry::run_on`] does the same for a method, with `self` as the receiver of the per-type
//!   and per-instance semaphore scopes;
//! * [`Retry::handler`] and [`Retry::method`] wrap an event handler for
//!   [`EventBus::on`](crate::EventBus::on).
//!
//! ```
//! use std::time::Duration;
//! use bubus::retry::{Retry, RetryError};
//!
//! #[derive(Debug, thiserror::Error)]
//! #[error("connection refused")]
//! struct ConnectionError;
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let policy = Retry::new()
//!     .retries(3)                                 // up to 4 attempts in all
//!     .timeout(Duration::from_secs(5))            // each attempt
//!     .retry_after(Duration::from_secs(1))        // wait 1 s, 2 s, 4 s between them
//!     .backoff_factor(2.0)
//!     .retry_on::<ConnectionError>()              // other errors fail at once
//!     .semaphore_limit(10)                        // at most 10 calls at once
//!     .semaphore_name("database");
//!
//! let mut failures = 2;
//! let rows = policy
//!     .run(|| {
//!         let fail = failures > 0;
//!         failures -= 1;
//!         async move { if fail { Err(ConnectionError) } else { Ok(42) } }
//!     })
//!     .await;
//! assert_eq!(rows.ok(), Some(42));
//! # }
//! ```
//!
//! # Attempts and waits
//!
//! The first attempt runs at once. After attempt `k` fails, the next one starts after
//! `retry_after × backoff_factor^(k−1)`, capped by [`max_delay`](Retry::max_delay) and spread by
//! [`jitter`](Retry::jitter). A timed-out attempt is cancelled (its future is dropped) and
//! counts as a failure. Each retry is logged at `WARN` through `tracing` (target
//! `bubus::retry`), and so is giving up after retries.
//!
//! With no filter every failure is retried. [`retry_on`](Retry::retry_on),
//! [`retry_if`](Retry::retry_if) and [`retry_on_timeout`](Retry::retry_on_timeout) build a filter:
//! then only matching failures are retried and any other ends the call at once.
//!
//! # Semaphores
//!
//! With a [`semaphore_limit`](Retry::semaphore_limit), a call takes a slot before its first
//! attempt and keeps it through every attempt and wait. Calls share a semaphore when they use the
//! same [scope](SemaphoreScope) and [name](Retry::semaphore_name) — so several functions can
//! share one limit by naming it. The name defaults to the place in the code where the policy was
//! built (`file:line:column`): every call through a policy, its clones, or another policy built
//! by the same line of code (in a loop, or a helper function) shares one semaphore, as calls of
//! one decorated function do in the reference; policies built elsewhere do not.
//!
//! * If no slot frees up within the [semaphore timeout](Retry::semaphore_timeout), a strict
//!   policy ([`semaphore_strict`](Retry::semaphore_strict)) fails with
//!   [`RetryError::SemaphoreTimeout`]; a lax one (the default, as in the
//!   reference) logs a warning and runs without a slot.
//! * **Re-entrancy**: a call made while its own call chain holds the semaphore (a retried
//!   function calling itself, or another function with the same semaphore) runs inside the held
//!   slot instead of waiting for itself. The chain is the task running the call, including event
//!   handlers it runs by awaiting child events; work handed to another task
//!   (`tokio::spawn`) takes its own slot.
//! * Callers in one process that use one semaphore with different limits get
//!   [`RetryError::LimitMismatch`], not a silent share.
//! * Semaphores exist only while used, so per-instance semaphores go away with their instance
//!   and the registry does not grow with the number of instances.
//! * [`SemaphoreScope::MultiProcess`] semaphores are shared by every process on the machine,
//!   whatever its runtime: they use the slot files of Python, TypeScript and Rust abxbus, so a
//!   Rust process and a Python `@retry(semaphore_scope='multiprocess')` of the same
//!   [name](Retry::semaphore_name) share one limit. Slot `i` of the semaphore named `n` is the
//!   file `{sha256(n)[..40]}.{i:02}.lock`, created with `O_EXCL` and holding
//!   `{"token", "pid", "semaphore_name", "created_at_ms"}`; it is given back by deleting it, and a
//!   slot whose process is gone (or that names none and is 300 s old) is taken over. The
//!   directory is [`semaphore_dir`](Retry::semaphore_dir), by default
//!   `$ABXBUS_MULTIPROCESS_SEMAPHORE_DIR`, else `$XDG_RUNTIME_DIR/abxbus/semaphores`, else
//!   `$XDG_CACHE_HOME/abxbus/semaphores` or `~/.cache/abxbus/semaphores`. Processes that use
//!   one name with different limits each count to their own limit, as in the other runtimes.
//!
//!   *Changed*: earlier versions kept `flock`ed files (`n.limit`, `n.0.slot`, …) in
//!   `bubus-semaphores` under the system temporary directory, which no other runtime reads,
//!   and reported another process's different limit as [`RetryError::LimitMismatch`]. The name,
//!   the limits, the timeouts, lax and strict modes and [`semaphore_dir`](Retry::semaphore_dir)
//!   work as before; set `ABXBUS_MULTIPROCESS_SEMAPHORE_DIR` (or `semaphore_dir`) to keep a
//!   semaphore's processes in one directory of your choice.

mod error;
mod filter;
mod handler;
mod multiprocess;
mod registry;
mod run;
mod semaphore;

use std::fmt;
use std::panic::Location;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

pub use error::RetryError;
pub use handler::{RetryHandler, RetryMarker, RetryMethod};
pub use semaphore::SemaphoreScope;

use filter::Matcher;
use registry::Shared;
use semaphore::SemaphoreConfig;

/// A retry policy: attempts, per-attempt timeout, backoff, which errors to retry, and an
/// optional concurrency limit. See the [module docs](self).
///
/// Cheap to clone; clones share the semaphore. The defaults are the reference's: one attempt, no
/// timeout, no wait, every error retried, no semaphore.
#[derive(Clone)]
pub struct Retry {
    cfg: Arc<Config>,
    /// The global, per-type or cross-process semaphore this policy last used: kept alive so its
    /// name stays claimed with its limit while the policy exists.
    cache: Arc<Mutex<Option<Arc<Shared>>>>,
}

#[derive(Clone)]
struct Config {
    max_attempts: u32,
    timeout: Option<Duration>,
    retry_after: Duration,
    backoff_factor: f64,
    max_delay: Option<Duration>,
    jitter: f64,
    matchers: Vec<Matcher>,
    semaphore: SemaphoreConfig,
    /// `file:line:column` of `Retry::new`: the default semaphore name and log label.
    default_name: Arc<str>,
}

impl Default for Retry {
    #[track_caller]
    fn default() -> Self {
        Retry::new()
    }
}

impl fmt::Debug for Retry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &*self.cfg;
        f.debug_struct("Retry")
            .field("max_attempts", &c.max_attempts)
            .field("timeout", &c.timeout)
            .field("retry_after", &c.retry_after)
            .field("backoff_factor", &c.backoff_factor)
            .field("max_delay", &c.max_delay)
            .field("jitter", &c.jitter)
            .field("filter", &c.matchers)
            .field("semaphore_limit", &c.semaphore.limit)
            .field(
                "semaphore_name",
                &c.semaphore.name.as_deref().unwrap_or(&c.default_name),
            )
            .field("semaphore_scope", &c.semaphore.scope)
            .field("semaphore_timeout", &c.semaphore.timeout)
            .field("semaphore_lax", &!c.semaphore.strict)
            .finish()
    }
}

impl Retry {
    /// A policy with the defaults: one attempt, no timeout, no semaphore.
    ///
    /// The place this is called from becomes the default semaphore name.
    #[track_caller]
    pub fn new() -> Self {
        let at = Location::caller();
        Retry {
            cfg: Arc::new(Config {
                max_attempts: 1,
                timeout: None,
                retry_after: Duration::ZERO,
                backoff_factor: 1.0,
                max_delay: None,
                jitter: 0.0,
                matchers: Vec::new(),
                semaphore: SemaphoreConfig::default(),
                default_name: format!("{}:{}:{}", at.file(), at.line(), at.column()).into(),
            }),
            cache: Arc::default(),
        }
    }

    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.cfg)
    }

    /// Changes the semaphore configuration; the policy stops using the semaphore it had.
    fn semaphore_config(&mut self) -> &mut SemaphoreConfig {
        self.cache = Arc::default();
        &mut self.config().semaphore
    }

    /// Total attempts, the first included (`1`: no retries; `0` is taken as `1`).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config().max_attempts = attempts.max(1);
        self
    }

    /// Attempts after the first one fails (the seed README's `retries`): `retries(3)` is up to
    /// four attempts.
    #[must_use]
    pub fn retries(self, retries: u32) -> Self {
        self.max_attempts(retries.saturating_add(1))
    }

    /// How long one attempt may run (`None`, the default: no limit). A timed-out attempt is
    /// cancelled and counts as a failure.
    #[must_use]
    pub fn timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config().timeout = timeout.into();
        self
    }

    /// The wait after the first failed attempt (default: none).
    #[doc(alias = "wait")]
    #[must_use]
    pub fn retry_after(mut self, wait: Duration) -> Self {
        self.config().retry_after = wait;
        self
    }

    /// Multiplies the wait after each further failure (default `1.0`: a constant wait). Negative
    /// or NaN factors are taken as `1.0`.
    #[doc(alias = "retry_backoff_factor")]
    #[must_use]
    pub fn backoff_factor(mut self, factor: f64) -> Self {
        self.config().backoff_factor = if factor >= 0.0 { factor } else { 1.0 };
        self
    }

    /// The longest wait between attempts, whatever the backoff (default: no cap).
    #[must_use]
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.config().max_delay = Some(max);
        self
    }

    /// Spreads each wait randomly by up to `±fraction` of it (clamped to `0.0..=1.0`; default
    /// `0.0`), so callers that failed together do not all retry at the same instant.
    #[must_use]
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.config().jitter = if fraction > 0.0 {
            fraction.min(1.0)
        } else {
            0.0
        };
        self
    }

    /// Retries errors of type `X`: the function's error is an `X`, or is a [`HandlerError`],
    /// [`bubus::Error`](crate::Error), `Box<dyn Error>`, `Arc<dyn Error>` or [`std::io::Error`]
    /// with an `X` in its source chain. For errors of your own type that wrap an `X`, use
    /// [`retry_if`](Retry::retry_if).
    ///
    /// Adds to the filter: once a filter is set, only failures it matches are retried.
    ///
    /// [`HandlerError`]: crate::HandlerError
    #[doc(alias = "retry_on_errors")]
    #[must_use]
    pub fn retry_on<X: std::error::Error + 'static>(mut self) -> Self {
        self.config().matchers.push(Matcher::of_type::<X>());
        self
    }

    /// Retries the errors for which `predicate` returns `true`. `E` must be the wrapped
    /// function's error type; for another type the predicate never matches (and says so in a
    /// `WARN` log).
    ///
    /// Adds to the filter: once a filter is set, only failures it matches are retried.
    ///
    /// ```
    /// # use bubus::retry::Retry;
    /// let policy = Retry::new()
    ///     .retries(2)
    ///     .retry_if(|e: &std::io::Error| e.kind() == std::io::ErrorKind::ConnectionReset);
    /// # let _ = policy;
    /// ```
    #[must_use]
    pub fn retry_if<E: 'static>(
        mut self,
        predicate: impl Fn(&E) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.config().matchers.push(Matcher::predicate(predicate));
        self
    }

    /// Retries attempts that ran past the per-attempt timeout. Only needed with a filter: with
    /// none, timed-out attempts are retried like any failure.
    #[must_use]
    pub fn retry_on_timeout(mut self) -> Self {
        self.config().matchers.push(Matcher::Timeout);
        self
    }

    /// At most `limit` calls sharing this policy's semaphore run at once (`0`, the default: no
    /// semaphore).
    #[must_use]
    pub fn semaphore_limit(mut self, limit: usize) -> Self {
        self.semaphore_config().limit = limit;
        self
    }

    /// Names the semaphore, so policies built in different places can share it. Default: where
    /// this policy was built (`src/db.rs:12:18`).
    #[must_use]
    pub fn semaphore_name(mut self, name: impl Into<Arc<str>>) -> Self {
        self.semaphore_config().name = Some(name.into());
        self
    }

    /// Which calls share the semaphore (default: [`SemaphoreScope::Global`]).
    #[must_use]
    pub fn semaphore_scope(mut self, scope: SemaphoreScope) -> Self {
        self.semaphore_config().scope = scope;
        self
    }

    /// How long a call waits for a semaphore slot; `None` waits as long as it takes. Default:
    /// `timeout × max(1, limit − 1)` when attempts have a timeout, else no limit.
    #[must_use]
    pub fn semaphore_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.semaphore_config().timeout = Some(timeout.into());
        self
    }

    /// When no slot frees up in time, run the call anyway with a warning (the default; the
    /// family's `semaphore_lax=True`). Lax policies also run without a cross-process limit when
    /// its slot files cannot be used.
    #[must_use]
    pub fn semaphore_lax(mut self) -> Self {
        self.semaphore_config().strict = false;
        self
    }

    /// When no slot frees up in time, fail the call with [`RetryError::SemaphoreTimeout`]
    /// instead of running it (the family's `semaphore_lax=False`); also fail it when a
    /// cross-process semaphore's slot files cannot be used.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use bubus::retry::Retry;
    /// let policy = Retry::new()
    ///     .semaphore_limit(2)
    ///     .semaphore_timeout(Duration::from_secs(5))
    ///     .semaphore_strict();
    /// # let _ = policy;
    /// ```
    #[must_use]
    pub fn semaphore_strict(mut self) -> Self {
        self.semaphore_config().strict = true;
        self
    }

    /// Where [`SemaphoreScope::MultiProcess`] semaphores keep their slot files (default: the
    /// directory every abxbus runtime uses — `$ABXBUS_MULTIPROCESS_SEMAPHORE_DIR`, else
    /// `$XDG_RUNTIME_DIR/abxbus/semaphores`, else `~/.cache/abxbus/semaphores`, see the
    /// [module docs](self#semaphores)). Processes share a semaphore only
    /// if they use the same directory.
    #[must_use]
    pub fn semaphore_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.semaphore_config().dir = Some(dir.into());
        self
    }
}

/// How many named semaphores exist in this process right now. For tests of the registry's
/// growth; not a stable API.
#[doc(hidden)]
pub fn __semaphore_count() -> usize {
    registry::len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semaphore_timeout_defaults_follow_the_reference() {
        let policy = Retry::new()
            .timeout(Duration::from_secs(2))
            .semaphore_limit(4);
        let cfg = &policy.cfg.semaphore;
        assert_eq!(
            cfg.wait(policy.cfg.timeout, 4),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            cfg.wait(policy.cfg.timeout, 1),
            Some(Duration::from_secs(2))
        );
        assert_eq!(cfg.wait(None, 4), None);
        let forever = policy.semaphore_timeout(None);
        assert_eq!(
            forever.cfg.semaphore.wait(Some(Duration::from_secs(1)), 4),
            None
        );
    }
}
