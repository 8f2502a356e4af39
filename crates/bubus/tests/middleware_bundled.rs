//! The bundled middlewares (semantics §1.19): ports the `TestLoggerMiddleware`, auto-event and
//! `OtelTracingMiddleware` tests of `tests/test_middleware.py`.
//!
//! `LoggerMiddleware` (tracing event, file, writer, stdout, debug tree), `TracingMiddleware`
//! (spans, their fields and parents, errors, cleanup) and the auto-event middlewares
//! (`{Type}ErrorEvent`, `{Type}ResultEvent`, `BusHandler(Un)registeredEvent`).
//!
//! Spans and log events are captured by a recording `tracing` layer installed once, as the global
//! subscriber of this test binary (a per-thread default subscriber can race with tracing's
//! callsite-interest cache across test threads and leave spans disabled). Every test calls
//! [`recording::init`] first and uses its own bus names, by which it picks its spans and events.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bubus::middleware::{
    AutoErrorEventMiddleware, AutoHandlerChangeEventMiddleware, AutoReturnEventMiddleware,
    LoggerMiddleware, TracingMiddleware,
};
use bubus::{
    AnyEvent, DynEvent, EventBus, EventHandle, HandlerError, error::WireError,
    handler::HandlerOptions,
};
use bubus_test_support::Recorder;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod recording {
    //! A `tracing` layer that keeps every span (fields, parent, whether it closed) and event.

    use std::collections::BTreeMap;
    use std::fmt;
    use std::sync::{Mutex, MutexGuard, Once};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Subscriber};
    use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
    use tracing_subscriber::registry::LookupSpan;

    #[derive(Clone, Debug)]
    pub(crate) struct SpanRec {
        pub(crate) serial: usize,
        pub(crate) name: &'static str,
        pub(crate) target: String,
        pub(crate) fields: BTreeMap<String, String>,
        pub(crate) parent: Option<usize>,
        pub(crate) closed: bool,
    }

    impl SpanRec {
        pub(crate) fn field(&self, name: &str) -> Option<&str> {
            self.fields.get(name).map(String::as_str)
        }
    }

    #[derive(Clone, Debug)]
    pub(crate) struct EventRec {
        pub(crate) level: Level,
        pub(crate) target: String,
        pub(crate) fields: BTreeMap<String, String>,
        /// The span it was emitted in.
        pub(crate) span: Option<usize>,
    }

    impl EventRec {
        pub(crate) fn field(&self, name: &str) -> Option<&str> {
            self.fields.get(name).map(String::as_str)
        }
    }

    #[derive(Default)]
    pub(crate) struct Log {
        pub(crate) spans: Vec<SpanRec>,
        pub(crate) events: Vec<EventRec>,
    }

    static LOG: Mutex<Log> = Mutex::new(Log {
        spans: Vec::new(),
        events: Vec::new(),
    });

    pub(crate) fn log() -> MutexGuard<'static, Log> {
        LOG.lock().unwrap_or_else(|e| e.into_inner())
    }

    struct Serial(usize);

    struct Fields<'a>(&'a mut BTreeMap<String, String>);

    impl Visit for Fields<'_> {
        fn record_str(&mut self, field: &Field, value: &str) {
            self.0.insert(field.name().to_owned(), value.to_owned());
        }

        fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
            self.0.insert(field.name().to_owned(), format!("{value:?}"));
        }
    }

    struct Recording;

    impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Recording {
        fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
            let Some(span) = ctx.span(id) else { return };
            let parent = span
                .parent()
                .and_then(|p| p.extensions().get::<Serial>().map(|s| s.0));
            let mut fields = BTreeMap::new();
            attrs.record(&mut Fields(&mut fields));
            let mut log = log();
            let serial = log.spans.len();
            log.spans.push(SpanRec {
                serial,
                name: attrs.metadata().name(),
                target: attrs.metadata().target().to_owned(),
                fields,
                parent,
                closed: false,
            });
            span.extensions_mut().insert(Serial(serial));
        }

        fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
            let Some(serial) = ctx
                .span(id)
                .and_then(|s| s.extensions().get::<Serial>().map(|s| s.0))
            else {
                return;
            };
            let mut log = log();
            values.record(&mut Fields(&mut log.spans[serial].fields));
        }

        fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
            let span = ctx
                .event_span(event)
                .and_then(|s| s.extensions().get::<Serial>().map(|s| s.0));
            let mut fields = BTreeMap::new();
            event.record(&mut Fields(&mut fields));
            log().events.push(EventRec {
                level: *event.metadata().level(),
                target: event.metadata().target().to_owned(),
                fields,
                span,
            });
        }

        fn on_close(&self, id: Id, ctx: Context<'_, S>) {
            if let Some(serial) = ctx
                .span(&id)
                .and_then(|s| s.extensions().get::<Serial>().map(|s| s.0))
            {
                log().spans[serial].closed = true;
            }
        }
    }

    /// Installs the recording layer as the global subscriber (once per test binary).
    pub(crate) fn init() {
        static INIT: Once = Once::new();
        INIT.call_once(|| {
            let subscriber = tracing_subscriber::registry().with(Recording);
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
        });
    }

    /// The middleware's spans (not the core's) on buses whose label starts with `bus_name#`.
    pub(crate) fn spans_of(bus_name: &str) -> Vec<SpanRec> {
        let prefix = format!("{bus_name}#");
        log()
            .spans
            .iter()
            .filter(|s| s.target == "bubus::middleware::tracing")
            .filter(|s| {
                s.field("bubus.bus_name")
                    .is_some_and(|b| b.starts_with(&prefix))
            })
            .cloned()
            .collect()
    }

    /// Events whose `bus` field is a label of a bus named `bus_name`.
    pub(crate) fn events_of(bus_name: &str) -> Vec<EventRec> {
        let prefix = format!("{bus_name}#");
        log()
            .events
            .iter()
            .filter(|e| e.field("bus").is_some_and(|b| b.starts_with(&prefix)))
            .cloned()
            .collect()
    }
}

