//! The receiving side of a bridge: the listener, and for each delivery the loop check, the
//! de-duplication claim, the dispatch on the inbound bus, and once the event completed the ack,
//! nack or dead letter and, with results back, the completion record sent back.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use uuid::Uuid;

use super::bridge::BridgeInner;
use super::dedup::Claim;
use super::message::{COMPLETION_KEY, Incoming, decode_message};
use super::send::RemoteChild;
use super::transport::{Acker, BadInput, Delivery, Message, MessageKind};
use crate::error::HandlerError;
use crate::event::AnyEvent;

impl BridgeInner {
    /// How long an event the receiving bus refused (no room, stopped) waits before the
    /// transport delivers it again.
    pub(super) const REFUSED_RETRY: Duration = Duration::from_millis(500);

    /// When a delivery whose claim failed (the dedup store did not answer) comes back.
    pub(super) const CLAIM_RETRY: Duration = Duration::from_secs(1);

    /// Gives up the claim on an event whose handlers will not complete here.
    pub(super) async fn release(&self, event_id: Uuid) {
        if let Err(e) = self.dedup.release(event_id).await {
            tracing::warn!(bridge = %self.name, error = %e, "bridge dedup store failed to release a claim (it expires after its lease)");
        }
    }

    /// A received event the bus refused at dispatch: forgotten here, its claim released, and
    /// handed back to come again after [`REFUSED_RETRY`](Self::REFUSED_RETRY).
    pub(super) async fn dispatch_refused(
        &self,
        event_id: Uuid,
        origin: &str,
        acker: Option<Box<dyn Acker>>,
        error: &crate::DispatchError,
    ) {
        self.in_flight.lock().remove(&event_id);
        self.release(event_id).await;
        tracing::warn!(bridge = %self.name, %origin, error = %error, "bridge could not dispatch a received event");
        self.nack_counted(acker, Some(Self::REFUSED_RETRY), error.to_string())
            .await;
    }

    /// Hands a delivery back (where the transport has acks) and counts it as `nacked` once the
    /// nack is done.
    pub(super) async fn nack_counted(
        &self,
        acker: Option<Box<dyn Acker>>,
        delay: Option<Duration>,
        reason: String,
    ) {
        if let Some(a) = acker {
            if let Err(e) = a.nack(delay, reason).await {
                tracing::warn!(bridge = %self.name, error = %e, "bridge nack failed");
            }
            self.bump(&self.counters.nacked);
        }
    }

