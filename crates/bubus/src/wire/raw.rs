//! Reading an event from text without building a tree of its payload: the payload's fields are
//! kept as compact JSON text and parsed only if something asks for them (a handler, `to_json`).
//! A value of many small items takes several times its text as a `serde_json::Value` (32 bytes an
//! item, growing vectors), so a log reader that only prints metadata, or copies events from one
//! file to another, keeps close to the size of the line instead.

use std::borrow::Cow;
use std::fmt;

use indexmap::IndexMap;
use rustc_hash::FxBuildHasher;
use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The fields of a JSON object, in order, each as the text of its value (borrowed from the input).
/// A key given twice keeps its first place and its last value (as `serde_json::Map` does).
pub(crate) struct RawObject<'a>(pub(crate) RawFields<'a>);

/// An object's fields by name: the names borrowed from the input unless they hold escapes (an
/// event has ~20 keys; one allocation and a SipHash each showed in every received event).
pub(crate) type RawFields<'a> = IndexMap<Cow<'a, str>, &'a RawValue, FxBuildHasher>;

/// A key as the input spells it: borrowed, or unescaped into an owned string.
struct Key<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for KeyVisitor<'a> {
            type Value = Key<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Key<'a>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor(std::marker::PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for Fields<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an event object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject<'a>, A::Error> {
                // serde_json gives no size hint: room for an event's keys, so they are not
                // rehashed three times on the way.
                let mut fields = IndexMap::with_capacity_and_hasher(
                    map.size_hint().unwrap_or(32).min(64),
                    FxBuildHasher,
                );
                while let Some((Key(key), value)) = map.next_entry::<Key<'a>, &'a RawValue>()? {
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
    let mut strings = Strings::default();
    for c in raw.chars() {
        if strings.in_literal(c) {
            out.push(c);
            continue;
        }
        match c {
            ' ' | '\t' | '\n' | '\r' => continue,
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

/// Whether every number in the JSON text `raw` (already known to be valid JSON) is one a parser
/// can read back: finite as an `f64`. serde_json's validation of raw text checks a number's
/// syntax only, so `1e999` passes it and fails every later parse ("number out of range"); text
/// kept as it was read must not hold one.
pub(crate) fn numbers_in_range(raw: &str) -> bool {
    let mut strings = Strings::default();
    let mut start = None;
    for (i, c) in raw.char_indices() {
        // In valid JSON a number never runs into a string's opening quote.
        if strings.in_literal(c) {
            continue;
        }
        // A number starts with `-` or a digit (so the `e` of `true` starts none) and runs on
        // through its fraction and exponent.
        let starts = matches!(c, '-' | '0'..='9');
        let continues = matches!(c, '-' | '+' | '.' | 'e' | 'E' | '0'..='9');
        match (start, starts, continues) {
            (None, true, _) => start = Some(i),
            (Some(from), _, false) => {
                if !number_in_range(&raw[from..i]) {
                    return false;
                }
                start = None;
            }
            _ => {}
        }
    }
    start.is_none_or(|from| number_in_range(&raw[from..]))
}

/// Walks JSON text a character at a time and says which characters belong to a string literal
/// (its quotes included), so a scan can skip brackets, commas and digits inside strings.
#[derive(Default)]
pub(crate) struct Strings {
    in_string: bool,
    escaped: bool,
}

impl Strings {
    /// Feeds the next character `c`; whether it is part of a string literal.
    pub(crate) fn in_literal(&mut self, c: char) -> bool {
        if self.in_string {
            if self.escaped {
                self.escaped = false;
            } else if c == '\\' {
                self.escaped = true;
            } else if c == '"' {
                self.in_string = false;
            }
            true
        } else {
            self.in_string = c == '"';
            self.in_string
        }
    }
}

fn number_in_range(token: &str) -> bool {
    token.parse::<f64>().is_ok_and(f64::is_finite)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_a_parser_cannot_read_back_are_found() {
        assert!(numbers_in_range(
            r#"{"a":[1,-2.5e10,1e308],"b":"1e999","c":true}"#
        ));
        assert!(numbers_in_range("123456789012345678901234567890"));
        assert!(!numbers_in_range(r#"{"a":1e999}"#));
        assert!(!numbers_in_range("[1,-6666e6666]"));
        assert!(!numbers_in_range("1e400"));
        // What serde_json says of the same text.
        assert!(serde_json::from_str::<serde_json::Value>("[1,-6666e6666]").is_err());
    }

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
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (&**k, v.get())).collect();
        assert_eq!(fields, [("b", r#"{"x": null}"#), ("a", "[2, 3]")]);
        assert!(serde_json::from_str::<RawObject<'_>>("[1]").is_err());
    }
}