use recording::SpanRec;

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct UserActionEvent {
    action: String,
    user_id: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct RootEvent {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct ChildEvent {}

#[derive(Clone, Debug, Default, Serialize, Deserialize, bubus::Event)]
struct SideEvent {}

/// `{Type}ErrorEvent` as a typed event: a typed handler decodes the dynamic event into it.
#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct UserActionEventErrorEvent {
    error: WireError,
    error_type: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
#[event(result = String)]
struct UserActionEventResultEvent {
    data: Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct HandlerInfo {
    id: String,
    handler_name: String,
    handler_file_path: Option<String>,
    handler_timeout: Option<f64>,
    handler_registered_at: String,
    event_pattern: String,
    eventbus_id: String,
    eventbus_name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
struct BusHandlerRegisteredEvent {
    handler: HandlerInfo,
}

#[derive(Clone, Debug, Serialize, Deserialize, bubus::Event)]
struct BusHandlerUnregisteredEvent {
    handler: HandlerInfo,
}

fn user_action(action: &str) -> UserActionEvent {
    UserActionEvent {
        action: action.into(),
        user_id: "1d4087d7-e791-702f-80b9-0fb09b726bc6".into(),
    }
}

/// A writer the test can read back.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).into_owned()
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("bubus-mw-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Splits a log line `[{label}] {json}`.
fn parse_line(line: &str) -> (String, Value) {
    let rest = line.strip_prefix('[').expect("starts with [");
    let (label, json) = rest.split_once("] ").expect("has ] ");
    (
        label.to_owned(),
        serde_json::from_str(json).expect("summary is JSON"),
    )
}

// ---------------------------------------------------------------------------------------------
// LoggerMiddleware

#[tokio::test]
async fn logger_emits_a_tracing_event_with_the_summary_when_an_event_completes()
-> Result<(), bubus::Error> {
    recording::init();
    let bus = EventBus::builder("LoggerTracingBus")
        .middleware(Arc::new(LoggerMiddleware::new()))
        .build();
    bus.on(|_: EventHandle<UserActionEvent>| "logged".to_owned());

    let event = bus.dispatch(user_action("log"))?;
    event.clone().await?;

    let infos: Vec<_> = recording::events_of("LoggerTracingBus")
        .into_iter()
        .filter(|e| e.target == "bubus::middleware::logger" && e.level == tracing::Level::INFO)
        .collect();
    assert_eq!(infos.len(), 1, "one line per completed event: {infos:?}");
    let info = &infos[0];
    assert_eq!(info.field("bus"), Some(bus.label()));
    assert_eq!(info.field("event_type"), Some("UserActionEvent"));
    assert_eq!(
        info.field("event_id"),
        Some(event.event_id().to_string().as_str())
    );
    let message = info.field("message").expect("a message");
    assert!(message.contains("completed event"), "{message}");
    assert!(
        message.contains(r#""event_status":"completed""#),
        "{message}"
    );
    assert!(
        !message.contains("user_id"),
        "no payload in the log: {message}"
    );
    Ok(())
}

#[tokio::test]
async fn logger_appends_lines_to_a_file_creating_its_directory()
-> Result<(), Box<dyn std::error::Error>> {
    recording::init();
    let dir = temp_dir("logger-file");
    let path = dir.join("nested").join("dirs").join("events.log");
    let bus = EventBus::builder("LoggerFileBus")
        .middleware(Arc::new(LoggerMiddleware::new().file(&path)?))
        .build();
    bus.on(|_: EventHandle<UserActionEvent>| "logged".to_owned());

    let first = bus.dispatch(user_action("one"))?;
    first.clone().await?;
    let second = bus.dispatch(user_action("two"))?;
    second.clone().await?;

    let contents = std::fs::read_to_string(&path)?;
    let lines: Vec<&str> = contents.lines().collect();
    assert_eq!(lines.len(), 2, "{contents}");
    for (line, event) in lines.iter().zip([&first, &second]) {
        let (label, summary) = parse_line(line);
        assert_eq!(label, bus.label());
        assert_eq!(summary["event_type"], "UserActionEvent");
        assert_eq!(summary["event_id"], event.event_id().to_string());
        assert_eq!(summary["event_status"], "completed");
        let object = summary.as_object().expect("an object");
        assert!(object.keys().all(|k| k.starts_with("event_")), "{object:?}");
        assert!(!object.contains_key("event_results"));
        assert!(!line.contains("user_id"));
    }
    std::fs::remove_dir_all(&dir).ok();
    Ok(())
}

#[tokio::test]
async fn logger_writes_to_any_writer_and_names_the_completing_bus() -> Result<(), bubus::Error> {
    recording::init();
    let out = SharedBuf::default();
    let logger = Arc::new(LoggerMiddleware::new().writer(out.clone()));
    let bus_a = EventBus::builder("LoggerWriterA")
        .middleware(logger.clone())
        .build();
    let bus_b = EventBus::builder("LoggerWriterB")
        .middleware(logger.clone())
        .build();
    bus_a.forward_to(&bus_b);
    bus_b.on(|_: EventHandle<UserActionEvent>| "b".to_owned());

    bus_a.dispatch(user_action("forwarded"))?.await?;

    // One middleware on two buses: the event completes once, so one line.
    let text = out.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let (label, summary) = parse_line(lines[0]);
    assert!(label == bus_a.label() || label == bus_b.label(), "{label}");
    assert_eq!(summary["event_path"], json!([bus_a.label(), bus_b.label()]));
    Ok(())
}

#[tokio::test]
async fn logger_logs_the_bus_tree_at_debug_level() -> Result<(), bubus::Error> {
    recording::init();
    let bus = EventBus::builder("LoggerTreeBus")
        .middleware(Arc::new(LoggerMiddleware::new()))
        .build();
    bus.on(|_: EventHandle<UserActionEvent>| "tree".to_owned());
    bus.dispatch(user_action("tree"))?.await?;

    // The recording subscriber enables DEBUG everywhere, so the tree is logged (by `log_tree`).
    let tree_lines: Vec<String> = recording::events_of("LoggerTreeBus")
        .into_iter()
        .filter(|e| e.level == tracing::Level::DEBUG)
        .filter_map(|e| e.field("message").map(str::to_owned))
        .collect();
    assert!(
        tree_lines.iter().any(|l| l.contains("UserActionEvent")),
        "{tree_lines:?}"
    );
    Ok(())
}

/// Runs in a child process (see the next test): one event on a bus logging to stdout.
#[tokio::test]
#[ignore = "run as a child process by logger_prints_lines_to_stdout"]
async fn logger_stdout_child() -> Result<(), bubus::Error> {
    let bus = EventBus::builder("LoggerStdoutBus")
        .middleware(Arc::new(LoggerMiddleware::new().stdout()))
        .build();
    bus.on(|_: EventHandle<UserActionEvent>| "stdout".to_owned());
    bus.dispatch(user_action("stdout"))?.await?;
    Ok(())
}

#[test]
fn logger_prints_lines_to_stdout() {
    recording::init();
    let output = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "logger_stdout_child", "--ignored", "--nocapture"])
        .output()
        .expect("run the child");
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("[LoggerStdoutBus#"))
        .unwrap_or_else(|| panic!("no log line in {stdout}"));
    let (_, summary) = parse_line(line);
    assert_eq!(summary["event_type"], "UserActionEvent");
    assert!(!line.contains("user_id"));
    assert!(!String::from_utf8_lossy(&output.stderr).contains("[LoggerStdoutBus#"));
}

// ---------------------------------------------------------------------------------------------
// TracingMiddleware

fn find<'a>(spans: &'a [SpanRec], what: &str, pred: impl Fn(&SpanRec) -> bool) -> &'a SpanRec {
    let found: Vec<&SpanRec> = spans.iter().filter(|s| pred(s)).collect();
    assert_eq!(found.len(), 1, "exactly one {what} span in {spans:#?}");
    found[0]
}

fn event_span<'a>(spans: &'a [SpanRec], event_type: &str) -> &'a SpanRec {
    find(spans, event_type, |s| {
        s.name == "bubus.event" && s.field("bubus.event_type") == Some(event_type)
    })
}

