//! The semaphore registry does not grow with instances or calls (reference gap §5.5: Python keeps
//! one semaphore per `self` forever, and `id()` reuse after garbage collection aliases them).
//!
//! The only test in its binary, because it counts the process's semaphores.

use std::sync::Arc;
use std::time::Duration;

use bubus::retry::{__semaphore_count, Retry, SemaphoreScope};
use tokio::sync::Notify;

#[derive(Debug, thiserror::Error)]
#[error("fail")]
struct Fail;

struct Service {
    id: usize,
}

impl Service {
    async fn call(&self, policy: &Retry) -> Result<usize, bubus::retry::RetryError<Fail>> {
        policy.run_on(self, || async { Ok(self.id) }).await
    }
}

#[tokio::test(start_paused = true)]
async fn per_instance_semaphores_go_away_with_their_calls() {
    let baseline = __semaphore_count();
    let policy = Retry::new()
        .semaphore_limit(1)
        .semaphore_scope(SemaphoreScope::Instance)
        .semaphore_name("registry_growth");

    for id in 0..1_000 {
        let service = Service { id };
        assert_eq!(service.call(&policy).await.ok(), Some(id));
    }
    assert_eq!(
        __semaphore_count(),
        baseline,
        "one semaphore per instance was kept"
    );

    // While a call runs, its instance's semaphore exists — and only then.
    let service = Arc::new(Service { id: 7 });
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let call = tokio::spawn({
        let (service, policy) = (Arc::clone(&service), policy.clone());
        let (entered, release) = (Arc::clone(&entered), Arc::clone(&release));
        async move {
            policy
                .run_on(&*service, || async {
                    entered.notify_one();
                    release.notified().await;
                    Ok::<_, Fail>(())
                })
                .await
        }
    });
    entered.notified().await;
    assert_eq!(__semaphore_count(), baseline + 1);
    release.notify_one();
    assert!(call.await.is_ok_and(|r| r.is_ok()));
    assert_eq!(__semaphore_count(), baseline);

    // A global semaphore stays while its policy lives (so its limit stays claimed), then goes.
    let global = Retry::new()
        .semaphore_limit(2)
        .semaphore_name("registry_global")
        .timeout(Duration::from_secs(1));
    assert!(global.run(|| async { Ok::<_, Fail>(()) }).await.is_ok());
    assert_eq!(__semaphore_count(), baseline + 1);
    let clone = global.clone();
    drop(global);
    assert_eq!(__semaphore_count(), baseline + 1, "a clone keeps it");
    drop(clone);
    assert_eq!(__semaphore_count(), baseline);
}
