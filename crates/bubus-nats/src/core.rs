//! The family's plain mode: core NATS publish/subscribe on one subject.

use std::sync::Arc;

use bubus::bridge::{BadInput, Delivery, DeliveryStream, Message, TransportError};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::transport::Shared;

pub(crate) async fn send(shared: &Shared, message: &Message) -> Result<(), TransportError> {
    // The client buffers while it reconnects; at-most-once as in the family.
    shared
        .client
        .publish(
            shared.options.subject.clone(),
            bytes::Bytes::copy_from_slice(message.text().as_bytes()),
        )
        .await
        .map_err(|e| TransportError::other("NATS publish", e))
}

pub(crate) async fn listen(shared: Arc<Shared>) -> Result<DeliveryStream, TransportError> {
    // The client re-subscribes after every reconnect.
    let mut subscriber = shared
        .client
        .subscribe(shared.options.subject.clone())
        .await
        .map_err(|e| TransportError::other("NATS subscribe", e))?;
    // Makes sure the server has the subscription before `listen` returns (the client may
    // still be connecting).
    crate::durable::retry("NATS flush", shared.options.send_timeout, || async {
        if shared.client.connection_state() != async_nats::connection::State::Connected {
            return Err("not connected yet".into());
        }
        shared.client.flush().await.map_err(Into::into)
    })
    .await?;
    let (tx, rx) = mpsc::channel::<Result<Delivery, BadInput>>(1024);
    let mut closed = shared.closed.subscribe();
    let origin = format!("nats subject {}", shared.options.subject);
    tokio::spawn(async move {
        loop {
            let msg = tokio::select! {
                _ = closed.changed() => break,
                msg = subscriber.next() => msg,
            };
            let Some(msg) = msg else { break };
            let item = match String::from_utf8(msg.payload.to_vec()) {
                Ok(text) => Ok(Delivery::new(text, origin.clone())),
                Err(_) => Err(BadInput::new(origin.clone(), "message is not UTF-8")),
            };
            if tx.send(item).await.is_err() {
                break;
            }
        }
        let _ = subscriber.unsubscribe().await;
    });
    Ok(Box::pin(crate::rx_stream(rx)))
}
