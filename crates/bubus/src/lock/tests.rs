use super::*;
use std::sync::atomic::AtomicUsize;

#[test]
fn uncontended_acquire_and_release() {
    let lock = FairLock::new();
    let guard = lock.try_acquire().expect("free");
    assert!(!lock.is_free());
    assert!(lock.try_acquire().is_none());
    drop(guard);
    assert!(lock.is_free());
    assert!(lock.try_acquire().is_some());
}

#[tokio::test(flavor = "current_thread")]
async fn waiters_are_served_in_order_and_newcomers_do_not_barge() {
    let lock = Arc::new(FairLock::new());
    let order = Arc::new(Mutex::new(Vec::new()));
    let guard = lock.try_acquire().unwrap();
    let mut tasks = Vec::new();
    for i in 0..3 {
        let (lock, order) = (Arc::clone(&lock), Arc::clone(&order));
        tasks.push(tokio::spawn(async move {
            let _guard = lock.acquire().await;
            order.lock().push(i);
            tokio::task::yield_now().await;
        }));
        // Let it queue before the next one comes.
        tokio::task::yield_now().await;
    }
    drop(guard);
    // Released to the first waiter: a newcomer's try_acquire must fail.
    assert!(lock.try_acquire().is_none());
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock(), vec![0, 1, 2]);
    assert!(lock.is_free());
}

#[tokio::test(flavor = "current_thread")]
async fn a_dropped_waiter_leaves_the_queue_or_passes_the_lock_on() {
    let lock = FairLock::new();
    let guard = lock.try_acquire().unwrap();
    // Queued, then dropped before the release: the queue is empty again.
    let mut first = Box::pin(lock.acquire());
    assert!(futures_util::poll!(first.as_mut()).is_pending());
    drop(first);
    drop(guard);
    assert!(lock.is_free());

    // Queued, handed the lock, dropped before it noticed: the lock goes to the next one.
    let guard = lock.try_acquire().unwrap();
    let mut second = Box::pin(lock.acquire());
    let mut third = Box::pin(lock.acquire());
    assert!(futures_util::poll!(second.as_mut()).is_pending());
    assert!(futures_util::poll!(third.as_mut()).is_pending());
    drop(guard);
    drop(second);
    let third_guard = third.await;
    assert!(!lock.is_free());
    drop(third_guard);
    assert!(lock.is_free());
}

#[tokio::test(flavor = "current_thread")]
async fn a_loan_keeps_the_lock_from_being_passed_on_until_it_ends() {
    let lock = FairLock::new();
    assert!(FairLock::lend(&lock).is_err(), "a free lock is not lent");
    let guard = lock.try_acquire().unwrap();
    let loan = FairLock::lend(&lock).ok().unwrap();
    let nested = FairLock::lend(&lock).ok().unwrap();
    assert!(guard.is_contended(), "a holder with loans out lets go");
    let mut waiter = Box::pin(lock.acquire());
    assert!(futures_util::poll!(waiter.as_mut()).is_pending());
    // The holder lets go: the lock stays taken while loans are out.
    drop(guard);
    assert!(!lock.is_free());
    assert!(futures_util::poll!(waiter.as_mut()).is_pending());
    drop(loan);
    assert!(futures_util::poll!(waiter.as_mut()).is_pending());
    // The last loan passes it on.
    drop(nested);
    let guard = waiter.await;
    drop(guard);
    assert!(lock.is_free());

    // Loans that end before the holder lets go change nothing.
    let guard = lock.try_acquire().unwrap();
    drop(FairLock::lend(&lock).ok().unwrap());
    assert!(!guard.is_contended());
    drop(guard);
    assert!(lock.is_free());
}

#[test]
fn mutual_exclusion_across_threads() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .build()
        .unwrap();
    let lock = Arc::new(FairLock::new());
    let inside = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (lock, inside, total) =
                (Arc::clone(&lock), Arc::clone(&inside), Arc::clone(&total));
            tasks.push(tokio::spawn(async move {
                for _ in 0..2_000 {
                    let _guard = match lock.try_acquire() {
                        Some(guard) => guard,
                        None => lock.acquire().await,
                    };
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                    total.fetch_add(1, Ordering::Relaxed);
                    tokio::task::yield_now().await;
                    inside.fetch_sub(1, Ordering::SeqCst);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    assert_eq!(total.load(Ordering::Relaxed), 16_000);
    assert!(lock.is_free());
}
