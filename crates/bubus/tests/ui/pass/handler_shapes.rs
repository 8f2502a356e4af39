use std::sync::Arc;
use std::time::Duration;

use bubus::handler::method;
use bubus::{AnyEvent, DynEvent, Event, EventBus, EventHandle, HandlerError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String, name = "Renamed", version = "2.0.0", timeout = 5, handler_concurrency = "parallel")]
struct Greet {
    name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Unit;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(timeout = 0.25, slow_timeout = Duration::from_millis(1500))]
struct Timed;

#[derive(Debug)]
struct MyError;
impl std::fmt::Display for MyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("my error")
    }
}
impl std::error::Error for MyError {}

struct Service;
impl Service {
    async fn greet(self: Arc<Self>, e: EventHandle<Greet>) -> Result<String, MyError> {
        Ok(e.name.clone())
    }
    fn greet_sync(self: Arc<Self>, e: EventHandle<Greet>) -> String {
        e.name.clone()
    }
}

fn sync_handler(e: EventHandle<Greet>) -> String {
    e.name.clone()
}

async fn async_handler(e: EventHandle<Greet>) -> Result<String, HandlerError> {
    Ok(e.name.clone())
}

async fn anyhow_handler(e: EventHandle<Greet>) -> anyhow::Result<String> {
    Ok(e.name.clone())
}

fn main() {
    assert_eq!(Greet::EVENT_TYPE, "Renamed");
    assert_eq!(Greet::EVENT_VERSION, "2.0.0");
    assert_eq!(Greet::EVENT_DEFAULTS.event_timeout, Some(Duration::from_secs(5)));
    assert_eq!(Timed::EVENT_DEFAULTS.event_timeout, Some(Duration::from_millis(250)));
    assert_eq!(Timed::EVENT_DEFAULTS.event_slow_timeout, Some(Duration::from_millis(1500)));
    let bus = EventBus::new("Shapes");
    let service = Arc::new(Service);
    bus.on(sync_handler);
    bus.on(async_handler);
    bus.on(anyhow_handler);
    bus.on(method(&service, Service::greet));
    bus.on(method(&service, Service::greet_sync));
    bus.on(|_: EventHandle<Unit>| {});
    bus.on(|_: EventHandle<Unit>| async {});
    bus.on(|e: AnyEvent| async move { let _ = e.event_id(); });
    bus.on(|_: AnyEvent| serde_json::json!({"seen": true}));
    bus.on(|e: EventHandle<DynEvent>| e.payload().get("x").cloned().unwrap_or_default());
    let other = bus.clone();
    bus.on(move |e: AnyEvent| other.dispatch(e));
}
