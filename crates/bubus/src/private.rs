//! Support code for `#[derive(Event)]`. Not public API.

use std::marker::PhantomData;

pub use serde_json::Value;

/// Autoref specialization: `(&SchemaProbe::<T>::new()).result_schema()` resolves to the schemars
/// schema when `T: JsonSchema`, and to `None` otherwise.
#[derive(Debug)]
pub struct SchemaProbe<T>(PhantomData<fn() -> T>);

impl<T> SchemaProbe<T> {
    #[expect(
        clippy::new_without_default,
        reason = "a probe for the derive, not a value users build"
    )]
    pub fn new() -> Self {
        SchemaProbe(PhantomData)
    }
}

/// The fallback: no schema.
pub trait NoSchema {
    fn result_schema(&self) -> Option<Value>;
}

impl<T> NoSchema for &SchemaProbe<T> {
    fn result_schema(&self) -> Option<Value> {
        None
    }
}

/// The schema, for result types that implement `schemars::JsonSchema`.
pub trait ViaJsonSchema {
    fn result_schema(&self) -> Option<Value>;
}

#[cfg(feature = "schema")]
impl<T: schemars::JsonSchema + 'static> ViaJsonSchema for SchemaProbe<T> {
    fn result_schema(&self) -> Option<Value> {
        crate::wire::schema::schema_for::<T>()
    }
}
