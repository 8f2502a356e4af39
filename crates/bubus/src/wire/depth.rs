//! How deeply JSON may nest: the one limit the encoders, the decoders and `dispatch` agree on, so
//! that everything written can be read back.
//!
//! A value's depth is how many arrays and objects it nests (`1` and `"a"`: 0, `[1]`: 1,
//! `{"a": [1]}`: 2). Payload fields, unknown metadata keys, result schemas and handler results
//! may nest at most [`MAX_JSON_DEPTH`] levels. Everything written around them — the event object,
//! `event_results` and its result objects, a forwarded event as a result, a bus snapshot holding
//! events — adds at most 6 levels, so every line of a log and every snapshot stays well inside
//! the 128 levels `serde_json` (ours, and every reader built on it) accepts, with room for an
//! envelope or two around them.

use serde::Serialize;
use serde::ser;
use serde_json::Value;

use crate::DynEvent;
use crate::error::{HandlerError, HandlerErrorKind};
use crate::event::inner::EventInner;
use crate::result::ResultSlot;

/// How many levels of arrays and objects a payload field, a result schema or a handler's result
/// may nest. Deeper payloads are refused at dispatch
/// ([`DispatchError::TooDeep`](crate::DispatchError::TooDeep)), deeper results are recorded as
/// errors, and the decoders refuse deeper input.
pub const MAX_JSON_DEPTH: usize = 100;

/// The depth of `value`, or `limit + 1` if it is deeper than `limit` (the walk stops there).
/// Iterative: a value nested deeper than the stack could recurse is measured too.
pub(crate) fn value_depth(value: &Value, limit: usize) -> usize {
    let mut deepest = 0;
    // (a container's children, the depth of that container)
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((value, above)) = stack.pop() {
        let children: &mut dyn Iterator<Item = &Value> = match value {
            Value::Array(items) => &mut items.iter(),
            Value::Object(fields) => &mut fields.values(),
            _ => continue,
        };
        let depth = above + 1;
        if depth > limit {
            return limit + 1;
        }
        deepest = deepest.max(depth);
        stack.extend(children.map(|child| (child, depth)));
    }
    deepest
}

/// The depth `value` would have as JSON, or `limit + 1` if deeper (serialization stops there,
/// so a value too deep to serialize without exhausting the stack is measured safely). Costs one
/// walk of the value through serde, without writing anything.
pub(crate) fn serialized_depth<T: Serialize + ?Sized>(value: &T, limit: usize) -> usize {
    walk(value, limit).0
}

/// [`serialized_depth`], and the field of the outermost struct that went past `limit`.
#[inline]
fn walk<T: Serialize + ?Sized>(value: &T, limit: usize) -> (usize, Option<&'static str>) {
    let mut counter = Counter {
        depth: 0,
        deepest: 0,
        limit,
        field: None,
    };
    match value.serialize(&mut counter) {
        Ok(()) => (counter.deepest, None),
        Err(TooDeep) => (limit + 1, counter.field),
    }
}

/// A payload field nested deeper than [`MAX_JSON_DEPTH`]: its name (empty if it has none, e.g.
/// a key of a map payload) and its depth (at least).
pub(crate) use crate::event::inner::TooDeepField;

/// Checks a typed payload: each of its fields may nest [`MAX_JSON_DEPTH`] levels.
///
/// Inlined into each payload type's check, so that for a payload whose depth the compiler can
/// see (a struct of scalars and strings: the usual event) the walk folds away to `Ok(())`.
#[inline(always)]
pub(crate) fn check_payload<T: Serialize + ?Sized>(payload: &T) -> Result<(), TooDeepField> {
    match walk(payload, MAX_JSON_DEPTH + 1) {
        (depth, field) if depth > MAX_JSON_DEPTH + 1 => {
            Err((field.unwrap_or_default().to_owned(), depth - 1))
        }
        _ => Ok(()),
    }
}

