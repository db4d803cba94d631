//! Arguments between their serde form (a JSON object) and an AMP box.
//!
//! Every transport goes through `serde_json::Value`: the JSON transport
//! uses it as it is, and AMP converts each field to bytes by its
//! [`ArgKind`]. So a command's meaning cannot differ between transports.

use mantle_amp::{AmpArgument, AmpBox, AmpDateTime, AmpDecimal, ListOf, python_float_repr};
use serde_json::{Map, Number, Value};
use thiserror::Error;

use crate::schema::{Arg, ArgKind};

/// Arguments that do not fit their command's schema.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum CodecError {
    /// A required argument is absent.
    #[error("missing argument {0:?}")]
    Missing(String),
    /// An argument's value is not of its declared type.
    #[error("argument {name:?}: {reason}")]
    Invalid {
        /// The argument.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn invalid(name: &str, reason: impl ToString) -> CodecError {
    CodecError::Invalid {
        name: name.to_string(),
        reason: reason.to_string(),
    }
}

/// Encodes `fields` (a serialized arguments struct) as AMP values by
/// `schema`. Absent or `null` optional fields are left out; keys not in the
/// schema are ignored, as Twisted does.
pub fn to_amp(fields: &Map<String, Value>, schema: &[Arg]) -> Result<AmpBox, CodecError> {
    let mut out = AmpBox::new();
    for arg in schema {
        match fields.get(arg.name) {
            None | Some(Value::Null) if arg.optional => {}
            None => return Err(CodecError::Missing(arg.name.to_string())),
            Some(v) => {
                out.insert(
                    arg.name,
                    value_to_amp(v, &arg.kind).map_err(|r| invalid(arg.name, r))?,
                );
            }
        }
    }
    Ok(out)
}

/// Decodes the AMP values of `b` by `schema` into a JSON object ready for
/// `serde_json::from_value`. Keys not in the schema are ignored.
pub fn from_amp(b: &AmpBox, schema: &[Arg]) -> Result<Map<String, Value>, CodecError> {
    let mut out = Map::with_capacity(schema.len());
    for arg in schema {
        match b.get(arg.name) {
            None if arg.optional => {}
            None => return Err(CodecError::Missing(arg.name.to_string())),
            Some(bytes) => {
                let v = value_from_amp(bytes, &arg.kind).map_err(|r| invalid(arg.name, r))?;
                out.insert(arg.name.to_string(), v);
            }
        }
    }
    Ok(out)
}

/// Checks a JSON object from the JSON transport against `schema`, so that
/// both transports refuse the same things with the same error.
pub fn check_json(fields: &Map<String, Value>, schema: &[Arg]) -> Result<(), CodecError> {
    for arg in schema {
        match fields.get(arg.name) {
            None | Some(Value::Null) if arg.optional => {}
            None => return Err(CodecError::Missing(arg.name.to_string())),
            // Encoding for AMP is the strictest check of a value's type.
            Some(v) => {
                value_to_amp(v, &arg.kind).map_err(|r| invalid(arg.name, r))?;
            }
        }
    }
    Ok(())
}

