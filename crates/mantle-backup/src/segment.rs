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

/// Appends one commit to a segment being written.
pub(crate) fn append(out: &mut Vec<u8>, seq: u64, time_us: u64, commit: &Commit) {
    let bytes = commit.to_bytes();
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&time_us.to_be_bytes());
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(&bytes);
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
