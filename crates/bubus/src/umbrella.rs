//! The crate's root error: one [`Error`] wrapping the error enum of every operation family, so `?`
//! works across them. It names every layer (the model's leaf errors, wire, retry, wal), so it
//! lives above them all; the layers themselves return their own, narrower errors.

use std::any::Any;
use std::borrow::Cow;
use std::sync::Arc;

use crate::error::{
    BoxError, DispatchError, HandlerError, HandlerErrorKind, ResultError, WaitError,
    short_type_name,
};

/// Any error this crate returns. Each operation returns its own, narrower error type; they all
/// convert into this one, so `?` works across them.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A dispatch was refused.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// A [`DynEvent`](crate::DynEvent) could not be built from a type name and payload.
    #[error(transparent)]
    DynEvent(#[from] crate::event::DynEventError),
    /// Waiting for an event failed.
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// Reading an event's results failed.
    #[error(transparent)]
    Result(#[from] ResultError),
    /// A handler failed (its recorded error).
    #[error(transparent)]
    Handler(#[from] HandlerError),
    /// JSON that is not an event, a result or a bus snapshot.
    #[error(transparent)]
    Wire(#[from] crate::wire::DecodeError),
    /// A call run through a [`Retry`](crate::retry::Retry) policy gave up. Converts from a
    /// [`RetryError<E>`](crate::retry::RetryError) of any handler error type `E` (the `From`
    /// impl lives in `retry`, being generic over `E`).
    #[cfg(feature = "retry")]
    #[error(transparent)]
    Retry(crate::retry::RetryError),
    /// Writing, reading or replaying a [write-ahead log](crate::wal) failed.
    #[cfg(feature = "wal")]
    #[error(transparent)]
    Wal(#[from] crate::wal::WalError),
}

impl HandlerError {
    /// Wraps any error a handler returned; the type name is the error type's last path segment.
    pub fn from_error<E>(error: E) -> Self
    where
        E: Into<BoxError> + 'static,
    {
        let mut slot = Some(error);
        if let Some(own) = (&mut slot as &mut dyn Any).downcast_mut::<Option<HandlerError>>() {
            if let Some(own) = own.take() {
                return own;
            }
        }
        let type_name = short_type_name(std::any::type_name::<E>());
        let Some(error) = slot else {
            return HandlerError::new(type_name, "");
        };
        let boxed: BoxError = error.into();
        // A handler that propagates another handler's failure (`child.event_result().await?`)
        // fails with that error, as re-raising does in the other runtimes.
        let boxed = match boxed.downcast::<Error>() {
            Ok(err) => match *err {
                Error::Handler(inner) | Error::Result(ResultError::Handler(inner)) => return inner,
                other => Box::new(other) as BoxError,
            },
            Err(boxed) => boxed,
        };
        let boxed = match boxed.downcast::<ResultError>() {
            Ok(err) => match *err {
                ResultError::Handler(inner) => return inner,
                other => Box::new(other) as BoxError,
            },
            Err(boxed) => boxed,
        };
        match boxed.downcast::<HandlerError>() {
            Ok(own) => *own,
            Err(boxed) => HandlerError {
                kind: HandlerErrorKind::Failed,
                error_type: Cow::Owned(type_name),
                message: crate::error::Message::Text(boxed.to_string()),
                source: Some(Arc::from(boxed)),
            },
        }
    }
}
