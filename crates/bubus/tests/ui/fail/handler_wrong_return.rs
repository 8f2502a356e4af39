use bubus::{Event, EventBus, EventHandle};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = String)]
struct Greet {
    name: String,
}

fn main() {
    let bus = EventBus::new("Bus");
    // The event's handlers must return String (or Result<String, E>), not a number.
    bus.on(|e: EventHandle<Greet>| e.name.len());
}
