//! Argument codecs: the byte strings Twisted's `Argument` subclasses put in
//! box values (`toString` / `fromString`).

use std::fmt;

use thiserror::Error;

use crate::wire::{self, AmpBox, DecodeError, EncodeError, MAX_VALUE_LENGTH};

/// Why an argument could not be encoded or decoded.
#[derive(Debug, Error)]
pub enum ArgError {
    /// The bytes are not valid for the argument type.
    #[error("invalid {kind} value {value:?}")]
    Invalid {
        /// The AMP argument type ("Integer", "Boolean", ...).
        kind: &'static str,
        /// The offending bytes (lossy UTF-8).
        value: String,
    },
    /// An integer that does not fit in `i64`.
    #[error("Integer {0:?} is out of range for i64")]
    OutOfRange(String),
    /// Unicode argument that is not UTF-8.
    #[error("Unicode value is not valid UTF-8: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
    /// A `ListOf` element longer than 65,535 bytes once encoded.
    #[error("ListOf element of {0} bytes exceeds the {MAX_VALUE_LENGTH}-byte limit")]
    ElementTooLong(usize),
    /// A `ListOf` value ending part way through an element.
    #[error("ListOf value ends inside an element")]
    TruncatedList,
    /// A box inside an `AmpList` could not be encoded.
    #[error("AmpList box: {0}")]
    Encode(#[from] EncodeError),
    /// The boxes inside an `AmpList` could not be parsed.
    #[error("AmpList boxes: {0}")]
    Decode(#[from] DecodeError),
}

fn invalid(kind: &'static str, value: &[u8]) -> ArgError {
    ArgError::Invalid {
        kind,
        value: String::from_utf8_lossy(value).into_owned(),
    }
}

/// A value that can travel as one AMP box value.
pub trait AmpArgument: Sized {
    /// The wire bytes (Twisted's `toString`).
    fn to_amp(&self) -> Result<Vec<u8>, ArgError>;
    /// Parses wire bytes (Twisted's `fromString`).
    fn from_amp(bytes: &[u8]) -> Result<Self, ArgError>;
}

/// `Integer`: decimal ASCII (`b"%d"`).
///
/// Decoding accepts what Python's `int()` accepts for base 10 apart from
/// `_` separators: surrounding ASCII whitespace and an optional sign.
impl AmpArgument for i64 {
    fn to_amp(&self) -> Result<Vec<u8>, ArgError> {
        Ok(self.to_string().into_bytes())
    }
    fn from_amp(bytes: &[u8]) -> Result<Self, ArgError> {
        let s = std::str::from_utf8(bytes)
            .map_err(|_| invalid("Integer", bytes))?
            .trim_ascii();
        let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
        if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
            return Err(invalid("Integer", bytes));
        }
        s.parse().map_err(|_| ArgError::OutOfRange(s.to_owned()))
    }
}

/// `String`: raw bytes, unchanged.
impl AmpArgument for Vec<u8> {
    fn to_amp(&self) -> Result<Vec<u8>, ArgError> {
        Ok(self.clone())
    }
    fn from_amp(bytes: &[u8]) -> Result<Self, ArgError> {
        Ok(bytes.to_vec())
    }
}

/// `String` over [`bytes::Bytes`].
impl AmpArgument for bytes::Bytes {
    fn to_amp(&self) -> Result<Vec<u8>, ArgError> {
        Ok(self.to_vec())
    }
    fn from_amp(bytes: &[u8]) -> Result<Self, ArgError> {
        Ok(bytes::Bytes::copy_from_slice(bytes))
    }
}

/// `Unicode`: UTF-8 (strict on decode, like Python's `.decode("utf-8")`).
impl AmpArgument for String {
    fn to_amp(&self) -> Result<Vec<u8>, ArgError> {
        Ok(self.as_bytes().to_vec())
    }
    fn from_amp(bytes: &[u8]) -> Result<Self, ArgError> {
        Ok(String::from_utf8(bytes.to_vec())?)
    }
}

/// `Boolean`: exactly `True` / `False`.
impl AmpArgument for bool {
    fn to_amp(&self) -> Result<Vec<u8>, ArgError> {
        Ok(if *self {
            b"True".to_vec()
        } else {
            b"False".to_vec()
        })
    }
    fn from_amp(bytes: &[u8]) -> Result<Self, ArgError> {
        match bytes {
            b"True" => Ok(true),
            b"False" => Ok(false),
            _ => Err(invalid("Boolean", bytes)),
        }
    }
}

/// Formats `x` exactly as Python 3's `repr(float)` / `str(float)`.
pub fn python_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    // `{:e}` gives the shortest round-tripping digits, as Python's repr does.
    let sci = format!("{:e}", x);
    let (mant, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else if exp + 1 >= n {
            out.push_str(&digits);
            for _ in 0..(exp + 1 - n) {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            let point = (exp + 1) as usize;
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    }
    out
}

/// `Float`: Python `repr` (`1.5`, `1e+16`, `nan`, `inf`, `-inf`).
///
/// Decoding accepts what Rust's `f64` parser accepts after trimming ASCII
/// whitespace, which covers Python's `float()` spellings (`inf`,
/// `Infinity`, `nan`, exponents) except `_` separators.
impl AmpArgument for f64 {
    fn to_amp(&self) -> Result<Vec<u8>, ArgError> {
        Ok(python_float_repr(*self).into_bytes())
    }
    fn from_amp(bytes: &[u8]) -> Result<Self, ArgError> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.trim_ascii().parse().ok())
            .ok_or_else(|| invalid("Float", bytes))
    }
}

