//! A fair async lock whose uncontended acquire and release are one atomic operation each.
//!
//! The event locks (bus-serial, global-serial) and each event's serial-handler lock are taken
//! and released for every event, almost always uncontended. `tokio::sync::Semaphore` takes its
//! waiter-list mutex on every release; this lock only does so when someone is waiting. Waiters
//! are served in arrival order and a released lock is handed straight to the first of them, so a
//! newcomer never slips in ahead of a waiter.
//!
//! A holder can also *lend* the lock ([`FairLock::lend`]): a queue-jump that processes a child
//! event under the lock its awaiting handler's chain holds takes a loan, so that if the awaiter
//! gives up and the jump goes on by itself, the holder's release waits for the loan to end — the
//! lock is only passed on once neither the holder nor any borrower needs it.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};

use sync::{Arc, AtomicBool, AtomicUsize, AtomicWaker, Mutex, Ordering};

/// The synchronisation primitives the lock is built from: the real ones, or loom's when the
/// crate is built for the model test (`RUSTFLAGS="--cfg bubus_loom"`, see `lock/loom_model.rs`).
#[cfg(not(bubus_loom))]
mod sync {
    pub(super) use futures_util::task::AtomicWaker;
    pub(super) use parking_lot::Mutex;
    pub(super) use std::sync::Arc;
    pub(super) use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
}

#[cfg(bubus_loom)]
mod sync {
    pub(super) use loom::sync::Arc;
    pub(super) use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// `futures_util`'s shape (register by reference) over loom's waker cell.
    #[derive(Debug)]
    pub(super) struct AtomicWaker(loom::future::AtomicWaker);

    impl AtomicWaker {
        pub(super) fn new() -> Self {
            AtomicWaker(loom::future::AtomicWaker::new())
        }

        pub(super) fn register(&self, waker: &std::task::Waker) {
            self.0.register_by_ref(waker);
        }

        pub(super) fn wake(&self) {
            self.0.wake();
        }
    }

    /// `parking_lot`'s shape (no poisoning) over loom's mutex.
    #[derive(Debug)]
    pub(super) struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(super) fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }

        pub(super) fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }
    }
}

/// Someone holds the lock.
const LOCKED: usize = 1;
/// Someone waits for it (only ever set together with `LOCKED`).
const QUEUED: usize = 2;
/// The holder let go while loans were out: the last loan to end releases the lock.
const OWNER_DONE: usize = 4;
/// One loan out (the rest of the word counts them; only ever set together with `LOCKED`).
const LOAN: usize = 8;

pub(crate) struct FairLock {
    state: AtomicUsize,
    /// `None` until someone first waits: most locks never see a waiter, and an empty
    /// `VecDeque` still costs a call to its drop; `None` is one compare. Boxed: a lock is in
    /// every event, and the box is one word where the queue is four.
    // The box is the point (a thin pointer for the usual lock nobody waits for).
    #[allow(clippy::box_collection)]
    waiters: Mutex<Option<Box<VecDeque<Arc<Waiter>>>>>,
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

    /// Whether someone is waiting for the lock this guard holds, or has it on loan: either way
    /// the holder should let go rather than keep it for more work.
    pub(crate) fn is_contended(&self) -> bool {
        self.lock.state.load(Ordering::Acquire) & !LOCKED != 0
    }
}

/// A loan of a held lock ([`FairLock::lend`]); the lock is not passed on before it is dropped.
#[must_use = "the loan ends when it is dropped"]
pub(crate) struct Loan<L: Deref<Target = FairLock>> {
    lock: L,
}

impl<L: Deref<Target = FairLock>> Drop for Loan<L> {
    fn drop(&mut self) {
        self.lock.end_loan();
    }
}

impl FairLock {
    pub(crate) fn new() -> Self {
        FairLock {
            state: AtomicUsize::new(0),
            waiters: Mutex::new(None),
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

    /// Lends the lock, which whoever calls this knows to be held (by itself or by a chain of
    /// callers that waits for it): until the loan is dropped, releasing the lock only marks the
    /// holder done, and the last loan to end releases it. `Err` gives `lock` back if it is not
    /// held.
    pub(crate) fn lend<L: Deref<Target = FairLock>>(lock: L) -> Result<Loan<L>, L> {
        let mut state = lock.state.load(Ordering::Relaxed);
        loop {
            if state & LOCKED == 0 {
                return Err(lock);
            }
            match lock.state.compare_exchange_weak(
                state,
                state + LOAN,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(Loan { lock }),
                Err(actual) => state = actual,
            }
        }
    }

    fn end_loan(&self) {
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let last_after_holder = state & OWNER_DONE != 0 && state & !(LOAN - 1) == LOAN;
            let new = if last_after_holder {
                state - LOAN - OWNER_DONE
            } else {
                state - LOAN
            };
            match self
                .state
                .compare_exchange_weak(state, new, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        if state & OWNER_DONE != 0 && state & !(LOAN - 1) == LOAN {
            // The holder is gone and this was the last loan: release on its behalf.
            self.release();
        }
    }

    /// Releases the lock: inlined for the usual case, held with no loans and no waiters (one
    /// compare-and-swap where the call to [`release_contended`](Self::release_contended) was
    /// ~11 instructions per event).
    #[inline]
    fn release(&self) {
        if self
            .state
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            self.release_contended();
        }
    }

    /// [`release`](Self::release) with loans out or waiters queued.
    #[cold]
    #[inline(never)]
    fn release_contended(&self) {
        // Loans out: the last one releases. (New loans only come from under a holder or a
        // borrower, so once there are none, none can appear while this release goes on.)
        let mut state = self.state.load(Ordering::Relaxed);
        while state >= LOAN {
            match self.state.compare_exchange_weak(
                state,
                state | OWNER_DONE,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => state = actual,
            }
        }
        let mut waiters = self.waiters.lock();
        match waiters.as_mut().and_then(|queue| queue.pop_front()) {
            Some(next) => {
                // Handed over: the lock stays held, now by `next`.
                if waiters.as_deref().is_none_or(VecDeque::is_empty) {
                    self.state.fetch_and(!QUEUED, Ordering::Release);
                }
                drop(waiters);
                next.granted.store(true, Ordering::Release);
                next.waker.wake();
            }
            None => {
                self.state.fetch_and(!(LOCKED | QUEUED), Ordering::Release);
            }
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
        waiters
            .get_or_insert_with(Box::default)
            .push_back(Arc::clone(&waiter));
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
        let mut guard = self.lock.waiters.lock();
        // Out of the queue if still in it (the queue was made when it first waited): whether
        // that emptied the queue.
        let left = guard.as_mut().and_then(|waiters| {
            let pos = waiters.iter().position(|w| Arc::ptr_eq(w, &waiter))?;
            waiters.remove(pos);
            Some(waiters.is_empty())
        });
        match left {
            Some(emptied) => {
                if emptied {
                    self.lock.state.fetch_and(!QUEUED, Ordering::Release);
                }
            }
            None => {
                // Already handed over to this waiter: pass it on.
                drop(guard);
                self.lock.release();
            }
        }
    }
}

#[cfg(all(test, not(bubus_loom)))]
mod tests;

/// Every interleaving of a few threads contending for the lock, explored by loom (as tokio checks
/// its semaphore): mutual exclusion, no lost wake-up, and a waiter that is dropped after the lock
/// was handed to it passes the lock on. Run with
/// `RUSTFLAGS="--cfg bubus_loom" cargo test -p bubus --lib --release loom_model`.
#[cfg(all(test, bubus_loom))]
mod loom_model;