fn handler_span<'a>(spans: &'a [SpanRec], handler_name: &str) -> &'a SpanRec {
    find(spans, handler_name, |s| {
        s.name == "bubus.handler" && s.field("bubus.handler_name") == Some(handler_name)
    })
}

#[tokio::test]
async fn tracing_spans_nest_events_and_handlers_like_the_event_tree() -> Result<(), bubus::Error> {
    recording::init();
    let tracing_mw = Arc::new(TracingMiddleware::new());
    let bus = EventBus::builder("TraceBus")
        .middleware(tracing_mw.clone())
        .build();
    bus.on_with(
        |_: EventHandle<RootEvent>| async {
            let bus = bubus::bus::current_bus().expect("in a handler");
            // Awaited (queue-jump) and fire-and-forget children both nest under this handler.
            let child = bus.dispatch(ChildEvent {})?;
            bus.dispatch(SideEvent {})?;
            child.event_result().await.map_err(bubus::Error::from)
        },
        HandlerOptions::new().name("root_handler"),
    );
    bus.on_with(
        |_: EventHandle<ChildEvent>| "child".to_owned(),
        HandlerOptions::new().name("child_handler"),
    );
    bus.on_with(
        |_: EventHandle<SideEvent>| {},
        HandlerOptions::new().name("side_handler"),
    );

    let root = bus.dispatch(RootEvent {})?;
    assert_eq!(root.event_result().await?, "child");
    assert!(bus.wait_until_idle(Some(Duration::from_secs(5))).await);

    let spans = recording::spans_of("TraceBus");
    let root_span = event_span(&spans, "RootEvent");
    let root_handler = handler_span(&spans, "root_handler");
    let child_span = event_span(&spans, "ChildEvent");
    let child_handler = handler_span(&spans, "child_handler");
    let side_span = event_span(&spans, "SideEvent");
    let side_handler = handler_span(&spans, "side_handler");

    assert_eq!(
        root_span.parent, None,
        "a top-level dispatch outside any span is a root"
    );
    assert_eq!(root_handler.parent, Some(root_span.serial));
    assert_eq!(child_span.parent, Some(root_handler.serial));
    assert_eq!(child_handler.parent, Some(child_span.serial));
    assert_eq!(side_span.parent, Some(root_handler.serial));
    assert_eq!(side_handler.parent, Some(side_span.serial));
    assert_eq!(spans.len(), 6, "{spans:#?}");

    // The reference's attributes.
    let child = &root.event_children()[0];
    assert_eq!(root_span.field("bubus.kind"), Some("event"));
    assert_eq!(
        root_span.field("bubus.event_id"),
        Some(root.event_id().to_string().as_str())
    );
    assert_eq!(
        root_span.field("bubus.bus_id"),
        Some(bus.id().to_string().as_str())
    );
    assert_eq!(root_span.field("bubus.bus_name"), Some(bus.label()));
    assert_eq!(root_span.field("bubus.event_parent_id"), None);
    assert_eq!(root_span.field("otel.name"), Some("bubus.event.RootEvent"));
    assert_eq!(
        child_span.field("bubus.event_parent_id"),
        Some(root.event_id().to_string().as_str())
    );
    assert_eq!(
        child_span.field("bubus.event_id"),
        Some(child.event_id().to_string().as_str())
    );
    assert_eq!(root_handler.field("bubus.kind"), Some("handler"));
    assert_eq!(root_handler.field("bubus.event_type"), Some("RootEvent"));
    assert_eq!(root_handler.field("bubus.bus_name"), Some(bus.label()));
    assert_eq!(
        root_handler.field("otel.name"),
        Some("bubus.handler.root_handler")
    );
    assert_eq!(root_handler.field("bubus.result_status"), Some("completed"));
    let root_result = &root.event_results()[0];
    assert_eq!(
        root_handler.field("bubus.handler_id"),
        Some(root_result.handler_id.as_str())
    );

    assert!(
        spans.iter().all(|s| s.closed),
        "every span closed: {spans:#?}"
    );
    assert_eq!(
        tracing_mw.open_events(),
        0,
        "nothing kept for finished events"
    );
    Ok(())
}