/// `Float` that may be `NaN` or infinite, for serde: finite values are
/// numbers, the others the strings `"nan"`, `"inf"` and `"-inf"` (as
/// Python writes them). A plain `f64` field serializes those as JSON
/// `null`, which no AMP `Float` can carry; use `AmpFloat` where a value
/// may not be finite.
///
/// ```
/// use mantle_amp::AmpFloat;
/// assert_eq!(serde_json::to_string(&AmpFloat(f64::INFINITY)).unwrap(), r#""inf""#);
/// let x: AmpFloat = serde_json::from_str(r#""nan""#).unwrap();
/// assert!(x.0.is_nan());
/// let y: AmpFloat = serde_json::from_str("1.5").unwrap();
/// assert_eq!(y, AmpFloat(1.5));
/// assert_eq!(AmpFloat(f64::NAN), AmpFloat(f64::NAN), "the same on the wire");
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct AmpFloat(pub f64);

/// Equal when they are the same value on the wire: `NaN` equals `NaN`
/// (AMP has one `nan`), and `0.0` equals `-0.0` as for `f64`.
impl PartialEq for AmpFloat {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 || (self.0.is_nan() && other.0.is_nan())
    }
}

impl From<f64> for AmpFloat {
    fn from(x: f64) -> Self {
        AmpFloat(x)
    }
}

impl AmpArgument for AmpFloat {
    fn to_amp(&self) -> Result<Vec<u8>, ArgError> {
        self.0.to_amp()
    }
    fn from_amp(bytes: &[u8]) -> Result<Self, ArgError> {
        f64::from_amp(bytes).map(AmpFloat)
    }
}

impl serde::Serialize for AmpFloat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0.is_finite() {
            s.serialize_f64(self.0)
        } else {
            s.serialize_str(&python_float_repr(self.0))
        }
    }
}

