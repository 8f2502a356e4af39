//! The HTTP bridge transport: [`HttpSender`] out, [`HttpListener`] in.

use std::fmt;
use std::sync::Arc;

use bubus::bridge::{
    BadInput, BoxFuture, Capabilities, Delivery, DeliveryStream, Message, Transport, TransportError,
};
use parking_lot::Mutex;

use crate::listener::{HttpListener, ListenerOptions};
use crate::sender::{HttpSender, RetryPolicy};

/// The HTTP bridge: events are POSTed to the far side's URL ([`send_to`](Self::send_to)) and
/// received on a listener of our own ([`listen_on`](Self::listen_on)) — the family's
/// `HTTPEventBridge(send_to=..., listen_on=...)`, on its wire, so either side may be a Python
/// or TypeScript process.
///
/// * **Delivery**: at-least-once from a sender that retries (connection errors, timeouts, 5xx,
///   408, 429, with backoff; see [`RetryPolicy`]) — the receiving bridge drops duplicates by
///   `event_id`. A `202` means the event is queued on the receiving side, not that it was
///   handled; what is queued when the receiving process dies is lost (no durable mode).
/// * **Order**: one sender's events arrive in the order sent, unless a retry overtakes.
/// * **Security**: binds 127.0.0.1 unless told otherwise; an optional bearer token
///   ([`bearer_token`](Self::bearer_token)) is required by the listener and sent by the sender;
///   bodies over the limit are refused (413). No TLS: put a proxy in front to cross machines.
///
/// ```
/// use bubus::bridge::Bridge;
/// use bubus::{DynEvent, EventBus};
/// use bubus_http::{HttpTransport, ListenerOptions};
/// use serde_json::json;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // The receiving process: listens on 127.0.0.1:<port>/events, on a port the system picks
/// // (`.port(8787)` for a fixed one). A clone shares the listener: it reads the URL back.
/// let billing = EventBus::new("Billing");
/// let listening = HttpTransport::new().listen_on(ListenerOptions::new().path("/events"));
/// let inn = Bridge::new(listening.clone());
/// inn.attach(&billing);
/// inn.start().await?;
/// let url = listening.listen_url().await.expect("started: listening");
///
/// // The sending process: POSTs to it.
/// let orders = EventBus::new("Orders");
/// let out = Bridge::new(HttpTransport::new().send_to(&url)?);
/// out.attach(&orders);
///
/// let seen = billing.expect_pattern("Charge");
/// let sent = orders.dispatch(DynEvent::new("Charge", json!({"cents": 250}))?)?;
/// assert_eq!(seen.await?.event_id(), sent.event_id());
/// out.close().await?;
/// inn.close().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct HttpTransport {
    sender: Option<HttpSender>,
    listen: Option<ListenerOptions>,
    token: Option<String>,
    retry: Option<RetryPolicy>,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    /// A socket bound ahead (`listen_on_socket`), used by the first `listen`.
    socket: Mutex<Option<std::net::TcpListener>>,
    listener: tokio::sync::Mutex<Option<HttpListener>>,
    closed: std::sync::atomic::AtomicBool,
}

impl fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpTransport")
            .field("send_to", &self.sender.as_ref().map(HttpSender::url))
            .field("listen_on", &self.listen)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

impl Default for HttpTransport {
    fn default() -> Self {
        HttpTransport::new()
    }
}

impl HttpTransport {
    /// A transport that neither sends nor listens yet: add [`send_to`](Self::send_to) and/or
    /// [`listen_on`](Self::listen_on).
    pub fn new() -> Self {
        HttpTransport {
            sender: None,
            listen: None,
            token: None,
            retry: None,
            state: Arc::new(State::default()),
        }
    }