#[tokio::test]
async fn tracing_records_handler_errors_on_the_handler_span() -> Result<(), bubus::Error> {
    recording::init();
    let bus = EventBus::builder("TraceErrorBus")
        .middleware(Arc::new(TracingMiddleware::new()))
        .build();
    bus.on_with(
        |_: EventHandle<UserActionEvent>| Err::<String, _>(HandlerError::new("ValueError", "boom")),
        HandlerOptions::new().name("failing_handler"),
    );
    bus.dispatch(user_action("fail"))?.await?;

    let spans = recording::spans_of("TraceErrorBus");
    let handler = handler_span(&spans, "failing_handler");
    assert_eq!(handler.field("otel.status_code"), Some("ERROR"));
    assert_eq!(
        handler.field("otel.status_message"),
        Some("ValueError: boom")
    );
    assert_eq!(handler.field("bubus.result_status"), Some("error"));
    let exceptions: Vec<_> = recording::log()
        .events
        .iter()
        .filter(|e| e.span == Some(handler.serial) && e.field("message") == Some("exception"))
        .cloned()
        .collect();
    assert_eq!(exceptions.len(), 1);
    assert_eq!(exceptions[0].level, tracing::Level::ERROR);
    assert_eq!(exceptions[0].field("exception.type"), Some("ValueError"));
    assert_eq!(exceptions[0].field("exception.message"), Some("boom"));
    assert!(spans.iter().all(|s| s.closed));
    Ok(())
}

