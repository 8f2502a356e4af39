//! Golden files of every wire shape (crates/bubus/tests/golden/wire/, listed in
//! docs/wire-format.md): each one parses, keeps every field through the canonical
//! re-serialization, re-serializes to the pinned `*.canonical.*` form, and is a fixed point from
//! there on. Bad input is rejected naming the field, and no mutation of any golden makes the
//! decoder panic.
//!
//! `BUBUS_BLESS_GOLDENS=1 cargo test -p bubus --test wire_golden` rewrites the `*.canonical.*`
//! files; review the diff before committing it.

mod wire_support;

use std::path::Path;
use std::time::Duration;

use bubus::{AnyEvent, wire::DecodeError};
use serde_json::{Map, Value, json};
use wire_support::*;

fn bless() -> bool {
    std::env::var_os("BUBUS_BLESS_GOLDENS").is_some()
}

fn decode(value: &Value, ctx: &str) -> AnyEvent {
    AnyEvent::from_json(value).unwrap_or_else(|e| panic!("{ctx}: {e}"))
}

/// The canonical form of an input: with `event_results` if the input had them.
fn canonical(event: &AnyEvent, input: &Value) -> Value {
    if input.get("event_results").is_some() {
        event.to_json_with_results()
    } else {
        event.to_json()
    }
}

/// Everything a good golden event must satisfy; returns its canonical form.
fn check_golden_event(input: &Value, ctx: &str) -> Value {
    let event = decode(input, ctx);
    let out = canonical(&event, input);
    assert_canonical_shape_keeping(&out, &unknown_event_keys(input), ctx);
    assert_input_preserved(
        input.as_object().expect("event object"),
        out.as_object().expect("event object"),
        ctx,
    );
    // A fixed point from the canonical form on.
    let again = canonical(&decode(&out, ctx), &out);
    assert_eq!(
        again, out,
        "{ctx}: parse → serialize → parse changed the event"
    );
    // The same from text, and written as text: the same JSON.
    let from_text =
        AnyEvent::from_json_str(&input.to_string()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let text = if input.get("event_results").is_some() {
        from_text.to_json_string_with_results()
    } else {
        from_text.to_json_string()
    };
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{ctx}: {e}: {text}")),
        out,
        "{ctx}: text written from text differs"
    );
    assert_eq!(
        canonical(&from_text, input),
        out,
        "{ctx}: text and value differ"
    );
    out
}

/// Compares `actual` with the pinned file (or writes it when blessing).
fn check_pinned(path: &Path, actual: &[Value], jsonl: bool) {
    let pinned = canonical_path(path);
    if bless() {
        let text = if jsonl {
            actual.iter().map(|v| format!("{v}\n")).collect::<String>()
        } else {
            format!(
                "{}\n",
                serde_json::to_string_pretty(&actual[0]).expect("json")
            )
        };
        std::fs::write(&pinned, text).expect("write canonical golden");
        return;
    }
    let expected = if jsonl {
        read_jsonl(&pinned)
    } else {
        vec![read_json(&pinned)]
    };
    assert_eq!(expected.len(), actual.len(), "{}", pinned.display());
    for (i, (expected, actual)) in expected.iter().zip(actual).enumerate() {
        let ctx = format!("{} #{i}", pinned.display());
        // Same keys in the same order, then the same values, reported field by field.
        assert_eq!(keys(actual), keys(expected), "{ctx}: keys");
        for key in keys(expected) {
            assert_eq!(actual[&key], expected[&key], "{ctx}: `{key}`");
        }
    }
}

#[test]
fn event_goldens_round_trip_to_their_canonical_form() {
    let mut seen = 0;
    for path in golden_files("events", "json") {
        let input = read_json(&path);
        let out = check_golden_event(&input, &path.display().to_string());
        check_pinned(&path, &[out], false);
        seen += 1;
    }
    for path in golden_files("events", "jsonl") {
        let outs: Vec<Value> = read_jsonl(&path)
            .iter()
            .enumerate()
            .map(|(i, line)| {
                check_golden_event(line, &format!("{} line {}", path.display(), i + 1))
            })
            .collect();
        check_pinned(&path, &outs, true);
        seen += 1;
    }
    assert!(seen >= 10, "golden files missing: {seen}");
}

