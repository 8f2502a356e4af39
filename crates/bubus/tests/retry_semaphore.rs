//! Ports the semaphore behaviour of the reference suites `bubus-ts/tests/retry.test.ts`
//! (`semaphore_limit`, hand-off, `semaphore_lax`, held across attempts, re-entrancy, scopes,
//! `semaphore_name` from call arguments) and `tests/test_retry.py::TestRegularSemaphoreScopes`,
//! plus the reference gaps fixed here (§5.5): a clear error for two limits on one name, and
//! semaphores freed with the calls that use them. Time runs on tokio's paused clock.

use bubus_test_support::Active;
use bubus_test_support::time::ms;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus::retry::{Retry, RetryError, SemaphoreScope};
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug, thiserror::Error)]
#[error("fail")]
struct Fail;

/// One unit of work: inside `active` for `d`.
async fn work(active: &Active, d: Duration) -> Result<(), Fail> {
    let _inside = active.enter();
    tokio::time::sleep(d).await;
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn limit_caps_concurrent_calls() {
    let active = Active::default();
    let policy = Retry::new().semaphore_limit(2);
    let started = Instant::now();
    let calls = (0..6).map(|_| policy.run(|| work(&active, ms(50))));
    let results = futures::future::join_all(calls).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(active.max(), 2);
    // Three waves of two.
    assert_eq!(started.elapsed(), ms(150));
}

/// Port of "semaphore handoff keeps concurrency bounded": a freed slot goes to the call that
/// waited longest, never to a call that arrives just as it is freed.
#[tokio::test(start_paused = true)]
async fn a_freed_slot_goes_to_the_longest_waiter() {
    let policy = Retry::new().semaphore_limit(1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let release_first = Arc::new(Notify::new());
    let active = Active::default();

    let call = |name: &'static str, hold: Option<Arc<Notify>>| {
        let (policy, order, active) = (policy.clone(), Arc::clone(&order), active.clone());
        async move {
            policy
                .run(|| {
                    let (order, active, hold) = (Arc::clone(&order), active.clone(), hold.clone());
                    async move {
                        let _inside = active.enter();
                        order.lock().push(name);
                        if let Some(hold) = hold {
                            hold.notified().await;
                        }
                        Ok::<_, Fail>(())
                    }
                })
                .await
        }
    };

    let first = tokio::spawn(call("first", Some(Arc::clone(&release_first))));
    tokio::task::yield_now().await;
    let second = tokio::spawn(call("second", None));
    tokio::task::yield_now().await;
    assert_eq!(*order.lock(), ["first"]);

    release_first.notify_one();
    // Arrives while the slot is being handed over.
    let third = tokio::spawn(call("third", None));
    for task in [first, second, third] {
        assert!(task.await.is_ok_and(|r| r.is_ok()));
    }
    assert_eq!(*order.lock(), ["first", "second", "third"]);
    assert_eq!(active.max(), 1);
}

#[tokio::test(start_paused = true)]
async fn strict_policy_fails_when_no_slot_frees_in_time() {
    let policy = Retry::new()
        .semaphore_limit(1)
        .semaphore_name("test_sem_lax_false")
        .semaphore_strict()
        .semaphore_timeout(ms(50));
    let active = Active::default();
    let holder = tokio::spawn({
        let (policy, active) = (policy.clone(), active.clone());
        async move { policy.run(|| work(&active, ms(200))).await }
    });
    tokio::task::yield_now().await;

    let started = Instant::now();
    let err = policy.run(|| work(&active, ms(1))).await.unwrap_err();
    assert!(
        matches!(
            &err,
            RetryError::SemaphoreTimeout { semaphore, limit: 1, timeout }
                if semaphore == "test_sem_lax_false" && *timeout == ms(50)
        ),
        "{err:?}"
    );
    assert!(err.is_semaphore_timeout());
    assert_eq!(err.attempts(), 0);
    assert_eq!(started.elapsed(), ms(50));
    assert_eq!(active.calls(), 1, "the function never ran without a slot");
    assert!(holder.await.is_ok_and(|r| r.is_ok()));
}

#[tokio::test(start_paused = true)]
async fn lax_policy_runs_without_a_slot_when_none_frees_in_time() {
    let policy = Retry::new().semaphore_limit(1).semaphore_timeout(ms(50));
    let active = Active::default();
    let started = Instant::now();
    let (a, b) = tokio::join!(
        policy.run(|| work(&active, ms(200))),
        policy.run(|| work(&active, ms(200)))
    );
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(active.max(), 2);
    // The second started after waiting 50 ms for the slot, not after the first finished.
    assert_eq!(started.elapsed(), ms(250));
}

#[tokio::test(start_paused = true)]
async fn semaphore_timeout_defaults_to_the_attempt_timeout_times_limit_minus_one() {
    // Holders keep their slots for 5 attempts of 1 s each (every attempt times out).
    let policy = Retry::new()
        .max_attempts(5)
        .timeout(Duration::from_secs(1))
        .semaphore_limit(3)
        .semaphore_strict();
    let active = Active::default();
    let holders: Vec<_> = (0..3)
        .map(|_| {
            let (policy, active) = (policy.clone(), active.clone());
            tokio::spawn(async move { policy.run(|| work(&active, Duration::from_secs(10))).await })
        })
        .collect();
    tokio::task::yield_now().await;

    let started = Instant::now();
    let err = policy.run(|| work(&active, ms(1))).await.unwrap_err();
    assert!(
        matches!(
            err,
            RetryError::SemaphoreTimeout { timeout, .. } if timeout == Duration::from_secs(2)
        ),
        "{err:?}"
    );
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    for holder in holders {
        assert!(
            holder
                .await
                .is_ok_and(|r| r.is_err_and(|e| e.is_attempt_timeout()))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn semaphore_timeout_none_waits_as_long_as_it_takes() {
    let holder_policy = Retry::new().semaphore_limit(1).semaphore_name("forever");
    let waiter_policy = Retry::new()
        .timeout(Duration::from_secs(1))
        .semaphore_limit(1)
        .semaphore_name("forever")
        .semaphore_timeout(None)
        .semaphore_strict();
    let active = Active::default();
    let started = Instant::now();
    let (a, b) = tokio::join!(
        holder_policy.run(|| work(&active, Duration::from_secs(30))),
        async {
            tokio::task::yield_now().await;
            waiter_policy.run(|| work(&active, ms(10))).await
        }
    );
    assert!(a.is_ok() && b.is_ok(), "{b:?}");
    assert_eq!(active.max(), 1);
    assert_eq!(started.elapsed(), Duration::from_secs(30) + ms(10));
}

#[tokio::test(start_paused = true)]
async fn the_slot_is_held_across_every_attempt() {
    let policy = Retry::new().max_attempts(3).semaphore_limit(1);
    let active = Active::default();
    let call = || {
        let active = active.clone();
        policy.run(move || {
            let active = active.clone();
            async move {
                let _inside = active.enter();
                tokio::time::sleep(ms(10)).await;
                // Odd calls fail, so every run needs two attempts.
                if active.calls() % 2 == 1 {
                    Err(Fail)
                } else {
                    Ok("ok")
                }
            }
        })
    };
    let (a, b, c) = tokio::join!(call(), call(), call());
    assert_eq!([a.ok(), b.ok(), c.ok()], [Some("ok"); 3]);
    assert_eq!(active.max(), 1);
    assert_eq!(active.calls(), 6);
}

#[tokio::test(start_paused = true)]
async fn the_slot_is_released_when_every_attempt_fails() {
    let policy = Retry::new()
        .max_attempts(2)
        .semaphore_limit(1)
        .semaphore_strict()
        .semaphore_timeout(ms(10));
    for _ in 0..3 {
        let err = policy
            .run(|| async { Err::<(), _>(Fail) })
            .await
            .unwrap_err();
        assert!(
            matches!(err, RetryError::Failed { attempts: 2, .. }),
            "{err:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn dropping_a_call_frees_its_slot_and_its_place_in_line() {
    let policy = Retry::new()
        .semaphore_limit(1)
        .semaphore_strict()
        .semaphore_timeout(ms(10));
    let entered = Arc::new(Notify::new());
    let holder = tokio::spawn({
        let (policy, entered) = (policy.clone(), Arc::clone(&entered));
        async move {
            policy
                .run(|| async {
                    entered.notify_one();
                    std::future::pending::<Result<(), Fail>>().await
                })
                .await
        }
    });
    entered.notified().await;
    // A waiter that gives up is gone from the line.
    let waiter = tokio::spawn({
        let policy = policy.clone().semaphore_timeout(None);
        async move { policy.run(|| async { Ok::<_, Fail>(()) }).await }
    });
    tokio::task::yield_now().await;
    waiter.abort();
    holder.abort();
    assert!(holder.await.is_err_and(|e| e.is_cancelled()));
    assert!(waiter.await.is_err_and(|e| e.is_cancelled()));
    let result = policy.run(|| async { Ok::<_, Fail>("free") }).await;
    assert_eq!(result.ok(), Some("free"));
}

// --- Re-entrancy -------------------------------------------------------------------------------

/// Strict with a short timeout, so a self-deadlock shows up as an error instead of a hang.
fn strict(name: &str, limit: usize) -> Retry {
    Retry::new()
        .semaphore_limit(limit)
        .semaphore_name(name)
        .semaphore_strict()
        .semaphore_timeout(Duration::from_secs(1))
}

#[tokio::test(start_paused = true)]
async fn a_nested_call_on_the_same_semaphore_does_not_deadlock() {
    let inner = strict("shared_sem", 1);
    let outer = strict("shared_sem", 1);
    let result = outer
        .run(|| async {
            let got = inner
                .run(|| async { Ok::<_, Fail>("inner ok") })
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(format!("outer got: {got}"))
        })
        .await;
    assert_eq!(result.ok().as_deref(), Some("outer got: inner ok"));
}

fn sum_to(
    policy: Retry,
    n: u64,
    depth: Arc<AtomicUsize>,
) -> Pin<Box<dyn Future<Output = Result<u64, String>> + Send>> {
    Box::pin(async move {
        policy
            .run(|| {
                let (policy, depth) = (policy.clone(), Arc::clone(&depth));
                async move {
                    depth.fetch_add(1, Ordering::SeqCst);
                    if n <= 1 {
                        return Ok::<u64, String>(1);
                    }
                    Ok(n + sum_to(policy, n - 1, depth).await?)
                }
            })
            .await
            .map_err(|e| e.to_string())
    })
}

#[tokio::test(start_paused = true)]
async fn a_recursive_function_does_not_deadlock() {
    let depth = Arc::new(AtomicUsize::new(0));
    let result = sum_to(strict("recursive_sem", 1), 5, Arc::clone(&depth)).await;
    assert_eq!(result, Ok(15));
    assert_eq!(depth.load(Ordering::SeqCst), 5);
}

#[tokio::test(start_paused = true)]
async fn three_nested_levels_do_not_deadlock() {
    let (l1, l2, l3) = (
        strict("nested_sem", 1),
        strict("nested_sem", 1),
        strict("nested_sem", 1),
    );
    let result = l1
        .run(|| async {
            let r2 = l2
                .run(|| async {
                    let r3 = l3.run(|| async { Ok::<_, Fail>("level3") }).await;
                    r3.map(|r| format!("level2>{r}")).map_err(|e| e.to_string())
                })
                .await;
            r2.map(|r| format!("level1>{r}")).map_err(|e| e.to_string())
        })
        .await;
    assert_eq!(result.ok().as_deref(), Some("level1>level2>level3"));
}

#[tokio::test(start_paused = true)]
async fn nested_calls_on_other_semaphores_keep_their_limits() {
    let inner = Retry::new().semaphore_limit(1).semaphore_name("inner_sem");
    let outer = Retry::new().semaphore_limit(2).semaphore_name("outer_sem");
    let active = Active::default();
    let call = || {
        outer.run(|| async {
            inner
                .run(|| work(&active, ms(20)))
                .await
                .map_err(|e| e.to_string())
                .map(|()| "inner ok")
        })
    };
    let (a, b, c) = tokio::join!(call(), call(), call());
    assert_eq!([a.ok(), b.ok(), c.ok()], [Some("inner ok"); 3]);
    assert_eq!(active.max(), 1, "the inner semaphore still allows one call");
}

/// Re-entry follows the task: work a held call hands to another task takes its own slot.
#[tokio::test(start_paused = true)]
async fn a_spawned_task_does_not_inherit_the_slot() {
    let policy = strict("spawned_sem", 1).semaphore_timeout(ms(50));
    let result = policy
        .run(|| {
            let policy = policy.clone();
            async move {
                let spawned =
                    tokio::spawn(async move { policy.run(|| async { Ok::<_, Fail>(()) }).await });
                Ok::<_, Fail>(spawned.await.ok())
            }
        })
        .await;
    let spawned = result.ok().flatten();
    assert!(
        spawned.is_some_and(|r| r.is_err_and(|e| e.is_semaphore_timeout())),
        "the spawned call waited for the slot its parent holds"
    );
}

#[tokio::test(start_paused = true)]
async fn a_nested_call_with_another_limit_is_a_mismatch() {
    let outer = strict("reentrant_mismatch", 1);
    let inner = strict("reentrant_mismatch", 2);
    let result = outer
        .run(|| async { Ok::<_, Fail>(inner.run(|| async { Ok::<_, Fail>(()) }).await) })
        .await;
    let inner_result = result.ok();
    assert!(
        matches!(
            inner_result,
            Some(Err(RetryError::LimitMismatch {
                limit: 2,
                existing: 1,
                ..
            }))
        ),
        "{inner_result:?}"
    );
}

// --- Scopes -----------------------------------------------------------------------------------

/// Port of `test_global_scope`: four calls, limit two — the first two start together, the third
/// when the first ends.
#[tokio::test(start_paused = true)]
async fn global_scope_is_one_semaphore_for_every_call() {
    let policy = Retry::new()
        .semaphore_limit(2)
        .semaphore_scope(SemaphoreScope::Global)
        .semaphore_name("test_global");
    let starts = Arc::new(Mutex::new(Vec::new()));
    let origin = Instant::now();
    let calls = (0..4).map(|_| {
        let starts = Arc::clone(&starts);
        policy.run(move || {
            let starts = Arc::clone(&starts);
            async move {
                starts.lock().push(origin.elapsed());
                tokio::time::sleep(ms(100)).await;
                Ok::<_, Fail>(())
            }
        })
    });
    futures::future::join_all(calls).await;
    assert_eq!(*starts.lock(), [ms(0), ms(0), ms(100), ms(100)]);
}

struct Worker {
    policy: Retry,
    active: Active,
}

impl Worker {
    async fn run(&self) -> Result<(), RetryError<Fail>> {
        self.policy
            .run_on(self, || work(&self.active, ms(30)))
            .await
    }
}

struct OtherWorker {
    policy: Retry,
    active: Active,
}

impl OtherWorker {
    async fn run(&self) -> Result<(), RetryError<Fail>> {
        self.policy
            .run_on(self, || work(&self.active, ms(30)))
            .await
    }
}

fn scoped(scope: SemaphoreScope, name: &str) -> Retry {
    Retry::new()
        .semaphore_limit(1)
        .semaphore_scope(scope)
        .semaphore_name(name)
}

#[tokio::test(start_paused = true)]
async fn type_scope_is_shared_by_every_instance_of_a_type() {
    let policy = scoped(SemaphoreScope::Type, "work");
    let active = Active::default();
    let workers: Vec<_> = (0..3)
        .map(|_| Worker {
            policy: policy.clone(),
            active: active.clone(),
        })
        .collect();
    let results = futures::future::join_all(workers.iter().map(Worker::run)).await;
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(active.max(), 1);
}

#[tokio::test(start_paused = true)]
async fn type_scope_separates_types() {
    let policy = scoped(SemaphoreScope::Type, "run");
    let active = Active::default();
    let alpha = Worker {
        policy: policy.clone(),
        active: active.clone(),
    };
    let beta = OtherWorker {
        policy,
        active: active.clone(),
    };
    let (a, b) = tokio::join!(alpha.run(), beta.run());
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(active.max(), 2);
}

#[tokio::test(start_paused = true)]
async fn instance_scope_gives_each_instance_its_own_semaphore() {
    let policy = scoped(SemaphoreScope::Instance, "work");
    let active = Active::default();
    let a = Worker {
        policy: policy.clone(),
        active: active.clone(),
    };
    let b = Worker {
        policy,
        active: active.clone(),
    };
    let (ra, rb) = tokio::join!(a.run(), b.run());
    assert!(ra.is_ok() && rb.is_ok());
    assert_eq!(active.max(), 2);
}

#[tokio::test(start_paused = true)]
async fn instance_scope_serializes_calls_on_one_instance() {
    let worker = Worker {
        policy: scoped(SemaphoreScope::Instance, "work"),
        active: Active::default(),
    };
    let (a, b, c) = tokio::join!(worker.run(), worker.run(), worker.run());
    assert!(a.is_ok() && b.is_ok() && c.is_ok());
    assert_eq!(worker.active.max(), 1);
}

#[tokio::test(start_paused = true)]
async fn type_and_instance_scopes_fall_back_to_global_without_a_receiver() {
    for scope in [SemaphoreScope::Type, SemaphoreScope::Instance] {
        let policy = scoped(scope, "standalone");
        let active = Active::default();
        let (a, b) = tokio::join!(
            policy.run(|| work(&active, ms(30))),
            policy.run(|| work(&active, ms(30)))
        );
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(active.max(), 1, "{scope:?}");
    }
}

// --- Names --------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_named_semaphore_is_shared_between_functions() {
    let read = Retry::new().semaphore_limit(1).semaphore_name("db");
    let write = Retry::new().semaphore_limit(1).semaphore_name("db");
    let active = Active::default();
    let (a, b) = tokio::join!(
        read.run(|| work(&active, ms(30))),
        write.run(|| work(&active, ms(30)))
    );
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(active.max(), 1);
}

#[tokio::test(start_paused = true)]
async fn unnamed_semaphores_are_per_policy_and_shared_by_clones() {
    let one = Retry::new().semaphore_limit(1);
    let other = Retry::new().semaphore_limit(1);
    let active = Active::default();
    let (a, b) = tokio::join!(
        one.run(|| work(&active, ms(30))),
        other.run(|| work(&active, ms(30)))
    );
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(
        active.max(),
        2,
        "policies built in different places do not share"
    );

    let active = Active::default();
    let clone = one.clone().max_attempts(3);
    let (a, b) = tokio::join!(
        one.run(|| work(&active, ms(30))),
        clone.run(|| work(&active, ms(30)))
    );
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(active.max(), 1, "a clone shares its original's semaphore");
}

/// Port of "semaphore_name function uses call args for keying": a name computed per call.
#[tokio::test(start_paused = true)]
async fn names_computed_from_call_arguments() {
    let policy = Retry::new().semaphore_limit(1);
    let active = Active::default();
    let keyed = |a: &str, b: &str| {
        let policy = policy.clone().semaphore_name(format!("{a}-{b}"));
        let active = active.clone();
        async move { policy.run(|| work(&active, ms(20))).await }
    };
    let (x, y) = tokio::join!(keyed("same", "key"), keyed("same", "key"));
    assert!(x.is_ok() && y.is_ok());
    assert_eq!(active.max(), 1);

    let active2 = Active::default();
    let keyed = |a: &str, b: &str| {
        let policy = policy.clone().semaphore_name(format!("{a}-{b}"));
        let active = active2.clone();
        async move { policy.run(|| work(&active, ms(20))).await }
    };
    let (x, y) = tokio::join!(keyed("a", "1"), keyed("b", "2"));
    assert!(x.is_ok() && y.is_ok());
    assert_eq!(active2.max(), 2);
}

#[tokio::test(start_paused = true)]
async fn two_limits_on_one_name_are_an_error_not_a_silent_share() {
    let first = Retry::new()
        .semaphore_limit(2)
        .semaphore_name("limit_mismatch");
    assert!(first.run(|| async { Ok::<_, Fail>(()) }).await.is_ok());

    // `first` is idle, but alive: the name stays claimed with limit 2.
    let second = Retry::new()
        .semaphore_limit(3)
        .semaphore_name("limit_mismatch");
    let active = Active::default();
    let err = second.run(|| work(&active, ms(1))).await.unwrap_err();
    assert!(
        matches!(
            &err,
            RetryError::LimitMismatch { semaphore, limit: 3, existing: 2 }
                if semaphore == "limit_mismatch"
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("must use the same limit"));
    assert_eq!(active.calls(), 0);

    // Once nobody uses the name with limit 2, limit 3 is free to take it.
    drop(first);
    assert!(second.run(|| work(&active, ms(1))).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn scopes_do_not_share_one_name() {
    let global = scoped(SemaphoreScope::Global, "scoped_name");
    let typed = scoped(SemaphoreScope::Type, "scoped_name").semaphore_limit(2);
    let active = Active::default();
    let worker = Worker {
        policy: typed,
        active: active.clone(),
    };
    // Same name, different scopes and limits: separate semaphores, no mismatch.
    let (a, b) = tokio::join!(global.run(|| work(&active, ms(30))), worker.run());
    assert!(a.is_ok() && b.is_ok(), "{b:?}");
    assert_eq!(active.max(), 2);
}
