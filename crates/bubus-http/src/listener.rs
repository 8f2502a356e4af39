//! The receiving side: an axum server that takes events POSTed to one path.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::value::RawValue;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The largest request body taken by default (413 above it): 16 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// How [`HttpListener::bind`] listens.
///
/// ```
/// use bubus_http::ListenerOptions;
///
/// let options = ListenerOptions::new()
///     .port(8787)
///     .path("/events")
///     .bearer_token("s3cret")
///     .body_limit(1024 * 1024);
/// assert_eq!(options.addr().to_string(), "127.0.0.1:8787");
/// ```
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    addr: SocketAddr,
    path: String,
    token: Option<String>,
    body_limit: usize,
    queue: usize,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            path: "/".to_owned(),
            token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            queue: 1024,
        }
    }
}

impl ListenerOptions {
    /// 127.0.0.1 on a port the system picks, path `/`, no token, a 16 MiB body limit.
    pub fn new() -> Self {
        ListenerOptions::default()
    }

    /// The address to bind (127.0.0.1 unless told otherwise: binding another interface is a
    /// choice to make explicitly).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Binds this address instead.
    #[must_use]
    pub fn bind_addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Binds this port (on the same interface).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.addr.set_port(port);
        self
    }

    /// The one path events are POSTed to (`/` by default); any other path is 404.
    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let mut path = path.into();
        if !path.starts_with('/') {
            path.insert(0, '/');
        }
        self.path = path;
        self
    }

    /// Requires `Authorization: Bearer <token>` (401 without it).
    #[must_use]
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The largest body taken, in bytes (413 above it).
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.body_limit = bytes;
        self
    }

    /// How many received events may wait for the consumer before requests wait (and so the
    /// senders): back-pressure instead of unbounded memory. At least 1.
    #[must_use]
    pub fn queue(mut self, events: usize) -> Self {
        self.queue = events.max(1);
        self
    }
}

/// A request refused for what it carried (400, 413): who sent it and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejected {
    /// The sender's address.
    pub peer: SocketAddr,
    /// What was wrong.
    pub reason: String,
}

/// One event received: its JSON text (a JSON object, checked) and who sent it.
#[derive(Debug)]
pub struct Inbound {
    /// The request body: one JSON object.
    pub body: String,
    /// The sender's address.
    pub peer: SocketAddr,
}

/// What a listener has seen, for metrics.
#[derive(Debug, Default)]
pub struct ListenerStats {
    accepted: AtomicU64,
    rejected: AtomicU64,
}

