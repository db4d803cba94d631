//! A log segment's contents: commits in order, each with its number and
//! the moment it committed.

use mantle_store::Commit;

/// One commit as logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Logged {
    pub(crate) seq: u64,
    pub(crate) time_us: u64,
    pub(crate) commit: Commit,
}

/// The bytes [`append`] adds for `commit`.
pub(crate) fn encoded_len(commit: &Commit) -> usize {
    24 + commit.encoded_len()
}

/// Appends one commit to a segment being written.
pub(crate) fn append(out: &mut Vec<u8>, seq: u64, time_us: u64, commit: &Commit) {
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&time_us.to_be_bytes());
    out.extend_from_slice(&(commit.encoded_len() as u64).to_be_bytes());
    commit.write_to(out);
}

/// Reads a segment's commits; `Err` names what is wrong.
pub(crate) fn read(mut b: &[u8]) -> Result<Vec<Logged>, String> {
    let mut out = Vec::new();
    while !b.is_empty() {
        if b.len() < 24 {
            return Err(format!("{} stray bytes at the end", b.len()));
        }
        let word = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let (seq, time_us, len) = (word(0), word(8), word(16));
        let len = usize::try_from(len).map_err(|_| "a commit too long".to_string())?;
        let body = b
            .get(24..24usize.checked_add(len).ok_or("a commit too long")?)
            .ok_or_else(|| format!("commit {seq} cut short"))?;
        let commit =
            Commit::from_bytes(body).ok_or_else(|| format!("commit {seq} is malformed"))?;
        if let Some(prev) = out.last().map(|l: &Logged| l.seq)
            && seq != prev + 1
        {
            return Err(format!("commit {seq} follows {prev}"));
        }
        out.push(Logged {
            seq,
            time_us,
            commit,
        });
        b = &b[24 + len..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn commit(pages: &[(u32, u8)], db_pages: u32) -> Commit {
        let mut raw = Vec::new();
        raw.extend_from_slice(&512u32.to_be_bytes());
        raw.extend_from_slice(&db_pages.to_be_bytes());
        raw.extend_from_slice(&(pages.len() as u32).to_be_bytes());
        for (n, fill) in pages {
            // A log frame: the page's number, then 20 bytes SQLite uses.
            raw.extend_from_slice(&n.to_be_bytes());
            raw.extend_from_slice(&[0u8; 20]);
            raw.extend(std::iter::repeat_n(*fill, 512));
        }
        Commit::from_bytes(&raw).expect("well formed")
    }

    proptest! {
        #[test]
        fn segments_read_back_as_written(
            first in 1u64..1_000_000,
            commits in proptest::collection::vec(
                (proptest::collection::vec((1u32..100, any::<u8>()), 1..4), 1u32..200, any::<u64>()),
                1..6,
            ),
        ) {
            let mut out = Vec::new();
            let mut expected = Vec::new();
            for (i, (pages, db_pages, time)) in commits.iter().enumerate() {
                let c = commit(pages, *db_pages);
                append(&mut out, first + i as u64, *time, &c);
                expected.push(Logged { seq: first + i as u64, time_us: *time, commit: c });
            }
            prop_assert_eq!(read(&out).unwrap(), expected);
            // Cut inside a commit: refused, not misread. (A cut between
            // commits reads as a shorter segment; a restore checks the
            // commits against the numbers the object's name lists.)
            for cut in [out.len() - 1, 5] {
                if cut > 0 && cut < out.len() {
                    prop_assert!(read(&out[..cut]).is_err());
                }
            }
        }
    }

    #[test]
    fn a_gap_in_numbering_is_refused() {
        let c = commit(&[(1, 1)], 1);
        let mut out = Vec::new();
        append(&mut out, 1, 0, &c);
        append(&mut out, 3, 0, &c);
        assert!(read(&out).unwrap_err().contains("follows"));
    }
}
