//! Middleware hooks (semantics §1.19, §1.7): ports the hook tests of `tests/test_middleware.py`
//! (`TestHandlerMiddleware`, the pattern-parity tests) and `bubus-ts/tests/middleware.test.ts`.
//!
//! The order checked is the Python runtime's: event pending → result pending → result started →
//! event started → result completed → event completed, and a no-handler event goes pending →
//! completed. Results go pending → started → completed, or pending → completed when they never
//! start; hooks never report `error` (failures are `result.status == Error` in `completed`). The
//! extra `dispatched` hook (not in the reference) comes first.
//!
//! Time-dependent tests run on tokio's paused clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus::middleware::Middleware;
use bubus::{
    AnyEvent, DynEvent, EventBus, EventHandle, EventResult, EventStatus, HandlerError,
    event::HandlerCompletion, event::HandlerConcurrency, handler::EventHandler,
    handler::HandlerOptions, result::ResultStatus,
};
use bubus_test_support::Recorder;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct UserActionEvent {
    action: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct MiddlewarePatternEvent {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ChildEvent {}

/// One hook call, as the tests compare them.
#[derive(Clone, Debug, PartialEq)]
enum Hook {
    Dispatched {
        event_id: uuid::Uuid,
    },
    Event {
        event_id: uuid::Uuid,
        status: EventStatus,
        bus: String,
    },
    Result {
        event_id: uuid::Uuid,
        handler_id: String,
        handler_name: String,
        status: EventStatus,
        result_status: ResultStatus,
        bus: String,
    },
    Handler {
        handler_id: String,
        pattern: String,
        bus_id: uuid::Uuid,
        registered: bool,
    },
}

/// Records every hook call (structured) and a `name:kind:status` line per call into a log that
/// several middlewares may share.
struct Recording {
    name: &'static str,
    hooks: Mutex<Vec<Hook>>,
    log: Recorder,
}

impl Recording {
    fn new(name: &'static str, log: &Recorder) -> Arc<Self> {
        Arc::new(Recording {
            name,
            hooks: Mutex::new(Vec::new()),
            log: log.clone(),
        })
    }

    fn hooks(&self) -> Vec<Hook> {
        self.hooks.lock().clone()
    }

    /// `event:{status}` / `result:{status}` lines for one event, in order.
    fn sequence(&self, event_id: uuid::Uuid) -> Vec<String> {
        self.hooks()
            .into_iter()
            .filter_map(|h| match h {
                Hook::Dispatched { event_id: id } if id == event_id => Some("dispatched".into()),
                Hook::Event {
                    event_id: id,
                    status,
                    ..
                } if id == event_id => Some(format!("event:{status}")),
                Hook::Result {
                    event_id: id,
                    status,
                    ..
                } if id == event_id => Some(format!("result:{status}")),
                _ => None,
            })
            .collect()
    }

    /// The event hook statuses for one event.
    fn event_statuses(&self, event_id: uuid::Uuid) -> Vec<EventStatus> {
        self.hooks()
            .into_iter()
            .filter_map(|h| match h {
                Hook::Event {
                    event_id: id,
                    status,
                    ..
                } if id == event_id => Some(status),
                _ => None,
            })
            .collect()
    }

    /// (hook status, result status) per result hook of the handler named `handler_name`.
    fn result_transitions(&self, handler_name: &str) -> Vec<(EventStatus, ResultStatus)> {
        self.hooks()
            .into_iter()
            .filter_map(|h| match h {
                Hook::Result {
                    handler_name: n,
                    status,
                    result_status,
                    ..
                } if n == handler_name => Some((status, result_status)),
                _ => None,
            })
            .collect()
    }

    fn result_statuses_by_handler_id(&self, handler_id: &str) -> Vec<EventStatus> {
        self.hooks()
            .into_iter()
            .filter_map(|h| match h {
                Hook::Result {
                    handler_id: id,
                    status,
                    ..
                } if id == handler_id => Some(status),
                _ => None,
            })
            .collect()
    }
}

impl Middleware for Recording {
    fn on_event_dispatched(&self, _bus: &EventBus, event: &AnyEvent) {
        self.hooks.lock().push(Hook::Dispatched {
            event_id: event.event_id(),
        });
        self.log.push(format!("{}:dispatched", self.name));
    }

    fn on_event_change(&self, bus: &EventBus, event: &AnyEvent, status: EventStatus) {
        self.hooks.lock().push(Hook::Event {
            event_id: event.event_id(),
            status,
            bus: bus.label().to_owned(),
        });
        self.log.push(format!("{}:event:{status}", self.name));
    }

    fn on_event_result_change(
        &self,
        bus: &EventBus,
        event: &AnyEvent,
        result: &EventResult<Value>,
        status: EventStatus,
    ) {
        self.hooks.lock().push(Hook::Result {
            event_id: event.event_id(),
            handler_id: result.handler_id.to_string(),
            handler_name: result.handler_name.clone(),
            status,
            result_status: result.status,
            bus: bus.label().to_owned(),
        });
        self.log.push(format!("{}:result:{status}", self.name));
    }

    fn on_bus_handlers_change(&self, bus: &EventBus, handler: &EventHandler, registered: bool) {
        assert_eq!(handler.eventbus_id(), bus.id());
        self.hooks.lock().push(Hook::Handler {
            handler_id: handler.id().to_string(),
            pattern: handler.event_pattern().to_owned(),
            bus_id: handler.eventbus_id(),
            registered,
        });
        let change = if registered {
            "registered"
        } else {
            "unregistered"
        };
        self.log.push(format!("{}:handler:{change}", self.name));
    }
}

fn named(name: &str) -> HandlerOptions {
    HandlerOptions::new().name(name)
}

fn action(name: &str) -> UserActionEvent {
    UserActionEvent {
        action: name.into(),
    }
}

#[tokio::test]
async fn one_event_with_one_handler_fires_hooks_in_the_python_order() -> Result<(), bubus::Error> {
    let log = Recorder::new();
    let mw = Recording::new("mw", &log);
    let bus = EventBus::builder("HookOrderBus")
        .middleware(mw.clone())
        .build();
    bus.on(|_: EventHandle<UserActionEvent>| "ok".to_owned());

    let event = bus.dispatch(action("test"))?;
    event.clone().await?;

    assert_eq!(
        mw.sequence(event.event_id()),
        [
            "dispatched",
            "event:pending",
            "result:pending",
            "result:started",
            "event:started",
            "result:completed",
            "event:completed",
        ]
    );
    Ok::<_, bubus::Error>(())
}

#[tokio::test]
async fn an_event_without_handlers_goes_pending_then_completed() -> Result<(), bubus::Error> {
    let log = Recorder::new();
    let mw = Recording::new("mw", &log);
    let bus = EventBus::builder("MiddlewareNoHandlerBus")
        .middleware(mw.clone())
        .build();

    let event = bus.dispatch(DynEvent::new("MiddlewareNoHandlerEvent", json!({})).unwrap())?;
    event.clone().await?;

    // Python: no `started` without a handler (TypeScript marks it started at processing start).
    assert_eq!(
        mw.sequence(event.event_id()),
        ["dispatched", "event:pending", "event:completed"]
    );
    Ok::<_, bubus::Error>(())
}

#[tokio::test]
async fn hook_statuses_never_say_error_and_a_failure_shows_on_the_result()
-> Result<(), bubus::Error> {
    let log = Recorder::new();
    let mw = Recording::new("mw", &log);
    let bus = EventBus::builder("FailBus").middleware(mw.clone()).build();
    bus.on_with(
        |_: EventHandle<UserActionEvent>| Err::<String, _>(HandlerError::new("ValueError", "boom")),
        named("failing_handler"),
    );

    let event = bus.dispatch(action("fail"))?;
    event.clone().await?;

    let results = event.event_results();
    assert_eq!(results[0].status, ResultStatus::Error);
    assert_eq!(
        results[0].error.as_ref().map(|e| e.error_type()),
        Some("ValueError")
    );
    assert_eq!(
        mw.event_statuses(event.event_id()),
        [
            EventStatus::Pending,
            EventStatus::Started,
            EventStatus::Completed
        ]
    );
    assert_eq!(
        mw.result_transitions("failing_handler"),
        [
            (EventStatus::Pending, ResultStatus::Pending),
            (EventStatus::Started, ResultStatus::Started),
            (EventStatus::Completed, ResultStatus::Error),
        ]
    );
    Ok::<_, bubus::Error>(())
}

#[tokio::test]
async fn several_middlewares_run_each_hook_in_registration_order() -> Result<(), bubus::Error> {
    let log = Recorder::new();
    let first = Recording::new("first", &log);
    let second = Recording::new("second", &log);
    let bus = EventBus::builder("MiddlewareOrderBus")
        .middleware(first.clone())
        .middleware(second.clone())
        .build();
    bus.on(|_: EventHandle<UserActionEvent>| "ok".to_owned());
    bus.dispatch(action("ordered"))?.await?;

    assert_eq!(
        log.entries(),
        [
            "first:handler:registered",
            "second:handler:registered",
            "first:dispatched",
            "second:dispatched",
            "first:event:pending",
            "second:event:pending",
            "first:result:pending",
            "second:result:pending",
            "first:result:started",
            "second:result:started",
            "first:event:started",
            "second:event:started",
            "first:result:completed",
            "second:result:completed",
            "first:event:completed",
            "second:event:completed",
        ]
    );
    Ok::<_, bubus::Error>(())
}

#[tokio::test]
async fn event_hook_order_is_the_same_for_every_event_of_a_burst() -> Result<(), bubus::Error> {
    let log = Recorder::new();
    let mw = Recording::new("mw", &log);
    let bus = EventBus::builder("MiddlewareDeterministicBus")
        .middleware(mw.clone())
        .max_history_size(None)
        .build();
    bus.on(|_: EventHandle<UserActionEvent>| async {
        tokio::task::yield_now().await;
        "ok".to_owned()
    });

    let mut seen = 0;
    for batch in 0..5 {
        let events: Vec<_> = (0..50)
            .map(|i| bus.dispatch(action(&format!("u-{batch}-{i}"))))
            .collect::<Result<_, _>>()?;
        for event in &events {
            event.clone().await?;
        }
        for event in &events {
            assert_eq!(
                mw.event_statuses(event.event_id()),
                [
                    EventStatus::Pending,
                    EventStatus::Started,
                    EventStatus::Completed
                ]
            );
        }
        seen += events.len();
    }
    assert_eq!(seen, 250);
    Ok::<_, bubus::Error>(())
}

#[tokio::test(start_paused = true)]
async fn event_timeout_keeps_event_and_result_hooks_monotonic() -> Result<(), bubus::Error> {
    let log = Recorder::new();
    let mw = Recording::new("mw", &log);
    let bus = EventBus::builder("TimeoutHookBus")
        .middleware(mw.clone())
        .build();
    bus.on_with(
        |_: EventHandle<UserActionEvent>| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            "slow".to_owned()
        },
        named("slow_handler"),
    );
    bus.on_with(
        |_: EventHandle<UserActionEvent>| "pending".to_owned(),
        named("pending_handler"),
    );

    let event = bus.dispatch(
        EventHandle::new(action("timeout")).with_event_timeout(Duration::from_millis(20)),
    )?;
    event.clone().await?;
    bus.wait_until_idle(None).await;

    assert_eq!(
        mw.event_statuses(event.event_id()),
        [
            EventStatus::Pending,
            EventStatus::Started,
            EventStatus::Completed
        ]
    );
    assert_eq!(
        mw.result_transitions("slow_handler"),
        [
            (EventStatus::Pending, ResultStatus::Pending),
            (EventStatus::Started, ResultStatus::Started),
            (EventStatus::Completed, ResultStatus::Error),
        ]
    );
    // Never started: pending → completed, as an error (cancelled).
    assert_eq!(
        mw.result_transitions("pending_handler"),
        [
            (EventStatus::Pending, ResultStatus::Pending),
            (EventStatus::Completed, ResultStatus::Error),
        ]
    );
    Ok::<_, bubus::Error>(())
}

#[tokio::test(start_paused = true)]
async fn parallel_handlers_cut_by_a_timeout_never_go_back_to_started() -> Result<(), bubus::Error> {
    let log = Recorder::new();
    let mw = Recording::new("mw", &log);
    let bus = EventBus::builder("MiddlewareOrderingBus")
        .middleware(mw.clone())
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    for name in ["slow_1", "slow_2"] {
        bus.on_with(
            |_: EventHandle<UserActionEvent>| async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                "slow".to_owned()
            },
            named(name),
        );
    }

    let event = bus.dispatch(
        EventHandle::new(action("parallel")).with_event_timeout(Duration::from_millis(10)),
    )?;
    event.clone().await?;
    // Let the dropped handlers' timers pass: nothing more may be reported.
    tokio::time::sleep(Duration::from_millis(100)).await;
    bus.wait_until_idle(None).await;

    for name in ["slow_1", "slow_2"] {
        assert_eq!(
            mw.result_transitions(name),
            [
                (EventStatus::Pending, ResultStatus::Pending),
                (EventStatus::Started, ResultStatus::Started),
                (EventStatus::Completed, ResultStatus::Error),
            ],
            "{name}"
        );
    }
    Ok::<_, bubus::Error>(())
}

