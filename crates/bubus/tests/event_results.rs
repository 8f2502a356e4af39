//! Per-handler results and the helpers that aggregate them.
//!
//! Ports the behaviour of the reference suites `tests/test_eventbus.py::TestEventResults` and
//! `::TestErrorHandling`, `tests/test_event_result.py` (recording values and errors, status
//! transitions, typed results), `bubus-ts/tests/event_result.test.ts`, and the
//! `eventResultsList` tests of `bubus-ts/tests/eventbus.test.ts`. The seed/1.7.2 helpers that bbus
//! dropped (`by_handler_id`, `by_handler_name`, `flat_dict`, `flat_list`) are covered with their
//! 1.7.2 defaults, which is what our `ResultsQuery` implements.

use std::collections::{BTreeMap, HashMap};
use std::error::Error as _;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bubus::{
    AnyEvent, DynEvent, Event, EventBus, EventHandle, EventStatus, HandlerError, WaitError,
    error::HandlerErrorKind, error::ResultError, handler::HandlerOptions, result::ResultStatus,
};
use bubus_test_support::Recorder;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct Work;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct Orphan;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct UserActionEvent {
    action: String,
    user_id: String,
}

fn user_action() -> UserActionEvent {
    UserActionEvent {
        action: "test".into(),
        user_id: "e692b6cb-ae63-773b-8557-3218f7ce5ced".into(),
    }
}

/// An error type of the test's own, to check that the type name and the source survive.
#[derive(Debug)]
struct ValueError(&'static str);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ValueError {}

/// A gate handlers wait on: closing the semaphore releases every waiter at once, now and later.
fn gate() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(0))
}

async fn pass(gate: &Semaphore) {
    // `acquire` fails once the semaphore is closed: that is the "open" signal.
    let _ = gate.acquire().await;
}

async fn handler1(_: EventHandle<Work>) -> String {
    "first".to_owned()
}

async fn handler2(_: EventHandle<Work>) -> String {
    "second".to_owned()
}

fn handler3(_: EventHandle<Work>) -> String {
    "third".to_owned()
}

#[tokio::test]
async fn each_handler_run_records_its_value_and_metadata() -> anyhow::Result<()> {
    let bus = EventBus::new("ResultsBus");
    let handlers = [bus.on(handler1), bus.on(handler2), bus.on(handler3)];

    let event = bus.dispatch(Work)?.await?;

    assert_eq!(event.event_status(), EventStatus::Completed);
    let results = event.event_results();
    assert_eq!(results.len(), 3);
    for ((result, handler), (name, value)) in results.iter().zip(&handlers).zip([
        ("handler1", "first"),
        ("handler2", "second"),
        ("handler3", "third"),
    ]) {
        assert_eq!(result.status, ResultStatus::Completed);
        assert_eq!(result.result.as_deref(), Some(value));
        assert_eq!(result.result_json, json!(value));
        assert!(result.error.is_none());
        assert_eq!(&result.handler_id, handler.id());
        assert_eq!(result.handler_name, format!("event_results::{name}"));
        assert_eq!(result.handler_event_pattern, "Work");
        assert!(
            result
                .handler_file_path
                .as_deref()
                .is_some_and(|p| p.contains("event_results.rs:")),
            "{:?}",
            result.handler_file_path
        );
        assert_eq!(result.event_id, event.event_id());
        assert_eq!(result.eventbus_id, bus.id());
        assert_eq!(result.eventbus_name, "ResultsBus");
        let (started, completed) = (result.started_at.unwrap(), result.completed_at.unwrap());
        assert!(started <= completed);
        assert!(result.forwarded_event_id.is_none());
        assert!(result.event_children.is_empty());
    }
    // Serial handlers: each starts after the previous one finished.
    for pair in results.windows(2) {
        assert!(pair[0].completed_at <= pair[1].started_at);
    }

    assert_eq!(
        event.event_results_list().await?,
        ["first", "second", "third"]
    );
    assert_eq!(event.event_result().await?, "first");
    Ok(())
}

#[tokio::test]
async fn an_event_without_handlers_completes_with_no_results() -> anyhow::Result<()> {
    let bus = EventBus::new("NoHandlerBus");

    let event = bus.dispatch(Orphan)?.await?;

    assert_eq!(event.event_status(), EventStatus::Completed);
    assert!(event.event_completed_at().is_some());
    assert!(event.event_results().is_empty());
    assert!(event.event_errors().is_empty());
    assert!(matches!(
        event.event_result().await,
        Err(ResultError::NoResult { .. })
    ));
    assert!(matches!(
        event.event_results_list().await,
        Err(ResultError::NoResult { .. })
    ));
    assert!(event.results().allow_none().list().await?.is_empty());
    assert_eq!(event.results().allow_none().one().await?, None);
    Ok(())
}

#[tokio::test]
async fn result_status_goes_pending_started_completed_and_waits_for_the_handler_lock()
-> anyhow::Result<()> {
    let bus = EventBus::new("LifecycleBus");
    let started = Arc::new(Notify::new());
    let release = gate();
    let seen_status = Recorder::new();

    let (s, r, seen) = (
        Arc::clone(&started),
        Arc::clone(&release),
        seen_status.clone(),
    );
    bus.on(move |event: EventHandle<Work>| {
        let (s, r, seen) = (Arc::clone(&s), Arc::clone(&r), seen.clone());
        async move {
            seen.push(event.event_status());
            s.notify_one();
            pass(&r).await;
            "first".to_owned()
        }
    });
    bus.on(|_: EventHandle<Work>| "second".to_owned());

    let event = bus.dispatch(Work)?;
    // Nothing has run yet (this runtime is single-threaded and we have not yielded).
    assert_eq!(event.event_status(), EventStatus::Pending);
    assert!(event.event_started_at().is_none());
    assert!(event.event_results().is_empty());

    started.notified().await;
    let results = event.event_results();
    let statuses: Vec<_> = results.iter().map(|r| r.status).collect();
    // The second handler is scheduled but waits for the serial-handler lock: still pending.
    assert_eq!(statuses, [ResultStatus::Started, ResultStatus::Pending]);
    assert!(results[0].started_at.is_some() && results[0].completed_at.is_none());
    assert!(results[1].started_at.is_none());
    assert!(results.iter().all(|r| r.result.is_none()));
    assert_eq!(event.event_status(), EventStatus::Started);
    assert!(event.event_started_at().is_some());
    assert!(event.event_completed_at().is_none());
    assert!(!event.is_complete());

    release.close();
    let event = event.await?;
    let results = event.event_results();
    let statuses: Vec<_> = results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [ResultStatus::Completed, ResultStatus::Completed]);
    assert_eq!(event.event_status(), EventStatus::Completed);
    assert_eq!(seen_status.entries(), ["started"]);
    let completed = event.event_completed_at().unwrap();
    assert!(results.iter().all(|r| r.completed_at.unwrap() <= completed));
    assert_eq!(event.event_results_list().await?, ["first", "second"]);
    Ok(())
}