#[test]
fn python156_goldens_round_trip() {
    // Written by Python bubus 1.5.6 (interop/run.sh --update-goldens); checked field by field
    // against Python in crates/bubus/tests/interop_python.rs, here only for the generic rules.
    let dir = golden_dir().join("python156");
    let events = read_json(&dir.join("py_events.json"));
    for (i, event) in events
        .as_array()
        .expect("a list of events")
        .iter()
        .enumerate()
    {
        check_golden_event(event, &format!("py_events.json[{i}]"));
    }
    for (i, line) in read_jsonl(&dir.join("py_wal.jsonl")).iter().enumerate() {
        check_golden_event(line, &format!("py_wal.jsonl line {}", i + 1));
    }
    for (i, line) in read_jsonl(&dir.join("py_roundtrip.jsonl"))
        .iter()
        .enumerate()
    {
        check_golden_event(line, &format!("py_roundtrip.jsonl line {}", i + 1));
    }
}

#[test]
fn result_goldens_round_trip_inside_an_event_and_alone() {
    for path in golden_files("results", "json") {
        let ctx = path.display().to_string();
        let result = read_json(&path);
        let carrier = json!({
            "event_type": "ResultCarrier",
            "event_id": result["event_id"],
            "event_created_at": "2026-11-24T14:00:00.000000000Z",
            "event_status": "completed",
            "event_results": [result],
        });
        let event = decode(&carrier, &ctx);
        let out = event.to_json_with_results();
        assert_results_preserved(&carrier["event_results"], &out["event_results"], &ctx);
        let (key, canonical) = out["event_results"]
            .as_object()
            .and_then(|results| results.iter().next())
            .map(|(key, result)| (key.clone(), result.clone()))
            .unwrap_or_else(|| panic!("{ctx}: no result in {out}"));
        assert_eq!(canonical["handler_id"], key, "{ctx}: keyed by handler id");
        // `EventResult::to_json` (the snapshot) writes the same JSON as the event does.
        let snapshots = event.event_results();
        assert_eq!(snapshots.len(), 1, "{ctx}");
        assert_eq!(
            snapshots[0].to_json(),
            canonical,
            "{ctx}: EventResult::to_json"
        );
        check_pinned(&path, &[canonical], false);
    }
}

#[test]
fn timestamps_in_any_offset_and_precision_normalise_to_nine_digits_utc() {
    let lines = read_jsonl(&golden_dir().join("events/timestamps.jsonl"));
    assert!(lines.len() >= 15);
    for line in &lines {
        let out = decode(line, line["case"].as_str().unwrap_or("?")).to_json();
        for key in ["event_created_at", "event_started_at", "event_completed_at"] {
            assert_eq!(out[key], line["expect"], "{}: {key}", line["case"]);
        }
    }
}

#[test]
fn seed_and_python1_lines_map_onto_the_canonical_keys() {
    let lines = read_jsonl(&golden_dir().join("events/seed15_wal.jsonl"));
    let outs: Vec<Value> = lines.iter().map(|l| decode(l, "seed").to_json()).collect();

    assert_eq!(outs[0]["event_version"], "1.0.0");
    assert_eq!(outs[0]["event_timeout"], 60.0);
    assert_eq!(outs[0]["event_path"], json!(["EventBus_1a2b3c4d"]));
    assert_eq!(
        outs[0]["event_created_at"],
        "2025-07-10T20:39:56.462000000Z"
    );
    assert_eq!(outs[0]["event_status"], "pending");
    assert_eq!(outs[0]["username"], "alice");

    // `event_processed_at` is the completion (and, with no results, the start).
    assert_eq!(outs[1]["event_status"], "completed");
    assert_eq!(
        outs[1]["event_started_at"],
        "2025-07-10T20:39:56.471999000Z"
    );
    assert_eq!(
        outs[1]["event_completed_at"],
        "2025-07-10T20:39:56.471999000Z"
    );
    assert_eq!(outs[1]["event_parent_id"], lines[0]["event_id"]);
    assert_eq!(outs[1]["event_path"], json!(["MainBus", "AuthBus"]));
    assert_eq!(outs[1]["event_result_type"], Value::Null);
    assert_eq!(outs[1]["data"], json!({"rows": [[1, "a"], [2, "b"]]}));

    assert_eq!(outs[2]["event_version"], "2.4.1");
    assert_eq!(outs[2]["event_status"], "pending");
    assert_eq!(
        outs[2]["event_created_at"],
        "2025-07-10T20:39:56.500000000Z"
    );
}

