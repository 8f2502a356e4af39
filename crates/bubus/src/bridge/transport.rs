//! The transport contract: what a backend implements (one file per backend).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use uuid::Uuid;

use crate::event::AnyEvent;

/// A boxed, `Send` future: what the [`Transport`] and [`Acker`] methods return, so the traits
/// stay object-safe (`Arc<dyn Transport>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The stream of incoming messages a transport yields from [`Transport::listen`]. An `Err` item
/// is bad input the transport could not even frame (a line that is not UTF-8, a frame over the
/// size limit): the bridge logs it, counts it and keeps reading. The stream ends when the
/// transport is closed.
pub type DeliveryStream = Pin<Box<dyn Stream<Item = Result<Delivery, BadInput>> + Send>>;

/// What a transport's engine can do. The bridge adapts its policy to it (it acks only where
/// there are acks, leaves dead letters to engines that keep them), and the conformance suite
/// skips the checks an engine cannot pass.
///
/// ```
/// use bubus::bridge::Capabilities;
///
/// let caps = Capabilities::at_most_once().with_acks(true).with_durable(true);
/// assert!(caps.durable && caps.acks && !caps.dead_letters);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Messages sent while no listener runs are delivered when one starts (a stream, a table,
    /// a file with a cursor). Without it, delivery is at-most-once.
    pub durable: bool,
    /// Each [`Delivery`] carries an [`Acker`]; a message that is not acked is delivered again.
    pub acks: bool,
    /// [`Acker::nack`] makes the engine deliver the message again (with an attempt count).
    pub redelivery: bool,
    /// [`Acker::dead_letter`] moves a message to a place the user can inspect and replay.
    pub dead_letters: bool,
    /// A listener also receives what its own process sent on the same medium (a shared file,
    /// a pub/sub channel). Loop prevention makes this harmless; tests use it.
    pub receives_own: bool,
    /// Messages from one sender arrive in the order they were sent.
    pub ordered: bool,
    /// Only one endpoint on a medium can listen (a socket path, an HTTP address); the others
    /// only send. Results back then needs the sender to listen somewhere of its own.
    pub single_listener: bool,
}

impl Capabilities {
    /// The family's plain modes: no durability, no acks, nothing kept.
    pub const fn at_most_once() -> Self {
        Capabilities {
            durable: false,
            acks: false,
            redelivery: false,
            dead_letters: false,
            receives_own: false,
            ordered: false,
            single_listener: false,
        }
    }

    /// Sets [`durable`](Self::durable).
    pub const fn with_durable(mut self, yes: bool) -> Self {
        self.durable = yes;
        self
    }

    /// Sets [`acks`](Self::acks).
    pub const fn with_acks(mut self, yes: bool) -> Self {
        self.acks = yes;
        self
    }

    /// Sets [`redelivery`](Self::redelivery).
    pub const fn with_redelivery(mut self, yes: bool) -> Self {
        self.redelivery = yes;
        self
    }

    /// Sets [`dead_letters`](Self::dead_letters).
    pub const fn with_dead_letters(mut self, yes: bool) -> Self {
        self.dead_letters = yes;
        self
    }

    /// Sets [`receives_own`](Self::receives_own).
    pub const fn with_receives_own(mut self, yes: bool) -> Self {
        self.receives_own = yes;
        self
    }

    /// Sets [`ordered`](Self::ordered).
    pub const fn with_ordered(mut self, yes: bool) -> Self {
        self.ordered = yes;
        self
    }

    /// Sets [`single_listener`](Self::single_listener).
    pub const fn with_single_listener(mut self, yes: bool) -> Self {
        self.single_listener = yes;
        self
    }
}

/// What a message on the wire is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// An event: the family's wire form (every `event_*` key, the payload fields, no results).
    Event,
    /// A completion record: the receiving side's results for an event, sent back to its sender
    /// when the bridge returns results (`{"bubus_completion": <event with event_results>}`).
    /// Family runtimes never send one and skip one they receive (it is not an event).
    Completion,
}

/// One message for [`Transport::send`]: compact JSON text, with what a backend may need to key
/// it without parsing (the event id: a primary key, `Nats-Msg-Id`, a stream entry field).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    kind: MessageKind,
    event_id: Uuid,
    event_type: Arc<str>,
    text: Arc<str>,
}

impl Message {
    /// The message that carries `event` (its [`to_json_string`](AnyEvent::to_json_string)).
    pub fn event(event: &AnyEvent) -> Self {
        Message {
            kind: MessageKind::Event,
            event_id: event.event_id(),
            event_type: Arc::from(event.event_type()),
            text: Arc::from(event.to_json_string()),
        }
    }

    /// A message from its parts (for transports' own tests and tools).
    pub fn from_parts(
        kind: MessageKind,
        event_id: Uuid,
        event_type: impl Into<Arc<str>>,
        text: impl Into<Arc<str>>,
    ) -> Self {
        Message {
            kind,
            event_id,
            event_type: event_type.into(),
            text: text.into(),
        }
    }

    /// Event or completion record.
    pub fn kind(&self) -> MessageKind {
        self.kind
    }

    /// The id of the event this message carries (or completes).
    pub fn event_id(&self) -> Uuid {
        self.event_id
    }

    /// The event's type name.
    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    /// The compact JSON text: one line, no trailing newline.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The text, shared.
    pub fn text_arc(&self) -> &Arc<str> {
        &self.text
    }
}

