use super::*;
use loom::future::block_on;
use loom::sync::atomic::AtomicUsize;
use loom::thread;

/// loom's exhaustive search, bounded as tokio bounds its own model tests: every interleaving
/// with up to three preemptions (the bugs loom finds need one or two).
fn model(test: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(test);
}

/// Takes the lock (fast path first, as the bus does), checks nobody else is inside, leaves.
fn critical_section(lock: &FairLock, inside: &AtomicUsize) {
    let _guard = match lock.try_acquire() {
        Some(guard) => guard,
        None => block_on(lock.acquire()),
    };
    assert_eq!(
        inside.fetch_add(1, Ordering::SeqCst),
        0,
        "two holders at once"
    );
    inside.fetch_sub(1, Ordering::SeqCst);
}

#[test]
fn two_threads_and_the_main_one_exclude_each_other_and_all_finish() {
    model(|| {
        let lock = Arc::new(FairLock::new());
        let inside = Arc::new(AtomicUsize::new(0));
        let others: Vec<_> = (0..2)
            .map(|_| {
                let (lock, inside) = (Arc::clone(&lock), Arc::clone(&inside));
                thread::spawn(move || critical_section(&lock, &inside))
            })
            .collect();
        critical_section(&lock, &inside);
        for other in others {
            other.join().unwrap();
        }
        assert!(
            lock.is_free(),
            "the lock is left free when everyone is done"
        );
    });
}

#[test]
fn a_loan_that_outlives_the_holder_keeps_the_next_holder_out() {
    model(|| {
        let lock = Arc::new(FairLock::new());
        let inside = Arc::new(AtomicUsize::new(0));
        let guard = lock.try_acquire().unwrap();
        // The holder's group (holder and borrower) counts as one inside the lock.
        inside.fetch_add(1, Ordering::SeqCst);
        let loan = FairLock::lend(Arc::clone(&lock)).ok().unwrap();
        let group = Arc::clone(&inside);
        let borrower = thread::spawn(move || {
            // Works under the loan, then ends it: the group leaves with it.
            group.fetch_sub(1, Ordering::SeqCst);
            drop(loan);
        });
        let (other, other_inside) = (Arc::clone(&lock), Arc::clone(&inside));
        let next = thread::spawn(move || critical_section(&other, &other_inside));
        // The holder lets go at any point relative to the other two.
        drop(guard);
        borrower.join().unwrap();
        next.join().unwrap();
        assert!(
            lock.is_free(),
            "the lock is left free when everyone is done"
        );
    });
}

#[test]
fn a_waiter_dropped_after_the_handover_passes_the_lock_on() {
    model(|| {
        let lock = Arc::new(FairLock::new());
        let guard = lock.try_acquire().unwrap();
        // Another thread queues for the lock (or gets it, if the release came first) and drops
        // its future without waiting, at any point relative to the release below.
        let other = Arc::clone(&lock);
        let dropper = thread::spawn(move || {
            let mut acquire = Box::pin(other.acquire());
            let waker = futures_util::task::noop_waker();
            let _ = acquire.as_mut().poll(&mut Context::from_waker(&waker));
            drop(acquire);
        });
        drop(guard);
        dropper.join().unwrap();
        // Whether the release found the waiter or not, the lock is free again.
        assert!(lock.is_free());
        assert!(lock.try_acquire().is_some());
    });
}
