//! Ports the retry behaviour of the reference suites `bubus-ts/tests/retry.test.ts` (attempts,
//! `retry_after`, backoff, `retry_on_errors`, per-attempt timeouts, edge cases) and
//! `tests/test_retry.py::TestRetryApiParity`, plus what the Rust policy adds (`retries`, jitter,
//! `max_delay`, typed predicates, `tracing` logs). Time runs on tokio's paused clock.

use bubus_test_support::logs::capture_logs;
use bubus_test_support::time::ms;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bubus::retry::{Retry, RetryError};
use parking_lot::Mutex;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NetworkError(String);

#[derive(Debug, thiserror::Error)]
#[error("validation error")]
struct ValidationError;

#[derive(Debug, thiserror::Error)]
#[error("type error")]
struct TypeError;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Calls `f` with the 1-based attempt number; records when each attempt started.
struct Attempts {
    count: AtomicU32,
    started: Mutex<Vec<Instant>>,
}

impl Attempts {
    fn new() -> Arc<Self> {
        Arc::new(Attempts {
            count: AtomicU32::new(0),
            started: Mutex::new(Vec::new()),
        })
    }

    fn next(&self) -> u32 {
        self.started.lock().push(Instant::now());
        self.count.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn count(&self) -> u32 {
        self.count.load(Ordering::SeqCst)
    }

    fn gaps(&self) -> Vec<Duration> {
        let started = self.started.lock();
        started.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

/// `true` if `gap` is `expected`, up to the timer's 1 ms granularity.
fn about(gap: Duration, expected: Duration) -> bool {
    gap >= expected && gap <= expected + ms(1)
}

#[tokio::test(start_paused = true)]
async fn succeeds_on_first_attempt() {
    let attempts = Attempts::new();
    let result = Retry::new()
        .max_attempts(3)
        .run(|| {
            attempts.next();
            async { Ok::<_, NetworkError>("ok") }
        })
        .await;
    assert_eq!(result.ok(), Some("ok"));
    assert_eq!(attempts.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn retries_until_an_attempt_succeeds() {
    let attempts = Attempts::new();
    let result = Retry::new()
        .max_attempts(3)
        .run(|| {
            let n = attempts.next();
            async move {
                if n < 3 {
                    Err(NetworkError(format!("fail {n}")))
                } else {
                    Ok("ok")
                }
            }
        })
        .await;
    assert_eq!(result.ok(), Some("ok"));
    assert_eq!(attempts.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn gives_up_with_the_last_error_after_all_attempts() {
    let attempts = Attempts::new();
    let err = Retry::new()
        .max_attempts(3)
        .run(|| {
            let n = attempts.next();
            async move { Err::<(), _>(NetworkError(format!("fail {n}"))) }
        })
        .await
        .unwrap_err();
    assert_eq!(attempts.count(), 3);
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.inner().map(|e| e.0.as_str()), Some("fail 3"));
    assert_eq!(err.to_string(), "failed after 3 attempts: fail 3");
}

#[tokio::test(start_paused = true)]
async fn one_attempt_by_default_and_zero_means_one() {
    for policy in [
        Retry::new(),
        Retry::new().max_attempts(1),
        Retry::new().max_attempts(0),
    ] {
        let attempts = Attempts::new();
        let err = policy
            .run(|| {
                attempts.next();
                async { Err::<(), _>(NetworkError("fail".into())) }
            })
            .await
            .unwrap_err();
        assert_eq!(attempts.count(), 1);
        assert!(matches!(err, RetryError::Failed { attempts: 1, .. }));
    }
}

#[tokio::test(start_paused = true)]
async fn retries_counts_attempts_after_the_first() {
    let attempts = Attempts::new();
    let _ = Retry::new()
        .retries(2)
        .run(|| {
            attempts.next();
            async { Err::<(), _>(NetworkError("fail".into())) }
        })
        .await;
    assert_eq!(attempts.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_after_waits_between_attempts() {
    let attempts = Attempts::new();
    let started = Instant::now();
    let result = Retry::new()
        .max_attempts(3)
        .retry_after(ms(50))
        .run(|| {
            let n = attempts.next();
            async move { if n < 3 { Err(ValidationError) } else { Ok(n) } }
        })
        .await;
    assert_eq!(result.ok(), Some(3));
    let gaps = attempts.gaps();
    assert!(gaps.iter().all(|g| about(*g, ms(50))), "{gaps:?}");
    assert!(about(started.elapsed(), ms(100)));
}

#[tokio::test(start_paused = true)]
async fn backoff_factor_multiplies_each_wait() {
    let attempts = Attempts::new();
    let result = Retry::new()
        .max_attempts(4)
        .retry_after(ms(30))
        .backoff_factor(2.0)
        .run(|| {
            let n = attempts.next();
            async move { if n < 4 { Err(ValidationError) } else { Ok(()) } }
        })
        .await;
    assert!(result.is_ok());
    let gaps = attempts.gaps();
    let expected = [ms(30), ms(60), ms(120)];
    assert_eq!(gaps.len(), 3);
    assert!(
        gaps.iter().zip(expected).all(|(g, e)| about(*g, e)),
        "{gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn max_delay_caps_the_backoff() {
    let attempts = Attempts::new();
    let _ = Retry::new()
        .max_attempts(5)
        .retry_after(ms(100))
        .backoff_factor(3.0)
        .max_delay(ms(250))
        .run(|| {
            attempts.next();
            async { Err::<(), _>(ValidationError) }
        })
        .await;
    let gaps = attempts.gaps();
    let expected = [ms(100), ms(250), ms(250), ms(250)];
    assert!(
        gaps.iter().zip(expected).all(|(g, e)| about(*g, e)),
        "{gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_waits_within_its_bounds() {
    let attempts = Attempts::new();
    let _ = Retry::new()
        .max_attempts(21)
        .retry_after(ms(100))
        .jitter(0.5)
        .run(|| {
            attempts.next();
            async { Err::<(), _>(ValidationError) }
        })
        .await;
    let gaps = attempts.gaps();
    assert_eq!(gaps.len(), 20);
    assert!(
        gaps.iter().all(|g| *g >= ms(50) && *g <= ms(151)),
        "{gaps:?}"
    );
    let mut distinct = gaps.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() > 1,
        "jitter left every wait at {:?}",
        gaps[0]
    );
}

#[tokio::test(start_paused = true)]
async fn retry_on_retries_only_matching_error_types() {
    let attempts = Attempts::new();
    let policy = Retry::new().max_attempts(3).retry_on::<NetworkError>();
    let result = policy
        .run(|| {
            let n = attempts.next();
            async move {
                if n < 3 {
                    Err(NetworkError("down".into()))
                } else {
                    Ok("ok")
                }
            }
        })
        .await;
    assert_eq!(result.ok(), Some("ok"));
    assert_eq!(attempts.count(), 3);

    let attempts = Attempts::new();
    let err = policy
        .run(|| {
            attempts.next();
            async { Err::<(), _>(ValidationError) }
        })
        .await
        .unwrap_err();
    assert_eq!(attempts.count(), 1, "a non-matching error is not retried");
    assert!(matches!(err, RetryError::Failed { attempts: 1, .. }));
}

/// Port of "retry_on_errors mixes class, string, and RegExp matchers": error types and a
/// predicate (here on the message) combine; an error none of them matches ends the call.
#[tokio::test(start_paused = true)]
async fn retry_on_types_and_predicates_combine() {
    let policy = Retry::new()
        .max_attempts(5)
        .retry_on::<TypeError>()
        .retry_on::<NetworkError>()
        .retry_if(|e: &BoxError| e.to_string().to_lowercase().contains("timeout"));

    let attempts = Attempts::new();
    let result = policy
        .run(|| {
            let n = attempts.next();
            async move {
                match n {
                    1 => Err::<&str, BoxError>(TypeError.into()),
                    2 => Err(NetworkError("unreachable".into()).into()),
                    3 => Err("Connection timeout".into()),
                    _ => Ok("ok"),
                }
            }
        })
        .await;
    assert_eq!(result.ok(), Some("ok"));
    assert_eq!(attempts.count(), 4);

    let attempts = Attempts::new();
    let err = policy
        .run(|| {
            attempts.next();
            async { Err::<(), BoxError>(ValidationError.into()) }
        })
        .await
        .unwrap_err();
    assert_eq!(attempts.count(), 1);
    assert_eq!(
        err.inner().map(ToString::to_string).as_deref(),
        Some("validation error")
    );
}

#[tokio::test(start_paused = true)]
async fn retry_on_finds_the_type_in_the_source_chain() {
    #[derive(Debug, thiserror::Error)]
    #[error("query failed")]
    struct QueryError(#[source] NetworkError);

    let attempts = Attempts::new();
    let result = Retry::new()
        .max_attempts(2)
        .retry_on::<NetworkError>()
        .run(|| {
            let n = attempts.next();
            async move {
                if n == 1 {
                    Err(bubus::HandlerError::from_error(QueryError(NetworkError(
                        "x".into(),
                    ))))
                } else {
                    Ok(())
                }
            }
        })
        .await;
    assert!(result.is_ok());
    assert_eq!(attempts.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn retry_if_uses_a_typed_predicate() {
    use std::io::{Error, ErrorKind};
    let policy = Retry::new()
        .max_attempts(3)
        .retry_if(|e: &Error| e.kind() == ErrorKind::ConnectionReset);

    let attempts = Attempts::new();
    let result = policy
        .run(|| {
            let n = attempts.next();
            async move {
                if n < 3 {
                    Err(Error::from(ErrorKind::ConnectionReset))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
    assert_eq!(result.ok(), Some(3));

    let attempts = Attempts::new();
    let err = policy
        .run(|| {
            attempts.next();
            async { Err::<(), _>(Error::from(ErrorKind::PermissionDenied)) }
        })
        .await
        .unwrap_err();
    assert_eq!(attempts.count(), 1);
    assert_eq!(
        err.into_inner().map(|e| e.kind()),
        Some(ErrorKind::PermissionDenied)
    );
}

#[tokio::test(start_paused = true)]
async fn a_predicate_for_another_error_type_never_retries() {
    let logs = capture_logs();
    let attempts = Attempts::new();
    let _ = Retry::new()
        .max_attempts(3)
        .retry_if(|_: &std::io::Error| true)
        .run(|| {
            attempts.next();
            async { Err::<(), _>(ValidationError) }
        })
        .await;
    assert_eq!(attempts.count(), 1);
    assert!(
        logs.messages()
            .iter()
            .any(|m| m.contains("retry_if predicate takes another error type")),
        "{:?}",
        logs.messages()
    );
}

#[tokio::test(start_paused = true)]
async fn slow_attempts_time_out_and_are_cancelled() {
    let finished = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let err = Retry::new()
        .timeout(ms(50))
        .run(|| {
            let finished = Arc::clone(&finished);
            async move {
                tokio::time::sleep(ms(200)).await;
                finished.store(true, Ordering::SeqCst);
                Ok::<_, NetworkError>("late")
            }
        })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        RetryError::AttemptTimeout { attempts: 1, timeout } if timeout == ms(50)
    ));
    assert!(err.is_attempt_timeout());
    assert!(about(started.elapsed(), ms(50)));
    // The timed-out attempt was dropped, not left running.
    tokio::time::sleep(ms(500)).await;
    assert!(!finished.load(Ordering::SeqCst));
}

#[tokio::test(start_paused = true)]
async fn fast_attempts_beat_the_timeout() {
    let result = Retry::new()
        .timeout(Duration::from_secs(1))
        .run(|| async {
            tokio::time::sleep(ms(5)).await;
            Ok::<_, NetworkError>("fast")
        })
        .await;
    assert_eq!(result.ok(), Some("fast"));
}

#[tokio::test(start_paused = true)]
async fn timed_out_attempts_are_retried() {
    let attempts = Attempts::new();
    let result = Retry::new()
        .max_attempts(3)
        .timeout(ms(50))
        .run(|| {
            let n = attempts.next();
            async move {
                if n < 3 {
                    tokio::time::sleep(ms(200)).await;
                }
                Ok::<_, NetworkError>(n)
            }
        })
        .await;
    assert_eq!(result.ok(), Some(3));
    assert_eq!(attempts.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn under_a_filter_timeouts_are_retried_only_when_asked() {
    let slow = |attempts: Arc<Attempts>| {
        move || {
            let n = attempts.next();
            async move {
                if n == 1 {
                    tokio::time::sleep(ms(200)).await;
                }
                Ok::<_, NetworkError>(n)
            }
        }
    };
    let filtered = Retry::new()
        .max_attempts(3)
        .timeout(ms(50))
        .retry_on::<NetworkError>();

    let attempts = Attempts::new();
    let err = filtered.run(slow(Arc::clone(&attempts))).await.unwrap_err();
    assert!(err.is_attempt_timeout());
    assert_eq!(attempts.count(), 1);

    let attempts = Attempts::new();
    let result = filtered
        .retry_on_timeout()
        .run(slow(Arc::clone(&attempts)))
        .await;
    assert_eq!(result.ok(), Some(2));
}

#[tokio::test(start_paused = true)]
async fn the_last_failure_decides_the_error() {
    let attempts = Attempts::new();
    let err = Retry::new()
        .max_attempts(2)
        .timeout(ms(50))
        .run(|| {
            let n = attempts.next();
            async move {
                if n == 2 {
                    tokio::time::sleep(ms(200)).await;
                }
                Err::<(), _>(NetworkError("first".into()))
            }
        })
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        RetryError::AttemptTimeout { attempts: 2, .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn calls_use_borrowed_arguments() {
    async fn add(a: &u32, b: &str) -> Result<String, NetworkError> {
        Ok(format!("{a}-{b}"))
    }
    let (a, b) = (1, String::from("hello"));
    let result = Retry::new().max_attempts(2).run(|| add(&a, &b)).await;
    assert_eq!(result.ok().as_deref(), Some("1-hello"));
}

#[tokio::test(start_paused = true)]
async fn question_mark_converts_into_the_root_error() {
    async fn load() -> Result<u32, bubus::Error> {
        let value = Retry::new()
            .max_attempts(2)
            .run(|| async { Err::<u32, _>(NetworkError("offline".into())) })
            .await?;
        Ok(value)
    }
    let err = load().await.unwrap_err();
    let bubus::Error::Retry(retry) = &err else {
        panic!("expected Error::Retry, got {err:?}");
    };
    assert_eq!(retry.attempts(), 2);
    assert_eq!(retry.inner().map(|e| e.error_type()), Some("NetworkError"));
    assert_eq!(
        err.to_string(),
        "failed after 2 attempts: NetworkError: offline"
    );
}

#[tokio::test(start_paused = true)]
async fn each_retry_is_logged_through_tracing() {
    let logs = capture_logs();
    let _ = Retry::new()
        .max_attempts(3)
        .retry_after(ms(10))
        .run(|| async { Err::<(), _>(NetworkError("down".into())) })
        .await;
    let warnings: Vec<String> = logs
        .events()
        .into_iter()
        .filter(|e| e.level == tracing::Level::WARN && e.target == "bubus::retry")
        .map(|e| e.message)
        .collect();
    assert_eq!(
        warnings,
        [
            "attempt 1/3 failed; retrying",
            "attempt 2/3 failed; retrying",
            "giving up after 3 attempts"
        ],
    );
    let first = &logs.events()[0];
    assert!(first.fields.contains("error=down"), "{}", first.fields);
    assert!(first.fields.contains("delay=10ms"), "{}", first.fields);
}