#[tokio::test(start_paused = true)]
async fn first_completion_cancels_the_losers_once() -> Result<(), bubus::Error> {
    let log = Recorder::new();
    let mw = Recording::new("mw", &log);
    let bus = EventBus::builder("FirstHookBus")
        .middleware(mw.clone())
        .build();
    bus.on_with(
        |_: EventHandle<UserActionEvent>| "winner".to_owned(),
        named("winner"),
    );
    bus.on_with(
        |_: EventHandle<UserActionEvent>| "never runs".to_owned(),
        named("loser"),
    );

    let event = bus.dispatch(
        EventHandle::new(action("first")).with_event_handler_completion(HandlerCompletion::First),
    )?;
    event.clone().await?;

    assert_eq!(
        mw.result_transitions("winner"),
        [
            (EventStatus::Pending, ResultStatus::Pending),
            (EventStatus::Started, ResultStatus::Started),
            (EventStatus::Completed, ResultStatus::Completed),
        ]
    );
    assert_eq!(
        mw.result_transitions("loser"),
        [
            (EventStatus::Pending, ResultStatus::Pending),
            (EventStatus::Completed, ResultStatus::Error),
        ]
    );
    Ok::<_, bubus::Error>(())
}

#[tokio::test(start_paused = true)]
async fn children_cancelled_by_a_parent_timeout_report_pending_then_completed()
-> Result<(), bubus::Error> {
    let log = Recorder::new();
    let mw = Recording::new("mw", &log);
    let bus = EventBus::builder("CancelHookBus")
        .middleware(mw.clone())
        .build();
    let child_id = Arc::new(Mutex::new(None));
    let seen_child = child_id.clone();
    bus.on_with(
        move |_: EventHandle<UserActionEvent>| {
            let seen_child = seen_child.clone();
            async move {
                let bus = bubus::bus::current_bus().expect("in a handler");
                // Queued behind this handler, never awaited: cancelled when the parent times out.
                let child = bus.dispatch(ChildEvent {})?;
                *seen_child.lock() = Some(child.event_id());
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, bubus::Error>("late".to_owned())
            }
        },
        HandlerOptions::new()
            .name("parent")
            .timeout(Some(Duration::from_millis(50))),
    );
    bus.on_with(
        |_: EventHandle<ChildEvent>| "child".to_owned(),
        named("child_handler"),
    );

    let parent = bus.dispatch(action("parent"))?;
    parent.clone().await?;
    bus.wait_until_idle(None).await;

    let child_id = child_id.lock().expect("child dispatched");
    assert_eq!(
        mw.sequence(child_id),
        [
            "dispatched",
            "event:pending",
            "result:pending",
            "result:completed",
            "event:completed"
        ]
    );
    assert_eq!(
        mw.result_transitions("child_handler"),
        [
            (EventStatus::Pending, ResultStatus::Pending),
            (EventStatus::Completed, ResultStatus::Error),
        ]
    );
    assert_eq!(
        mw.result_transitions("parent"),
        [
            (EventStatus::Pending, ResultStatus::Pending),
            (EventStatus::Started, ResultStatus::Started),
            (EventStatus::Completed, ResultStatus::Error),
        ]
    );
    Ok::<_, bubus::Error>(())
}

