//! Context propagation (semantics §1.18): ports `tests/test_eventbus_dispatch_contextvars.py`,
//! `bubus-ts/tests/eventbus_dispatch_contextvars.test.ts` and the cross-runtime subtest "context
//! propagates through forwarding and child dispatch with lineage intact".
//!
//! The reference runtimes capture their ContextVars / AsyncLocalStorage at dispatch; here two
//! things are captured when an event is first dispatched and restored around each of its
//! handlers, wherever and whenever they run:
//!
//! * typed user values set with [`bubus::context::with_context`], read with [`bubus::context::context`];
//! * the `tracing` span current at dispatch, which becomes the parent of each handler's span.

use bubus_test_support::string_events;
use std::sync::{Arc, OnceLock};

use bubus::{
    AnyEvent, EventBus, EventHandle, context::context, context::with_context,
    event::EventConcurrency, event::HandlerConcurrency,
};
use bubus_test_support::Recorder;
use parking_lot::Mutex;
use serde_json::json;
use tracing::Instrument;
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

string_events!(
    SimpleEvent,
    ChildEvent,
    Level2Event,
    Level3Event,
    OtherEvent
);

#[derive(Debug, PartialEq)]
struct RequestId(&'static str);

#[derive(Debug, PartialEq)]
struct UserId(&'static str);

#[derive(Debug, PartialEq)]
struct TraceId(&'static str);

/// The request id in scope, as the reference tests print an unset ContextVar.
fn request_id() -> &'static str {
    context::<RequestId>().map_or("<unset>", |id| id.0)
}

fn trace_id() -> &'static str {
    context::<TraceId>().map_or("<unset>", |id| id.0)
}

// ---------------------------------------------------------------------------------------------
// User context values
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn context_set_at_dispatch_reaches_the_handler() {
    spans();
    let bus = EventBus::new("ContextTestBus");
    let seen = Recorder::new();
    let s = seen.clone();
    bus.on(move |_: EventHandle<SimpleEvent>| {
        s.push(format!(
            "sync:{}:{}",
            request_id(),
            context::<UserId>().map_or("<unset>", |u| u.0)
        ));
        String::from("handled")
    });
    let s = seen.clone();
    bus.on(move |_: EventHandle<SimpleEvent>| {
        let s = s.clone();
        async move {
            tokio::task::yield_now().await;
            s.push(format!("async:{}", request_id()));
            String::from("handled")
        }
    });

    let event = with_context(RequestId("req-12345"), async {
        with_context(UserId("user-abc"), async {
            bus.dispatch(SimpleEvent {}).unwrap().await.unwrap()
        })
        .await
    })
    .await;

    assert_eq!(
        seen.entries(),
        ["sync:req-12345:user-abc", "async:req-12345"]
    );
    assert_eq!(event.event_results_list().await.unwrap().len(), 2);
    // Outside the scope, nothing is set.
    assert!(context::<RequestId>().is_none());
}

#[tokio::test]
async fn context_is_captured_at_dispatch_not_at_processing() {
    spans();
    let bus = EventBus::new("CaptureTimeBus");
    bus.on(|_: EventHandle<SimpleEvent>| request_id().to_owned());

    // Dispatched inside the scope, processed after it ended.
    let inside = with_context(RequestId("at-dispatch"), async {
        bus.dispatch(SimpleEvent {}).unwrap()
    })
    .await;
    assert_eq!(inside.event_result().await.unwrap(), "at-dispatch");

    // Dispatched outside any scope, awaited inside one.
    let outside = bus.dispatch(SimpleEvent {}).unwrap();
    let result = with_context(RequestId("at-await"), async {
        outside.event_result().await.unwrap()
    })
    .await;
    assert_eq!(result, "<unset>");
}

#[tokio::test]
async fn context_reaches_nested_handlers_awaited_or_not() {
    spans();
    let bus = EventBus::new("NestedContextBus");
    let seen = Recorder::new();
    let s = seen.clone();
    bus.on(move |e: EventHandle<SimpleEvent>| {
        let s = s.clone();
        async move {
            s.push(format!("parent:{}:{}", request_id(), trace_id()));
            let bus = e.event_bus().unwrap();
            // One child is awaited (processed right here), the other left to the run loop.
            bus.dispatch(OtherEvent {})?;
            bus.dispatch(ChildEvent {})?.await?;
            Ok::<_, bubus::Error>(String::from("parent_done"))
        }
    });
    for name in ["child", "other"] {
        let s = seen.clone();
        bus.on_pattern(
            if name == "child" {
                "ChildEvent"
            } else {
                "OtherEvent"
            },
            move |_: AnyEvent| {
                s.push(format!("{name}:{}:{}", request_id(), trace_id()));
                json!(null)
            },
        );
    }

    with_context(RequestId("req-nested-123"), async {
        with_context(TraceId("trace-xyz"), async {
            bus.dispatch(SimpleEvent {}).unwrap().await.unwrap();
        })
        .await;
    })
    .await;

    let mut entries = seen.entries();
    entries.sort();
    assert_eq!(
        entries,
        [
            "child:req-nested-123:trace-xyz",
            "other:req-nested-123:trace-xyz",
            "parent:req-nested-123:trace-xyz",
        ]
    );
}

#[tokio::test]
async fn dispatches_with_different_contexts_stay_isolated() {
    spans();
    let bus = EventBus::builder("IsolationTestBus")
        .event_concurrency(EventConcurrency::Parallel)
        .build();
    let seen = Recorder::new();
    let s = seen.clone();
    bus.on(move |e: EventHandle<SimpleEvent>| {
        let s = s.clone();
        async move {
            tokio::task::yield_now().await;
            s.push(format!("{}={}", e.event_id(), request_id()));
            String::from("handled")
        }
    });

    let event_a = with_context(RequestId("req-A"), async {
        bus.dispatch(SimpleEvent {}).unwrap()
    })
    .await;
    let event_b = with_context(RequestId("req-B"), async {
        bus.dispatch(SimpleEvent {}).unwrap()
    })
    .await;
    let plain = bus.dispatch(SimpleEvent {}).unwrap();
    for event in [&event_a, &event_b, &plain] {
        event.clone().await.unwrap();
    }

    let mut entries = seen.entries();
    entries.sort();
    let mut expected = vec![
        format!("{}=req-A", event_a.event_id()),
        format!("{}=req-B", event_b.event_id()),
        format!("{}=<unset>", plain.event_id()),
    ];
    expected.sort();
    assert_eq!(entries, expected);
}

#[tokio::test]
async fn context_reaches_parallel_handlers() {
    spans();
    let bus = EventBus::builder("ParallelContextBus")
        .event_handler_concurrency(HandlerConcurrency::Parallel)
        .build();
    let seen = Recorder::new();
    for name in ["h1", "h2"] {
        let s = seen.clone();
        bus.on(move |_: EventHandle<SimpleEvent>| {
            let s = s.clone();
            async move {
                s.push(format!("{name}_start"));
                tokio::task::yield_now().await;
                s.push(format!("{name}:{}", request_id()));
                format!("{name}_done")
            }
        });
    }

    with_context(RequestId("req-parallel"), async {
        bus.dispatch(SimpleEvent {}).unwrap().await.unwrap();
    })
    .await;

    // They did overlap, and both saw the context.
    let entries = seen.entries();
    assert_eq!(&entries[..2], ["h1_start", "h2_start"], "{entries:?}");
    assert!(entries.contains(&"h1:req-parallel".to_owned()));
    assert!(entries.contains(&"h2:req-parallel".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_travels_with_a_forwarded_event() {
    spans();
    let bus1 = EventBus::new("Bus1");
    let bus2 = EventBus::new("Bus2");
    let seen = Recorder::new();
    for (bus, name) in [(&bus1, "bus1"), (&bus2, "bus2")] {
        let s = seen.clone();
        bus.on(move |_: EventHandle<SimpleEvent>| {
            s.push(format!("{name}:{}", request_id()));
            format!("{name}_done")
        });
    }
    bus1.forward_to(&bus2);

    with_context(RequestId("req-forwarded"), async {
        bus1.dispatch(SimpleEvent {}).unwrap().await.unwrap();
    })
    .await;
    assert!(bus2.wait_until_idle(None).await);
    assert_eq!(seen.entries(), ["bus1:req-forwarded", "bus2:req-forwarded"]);
}

/// A handler's own `with_context` scopes only what it runs and dispatches: its children see the
/// new value, its caller and the rest of the parent handler never do.
#[tokio::test]
async fn a_handler_changing_the_context_does_not_affect_its_parent() {
    spans();
    let bus = EventBus::new("ModifyContextBus");
    let seen = Recorder::new();
    let s = seen.clone();
    bus.on(move |e: EventHandle<SimpleEvent>| {
        let s = s.clone();
        async move {
            let bus = e.event_bus().unwrap();
            with_context(RequestId("parent-value"), async {
                bus.dispatch(ChildEvent {})?.await?;
                s.push(format!("parent after child:{}", request_id()));
                Ok::<_, bubus::Error>(())
            })
            .await?;
            s.push(format!("parent after its scope:{}", request_id()));
            Ok::<_, bubus::Error>(String::from("parent_done"))
        }
    });
    let s = seen.clone();
    bus.on(move |e: EventHandle<ChildEvent>| {
        let s = s.clone();
        async move {
            s.push(format!("child:{}", request_id()));
            let bus = e.event_bus().unwrap();
            with_context(RequestId("child-modified"), async {
                bus.dispatch(Level2Event {})?.await?;
                Ok::<_, bubus::Error>(())
            })
            .await?;
            Ok::<_, bubus::Error>(String::from("child_done"))
        }
    });
    let s = seen.clone();
    bus.on(move |_: EventHandle<Level2Event>| {
        s.push(format!("grandchild:{}", request_id()));
        String::from("grandchild_done")
    });

    with_context(RequestId("outer"), async {
        bus.dispatch(SimpleEvent {}).unwrap().await.unwrap();
        assert_eq!(request_id(), "outer");
    })
    .await;
    assert_eq!(
        seen.entries(),
        [
            "child:parent-value",
            "grandchild:child-modified",
            "parent after child:parent-value",
            "parent after its scope:outer",
        ]
    );
}

/// What a handler saw at one level of nesting.
#[derive(Clone, Debug)]
struct Level {
    level: u8,
    request_id: &'static str,
    event_id: uuid::Uuid,
    parent_id: Option<uuid::Uuid>,
}

#[derive(Clone, Default)]
struct Levels(Arc<Mutex<Vec<Level>>>);

impl Levels {
    fn record(&self, level: u8, event: &AnyEvent) {
        self.0.lock().push(Level {
            level,
            request_id: request_id(),
            event_id: event.event_id(),
            parent_id: event.event_parent_id(),
        });
    }
}

#[tokio::test]
async fn context_and_parent_tracking_work_together_at_every_depth() {
    spans();
    let bus = EventBus::new("DeepNestingBus");
    let levels = Levels::default();
    let l = levels.clone();
    bus.on(move |e: EventHandle<SimpleEvent>| {
        l.record(1, e.as_ref());
        async move {
            e.event_bus().unwrap().dispatch(Level2Event {})?.await?;
            Ok::<_, bubus::Error>(String::from("level1_done"))
        }
    });
    let l = levels.clone();
    bus.on(move |e: EventHandle<Level2Event>| {
        l.record(2, e.as_ref());
        async move {
            e.event_bus().unwrap().dispatch(Level3Event {})?.await?;
            Ok::<_, bubus::Error>(String::from("level2_done"))
        }
    });
    let l = levels.clone();
    bus.on(move |e: EventHandle<Level3Event>| {
        l.record(3, e.as_ref());
        String::from("level3_done")
    });

    with_context(RequestId("req-deep-nesting"), async {
        bus.dispatch(SimpleEvent {}).unwrap().await.unwrap();
    })
    .await;

    let levels = levels.0.lock().clone();
    assert_eq!(levels.len(), 3);
    for level in &levels {
        assert_eq!(level.request_id, "req-deep-nesting", "{level:?}");
    }
    assert_eq!(levels[0].parent_id, None, "level 1 has no parent");
    assert_eq!(levels[1].parent_id, Some(levels[0].event_id));
    assert_eq!(levels[2].parent_id, Some(levels[1].event_id));
    assert_eq!(
        levels.iter().map(|l| l.level).collect::<Vec<_>>(),
        [1, 2, 3]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_propagates_through_forwarding_and_child_dispatch_with_lineage_intact() {
    spans();
    let bus_a = EventBus::new("ParityContextForwardA");
    let bus_b = EventBus::new("ParityContextForwardB");
    let seen = Recorder::new();
    let s = seen.clone();
    bus_b.on(move |e: EventHandle<SimpleEvent>| {
        let s = s.clone();
        async move {
            s.push(format!("parent:{}", request_id()));
            let child = e.event_bus().unwrap().dispatch(ChildEvent {})?.await?;
            Ok::<_, bubus::Error>(child.event_result().await?)
        }
    });
    let s = seen.clone();
    bus_b.on(move |e: EventHandle<ChildEvent>| {
        s.push(format!("child:{}", request_id()));
        format!("child-of:{}", e.event_parent_id().unwrap())
    });
    bus_a.forward_to(&bus_b);

    let parent = with_context(RequestId("fc81f432-98cd-7a06-824c-dafed74761bb"), async {
        bus_a.dispatch(SimpleEvent {}).unwrap().await.unwrap()
    })
    .await;
    assert!(bus_b.wait_until_idle(None).await);

    assert_eq!(
        seen.entries(),
        [
            "parent:fc81f432-98cd-7a06-824c-dafed74761bb",
            "child:fc81f432-98cd-7a06-824c-dafed74761bb",
        ]
    );
    assert_eq!(
        parent.event_result().await.unwrap(),
        format!("child-of:{}", parent.event_id())
    );
    assert!(parent.event_path()[0].starts_with("ParityContextForwardA#"));
    assert!(
        parent
            .event_path()
            .iter()
            .any(|p| p.starts_with("ParityContextForwardB#"))
    );
    let found = bus_b.find::<ChildEvent>().child_of(&parent).await.unwrap();
    assert_eq!(found.event_parent_id(), Some(parent.event_id()));
}

/// Work a handler spawns with [`bubus::bus::in_current_handler`] is still part of the handler: the
/// events it dispatches are linked to the handler's event and carry the same context.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_handler_work_keeps_the_context_for_its_dispatches() {
    spans();
    let bus = EventBus::new("SpawnContextBus");
    let seen = Recorder::new();
    bus.on(|e: EventHandle<SimpleEvent>| async move {
        let bus = e.event_bus().unwrap();
        let task = tokio::spawn(bubus::bus::in_current_handler(async move {
            let seen_in_task = request_id().to_owned();
            let child = bus.dispatch(ChildEvent {})?.await?;
            Ok::<_, bubus::Error>((seen_in_task, child))
        }));
        let (seen_in_task, child) = task.await.expect("task")?;
        assert_eq!(child.event_parent_id(), Some(e.event_id()));
        Ok::<_, bubus::Error>(seen_in_task)
    });
    let s = seen.clone();
    bus.on(move |_: EventHandle<ChildEvent>| {
        s.push(format!("child:{}", request_id()));
        String::from("child_done")
    });

    let event = with_context(RequestId("req-spawned"), async {
        bus.dispatch(SimpleEvent {}).unwrap().await.unwrap()
    })
    .await;
    assert_eq!(event.event_result().await.unwrap(), "req-spawned");
    assert_eq!(seen.entries(), ["child:req-spawned"]);
}

// ---------------------------------------------------------------------------------------------
// tracing spans
// ---------------------------------------------------------------------------------------------

/// One span as it was created: its name, a readable tag, and its ancestors' tags (root first).
#[derive(Clone, Debug)]
struct SpanRecord {
    tag: String,
    bus: Option<String>,
    ancestors: Vec<String>,
}

/// A layer recording every new span with its ancestry, resolved when the span is created (span
/// ids are reused once spans close, so they are not kept).
#[derive(Clone, Default)]
struct SpanLog(Arc<Mutex<Vec<SpanRecord>>>);

struct Tag(String);

#[derive(Default)]
struct Fields {
    tag: Option<String>,
    event_type: Option<String>,
    bus: Option<String>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let value = format!("{value:?}");
        match field.name() {
            "tag" => self.tag = Some(value.trim_matches('"').to_owned()),
            "event_type" => self.event_type = Some(value),
            "bus" => self.bus = Some(value),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber + for<'a> LookupSpan<'a>> Layer<S> for SpanLog {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let name = attrs.metadata().name();
        let tag = match (name, fields.event_type, fields.tag) {
            ("bubus.handler", Some(event_type), _) => format!("handler:{event_type}"),
            (_, _, Some(tag)) => tag,
            (name, _, None) => name.to_owned(),
        };
        let Some(span) = ctx.span(id) else { return };
        let mut ancestors: Vec<String> = span
            .scope()
            .skip(1)
            .map(|s| {
                s.extensions()
                    .get::<Tag>()
                    .map_or_else(|| s.name().to_owned(), |t| t.0.clone())
            })
            .collect();
        ancestors.reverse();
        span.extensions_mut().insert(Tag(tag.clone()));
        self.0.lock().push(SpanRecord {
            tag,
            bus: fields.bus,
            ancestors,
        });
    }
}

/// The span log, installed as this test binary's global subscriber on first use.
///
/// Every test here calls it before touching a bus. `tracing` caches per call site whether any
/// subscriber wants it; a call site first hit while a test installs a thread-scoped subscriber
/// can race with that installation and stay disabled. One global subscriber, set before any bus
/// code runs in any test of this binary, leaves nothing to race.
fn spans() -> &'static SpanLog {
    static SPANS: OnceLock<SpanLog> = OnceLock::new();
    SPANS.get_or_init(|| {
        let log = SpanLog::default();
        let subscriber = tracing_subscriber::registry().with(log.clone());
        tracing::subscriber::set_global_default(subscriber)
            .expect("the only global subscriber of this test binary");
        log
    })
}

impl SpanLog {
    /// The ancestors of every span with this tag, in creation order.
    fn ancestors_of(&self, tag: &str) -> Vec<Vec<String>> {
        self.0
            .lock()
            .iter()
            .filter(|r| r.tag == tag)
            .map(|r| r.ancestors.clone())
            .collect()
    }

    /// The handler spans of `event_type` on these buses, in creation order.
    fn handlers(&self, buses: &[&EventBus], event_type: &str) -> Vec<SpanRecord> {
        let tag = format!("handler:{event_type}");
        self.0
            .lock()
            .iter()
            .filter(|r| r.tag == tag)
            .filter(|r| buses.iter().any(|b| r.bus.as_deref() == Some(b.label())))
            .cloned()
            .collect()
    }

    /// The ancestors of the handler spans of `event_type` on `bus`.
    fn handler_ancestors(&self, bus: &EventBus, event_type: &str) -> Vec<Vec<String>> {
        self.handlers(&[bus], event_type)
            .into_iter()
            .map(|r| r.ancestors)
            .collect()
    }
}

#[tokio::test]
async fn the_handler_span_is_a_child_of_the_span_current_at_dispatch() {
    let spans = spans();
    let bus = EventBus::new("SpanBus");
    bus.on(|_: EventHandle<SimpleEvent>| {
        tracing::info_span!("work", tag = "sync-work").in_scope(|| String::from("sync"))
    });
    bus.on(|_: EventHandle<SimpleEvent>| {
        async {
            tokio::task::yield_now().await;
            String::from("async")
        }
        .instrument(tracing::info_span!("work", tag = "async-work"))
    });

    let request = tracing::info_span!("request", tag = "request");
    let event = request.in_scope(|| bus.dispatch(SimpleEvent {}).unwrap());
    drop(request);
    // Processed later, by the bus's own task, outside the request span.
    event.await.unwrap();

    let handlers = spans.handlers(&[&bus], "SimpleEvent");
    assert_eq!(handlers.len(), 2);
    for handler in &handlers {
        assert_eq!(handler.ancestors, ["request"]);
        assert_eq!(handler.bus.as_deref(), Some(bus.label()));
    }
    // Spans a handler opens nest under its handler span.
    assert_eq!(
        spans.ancestors_of("sync-work"),
        [["request", "handler:SimpleEvent"]]
    );
    assert_eq!(
        spans.ancestors_of("async-work"),
        [["request", "handler:SimpleEvent"]]
    );
}

#[tokio::test]
async fn a_child_event_handler_span_nests_under_the_parent_handler_span() {
    let spans = spans();
    let bus = EventBus::new("NestedSpanBus");
    bus.on(|e: EventHandle<SimpleEvent>| async move {
        let bus = e.event_bus().unwrap();
        // Awaited (processed here) and queued (processed later by the run loop).
        bus.dispatch(OtherEvent {})?;
        bus.dispatch(ChildEvent {})?.await?;
        Ok::<_, bubus::Error>(String::from("parent"))
    });
    bus.on(|e: EventHandle<ChildEvent>| async move {
        e.event_bus().unwrap().dispatch(Level2Event {})?.await?;
        Ok::<_, bubus::Error>(String::from("child"))
    });
    bus.on(|_: EventHandle<Level2Event>| String::from("grandchild"));
    bus.on(|_: EventHandle<OtherEvent>| String::from("other"));

    let root = tracing::info_span!("root", tag = "root");
    let event = root.in_scope(|| bus.dispatch(SimpleEvent {}).unwrap());
    let event = event.await.unwrap();
    assert!(event.is_complete());

    assert_eq!(spans.handler_ancestors(&bus, "SimpleEvent"), [["root"]]);
    assert_eq!(
        spans.handler_ancestors(&bus, "ChildEvent"),
        [["root", "handler:SimpleEvent"]]
    );
    assert_eq!(
        spans.handler_ancestors(&bus, "OtherEvent"),
        [["root", "handler:SimpleEvent"]]
    );
    assert_eq!(
        spans.handler_ancestors(&bus, "Level2Event"),
        [["root", "handler:SimpleEvent", "handler:ChildEvent"]]
    );
}

/// The parent is the span of the dispatch, not of whoever processes the event: an event
/// dispatched outside any span and queue-jumped from inside another event's handler gets a root
/// handler span.
#[tokio::test]
async fn the_processing_site_does_not_parent_the_handler_span() {
    let spans = spans();
    let bus = EventBus::new("ProcessingSiteBus");
    bus.on(|_: EventHandle<OtherEvent>| String::from("other"));
    let detached: Arc<Mutex<Option<EventHandle<OtherEvent>>>> = Arc::default();
    let d = Arc::clone(&detached);
    bus.on(move |_: EventHandle<SimpleEvent>| {
        let other = d
            .lock()
            .take()
            .expect("dispatched before this handler runs");
        async move {
            // Still queued behind this event: processed right here, inside this handler's span.
            other.await?;
            Ok::<_, bubus::Error>(String::from("waited"))
        }
    });

    let request = tracing::info_span!("request", tag = "request");
    let trigger = request.in_scope(|| bus.dispatch(SimpleEvent {}).unwrap());
    *detached.lock() = Some(bus.dispatch(OtherEvent {}).unwrap());
    trigger.await.unwrap();

    assert_eq!(spans.handler_ancestors(&bus, "SimpleEvent"), [["request"]]);
    assert_eq!(
        spans.handler_ancestors(&bus, "OtherEvent"),
        [Vec::<String>::new()]
    );
}

#[tokio::test]
async fn forwarded_handlers_keep_the_original_dispatch_span() {
    let spans = spans();
    let bus_a = EventBus::new("SpanForwardA");
    let bus_b = EventBus::new("SpanForwardB");
    for bus in [&bus_a, &bus_b] {
        bus.on(|_: EventHandle<SimpleEvent>| String::from("ok"));
    }
    bus_a.forward_to(&bus_b);

    let request = tracing::info_span!("request", tag = "request");
    request
        .in_scope(|| bus_a.dispatch(SimpleEvent {}).unwrap())
        .await
        .unwrap();

    let handlers = spans.handlers(&[&bus_a, &bus_b], "SimpleEvent");
    let buses: Vec<_> = handlers.iter().filter_map(|r| r.bus.clone()).collect();
    // Bus A's handler, its forwarder, then bus B's handler.
    assert_eq!(
        buses,
        [bus_a.label(), bus_a.label(), bus_b.label()],
        "{handlers:?}"
    );
    for record in handlers {
        assert_eq!(record.ancestors, ["request"], "{record:?}");
    }
}

/// Without any span at dispatch, handler spans are roots.
#[tokio::test]
async fn without_a_dispatch_span_handler_spans_are_roots() {
    let spans = spans();
    let bus = EventBus::new("RootSpanBus");
    bus.on(|_: EventHandle<SimpleEvent>| String::from("ok"));
    bus.dispatch(SimpleEvent {}).unwrap().await.unwrap();
    assert_eq!(
        spans.handler_ancestors(&bus, "SimpleEvent"),
        [Vec::<String>::new()]
    );
}
