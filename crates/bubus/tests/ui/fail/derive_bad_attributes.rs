use bubus::Event;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(concurrency = "sometimes")]
struct BadMode;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(timeout = -1.0)]
struct NegativeTimeout;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(colour = "blue")]
struct UnknownKey;

#[derive(Clone, Debug, Serialize, Deserialize, Event)]
enum NotAStruct {
    A,
}

fn main() {}