    /// Runs `work` (the received event's processing) while renewing the event's claim every
    /// third of the store's lease.
    pub(super) async fn renewing_claim<F: std::future::Future>(
        &self,
        event_id: Uuid,
        work: F,
    ) -> F::Output {
        let Some(lease) = self.dedup.lease() else {
            return work.await;
        };
        let every = (lease / 3).max(Duration::from_millis(10));
        let mut work = std::pin::pin!(work);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                out = &mut work => return out,
                _ = tick.tick() => {
                    match tokio::time::timeout(every, self.dedup.renew(event_id)).await {
                        Ok(Ok(true)) => {}
                        Ok(Ok(false)) => tracing::warn!(bridge = %self.name, event = %event_id, "bridge lost an event's claim while its handlers ran (it expired and was taken over)"),
                        Ok(Err(e)) => tracing::warn!(bridge = %self.name, event = %event_id, error = %e, "bridge could not renew an event's claim"),
                        Err(_) => tracing::warn!(bridge = %self.name, event = %event_id, "bridge could not renew an event's claim in time"),
                    }
                }
            }
        }
    }

    pub(super) async fn listen(self: Arc<Self>, mut stream: super::transport::DeliveryStream) {
        let stop = Arc::clone(&self.stop);
        // The received events between their dispatch and their completion (awaiting the event,
        // confirming, acking, replying), driven by this task beside the stream: no task spawned
        // and woken per event. At most `max_in_flight`: reading waits for one to complete.
        let mut completing = FuturesUnordered::new();
        loop {
            let next = tokio::select! {
                biased;
                () = stop.notified() => break,
                Some(()) = completing.next(), if !completing.is_empty() => continue,
                next = stream.next(), if completing.len() < self.max_in_flight => next,
            };
            let Some(next) = next else { break };
            self.bump(&self.counters.received);
            match next {
                Err(bad) => self.bad_input(bad),
                Ok(delivery) => {
                    let receiving = Arc::clone(&self).receive(delivery);
                    if let Some(completion) = drive_beside(receiving, &mut completing).await {
                        completing.push(completion);
                    }
                }
            }
        }
        drop(stream);
        while completing.next().await.is_some() {}
    }

    /// Handles one delivery up to its dispatch; returns the completion work to run beside the
    /// listener (awaiting the event, acking, replying).
    pub(super) async fn receive(
        self: Arc<Self>,
        mut delivery: Delivery,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let acker = delivery.take_acker();
        let text = delivery.text();
        let decoded = match decode_message(text) {
            Ok(Incoming::Event(e)) => e,
            Ok(Incoming::Completion(record)) => {
                self.receive_completion(record);
                ack(acker).await;
                return None;
            }
            Err(e) => {
                self.bad_input(BadInput::new(delivery.origin(), e.to_string()));
                if let Some(a) = acker {
                    let _ = a.dead_letter(format!("{}: {e}", delivery.origin())).await;
                    self.bump(&self.counters.dead_lettered);
                }
                return None;
            }
        };
        let path = decoded.event_path();
        let own_echo = self.came_through(&path)
            || self
                .attached
                .lock()
                .iter()
                .any(|label| path.iter().any(|p| **p == **label));
        if own_echo {
            self.bump(&self.counters.loops);
            ack(acker).await;
            return None;
        }
        let event_id = decoded.event_id();
        // A copy of an event being handled in this process.
        if self.in_flight.lock().insert(event_id, ()).is_some() {
            self.bump(&self.counters.duplicates);
            ack(acker).await;
            return None;
        }
        // The atomic claim: of two copies delivered to two receivers at once, one runs.
        match self.dedup.claim(event_id).await {
            Ok(Claim::Won) => {}
            Ok(Claim::Done) => {
                self.in_flight.lock().remove(&event_id);
                self.bump(&self.counters.duplicates);
                ack(acker).await;
                return None;
            }
            Ok(Claim::Held { retry_after }) => {
                self.in_flight.lock().remove(&event_id);
                self.bump(&self.counters.duplicates);
                tracing::debug!(bridge = %self.name, event = %event_id, ?retry_after, "bridge: another receiver holds the event's claim; handing it back");
                nack(
                    acker,
                    retry_after,
                    "another receiver holds the event's claim",
                )
                .await;
                return None;
            }
            // Without a way to hand it back (no acks), the event is delivered; with one, it
            // comes back once the store answers again.
            Err(e) if acker.is_some() => {
                self.in_flight.lock().remove(&event_id);
                tracing::warn!(bridge = %self.name, error = %e, "bridge dedup store failed to claim an event; handing it back");
                nack(
                    acker,
                    Self::CLAIM_RETRY,
                    "the dedup store did not answer the claim",
                )
                .await;
                return None;
            }
            Err(e) => {
                tracing::warn!(bridge = %self.name, error = %e, "bridge dedup store failed to claim an event; delivering");
            }
        }
        let event = decoded.event_reset_keep_id();
        // A child the far side dispatched under an event a sender here is waiting on: that
        // sender's handler processes it (its bus is busy with the parent).
        let mut acker = acker;
        let event = match event
            .event_parent_id()
            .and_then(|parent| self.replies.lock().get(&parent).map(|w| w.children.clone()))
        {
            Some(children) => {
                let child = RemoteChild {
                    event,
                    acker,
                    attempt: delivery.attempt(),
                    origin: delivery.origin().to_owned(),
                };
                match children.send(child) {
                    Ok(()) => return None,
                    Err(back) => {
                        acker = back.0.acker;
                        back.0.event
                    }
                }
            }
            None => event,
        };
        let handle = match self.inbound.dispatch(event) {
            Ok(h) => h,
            Err(e) => {
                self.dispatch_refused(event_id, delivery.origin(), acker, &e)
                    .await;
                return None;
            }
        };
        self.bump(&self.counters.dispatched);
        let attempt = delivery.attempt();
        let origin = delivery.origin().to_owned();
        let this = Arc::clone(&self);
        Some(async move { this.complete(handle, acker, attempt, origin).await })
    }

    pub(super) async fn complete(
        self: Arc<Self>,
        handle: AnyEvent,
        acker: Option<Box<dyn Acker>>,
        attempt: u32,
        origin: String,
    ) {
        let event_id = handle.event_id();
        let done = self
            .renewing_claim(event_id, std::future::IntoFuture::into_future(&handle))
            .await;
        let (failure, no_room) = match &done {
            Err(e) => (Some(e.to_string()), false),
            Ok(event) => {
                let errors = event.event_errors();
                let no_room = !errors.is_empty() && errors.iter().all(is_history_full);
                (errors.first().map(ToString::to_string), no_room)
            }
        };
        if let (Some(reason), true) = (&failure, no_room) {
            // A receiving bus with no room is backpressure, not a failed delivery: hand the
            // event back (never to the dead letters for it) and do not record it as handled.
            self.release(event_id).await;
            self.in_flight.lock().remove(&event_id);
            tracing::warn!(bridge = %self.name, %origin, event = %event_id, reason = %reason, "bridge handed back an event the receiving bus had no room for");
            self.nack_counted(acker, Some(Self::REFUSED_RETRY), reason.clone())
                .await;
            return;
        }
        if let (Some(reason), true) = (&failure, self.redeliver_on_error) {
            self.release(event_id).await;
            self.in_flight.lock().remove(&event_id);
            if let Some(a) = acker {
                if attempt >= self.max_deliveries {
                    tracing::warn!(bridge = %self.name, %origin, event = %event_id, attempt, reason = %reason, "bridge gave up on an event");
                    if let Err(e) = a.dead_letter(reason.clone()).await {
                        tracing::warn!(bridge = %self.name, error = %e, "bridge dead letter failed");
                    }
                    self.bump(&self.counters.dead_lettered);
                } else {
                    self.nack_counted(Some(a), None, reason.clone()).await;
                }
            }
            return;
        }
        if let Err(e) = self.dedup.confirm(event_id).await {
            tracing::warn!(bridge = %self.name, error = %e, "bridge dedup store failed to confirm an event");
        }
        self.in_flight.lock().remove(&event_id);
        // Counted once the ack is done: `completed` means acked where the transport has acks.
        ack(acker).await;
        self.bump(&self.counters.completed);
        if self.results_back {
            let text = format!(
                "{{\"{COMPLETION_KEY}\":{}}}",
                handle.to_json_string_with_results()
            );
            let message =
                Message::from_parts(MessageKind::Completion, event_id, handle.event_type(), text);
            // A reply after close is dropped: the sender's timeout reports it.
            if self.transport.send(&message).await.is_ok() {
                self.bump(&self.counters.replies_sent);
            }
        }
    }

    pub(super) fn receive_completion(&self, record: AnyEvent) {
        // Not ours (another sender's, or our own reply on a shared medium): ignore.
        let Some(waiter) = self.replies.lock().remove(&record.event_id()) else {
            return;
        };
        let _ = waiter.reply.send(record);
    }
}

