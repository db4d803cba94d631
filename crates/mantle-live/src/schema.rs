//! What each argument of a command is on the wire.
//!
//! A command's arguments and answer are plain serde structs declared with
//! [`arguments!`](crate::arguments); the macro also records each field's
//! [`ArgKind`], taken from its Rust type through [`WireType`]. The AMP
//! codec needs the kinds because AMP values are untyped bytes; the JSON
//! codec needs them only to check what arrives.

use std::sync::Arc;

use mantle_amp::{AmpDateTime, AmpDecimal, AmpFloat};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The AMP argument type of a value (Twisted's `Argument` subclasses),
/// plus [`ArgKind::Json`] for copyable values.
#[derive(Debug, Clone, PartialEq)]
pub enum ArgKind {
    /// `Integer`: `i64` and smaller integers.
    Integer,
    /// `String`: raw bytes ([`bytes::Bytes`]).
    String,
    /// `Unicode`: `String`.
    Unicode,
    /// `Float`: `f64`, or [`AmpFloat`] where a value may be `NaN` or infinite.
    Float,
    /// `Boolean`: `bool`.
    Boolean,
    /// `DateTime`: [`AmpDateTime`].
    DateTime,
    /// `Decimal`: [`AmpDecimal`].
    Decimal,
    /// `ListOf(kind)`: `Vec<T>`.
    ListOf(Box<ArgKind>),
    /// `AmpList([...])`: `Vec<S>` where `S` was declared with
    /// [`arguments!`](crate::arguments).
    AmpList(&'static [Arg]),
    /// A copyable: any serde value, as JSON text in a `Unicode` value on
    /// AMP and inline in JSON.
    Json,
}

/// One named argument of a command's arguments or answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Arg {
    /// The wire name (the field's name).
    pub name: &'static str,
    /// Its type on the wire.
    pub kind: ArgKind,
    /// May be left out (an `Option` field); Twisted's `optional=True`.
    pub optional: bool,
}

impl Arg {
    /// The argument `name` of Rust type `T`.
    pub fn of<T: WireType>(name: &'static str) -> Arg {
        Arg {
            name,
            kind: T::kind(),
            optional: T::OPTIONAL,
        }
    }
}

/// A Rust type with an AMP argument type.
pub trait WireType {
    /// Its kind.
    fn kind() -> ArgKind;
    /// `true` for `Option<T>`.
    const OPTIONAL: bool = false;
    /// The fields, for record types declared with
    /// [`arguments!`](crate::arguments) (so `Vec` of them is an `AmpList`).
    fn record() -> Option<&'static [Arg]> {
        None
    }
}

macro_rules! wire_type {
    ($kind:ident: $($t:ty),*) => {
        $(impl WireType for $t {
            fn kind() -> ArgKind {
                ArgKind::$kind
            }
        })*
    };
}
wire_type!(Integer: i64, i32, i16, i8, u32, u16, u8, u64, usize);
wire_type!(Unicode: String);
wire_type!(String: bytes::Bytes);
wire_type!(Float: f64, f32, AmpFloat);
wire_type!(Boolean: bool);
wire_type!(DateTime: AmpDateTime);
wire_type!(Decimal: AmpDecimal);
wire_type!(Json: serde_json::Value);

impl<T: WireType> WireType for Option<T> {
    fn kind() -> ArgKind {
        T::kind()
    }
    const OPTIONAL: bool = true;
}

impl<T: WireType> WireType for Vec<T> {
    fn kind() -> ArgKind {
        match T::record() {
            Some(fields) => ArgKind::AmpList(fields),
            None => ArgKind::ListOf(Box::new(T::kind())),
        }
    }
}

impl<T: WireType> WireType for Arc<T> {
    fn kind() -> ArgKind {
        T::kind()
    }
}

/// A copyable value: any serde type, sent by value (JSON text on AMP,
/// inline in JSON).
///
/// ```
/// use mantle_live::{Copyable, arguments};
///
/// #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
/// pub struct Point { x: i32, y: i32 }
///
/// arguments! {
///     /// Moves a shape.
///     pub struct MoveArgs { pub to: Copyable<Point> }
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Copyable<T>(pub T);

impl<T> WireType for Copyable<T> {
    fn kind() -> ArgKind {
        ArgKind::Json
    }
}

/// A handle to a server object (a referenceable), valid on the connection
/// that received it; an `Integer` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Handle(pub i64);

impl WireType for Handle {
    fn kind() -> ArgKind {
        ArgKind::Integer
    }
}

/// The arguments (or the answer) of a command: a serde struct whose fields
/// all have a [`WireType`]. Declare it with [`arguments!`](crate::arguments).
pub trait Arguments: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The fields in declaration order.
    fn schema() -> &'static [Arg];
}

/// Declares a struct of command arguments (or answer values): the struct,
/// with `Debug`, `Clone`, `Serialize` and `Deserialize`, and its
/// [`Arguments`] schema taken from the field types. Field names are the
/// wire names. The crate using it needs `serde` as a dependency.
///
/// ```
/// mantle_live::arguments! {
///     /// Adds two numbers.
///     pub struct SumArgs { pub a: i64, pub b: i64 }
/// }
/// use mantle_live::{Arguments, ArgKind};
/// assert_eq!(SumArgs::schema()[1].name, "b");
/// assert_eq!(SumArgs::schema()[1].kind, ArgKind::Integer);
/// ```
#[macro_export]
macro_rules! arguments {
    ($(
        $(#[$meta:meta])*
        $vis:vis struct $name:ident { $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)? }
    )*) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, ::serde::Serialize, ::serde::Deserialize)]
        $vis struct $name { $( $(#[$fmeta])* $fvis $field : $ty ),* }

        impl $crate::Arguments for $name {
            fn schema() -> &'static [$crate::Arg] {
                static SCHEMA: ::std::sync::OnceLock<::std::vec::Vec<$crate::Arg>> =
                    ::std::sync::OnceLock::new();
                SCHEMA.get_or_init(|| ::std::vec![$($crate::Arg::of::<$ty>(stringify!($field))),*])
            }
        }

        impl $crate::WireType for $name {
            fn kind() -> $crate::ArgKind {
                $crate::ArgKind::Json
            }
            fn record() -> ::std::option::Option<&'static [$crate::Arg]> {
                ::std::option::Option::Some(<$name as $crate::Arguments>::schema())
            }
        }
    )*};
}

crate::arguments! {
    /// No arguments (or an empty answer).
    #[derive(Default, PartialEq, Eq)]
    pub struct Empty {}
}
