//! Snapshots: the extrapolated copy of the statistics that reports render.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::StatsError;
use crate::value::{Record, Value};

/// A copy of every namespace at one moment, with every function computed:
/// what [`StatsRegistry::snapshot`](crate::StatsRegistry::snapshot) returns
/// and what the reports render.
///
/// Changing a snapshot changes nothing in the registry. Serialised (see
/// [`to_json`](Self::to_json)) as:
///
/// ```json
/// {"taken_at": 1714564800.25,
///  "namespaces": {
///    "Web": {"enabled": true,
///            "values": {"Requests": {"kind": "counter", "help": "…", "value": 3}},
///            "collections": {"Slow Requests": {"help": "…", "capacity": 10,
///                                              "records": [{"values": {"Path": "/"}}]}}}}}
/// ```
///
/// Maps keep registration order, and a JSON round trip gives back an equal
/// snapshot (except non-finite floats, which JSON shows as `null`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// When the snapshot was taken, in Unix seconds.
    pub taken_at: f64,
    /// The namespaces, in registration order.
    #[serde(with = "named_map")]
    pub namespaces: Vec<NamespaceSnapshot>,
}

impl Snapshot {
    /// The namespace called `name`, if any.
    #[must_use]
    pub fn namespace(&self, name: &str) -> Option<&NamespaceSnapshot> {
        self.namespaces.iter().find(|n| n.name == name)
    }

    /// The snapshot as compact JSON.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a snapshot always serialises")
    }

    /// The snapshot as indented JSON.
    #[must_use]
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).expect("a snapshot always serialises")
    }

    /// Reads a snapshot back from [`to_json`](Self::to_json)'s output.
    ///
    /// # Errors
    ///
    /// [`StatsError::Json`] if the text is not a snapshot.
    pub fn from_json(json: &str) -> Result<Self, StatsError> {
        Ok(serde_json::from_str(json)?)
    }
}

/// One namespace in a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceSnapshot {
    /// The namespace's name (the key of its JSON entry).
    #[serde(skip)]
    pub name: String,
    /// The `Enabled` switch: whether collection was on.
    pub enabled: bool,
    /// Counters, gauges, text, timestamps and function results, in
    /// registration order.
    #[serde(default, with = "named_map")]
    pub values: Vec<ValueSnapshot>,
    /// The collections, in registration order.
    #[serde(default, with = "named_map")]
    pub collections: Vec<CollectionSnapshot>,
}

impl NamespaceSnapshot {
    /// The value called `name`, if any.
    #[must_use]
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.entry(name).map(|e| &e.value)
    }

    /// The value called `name` with its kind and help, if any.
    #[must_use]
    pub fn entry(&self, name: &str) -> Option<&ValueSnapshot> {
        self.values.iter().find(|v| v.name == name)
    }

    /// The collection called `name`, if any.
    #[must_use]
    pub fn collection(&self, name: &str) -> Option<&CollectionSnapshot> {
        self.collections.iter().find(|c| c.name == name)
    }
}

/// What kind of statistic a [`ValueSnapshot`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ValueKind {
    /// A [`Counter`](crate::Counter): an integer that only goes up.
    Counter,
    /// A [`Gauge`](crate::Gauge) or [`FloatGauge`](crate::FloatGauge).
    Gauge,
    /// A [`TextValue`](crate::TextValue).
    Text,
    /// A [`TimestampValue`](crate::TimestampValue): Unix seconds, or null
    /// if never set.
    Timestamp,
    /// A function computed when the snapshot was taken.
    Function,
}

impl ValueKind {
    /// The kind's name, as in JSON (`"counter"`, …).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::Counter => "counter",
            ValueKind::Gauge => "gauge",
            ValueKind::Text => "text",
            ValueKind::Timestamp => "timestamp",
            ValueKind::Function => "function",
        }
    }
}

/// One named value in a [`NamespaceSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValueSnapshot {
    /// The value's name (the key of its JSON entry).
    #[serde(skip)]
    pub name: String,
    /// What kind of statistic it is.
    pub kind: ValueKind,
    /// Its description, possibly empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub help: String,
    /// The value.
    pub value: Value,
}

/// One collection in a [`NamespaceSnapshot`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionSnapshot {
    /// The collection's name (the key of its JSON entry).
    #[serde(skip)]
    pub name: String,
    /// Its description, possibly empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub help: String,
    /// The most records it keeps.
    pub capacity: usize,
    /// The records, in the collection's order.
    pub records: Vec<CollectionRecord>,
}

impl CollectionSnapshot {
    /// The record stored under `key`, if any.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.key.as_deref() == Some(key))
            .map(|r| &r.values)
    }
}

/// One record of a collection, with its key if it was stored by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionRecord {
    /// The key, for records stored with [`Collection::set`](crate::Collection::set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The record's fields.
    pub values: Record,
}

