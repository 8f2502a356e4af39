//! Ports `tests/test_eventbus_retry_integration.py`,
//! `bubus-ts/tests/eventbus_retry_integration.test.ts` and
//! `tests/test_eventbus_locking.py::test_retry_global_handler_lock_serializes_handlers_across_buses`:
//! retried handlers on a bus — their final result or error lands on their `EventResult`,
//! per-attempt timeouts, error filters, semaphores across handlers, services and buses, and
//! retrying a whole dispatch. Time runs on tokio's paused clock.

use bubus_test_support::Active;
use bubus_test_support::time::ms;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bubus::retry::{Retry, SemaphoreScope};
use bubus::{
    AnyEvent, EventBus, EventHandle, error::HandlerErrorKind, event::EventConcurrency,
    event::HandlerConcurrency, handler::HandlerOptions, result::ResultStatus,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct TestEvent {
    message: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct WorkEvent {
    work_id: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ValueError(String);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct RuntimeError(String);

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct TypeErr(String);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

static CALLS_OF_RETRYING_HANDLER: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

async fn retrying_handler(event: EventHandle<TestEvent>) -> Result<String, ValueError> {
    let n = {
        let mut calls = CALLS_OF_RETRYING_HANDLER.lock();
        calls.push(Instant::now());
        calls.len()
    };
    if n < 3 {
        return Err(ValueError(format!("Attempt {n} failed")));
    }
    Ok(format!("Success: {}", event.message))
}

#[tokio::test(start_paused = true)]
async fn a_retried_handler_records_its_final_result() {
    let bus = EventBus::new("test_retry_bus");
    let policy = Retry::new()
        .max_attempts(3)
        .retry_after(ms(100))
        .timeout(Duration::from_secs(1))
        .semaphore_limit(1)
        .semaphore_scope(SemaphoreScope::Global);
    let handler = bus.on(policy.handler(retrying_handler));
    assert!(handler.handler_name().ends_with("::retrying_handler"));

    let event = bus
        .dispatch(TestEvent {
            message: "Hello retry!".into(),
        })
        .expect("dispatch");
    assert_eq!(
        event.event_result().await.ok().as_deref(),
        Some("Success: Hello retry!")
    );

    let calls = CALLS_OF_RETRYING_HANDLER.lock().clone();
    assert_eq!(calls.len(), 3);
    assert!(calls.windows(2).all(|w| w[1] - w[0] >= ms(100)));
    let results = event.event_results();
    assert_eq!(
        results.len(),
        1,
        "one result per handler, however many attempts"
    );
    assert_eq!(results[0].status, ResultStatus::Completed);
    assert_eq!(results[0].handler_id, *handler.id());
}

#[tokio::test(start_paused = true)]
async fn a_semaphore_limits_parallel_handlers() {
    let bus = EventBus::builder("test_concurrent_bus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let active = Active::default();
    for handler_id in 1..=4 {
        let policy = Retry::new()
            .timeout(Duration::from_secs(5))
            .semaphore_limit(2)
            .semaphore_name("test_handler_sem");
        let active = active.clone();
        bus.on(policy.handler(move |event: EventHandle<WorkEvent>| {
            let active = active.clone();
            async move {
                let _inside = active.enter();
                tokio::time::sleep(ms(200)).await;
                Ok::<_, ValueError>(format!(
                    "Handler {handler_id} processed work {}",
                    event.work_id
                ))
            }
        }));
    }
    let started = Instant::now();
    let event = bus.dispatch(WorkEvent { work_id: 1 }).expect("dispatch");
    let results = event.event_results_list().await.expect("results");
    assert_eq!(results.len(), 4);
    assert_eq!(
        active.max(),
        2,
        "semaphore_limit=2 allows exactly two at once"
    );
    assert_eq!(started.elapsed(), ms(400));
}

#[tokio::test(start_paused = true)]
async fn a_timed_out_attempt_is_recorded_as_a_handler_timeout() {
    let bus = EventBus::new("test_timeout_bus");
    let started_handler = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&started_handler);
    bus.on(Retry::new()
        .timeout(ms(200))
        .handler(move |_: EventHandle<TestEvent>| {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok::<_, ValueError>("Should not reach here".to_owned())
            }
        }));
    let started = Instant::now();
    let event = bus
        .dispatch(TestEvent {
            message: "slow".into(),
        })
        .expect("dispatch");
    let _ = (&event).await;
    assert_eq!(started.elapsed(), ms(200));
    assert_eq!(started_handler.load(Ordering::SeqCst), 1);

    let results = event.event_results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].status, ResultStatus::Error);
    let error = results[0].error.as_ref().expect("an error");
    assert!(results[0].is_timeout());
    assert_eq!(error.kind(), HandlerErrorKind::Timeout);
    assert_eq!(error.error_type(), "EventHandlerTimeoutError");
    assert!(error.message().contains("RetryTimeoutError"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn only_the_chosen_errors_are_retried() {
    let bus = EventBus::new("test_exception_filter_bus");
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&attempts);
    let policy = Retry::new()
        .max_attempts(4)
        .retry_after(ms(50))
        .timeout(Duration::from_secs(1))
        .retry_on::<ValueError>()
        .retry_on::<RuntimeError>();
    bus.on(policy.handler(move |_: EventHandle<TestEvent>| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            match n {
                1 => Err::<String, BoxError>(ValueError("This should be retried".into()).into()),
                2 => Err(RuntimeError("This should also be retried".into()).into()),
                3 => Err(TypeErr("This should NOT be retried".into()).into()),
                _ => Ok("Success".into()),
            }
        }
    }));
    let event = bus
        .dispatch(TestEvent {
            message: "filter".into(),
        })
        .expect("dispatch");
    let _ = (&event).await;
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let results = event.event_results();
    assert_eq!(results[0].status, ResultStatus::Error);
    let error = results[0].error.as_ref().expect("an error");
    assert!(
        error.message().contains("This should NOT be retried"),
        "{error}"
    );
    assert_eq!(error.kind(), HandlerErrorKind::Failed);
}

