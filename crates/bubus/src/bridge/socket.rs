//! The Unix domain socket transport: the family's `SocketEventBridge` (newline-delimited JSON
//! over one socket path, used both to listen and to send).

use std::fmt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, mpsc};

use super::transport::{
    BadInput, BoxFuture, Capabilities, Delivery, DeliveryStream, Message, Transport, TransportError,
};

/// The family's limit on a socket path, in bytes (below the OS limit of 104–108).
pub const MAX_SOCKET_PATH_BYTES: usize = 90;

/// Events over a Unix domain socket — the family's `SocketEventBridge`: one path (`unix://`
/// prefix optional) for both directions. The listener binds the path (absolute; its directory
/// is created), reads newline-delimited JSON from every connection, and removes the socket file
/// on close. A sender keeps one connection open and writes each event as one line (a Python or
/// TypeScript listener reads that as it reads the family's one-connection-per-event sends).
///
/// Better than the family: the socket file is made `0600` (owner only) unless told otherwise;
/// a socket file left by a dead listener is replaced, but one a live listener serves is not
/// (an error says so), and a file that is not a socket is never deleted; lines longer than
/// [`max_line_bytes`](Self::max_line_bytes) are reported and skipped.
///
/// Delivery is at-most-once: what is sent while no listener runs fails to send (the sender's
/// handler records the error); what the listener has not read when it stops is lost.
///
/// ```
/// use bubus::bridge::UnixSocketTransport;
///
/// let err = UnixSocketTransport::new(format!("/tmp/{}.sock", "a".repeat(100))).unwrap_err();
/// assert!(err.to_string().contains("too long"));
/// ```
#[derive(Clone)]
pub struct UnixSocketTransport {
    path: Arc<PathBuf>,
    mode: u32,
    max_line_bytes: usize,
    shared: Arc<Shared>,
}

struct Shared {
    conn: tokio::sync::Mutex<Option<UnixStream>>,
    closed: AtomicBool,
    stop: Notify,
    /// The (device, inode) of the socket file this endpoint bound: removed on close only if
    /// the path still holds it.
    bound: Mutex<Option<(u64, u64)>>,
    peers: AtomicU64,
}

impl fmt::Debug for UnixSocketTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UnixSocketTransport")
            .field("path", &self.path)
            .field("mode", &format_args!("{:o}", self.mode))
            .finish_non_exhaustive()
    }
}

impl UnixSocketTransport {
    /// The default [`max_line_bytes`](Self::max_line_bytes): 16 MiB.
    pub const DEFAULT_MAX_LINE_BYTES: usize = 16 * 1024 * 1024;

    /// A transport on `path` (`unix://` prefix optional).
    ///
    /// # Errors
    ///
    /// [`TransportError::Config`]: an empty path, or one longer than
    /// [`MAX_SOCKET_PATH_BYTES`] (the family's message: `Unix socket path is too long (N
    /// chars), max is 90: <path>`).
    pub fn new(path: impl AsRef<str>) -> Result<Self, TransportError> {
        let raw = path.as_ref();
        let path = raw.strip_prefix("unix://").unwrap_or(raw);
        if path.is_empty() {
            return Err(TransportError::Config(
                "SocketEventBridge path must not be empty".into(),
            ));
        }
        if path.len() > MAX_SOCKET_PATH_BYTES {
            return Err(TransportError::Config(format!(
                "Unix socket path is too long ({} chars), max is {MAX_SOCKET_PATH_BYTES}: {path}",
                path.len()
            )));
        }
        Ok(UnixSocketTransport {
            path: Arc::new(PathBuf::from(path)),
            mode: 0o600,
            max_line_bytes: Self::DEFAULT_MAX_LINE_BYTES,
            shared: Arc::new(Shared {
                conn: tokio::sync::Mutex::new(None),
                closed: AtomicBool::new(false),
                stop: Notify::new(),
                bound: Mutex::new(None),
                peers: AtomicU64::new(0),
            }),
        })
    }

    /// The socket file's permissions (default `0o600`: only the owner's processes connect).
    pub fn permissions(mut self, mode: u32) -> Self {
        self.mode = mode & 0o777;
        self
    }

    /// The longest line accepted (default 16 MiB): a longer one is reported and skipped.
    pub fn max_line_bytes(mut self, bytes: usize) -> Self {
        self.max_line_bytes = bytes.max(1);
        self
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, what: &str, e: std::io::Error) -> TransportError {
        TransportError::io(format!("{what} {}", self.path.display()), e)
    }

