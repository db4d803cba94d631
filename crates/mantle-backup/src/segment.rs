//! A log segment's contents: commits in order, each with its number and
//! the moment it committed.
//!
//! `MAGIC`, then per commit: its number and time (u64 each), the page
//! size, the store's length in pages after it and how many pages it wrote
//! (u32 each), then each page as its number (u32), a kind (u8) and either
//! its bytes (`WHOLE`) or what changed (`CHANGES`) from the page as it was
//! in the store just before (the commit's own earlier write of it, if any):
//! a count (u32), then runs of bytes, each its offset and length (u32 each)
//! and the bytes as they are now. All big-endian.
//!
//! Successive versions of a B-tree page differ in a few hundred bytes, so a
//! busy store's log shrinks several times over before it is sealed (and
//! compressed, when compaction merges it). Each commit's record is
//! written as the writer hands the commit over, its pages still in the
//! processor's caches, against the last version the backup logged of each page
//! ([`PageCache`]: it starts empty in each generation and after each
//! restart, and is bounded; a page it does not hold is stored whole).
//! Page 1's changes always carry its first [`HEADER_BYTES`] whole: a
//! snapshot's page 1 differs from the store's in the database header
//! (SQLite's backup rewrites it; the B-tree page after it is copied as it
//! is), and a restore may start from a snapshot. A restore has the version
//! before in the file it rebuilds: the snapshot with every commit since
//! written over it. A commit's record does not depend on where segments
//! begin or end, so segments can be merged by concatenating their records.

use std::collections::HashMap;

use mantle_store::Commit;

/// The first bytes of a segment's contents (a format of its own: later
/// formats get another).
const MAGIC: &[u8; 4] = b"MSG3";
/// Bytes before a commit's pages, and before each page.
const COMMIT_HEAD: usize = 28;
const PAGE_HEAD: usize = 5;
const WHOLE: u8 = 0;
const CHANGES: u8 = 1;
/// Page 1's first bytes, the database header (100 bytes) rounded up to
/// a word: logged whole in every version of page 1.
const HEADER_BYTES: usize = 104;

