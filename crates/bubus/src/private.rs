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

/// A payload field type whose JSON is a scalar (a number, a string, a boolean or `null`): it
/// cannot nest, so a struct of such fields cannot be too deep to read back.
pub trait Shallow {}

macro_rules! shallow {
    ($($t:ty),*) => { $(impl Shallow for $t {})* };
}
crate::wire::depth::json_scalar_types!(shallow);
impl<T: Shallow> Shallow for Option<T> {}

/// `ShallowProbe::<T>::SHALLOW` (with [`NotShallow`] in scope): `true` when `T: Shallow`, else
/// the trait's `false` (an inherent constant whose bound does not hold is passed over). Read by
/// `#[derive(Event)]` for each field type.
#[derive(Debug)]
pub struct ShallowProbe<T: ?Sized>(PhantomData<T>);

/// The fallback: not known to be shallow.
pub trait NotShallow {
    const SHALLOW: bool = false;
}

impl<T: ?Sized> NotShallow for ShallowProbe<T> {}

impl<T: ?Sized + Shallow> ShallowProbe<T> {
    pub const SHALLOW: bool = true;
}
