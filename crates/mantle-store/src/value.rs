//! Attribute kinds: how a Rust field is kept in a column.
//!
//! Every field of an item implements [`Attribute`]. The kind decides the
//! column's SQLite type; `Option<A>` makes the column nullable. The
//! conversions are hidden from users: they only choose field types.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::types::{FromSqlError, ToSqlOutput, Value, ValueRef};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::item::Item;

/// What a column holds. Part of a type's stored schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A signed integer (up to 64 bits).
    Integer,
    /// A 64-bit float.
    Float,
    /// `true` / `false`, kept as 0 / 1.
    Bool,
    /// UTF-8 text.
    Text,
    /// Raw bytes.
    Bytes,
    /// A [`Timestamp`]: microseconds since the Unix epoch, UTC.
    Timestamp,
    /// A serde value kept as JSON text ([`Json`]).
    Json,
    /// An [`Id`] of an item of the named type.
    Reference(&'static str),
}

impl Kind {
    /// The column type in a STRICT SQLite table.
    pub(crate) fn sql_type(self) -> &'static str {
        match self {
            Kind::Integer | Kind::Bool | Kind::Timestamp | Kind::Reference(_) => "INTEGER",
            Kind::Float => "REAL",
            Kind::Text | Kind::Json => "TEXT",
            Kind::Bytes => "BLOB",
        }
    }
}

/// A Rust type that can be an item's attribute.
///
/// Implemented for `i64`, `i32`, `u32`, `i16`, `u16`, `u8`, `f64`, `f32`,
/// `bool`, `String`, `Vec<u8>`, [`Timestamp`], [`Json<T>`], [`Id<T>`] and
/// `Option<A>` of any of those. The conversion methods are used by the code
/// `#[derive(Item)]` writes and are not meant to be called directly.
pub trait Attribute: Sized + Send + 'static {
    /// The column kind.
    fn kind() -> Kind;
    /// Whether the column may hold NULL (`Option<A>`).
    const NULLABLE: bool = false;
    #[doc(hidden)]
    fn to_sql(&self) -> Result<ToSqlOutput<'_>, crate::Error>;
    #[doc(hidden)]
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError>;
}

macro_rules! integer_attribute {
    ($($t:ty),*) => {$(
        impl Attribute for $t {
            fn kind() -> Kind { Kind::Integer }
            fn to_sql(&self) -> Result<ToSqlOutput<'_>, crate::Error> {
                Ok(ToSqlOutput::Owned(Value::Integer(i64::from(*self))))
            }
            fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
                let v = value.as_i64()?;
                <$t>::try_from(v).map_err(|_| FromSqlError::OutOfRange(v))
            }
        }
    )*};
}
integer_attribute!(i64, i32, u32, i16, u16, u8);

impl Attribute for f64 {
    fn kind() -> Kind {
        Kind::Float
    }
    fn to_sql(&self) -> Result<ToSqlOutput<'_>, crate::Error> {
        Ok(ToSqlOutput::Owned(Value::Real(*self)))
    }
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Real(f) => Ok(f),
            ValueRef::Integer(i) => Ok(i as f64),
            _ => Err(FromSqlError::InvalidType),
        }
    }
}

impl Attribute for f32 {
    fn kind() -> Kind {
        Kind::Float
    }
    fn to_sql(&self) -> Result<ToSqlOutput<'_>, crate::Error> {
        Ok(ToSqlOutput::Owned(Value::Real(f64::from(*self))))
    }
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        f64::from_sql(value).map(|f| f as f32)
    }
}

impl Attribute for bool {
    fn kind() -> Kind {
        Kind::Bool
    }
    fn to_sql(&self) -> Result<ToSqlOutput<'_>, crate::Error> {
        Ok(ToSqlOutput::Owned(Value::Integer(i64::from(*self))))
    }
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        Ok(value.as_i64()? != 0)
    }
}

impl Attribute for String {
    fn kind() -> Kind {
        Kind::Text
    }
    fn to_sql(&self) -> Result<ToSqlOutput<'_>, crate::Error> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(self.as_bytes())))
    }
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        value.as_str().map(str::to_owned)
    }
}

impl Attribute for Vec<u8> {
    fn kind() -> Kind {
        Kind::Bytes
    }
    fn to_sql(&self) -> Result<ToSqlOutput<'_>, crate::Error> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Blob(self)))
    }
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        value.as_blob().map(<[u8]>::to_vec)
    }
}

impl<A: Attribute> Attribute for Option<A> {
    fn kind() -> Kind {
        A::kind()
    }
    const NULLABLE: bool = true;
    fn to_sql(&self) -> Result<ToSqlOutput<'_>, crate::Error> {
        match self {
            Some(a) => a.to_sql(),
            None => Ok(ToSqlOutput::Owned(Value::Null)),
        }
    }
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        match value {
            ValueRef::Null => Ok(None),
            v => A::from_sql(v).map(Some),
        }
    }
}

/// A point in time, kept as whole microseconds since the Unix epoch (UTC).
///
/// ```
/// use mantle_store::Timestamp;
/// let t = Timestamp::from_micros(1_500_000);
/// assert_eq!(t + std::time::Duration::from_secs(1), Timestamp::from_micros(2_500_000));
/// assert!(Timestamp::now() > t);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The current time.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }
    /// A timestamp from microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }
    /// Microseconds since the epoch.
    pub const fn as_micros(self) -> i64 {
        self.0
    }
    /// How long after `earlier` this is (zero if it is not later).
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0).max(0) as u64)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Self(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
            Err(e) => Self(-i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX)),
        }
    }
}