#[test]
fn ts_shapes_fill_in_omitted_keys_and_keep_error_results() {
    let input = read_json(&golden_dir().join("events/ts_completed_results_list.json"));
    let event = decode(&input, "ts");
    let out = event.to_json_with_results();
    for key in [
        "event_slow_timeout",
        "event_concurrency",
        "event_handler_timeout",
        "event_handler_slow_timeout",
        "event_handler_concurrency",
        "event_handler_completion",
        "event_result_type",
    ] {
        assert_eq!(out[key], Value::Null, "{key} is written as null");
    }
    let results = event.event_results();
    assert_eq!(results.len(), 2);
    assert_eq!(
        results[0].result_json,
        json!({"ok": true, "items": [1, 2, 3]})
    );
    assert!(results[0].error.is_none());
    let err = results[1].error.as_ref().expect("the `{}` error");
    assert_eq!(err.error_type(), "Error");
    assert_eq!(err.message(), "");
    assert_eq!(results[1].handler_event_pattern, "*");
    assert_eq!(results[1].handler_timeout, None);
    // `"event_timeout": 25` (a JavaScript number) is the float 25.0.
    let priced = decode(
        &read_json(&golden_dir().join("events/ts_number_result_type.json")),
        "ts number",
    );
    assert_eq!(
        priced.event_config().event_timeout,
        Some(Duration::from_secs(25))
    );
}

#[test]
fn python_results_map_keys_are_handler_ids() {
    let input = read_json(&golden_dir().join("events/py2_bus_results_map.json"));
    let event = decode(&input, "map");
    let results = event.event_results();
    let ids: Vec<String> = results.iter().map(|r| r.handler_id.to_string()).collect();
    let keys: Vec<String> = input["event_results"]
        .as_object()
        .expect("map")
        .keys()
        .cloned()
        .collect();
    assert_eq!(ids, keys);
    assert_eq!(results[0].result_json, 42);
    assert_eq!(results[0].handler_timeout, Some(Duration::from_secs(5)));
    assert_eq!(results[0].event_children.len(), 1);
    let err = results[1].error.as_ref().expect("error");
    assert_eq!((err.error_type(), err.message()), ("ValueError", "boom"));
}

#[test]
fn a_forwarded_result_is_the_event_json_and_is_not_schema_checked() {
    let input = read_json(&golden_dir().join("events/py2_bus_results_list.json"));
    let event = decode(&input, "forwarded");
    let results = event.event_results();
    assert_eq!(results[0].status, bubus::result::ResultStatus::Completed);
    assert_eq!(results[0].result_json["event_type"], "Forwarded");
    assert_eq!(results[1].result_json, "done");
}

// ---------------------------------------------------------------------------------------------
// Bad input

fn decode_case(case: &Value) -> Result<AnyEvent, DecodeError> {
    match (case.get("text"), case.get("json")) {
        (Some(text), _) => AnyEvent::from_json_str(text.as_str().expect("text")),
        (None, Some(json)) => AnyEvent::from_json(json),
        _ => panic!("bad case {case}"),
    }
}

