//! Shared by the wire-format tests: golden file loading and the field-by-field comparison of an
//! input event with its canonical re-serialization.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use bubus::time::Timestamp;
use serde_json::{Map, Value};

/// The built-in keys of the canonical event JSON, in order (semantics §2.1, abxbus 2.5).
pub(crate) const EVENT_KEYS: [&str; 20] = [
    "event_type",
    "event_version",
    "event_timeout",
    "event_slow_timeout",
    "event_concurrency",
    "event_handler_timeout",
    "event_handler_slow_timeout",
    "event_handler_concurrency",
    "event_handler_completion",
    "event_blocks_parent_completion",
    "event_result_type",
    "event_id",
    "event_path",
    "event_parent_id",
    "event_emitted_by_handler_id",
    "event_pending_bus_count",
    "event_created_at",
    "event_status",
    "event_started_at",
    "event_completed_at",
];

/// The keys of the EventResult JSON, in order (semantics §2.2).
pub(crate) const RESULT_KEYS: [&str; 17] = [
    "id",
    "status",
    "event_id",
    "handler_id",
    "handler_name",
    "handler_file_path",
    "handler_timeout",
    "handler_slow_timeout",
    "handler_registered_at",
    "handler_event_pattern",
    "eventbus_id",
    "eventbus_name",
    "started_at",
    "completed_at",
    "result",
    "error",
    "event_children",
];

const TIMESTAMP_KEYS: [&str; 7] = [
    "event_created_at",
    "event_started_at",
    "event_completed_at",
    "event_processed_at",
    "handler_registered_at",
    "started_at",
    "completed_at",
];

const SECONDS_KEYS: [&str; 6] = [
    "event_timeout",
    "event_slow_timeout",
    "event_handler_timeout",
    "event_handler_slow_timeout",
    "handler_timeout",
    "handler_slow_timeout",
];

pub(crate) fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/wire")
}

pub(crate) fn read_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) fn read_json(path: &Path) -> Value {
    serde_json::from_str(&read_text(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The non-empty lines of a JSONL file, each parsed.
pub(crate) fn read_jsonl(path: &Path) -> Vec<Value> {
    read_text(path)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("{} line {}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Files in a golden subdirectory with the given extension, sorted, skipping `*.canonical.*`.
pub(crate) fn golden_files(sub: &str, ext: &str) -> Vec<PathBuf> {
    let dir = golden_dir().join(sub);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".canonical."))
        })
        .collect();
    files.sort();
    files
}

/// `foo.json` → `foo.canonical.json`.
pub(crate) fn canonical_path(path: &Path) -> PathBuf {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .expect("file stem");
    let ext = path
        .extension()
        .and_then(|s| s.to_str())
        .expect("extension");
    path.with_file_name(format!("{stem}.canonical.{ext}"))
}

pub(crate) fn ts(v: &Value) -> Timestamp {
    Timestamp::parse(v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}")))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Two optional timestamps denote the same instant (or are both null).
pub(crate) fn same_instant(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (a, b) => ts(a) == ts(b),
    }
}

/// Two optional numbers are the same number (`25` and `25.0` are).
pub(crate) fn same_number(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => false,
    }
}

/// The keys of an object, in order.
pub(crate) fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect()
}

/// Checks that `output` (the canonical JSON of the event parsed from `input`) says the same as
/// `input` for every key `input` has, following the documented mapping of older and other
/// runtimes' keys (docs/wire-format.md).
pub(crate) fn assert_input_preserved(
    input: &Map<String, Value>,
    output: &Map<String, Value>,
    ctx: &str,
) {
    for (key, value) in input {
        let k = key.as_str();
        let out = output.get(k).unwrap_or(&Value::Null);
        let at = format!("{ctx}: `{k}`");
        match k {
            // Python 1.x: "module.Class@version".
            "event_schema" => {
                let version = value
                    .as_str()
                    .and_then(|s| s.rsplit_once('@'))
                    .map(|(_, v)| v);
                if output.get("event_version").is_some() && !input.contains_key("event_version") {
                    assert_eq!(
                        output["event_version"].as_str(),
                        version,
                        "{at} → event_version"
                    );
                }
                assert!(output.get("event_schema").is_none(), "{at} is not written");
            }
            // Python 1.x: the completion time.
            "event_processed_at" => {
                if value.is_null() {
                    assert!(output.get("event_processed_at").is_none(), "{at}");
                } else {
                    assert!(
                        same_instant(value, &output["event_completed_at"]),
                        "{at} → event_completed_at"
                    );
                    assert_eq!(output["event_status"], "completed", "{at} → event_status");
                }
            }
            // Python 1.x wrote `str(type)`: not a schema, dropped.
            "event_result_type" if value.is_string() => {
                assert_eq!(out, &Value::Null, "{at} (a Python type name) is dropped");
            }
            // The sender's count of its own buses; ours counts ours.
            "event_pending_bus_count" => {
                assert!(out.is_u64(), "{at}");
            }
            // Unset: derived from the lineage.
            "event_blocks_parent_completion" if value.is_null() => {
                assert!(out.is_boolean(), "{at}");
            }
            "event_results" => assert_results_preserved(value, out, &at),
            _ if TIMESTAMP_KEYS.contains(&k) => {
                assert!(same_instant(value, out), "{at}: {value} vs {out}");
            }
            _ if SECONDS_KEYS.contains(&k) => {
                assert!(same_number(value, out), "{at}: {value} vs {out}");
            }
            _ => assert_eq!(out, value, "{at}"),
        }
    }
}