impl std::ops::Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        )
    }
}

impl std::ops::Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(
            self.0
                .saturating_sub(i64::try_from(d.as_micros()).unwrap_or(i64::MAX)),
        )
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.div_euclid(1_000_000);
        let micros = self.0.rem_euclid(1_000_000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60
        )
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

impl Attribute for Timestamp {
    fn kind() -> Kind {
        Kind::Timestamp
    }
    fn to_sql(&self) -> Result<ToSqlOutput<'_>, crate::Error> {
        Ok(ToSqlOutput::Owned(Value::Integer(self.0)))
    }
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        value.as_i64().map(Timestamp)
    }
}

/// A serde value kept in one column as JSON text.
///
/// ```
/// use mantle_store::Json;
/// let tags = Json(vec!["a".to_string(), "b".to_string()]);
/// assert_eq!(tags.0.len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Json<T>(pub T);

impl<T> std::ops::Deref for Json<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Serialize + DeserializeOwned + Send + 'static> Attribute for Json<T> {
    fn kind() -> Kind {
        Kind::Json
    }
    fn to_sql(&self) -> Result<ToSqlOutput<'_>, crate::Error> {
        let text = serde_json::to_string(&self.0).map_err(|e| crate::Error::Encode {
            what: std::any::type_name::<T>(),
            reason: e.to_string(),
        })?;
        Ok(ToSqlOutput::Owned(Value::Text(text)))
    }
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        let text = value.as_str()?;
        serde_json::from_str(text)
            .map(Json)
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// The identity of a stored item of type `T`: also the attribute type of a
/// reference to such an item.
///
/// Ids are never reused within a store, so a stale `Id` finds nothing rather
/// than a different item.
pub struct Id<T> {
    raw: i64,
    _type: PhantomData<fn() -> T>,
}

impl<T> Id<T> {
    /// An id from its raw number (as printed or sent over the wire).
    pub const fn from_raw(raw: i64) -> Self {
        Self {
            raw,
            _type: PhantomData,
        }
    }
    /// The raw number.
    pub const fn raw(self) -> i64 {
        self.raw
    }
}

impl<T> Clone for Id<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Id<T> {}
impl<T> PartialEq for Id<T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}
impl<T> Eq for Id<T> {}
impl<T> PartialOrd for Id<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Id<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.raw.cmp(&other.raw)
    }
}
impl<T> std::hash::Hash for Id<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.raw.hash(state);
    }
}
impl<T> fmt::Debug for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.raw)
    }
}
impl<T: Item> fmt::Display for Id<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", T::TYPE_NAME, self.raw)
    }
}
impl<T> Serialize for Id<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(self.raw)
    }
}
impl<'de, T> Deserialize<'de> for Id<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        i64::deserialize(d).map(Id::from_raw)
    }
}

impl<T: Item> Attribute for Id<T> {
    fn kind() -> Kind {
        Kind::Reference(T::TYPE_NAME)
    }
    fn to_sql(&self) -> Result<ToSqlOutput<'_>, crate::Error> {
        Ok(ToSqlOutput::Owned(Value::Integer(self.raw)))
    }
    fn from_sql(value: ValueRef<'_>) -> Result<Self, FromSqlError> {
        value.as_i64().map(Id::from_raw)
    }
}

/// A value that can be compared with an attribute of type `V` in a filter.
///
/// Lets `Note::TITLE.eq("hello")` take a `&str` for a `String` attribute, and
/// `Note::PARENT.eq(id)` take an `Id<T>` for an `Option<Id<T>>` attribute.
pub trait Operand<V> {
    #[doc(hidden)]
    fn into_value(self) -> Result<Value, crate::Error>;
}

pub(crate) fn owned(out: ToSqlOutput<'_>) -> Value {
    match out {
        ToSqlOutput::Borrowed(v) => match v {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(i) => Value::Integer(i),
            ValueRef::Real(f) => Value::Real(f),
            ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Value::Blob(b.to_vec()),
        },
        ToSqlOutput::Owned(v) => v,
        // Other variants (zero blobs, arrays) are never produced by attributes.
        _ => Value::Null,
    }
}

impl<V: Attribute> Operand<V> for V {
    fn into_value(self) -> Result<Value, crate::Error> {
        self.to_sql().map(owned)
    }
}
impl<V: Attribute> Operand<V> for &V {
    fn into_value(self) -> Result<Value, crate::Error> {
        self.to_sql().map(owned)
    }
}
impl<A: Attribute> Operand<Option<A>> for A {
    fn into_value(self) -> Result<Value, crate::Error> {
        self.to_sql().map(owned)
    }
}
impl Operand<String> for &str {
    fn into_value(self) -> Result<Value, crate::Error> {
        Ok(Value::Text(self.to_owned()))
    }
}
impl Operand<Option<String>> for &str {
    fn into_value(self) -> Result<Value, crate::Error> {
        Ok(Value::Text(self.to_owned()))
    }
}
impl Operand<Vec<u8>> for &[u8] {
    fn into_value(self) -> Result<Value, crate::Error> {
        Ok(Value::Blob(self.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_displays_as_rfc3339() {
        assert_eq!(
            Timestamp::from_micros(0).to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            Timestamp::from_micros(1_700_000_000_123_456).to_string(),
            "2023-11-14T22:13:20.123456Z"
        );
    }

    #[test]
    fn integer_out_of_range_is_an_error_not_a_wrap() {
        assert!(u8::from_sql(ValueRef::Integer(300)).is_err());
        assert_eq!(u8::from_sql(ValueRef::Integer(200)).unwrap(), 200);
    }
}
