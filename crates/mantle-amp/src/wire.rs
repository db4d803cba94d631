//! Boxes, box encoding and the streaming box decoder.

use std::collections::BTreeMap;

use bytes::{Buf, BytesMut};
use thiserror::Error;

/// Longest key AMP allows (Twisted's `_MAX_KEY_LENGTH`).
pub const MAX_KEY_LENGTH: usize = 0xff;
/// Longest value AMP allows (Twisted's `_MAX_VALUE_LENGTH`).
pub const MAX_VALUE_LENGTH: usize = 0xffff;
/// Default cap on the encoded size of one incoming box (1 MiB).
pub const DEFAULT_MAX_BOX_SIZE: usize = 1 << 20;

/// One AMP box: keys mapped to raw value bytes.
///
/// Keys are kept sorted by their bytes, which is exactly the order Twisted's
/// `AmpBox.serialize` writes them in (`sorted(self.items())`), so encoding a
/// box here yields the same bytes Twisted would. As in Twisted (a `dict`), a
/// repeated key on the wire keeps the last value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AmpBox {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl AmpBox {
    /// An empty box.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to `value`, returning any previous value.
    pub fn insert(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
    ) -> Option<Vec<u8>> {
        self.entries.insert(key.into(), value.into())
    }

    /// Builder form of [`AmpBox::insert`].
    pub fn with(mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> Self {
        self.insert(key, value);
        self
    }

    /// The value stored under `key`.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Option<&[u8]> {
        self.entries.get(key.as_ref()).map(Vec::as_slice)
    }

    /// Removes and returns the value stored under `key`.
    pub fn remove(&mut self, key: impl AsRef<[u8]>) -> Option<Vec<u8>> {
        self.entries.remove(key.as_ref())
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> bool {
        self.entries.contains_key(key.as_ref())
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the box has no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in wire (sorted key) order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.entries
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_slice()))
    }
}

impl<K: Into<Vec<u8>>, V: Into<Vec<u8>>> FromIterator<(K, V)> for AmpBox {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut b = AmpBox::new();
        for (k, v) in iter {
            b.insert(k, v);
        }
        b
    }
}

/// Why a box could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// A zero-length key would be read as the end of the box.
    #[error("AMP keys must not be empty")]
    EmptyKey,
    /// Key longer than [`MAX_KEY_LENGTH`].
    #[error("AMP key of {len} bytes exceeds the {MAX_KEY_LENGTH}-byte limit")]
    KeyTooLong {
        /// Length of the offending key.
        len: usize,
    },
    /// Value longer than [`MAX_VALUE_LENGTH`].
    #[error("AMP value of {len} bytes for key {key:?} exceeds the {MAX_VALUE_LENGTH}-byte limit")]
    ValueTooLong {
        /// The key whose value was too long (lossy UTF-8).
        key: String,
        /// Length of the offending value.
        len: usize,
    },
}

/// Encodes `b` (keys in sorted order, then the terminating empty key).
pub fn encode(b: &AmpBox) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::new();
    encode_into(b, &mut out)?;
    Ok(out)
}

/// Appends the encoding of `b` to `out`. On error `out` is left unchanged.
pub fn encode_into(b: &AmpBox, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    for (k, v) in b.iter() {
        if k.is_empty() {
            return Err(EncodeError::EmptyKey);
        }
        if k.len() > MAX_KEY_LENGTH {
            return Err(EncodeError::KeyTooLong { len: k.len() });
        }
        if v.len() > MAX_VALUE_LENGTH {
            return Err(EncodeError::ValueTooLong {
                key: String::from_utf8_lossy(k).into_owned(),
                len: v.len(),
            });
        }
    }
    let size: usize = b.iter().map(|(k, v)| 4 + k.len() + v.len()).sum::<usize>() + 2;
    out.reserve(size);
    for (k, v) in b.iter() {
        // Lengths were checked above, so these casts cannot truncate.
        out.extend_from_slice(&(k.len() as u16).to_be_bytes());
        out.extend_from_slice(k);
        out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        out.extend_from_slice(v);
    }
    out.extend_from_slice(&[0, 0]);
    Ok(())
}

/// Why incoming bytes could not be decoded into boxes.
#[derive(Debug, Error)]
pub enum DecodeError {
    /// A key length prefix above 255 (Twisted drops the connection).
    #[error("AMP key length {len} at byte {offset} exceeds the {MAX_KEY_LENGTH}-byte limit")]
    KeyTooLong {
        /// The announced key length.
        len: u16,
        /// Offset of the length prefix within the box.
        offset: usize,
    },
    /// The stream ended part way through a box.
    #[error(
        "stream ended inside an AMP box: {what} needs {needed} more byte(s) ({buffered} buffered)"
    )]
    Truncated {
        /// What was being read: "key length", "key", "value length" or "value".
        what: &'static str,
        /// Bytes still missing.
        needed: usize,
        /// Bytes of the unfinished box that were buffered.
        buffered: usize,
    },
    /// A box grew past the decoder's size guard.
    #[error("AMP box exceeds the {max}-byte size limit")]
    BoxTooLarge {
        /// The configured limit.
        max: usize,
    },
    /// I/O failure from the underlying transport (for `FramedRead`).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// Outcome of scanning a buffer for one box.
