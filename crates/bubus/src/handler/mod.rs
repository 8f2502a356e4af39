//! Handlers: what can be subscribed, how it is identified, and the record a registration returns.

mod into;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::event::{HandlerConcurrency, Ttl};
use crate::time::Timestamp;

pub(crate) use into::{ErasedHandler, HandlerCall, input_pattern};
pub use into::{
    HandlerFn, HandlerInput, HandlerOutcome, HandlerOutput, IntoHandler, Method, method,
};

/// A handler's id: deterministic by default (bus name, handler name, pattern), or set explicitly.
///
/// Because the default id does not depend on when or where a handler was registered, a bus built
/// the same way after a restart gives its handlers the same ids, so restored snapshots and
/// results re-bind to them.
#[derive(Clone, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct HandlerId(Arc<str>);

// Equal by text, as the derived comparison is; the same `Arc` (a handler's own id, as
// `EventBus::off` passes it) is recognised by its address without comparing the text.
impl PartialEq for HandlerId {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || *self.0 == *other.0
    }
}

impl Eq for HandlerId {}

impl std::hash::Hash for HandlerId {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl HandlerId {
    /// An explicit id.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        HandlerId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The default id: `uuid5(namespace, "{bus_name}|{handler_name}|{pattern}")`, with `|{n}`
    /// appended for the `n`-th (n ≥ 1) further registration of the same handler on the same bus
    /// and pattern. The namespace is the one the reference runtimes use for handler ids.
    pub fn derive(bus_name: &str, handler_name: &str, pattern: &str, occurrence: usize) -> Self {
        // The seed is written piece by piece into a stack buffer (a heap string only when it
        // does not fit), and the id into another: registering many handlers derives an id for
        // each, and `format!`, `to_string` and the seed's allocation cost about half as much
        // again as the hash itself.
        let mut digits = itoa::Buffer::new();
        let occurrence = (occurrence != 0).then(|| digits.format(occurrence));
        let pieces = [
            bus_name,
            "|",
            handler_name,
            "|",
            pattern,
            if occurrence.is_some() { "|" } else { "" },
            occurrence.unwrap_or(""),
        ];
        let len: usize = pieces.iter().map(|p| p.len()).sum();
        let mut stack = [0u8; 256];
        let mut heap = Vec::new();
        let seed: &mut [u8] = if len <= stack.len() {
            &mut stack[..len]
        } else {
            heap.resize(len, 0);
            &mut heap
        };
        let mut at = 0;
        for piece in pieces {
            seed[at..at + piece.len()].copy_from_slice(piece.as_bytes());
            at += piece.len();
        }
        let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let id = Uuid::new_v5(&HANDLER_ID_NAMESPACE, seed)
            .hyphenated()
            .encode_lower(&mut text);
        HandlerId(Arc::from(&*id))
    }

    /// The last four characters, as used in labels.
    pub(crate) fn short(&self) -> &str {
        let s = self.as_str();
        let start = s.char_indices().rev().nth(3).map_or(0, |(i, _)| i);
        &s[start..]
    }
}

/// `uuid5(NAMESPACE_DNS, "bubus-handler")`, shared with the Python and TypeScript runtimes.
const HANDLER_ID_NAMESPACE: Uuid = Uuid::from_u128(0x4898345e_32b7_5f44_b450_2112431ad29d);

impl fmt::Display for HandlerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HandlerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for HandlerId {
    fn from(s: &str) -> Self {
        HandlerId::new(s)
    }
}

impl From<String> for HandlerId {
    fn from(s: String) -> Self {
        HandlerId::new(s)
    }
}

impl PartialEq<str> for HandlerId {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for HandlerId {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

/// Everything known about a registered handler except the callable.
#[derive(Debug)]
pub(crate) struct HandlerMeta {
    pub(crate) id: HandlerId,
    pub(crate) name: Arc<str>,
    pub(crate) file_path: Option<Arc<str>>,
    pub(crate) pattern: Arc<str>,
    pub(crate) registered_at: Timestamp,
    /// `Some(x)`: set explicitly (`x == None` means "no cap", overriding event and bus values).
    pub(crate) timeout: Option<Option<Duration>>,
    pub(crate) slow_timeout: Option<Option<Duration>>,
    /// Overrides the event's handler concurrency for this handler.
    pub(crate) concurrency: Option<HandlerConcurrency>,
    /// For forwarding handlers, the bus they forward to (id, label): skipped for events that
    /// already went through it.
    pub(crate) forward_target: Option<(Uuid, Arc<str>)>,
    pub(crate) bus_id: Uuid,
    pub(crate) bus_name: Arc<str>,
    pub(crate) bus_label: Arc<str>,
    /// Keys of the result or snapshot entry this handler was read from that this version does
    /// not know: written back with its results and its snapshot entry.
    pub(crate) wire_extra: crate::result::UnknownKeys,
}

impl HandlerMeta {
    /// `name#abcd`.
    pub(crate) fn label(&self) -> String {
        self.label_display().to_string()
    }

