//! The result types `flat_dict` and `flat_list` can merge: [`FlatDict`] (maps, JSON objects)
//! and [`FlatList`] (vectors, JSON arrays).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use indexmap::IndexMap;
use serde_json::Value;

/// Map-like result types that [`ResultsQuery::flat_dict`](super::ResultsQuery::flat_dict) can merge.
pub trait FlatDict: Sized {
    #[doc(hidden)]
    fn __empty() -> Self;
    /// The keys, or `None` if this value is not a map (JSON values that are not objects).
    #[doc(hidden)]
    fn __keys(&self) -> Option<Vec<String>>;
    /// Inserts every entry of `other`, overwriting existing keys.
    #[doc(hidden)]
    fn __merge(&mut self, other: Self);
}

impl<K: Eq + Hash + ToString, V, S: std::hash::BuildHasher + Default> FlatDict
    for HashMap<K, V, S>
{
    fn __empty() -> Self {
        HashMap::default()
    }
    fn __keys(&self) -> Option<Vec<String>> {
        Some(self.keys().map(ToString::to_string).collect())
    }
    fn __merge(&mut self, other: Self) {
        self.extend(other);
    }
}

impl<K: Ord + ToString, V> FlatDict for BTreeMap<K, V> {
    fn __empty() -> Self {
        BTreeMap::new()
    }
    fn __keys(&self) -> Option<Vec<String>> {
        Some(self.keys().map(ToString::to_string).collect())
    }
    fn __merge(&mut self, other: Self) {
        self.extend(other);
    }
}

impl<K: Eq + Hash + ToString, V, S: std::hash::BuildHasher + Default> FlatDict
    for IndexMap<K, V, S>
{
    fn __empty() -> Self {
        IndexMap::default()
    }
    fn __keys(&self) -> Option<Vec<String>> {
        Some(self.keys().map(ToString::to_string).collect())
    }
    fn __merge(&mut self, other: Self) {
        self.extend(other);
    }
}

impl FlatDict for serde_json::Map<String, Value> {
    fn __empty() -> Self {
        serde_json::Map::new()
    }
    fn __keys(&self) -> Option<Vec<String>> {
        Some(self.keys().cloned().collect())
    }
    fn __merge(&mut self, other: Self) {
        self.extend(other);
    }
}

impl FlatDict for Value {
    fn __empty() -> Self {
        Value::Object(serde_json::Map::new())
    }
    fn __keys(&self) -> Option<Vec<String>> {
        self.as_object().map(|m| m.keys().cloned().collect())
    }
    fn __merge(&mut self, other: Self) {
        if let (Value::Object(into), Value::Object(from)) = (self, other) {
            into.extend(from);
        }
    }
}

/// List-like result types that [`ResultsQuery::flat_list`](super::ResultsQuery::flat_list) can concatenate.
pub trait FlatList: Sized {
    #[doc(hidden)]
    fn __empty() -> Self;
    /// Appends the items of `other` (nothing, if `other` is not a list).
    #[doc(hidden)]
    fn __extend(&mut self, other: Self);
    /// Whether this value is a list (JSON values that are not arrays are not).
    #[doc(hidden)]
    fn __is_list(&self) -> bool {
        true
    }
}

impl<T> FlatList for Vec<T> {
    fn __empty() -> Self {
        Vec::new()
    }
    fn __extend(&mut self, other: Self) {
        self.extend(other);
    }
}

impl FlatList for Value {
    fn __empty() -> Self {
        Value::Array(Vec::new())
    }
    fn __is_list(&self) -> bool {
        self.is_array()
    }
    fn __extend(&mut self, other: Self) {
        if let (Value::Array(into), Value::Array(from)) = (self, other) {
            into.extend(from);
        }
    }
}