#[tokio::test(start_paused = true)]
async fn events_still_queued_when_the_bus_stops_report_pending_then_completed()
-> Result<(), bubus::Error> {
    let log = Recorder::new();
    let mw = Recording::new("mw", &log);
    let bus = EventBus::builder("StopHookBus")
        .middleware(mw.clone())
        .build();
    bus.on_with(
        |_: EventHandle<UserActionEvent>| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            "done".to_owned()
        },
        named("sleeper"),
    );

    let running = bus.dispatch(action("running"))?;
    let queued = bus.dispatch(action("queued"))?;
    tokio::task::yield_now().await;
    bus.stop(None).await;
    running.clone().await?;
    queued.clone().await?;

    assert_eq!(
        mw.sequence(running.event_id()),
        [
            "dispatched",
            "event:pending",
            "result:pending",
            "result:started",
            "event:started",
            "result:completed",
            "event:completed"
        ]
    );
    assert_eq!(
        mw.sequence(queued.event_id()),
        [
            "dispatched",
            "event:pending",
            "result:pending",
            "result:completed",
            "event:completed"
        ]
    );
    assert!(
        queued
            .event_results()
            .iter()
            .all(|r| r.status == ResultStatus::Error)
    );
    Ok::<_, bubus::Error>(())
}

#[tokio::test]
async fn a_queue_jumped_child_gets_its_hooks_in_order_inside_the_parent() -> Result<(), bubus::Error>
{
    let log = Recorder::new();
    let mw = Recording::new("mw", &log);
    let bus = EventBus::builder("QueueJumpHookBus")
        .middleware(mw.clone())
        .build();
    bus.on(|_: EventHandle<UserActionEvent>| async {
        let bus = bubus::bus::current_bus().expect("in a handler");
        let child = bus.dispatch(ChildEvent {})?;
        child.event_result().await.map_err(bubus::Error::from)
    });
    bus.on(|_: EventHandle<ChildEvent>| "child".to_owned());

    let parent = bus.dispatch(action("parent"))?;
    assert_eq!(parent.event_result().await?, "child");
    let child = parent.event_children()[0].clone();

    let one_handler = [
        "dispatched",
        "event:pending",
        "result:pending",
        "result:started",
        "event:started",
        "result:completed",
        "event:completed",
    ];
    assert_eq!(mw.sequence(child.event_id()), one_handler);
    assert_eq!(mw.sequence(parent.event_id()), one_handler);
    // The child completes, inside the parent's handler, before the parent's handler returns.
    let hooks = mw.hooks();
    let position = |want: Hook| hooks.iter().position(|h| *h == want).expect("recorded");
    let child_completed = position(Hook::Event {
        event_id: child.event_id(),
        status: EventStatus::Completed,
        bus: bus.label().to_owned(),
    });
    let parent_result_completed = hooks
        .iter()
        .position(|h| {
            matches!(h, Hook::Result { event_id, status: EventStatus::Completed, .. }
                if *event_id == parent.event_id())
        })
        .expect("recorded");
    assert!(child_completed < parent_result_completed);
    Ok::<_, bubus::Error>(())
}

