//! Ports `tests/test_eventbus_on_off.py` and `bubus-ts/tests/eventbus_on_off.test.ts`: what `on`
//! returns, how `off` removes handlers, and that sync and async handlers' values are recorded.
//!
//! Not ported: calling a registration's normalised callable directly (`_handler_async`) — handlers
//! are not callable through their registration here — and the typed-contract checks, which the
//! compiler enforces (see the trybuild fixtures).

use bubus::{
    AnyEvent, DynEvent, EventBus, EventHandle, handler::HandlerId, handler::HandlerOptions,
    result::ResultStatus,
};
use bubus_test_support::Recorder;
use serde::{Deserialize, Serialize};
use serde_json::json;

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct RegistryEvent {
    required_token: String,
}

fn registry_event(token: &str) -> RegistryEvent {
    RegistryEvent {
        required_token: token.into(),
    }
}

fn registered_ids(bus: &EventBus) -> Vec<HandlerId> {
    bus.handlers().iter().map(|h| h.id().clone()).collect()
}

#[tokio::test]
async fn on_returns_the_registration_and_its_id_keys_the_result() {
    let bus = EventBus::new("RegistryBus");
    let entry = bus.on(|e: EventHandle<RegistryEvent>| e.event_type().to_owned());

    assert_eq!(entry.event_pattern(), "RegistryEvent");
    assert_eq!(entry.eventbus_name(), "RegistryBus");
    assert_eq!(entry.eventbus_id(), bus.id());
    assert_eq!(bus.handlers(), std::slice::from_ref(&entry));

    let completed = bus.dispatch(registry_event("x")).unwrap().await.unwrap();
    let results = completed.event_results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].handler_id, *entry.id());
    assert_eq!(results[0].handler_event_pattern, "RegistryEvent");
    let by_id = completed.event_results_by_handler_id().await.unwrap();
    assert_eq!(by_id[entry.id()], "RegistryEvent");
}

#[tokio::test]
async fn off_removes_by_registration_by_id_or_every_handler_of_a_pattern() {
    let bus = EventBus::new("RegistryOffBus");
    let log = Recorder::new();
    let handler = |name: &'static str| {
        let log = log.clone();
        move |_: AnyEvent| log.push(name)
    };
    let opts = |name: &str| HandlerOptions::new().pattern("RegistryOffEvent").name(name);

    let entry_a = bus.on_with(handler("a"), opts("handler_a"));
    let entry_b = bus.on_with(handler("b"), opts("handler_b"));
    let entry_c = bus.on_with(handler("c"), opts("handler_c"));

    assert!(bus.off(&entry_a));
    assert_eq!(
        registered_ids(&bus),
        [entry_b.id().clone(), entry_c.id().clone()]
    );
    assert!(!bus.off(&entry_a), "already removed");

    assert!(bus.off_by_id(entry_b.id()));
    assert_eq!(registered_ids(&bus), [entry_c.id().clone()]);

    assert!(bus.off(&entry_c));
    assert!(bus.handlers().is_empty());

    bus.on_with(handler("a"), opts("handler_a"));
    bus.on_with(handler("b"), opts("handler_b"));
    let wildcard = bus.on(handler("wildcard"));
    assert_eq!(bus.off_pattern("RegistryOffEvent"), 2);
    assert!(
        bus.handlers()
            .iter()
            .all(|h| h.event_pattern() != "RegistryOffEvent")
    );
    assert_eq!(
        bus.handlers(),
        std::slice::from_ref(&wildcard),
        "other patterns are untouched"
    );

    let event = DynEvent::new("RegistryOffEvent", json!({})).unwrap();
    let dispatched = bus.dispatch(event).unwrap().await.unwrap();
    assert_eq!(log.entries(), ["wildcard"]);
    assert_eq!(dispatched.event_results().len(), 1);

    // `"*"` removes the wildcard handlers only.
    bus.on_with(handler("a"), opts("handler_a"));
    assert_eq!(bus.off_pattern("*"), 1);
    assert_eq!(bus.handlers().len(), 1);
    assert_eq!(bus.off_pattern("NothingRegistered"), 0);
}

