//! The JSON-ish scalar [`Value`] and the [`Record`] of a collection.

use std::fmt;
use std::time::{Duration, SystemTime};

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::time::unix_seconds;

/// A scalar statistical value: what a record field holds, what a function
/// returns and what a report shows.
///
/// Serialised untagged, as the plain JSON scalar (`null`, `true`, `3`,
/// `2.5`, `"text"`). Integers that fit an `i64` are always [`Value::Int`]
/// (the `From` conversions make sure of it), so a JSON round trip gives back
/// an equal value; [`Value::UInt`] holds only larger unsigned integers.
/// Equality compares integers by number, so `Int(5) == UInt(5)`.
///
/// Non-finite floats (`NaN`, infinities) have no JSON form: JSON reports
/// show them as `null`. The Prometheus report keeps them (`NaN`, `+Inf`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// No value (an unset timestamp, a function with nothing to say).
    #[default]
    Null,
    /// A flag.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer larger than `i64::MAX`.
    UInt(u64),
    /// A floating-point number (durations and times are seconds).
    Float(f64),
    /// Text.
    Text(String),
}

impl Value {
    /// The value as a number, if it is one (`true`/`false` count as 1/0).
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // Statistics: f64 precision is plenty.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
            Value::Int(i) => Some(i as f64),
            Value::UInt(u) => Some(u as f64),
            Value::Float(f) => Some(f),
            Value::Null | Value::Text(_) => None,
        }
    }

    /// The value as an `i64`, if it is an integer that fits.
    #[must_use]
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    /// The text, if the value is text.
    #[must_use]
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// Whether the value is [`Value::Null`].
    #[must_use]
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Text(a), Value::Text(b)) => a == b,
            (Value::Int(_) | Value::UInt(_), Value::Int(_) | Value::UInt(_)) => {
                int_as_i128(self) == int_as_i128(other)
            }
            _ => false,
        }
    }
}

fn int_as_i128(v: &Value) -> Option<i128> {
    match *v {
        Value::Int(i) => Some(i128::from(i)),
        Value::UInt(u) => Some(i128::from(u)),
        _ => None,
    }
}

impl fmt::Display for Value {
    /// Plain text: `""` for null, numbers and flags as written, text as is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => f.write_str(s),
        }
    }
}

macro_rules! from_signed {
    ($($t:ty),*) => {$(
        impl From<$t> for Value {
            fn from(v: $t) -> Self {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
from_signed!(i8, i16, i32, i64, u8, u16, u32);

impl From<u64> for Value {
    fn from(v: u64) -> Self {
        i64::try_from(v).map_or(Value::UInt(v), Value::Int)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::from(v as u64)
    }
}

impl From<isize> for Value {
    fn from(v: isize) -> Self {
        Value::Int(v as i64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<f32> for Value {
    fn from(v: f32) -> Self {
        Value::Float(f64::from(v))
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

impl From<Duration> for Value {
    /// A duration becomes seconds, as a float.
    fn from(v: Duration) -> Self {
        Value::Float(v.as_secs_f64())
    }
}

impl From<SystemTime> for Value {
    /// A time becomes Unix seconds, as a float (as the seed recommends).
    fn from(v: SystemTime) -> Self {
        Value::Float(unix_seconds(v))
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One record of a collection: named fields in the order they were first
/// set, such as `{"Query": "SELECT …", "Processing Time": 0.047}`.
///
/// Serialised as a JSON object whose keys keep that order.
///
/// ```
/// use mantle_stats::{Record, Value};
///
/// let r = Record::new().with("Path", "/login").with("Seconds", 1.5);
/// assert_eq!(r.get("Seconds"), Some(&Value::Float(1.5)));
/// assert_eq!(r.keys().collect::<Vec<_>>(), ["Path", "Seconds"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    fields: Vec<(String, Value)>,
}

impl Record {
    /// An empty record.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// This record with `key` set to `value` (builder style).
    #[must_use]
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set(key, value);
        self
    }

    /// Sets `key` to `value`, replacing an earlier value in place.
    pub fn set(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.fields.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.fields.push((key, value)),
        }
    }

    /// The value of `key`, if set.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let at = self.fields.iter().position(|(k, _)| k == key)?;
        Some(self.fields.remove(at).1)
    }

    /// The field names, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| k.as_str())
    }

    /// The fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The number of fields.
    #[must_use]
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the record has no fields.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl<K: Into<String>, V: Into<Value>> FromIterator<(K, V)> for Record {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut r = Record::new();
        for (k, v) in iter {
            r.set(k, v);
        }
        r
    }
}

impl<K: Into<String>, V: Into<Value>, const N: usize> From<[(K, V); N]> for Record {
    fn from(fields: [(K, V); N]) -> Self {
        fields.into_iter().collect()
    }
}

impl Serialize for Record {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.fields.len()))?;
        for (k, v) in &self.fields {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Record {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct RecordVisitor;
        impl<'de> Visitor<'de> for RecordVisitor {
            type Value = Record;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of field names to scalar values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record, A::Error> {
                let mut r = Record::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    r.set(k, v);
                }
                Ok(r)
            }
        }
        deserializer.deserialize_map(RecordVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_compare_by_number() {
        assert_eq!(Value::Int(5), Value::UInt(5));
        assert_eq!(Value::from(5u64), Value::Int(5));
        assert_eq!(Value::from(u64::MAX), Value::UInt(u64::MAX));
        assert_ne!(Value::Int(1), Value::Float(1.0));
    }

    #[test]
    fn values_round_trip_through_json() {
        for v in [
            Value::Null,
            Value::Bool(true),
            Value::Int(-3),
            Value::from(u64::MAX),
            Value::Float(2.5),
            Value::Float(1.0),
            Value::from("x"),
        ] {
            let json = serde_json::to_string(&v).unwrap();
            let back: Value = serde_json::from_str(&json).unwrap();
            assert_eq!(back, v, "{json}");
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&v),
                "{json}"
            );
        }
    }

    #[test]
    fn floats_round_trip_through_json_exactly() {
        // Needs serde_json's `float_roundtrip`; its default parser may be
        // one ulp off, which would make snapshots differ after a round trip.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = f64::from_bits(x);
            if !f.is_finite() {
                continue;
            }
            for f in [f, 1.7e9 + f64::from_bits(x >> 12) % 1.0e6] {
                let json = serde_json::to_string(&Value::Float(f)).unwrap();
                let back: Value = serde_json::from_str(&json).unwrap();
                assert_eq!(back, Value::Float(f), "{json}");
            }
        }
    }

    #[test]
    fn record_keeps_insertion_order_through_json() {
        let r = Record::from([("zeta", Value::from(1)), ("alpha", Value::from("a"))]);
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(json, r#"{"zeta":1,"alpha":"a"}"#);
        let back: Record = serde_json::from_str(&json).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn record_set_replaces_in_place() {
        let mut r = Record::new().with("a", 1).with("b", 2);
        r.set("a", 3);
        assert_eq!(
            r.iter().collect::<Vec<_>>(),
            [("a", &Value::Int(3)), ("b", &Value::Int(2))]
        );
        assert_eq!(r.remove("a"), Some(Value::Int(3)));
        assert_eq!(r.len(), 1);
    }
}
