//! A JSON Schema checker for the subset of draft 2020-12 (and draft 7) that result schemas use.
//!
//! The schemas that reach us are the ones the bubus runtimes generate for handler result types:
//! pydantic's (Python), zod's `toJSONSchema` (TypeScript) and schemars' (Rust). They use types,
//! objects with `properties` / `required` / `additionalProperties`, arrays with `items` /
//! `prefixItems`, `enum` / `const`, `anyOf` / `oneOf` / `allOf`, local `$ref`s into `$defs` or
//! `definitions`, and numeric, length and item-count bounds. Those are checked here; keywords
//! outside that set (formats, patterns, conditionals, remote references) are accepted without
//! checking, as the reference runtimes' own rehydration does.

use serde_json::{Map, Value};

/// How deep `$ref` chains and nesting may go before the value is accepted unchecked (a guard
/// against self-referencing schemas).
pub(super) const MAX_DEPTH: usize = 64;

/// Checks `value` against `schema`. `Err` carries the first mismatch, with the JSON Pointer to it
/// (`/regions/0/x`).
pub(crate) fn check(schema: &Value, value: &Value) -> Result<(), String> {
    Checker { root: schema }.check(schema, value, "", 0)
}

struct Checker<'a> {
    root: &'a Value,
}

pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(super) fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "number" => value.is_number(),
        "integer" => match value {
            Value::Number(n) => {
                n.is_i64()
                    || n.is_u64()
                    || n.as_f64()
                        .is_some_and(|f| f.fract() == 0.0 && f.is_finite())
            }
            _ => false,
        },
        _ => true,
    }
}

pub(super) fn at(path: &str) -> String {
    if path.is_empty() {
        String::from("the value")
    } else {
        format!("`{path}`")
    }
}