/// One commit as logged: pages either whole or as changes from the page
/// before; [`resolve`](Logged::resolve) makes it a [`Commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Logged<'a> {
    pub(crate) seq: u64,
    pub(crate) time_us: u64,
    page_size: u32,
    db_pages: u32,
    pages: Vec<(u32, Page<'a>)>,
    /// The commit's whole record, as it stands in the segment.
    record: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page<'a> {
    Whole(&'a [u8]),
    Changes(&'a [u8]),
}

impl Logged<'_> {
    /// The commit's pages, with the page as it was before a commit's
    /// changes read by `before(number, buffer)` (false: the store has no
    /// such page, and `object`, the segment, is corrupt).
    pub(crate) fn resolve(
        &self,
        object: &str,
        mut before: impl FnMut(u32, &mut [u8]) -> crate::Result<bool>,
    ) -> crate::Result<Commit> {
        let mut commit = Commit::new(self.page_size, self.db_pages).expect("checked when read");
        let mut page = vec![0u8; self.page_size as usize];
        for (i, &(n, p)) in self.pages.iter().enumerate() {
            match p {
                Page::Whole(bytes) => commit.push_page(n, bytes),
                Page::Changes(runs) => {
                    // The commit's own last write of the page, else the store's.
                    let earlier = commit.pages().take(i).filter(|&(m, _)| m == n).last();
                    match earlier {
                        Some((_, bytes)) => page.copy_from_slice(bytes),
                        None => {
                            if !before(n, &mut page)? {
                                return Err(crate::BackupError::corrupt(
                                    object,
                                    format!(
                                        "commit {} changes page {n}, which the store does not have",
                                        self.seq
                                    ),
                                ));
                            }
                        }
                    }
                    walk_changes(page.len(), runs, |at, bytes| {
                        page[at..at + bytes.len()].copy_from_slice(bytes)
                    })
                    .expect("checked when read");
                    commit.push_page(n, &page);
                }
            }
        }
        Ok(commit)
    }
}

/// The last version of pages the backup has logged in a generation, to
/// store the next version as what changed. Bounded: a page it does not
/// hold is stored whole.
#[derive(Debug, Default)]
pub(crate) struct PageCache {
    generation: String,
    pages: HashMap<u32, Vec<u8>>,
    bytes: usize,
    /// The store's length in pages after the last commit logged (`None`
    /// before the first of the generation, or of this run).
    db_pages: Option<u32>,
}

/// Bytes of pages a store's [`PageCache`] holds at most.
const CACHE_BYTES: usize = 16 << 20;

impl PageCache {
    /// The cache, emptied if it was of another generation.
    fn for_generation(&mut self, generation: &str) -> &mut Self {
        if self.generation != generation {
            self.pages.clear();
            self.bytes = 0;
            self.db_pages = None;
            self.generation = generation.to_string();
        }
        self
    }

    fn get_mut(&mut self, n: u32, len: usize) -> Option<&mut [u8]> {
        self.pages
            .get_mut(&n)
            .filter(|p| p.len() == len)
            .map(Vec::as_mut_slice)
    }

    fn put(&mut self, n: u32, page: &[u8]) {
        if let Some(held) = self.pages.get_mut(&n)
            && held.len() == page.len()
        {
            held.copy_from_slice(page);
            return;
        }
        let mut freed = None;
        while self.bytes + page.len() > CACHE_BYTES {
            // Any page makes room: which one only changes what is stored
            // whole next.
            let Some(&victim) = self.pages.keys().next() else {
                return;
            };
            freed = self.remove(victim);
        }
        // The last page evicted holds this one if it is of its size (it
        // is, but after a change of page size): no allocation.
        let held = match freed {
            Some(mut buffer) if buffer.len() == page.len() => {
                buffer.copy_from_slice(page);
                buffer
            }
            _ => page.to_vec(),
        };
        self.bytes += page.len();
        if let Some(old) = self.pages.insert(n, held) {
            self.bytes -= old.len();
        }
    }

    fn remove(&mut self, n: u32) -> Option<Vec<u8>> {
        let old = self.pages.remove(&n)?;
        self.bytes -= old.len();
        Some(old)
    }

    /// Notes the store's length after a commit: when it shrank (or may
    /// have: the first commit the cache sees), pages past its end are
    /// forgotten, so one that comes back is stored whole (a snapshot taken
    /// meanwhile lacks it).
    fn resize(&mut self, db_pages: u32) {
        if self.db_pages.is_none_or(|b| db_pages < b) {
            let gone: Vec<u32> = self
                .pages
                .keys()
                .copied()
                .filter(|&n| n > db_pages)
                .collect();
            for n in gone {
                self.remove(n);
            }
        }
        self.db_pages = Some(db_pages);
    }
}

/// A segment being gathered: its contents, each commit's record written
/// as the commit is handed over.
#[derive(Debug)]
pub(crate) struct Segment {
    bytes: Vec<u8>,
}

impl Default for Segment {
    fn default() -> Self {
        Segment::new(Vec::new())
    }
}

impl Segment {
    /// An empty segment written into `buffer` (a sealed segment's, reused:
    /// gathering a second of commits then allocates nothing).
    pub(crate) fn new(mut buffer: Vec<u8>) -> Self {
        buffer.clear();
        buffer.extend_from_slice(MAGIC);
        Segment { bytes: buffer }
    }

    /// The bytes written.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends one commit's record: its number, time and pages, each page
    /// stored as what changed where `cache` (of the segment's
    /// `generation`) holds its version before, and left there as the last.
    pub(crate) fn push(
        &mut self,
        (seq, time_us): (u64, u64),
        commit: &Commit,
        cache: &mut PageCache,
        generation: &str,
    ) {
        let cache = cache.for_generation(generation);
        let out = &mut self.bytes;
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&time_us.to_be_bytes());
        out.extend_from_slice(&commit.page_size().to_be_bytes());
        out.extend_from_slice(&commit.db_pages().to_be_bytes());
        out.extend_from_slice(&commit.page_count().to_be_bytes());
        for (n, page) in commit.pages() {
            out.extend_from_slice(&n.to_be_bytes());
            match cache.get_mut(n, page.len()) {
                Some(before) => {
                    out.push(CHANGES);
                    // Page 1: see the module's comment.
                    let head = if n == 1 { HEADER_BYTES } else { 0 };
                    changes(before, page, head, out);
                }
                None => {
                    out.push(WHOLE);
                    out.extend_from_slice(page);
                    cache.put(n, page);
                }
            }
        }
        cache.resize(commit.db_pages());
    }

    /// The segment's contents.
    pub(crate) fn into_contents(self) -> Vec<u8> {
        self.bytes
    }
}

