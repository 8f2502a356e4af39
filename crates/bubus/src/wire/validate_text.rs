//! The result-schema check of `validate.rs`, walking a value's JSON text instead of a
//! `serde_json::Value`.
//!
//! A result read from a log stays text (`ResultSlot::Text`); parsing a 16 MiB result into a
//! `Value` only to check it costs tens of times its size (32 bytes an item, growing vectors). Here
//! the schema drives a walk over the text: each array or object is read one level at a time with
//! `serde_json`'s deserializer, its items and fields kept as slices of the text (`&RawValue`), and
//! only the parts the schema describes are read further. A level is read again for each enclosing
//! level the schema descends through, and for each alternative of an `anyOf`/`oneOf`/`not` — as the
//! `Value` check visits a value once per alternative. What the walk keeps at any time is the
//! fields of the objects on the current path (an object's keys and slices, as `RawObject`), never
//! a tree.
//!
//! Accept/reject decisions and messages are those of `validate::check` on the parsed value:
//! scalars are parsed as `Value`s and checked by the same functions, objects keep a repeated
//! key's first place and last value as `serde_json::Map` does, and a value quoted in a message is
//! rendered as `Value`'s `Display` renders it. `tests` run both checks on the same cases.

use std::fmt;

use serde::de::{self, Deserializer as _, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::json_eq;
use super::raw::RawObject;
use super::validate::{
    MAX_DEPTH, at, check_fields, check_length, check_number, kind, type_matches,
};

/// Checks the JSON text `text` against `schema`, as `validate::check` checks its parsed value.
pub(crate) fn check_text(schema: &Value, text: &str) -> Result<(), String> {
    let text = text.trim_matches([' ', '\t', '\n', '\r']);
    let node = Node::read(text)?;
    TextChecker { root: schema }.check(schema, text, &node, "", 0)
}

/// One level of a value read from its text.
enum Node<'t> {
    /// `null`, a boolean, a number or a string, parsed.
    Scalar(Value),
    /// An array's text; its items are read when the schema asks for them.
    Array(&'t str),
    /// An object's fields, each as the text of its value.
    Object(RawObject<'t>),
}

impl<'t> Node<'t> {
    fn read(text: &'t str) -> Result<Node<'t>, String> {
        match text.as_bytes().first() {
            Some(b'[') => Ok(Node::Array(text)),
            Some(b'{') => serde_json::from_str(text)
                .map(Node::Object)
                .map_err(|e| e.to_string()),
            _ => serde_json::from_str(text)
                .map(Node::Scalar)
                .map_err(|e| e.to_string()),
        }
    }

    /// A stand-in of the same JSON type for `kind` and `type_matches`, which look at nothing
    /// else of an array or an object.
    fn shape(&self) -> Option<Value> {
        match self {
            Node::Scalar(_) => None,
            Node::Array(_) => Some(Value::Array(Vec::new())),
            Node::Object(_) => Some(Value::Object(Map::new())),
        }
    }

    fn with_value<R>(&self, f: impl FnOnce(&Value) -> R) -> R {
        match self {
            Node::Scalar(value) => f(value),
            _ => f(&self.shape().unwrap_or(Value::Null)),
        }
    }
}

/// Calls `each` with the index and text of every item of the array `text`, in order, until it
/// returns `Ok(false)` or an error.
fn for_each_item<'t>(
    text: &'t str,
    mut each: impl FnMut(usize, &'t str) -> Result<bool, String>,
) -> Result<(), String> {
    struct Items<'f, F> {
        each: &'f mut F,
        failure: &'f mut Option<String>,
    }
    impl<'t, F> Visitor<'t> for Items<'_, F>
    where
        F: FnMut(usize, &'t str) -> Result<bool, String>,
    {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array")
        }
        fn visit_seq<A: SeqAccess<'t>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut index = 0;
            while let Some(item) = seq.next_element::<&'t RawValue>()? {
                match (self.each)(index, item.get()) {
                    Ok(true) => index += 1,
                    Ok(false) => return Err(de::Error::custom("stopped")),
                    Err(reason) => {
                        *self.failure = Some(reason);
                        return Err(de::Error::custom("stopped"));
                    }
                }
            }
            Ok(())
        }
    }
    let mut failure = None;
    let mut stopped = false;
    let mut each_until = |index, item| {
        let more = each(index, item)?;
        stopped = !more;
        Ok(more)
    };
    let read = serde_json::Deserializer::from_str(text).deserialize_seq(Items {
        each: &mut each_until,
        failure: &mut failure,
    });
    match (read, failure) {
        (_, Some(reason)) => Err(reason),
        (Err(_), None) if stopped => Ok(()),
        (read, None) => read.map_err(|e| e.to_string()),
    }
}

