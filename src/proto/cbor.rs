//! CBOR as CTAP2 uses it (RFC 8949 subset): a [`Value`] tree, the CTAP2
//! canonical encoding, and a strict decoder with limits.
//!
//! Encoding is always CTAP2 canonical (CTAP 2.1 §8 "Message Encoding"):
//! shortest integer and length forms, definite lengths, map keys sorted by
//! major type, then encoded length, then bytes.
//!
//! Decoding is strict where strictness protects the reader: nesting depth,
//! total item count and input size are bounded ([`Limits`]); lengths are checked
//! against the bytes that remain before anything is allocated; indefinite
//! lengths, duplicate map keys, invalid UTF-8 and trailing bytes are errors.
//! It is lenient where real authenticators are sloppy and nothing is at stake:
//! non-minimal integer forms and unsorted map keys are accepted.
//!
//! Why a value layer of our own rather than serde on `minicbor`/`ciborium`:
//! neither rejects duplicate map keys or bounds the total item count, and
//! signature checks need the exact byte span of embedded items (the COSE key
//! inside authenticator data), which [`decode_prefix`] gives.

use std::fmt;

/// Decoding limits. The defaults fit every CTAP2/WebAuthn structure with room
/// to spare (a TPM attestation with a 4-certificate chain is ~5 KiB and depth 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum nesting depth of arrays, maps and tags.
    pub max_depth: usize,
    /// Maximum number of data items in the whole input.
    pub max_items: usize,
    /// Maximum input length in bytes.
    pub max_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_depth: 16, max_items: 65_536, max_len: 1 << 20 }
    }
}

/// Why CBOR decoding failed. `offset` is the byte position in the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// The input ended in the middle of an item.
    #[error("CBOR input truncated at byte {offset}")]
    Truncated {
        /// Byte offset.
        offset: usize,
    },
    /// Bytes remain after the top-level item.
    #[error("{count} trailing bytes after the CBOR item")]
    TrailingBytes {
        /// How many bytes remain.
        count: usize,
    },
    /// A reserved or unsupported encoding (additional info 28-30, indefinite length, simple values).
    #[error("unsupported CBOR encoding at byte {offset}: {what}")]
    Unsupported {
        /// Byte offset.
        offset: usize,
        /// What was found.
        what: &'static str,
    },
    /// Text is not valid UTF-8.
    #[error("invalid UTF-8 in CBOR text string at byte {offset}")]
    InvalidUtf8 {
        /// Byte offset.
        offset: usize,
    },
    /// A map holds the same key twice.
    #[error("duplicate CBOR map key at byte {offset}")]
    DuplicateKey {
        /// Byte offset.
        offset: usize,
    },
    /// Nesting deeper than the limit.
    #[error("CBOR nesting deeper than {limit}")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More items than the limit.
    #[error("more than {limit} CBOR items")]
    TooManyItems {
        /// The limit.
        limit: usize,
    },
    /// Input longer than the limit.
    #[error("CBOR input of {len} bytes exceeds the limit of {limit}")]
    TooLong {
        /// Input length.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// A CBOR data item.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// An integer, major types 0 and 1: from -2^64 to 2^64-1.
    Integer(i128),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A text string.
    Text(String),
    /// An array.
    Array(Vec<Value>),
    /// A map, in the order read or built (encoding sorts canonically).
    Map(Vec<(Value, Value)>),
    /// A tagged item.
    Tag(u64, Box<Value>),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// `undefined`.
    Undefined,
    /// A floating-point number (decoded from half, single or double; encoded as double).
    Float(f64),
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Integer(i) => write!(f, "{i}"),
            Value::Bytes(b) => {
                write!(f, "h'")?;
                for x in b.iter().take(64) {
                    write!(f, "{x:02x}")?;
                }
                if b.len() > 64 {
                    write!(f, "..")?;
                }
                write!(f, "'")
            }
            Value::Text(s) => write!(f, "{s:?}"),
            Value::Array(a) => f.debug_list().entries(a).finish(),
            Value::Map(m) => f.debug_map().entries(m.iter().map(|(k, v)| (k, v))).finish(),
            Value::Tag(t, v) => write!(f, "{t}({v:?})"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Null => write!(f, "null"),
            Value::Undefined => write!(f, "undefined"),
            Value::Float(x) => write!(f, "{x}"),
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v as i128)
    }
}
impl From<u64> for Value {
    fn from(v: u64) -> Self {
        Value::Integer(v as i128)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Integer(v as i128)
    }
}
impl From<u32> for Value {
    fn from(v: u32) -> Self {
        Value::Integer(v as i128)
    }
}
impl From<u8> for Value {
    fn from(v: u8) -> Self {
        Value::Integer(v as i128)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Bytes(v)
    }
}
impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Bytes(v.to_vec())
    }
}