#[tokio::test]
async fn completed_fires_once_per_middleware_instance_across_forwarded_buses()
-> Result<(), bubus::Error> {
    let log = Recorder::new();
    let shared = Recording::new("shared", &log);
    let bus_a = EventBus::builder("SharedA")
        .middleware(shared.clone())
        .build();
    let bus_b = EventBus::builder("SharedB")
        .middleware(shared.clone())
        .build();
    bus_a.forward_to(&bus_b);
    bus_a.on_with(
        |_: EventHandle<UserActionEvent>| "a".to_owned(),
        named("handler_a"),
    );
    bus_b.on_with(
        |_: EventHandle<UserActionEvent>| "b".to_owned(),
        named("handler_b"),
    );

    let event = bus_a.dispatch(action("forwarded"))?;
    event.clone().await?;

    let completed: Vec<_> = shared
        .hooks()
        .into_iter()
        .filter(|h| {
            matches!(h, Hook::Event { event_id, status: EventStatus::Completed, .. }
                if *event_id == event.event_id())
        })
        .collect();
    assert_eq!(completed.len(), 1, "{completed:?}");
    // Each bus reports the event pending (when it starts processing it) and its own results.
    let pending_on: Vec<String> = shared
        .hooks()
        .into_iter()
        .filter_map(|h| match h {
            Hook::Event {
                status: EventStatus::Pending,
                bus,
                ..
            } => Some(bus),
            _ => None,
        })
        .collect();
    assert_eq!(pending_on, [bus_a.label(), bus_b.label()]);
    for name in ["handler_a", "handler_b"] {
        assert_eq!(
            shared
                .result_transitions(name)
                .into_iter()
                .map(|(s, _)| s)
                .collect::<Vec<_>>(),
            [
                EventStatus::Pending,
                EventStatus::Started,
                EventStatus::Completed
            ],
            "{name}"
        );
    }
    Ok::<_, bubus::Error>(())
}

