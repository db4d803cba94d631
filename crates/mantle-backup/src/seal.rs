//! Keys, and sealing objects: every object is encrypted and authenticated
//! with the site's backup key before it leaves the machine.
//!
//! An object is `MAGIC | key id (8) | nonce (24) | ciphertext | tag (16)`,
//! XChaCha20-Poly1305 with a random nonce. The plaintext is the contents,
//! LZ4-compressed or as they are (its first byte says which): snapshots,
//! merged segments and site files are compressed (unless they do not
//! shrink); a log segment that compaction will merge later is compressed
//! only where that pays (see `follow`). The tag also covers the header
//! and the object's name, so a damaged, cut-short, renamed or swapped
//! object fails to open instead of restoring the wrong bytes: it is the
//! object's checksum.

use std::path::Path;

use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

use crate::{BackupError, Result};

const MAGIC: &[u8; 8] = b"MNTLBK1\0";
const KEY_ID: usize = 8;
const NONCE: usize = 24;
const TAG: usize = 16;
/// Bytes a sealed object adds to its contents.
pub const OVERHEAD: usize = MAGIC.len() + KEY_ID + NONCE + TAG;

/// The text a key file starts with.
const KEY_PREFIX: &str = "mantle-backup-key-v1:";

/// One 256-bit backup key.
#[derive(Clone)]
pub struct BackupKey {
    id: [u8; KEY_ID],
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackupKey({})", self.id_hex())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl BackupKey {
    fn from_bytes(key: &[u8; 32]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"mantle backup key id")
            .chain_update(key)
            .finalize();
        let mut id = [0u8; KEY_ID];
        id.copy_from_slice(&digest[..KEY_ID]);
        BackupKey {
            id,
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// A new random key, as the text of a key file.
    pub fn generate() -> String {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the system's random source");
        format!("{KEY_PREFIX}{}\n", hex(&key))
    }

    /// Writes a new random key to `path` (private to its owner); refuses to
    /// overwrite a file.
    pub fn create_file(path: &Path) -> Result<BackupKey> {
        use std::io::Write;
        let text = Self::generate();
        mantle_store::private_file_options()
            .write(true)
            .create_new(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
            .map_err(|e| BackupError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Reads the key file at `path`.
    pub fn read_file(path: &Path) -> Result<BackupKey> {
        let text = std::fs::read_to_string(path).map_err(|e| BackupError::io(path, e))?;
        Self::parse(&text, path)
    }

    fn parse(text: &str, path: &Path) -> Result<BackupKey> {
        let bad = |reason: &str| BackupError::Key {
            path: path.to_path_buf(),
            reason: reason.into(),
        };
        let body = text.trim().strip_prefix(KEY_PREFIX).ok_or_else(|| {
            bad("not a backup key file (it must start with mantle-backup-key-v1:)")
        })?;
        if body.len() != 64 || !body.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad("the key must be 64 hex digits"));
        }
        let mut key = [0u8; 32];
        for (i, k) in key.iter_mut().enumerate() {
            *k = u8::from_str_radix(&body[2 * i..2 * i + 2], 16).expect("checked hex");
        }
        Ok(Self::from_bytes(&key))
    }

    #[doc(hidden)]
    pub fn from_text_for_fuzzing() -> BackupKey {
        Self::from_bytes(&[7u8; 32])
    }

    /// The key's id (which objects name), in hex.
    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }
}

/// The key new objects are sealed with, and older keys still able to open
/// objects sealed before a rotation.
#[derive(Clone, Debug)]
pub struct Keyring {
    current: BackupKey,
    older: Vec<BackupKey>,
}

impl Keyring {
    /// A keyring of one key.
    pub fn new(current: BackupKey) -> Self {
        Keyring {
            current,
            older: Vec::new(),
        }
    }

    /// Adds a key that opens objects but seals none.
    pub fn with_older(mut self, key: BackupKey) -> Self {
        self.older.push(key);
        self
    }

    /// The key objects are sealed with.
    pub fn current(&self) -> &BackupKey {
        &self.current
    }