/// `input` is `event_results` as a list or a map; `output` is the canonical object keyed by
/// handler id, in the same order.
pub(crate) fn assert_results_preserved(input: &Value, output: &Value, ctx: &str) {
    let items: Vec<(Option<&str>, &Value)> = match input {
        Value::Array(items) => items.iter().map(|i| (None, i)).collect(),
        Value::Object(map) => map.iter().map(|(k, v)| (Some(k.as_str()), v)).collect(),
        Value::Null => Vec::new(),
        other => panic!("{ctx}: not results: {other}"),
    };
    let out = output
        .as_object()
        .unwrap_or_else(|| panic!("{ctx}: not an object keyed by handler id: {output}"));
    assert_eq!(out.len(), items.len(), "{ctx}: number of results");
    for (i, ((key, item), (out_key, out))) in items.into_iter().zip(out).enumerate() {
        let at = format!("{ctx}[{i}]");
        let unknown: Vec<String> = keys(item)
            .into_iter()
            .filter(|k| !RESULT_KEYS.contains(&k.as_str()))
            .collect();
        let out_keys = keys(out);
        assert_eq!(
            out_keys[..RESULT_KEYS.len().min(out_keys.len())],
            RESULT_KEYS,
            "{at}: keys and their order"
        );
        assert_eq!(
            out_keys[RESULT_KEYS.len()..],
            unknown,
            "{at}: unknown keys kept, after the known ones"
        );
        assert_eq!(
            out["handler_id"],
            out_key.as_str(),
            "{at}: keyed by handler id"
        );
        if let Some(key) = key {
            if item.get("handler_id").is_none() {
                assert_eq!(out["handler_id"], key, "{at}: handler_id from the map key");
            }
        }
        for (k, value) in item.as_object().expect("result object") {
            let o = &out[k.as_str()];
            let at = format!("{at}.{k}");
            match k.as_str() {
                // TypeScript serializes Error objects as `{}`.
                "error" if value.as_object().is_some_and(Map::is_empty) => {
                    assert_eq!(
                        o,
                        &serde_json::json!({"type": "Error", "message": ""}),
                        "{at}"
                    );
                }
                _ if TIMESTAMP_KEYS.contains(&k.as_str()) => {
                    assert!(same_instant(value, o), "{at}: {value} vs {o}")
                }
                _ if SECONDS_KEYS.contains(&k.as_str()) => {
                    assert!(same_number(value, o), "{at}: {value} vs {o}")
                }
                _ => assert_eq!(o, value, "{at}"),
            }
        }
    }
}

/// Asserts the canonical event shape: the built-in keys in order, then `extra` (payload and
/// possibly `event_results`).
pub(crate) fn assert_canonical_shape(output: &Value, ctx: &str) {
    assert_canonical_shape_keeping(output, &[], ctx);
}

/// [`assert_canonical_shape`] for the re-serialization of an input that had `event_*` keys the
/// crate does not know (`unknown`): they come right after the built-in keys, in input order.
pub(crate) fn assert_canonical_shape_keeping(output: &Value, unknown: &[String], ctx: &str) {
    let k = keys(output);
    assert!(k.len() >= EVENT_KEYS.len() + unknown.len(), "{ctx}: {k:?}");
    assert_eq!(
        &k[..EVENT_KEYS.len()],
        EVENT_KEYS,
        "{ctx}: built-in keys and their order"
    );
    let rest = &k[EVENT_KEYS.len()..];
    assert_eq!(&rest[..unknown.len()], unknown, "{ctx}: unknown keys kept");
    for key in &rest[unknown.len()..] {
        assert!(
            !key.starts_with("event_") || key == "event_results",
            "{ctx}: stray key {key}"
        );
    }
    if let Some(pos) = k.iter().position(|x| x == "event_results") {
        assert_eq!(pos, k.len() - 1, "{ctx}: event_results comes last");
    }
    for key in ["event_created_at", "event_started_at", "event_completed_at"] {
        if let Some(t) = output[key].as_str() {
            assert_eq!(t.len(), 30, "{ctx}: {key} = {t}");
            assert!(t.ends_with('Z'), "{ctx}: {key} = {t}");
        }
    }
}

/// The `event_*` keys of an input event that are not built-in keys (nor the older runtimes'
/// `event_schema`, `event_processed_at`, nor `event_results`): kept and written back as they are.
pub(crate) fn unknown_event_keys(input: &Value) -> Vec<String> {
    const OLDER: [&str; 3] = ["event_schema", "event_processed_at", "event_results"];
    keys(input)
        .into_iter()
        .filter(|k| k.starts_with("event_"))
        .filter(|k| !EVENT_KEYS.contains(&k.as_str()) && !OLDER.contains(&k.as_str()))
        .collect()
}
