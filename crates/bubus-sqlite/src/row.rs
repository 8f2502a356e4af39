//! One row of `events_log` or `event_results_log`.

use bubus::{AnyEvent, EventBus, EventResult, EventStatus};
use serde_json::Value;

/// A row as its hook saw it. The event's JSON is taken in the hook (the event goes on changing);
/// a result is an immutable snapshot already, so its JSON is left to whoever inserts the row.
#[derive(Debug)]
pub(crate) enum Row {
    Event(EventRow),
    Result(Box<ResultRow>),
}

#[derive(Debug)]
pub(crate) struct EventRow {
    pub(crate) event_id: String,
    pub(crate) event_type: String,
    pub(crate) event_status: &'static str,
    pub(crate) eventbus_id: String,
    pub(crate) eventbus_name: String,
    pub(crate) phase: &'static str,
    pub(crate) event_json: String,
}

#[derive(Debug)]
pub(crate) struct ResultRow {
    pub(crate) eventbus_id: String,
    pub(crate) eventbus_name: String,
    pub(crate) event_type: String,
    pub(crate) phase: &'static str,
    pub(crate) result: EventResult<Value>,
}

impl ResultRow {
    /// The returned value as compact JSON, when there is one and no error.
    pub(crate) fn result_repr(&self) -> Option<String> {
        (self.result.error.is_none() && !self.result.result_json.is_null())
            .then(|| self.result.result_json.to_string())
    }

    /// The error as `Type: message`.
    pub(crate) fn error_repr(&self) -> Option<String> {
        self.result.error.as_ref().map(ToString::to_string)
    }
}

impl Row {
    pub(crate) fn event(bus: &EventBus, event: &AnyEvent, phase: EventStatus) -> Row {
        Row::Event(EventRow {
            event_id: event.event_id().to_string(),
            event_type: event.event_type().to_owned(),
            event_status: event.event_status().as_str(),
            eventbus_id: bus.id().to_string(),
            eventbus_name: bus.label().to_owned(),
            phase: phase.as_str(),
            event_json: event.to_json_string(),
        })
    }

    pub(crate) fn result(
        bus: &EventBus,
        event: &AnyEvent,
        result: &EventResult<Value>,
        phase: EventStatus,
    ) -> Row {
        Row::Result(Box::new(ResultRow {
            eventbus_id: bus.id().to_string(),
            eventbus_name: bus.label().to_owned(),
            event_type: event.event_type().to_owned(),
            phase: phase.as_str(),
            result: result.clone(),
        }))
    }
}
