//! A typed, async, in-process event bus for tokio, wire-compatible with the Python and TypeScript
//! `bubus` runtimes.
//!
//! # The model
//!
//! * An **event** is a serde struct that implements [`Event`] (usually with `#[derive(Event)]`),
//!   which also names the type its handlers return. The bus keeps the event's metadata — id,
//!   parent, path, timestamps, status, per-handler results — beside the payload.
//! * **Handlers** subscribe to an event type, a type name, or `"*"`
//!   ([`EventBus::on`], [`EventBus::on_pattern`]). They can be sync or async functions, closures,
//!   or methods of a shared service. For one event they run in order: exact-type handlers by
//!   registration, then wildcard handlers.
//! * [`EventBus::dispatch`] enqueues an event and returns at once with an [`EventHandle`]. Each bus
//!   processes its queue strictly FIFO on its own task.
//! * Awaiting a handle resolves when the event is **completed**: all its handlers on every bus it
//!   reached are done, and so is every event they dispatched. Inside a handler, awaiting an event
//!   **queue-jumps**: it is processed right away, ahead of the queue — that is how a handler calls
//!   another part of the system through the bus and uses the answer.
//! * Events dispatched inside a handler are **children** of the event being handled: lineage
//!   (`event_parent_id`, `event_children`), per-handler results and [`EventBus::log_tree`] all
//!   follow from it.
//! * Each handler run leaves an [`EventResult`]; the handle's helpers aggregate them
//!   ([`EventHandle::event_result`], [`EventHandle::event_results_list`],
//!   [`EventHandle::first`], …), typed by the event's result type.
//!
//! ```
//! use bubus::{Event, EventBus, EventHandle};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Debug, Serialize, Deserialize, Event)]
//! #[event(result = String)]
//! struct UserLoginEvent {
//!     username: String,
//!     is_admin: bool,
//! }
//!
//! #[derive(Clone, Debug, Serialize, Deserialize, Event)]
//! #[event(result = bool)]
//! struct AuthRequestEvent {
//!     username: String,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bubus::Error> {
//! let bus = EventBus::new("AppBus");
//!
//! // A handler that calls another handler through the bus and waits for its answer.
//! let inner_bus = bus.clone();
//! bus.on(move |event: EventHandle<UserLoginEvent>| {
//!     let bus = inner_bus.clone();
//!     async move {
//!         let auth = bus.dispatch(AuthRequestEvent { username: event.username.clone() })?;
//!         let allowed = auth.event_result().await?; // queue-jumps: runs the child right now
//!         Ok::<_, bubus::Error>(format!("{} logged in: {allowed}", event.username))
//!     }
//! });
//! bus.on(|event: EventHandle<AuthRequestEvent>| event.username == "alice");
//!
//! let login = bus.dispatch(UserLoginEvent { username: "alice".into(), is_admin: true })?;
//! assert_eq!(login.event_result().await?, "alice logged in: true");
//!
//! // The auth request was recorded as the login's child.
//! let children = login.event_children();
//! assert_eq!(children[0].event_type(), "AuthRequestEvent");
//! assert_eq!(children[0].event_parent_id(), Some(login.event_id()));
//! # Ok(()) }
//! ```
//!
//! # Dynamic events
//!
//! Events that arrive as JSON — from another runtime, a bridge, or a log — are [`DynEvent`]s. They
//! share the bus with typed events: a typed handler for `"UserLoginEvent"` receives a dynamic
//! `"UserLoginEvent"` decoded into its struct, and `"*"` handlers see every event as an
//! [`AnyEvent`].
//!
//! # Where things live
//!
//! The crate root holds what nearly every program names: [`EventBus`], [`Event`] (the trait and
//! its derive), [`EventHandle`], [`AnyEvent`], [`DynEvent`], [`EventStatus`], [`EventResult`],
//! the errors a handler or a caller meets ([`Error`], [`DispatchError`], [`HandlerError`],
//! [`WaitError`]) and [`Uuid`]. The rest is in public modules:
//!
//! | module | what |
//! | --- | --- |
//! | [`bus`] | the builder and configuration ([`EventBusBuilder`](bus::EventBusBuilder), [`BusConfig`](bus::BusConfig), [`LockDomain`](bus::LockDomain)), [`FindQuery`](bus::FindQuery), [`Expect`](bus::Expect), [`Forwarder`](bus::Forwarder), the running handler's event and bus ([`current_bus`](bus::current_bus), …), [`EventFuture`](bus::EventFuture) |
//! | [`event`] | [`EventConfig`](event::EventConfig), the concurrency and completion modes, [`Ttl`](event::Ttl), [`IntoEvent`](event::IntoEvent) |
//! | [`handler`] | [`HandlerOptions`](handler::HandlerOptions), [`EventHandler`](handler::EventHandler), [`HandlerId`](handler::HandlerId), [`method`](handler::method) |
//! | [`result`] | [`ResultsQuery`](result::ResultsQuery), [`ResultStatus`](result::ResultStatus), [`FlatDict`](result::FlatDict), [`FlatList`](result::FlatList) |
//! | [`context`] | values carried to handlers ([`with_context`](context::with_context), [`context`](context::context())) |
//! | [`error`] | every error type ([`ResultError`](error::ResultError), [`HandlerErrorKind`](error::HandlerErrorKind), …) |
//! | [`time`], [`wire`], [`tree`] | timestamps, the JSON wire format's limits and errors, the tree printer |
//! | [`bridge`], [`middleware`], `retry`, `wal`, [`memory`] | bridges between processes, middlewares, retry, the write-ahead log, memory accounting |
//!
//! # Names from Python and TypeScript bubus
//!
//! Code ported from the family finds its names here; where this crate's own name differs, the
//! family's is an alias or a documented equivalent:
//!
//! | Python / TypeScript | here |
//! | --- | --- |
//! | `bus.emit(event)` / `bus.dispatch(event)` | [`EventBus::emit`], [`EventBus::dispatch`] |
//! | `await bus.expect(Type)` | [`EventBus::expect`] (a [`find`](EventBus::find) that waits) |
//! | `await event.event_results_list()`, `…_by_handler_id()`, `…_by_handler_name()`, `…_flat_dict()`, `…_flat_list()` | the methods of the same names on [`EventHandle`] and [`AnyEvent`]; [`ResultsQuery`](result::ResultsQuery) for their options |
//! | `event_results_list(raise_if_any=False, raise_if_none=False)`, `event_results_flat_dict(raise_if_conflicts=False)` | [`results()`](EventHandle::results)`.`[`ignore_errors()`](result::ResultsQuery::ignore_errors)`.`[`allow_none()`](result::ResultsQuery::allow_none)`.list()`, `results().`[`allow_conflicts()`](result::ResultsQuery::allow_conflicts)`.flat_dict()` |
//! | `await event.first()` (switches to first-completion) | [`EventHandle::race`]; [`EventHandle::first`] only reads |
//! | `await bus.stop(timeout, clear=True)` | [`EventBus::stop_and_clear`] |
//! | `EventBus(max_history_drop=True)` | [`history_full`](bus::EventBusBuilder::history_full)`(`[`HistoryFull::DropOldest`](bus::HistoryFull::DropOldest)`)` on [`EventBus::builder`] |
//! | `EventBus(event_handler_detect_file_paths=False)`, `warn_on_duplicate_handler_names=False` | [`disable_handler_file_paths`](bus::EventBusBuilder::disable_handler_file_paths)`()`, [`disable_duplicate_handler_name_warning`](bus::EventBusBuilder::disable_duplicate_handler_name_warning)`()` |
//! | `@retry(semaphore_lax=False)` | `Retry::new().semaphore_strict()` (`retry` feature) |
//! | timeouts in seconds (`event_timeout=5.0`) | [`Duration`](std::time::Duration)s in [`EventConfig`](event::EventConfig), the bus builder and handler options; `f64` seconds on the wire |
//!
//! # Cargo features
//!
//! All on by default; turn them off with `default-features = false` to build a leaner core.
//!
//! | feature | what it adds |
//! | --- | --- |
//! | `macros` | `#[derive(Event)]` |
//! | `schema` | JSON Schemas of result types (`schemars`) |
//! | `retry` | the `retry` module: retry policies, scoped semaphores, cross-process slot files |
//! | `wal` | the `wal` module: the write-ahead log, its reader, follower and replay; `EventBusBuilder::wal` |

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]
#![cfg_attr(
    not(test),
    warn(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::print_stdout,
        clippy::print_stderr
    )
)]