#[tokio::test]
async fn separate_middlewares_on_forwarded_buses_each_see_their_own_bus() -> Result<(), bubus::Error>
{
    let log = Recorder::new();
    let mw_a = Recording::new("a", &log);
    let mw_b = Recording::new("b", &log);
    let bus_a = EventBus::builder("MiddlewareForwardA")
        .middleware(mw_a.clone())
        .build();
    let bus_b = EventBus::builder("MiddlewareForwardB")
        .middleware(mw_b.clone())
        .build();
    let target = bus_b.clone();
    let handler_a = bus_a
        .on(move |event: AnyEvent| target.dispatch(event).map(drop).map_err(bubus::Error::from));
    let handler_b = bus_b.on(|_: EventHandle<UserActionEvent>| "ok".to_owned());

    let event = bus_a.dispatch(action("forward"))?;
    event.clone().await?;

    let a_handler = handler_a.id().to_string();
    let b_handler = handler_b.id().to_string();
    assert_eq!(
        mw_a.result_statuses_by_handler_id(&a_handler).len(),
        3,
        "a sees its handler"
    );
    assert!(mw_a.result_statuses_by_handler_id(&b_handler).is_empty());
    assert_eq!(mw_b.result_statuses_by_handler_id(&b_handler).len(), 3);
    assert!(mw_b.result_statuses_by_handler_id(&a_handler).is_empty());
    for mw in [&mw_a, &mw_b] {
        let completed = mw
            .event_statuses(event.event_id())
            .into_iter()
            .filter(|s| *s == EventStatus::Completed)
            .count();
        assert_eq!(completed, 1, "{}", mw.name);
    }
    // Each hears of the completion from its own bus.
    assert!(mw_b.hooks().iter().any(|h| matches!(h,
        Hook::Event { status: EventStatus::Completed, bus, .. } if bus == bus_b.label())));
    Ok::<_, bubus::Error>(())
}