/// Acknowledges one [`Delivery`] to the engine that delivered it. Transports with acks attach
/// one to every delivery; the bridge calls exactly one method, once the event has completed on
/// the receiving bus (or failed for good).
pub trait Acker: Send + 'static {
    /// The message was handled: the engine must not deliver it again (advance a cursor,
    /// `XACK`, ack a JetStream message, delete a claimed row).
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>>;

    /// The message was not handled: deliver it again, after `delay` when the engine supports
    /// one. `reason` says why (the first handler error, why the receiving bus refused it):
    /// engines that keep per-delivery state record it (the PostgreSQL outbox's `last_error`,
    /// the memory medium's [`DeadLetter::last_error`](super::DeadLetter)); others may log or
    /// drop it. Engines without redelivery treat a nack as an ack.
    fn nack(
        self: Box<Self>,
        delay: Option<Duration>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>>;

    /// The message keeps failing (or can never be read): move it where the user can inspect
    /// it, with `reason`. The default acks it, for engines without dead letters (the bridge
    /// has logged and counted it).
    fn dead_letter(
        self: Box<Self>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        drop(reason);
        self.ack()
    }
}

/// One incoming message: its text, where it came from, and (for transports with acks) how to
/// acknowledge it.
pub struct Delivery {
    text: String,
    origin: String,
    attempt: u32,
    acker: Option<Box<dyn Acker>>,
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("origin", &self.origin)
            .field("attempt", &self.attempt)
            .field("acker", &self.acker.is_some())
            .field("len", &self.text.len())
            .finish()
    }
}

impl Delivery {
    /// A delivery of `text`; `origin` says where it came from for logs and errors
    /// (`"events.jsonl:12"`, `"row 40"`, `"peer 127.0.0.1:5012"`).
    pub fn new(text: impl Into<String>, origin: impl Into<String>) -> Self {
        Delivery {
            text: text.into(),
            origin: origin.into(),
            attempt: 1,
            acker: None,
        }
    }

    /// Attaches the engine's acknowledgement.
    pub fn with_acker(mut self, acker: impl Acker) -> Self {
        self.acker = Some(Box::new(acker));
        self
    }

    /// Attaches a boxed acknowledgement.
    pub fn with_boxed_acker(mut self, acker: Box<dyn Acker>) -> Self {
        self.acker = Some(acker);
        self
    }

    /// Which delivery of this message this is (1 for the first; engines with redelivery count).
    pub fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt.max(1);
        self
    }

    /// The message text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Where it came from.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Which delivery of the message this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Whether the engine wants an acknowledgement.
    pub fn has_acker(&self) -> bool {
        self.acker.is_some()
    }

    /// Takes the acknowledgement out (the bridge does this; transports' tests may too).
    pub fn take_acker(&mut self) -> Option<Box<dyn Acker>> {
        self.acker.take()
    }
}

/// Input a transport could not frame into a message: where it was and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {message}")]
pub struct BadInput {
    /// Where (`"events.jsonl:12"`, `"peer 3"`).
    pub origin: String,
    /// What is wrong.
    pub message: String,
}

impl BadInput {
    /// Bad input at `origin`.
    pub fn new(origin: impl Into<String>, message: impl Into<String>) -> Self {
        BadInput {
            origin: origin.into(),
            message: message.into(),
        }
    }
}

/// A transport failed: a send, a listen, an ack, a close.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The configuration is wrong (a path too long, a bad URL); nothing was tried.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done (`"append to /tmp/events.jsonl"`).
        context: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The transport is closed.
    #[error("transport is closed")]
    Closed,
    /// The engine refused or failed (a server error, a protocol error).
    #[error("{0}")]
    Engine(String),
    /// An engine error with its source.
    #[error("{context}: {source}")]
    Other {
        /// What was being done.
        context: String,
        /// The error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl TransportError {
    /// An I/O error while doing `context`.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TransportError::Io {
            context: context.into(),
            source,
        }
    }

    /// Any error while doing `context`.
    pub fn other(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        TransportError::Other {
            context: context.into(),
            source: Box::new(source),
        }
    }
}

/// Moves JSON events (and, where the engine has them, acknowledgements) between processes. A
/// backend implements this one trait; the [`Bridge`](super::Bridge) owns the policy (loop
/// prevention, de-duplication, results back, when to ack).
///
/// Implementations must be cheap to share (`Arc<dyn Transport>`): `send` may be called from many
/// tasks at once. `listen` is called at most once per [`Bridge::start`](super::Bridge::start).
///
/// The contract every transport must meet is checked by
/// `bubus_test_support::conformance` (run it from the transport's tests).
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// The family's name for this kind of bridge (`"JSONLEventBridge"`): names the bridge's
    /// inbound bus.
    fn kind(&self) -> &str;

    /// Where it goes, for logs (`"jsonl:/tmp/events.jsonl"`).
    fn describe(&self) -> String;

    /// What the engine can do.
    fn capabilities(&self) -> Capabilities;

    /// Sends one message. Returns once the engine has it (written, published, committed); a
    /// transport that buffers must flush on [`flush`](Self::flush) and [`close`](Self::close).
    ///
    /// # Cancel safety
    ///
    /// Implementations should not leave half a message on the medium when the future is
    /// dropped (write whole frames with one call, or complete the write in a task).
    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), TransportError>>;

    /// Starts listening: the stream of incoming messages, from where the engine's cursor or
    /// consumer group says (or from now, for plain modes).
    fn listen(&self) -> BoxFuture<'_, Result<DeliveryStream, TransportError>>;

    /// Waits until everything sent so far is on the medium.
    fn flush(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async { Ok(()) })
    }

    /// Flushes, stops listening (the delivery stream ends) and releases the medium (removes a
    /// socket file, closes connections). Idempotent.
    fn close(&self) -> BoxFuture<'_, Result<(), TransportError>>;
}
