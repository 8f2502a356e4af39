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
    // Makes sure the server has the subscription before `listen` returns, so what another
    // connection publishes from then on reaches it. The client's `flush` only empties its own
    // socket buffer; a round trip through the server is needed: the server handles one
    // connection's commands in order, so once a message this connection published to a subject
    // of its own comes back, the subscription sent before it is in place.
    crate::durable::retry("NATS subscribe", shared.options.send_timeout, || {
        round_trip(&shared.client, shared.options.send_timeout)
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

/// One round trip through the server on `client`'s connection: publishes to a fresh inbox this
/// connection subscribes to and waits for the message to come back.
async fn round_trip(
    client: &async_nats::Client,
    within: std::time::Duration,
) -> Result<(), crate::durable::AnyError> {
    if client.connection_state() != async_nats::connection::State::Connected {
        return Err("not connected yet".into());
    }
    let inbox = client.new_inbox();
    let mut probe = client.subscribe(inbox.clone()).await?;
    client.publish(inbox, bytes::Bytes::new()).await?;
    client.flush().await?;
    match tokio::time::timeout(within, probe.next()).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("the probe subscription ended".into()),
        Err(_) => Err("no reply from the server".into()),
    }
}
