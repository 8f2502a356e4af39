//! The bounded event history of one bus, and how it makes room.
//!
//! Entries are kept in dispatch order. Eviction takes, oldest first, completed events, then
//! events this bus has started, then events still queued here — without scanning: besides the
//! entries, the history keeps the sequence numbers of its completed and of its started events in
//! the order they reached that state, and consumes them from the front. A sequence number whose
//! entry is gone by then (evicted another way, expired) is skipped, and each is pushed once, so
//! making room costs O(1) amortised (plus an O(log n) lookup) whatever the history holds.

use std::collections::{BinaryHeap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::{BusInner, BusState};
use crate::error::DispatchError;
use crate::event::inner::EventInner;

/// One history entry: its sequence number and the event, `None` once removed (a tombstone,
/// dropped when it reaches the front or when tombstones outnumber live entries).
struct Entry {
    seq: u64,
    event: Option<Arc<EventInner>>,
    /// When the event was created, on tokio's clock (`find`'s past windows measure from it).
    created: tokio::time::Instant,
    /// This entry's share of the bus's [memory estimate](crate::memory).
    bytes: usize,
    /// Whether the bus heard of its completion, and when if it has a TTL.
    finished: Finished,
}

/// Whether the bus heard of an entry's completion (one field, in the instant's spare values).
#[derive(Clone, Copy)]
enum Finished {
    No,
    Yes,
    /// With a TTL: when (TTLs count from there).
    At(tokio::time::Instant),
}

/// When `event` was created, on tokio's clock: now, less its age by its `event_created_at` — so
/// an event restored from a snapshot or carried in from elsewhere keeps the age it had, and the
/// time from here on is counted on tokio's clock (which a test may pause and advance). Out of
/// line: a new event's dispatch passes the instant it read (see [`History::push`]).
#[cold]
#[inline(never)]
fn created_on_tokio_clock(event: &EventInner) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    let age = crate::time::Timestamp::now_shared().duration_since(event.created_at);
    now.checked_sub(age).unwrap_or(now)
}

/// A bus's history. See the module docs.
#[derive(Default)]
pub(crate) struct History {
    entries: VecDeque<Entry>,
    live: usize,
    next_seq: u64,
    /// Completed events, in completion order.
    completed: VecDeque<u64>,
    /// Events this bus took up for processing (drop mode only), in that order, but for the
    /// newest one, which is in `started_last`.
    started: VecDeque<u64>,
    /// The event this bus took up last (drop mode), while it has not completed: the back of
    /// the started queue, held apart. The usual event completes before the next one is taken
    /// up, so it never enters the queue: taking it up and completing it is a store each,
    /// where pushing it and popping it again cost a call and ~40 instructions per event.
    started_last: Option<u64>,
    /// About how many events completed while not at the front of `started` (out of order):
    /// while none did, a completion at the front leaves nothing done right behind it to forget.
    started_behind: usize,
    /// Completed events with a TTL here: (deadline, seq), soonest first.
    expiries: BinaryHeap<std::cmp::Reverse<(tokio::time::Instant, u64)>>,
    /// The estimated bytes of the live entries.
    bytes: usize,
    /// Bytes of entries evicted to make room for a push, already out of `bytes` but still in
    /// the process total: that push takes them off with its own addition, one update for both.
    freed: usize,
}

