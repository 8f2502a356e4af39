//! The durable mode's de-duplication, persisted in the `T_dedup` table without a query per
//! event.
//!
//! The ack of a delivery deletes it and records `(group, event_id)` in one statement, and every
//! claim returns, per row, whether the group already completed that id. So the store the bridge
//! asks ([`PgDedup`]) only needs what the claims said, plus a window of the ids completed in
//! this process (for a second delivery that arrives while the first is still being acked).

use std::collections::HashSet;

use bubus::bridge::{BoxFuture, DedupStore, MemoryDedup, TransportError};
use parking_lot::Mutex;
use uuid::Uuid;

/// A [`DedupStore`] backed by the durable tables: ids the group completed in any process, as
/// the claims report them, and a window of the ids completed here. Get it from
/// [`PgTransport::dedup`](crate::PgTransport::dedup); [`PgTransport::bridge`](crate::PgTransport::bridge)
/// installs it.
#[derive(Debug, Default)]
pub struct PgDedup {
    done_elsewhere: Mutex<HashSet<Uuid>>,
    window: MemoryDedup,
}

impl PgDedup {
    /// Called by the claim loop for a claimed row whose id the group already completed.
    pub(crate) fn mark_done(&self, event_id: &str) {
        if let Ok(id) = Uuid::parse_str(event_id) {
            self.done_elsewhere.lock().insert(id);
        }
    }
}

impl DedupStore for PgDedup {
    fn seen(&self, event_id: Uuid) -> BoxFuture<'_, Result<bool, TransportError>> {
        // Taken out when asked: the set holds only deliveries on their way to the bridge.
        let known = self.done_elsewhere.lock().remove(&event_id);
        Box::pin(async move {
            if known {
                return Ok(true);
            }
            self.window.seen(event_id).await
        })
    }

    fn record(&self, event_id: Uuid) -> BoxFuture<'_, Result<(), TransportError>> {
        // The table row is written by the ack itself.
        self.window.record(event_id)
    }
}
