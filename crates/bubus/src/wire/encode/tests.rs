//! The direct text writer against the map it replaced, and the canonical shapes.

use serde_json::json;

use super::*;
use crate::{AnyEvent, EventBus, EventHandle};

/// The direct writer and the map it replaces give the same bytes.
fn same_text(event: &AnyEvent) {
    let direct = String::from_utf8(event_text(event.inner())).unwrap();
    let via_map = String::from_utf8(event_json_text_via_map(event.inner(), false)).unwrap();
    assert_eq!(direct, via_map);
    serde_json::from_str::<Value>(&direct).unwrap();
}

#[tokio::test(flavor = "current_thread")]
async fn the_direct_writer_writes_what_the_map_writes() {
    let plain = EventHandle::new(
        DynEvent::new(
            "Ping",
            json!({"n": 1, "s": "a\"b", "nested": {"x": [1.5, null]}}),
        )
        .unwrap(),
    )
    .to_any();
    same_text(&plain);
    let configured = EventHandle::new(DynEvent::new("Ping", json!({})).unwrap())
        .with_event_timeout(std::time::Duration::from_millis(1500))
        .to_any();
    same_text(&configured);
    // Read from text: payload fields kept as text, unknown metadata, every setting, a path
    // and a parent.
    let text = r#"{"event_type":"Pong","event_version":"2.0","event_timeout":2.5,
        "event_slow_timeout":null,"event_concurrency":"parallel",
        "event_handler_timeout":1,"event_handler_slow_timeout":0.5,
        "event_handler_concurrency":"serial","event_handler_completion":"first",
        "event_blocks_parent_completion":true,"event_result_type":{"type":"string"},
        "event_id":"018f6b1e-3c4d-7e5f-8a9b-0c1d2e3f4a5b",
        "event_path":["A#ab12","B#cd34"],
        "event_parent_id":"018f6b1e-3c4d-7e5f-8a9b-0c1d2e3f4a5c",
        "event_emitted_by_handler_id":"018f6b1e-3c4d-7e5f-8a9b-0c1d2e3f4a5d",
        "event_pending_bus_count":0,"event_created_at":"2026-01-02T03:04:05.123456789Z",
        "event_status":"completed","event_started_at":"2026-01-02T03:04:05.2Z",
        "event_completed_at":"2026-01-02T03:04:06Z","event_future_key":{"a":[1,2]},
        "z": [ 1 , 2 ],"a":"x\u00e9"}"#;
    let read = AnyEvent::from_json_str(text).unwrap();
    same_text(&read);
    same_text(&read.event_reset_keep_id());
    // Read from a value: payload fields parsed.
    let value: Value = serde_json::from_str(text).unwrap();
    same_text(&AnyEvent::from_json(&value).unwrap());
    // Dispatched and completed on a bus, with a child.
    let bus = EventBus::new("EncodeBus");
    let child_bus = bus.clone();
    bus.on_pattern("Parent", move |_event: AnyEvent| {
        let child = child_bus
            .dispatch(DynEvent::new("Child", json!({"k": true})).unwrap())
            .unwrap();
        same_text(&child.to_any());
    });
    let parent = bus
        .dispatch(DynEvent::new("Parent", json!({"p": 1})).unwrap())
        .unwrap();
    same_text(&parent.to_any());
    let _ = (&parent).await;
    same_text(&parent.to_any());
    bus.wait_until_idle(None).await;
    for event in bus.event_history() {
        same_text(&event);
    }
}
