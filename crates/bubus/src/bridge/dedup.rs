//! De-duplication by `event_id` at the receiver: an atomic claim per event.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use parking_lot::Mutex;
use rustc_hash::FxHashSet;
use uuid::Uuid;

use super::transport::{BoxFuture, TransportError};

/// What [`DedupStore::claim`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// The caller holds the claim now: it runs the handlers, then
    /// [`confirm`](DedupStore::confirm)s (they completed) or
    /// [`release`](DedupStore::release)s (they failed).
    Won,
    /// The event was handled already (a confirmed claim): skip it.
    Done,
    /// Another receiver holds a live claim (its handlers are running): hand this copy back and
    /// try again after `retry_after` — by then the holder confirmed, released, or its claim
    /// expired and can be taken over.
    Held {
        /// When the holder's claim expires if it is not renewed.
        retry_after: Duration,
    },
}

/// Where a bridge records which events are being handled and which were handled, so a message
/// the engine delivers again (at-least-once), or delivers to two members of a group at once,
/// reaches the handlers once.
///
/// For each received event the bridge [`claim`](Self::claim)s its id before the handlers run.
/// The claim is atomic: of two receivers claiming one id at once, one wins; the other sees
/// [`Claim::Held`] and hands its copy back for later. The winner
/// [`renew`](Self::renew)s the claim while the handlers run (every third of
/// [`lease`](Self::lease)), then [`confirm`](Self::confirm)s it once the event completed, or
/// [`release`](Self::release)s it when the handlers failed (the redelivery can then be claimed
/// at once). A claim whose holder died expires after the lease and is taken over.
///
/// The default is [`MemoryDedup`], a bounded window in the process. Durable transports offer
/// stores persisted on the server (Redis keys, a JetStream key-value bucket, a PostgreSQL
/// table), shared by every member of a consumer group and surviving restarts.
///
/// A holder cut off from the store for longer than the lease cannot renew: its claim can be
/// taken over while its handlers still run (a lease is the bound of what any store can promise
/// across a partition). Stores that compare expiry times written by different machines assume
/// their clocks agree to well within the lease.
pub trait DedupStore: Send + Sync + fmt::Debug + 'static {
    /// Claims `event_id` for this receiver, atomically: [`Claim::Won`] when it was free (or its
    /// claim expired, or this store already held it), [`Claim::Done`] when it was confirmed
    /// before, [`Claim::Held`] when another receiver holds it.
    fn claim(&self, event_id: Uuid) -> BoxFuture<'_, Result<Claim, TransportError>>;

    /// Extends this receiver's claim by a lease; `Ok(false)` when it no longer holds it (it
    /// expired and was taken over). The default does nothing (claims that do not expire).
    fn renew(&self, event_id: Uuid) -> BoxFuture<'_, Result<bool, TransportError>> {
        let _ = event_id;
        Box::pin(async { Ok(true) })
    }

    /// Records that the event was handled (its claim becomes [`Claim::Done`] for everyone).
    fn confirm(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>>;

    /// Gives up this receiver's claim (the handlers failed), so the next delivery can be
    /// claimed without waiting for the lease.
    fn release(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>>;

    /// How long a claim lasts without [`renew`](Self::renew) (`None`: until confirmed or
    /// released, as for a store that lives in the receiving process).
    fn lease(&self) -> Option<Duration> {
        None
    }
}

/// The ids handled in this process (the last `capacity` of them; the oldest is forgotten
/// first) and the ids being handled now.
///
/// Claims live as long as the process, so they need no lease: a copy of an event that is being
/// handled here is [`Claim::Held`] until the first copy is confirmed or released.
///
/// ```
/// use bubus::bridge::{Claim, DedupStore, MemoryDedup};
/// use uuid::Uuid;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::bridge::TransportError> {
/// let store = MemoryDedup::new(2);
/// let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
/// assert_eq!(store.claim(a).await?, Claim::Won);
/// assert!(matches!(store.claim(a).await?, Claim::Held { .. })); // a second copy, meanwhile
/// store.confirm(a).await?;
/// assert_eq!(store.claim(a).await?, Claim::Done);
/// for id in [b, c] {
///     store.claim(id).await?;
///     store.confirm(id).await?; // `a` falls out of the window
/// }
/// assert_eq!(store.claim(a).await?, Claim::Won);
/// # Ok(()) }
/// ```
pub struct MemoryDedup {
    capacity: usize,
    window: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    ids: FxHashSet<Uuid>,
    order: VecDeque<Uuid>,
    /// Claimed, not yet confirmed or released (bounded by the events in flight).
    claimed: FxHashSet<Uuid>,
}

impl MemoryDedup {
    /// The default window: the last 65 536 event ids (about 2 MB).
    pub const DEFAULT_CAPACITY: usize = 65_536;

    /// How long a [`Claim::Held`] copy is told to wait: the first copy's handlers run here.
    const HELD_RETRY: Duration = Duration::from_secs(1);

    /// A window of the last `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        MemoryDedup {
            capacity: capacity.max(1),
            window: Mutex::new(Window::default()),
        }
    }

    /// How many handled ids it holds now.
    pub fn len(&self) -> usize {
        self.window.lock().order.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records `id` as handled (without a claim).
    pub(crate) fn insert(&self, id: Uuid) {
        let mut w = self.window.lock();
        w.claimed.remove(&id);
        if !w.ids.insert(id) {
            return;
        }
        w.order.push_back(id);
        while w.order.len() > self.capacity {
            if let Some(old) = w.order.pop_front() {
                w.ids.remove(&old);
            }
        }
    }

    /// The claim, synchronously.
    pub(crate) fn try_claim(&self, id: Uuid) -> Claim {
        let mut w = self.window.lock();
        if w.ids.contains(&id) {
            Claim::Done
        } else if w.claimed.insert(id) {
            Claim::Won
        } else {
            Claim::Held {
                retry_after: Self::HELD_RETRY,
            }
        }
    }

    /// Drops a claim without recording the id.
    pub(crate) fn unclaim(&self, id: Uuid) {
        self.window.lock().claimed.remove(&id);
    }
}

impl Default for MemoryDedup {
    fn default() -> Self {
        MemoryDedup::new(Self::DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for MemoryDedup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let w = self.window.lock();
        f.debug_struct("MemoryDedup")
            .field("capacity", &self.capacity)
            .field("len", &w.order.len())
            .field("claimed", &w.claimed.len())
            .finish()
    }
}

impl DedupStore for MemoryDedup {
    fn claim(&self, event_id: Uuid) -> BoxFuture<'_, Result<Claim, TransportError>> {
        let claim = self.try_claim(event_id);
        Box::pin(async move { Ok(claim) })
    }

    fn confirm(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        self.insert(event_id);
        Box::pin(async { Ok(()) })
    }

    fn release(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        self.unclaim(event_id);
        Box::pin(async { Ok(()) })
    }
}