impl ListenerStats {
    /// Events taken (answered 202).
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Requests refused for what they carried: bad JSON, a body that is not a JSON object, a
    /// body over the limit (400, 413). Wrong paths, methods and tokens are not counted here.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

struct Shared {
    path: String,
    token: Option<HeaderValue>,
    body_limit: usize,
    tx: mpsc::Sender<Result<Inbound, Rejected>>,
    stats: Arc<ListenerStats>,
}

/// A running HTTP listener: the family's endpoint (POST one JSON event to the path; `202` once
/// it is queued for the consumer; `400` bad JSON; `404` another path; `405` another method), plus
/// an optional bearer token (`401`) and a body limit (`413`). Connections are kept alive.
///
/// Received events come out of [`recv`](Self::recv); a bad request never stops it.
#[derive(Debug)]
pub struct HttpListener {
    local_addr: SocketAddr,
    path: String,
    rx: mpsc::Receiver<Result<Inbound, Rejected>>,
    stats: Arc<ListenerStats>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl HttpListener {
    /// Binds and starts serving.
    ///
    /// # Errors
    ///
    /// The bind's I/O error (address in use, permission denied).
    pub async fn bind(options: ListenerOptions) -> std::io::Result<Self> {
        let socket = TcpListener::bind(options.addr).await?;
        Self::serve(socket, options)
    }

    /// Serves on a socket already bound (its address replaces the options' one): for a port
    /// reserved ahead, or a socket handed over by a service manager.
    ///
    /// # Errors
    ///
    /// If the socket cannot be used with tokio.
    pub fn from_std(
        socket: std::net::TcpListener,
        options: ListenerOptions,
    ) -> std::io::Result<Self> {
        socket.set_nonblocking(true)?;
        Self::serve(TcpListener::from_std(socket)?, options)
    }

    fn serve(socket: TcpListener, options: ListenerOptions) -> std::io::Result<Self> {
        let local_addr = socket.local_addr()?;
        let (tx, rx) = mpsc::channel(options.queue);
        let stats = Arc::new(ListenerStats::default());
        let token = match &options.token {
            Some(token) => Some(
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let shared = Arc::new(Shared {
            path: options.path.clone(),
            token,
            body_limit: options.body_limit,
            tx,
            stats: stats.clone(),
        });
        let app = Router::new().fallback(handle).with_state(shared);
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let served = axum::serve(
                socket,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                let _ = stop.await;
            })
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "bubus-http listener stopped");
            }
        });
        Ok(HttpListener {
            local_addr,
            path: options.path,
            rx,
            stats,
            shutdown: Some(shutdown),
            task: Some(task),
        })
    }

    /// The address it listens on (with the port the system picked, if it picked one).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The URL senders POST to: `http://{local_addr}{path}`.
    pub fn url(&self) -> String {
        format!("http://{}{}", self.local_addr, self.path)
    }

    /// Counters of what it took and refused.
    pub fn stats(&self) -> Arc<ListenerStats> {
        self.stats.clone()
    }

    /// The next event received; `None` once closed and drained. Rejected requests are skipped
    /// (they were answered, logged and counted).
    pub async fn recv(&mut self) -> Option<Inbound> {
        loop {
            if let Ok(inbound) = self.rx.recv().await? {
                return Some(inbound);
            }
        }
    }

    /// Takes the receiving end, to consume from another task: events, and requests rejected
    /// for what they carried (sent when there is room, never waited for). [`recv`](Self::recv)
    /// then returns `None`.
    pub fn take_receiver(&mut self) -> mpsc::Receiver<Result<Inbound, Rejected>> {
        let (_, empty) = mpsc::channel(1);
        std::mem::replace(&mut self.rx, empty)
    }

    /// Stops taking connections and waits for the requests in flight to be answered.
    pub async fn close(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for HttpListener {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        text,
    )
        .into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    // The family checks the method first, then the path.
    if request.method() != Method::POST {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
    if target != shared.path {
        return plain(StatusCode::NOT_FOUND, "not found");
    }
    if let Some(token) = &shared.token {
        if request.headers().get(header::AUTHORIZATION) != Some(token) {
            let mut response = plain(StatusCode::UNAUTHORIZED, "unauthorized");
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    let too_large = |shared: &Shared| {
        reject(
            shared,
            peer,
            format!("request body over the {} byte limit", shared.body_limit),
        );
        plain(StatusCode::PAYLOAD_TOO_LARGE, "payload too large")
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.body_limit as u64) {
        return too_large(&shared);
    }
    let body: Bytes = match axum::body::to_bytes(request.into_body(), shared.body_limit).await {
        Ok(body) => body,
        Err(e) => {
            if is_length_limit(&e) {
                return too_large(&shared);
            }
            reject(&shared, peer, format!("cannot read the request body: {e}"));
            return plain(StatusCode::BAD_REQUEST, "incomplete body");
        }
    };
    let text = match String::from_utf8(body.into()) {
        Ok(text) => text,
        Err(_) => return bad_json(&shared, peer, "body is not UTF-8"),
    };
    match serde_json::from_str::<&RawValue>(&text) {
        Ok(raw) if raw.get().starts_with('{') => {}
        Ok(_) => return bad_json(&shared, peer, "body is not a JSON object"),
        Err(e) => return bad_json(&shared, peer, &format!("invalid JSON: {e}")),
    }
    if shared
        .tx
        .send(Ok(Inbound { body: text, peer }))
        .await
        .is_err()
    {
        return plain(StatusCode::SERVICE_UNAVAILABLE, "listener closed");
    }
    shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
    plain(StatusCode::ACCEPTED, "accepted")
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.to_string().contains("length limit") {
            return true;
        }
        source = e.source();
    }
    false
}

/// Counts, logs and reports a request refused for what it carried.
fn reject(shared: &Shared, peer: SocketAddr, reason: String) {
    shared.stats.rejected.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(%peer, error = %reason, "bubus-http: bad request skipped");
    // Never waits: a consumer that does not keep up misses rejections, not events.
    let _ = shared.tx.try_send(Err(Rejected { peer, reason }));
}

fn bad_json(shared: &Shared, peer: SocketAddr, why: &str) -> Response {
    reject(shared, peer, why.to_owned());
    let body = Body::from(why.to_owned());
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}