/// Checks a dynamic event: its payload fields and its result schema.
pub(crate) fn check_dyn_event(event: &EventInner) -> Result<(), TooDeepField> {
    // A payload still held as the text it was read from was checked when it was read.
    if let Some(payload) = event.own_payload::<DynEvent>().filter(|p| p.is_parsed()) {
        check_fields(payload.payload())?;
    }
    if let Some(result_type) = event.result_type() {
        let depth = value_depth(&result_type.schema, MAX_JSON_DEPTH);
        if depth > MAX_JSON_DEPTH {
            return Err(("event_result_type".to_owned(), depth));
        }
    }
    Ok(())
}

/// Checks JSON fields (a dynamic payload, unknown metadata keys): each may nest
/// [`MAX_JSON_DEPTH`] levels.
pub(crate) fn check_fields<'a>(
    fields: impl IntoIterator<Item = (&'a String, &'a Value)>,
) -> Result<(), TooDeepField> {
    for (key, value) in fields {
        let depth = value_depth(value, MAX_JSON_DEPTH);
        if depth > MAX_JSON_DEPTH {
            return Err((key.clone(), depth));
        }
    }
    Ok(())
}

/// Checks a handler's result of type `R` (typed, or JSON from a dynamic handler) against
/// [`MAX_JSON_DEPTH`]: a deeper one is an `EventHandlerResultSchemaError`, as a value that does
/// not fit the result type is — no runtime of the family could read it back.
pub(crate) fn check_result<R: Serialize + 'static>(slot: &ResultSlot) -> Result<(), HandlerError> {
    if is_flat::<R>() {
        return Ok(());
    }
    let depth = match slot {
        ResultSlot::Null | ResultSlot::Forwarded { .. } => return Ok(()),
        ResultSlot::Json(json) => value_depth(json, MAX_JSON_DEPTH),
        ResultSlot::Text(text) => {
            super::raw::compact(text, MAX_JSON_DEPTH).map_or_else(|depth| depth, |(_, d)| d)
        }
        ResultSlot::Typed(value) => match value.as_any().downcast_ref::<R>() {
            Some(value) => serialized_depth(value, MAX_JSON_DEPTH),
            None => value
                .to_json()
                .map_or(0, |json| value_depth(&json, MAX_JSON_DEPTH)),
        },
    };
    if depth > MAX_JSON_DEPTH {
        return Err(HandlerError::with_kind(
            HandlerErrorKind::ResultSchema,
            format!(
                "the result nests more than {MAX_JSON_DEPTH} levels of arrays and objects: no \
                 runtime of the family could read it back"
            ),
        ));
    }
    Ok(())
}

pub(crate) use crate::result::scalar::{is_flat, json_scalar_types};

#[derive(Debug)]
struct TooDeep;

impl std::fmt::Display for TooDeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("nested too deep")
    }
}

impl std::error::Error for TooDeep {}

impl ser::Error for TooDeep {
    fn custom<T: std::fmt::Display>(_msg: T) -> Self {
        // A value that cannot serialize is not this walk's business: `to_json` reports it.
        TooDeep
    }
}

/// A serializer that writes nothing and counts how deeply arrays and objects nest, as
/// `serde_json` would write them.
///
/// Its methods are all `#[inline]`: a payload's walk is instantiated in the crate that defines
/// the payload type, which could not inline the non-generic ones otherwise, and the walk of a
/// payload of scalars only folds away when all of it is inlined.
struct Counter {
    depth: usize,
    deepest: usize,
    limit: usize,
    /// The field of the outermost struct being walked.
    field: Option<&'static str>,
}

impl Counter {
    #[inline]
    fn open(&mut self, levels: usize) -> Result<(), TooDeep> {
        self.depth += levels;
        if self.depth > self.limit {
            return Err(TooDeep);
        }
        self.deepest = self.deepest.max(self.depth);
        Ok(())
    }

    #[inline]
    fn close(&mut self, levels: usize) {
        self.depth -= levels;
    }
}

/// One container being walked, and how many levels it opened.
struct Compound<'a> {
    counter: &'a mut Counter,
    levels: usize,
}