/// The contents of a segment of the records of `commits`, in order.
pub(crate) fn merge(commits: &[Logged]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(MAGIC.len() + commits.iter().map(|c| c.record.len()).sum::<usize>());
    out.extend_from_slice(MAGIC);
    for c in commits {
        out.extend_from_slice(c.record);
    }
    out
}

/// Words of equal bytes that end a run of changes (shorter gaps cost more
/// as a run's head than as bytes).
const GAP_WORDS: usize = 2;

/// Appends what changed from `before` to `now` (same size, a multiple of
/// 8, at least `head`): the count of runs, then each run, the first
/// covering the first `head` bytes (a multiple of 8) whether they changed
/// or not; and copies each run into `before`, which ends as `now` (only
/// the bytes that changed are written). Compared a word at a time, the
/// unchanged stretches between runs a block at a time; every run but the
/// head starts and ends with a byte that changed.
fn changes(before: &mut [u8], now: &[u8], head: usize, out: &mut Vec<u8>) {
    let words = now.len() / 8;
    let count_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let mut runs = 0u32;
    let head = head / 8;
    let mut i = 0;
    loop {
        // The head, if any, is the first run, changed or not.
        let is_head = runs == 0 && head > 0;
        if !is_head {
            i = first_difference(before, now, i);
        }
        if i >= words {
            break;
        }
        // A run: until GAP_WORDS equal words in a row, or the page ends.
        let start = i;
        let (mut end, mut equal) = ((i + 1).max(head), 0);
        i = end;
        // Word by word (as arrays: no bounds checks, one compare each).
        let (a, b) = (
            before[i * 8..].as_chunks::<8>().0,
            now[i * 8..].as_chunks::<8>().0,
        );
        for (x, y) in a.iter().zip(b) {
            if equal == GAP_WORDS {
                break;
            }
            i += 1;
            if x == y {
                equal += 1;
            } else {
                equal = 0;
                end = i;
            }
        }
        // Words are compared, bytes stored: the run's ends trimmed to the
        // bytes that differ (its first and last words each hold one),
        // but the head's start and length.
        let (mut from, mut to) = (start * 8, end * 8);
        if !is_head {
            while before[from] == now[from] {
                from += 1;
            }
        }
        let floor = if is_head { head * 8 } else { from };
        while to > floor && before[to - 1] == now[to - 1] {
            to -= 1;
        }
        out.extend_from_slice(&(from as u32).to_be_bytes());
        out.extend_from_slice(&((to - from) as u32).to_be_bytes());
        out.extend_from_slice(&now[from..to]);
        before[from..to].copy_from_slice(&now[from..to]);
        runs += 1;
    }
    out[count_at..count_at + 4].copy_from_slice(&runs.to_be_bytes());
}