async fn failing_handler(_: EventHandle<UserActionEvent>) -> Result<String, ValueError> {
    Err(ValueError(
        "Expected to fail - testing error handling in event handlers",
    ))
}

#[tokio::test]
async fn a_failing_handler_records_an_error_and_the_others_still_run() -> anyhow::Result<()> {
    let bus = EventBus::new("ErrorBus");
    let log = Recorder::new();
    let failing = bus.on(failing_handler);
    let l = log.clone();
    let working = bus.on(move |_: EventHandle<UserActionEvent>| {
        l.push("success");
        "worked".to_owned()
    });

    let event = bus.dispatch(user_action())?.await?;

    assert_eq!(event.event_status(), EventStatus::Completed);
    assert_eq!(log.entries(), ["success"]);
    let results = event.event_results();
    let failed = results
        .iter()
        .find(|r| &r.handler_id == failing.id())
        .unwrap();
    assert_eq!(failed.status, ResultStatus::Error);
    assert!(failed.result.is_none());
    assert!(failed.completed_at.is_some());
    let err = failed.error.as_ref().unwrap();
    assert_eq!(err.kind(), HandlerErrorKind::Failed);
    assert_eq!(err.error_type(), "ValueError");
    assert!(err.message().contains("Expected to fail"), "{err}");
    // The original error is kept as the source, so callers can downcast to it.
    assert!(
        err.source()
            .and_then(|s| s.downcast_ref::<ValueError>())
            .is_some()
    );

    let ok = results
        .iter()
        .find(|r| &r.handler_id == working.id())
        .unwrap();
    assert_eq!(ok.status, ResultStatus::Completed);
    assert_eq!(ok.result.as_deref(), Some("worked"));

    let errors = event.event_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].error_type(), "ValueError");

    // One failed handler: the helpers raise that very error (the reference re-raises the original
    // exception, not a group).
    match event.event_result().await {
        Err(ResultError::Handler(err)) => {
            assert_eq!(err.error_type(), "ValueError");
            assert!(
                err.source()
                    .and_then(|s| s.downcast_ref::<ValueError>())
                    .is_some()
            );
        }
        other => panic!("expected the handler's error, got {other:?}"),
    }
    assert_eq!(
        event.results().ignore_errors().one().await?.as_deref(),
        Some("worked")
    );
    assert_eq!(event.results().ignore_errors().list().await?, ["worked"]);

    // The bus keeps working: the next event is unaffected.
    let next = bus.dispatch(user_action())?.await?;
    assert_eq!(next.event_errors().len(), 1);
    assert_eq!(next.results().ignore_errors().list().await?, ["worked"]);
    Ok(())
}

#[tokio::test]
async fn several_failures_are_raised_together() -> anyhow::Result<()> {
    let bus = EventBus::new("ErrorGroupBus");
    bus.on(failing_handler);
    bus.on(
        |_: EventHandle<UserActionEvent>| -> Result<String, HandlerError> {
            Err(HandlerError::new("RuntimeError", "second failure"))
        },
    );

    let event = bus.dispatch(user_action())?.await?;

    match event.event_result().await {
        Err(ResultError::Handlers {
            event: label,
            errors,
        }) => {
            assert_eq!(label, event.label());
            let types: Vec<_> = errors.iter().map(|e| e.error_type().to_owned()).collect();
            assert_eq!(types, ["ValueError", "RuntimeError"]);
        }
        other => panic!("expected both errors, got {other:?}"),
    }
    let err = event.event_results_list().await.unwrap_err();
    assert!(err.to_string().contains("2 handler errors"), "{err}");
    // Nothing succeeded, so without raising on errors there is still no value.
    assert!(matches!(
        event.results().ignore_errors().list().await,
        Err(ResultError::NoResult { .. })
    ));
    assert!(
        event
            .results()
            .ignore_errors()
            .allow_none()
            .list()
            .await?
            .is_empty()
    );
    Ok(())
}

fn panicking_sync(_: EventHandle<Work>) -> String {
    panic!("sync boom")
}

async fn panicking_async(_: EventHandle<Work>) -> String {
    tokio::task::yield_now().await;
    panic!("async boom")
}

#[tokio::test]
async fn a_panicking_handler_records_an_error_and_the_bus_keeps_working() -> anyhow::Result<()> {
    let bus = EventBus::new("PanicBus");
    let sync_handler = bus.on(panicking_sync);
    let async_handler = bus.on(panicking_async);
    bus.on(|_: EventHandle<Work>| "survivor".to_owned());

    let event = bus.dispatch(Work)?.await?;

    let results = event.event_results();
    for (handler, message) in [(&sync_handler, "sync boom"), (&async_handler, "async boom")] {
        let result = results
            .iter()
            .find(|r| &r.handler_id == handler.id())
            .unwrap();
        assert_eq!(result.status, ResultStatus::Error);
        let err = result.error.as_ref().unwrap();
        assert_eq!(err.kind(), HandlerErrorKind::Panicked);
        assert_eq!(err.error_type(), "EventHandlerPanicError");
        assert_eq!(err.message(), message);
    }
    assert_eq!(results[2].result.as_deref(), Some("survivor"));
    assert!(matches!(
        event.event_result().await,
        Err(ResultError::Handlers { .. })
    ));

    // The run loop survived both panics.
    bus.off(&sync_handler);
    bus.off(&async_handler);
    assert_eq!(bus.dispatch(Work)?.event_result().await?, "survivor");
    Ok(())
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u32)]
struct CountEvent;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = bool)]
struct FlagEvent;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = Option<u32>)]
struct MaybeEvent;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct NotifyEvent;

