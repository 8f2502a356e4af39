//! The suite's event types, named and shaped as in the reference scenarios.
//!
//! The reference declares most of them `BaseEvent[int]` with handlers that return `None`; here the
//! handlers return their checksum contribution instead, so every run also stores a real result
//! (which is also what the floor pipeline does).

use bubus::Event;
use serde::{Deserialize, Serialize};

/// The warm-up run's event.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
pub struct PerfWarmupEvent {}

/// Trims the warm-up bus.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
pub struct PerfWarmupTrimEvent {}

/// S1 and S2.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
pub struct PerfSimpleEvent {
    pub batch_id: u64,
    pub value: u64,
}

/// Trims S1's bus.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
pub struct PerfTrimEvent {}

/// Trims each of S2's buses.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
pub struct PerfTrimEphemeralEvent {}

/// S3: the one event with 50 000 handlers.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
pub struct PerfFixedHandlersEvent {
    pub base_value: u64,
}

/// Trims S3's bus.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
pub struct PerfTrimFixedHandlersEvent {}

/// S4: one event per one-off handler.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
pub struct PerfRequestEvent {
    pub value: u64,
}

/// Trims S4's bus.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
pub struct PerfTrimOnOffEvent {}

/// S5: dispatched on A and B.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
pub struct WCParent {
    pub iteration: u64,
    pub value: u64,
}

/// S5: emitted by the parent's handler on A, forwarded to C.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
pub struct WCChild {
    pub iteration: u64,
    pub value: u64,
}

/// S5: emitted by the child's handler on C and awaited there (queue-jump).
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
#[event(result = u64)]
pub struct WCGrandchild {
    pub iteration: u64,
    pub value: u64,
}

/// Trims S5's buses.
#[derive(Clone, Debug, Serialize, Deserialize, Event)]
pub struct WCTrimEvent {}
