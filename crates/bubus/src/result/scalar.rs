//! The result types whose JSON is always a scalar: a handler's result of one of them passes the
//! wire's depth check as it is, and a typed handler's such result of its event's own type needs
//! no result check at all (`handler::into`). In the model's layer, so that both can ask.

/// Calls the macro `$m` with the types whose JSON is always a scalar (a number, a string, a
/// boolean or `null`): the one list behind [`is_flat`] (results) and the `Shallow` payload field
/// types of `#[derive(Event)]` (`crate::private`).
macro_rules! json_scalar_types {
    ($m:ident) => {
        $m! {
            (),
            bool,
            char,
            String,
            u8,
            u16,
            u32,
            u64,
            u128,
            usize,
            i8,
            i16,
            i32,
            i64,
            i128,
            isize,
            f32,
            f64,
            uuid::Uuid,
            crate::time::Timestamp
        }
    };
}
pub(crate) use json_scalar_types;

/// Whether `T` always serializes to a JSON scalar ([`json_scalar_types`]): the common result
/// types, for which the check costs nothing (the comparisons fold to a constant once `T` is
/// known).
pub(crate) fn is_flat<T: 'static>() -> bool {
    use std::any::TypeId;
    macro_rules! any_of {
        ($($ty:ty),*) => { false $(|| TypeId::of::<T>() == TypeId::of::<$ty>())* };
    }
    json_scalar_types!(any_of)
}