impl<'de> serde::Deserialize<'de> for AmpFloat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = AmpFloat;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, or \"nan\", \"inf\" or \"-inf\"")
            }
            fn visit_f64<E: serde::de::Error>(self, x: f64) -> Result<AmpFloat, E> {
                Ok(AmpFloat(x))
            }
            fn visit_i64<E: serde::de::Error>(self, x: i64) -> Result<AmpFloat, E> {
                Ok(AmpFloat(x as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, x: u64) -> Result<AmpFloat, E> {
                Ok(AmpFloat(x as f64))
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<AmpFloat, E> {
                // Only the non-finite spellings: numbers come as numbers.
                match f64::from_amp(s.as_bytes()) {
                    Ok(x) if !x.is_finite() => Ok(AmpFloat(x)),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(s), &self)),
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// `DateTime`: an offset-aware timestamp with microseconds, on the wire as
/// `YYYY-MM-DDTHH:MM:SS.ffffff+HH:MM` (always 32 bytes; a zero offset is
/// written `-00:00`, as Twisted writes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AmpDateTime {
    /// 1..=9999
    pub year: u16,
    /// 1..=12
    pub month: u8,
    /// 1..=days in month
    pub day: u8,
    /// 0..=23
    pub hour: u8,
    /// 0..=59
    pub minute: u8,
    /// 0..=59
    pub second: u8,
    /// 0..=999_999
    pub microsecond: u32,
    /// UTC offset in minutes, -1439..=1439 (Python's limit is under 24 hours).
    pub offset_minutes: i16,
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 0,
    }
}

impl AmpDateTime {
    /// Whether every field is in range (as Python's `datetime` requires).
    pub fn is_valid(&self) -> bool {
        (1..=9999).contains(&self.year)
            && (1..=12).contains(&self.month)
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
            && self.microsecond < 1_000_000
            && self.offset_minutes.unsigned_abs() < 24 * 60
    }
}

impl fmt::Display for AmpDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Twisted writes `+` only for a positive offset, so UTC is `-00:00`
        // (`amp.DateTime.toString`); both signs parse as UTC.
        let sign = if self.offset_minutes > 0 { '+' } else { '-' };
        let off = self.offset_minutes.unsigned_abs();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}{}{:02}:{:02}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.microsecond,
            sign,
            off / 60,
            off % 60
        )
    }
}

impl AmpArgument for AmpDateTime {
    fn to_amp(&self) -> Result<Vec<u8>, ArgError> {
        if !self.is_valid() {
            return Err(invalid("DateTime", self.to_string().as_bytes()));
        }
        Ok(self.to_string().into_bytes())
    }
    fn from_amp(bytes: &[u8]) -> Result<Self, ArgError> {
        let bad = || invalid("DateTime", bytes);
        if bytes.len() != 32 {
            return Err(bad());
        }
        let num = |a: usize, b: usize| -> Result<u32, ArgError> {
            let s = &bytes[a..b];
            if !s.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            Ok(s.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')))
        };
        let seps = [
            (4, b'-'),
            (7, b'-'),
            (10, b'T'),
            (13, b':'),
            (16, b':'),
            (19, b'.'),
            (29, b':'),
        ];
        if seps.iter().any(|&(i, c)| bytes[i] != c) {
            return Err(bad());
        }
        let sign: i16 = match bytes[26] {
            b'+' => 1,
            b'-' => -1,
            _ => return Err(bad()),
        };
        let (oh, om) = (num(27, 29)?, num(30, 32)?);
        if om >= 60 {
            return Err(bad());
        }
        let dt = AmpDateTime {
            year: num(0, 4)? as u16,
            month: num(5, 7)? as u8,
            day: num(8, 10)? as u8,
            hour: num(11, 13)? as u8,
            minute: num(14, 16)? as u8,
            second: num(17, 19)? as u8,
            microsecond: num(20, 26)?,
            offset_minutes: sign * (oh * 60 + om) as i16,
        };
        if !dt.is_valid() {
            return Err(bad());
        }
        Ok(dt)
    }
}

/// `Decimal`: the exact text of a Python `decimal.Decimal`.
///
/// This is a validated-text newtype rather than `rust_decimal::Decimal`,
/// because `rust_decimal` has no `NaN`, `sNaN`, `Infinity` or `-0`, and
/// does not keep Python's exponent/trailing-zero form (`1E+2`, `1.10`), so
/// it could not round-trip every value Twisted sends. Parsing checks the
/// Python decimal string syntax; the text is kept as received (trimmed).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AmpDecimal(String);

fn is_decimal_syntax(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = body.to_ascii_lowercase();
    if lower == "inf" || lower == "infinity" {
        return true;
    }
    for nan in ["snan", "nan"] {
        if let Some(payload) = lower.strip_prefix(nan) {
            return payload.bytes().all(|c| c.is_ascii_digit());
        }
    }
    let (mant, exp) = match lower.split_once('e') {
        Some((m, e)) => (m, Some(e)),
        None => (lower.as_str(), None),
    };
    if let Some(e) = exp {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        if e.is_empty() || !e.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    (!int.is_empty() || !frac.is_empty())
        && int.bytes().all(|c| c.is_ascii_digit())
        && frac.bytes().all(|c| c.is_ascii_digit())
}

impl AmpDecimal {
    /// Validates `text` as Python decimal syntax (surrounding ASCII whitespace
    /// is trimmed, as `Decimal()` does).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim_ascii();
        is_decimal_syntax(t).then(|| AmpDecimal(t.to_owned()))
    }

    /// The decimal's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<i64> for AmpDecimal {
    fn from(n: i64) -> Self {
        AmpDecimal(n.to_string())
    }
}

impl fmt::Display for AmpDecimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AmpArgument for AmpDecimal {
    fn to_amp(&self) -> Result<Vec<u8>, ArgError> {
        Ok(self.0.as_bytes().to_vec())
    }
    fn from_amp(bytes: &[u8]) -> Result<Self, ArgError> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(AmpDecimal::parse)
            .ok_or_else(|| invalid("Decimal", bytes))
    }
}