#[tokio::test]
async fn handler_change_hooks_cover_typed_string_and_wildcard_registrations()
-> Result<(), bubus::Error> {
    let log = Recorder::new();
    let mw = Recording::new("mw", &log);
    let bus = EventBus::builder("MiddlewareHookPatternParityBus")
        .middleware(mw.clone())
        .build();

    let typed = bus.on(|_: EventHandle<MiddlewarePatternEvent>| "class-result".to_owned());
    let string = bus.on_pattern("MiddlewarePatternEvent", |_: AnyEvent| {
        json!("string-result")
    });
    let wildcard = bus.on_pattern("*", |event: AnyEvent| {
        json!(format!("wildcard:{}", event.event_type()))
    });
    let expected = [
        (typed.id().to_string(), "MiddlewarePatternEvent"),
        (string.id().to_string(), "MiddlewarePatternEvent"),
        (wildcard.id().to_string(), "*"),
    ];
    let changes = |registered: bool| -> Vec<(String, String)> {
        mw.hooks()
            .into_iter()
            .filter_map(|h| match h {
                Hook::Handler {
                    handler_id,
                    pattern,
                    bus_id,
                    registered: r,
                } if r == registered => {
                    assert_eq!(bus_id, bus.id());
                    Some((handler_id, pattern))
                }
                _ => None,
            })
            .collect()
    };
    let as_owned = |e: &[(String, &str)]| -> Vec<(String, String)> {
        e.iter()
            .map(|(id, p)| (id.clone(), (*p).to_owned()))
            .collect()
    };
    assert_eq!(changes(true), as_owned(&expected));

    let event = bus.dispatch(
        EventHandle::new(MiddlewarePatternEvent {}).with_event_timeout(Duration::from_millis(200)),
    )?;
    event.clone().await?;
    assert_eq!(
        mw.event_statuses(event.event_id()),
        [
            EventStatus::Pending,
            EventStatus::Started,
            EventStatus::Completed
        ]
    );
    for (id, _) in &expected {
        assert_eq!(
            mw.result_statuses_by_handler_id(id),
            [
                EventStatus::Pending,
                EventStatus::Started,
                EventStatus::Completed
            ]
        );
    }
    let values: Vec<Value> = event
        .event_results()
        .into_iter()
        .map(|r| r.result_json)
        .collect();
    assert_eq!(
        values,
        [
            json!("class-result"),
            json!("string-result"),
            json!("wildcard:MiddlewarePatternEvent")
        ]
    );

    assert!(bus.off(&typed));
    assert!(bus.off_by_id(string.id()));
    assert_eq!(bus.off_pattern("*"), 1);
    assert!(!bus.off(&typed), "already removed: no second hook");
    assert_eq!(changes(false), as_owned(&expected));
    Ok::<_, bubus::Error>(())
}

