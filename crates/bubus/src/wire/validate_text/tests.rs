use serde_json::{Value, json};

use super::check_text;
use crate::wire::validate::check;

/// Both checks on `text`: the same decision and the same message.
fn same(schema: &Value, text: &str) -> Result<(), String> {
    let value: Value = serde_json::from_str(text).expect(text);
    let by_value = check(schema, &value);
    let by_text = check_text(schema, text);
    assert_eq!(by_text, by_value, "schema {schema}, value {text}");
    by_value
}

fn cases(schema: Value, accepted: &[&str], rejected: &[&str]) {
    for text in accepted {
        assert!(same(&schema, text).is_ok(), "{schema} should accept {text}");
    }
    for text in rejected {
        assert!(
            same(&schema, text).is_err(),
            "{schema} should reject {text}"
        );
    }
}

#[test]
fn types_numbers_and_strings() {
    cases(
        json!({"type": "integer", "minimum": 0, "maximum": 10}),
        &["5", "5.0", "0", "1e1", "10"],
        &[
            "5.5",
            "-1",
            "11",
            "\"5\"",
            "null",
            "[5]",
            "{\"a\":5}",
            "1.0e2",
        ],
    );
    cases(
        json!({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1, "multipleOf": 0.25}),
        &["0.25", "0.5", "7.5e-1"],
        &["0", "1", "0.3", "true", "[]"],
    );
    cases(
        json!({"type": ["string", "null"], "minLength": 2, "maxLength": 3}),
        &[
            "null",
            "\"ab\"",
            "\"\\u00e9\\u00e9\"",
            "\"\\u00e9\\u00e9\\u00e9\"",
        ],
        &["\"a\"", "\"abcd\"", "1", "{}", "[\"ab\"]", "\"\\n\""],
    );
    cases(
        json!({"type": "boolean", "nullable": true}),
        &["true", "false", "null"],
        &["0", "\"true\"", "[true]"],
    );
    cases(json!(true), &["1", "[{}]", "{\"a\":[]}"], &[]);
    cases(json!(false), &[], &["1", "null", "[]", "{}"]);
    cases(json!({"type": "frobnicate"}), &["1", "[]", "{}"], &[]);
    cases(
        json!({"type": "array"}),
        &["[]", " [ 1 , 2 ] "],
        &["{\"a\": [1, {\"b\": \"\\u0041\\t\"}], \"a\": 2.50}"],
    );
}

#[test]
fn objects_arrays_and_refs() {
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$defs": {"Region": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
        "definitions": {"Tag": {"type": "string", "maxLength": 3}},
        "type": "object",
        "properties": {
            "url": {"type": "string"},
            "regions": {"type": "array", "items": {"$ref": "#/$defs/Region"}, "minItems": 1, "maxItems": 3},
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "items": {"$ref": "#/definitions/Tag"}},
            "old": {"type": "array", "items": [{"type": "null"}, {"type": "boolean"}]},
            "a/b~c": {"type": "integer"},
            "map": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "integer"}}, "minProperties": 1, "maxProperties": 2}
        },
        "required": ["url"],
        "additionalProperties": false
    });
    cases(
        schema,
        &[
            r#"{"url": "u"}"#,
            r#"{"url": "u", "regions": [{"x": 1}, {"x": 2.0, "y": "free"}]}"#,
            r#"{"url": "u", "pair": ["a", 1, "abc", "xy"], "old": [null, true, "anything"]}"#,
            r#"{"url": "u", "a/b~c": 3, "map": {"k": [1, 2], "l": []}}"#,
            r#"{"url": 1, "url": "last wins"}"#,
        ],
        &[
            r#"{"regions": []}"#,
            r#"{"url": "u", "regions": []}"#,
            r#"{"url": "u", "regions": [{"x": 1}, {"x": 1}, {"x": 1}, {"x": 1}]}"#,
            r#"{"url": "u", "regions": [{"x": "one"}]}"#,
            r#"{"url": "u", "regions": [{"y": 1}]}"#,
            r#"{"url": "u", "extra": 1}"#,
            r#"{"url": "u", "pair": [1, 1]}"#,
            r#"{"url": "u", "pair": ["a", "b"]}"#,
            r#"{"url": "u", "pair": ["a", 1, "long"]}"#,
            r#"{"url": "u", "old": [1]}"#,
            r#"{"url": "u", "old": [null, 1]}"#,
            r#"{"url": "u", "a/b~c": "x"}"#,
            r#"{"url": "u", "map": {}}"#,
            r#"{"url": "u", "map": {"a": [1], "b": [2], "c": [3]}}"#,
            r#"{"url": "u", "map": {"a": [1, "2"]}}"#,
            r#"{"url": "u", "map": {"a": 1}}"#,
            r#"{"url": "last loses", "url": 1}"#,
            r#"{"z": 1, "url": 2, "a": 3}"#,
            r#"[{"url": "u"}]"#,
        ],
    );
}

