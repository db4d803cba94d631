//! Twisted's AMP wire format (`twisted.protocols.amp`), byte-compatible.
//!
//! * [`AmpBox`], [`encode`] and the streaming [`BoxDecoder`] (also a
//!   `tokio_util` codec) handle boxes: key/value pairs, each a 2-byte
//!   big-endian length and bytes (keys 1..=255 bytes, values up to 65,535),
//!   ended by an empty key. Keys are written in sorted order, as Twisted does.
//! * [`AmpArgument`] converts values: `i64` (Integer), `Vec<u8>` / `Bytes`
//!   (String), `String` (Unicode), `f64` (Float), `bool` (Boolean),
//!   [`AmpDateTime`], [`AmpDecimal`], [`ListOf`] and [`AmpList`].
//! * [`frame`] builds and classifies request, answer and error boxes.
//!
//! ```
//! use bytes::BytesMut;
//! use mantle_amp::{AmpArgument, AmpBox, BoxDecoder, Message, encode, frame};
//!
//! let args = AmpBox::new().with("a", 7i64.to_amp().unwrap());
//! let req = frame::request(b"Sum", Some(b"1"), args);
//! let bytes = encode(&req).unwrap();
//! assert_eq!(
//!     bytes,
//!     b"\x00\x04_ask\x00\x011\x00\x08_command\x00\x03Sum\x00\x01a\x00\x017\x00\x00"
//! );
//!
//! // Feed the bytes in two pieces, as a socket might deliver them.
//! let mut dec = BoxDecoder::new();
//! let mut buf = BytesMut::from(&bytes[..5]);
//! assert_eq!(dec.decode(&mut buf).unwrap(), None);
//! buf.extend_from_slice(&bytes[5..]);
//! let got = dec.decode(&mut buf).unwrap().unwrap();
//! match Message::classify(got).unwrap() {
//!     Message::Request { command, tag, args } => {
//!         assert_eq!(command, b"Sum");
//!         assert_eq!(tag.as_deref(), Some(&b"1"[..]));
//!         assert_eq!(i64::from_amp(args.get("a").unwrap()).unwrap(), 7);
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```

pub mod args;
pub mod frame;
pub mod wire;

pub use args::{
    AmpArgument, AmpDateTime, AmpDecimal, AmpFloat, AmpList, ArgError, ListOf, python_float_repr,
};
pub use frame::Message;
pub use wire::{
    AmpBox, BoxDecoder, DEFAULT_MAX_BOX_SIZE, DecodeError, EncodeError, MAX_KEY_LENGTH,
    MAX_VALUE_LENGTH, encode, encode_into, parse_boxes,
};
