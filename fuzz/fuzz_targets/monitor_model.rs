//! The live monitor's model (`bubus_monitor::Model`) on arbitrary input: each line is JSON fed to
//! it as an event from one of two sources, or (a line starting with `R`) as a history mirror's
//! result row. It must never panic, must stay within its bound, and what it reports must hold
//! together: every change it lists is an event it holds, a page that replays the changes holds
//! exactly what the model holds.

#![no_main]

use std::collections::HashMap;

use bubus_monitor::Model;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const BOUND: usize = 8;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut model = Model::new(BOUND);
    model.add_source("a".into());
    model.add_source("b".into());
    // What a page holds: it applies every change the model lists.
    let mut page: HashMap<String, ()> = HashMap::new();
    let mut seq = 0;
    for (n, line) in text.lines().enumerate() {
        let (is_result, json) = match line.strip_prefix('R') {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let Ok(Value::Object(map)) = serde_json::from_str::<Value>(json) else {
            continue;
        };
        if is_result {
            let id = map.get("event_id").and_then(Value::as_str).unwrap_or("e").to_owned();
            model.ingest_result(n % 2, &id, "T", &map);
        } else {
            model.ingest_event(n % 2, map);
        }
        assert!(model.len() <= BOUND + BOUND / 4 + 1, "over the bound: {}", model.len());
        let changes = model.changes_since(seq, 3);
        if changes.reset {
            page.clear();
        }
        for id in &changes.removed {
            page.remove(id);
        }
        for summary in &changes.events {
            assert!(model.detail(&summary.id).is_some(), "a listed change is held");
            page.insert(summary.id.clone(), ());
        }
        seq = changes.seq;
        let _ = model.failure_groups(10);
        let _ = model.search("a", 10);
        let _ = model.stats_snapshot(0.0);
        let _ = model.stats.encode_metrics();
    }
    // Caught up, the page holds what the model holds.
    loop {
        let changes = model.changes_since(seq, 3);
        if changes.reset {
            page.clear();
        }
        for id in &changes.removed {
            page.remove(id);
        }
        for summary in &changes.events {
            page.insert(summary.id.clone(), ());
        }
        if changes.seq == seq {
            break;
        }
        seq = changes.seq;
    }
    assert_eq!(page.len(), model.len(), "the page and the model disagree");
});
