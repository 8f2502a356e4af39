//! Storage for one handler's return value: typed in process, JSON when it came from elsewhere.

use std::any::{Any, TypeId};
use std::fmt;
use std::sync::Weak;

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::Value;
use uuid::Uuid;

use crate::error::{HandlerError, HandlerErrorKind};
use crate::event::EventResultValue;
use crate::event::inner::EventInner;

/// A typed value behind a vtable that can still be turned into JSON.
pub(crate) trait ErasedValue: Send + Sync + 'static {
    fn as_any(&self) -> &dyn Any;
    fn to_json(&self) -> Result<Value, serde_json::Error>;
}

impl<T: Serialize + Send + Sync + 'static> ErasedValue for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn to_json(&self) -> Result<Value, serde_json::Error> {
        serde_json::to_value(self)
    }
}

macro_rules! scalars {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// A primitive result stored inline: most handlers return a number, a flag or a
        /// character, and recording one should not cost an allocation.
        #[derive(Copy, Clone)]
        pub(crate) enum Scalar {
            $($variant($ty),)*
        }

        impl Scalar {
            /// `value` as a scalar, if its type is one.
            fn of<T: 'static>(value: &T) -> Option<Scalar> {
                let any = value as &dyn Any;
                $(if let Some(v) = any.downcast_ref::<$ty>() {
                    return Some(Scalar::$variant(*v));
                })*
                None
            }

            /// Whether `R` is the type of a scalar.
            #[inline(always)]
            fn is_scalar_type<R: 'static>() -> bool {
                false $(|| TypeId::of::<R>() == TypeId::of::<$ty>())*
            }

            /// The scalar as `R`, if that is its type: the type ids are constants, so this is a
            /// compare of the variant, with no call through the value's vtable.
            #[inline]
            fn downcast_ref<R: 'static>(&self) -> Option<&R> {
                match self {
                    $(Scalar::$variant(v) => {
                        if TypeId::of::<R>() == TypeId::of::<$ty>() {
                            (v as &dyn Any).downcast_ref::<R>()
                        } else {
                            None
                        }
                    })*
                }
            }
        }

        impl ErasedValue for Scalar {
            fn as_any(&self) -> &dyn Any {
                match self {
                    $(Scalar::$variant(v) => v,)*
                }
            }
            fn to_json(&self) -> Result<Value, serde_json::Error> {
                match self {
                    $(Scalar::$variant(v) => serde_json::to_value(v),)*
                }
            }
        }
    };
}

scalars!(
    Bool(bool),
    U8(u8),
    U16(u16),
    U32(u32),
    U64(u64),
    Usize(usize),
    I8(i8),
    I16(i16),
    I32(i32),
    I64(i64),
    Isize(isize),
    F32(f32),
    F64(f64),
    Char(char),
);

/// A typed value: inline when it is a [`Scalar`], boxed otherwise.
pub(crate) enum TypedValue {
    Inline(Scalar),
    Boxed(Box<dyn ErasedValue>),
}

impl TypedValue {
    /// The value as `R`, if that is its type (an inline scalar is checked without a virtual
    /// call: recording and reading one is the common case).
    #[inline]
    pub(crate) fn downcast_ref<R: 'static>(&self) -> Option<&R> {
        match self {
            TypedValue::Inline(scalar) => scalar.downcast_ref::<R>(),
            // A value of a scalar type is always stored inline (`ResultSlot::from_value`): no
            // need to ask a boxed one (the check folds to a constant once `R` is known).
            TypedValue::Boxed(_) if Scalar::is_scalar_type::<R>() => None,
            TypedValue::Boxed(value) => value.as_any().downcast_ref::<R>(),
        }
    }
}

impl std::ops::Deref for TypedValue {
    type Target = dyn ErasedValue;
    fn deref(&self) -> &Self::Target {
        match self {
            TypedValue::Inline(scalar) => scalar,
            TypedValue::Boxed(value) => &**value,
        }
    }
}