#[tokio::test]
async fn zero_empty_and_false_are_values_but_none_and_unit_are_not() -> anyhow::Result<()> {
    let bus = EventBus::new("FalsyBus");
    bus.on(|_: EventHandle<CountEvent>| 0u32);
    bus.on(|_: EventHandle<Work>| String::new());
    bus.on(|_: EventHandle<FlagEvent>| false);
    bus.on(|_: EventHandle<MaybeEvent>| None::<u32>);
    bus.on(|_: EventHandle<MaybeEvent>| Some(0u32));
    bus.on(|_: EventHandle<NotifyEvent>| ());

    assert_eq!(bus.dispatch(CountEvent)?.event_result().await?, 0);
    assert_eq!(bus.dispatch(Work)?.event_result().await?, "");
    assert!(!bus.dispatch(FlagEvent)?.event_result().await?);
    assert_eq!(bus.dispatch(CountEvent)?.first().await?, Some(0));

    let maybe = bus.dispatch(MaybeEvent)?.await?;
    let results = maybe.event_results();
    assert_eq!(results[0].status, ResultStatus::Completed);
    assert_eq!(results[0].result, None);
    assert_eq!(results[0].result_json, Value::Null);
    assert_eq!(results[1].result, Some(Some(0)));
    // `None` is skipped: the first *value* is the second handler's `Some(0)`.
    assert_eq!(maybe.event_result().await?, Some(0));
    assert_eq!(maybe.event_results_list().await?, [Some(0)]);
    // Unlike the reference (where an include-everything filter returns `[None, 0]`), a result
    // without a value is never returned, whatever the filter says: there is no value to return.
    assert_eq!(maybe.results().include(|_| true).list().await?, [Some(0)]);

    let unit = bus.dispatch(NotifyEvent)?.await?;
    assert_eq!(unit.event_results()[0].status, ResultStatus::Completed);
    assert!(matches!(
        unit.event_result().await,
        Err(ResultError::NoResult { .. })
    ));
    assert_eq!(unit.first().await?, None);
    assert!(unit.results().allow_none().list().await?.is_empty());

    // JSON null from a dynamic handler is no value either.
    bus.on_pattern("NullEvent", |_: AnyEvent| Value::Null);
    bus.on_pattern("NullEvent", |_: AnyEvent| json!(0));
    let dynamic = bus.dispatch(DynEvent::new("NullEvent", json!({}))?)?;
    assert_eq!(dynamic.event_results_list().await?, [json!(0)]);
    Ok(())
}

#[tokio::test]
async fn event_result_and_list_take_registration_order_then_wildcards() -> anyhow::Result<()> {
    let bus = EventBus::new("OrderBus");
    // Registered first, but wildcard handlers run after the exact-type ones.
    bus.on(|_: AnyEvent| json!("from wildcard"));
    bus.on(|_: EventHandle<Work>| "typed one".to_owned());
    bus.on(|_: EventHandle<Work>| "typed two".to_owned());

    let event = bus.dispatch(Work)?;

    assert_eq!(event.event_result().await?, "typed one");
    // The wildcard handler's JSON was checked and converted to the event's result type.
    assert_eq!(
        event.event_results_list().await?,
        ["typed one", "typed two", "from wildcard"]
    );
    // The untyped view of the same results.
    let any = event.to_any();
    assert_eq!(any.event_result().await?, json!("typed one"));
    assert_eq!(
        any.event_results_list().await?,
        [
            json!("typed one"),
            json!("typed two"),
            json!("from wildcard")
        ]
    );
    Ok(())
}

#[tokio::test]
async fn results_list_include_filter_and_raise_options() -> anyhow::Result<()> {
    let bus = EventBus::new("EventResultsListArgsBus");

    // Errors raise by default; `ignore_errors()` returns the values that exist.
    bus.on_pattern("ArgsEvent", |_: AnyEvent| json!("ok"));
    bus.on_pattern("ArgsEvent", |_: AnyEvent| -> Result<Value, HandlerError> {
        Err(HandlerError::new("Error", "boom"))
    });
    let err = bus
        .dispatch(DynEvent::new("ArgsEvent", json!({}))?)?
        .event_results_list()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("boom"), "{err}");
    let values = bus
        .dispatch(DynEvent::new("ArgsEvent", json!({}))?)?
        .results()
        .ignore_errors()
        .raise_if_none()
        .list()
        .await?;
    assert_eq!(values, [json!("ok")]);

    // No value at all raises by default; `allow_none()` returns an empty list.
    bus.on_pattern("EmptyEvent", |_: AnyEvent| ());
    let err = bus
        .dispatch(DynEvent::new("EmptyEvent", json!({}))?)?
        .event_results_list()
        .await
        .unwrap_err();
    assert!(matches!(err, ResultError::NoResult { .. }));
    assert!(
        err.to_string()
            .contains("expected at least one handler of EmptyEvent#"),
        "{err}"
    );
    let values = bus
        .dispatch(DynEvent::new("EmptyEvent", json!({}))?)?
        .results()
        .ignore_errors()
        .allow_none()
        .list()
        .await?;
    assert!(values.is_empty());

    // A null result next to a real one: only the real one counts.
    bus.on_pattern("MixedEvent", |_: AnyEvent| ());
    bus.on_pattern("MixedEvent", |_: AnyEvent| json!("valid"));
    let values = bus
        .dispatch(DynEvent::new("MixedEvent", json!({}))?)?
        .event_results_list()
        .await?;
    assert_eq!(values, [json!("valid")]);

    // A custom include filter replaces the default one.
    bus.on_pattern("IncludeEvent", |_: AnyEvent| json!("keep"));
    bus.on_pattern("IncludeEvent", |_: AnyEvent| json!("drop"));
    let event = bus.dispatch(DynEvent::new("IncludeEvent", json!({}))?)?;
    let values = event
        .results()
        .include(|r| r.result == Some(json!("keep")))
        .list()
        .await?;
    assert_eq!(values, [json!("keep")]);
    // Filtering everything out is "no result".
    assert!(matches!(
        event.results().include(|_| false).list().await,
        Err(ResultError::NoResult { .. })
    ));
    // The filter sees the whole result record, not just the value.
    let first_handler = event.event_results()[0].handler_id.clone();
    let values = event
        .results()
        .include(move |r| r.handler_id != first_handler)
        .list()
        .await?;
    assert_eq!(values, [json!("drop")]);

    // Errors are raised even when the filter excludes the failed result (as in the reference:
    // errors are collected over every result).
    let errors = bus.dispatch(DynEvent::new("ArgsEvent", json!({}))?)?;
    let err = errors
        .results()
        .include(|r| r.status == ResultStatus::Completed)
        .list()
        .await
        .unwrap_err();
    assert!(matches!(err, ResultError::Handler(_)));
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn results_query_timeout_stops_waiting_but_not_the_event() -> anyhow::Result<()> {
    let bus = EventBus::new("TimeoutBus");
    bus.on(|_: EventHandle<Work>| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        "late".to_owned()
    });

    let event = bus.dispatch(Work)?;
    let err = event
        .results()
        .timeout(Duration::from_millis(10))
        .list()
        .await
        .unwrap_err();
    assert!(
        matches!(err, ResultError::Wait(WaitError::Timeout { timeout, .. }) if timeout == Duration::from_millis(10)),
        "{err:?}"
    );
    assert!(!event.is_complete());

    // The event itself went on.
    assert_eq!(event.event_results_list().await?, ["late"]);
    Ok(())
}