/// The items of the array `text`, as texts.
fn items(text: &str) -> Result<Vec<&str>, String> {
    let mut all = Vec::new();
    for_each_item(text, |_, item| {
        all.push(item);
        Ok(true)
    })?;
    Ok(all)
}

fn count_items(text: &str) -> Result<usize, String> {
    let mut count = 0;
    for_each_item(text, |_, _| {
        count += 1;
        Ok(true)
    })?;
    Ok(count)
}

/// `value`'s text as `Value`'s `Display` writes the parsed value (compact, a repeated key once).
fn render(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(4096));
    if render_into(text, &mut out).is_err() {
        return text.to_owned();
    }
    out
}

fn render_into(text: &str, out: &mut String) -> Result<(), String> {
    match Node::read(text)? {
        Node::Scalar(value) => out.push_str(&value.to_string()),
        Node::Array(text) => {
            out.push('[');
            for_each_item(text, |i, item| {
                if i > 0 {
                    out.push(',');
                }
                render_into(item, out)?;
                Ok(true)
            })?;
            out.push(']');
        }
        Node::Object(RawObject(fields)) => {
            out.push('{');
            for (i, (name, field)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(&**name).to_string());
                out.push(':');
                render_into(field.get(), out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// `json_eq(expected, value)` for a value read from text.
fn eq_expected(expected: &Value, node: &Node<'_>) -> bool {
    match (expected, node) {
        (_, Node::Scalar(value)) => json_eq(expected, value),
        (Value::Array(expected), Node::Array(text)) => {
            let mut matched = 0;
            let mut equal = true;
            let walked = for_each_item(text, |i, item| {
                equal = expected
                    .get(i)
                    .is_some_and(|e| Node::read(item).is_ok_and(|n| eq_expected(e, &n)));
                matched += 1;
                Ok(equal)
            });
            walked.is_ok() && equal && matched == expected.len()
        }
        (Value::Object(expected), Node::Object(RawObject(fields))) => {
            expected.len() == fields.len()
                && expected.iter().all(|(name, e)| {
                    fields
                        .get(name.as_str())
                        .is_some_and(|f| Node::read(f.get()).is_ok_and(|n| eq_expected(e, &n)))
                })
        }
        _ => false,
    }
}

/// `json_eq` of two values read from text.
fn eq_nodes(a: &Node<'_>, b: &Node<'_>) -> bool {
    match (a, b) {
        (Node::Scalar(a), Node::Scalar(b)) => json_eq(a, b),
        (Node::Array(a), Node::Array(b)) => match (items(a), items(b)) {
            (Ok(a), Ok(b)) => {
                a.len() == b.len()
                    && a.iter().zip(&b).all(|(a, b)| {
                        matches!((Node::read(a), Node::read(b)), (Ok(a), Ok(b)) if eq_nodes(&a, &b))
                    })
            }
            _ => false,
        },
        (Node::Object(RawObject(a)), Node::Object(RawObject(b))) => {
            a.len() == b.len()
                && a.iter().all(|(name, x)| {
                    b.get(&**name).is_some_and(|y| {
                        matches!((Node::read(x.get()), Node::read(y.get())), (Ok(x), Ok(y)) if eq_nodes(&x, &y))
                    })
                })
        }
        _ => false,
    }
}

struct TextChecker<'s> {
    root: &'s Value,
}

impl<'s> TextChecker<'s> {
    fn check_item(
        &self,
        schema: &'s Value,
        text: &str,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        // The depth guard first, as the `Value` check returns before looking at the value.
        if depth > MAX_DEPTH {
            return Ok(());
        }
        let node = Node::read(text)?;
        self.check(schema, text, &node, path, depth)
    }

    fn check(
        &self,
        schema: &'s Value,
        text: &str,
        node: &Node<'_>,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Ok(());
        }
        let schema = match schema {
            Value::Bool(true) => return Ok(()),
            Value::Bool(false) => return Err(format!("{} is not allowed here", at(path))),
            Value::Object(schema) => schema,
            _ => return Ok(()),
        };
        if let Some(Value::String(reference)) = schema.get("$ref") {
            if let Some(target) = self.resolve(reference) {
                self.check(target, text, node, path, depth + 1)?;
            }
        }
        self.check_type(schema, text, node, path)?;
        if let Some(Value::Array(options)) = schema.get("enum") {
            if !options.iter().any(|o| eq_expected(o, node)) {
                return Err(format!(
                    "{} is {}, not one of {}",
                    at(path),
                    render(text),
                    Value::Array(options.clone())
                ));
            }
        }
        if let Some(expected) = schema.get("const") {
            if !eq_expected(expected, node) {
                return Err(format!(
                    "{} is {}, expected {expected}",
                    at(path),
                    render(text)
                ));
            }
        }
        self.check_combinators(schema, text, node, path, depth)?;
        match node {
            Node::Scalar(Value::Number(n)) => {
                check_number(schema, n.as_f64().unwrap_or(f64::NAN), path)
            }
            Node::Scalar(Value::String(s)) => {
                check_length(schema, s.chars().count(), "minLength", "maxLength", path)
            }
            Node::Scalar(_) => Ok(()),
            Node::Array(array) => self.check_array(schema, array, path, depth),
            Node::Object(RawObject(fields)) => self.check_object(schema, fields, path, depth),
        }
    }

    fn resolve(&self, reference: &str) -> Option<&'s Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(pointer)
    }

    fn check_type(
        &self,
        schema: &Map<String, Value>,
        text: &str,
        node: &Node<'_>,
        path: &str,
    ) -> Result<(), String> {
        let ok = node.with_value(|value| match schema.get("type") {
            None => true,
            Some(Value::String(t)) => type_matches(t, value),
            Some(Value::Array(types)) => types
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(t, value)),
            Some(_) => true,
        });
        let nullable = matches!(node, Node::Scalar(Value::Null))
            && schema.get("nullable") == Some(&Value::Bool(true));
        if ok || nullable {
            Ok(())
        } else {
            Err(format!(
                "{} is {} ({}), expected {}",
                at(path),
                node.with_value(kind),
                render(text),
                schema
                    .get("type")
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ))
        }
    }

    fn check_combinators(
        &self,
        schema: &'s Map<String, Value>,
        text: &str,
        node: &Node<'_>,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        if let Some(Value::Array(all)) = schema.get("allOf") {
            for sub in all {
                self.check(sub, text, node, path, depth + 1)?;
            }
        }
        if let Some(Value::Array(any)) = schema.get("anyOf") {
            if !any
                .iter()
                .any(|sub| self.check(sub, text, node, path, depth + 1).is_ok())
            {
                return Err(format!(
                    "{} ({}) matches none of the allowed shapes",
                    at(path),
                    render(text)
                ));
            }
        }
        if let Some(Value::Array(one)) = schema.get("oneOf") {
            let matching = one
                .iter()
                .filter(|sub| self.check(sub, text, node, path, depth + 1).is_ok())
                .count();
            if matching != 1 {
                return Err(format!(
                    "{} ({}) matches {matching} of the alternatives, expected exactly one",
                    at(path),
                    render(text)
                ));
            }
        }
        if let Some(not) = schema.get("not") {
            if self.check(not, text, node, path, depth + 1).is_ok() {
                return Err(format!(
                    "{} ({}) matches a shape it must not",
                    at(path),
                    render(text)
                ));
            }
        }
        Ok(())
    }

    fn check_array(
        &self,
        schema: &'s Map<String, Value>,
        text: &str,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        if schema.contains_key("minItems") || schema.contains_key("maxItems") {
            check_length(schema, count_items(text)?, "minItems", "maxItems", path)?;
        }
        // Items checked against a list of schemas, one each, as far as both go.
        let tuple = |subs: &'s [Value]| {
            for_each_item(text, |i, item| match subs.get(i) {
                Some(sub) => self
                    .check_item(sub, item, &format!("{path}/{i}"), depth + 1)
                    .map(|()| true),
                None => Ok(false),
            })
        };
        let mut rest_from = 0;
        if let Some(Value::Array(prefix)) = schema.get("prefixItems") {
            tuple(prefix.as_slice())?;
            rest_from = prefix.len();
        }
        match schema.get("items") {
            // Draft 7 tuples.
            Some(Value::Array(subs)) => tuple(subs.as_slice())?,
            Some(sub) => for_each_item(text, |i, item| {
                if i >= rest_from {
                    self.check_item(sub, item, &format!("{path}/{i}"), depth + 1)?;
                }
                Ok(true)
            })?,
            None => {}
        }
        if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
            let all = items(text)?;
            let nodes = all
                .iter()
                .map(|item| Node::read(item))
                .collect::<Result<Vec<_>, _>>()?;
            for (i, a) in nodes.iter().enumerate() {
                if nodes[..i].iter().any(|b| eq_nodes(a, b)) {
                    return Err(format!(
                        "{} has a duplicate item {}",
                        at(path),
                        render(all[i])
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_object(
        &self,
        schema: &'s Map<String, Value>,
        fields: &super::raw::RawFields<'_>,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        check_fields(
            schema,
            fields.len(),
            |name| fields.contains_key(name),
            fields.iter().map(|(name, field)| (&**name, *field)),
            path,
            |sub, field, field_path| self.check_item(sub, field.get(), field_path, depth + 1),
        )
    }
}

#[cfg(test)]
mod tests {
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
}
