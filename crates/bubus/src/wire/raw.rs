//! Reading an event from text without building a tree of its payload: the payload's fields are
//! kept as compact JSON text and parsed only if something asks for them (a handler, `to_json`).
//! A value of many small items takes several times its text as a `serde_json::Value` (32 bytes an
//! item, growing vectors), so a log reader that only prints metadata, or copies events from one
//! file to another, keeps close to the size of the line instead.

use std::fmt;

use indexmap::IndexMap;
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The fields of a JSON object, in order, each as the text of its value (borrowed from the input).
/// A key given twice keeps its first place and its last value (as `serde_json::Map` does).
pub(crate) struct RawObject<'a>(pub(crate) IndexMap<String, &'a RawValue>);

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Fields<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject<'a>, A::Error> {
                let mut fields = IndexMap::with_capacity(map.size_hint().unwrap_or(0).min(64));
                while let Some((key, value)) = map.next_entry::<String, &'a RawValue>()? {
                    fields.insert(key, value);
                }
                Ok(RawObject(fields))
            }
        }
        deserializer.deserialize_map(Fields(std::marker::PhantomData))
    }
}

/// `raw` (valid JSON) without the whitespace between its tokens, and how deeply it nests; `Err`
/// with the depth reached once it nests deeper than `limit`.
pub(crate) fn compact(raw: &str, limit: usize) -> Result<(Box<str>, usize), usize> {
    let mut out = String::with_capacity(raw.len());
    let (mut depth, mut deepest) = (0usize, 0usize);
    let (mut in_string, mut escaped) = (false, false);
    for c in raw.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            ' ' | '\t' | '\n' | '\r' => continue,
            '"' => in_string = true,
            '[' | '{' => {
                depth += 1;
                if depth > limit {
                    return Err(depth);
                }
                deepest = deepest.max(depth);
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        out.push(c);
    }
    Ok((out.into_boxed_str(), deepest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacting_keeps_strings_and_measures_depth() {
        let (text, depth) =
            compact(" { \"a b\" : [ 1 , \"x \\\" ]\" ,\n{\"c\":[]} ] } ", 10).unwrap();
        assert_eq!(&*text, r#"{"a b":[1,"x \" ]",{"c":[]}]}"#);
        assert_eq!(depth, 4);
        assert_eq!(compact("\"[[[\"", 1).unwrap().1, 0);
        assert_eq!(compact("[[[1]]]", 2), Err(3));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["a b"][2]["c"], serde_json::json!([]));
    }

    #[test]
    fn raw_objects_keep_order_and_the_last_of_a_repeated_key() {
        let text = r#"{"b": 1, "a": [2, 3], "b": {"x": null}}"#;
        let RawObject(fields) = serde_json::from_str(text).unwrap();
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.get())).collect();
        assert_eq!(fields, [("b", r#"{"x": null}"#), ("a", "[2, 3]")]);
        assert!(serde_json::from_str::<RawObject<'_>>("[1]").is_err());
    }
}