/// `ListOf(T)`: each element's encoding behind a 2-byte big-endian length.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListOf<T>(pub Vec<T>);

impl<T: AmpArgument> AmpArgument for ListOf<T> {
    fn to_amp(&self) -> Result<Vec<u8>, ArgError> {
        let mut out = Vec::new();
        for item in &self.0 {
            let enc = item.to_amp()?;
            let len = u16::try_from(enc.len()).map_err(|_| ArgError::ElementTooLong(enc.len()))?;
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&enc);
        }
        Ok(out)
    }
    fn from_amp(mut bytes: &[u8]) -> Result<Self, ArgError> {
        let mut items = Vec::new();
        while !bytes.is_empty() {
            let [a, b, rest @ ..] = bytes else {
                return Err(ArgError::TruncatedList);
            };
            let len = usize::from(u16::from_be_bytes([*a, *b]));
            if rest.len() < len {
                return Err(ArgError::TruncatedList);
            }
            items.push(T::from_amp(&rest[..len])?);
            bytes = &rest[len..];
        }
        Ok(ListOf(items))
    }
}

/// `AmpList`: boxes, each encoded with its terminator, concatenated. The
/// per-field schema is left to the caller (decode each box's values with
/// the matching [`AmpArgument`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AmpList(pub Vec<AmpBox>);

impl AmpArgument for AmpList {
    fn to_amp(&self) -> Result<Vec<u8>, ArgError> {
        let mut out = Vec::new();
        for b in &self.0 {
            wire::encode_into(b, &mut out)?;
        }
        Ok(out)
    }
    fn from_amp(bytes: &[u8]) -> Result<Self, ArgError> {
        Ok(AmpList(wire::parse_boxes(bytes)?))
    }
}

/// Both travel as their AMP text in other encodings (JSON for browsers), so
/// a value means the same thing on every transport.
macro_rules! serde_as_amp_text {
    ($t:ty) => {
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                <$t>::from_amp(text.as_bytes()).map_err(serde::de::Error::custom)
            }
        }
    };
}
serde_as_amp_text!(AmpDateTime);
serde_as_amp_text!(AmpDecimal);