/// The first 8-byte word from word `i` on where `a` and `b` (same size, a
/// multiple of 8) differ; their count of words if none. Most of a page is
/// unchanged: blocks of 32 bytes are compared first, as two 128-bit words
/// each (vector registers, no call).
fn first_difference(a: &[u8], b: &[u8], mut i: usize) -> usize {
    const BLOCK: usize = 32;
    let wide =
        |c: &[u8], at: usize| u128::from_ne_bytes(c[at..at + 16].try_into().expect("16 bytes"));
    let same = a[i * 8..]
        .chunks_exact(BLOCK)
        .zip(b[i * 8..].chunks_exact(BLOCK))
        .take_while(|(x, y)| (wide(x, 0) ^ wide(y, 0)) | (wide(x, 16) ^ wide(y, 16)) == 0)
        .count();
    i += same * (BLOCK / 8);
    let words = a.len() / 8;
    while i < words && a[i * 8..i * 8 + 8] == b[i * 8..i * 8 + 8] {
        i += 1;
    }
    i
}

/// Walks the runs [`changes`] wrote for a page of `len` bytes, handing
/// each to `each` (its offset and bytes); the bytes the runs take, or why
/// they do not fit the page.
fn walk_changes(len: usize, b: &[u8], mut each: impl FnMut(usize, &[u8])) -> Result<usize, String> {
    let word = |i: usize| -> Result<usize, String> {
        b.get(i..i + 4)
            .map(|w| u32::from_be_bytes(w.try_into().expect("4 bytes")) as usize)
            .ok_or_else(|| "cut short".to_string())
    };
    let runs = word(0)?;
    let mut at = 4;
    let mut done = 0;
    for _ in 0..runs {
        let (from, n) = (word(at)?, word(at + 4)?);
        at += 8;
        let to = from
            .checked_add(n)
            .filter(|&to| from >= done && to <= len)
            .ok_or_else(|| format!("a change at {from}..+{n} out of order or of the page"))?;
        each(from, b.get(at..at + n).ok_or("cut short")?);
        at += n;
        done = to;
    }
    Ok(at)
}