impl Value {
    /// The integer, if this is an integer.
    pub fn as_int(&self) -> Option<i128> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }
    /// The integer as i64, if it is one and fits.
    pub fn as_i64(&self) -> Option<i64> {
        self.as_int().and_then(|i| i64::try_from(i).ok())
    }
    /// The integer as u64, if it is one and fits.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_int().and_then(|i| u64::try_from(i).ok())
    }
    /// The bytes, if this is a byte string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }
    /// The text, if this is a text string.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
    /// The elements, if this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    /// The entries, if this is a map.
    pub fn as_map(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    /// Look up a map entry by key (None if not a map or absent).
    pub fn get(&self, key: &Value) -> Option<&Value> {
        self.as_map()?.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    /// Look up a map entry by integer key.
    pub fn get_int(&self, key: i64) -> Option<&Value> {
        self.as_map()?.iter().find(|(k, _)| matches!(k, Value::Integer(i) if *i == key as i128)).map(|(_, v)| v)
    }
    /// Look up a map entry by text key.
    pub fn get_text(&self, key: &str) -> Option<&Value> {
        self.as_map()?.iter().find(|(k, _)| matches!(k, Value::Text(s) if s == key)).map(|(_, v)| v)
    }
    /// Encode canonically.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(self, &mut out);
        out
    }
    /// A short name of the value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Integer(_) => "integer",
            Value::Bytes(_) => "byte string",
            Value::Text(_) => "text string",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Tag(..) => "tag",
            Value::Bool(_) => "boolean",
            Value::Null => "null",
            Value::Undefined => "undefined",
            Value::Float(_) => "float",
        }
    }
}

/// Builds a map with integer keys in canonical order (the common CTAP shape).
#[derive(Debug, Default, Clone)]
pub struct MapBuilder(Vec<(Value, Value)>);

impl MapBuilder {
    /// An empty map.
    pub fn new() -> Self {
        MapBuilder(Vec::new())
    }
    /// Insert an entry.
    pub fn insert(mut self, key: impl Into<Value>, value: impl Into<Value>) -> Self {
        self.0.push((key.into(), value.into()));
        self
    }
    /// Insert an entry if `value` is `Some`.
    pub fn insert_opt<V: Into<Value>>(self, key: impl Into<Value>, value: Option<V>) -> Self {
        match value {
            Some(v) => self.insert(key, v),
            None => self,
        }
    }
    /// Finish into a [`Value::Map`].
    pub fn build(self) -> Value {
        Value::Map(self.0)
    }
}