    /// Seals `contents` as the object `name`, compressed if that makes
    /// them smaller.
    pub fn seal(&self, name: &str, contents: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        self.seal_into(name, contents, Packing::Compressed, &mut out);
        out
    }

    /// Seals `contents` as the object `name` into `out` (emptied first; a
    /// buffer reused from an object already stored, so that sealing
    /// megabytes a second does not fault in fresh memory each time),
    /// packed as `packing` says.
    pub fn seal_into(&self, name: &str, contents: &[u8], packing: Packing, out: &mut Vec<u8>) {
        let mut nonce = [0u8; NONCE];
        getrandom::fill(&mut nonce).expect("the system's random source");
        // One buffer: the header, the contents packed after it, sealed in
        // place, then the tag (a segment is megabytes; copies cost).
        out.clear();
        out.reserve(
            HEAD + PACK_HEAD + lz4_flex::block::get_maximum_output_size(contents.len()) + TAG,
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.current.id);
        out.extend_from_slice(&nonce);
        match packing {
            Packing::Compressed => pack(contents, out),
            Packing::Plain => pack_plain(contents, out),
        }
        let aad = [&out[..HEAD], name.as_bytes()].concat();
        let tag = self
            .current
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), &aad, &mut out[HEAD..])
            .expect("encryption of an in-memory buffer cannot fail");
        out.extend_from_slice(&tag);
    }

    /// Opens the object `name`, checking it is whole and unchanged.
    pub fn open(&self, name: &str, object: &[u8]) -> Result<Vec<u8>> {
        if object.len() < OVERHEAD {
            return Err(BackupError::corrupt(
                name,
                format!("{} bytes, shorter than any sealed object", object.len()),
            ));
        }
        if &object[..MAGIC.len()] != MAGIC {
            return Err(BackupError::corrupt(name, "not a Mantle backup object"));
        }
        let id = &object[MAGIC.len()..MAGIC.len() + KEY_ID];
        let key = std::iter::once(&self.current)
            .chain(&self.older)
            .find(|k| k.id == id)
            .ok_or_else(|| BackupError::UnknownKey {
                object: name.to_string(),
                key_id: hex(id),
            })?;
        let nonce = &object[MAGIC.len() + KEY_ID..HEAD];
        let aad = [&object[..HEAD], name.as_bytes()].concat();
        let (body, tag) = object[HEAD..].split_at(object.len() - HEAD - TAG);
        let mut packed = body.to_vec();
        key.cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(nonce),
                &aad,
                &mut packed,
                Tag::from_slice(tag),
            )
            .map_err(|_| {
                BackupError::corrupt(
                    name,
                    "its checksum does not match (changed, cut short, or moved)",
                )
            })?;
        unpack(packed).map_err(|reason| BackupError::corrupt(name, reason))
    }
}

/// Bytes before the sealed part of an object.
const HEAD: usize = MAGIC.len() + KEY_ID + NONCE;

/// How an object's contents are packed before they are encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    /// LZ4-compressed, if that makes them smaller.
    Compressed,
    /// As they are.
    Plain,
}

/// The size of `contents` bytes sealed [`Packing::Plain`].
pub(crate) fn plain_sealed_len(contents: usize) -> usize {
    OVERHEAD + 1 + contents
}

/// How the plaintext holds the contents.
const RAW: u8 = 0;
const LZ4: u8 = 1;
/// The kind byte, and LZ4's stated size (u32, little-endian).
const PACK_HEAD: usize = 5;

/// Appends the contents to `out`, compressed if that makes them smaller,
/// after a byte saying which.
fn pack(contents: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    out.push(LZ4);
    // The size as lz4_flex's `*_size_prepended` functions read it.
    out.extend_from_slice(&(contents.len() as u32).to_le_bytes());
    let body = start + PACK_HEAD;
    out.resize(
        body + lz4_flex::block::get_maximum_output_size(contents.len()),
        0,
    );
    let compressed = u32::try_from(contents.len())
        .ok()
        .and_then(|_| lz4_flex::block::compress_into(contents, &mut out[body..]).ok())
        .filter(|&n| PACK_HEAD + n < 1 + contents.len());
    match compressed {
        Some(n) => out.truncate(body + n),
        None => {
            out.truncate(start);
            pack_plain(contents, out);
        }
    }
}

