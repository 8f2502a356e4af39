//! `log_tree()` draws any history without recursion and in output linear in its events: a
//! 100 000-event parent chain prints one line per event with the deep indentation elided, and a
//! parent cycle (possible in a restored log: A's parent is B, B's parent is A) is drawn with a
//! marker, never silently dropped.

use bubus::EventBus;
use serde_json::{Map, Value, json};

fn id(n: usize) -> String {
    format!("018f8e40-1234-7000-8000-{n:012x}")
}

/// A bus restored from a snapshot holding `events` (id number, parent id number).
fn restored(events: &[(usize, Option<usize>)]) -> EventBus {
    let mut history = Map::new();
    for &(n, parent) in events {
        history.insert(
            id(n),
            json!({
                "event_type": format!("Level{}", n % 3),
                "event_id": id(n),
                "event_parent_id": parent.map(id),
                "event_created_at": "2026-01-01T00:00:00.000000000Z",
                "event_status": "completed",
                "event_completed_at": "2026-01-01T00:00:01.000000000Z",
            }),
        );
    }
    EventBus::restore(&json!({
        "id": "018f8e40-1234-7000-8000-00000000bb22",
        "name": "Restored",
        "max_history_size": Value::Null,
        "event_history": history,
    }))
    .unwrap()
}

#[test]
fn a_hundred_thousand_event_chain_prints_in_linear_output() {
    const EVENTS: usize = 100_000;
    let chain: Vec<(usize, Option<usize>)> = (0..EVENTS).map(|n| (n, n.checked_sub(1))).collect();
    let tree = restored(&chain).log_tree();
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), EVENTS);
    assert!(lines[0].starts_with("└── Level0#"), "{}", lines[0]);
    assert!(lines[1].starts_with("    └── Level1#"), "{}", lines[1]);
    // Every line is short, however deep: the indentation past a few dozen levels is a count.
    let longest = lines.iter().map(|l| l.len()).max().unwrap();
    assert!(longest < 300, "a line of {longest} bytes");
    let last = lines[EVENTS - 1];
    assert!(
        last.contains(&format!("┆+{} └── ", EVENTS - 1 - 32)),
        "{last}"
    );
}

#[test]
fn a_parent_cycle_is_drawn_with_a_marker() {
    // 1 and 2 are each other's parent; 3 hangs under 2; 0 is an ordinary root.
    let tree = restored(&[(0, None), (1, Some(2)), (2, Some(1)), (3, Some(2))]).log_tree();
    let lines: Vec<&str> = tree.lines().collect();
    assert_eq!(lines.len(), 5, "{tree}");
    assert!(lines[0].starts_with("└── Level0#"), "{tree}");
    let cycle = &lines[1..];
    assert!(cycle[0].starts_with("└── ↻ Level1#"), "{tree}");
    assert!(cycle[1].starts_with("    └── Level2#"), "{tree}");
    assert!(cycle[2].starts_with("        ├── Level0#"), "{tree}");
    assert!(
        cycle[3].starts_with("        └── ↻ Level1#") && cycle[3].ends_with("(parent cycle)"),
        "{tree}"
    );
}