#[tokio::test]
async fn tracing_parents_a_top_level_event_to_the_span_current_at_dispatch()
-> Result<(), bubus::Error> {
    recording::init();
    let bus = EventBus::builder("TraceRequestBus")
        .middleware(Arc::new(TracingMiddleware::new()))
        .build();
    bus.on(|_: EventHandle<RootEvent>| "ok".to_owned());

    let request = tracing::info_span!("test.request", test = "TraceRequestBus");
    let event = {
        let _entered = request.enter();
        bus.dispatch(RootEvent {})?
    };
    event.await?;
    drop(request);

    let request_serial = recording::log()
        .spans
        .iter()
        .find(|s| s.name == "test.request" && s.field("test") == Some("TraceRequestBus"))
        .map(|s| s.serial)
        .expect("request span recorded");
    let spans = recording::spans_of("TraceRequestBus");
    assert_eq!(event_span(&spans, "RootEvent").parent, Some(request_serial));
    Ok(())
}

#[tokio::test]
async fn tracing_gives_a_forwarded_event_a_span_per_bus_under_the_forwarder()
-> Result<(), bubus::Error> {
    recording::init();
    let tracing_mw = Arc::new(TracingMiddleware::new());
    let bus_a = EventBus::builder("TraceFwdA")
        .middleware(tracing_mw.clone())
        .build();
    let bus_b = EventBus::builder("TraceFwdB")
        .middleware(tracing_mw.clone())
        .build();
    bus_a.on_with(
        bus_b.forwarder(),
        HandlerOptions::new().pattern("*").name("forward_to_b"),
    );
    bus_b.on_with(
        |_: EventHandle<RootEvent>| "b".to_owned(),
        HandlerOptions::new().name("b_handler"),
    );

    bus_a.dispatch(RootEvent {})?.await?;

    let a = recording::spans_of("TraceFwdA");
    let b = recording::spans_of("TraceFwdB");
    let a_event = event_span(&a, "RootEvent");
    let forwarder = handler_span(&a, "forward_to_b");
    let b_event = event_span(&b, "RootEvent");
    let b_handler = handler_span(&b, "b_handler");
    assert_eq!(forwarder.parent, Some(a_event.serial));
    assert_eq!(b_event.parent, Some(forwarder.serial));
    assert_eq!(b_handler.parent, Some(b_event.serial));
    assert!(a.iter().chain(&b).all(|s| s.closed), "{a:#?} {b:#?}");
    assert_eq!(tracing_mw.open_events(), 0);
    Ok(())
}

