//! `EventBus::log_tree`: the parent/child tree of a bus's history.
//!
//! Ports the behaviour of the reference suites `tests/test_eventbus_log_tree.py` and
//! `bubus-ts/tests/eventbus_log_tree.test.ts`. The reference tests hand-insert events and results
//! into the history; here every tree comes from really dispatching events.
//!
//! The format follows the Python runtime: no status icon before event lines (TypeScript adds
//! one), strings quoted `'like this'` (TypeScript prints JSON), no header or rulers in the
//! returned text. Unlike Python, and like TypeScript, an event whose parent is not in this bus's
//! history is shown as a root rather than dropped.

use std::sync::Arc;

use bubus::{
    AnyEvent, DynEvent, Event, EventBus, EventHandle, handler::EventHandler,
    handler::HandlerOptions, time::Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, Semaphore};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct RootEvent {
    data: String,
}

fn root(data: &str) -> RootEvent {
    RootEvent { data: data.into() }
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = Vec<u32>)]
struct ChildEvent {
    value: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = Option<String>)]
struct GrandchildEvent {
    level: u32,
}

/// The tree with every ` [clock (duration)]` removed, so its shape can be compared exactly.
fn shape(tree: &str) -> String {
    tree.lines()
        .map(strip_timing)
        .collect::<Vec<_>>()
        .join("\n")
}

fn strip_timing(line: &str) -> String {
    let mut out = String::new();
    let mut rest = line;
    while let Some(start) = rest.find(" [") {
        let Some(len) = rest[start..].find(']') else {
            break;
        };
        out.push_str(&rest[..start]);
        rest = &rest[start + len + 1..];
    }
    out.push_str(rest);
    out
}

/// `HH:MM:SS.mmm` (UTC), as the tree prints times.
fn clock(at: Timestamp) -> String {
    at.to_string()[11..23].to_owned()
}

/// ` [clock (d.ddds)]`, or ` [clock]` while unfinished.
fn timing(start: Timestamp, end: Option<Timestamp>) -> String {
    match end {
        Some(end) => format!(
            " [{} ({:.3}s)]",
            clock(start),
            end.duration_since(start).as_secs_f64()
        ),
        None => format!(" [{}]", clock(start)),
    }
}

/// `Bus#abcd.handler#wxyz`, how a handler is named in the tree.
fn handler(bus: &EventBus, handler: &EventHandler) -> String {
    format!("{}.{}", bus.label(), handler.label())
}

#[tokio::test]
async fn an_empty_history_says_so() -> anyhow::Result<()> {
    let bus = EventBus::new("EmptyBus");
    assert_eq!(bus.log_tree(), "(No events in history)");

    // A bus that keeps only in-flight events is empty again once they completed.
    let zero = EventBus::builder("ZeroBus")
        .max_history_size(Some(0))
        .build();
    zero.on(|_: EventHandle<RootEvent>| "done".to_owned());
    zero.dispatch(root("x"))?.await?;
    assert_eq!(zero.log_tree(), "(No events in history)");
    Ok(())
}

#[tokio::test]
async fn a_single_event_shows_its_creation_time_and_duration() -> anyhow::Result<()> {
    let bus = EventBus::new("SingleBus");
    let event = bus.dispatch(root("test"))?.await?;

    let tree = bus.log_tree();

    assert_eq!(
        tree,
        format!(
            "└── {}{}",
            event.label(),
            timing(event.event_created_at(), event.event_completed_at())
        )
    );
    assert!(tree.starts_with("└── RootEvent#"));
    Ok(())
}

async fn test_handler(_: EventHandle<RootEvent>) -> String {
    "status: success".to_owned()
}

#[tokio::test]
async fn handler_results_are_listed_under_their_event() -> anyhow::Result<()> {
    let bus = EventBus::new("HandlerBus");
    let h = bus.on(test_handler);
    let event = bus.dispatch(root("test"))?.await?;

    let tree = bus.log_tree();

    assert_eq!(
        shape(&tree),
        format!(
            "└── {}\n    └── ✅ {} → 'status: success'",
            event.label(),
            handler(&bus, &h)
        )
    );
    assert!(h.label().starts_with("log_tree::test_handler#"));
    // The result line carries the handler's start time and duration.
    let result = &event.event_results()[0];
    let expected = format!(
        "    └── ✅ {}{} → 'status: success'",
        handler(&bus, &h),
        timing(result.started_at.unwrap(), result.completed_at)
    );
    assert_eq!(tree.lines().nth(1), Some(expected.as_str()));
    Ok(())
}