#[tokio::test(start_paused = true)]
async fn the_recorded_error_is_the_handlers_own() {
    let bus = EventBus::new("test_final_error_bus");
    bus.on(Retry::new()
        .max_attempts(2)
        .handler(|_: EventHandle<TestEvent>| async {
            Err::<String, _>(ValueError("still broken".into()))
        }));
    let event = bus
        .dispatch(TestEvent {
            message: "x".into(),
        })
        .expect("dispatch");
    let err = event.event_result().await.unwrap_err();
    let errors = event.event_errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].error_type(), "ValueError");
    assert_eq!(errors[0].message(), "still broken");
    assert!(err.to_string().contains("still broken"));
}

#[tokio::test(start_paused = true)]
async fn wildcard_handlers_can_be_retried() {
    let bus = EventBus::new("test_wildcard_bus");
    let seen = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&seen);
    let handler = bus.on(Retry::new()
        .max_attempts(3)
        .handler(move |event: AnyEvent| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 1 {
                    return Err(ValueError(format!("{} not yet", event.event_type())));
                }
                Ok(())
            }
        }));
    assert_eq!(handler.event_pattern(), "*");
    let event = bus
        .dispatch(TestEvent {
            message: "x".into(),
        })
        .expect("dispatch");
    let _ = (&event).await;
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert!(event.event_errors().is_empty());
}

// --- Services: the per-type and per-instance scopes -------------------------------------------

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ScopeEvent {}

struct SomeService {
    active: Active,
}

impl SomeService {
    async fn on_scope_event(
        self: Arc<Self>,
        _: EventHandle<ScopeEvent>,
    ) -> Result<String, ValueError> {
        let _inside = self.active.enter();
        tokio::time::sleep(ms(50)).await;
        Ok("ok".into())
    }
}

/// Two instances of `SomeService`, each registered through `policy.method`; returns the most
/// handlers that ran at once.
async fn run_two_services(scope: SemaphoreScope, name: &str) -> (usize, usize) {
    let bus = EventBus::builder(format!("test_scope_{name}_bus"))
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let policy = Retry::new()
        .semaphore_scope(scope)
        .semaphore_limit(1)
        .semaphore_name(name);
    let active = Active::default();
    for _ in 0..2 {
        let service = Arc::new(SomeService {
            active: active.clone(),
        });
        bus.on(policy.method(&service, SomeService::on_scope_event));
    }
    let event = bus.dispatch(ScopeEvent {}).expect("dispatch");
    let results = event.event_results_list().await.expect("results");
    assert_eq!(results, ["ok", "ok"]);
    (active.max(), active.calls())
}