    /// The label as a [`Display`](std::fmt::Display) value, written straight into the text
    /// that holds it (no `String` of its own).
    pub(crate) fn label_display(&self) -> HandlerLabel<'_> {
        HandlerLabel(self)
    }
}

/// A handler's label, `name#abcd`, written when displayed.
pub(crate) struct HandlerLabel<'a>(&'a HandlerMeta);

impl fmt::Display for HandlerLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.name)?;
        f.write_str("#")?;
        f.write_str(self.0.id.short())
    }
}

pub(crate) struct HandlerEntry {
    pub(crate) meta: Arc<HandlerMeta>,
    pub(crate) func: HandlerFn,
    /// A placeholder restored from a snapshot (returns null) until a handler with its id is
    /// registered again.
    pub(crate) stub: bool,
    /// The occurrence its default id was derived with (`None`: an explicit or restored id).
    pub(crate) occurrence: Option<usize>,
    /// The index of its (name, pattern) slot in its bus's handler table, which counts it
    /// (unused for a placeholder).
    pub(crate) slot: usize,
}

/// A registered handler: what [`EventBus::on`](crate::EventBus::on) returns and
/// [`EventBus::off`](crate::EventBus::off) takes back. Cheap to clone.
#[derive(Clone)]
pub struct EventHandler {
    pub(crate) meta: Arc<HandlerMeta>,
}

impl EventHandler {
    /// The handler id.
    pub fn id(&self) -> &HandlerId {
        &self.meta.id
    }

    /// The handler name (the Rust path of the function, or as set in [`HandlerOptions`]).
    pub fn handler_name(&self) -> &str {
        &self.meta.name
    }

    /// `name#abcd`.
    pub fn label(&self) -> String {
        self.meta.label()
    }

    /// Where it was registered (`file:line`), when file-path detection is on.
    pub fn handler_file_path(&self) -> Option<&str> {
        self.meta.file_path.as_deref()
    }

    /// The pattern: an event type name or `"*"`.
    pub fn event_pattern(&self) -> &str {
        &self.meta.pattern
    }

    /// When it was registered.
    pub fn handler_registered_at(&self) -> Timestamp {
        self.meta.registered_at
    }

    /// The handler's own timeout, if one was set (`Some(None)`: explicitly no cap).
    pub fn handler_timeout(&self) -> Option<Option<Duration>> {
        self.meta.timeout
    }

    /// The handler's own slow-warning threshold, if one was set.
    pub fn handler_slow_timeout(&self) -> Option<Option<Duration>> {
        self.meta.slow_timeout
    }

    /// The handler's own concurrency override, if set.
    pub fn handler_concurrency(&self) -> Option<HandlerConcurrency> {
        self.meta.concurrency
    }

    /// The id of the bus it is registered on.
    pub fn eventbus_id(&self) -> Uuid {
        self.meta.bus_id
    }

    /// The name of the bus it is registered on.
    pub fn eventbus_name(&self) -> &str {
        &self.meta.bus_name
    }
}

