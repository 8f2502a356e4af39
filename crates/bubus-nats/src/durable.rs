//! Durable mode: a JetStream stream on the subject and a durable pull consumer.
//!
//! * send: a JetStream publish with `Nats-Msg-Id` = the event id (the server drops a copy
//!   within the duplicate window), awaited until the stream has stored it, retried with
//!   backoff while the server is away;
//! * listen: a pull consumer with explicit acks; while an event runs its delivery is kept
//!   alive with progress acks every third of the ack wait; a delivery the receiver never acks
//!   (it died) is delivered again after the ack wait, to any member; a pull stream that hears
//!   nothing for two idle heartbeats pulls afresh (its requests were lost in a reconnect);
//! * ack: a double ack (the server confirms it); nack: `-NAK` with the delay; dead letter: the
//!   message is published to `bubus.dead.<subject>` (stream `<stream>_DEAD`) with why, then
//!   terminated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::message::{AckKind, Acker as NatsAcker};
use async_nats::jetstream::stream::{self, DiscardPolicy, StorageType};
use bubus::bridge::{
    Acker, BadInput, BoxFuture, Delivery, DeliveryStream, Message, MessageKind, TransportError,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::transport::Shared;
use bubus::bridge::Backoff;

pub(crate) type AnyError = Box<dyn std::error::Error + Send + Sync>;

/// Runs `op` until it succeeds or `within` has passed, with backoff.
pub(crate) async fn retry<T, F, Fut>(
    what: &str,
    within: Duration,
    mut op: F,
) -> Result<T, TransportError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, AnyError>>,
{
    let deadline = Instant::now() + within;
    let mut backoff = Backoff::default();
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "{what}: retrying");
                backoff.wait().await;
            }
            Err(e) => {
                return Err(TransportError::Engine(format!("{what}: {e}")));
            }
        }
    }
}