#[tokio::test]
async fn helpers_on_an_event_never_dispatched_fail_instead_of_hanging() {
    let event = EventHandle::new(Work);
    assert!(matches!(
        event.event_result().await,
        Err(ResultError::Wait(WaitError::NotDispatched { .. }))
    ));
    assert!(matches!(
        event.first().await,
        Err(ResultError::Wait(WaitError::NotDispatched { .. }))
    ));
}

#[tokio::test]
async fn by_handler_id_keeps_every_handler_even_with_the_same_name() -> anyhow::Result<()> {
    let bus = EventBus::new("ByIdBus");
    let h1 = bus.on_with(
        |_: EventHandle<Work>| "v1".to_owned(),
        HandlerOptions::new().name("handler"),
    );
    let h2 = bus.on_with(
        |_: EventHandle<Work>| "v2".to_owned(),
        HandlerOptions::new().name("handler"),
    );
    assert_ne!(h1.id(), h2.id());

    let event = bus.dispatch(Work)?;
    let by_id = event.event_results_by_handler_id().await?;

    assert_eq!(by_id.len(), 2);
    let entries: Vec<_> = by_id
        .iter()
        .map(|(id, v)| (id.clone(), v.as_str()))
        .collect();
    assert_eq!(entries, [(h1.id().clone(), "v1"), (h2.id().clone(), "v2")]);
    Ok(())
}

#[tokio::test]
async fn by_handler_name_lets_a_later_handler_with_the_same_name_win() -> anyhow::Result<()> {
    let bus = EventBus::new("ByNameBus");
    bus.on_with(
        |_: EventHandle<Work>| "version1".to_owned(),
        HandlerOptions::new().name("process_data"),
    );
    bus.on_with(
        |_: EventHandle<Work>| "version2".to_owned(),
        HandlerOptions::new().name("process_data"),
    );
    bus.on_with(
        |_: EventHandle<Work>| "unique".to_owned(),
        HandlerOptions::new().name("unique_handler"),
    );

    let event = bus.dispatch(Work)?.await?;

    // Both same-named handlers ran and kept their own result...
    let mut versions: Vec<_> = event
        .event_results()
        .into_iter()
        .filter(|r| r.handler_name == "process_data")
        .map(|r| r.result.unwrap())
        .collect();
    versions.sort();
    assert_eq!(versions, ["version1", "version2"]);

    // ...but keyed by name, the later one overwrites the earlier one.
    let by_name = event.event_results_by_handler_name().await?;
    let entries: Vec<_> = by_name
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        entries,
        [("process_data", "version2"), ("unique_handler", "unique")]
    );
    Ok(())
}

#[tokio::test]
async fn keyed_helpers_raise_on_errors_and_on_no_results_by_default() -> anyhow::Result<()> {
    let bus = EventBus::new("KeyedDefaultsBus");
    let ok = bus.on(|_: EventHandle<UserActionEvent>| "ok".to_owned());
    bus.on(failing_handler);

    let event = bus.dispatch(user_action())?;
    assert!(matches!(
        event.event_results_by_handler_id().await,
        Err(ResultError::Handler(_))
    ));
    assert!(matches!(
        event.event_results_by_handler_name().await,
        Err(ResultError::Handler(_))
    ));
    let by_id = event.results().ignore_errors().by_handler_id().await?;
    assert_eq!(by_id.len(), 1);
    assert_eq!(by_id[ok.id()], "ok");
    let by_name = event.results().ignore_errors().by_handler_name().await?;
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_name[ok.handler_name()], "ok");

    let orphan = bus.dispatch(Orphan)?;
    assert!(matches!(
        orphan.event_results_by_handler_id().await,
        Err(ResultError::NoResult { .. })
    ));
    assert!(matches!(
        orphan.event_results_by_handler_name().await,
        Err(ResultError::NoResult { .. })
    ));
    assert!(
        orphan
            .results()
            .allow_none()
            .by_handler_id()
            .await?
            .is_empty()
    );
    assert!(
        orphan
            .results()
            .allow_none()
            .by_handler_name()
            .await?
            .is_empty()
    );
    Ok(())
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = BTreeMap<String, Value>)]
struct GetConfig;

fn config(value: Value) -> BTreeMap<String, Value> {
    serde_json::from_value(value).unwrap()
}