impl History {
    /// The number of events held.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The sequence number the next [`push`](Self::push) gets.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends an event; returns its sequence number. `created`: for an event built from a
    /// payload in the `dispatch` call pushing it, tokio's clock read at the start of that call,
    /// just before the event was built: its age counts from there, without reading the wall
    /// clock to work it out. Read before the build, never after, so the entry is never younger
    /// than its `event_created_at` says (a `find` window of `event_created_at().elapsed()`
    /// excludes it, as it did with the age worked out). Any other event (a handle built
    /// earlier, restored, forwarded) gets the age its `event_created_at` gives it.
    #[inline]
    pub(crate) fn push(
        &mut self,
        event: Arc<EventInner>,
        created: Option<tokio::time::Instant>,
    ) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = event.base_bytes();
        self.bytes += bytes;
        // One update of the process total for this entry and those evicted to make room for
        // it, none when they weigh the same (a full history of one kind of event).
        let freed = std::mem::take(&mut self.freed);
        if bytes > freed {
            crate::memory::add(bytes - freed);
        } else if bytes < freed {
            crate::memory::sub(freed - bytes);
        }
        let created = created.unwrap_or_else(|| created_on_tokio_clock(&event));
        self.entries.push_back(Entry {
            seq,
            event: Some(event),
            created,
            bytes,
            finished: Finished::No,
        });
        self.live += 1;
        seq
    }

    /// The events, oldest first.
    pub(crate) fn iter(&self) -> impl DoubleEndedIterator<Item = &Arc<EventInner>> + '_ {
        self.entries.iter().filter_map(|e| e.event.as_ref())
    }

    /// The events older than the entry `before` (all of them for `None`), newest first, with
    /// their sequence numbers and when they were created on tokio's clock: a scan can stop and
    /// resume below where it stopped.
    pub(crate) fn newest_before(
        &self,
        before: Option<u64>,
    ) -> impl Iterator<Item = (u64, tokio::time::Instant, &Arc<EventInner>)> + '_ {
        let end = before.map_or(self.entries.len(), |seq| {
            self.entries.partition_point(|e| e.seq < seq)
        });
        self.entries
            .range(..end)
            .rev()
            .filter_map(|e| Some((e.seq, e.created, e.event.as_ref()?)))
    }

    /// Where the entry numbered `seq` is without gaps (no compaction since the front entry):
    /// the usual case, checked first; `None` if it is before the front.
    #[inline(always)]
    fn guess(entries: &VecDeque<Entry>, seq: u64) -> Option<usize> {
        let first = entries.front()?.seq;
        usize::try_from(seq.checked_sub(first)?).ok()
    }

    #[inline(always)]
    fn index_of(&self, seq: u64) -> Option<usize> {
        let guess = Self::guess(&self.entries, seq)?;
        let i = match self.entries.get(guess) {
            Some(entry) if entry.seq == seq => guess,
            _ => self.entries.binary_search_by_key(&seq, |e| e.seq).ok()?,
        };
        self.entries[i].event.is_some().then_some(i)
    }

    /// The live entry with this sequence number, looked up as [`index_of`](Self::index_of)
    /// does, its place in the deque worked out once in the usual case.
    #[inline(always)]
    fn entry_mut(entries: &mut VecDeque<Entry>, seq: u64) -> Option<&mut Entry> {
        let guess = Self::guess(entries, seq)?;
        if entries.get(guess).is_none_or(|entry| entry.seq != seq) {
            return Self::entry_searched(entries, seq);
        }
        entries.get_mut(guess).filter(|entry| entry.event.is_some())
    }

    /// [`entry_mut`](Self::entry_mut) behind a gap: a binary search.
    #[cold]
    #[inline(never)]
    fn entry_searched(entries: &mut VecDeque<Entry>, seq: u64) -> Option<&mut Entry> {
        let i = entries.binary_search_by_key(&seq, |e| e.seq).ok()?;
        entries.get_mut(i).filter(|entry| entry.event.is_some())
    }

    /// The event with this sequence number, if it is still held.
    pub(crate) fn get(&self, seq: u64) -> Option<&Arc<EventInner>> {
        self.index_of(seq)
            .and_then(|i| self.entries[i].event.as_ref())
    }

    /// Removes the event with this sequence number; returns it if it was held.
    pub(crate) fn remove(&mut self, seq: u64) -> Option<Arc<EventInner>> {
        let i = self.index_of(seq)?;
        let event = self.take_at(i);
        self.report_freed();
        self.compact();
        event
    }

    /// Removes the live entry at index `i` and returns its event — at the front, with the
    /// tombstones behind it; elsewhere leaving a tombstone. Its bytes leave `bytes` at once
    /// and wait in `freed` for the process total; nothing is compacted.
    #[inline]
    fn take_at(&mut self, i: usize) -> Option<Arc<EventInner>> {
        if i == 0 {
            self.take_front()
        } else {
            self.take_behind(i)
        }
    }

    /// [`take_at`](Self::take_at) the front: the entry leaves the deque, its two fields read
    /// are all that is copied out.
    #[inline]
    fn take_front(&mut self) -> Option<Arc<EventInner>> {
        let Entry { event, bytes, .. } = self.entries.pop_front()?;
        // Tombstones exist only while the entries outnumber the live ones (this one still
        // counted).
        if self.entries.len() >= self.live {
            self.drop_front_tombstones();
        }
        let event = event?;
        self.taken(bytes);
        Some(event)
    }

    /// Drops the tombstones at the front, behind a front entry just removed.
    #[inline(never)]
    fn drop_front_tombstones(&mut self) {
        while self.entries.front().is_some_and(|e| e.event.is_none()) {
            self.entries.pop_front();
        }
    }

    /// [`take_at`](Self::take_at) an index past the front: leaves a tombstone.
    #[inline(never)]
    fn take_behind(&mut self, i: usize) -> Option<Arc<EventInner>> {
        let entry = self.entries.get_mut(i)?;
        let event = entry.event.take()?;
        let bytes = std::mem::take(&mut entry.bytes);
        self.taken(bytes);
        Some(event)
    }

    /// Counts a live entry of `bytes` out.
    #[inline(always)]
    fn taken(&mut self, bytes: usize) {
        self.bytes -= bytes;
        self.freed += bytes;
        self.live -= 1;
    }

    /// Takes the bytes of evicted entries off the process total.
    #[inline]
    fn report_freed(&mut self) {
        let freed = std::mem::take(&mut self.freed);
        crate::memory::sub(freed);
    }

    /// Drops every tombstone once they outnumber the live entries, so the entries stay within
    /// twice the live count (amortised O(1) per removal), and likewise the sequence numbers
    /// kept for eviction. (The front entry is never a tombstone: [`remove`](Self::remove) drops
    /// those there at once.) Checked after every removal, except an eviction from the front to
    /// make room: the push that follows it restores what it moved. A mark moves no entry and
    /// grows one queue: it checks that queue alone (against the same bound).
    #[inline]
    fn compact(&mut self) {
        // After every removal: inlined, three comparisons in the usual case.
        let bound = 2 * self.live + 16;
        if self.entries.len() > bound || self.completed.len() > bound || self.started.len() > bound
        {
            self.compact_now(bound);
        }
    }

    /// [`compact`](Self::compact) when something is over `bound`.
    #[cold]
    #[inline(never)]
    fn compact_now(&mut self, bound: usize) {
        if self.entries.len() > bound {
            self.entries.retain(|e| e.event.is_some());
        }
        if self.completed.len() > bound || self.started.len() > bound {
            let entries = &self.entries;
            let keep = |seq: &u64| {
                entries
                    .binary_search_by_key(seq, |e| e.seq)
                    .is_ok_and(|i| entries[i].event.is_some())
            };
            self.completed.retain(keep);
            self.started.retain(keep);
            self.started_behind = self.started_behind.min(self.started.len());
            if self.started_last.is_some_and(|seq| !keep(&seq)) {
                self.started_last = None;
            }
        }
    }

    /// Records that the event with this sequence number completed (for eviction), and when
    /// its earliest TTL expires, if it has one. `bytes`: its estimate now, given its
    /// [`base_bytes`](EventInner::base_bytes), asked only if the entry is still held. Returns
    /// whether it was.
    #[inline]
    pub(crate) fn mark_completed(
        &mut self,
        seq: u64,
        ttl: Option<Duration>,
        bytes: impl FnOnce(usize) -> usize,
    ) -> bool {
        if ttl.is_some() {
            // The clock read and the expiry queued: out of line.
            let Some(i) = self.index_of(seq) else {
                return false;
            };
            let base = Self::base_of(&self.entries[i]);
            self.mark_completed_at(i, seq, ttl, Duration::ZERO, bytes(base));
            return true;
        }
        // An event evicted before it completed (a producer far ahead of the run loop) is looked
        // up here, inlined, without the estimate; the entry's place is worked out once.
        let Some(entry) = Self::entry_mut(&mut self.entries, seq) else {
            return false;
        };
        let bytes = bytes(Self::base_of(entry));
        entry.finished = Finished::Yes;
        let old = std::mem::replace(&mut entry.bytes, bytes);
        self.completed_with(seq, bytes, old);
        true
    }

    /// The base estimate of a held entry's event ([`EventInner::base_bytes`]).
    #[inline(always)]
    fn base_of(entry: &Entry) -> usize {
        // Until its first completion an entry's estimate is the one it was pushed with, the
        // event's base: not worked out again (even a typed event's stored size is a read of
        // the event, another cache line: W3 and S1 +15 per event when asked).
        match (entry.finished, &entry.event) {
            (Finished::No, _) | (_, None) => entry.bytes,
            (_, Some(event)) => event.base_bytes(),
        }
    }

    /// [`mark_completed`](Self::mark_completed) for an event that completed `ago` (restored
    /// from a snapshot).
    pub(crate) fn mark_completed_ago(
        &mut self,
        seq: u64,
        ttl: Option<Duration>,
        ago: Duration,
        bytes: usize,
    ) {
        if let Some(i) = self.index_of(seq) {
            self.mark_completed_at(i, seq, ttl, ago, bytes);
        }
    }

    /// [`mark_completed_ago`](Self::mark_completed_ago) for the entry at index `i`.
    #[inline(never)]
    fn mark_completed_at(
        &mut self,
        i: usize,
        seq: u64,
        ttl: Option<Duration>,
        ago: Duration,
        bytes: usize,
    ) {
        let entry = &mut self.entries[i];
        entry.finished = Finished::Yes;
        // Its results are in now: its estimate with them (one update of the process total).
        let old = std::mem::replace(&mut entry.bytes, bytes);
        // The clock is read only for a TTL (TTLs count from the completion).
        if let Some(ttl) = ttl {
            let now = tokio::time::Instant::now();
            let completed = now.checked_sub(ago).unwrap_or(now);
            entry.finished = Finished::At(completed);
            self.expire_at(seq, completed + ttl);
        }
        self.completed_with(seq, bytes, old);
    }

    /// What every completion of the held entry `seq` does after marking it: its estimate
    /// `bytes` replaces `old` in the totals, and it joins the completed queue.
    #[inline(always)]
    fn completed_with(&mut self, seq: u64, bytes: usize, old: usize) {
        if bytes >= old {
            self.add_bytes(bytes - old);
        } else {
            self.sub_bytes(old - bytes);
        }
        self.completed.push_back(seq);
        // The usual completion: the event taken up last, never queued as started.
        if self.started_last == Some(seq) {
            self.started_last = None;
        } else {
            self.started_completed(seq);
        }
        // A mark moves no entry and shrinks the started queue: only the completed queue can
        // have outgrown the bound (see `compact`).
        let bound = 2 * self.live + 16;
        if self.completed.len() > bound {
            self.compact_now(bound);
        }
    }

    /// The started queue's part of a completion of `seq` (not the event taken up last).
    #[inline]
    fn started_completed(&mut self, seq: u64) {
        // Started events usually complete in the order they started: forget the completed
        // ones at the front, so the started queue holds about the unfinished ones.
        match self.started.front() {
            // The usual front: this event (its entry just marked done).
            Some(&front) if front == seq => {
                self.started.pop_front();
                if self.started_behind > 0 {
                    self.forget_started_behind();
                }
            }
            Some(_) => self.started_behind += 1,
            None => {}
        }
    }

    /// Forgets the events done or gone at the front of the started queue, once some event
    /// completed out of order.
    #[inline(never)]
    fn forget_started_behind(&mut self) {
        while let Some(&front) = self.started.front() {
            let done = self
                .index_of(front)
                .is_none_or(|j| !matches!(self.entries[j].finished, Finished::No));
            if !done {
                break;
            }
            self.started.pop_front();
            self.started_behind = self.started_behind.saturating_sub(1);
        }
        if self.started.is_empty() {
            self.started_behind = 0;
        }
    }

    /// Records that this bus took up the event with this sequence number (drop mode).
    #[inline]
    pub(crate) fn mark_started(&mut self, seq: u64) {
        // An event already evicted from the front (a producer far ahead of the run loop) is
        // nothing to evict later: tracking it would only grow the queue that compaction then
        // has to sweep. That check is inlined into the caller. (An entry removed behind the
        // front is tracked, and skipped when evicting, as a removed entry tracked earlier.)
        if self.entries.front().is_some_and(|first| first.seq <= seq) {
            // The previous one, still running, joins the queue behind the others.
            if let Some(previous) = self.started_last.replace(seq) {
                self.track_started(previous);
            }
        }
    }

    /// Moves the event taken up last, if any, to the back of the started queue (all of them in
    /// start order there, for eviction).
    fn queue_started_last(&mut self) {
        if let Some(seq) = self.started_last.take() {
            self.track_started(seq);
        }
    }

    /// Queues `seq` as started (an event taken up before the last one, or the last one itself
    /// when eviction needs every started event queued).
    #[inline(never)]
    fn track_started(&mut self, seq: u64) {
        // Gone from the front meanwhile: nothing to evict later.
        if self.entries.front().is_none_or(|first| first.seq > seq) {
            return;
        }
        self.started.push_back(seq);
        // Only the started queue grew (see `compact`).
        let bound = 2 * self.live + 16;
        if self.started.len() > bound {
            self.compact_now(bound);
        }
    }

    /// Evicts and returns the oldest event from the front of `queue` (completed or started
    /// events) still held, if any, for a push that follows: its bytes wait in `freed` for that
    /// push. Compacted as a removal is, when it left a tombstone.
    #[inline]
    fn evict_from(
        &mut self,
        queue: fn(&mut Self) -> &mut VecDeque<u64>,
    ) -> Option<Arc<EventInner>> {
        while let Some(seq) = queue(self).pop_front() {
            // The usual one: the oldest entry, at the front (taken without working out its
            // place again).
            if self
                .entries
                .front()
                .is_some_and(|first| first.seq == seq && first.event.is_some())
            {
                return self.take_front();
            }
            if let Some(i) = self.index_of(seq) {
                let event = self.take_at(i);
                if i > 0 {
                    self.compact();
                }
                return event;
            }
        }
        None
    }

    /// [`evict_from`](Self::evict_from) the started events, the one taken up last included.
    fn evict_started(&mut self) -> Option<Arc<EventInner>> {
        self.queue_started_last();
        self.evict_from(|h| &mut h.started)
    }

    /// The sequence numbers whose TTL is due at `now`, removed from the expiry queue.
    pub(crate) fn due(&mut self, now: tokio::time::Instant) -> Vec<u64> {
        let mut due = Vec::new();
        while let Some(std::cmp::Reverse((deadline, seq))) = self.expiries.peek().copied() {
            if deadline > now {
                break;
            }
            self.expiries.pop();
            due.push(seq);
        }
        due
    }

    /// Looks at the entry `seq` again at `deadline` (its next TTL).
    pub(crate) fn expire_at(&mut self, seq: u64, deadline: tokio::time::Instant) {
        self.expiries.push(std::cmp::Reverse((deadline, seq)));
    }

    /// When the bus heard the event `seq` completed.
    pub(crate) fn completed_at(&self, seq: u64) -> Option<tokio::time::Instant> {
        self.index_of(seq)
            .and_then(|i| match self.entries[i].finished {
                Finished::At(completed) => Some(completed),
                Finished::No | Finished::Yes => None,
            })
    }

    /// Whether any TTL is tracked.
    pub(crate) fn has_expiries(&self) -> bool {
        !self.expiries.is_empty()
    }

    /// Takes every event out (the bus was stopped with `clear`).
    pub(crate) fn take(&mut self) -> Vec<Arc<EventInner>> {
        let events = self.entries.drain(..).filter_map(|e| e.event).collect();
        self.completed.clear();
        self.started.clear();
        self.started_last = None;
        self.started_behind = 0;
        self.expiries.clear();
        self.live = 0;
        let bytes = std::mem::take(&mut self.bytes) + std::mem::take(&mut self.freed);
        crate::memory::sub(bytes);
        events
    }

    /// Every entry numbered below this is gone for good (`0` while any TTL is tracked, so
    /// that a completion, even of a gone entry, applies the expiries due): see
    /// [`BusInner::evicted_below`](super::BusInner::evicted_below).
    #[inline]
    fn gone_below(&self) -> u64 {
        if self.has_expiries() {
            return 0;
        }
        self.entries
            .front()
            .map_or(self.next_seq, |first| first.seq)
    }

    /// The estimated bytes of what the history holds.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    fn add_bytes(&mut self, bytes: usize) {
        self.bytes += bytes;
        crate::memory::add(bytes);
    }

    fn sub_bytes(&mut self, bytes: usize) {
        self.bytes -= bytes;
        crate::memory::sub(bytes);
    }
}