#[tokio::test]
async fn removing_a_handler_keeps_the_results_it_already_produced() {
    let bus = EventBus::new("OffKeepsResultsBus");
    let entry = bus.on(|e: EventHandle<RegistryEvent>| e.required_token.clone());

    let first = bus
        .dispatch(registry_event("before"))
        .unwrap()
        .await
        .unwrap();
    assert!(bus.off(&entry));
    let second = bus
        .dispatch(registry_event("after"))
        .unwrap()
        .await
        .unwrap();

    assert_eq!(first.event_result().await.unwrap(), "before");
    assert_eq!(first.event_results()[0].handler_id, *entry.id());
    assert!(second.event_results().is_empty());
}

#[tokio::test]
async fn closures_registered_in_one_function_get_distinct_default_names() {
    let bus = EventBus::new("RegistryClosureNamesBus");
    let first = bus.on(|_: EventHandle<RegistryEvent>| String::from("first"));
    let second = bus.on(|_: EventHandle<RegistryEvent>| String::from("second"));
    let name = |h: &bubus::handler::EventHandler| h.handler_name().to_owned();
    assert!(
        name(&first)
            .ends_with("closures_registered_in_one_function_get_distinct_default_names::<closure>"),
        "{}",
        name(&first)
    );
    assert!(
        name(&second).ends_with(
            "closures_registered_in_one_function_get_distinct_default_names::<closure#2>"
        ),
        "{}",
        name(&second)
    );

    // Results by handler name keep both.
    let event = bus.dispatch(registry_event("x")).unwrap().await.unwrap();
    let by_name = event.event_results_by_handler_name().await.unwrap();
    assert_eq!(by_name.len(), 2, "{by_name:?}");
    assert_eq!(by_name[&name(&first)], "first");
    assert_eq!(by_name[&name(&second)], "second");

    // The same closure registered again keeps its name.
    let handlers: Vec<_> = (0..3)
        .map(|_| bus.on(|_: EventHandle<RegistryEvent>| String::from("again")))
        .collect();
    assert!(
        handlers
            .iter()
            .all(|h| h.handler_name() == handlers[0].handler_name())
    );
    assert!(handlers[0].handler_name().ends_with("::<closure#3>"));
}

#[tokio::test]
async fn sync_handler_return_value_is_recorded() {
    let bus = EventBus::new("RegistryNormalizeBus");
    let calls = Recorder::new();
    let log = calls.clone();
    let entry = bus.on(move |e: EventHandle<RegistryEvent>| {
        log.push(e.event_id());
        String::from("normalized")
    });
    assert!(
        entry
            .handler_name()
            .ends_with("sync_handler_return_value_is_recorded::<closure>"),
        "{}",
        entry.handler_name()
    );

    let completed = bus.dispatch(registry_event("sync")).unwrap().await.unwrap();
    let result = &completed.event_results()[0];
    assert_eq!(result.handler_id, *entry.id());
    assert_eq!(result.status, ResultStatus::Completed);
    assert_eq!(result.result.as_deref(), Some("normalized"));
    assert_eq!(calls.entries(), [completed.event_id().to_string()]);
}

#[tokio::test]
async fn async_handler_return_value_is_recorded() {
    let bus = EventBus::new("RegistryAsyncNormalizeBus");
    async fn async_handler(event: EventHandle<RegistryEvent>) -> String {
        tokio::task::yield_now().await;
        format!("async_normalized:{}", event.required_token)
    }
    let entry = bus.on(async_handler);
    assert!(
        entry.handler_name().ends_with("::async_handler"),
        "{}",
        entry.handler_name()
    );

    let completed = bus
        .dispatch(registry_event("async"))
        .unwrap()
        .await
        .unwrap();
    let result = &completed.event_results()[0];
    assert_eq!(result.handler_id, *entry.id());
    assert_eq!(result.status, ResultStatus::Completed);
    assert_eq!(result.result.as_deref(), Some("async_normalized:async"));
}

