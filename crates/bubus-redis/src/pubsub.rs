//! The family's plain mode: `PUBLISH <channel> <json>` / `SUBSCRIBE <channel>`.

use std::sync::Arc;

use bubus::bridge::{BadInput, Delivery, DeliveryStream, Message, TransportError};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};

use crate::conn;
use crate::transport::Shared;
use bubus::bridge::Backoff;

pub(crate) async fn send(shared: &Shared, message: &Message) -> Result<(), TransportError> {
    let mut con = shared.commands.clone();
    let channel = shared.options.channel.as_str();
    let text = message.text();
    conn::retry("Redis PUBLISH", shared.options.send_timeout, || {
        let mut con = con.clone();
        async move {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(text)
                .query_async::<i64>(&mut con)
                .await
        }
    })
    .await?;
    // Keeps the manager's clone alive for the retry closure's lifetime.
    let _ = &mut con;
    Ok(())
}

/// Subscribes (and re-subscribes after every reconnect) and yields what arrives.
pub(crate) async fn listen(shared: Arc<Shared>) -> Result<DeliveryStream, TransportError> {
    // The family's start: validates the logical db (and the server) before listening.
    init_marker(&shared).await?;
    let mut pubsub = subscribe(&shared).await?;
    let (tx, rx) = mpsc::channel::<Result<Delivery, BadInput>>(1024);
    let mut closed = shared.closed.subscribe();
    tokio::spawn(async move {
        let mut backoff = Backoff::default();
        loop {
            let ended = forward(pubsub, &shared, &tx, &mut closed).await;
            if ended || *closed.borrow() {
                return;
            }
            tracing::warn!(channel = %shared.options.channel, "Redis pub/sub connection lost; reconnecting (events published meanwhile are lost: at-most-once)");
            shared
                .reconnects
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            pubsub = loop {
                tokio::select! {
                    _ = closed.changed() => return,
                    () = backoff.wait() => {}
                }
                match subscribe(&shared).await {
                    Ok(p) => break p,
                    Err(e) => tracing::debug!(error = %e, "Redis resubscribe failed"),
                }
            };
            backoff.reset();
        }
    });
    Ok(Box::pin(tokio_stream(rx)))
}

pub(crate) fn tokio_stream<T: Send + 'static>(
    mut rx: mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

async fn init_marker(shared: &Shared) -> Result<(), TransportError> {
    let mut con = shared.commands.clone();
    conn::retry(
        "Redis SET __abxbus:bridge_init__",
        shared.options.send_timeout,
        || {
            let mut con = con.clone();
            async move {
                redis::cmd("SET")
                    .arg("__abxbus:bridge_init__")
                    .arg("1")
                    .arg("NX")
                    .arg("EX")
                    .arg(60)
                    .query_async::<redis::Value>(&mut con)
                    .await
            }
        },
    )
    .await?;
    let _ = &mut con;
    Ok(())
}

async fn subscribe(shared: &Shared) -> Result<redis::aio::PubSub, TransportError> {
    let mut pubsub = shared
        .client
        .get_async_pubsub()
        .await
        .map_err(|e| TransportError::other("Redis pub/sub connect", e))?;
    pubsub
        .subscribe(&shared.options.channel)
        .await
        .map_err(|e| TransportError::other("Redis SUBSCRIBE", e))?;
    Ok(pubsub)
}

/// Forwards messages until the connection ends (`false`) or the listener is gone or the
/// transport closed (`true`).
async fn forward(
    pubsub: redis::aio::PubSub,
    shared: &Shared,
    tx: &mpsc::Sender<Result<Delivery, BadInput>>,
    closed: &mut watch::Receiver<bool>,
) -> bool {
    let origin = format!("redis channel {}", shared.options.channel);
    let mut messages = pubsub.into_on_message();
    loop {
        let msg = tokio::select! {
            _ = closed.changed() => return true,
            msg = messages.next() => msg,
        };
        let Some(msg) = msg else { return false };
        let item = match String::from_utf8(msg.get_payload_bytes().to_vec()) {
            Ok(text) => Ok(Delivery::new(text, origin.clone())),
            Err(_) => Err(BadInput::new(origin.clone(), "message is not UTF-8")),
        };
        if tx.send(item).await.is_err() {
            return true;
        }
    }
}
