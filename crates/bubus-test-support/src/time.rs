//! Durations and deadlock guards for tests.
//!
//! A test that awaits the bus wraps the await in [`within`] (tokio's paused clock) or
//! [`within_real`] (a real clock), so a deadlock fails the test with a message instead of hanging
//! the suite.

use std::future::IntoFuture;
use std::time::Duration;

/// How long [`within`] waits: one hour of tokio's clock. On a paused clock (`start_paused = true`)
/// that is instant unless the future is really stuck, since time only advances while every task
/// is idle.
pub const VIRTUAL_LIMIT: Duration = Duration::from_secs(3_600);

/// How long [`within_real`] waits on the real clock: long enough for a loaded CI machine, short
/// enough that a deadlock fails in about a minute.
pub const REAL_LIMIT: Duration = Duration::from_secs(60);

/// `n` milliseconds.
pub const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Awaits `future`, panicking if it takes [`VIRTUAL_LIMIT`] of tokio's clock: for tests on a
/// paused clock.
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// use bubus_test_support::time::{ms, within};
/// within(tokio::time::sleep(ms(10))).await;
/// # }
/// ```
///
/// # Panics
///
/// If the future does not finish in time ("deadlock?").
#[track_caller]
pub fn within<F: IntoFuture>(future: F) -> impl Future<Output = F::Output> {
    within_limit(VIRTUAL_LIMIT, future)
}

/// Awaits `future`, panicking if it takes [`REAL_LIMIT`]: for tests on a real clock.
///
/// # Panics
///
/// If the future does not finish in time ("deadlock?").
#[track_caller]
pub fn within_real<F: IntoFuture>(future: F) -> impl Future<Output = F::Output> {
    within_limit(REAL_LIMIT, future)
}

/// Awaits `future`, panicking if it takes `limit` of tokio's clock.
///
/// # Panics
///
/// If the future does not finish in time.
#[track_caller]
pub fn within_limit<F: IntoFuture>(limit: Duration, future: F) -> impl Future<Output = F::Output> {
    let caller = std::panic::Location::caller();
    let future = tokio::time::timeout(limit, future.into_future());
    async move {
        match future.await {
            Ok(output) => output,
            Err(_) => panic!("did not finish within {limit:?} (deadlock?), awaited at {caller}"),
        }
    }
}