// Lets `#[derive(Event)]` (which names `::bubus`) work inside this crate's own tests. Unused
// while no unit test derives an event (`rust_2018_idioms` denies an unused one under -D).
#[cfg(test)]
#[expect(unused_extern_crates, reason = "no unit test derives an event yet")]
extern crate self as bubus;

pub mod bridge;
pub mod bus;
pub mod context;
pub mod error;
pub mod event;
pub mod handler;
mod lock;
mod memo;
pub mod memory;
pub mod middleware;
pub mod result;
#[cfg(feature = "retry")]
pub mod retry;
pub mod time;
pub mod tree;
mod umbrella;
#[cfg(feature = "wal")]
pub mod wal;
pub mod wire;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

#[doc(inline)]
pub use bus::EventBus;
#[doc(inline)]
pub use error::{DispatchError, HandlerError, WaitError};
#[doc(inline)]
pub use event::{AnyEvent, DynEvent, Event, EventHandle, EventStatus};
#[doc(inline)]
pub use result::EventResult;
pub use umbrella::Error;

/// The id type of events, buses and handlers (`event_id`, `EventBus::id`, `HandlerId`), re-exported
/// so callers need not depend on `uuid` themselves.
pub use uuid::Uuid;

/// `#[derive(Event)]`: see the [`Event`] trait.
#[cfg(feature = "macros")]
pub use bubus_macros::Event;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