impl<'a> Checker<'a> {
    fn check(
        &self,
        schema: &'a Value,
        value: &Value,
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
                self.check(target, value, path, depth + 1)?;
            }
        }
        self.check_type(schema, value, path)?;
        if let Some(Value::Array(options)) = schema.get("enum") {
            if !options.iter().any(|o| super::json_eq(o, value)) {
                return Err(format!(
                    "{} is {value}, not one of {}",
                    at(path),
                    Value::Array(options.clone())
                ));
            }
        }
        if let Some(expected) = schema.get("const") {
            if !super::json_eq(expected, value) {
                return Err(format!("{} is {value}, expected {expected}", at(path)));
            }
        }
        self.check_combinators(schema, value, path, depth)?;
        match value {
            Value::Number(n) => check_number(schema, n.as_f64().unwrap_or(f64::NAN), path),
            Value::String(s) => {
                check_length(schema, s.chars().count(), "minLength", "maxLength", path)
            }
            Value::Array(items) => self.check_array(schema, items, path, depth),
            Value::Object(fields) => self.check_object(schema, fields, path, depth),
            Value::Null | Value::Bool(_) => Ok(()),
        }
    }

    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let pointer = reference.strip_prefix('#')?;
        if pointer.is_empty() {
            return Some(self.root);
        }
        self.root.pointer(pointer)
    }

    fn check_type(
        &self,
        schema: &Map<String, Value>,
        value: &Value,
        path: &str,
    ) -> Result<(), String> {
        let ok = match schema.get("type") {
            None => true,
            Some(Value::String(t)) => type_matches(t, value),
            Some(Value::Array(types)) => types
                .iter()
                .filter_map(Value::as_str)
                .any(|t| type_matches(t, value)),
            Some(_) => true,
        };
        // OpenAPI-style `nullable: true`, which some generators emit.
        let nullable = value.is_null() && schema.get("nullable") == Some(&Value::Bool(true));
        if ok || nullable {
            Ok(())
        } else {
            Err(format!(
                "{} is {} ({value}), expected {}",
                at(path),
                kind(value),
                schema
                    .get("type")
                    .map(ToString::to_string)
                    .unwrap_or_default()
            ))
        }
    }

    fn check_combinators(
        &self,
        schema: &'a Map<String, Value>,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        if let Some(Value::Array(all)) = schema.get("allOf") {
            for sub in all {
                self.check(sub, value, path, depth + 1)?;
            }
        }
        if let Some(Value::Array(any)) = schema.get("anyOf") {
            if !any
                .iter()
                .any(|sub| self.check(sub, value, path, depth + 1).is_ok())
            {
                return Err(format!(
                    "{} ({value}) matches none of the allowed shapes",
                    at(path)
                ));
            }
        }
        if let Some(Value::Array(one)) = schema.get("oneOf") {
            let matching = one
                .iter()
                .filter(|sub| self.check(sub, value, path, depth + 1).is_ok())
                .count();
            if matching != 1 {
                return Err(format!(
                    "{} ({value}) matches {matching} of the alternatives, expected exactly one",
                    at(path)
                ));
            }
        }
        if let Some(not) = schema.get("not") {
            if self.check(not, value, path, depth + 1).is_ok() {
                return Err(format!(
                    "{} ({value}) matches a shape it must not",
                    at(path)
                ));
            }
        }
        Ok(())
    }

    fn check_array(
        &self,
        schema: &'a Map<String, Value>,
        items: &[Value],
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        check_length(schema, items.len(), "minItems", "maxItems", path)?;
        let mut rest_from = 0;
        if let Some(Value::Array(prefix)) = schema.get("prefixItems") {
            for (i, (sub, item)) in prefix.iter().zip(items).enumerate() {
                self.check(sub, item, &format!("{path}/{i}"), depth + 1)?;
            }
            rest_from = prefix.len();
        }
        match schema.get("items") {
            // Draft 7 tuples.
            Some(Value::Array(tuple)) => {
                for (i, (sub, item)) in tuple.iter().zip(items).enumerate() {
                    self.check(sub, item, &format!("{path}/{i}"), depth + 1)?;
                }
            }
            Some(sub) => {
                for (i, item) in items.iter().enumerate().skip(rest_from) {
                    self.check(sub, item, &format!("{path}/{i}"), depth + 1)?;
                }
            }
            None => {}
        }
        if schema.get("uniqueItems") == Some(&Value::Bool(true)) {
            for (i, a) in items.iter().enumerate() {
                if items[..i].iter().any(|b| super::json_eq(a, b)) {
                    return Err(format!("{} has a duplicate item {a}", at(path)));
                }
            }
        }
        Ok(())
    }

    fn check_object(
        &self,
        schema: &'a Map<String, Value>,
        fields: &Map<String, Value>,
        path: &str,
        depth: usize,
    ) -> Result<(), String> {
        check_fields(
            schema,
            fields.len(),
            |name| fields.contains_key(name),
            fields.iter().map(|(name, field)| (name.as_str(), field)),
            path,
            |sub, field, field_path| self.check(sub, field, field_path, depth + 1),
        )
    }
}

/// An object's fields against `schema`'s `required`, `properties`, `additionalProperties` and
/// `min/maxProperties`, each field's value checked by `check_field(sub_schema, field, path)`:
/// shared by the check of a parsed value and the check of text.
pub(super) fn check_fields<'s, 'f, F>(
    schema: &'s Map<String, Value>,
    len: usize,
    has: impl Fn(&str) -> bool,
    fields: impl Iterator<Item = (&'f str, F)>,
    path: &str,
    mut check_field: impl FnMut(&'s Value, F, &str) -> Result<(), String>,
) -> Result<(), String> {
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !has(name) {
                return Err(format!(
                    "{} is missing the required field `{name}`",
                    at(path)
                ));
            }
        }
    }
    let properties = match schema.get("properties") {
        Some(Value::Object(properties)) => Some(properties),
        _ => None,
    };
    for (name, field) in fields {
        let field_path = format!("{path}/{}", name.replace('~', "~0").replace('/', "~1"));
        match properties.and_then(|p| p.get(name)) {
            Some(sub) => check_field(sub, field, &field_path)?,
            None => match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => {
                    return Err(format!("{} has an unexpected field `{name}`", at(path)));
                }
                Some(sub @ Value::Object(_)) => check_field(sub, field, &field_path)?,
                _ => {}
            },
        }
    }
    check_length(schema, len, "minProperties", "maxProperties", path)
}

