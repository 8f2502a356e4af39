use bubus::{Event, EventBus, EventHandle};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u32)]
struct Count;

async fn count(_: EventHandle<Count>) -> Result<String, std::io::Error> {
    Ok(String::new())
}

fn main() {
    let bus = EventBus::new("Bus");
    bus.on(count);
}
