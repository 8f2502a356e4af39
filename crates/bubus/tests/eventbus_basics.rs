//! Ports the core bus behaviour of the reference suites `tests/test_eventbus.py` (bus basics,
//! enqueueing, handler registration, sync/async/method handlers, FIFO, error handling, event type
//! override, forwarding through a hierarchy and around a cycle) and
//! `bubus-ts/tests/eventbus.test.ts` (defaults, lifecycle, history bounds, wildcard order).

use std::collections::HashSet;
use std::future::IntoFuture;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bubus::bus::HistoryFull;
use bubus::handler::method;
use bubus::{
    AnyEvent, DispatchError, DynEvent, Event, EventBus, EventHandle, EventStatus, HandlerError,
    error::HandlerErrorKind, error::ResultError, event::EventConcurrency, event::HandlerCompletion,
    event::HandlerConcurrency, result::ResultStatus,
};
use bubus_test_support::Recorder;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct UserActionEvent {
    action: String,
    user_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct SystemEventModel {
    name: String,
    #[serde(default)]
    details: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = u32)]
struct OrderedEvent {
    order: u32,
}

fn user_action(action: &str) -> UserActionEvent {
    UserActionEvent {
        action: action.into(),
        user_id: "e692b6cb-ae63-773b-8557-3218f7ce5ced".into(),
    }
}

fn system_event(name: &str) -> SystemEventModel {
    SystemEventModel {
        name: name.into(),
        details: serde_json::Value::Null,
    }
}

/// A closed gate handlers can wait on; the test opens it once for everyone.
fn gate() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}

async fn pass(gate: &watch::Receiver<bool>) {
    let mut gate = gate.clone();
    let _ = gate.wait_for(|open| *open).await;
}

// ---------------------------------------------------------------------------------------------
// Bus basics
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn new_bus_has_reference_defaults_and_nothing_registered() {
    let bus = EventBus::new("DefaultsBus");
    let config = bus.config();

    assert_eq!(bus.name(), "DefaultsBus");
    assert_eq!(config.max_history_size, Some(100));
    assert!(!config.max_history_drop);
    assert_eq!(config.event_concurrency, EventConcurrency::BusSerial);
    assert_eq!(config.event_handler_concurrency, HandlerConcurrency::Serial);
    assert_eq!(config.event_handler_completion, HandlerCompletion::All);
    assert_eq!(config.event_timeout, Some(Duration::from_secs(60)));
    assert!(bus.event_history().is_empty());
    assert!(bus.handlers().is_empty(), "no default logger handler");
    assert!(!bus.is_stopped());
    assert!(bus.wait_until_idle(Some(Duration::from_secs(1))).await);

    // The reference names an unnamed bus "EventBus".
    assert_eq!(EventBus::new("").name(), "EventBus");
}

#[test]
fn custom_id_sets_the_label_suffix() {
    let id: uuid::Uuid = "018f8e40-1234-7000-8000-000000001234".parse().unwrap();
    let bus = EventBus::builder("CustomIdBus").id(id).build();

    assert_eq!(bus.id(), id);
    assert_eq!(bus.label(), "CustomIdBus#1234");
}

#[test]
fn builder_applies_custom_options() {
    let bus = EventBus::builder("CustomBus")
        .max_history_size(Some(500))
        .history_full(HistoryFull::Reject)
        .event_concurrency(EventConcurrency::Parallel)
        .event_handler_concurrency(HandlerConcurrency::Serial)
        .event_handler_completion(HandlerCompletion::First)
        .event_timeout(Some(Duration::from_secs(30)))
        .build();
    let config = bus.config();
    assert_eq!(config.max_history_size, Some(500));
    assert_eq!(config.event_concurrency, EventConcurrency::Parallel);
    assert_eq!(config.event_handler_completion, HandlerCompletion::First);
    assert_eq!(config.event_timeout, Some(Duration::from_secs(30)));

    let unbounded = EventBus::builder("Unlimited")
        .max_history_size(None)
        .event_timeout(None)
        .build();
    assert_eq!(unbounded.config().max_history_size, None);
    assert_eq!(unbounded.config().event_timeout, None);
}