/// What a handler returned.
pub(crate) enum ResultSlot {
    /// Nothing yet, or a null value (`()`, `None`, JSON `null`): excluded from aggregation.
    Null,
    /// A typed value produced in this process.
    Typed(TypedValue),
    /// A JSON value (a dynamic handler's return, or a result read from the wire). Boxed: a
    /// `Value` is several times the size of the other variants.
    Json(Box<Value>),
    /// A value read from a log or another runtime's text, kept as its compact JSON text (already
    /// checked against the nesting limit): parsed when something reads it, written back as it
    /// is. A large result costs about its text, not the 16–32 times that of a parsed `Value`.
    Text(std::sync::Arc<str>),
    /// The handler forwarded the event to another bus; the result is that event itself.
    Forwarded {
        event_id: Uuid,
        /// Boxed: the reference is two words, and forwards are rare.
        event: Box<Weak<EventInner>>,
    },
}

impl fmt::Debug for ResultSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResultSlot::Null => f.write_str("Null"),
            ResultSlot::Typed(v) => write!(f, "Typed({:?})", v.to_json().ok()),
            ResultSlot::Json(v) => write!(f, "Json({v})"),
            ResultSlot::Text(text) => write!(f, "Text({text})"),
            ResultSlot::Forwarded { event_id, .. } => write!(f, "Forwarded({event_id})"),
        }
    }
}

impl ResultSlot {
    /// Stores a handler's typed return value; null-like values become [`ResultSlot::Null`].
    pub(crate) fn from_value<T: Serialize + Send + Sync + 'static>(value: T) -> Self {
        if is_null(&value) {
            return ResultSlot::Null;
        }
        let mut slot = Some(value);
        if let Some(json) = (&mut slot as &mut dyn Any).downcast_mut::<Option<Value>>() {
            if let Some(json) = json.take() {
                return ResultSlot::Json(Box::new(json));
            }
        }
        match slot {
            Some(value) => ResultSlot::Typed(match Scalar::of(&value) {
                Some(scalar) => TypedValue::Inline(scalar),
                None => TypedValue::Boxed(Box::new(value)),
            }),
            None => ResultSlot::Null,
        }
    }

    #[inline]
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, ResultSlot::Null)
    }

    /// Whether the slot owns nothing (null, or a scalar stored inline): forgetting it leaks
    /// nothing.
    #[inline(always)]
    pub(crate) fn owns_nothing(&self) -> bool {
        matches!(
            self,
            ResultSlot::Null | ResultSlot::Typed(TypedValue::Inline(_))
        )
    }

    pub(crate) fn is_forwarded(&self) -> bool {
        matches!(self, ResultSlot::Forwarded { .. })
    }

    /// Whether the value is stored as an `R` (so [`extract`](Self::extract) cannot fail).
    #[inline]
    pub(crate) fn holds<R: 'static>(&self) -> bool {
        matches!(self, ResultSlot::Typed(value) if value.downcast_ref::<R>().is_some())
    }

    /// The value as `R`, or `None` for null and forwarded results.
    #[inline]
    pub(crate) fn extract<R: EventResultValue>(&self) -> Option<Result<R, HandlerError>> {
        match self {
            ResultSlot::Null | ResultSlot::Forwarded { .. } => None,
            ResultSlot::Typed(value) => match value.downcast_ref::<R>() {
                Some(r) => Some(Ok(r.clone())),
                None => Some(
                    value
                        .to_json()
                        .map_err(schema_error)
                        .and_then(|json| decode(&json)),
                ),
            },
            ResultSlot::Json(json) => match (&**json as &dyn Any).downcast_ref::<R>() {
                Some(r) => Some(Ok(r.clone())),
                None => Some(decode(json)),
            },
            ResultSlot::Text(text) => Some(parse(text).and_then(|json| decode(&json))),
        }
    }

    /// The value as JSON (`null` for null results; the forwarded event's id for forwards).
    pub(crate) fn to_json(&self) -> Value {
        match self {
            ResultSlot::Null => Value::Null,
            ResultSlot::Typed(v) => v.to_json().unwrap_or(Value::Null),
            ResultSlot::Json(v) => Value::clone(v),
            ResultSlot::Text(text) => parse(text).unwrap_or(Value::Null),
            ResultSlot::Forwarded { event_id, .. } => Value::String(event_id.to_string()),
        }
    }

    /// Validates the slot against a result type `R`, converting JSON or foreign typed values into
    /// `R` once so later reads are plain downcasts. On an error the slot is left null. (The
    /// usual slot, a value stored as an `R`, is checked inline, in place: nothing is moved.)
    #[inline(always)]
    pub(crate) fn check_as<R: EventResultValue>(&mut self) -> Result<(), HandlerError> {
        if self.holds::<R>() {
            return Ok(());
        }
        self.convert_to::<R>()
    }

    /// [`check_as`](Self::check_as) for a slot not stored as an `R`.
    #[inline(never)]
    fn convert_to<R: EventResultValue>(&mut self) -> Result<(), HandlerError> {
        if let ResultSlot::Json(json) = self
            && (&**json as &dyn Any).is::<R>()
        {
            return Ok(());
        }
        let converted = match std::mem::replace(self, ResultSlot::Null) {
            ResultSlot::Typed(value) => value
                .to_json()
                .map_err(schema_error)
                .and_then(|json| decode::<R>(&json)),
            ResultSlot::Json(json) => decode::<R>(&json),
            ResultSlot::Text(text) => parse(&text).and_then(|json| decode::<R>(&json)),
            // Nothing to convert: put back as it was.
            kept @ (ResultSlot::Null | ResultSlot::Forwarded { .. }) => {
                *self = kept;
                return Ok(());
            }
        };
        *self = ResultSlot::from_value(converted?);
        Ok(())
    }
}