#[tokio::test]
async fn flat_dict_merges_maps_and_detects_conflicts_unless_told_otherwise() -> anyhow::Result<()> {
    let bus = EventBus::new("FlatDictBus");
    bus.on(|_: EventHandle<GetConfig>| {
        config(json!({"debug": false, "port": 8080, "name": "base"}))
    });
    bus.on(|_: EventHandle<GetConfig>| {
        config(json!({"debug": true, "timeout": 30, "name": "override"}))
    });

    let event = bus.dispatch(GetConfig)?;

    match event.event_results_flat_dict().await {
        Err(ResultError::Conflict { event: label, keys }) => {
            assert_eq!(label, event.label());
            assert_eq!(keys, ["debug", "name"]);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Last handler wins when conflicts are allowed.
    let merged = event.results().allow_conflicts().flat_dict().await?;
    assert_eq!(
        merged,
        config(json!({"debug": true, "port": 8080, "timeout": 30, "name": "override"}))
    );

    // Disjoint maps merge without complaint.
    bus.on_pattern("DisjointConfig", |_: AnyEvent| json!({"unique1": "a"}));
    bus.on_pattern("DisjointConfig", |_: AnyEvent| json!({"unique2": "b"}));
    let merged = bus
        .dispatch(DynEvent::new("DisjointConfig", json!({}))?)?
        .event_results_flat_dict()
        .await?;
    assert_eq!(merged, json!({"unique1": "a", "unique2": "b"}));
    Ok(())
}

#[tokio::test]
async fn flat_dict_defaults_raise_on_errors_but_not_on_no_results() -> anyhow::Result<()> {
    let bus = EventBus::new("FlatDictDefaultsBus");

    // No handler returned anything: an empty map, not an error (raise_if_none defaults to off).
    let empty = bus.dispatch(GetConfig)?;
    assert!(empty.event_results_flat_dict().await?.is_empty());
    assert!(matches!(
        empty.results().raise_if_none().flat_dict().await,
        Err(ResultError::NoResult { .. })
    ));

    // Empty maps are skipped (and never conflict).
    bus.on(|_: EventHandle<GetConfig>| config(json!({})));
    bus.on(|_: EventHandle<GetConfig>| config(json!({"port": 1})));
    bus.on(|_: EventHandle<GetConfig>| config(json!({})));
    bus.on(
        |_: EventHandle<GetConfig>| -> Result<BTreeMap<String, Value>, HandlerError> {
            Err(HandlerError::new("KeyError", "missing"))
        },
    );
    let event = bus.dispatch(GetConfig)?;
    assert!(matches!(
        event.event_results_flat_dict().await,
        Err(ResultError::Handler(ref e)) if e.error_type() == "KeyError"
    ));
    let merged = event.results().ignore_errors().flat_dict().await?;
    assert_eq!(merged, config(json!({"port": 1})));

    // An include filter narrows what is merged.
    let merged = event
        .results()
        .ignore_errors()
        .include(|r| r.result.as_ref().is_some_and(|m| m.is_empty()))
        .flat_dict()
        .await?;
    assert!(merged.is_empty());
    Ok(())
}

#[tokio::test]
async fn flat_dict_of_json_results_skips_values_that_are_not_objects() -> anyhow::Result<()> {
    let bus = EventBus::new("FlatDictJsonBus");
    bus.on_pattern("JsonConfig", |_: AnyEvent| json!({"a": 1}));
    bus.on_pattern("JsonConfig", |_: AnyEvent| json!("not a dict"));
    bus.on_pattern("JsonConfig", |_: AnyEvent| json!([1, 2]));
    bus.on_pattern("BadConfig", |_: AnyEvent| json!("not a dict"));

    let merged = bus
        .dispatch(DynEvent::new("JsonConfig", json!({}))?)?
        .event_results_flat_dict()
        .await?;
    assert_eq!(merged, json!({"a": 1}));

    let bad = bus.dispatch(DynEvent::new("BadConfig", json!({}))?)?;
    assert_eq!(bad.event_results_flat_dict().await?, json!({}));
    // A value that is not a map does not count as a map result (the reference ANDs the include
    // filter with "is a dict").
    assert!(matches!(
        bad.results().raise_if_none().flat_dict().await,
        Err(ResultError::NoResult { .. })
    ));

    // Typed maps work the same way.
    #[derive(Clone, Debug, Serialize, Deserialize, Event)]
    #[event(result = HashMap<String, u32>)]
    struct Counts;
    bus.on(|_: EventHandle<Counts>| HashMap::from([("a".to_owned(), 1)]));
    bus.on(|_: EventHandle<Counts>| HashMap::from([("a".to_owned(), 2)]));
    let counts = bus.dispatch(Counts)?;
    assert!(matches!(
        counts.event_results_flat_dict().await,
        Err(ResultError::Conflict { ref keys, .. }) if keys == &["a"]
    ));
    assert_eq!(
        counts.results().allow_conflicts().flat_dict().await?,
        HashMap::from([("a".to_owned(), 2)])
    );
    Ok(())
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = Vec<String>)]
struct GetErrors;

#[tokio::test]
async fn flat_list_concatenates_list_results_in_order() -> anyhow::Result<()> {
    let bus = EventBus::new("FlatListBus");
    bus.on(|_: EventHandle<GetErrors>| vec!["error1".to_owned(), "error2".to_owned()]);
    bus.on(|_: EventHandle<GetErrors>| vec!["error3".to_owned()]);
    bus.on(|_: EventHandle<GetErrors>| Vec::<String>::new());
    bus.on(|_: EventHandle<GetErrors>| vec!["error4".to_owned(), "error5".to_owned()]);

    let event = bus.dispatch(GetErrors)?;
    assert_eq!(
        event.event_results_flat_list().await?,
        ["error1", "error2", "error3", "error4", "error5"]
    );
    // With a filter: only the lists of more than one item.
    assert_eq!(
        event
            .results()
            .include(|r| r.result.as_ref().is_some_and(|l| l.len() > 1))
            .flat_list()
            .await?,
        ["error1", "error2", "error4", "error5"]
    );
    Ok(())
}

#[tokio::test]
async fn flat_list_defaults_raise_on_errors_and_on_no_results() -> anyhow::Result<()> {
    let bus = EventBus::new("FlatListDefaultsBus");

    let empty = bus.dispatch(GetErrors)?;
    assert!(matches!(
        empty.event_results_flat_list().await,
        Err(ResultError::NoResult { .. })
    ));
    assert!(empty.results().allow_none().flat_list().await?.is_empty());

    bus.on(|_: EventHandle<GetErrors>| vec!["a".to_owned()]);
    bus.on(
        |_: EventHandle<GetErrors>| -> Result<Vec<String>, HandlerError> {
            Err(HandlerError::new("IOError", "disk"))
        },
    );
    let event = bus.dispatch(GetErrors)?;
    assert!(matches!(
        event.event_results_flat_list().await,
        Err(ResultError::Handler(_))
    ));
    assert_eq!(event.results().ignore_errors().flat_list().await?, ["a"]);

    // JSON results that are not lists are skipped, and do not count as list results.
    bus.on_pattern("GetSingle", |_: AnyEvent| json!("single"));
    let single = bus.dispatch(DynEvent::new("GetSingle", json!({}))?)?;
    assert!(matches!(
        single.event_results_flat_list().await,
        Err(ResultError::NoResult { .. })
    ));
    assert_eq!(single.results().allow_none().flat_list().await?, json!([]));
    bus.on_pattern("GetMixed", |_: AnyEvent| json!(["x"]));
    bus.on_pattern("GetMixed", |_: AnyEvent| json!("single"));
    bus.on_pattern("GetMixed", |_: AnyEvent| json!(["y", "z"]));
    assert_eq!(
        bus.dispatch(DynEvent::new("GetMixed", json!({}))?)?
            .event_results_flat_list()
            .await?,
        json!(["x", "y", "z"])
    );
    Ok(())
}

#[tokio::test]
async fn first_returns_the_first_value_without_raising_by_default() -> anyhow::Result<()> {
    let bus = EventBus::new("FirstBus");
    bus.on(|_: EventHandle<CountEvent>| -> Result<u32, HandlerError> {
        Err(HandlerError::new("ValueError", "nope"))
    });
    bus.on(|_: EventHandle<CountEvent>| 0u32);
    bus.on(|_: EventHandle<CountEvent>| 5u32);

    // Completion modes (cancelling the losers) are not exercised here: the event is awaited
    // first, so `first()` only reads the results.
    let event = bus.dispatch(CountEvent)?.await?;

    // The error is not raised, and `0` counts as a value.
    assert_eq!(event.first().await?, Some(0));
    assert_eq!(event.results().first().await?, Some(0));
    assert!(matches!(
        event.results().raise_if_any().first().await,
        Err(ResultError::Handler(_))
    ));
    assert_eq!(
        event
            .results()
            .include(|r| r.result.is_some_and(|v| v > 0))
            .first()
            .await?,
        Some(5)
    );
    assert_eq!(event.results().include(|_| false).first().await?, None);
    assert!(matches!(
        event
            .results()
            .include(|_| false)
            .raise_if_none()
            .first()
            .await,
        Err(ResultError::NoResult { .. })
    ));

    // Every handler failed: `None`, not an error.
    let failing = EventBus::new("AllFailBus");
    failing.on(|_: EventHandle<CountEvent>| -> Result<u32, HandlerError> {
        Err(HandlerError::new("ValueError", "nope"))
    });
    let event = failing.dispatch(CountEvent)?.await?;
    assert_eq!(event.first().await?, None);
    assert!(matches!(
        event.results().raise_if_none().first().await,
        Err(ResultError::NoResult { .. })
    ));
    Ok(())
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct Parent;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = Vec<String>)]
struct Child;