#[test]
fn every_invalid_golden_is_rejected_naming_the_field() {
    let cases = read_json(&golden_dir().join("invalid/cases.json"));
    let cases = cases.as_array().expect("a list of cases");
    assert!(cases.len() >= 60);
    for case in cases {
        let name = case["name"].as_str().expect("name");
        let field = case["field"].as_str().expect("field");
        let err = match decode_case(case) {
            Ok(event) => panic!("{name}: accepted as {}", event.to_json()),
            Err(err) => err,
        };
        assert_eq!(err.field(), field, "{name}: {err}");
        assert!(!err.message().is_empty(), "{name}");
        let shown = err.to_string();
        if !field.is_empty() {
            assert!(shown.contains(field), "{name}: {shown}");
        }
        // The same input as text fails the same way.
        if let Some(json) = case.get("json") {
            let err = AnyEvent::from_json_str(&json.to_string()).expect_err(name);
            assert_eq!(err.field(), field, "{name} (text)");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// No panics on garbage

/// xorshift64*: deterministic, dependency-free noise for the mutation loops.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn all_golden_texts() -> Vec<(String, String)> {
    let mut texts = Vec::new();
    for path in golden_files("events", "json") {
        texts.push((path.display().to_string(), read_text(&path)));
    }
    for path in golden_files("events", "jsonl") {
        for (i, line) in read_text(&path).lines().enumerate() {
            texts.push((
                format!("{} line {}", path.display(), i + 1),
                line.to_owned(),
            ));
        }
    }
    texts
}

/// Decoding must return, never panic; whatever it accepts must serialize and read back.
fn decode_must_not_panic(text: &str) {
    if let Ok(event) = AnyEvent::from_json_str(text) {
        let out = event.to_json_with_results();
        AnyEvent::from_json(&out).unwrap_or_else(|e| panic!("re-read failed: {e}\n{text}"));
        AnyEvent::from_json(&event.to_json_python1())
            .unwrap_or_else(|e| panic!("python1 re-read failed: {e}\n{text}"));
    }
}

#[test]
fn truncated_goldens_are_rejected_without_panicking() {
    for (ctx, text) in all_golden_texts() {
        let trimmed = text.trim_end();
        for cut in (0..trimmed.len()).filter(|&i| trimmed.is_char_boundary(i)) {
            let err = AnyEvent::from_json_str(&trimmed[..cut])
                .err()
                .unwrap_or_else(|| panic!("{ctx}: accepted a truncation at {cut}"));
            assert_eq!(err.field(), "", "{ctx} cut at {cut}: {err}");
        }
    }
}

#[test]
fn byte_mutations_of_goldens_never_panic() {
    const JUNK: &[&str] = &[
        "\"",
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        "null",
        "-",
        "0",
        "1e999",
        "\\u0000",
        "\\",
        "é",
        "🚀",
        "true",
        "\"event_x\":1,",
        " ",
        "9999999999999999999999",
    ];
    let mut noise = Noise(0x9E37_79B9_7F4A_7C15);
    for (_, text) in all_golden_texts() {
        for _ in 0..300 {
            let mut s = text.clone();
            for _ in 0..=noise.below(3) {
                let mut at = noise.below(s.len());
                while !s.is_char_boundary(at) {
                    at -= 1;
                }
                match noise.below(3) {
                    0 => s.insert_str(at, JUNK[noise.below(JUNK.len())]),
                    1 => {
                        let mut end = (at + 1 + noise.below(8)).min(s.len());
                        while !s.is_char_boundary(end) {
                            end -= 1;
                        }
                        s.replace_range(at..end, "");
                    }
                    _ => {
                        let mut end = (at + 1).min(s.len());
                        while !s.is_char_boundary(end) {
                            end += 1;
                        }
                        s.replace_range(at..end, JUNK[noise.below(JUNK.len())]);
                    }
                }
            }
            decode_must_not_panic(&s);
        }
    }
}

fn replacement_values() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(1e300),
        json!(""),
        json!("x"),
        json!("*"),
        json!("2026-11-24T14:00:00Z"),
        json!("0190d6c5-8e3a-7c4b-9f21-0000000000aa"),
        json!([]),
        json!([null]),
        json!(["Bus#0001"]),
        json!({}),
        json!({"type": "integer"}),
        json!({"a": {"b": [1, {"c": null}]}}),
        json!([[[[[[[[[[]]]]]]]]]]),
    ]
}