#[tokio::test]
async fn handler_change_hooks_cover_dynamic_events_and_wildcards() -> Result<(), bubus::Error> {
    let log = Recorder::new();
    let mw = Recording::new("mw", &log);
    let bus = EventBus::builder("MiddlewareHookStringPatternParityBus")
        .middleware(mw.clone())
        .build();
    let string = bus.on_pattern("AdHocPatternEvent", |event: AnyEvent| {
        json!(format!("string:{}", event.event_type()))
    });
    let wildcard = bus.on_pattern("*", |event: AnyEvent| {
        json!(format!("wildcard:{}", event.event_type()))
    });

    let event = bus.dispatch(DynEvent::new("AdHocPatternEvent", json!({})).unwrap())?;
    event.clone().await?;
    for id in [string.id(), wildcard.id()] {
        assert_eq!(
            mw.result_statuses_by_handler_id(id.as_str()),
            [
                EventStatus::Pending,
                EventStatus::Started,
                EventStatus::Completed
            ]
        );
    }
    bus.off(&string);
    bus.off(&wildcard);
    assert_eq!(
        log.entries()
            .iter()
            .filter(|l| l.starts_with("mw:handler"))
            .collect::<Vec<_>>(),
        [
            "mw:handler:registered",
            "mw:handler:registered",
            "mw:handler:unregistered",
            "mw:handler:unregistered"
        ]
    );
    Ok::<_, bubus::Error>(())
}

/// Dispatches a follow-up event from its hooks: an `AuditEvent` when a `UserActionEvent`
/// completes, and a `ResultSeenEvent` when one of its results completes.
struct Dispatching {
    dispatched: AtomicUsize,
}