#[tokio::test]
async fn helpers_inside_a_handler_queue_jump_and_refuse_to_await_their_own_event()
-> anyhow::Result<()> {
    let bus = EventBus::new("NestedResultsBus");
    let inner = bus.clone();
    bus.on(move |parent: EventHandle<Parent>| {
        let bus = inner.clone();
        async move {
            // Waiting for the handler's own event could never end.
            let own = parent.event_result().await;
            assert!(
                matches!(own, Err(ResultError::Wait(WaitError::WouldDeadlock { .. }))),
                "{own:?}"
            );
            // A child dispatched here is processed right away when its results are awaited.
            let child = bus.dispatch(Child)?;
            let items = child.event_results_flat_list().await?;
            Ok::<_, bubus::Error>(items.join("+"))
        }
    });
    bus.on(|_: EventHandle<Child>| vec!["a".to_owned()]);
    bus.on(|_: EventHandle<Child>| vec!["b".to_owned(), "c".to_owned()]);

    let parent = bus.dispatch(Parent)?;
    assert_eq!(parent.event_result().await?, "a+b+c");
    Ok(())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct ScreenshotResult {
    screenshot_base64: Option<String>,
    error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = ScreenshotResult)]
struct ScreenshotEvent {
    screenshot_width: u32,
    screenshot_height: u32,
}

#[tokio::test]
async fn typed_results_come_back_as_the_events_result_type() -> anyhow::Result<()> {
    let bus = EventBus::new("TypedBus");
    bus.on(|event: EventHandle<ScreenshotEvent>| ScreenshotResult {
        screenshot_base64: Some(format!(
            "{}x{}",
            event.screenshot_width, event.screenshot_height
        )),
        error: None,
    });

    let event = bus.dispatch(ScreenshotEvent {
        screenshot_width: 1920,
        screenshot_height: 1080,
    })?;
    let result = event.event_result().await?;
    assert_eq!(
        result,
        ScreenshotResult {
            screenshot_base64: Some("1920x1080".into()),
            error: None,
        }
    );
    let record = &event.event_results()[0];
    assert_eq!(record.status, ResultStatus::Completed);
    assert_eq!(record.result.as_ref(), Some(&result));
    assert_eq!(
        record.result_json,
        json!({"screenshot_base64": "1920x1080", "error": null})
    );
    // The JSON view of the same result.
    assert_eq!(
        event.to_any().event_result().await?,
        json!({"screenshot_base64": "1920x1080", "error": null})
    );

    // A JSON object from a dynamic handler is converted into the result type.
    let dynamic = EventBus::new("CastingBus");
    dynamic.on(|_: AnyEvent| json!({"screenshot_base64": "fake_screenshot_data", "error": null}));
    let event = dynamic.dispatch(ScreenshotEvent {
        screenshot_width: 1,
        screenshot_height: 1,
    })?;
    assert_eq!(
        event.event_result().await?,
        ScreenshotResult {
            screenshot_base64: Some("fake_screenshot_data".into()),
            error: None,
        }
    );
    Ok(())
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = HashMap<String, String>)]
struct DictResultEvent;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = Vec<Value>)]
struct ListResultEvent;

