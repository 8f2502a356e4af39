//! The bounded event history.

use super::{BusInner, BusState, remove_at};
use crate::error::DispatchError;

impl BusInner {
    /// Makes room for one more event in a history bounded to `max` (> 0) entries: evicts the oldest
    /// completed events first; if none has completed, evicts the oldest events anyway when
    /// `max_history_drop` is set, else refuses.
    pub(crate) fn make_room(&self, st: &mut BusState, max: usize) -> Result<(), DispatchError> {
        while st.history.len() >= max {
            if let Some(pos) = st.history.iter().position(|e| e.is_complete()) {
                remove_at(&mut st.history, pos);
            } else if self.config.max_history_drop {
                if !st.warned_drop {
                    st.warned_drop = true;
                    tracing::warn!(
                        bus = %self.label,
                        max_history_size = max,
                        "history is full of unfinished events; dropping the oldest entries \
                         (even uncompleted events) because max_history_drop is set"
                    );
                }
                st.history.pop_front();
            } else {
                return Err(DispatchError::HistoryFull {
                    bus: self.label.to_string(),
                    size: st.history.len(),
                    max,
                });
            }
        }
        Ok(())
    }
}