fn value_to_amp(v: &Value, kind: &ArgKind) -> Result<Vec<u8>, String> {
    let want = |what: &str| format!("expected {what}, got {v}");
    let enc = |r: Result<Vec<u8>, mantle_amp::ArgError>| r.map_err(|e| e.to_string());
    match kind {
        ArgKind::Integer => {
            if let Some(i) = v.as_i64() {
                enc(i.to_amp())
            } else if let Some(u) = v.as_u64() {
                Ok(u.to_string().into_bytes())
            } else {
                Err(want("an integer"))
            }
        }
        ArgKind::String => match v {
            Value::Array(items) => items
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| want("bytes")),
            _ => Err(want("bytes")),
        },
        ArgKind::Unicode => v
            .as_str()
            .map(|s| s.as_bytes().to_vec())
            .ok_or_else(|| want("a string")),
        ArgKind::Float => match v {
            Value::Number(n) => Ok(python_float_repr(n.as_f64().unwrap_or(f64::NAN)).into_bytes()),
            Value::String(s) if matches!(s.as_str(), "nan" | "inf" | "-inf") => {
                Ok(s.as_bytes().to_vec())
            }
            _ => Err(want("a number")),
        },
        ArgKind::Boolean => v
            .as_bool()
            .map(|b| enc(b.to_amp()))
            .ok_or_else(|| want("true or false"))?,
        ArgKind::DateTime => {
            let s = v.as_str().ok_or_else(|| want("a date-time string"))?;
            enc(AmpDateTime::from_amp(s.as_bytes()).and_then(|d| d.to_amp()))
        }
        ArgKind::Decimal => {
            let s = v.as_str().ok_or_else(|| want("a decimal string"))?;
            enc(AmpDecimal::from_amp(s.as_bytes()).and_then(|d| d.to_amp()))
        }
        ArgKind::ListOf(inner) => {
            let items = v.as_array().ok_or_else(|| want("a list"))?;
            let encoded = items
                .iter()
                .map(|i| value_to_amp(i, inner).map(bytes::Bytes::from))
                .collect::<Result<Vec<_>, _>>()?;
            enc(ListOf(encoded).to_amp())
        }
        ArgKind::AmpList(fields) => {
            let items = v.as_array().ok_or_else(|| want("a list"))?;
            let boxes = items
                .iter()
                .map(|i| {
                    let obj = i.as_object().ok_or_else(|| want("a list of objects"))?;
                    to_amp(obj, fields).map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            enc(mantle_amp::AmpList(boxes).to_amp())
        }
        ArgKind::Json => Ok(serde_json::to_vec(v).map_err(|e| e.to_string())?),
    }
}

fn value_from_amp(bytes: &[u8], kind: &ArgKind) -> Result<Value, String> {
    let dec = |e: mantle_amp::ArgError| e.to_string();
    Ok(match kind {
        ArgKind::Integer => Value::from(i64::from_amp(bytes).map_err(dec)?),
        ArgKind::String => Value::Array(bytes.iter().map(|&b| Value::from(b)).collect()),
        ArgKind::Unicode => Value::String(String::from_amp(bytes).map_err(dec)?),
        ArgKind::Float => {
            let f = f64::from_amp(bytes).map_err(dec)?;
            match Number::from_f64(f) {
                Some(n) => Value::Number(n),
                None => Value::String(python_float_repr(f)),
            }
        }
        ArgKind::Boolean => Value::Bool(bool::from_amp(bytes).map_err(dec)?),
        ArgKind::DateTime => Value::String(AmpDateTime::from_amp(bytes).map_err(dec)?.to_string()),
        ArgKind::Decimal => Value::String(AmpDecimal::from_amp(bytes).map_err(dec)?.to_string()),
        ArgKind::ListOf(inner) => {
            let ListOf(items) = ListOf::<bytes::Bytes>::from_amp(bytes).map_err(dec)?;
            Value::Array(
                items
                    .iter()
                    .map(|i| value_from_amp(i, inner))
                    .collect::<Result<_, _>>()?,
            )
        }
        ArgKind::AmpList(fields) => {
            let mantle_amp::AmpList(boxes) = mantle_amp::AmpList::from_amp(bytes).map_err(dec)?;
            Value::Array(
                boxes
                    .iter()
                    .map(|b| {
                        from_amp(b, fields)
                            .map(Value::Object)
                            .map_err(|e| e.to_string())
                    })
                    .collect::<Result<_, _>>()?,
            )
        }
        ArgKind::Json => serde_json::from_slice(bytes).map_err(|e| format!("invalid JSON: {e}"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{Arguments, Copyable};

    crate::arguments! {
        #[derive(PartialEq)]
        struct Row { name: String, n: i64 }
        #[derive(PartialEq)]
        struct Everything {
            i: i64,
            s: bytes::Bytes,
            u: String,
            f: f64,
            b: bool,
            d: mantle_amp::AmpDateTime,
            m: mantle_amp::AmpDecimal,
            l: Vec<i64>,
            rows: Vec<Row>,
            j: Copyable<Vec<String>>,
            o: Option<String>,
        }
    }

    fn sample() -> Everything {
        Everything {
            i: -7,
            s: bytes::Bytes::from_static(b"\x00\xff"),
            u: "h\u{e9}".into(),
            f: 0.1,
            b: true,
            d: mantle_amp::AmpDateTime::from_amp(b"2012-01-23T12:34:56.054321-01:23").unwrap(),
            m: mantle_amp::AmpDecimal::parse("1.10").unwrap(),
            l: vec![1, 2],
            rows: vec![Row {
                name: "a".into(),
                n: 1,
            }],
            j: Copyable(vec!["x".into()]),
            o: None,
        }
    }

    #[test]
    fn every_kind_round_trips_through_amp_bytes() {
        let v = serde_json::to_value(sample()).unwrap();
        let b = to_amp(v.as_object().unwrap(), Everything::schema()).unwrap();
        assert_eq!(b.get("i"), Some(&b"-7"[..]));
        assert_eq!(b.get("s"), Some(&b"\x00\xff"[..]));
        assert_eq!(b.get("f"), Some(&b"0.1"[..]));
        assert_eq!(b.get("b"), Some(&b"True"[..]));
        assert_eq!(b.get("m"), Some(&b"1.10"[..]));
        assert_eq!(b.get("l"), Some(&b"\x00\x011\x00\x012"[..]));
        assert_eq!(b.get("j"), Some(&br#"["x"]"#[..]));
        assert!(!b.contains_key("o"), "a None optional is left out");
        let back = from_amp(&b, Everything::schema()).unwrap();
        let back: Everything = serde_json::from_value(Value::Object(back)).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn wrong_types_and_missing_arguments_are_named() {
        let mut b = AmpBox::new().with("name", "a").with("n", "seven");
        let e = from_amp(&b, Row::schema()).unwrap_err();
        assert!(
            matches!(&e, CodecError::Invalid { name, .. } if name == "n"),
            "{e}"
        );
        b.remove("n");
        assert_eq!(
            from_amp(&b, Row::schema()).unwrap_err(),
            CodecError::Missing("n".into())
        );
        let j = serde_json::json!({"name": 3, "n": 1});
        assert!(check_json(j.as_object().unwrap(), Row::schema()).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_values_never_panic(vals in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), 11)) {
            let mut b = AmpBox::new();
            for (arg, v) in Everything::schema().iter().zip(vals) {
                b.insert(arg.name, v);
            }
            if let Ok(obj) = from_amp(&b, Everything::schema()) {
                // Whatever decodes encodes again.
                to_amp(&obj, Everything::schema()).unwrap();
            }
        }
    }
}