/// Whether a handler's error is a bus refusing an event for lack of room (a forwarder's
/// [`HistoryFull`](crate::DispatchError::HistoryFull)).
fn is_history_full(error: &HandlerError) -> bool {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<crate::DispatchError>())
        .is_some_and(|e| matches!(e, crate::DispatchError::HistoryFull { .. }))
}

/// Runs `work` to its end while the completions in `completing` keep running (a dedup claim
/// or an ack that waits on the server does not hold up the acks of the events before it).
async fn drive_beside<F, C>(work: F, completing: &mut FuturesUnordered<C>) -> F::Output
where
    F: std::future::Future,
    C: std::future::Future<Output = ()>,
{
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            biased;
            out = &mut work => return out,
            Some(()) = completing.next(), if !completing.is_empty() => {}
        }
    }
}

/// Hands a delivery back to its transport, to come again after `delay`.
async fn nack(acker: Option<Box<dyn Acker>>, delay: Duration, reason: &str) {
    if let Some(a) = acker {
        if let Err(e) = a.nack(Some(delay), reason.to_owned()).await {
            tracing::warn!(error = %e, "bridge nack failed");
        }
    }
}

async fn ack(acker: Option<Box<dyn Acker>>) {
    if let Some(a) = acker {
        if let Err(e) = a.ack().await {
            tracing::warn!(error = %e, "bridge ack failed");
        }
    }
}
