//! History TTLs (abxbus 2.5): how long a completed event stays in a bus's history
//! (`event_ttl`), and how long the results a bus's handlers left on it stay (`event_result_ttl`,
//! per handler `handler_result_ttl`).
//!
//! Meanings, as in abxbus 2.5: seconds after the event completed; `0` removes at completion;
//! a negative value means never; unset falls back — a handler's `handler_result_ttl`, else the
//! event's `event_result_ttl`, else the bus's; the event's `event_ttl`, else the bus's. A bus
//! only ever removes its own history entry and its own handlers' results. Expiry is applied at
//! the bus's own cleanup points — a dispatch, a completion, reading the history (`event_history`,
//! `find`, `filter`, …) — not by a timer, so nothing runs while the bus is left alone.
//!
//! Event and handler values travel on the wire as the 2.5 keys (`event_ttl`,
//! `event_result_ttl`, `handler_result_ttl`), which this version keeps with the other keys it
//! carries for newer runtimes and writes back.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::time::Instant;

use super::{BusInner, BusState};
use crate::event::Ttl;
use crate::event::inner::{EventInner, EventState};
use crate::result::ResultRecord;

/// A TTL key of a JSON map (`null` or absent: unset).
fn ttl_of_key(map: Option<&Map<String, Value>>, key: &str) -> Option<Ttl> {
    map.and_then(|m| m.get(key))
        .and_then(Value::as_f64)
        .map(Ttl::from_secs)
}

impl EventState {
    /// The event's own `event_ttl` / `event_result_ttl` (kept with its 2.5 wire keys).
    fn own_ttl(&self, key: &str) -> Option<Ttl> {
        ttl_of_key(self.wire_extra().map(|e| &e.unknown), key)
    }

    /// Whether the event sets a TTL of its own.
    #[inline(always)]
    pub(crate) fn has_own_ttl(&self) -> bool {
        // Most events carry no wire metadata at all: no key to look up (one inlined check,
        // and the lookups out of line).
        self.wire_extra().is_some() && self.sets_own_ttl()
    }

    /// Whether the event's wire metadata sets a TTL ([`has_own_ttl`](Self::has_own_ttl)).
    #[inline(never)]
    fn sets_own_ttl(&self) -> bool {
        self.own_ttl("event_ttl").is_some() || self.own_ttl("event_result_ttl").is_some()
    }

    /// Sets one of the event's TTL keys (`None`: unset).
    pub(crate) fn set_own_ttl(&mut self, key: &str, ttl: Option<Ttl>) {
        let extra = self.wire_extra_mut();
        let value = ttl.map_or(Value::Null, |ttl| Value::from(ttl.as_secs()));
        extra.unknown.insert(key.to_owned(), value);
    }
}

/// A result's `handler_result_ttl`, from its handler.
fn handler_ttl(record: &ResultRecord) -> Option<Ttl> {
    ttl_of_key(record.handler.wire_extra.as_deref(), "handler_result_ttl")
}

impl BusInner {
    /// Whether TTLs can apply on this bus (bus options, or a handler with a result TTL).
    pub(crate) fn may_expire(&self) -> bool {
        self.config.event_ttl.is_some()
            || self.config.event_result_ttl.is_some()
            || self
                .result_ttl_handlers
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The event's TTL on this bus, and its results' (index, TTL) for this bus's handlers.
    fn ttls(&self, es: &EventState) -> (Option<Duration>, Vec<(usize, Duration)>) {
        let event_ttl = es
            .own_ttl("event_ttl")
            .or(self.config.event_ttl)
            .and_then(Ttl::duration);
        let event_result_ttl = es
            .own_ttl("event_result_ttl")
            .or(self.config.event_result_ttl);
        let results = es
            .results
            .iter()
            .enumerate()
            .filter(|(_, r)| r.handler.bus_id == self.id)
            .filter_map(|(i, r)| Some((i, handler_ttl(r).or(event_result_ttl)?.duration()?)))
            .collect();
        (event_ttl, results)
    }

    /// The earliest TTL of the event on this bus (`None`: nothing expires).
    pub(crate) fn earliest_ttl(&self, event: &EventInner) -> Option<Duration> {
        let (event_ttl, results) = self.ttls(&event.state.lock());
        results
            .into_iter()
            .map(|(_, ttl)| ttl)
            .chain(event_ttl)
            .min()
    }

    /// Applies the TTLs that are due: removes expired results of this bus's handlers from their
    /// events, and expired events from the history.
    #[inline]
    pub(crate) fn expire(&self, st: &mut BusState) {
        // Called on every dispatch and completion: with no TTL tracked (the usual case), only
        // this check, inlined into the caller.
        if st.history.has_expiries() {
            self.expire_due(st);
        }
    }

    /// [`expire`](Self::expire) once some TTL is tracked.
    #[cold]
    #[inline(never)]
    fn expire_due(&self, st: &mut BusState) {
        let now = Instant::now();
        for seq in st.history.due(now) {
            let (Some(event), Some(completed)) = (
                st.history.get(seq).map(Arc::clone),
                st.history.completed_at(seq),
            ) else {
                continue;
            };
            let age = now.saturating_duration_since(completed);
            let next = {
                let mut es = event.state.lock();
                let (event_ttl, results) = self.ttls(&es);
                let expired: Vec<usize> = results
                    .iter()
                    .filter(|(_, ttl)| *ttl <= age)
                    .map(|(i, _)| *i)
                    .collect();
                if !expired.is_empty() {
                    let mut index = 0;
                    es.results.retain(|_| {
                        let keep = !expired.contains(&index);
                        index += 1;
                        keep
                    });
                }
                if event_ttl.is_some_and(|ttl| ttl <= age) {
                    None
                } else {
                    let remaining = results
                        .iter()
                        .filter(|(_, ttl)| *ttl > age)
                        .map(|(_, ttl)| *ttl)
                        .chain(event_ttl);
                    Some(remaining.min())
                }
            };
            match next {
                None => {
                    st.history.remove(seq);
                }
                Some(Some(ttl)) => st.history.expire_at(seq, completed + ttl),
                Some(None) => {}
            }
        }
    }
}
