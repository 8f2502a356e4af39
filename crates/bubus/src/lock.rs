//! A fair async lock whose uncontended acquire and release are one atomic operation each.
//!
//! The event locks (bus-serial, global-serial) and each event's serial-handler lock are taken
//! and released for every event, almost always uncontended. `tokio::sync::Semaphore` takes its
//! waiter-list mutex on every release; this lock only does so when someone is waiting. Waiters
//! are served in arrival order and a released lock is handed straight to the first of them, so a
//! newcomer never slips in ahead of a waiter.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

/// Someone holds the lock.
const LOCKED: u8 = 1;
/// Someone waits for it (only ever set together with `LOCKED`).
const QUEUED: u8 = 2;

pub(crate) struct FairLock {
    state: AtomicU8,
    waiters: Mutex<VecDeque<Arc<Waiter>>>,
}

struct Waiter {
    granted: AtomicBool,
    waker: AtomicWaker,
}

/// Holding the lock; dropping it releases it (to the first waiter, if any).
#[must_use = "the lock is released when the guard is dropped"]
pub(crate) struct FairGuard<'a> {
    lock: &'a FairLock,
}

impl Drop for FairGuard<'_> {
    fn drop(&mut self) {
        self.lock.release();
    }
}

impl FairGuard<'_> {
    /// Whether this guard holds `lock`.
    pub(crate) fn holds(&self, lock: &FairLock) -> bool {
        std::ptr::eq(self.lock, lock)
    }

    /// Whether someone is waiting for the lock this guard holds.
    pub(crate) fn is_contended(&self) -> bool {
        self.lock.state.load(Ordering::Acquire) & QUEUED != 0
    }
}

impl FairLock {
    pub(crate) fn new() -> Self {
        FairLock {
            state: AtomicU8::new(0),
            waiters: Mutex::new(VecDeque::new()),
        }
    }

    /// Takes the lock if it is free and nobody waits for it.
    pub(crate) fn try_acquire(&self) -> Option<FairGuard<'_>> {
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| FairGuard { lock: self })
    }

    /// Whether [`try_acquire`](Self::try_acquire) would succeed right now.
    pub(crate) fn is_free(&self) -> bool {
        self.state.load(Ordering::Acquire) == 0
    }

    /// Waits for the lock, behind everyone already waiting.
    ///
    /// Cancel safe: dropping the future leaves the queue (or passes the lock on, if it had
    /// already been handed over).
    pub(crate) fn acquire(&self) -> Acquire<'_> {
        Acquire {
            lock: self,
            waiter: None,
        }
    }

    fn release(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
        let mut waiters = self.waiters.lock();
        match waiters.pop_front() {
            Some(next) => {
                // Handed over: the lock stays held, now by `next`.
                if waiters.is_empty() {
                    self.state.store(LOCKED, Ordering::Release);
                }
                drop(waiters);
                next.granted.store(true, Ordering::Release);
                next.waker.wake();
            }
            None => self.state.store(0, Ordering::Release),
        }
    }
}

/// The future of [`FairLock::acquire`].
pub(crate) struct Acquire<'a> {
    lock: &'a FairLock,
    waiter: Option<Arc<Waiter>>,
}

impl<'a> Future for Acquire<'a> {
    type Output = FairGuard<'a>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<FairGuard<'a>> {
        let lock = self.lock;
        if let Some(waiter) = &self.waiter {
            waiter.waker.register(cx.waker());
            if waiter.granted.load(Ordering::Acquire) {
                self.waiter = None;
                return Poll::Ready(FairGuard { lock });
            }
            return Poll::Pending;
        }
        if let Some(guard) = lock.try_acquire() {
            return Poll::Ready(guard);
        }
        let mut waiters = lock.waiters.lock();
        let mut state = lock.state.load(Ordering::Relaxed);
        loop {
            // Under the waiter lock nobody can hand the lock over, so either it is free (take
            // it) or it is held and this waiter queues (set QUEUED so its release comes here).
            let (expected, new) = if state == 0 {
                (0, LOCKED)
            } else {
                (state, state | QUEUED)
            };
            match lock
                .state
                .compare_exchange(expected, new, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) if new == LOCKED => return Poll::Ready(FairGuard { lock }),
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        let waiter = Arc::new(Waiter {
            granted: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        });
        waiter.waker.register(cx.waker());
        waiters.push_back(Arc::clone(&waiter));
        drop(waiters);
        self.waiter = Some(waiter);
        Poll::Pending
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        let Some(waiter) = self.waiter.take() else {
            return;
        };
        let mut waiters = self.lock.waiters.lock();
        match waiters.iter().position(|w| Arc::ptr_eq(w, &waiter)) {
            Some(pos) => {
                waiters.remove(pos);
                if waiters.is_empty() {
                    self.lock.state.fetch_and(!QUEUED, Ordering::Release);
                }
            }
            None => {
                // Already handed over to this waiter: pass it on.
                drop(waiters);
                self.lock.release();
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
