//! De-duplication by `event_id` at the receiver.

use std::collections::VecDeque;
use std::fmt;

use parking_lot::Mutex;
use rustc_hash::FxHashSet;
use uuid::Uuid;

use super::transport::{BoxFuture, TransportError};

/// Where a bridge remembers the ids of events it already handled. The bridge asks
/// [`seen`](Self::seen) before dispatching a received event and calls
/// [`record`](Self::record) once the event completed on the receiving bus, so a message the
/// engine delivers again (at-least-once) reaches the handlers once.
///
/// The default is [`MemoryDedup`], a bounded window. Durable transports offer persisted stores
/// (a Redis set, a PostgreSQL table) so a restarted receiver still knows what it handled.
pub trait DedupStore: Send + Sync + fmt::Debug + 'static {
    /// Whether the event was already handled.
    fn seen(&self, event_id: Uuid) -> BoxFuture<'_, Result<bool, TransportError>>;

    /// Remembers that the event was handled.
    fn record(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>>;
}

/// The last `capacity` handled event ids, in memory (the oldest is forgotten first).
///
/// ```
/// use bubus::bridge::{DedupStore, MemoryDedup};
/// use uuid::Uuid;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), bubus::bridge::TransportError> {
/// let store = MemoryDedup::new(2);
/// let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
/// store.record(a).await?;
/// assert!(store.seen(a).await?);
/// store.record(b).await?;
/// store.record(c).await?; // `a` falls out of the window
/// assert!(!store.seen(a).await?);
/// assert!(store.seen(c).await?);
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
}

impl MemoryDedup {
    /// The default window: the last 65 536 event ids (about 2 MB).
    pub const DEFAULT_CAPACITY: usize = 65_536;

    /// A window of the last `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        MemoryDedup {
            capacity: capacity.max(1),
            window: Mutex::new(Window::default()),
        }
    }

    /// How many ids it holds now.
    pub fn len(&self) -> usize {
        self.window.lock().order.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn contains(&self, id: Uuid) -> bool {
        self.window.lock().ids.contains(&id)
    }

    pub(crate) fn insert(&self, id: Uuid) {
        let mut w = self.window.lock();
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
}

impl Default for MemoryDedup {
    fn default() -> Self {
        MemoryDedup::new(Self::DEFAULT_CAPACITY)
    }
}

impl fmt::Debug for MemoryDedup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryDedup")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl DedupStore for MemoryDedup {
    fn seen(&self, event_id: Uuid) -> BoxFuture<'_, Result<bool, TransportError>> {
        let hit = self.contains(event_id);
        Box::pin(async move { Ok(hit) })
    }

    fn record(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        self.insert(event_id);
        Box::pin(async { Ok(()) })
    }
}