#[tokio::test]
async fn tracing_gives_an_event_without_handlers_one_closed_span() -> Result<(), bubus::Error> {
    recording::init();
    let tracing_mw = Arc::new(TracingMiddleware::new());
    let bus = EventBus::builder("TraceNoHandlerBus")
        .middleware(tracing_mw.clone())
        .build();
    bus.dispatch(DynEvent::new("Nobody", json!({})).unwrap())?
        .await?;

    let spans = recording::spans_of("TraceNoHandlerBus");
    assert_eq!(spans.len(), 1, "{spans:#?}");
    assert_eq!(spans[0].field("bubus.event_type"), Some("Nobody"));
    assert!(spans[0].closed);
    assert_eq!(tracing_mw.open_events(), 0);
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn tracing_keeps_nothing_after_many_events_timeouts_and_cancellations()
-> Result<(), bubus::Error> {
    recording::init();
    let tracing_mw = Arc::new(TracingMiddleware::new());
    let bus = EventBus::builder("TraceCleanupBus")
        .middleware(tracing_mw.clone())
        .build();
    bus.on(|event: EventHandle<UserActionEvent>| async move {
        if event.action == "slow" {
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
        "done".to_owned()
    });
    let mut handles = Vec::new();
    for i in 0..100 {
        let action = if i % 10 == 0 { "slow" } else { "fast" };
        handles.push(bus.dispatch(
            EventHandle::new(user_action(action)).with_event_timeout(Duration::from_secs(1)),
        )?);
    }
    for handle in handles {
        handle.await?;
    }
    assert!(bus.wait_until_idle(Some(Duration::from_secs(60))).await);

    let spans = recording::spans_of("TraceCleanupBus");
    assert_eq!(
        spans.len(),
        200,
        "an event span and a handler span per event"
    );
    assert!(spans.iter().all(|s| s.closed));
    assert_eq!(tracing_mw.open_events(), 0);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Auto-event middlewares

#[tokio::test]
async fn auto_error_events_are_dispatched_and_do_not_recurse() -> Result<(), bubus::Error> {
    recording::init();
    let bus = EventBus::builder("AutoErrorBus")
        .middleware(Arc::new(AutoErrorEventMiddleware::new()))
        .build();
    let seen = Recorder::new();
    bus.on(|_: EventHandle<UserActionEvent>| {
        Err::<String, _>(HandlerError::new("ValueError", "boom"))
    });
    let s = seen.clone();
    bus.on(move |event: EventHandle<UserActionEventErrorEvent>| {
        s.push(format!("{}:{}", event.event_type(), event.error_type));
        event.error.message.clone()
    });
    // A failing handler of the error event must not produce an ...ErrorEventErrorEvent.
    bus.on(|_: EventHandle<UserActionEventErrorEvent>| {
        Err::<String, _>(HandlerError::new("RuntimeError", "nested"))
    });

    bus.dispatch(user_action("fail"))?.await?;
    assert!(bus.wait_until_idle(Some(Duration::from_secs(5))).await);

    assert_eq!(seen.entries(), ["UserActionEventErrorEvent:ValueError"]);
    let error_event = bus
        .find_pattern("UserActionEventErrorEvent")
        .past()
        .no_future()
        .await
        .expect("dispatched");
    let json = error_event.to_json();
    assert_eq!(
        json["error"],
        json!({"type": "ValueError", "message": "boom"})
    );
    assert_eq!(json["error_type"], "ValueError");
    assert!(
        error_event.event_parent_id().is_none(),
        "not a child of the failed event"
    );
    assert!(
        bus.find_pattern("UserActionEventErrorEventErrorEvent")
            .past()
            .no_future()
            .await
            .is_none()
    );
    Ok(())
}

#[tokio::test(start_paused = true)]
async fn auto_error_events_cover_timeouts_and_skip_result_events() -> Result<(), bubus::Error> {
    recording::init();
    let bus = EventBus::builder("AutoErrorTimeoutBus")
        .middleware(Arc::new(AutoErrorEventMiddleware::new()))
        .build();
    bus.on_with(
        |_: EventHandle<UserActionEvent>| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late".to_owned()
        },
        HandlerOptions::new().timeout(Some(Duration::from_millis(100))),
    );
    bus.on_pattern("SomethingResultEvent", |_: AnyEvent| {
        Err::<(), _>(HandlerError::new("ValueError", "ignored"))
    });

    bus.dispatch(user_action("slow"))?.await?;
    bus.dispatch(DynEvent::new("SomethingResultEvent", json!({})).unwrap())?
        .await?;
    assert!(bus.wait_until_idle(Some(Duration::from_secs(5))).await);

    let error_event = bus
        .find_pattern("UserActionEventErrorEvent")
        .past()
        .no_future()
        .await
        .expect("dispatched");
    assert_eq!(
        error_event.to_json()["error_type"],
        "EventHandlerTimeoutError"
    );
    assert!(
        bus.find_pattern("SomethingResultEventErrorEvent")
            .past()
            .no_future()
            .await
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn auto_result_events_carry_the_value_and_do_not_recurse() -> Result<(), bubus::Error> {
    recording::init();
    let bus = EventBus::builder("AutoReturnBus")
        .middleware(Arc::new(AutoReturnEventMiddleware::new()))
        .build();
    let seen = Recorder::new();
    bus.on_pattern("UserActionEvent", |_: AnyEvent| json!(123));
    // Null results, failures: no result event.
    bus.on_pattern("UserActionEvent", |_: AnyEvent| {});
    bus.on_pattern("UserActionEvent", |_: AnyEvent| {
        Err::<(), _>(HandlerError::new("ValueError", "no"))
    });
    let s = seen.clone();
    bus.on(move |event: EventHandle<UserActionEventResultEvent>| {
        s.push(format!("{}:{}", event.event_type(), event.data));
        "nested".to_owned()
    });

    // Dynamic, so its handlers may return any JSON (as the reference's untyped handlers).
    let event = DynEvent::new("UserActionEvent", json!({"action": "ok", "user_id": "u1"})).unwrap();
    bus.dispatch(event)?.await?;
    assert!(bus.wait_until_idle(Some(Duration::from_secs(5))).await);

    assert_eq!(seen.entries(), ["UserActionEventResultEvent:123"]);
    let result_events: Vec<AnyEvent> = bus
        .event_history()
        .into_iter()
        .filter(|e| e.event_type().ends_with("ResultEvent"))
        .collect();
    assert_eq!(
        result_events.len(),
        1,
        "the nested handler's value is not re-published"
    );
    assert_eq!(result_events[0].to_json()["data"], 123);
    Ok(())
}

#[tokio::test]
async fn auto_result_events_skip_forwarded_events() -> Result<(), bubus::Error> {
    recording::init();
    let bus = EventBus::builder("AutoReturnForwardBus")
        .middleware(Arc::new(AutoReturnEventMiddleware::new()))
        .build();
    let other = EventBus::new("AutoReturnForwardTarget");
    // The forwarding handler's result is the event itself (the reference skips BaseEvent results).
    bus.forward_to(&other);

    let event = bus.dispatch(user_action("forwarded"))?;
    event.clone().await?;
    assert!(bus.wait_until_idle(Some(Duration::from_secs(5))).await);

    assert_eq!(event.event_results().len(), 1);
    assert!(event.event_results()[0].forwarded_event_id.is_some());
    assert!(
        bus.find_pattern("UserActionEventResultEvent")
            .past()
            .no_future()
            .await
            .is_none()
    );
    Ok(())
}

#[tokio::test]
async fn auto_handler_change_events_announce_on_and_off() -> Result<(), bubus::Error> {
    recording::init();
    let bus = EventBus::builder("AutoHandlerChangeBus")
        .middleware(Arc::new(AutoHandlerChangeEventMiddleware::new()))
        .build();
    let registered: Arc<Mutex<Vec<HandlerInfo>>> = Arc::default();
    let unregistered: Arc<Mutex<Vec<HandlerInfo>>> = Arc::default();
    let r = registered.clone();
    bus.on(move |event: EventHandle<BusHandlerRegisteredEvent>| {
        r.lock().push(event.handler.clone());
    });
    let u = unregistered.clone();
    bus.on(move |event: EventHandle<BusHandlerUnregisteredEvent>| {
        u.lock().push(event.handler.clone());
    });

    let target = bus.on_with(
        |_: EventHandle<UserActionEvent>| "target".to_owned(),
        HandlerOptions::new()
            .name("target_handler")
            .timeout(Some(Duration::from_millis(2500))),
    );
    assert!(bus.wait_until_idle(Some(Duration::from_secs(5))).await);
    assert!(bus.off(&target));
    assert!(bus.wait_until_idle(Some(Duration::from_secs(5))).await);

    let matching = |list: &Mutex<Vec<HandlerInfo>>| -> Vec<HandlerInfo> {
        list.lock()
            .iter()
            .filter(|h| h.id == target.id().as_str())
            .cloned()
            .collect()
    };
    let on = matching(&registered);
    let off = matching(&unregistered);
    assert_eq!(on.len(), 1);
    assert_eq!(off.len(), 1);
    for info in [&on[0], &off[0]] {
        assert_eq!(info.eventbus_id, bus.id().to_string());
        assert_eq!(info.eventbus_name, bus.name());
        assert_eq!(info.event_pattern, "UserActionEvent");
        assert_eq!(info.handler_name, "target_handler");
        assert_eq!(info.handler_timeout, Some(2.5));
        assert_eq!(
            info.handler_registered_at,
            target.handler_registered_at().to_string()
        );
        assert_eq!(
            info.handler_file_path.as_deref(),
            target.handler_file_path()
        );
    }
    // The handler of the registered event saw its own registration too (it ran once the event
    // was processed, after it was registered).
    assert_eq!(registered.lock().len(), 3, "{:?}", registered.lock());
    Ok(())
}

#[test]
fn auto_event_dispatch_failures_are_logged_not_raised() {
    recording::init();
    // No tokio runtime here: registering a handler cannot dispatch the event.
    let bus = EventBus::builder("AutoNoRuntimeBus")
        .middleware(Arc::new(AutoHandlerChangeEventMiddleware::new()))
        .build();
    let handler = bus.on(|_: EventHandle<UserActionEvent>| "x".to_owned());
    assert!(bus.off(&handler));

    let warnings: Vec<_> = recording::events_of("AutoNoRuntimeBus")
        .into_iter()
        .filter(|e| e.level == tracing::Level::WARN && e.target == "bubus::middleware")
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[0]
            .field("message")
            .is_some_and(|m| m.contains("handler change")),
        "{warnings:?}"
    );
}
