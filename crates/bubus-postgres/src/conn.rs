//! Connections that heal: a client that reconnects with backoff when its connection breaks, and
//! a `LISTEN` connection that reconnects, listens again and says so.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bubus::bridge::Backoff;
use futures_util::StreamExt;
use futures_util::stream;
use tokio::sync::{Notify, mpsc};
use tokio_postgres::{AsyncMessage, Client, Config, NoTls};

use crate::error::PgError;

async fn connect_once(
    config: &Config,
) -> Result<
    (
        Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    ),
    PgError,
> {
    Ok(config.connect(NoTls).await?)
}

/// One client that reconnects: [`get`](Self::get) hands out the live client, or connects a new
/// one (retrying with backoff while the server is unreachable, until [`close`](Self::close)).
#[derive(Debug)]
pub(crate) struct Conn {
    config: Config,
    current: tokio::sync::Mutex<Option<Arc<Client>>>,
    closed: AtomicBool,
    max_backoff: Duration,
}

impl Conn {
    pub(crate) fn new(config: Config, max_backoff: Duration) -> Conn {
        Conn {
            config,
            current: tokio::sync::Mutex::new(None),
            closed: AtomicBool::new(false),
            max_backoff,
        }
    }

    /// Connects once, failing at once if the server is unreachable (used at startup, so a wrong
    /// URL is reported rather than retried forever).
    pub(crate) async fn connect_now(&self) -> Result<Arc<Client>, PgError> {
        let mut current = self.current.lock().await;
        if let Some(c) = current.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let (client, connection) = connect_once(&self.config).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "bubus-postgres: connection ended");
            }
        });
        let client = Arc::new(client);
        *current = Some(client.clone());
        Ok(client)
    }

    /// The live client, reconnecting with backoff as long as it takes.
    ///
    /// # Errors
    ///
    /// [`PgError::Closed`] once closed; a non-connection error from connecting (bad
    /// credentials, missing database) is returned rather than retried.
    pub(crate) async fn get(&self) -> Result<Arc<Client>, PgError> {
        let mut backoff = Backoff::new(self.max_backoff);
        loop {
            if self.closed.load(Ordering::Acquire) {
                return Err(PgError::Closed);
            }
            match self.connect_now().await {
                Ok(c) => return Ok(c),
                Err(e) if e.is_connection() => {
                    let wait = backoff.next_delay();
                    tracing::debug!(error = %e, ?wait, "bubus-postgres: reconnecting");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Forgets the client if it is `client` (after a connection error), so the next
    /// [`get`](Self::get) reconnects.
    pub(crate) async fn broken(&self, client: &Arc<Client>) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, client)) {
            *current = None;
        }
    }

    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    pub(crate) fn max_backoff(&self) -> Duration {
        self.max_backoff
    }
}

/// What a [`listen`] connection reports.
#[derive(Debug)]
pub(crate) enum Heard {
    /// Connected (again) and listening: anything sent while it was away was not heard.
    Listening,
    /// A notification on one of the channels.
    Notification { payload: String },
}

/// Spawns a task that keeps a connection listening on `channels`, reconnecting with backoff,
/// and reports to `tx` until `tx` is dropped or `stop` is notified.
pub(crate) fn listen(
    config: Config,
    channels: Vec<String>,
    max_backoff: Duration,
    tx: mpsc::UnboundedSender<Heard>,
    stop: Arc<Notify>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Backoff::new(max_backoff);
        loop {
            let run = async {
                let (client, mut connection) = match connect_once(&config).await {
                    Ok(c) => c,
                    Err(e) => return Err(e),
                };
                let (msg_tx, mut msg_rx) = mpsc::unbounded_channel();
                let pump = tokio::spawn(async move {
                    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(m) = messages.next().await {
                        match m {
                            Ok(AsyncMessage::Notification(n)) => {
                                if msg_tx.send(Some(n.payload().to_owned())).is_err() {
                                    return;
                                }
                            }
                            Ok(_) => {}
                            Err(e) => {
                                tracing::debug!(error = %e, "bubus-postgres: listen connection ended");
                                break;
                            }
                        }
                    }
                    let _ = msg_tx.send(None);
                });
                let sql: String = channels
                    .iter()
                    .map(|c| format!("LISTEN \"{c}\";"))
                    .collect();
                if let Err(e) = client.batch_execute(&sql).await {
                    pump.abort();
                    return Err(PgError::from(e));
                }
                if tx.send(Heard::Listening).is_err() {
                    pump.abort();
                    return Ok(());
                }
                backoff.reset();
                while let Some(Some(payload)) = msg_rx.recv().await {
                    if tx.send(Heard::Notification { payload }).is_err() {
                        pump.abort();
                        return Ok(());
                    }
                }
                drop(client);
                Err(PgError::Closed)
            };
            tokio::select! {
                _ = stop.notified() => return,
                r = run => {
                    if tx.is_closed() {
                        return;
                    }
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "bubus-postgres: listener reconnecting");
                    }
                }
            }
            tokio::select! {
                _ = stop.notified() => return,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    })
}
