//! About how many bytes a value takes in JSON, estimated from its serde
//! form without formatting anything: what the in-process ceremony cache
//! charges a pending ceremony against its byte cap.
//!
//! [`json_size`](super::ceremony_cache::json_size) counts exactly but
//! formats every number and escapes every string on the way (a credential
//! snapshot's key bytes are a JSON array of numbers); under load that was
//! about 1% of a sign-in's server time. This walks the same serde calls
//! and adds up lengths: strings by their UTF-8 length plus quotes (escapes
//! not counted), integers by their digits, separators and keys as JSON has
//! them. It is within a few percent (a byte per array or object) of the exact size for the states the
//! server keeps (test `estimate_is_close_to_the_exact_size`), never zero
//! for anything that holds data, and linear in the size of the value.

use serde::ser::{self, Serialize};
use std::fmt;

/// About how many bytes `value` takes in JSON (see the module documentation).
pub fn json_estimate<T: Serialize + ?Sized>(value: &T) -> usize {
    let mut c = Estimate(0);
    match value.serialize(&mut c) {
        Ok(()) => c.0,
        Err(_) => usize::MAX,
    }
}

struct Estimate(usize);

/// Never produced: the estimate cannot fail.
#[derive(Debug)]
struct Never;

impl fmt::Display for Never {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("estimate failed")
    }
}
impl std::error::Error for Never {}
impl ser::Error for Never {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Never
    }
}

fn digits_u(v: u64) -> usize {
    v.checked_ilog10().map_or(1, |d| d as usize + 1)
}

fn digits_i(v: i64) -> usize {
    digits_u(v.unsigned_abs()) + usize::from(v < 0)
}

impl Estimate {
    fn add(&mut self, n: usize) {
        self.0 = self.0.saturating_add(n);
    }
    fn string(&mut self, s: &str) {
        self.add(s.len() + 2);
    }
}

impl ser::Serializer for &mut Estimate {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    fn serialize_bool(self, v: bool) -> Result<(), Never> {
        self.add(if v { 4 } else { 5 });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Never> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Never> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Never> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Never> {
        self.add(digits_i(v));
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Never> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Never> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Never> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Never> {
        self.add(digits_u(v));
        Ok(())
    }
    fn serialize_f32(self, _v: f32) -> Result<(), Never> {
        self.add(12);
        Ok(())
    }
    fn serialize_f64(self, _v: f64) -> Result<(), Never> {
        self.add(20);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Never> {
        self.add(v.len_utf8() + 2);
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Never> {
        self.string(v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Never> {
        // serde_json writes bytes as an array of numbers: about 3.5 each.
        self.add(2 + v.len() * 7 / 2);
        Ok(())
    }
    fn serialize_none(self) -> Result<(), Never> {
        self.add(4);
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Never> {
        self.add(4);
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Never> {
        self.add(4);
        Ok(())
    }
    fn serialize_unit_variant(self, _name: &'static str, _i: u32, variant: &'static str) -> Result<(), Never> {
        self.string(variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<(), Never> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Never> {
        self.add(variant.len() + 5);
        value.serialize(self)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self, Never> {
        self.add(2);
        Ok(self)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self, Never> {
        self.add(2);
        Ok(self)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Self, Never> {
        self.add(2);
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, Never> {
        self.add(variant.len() + 7);
        Ok(self)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self, Never> {
        self.add(2);
        Ok(self)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self, Never> {
        self.add(2);
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _i: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Self, Never> {
        self.add(variant.len() + 7);
        Ok(self)
    }
}

/// An element of a sequence or tuple: the value and its comma.
fn element<T: Serialize + ?Sized>(e: &mut Estimate, value: &T) -> Result<(), Never> {
    e.add(1);
    value.serialize(e)
}

/// The compound kinds whose parts are plain elements (a value and a comma).
macro_rules! elements {
    ($($trait:ident :: $method:ident),* $(,)?) => {$(
        impl ser::$trait for &mut Estimate {
            type Ok = ();
            type Error = Never;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
                element(self, value)
            }
            fn end(self) -> Result<(), Never> {
                Ok(())
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

impl ser::SerializeMap for &mut Estimate {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Never> {
        // The comma and the colon.
        self.add(2);
        key.serialize(&mut **self)
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Never> {
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}
impl ser::SerializeStruct for &mut Estimate {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Never> {
        // "key": and the comma.
        self.add(key.len() + 4);
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}
impl ser::SerializeStructVariant for &mut Estimate {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Never> {
        self.add(key.len() + 4);
        value.serialize(&mut **self)
    }
    fn end(self) -> Result<(), Never> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ceremony_cache::json_size;

    #[test]
    fn estimate_is_close_to_the_exact_size() {
        let values = [
            serde_json::json!({"a": [1, 2, 300], "b": "xyz", "c": null, "d": true, "e": -42}),
            serde_json::json!({"key": (0..=255).collect::<Vec<u32>>(), "s": "x".repeat(5000)}),
            serde_json::json!([{"id": "AAAA", "transports": ["usb", "nfc"]}, {"n": 12345678901u64}]),
        ];
        for v in &values {
            let (exact, est) = (json_size(v), json_estimate(v));
            // A comma counted for every element and key, the first too:
            // a byte more per array or object than JSON has.
            let off = exact.abs_diff(est) as f64 / exact as f64;
            assert!(off < 0.05 || exact.abs_diff(est) <= 8, "exact {exact}, estimate {est}");
        }
        assert!(json_estimate(&Vec::<u8>::new()) > 0);
        assert_eq!(json_estimate(&"abc"), 5);
        assert_eq!(json_estimate(&1234u32), 4);
        assert_eq!(json_estimate(&i64::MIN), i64::MIN.to_string().len());
    }
}