fn write_head(major: u8, arg: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    if arg < 24 {
        out.push(m | arg as u8);
    } else if arg <= u8::MAX as u64 {
        out.push(m | 24);
        out.push(arg as u8);
    } else if arg <= u16::MAX as u64 {
        out.push(m | 25);
        out.extend_from_slice(&(arg as u16).to_be_bytes());
    } else if arg <= u32::MAX as u64 {
        out.push(m | 26);
        out.extend_from_slice(&(arg as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&arg.to_be_bytes());
    }
}

/// Encode `v` canonically, appending to `out`.
pub fn encode_into(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Integer(i) => {
            if *i >= 0 {
                write_head(0, (*i).min(u64::MAX as i128) as u64, out)
            } else {
                let n = (-1 - *i).min(u64::MAX as i128) as u64;
                write_head(1, n, out)
            }
        }
        Value::Bytes(b) => {
            write_head(2, b.len() as u64, out);
            out.extend_from_slice(b);
        }
        Value::Text(s) => {
            write_head(3, s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(a) => {
            write_head(4, a.len() as u64, out);
            for x in a {
                encode_into(x, out);
            }
        }
        Value::Map(m) => {
            write_head(5, m.len() as u64, out);
            let mut entries: Vec<(Vec<u8>, &Value)> = m.iter().map(|(k, v)| (k.to_vec(), v)).collect();
            entries.sort_by(|(a, _), (b, _)| canonical_key_cmp(a, b));
            for (k, v) in entries {
                out.extend_from_slice(&k);
                encode_into(v, out);
            }
        }
        Value::Tag(t, inner) => {
            write_head(6, *t, out);
            encode_into(inner, out);
        }
        Value::Bool(false) => out.push(0xf4),
        Value::Bool(true) => out.push(0xf5),
        Value::Null => out.push(0xf6),
        Value::Undefined => out.push(0xf7),
        Value::Float(x) => {
            out.push(0xfb);
            out.extend_from_slice(&x.to_bits().to_be_bytes());
        }
    }
}

/// CTAP2 canonical key order on encoded keys: major type, then length, then bytes.
pub fn canonical_key_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    let ma = a.first().map(|x| x >> 5);
    let mb = b.first().map(|x| x >> 5);
    ma.cmp(&mb).then(a.len().cmp(&b.len())).then(a.cmp(b))
}

/// Encode canonically.
pub fn encode(v: &Value) -> Vec<u8> {
    v.to_vec()
}

/// Decode exactly one item filling all of `input`, with default limits.
pub fn decode(input: &[u8]) -> Result<Value, CborError> {
    decode_with(input, Limits::default())
}

/// Decode exactly one item filling all of `input`.
pub fn decode_with(input: &[u8], limits: Limits) -> Result<Value, CborError> {
    let (v, used) = decode_prefix_with(input, limits)?;
    if used != input.len() {
        return Err(CborError::TrailingBytes { count: input.len() - used });
    }
    Ok(v)
}

/// Decode one item from the start of `input`; returns it and the bytes used.
pub fn decode_prefix(input: &[u8]) -> Result<(Value, usize), CborError> {
    decode_prefix_with(input, Limits::default())
}

/// Decode one item from the start of `input` with explicit limits.
pub fn decode_prefix_with(input: &[u8], limits: Limits) -> Result<(Value, usize), CborError> {
    if input.len() > limits.max_len {
        // Only the prefix matters, but an over-long input is refused outright.
        return Err(CborError::TooLong { len: input.len(), limit: limits.max_len });
    }
    let mut d = Decoder { input, pos: 0, items: 0, limits };
    let v = d.item(0)?;
    Ok((v, d.pos))
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
    items: usize,
    limits: Limits,
}

impl<'a> Decoder<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CborError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.input.len());
        match end {
            Some(e) => {
                let s = &self.input[self.pos..e];
                self.pos = e;
                Ok(s)
            }
            None => Err(CborError::Truncated { offset: self.input.len() }),
        }
    }

    fn remaining(&self) -> usize {
        self.input.len() - self.pos
    }

    fn arg(&mut self, info: u8, start: usize) -> Result<u64, CborError> {
        Ok(match info {
            0..=23 => info as u64,
            24 => self.take(1)?[0] as u64,
            25 => {
                let b = self.take(2)?;
                u16::from_be_bytes([b[0], b[1]]) as u64
            }
            26 => {
                let b = self.take(4)?;
                u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as u64
            }
            27 => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                u64::from_be_bytes(a)
            }
            31 => return Err(CborError::Unsupported { offset: start, what: "indefinite length" }),
            _ => return Err(CborError::Unsupported { offset: start, what: "reserved additional information" }),
        })
    }

    fn len(&mut self, info: u8, start: usize, min_item_size: usize) -> Result<usize, CborError> {
        let n = self.arg(info, start)?;
        // Each element takes at least `min_item_size` bytes, so a count beyond
        // what remains is a truncation: refuse before allocating.
        let max = self.remaining() / min_item_size.max(1);
        if n > max as u64 {
            return Err(CborError::Truncated { offset: self.input.len() });
        }
        Ok(n as usize)
    }

    fn item(&mut self, depth: usize) -> Result<Value, CborError> {
        self.items += 1;
        if self.items > self.limits.max_items {
            return Err(CborError::TooManyItems { limit: self.limits.max_items });
        }
        let start = self.pos;
        let ib = self.take(1)?[0];
        let major = ib >> 5;
        let info = ib & 0x1f;
        match major {
            0 => Ok(Value::Integer(self.arg(info, start)? as i128)),
            1 => Ok(Value::Integer(-1 - self.arg(info, start)? as i128)),
            2 => {
                let n = self.len(info, start, 1)?;
                Ok(Value::Bytes(self.take(n)?.to_vec()))
            }
            3 => {
                let n = self.len(info, start, 1)?;
                let b = self.take(n)?;
                let s = std::str::from_utf8(b).map_err(|_| CborError::InvalidUtf8 { offset: start })?;
                Ok(Value::Text(s.to_owned()))
            }
            4 => {
                let n = self.len(info, start, 1)?;
                if depth + 1 > self.limits.max_depth {
                    return Err(CborError::TooDeep { limit: self.limits.max_depth });
                }
                let mut a = Vec::with_capacity(n);
                for _ in 0..n {
                    a.push(self.item(depth + 1)?);
                }
                Ok(Value::Array(a))
            }
            5 => {
                let n = self.len(info, start, 2)?;
                if depth + 1 > self.limits.max_depth {
                    return Err(CborError::TooDeep { limit: self.limits.max_depth });
                }
                let mut m: Vec<(Value, Value)> = Vec::with_capacity(n);
                // Duplicate keys, in linear time: keys are compared by their
                // canonical encoding (equal values encode equally, whatever
                // non-minimal form the input used; floats compare by bit
                // pattern, so 0.0 and -0.0 are two keys). In canonical order each
                // key is greater than the one before, which proves it new;
                // only out-of-order keys are looked up in a hash set, built
                // on the first one.
                let mut last: Option<Vec<u8>> = None;
                let mut seen: Option<std::collections::HashSet<Vec<u8>>> = None;
                for _ in 0..n {
                    let kpos = self.pos;
                    let k = self.item(depth + 1)?;
                    let enc = k.to_vec();
                    let ascending =
                        last.as_deref().is_none_or(|l| canonical_key_cmp(l, &enc) == std::cmp::Ordering::Less);
                    // Ascending proves a key new only while every key so far
                    // was ascending: once one was out of order, each later key
                    // is looked up too (keys 5, 1, 5: the second 5 is above 1).
                    if !ascending || seen.is_some() {
                        let set = seen.get_or_insert_with(|| m.iter().map(|(x, _)| x.to_vec()).collect());
                        if set.contains(&enc) {
                            return Err(CborError::DuplicateKey { offset: kpos });
                        }
                    }
                    if let Some(set) = seen.as_mut() {
                        set.insert(enc.clone());
                    }
                    let v = self.item(depth + 1)?;
                    m.push((k, v));
                    last = Some(enc);
                }
                Ok(Value::Map(m))
            }
            6 => {
                let t = self.arg(info, start)?;
                if depth + 1 > self.limits.max_depth {
                    return Err(CborError::TooDeep { limit: self.limits.max_depth });
                }
                Ok(Value::Tag(t, Box::new(self.item(depth + 1)?)))
            }
            _ => match info {
                20 => Ok(Value::Bool(false)),
                21 => Ok(Value::Bool(true)),
                22 => Ok(Value::Null),
                23 => Ok(Value::Undefined),
                25 => {
                    let b = self.take(2)?;
                    Ok(Value::Float(half_to_f64(u16::from_be_bytes([b[0], b[1]]))))
                }
                26 => {
                    let b = self.take(4)?;
                    Ok(Value::Float(f32::from_be_bytes([b[0], b[1], b[2], b[3]]) as f64))
                }
                27 => {
                    let b = self.take(8)?;
                    let mut a = [0u8; 8];
                    a.copy_from_slice(b);
                    Ok(Value::Float(f64::from_be_bytes(a)))
                }
                31 => Err(CborError::Unsupported { offset: start, what: "break outside indefinite item" }),
                _ => Err(CborError::Unsupported { offset: start, what: "simple value" }),
            },
        }
    }
}

