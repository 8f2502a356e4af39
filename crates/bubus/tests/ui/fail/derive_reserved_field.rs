use bubus::Event;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct Bad {
    event_id: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
struct AlsoBad {
    bus: String,
}

fn main() {}