enum Scan {
    Done { b: AmpBox, used: usize },
    Need { what: &'static str, needed: usize },
}

fn scan(buf: &[u8], max: usize) -> Result<Scan, DecodeError> {
    let mut pos = 0usize;
    let mut b = AmpBox::new();
    loop {
        if buf.len() < pos + 2 {
            return Ok(Scan::Need {
                what: "key length",
                needed: pos + 2 - buf.len(),
            });
        }
        let klen = u16::from_be_bytes([buf[pos], buf[pos + 1]]);
        if klen == 0 {
            return Ok(Scan::Done { b, used: pos + 2 });
        }
        if usize::from(klen) > MAX_KEY_LENGTH {
            return Err(DecodeError::KeyTooLong {
                len: klen,
                offset: pos,
            });
        }
        let kstart = pos + 2;
        let kend = kstart + usize::from(klen);
        // The smallest possible finished box from here: key, value length, terminator.
        if kend + 4 > max {
            return Err(DecodeError::BoxTooLarge { max });
        }
        if buf.len() < kend {
            return Ok(Scan::Need {
                what: "key",
                needed: kend - buf.len(),
            });
        }
        if buf.len() < kend + 2 {
            return Ok(Scan::Need {
                what: "value length",
                needed: kend + 2 - buf.len(),
            });
        }
        let vlen = usize::from(u16::from_be_bytes([buf[kend], buf[kend + 1]]));
        let vstart = kend + 2;
        let vend = vstart + vlen;
        if vend + 2 > max {
            return Err(DecodeError::BoxTooLarge { max });
        }
        if buf.len() < vend {
            return Ok(Scan::Need {
                what: "value",
                needed: vend - buf.len(),
            });
        }
        b.insert(&buf[kstart..kend], &buf[vstart..vend]);
        pos = vend;
    }
}

/// Incremental AMP box decoder; use it directly with [`BoxDecoder::decode`]
/// or as a [`tokio_util::codec::Decoder`] in `FramedRead`.
///
/// Never panics: every malformed input yields a [`DecodeError`].
#[derive(Debug, Clone)]
pub struct BoxDecoder {
    max_box_size: usize,
}

impl Default for BoxDecoder {
    fn default() -> Self {
        Self {
            max_box_size: DEFAULT_MAX_BOX_SIZE,
        }
    }
}

impl BoxDecoder {
    /// A decoder with the [`DEFAULT_MAX_BOX_SIZE`] guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// A decoder refusing boxes whose encoding exceeds `max_box_size` bytes.
    pub fn with_max_box_size(max_box_size: usize) -> Self {
        Self { max_box_size }
    }

    /// The configured size guard.
    pub fn max_box_size(&self) -> usize {
        self.max_box_size
    }

    /// Changes the limit for the boxes still to come (a server raises it
    /// once a connection has logged in).
    pub fn set_max_box_size(&mut self, max_box_size: usize) {
        self.max_box_size = max_box_size;
    }

    /// Takes one complete box off the front of `buf`, or `Ok(None)` if more
    /// bytes are needed (nothing is consumed then).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<AmpBox>, DecodeError> {
        match scan(buf, self.max_box_size)? {
            Scan::Done { b, used } => {
                buf.advance(used);
                Ok(Some(b))
            }
            Scan::Need { .. } => Ok(None),
        }
    }

    /// Like [`BoxDecoder::decode`], but the stream has ended: leftover bytes
    /// that do not form a whole box are a [`DecodeError::Truncated`].
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<AmpBox>, DecodeError> {
        if buf.is_empty() {
            return Ok(None);
        }
        match scan(buf, self.max_box_size)? {
            Scan::Done { b, used } => {
                buf.advance(used);
                Ok(Some(b))
            }
            Scan::Need { what, needed } => Err(DecodeError::Truncated {
                what,
                needed,
                buffered: buf.len(),
            }),
        }
    }
}

impl tokio_util::codec::Decoder for BoxDecoder {
    type Item = AmpBox;
    type Error = DecodeError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<AmpBox>, DecodeError> {
        BoxDecoder::decode(self, src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<AmpBox>, DecodeError> {
        BoxDecoder::decode_eof(self, src)
    }
}

/// Encoder half, so `Framed` can send boxes.
impl tokio_util::codec::Encoder<AmpBox> for BoxDecoder {
    type Error = std::io::Error;

    fn encode(&mut self, item: AmpBox, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        let bytes =
            encode(&item).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        dst.extend_from_slice(&bytes);
        Ok(())
    }
}

/// Parses a complete byte string holding zero or more boxes (Twisted's
/// `parseString`, used by `AmpList`). Trailing partial data is an error.
pub fn parse_boxes(data: &[u8]) -> Result<Vec<AmpBox>, DecodeError> {
    let mut buf = BytesMut::from(data);
    let mut dec = BoxDecoder::with_max_box_size(usize::MAX);
    let mut out = Vec::new();
    while let Some(b) = dec.decode_eof(&mut buf)? {
        out.push(b);
    }
    Ok(out)
}
