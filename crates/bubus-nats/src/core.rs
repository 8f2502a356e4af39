//! The family's plain mode: core NATS publish/subscribe on one subject.

use std::sync::Arc;

use bubus::bridge::{BadInput, Delivery, DeliveryStream, Message, TransportError};
use futures_util::StreamExt;

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
    let subscriber = shared
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
    // The subscription is the stream (no task and channel between them): it ends when the
    // transport closes, and dropping it unsubscribes.
    let mut closed = shared.closed.subscribe();
    let until_closed = async move {
        let _ = closed.wait_for(|closed| *closed).await;
    };
    let origin = format!("nats subject {}", shared.options.subject);
    let deliveries = subscriber
        .map(move |msg| match String::from_utf8(Vec::from(msg.payload)) {
            Ok(text) => Ok(Delivery::new(text, origin.clone())),
            Err(_) => Err(BadInput::new(origin.clone(), "message is not UTF-8")),
        })
        .take_until(Box::pin(until_closed));
    Ok(Box::pin(deliveries))
}