impl Middleware for Dispatching {
    fn on_event_change(&self, bus: &EventBus, event: &AnyEvent, status: EventStatus) {
        if status == EventStatus::Completed && event.event_type() == "UserActionEvent" {
            let audit = DynEvent::new("AuditEvent", json!({"of": event.event_id()})).unwrap();
            bus.dispatch(audit).expect("dispatch from a hook");
            self.dispatched.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn on_event_result_change(
        &self,
        bus: &EventBus,
        event: &AnyEvent,
        _result: &EventResult<Value>,
        status: EventStatus,
    ) {
        if status == EventStatus::Completed && event.event_type() == "UserActionEvent" {
            let seen = DynEvent::new("ResultSeenEvent", json!({})).unwrap();
            bus.dispatch(seen).expect("dispatch from a hook");
            self.dispatched.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[tokio::test]
async fn a_middleware_may_dispatch_from_its_hooks() -> Result<(), bubus::Error> {
    let mw = Arc::new(Dispatching {
        dispatched: AtomicUsize::new(0),
    });
    let bus = EventBus::builder("DispatchFromHookBus")
        .middleware(mw.clone())
        .build();
    let audits = Recorder::new();
    let a = audits.clone();
    bus.on_pattern("AuditEvent", move |event: AnyEvent| {
        a.push(event.to_json()["of"].as_str().unwrap_or_default());
    });
    let r = audits.clone();
    bus.on_pattern("ResultSeenEvent", move |_: AnyEvent| r.push("result-seen"));
    bus.on(|_: EventHandle<UserActionEvent>| "ok".to_owned());

    let event = bus.dispatch(action("audited"))?;
    event.clone().await?;
    assert!(bus.wait_until_idle(Some(Duration::from_secs(5))).await);

    assert_eq!(mw.dispatched.load(Ordering::SeqCst), 2);
    assert_eq!(
        audits.entries(),
        ["result-seen".to_owned(), event.event_id().to_string()]
    );
    Ok::<_, bubus::Error>(())
}

/// Dispatches from the handler-change hook (what `AutoHandlerChangeEventMiddleware` does).
struct OnRegister;

impl Middleware for OnRegister {
    fn on_bus_handlers_change(&self, bus: &EventBus, handler: &EventHandler, registered: bool) {
        if registered && handler.event_pattern() != "Registered" {
            let event = DynEvent::new("Registered", json!({"pattern": handler.event_pattern()}));
            bus.dispatch(event.unwrap()).expect("dispatch from a hook");
        }
    }
}

#[tokio::test]
async fn a_middleware_may_dispatch_from_the_handler_change_hook() -> Result<(), bubus::Error> {
    let bus = EventBus::builder("RegisterHookBus")
        .middleware(Arc::new(OnRegister))
        .build();
    let seen = Recorder::new();
    let s = seen.clone();
    bus.on_pattern("Registered", move |event: AnyEvent| {
        s.push(event.to_json()["pattern"].as_str().unwrap_or_default());
    });
    bus.on(|_: EventHandle<UserActionEvent>| "ok".to_owned());
    assert!(bus.wait_until_idle(Some(Duration::from_secs(5))).await);
    assert_eq!(seen.entries(), ["UserActionEvent"]);
    Ok(())
}

/// Remembers the events it heard complete.
#[derive(Default)]
struct CompletedSet(Mutex<std::collections::HashSet<uuid::Uuid>>);

impl Middleware for CompletedSet {
    fn on_event_change(&self, _bus: &EventBus, event: &AnyEvent, status: EventStatus) {
        if status == EventStatus::Completed {
            self.0.lock().insert(event.event_id());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn middlewares_hear_of_a_completion_before_its_awaiters_resume() -> Result<(), bubus::Error> {
    let seen = Arc::new(CompletedSet::default());
    let bus = EventBus::builder("CompletedFirstBus")
        .middleware(seen.clone())
        .build();
    bus.on(|_: EventHandle<UserActionEvent>| async {
        tokio::task::yield_now().await;
        "ok".to_owned()
    });
    for i in 0..300 {
        let event = bus.dispatch(action(&i.to_string()))?;
        event.clone().await?;
        assert!(
            seen.0.lock().contains(&event.event_id()),
            "event {i}: awaited before the completed hook ran"
        );
    }
    Ok(())
}