    async fn bind(&self) -> Result<UnixListener, TransportError> {
        let path = &*self.path;
        if !path.is_absolute() {
            return Err(TransportError::Config(format!(
                "unix listen_on path must be absolute, got: {}",
                path.display()
            )));
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.io("create the directory of", e))?;
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_socket() => {
                if UnixStream::connect(path).await.is_ok() {
                    return Err(TransportError::Config(format!(
                        "{} is in use by a running listener",
                        path.display()
                    )));
                }
                // Left behind by a listener that died: replace it.
                std::fs::remove_file(path).map_err(|e| self.io("remove the stale socket", e))?;
            }
            Ok(_) => {
                return Err(TransportError::Config(format!(
                    "{} exists and is not a socket; not replacing it",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(self.io("inspect", e)),
        }
        let listener = UnixListener::bind(path).map_err(|e| self.io("bind", e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(self.mode))
            .map_err(|e| self.io("set the permissions of", e))?;
        let meta = std::fs::metadata(path).map_err(|e| self.io("inspect", e))?;
        *self.shared.bound.lock() = Some((meta.dev(), meta.ino()));
        Ok(listener)
    }

    async fn accept_loop(
        self,
        listener: UnixListener,
        tx: mpsc::Sender<Result<Delivery, BadInput>>,
    ) {
        let mut readers = tokio::task::JoinSet::new();
        loop {
            let stop = self.shared.stop.notified();
            if self.shared.closed.load(Ordering::Acquire) {
                break;
            }
            tokio::select! {
                () = stop => break,
                () = tx.closed() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let n = self.shared.peers.fetch_add(1, Ordering::Relaxed) + 1;
                        let pid = stream.peer_cred().ok().and_then(|c| c.pid());
                        let peer = match pid {
                            Some(pid) => format!("unix:{} peer {n} (pid {pid})", self.path.display()),
                            None => format!("unix:{} peer {n}", self.path.display()),
                        };
                        readers.spawn(read_lines(stream, peer, self.max_line_bytes, tx.clone()));
                        while readers.try_join_next().is_some() {}
                    }
                    Err(e) => {
                        tracing::warn!(path = %self.path.display(), error = %e, "unix socket accept failed");
                        tokio::task::yield_now().await;
                    }
                },
            }
        }
        readers.abort_all();
    }
}

/// Reads newline-delimited messages from one connection, with bounded memory.
async fn read_lines(
    stream: UnixStream,
    peer: String,
    max_line: usize,
    tx: mpsc::Sender<Result<Delivery, BadInput>>,
) {
    let mut reader = BufReader::new(stream);
    let mut line: Vec<u8> = Vec::new();
    let mut too_long = false;
    let mut number = 0u64;
    loop {
        let buf = match reader.fill_buf().await {
            Ok(buf) => buf,
            Err(e) => {
                let _ = tx
                    .send(Err(BadInput::new(&peer, format!("read failed: {e}"))))
                    .await;
                return;
            }
        };
        if buf.is_empty() {
            if !line.is_empty() || too_long {
                number += 1;
                let _ = tx
                    .send(Err(BadInput::new(
                        format!("{peer} line {number}"),
                        "connection closed in the middle of a line",
                    )))
                    .await;
            }
            return;
        }
        let (piece, used, complete) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        if !too_long {
            if line.len() + piece.len() > max_line {
                too_long = true;
                line = Vec::new();
            } else {
                line.extend_from_slice(piece);
            }
        }
        reader.consume(used);
        if !complete {
            continue;
        }
        number += 1;
        let origin = format!("{peer} line {number}");
        let item = if std::mem::take(&mut too_long) {
            Err(BadInput::new(
                origin,
                format!("line longer than the limit of {max_line} bytes"),
            ))
        } else {
            match String::from_utf8(std::mem::take(&mut line)) {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => Ok(Delivery::new(text, origin)),
                Err(e) => Err(BadInput::new(
                    origin,
                    format!("line is not UTF-8: {}", e.utf8_error()),
                )),
            }
        };
        if tx.send(item).await.is_err() {
            return;
        }
    }
}

impl Transport for UnixSocketTransport {
    fn kind(&self) -> &str {
        "SocketEventBridge"
    }

    fn describe(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::at_most_once()
            .with_receives_own(true)
            .with_ordered(true)
            .with_single_listener(true)
    }

    fn send<'a>(&'a self, message: &'a Message) -> BoxFuture<'a, Result<(), TransportError>> {
        Box::pin(async move {
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(TransportError::Closed);
            }
            let mut line = Vec::with_capacity(message.text().len() + 1);
            line.extend_from_slice(message.text().as_bytes());
            line.push(b'\n');
            let mut slot = self.shared.conn.lock().await;
            // Taken out while writing: if this future is dropped mid-line, the connection goes
            // with it, and the listener reports the cut line instead of gluing it to the next.
            let mut retried = false;
            loop {
                let mut conn = match slot.take() {
                    Some(c) => c,
                    None => UnixStream::connect(&*self.path)
                        .await
                        .map_err(|e| self.io("connect to", e))?,
                };
                match conn.write_all(&line).await {
                    Ok(()) => {
                        *slot = Some(conn);
                        return Ok(());
                    }
                    // The listener restarted since the last send: one new connection.
                    Err(_) if !retried => retried = true,
                    Err(e) => return Err(self.io("write to", e)),
                }
            }
        })
    }

    fn listen(&self) -> BoxFuture<'_, Result<DeliveryStream, TransportError>> {
        Box::pin(async move {
            if self.shared.closed.load(Ordering::Acquire) {
                return Err(TransportError::Closed);
            }
            let listener = self.bind().await?;
            let (tx, rx) = mpsc::channel(1024);
            tokio::spawn(self.clone().accept_loop(listener, tx));
            let stream: DeliveryStream =
                Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                }));
            Ok(stream)
        })
    }

    fn flush(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            if let Some(conn) = self.shared.conn.lock().await.as_mut() {
                conn.flush().await.map_err(|e| self.io("flush", e))?;
            }
            Ok(())
        })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.shared.closed.store(true, Ordering::Release);
            self.shared.stop.notify_waiters();
            if let Some(mut conn) = self.shared.conn.lock().await.take() {
                let _ = conn.shutdown().await;
            }
            let bound = self.shared.bound.lock().take();
            if let Some((dev, ino)) = bound {
                // Only our own socket file: another listener may have replaced it since.
                if let Ok(meta) = std::fs::symlink_metadata(&*self.path) {
                    if meta.dev() == dev && meta.ino() == ino {
                        std::fs::remove_file(&*self.path)
                            .map_err(|e| self.io("remove the socket", e))?;
                    }
                }
            }
            Ok(())
        })
    }
}