pub(super) fn check_number(schema: &Map<String, Value>, n: f64, path: &str) -> Result<(), String> {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(min) = bound("minimum") {
        if n < min {
            return Err(format!("{} is {n}, below the minimum {min}", at(path)));
        }
    }
    if let Some(max) = bound("maximum") {
        if n > max {
            return Err(format!("{} is {n}, above the maximum {max}", at(path)));
        }
    }
    if let Some(min) = bound("exclusiveMinimum") {
        if n <= min {
            return Err(format!("{} is {n}, not above {min}", at(path)));
        }
    }
    if let Some(max) = bound("exclusiveMaximum") {
        if n >= max {
            return Err(format!("{} is {n}, not below {max}", at(path)));
        }
    }
    if let Some(step) = bound("multipleOf").filter(|s| *s > 0.0) {
        let ratio = n / step;
        if (ratio - ratio.round()).abs() > 1e-9 {
            return Err(format!("{} is {n}, not a multiple of {step}", at(path)));
        }
    }
    Ok(())
}

pub(super) fn check_length(
    schema: &Map<String, Value>,
    len: usize,
    min_key: &str,
    max_key: &str,
    path: &str,
) -> Result<(), String> {
    let bound = |key: &str| schema.get(key).and_then(Value::as_u64);
    let len = len as u64;
    if let Some(min) = bound(min_key) {
        if len < min {
            return Err(format!(
                "{} has {len} elements, fewer than {min_key} {min}",
                at(path)
            ));
        }
    }
    if let Some(max) = bound(max_key) {
        if len > max {
            return Err(format!(
                "{} has {len} elements, more than {max_key} {max}",
                at(path)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;
    use serde_json::json;

    #[test]
    fn primitives_and_nullable_unions() {
        assert!(check(&json!({"type": "integer"}), &json!(5)).is_ok());
        assert!(check(&json!({"type": "integer"}), &json!(5.0)).is_ok());
        assert!(check(&json!({"type": "integer"}), &json!(5.5)).is_err());
        assert!(check(&json!({"type": "integer"}), &json!("5")).is_err());
        assert!(check(&json!({"type": "number"}), &json!(1.5)).is_ok());
        assert!(check(&json!({"type": ["string", "null"]}), &json!(null)).is_ok());
        assert!(
            check(
                &json!({"anyOf": [{"type": "string"}, {"type": "null"}]}),
                &json!(3)
            )
            .is_err()
        );
        assert!(check(&json!({"type": "integer", "minimum": 0}), &json!(-1)).is_err());
        assert!(check(&json!(true), &json!({"anything": 1})).is_ok());
        assert!(check(&json!(false), &json!(1)).is_err());
    }

    #[test]
    fn objects_arrays_and_refs() {
        let schema = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": {"Region": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
            "type": "object",
            "properties": {
                "url": {"type": "string"},
                "regions": {"type": "array", "items": {"$ref": "#/$defs/Region"}},
                "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]}
            },
            "required": ["url"],
            "additionalProperties": false
        });
        assert!(
            check(
                &schema,
                &json!({"url": "u", "regions": [{"x": 1}], "pair": ["a", 1]})
            )
            .is_ok()
        );
        let err = check(&schema, &json!({"url": "u", "regions": [{"x": "one"}]})).unwrap_err();
        assert!(err.contains("/regions/0/x"), "{err}");
        assert!(
            check(&schema, &json!({"regions": []}))
                .unwrap_err()
                .contains("`url`")
        );
        assert!(
            check(&schema, &json!({"url": "u", "extra": 1}))
                .unwrap_err()
                .contains("extra")
        );
        assert!(
            check(&schema, &json!({"url": "u", "pair": [1, 1]}))
                .unwrap_err()
                .contains("/pair/0")
        );
        let map = json!({"type": "object", "additionalProperties": {"type": "array", "items": {"type": "integer"}}});
        assert!(check(&map, &json!({"a": [1, 2]})).is_ok());
        assert!(check(&map, &json!({"a": [1, "2"]})).is_err());
    }

    #[test]
    fn enums_consts_and_self_reference_terminate() {
        assert!(check(&json!({"enum": ["a", "b"]}), &json!("b")).is_ok());
        assert!(check(&json!({"enum": ["a", "b"]}), &json!("c")).is_err());
        assert!(check(&json!({"const": 1}), &json!(1.0)).is_ok());
        let recursive = json!({"$ref": "#"});
        assert!(check(&recursive, &json!(1)).is_ok());
    }
}