impl Compound<'_> {
    #[inline]
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TooDeep> {
        value.serialize(&mut *self.counter)
    }

    #[inline]
    fn end(self) -> Result<(), TooDeep> {
        self.counter.close(self.levels);
        Ok(())
    }
}

impl<'a> Compound<'a> {
    #[inline]
    fn open(counter: &'a mut Counter, levels: usize) -> Result<Self, TooDeep> {
        counter.open(levels)?;
        Ok(Compound { counter, levels })
    }
}

macro_rules! scalars {
    ($($method:ident($ty:ty)),* $(,)?) => {
        $(#[inline] fn $method(self, _: $ty) -> Result<(), TooDeep> { Ok(()) })*
    };
}

impl<'a> ser::Serializer for &'a mut Counter {
    type Ok = ();
    type Error = TooDeep;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    scalars!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_str(&str),
        serialize_unit_struct(&'static str),
    );

    // serde_json writes bytes as an array of numbers.
    #[inline]
    fn serialize_bytes(self, _: &[u8]) -> Result<(), TooDeep> {
        self.open(1)?;
        self.close(1);
        Ok(())
    }

    #[inline]
    fn serialize_none(self) -> Result<(), TooDeep> {
        Ok(())
    }

    #[inline]
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), TooDeep> {
        value.serialize(self)
    }

    #[inline]
    fn serialize_unit(self) -> Result<(), TooDeep> {
        Ok(())
    }

    #[inline]
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<(), TooDeep> {
        Ok(())
    }

    #[inline]
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<(), TooDeep> {
        value.serialize(self)
    }

    // `{"Variant": value}`.
    #[inline]
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        value: &T,
    ) -> Result<(), TooDeep> {
        let mut compound = Compound::open(self, 1)?;
        compound.element(value)?;
        compound.end()
    }

    #[inline]
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, TooDeep> {
        Compound::open(self, 1)
    }

    #[inline]
    fn serialize_tuple(self, _: usize) -> Result<Compound<'a>, TooDeep> {
        Compound::open(self, 1)
    }

    #[inline]
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, TooDeep> {
        Compound::open(self, 1)
    }

    // `{"Variant": [...]}`.
    #[inline]
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, TooDeep> {
        Compound::open(self, 2)
    }

    #[inline]
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, TooDeep> {
        Compound::open(self, 1)
    }

    #[inline]
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, TooDeep> {
        Compound::open(self, 1)
    }

    // `{"Variant": {...}}`.
    #[inline]
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, TooDeep> {
        Compound::open(self, 2)
    }

    // Nothing is written, so nothing needs formatting.
    #[inline]
    fn collect_str<T: std::fmt::Display + ?Sized>(self, _: &T) -> Result<(), TooDeep> {
        Ok(())
    }
}

/// The compound traits whose elements are walked one by one, and what each calls its method.
macro_rules! elements {
    ($($trait:ident::$method:ident),* $(,)?) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = TooDeep;
            #[inline]
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TooDeep> {
                self.element(value)
            }
            #[inline]
            fn end(self) -> Result<(), TooDeep> {
                Compound::end(self)
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = TooDeep;
    // Keys are strings (or numbers) in JSON: they nest nothing.
    #[inline]
    fn serialize_key<T: Serialize + ?Sized>(&mut self, _: &T) -> Result<(), TooDeep> {
        Ok(())
    }
    #[inline]
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), TooDeep> {
        self.element(value)
    }
    #[inline]
    fn end(self) -> Result<(), TooDeep> {
        Compound::end(self)
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = TooDeep;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), TooDeep> {
        if self.counter.depth == 1 {
            self.counter.field = Some(key);
        }
        self.element(value)
    }
    #[inline]
    fn end(self) -> Result<(), TooDeep> {
        Compound::end(self)
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = TooDeep;
    #[inline]
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        _: &'static str,
        value: &T,
    ) -> Result<(), TooDeep> {
        self.element(value)
    }
    #[inline]
    fn end(self) -> Result<(), TooDeep> {
        Compound::end(self)
    }
}

#[cfg(test)]
mod tests;