/// Reads a segment's commits; `Err` names what is wrong.
pub(crate) fn read(b: &[u8]) -> Result<Vec<Logged<'_>>, String> {
    let mut b = b
        .strip_prefix(MAGIC)
        .ok_or("not a log segment of this version")?;
    let mut out: Vec<Logged> = Vec::new();
    while !b.is_empty() {
        if b.len() < COMMIT_HEAD {
            return Err(format!("{} stray bytes at the end", b.len()));
        }
        let long = |i: usize| u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let word = |i: usize| u32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes"));
        let (seq, time_us) = (long(0), long(8));
        let (page_size, db_pages, count) = (word(16), word(20), word(24));
        if Commit::new(page_size, db_pages).is_none() {
            return Err(format!("commit {seq} has pages of {page_size} bytes"));
        }
        if let Some(prev) = out.last().map(|l| l.seq)
            && seq != prev + 1
        {
            return Err(format!("commit {seq} follows {prev}"));
        }
        let size = page_size as usize;
        let cut = || format!("commit {seq} cut short");
        let mut at = COMMIT_HEAD;
        let mut pages = Vec::new();
        for _ in 0..count {
            let head = b.get(at..at + PAGE_HEAD).ok_or_else(cut)?;
            let n = u32::from_be_bytes(head[..4].try_into().expect("4 bytes"));
            at += PAGE_HEAD;
            if n == 0 {
                return Err(format!("commit {seq} writes a page 0"));
            }
            let page = match head[4] {
                WHOLE => Page::Whole(b.get(at..at + size).ok_or_else(cut)?),
                CHANGES => {
                    let len = walk_changes(size, &b[at..], |_, _| {})
                        .map_err(|e| format!("commit {seq}, page {n}: {e}"))?;
                    Page::Changes(&b[at..at + len])
                }
                other => return Err(format!("commit {seq}, page {n}: unknown kind {other}")),
            };
            at += match page {
                Page::Whole(p) | Page::Changes(p) => p.len(),
            };
            pages.push((n, page));
        }
        out.push(Logged {
            seq,
            time_us,
            page_size,
            db_pages,
            pages,
            record: &b[..at],
        });
        b = &b[at..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A commit of 512-byte pages: each page a fill byte with one byte set
    /// by its number (pages that differ in a few places from their last
    /// version, as B-tree pages do).
    fn commit(pages: &[(u32, u8)], db_pages: u32) -> Commit {
        let mut c = Commit::new(512, db_pages).expect("a page size");
        for (n, fill) in pages {
            let mut page = [*fill; 512];
            page[usize::from(*fill) % 512] = n.to_be_bytes()[3];
            c.push_page(*n, &page);
        }
        c
    }

    /// Segments of `commits` (numbered from 1), cut at `cuts`, sealed one
    /// after another with one cache, as a store's backup does.
    fn segments(commits: &[Commit], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cache = PageCache::default();
        let mut out = Vec::new();
        let mut bounds: Vec<usize> = cuts
            .iter()
            .copied()
            .filter(|&c| c < commits.len())
            .collect();
        bounds.sort_unstable();
        bounds.dedup();
        bounds.push(commits.len());
        let mut from = 0;
        for to in bounds {
            if to <= from {
                continue;
            }
            let mut s = Segment::default();
            for (i, c) in commits[from..to].iter().enumerate() {
                s.push(((from + i + 1) as u64, 0), c, &mut cache, "g");
            }
            out.push(s.into_contents());
            from = to;
        }
        out
    }

    /// A store's pages, as a restore rebuilds them.
    type Store = HashMap<u32, Vec<u8>>;

    fn apply(store: &mut Store, c: &Commit) {
        for (n, p) in c.pages() {
            store.insert(n, p.to_vec());
        }
    }

    /// Replays `segments` over `store` (the state after commit `after`),
    /// checking each commit comes back as `commits` has it.
    fn replay(segments: &[Vec<u8>], commits: &[Commit], mut store: Store, after: u64) {
        let mut seq = 0;
        for s in segments {
            for l in read(s).unwrap() {
                seq += 1;
                assert_eq!(l.seq, seq);
                if l.seq <= after {
                    continue;
                }
                let c = l
                    .resolve("s", |n, page| {
                        Ok(store.get(&n).map(|p| page.copy_from_slice(p)).is_some())
                    })
                    .unwrap();
                assert_eq!(&c, &commits[seq as usize - 1], "commit {seq}");
                apply(&mut store, &c);
            }
        }
        assert_eq!(seq as usize, commits.len());
    }

    proptest! {
        #[test]
        fn commits_come_back_from_any_snapshot(
            commits in proptest::collection::vec(
                // Few page numbers, so pages come back in later commits
                // (and twice in one) and are stored as what changed.
                (proptest::collection::vec((1u32..8, any::<u8>()), 1..4), 1u32..200),
                1..10,
            ),
            cuts in proptest::collection::vec(0usize..10, 0..4),
            snapshot_after in 0usize..10,
            header_byte in 0usize..100,
        ) {
            let commits: Vec<Commit> = commits.iter().map(|(p, db)| commit(p, *db)).collect();
            let segs = segments(&commits, &cuts);
            replay(&segs, &commits, Store::new(), 0);
            // From a snapshot: the store after some commit, its page 1's
            // database header not byte for byte the logged one's (as
            // SQLite's backup rewrites it).
            let after = snapshot_after.min(commits.len());
            let mut store = Store::new();
            for c in &commits[..after] {
                apply(&mut store, c);
            }
            if let Some(p) = store.get_mut(&1) {
                p[header_byte] ^= 0xff;
            }
            replay(&segs, &commits, store, after as u64);
            // Merged, the records read back the same.
            let contents: Vec<Vec<Logged>> = segs.iter().map(|s| read(s).unwrap()).collect();
            let all: Vec<Logged> = contents.into_iter().flatten().collect();
            let merged = merge(&all);
            prop_assert_eq!(read(&merged).unwrap(), all);
            // Cut inside a commit: refused, not misread.
            let whole = &segs[0];
            for cut in [whole.len() - 1, 5, 2] {
                if cut < whole.len() {
                    prop_assert!(read(&whole[..cut]).is_err());
                }
            }
        }

        #[test]
        fn changes_rebuild_the_page(
            before in proptest::collection::vec(any::<u8>(), 256),
            edits in proptest::collection::vec((0usize..256, any::<u8>()), 0..12),
            head in prop_oneof![Just(0usize), Just(HEADER_BYTES)],
        ) {
            let mut now = before.clone();
            for (i, v) in edits {
                now[i] = v;
            }
            let mut out = Vec::new();
            let mut held = before.clone();
            changes(&mut held, &now, head, &mut out);
            prop_assert_eq!(&held, &now);
            let mut page = before.clone();
            let mut runs = Vec::new();
            let taken = walk_changes(256, &out, |at, bytes| {
                runs.push((at, bytes.len()));
                page[at..at + bytes.len()].copy_from_slice(bytes)
            });
            prop_assert_eq!(taken, Ok(out.len()));
            // The head is the first run's (or in it), changed or not.
            if head > 0 {
                prop_assert!(runs.first().is_some_and(|&(at, n)| at == 0 && n >= head));
            }
            // Past the head, a run starts and ends with a byte that changed.
            for &(at, n) in runs.iter().skip(usize::from(head > 0)) {
                prop_assert!(n > 0 && before[at] != now[at] && before[at + n - 1] != now[at + n - 1]);
            }
            // Nothing changed: no runs but the head.
            if before == now {
                let expected = if head > 0 { vec![(0, head)] } else { vec![] };
                prop_assert_eq!(runs, expected);
            }
            prop_assert_eq!(page, now);
        }
    }

    /// Two commits writing page `n` of a store of `n` pages, the second
    /// with byte `at` changed; the second version, and the two segments.
    fn two_versions(n: u32, at: usize) -> ([u8; 512], [Commit; 2], Vec<Vec<u8>>) {
        let mut v = [9u8; 512];
        let mut c1 = Commit::new(512, n).unwrap();
        c1.push_page(n, &v);
        v[at] = 10;
        let mut c2 = Commit::new(512, n).unwrap();
        c2.push_page(n, &v);
        let segs = segments(&[c1.clone(), c2.clone()], &[1]);
        (v, [c1, c2], segs)
    }

    /// A page's record of changes as `changes` writes it: the kind, the
    /// count of runs, then each run of `page` given as its bytes' offset
    /// and end.
    fn record_of(page: &[u8], runs: &[(usize, usize)]) -> Vec<u8> {
        let mut out = vec![CHANGES];
        out.extend_from_slice(&(runs.len() as u32).to_be_bytes());
        for &(from, to) in runs {
            out.extend_from_slice(&(from as u32).to_be_bytes());
            out.extend_from_slice(&((to - from) as u32).to_be_bytes());
            out.extend_from_slice(&page[from..to]);
        }
        out
    }

    #[test]
    fn a_page_seen_before_is_stored_as_what_changed_even_a_segment_later() {
        let (v, commits, segs) = two_versions(2, 100);
        // The second version: one run, of the byte that changed.
        assert!(segs[1].ends_with(&record_of(&v, &[(100, 101)])));
        replay(&segs, &commits, Store::new(), 0);
    }

    #[test]
    fn page_one_is_stored_as_changes_with_its_header_whole() {
        let (v, commits, segs) = two_versions(1, 300);
        // Two runs: the header, unchanged, and the byte that changed.
        let runs = record_of(&v, &[(0, HEADER_BYTES), (300, 301)]);
        assert!(segs[1].ends_with(&runs));
        // From a snapshot whose page 1 has another header: the commit
        // comes back as it was.
        let mut snapshot = Store::new();
        let mut p1 = commits[0].pages().next().unwrap().1.to_vec();
        p1[18] = 1;
        p1[24..28].copy_from_slice(&[1, 2, 3, 4]);
        snapshot.insert(1, p1);
        replay(&segs, &commits, snapshot, 1);
    }

    #[test]
    fn pages_past_a_shrink_are_stored_whole() {
        let whole = |s: &[u8]| {
            read(s).unwrap()[0]
                .pages
                .iter()
                .all(|(_, p)| matches!(p, Page::Whole(_)))
        };
        // Page 3, after the store shrank to 2 pages.
        let commits = [
            commit(&[(3, 1)], 3),
            commit(&[(2, 1)], 2),
            commit(&[(3, 2)], 3),
        ];
        let segs = segments(&commits, &[1, 2]);
        assert!(whole(&segs[2]));
        // A store without the page before: refused, not misread.
        let segs = segments(&[commit(&[(3, 1)], 3), commit(&[(3, 2)], 3)], &[1]);
        let err = read(&segs[1]).unwrap()[0]
            .resolve("s", |_, _| Ok(false))
            .unwrap_err();
        assert!(matches!(err, crate::BackupError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("page 3"), "{err}");
    }

    #[test]
    fn a_change_past_the_page_is_refused() {
        let segs = segments(&[commit(&[(2, 1)], 2), commit(&[(2, 2)], 2)], &[1]);
        let mut out = segs[1].clone();
        // The first run's offset (after the magic, the commit's head, the
        // page's number and kind, and the count of runs).
        let at = MAGIC.len() + COMMIT_HEAD + PAGE_HEAD + 4;
        out[at..at + 4].copy_from_slice(&600u32.to_be_bytes());
        let err = read(&out).unwrap_err();
        assert!(err.contains("out of order or of the page"), "{err}");
    }

    #[test]
    fn the_page_cache_stays_within_its_bound() {
        let mut cache = PageCache::default();
        let page = vec![7u8; 4096];
        for n in 1..=(2 * CACHE_BYTES / page.len()) as u32 {
            cache.for_generation("g").put(n, &page);
            assert!(cache.bytes <= CACHE_BYTES);
        }
        assert_eq!(
            cache.bytes,
            cache.pages.values().map(Vec::len).sum::<usize>()
        );
        assert_eq!(cache.bytes, CACHE_BYTES);
        // Another generation starts empty.
        assert!(cache.for_generation("h").pages.is_empty());
    }

    #[test]
    fn a_gap_in_numbering_is_refused() {
        let c = commit(&[(1, 1)], 1);
        let mut s = Segment::default();
        let mut cache = PageCache::default();
        s.push((1, 0), &c, &mut cache, "g");
        s.push((3, 0), &c, &mut cache, "g");
        assert!(read(&s.into_contents()).unwrap_err().contains("follows"));
    }

    #[test]
    fn other_formats_and_bad_pages_are_refused() {
        assert!(read(b"").unwrap_err().contains("version"));
        let mut out = segments(&[commit(&[(2, 1)], 2)], &[]).remove(0);
        out[0] = b'X';
        assert!(read(&out).unwrap_err().contains("version"));
        out[0] = MAGIC[0];
        let kind = MAGIC.len() + COMMIT_HEAD + 4;
        out[kind] = 7;
        assert!(read(&out).unwrap_err().contains("unknown kind 7"));
        out[MAGIC.len() + 16..MAGIC.len() + 20].copy_from_slice(&1000u32.to_be_bytes());
        assert!(read(&out).unwrap_err().contains("1000 bytes"));
    }
}