/// A [`ResultSlot::Text`] parsed.
fn parse(text: &str) -> Result<Value, HandlerError> {
    serde_json::from_str(text).map_err(schema_error)
}

fn decode<R: EventResultValue>(json: &Value) -> Result<R, HandlerError> {
    serde_path_to_error::deserialize::<_, R>(json).map_err(|err| {
        let path = err.path().to_string();
        let snippet: String = json.to_string().chars().take(60).collect();
        let location = if path == "." {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        HandlerError::with_kind(
            HandlerErrorKind::ResultSchema,
            format!(
                "handler returned a value that did not match the event's result type {}: \
                 {snippet}{location}: {}",
                std::any::type_name::<R>(),
                err.inner()
            ),
        )
    })
}

fn schema_error(err: serde_json::Error) -> HandlerError {
    HandlerError::with_kind(
        HandlerErrorKind::ResultSchema,
        format!("handler result could not be serialized: {err}"),
    )
}

/// Whether a value serializes as JSON `null` (`()`, `None`, unit structs) — checked without
/// serializing anything else: the first non-null token ends the probe.
pub(crate) fn is_null<T: Serialize + ?Sized>(value: &T) -> bool {
    value.serialize(NullProbe).unwrap_or(false)
}

struct NullProbe;

#[derive(Debug)]
struct NotNull;

impl fmt::Display for NotNull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not null")
    }
}

impl std::error::Error for NotNull {}

impl ser::Error for NotNull {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        NotNull
    }
}

macro_rules! not_null {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(fn $name(self, _v: $ty) -> Result<bool, NotNull> { Ok(false) })*
    };
}

