//! The future waiters of `find`/`expect` on one bus: registered by a query, resolved by
//! `dispatch` (before the event is processed) or released when the bus stops.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::sync::oneshot;

use crate::bus::BusInner;
use crate::event::AnyEvent;
use crate::event::inner::EventInner;

/// A future-event waiter registered on a bus: resolved when a matching event is dispatched there
/// (before it is processed), or with `None` when the bus stops.
pub(crate) struct FindWaiter {
    /// Its key in the bus's [`FindWaiters`].
    pub(super) key: u64,
    pub(super) pattern: Arc<str>,
    pub(super) matches: Box<dyn Fn(&AnyEvent) -> bool + Send + Sync>,
    pub(super) tx: Mutex<Option<oneshot::Sender<Option<AnyEvent>>>>,
}

impl FindWaiter {
    fn resolve(&self, event: Option<AnyEvent>) -> bool {
        match self.tx.lock().take() {
            Some(tx) => tx.send(event).is_ok(),
            None => false,
        }
    }
}

/// A bus's future waiters, by pattern and key: a dispatch looks only at the waiters of its
/// event's type and of `"*"`, and removing one (resolved, timed out, dropped) is O(1), so a
/// million waiters that time out cost a million small removals, and waiters for other types
/// cost a dispatch nothing.
#[derive(Default)]
pub(crate) struct FindWaiters {
    by_pattern: FxHashMap<Arc<str>, FxHashMap<u64, Arc<FindWaiter>>>,
    next_key: u64,
}

impl BusInner {
    /// Hands a just-dispatched event to every future waiter it matches. Predicates run without
    /// any bus lock held, so they may use the bus.
    pub(crate) fn resolve_find_waiters(&self, event: &Arc<EventInner>) {
        if self.waiter_count.load(Ordering::Acquire) == 0 {
            return;
        }
        let candidates: Vec<Arc<FindWaiter>> = {
            let waiters = self.find_waiters.lock();
            let of = |pattern: &str| {
                waiters
                    .by_pattern
                    .get(pattern)
                    .into_iter()
                    .flat_map(|m| m.values())
            };
            of(event.event_type()).chain(of("*")).cloned().collect()
        };
        if candidates.is_empty() {
            return;
        }
        let any = AnyEvent::from_inner(Arc::clone(event));
        for waiter in candidates {
            if (waiter.matches)(&any) && waiter.resolve(Some(any.clone())) {
                self.remove_waiter(&waiter.pattern, waiter.key);
            }
        }
    }

    /// Registers a waiter built by `make` from its key.
    pub(super) fn add_waiter(&self, make: impl FnOnce(u64) -> FindWaiter) -> Arc<FindWaiter> {
        let mut waiters = self.find_waiters.lock();
        let key = waiters.next_key;
        waiters.next_key += 1;
        let waiter = Arc::new(make(key));
        waiters
            .by_pattern
            .entry(Arc::clone(&waiter.pattern))
            .or_default()
            .insert(key, Arc::clone(&waiter));
        self.waiter_count.fetch_add(1, Ordering::AcqRel);
        waiter
    }

    fn remove_waiter(&self, pattern: &str, key: u64) {
        let mut waiters = self.find_waiters.lock();
        let Some(of_pattern) = waiters.by_pattern.get_mut(pattern) else {
            return;
        };
        if of_pattern.remove(&key).is_some() {
            self.waiter_count.fetch_sub(1, Ordering::AcqRel);
        }
        if of_pattern.is_empty() {
            waiters.by_pattern.remove(pattern);
        }
    }

    /// Releases every waiter with `None` (the bus stopped); producers waiting for room in the
    /// history retry, and find the bus stopped.
    pub(crate) fn release_waiters(&self) {
        self.room.notify_waiters();
        let waiters = std::mem::take(&mut self.find_waiters.lock().by_pattern);
        self.waiter_count.store(0, Ordering::Release);
        for waiter in waiters.into_values().flat_map(HashMap::into_values) {
            waiter.resolve(None);
        }
    }
}

/// A registered future waiter: removed from the bus when dropped, and the channel it resolves.
pub(super) type Registered = (WaiterRegistration, oneshot::Receiver<Option<AnyEvent>>);

/// Removes a future waiter from its bus when the find resolves, times out or is dropped.
pub(super) struct WaiterRegistration {
    pub(super) bus: Arc<BusInner>,
    pub(super) pattern: Arc<str>,
    pub(super) key: u64,
}

impl Drop for WaiterRegistration {
    fn drop(&mut self) {
        self.bus.remove_waiter(&self.pattern, self.key);
    }
}