impl fmt::Debug for EventHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventHandler")
            .field("id", &self.meta.id)
            .field("handler_name", &self.meta.name)
            .field("event_pattern", &self.meta.pattern)
            .field("eventbus", &self.meta.bus_label)
            .finish()
    }
}

impl PartialEq for EventHandler {
    fn eq(&self, other: &Self) -> bool {
        self.meta.id == other.meta.id && self.meta.bus_id == other.meta.bus_id
    }
}

/// Options for [`EventBus::on_with`](crate::EventBus::on_with).
///
/// ```
/// use std::time::Duration;
/// use bubus::handler::HandlerOptions;
///
/// let options = HandlerOptions::new()
///     .pattern("UserLoginEvent")
///     .id("login-audit")
///     .name("audit_login")
///     .timeout(Some(Duration::from_secs(5)));
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
pub struct HandlerOptions {
    pub(crate) pattern: Option<String>,
    pub(crate) id: Option<HandlerId>,
    pub(crate) name: Option<String>,
    pub(crate) file_path: Option<String>,
    pub(crate) timeout: Option<Option<Duration>>,
    pub(crate) slow_timeout: Option<Option<Duration>>,
    pub(crate) concurrency: Option<HandlerConcurrency>,
    pub(crate) result_ttl: Option<Ttl>,
}

impl HandlerOptions {
    /// The results this handler leaves on completed events are removed from them this long
    /// after the event completed (abxbus 2.5's `handler_result_ttl`), or never
    /// ([`Ttl::Never`]). Overrides the event's and the bus's `event_result_ttl`; see
    /// [`EventBusBuilder::event_result_ttl`](crate::bus::EventBusBuilder::event_result_ttl).
    #[must_use]
    pub fn result_ttl(mut self, ttl: impl Into<Ttl>) -> Self {
        self.result_ttl = Some(ttl.into());
        self
    }

    /// No options: the pattern comes from the handler's argument type, the id and name are derived.
    pub fn new() -> Self {
        HandlerOptions::default()
    }

    /// Subscribe to this event type name, or `"*"` for every event.
    #[must_use]
    pub fn pattern(mut self, pattern: impl Into<String>) -> Self {
        self.pattern = Some(pattern.into());
        self
    }

    /// Use this id instead of the derived one.
    #[must_use]
    pub fn id(mut self, id: impl Into<HandlerId>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Use this handler name instead of the function's path.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Record this file path instead of the registration site.
    #[must_use]
    pub fn file_path(mut self, path: impl Into<String>) -> Self {
        self.file_path = Some(path.into());
        self
    }

    /// The handler's own timeout; `None` means "no cap", overriding event and bus timeouts.
    #[must_use]
    pub fn timeout(mut self, timeout: Option<Duration>) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The handler's own slow-warning threshold; `None` disables the warning.
    #[must_use]
    pub fn slow_timeout(mut self, threshold: Option<Duration>) -> Self {
        self.slow_timeout = Some(threshold);
        self
    }

    /// Run this handler serially (taking the event's serial-handler lock) or in parallel with the
    /// event's other handlers, whatever the event's or the bus's handler concurrency says.
    #[must_use]
    pub fn concurrency(mut self, mode: HandlerConcurrency) -> Self {
        self.concurrency = Some(mode);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derived id is `uuid5(namespace, seed)` of the seed the reference runtimes build.
    #[test]
    fn derived_ids_hash_the_reference_seed() {
        for (bus, name, pattern) in [
            ("Bus", "handler", "Ping"),
            ("Büs", "mod::Type::method", "*"),
            ("", "", ""),
        ] {
            for occurrence in [0, 1, 9, 10, 12_345, usize::MAX] {
                let seed = if occurrence == 0 {
                    format!("{bus}|{name}|{pattern}")
                } else {
                    format!("{bus}|{name}|{pattern}|{occurrence}")
                };
                let expected = Uuid::new_v5(&HANDLER_ID_NAMESPACE, seed.as_bytes()).to_string();
                assert_eq!(
                    HandlerId::derive(bus, name, pattern, occurrence).as_str(),
                    expected
                );
            }
        }
    }
}