/// Creates the stream, the dead-letter stream (once per transport).
pub(crate) async fn setup(shared: &Shared) -> Result<(), TransportError> {
    shared
        .setup_done
        .get_or_try_init(|| async {
            let o = &shared.options;
            retry("NATS create stream", o.send_timeout, || async {
                shared
                    .js
                    .get_or_create_stream(stream::Config {
                        name: o.stream.clone(),
                        subjects: vec![o.subject.clone()],
                        storage: StorageType::File,
                        duplicate_window: o.duplicate_window,
                        max_messages: o.max_messages,
                        discard: DiscardPolicy::Old,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
                    .map_err(AnyError::from)
            })
            .await?;
            retry("NATS create dead-letter stream", o.send_timeout, || async {
                shared
                    .js
                    .get_or_create_stream(stream::Config {
                        name: o.dead_stream(),
                        subjects: vec![o.dead_subject()],
                        storage: StorageType::File,
                        ..Default::default()
                    })
                    .await
                    .map(drop)
                    .map_err(AnyError::from)
            })
            .await
        })
        .await
        .map(drop)
}

fn msg_id(message: &Message) -> String {
    match message.kind() {
        MessageKind::Completion => format!("{}:completion", message.event_id()),
        _ => message.event_id().to_string(),
    }
}

pub(crate) async fn send(shared: &Shared, message: &Message) -> Result<(), TransportError> {
    setup(shared).await?;
    let payload = bytes::Bytes::copy_from_slice(message.text().as_bytes());
    let id = msg_id(message);
    publish(
        shared,
        &shared.options.subject,
        payload,
        id,
        HeaderMap::new(),
    )
    .await
}

/// A JetStream publish, awaited until stored, retried (same `Nats-Msg-Id`, so a retry after a
/// lost ack is dropped by the server).
pub(crate) async fn publish(
    shared: &Shared,
    subject: &str,
    payload: bytes::Bytes,
    id: String,
    headers: HeaderMap,
) -> Result<(), TransportError> {
    retry(
        "NATS JetStream publish",
        shared.options.send_timeout,
        || {
            // `headers` replaces the whole map: the message id goes in after it.
            let publish = PublishMessage::build()
                .payload(payload.clone())
                .headers(headers.clone())
                .message_id(id.clone());
            async move {
                let ack = shared.js.send_publish(subject.to_owned(), publish).await?;
                ack.await?;
                Ok(())
            }
        },
    )
    .await
}

async fn consumer(shared: &Shared) -> Result<PullConsumer, AnyError> {
    let o = &shared.options;
    let stream = shared.js.get_stream(&o.stream).await?;
    let consumer = stream
        .get_or_create_consumer(
            &o.group,
            pull::Config {
                durable_name: Some(o.group.clone()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: o.lease,
                deliver_policy: if o.from_start {
                    DeliverPolicy::All
                } else {
                    DeliverPolicy::New
                },
                max_ack_pending: i64::try_from(o.batch * 16).unwrap_or(1024),
                ..Default::default()
            },
        )
        .await?;
    Ok(consumer)
}

pub(crate) async fn listen(shared: Arc<Shared>) -> Result<DeliveryStream, TransportError> {
    setup(&shared).await?;
    let first = retry("NATS create consumer", shared.options.send_timeout, || {
        consumer(&shared)
    })
    .await?;
    let (tx, rx) = mpsc::channel::<Result<Delivery, BadInput>>(shared.options.batch.max(16));
    tokio::spawn(pull_loop(shared, first, tx));
    Ok(Box::pin(crate::rx_stream(rx)))
}

/// The idle heartbeat asked of the server while a pull request waits.
const PULL_HEARTBEAT: Duration = Duration::from_secs(2);

async fn pull_loop(
    shared: Arc<Shared>,
    mut consumer: PullConsumer,
    tx: mpsc::Sender<Result<Delivery, BadInput>>,
) {
    let mut closed = shared.closed.subscribe();
    let mut backoff = Backoff::default();
    let origin = format!("nats stream {}", shared.options.stream);
    loop {
        let messages = consumer
            .stream()
            .max_messages_per_batch(shared.options.batch)
            .heartbeat(PULL_HEARTBEAT)
            .expires(Duration::from_secs(10))
            .messages()
            .await;
        match messages {
            Ok(mut messages) => loop {
                let listening = Instant::now();
                let next = tokio::select! {
                    _ = closed.changed() => return,
                    next = messages.next() => next,
                };
                match next {
                    Some(Ok(msg)) => {
                        backoff.reset();
                        if !deliver(&shared, msg, &origin, &tx).await {
                            return;
                        }
                    }
                    Some(Err(e))
                        if matches!(e.kind(), pull::MessagesErrorKind::MissingHeartbeat)
                            && listening.elapsed() >= PULL_HEARTBEAT =>
                    {
                        // Listened through two heartbeats and heard nothing, not even the
                        // server's idle heartbeat: it holds no pull request of ours. After a
                        // reconnect the stream's count of what it asked for can be off (its
                        // requests were lost with the old connection, while another member's
                        // waiting request made it think its own survived), and it would not
                        // ask again until its 15 s safety expiry, leaving the events to the
                        // other members meanwhile: pull afresh now.
                        tracing::debug!("NATS pull stream heard nothing; pulling afresh");
                        break;
                    }
                    Some(Err(e)) => {
                        // Missed heartbeats and the like: the stream goes on; a fatal one ends it.
                        tracing::debug!(error = %e, "NATS pull stream");
                        if matches!(
                            e.kind(),
                            pull::MessagesErrorKind::ConsumerDeleted
                                | pull::MessagesErrorKind::NoResponders
                        ) {
                            break;
                        }
                    }
                    None => break,
                }
            },
            Err(e) => tracing::debug!(error = %e, "NATS pull consumer"),
        }
        tokio::select! {
            _ = closed.changed() => return,
            () = backoff.wait() => {}
        }
        // The consumer (or the whole server state) may be gone: get or create it again.
        match consumer_again(&shared).await {
            Ok(c) => consumer = c,
            Err(e) => tracing::warn!(error = %e, "NATS consumer not available yet; retrying"),
        }
    }
}

async fn consumer_again(shared: &Shared) -> Result<PullConsumer, AnyError> {
    if let Err(e) = shared.js.get_stream(&shared.options.stream).await {
        tracing::warn!(error = %e, "NATS stream not found; creating it again");
        let o = &shared.options;
        shared
            .js
            .get_or_create_stream(stream::Config {
                name: o.stream.clone(),
                subjects: vec![o.subject.clone()],
                storage: StorageType::File,
                duplicate_window: o.duplicate_window,
                max_messages: o.max_messages,
                discard: DiscardPolicy::Old,
                ..Default::default()
            })
            .await?;
    }
    consumer(shared).await
}

async fn deliver(
    shared: &Arc<Shared>,
    msg: async_nats::jetstream::Message,
    origin: &str,
    tx: &mpsc::Sender<Result<Delivery, BadInput>>,
) -> bool {
    let (attempt, seq) = msg
        .info()
        .map(|i| (u32::try_from(i.delivered).unwrap_or(1), i.stream_sequence))
        .unwrap_or((1, 0));
    let reply = msg.message.reply.clone();
    let context = msg.context.clone();
    let text = String::from_utf8_lossy(&msg.message.payload).into_owned();
    // Keeps the delivery alive while the event runs.
    let progress = {
        let acker = NatsAcker::new(context.clone(), reply.clone());
        let period = shared.options.lease / 3;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                if acker.ack_with(AckKind::Progress).await.is_err() {
                    tracing::debug!("NATS progress ack failed");
                }
            }
        })
    };
    let acker = JsAcker {
        shared: Arc::clone(shared),
        acker: NatsAcker::new(context, reply),
        progress,
        text: text.clone(),
        attempt,
        seq,
    };
    let delivery = Delivery::new(text, format!("{origin} seq {seq}"))
        .with_attempt(attempt)
        .with_acker(acker);
    tx.send(Ok(delivery)).await.is_ok()
}

