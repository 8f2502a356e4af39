//! Nested events and queue-jumping.
//!
//! A `BuildEvent` handler dispatches a `NotifyEvent` without waiting for it, then a `CompileEvent`
//! that it awaits. The compile step runs at once — ahead of the queued notification — and the
//! notification runs after the build handler returns. Every event dispatched inside a handler is
//! recorded as a child of the event being handled.
//!
//! Run it with `cargo run --example nested_events`.

use bubus::{Event, EventBus, EventHandle};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct BuildEvent {
    target: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u32)]
struct CompileEvent {
    target: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u32)]
struct LinkEvent {
    objects: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct NotifyEvent {
    message: String,
}

#[tokio::main]
async fn main() -> Result<(), bubus::Error> {
    let bus = EventBus::new("BuildBus");

    let b = bus.clone();
    bus.on(move |event: EventHandle<BuildEvent>| {
        let bus = b.clone();
        async move {
            println!("build {}: start", event.target);
            bus.dispatch(NotifyEvent {
                message: format!("{} is building", event.target),
            })?;
            let compile = bus.dispatch(CompileEvent {
                target: event.target.clone(),
            })?;
            let objects = compile.event_result().await?; // queue-jump
            println!("build {}: compiled {objects} objects", event.target);
            Ok::<_, bubus::Error>(format!("{} built from {objects} objects", event.target))
        }
    });

    let b = bus.clone();
    bus.on(move |event: EventHandle<CompileEvent>| {
        let bus = b.clone();
        async move {
            println!("  compile {}", event.target);
            // Grandchildren queue-jump too.
            let link = bus.dispatch(LinkEvent { objects: 3 })?;
            let linked = link.event_result().await?;
            Ok::<_, bubus::Error>(linked + 1)
        }
    });

    bus.on(|event: EventHandle<LinkEvent>| {
        println!("    link {} objects", event.objects);
        event.objects
    });

    bus.on(|event: EventHandle<NotifyEvent>| println!("notify: {}", event.message));

    let build = bus.dispatch(BuildEvent {
        target: "app".into(),
    })?;
    println!("result: {}", build.event_result().await?);

    // The notification was queued behind the build, so it ran after the build handler returned;
    // awaiting the build still waited for it, because it is the build's child.
    assert!(
        build
            .event_children()
            .iter()
            .all(|child| child.is_complete())
    );
    println!("\n{}", bus.log_tree());
    Ok(())
}