/// The reference warns about a duplicate registration and runs it anyway; so does this bus.
#[tokio::test]
async fn registering_the_same_handler_twice_runs_it_twice_under_distinct_ids() {
    let bus = EventBus::new("DuplicateBus");
    fn handler(e: EventHandle<RegistryEvent>) -> String {
        e.required_token.clone()
    }
    let first = bus.on(handler);
    let second = bus.on(handler);
    assert_ne!(first.id(), second.id());

    let event = bus.dispatch(registry_event("twice")).unwrap();
    assert_eq!(
        event.event_results_list().await.unwrap(),
        ["twice", "twice"]
    );

    // Removing one leaves the other.
    assert!(bus.off(&first));
    let event = bus.dispatch(registry_event("once")).unwrap();
    assert_eq!(event.event_results_list().await.unwrap(), ["once"]);
}

/// Deliberate difference (design §5.3): the reference seeds handler ids with the registration time,
/// so they change on every registration; here they derive from bus name, handler name and
/// pattern, so a bus rebuilt the same way gets the same ids — and an explicit id always wins.
#[test]
fn handler_ids_are_deterministic_unless_set_explicitly() {
    fn handler(e: EventHandle<RegistryEvent>) -> String {
        e.required_token.clone()
    }
    let build = || {
        let bus = EventBus::new("StableIdBus");
        (bus.on(handler), bus.on(handler))
    };
    let (a1, a2) = build();
    let (b1, b2) = build();
    assert_eq!(a1.id(), b1.id());
    assert_eq!(a2.id(), b2.id());
    assert_ne!(a1.id(), a2.id());
    assert_eq!(
        *a1.id(),
        HandlerId::derive("StableIdBus", a1.handler_name(), "RegistryEvent", 0)
    );

    // Another bus name gives another id.
    let other = EventBus::new("OtherBus").on(handler);
    assert_ne!(other.id(), a1.id());

    let bus = EventBus::new("ExplicitIdBus");
    let explicit = bus.on_with(handler, HandlerOptions::new().id("login-audit"));
    assert_eq!(explicit.id().as_str(), "login-audit");
    assert!(bus.off_by_id(&HandlerId::new("login-audit")));
}

/// 10 000 registrations of one closure under its default name each get the next free
/// occurrence of the derived id without probing the ones before (that probing made this
/// quadratic: 23–33 s); removing one frees its occurrence for the next registration, and
/// every id stays the one `HandlerId::derive` gives.
#[test]
fn many_registrations_of_one_closure_get_consecutive_ids_and_reuse_freed_ones() {
    const N: usize = 10_000;
    let bus = EventBus::builder("ManyOneOffBus")
        .disable_duplicate_handler_name_warning()
        .build();
    let register = || bus.on(|e: EventHandle<RegistryEvent>| e.required_token.clone());
    let handlers: Vec<_> = (0..N).map(|_| register()).collect();
    let name = handlers[0].handler_name().to_owned();
    for occurrence in [0, 1, 2, N / 2, N - 1] {
        assert_eq!(
            *handlers[occurrence].id(),
            HandlerId::derive("ManyOneOffBus", &name, "RegistryEvent", occurrence)
        );
    }
    assert_eq!(bus.handlers().len(), N);

    // Freed occurrences are reused lowest first, then new ones continue after the last.
    assert!(bus.off(&handlers[7]));
    assert!(bus.off(&handlers[3]));
    assert_eq!(*register().id(), *handlers[3].id());
    assert_eq!(*register().id(), *handlers[7].id());
    assert_eq!(
        *register().id(),
        HandlerId::derive("ManyOneOffBus", &name, "RegistryEvent", N)
    );
    // All removed: the next registration starts over at occurrence 0.
    assert_eq!(bus.off_pattern("RegistryEvent"), N + 1);
    assert_eq!(*register().id(), *handlers[0].id());
}
