//! The result schema an event may carry (`event_result_type`): data of the model, checked against
//! results by the wire layer (`wire/schema.rs`, `wire/validate.rs`).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use serde_json::Value;

/// A result schema received with an event (shared between events that carry the same schema).
pub(crate) struct ResultType {
    pub(crate) schema: Value,
}

impl std::fmt::Debug for ResultType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResultType")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl ResultType {
    /// The shared `ResultType` for a schema.
    pub(crate) fn intern(schema: Value) -> Arc<ResultType> {
        static INTERNED: OnceLock<Mutex<HashMap<String, Arc<ResultType>>>> = OnceLock::new();
        let key = schema.to_string();
        let mut interned = INTERNED.get_or_init(Mutex::default).lock();
        if let Some(hit) = interned.get(&key) {
            return Arc::clone(hit);
        }
        if interned.len() >= 4096 {
            interned.clear();
        }
        let result_type = Arc::new(ResultType { schema });
        interned.insert(key, Arc::clone(&result_type));
        result_type
    }
}