    /// Sends events to `url` (`http://host:port/path`).
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] if `url` is not an `http://` URL.
    pub fn send_to(mut self, url: &str) -> Result<Self, TransportError> {
        let mut sender = HttpSender::new(url).map_err(|e| TransportError::Config(e.to_string()))?;
        if let Some(token) = &self.token {
            sender = sender
                .bearer_token(token)
                .map_err(|e| TransportError::Config(e.to_string()))?;
        }
        if let Some(retry) = &self.retry {
            sender = sender.retry(retry.clone());
        }
        self.sender = Some(sender);
        Ok(self)
    }

    /// Listens with these options (127.0.0.1, the path, the body limit) when the bridge starts.
    #[must_use]
    pub fn listen_on(mut self, options: ListenerOptions) -> Self {
        if let Some(token) = &self.token {
            self.listen = Some(options.bearer_token(token.clone()));
        } else {
            self.listen = Some(options);
        }
        self
    }

    /// Listens on a socket bound ahead (its address wins over the options').
    #[must_use]
    pub fn listen_on_socket(self, socket: std::net::TcpListener, options: ListenerOptions) -> Self {
        *self.state.socket.lock() = Some(socket);
        self.listen_on(options)
    }

    /// A bearer token: required from senders by the listener (401 without it) and sent by the
    /// sender. Set it before or after `send_to` / `listen_on`.
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`] if the token cannot be a header value.
    pub fn bearer_token(mut self, token: &str) -> Result<Self, TransportError> {
        self.token = Some(token.to_owned());
        if let Some(sender) = self.sender.take() {
            self.sender = Some(
                sender
                    .bearer_token(token)
                    .map_err(|e| TransportError::Config(e.to_string()))?,
            );
        }
        if let Some(listen) = self.listen.take() {
            self.listen = Some(listen.bearer_token(token));
        }
        Ok(self)
    }

    /// How the sender retries (default [`RetryPolicy::default`]).
    #[must_use]
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        if let Some(sender) = self.sender.take() {
            self.sender = Some(sender.retry(policy.clone()));
        }
        self.retry = Some(policy);
        self
    }

    /// The URL the listener serves, once the bridge started (with the port the system picked):
    /// `None` before. Clones share the listener, so keep one to ask (see [`HttpTransport`]).
    pub async fn listen_url(&self) -> Option<String> {
        self.state
            .listener
            .lock()
            .await
            .as_ref()
            .map(HttpListener::url)
    }
}

impl Transport for HttpTransport {
    fn kind(&self) -> &str {
        "HTTPEventBridge"
    }

    fn describe(&self) -> String {
        let to = self.sender.as_ref().map_or("-", HttpSender::url);
        let on = self
            .listen
            .as_ref()
            .map_or_else(|| "-".to_owned(), |o| o.addr().to_string());
        format!("http: send_to {to}, listen_on {on}")
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::at_most_once()
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            if self.state.closed.load(std::sync::atomic::Ordering::Acquire) {
                return Err(TransportError::Closed);
            }
            let Some(sender) = &self.sender else {
                return Err(TransportError::Config(
                    "this HTTP transport has no send_to URL".into(),
                ));
            };
            sender
                .send(message.text().to_owned())
                .await
                .map_err(|e| TransportError::other("HTTP send", e))
        })
    }

    fn listen(&self) -> BoxFuture<'_, Result<DeliveryStream, TransportError>> {
        Box::pin(async move {
            if self.state.closed.load(std::sync::atomic::Ordering::Acquire) {
                return Err(TransportError::Closed);
            }
            let Some(options) = self.listen.clone() else {
                return Err(TransportError::Config(
                    "this HTTP transport has no listen_on address".into(),
                ));
            };
            let socket = self.state.socket.lock().take();
            let mut listener = match socket {
                Some(socket) => HttpListener::from_std(socket, options.clone()),
                None => HttpListener::bind(options.clone()).await,
            }
            .map_err(|e| TransportError::io(format!("listen on {}", options.addr()), e))?;
            let mut rx = listener.take_receiver();
            *self.state.listener.lock().await = Some(listener);
            let stream: DeliveryStream = Box::pin(futures_util::stream::poll_fn(move |cx| {
                rx.poll_recv(cx).map(|item| {
                    item.map(|item| match item {
                        Ok(inbound) => Ok(Delivery::new(
                            inbound.body,
                            format!("peer {}", inbound.peer),
                        )),
                        Err(rejected) => Err(BadInput::new(
                            format!("peer {}", rejected.peer),
                            rejected.reason,
                        )),
                    })
                })
            }));
            Ok(stream)
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.state
                .closed
                .store(true, std::sync::atomic::Ordering::Release);
            if let Some(mut listener) = self.state.listener.lock().await.take() {
                listener.close().await;
            }
            Ok(())
        })
    }
}