#[tokio::test]
async fn bus_starts_on_first_dispatch_and_stop_is_final_and_idempotent() {
    let bus = EventBus::new("AutoStartBus");
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&handled);
    bus.on(move |_: EventHandle<UserActionEvent>| {
        counter.fetch_add(1, Ordering::SeqCst);
        String::from("ok")
    });

    bus.dispatch(user_action("test")).unwrap();
    assert!(bus.wait_until_idle(None).await);
    assert_eq!(handled.load(Ordering::SeqCst), 1);

    bus.stop(None).await;
    assert!(bus.is_stopped());
    assert!(matches!(
        bus.dispatch(user_action("late")),
        Err(DispatchError::Stopped { .. })
    ));
    bus.stop(None).await; // idempotent
    assert!(bus.is_stopped());
    // A stopped bus is idle: waiting never hangs.
    assert!(bus.wait_until_idle(Some(Duration::from_secs(1))).await);
    assert_eq!(handled.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn wait_until_idle_times_out_while_a_handler_is_still_running() {
    let bus = EventBus::new("WaitForIdleTimeoutBus");
    let (open, closed) = gate();
    bus.on(move |_: EventHandle<UserActionEvent>| {
        let closed = closed.clone();
        async move {
            pass(&closed).await;
            String::from("released")
        }
    });

    let event = bus.dispatch(user_action("slow")).unwrap();
    let start = Instant::now();
    assert!(!bus.wait_until_idle(Some(Duration::from_millis(50))).await);
    assert!(start.elapsed() >= Duration::from_millis(50));
    assert!(
        !event.is_complete(),
        "timing out must not disturb the event"
    );

    open.send_replace(true);
    assert!(bus.wait_until_idle(None).await);
    assert_eq!(event.event_result().await.unwrap(), "released");
    // Idle again: a second wait returns at once.
    assert!(bus.wait_until_idle(Some(Duration::ZERO)).await);
}

// ---------------------------------------------------------------------------------------------
// Enqueueing
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dispatch_returns_a_pending_handle_and_awaiting_it_completes_the_event() {
    let bus = EventBus::new("LifecycleBus");

    let queued = bus.dispatch(user_action("login")).unwrap();
    assert_eq!(queued.event_type(), "UserActionEvent");
    assert_eq!(queued.action, "login");
    assert_eq!(queued.user_id, "e692b6cb-ae63-773b-8557-3218f7ce5ced");
    assert!(!queued.event_id().is_nil());
    assert_eq!(queued.event_status(), EventStatus::Pending);
    assert_eq!(queued.event_started_at(), None);
    assert_eq!(queued.event_completed_at(), None);
    assert_eq!(queued.event_path(), [bus.label()]);
    assert_eq!(queued.event_pending_bus_count(), 1);

    let processed = queued.await.unwrap();
    assert_eq!(processed.event_status(), EventStatus::Completed);
    assert!(processed.event_started_at().is_some());
    assert!(processed.event_completed_at().is_some());
    assert!(processed.event_created_at() <= processed.event_completed_at().unwrap());
    assert_eq!(processed.event_pending_bus_count(), 0);
    assert!(
        processed.event_results().is_empty(),
        "no handlers, no results"
    );
    assert_eq!(bus.event_history().len(), 1);
}

#[test]
fn dispatch_outside_a_runtime_is_refused_and_enqueues_nothing() {
    let bus = EventBus::new("NoRuntimeBus");
    let refused = bus.dispatch(system_event("startup"));
    assert!(matches!(refused, Err(DispatchError::NoRuntime { .. })));
    assert!(bus.event_history().is_empty());
    assert_eq!(bus.queue_len(), 0);
}

#[tokio::test]
async fn emit_is_an_alias_of_dispatch_and_keeps_the_event_identity() {
    let bus = EventBus::new("EmitAliasBus");
    let handled = Recorder::new();
    let log = handled.clone();
    bus.on(move |e: EventHandle<UserActionEvent>| {
        log.push(e.event_id());
        String::from("handled")
    });

    let event = EventHandle::new(user_action("alias"));
    let queued = bus.emit(&event).unwrap();
    assert_eq!(queued, event);

    let completed = queued.await.unwrap();
    assert_eq!(completed.event_status(), EventStatus::Completed);
    assert_eq!(handled.entries(), [event.event_id().to_string()]);
    assert!(completed.event_path().contains(&bus.label().to_owned()));
}

#[tokio::test]
async fn status_goes_pending_started_completed() {
    let bus = EventBus::new("StatusBus");
    let seen = Recorder::new();
    let log = seen.clone();
    bus.on(move |e: EventHandle<UserActionEvent>| {
        log.push(e.event_status());
        String::from("done")
    });

    let event = bus.dispatch(user_action("status")).unwrap();
    assert_eq!(event.event_status(), EventStatus::Pending);
    let event = event.await.unwrap();
    assert_eq!(seen.entries(), ["started"]);
    assert_eq!(event.event_status(), EventStatus::Completed);
    assert!(event.event_started_at().unwrap() <= event.event_completed_at().unwrap());
}

#[tokio::test]
async fn event_without_handlers_completes_with_no_results() {
    let bus = EventBus::new("NoHandlerBus");
    let event = bus
        .dispatch(DynEvent::new("OrphanEvent", json!({})).unwrap())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(event.event_status(), EventStatus::Completed);
    assert!(event.event_results().is_empty());
    assert!(event.event_started_at().is_some());
}

#[tokio::test]
async fn unbounded_history_never_refuses_dispatch() {
    let bus = EventBus::builder("NoLimitBus")
        .max_history_size(None)
        .build();
    let processed = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&processed);
    bus.on_pattern("SlowEvent", move |_: AnyEvent| {
        let counter = Arc::clone(&counter);
        async move {
            tokio::task::yield_now().await;
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });

    let events: Vec<_> = (0..150)
        .map(|_| {
            bus.dispatch(DynEvent::new("SlowEvent", json!({})).unwrap())
                .unwrap()
        })
        .collect();
    for event in futures::future::join_all(events.into_iter().map(IntoFuture::into_future)).await {
        event.unwrap();
    }
    assert!(bus.wait_until_idle(None).await);
    assert_eq!(processed.load(Ordering::SeqCst), 150);
    assert_eq!(bus.event_history().len(), 150);
    assert_eq!(bus.events_completed().len(), 150);
}

#[tokio::test]
async fn zero_history_keeps_in_flight_events_and_forgets_them_on_completion() {
    let bus = EventBus::builder("ZeroHistoryBus")
        .max_history_size(Some(0))
        .build();
    let started = Arc::new(Notify::new());
    let (open, closed) = gate();
    let signal = Arc::clone(&started);
    bus.on_pattern("SlowEvent", move |_: AnyEvent| {
        let (signal, closed) = (Arc::clone(&signal), closed.clone());
        async move {
            signal.notify_one();
            pass(&closed).await;
        }
    });

    let slow = || DynEvent::new("SlowEvent", json!({})).unwrap();
    let first = bus.dispatch(slow()).unwrap();
    started.notified().await;
    // Zero history never refuses: queueing stays unbounded.
    let rest: Vec<_> = (0..24).map(|_| bus.dispatch(slow()).unwrap()).collect();

    assert!(bus.find_event_by_id(first.event_id()).is_some());
    assert!(bus.find_event_by_id(rest[0].event_id()).is_some());
    assert_eq!(bus.queue_len(), 24);

    open.send_replace(true);
    first.await.unwrap();
    for event in rest {
        event.await.unwrap();
    }
    assert!(bus.wait_until_idle(None).await);
    assert!(bus.event_history().is_empty());
    assert_eq!(bus.queue_len(), 0);
}

#[tokio::test]
async fn history_lists_dispatched_events_in_order_by_status() {
    let bus = EventBus::new("HistoryBus");
    for i in 0..5 {
        bus.dispatch(user_action(&format!("action_{i}"))).unwrap();
    }
    assert_eq!(bus.events_pending().len(), 5);
    assert!(bus.wait_until_idle(None).await);

    let history = bus.event_history();
    let actions: Vec<String> = history
        .iter()
        .map(|e| e.downcast::<UserActionEvent>().unwrap().action.clone())
        .collect();
    assert_eq!(
        actions,
        ["action_0", "action_1", "action_2", "action_3", "action_4"]
    );
    for event in &history {
        assert_eq!(bus.find_event_by_id(event.event_id()).as_ref(), Some(event));
    }
    assert_eq!(bus.events_completed().len(), 5);
    assert!(bus.events_pending().is_empty());
    assert!(bus.events_started().is_empty());
}

/// The reference refuses every dispatch once 100 events are in history (even completed ones);
/// here completed events are evicted first, oldest first, and only a history full of unfinished
/// events refuses (see docs/ARCHITECTURE.md, "History").
#[tokio::test]
async fn full_history_evicts_completed_events_first_and_refuses_only_when_none_completed() {
    let bus = EventBus::builder("NoDropHistBus")
        .max_history_size(Some(2))
        .build();
    let (open, closed) = gate();
    bus.on(|e: EventHandle<OrderedEvent>| e.order);
    bus.on_pattern("Blocking", move |_: AnyEvent| {
        let closed = closed.clone();
        async move { pass(&closed).await }
    });

    let first = bus
        .dispatch(OrderedEvent { order: 1 })
        .unwrap()
        .await
        .unwrap();
    bus.dispatch(OrderedEvent { order: 2 })
        .unwrap()
        .await
        .unwrap();
    let third = bus.dispatch(OrderedEvent { order: 3 }).unwrap();
    assert_eq!(bus.event_history().len(), 2);
    assert!(
        bus.find_event_by_id(first.event_id()).is_none(),
        "oldest completed is evicted"
    );
    third.await.unwrap();

    // Two unfinished events fill the history: nothing can be evicted, so dispatch refuses.
    let blocking = || DynEvent::new("Blocking", json!({})).unwrap();
    let a = bus.dispatch(blocking()).unwrap();
    let b = bus.dispatch(blocking()).unwrap();
    let refused = bus.dispatch(OrderedEvent { order: 4 });
    assert!(matches!(
        refused,
        Err(DispatchError::HistoryFull {
            size: 2,
            max: 2,
            ..
        })
    ));
    assert_eq!(bus.event_history().len(), 2);

    open.send_replace(true);
    a.await.unwrap();
    b.await.unwrap();
    // Backpressure, not a dead bus.
    assert_eq!(
        bus.dispatch(OrderedEvent { order: 5 })
            .unwrap()
            .event_result()
            .await
            .unwrap(),
        5
    );
}

#[tokio::test]
async fn history_with_drop_keeps_the_most_recent_events_in_order() {
    let bus = EventBus::builder("TrimBus")
        .max_history_size(Some(5))
        .history_full(HistoryFull::DropOldest)
        .build();
    bus.on(|e: EventHandle<OrderedEvent>| e.order);

    for order in 0..10 {
        bus.dispatch(OrderedEvent { order }).unwrap();
    }
    assert!(bus.wait_until_idle(None).await);

    let orders: Vec<u32> = bus
        .event_history()
        .iter()
        .map(|e| e.downcast::<OrderedEvent>().unwrap().order)
        .collect();
    assert!(orders.len() <= 5, "history kept {orders:?}");
    assert!(orders.windows(2).all(|w| w[0] < w[1]), "{orders:?}");
    assert_eq!(orders.last(), Some(&9));
}

// ---------------------------------------------------------------------------------------------
// Handler registration
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn handlers_register_by_type_by_name_and_by_wildcard() {
    let bus = EventBus::new("RegistrationBus");
    let log = Recorder::new();

    let l = log.clone();
    bus.on_pattern("UserActionEvent", move |e: EventHandle<UserActionEvent>| {
        l.push(format!("specific:{}", e.action));
        String::from("user_handled")
    });
    let l = log.clone();
    bus.on(move |e: EventHandle<SystemEventModel>| {
        l.push(format!("model:{}", e.name));
        String::from("system_handled")
    });
    let l = log.clone();
    bus.on(move |e: AnyEvent| l.push(format!("universal:{}", e.event_type())));

    let user = bus.dispatch(user_action("login")).unwrap();
    let system = bus.dispatch(system_event("startup")).unwrap();
    assert!(bus.wait_until_idle(None).await);

    assert_eq!(
        log.entries(),
        [
            "specific:login",
            "universal:UserActionEvent",
            "model:startup",
            "universal:SystemEventModel",
        ]
    );
    assert_eq!(user.event_result().await.unwrap(), "user_handled");
    assert_eq!(system.event_result().await.unwrap(), "system_handled");
}

/// A typed handler, a dynamic handler on the same type name and a wildcard handler all see a
/// dynamic event of that type; the typed one gets it decoded. Exact-type handlers run first, in
/// registration order, then wildcard handlers — even one registered first.
#[tokio::test]
async fn exact_type_handlers_run_before_wildcards_whatever_the_registration_order() {
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    struct DifferentNameFromClass {
        value: u32,
    }

    let bus = EventBus::new("MatcherBus");
    let seen = Recorder::new();
    let l = seen.clone();
    bus.on(move |e: AnyEvent| l.push(format!("wildcard:{}", e.event_type())));
    let l = seen.clone();
    bus.on(move |e: EventHandle<DifferentNameFromClass>| {
        l.push(format!("class:{}:{}", e.event_type(), e.value))
    });
    let l = seen.clone();
    bus.on_pattern("DifferentNameFromClass", move |e: AnyEvent| {
        l.push(format!("string:{}", e.event_type()))
    });

    bus.dispatch(DynEvent::new("DifferentNameFromClass", json!({"value": 7})).unwrap())
        .unwrap()
        .await
        .unwrap();

    assert_eq!(
        seen.entries(),
        [
            "class:DifferentNameFromClass:7",
            "string:DifferentNameFromClass",
            "wildcard:DifferentNameFromClass",
        ]
    );
    let for_type = bus
        .handlers()
        .into_iter()
        .filter(|h| h.event_pattern() == "DifferentNameFromClass")
        .count();
    assert_eq!(for_type, 2);
}

#[tokio::test]
async fn dynamic_payload_that_does_not_decode_fails_only_the_typed_handler() {
    let bus = EventBus::new("DecodeBus");
    bus.on(|e: EventHandle<OrderedEvent>| e.order);
    bus.on_pattern("OrderedEvent", |_: AnyEvent| json!("raw"));

    let event = bus
        .dispatch(DynEvent::new("OrderedEvent", json!({"order": "not a number"})).unwrap())
        .unwrap()
        .await
        .unwrap();

    let results = event.event_results();
    assert_eq!(results.len(), 2);
    let error = results[0]
        .error
        .as_ref()
        .expect("typed handler failed to decode");
    assert_eq!(error.kind(), HandlerErrorKind::PayloadDecode);
    assert!(error.message().contains("order"), "{error}");
    assert_eq!(results[1].status, ResultStatus::Completed);
    assert_eq!(results[1].result, Some(json!("raw")));

    // A payload that decodes reaches the typed handler as the struct.
    let ok = bus
        .dispatch(DynEvent::new("OrderedEvent", json!({"order": 4})).unwrap())
        .unwrap();
    assert_eq!(ok.results().list().await.unwrap(), [json!(4), json!("raw")]);
}

#[tokio::test]
async fn sync_and_async_handlers_both_run_and_return_values() {
    let bus = EventBus::new("SyncAsyncBus");
    fn sync_handler(_: EventHandle<UserActionEvent>) -> String {
        "sync".into()
    }
    async fn async_handler(_: EventHandle<UserActionEvent>) -> String {
        tokio::task::yield_now().await;
        "async".into()
    }
    bus.on(sync_handler);
    bus.on(async_handler);
    assert_eq!(bus.handlers().len(), 2);

    let event = bus.dispatch(user_action("both")).unwrap();
    assert_eq!(event.event_results_list().await.unwrap(), ["sync", "async"]);
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
enum MethodResult {
    Processor {
        processor: String,
        value: u32,
        action: String,
    },
    Text(String),
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = MethodResult)]
struct MethodCallEvent {
    action: String,
}

struct EventProcessor {
    name: String,
    value: u32,
    log: Recorder,
}

impl EventProcessor {
    fn sync_method_handler(self: Arc<Self>, event: EventHandle<MethodCallEvent>) -> MethodResult {
        self.log.push(format!("{}_sync", self.name));
        MethodResult::Processor {
            processor: self.name.clone(),
            value: self.value,
            action: event.action.clone(),
        }
    }

    async fn async_method_handler(
        self: Arc<Self>,
        event: EventHandle<MethodCallEvent>,
    ) -> MethodResult {
        tokio::task::yield_now().await;
        self.log.push(format!("{}_async", self.name));
        MethodResult::Processor {
            processor: self.name.clone(),
            value: self.value * 2,
            action: event.action.clone(),
        }
    }

    /// The Rust counterpart of a class/static method: an associated function.
    fn associated_handler(_: EventHandle<MethodCallEvent>) -> MethodResult {
        MethodResult::Text("Handled by EventProcessor".into())
    }
}

#[tokio::test]
async fn methods_of_shared_services_and_associated_functions_are_handlers() {
    let bus = EventBus::new("MethodBus");
    let log = Recorder::new();
    let processor = |name: &str, value| {
        Arc::new(EventProcessor {
            name: name.into(),
            value,
            log: log.clone(),
        })
    };
    let p1 = processor("Processor1", 10);
    let p2 = processor("Processor2", 20);

    let h = bus.on(method(&p1, EventProcessor::sync_method_handler));
    assert!(
        h.handler_name()
            .ends_with("EventProcessor::sync_method_handler"),
        "{}",
        h.handler_name()
    );
    bus.on(method(&p1, EventProcessor::async_method_handler));
    // The same method of another instance is a separate registration with its own id.
    let h2 = bus.on(method(&p2, EventProcessor::sync_method_handler));
    assert_ne!(h.id(), h2.id());
    let assoc = bus.on(EventProcessor::associated_handler);
    assert!(
        assoc
            .handler_name()
            .ends_with("EventProcessor::associated_handler")
    );

    let event = bus
        .dispatch(MethodCallEvent {
            action: "test_methods".into(),
        })
        .unwrap();
    let results = event.event_results_list().await.unwrap();

    assert_eq!(
        log.entries(),
        ["Processor1_sync", "Processor1_async", "Processor2_sync"]
    );
    let processor_result = |processor: &str, value| MethodResult::Processor {
        processor: processor.into(),
        value,
        action: "test_methods".into(),
    };
    assert_eq!(
        results,
        [
            processor_result("Processor1", 10),
            processor_result("Processor1", 20),
            processor_result("Processor2", 20),
            MethodResult::Text("Handled by EventProcessor".into()),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Forwarding loop prevention
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circular_forwarding_processes_the_event_once_per_bus() {
    let bus_a = EventBus::new("ForwardBusA");
    let bus_b = EventBus::new("ForwardBusB");
    let bus_c = EventBus::new("ForwardBusC");
    let calls = Recorder::new();

    for (bus, name) in [(&bus_a, "A"), (&bus_b, "B"), (&bus_c, "C")] {
        let log = calls.clone();
        bus.on(move |_: EventHandle<UserActionEvent>| {
            log.push(name);
            format!("handled-{name}")
        });
    }
    // A -> B -> C -> A: the cycle is broken by the event's path.
    for (from, to) in [(&bus_a, &bus_b), (&bus_b, &bus_c), (&bus_c, &bus_a)] {
        let to = to.clone();
        from.on(move |e: AnyEvent| to.dispatch(e));
    }

    let event = bus_a.dispatch(user_action("loop")).unwrap().await.unwrap();
    for bus in [&bus_a, &bus_b, &bus_c] {
        assert!(bus.wait_until_idle(None).await);
    }
    assert_eq!(calls.entries(), ["A", "B", "C"]);
    assert_eq!(
        event.event_path(),
        [bus_a.label(), bus_b.label(), bus_c.label()]
    );
    assert_eq!(
        event.event_results_list().await.unwrap(),
        ["handled-A", "handled-B", "handled-C"]
    );

    // Entering the cycle elsewhere visits every bus once, starting there.
    calls.clear();
    let event = bus_b.dispatch(user_action("loop2")).unwrap().await.unwrap();
    assert_eq!(calls.entries(), ["B", "C", "A"]);
    assert_eq!(
        event.event_path(),
        [bus_b.label(), bus_c.label(), bus_a.label()]
    );
}

#[tokio::test]
async fn events_bubble_up_a_forwarding_hierarchy() {
    let parent = EventBus::new("ParentBus");
    let child = EventBus::new("ChildBus");
    let subchild = EventBus::new("SubchildBus");
    let seen = Recorder::new();
    for bus in [&parent, &child, &subchild] {
        let (log, name) = (seen.clone(), bus.name().to_owned());
        bus.on(move |e: AnyEvent| log.push(format!("{name}:{}", e.event_type())));
    }
    // subchild -> child -> parent
    for (from, to) in [(&child, &parent), (&subchild, &child)] {
        let to = to.clone();
        from.on(move |e: AnyEvent| to.dispatch(e));
    }

    let emitted = subchild.dispatch(user_action("bubble_test")).unwrap();
    let bubbled = emitted.clone().await.unwrap();
    assert_eq!(
        seen.entries(),
        [
            "SubchildBus:UserActionEvent",
            "ChildBus:UserActionEvent",
            "ParentBus:UserActionEvent",
        ]
    );
    assert_eq!(
        bubbled.event_path(),
        [subchild.label(), child.label(), parent.label()]
    );
    // The same event travelled, not copies of it.
    let at_parent = parent.find_event_by_id(emitted.event_id()).unwrap();
    assert_eq!(
        at_parent.downcast::<UserActionEvent>().unwrap().action,
        "bubble_test"
    );

    // Dispatched in the middle, it only goes up.
    seen.clear();
    let middle = child
        .dispatch(system_event("middle_test"))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        seen.entries(),
        ["ChildBus:SystemEventModel", "ParentBus:SystemEventModel"]
    );
    assert_eq!(middle.event_path(), [child.label(), parent.label()]);
}

// ---------------------------------------------------------------------------------------------
// FIFO ordering
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn events_are_processed_fifo_whatever_their_handlers_take() {
    let bus = EventBus::new("FifoBus");
    let finished = Recorder::new();
    let starts = Arc::new(parking_lot::Mutex::new(Vec::new()));

    let (log, start_log) = (finished.clone(), Arc::clone(&starts));
    bus.on(move |e: EventHandle<OrderedEvent>| {
        let (log, start_log) = (log.clone(), Arc::clone(&start_log));
        async move {
            start_log.lock().push(Instant::now());
            let delay = if e.order % 2 == 0 { 50 } else { 10 };
            tokio::time::sleep(Duration::from_millis(delay)).await;
            log.push(e.order);
            e.order
        }
    });

    for order in 0..20 {
        bus.dispatch(OrderedEvent { order }).unwrap();
    }
    assert!(bus.wait_until_idle(None).await);

    let expected: Vec<String> = (0..20).map(|i| i.to_string()).collect();
    assert_eq!(finished.entries(), expected);
    let starts = starts.lock();
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "each event starts after the previous one ends"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_holds_across_threads() {
    let bus = EventBus::new("ThreadedFifoBus");
    let finished = Recorder::new();
    let log = finished.clone();
    bus.on(move |e: EventHandle<OrderedEvent>| {
        let log = log.clone();
        async move {
            for _ in 0..e.order % 3 {
                tokio::task::yield_now().await;
            }
            log.push(e.order);
            e.order
        }
    });

    for order in 0..50 {
        bus.dispatch(OrderedEvent { order }).unwrap();
    }
    assert!(bus.wait_until_idle(None).await);
    let expected: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    assert_eq!(finished.entries(), expected);
}

// ---------------------------------------------------------------------------------------------
// Error handling
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_failing_handler_is_recorded_and_does_not_stop_the_others() {
    let bus = EventBus::new("ErrorBus");
    let log = Recorder::new();

    async fn failing_handler(_: EventHandle<UserActionEvent>) -> Result<String, HandlerError> {
        Err(HandlerError::new(
            "ValueError",
            "Expected to fail - testing error handling in event handlers",
        ))
    }
    let l = log.clone();
    bus.on(move |_: EventHandle<UserActionEvent>| {
        l.push("handler_1_ok");
        String::from("result_1")
    });
    bus.on(failing_handler);
    let l = log.clone();
    bus.on(move |_: EventHandle<UserActionEvent>| {
        l.push("handler_3_ok");
        String::from("result_3")
    });

    let event = bus.dispatch(user_action("test")).unwrap().await.unwrap();
    assert_eq!(event.event_status(), EventStatus::Completed);
    assert_eq!(log.entries(), ["handler_1_ok", "handler_3_ok"]);

    let results = event.event_results();
    let failed = results
        .iter()
        .find(|r| r.handler_name.ends_with("::failing_handler"))
        .unwrap();
    assert_eq!(failed.status, ResultStatus::Error);
    let error = failed.error.as_ref().unwrap();
    assert_eq!(error.error_type(), "ValueError");
    assert!(error.message().contains("Expected to fail"));
    assert_eq!(
        results
            .iter()
            .filter(|r| r.status == ResultStatus::Completed)
            .count(),
        2
    );
    assert_eq!(event.event_errors().len(), 1);
    assert_eq!(
        event.results().ignore_errors().list().await.unwrap(),
        ["result_1", "result_3"]
    );
}

#[tokio::test]
async fn event_result_with_several_failures_returns_every_error() {
    let bus = EventBus::new("MultiErrorBus");
    bus.on(
        |_: EventHandle<UserActionEvent>| -> Result<String, HandlerError> {
            Err(HandlerError::new("ValueError", "first failure"))
        },
    );
    bus.on(
        |_: EventHandle<UserActionEvent>| -> Result<String, HandlerError> {
            Err(HandlerError::new("RuntimeError", "second failure"))
        },
    );

    let event = bus.dispatch(user_action("test")).unwrap();
    match event.event_result().await {
        Err(ResultError::Handlers { errors, .. }) => {
            let types: HashSet<&str> = errors.iter().map(|e| e.error_type()).collect();
            assert_eq!(types, HashSet::from(["ValueError", "RuntimeError"]));
        }
        other => panic!("expected both errors, got {other:?}"),
    }
}

#[tokio::test]
async fn event_result_with_one_failure_returns_the_original_error() {
    let bus = EventBus::new("SingleErrorBus");
    bus.on(
        |e: EventHandle<UserActionEvent>| -> Result<String, std::num::ParseIntError> {
            e.action.parse::<u32>().map(|n| n.to_string())
        },
    );

    let event = bus.dispatch(user_action("single failure")).unwrap();
    match event.event_result().await {
        Err(ResultError::Handler(error)) => {
            assert_eq!(error.error_type(), "ParseIntError");
            let source = std::error::Error::source(&error).expect("the original error is kept");
            assert!(source.is::<std::num::ParseIntError>());
        }
        other => panic!("expected the handler's error, got {other:?}"),
    }
}

/// A handler raising is the reference's failure mode; in Rust a panic is caught the same way.
#[tokio::test]
async fn a_panicking_handler_becomes_an_error_result_and_the_bus_keeps_running() {
    let bus = EventBus::new("PanicBus");
    bus.on(|e: EventHandle<OrderedEvent>| -> u32 {
        if e.order == 0 {
            panic!("handler blew up");
        }
        e.order
    });

    let first = bus
        .dispatch(OrderedEvent { order: 0 })
        .unwrap()
        .await
        .unwrap();
    let error = &first.event_errors()[0];
    assert_eq!(error.kind(), HandlerErrorKind::Panicked);
    assert_eq!(error.message(), "handler blew up");

    let second = bus.dispatch(OrderedEvent { order: 1 }).unwrap();
    assert_eq!(second.event_result().await.unwrap(), 1);
}

// ---------------------------------------------------------------------------------------------
// Batches, completion, edge cases
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_batch_of_events_can_be_awaited_together() {
    let bus = EventBus::new("BatchBus");
    let batch = [
        bus.dispatch(user_action("login")).unwrap().to_any(),
        bus.dispatch(system_event("startup")).unwrap().to_any(),
        bus.dispatch(user_action("logout")).unwrap().to_any(),
    ];
    let done = futures::future::join_all(batch.map(IntoFuture::into_future)).await;
    assert_eq!(done.len(), 3);
    for event in done {
        assert!(event.unwrap().event_completed_at().is_some());
    }
}

#[tokio::test(start_paused = true)]
async fn awaiting_an_event_waits_for_its_slow_handler() {
    let bus = EventBus::new("CompletionBus");
    let order = Recorder::new();
    let log = order.clone();
    bus.on(move |_: EventHandle<UserActionEvent>| {
        let log = log.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            log.push("handler_done");
            String::from("done")
        }
    });

    let event = bus.dispatch(user_action("test")).unwrap();
    order.push("enqueue_done");
    let event = event.await.unwrap();
    order.push("wait_done");

    assert_eq!(
        order.entries(),
        ["enqueue_done", "handler_done", "wait_done"]
    );
    assert!(event.event_completed_at().is_some());
}

/// The reference only checks that the bus stops; here queued events are also finished with
/// cancelled results, so nothing awaiting them hangs.
#[tokio::test]
async fn stop_with_queued_events_cancels_them_and_releases_their_waiters() {
    let bus = EventBus::new("StopBus");
    bus.on(|_: AnyEvent| async {
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
    let events: Vec<_> = (0..5)
        .map(|i| bus.dispatch(user_action(&format!("action_{i}"))).unwrap())
        .collect();

    bus.stop(None).await;
    assert!(bus.is_stopped());
    for event in events {
        let event = event.await.unwrap();
        let results = event.event_results();
        assert_eq!(results.len(), 1);
        assert!(results[0].error.as_ref().unwrap().is_cancelled());
    }
}

#[tokio::test]
async fn nested_payload_data_is_preserved() {
    let bus = EventBus::new("ComplexDataBus");
    let seen = Recorder::new();
    let log = seen.clone();
    bus.on(move |e: AnyEvent| log.push(e.payload_json().unwrap()["details"].clone()));

    let details = json!({"nested": {"list": [1, 2, {"inner": "value"}], "none": null}});
    let event = bus
        .dispatch(SystemEventModel {
            name: "complex".into(),
            details: details.clone(),
        })
        .unwrap()
        .await
        .unwrap();

    assert_eq!(event.details["nested"]["list"][2]["inner"], "value");
    assert_eq!(seen.entries(), [details.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_dispatched_from_many_tasks_all_complete() {
    let bus = EventBus::new("ConcurrentBus");
    let processed = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&processed);
    bus.on(move |e: EventHandle<OrderedEvent>| {
        counter.fetch_add(1, Ordering::SeqCst);
        e.order
    });

    let dispatchers: Vec<_> = (0..4)
        .map(|task| {
            let bus = bus.clone();
            tokio::spawn(async move {
                let events: Vec<_> = (0..25)
                    .map(|i| {
                        bus.dispatch(OrderedEvent {
                            order: task * 25 + i,
                        })
                        .unwrap()
                    })
                    .collect();
                futures::future::join_all(events.into_iter().map(IntoFuture::into_future)).await
            })
        })
        .collect();
    for dispatcher in dispatchers {
        for event in dispatcher.await.unwrap() {
            assert!(event.unwrap().is_complete());
        }
    }

    assert!(bus.wait_until_idle(None).await);
    assert_eq!(processed.load(Ordering::SeqCst), 100);
    assert_eq!(bus.event_history().len(), 100);
    assert_eq!(bus.events_completed().len(), 100);
}

// ---------------------------------------------------------------------------------------------
// Event type and version
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn event_type_defaults_to_the_struct_name_and_routes_by_it() {
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    struct InlineTestEvent {
        data: String,
    }

    let bus = EventBus::new("DerivationBus");
    let received = Recorder::new();
    for pattern in ["UserActionEvent", "InlineTestEvent"] {
        let log = received.clone();
        bus.on_pattern(pattern, move |e: AnyEvent| log.push(e.event_type()));
    }

    let user = bus.dispatch(user_action("test")).unwrap();
    assert_eq!(user.event_type(), "UserActionEvent");
    user.await.unwrap();
    let inline = bus
        .dispatch(InlineTestEvent {
            data: "test".into(),
        })
        .unwrap();
    assert_eq!(inline.event_type(), "InlineTestEvent");
    inline.await.unwrap();

    assert_eq!(received.entries(), ["UserActionEvent", "InlineTestEvent"]);
    assert_eq!(<SystemEventModel as Event>::EVENT_TYPE, "SystemEventModel");
}

#[tokio::test]
async fn explicit_event_type_overrides_the_struct_name() {
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(name = "CustomEventType")]
    struct OverrideEvent {
        data: String,
    }

    let bus = EventBus::new("OverrideBus");
    let received = Recorder::new();
    for pattern in ["CustomEventType", "OverrideEvent"] {
        let log = received.clone();
        bus.on_pattern(pattern, move |_: AnyEvent| log.push(pattern));
    }

    let event = bus
        .dispatch(OverrideEvent {
            data: "test".into(),
        })
        .unwrap()
        .await
        .unwrap();
    assert_eq!(event.event_type(), "CustomEventType");
    assert_eq!(received.entries(), ["CustomEventType"]);
}

#[tokio::test]
async fn event_version_has_a_default_and_a_type_level_override() {
    #[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
    #[event(version = "1.2.3")]
    struct VersionedEvent {
        data: String,
    }

    let bus = EventBus::new("VersionBus");
    let base = EventHandle::new(DynEvent::new("TestVersionEvent", json!({})).unwrap());
    assert_eq!(base.event_version(), "0.0.1");
    assert_eq!(EventHandle::new(user_action("x")).event_version(), "0.0.1");

    let dispatched = bus
        .dispatch(VersionedEvent {
            data: "queued".into(),
        })
        .unwrap();
    assert_eq!(dispatched.event_type(), "VersionedEvent");
    assert_eq!(dispatched.event_version(), "1.2.3");
    // Identity fields are the same on every handle to the event.
    assert_eq!(dispatched.to_any().event_version(), "1.2.3");
}