/// Replaces every top-level key's value (and every result key's value) with values of every
/// type: the decoder either accepts it or names that very key (or a path under it).
#[test]
fn wrong_types_in_any_field_are_rejected_naming_it() {
    for path in golden_files("events", "json") {
        let input = read_json(&path);
        let object = input.as_object().expect("object");
        for key in object.keys() {
            for replacement in replacement_values() {
                let mut mutated = object.clone();
                mutated.insert(key.clone(), replacement.clone());
                let value = Value::Object(mutated);
                match AnyEvent::from_json(&value) {
                    Ok(event) => {
                        AnyEvent::from_json(&event.to_json_with_results())
                            .unwrap_or_else(|e| panic!("{key}={replacement}: re-read: {e}"));
                    }
                    Err(err) => assert!(
                        err.field() == key.as_str()
                            || err.field().starts_with(&format!("{key}["))
                            || err.field().starts_with(&format!("{key}."))
                            // Another id makes the results name the wrong event.
                            || (key == "event_id"
                                && err.field().starts_with("event_results")
                                && err.field().ends_with(".event_id")),
                        "{}: {key}={replacement} blamed `{}`: {err}",
                        path.display(),
                        err.field()
                    ),
                }
            }
        }
        // The same for every key of every result.
        let Some(results) = object.get("event_results") else {
            continue;
        };
        let entries: Vec<(String, Map<String, Value>)> = match results {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    (
                        format!("event_results[{i}]"),
                        r.as_object().cloned().expect("r"),
                    )
                })
                .collect(),
            Value::Object(map) => map
                .iter()
                .map(|(k, r)| {
                    (
                        format!("event_results.{k}"),
                        r.as_object().cloned().expect("r"),
                    )
                })
                .collect(),
            _ => continue,
        };
        for (i, (at, result)) in entries.iter().enumerate() {
            for key in result.keys() {
                for replacement in replacement_values() {
                    let mut bad = result.clone();
                    bad.insert(key.clone(), replacement.clone());
                    let mut mutated = object.clone();
                    let slot = match mutated.get_mut("event_results") {
                        Some(Value::Array(items)) => &mut items[i],
                        Some(Value::Object(map)) => map.values_mut().nth(i).expect("result"),
                        _ => unreachable!(),
                    };
                    *slot = Value::Object(bad);
                    if let Err(err) = AnyEvent::from_json(&Value::Object(mutated)) {
                        let field = format!("{at}.{key}");
                        assert!(
                            err.field() == field || err.field().starts_with(&field),
                            "{}: {field}={replacement} blamed `{}`: {err}",
                            path.display(),
                            err.field()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn deeply_nested_payloads_are_rejected_or_kept_without_overflowing() {
    let deep = format!(
        "{{\"event_type\":\"Deep\",\"v\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let err = AnyEvent::from_json_str(&deep).expect_err("deeper than MAX_JSON_DEPTH");
    assert_eq!(err.field(), "v");
    assert!(err.message().contains("levels"), "{err}");
    // As a whole document past serde_json's own limit: refused as a whole.
    let err = AnyEvent::from_json_str(&format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)))
        .expect_err("not an event");
    assert_eq!(err.field(), "");
    let ok = format!(
        "{{\"event_type\":\"Deep\",\"v\":{}{}}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    let event = AnyEvent::from_json_str(&ok).expect("100 levels are fine");
    assert_eq!(
        AnyEvent::from_json(&event.to_json())
            .expect("re-read")
            .to_json(),
        event.to_json()
    );
}