#[tokio::test(start_paused = true)]
async fn type_scope_serializes_the_methods_of_every_instance() {
    assert_eq!(
        run_two_services(SemaphoreScope::Type, "on_scope_class_event").await,
        (1, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn instance_scope_lets_instances_overlap() {
    assert_eq!(
        run_two_services(SemaphoreScope::Instance, "on_scope_instance_event").await,
        (2, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn global_scope_serializes_every_method() {
    assert_eq!(
        run_two_services(SemaphoreScope::Global, "on_scope_global_event").await,
        (1, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn retried_methods_keep_the_method_name() {
    let bus = EventBus::new("test_method_name_bus");
    let service = Arc::new(SomeService {
        active: Active::default(),
    });
    let handler = bus.on(Retry::new().method(&service, SomeService::on_scope_event));
    assert!(
        handler
            .handler_name()
            .ends_with("SomeService::on_scope_event"),
        "{}",
        handler.handler_name()
    );
}

// --- Across buses, and around dispatch ---------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_global_semaphore_serializes_handlers_across_buses() {
    let active = Active::default();
    let mut events = Vec::new();
    for name in ["RetryLockBusA", "RetryLockBusB"] {
        let bus = EventBus::builder(name)
            .event_concurrency(EventConcurrency::Parallel)
            .event_handler_concurrency(HandlerConcurrency::Parallel)
            .build();
        let policy = Retry::new()
            .semaphore_limit(1)
            .semaphore_name("retry_global_handler_lock");
        let active = active.clone();
        bus.on(policy.handler(move |_: EventHandle<WorkEvent>| {
            let active = active.clone();
            async move {
                let _inside = active.enter();
                tokio::time::sleep(ms(30)).await;
                Ok::<_, ValueError>("done".to_owned())
            }
        }));
        for work_id in 0..2 {
            events.push(bus.dispatch(WorkEvent { work_id }).expect("dispatch"));
        }
    }
    for event in events {
        assert_eq!(event.event_result().await.ok().as_deref(), Some("done"));
    }
    assert_eq!(active.calls(), 4);
    assert_eq!(active.max(), 1);
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ParentEvent {}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ChildEvent {}

/// A handler holding a limit-1 semaphore awaits a child event whose handler uses the same
/// semaphore: the child runs in the awaiting task (queue-jump) and re-enters the held slot
/// instead of waiting for it.
#[tokio::test(start_paused = true)]
async fn a_handler_awaiting_a_child_re_enters_its_semaphore() {
    let bus = EventBus::new("test_reentrant_bus");
    let policy = Retry::new()
        .semaphore_limit(1)
        .semaphore_name("parent_and_child")
        .semaphore_strict()
        .semaphore_timeout(Duration::from_secs(1));
    let inner = bus.clone();
    bus.on(policy.handler(move |_: EventHandle<ParentEvent>| {
        let bus = inner.clone();
        async move {
            let child = bus.dispatch(ChildEvent {})?;
            let answer = child.event_result().await?;
            Ok::<_, bubus::Error>(format!("parent got {answer}"))
        }
    }));
    bus.on(policy.handler(|_: EventHandle<ChildEvent>| async {
        Ok::<_, ValueError>("child ok".to_owned())
    }));
    let started = Instant::now();
    let event = bus.dispatch(ParentEvent {}).expect("dispatch");
    assert_eq!(
        event.event_result().await.ok().as_deref(),
        Some("parent got child ok")
    );
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "nobody waited for the semaphore"
    );
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct TabsEvent {}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct DomEvent {}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ScreenshotEvent {}

/// Port of "retry wrapping emit→done retries the full dispatch cycle": each attempt dispatches
/// a new event and awaits its result; other events go through once.
#[tokio::test(start_paused = true)]
async fn retrying_a_dispatch_retries_the_whole_cycle() {
    let bus = EventBus::builder("test_retry_emit_bus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let tabs_attempts = Arc::new(AtomicU32::new(0));
    let dom_calls = Arc::new(AtomicU32::new(0));
    let screenshot_calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&tabs_attempts);
    bus.on(move |_: EventHandle<TabsEvent>| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            if n < 3 {
                return Err(RuntimeError(format!("tabs fail attempt {n}")));
            }
            Ok("tabs ok".to_owned())
        }
    });
    let counter = Arc::clone(&dom_calls);
    bus.on(move |_: EventHandle<DomEvent>| {
        counter.fetch_add(1, Ordering::SeqCst);
        "dom ok".to_owned()
    });
    let counter = Arc::clone(&screenshot_calls);
    bus.on(move |_: EventHandle<ScreenshotEvent>| {
        counter.fetch_add(1, Ordering::SeqCst);
        "screenshot ok".to_owned()
    });

    let policy = Retry::new().max_attempts(4).retry_on::<RuntimeError>();
    let tabs = policy.run(|| async {
        let event = bus.dispatch(TabsEvent {})?;
        Ok::<_, bubus::Error>(event.event_result().await?)
    });
    let dom = async { Ok::<_, bubus::Error>(bus.dispatch(DomEvent {})?.event_result().await?) };
    let screenshot =
        async { Ok::<_, bubus::Error>(bus.dispatch(ScreenshotEvent {})?.event_result().await?) };
    let (tabs, dom, screenshot) = tokio::join!(tabs, dom, screenshot);

    assert_eq!(tabs.ok().as_deref(), Some("tabs ok"));
    assert_eq!(tabs_attempts.load(Ordering::SeqCst), 3);
    assert_eq!(dom.ok().as_deref(), Some("dom ok"));
    assert_eq!(screenshot.ok().as_deref(), Some("screenshot ok"));
    assert_eq!(dom_calls.load(Ordering::SeqCst), 1);
    assert_eq!(screenshot_calls.load(Ordering::SeqCst), 1);
}

// --- The bus's timeouts bound the whole retried run --------------------------------------------

#[tokio::test(start_paused = true)]
async fn the_event_timeout_bounds_the_whole_retried_run() {
    let bus = EventBus::new("test_event_timeout_bus");
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&attempts);
    let policy = Retry::new()
        .max_attempts(10)
        .timeout(ms(300))
        .retry_after(ms(100))
        .semaphore_limit(1)
        .semaphore_name("event_timeout_sem")
        .semaphore_strict()
        .semaphore_timeout(ms(10));
    bus.on(policy.handler(move |_: EventHandle<TestEvent>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Ok::<_, ValueError>(String::new())
        }
    }));
    let started = Instant::now();
    let event = bus
        .dispatch(
            EventHandle::new(TestEvent {
                message: "slow".into(),
            })
            .with_event_timeout(Duration::from_secs(1)),
        )
        .expect("dispatch");
    let _ = (&event).await;
    // Cut at the event's 1 s, not after 10 attempts of 300 ms and the waits between them.
    assert_eq!(started.elapsed(), Duration::from_secs(1));
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "attempts at 0, 400 and 800 ms"
    );
    let results = event.event_results();
    assert_eq!(results[0].status, ResultStatus::Error);
    let error = results[0].error.as_ref().expect("an error");
    assert!(error.message().contains("timed out"), "{error}");
    // The cancelled run gave its slot back: a strict call gets it at once.
    assert!(
        policy
            .run(|| async { Ok::<_, ValueError>(()) })
            .await
            .is_ok()
    );
}

/// Port of "a handler `handler_timeout` stops in-flight retries".
#[tokio::test(start_paused = true)]
async fn the_handler_timeout_stops_in_flight_retries() {
    let bus = EventBus::new("test_handler_timeout_bus");
    let attempts = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&attempts);
    let policy = Retry::new().max_attempts(10).retry_after(ms(100));
    bus.on_with(
        policy.handler(move |_: EventHandle<TestEvent>| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Err::<String, _>(ValueError("still failing".into())) }
        }),
        HandlerOptions::new().timeout(Some(Duration::from_millis(250))),
    );
    let started = Instant::now();
    let event = bus
        .dispatch(TestEvent {
            message: "x".into(),
        })
        .expect("dispatch");
    let _ = (&event).await;
    assert_eq!(started.elapsed(), ms(250));
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        3,
        "attempts at 0, 100 and 200 ms"
    );
    assert!(event.event_results()[0].is_timeout());
}