fn half_to_f64(h: u16) -> f64 {
    let exp = ((h >> 10) & 0x1f) as i32;
    let mant = (h & 0x3ff) as f64;
    let v = if exp == 0 {
        mant * 2f64.powi(-24)
    } else if exp != 31 {
        (mant + 1024.0) * 2f64.powi(exp - 25)
    } else if mant == 0.0 {
        f64::INFINITY
    } else {
        f64::NAN
    };
    if h & 0x8000 != 0 { -v } else { v }
}

/// Typed access errors shared by the wire types built on [`Value`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// A required field is absent.
    #[error("missing field {0}")]
    Missing(&'static str),
    /// A field has the wrong CBOR type or an out-of-range value.
    #[error("field {0} has the wrong type or value")]
    Invalid(&'static str),
}

/// Helpers to read typed fields out of a CBOR map.
pub trait MapExt {
    /// Required byte string at integer key.
    fn req_bytes(&self, key: i64, name: &'static str) -> Result<&[u8], FieldError>;
    /// Optional byte string at integer key (wrong type is an error).
    fn opt_bytes(&self, key: i64, name: &'static str) -> Result<Option<&[u8]>, FieldError>;
    /// Optional integer at integer key.
    fn opt_int(&self, key: i64, name: &'static str) -> Result<Option<i128>, FieldError>;
    /// Optional text at integer key.
    fn opt_text(&self, key: i64, name: &'static str) -> Result<Option<&str>, FieldError>;
    /// Optional boolean at integer key.
    fn opt_bool(&self, key: i64, name: &'static str) -> Result<Option<bool>, FieldError>;
}

impl MapExt for Value {
    fn req_bytes(&self, key: i64, name: &'static str) -> Result<&[u8], FieldError> {
        self.opt_bytes(key, name)?.ok_or(FieldError::Missing(name))
    }
    fn opt_bytes(&self, key: i64, name: &'static str) -> Result<Option<&[u8]>, FieldError> {
        match self.get_int(key) {
            None => Ok(None),
            Some(v) => v.as_bytes().map(Some).ok_or(FieldError::Invalid(name)),
        }
    }
    fn opt_int(&self, key: i64, name: &'static str) -> Result<Option<i128>, FieldError> {
        match self.get_int(key) {
            None => Ok(None),
            Some(v) => v.as_int().map(Some).ok_or(FieldError::Invalid(name)),
        }
    }
    fn opt_text(&self, key: i64, name: &'static str) -> Result<Option<&str>, FieldError> {
        match self.get_int(key) {
            None => Ok(None),
            Some(v) => v.as_text().map(Some).ok_or(FieldError::Invalid(name)),
        }
    }
    fn opt_bool(&self, key: i64, name: &'static str) -> Result<Option<bool>, FieldError> {
        match self.get_int(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or(FieldError::Invalid(name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map of `n` distinct unsigned-integer keys (canonical order unless `reversed`).
    fn wide_map(n: u32, reversed: bool) -> Vec<u8> {
        let mut out = vec![0xba];
        out.extend_from_slice(&n.to_be_bytes());
        let keys: Vec<u32> = if reversed { (0..n).rev().collect() } else { (0..n).collect() };
        for k in keys {
            out.push(0x1a);
            out.extend_from_slice(&k.to_be_bytes());
            out.push(0xf6);
        }
        out
    }

    /// The duplicate-key check is linear: 30,000 keys (the most the default
    /// item limit allows) decode in well under a second even unoptimized.
    /// It was a scan of all earlier keys per key (0.4 s for 12,000 keys
    /// optimized; tens of seconds here). `benches/rp_verify.rs` measures it.
    #[test]
    fn duplicate_key_check_is_linear() {
        for reversed in [false, true] {
            let input = wide_map(30_000, reversed);
            let t = std::time::Instant::now();
            let v = decode(&input).expect("distinct keys");
            let took = t.elapsed();
            assert!(matches!(v, Value::Map(ref m) if m.len() == 30_000));
            assert!(took < std::time::Duration::from_secs(2), "30,000 keys took {took:?}");
        }
        // Duplicates are still found, in order or not, and in any encoding.
        let mut dup = wide_map(3, false);
        dup.extend_from_slice(&[0x01, 0xf6]);
        dup[4] = 4;
        assert!(matches!(decode(&dup), Err(CborError::DuplicateKey { .. })));
        // 1 as 0x01 and as the non-minimal 0x18 0x01 are the same key.
        assert!(matches!(decode(&[0xa2, 0x01, 0xf6, 0x18, 0x01, 0xf6]), Err(CborError::DuplicateKey { offset: 3 })));
        // Found by the cbor_decode fuzz target: after one out-of-order key a
        // later key above its predecessor was not looked up (5, 1, 5).
        assert!(matches!(
            decode(&[0xa3, 0x05, 0xf6, 0x01, 0xf6, 0x05, 0xf6]),
            Err(CborError::DuplicateKey { offset: 5 })
        ));
        assert!(matches!(decode(&[0xa2, 0x61, 0x61, 0xf6, 0x61, 0x61, 0xf6]), Err(CborError::DuplicateKey { .. })));
    }

    #[test]
    fn canonical_map_order() {
        let m = MapBuilder::new().insert(-1, 1).insert(3, 1).insert(1, 1).insert("a", 1).insert(-2, 1).build();
        let enc = m.to_vec();
        assert_eq!(enc, vec![0xa5, 0x01, 0x01, 0x03, 0x01, 0x20, 0x01, 0x21, 0x01, 0x61, 0x61, 0x01]);
    }

    #[test]
    fn strictness() {
        assert!(matches!(decode(&[0x01, 0x02]), Err(CborError::TrailingBytes { count: 1 })));
        assert!(matches!(decode(&[0xa2, 0x01, 0x01, 0x01, 0x02]), Err(CborError::DuplicateKey { .. })));
        assert!(matches!(decode(&[0x5f]), Err(CborError::Unsupported { .. })));
        assert!(matches!(decode(&[0x5a, 0xff, 0xff, 0xff, 0xff]), Err(CborError::Truncated { .. })));
        assert!(matches!(
            decode(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            Err(CborError::Truncated { .. })
        ));
        assert!(matches!(decode(&[0x62, 0xff, 0xfe]), Err(CborError::InvalidUtf8 { .. })));
        let deep = vec![0x81u8; 40];
        assert!(matches!(decode(&deep), Err(CborError::TooDeep { .. })));
    }

    #[test]
    fn integer_extremes() {
        for v in [
            0i128,
            23,
            24,
            255,
            256,
            65535,
            65536,
            u32::MAX as i128,
            u64::MAX as i128,
            -1,
            -24,
            -25,
            -(u64::MAX as i128) - 1,
        ] {
            let x = Value::Integer(v);
            assert_eq!(decode(&x.to_vec()).unwrap(), x);
        }
    }
}