#[tokio::test]
async fn json_from_dynamic_handlers_is_checked_against_the_result_type() -> anyhow::Result<()> {
    let bus = EventBus::new("TestBus");
    let good = [
        bus.on_pattern("DictResultEvent", |_: AnyEvent| json!({"key1": "value1"})),
        // A handler taking the JSON view of the event returns JSON too.
        bus.on_pattern(
            "DictResultEvent",
            |_: EventHandle<DynEvent>| json!({"key2": "value2"}),
        ),
    ];
    let bad = [
        bus.on_pattern("DictResultEvent", |_: AnyEvent| {
            json!("this is a string, not a dict")
        }),
        bus.on_pattern("DictResultEvent", |_: AnyEvent| json!(42)),
        bus.on_pattern("DictResultEvent", |_: AnyEvent| json!([1, 2, 3])),
    ];

    let event = bus.dispatch(DictResultEvent)?.await?;
    let results = event.event_results();
    for handler in &good {
        let result = results
            .iter()
            .find(|r| &r.handler_id == handler.id())
            .unwrap();
        assert_eq!(result.status, ResultStatus::Completed);
        assert!(result.result.is_some());
    }
    for handler in &bad {
        let result = results
            .iter()
            .find(|r| &r.handler_id == handler.id())
            .unwrap();
        assert_eq!(result.status, ResultStatus::Error);
        assert!(result.result.is_none());
        let err = result.error.as_ref().unwrap();
        assert_eq!(err.kind(), HandlerErrorKind::ResultSchema);
        assert_eq!(err.error_type(), "EventHandlerResultSchemaError");
        assert!(err.message().contains("did not match"), "{err}");
        assert!(err.message().contains("HashMap"), "{err}");
    }
    let merged = event.results().ignore_errors().flat_dict().await?;
    assert_eq!(
        merged,
        HashMap::from([
            ("key1".to_owned(), "value1".to_owned()),
            ("key2".to_owned(), "value2".to_owned()),
        ])
    );

    // The same for a list result type.
    bus.on_pattern("ListResultEvent", |_: AnyEvent| json!([1, 2, 3]));
    bus.on_pattern("ListResultEvent", |_: AnyEvent| json!(["a", "b", "c"]));
    bus.on_pattern("ListResultEvent", |_: AnyEvent| json!({"key": "value"}));
    bus.on_pattern("ListResultEvent", |_: AnyEvent| json!("not a list"));
    bus.on_pattern("ListResultEvent", |_: AnyEvent| json!(99));
    let event = bus.dispatch(ListResultEvent)?.await?;
    let statuses: Vec<_> = event.event_results().iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            ResultStatus::Completed,
            ResultStatus::Completed,
            ResultStatus::Error,
            ResultStatus::Error,
            ResultStatus::Error,
        ]
    );
    assert_eq!(
        event.results().ignore_errors().flat_list().await?,
        [
            json!(1),
            json!(2),
            json!(3),
            json!("a"),
            json!("b"),
            json!("c")
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_mismatched_result_names_the_offending_field_and_null_is_allowed() -> anyhow::Result<()> {
    let bus = EventBus::new("ResultSchemaBus");
    bus.on(|_: AnyEvent| json!({"screenshot_base64": "x", "error": 7}));

    let event = bus.dispatch(ScreenshotEvent {
        screenshot_width: 1,
        screenshot_height: 1,
    })?;
    let err = match event.event_result().await {
        Err(ResultError::Handler(err)) => err,
        other => panic!("expected a schema error, got {other:?}"),
    };
    assert_eq!(err.kind(), HandlerErrorKind::ResultSchema);
    assert!(err.message().contains("`error`"), "{err}");
    assert_eq!(event.event_errors().len(), 1);

    // Strict, like the TypeScript runtime: a numeric string is not a number. (The Python runtime
    // coerces "42" to 42.)
    let strict = EventBus::new("StrictBus");
    strict.on(|_: AnyEvent| json!("42"));
    let event = strict.dispatch(CountEvent)?;
    assert!(matches!(
        event.event_result().await,
        Err(ResultError::Handler(ref e)) if e.kind() == HandlerErrorKind::ResultSchema
    ));
    strict.off_pattern("*");
    strict.on(|_: AnyEvent| json!(42));
    assert_eq!(strict.dispatch(CountEvent)?.event_result().await?, 42);

    // Returning nothing is not checked against the result type: it is simply no value.
    let nothing = EventBus::new("NothingBus");
    nothing.on(|_: AnyEvent| ());
    let event = nothing
        .dispatch(ScreenshotEvent {
            screenshot_width: 1,
            screenshot_height: 1,
        })?
        .await?;
    assert_eq!(event.event_results()[0].status, ResultStatus::Completed);
    assert!(event.event_errors().is_empty());
    Ok(())
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u32)]
struct Forwarded;

#[tokio::test]
async fn a_forwarded_event_result_is_not_a_value() -> anyhow::Result<()> {
    let source = EventBus::new("SourceBus");
    let target = EventBus::new("TargetBus");
    let t = target.clone();
    let forward = source.on(move |event: AnyEvent| t.dispatch(event));
    target.on(|_: EventHandle<Forwarded>| 7u32);

    let event = source.dispatch(Forwarded)?.await?;

    let results = event.event_results();
    assert_eq!(results.len(), 2);
    let forwarding = results
        .iter()
        .find(|r| &r.handler_id == forward.id())
        .unwrap();
    assert_eq!(forwarding.status, ResultStatus::Completed);
    assert_eq!(forwarding.forwarded_event_id, Some(event.event_id()));
    assert!(forwarding.result.is_none());
    // Only the target bus's handler produced a value.
    assert_eq!(event.event_result().await?, 7);
    assert_eq!(event.event_results_list().await?, [7]);
    assert_eq!(event.results().include(|_| true).list().await?, [7]);
    Ok(())
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct UserLoginEvent {
    username: String,
    is_admin: bool,
}

#[tokio::test]
async fn typed_handlers_receive_dynamic_events_decoded_once() -> anyhow::Result<()> {
    let bus = EventBus::new("DynBus");
    let payloads = Recorder::new();
    for tag in ["a", "b"] {
        let payloads = payloads.clone();
        bus.on(move |event: EventHandle<UserLoginEvent>| {
            payloads.push(format!("{:p}", event.payload()));
            format!("{tag}: {} admin={}", event.username, event.is_admin)
        });
    }
    bus.on(|event: AnyEvent| json!(event.event_type()));

    let event = bus.dispatch(DynEvent::new(
        "UserLoginEvent",
        json!({"username": "alice", "is_admin": true}),
    )?)?;

    // A dynamic event's handlers return JSON.
    assert_eq!(
        event.event_results_list().await?,
        [
            json!("a: alice admin=true"),
            json!("b: alice admin=true"),
            json!("UserLoginEvent"),
        ]
    );
    // Both typed handlers saw the same decoded payload: it was decoded once.
    let seen = payloads.entries();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], seen[1]);

    // The typed view of the dynamic event reads the results with the event's result type.
    let typed = event.to_any().downcast::<UserLoginEvent>().unwrap();
    assert_eq!(typed.username, "alice");
    assert_eq!(typed.event_result().await?, "a: alice admin=true");
    Ok(())
}

