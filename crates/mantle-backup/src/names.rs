//! How objects are named in the target.
//!
//! ```text
//! stores/STORE/GEN/snap-SEQ-TIME-PARTofPARTS   a snapshot, in parts
//! stores/STORE/GEN/log-FIRST-LAST-T0-T1        commits FIRST..=LAST
//! site/FILE                                    the site's own files
//! ```
//! STORE is the store's path in the site (`users/alice_example.com.store`),
//! GEN a generation (`MILLIS-RANDOM`): a snapshot at sequence 0 and the
//! commits numbered from 1 after it, until the store is next opened
//! without being sure the log is whole. Times are microseconds since
//! 1970; numbers are zero-padded, so names sort in order.

/// Where every store's objects are.
pub(crate) const STORES: &str = "stores";
/// Where the site's own files are.
pub(crate) const SITE_FILES: &str = "site";

/// What an object under `stores/` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Object {
    /// One part of a snapshot taken after commit `seq`.
    Snapshot {
        seq: u64,
        time_us: u64,
        part: u32,
        parts: u32,
    },
    /// Commits `first..=last`, committed from `first_us` to `last_us`.
    Log {
        first: u64,
        last: u64,
        first_us: u64,
        last_us: u64,
    },
}

/// One object's name, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Named {
    pub(crate) store: String,
    pub(crate) generation: String,
    pub(crate) object: Object,
}

pub(crate) fn generation_dir(store: &str, generation: &str) -> String {
    format!("{STORES}/{store}/{generation}")
}

pub(crate) fn snapshot(
    store: &str,
    generation: &str,
    seq: u64,
    time_us: u64,
    part: u32,
    parts: u32,
) -> String {
    format!(
        "{}/snap-{seq:012}-{time_us:016}-{part:05}of{parts:05}",
        generation_dir(store, generation)
    )
}

pub(crate) fn log(
    store: &str,
    generation: &str,
    first: u64,
    last: u64,
    first_us: u64,
    last_us: u64,
) -> String {
    format!(
        "{}/log-{first:012}-{last:012}-{first_us:016}-{last_us:016}",
        generation_dir(store, generation)
    )
}

/// A new generation's name, starting now.
pub(crate) fn new_generation() -> String {
    let mut r = [0u8; 4];
    getrandom::fill(&mut r).expect("the system's random source");
    format!(
        "{:013}-{:08x}",
        crate::now_us() / 1000,
        u32::from_be_bytes(r)
    )
}

fn num(s: &str) -> Option<u64> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// Parses an object's name; `None` for anything else.
pub(crate) fn parse(name: &str) -> Option<Named> {
    let rest = name.strip_prefix(STORES)?.strip_prefix('/')?;
    let (dir, file) = rest.rsplit_once('/')?;
    let (store, generation) = dir.rsplit_once('/')?;
    if store.is_empty() || generation.is_empty() {
        return None;
    }
    let object = if let Some(s) = file.strip_prefix("snap-") {
        let mut it = s.splitn(3, '-');
        let (seq, time, parts) = (it.next()?, it.next()?, it.next()?);
        let (part, total) = parts.split_once("of")?;
        let (part, parts) = (
            u32::try_from(num(part)?).ok()?,
            u32::try_from(num(total)?).ok()?,
        );
        if parts == 0 || part >= parts {
            return None;
        }
        Object::Snapshot {
            seq: num(seq)?,
            time_us: num(time)?,
            part,
            parts,
        }
    } else if let Some(s) = file.strip_prefix("log-") {
        let f: Vec<u64> = s.split('-').map(num).collect::<Option<_>>()?;
        let [first, last, first_us, last_us] = f[..] else {
            return None;
        };
        if first == 0 || last < first || last_us < first_us {
            return None;
        }
        Object::Log {
            first,
            last,
            first_us,
            last_us,
        }
    } else {
        return None;
    };
    Some(Named {
        store: store.into(),
        generation: generation.into(),
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back() {
        let s = snapshot("users/a.store", "0001-ab", 7, 99, 1, 3);
        assert_eq!(
            parse(&s).unwrap(),
            Named {
                store: "users/a.store".into(),
                generation: "0001-ab".into(),
                object: Object::Snapshot {
                    seq: 7,
                    time_us: 99,
                    part: 1,
                    parts: 3
                }
            }
        );
        let l = log("site.store", "g", 1, 4, 10, 20);
        assert!(matches!(
            parse(&l).unwrap().object,
            Object::Log {
                first: 1,
                last: 4,
                first_us: 10,
                last_us: 20
            }
        ));
        for bad in [
            "stores/x",
            "stores/a/g/log-1-2",
            "stores/a/g/snap-1-2-3of3",
            "other/a/g/log-1-1-1-1",
            "stores/a/g/log-0-1-1-1",
        ] {
            assert!(parse(bad).is_none(), "{bad}");
        }
    }
}
