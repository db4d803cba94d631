//! Property tests: a commit and a segment read back as written; any bytes
//! fed to the readers are refused or read, never a panic; a sealed object
//! opens only exactly as sealed.

use mantle_backup::{BackupKey, Keyring};
use proptest::prelude::*;

fn keyring() -> Keyring {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k");
    Keyring::new(BackupKey::create_file(&path).unwrap())
}

proptest! {
    #[test]
    fn any_bytes_are_read_or_refused(name in ".{0,80}", bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        mantle_backup::fuzzing::parse_object(&name, &bytes);
    }

    #[test]
    fn a_sealed_object_opens_to_its_contents_and_fails_when_changed(
        contents in proptest::collection::vec(any::<u8>(), 0..2000),
        flip in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let ring = keyring();
        let sealed = ring.seal("stores/a.store/g/log-1-1-1-1", &contents);
        prop_assert_eq!(ring.open("stores/a.store/g/log-1-1-1-1", &sealed).unwrap(), contents);
        let mut flipped = sealed.clone();
        let i = flip.index(flipped.len());
        flipped[i] ^= 0x40;
        prop_assert!(ring.open("stores/a.store/g/log-1-1-1-1", &flipped).is_err());
        let short = &sealed[..cut.index(sealed.len())];
        prop_assert!(ring.open("stores/a.store/g/log-1-1-1-1", short).is_err());
    }
}