#[derive(Debug)]
struct ValueError(&'static str);

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for ValueError {}

async fn error_handler(_: EventHandle<RootEvent>) -> Result<String, ValueError> {
    Err(ValueError("Test error message"))
}

fn panicking_handler(_: EventHandle<RootEvent>) -> String {
    panic!("boom")
}

#[tokio::test]
async fn handler_errors_show_their_type_and_message() -> anyhow::Result<()> {
    let bus = EventBus::new("ErrorBus");
    let failing = bus.on(error_handler);
    let panicking = bus.on(panicking_handler);
    let event = bus.dispatch(root("test"))?.await?;
    assert_eq!(event.event_errors().len(), 2);

    let tree = bus.log_tree();

    assert_eq!(
        shape(&tree),
        format!(
            "└── {}\n    \
             ├── ❌ {} ☠️ ValueError: Test error message\n    \
             └── ❌ {} ☠️ EventHandlerPanicError: boom",
            event.label(),
            handler(&bus, &failing),
            handler(&bus, &panicking),
        )
    );
    Ok(())
}

async fn root_handler(event: EventHandle<RootEvent>) -> Result<String, bubus::Error> {
    let bus = event.event_bus().expect("running on a bus");
    bus.dispatch(ChildEvent { value: 100 })?.await?;
    Ok("Root processed".to_owned())
}

async fn child_handler(event: EventHandle<ChildEvent>) -> Result<Vec<u32>, bubus::Error> {
    let bus = event.event_bus().expect("running on a bus");
    bus.dispatch(GrandchildEvent { level: 3 })?.await?;
    Ok(vec![1, 2, 3])
}

async fn grandchild_handler(_: EventHandle<GrandchildEvent>) -> Option<String> {
    None
}

#[tokio::test]
async fn nested_children_appear_under_the_handler_that_dispatched_them() -> anyhow::Result<()> {
    let bus = EventBus::new("ComplexBus");
    let h_root = bus.on(root_handler);
    let h_child = bus.on(child_handler);
    let h_grandchild = bus.on(grandchild_handler);

    let root_event = bus.dispatch(root("root_data"))?.await?;
    let child = &root_event.event_children()[0];
    let grandchild = &child.event_children()[0];

    let tree = bus.log_tree();

    assert_eq!(
        shape(&tree),
        [
            format!("└── {}", root_event.label()),
            format!("    └── ✅ {} → 'Root processed'", handler(&bus, &h_root)),
            format!("        └── {}", child.label()),
            format!(
                "            └── ✅ {} → list(3 items)",
                handler(&bus, &h_child)
            ),
            format!("                └── {}", grandchild.label()),
            format!(
                "                    └── ✅ {} → None",
                handler(&bus, &h_grandchild)
            ),
        ]
        .join("\n")
    );
    // Every event is shown once, although all three are in the history.
    assert_eq!(bus.event_history().len(), 3);
    assert_eq!(tree.matches("ChildEvent#").count(), 1);
    assert_eq!(tree.matches("GrandchildEvent#").count(), 1);
    Ok(())
}

#[tokio::test]
async fn several_roots_are_listed_in_creation_order() -> anyhow::Result<()> {
    let bus = EventBus::new("MultiBus");
    let h = bus.on(|event: EventHandle<RootEvent>| event.data.clone());
    let first = bus.dispatch(root("first"))?;
    let second = bus.dispatch(root("second"))?;
    second.clone().await?;
    first.clone().await?;

    let tree = bus.log_tree();

    assert_eq!(
        shape(&tree),
        [
            format!("├── {}", first.label()),
            format!("│   └── ✅ {} → 'first'", handler(&bus, &h)),
            format!("└── {}", second.label()),
            format!("    └── ✅ {} → 'second'", handler(&bus, &h)),
        ]
        .join("\n")
    );
    assert_eq!(tree.matches("├── RootEvent#").count(), 1);
    assert_eq!(tree.matches("└── RootEvent#").count(), 1);
    Ok(())
}

#[tokio::test]
async fn running_and_pending_handlers_have_no_duration_yet() -> anyhow::Result<()> {
    let bus = EventBus::new("RunningBus");
    let started = Arc::new(Notify::new());
    let release = Arc::new(Semaphore::new(0));
    let (s, r) = (Arc::clone(&started), Arc::clone(&release));
    let running = bus.on_with(
        move |_: EventHandle<RootEvent>| {
            let (s, r) = (Arc::clone(&s), Arc::clone(&r));
            async move {
                s.notify_one();
                // Released when the semaphore is closed.
                let _ = r.acquire().await;
                "done".to_owned()
            }
        },
        HandlerOptions::new().name("running_handler"),
    );
    let waiting = bus.on_with(
        |_: EventHandle<RootEvent>| "after".to_owned(),
        HandlerOptions::new().name("waiting_handler"),
    );

    let event = bus.dispatch(root("slow"))?;
    started.notified().await;
    let tree = bus.log_tree();
    let lines: Vec<&str> = tree.lines().collect();

    // The event has no duration yet; the running handler has a start time but no duration or
    // value; the pending one has neither.
    assert_eq!(lines.len(), 3, "{tree}");
    assert_eq!(
        lines[0],
        format!(
            "└── {}{}",
            event.label(),
            timing(event.event_created_at(), None)
        )
    );
    let started_at = event.event_results()[0].started_at.unwrap();
    let running_line = format!("🏃 {}{}", handler(&bus, &running), timing(started_at, None));
    let waiting_line = format!("⏳ {}", handler(&bus, &waiting));
    for line in [running_line, waiting_line] {
        assert!(
            lines[1..].iter().any(|l| l.ends_with(&line)),
            "{line:?} missing from:\n{tree}"
        );
    }

    release.close();
    event.clone().await?;
    assert_eq!(
        shape(&bus.log_tree()),
        [
            format!("└── {}", event.label()),
            format!("    ├── ✅ {} → 'done'", handler(&bus, &running)),
            format!("    └── ✅ {} → 'after'", handler(&bus, &waiting)),
        ]
        .join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn children_no_handler_claims_are_listed_after_the_results() -> anyhow::Result<()> {
    let bus = EventBus::new("UnclaimedBus");
    let h = bus.on(|_: EventHandle<RootEvent>| "root".to_owned());
    let root_event = bus.dispatch(root("r"))?.await?;

    // Dispatched from outside any handler, with an explicit parent: a child of the root that no
    // handler dispatched.
    let orphan =
        EventHandle::new(ChildEvent { value: 1 }).with_event_parent_id(root_event.event_id());
    let orphan = bus.dispatch(orphan)?.await?;
    assert_eq!(orphan.event_parent_id(), Some(root_event.event_id()));

    assert_eq!(
        shape(&bus.log_tree()),
        [
            format!("└── {}", root_event.label()),
            format!("    ├── ✅ {} → 'root'", handler(&bus, &h)),
            format!("    └── {}", orphan.label()),
        ]
        .join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn children_on_other_buses_are_nested_here_and_are_roots_there() -> anyhow::Result<()> {
    let main = EventBus::new("MainBus");
    let side = EventBus::new("SideBus");
    let side_for_handler = side.clone();
    let h_root = main.on(move |event: EventHandle<RootEvent>| {
        let side = side_for_handler.clone();
        async move {
            let bus = event.event_bus().expect("running on a bus");
            // Not awaited: still this handler's child.
            bus.dispatch(ChildEvent { value: 1 })?;
            side.dispatch(ChildEvent { value: 2 })?.await?;
            Ok::<_, bubus::Error>("dispatched".to_owned())
        }
    });
    let h_side = side.on(|event: EventHandle<ChildEvent>| vec![event.value]);

    let root_event = main.dispatch(root("r"))?.await?;
    main.wait_until_idle(None).await;
    let children = root_event.event_children();
    assert_eq!(children.len(), 2);

    assert_eq!(
        shape(&main.log_tree()),
        [
            format!("└── {}", root_event.label()),
            format!("    └── ✅ {} → 'dispatched'", handler(&main, &h_root)),
            format!("        ├── {}", children[0].label()),
            format!("        └── {}", children[1].label()),
            // The side bus's handler ran for it; its result lives on the event.
            format!(
                "            └── ✅ {} → list(1 items)",
                handler(&side, &h_side)
            ),
        ]
        .join("\n")
    );
    // On the side bus, the child's parent is not in the history: it is a root there.
    assert_eq!(
        shape(&side.log_tree()),
        [
            format!("└── {}", children[1].label()),
            format!("    └── ✅ {} → list(1 items)", handler(&side, &h_side)),
        ]
        .join("\n")
    );
    Ok(())
}

#[tokio::test]
async fn result_values_are_summarised_by_kind() -> anyhow::Result<()> {
    let bus = EventBus::new("ValuesBus");
    let elsewhere = EventBus::new("ElsewhereBus");
    let values: [(&str, Value); 7] = [
        ("string", json!("text")),
        ("integer", json!(42)),
        ("float", json!(1.5)),
        ("boolean", json!(false)),
        ("object", json!({"a": 1, "b": 2})),
        ("array", json!([1, 2, 3])),
        ("null", Value::Null),
    ];
    for (name, value) in values {
        bus.on_with(
            move |_: AnyEvent| value.clone(),
            HandlerOptions::new().pattern("Values").name(name),
        );
    }
    bus.on_with(
        move |event: AnyEvent| elsewhere.dispatch(event),
        HandlerOptions::new().pattern("Values").name("forward"),
    );

    let event = bus.dispatch(DynEvent::new("Values", json!({}))?)?.await?;

    let tree = shape(&bus.log_tree());
    let suffixes: Vec<&str> = tree
        .lines()
        .skip(1)
        .map(|line| line.split_once(" → ").map_or("", |(_, value)| value))
        .collect();
    assert_eq!(
        suffixes,
        [
            "'text'",
            "42",
            "1.5",
            "false",
            "dict(2 items)",
            "list(3 items)",
            "None",
            format!("Event({})", event.label()).as_str(),
        ],
        "{tree}"
    );
    Ok(())
}
