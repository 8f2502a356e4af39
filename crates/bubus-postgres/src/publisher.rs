//! The sending side: one writer task per bridge that takes events from a queue and writes them
//! — the durable outbox in batches (one multi-row `INSERT` per batch, so concurrent senders
//! share a commit), the family's table one upsert + `NOTIFY` at a time — retrying through
//! reconnects. A send completes once its event is committed.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::conn::Conn;
use crate::durable::Tables;
use crate::error::PgError;
use crate::plain::PlainTable;
use bubus::bridge::Backoff;

/// An event to write, and who to tell.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) event_id: String,
    pub(crate) event_type: String,
    /// The compact JSON text.
    pub(crate) text: Arc<str>,
    /// A completion record (results back), not an event.
    pub(crate) completion: bool,
    pub(crate) done: oneshot::Sender<Result<(), PgError>>,
}

/// Where the writer writes.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Plain(Arc<PlainTable>),
    Durable(Tables),
}

pub(crate) fn start(
    target: Target,
    conn: Arc<Conn>,
) -> (mpsc::Sender<Outgoing>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(4096);
    let task = tokio::spawn(write_loop(target, conn, rx));
    (tx, task)
}

async fn write_loop(target: Target, conn: Arc<Conn>, mut rx: mpsc::Receiver<Outgoing>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 512).await > 0 {
        let mut backoff = Backoff::new(conn.max_backoff());
        loop {
            let client = match conn.get().await {
                Ok(c) => c,
                Err(e) => {
                    let msg = e.to_string();
                    for o in batch.drain(..) {
                        let _ = o.done.send(Err(PgError::Send {
                            event_id: o.event_id,
                            message: msg.clone(),
                        }));
                    }
                    break;
                }
            };
            let r = match &target {
                Target::Durable(tables) => {
                    // A completion record is keyed apart from its event (ids are not re-sent).
                    let ids: Vec<String> = batch
                        .iter()
                        .map(|o| {
                            if o.completion {
                                format!("{}:completion", o.event_id)
                            } else {
                                o.event_id.clone()
                            }
                        })
                        .collect();
                    let types: Vec<String> = batch.iter().map(|o| o.event_type.clone()).collect();
                    let bodies: Vec<String> = batch.iter().map(|o| o.text.to_string()).collect();
                    tables
                        .publish_many(&*client, &ids, &types, &bodies)
                        .await
                        .map(drop)
                }
                Target::Plain(table) => {
                    let mut r = Ok(());
                    // Written in order; on a connection error the rest is retried (an upsert
                    // twice is harmless, a notification twice is what the family does on retry).
                    while let Some(o) = batch.first() {
                        let written = if o.completion {
                            table.write_completion(&client, &o.event_id, &o.text).await
                        } else {
                            match serde_json::from_str::<Value>(&o.text) {
                                Ok(Value::Object(map)) => table.write(&client, &map).await,
                                _ => Err(PgError::Send {
                                    event_id: o.event_id.clone(),
                                    message: "not a JSON object".into(),
                                }),
                            }
                        };
                        match written {
                            Ok(()) => {
                                let o = batch.remove(0);
                                let _ = o.done.send(Ok(()));
                            }
                            Err(e) if !e.is_connection() => {
                                let o = batch.remove(0);
                                let _ = o.done.send(Err(e));
                            }
                            Err(e) => {
                                r = Err(e);
                                break;
                            }
                        }
                    }
                    r
                }
            };
            match r {
                Ok(()) => {
                    for o in batch.drain(..) {
                        let _ = o.done.send(Ok(()));
                    }
                    break;
                }
                Err(e) if e.is_connection() => {
                    conn.broken(&client).await;
                    let wait = backoff.next_delay();
                    tracing::debug!(error = %e, ?wait, "bubus-postgres: send retrying after reconnect");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    let msg = e.to_string();
                    tracing::warn!(error = %msg, "bubus-postgres: send failed");
                    for o in batch.drain(..) {
                        let _ = o.done.send(Err(PgError::Send {
                            event_id: o.event_id,
                            message: msg.clone(),
                        }));
                    }
                    break;
                }
            }
        }
    }
}