#[test]
fn enums_consts_and_combinators() {
    cases(
        json!({"enum": ["a", 1, [1, {"k": null}], {"x": [true]}, null]}),
        &[
            "\"a\"",
            "1.0",
            "[1,{\"k\":null}]",
            "[1.0, {\"k\": null}]",
            "{\"x\":[true]}",
            "null",
        ],
        &[
            "\"b\"",
            "2",
            "[1]",
            "[1,{\"k\":null},2]",
            "[1,{\"k\":0}]",
            "{\"x\":[true],\"y\":1}",
            "{\"x\":[false]}",
            "{}",
            "false",
        ],
    );
    cases(
        json!({"const": {"a": [1, 2], "b": "c"}}),
        &[
            r#"{"b": "c", "a": [1.0, 2]}"#,
            r#"{"a": [1, 2], "b": "x", "b": "c"}"#,
        ],
        &[
            r#"{"a": [1, 2]}"#,
            r#"{"a": [2, 1], "b": "c"}"#,
            r#""c""#,
            "[1, 2]",
        ],
    );
    let schema = json!({
        "$defs": {"Point": {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}},
        "anyOf": [{"$ref": "#/$defs/Point"}, {"type": "null"}, {"type": "array", "items": {"$ref": "#/$defs/Point"}}]
    });
    cases(
        schema,
        &["null", r#"{"x": 1}"#, r#"[{"x": 1}, {"x": 2.5}]"#],
        &["1", r#"{"y": 1}"#, r#"[{"x": "1"}]"#, r#""A""#],
    );
    cases(
        json!({"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 2}]}),
        &["1", "2.5"],
        &["3", "1.5", "\"3\""],
    );
    cases(
        json!({"allOf": [{"type": "array"}, {"maxItems": 2}], "not": {"items": {"type": "string"}, "minItems": 1}}),
        &["[]", "[1, \"a\"]"],
        &["[\"a\"]", "[1, 2, 3]", "{}"],
    );
}

#[test]
fn unique_items_and_self_reference() {
    cases(
        json!({"type": "array", "uniqueItems": true}),
        &["[1, 2, \"1\"]", r#"[{"a": 1}, {"a": 2}, [1], [1, 1]]"#],
        &[
            "[1, 1.0]",
            r#"[{"a": 1, "b": 2}, {"b": 2, "a": 1.0}]"#,
            "[[1, [2]], [1, [2.0]]]",
            "[null, null]",
        ],
    );
    // A schema that refers to itself ends at the depth guard, however deep the value goes.
    let nested = "[".repeat(90) + &"]".repeat(90);
    cases(
        json!({"type": "array", "items": {"$ref": "#"}}),
        &[&nested, "[[], [[]]]"],
        &["[1]", "[[[1]]]"],
    );
    cases(json!({"$ref": "#"}), &["1", "{}"], &[]);
    cases(
        json!({"$ref": "#/nowhere", "type": "string"}),
        &["\"s\""],
        &["1"],
    );
}

/// Values made up from a seed, against schemas of every keyword: both checks agree.
#[test]
fn generated_values_agree() {
    fn value(seed: &mut u64, depth: u32) -> Value {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let pick = (*seed >> 33) % if depth > 3 { 6 } else { 8 };
        let n = (*seed >> 40) % 4;
        match pick {
            0 => Value::Null,
            1 => json!(n == 0),
            2 => json!(n as i64 - 1),
            3 => json!(n as f64 / 2.0),
            4 => json!(["a", "bb", "x", "1"][n as usize]),
            5 => json!(["a", "b"][(n % 2) as usize]),
            6 => Value::Array((0..n).map(|_| value(seed, depth + 1)).collect()),
            _ => Value::Object(
                (0..n)
                    .map(|i| {
                        (
                            ["a", "b", "x", "c"][i as usize].to_owned(),
                            value(seed, depth + 1),
                        )
                    })
                    .collect(),
            ),
        }
    }
    let schemas = [
        json!({"type": "object", "properties": {"a": {"type": "integer", "minimum": 0}, "b": {"enum": ["a", "b", 1, null]}}, "required": ["a"], "additionalProperties": {"type": ["string", "array"]}}),
        json!({"type": "array", "items": {"anyOf": [{"type": "string", "maxLength": 1}, {"type": "number", "maximum": 0.5}, {"type": "array", "uniqueItems": true}]}}),
        json!({"oneOf": [{"type": "object", "maxProperties": 2}, {"type": "array", "minItems": 2}, {"const": "x"}]}),
        json!({"not": {"anyOf": [{"type": "boolean"}, {"const": [null]}]}, "prefixItems": [{"type": "null"}], "items": false}),
        json!({"$defs": {"T": {"anyOf": [{"type": "array", "items": {"$ref": "#/$defs/T"}}, {"type": "object", "additionalProperties": {"$ref": "#/$defs/T"}}, {"type": "integer"}]}}, "$ref": "#/$defs/T"}),
    ];
    let mut seed = 7;
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..3000 {
        let v = value(&mut seed, 0);
        for schema in &schemas {
            for text in [v.to_string(), serde_json::to_string_pretty(&v).unwrap()] {
                match same(schema, &text) {
                    Ok(()) => accepted += 1,
                    Err(_) => rejected += 1,
                }
            }
        }
    }
    assert!(
        accepted > 1000 && rejected > 1000,
        "{accepted} / {rejected}"
    );
}