struct JsAcker {
    shared: Arc<Shared>,
    acker: NatsAcker,
    progress: tokio::task::JoinHandle<()>,
    text: String,
    attempt: u32,
    seq: u64,
}

impl Drop for JsAcker {
    fn drop(&mut self) {
        self.progress.abort();
    }
}

impl std::fmt::Debug for JsAcker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsAcker")
            .field("seq", &self.seq)
            .finish_non_exhaustive()
    }
}

impl JsAcker {
    async fn send(&self, what: &str, kind: AckKind, confirmed: bool) -> Result<(), TransportError> {
        self.progress.abort();
        retry(what, self.shared.options.send_timeout, || async {
            if confirmed {
                self.acker.double_ack_with(kind).await
            } else {
                self.acker.ack_with(kind).await
            }
        })
        .await
    }
}

impl Acker for JsAcker {
    fn ack(self: Box<Self>) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async move { self.send("NATS ack", AckKind::Ack, true).await })
    }

    fn nack(
        self: Box<Self>,
        delay: Option<Duration>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        // `-NAK` carries no text; the dead letter records the final reason.
        tracing::debug!(seq = self.seq, reason = %reason, "bubus-nats: message handed back");
        Box::pin(async move { self.send("NATS nak", AckKind::Nak(delay), false).await })
    }

    fn dead_letter(
        self: Box<Self>,
        reason: String,
    ) -> BoxFuture<'static, Result<(), TransportError>> {
        Box::pin(async move {
            self.progress.abort();
            let o = &self.shared.options;
            let (event_id, event_type) = crate::dead::ids_of(&self.text);
            let mut headers = HeaderMap::new();
            headers.insert("Bubus-Reason", one_line(&reason).as_str());
            headers.insert("Bubus-Deliveries", self.attempt.to_string().as_str());
            headers.insert("Bubus-Group", o.group.as_str());
            headers.insert("Bubus-Stream-Seq", self.seq.to_string().as_str());
            headers.insert("Bubus-Event-Id", event_id.as_str());
            headers.insert("Bubus-Event-Type", event_type.as_str());
            let id = format!("dead:{}:{}:{}", o.stream, o.group, self.seq);
            publish(
                &self.shared,
                &o.dead_subject(),
                bytes::Bytes::copy_from_slice(self.text.as_bytes()),
                id,
                headers,
            )
            .await?;
            self.send("NATS term", AckKind::Term, true).await
        })
    }
}

/// Header values are one line.
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .take(2000)
        .collect()
}