impl ser::Serializer for NullProbe {
    type Ok = bool;
    type Error = NotNull;
    type SerializeSeq = Impossible<bool, NotNull>;
    type SerializeTuple = Impossible<bool, NotNull>;
    type SerializeTupleStruct = Impossible<bool, NotNull>;
    type SerializeTupleVariant = Impossible<bool, NotNull>;
    type SerializeMap = Impossible<bool, NotNull>;
    type SerializeStruct = Impossible<bool, NotNull>;
    type SerializeStructVariant = Impossible<bool, NotNull>;

    not_null!(
        serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
        serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
        serialize_f64: f64, serialize_char: char, serialize_str: &str, serialize_bytes: &[u8],
    );

    fn serialize_none(self) -> Result<bool, NotNull> {
        Ok(true)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<bool, NotNull> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<bool, NotNull> {
        Ok(true)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<bool, NotNull> {
        Ok(true)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<bool, NotNull> {
        Ok(false)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<bool, NotNull> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<bool, NotNull> {
        Ok(false)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, NotNull> {
        Err(NotNull)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, NotNull> {
        Err(NotNull)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, NotNull> {
        Err(NotNull)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, NotNull> {
        Err(NotNull)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, NotNull> {
        Err(NotNull)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, NotNull> {
        Err(NotNull)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, NotNull> {
        Err(NotNull)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn null_probe() {
        assert!(is_null(&()));
        assert!(is_null(&Option::<u8>::None));
        assert!(is_null(&Value::Null));
        assert!(!is_null(&0u8));
        assert!(!is_null(&false));
        assert!(!is_null(&""));
        assert!(!is_null(&vec![1]));
        assert!(!is_null(&json!({"a": 1})));
        assert!(!is_null(&Some(0)));
    }

    #[test]
    fn slots_convert_between_typed_and_json() {
        let slot = ResultSlot::from_value(42u32);
        assert_eq!(slot.extract::<u32>().unwrap().unwrap(), 42);
        assert_eq!(slot.extract::<Value>().unwrap().unwrap(), json!(42));
        let slot = ResultSlot::from_value(json!("x"));
        assert!(matches!(slot, ResultSlot::Json(_)));
        assert_eq!(slot.extract::<String>().unwrap().unwrap(), "x");
        assert!(ResultSlot::from_value(()).is_null());
    }

    #[test]
    fn scalars_are_stored_inline_and_keep_their_type() {
        let slot = ResultSlot::from_value(7u16);
        assert!(matches!(
            slot,
            ResultSlot::Typed(TypedValue::Inline(Scalar::U16(7)))
        ));
        assert_eq!(slot.extract::<u16>().unwrap().unwrap(), 7);
        // Another numeric type goes through JSON, as for any foreign typed value.
        assert_eq!(slot.extract::<u64>().unwrap().unwrap(), 7);
        assert_eq!(slot.to_json(), json!(7));
        let slot = ResultSlot::from_value(false);
        assert!(matches!(slot, ResultSlot::Typed(TypedValue::Inline(_))));
        assert!(!slot.extract::<bool>().unwrap().unwrap());
        let slot = ResultSlot::from_value(f64::NAN);
        assert_eq!(slot.to_json(), Value::Null);
        let slot = ResultSlot::from_value(String::from("boxed"));
        assert!(matches!(slot, ResultSlot::Typed(TypedValue::Boxed(_))));
        assert_eq!(slot.extract::<String>().unwrap().unwrap(), "boxed");
    }

    #[test]
    fn check_as_rejects_mismatched_json_with_schema_error() {
        let mut slot = ResultSlot::Json(Box::new(json!({"a": "not a number"})));
        let err = slot
            .check_as::<std::collections::HashMap<String, u32>>()
            .unwrap_err();
        assert!(slot.is_null());
        assert_eq!(err.kind(), HandlerErrorKind::ResultSchema);
        assert!(err.message().contains("`a`"), "{}", err.message());
        let mut ok = ResultSlot::Json(Box::new(json!(5)));
        ok.check_as::<u64>().unwrap();
        assert!(matches!(ok, ResultSlot::Typed(_)));
    }
}
