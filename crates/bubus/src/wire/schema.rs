//! JSON Schemas of result types: generated for typed events, carried by events from other
//! runtimes and checked against the results recorded for them.

#[cfg(feature = "schema")]
use std::collections::HashMap;
#[cfg(feature = "schema")]
use std::sync::OnceLock;

#[cfg(feature = "schema")]
use parking_lot::Mutex;
use serde_json::Value;

/// The `event_result_type` of a type: its JSON Schema (draft 2020-12), or `None` for `()`-like
/// types whose values are always null. Computed once per type.
#[cfg(feature = "schema")]
pub(crate) fn schema_for<T: schemars::JsonSchema + 'static>() -> Option<Value> {
    use std::any::TypeId;
    static CACHE: OnceLock<Mutex<HashMap<TypeId, Option<Value>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Mutex::default);
    if let Some(hit) = cache.lock().get(&TypeId::of::<T>()) {
        return hit.clone();
    }
    let schema = serde_json::to_value(schemars::schema_for!(T))
        .ok()
        .filter(|schema| schema.get("type").and_then(Value::as_str) != Some("null"));
    cache.lock().insert(TypeId::of::<T>(), schema.clone());
    schema
}

pub(crate) use crate::event::result_type::ResultType;

impl ResultType {
    /// Checks a value against the schema: `Err(reason)` (naming the path to the mismatch) if it
    /// does not match. Keywords outside the subset result schemas use are not checked; see
    /// `validate.rs`.
    pub(crate) fn check(&self, value: &Value) -> Result<(), String> {
        super::validate::check(&self.schema, value)
    }

    /// [`check`](Self::check) for a value given as its JSON text, without parsing it into a
    /// `Value` (same decisions and messages); see `validate_text.rs`.
    pub(crate) fn check_text(&self, text: &str) -> Result<(), String> {
        super::validate_text::check_text(&self.schema, text)
    }
}
