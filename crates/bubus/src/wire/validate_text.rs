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
mod tests;