/// Appends the contents to `out` as they are, after the byte saying so.
fn pack_plain(contents: &[u8], out: &mut Vec<u8>) {
    out.push(RAW);
    out.extend_from_slice(contents);
}

/// The contents `pack` wrapped. (Only authenticated plaintext gets here,
/// so its stated size is ours.)
fn unpack(mut packed: Vec<u8>) -> std::result::Result<Vec<u8>, String> {
    match packed.first() {
        Some(&RAW) => {
            packed.remove(0);
            Ok(packed)
        }
        Some(&LZ4) => lz4_flex::decompress_size_prepended(&packed[1..])
            .map_err(|e| format!("cannot decompress: {e}")),
        Some(other) => Err(format!("unknown encoding {other}")),
        None => Err("empty".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> BackupKey {
        BackupKey::parse(&BackupKey::generate(), Path::new("k")).unwrap()
    }

    #[test]
    fn sealed_objects_open_only_whole_and_under_their_name() {
        let ring = Keyring::new(key());
        let sealed = ring.seal("a/b", b"hello");
        assert_eq!(ring.open("a/b", &sealed).unwrap(), b"hello");
        assert!(matches!(
            ring.open("a/c", &sealed),
            Err(BackupError::Corrupt { .. })
        ));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(
            ring.open("a/b", &flipped),
            Err(BackupError::Corrupt { .. })
        ));
        let short = &sealed[..sealed.len() - 3];
        assert!(matches!(
            ring.open("a/b", short),
            Err(BackupError::Corrupt { .. })
        ));
        assert!(matches!(
            ring.open("a/b", &sealed[..10]),
            Err(BackupError::Corrupt { .. })
        ));
    }

    #[test]
    fn compressible_contents_are_stored_smaller_and_come_back_whole() {
        let ring = Keyring::new(key());
        let pages = vec![0u8; 40_000];
        let sealed = ring.seal("p", &pages);
        assert!(sealed.len() < 2_000, "{} bytes", sealed.len());
        assert_eq!(ring.open("p", &sealed).unwrap(), pages);
        let random: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert_eq!(ring.open("r", &ring.seal("r", &random)).unwrap(), random);
    }

    #[test]
    fn plain_contents_are_stored_as_they_are_and_come_back_whole() {
        let ring = Keyring::new(key());
        let pages = vec![0u8; 40_000];
        let mut sealed = Vec::new();
        ring.seal_into("p", &pages, Packing::Plain, &mut sealed);
        assert_eq!(sealed.len(), plain_sealed_len(pages.len()));
        assert_eq!(ring.open("p", &sealed).unwrap(), pages);
        let compressed = ring.seal("p", &pages);
        assert!(compressed.len() < sealed.len() / 10, "{}", compressed.len());
    }

    #[test]
    fn an_older_key_opens_what_it_sealed() {
        let (old, new) = (key(), key());
        let sealed = Keyring::new(old.clone()).seal("x", b"1");
        let rotated = Keyring::new(new.clone()).with_older(old);
        assert_eq!(rotated.open("x", &sealed).unwrap(), b"1");
        let err = Keyring::new(new).open("x", &sealed).unwrap_err();
        assert!(matches!(err, BackupError::UnknownKey { .. }), "{err}");
    }

    #[test]
    fn a_malformed_key_file_is_refused_with_its_reason() {
        let err = BackupKey::parse("nope", Path::new("k.key")).unwrap_err();
        assert!(err.to_string().contains("k.key"), "{err}");
        let err = BackupKey::parse("mantle-backup-key-v1:abc", Path::new("k")).unwrap_err();
        assert!(err.to_string().contains("64 hex"), "{err}");
    }
}