/// A read-only view of one namespace, given to report-time functions.
///
/// It shows the namespace as it was when the snapshot was taken: its
/// counters, gauges, text, timestamps and collections, but not the results
/// of other functions (the order in which functions run is not guaranteed,
/// so none may depend on another).
#[derive(Debug, Clone, Copy)]
pub struct NamespaceView<'a> {
    pub(crate) snapshot: &'a NamespaceSnapshot,
    pub(crate) taken_at: f64,
}

impl<'a> NamespaceView<'a> {
    /// The namespace's name.
    #[must_use]
    pub fn name(&self) -> &'a str {
        &self.snapshot.name
    }

    /// Whether the namespace's `Enabled` switch is on.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.snapshot.enabled
    }

    /// When the snapshot is being taken, in Unix seconds: use it rather than
    /// reading the clock, so every function sees the same "now".
    #[must_use]
    pub fn now(&self) -> f64 {
        self.taken_at
    }

    /// The value called `name` (not another function's).
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.snapshot
            .values
            .iter()
            .find(|v| v.name == name && v.kind != ValueKind::Function)
            .map(|v| &v.value)
    }

    /// The value called `name` as a number, if it is one.
    #[must_use]
    pub fn get_f64(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(Value::as_f64)
    }

    /// The collection called `name`.
    #[must_use]
    pub fn collection(&self, name: &str) -> Option<&'a CollectionSnapshot> {
        self.snapshot.collection(name)
    }

    /// Every value (not functions), in registration order.
    pub fn values(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + 'a {
        self.snapshot
            .values
            .iter()
            .filter(|v| v.kind != ValueKind::Function)
            .map(|v| (v.name.as_str(), &v.value))
    }
}

/// Things serialised as a JSON map keyed by their name.
trait Named {
    fn name(&self) -> &str;
    fn set_name(&mut self, name: String);
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl Named for $t {
            fn name(&self) -> &str {
                &self.name
            }
            fn set_name(&mut self, name: String) {
                self.name = name;
            }
        }
    )*};
}
named!(NamespaceSnapshot, ValueSnapshot, CollectionSnapshot);

/// `Vec<T>` as an order-keeping JSON map from each item's name to the item.
mod named_map {
    use super::{
        Deserialize, Deserializer, MapAccess, Named, PhantomData, Serialize, SerializeMap,
        Serializer, Visitor, fmt,
    };

    #[allow(clippy::ptr_arg)] // `serde(with)` passes `&Vec<T>`.
    pub(super) fn serialize<S: Serializer, T: Serialize + Named>(
        items: &Vec<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(items.len()))?;
        for item in items {
            map.serialize_entry(item.name(), item)?;
        }
        map.end()
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de> + Named>(
        deserializer: D,
    ) -> Result<Vec<T>, D::Error> {
        struct NamedVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Named> Visitor<'de> for NamedVisitor<T> {
            type Value = Vec<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of names to entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<T>, A::Error> {
                let mut out = Vec::new();
                while let Some((name, mut item)) = map.next_entry::<String, T>()? {
                    item.set_name(name);
                    out.push(item);
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(NamedVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            taken_at: 1_714_564_800.25,
            namespaces: vec![NamespaceSnapshot {
                name: "Zed".into(),
                enabled: false,
                values: vec![
                    ValueSnapshot {
                        name: "b".into(),
                        kind: ValueKind::Counter,
                        help: "Bees.".into(),
                        value: Value::Int(3),
                    },
                    ValueSnapshot {
                        name: "a".into(),
                        kind: ValueKind::Timestamp,
                        help: String::new(),
                        value: Value::Null,
                    },
                ],
                collections: vec![CollectionSnapshot {
                    name: "Workers".into(),
                    help: String::new(),
                    capacity: 4,
                    records: vec![CollectionRecord {
                        key: Some("w1".into()),
                        values: Record::new().with("Busy", true),
                    }],
                }],
            }],
        }
    }

    #[test]
    fn json_shape_is_maps_keyed_by_name_in_order() {
        let json = sample().to_json();
        assert_eq!(
            json,
            r#"{"taken_at":1714564800.25,"namespaces":{"Zed":{"enabled":false,"values":{"b":{"kind":"counter","help":"Bees.","value":3},"a":{"kind":"timestamp","value":null}},"collections":{"Workers":{"capacity":4,"records":[{"key":"w1","values":{"Busy":true}}]}}}}}"#
        );
        assert_eq!(Snapshot::from_json(&json).unwrap(), sample());
    }

    #[test]
    fn lookups_by_name() {
        let s = sample();
        let ns = s.namespace("Zed").unwrap();
        assert_eq!(ns.value("b"), Some(&Value::Int(3)));
        assert_eq!(ns.entry("a").unwrap().kind, ValueKind::Timestamp);
        let workers = ns.collection("Workers").unwrap();
        assert_eq!(
            workers.get("w1").unwrap().get("Busy"),
            Some(&Value::Bool(true))
        );
        assert!(s.namespace("nope").is_none());
    }

    #[test]
    fn from_json_rejects_garbage() {
        assert!(matches!(
            Snapshot::from_json("[1,2]"),
            Err(StatsError::Json(_))
        ));
    }
}