#[tokio::test]
async fn a_dynamic_payload_that_does_not_decode_is_an_error_result_naming_the_field()
-> anyhow::Result<()> {
    let bus = EventBus::new("BadPayloadBus");
    let calls = Recorder::new();
    let c = calls.clone();
    let typed = bus.on(move |event: EventHandle<UserLoginEvent>| {
        c.push(&event.username);
        "handled".to_owned()
    });
    bus.on(|_: AnyEvent| json!("wildcard ran"));

    for (payload, field) in [
        (json!({"username": 5, "is_admin": true}), "username"),
        (json!({"username": "bob"}), "is_admin"),
    ] {
        let event = bus
            .dispatch(DynEvent::new("UserLoginEvent", payload)?)?
            .await?;
        let results = event.event_results();
        let failed = results
            .iter()
            .find(|r| &r.handler_id == typed.id())
            .unwrap();
        assert_eq!(failed.status, ResultStatus::Error);
        let err = failed.error.as_ref().unwrap();
        assert_eq!(err.kind(), HandlerErrorKind::PayloadDecode);
        assert_eq!(err.error_type(), "EventPayloadDecodeError");
        assert!(err.message().contains(field), "{err}");
        // The other handlers are unaffected.
        assert_eq!(
            event.results().ignore_errors().list().await?,
            [json!("wildcard ran")]
        );
        assert!(event.to_any().downcast::<UserLoginEvent>().is_none());
    }
    assert!(calls.is_empty(), "the typed handler never ran");

    // A good payload afterwards is handled normally.
    let event = bus.dispatch(DynEvent::new(
        "UserLoginEvent",
        json!({"username": "carol", "is_admin": false}),
    )?)?;
    assert_eq!(event.event_result().await?, json!("handled"));
    assert_eq!(calls.entries(), ["carol"]);
    Ok(())
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u32)]
struct LegacyLogin {
    username: String,
    is_admin: bool,
}

#[tokio::test]
async fn a_typed_handler_on_another_types_name_is_checked_against_that_events_result_type()
-> anyhow::Result<()> {
    let bus = EventBus::new("CrossTypeBus");
    // Decodes `LegacyLogin` payloads as `UserLoginEvent`, and returns a `String`, which is not
    // what `LegacyLogin` handlers must return.
    bus.on_pattern("LegacyLogin", |event: EventHandle<UserLoginEvent>| {
        event.username.clone()
    });

    let event = bus.dispatch(LegacyLogin {
        username: "dave".into(),
        is_admin: false,
    })?;
    match event.event_result().await {
        Err(ResultError::Handler(err)) => {
            assert_eq!(err.kind(), HandlerErrorKind::ResultSchema);
            assert!(err.message().contains("u32"), "{err}");
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
    Ok(())
}

/// `event_results_filtered` (the reference's name): the results themselves, keyed by handler
/// id, that the include filter accepts — by default the completed ones with a value; with the
/// reference's raise policies.
#[tokio::test]
async fn event_results_filtered_keys_the_included_results_by_handler_id() {
    let bus = EventBus::new("FilteredBus");
    let a = bus.on_with(
        |_: EventHandle<Work>| String::from("a"),
        HandlerOptions::new().name("a"),
    );
    bus.on_with(
        |_: AnyEvent| Value::Null,
        HandlerOptions::new().name("nothing").pattern("Work"),
    );
    let c = bus.on_with(
        |_: EventHandle<Work>| String::from("c"),
        HandlerOptions::new().name("c"),
    );
    let event = bus.dispatch(Work).unwrap();
    let filtered = event.event_results_filtered().await.unwrap();
    let keys: Vec<_> = filtered.keys().cloned().collect();
    assert_eq!(keys, [a.id().clone(), c.id().clone()]);
    assert_eq!(filtered[a.id()].result.as_deref(), Some("a"));
    assert_eq!(filtered[c.id()].handler_name, "c");

    let only_c = event
        .results()
        .include(|r| r.result.as_deref() == Some("c"))
        .filtered()
        .await
        .unwrap();
    assert_eq!(only_c.len(), 1);
    assert!(only_c.contains_key(c.id()));

    let none = event.results().include(|_| false).filtered().await;
    assert!(matches!(
        none,
        Err(bubus::error::ResultError::NoResult { .. })
    ));
    let none_ok = event
        .results()
        .include(|_| false)
        .allow_none()
        .filtered()
        .await
        .unwrap();
    assert!(none_ok.is_empty());
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = Option<u32>)]
struct MaybeCount;

/// `event_result` reads a completed event's records directly when no handler failed; these are
/// the cases around that shortcut: a null value is skipped, and an error after a value still
/// raises.
#[tokio::test]
async fn event_result_skips_nulls_and_raises_an_error_after_a_value() -> anyhow::Result<()> {
    let bus = EventBus::new("MaybeBus");
    bus.on(|_: EventHandle<MaybeCount>| None::<u32>);
    bus.on(|_: EventHandle<MaybeCount>| Some(7u32));
    bus.on(|_: EventHandle<MaybeCount>| Some(9u32));
    let event = bus.dispatch(MaybeCount)?.await?;
    assert_eq!(event.event_result().await?, Some(7));

    let bus = EventBus::new("MaybeFailBus");
    bus.on(|_: EventHandle<MaybeCount>| Some(7u32));
    bus.on(
        |_: EventHandle<MaybeCount>| -> Result<Option<u32>, HandlerError> {
            Err(HandlerError::new("ValueError", "late"))
        },
    );
    let event = bus.dispatch(MaybeCount)?.await?;
    match event.event_result().await {
        Err(ResultError::Handler(err)) => assert_eq!(err.error_type(), "ValueError"),
        other => panic!("expected the handler's error, got {other:?}"),
    }
    assert_eq!(event.results().ignore_errors().one().await?, Some(Some(7)));
    Ok(())
}
