//! Ports `tests/test_eventbus_dispatch_defaults.py` and
//! `bubus-ts/tests/eventbus_dispatch_defaults.test.ts`, with the processing-bus-defaults cases of
//! `tests/test_eventbus_forwarding.py` (semantics §1.8, top-15 #4): an event's unset options are
//! never filled in at dispatch; each bus that processes it resolves them against its own
//! defaults, at processing time. Values on the event — per event (`with_*`/`set_*`) or per type
//! (`#[event(...)]`) — beat every bus's defaults.
//!
//! The reference tests only check that the fields stay unset; these also check that the
//! resolved behaviour is the right one on each bus.

use bubus_test_support::time::ms;
use bubus_test_support::time::within;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bubus::{
    AnyEvent, EventBus, EventHandle, bus::LockDomain, error::HandlerErrorKind,
    event::EventConcurrency, event::EventConfig, event::HandlerCompletion,
    event::HandlerConcurrency, handler::HandlerOptions, result::ResultStatus,
};
use bubus_test_support::Recorder;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct PropagationEvent {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String, concurrency = "global-serial")]
struct ConcurrencyOverrideEvent {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String, handler_concurrency = "serial", handler_completion = "all")]
struct HandlerOverrideEvent {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String, timeout = 0.05, handler_timeout = 0.02)]
struct TimeoutOverrideEvent {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ForwardedChildEvent {
    mode: String,
}

/// Counts handler runs in flight (now, and the most at once).
#[derive(Clone, Default)]
struct InFlight(Arc<Mutex<(usize, usize)>>);

/// One run in flight, until dropped (also when a timeout or cancellation drops the handler).
struct Slot(InFlight);

impl InFlight {
    fn enter(&self) -> Slot {
        let mut n = self.0.lock().unwrap();
        n.0 += 1;
        n.1 = n.1.max(n.0);
        Slot(self.clone())
    }
    fn max(&self) -> usize {
        self.0.lock().unwrap().1
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.0.lock().unwrap().0 -= 1;
    }
}

/// Registers a handler for `E` named `name` that holds an [`InFlight`] slot for `sleep_ms`,
/// logging `{name}_start` and `{name}_end`.
fn on_tracked<E: bubus::Event<Result = String>>(
    bus: &EventBus,
    flight: &InFlight,
    log: &Recorder,
    name: &'static str,
    sleep_ms: u64,
) {
    let (flight, log) = (flight.clone(), log.clone());
    bus.on_with(
        move |_: EventHandle<E>| {
            let (flight, log) = (flight.clone(), log.clone());
            async move {
                let _slot = flight.enter();
                log.push(format!("{name}_start"));
                tokio::time::sleep(ms(sleep_ms)).await;
                log.push(format!("{name}_end"));
                name.to_owned()
            }
        },
        HandlerOptions::new().name(name),
    );
}

// ---------------------------------------------------------------------------------------------
// Event concurrency
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn event_concurrency_stays_unset_on_dispatch_and_resolves_during_processing() {
    let bus = EventBus::builder("EventConcurrencyDefaultBus")
        .event_concurrency(EventConcurrency::Parallel)
        .build();
    let (flight, log) = (InFlight::default(), Recorder::new());
    on_tracked::<PropagationEvent>(&bus, &flight, &log, "handler", 10);

    let implicit = bus.dispatch(PropagationEvent {}).unwrap();
    let explicit_none = EventHandle::new(PropagationEvent {});
    explicit_none.set_event_concurrency(None);
    let explicit_none = bus.dispatch(explicit_none).unwrap();
    assert_eq!(implicit.event_config().event_concurrency, None);
    assert_eq!(explicit_none.event_config().event_concurrency, None);

    within(implicit.clone()).await.unwrap();
    within(explicit_none.clone()).await.unwrap();
    // Resolved to the bus's parallel default: the two events overlapped.
    assert_eq!(flight.max(), 2);
    assert_eq!(implicit.event_config().event_concurrency, None);
    assert_eq!(explicit_none.event_config().event_concurrency, None);
}

#[tokio::test(start_paused = true)]
async fn event_concurrency_class_default_beats_the_bus_default() {
    let domain = LockDomain::new();
    let bus_a = EventBus::builder("EventConcurrencyOverrideBusA")
        .event_concurrency(EventConcurrency::Parallel)
        .lock_domain(domain.clone())
        .build();
    let bus_b = EventBus::builder("EventConcurrencyOverrideBusB")
        .event_concurrency(EventConcurrency::Parallel)
        .lock_domain(domain)
        .build();
    let (flight, log) = (InFlight::default(), Recorder::new());
    on_tracked::<ConcurrencyOverrideEvent>(&bus_a, &flight, &log, "a", 10);
    on_tracked::<ConcurrencyOverrideEvent>(&bus_b, &flight, &log, "b", 10);

    let events: Vec<_> = (0..2)
        .flat_map(|_| {
            [
                bus_a.dispatch(ConcurrencyOverrideEvent {}).unwrap(),
                bus_b.dispatch(ConcurrencyOverrideEvent {}).unwrap(),
            ]
        })
        .collect();
    assert_eq!(
        events[0].event_config().event_concurrency,
        Some(EventConcurrency::GlobalSerial)
    );
    for event in &events {
        within(event.clone()).await.unwrap();
    }
    // Global-serial across both parallel-by-default buses of the domain: one at a time.
    assert_eq!(flight.max(), 1);
    assert_eq!(log.len(), 8);
}

#[tokio::test(start_paused = true)]
async fn a_per_event_value_beats_the_class_default() {
    let bus = EventBus::builder("PerEventOverrideBus")
        .event_concurrency(EventConcurrency::BusSerial)
        .build();
    let (flight, log) = (InFlight::default(), Recorder::new());
    on_tracked::<ConcurrencyOverrideEvent>(&bus, &flight, &log, "handler", 10);

    let events: Vec<_> = (0..2)
        .map(|_| {
            let event = EventHandle::new(ConcurrencyOverrideEvent {})
                .with_event_concurrency(EventConcurrency::Parallel);
            bus.dispatch(event).unwrap()
        })
        .collect();
    for event in &events {
        within(event.clone()).await.unwrap();
    }
    assert_eq!(
        flight.max(),
        2,
        "parallel on the event beats global-serial on the type"
    );
}

#[tokio::test(start_paused = true)]
async fn unset_options_are_resolved_when_processing_starts_not_at_dispatch() {
    let bus = EventBus::builder("ProcessingTimeBus")
        .event_concurrency(EventConcurrency::BusSerial)
        .build();
    let (flight, log) = (InFlight::default(), Recorder::new());
    on_tracked::<PropagationEvent>(&bus, &flight, &log, "handler", 10);

    // Both events are queued (the run loop has not run yet on this single thread); setting the
    // option after dispatch still counts, because nothing was resolved at dispatch.
    let first = bus.dispatch(PropagationEvent {}).unwrap();
    let second = bus.dispatch(PropagationEvent {}).unwrap();
    first.set_event_concurrency(Some(EventConcurrency::Parallel));
    second.set_event_concurrency(Some(EventConcurrency::Parallel));
    within(first).await.unwrap();
    within(second).await.unwrap();
    assert_eq!(flight.max(), 2);
}

// ---------------------------------------------------------------------------------------------
// Handler concurrency and completion
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn handler_defaults_stay_unset_on_dispatch_and_resolve_during_processing() {
    let bus = EventBus::builder("HandlerDefaultsBus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .event_handler_completion(HandlerCompletion::First)
        .build();
    let (flight, log) = (InFlight::default(), Recorder::new());
    on_tracked::<PropagationEvent>(&bus, &flight, &log, "slow", 100);
    on_tracked::<PropagationEvent>(&bus, &flight, &log, "fast", 10);

    let implicit = bus.dispatch(PropagationEvent {}).unwrap();
    let explicit_none = EventHandle::new(PropagationEvent {});
    explicit_none.set_event_handler_concurrency(None);
    explicit_none.set_event_handler_completion(None);
    let explicit_none = bus.dispatch(explicit_none).unwrap();
    for event in [&implicit, &explicit_none] {
        assert_eq!(event.event_config().event_handler_concurrency, None);
        assert_eq!(event.event_config().event_handler_completion, None);
    }

    for event in [implicit, explicit_none] {
        let event = within(event).await.unwrap();
        // Parallel + first from the bus: both started, the fast one won, the slow one aborted.
        let results = event.event_results();
        assert_eq!(results[0].handler_name, "slow");
        assert_eq!(
            results[0].error.as_ref().map(|e| e.kind()),
            Some(HandlerErrorKind::Aborted)
        );
        assert_eq!(results[1].result.as_deref(), Some("fast"));
        assert_eq!(event.event_config(), EventConfig::default());
    }
    assert_eq!(flight.max(), 2);
    assert!(log.position("slow_end").is_none());
}

#[tokio::test(start_paused = true)]
async fn handler_class_defaults_beat_the_bus_defaults() {
    let bus = EventBus::builder("HandlerDefaultsOverrideBus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .event_handler_completion(HandlerCompletion::First)
        .build();
    let (flight, log) = (InFlight::default(), Recorder::new());
    on_tracked::<HandlerOverrideEvent>(&bus, &flight, &log, "first", 10);
    on_tracked::<HandlerOverrideEvent>(&bus, &flight, &log, "second", 10);

    let event = bus.dispatch(HandlerOverrideEvent {}).unwrap();
    let config = event.event_config();
    assert_eq!(
        config.event_handler_concurrency,
        Some(HandlerConcurrency::Serial)
    );
    assert_eq!(
        config.event_handler_completion,
        Some(HandlerCompletion::All)
    );

    let event = within(event).await.unwrap();
    // Serial and all, as the type says: one after the other, both completed.
    assert_eq!(flight.max(), 1);
    assert_eq!(
        log.entries(),
        ["first_start", "first_end", "second_start", "second_end"]
    );
    assert_eq!(
        event.event_results_list().await.unwrap(),
        ["first", "second"]
    );
}

#[tokio::test(start_paused = true)]
async fn a_forwarded_event_uses_each_processing_bus_defaults_unless_overridden() {
    let bus_a = EventBus::builder("ForwardDefaultsA")
        .event_handler_concurrency(HandlerConcurrency::Serial)
        .build();
    let bus_b = EventBus::builder("ForwardDefaultsB")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let log = Recorder::new();
    for (name, sleep_ms) in [("b1", 15), ("b2", 5)] {
        let l = log.clone();
        bus_b.on(move |e: EventHandle<ForwardedChildEvent>| {
            let l = l.clone();
            async move {
                l.push(format!("{}:{name}_start", e.mode));
                tokio::time::sleep(ms(sleep_ms)).await;
                l.push(format!("{}:{name}_end", e.mode));
                name.to_owned()
            }
        });
    }
    let (a, b) = (bus_a.clone(), bus_b.clone());
    bus_a.on(move |_: EventHandle<PropagationEvent>| {
        let (a, b) = (a.clone(), b.clone());
        async move {
            let inherited = EventHandle::new(ForwardedChildEvent {
                mode: "inherited".into(),
            });
            inherited.set_event_timeout(None);
            let inherited = a.dispatch(inherited)?;
            b.dispatch(&inherited)?;
            inherited.await?;

            let overridden = EventHandle::new(ForwardedChildEvent {
                mode: "override".into(),
            })
            .with_event_handler_concurrency(HandlerConcurrency::Serial);
            overridden.set_event_timeout(None);
            let overridden = a.dispatch(overridden)?;
            b.dispatch(&overridden)?;
            overridden.await?;
            Ok::<_, bubus::Error>(String::new())
        }
    });

    let top = within(bus_a.dispatch(PropagationEvent {}).unwrap())
        .await
        .unwrap();
    assert!(top.event_errors().is_empty(), "{:?}", top.event_errors());
    let pos = |entry: &str| log.position(entry).unwrap();
    // Unset on the event: bus B's parallel default applies there.
    assert!(
        pos("inherited:b2_start") < pos("inherited:b1_end"),
        "{:?}",
        log.entries()
    );
    // Set on the event: serial on bus B too.
    assert!(
        pos("override:b1_end") < pos("override:b2_start"),
        "{:?}",
        log.entries()
    );
    for child in top.event_children() {
        assert_eq!(child.event_path(), [bus_a.label(), bus_b.label()]);
    }
}

#[tokio::test(start_paused = true)]
async fn forwarded_first_mode_uses_the_processing_bus_defaults() {
    let bus_a = EventBus::builder("ForwardedFirstDefaultsA")
        .event_handler_concurrency(HandlerConcurrency::Serial)
        .event_handler_completion(HandlerCompletion::All)
        .build();
    let bus_b = EventBus::builder("ForwardedFirstDefaultsB")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .event_handler_completion(HandlerCompletion::First)
        .build();
    let (flight, log) = (InFlight::default(), Recorder::new());
    let target = bus_b.clone();
    bus_a.on(move |e: AnyEvent| target.dispatch(e));
    on_tracked::<PropagationEvent>(&bus_b, &flight, &log, "slow", 20);
    on_tracked::<PropagationEvent>(&bus_b, &flight, &log, "fast", 1);

    let event = EventHandle::new(PropagationEvent {});
    event.set_event_timeout(None);
    let event = bus_a.dispatch(event).unwrap();
    let event = within(event).await.unwrap();
    assert!(within(bus_b.wait_until_idle(None)).await);

    // Bus B's first mode picked the fast handler; both had started (parallel on B).
    assert_eq!(
        event
            .results()
            .ignore_errors()
            .one()
            .await
            .unwrap()
            .as_deref(),
        Some("fast")
    );
    assert!(log.position("slow_start").is_some() && log.position("fast_start").is_some());
    assert!(log.position("slow_end").is_none());
    // The event itself still says nothing: each bus decided for itself.
    assert_eq!(event.event_config().event_handler_completion, None);
}

// ---------------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn an_unset_timeout_resolves_against_each_processing_bus() {
    let bus_a = EventBus::builder("TimeoutDefaultsA")
        .event_timeout(Some(Duration::from_secs(60)))
        .build();
    let bus_b = EventBus::builder("TimeoutDefaultsB")
        .event_timeout(Some(Duration::from_millis(50)))
        .build();
    let (flight, log) = (InFlight::default(), Recorder::new());
    on_tracked::<PropagationEvent>(&bus_a, &flight, &log, "on_a", 200);
    on_tracked::<PropagationEvent>(&bus_b, &flight, &log, "on_b", 200);

    // Parallel handlers, so the two buses' handlers do not wait for each other on the event's
    // serial-handler lock.
    let event = EventHandle::new(PropagationEvent {})
        .with_event_handler_concurrency(HandlerConcurrency::Parallel);
    let event = bus_a.dispatch(event).unwrap();
    bus_b.dispatch(&event).unwrap();
    let event = within(event).await.unwrap();

    let results = event.event_results();
    let on_a = results.iter().find(|r| r.handler_name == "on_a").unwrap();
    let on_b = results.iter().find(|r| r.handler_name == "on_b").unwrap();
    // 200 ms fits in A's 60 s but not in B's 50 ms.
    assert_eq!(on_a.status, ResultStatus::Completed);
    assert_eq!(
        on_b.error.as_ref().map(|e| e.kind()),
        Some(HandlerErrorKind::Aborted)
    );
    assert_eq!(event.event_config().event_timeout, None);
}

#[tokio::test(start_paused = true)]
async fn class_default_timeouts_apply_on_every_bus() {
    let bus_a = EventBus::builder("ClassTimeoutA")
        .event_timeout(Some(Duration::from_secs(60)))
        .build();
    let bus_b = EventBus::builder("ClassTimeoutB")
        .event_timeout(None)
        .build();
    let (flight, log) = (InFlight::default(), Recorder::new());
    on_tracked::<TimeoutOverrideEvent>(&bus_a, &flight, &log, "handler_timeout_a", 30);
    on_tracked::<TimeoutOverrideEvent>(&bus_b, &flight, &log, "handler_timeout_b", 30);
    // A handler's own timeout beats the type's handler timeout, up to the type's event timeout.
    let (f, l) = (flight.clone(), log.clone());
    bus_b.on_with(
        move |_: EventHandle<TimeoutOverrideEvent>| {
            let (f, l) = (f.clone(), l.clone());
            async move {
                let _slot = f.enter();
                tokio::time::sleep(ms(100)).await;
                l.push("never");
                String::new()
            }
        },
        HandlerOptions::new()
            .name("event_timeout_b")
            .timeout(Some(Duration::from_secs(10))),
    );

    let event = bus_a.dispatch(TimeoutOverrideEvent {}).unwrap();
    bus_b.dispatch(&event).unwrap();
    let event = within(event).await.unwrap();

    let config = event.event_config();
    assert_eq!(config.event_timeout, Some(Duration::from_millis(50)));
    assert_eq!(
        config.event_handler_timeout,
        Some(Duration::from_millis(20))
    );
    let kind_of = |name: &str| {
        event
            .event_results()
            .into_iter()
            .find(|r| r.handler_name == name)
            .and_then(|r| r.error.map(|e| e.kind()))
    };
    assert_eq!(
        kind_of("handler_timeout_a"),
        Some(HandlerErrorKind::Timeout)
    );
    assert_eq!(
        kind_of("handler_timeout_b"),
        Some(HandlerErrorKind::Timeout)
    );
    assert_eq!(kind_of("event_timeout_b"), Some(HandlerErrorKind::Aborted));
    assert!(log.position("never").is_none());
}