impl Drop for History {
    fn drop(&mut self) {
        crate::memory::sub(self.bytes + self.freed);
    }
}

impl BusInner {
    /// Records in [`evicted_below`](BusInner::evicted_below) which entries are gone for good.
    #[cold]
    #[inline(never)]
    fn note_evicted(&self, st: &BusState) {
        self.evicted_below.store(
            st.history.gone_below(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Makes room for one more event in a history bounded to `max` (> 0) entries: evicts the
    /// oldest completed events first; if none has completed, and `max_history_drop` is set, the
    /// oldest event this bus has started, then the oldest still queued; else refuses.
    pub(crate) fn make_room(&self, st: &mut BusState, max: usize) -> Result<(), DispatchError> {
        // What is evicted here leaves the process total with the push that follows (one update
        // for both); a refusal takes it off at once. An eviction from the front, the usual one,
        // is not compacted after: the push that follows restores the ratio of entries to live
        // ones that it moved.
        while st.history.len() >= max {
            if st.history.evict_from(|h| &mut h.completed).is_some() {
                continue;
            }
            if !self.config.max_history_drop {
                st.history.report_freed();
                return Err(DispatchError::HistoryFull {
                    bus: self.label.to_string(),
                    size: st.history.len(),
                    max,
                });
            }
            if !st.warned_drop {
                st.warned_drop = true;
                tracing::warn!(
                    bus = %self.label,
                    max_history_size = max,
                    "history is full of unfinished events; dropping the oldest entries \
                     (even uncompleted events) because max_history_drop is set"
                );
            }
            if st.history.evict_started().is_none() {
                st.history.take_front();
            }
        }
        Ok(())
    }
}

/// What a bus's history needs to know of a completed event, read once under the event's lock
/// for every bus it completed on.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct CompletedInfo {
    /// What its memory estimate adds with its results, children and path
    /// ([`EventInner::state_bytes`]; the rest, [`EventInner::base_bytes`], needs no lock).
    pub(crate) state_bytes: usize,
    /// It sets a TTL of its own.
    pub(crate) own_ttl: bool,
}

impl BusInner {
    /// Whether this bus's history needs to hear of its events' completions: it is bounded (to
    /// evict completed events first), keeps only in-flight events, or has middlewares.
    pub(crate) fn hears_completions(&self) -> bool {
        self.config.max_history_size.is_some() || !self.middlewares.is_empty() || self.may_expire()
    }

    /// An event in this bus's history (sequence number `seq`) completed.
    pub(crate) fn history_completed(&self, event: &Arc<EventInner>, seq: u64, info: CompletedInfo) {
        // An event evicted before it completed (a producer far ahead of the run loop, in drop
        // mode) has nothing left here to update, and with no TTL tracked the completion has no
        // expiry to apply: no lock (see `evicted_below`).
        if seq
            < self
                .evicted_below
                .load(std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let ttl = if info.own_ttl || self.may_expire() {
            self.earliest_ttl(event)
        } else {
            None
        };
        let mut st = self.state.lock();
        if ttl.is_some() {
            // Its entry may get an expiry: completions go through the lock again from now.
            self.evicted_below
                .store(0, std::sync::atomic::Ordering::Relaxed);
        }
        if self.config.max_history_size == Some(0) {
            st.history.remove(seq);
        } else {
            let held = st
                .history
                .mark_completed(seq, ttl, |base| base + info.state_bytes);
            if !held {
                // Evicted before it completed: so were those before it, whose completions
                // can skip the lock from now on (see `evicted_below`).
                self.note_evicted(&st);
            }
            self.expire(&mut st);
        }
        drop(st);
        // A completed event can be evicted: a producer waiting for room may dispatch now.
        // (None does in drop mode, the only one where `evicted_below` skips this.)
        if self.room_waiters.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventPayload;

    fn event(n: u64) -> Arc<EventInner> {
        crate::DynEvent::new("Tick", serde_json::json!({ "n": n }))
            .unwrap()
            .__new_event()
            .into_inner()
    }

    /// A history holding `n` new events (sequence numbers `0..n`), and the events.
    fn filled(n: u64) -> (History, Vec<Arc<EventInner>>) {
        let mut history = History::default();
        let events: Vec<_> = (0..n).map(event).collect();
        for e in &events {
            history.push(Arc::clone(e), None);
        }
        (history, events)
    }

    fn seqs(history: &History) -> Vec<u64> {
        history.newest_before(None).map(|(seq, _, _)| seq).collect()
    }

    /// Removal from the middle leaves a tombstone; removing the front then drops it too, and
    /// eviction keeps taking the oldest live entry.
    #[test]
    fn front_and_middle_removals_keep_order_and_bytes() {
        let (mut history, events) = filled(6);
        let all = history.bytes();
        assert!(Arc::ptr_eq(&history.remove(2).unwrap(), &events[2]));
        assert!(history.remove(2).is_none());
        assert!(history.get(2).is_none());
        assert!(Arc::ptr_eq(&history.remove(1).unwrap(), &events[1]));
        // Front removal: entry 0 and the tombstones of 1 and 2 behind it go.
        assert!(Arc::ptr_eq(&history.remove(0).unwrap(), &events[0]));
        assert_eq!(history.entries.front().map(|e| e.seq), Some(3));
        assert_eq!(seqs(&history), vec![5, 4, 3]);
        assert!(Arc::ptr_eq(&history.take_at(0).unwrap(), &events[3]));
        assert!(Arc::ptr_eq(history.get(4).unwrap(), &events[4]));
        assert_eq!(history.len(), 2);
        let held: usize = history.entries.iter().map(|e| e.bytes).sum();
        assert_eq!(history.bytes(), held);
        assert!(history.bytes() < all);
    }

    /// Completed events are evicted oldest first, whatever order they completed in, and the
    /// completion's estimate replaces the dispatch-time one.
    #[test]
    fn completed_events_are_evicted_in_completion_order() {
        let (mut history, events) = filled(4);
        for seq in 0..4 {
            history.mark_started(seq);
        }
        history.mark_completed(2, None, |_| 1000);
        history.mark_completed(0, None, |_| 1000);
        assert!(Arc::ptr_eq(
            &history.evict_from(|h| &mut h.completed).unwrap(),
            &events[2]
        ));
        assert!(Arc::ptr_eq(
            &history.evict_from(|h| &mut h.completed).unwrap(),
            &events[0]
        ));
        assert!(history.evict_from(|h| &mut h.completed).is_none());
        // Started, not completed: 1 then 3.
        assert!(Arc::ptr_eq(&history.evict_started().unwrap(), &events[1]));
        assert_eq!(history.len(), 1);
        assert_eq!(history.bytes(), history.entries[0].bytes);
        assert!(Arc::ptr_eq(&history.evict_started().unwrap(), &events[3]));
        assert_eq!((history.len(), history.bytes()), (0, 0));
    }

    /// The event taken up last is held apart from the started queue until the next one is
    /// taken up; eviction sees every started event in start order all the same, and an event
    /// that completes is no longer evicted as started.
    #[test]
    fn the_last_started_event_is_evicted_in_start_order() {
        let (mut history, events) = filled(5);
        history.mark_started(0);
        history.mark_completed(0, None, |_| 10);
        assert!(history.started.is_empty());
        assert_eq!(history.started_last, None);
        history.mark_started(1);
        history.mark_started(2);
        history.mark_started(3);
        assert_eq!((history.started.len(), history.started_last), (2, Some(3)));
        // The last one completes first, then the oldest: only 2 is left to evict as started.
        history.mark_completed(3, None, |_| 10);
        history.mark_completed(1, None, |_| 10);
        assert_eq!(history.started_last, None);
        for seq in [0, 3, 1] {
            assert!(Arc::ptr_eq(
                &history.evict_from(|h| &mut h.completed).unwrap(),
                &events[seq]
            ));
        }
        history.mark_started(4);
        assert!(Arc::ptr_eq(&history.evict_started().unwrap(), &events[2]));
        assert!(Arc::ptr_eq(&history.evict_started().unwrap(), &events[4]));
        assert!(history.evict_started().is_none());
        assert_eq!(history.len(), 0);
    }

    /// A completion's estimate is the event's base and what the completion adds, the base
    /// taken from the entry's push-time estimate the first time and worked out again after.
    #[test]
    fn completion_estimates_add_to_the_base() {
        let (mut history, events) = filled(2);
        let base = events[0].base_bytes();
        let all = history.bytes();
        history.mark_completed(0, None, |b| b + 10);
        assert_eq!(history.entries[0].bytes, base + 10);
        history.mark_completed(0, None, |b| b + 30);
        assert_eq!(history.entries[0].bytes, base + 30);
        assert_eq!(history.bytes(), all + 30);
    }

    /// An eviction for a push takes the entry's bytes off the history at once and leaves them
    /// for that push to net into its own update of the process total; a removal reports them
    /// at once. A front eviction takes the tombstones behind it too.
    #[test]
    fn evictions_for_a_push_are_netted_into_it() {
        let (mut history, events) = filled(4);
        history.mark_completed(2, None, |_| 1000);
        let before = history.bytes();
        assert!(history.evict_from(|h| &mut h.completed).is_some());
        assert!(history.get(2).is_none());
        assert_eq!((history.freed, history.bytes()), (1000, before - 1000));
        assert!(history.evict_from(|h| &mut h.completed).is_none());
        assert!(Arc::ptr_eq(&history.remove(1).unwrap(), &events[1]));
        assert_eq!(history.freed, 0);
        // Entry 0, then the tombstones of 1 and 2.
        assert!(Arc::ptr_eq(&history.take_at(0).unwrap(), &events[0]));
        assert_eq!(history.entries.front().map(|e| e.seq), Some(3));
        assert!(history.freed > 0);
        history.push(event(4), None);
        assert_eq!((history.freed, history.len()), (0, 2));
        let held: usize = history.entries.iter().map(|e| e.bytes).sum();
        assert_eq!(history.bytes(), held);
    }

    /// Many removals behind a live front entry compact the tombstones away; lookups still
    /// find the survivors.
    #[test]
    fn tombstones_behind_a_live_front_are_compacted() {
        // The entry's completion and its instant share one field.
        assert!(std::mem::size_of::<Entry>() <= 64);
        let (mut history, _) = filled(200);
        for seq in 1..190 {
            assert!(history.remove(seq).is_some());
        }
        assert!(history.entries.len() <= 2 * history.len() + 16);
        assert_eq!(history.len(), 11);
        assert!(history.get(0).is_some());
        for seq in 190..200 {
            assert!(history.get(seq).is_some());
        }
        assert!(history.get(100).is_none());
        assert!(history.remove(0).is_some());
        assert_eq!(history.entries.front().map(|e| e.seq), Some(190));
    }
}
