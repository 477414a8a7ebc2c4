//! Two repository snapshots compared without reading every byte of both, in memory that does
//! not grow with the number of bulk data files. Archive content (`CONTENT/`, `CONTROL/`) is
//! fingerprinted as for an archive (`Fingerprints`); a bulk data member (`DATA/<PART>/`) by its
//! chunk list: equal lists are equal bytes, other lists of equal size are read and compared
//! (`SameBytes`: another build may have cut the same bytes otherwise).
//!
//! A snapshot holds each part's bulk data in walk order (`parent::walk_order`), so the older
//! snapshot's go to a spill file per part and the newer one's are compared as they stream
//! past: a merge of two sorted streams, holding one print of each plus the changes found.
//! A member out of that order (a snapshot of an older build) is held in memory instead and
//! compared at the end, where the merge's answer for its path is replaced: never a wrong one.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::diff::spill::{DataPrint, PrintSpill};
use crate::diff::{
    depot_product, depot_products, member_changes, meta_of, product_changes, table_changes, Change,
    Diff, Fingerprints, MemberChange,
};
use crate::error::{Error, Result};
use crate::layout::DataPart;
use crate::member::{Member, MemberKind};
use crate::parent::{walk_order, ChunkHash};

/// Whether two chunk lists hold the same bytes; the third argument names the member. The
/// repository answers (`store::SameBytes`); equal lists never reach it.
pub(crate) type SameBytes<'a> = dyn FnMut(&[ChunkHash], &[ChunkHash], &str) -> Result<bool> + 'a;

/// The older snapshot's prints: archive content in a map, bulk data spilled per part.
pub(crate) struct SnapshotPrints {
    archive: Fingerprints,
    spill_dir: Option<PathBuf>,
    spills: HashMap<DataPart, PrintSpill>,
    /// Bulk data that came out of walk order.
    held: HashMap<String, DataPrint>,
    products: BTreeSet<String>,
}

/// A bulk data member's print, or None for archive content.
fn data_print(m: &Member, chunks: &[ChunkHash]) -> Option<(DataPart, DataPrint)> {
    let part = DataPart::of(&m.path)?;
    Some((
        part,
        DataPrint {
            path: m.path.clone(),
            meta: meta_of(m),
            dir: m.kind == MemberKind::Dir,
            size: m.size,
            chunks: chunks.to_vec(),
        },
    ))
}

/// Archive content's print, from its bytes.
fn add_archive(f: &mut Fingerprints, m: &Member, content: Option<&mut dyn Read>) -> Result<()> {
    let content = content.ok_or_else(|| {
        Error::Invalid(format!("diff: member {} came without its content", m.path))
    })?;
    crate::sink::MemberSink::add(f, m, content)
}

impl SnapshotPrints {
    /// Spill files go to `spill_dir` (None: the system's temporary directory).
    pub(crate) fn new(spill_dir: Option<&Path>) -> SnapshotPrints {
        SnapshotPrints {
            archive: Fingerprints::default(),
            spill_dir: spill_dir.map(Path::to_path_buf),
            spills: HashMap::new(),
            held: HashMap::new(),
            products: BTreeSet::new(),
        }
    }

    /// Whether a member's bytes are needed (archive content); bulk data's chunks suffice.
    pub(crate) fn wants_content(m: &Member) -> bool {
        DataPart::of(&m.path).is_none()
    }

    /// Adds a member of the snapshot, in the snapshot's order, with its chunks and, when
    /// `wants_content`, its bytes.
    pub(crate) fn add(
        &mut self,
        m: &Member,
        chunks: &[ChunkHash],
        content: Option<&mut dyn Read>,
    ) -> Result<()> {
        let Some((part, print)) = data_print(m, chunks) else {
            return add_archive(&mut self.archive, m, content);
        };
        if let Some(p) = depot_product(&print.path) {
            self.products.insert(p.to_string());
        }
        let spill = match self.spills.entry(part) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(PrintSpill::create(self.spill_dir.as_deref())?)
            }
        };
        // A path held once is held for good: a later copy of it (never seen in a snapshot,
        // but then the last one counts, as in a map) can only be out of order too.
        if self.held.contains_key(&print.path) || !spill.append(&print)? {
            self.held.insert(print.path.clone(), print);
        }
        Ok(())
    }

    /// The number of bulk data prints held in memory (those out of walk order).
    #[cfg(test)]
    pub(crate) fn held_in_memory(&self) -> usize {
        self.held.len()
    }

    /// Ready to stream the newer snapshot against this one.
    pub(crate) fn against(mut self) -> Result<Comparison> {
        for s in self.spills.values_mut() {
            s.rewind()?;
        }
        Ok(Comparison {
            a: self,
            b_archive: Fingerprints::default(),
            b_products: BTreeSet::new(),
            b_last: HashMap::new(),
            b_held: HashMap::new(),
            changes: BTreeMap::new(),
        })
    }
}

/// The newer snapshot streamed against the older one's prints.
pub(crate) struct Comparison {
    a: SnapshotPrints,
    b_archive: Fingerprints,
    b_products: BTreeSet<String>,
    /// Per part, the last bulk data path of the newer snapshot merged in walk order.
    b_last: HashMap<DataPart, String>,
    /// The newer snapshot's bulk data compared at the end: out of walk order, or at a path
    /// the older snapshot holds in memory.
    b_held: HashMap<String, DataPrint>,
    /// Bulk data changes found so far: path -> (change, a directory).
    changes: BTreeMap<String, (Change, bool)>,
}

/// How `b` differs from `a` (either absent: added or removed).
fn change_of(
    a: Option<&DataPrint>,
    b: Option<&DataPrint>,
    same: &mut SameBytes<'_>,
) -> Result<Option<(Change, bool)>> {
    Ok(match (a, b) {
        (None, None) => None,
        (Some(a), None) => Some((Change::Removed, a.dir)),
        (None, Some(b)) => Some((Change::Added, b.dir)),
        (Some(a), Some(b)) => {
            let same_bytes =
                a.chunks == b.chunks || (a.size == b.size && same(&a.chunks, &b.chunks, &b.path)?);
            let dir = a.dir || b.dir;
            if !same_bytes {
                Some((Change::Changed, dir))
            } else if a.meta != b.meta {
                Some((Change::Metadata, dir))
            } else {
                None
            }
        }
    })
}

impl Comparison {
    /// Adds a member of the newer snapshot, as `SnapshotPrints::add`; `same` compares bytes.
    pub(crate) fn add(
        &mut self,
        m: &Member,
        chunks: &[ChunkHash],
        content: Option<&mut dyn Read>,
        same: &mut SameBytes<'_>,
    ) -> Result<()> {
        let Some((part, b)) = data_print(m, chunks) else {
            return add_archive(&mut self.b_archive, m, content);
        };
        if let Some(p) = depot_product(&b.path) {
            self.b_products.insert(p.to_string());
        }
        let in_order = self
            .b_last
            .get(&part)
            .is_none_or(|l| walk_order(l, &b.path) == Ordering::Less);
        if !in_order || self.b_held.contains_key(&b.path) || self.a.held.contains_key(&b.path) {
            self.b_held.insert(b.path.clone(), b);
            return Ok(());
        }
        self.b_last.insert(part, b.path.clone());
        let a = match self.a.spills.get_mut(&part) {
            Some(spill) => {
                take_before(spill, &b.path, &self.a.held, &mut self.changes)?;
                match spill.peek()? {
                    Some(a) if a.path == b.path => spill.next()?,
                    _ => None,
                }
            }
            None => None,
        };
        if let Some(c) = change_of(a.as_ref(), Some(&b), same)? {
            self.changes.insert(b.path, c);
        }
        Ok(())
    }

    /// The differences, as `diff::compare` gives them for two archives.
    pub(crate) fn finish(mut self, same: &mut SameBytes<'_>) -> Result<Diff> {
        for spill in self.a.spills.values_mut() {
            take_before(spill, "", &self.a.held, &mut self.changes)?;
        }
        self.settle_held(same)?;
        let mut members = member_changes(&self.a.archive, &self.b_archive);
        members.extend(
            self.changes
                .iter()
                .map(|(path, &(change, dir))| MemberChange::new(change, path, dir)),
        );
        members.sort_by(|x, y| x.member.cmp(&y.member));
        let in_a: BTreeSet<&str> = depot_products(&self.a.archive)
            .into_iter()
            .chain(self.a.products.iter().map(String::as_str))
            .collect();
        let in_b: BTreeSet<&str> = depot_products(&self.b_archive)
            .into_iter()
            .chain(self.b_products.iter().map(String::as_str))
            .collect();
        let products = product_changes(&in_a, &in_b, &members);
        Ok(Diff {
            members,
            tables: table_changes(&self.a.archive, &self.b_archive),
            products,
        })
    }

    /// Compares the paths held in memory on either side, replacing what the merge said of
    /// them. The older snapshot's spilled print of a path the newer one held is found in one
    /// more pass over its spill.
    fn settle_held(&mut self, same: &mut SameBytes<'_>) -> Result<()> {
        let mut wanted: HashMap<DataPart, Vec<&str>> = HashMap::new();
        for path in self.b_held.keys().filter(|p| !self.a.held.contains_key(*p)) {
            if let Some(part) = DataPart::of(path) {
                wanted.entry(part).or_default().push(path);
            }
        }
        let mut spilled: HashMap<String, DataPrint> = HashMap::new();
        for (part, mut paths) in wanted {
            let Some(spill) = self.a.spills.get_mut(&part) else {
                continue;
            };
            paths.sort_by(|x, y| walk_order(x, y));
            spill.rewind()?;
            for path in paths {
                while let Some(a) = spill.peek()? {
                    match walk_order(&a.path, path) {
                        Ordering::Less => {
                            spill.next()?;
                        }
                        Ordering::Equal => {
                            let a = spill.next()?.expect("peeked");
                            spilled.insert(a.path.clone(), a);
                            break;
                        }
                        Ordering::Greater => break,
                    }
                }
            }
        }
        let paths: HashSet<&String> = self.a.held.keys().chain(self.b_held.keys()).collect();
        for path in paths {
            let a = self.a.held.get(path).or_else(|| spilled.get(path));
            self.changes.remove(path);
            if let Some(c) = change_of(a, self.b_held.get(path), same)? {
                self.changes.insert(path.clone(), c);
            }
        }
        Ok(())
    }
}

/// Takes the older snapshot's prints before `path` in walk order (all when `path` is empty)
/// off `spill`: the newer snapshot does not have them, so they are removed, unless held (those
/// are settled at the end).
fn take_before(
    spill: &mut PrintSpill,
    path: &str,
    held: &HashMap<String, DataPrint>,
    changes: &mut BTreeMap<String, (Change, bool)>,
) -> Result<()> {
    while let Some(a) = spill.peek()? {
        if !path.is_empty() && walk_order(&a.path, path) != Ordering::Less {
            break;
        }
        let a = spill.next()?.expect("peeked");
        if !held.contains_key(&a.path) {
            changes.insert(a.path, (Change::Removed, a.dir));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::compare;
    use crate::sink::MemberSink;

    /// A member of a test snapshot: path, kind, bytes, mode.
    type Spec = (&'static str, MemberKind, &'static [u8], u32);

    /// A test repository's chunks: the bytes behind each chunk hash.
    #[derive(Default)]
    struct Chunks(HashMap<ChunkHash, Vec<u8>>);

    impl Chunks {
        /// `bytes` cut every `cut` bytes.
        fn cut(&mut self, bytes: &[u8], cut: usize) -> Vec<ChunkHash> {
            bytes
                .chunks(cut)
                .map(|c| {
                    let h = *blake3::hash(c).as_bytes();
                    self.0.insert(h, c.to_vec());
                    h
                })
                .collect()
        }

        fn bytes(&self, list: &[ChunkHash]) -> Vec<u8> {
            list.iter().flat_map(|h| self.0[h].clone()).collect()
        }
    }

    fn member(&(path, ref kind, bytes, mode): &Spec) -> Member {
        let mut m = Member::control(path, bytes.len() as u64);
        m.kind = kind.clone();
        m.mode = mode;
        m
    }

    /// What the archive way says (every byte read into a map) and what the streaming way
    /// says, with the older snapshot cut every `cut_a` bytes and the newer every `cut_b`;
    /// also how many comparisons of bytes the streaming way needed.
    fn both_ways(a: &[Spec], b: &[Spec], cut_a: usize, cut_b: usize) -> (Diff, Diff, usize) {
        let reference = |specs: &[Spec]| {
            let mut f = Fingerprints::default();
            for s in specs {
                f.add(&member(s), &mut &s.2[..]).unwrap();
            }
            f
        };
        let want = compare(&reference(a), &reference(b));
        let mut chunks = Chunks::default();
        let dir = tempfile::tempdir().unwrap();
        let mut prints = SnapshotPrints::new(Some(dir.path()));
        for s in a {
            let list = chunks.cut(s.2, cut_a);
            let (m, mut r) = (member(s), s.2);
            let content = SnapshotPrints::wants_content(&m).then_some(&mut r as &mut dyn Read);
            prints.add(&m, &list, content).unwrap();
        }
        let mut cmp = prints.against().unwrap();
        let mut lists = Vec::new();
        for s in b {
            lists.push(chunks.cut(s.2, cut_b));
        }
        let mut compared = 0;
        let mut same = |x: &[ChunkHash], y: &[ChunkHash], _: &str| {
            assert_ne!(x, y, "equal lists are equal without a read");
            compared += 1;
            Ok(chunks.bytes(x) == chunks.bytes(y))
        };
        for (s, list) in b.iter().zip(&lists) {
            let (m, mut r) = (member(s), s.2);
            let content = SnapshotPrints::wants_content(&m).then_some(&mut r as &mut dyn Read);
            cmp.add(&m, list, content, &mut same).unwrap();
        }
        let got = cmp.finish(&mut same).unwrap();
        (want, got, compared)
    }

    fn shown(d: &Diff) -> String {
        let mut out = String::new();
        for m in &d.members {
            out.push_str(&format!("{:?} {} {}\n", m.change, m.member, m.dir));
        }
        for p in &d.products {
            out.push_str(&format!(
                "{:?} {} {} {} {}\n",
                p.change, p.product, p.added, p.removed, p.changed
            ));
        }
        for t in &d.tables {
            out.push_str(&format!("{:?} {} {}\n", t.change, t.dump, t.table));
        }
        out
    }

    use MemberKind::{Dir, File};

    /// The older night: a depot in walk order (names that sort differently by component
    /// than as strings: `a`, `a/x`, `a-b`, `a.b`), a workbench, archive content.
    const A: &[Spec] = &[
        ("CONTENT/CONF/opsi.conf", File, b"conf 1", 0o644),
        ("DATA/DEPOT", Dir, b"", 0o755),
        ("DATA/DEPOT/a", Dir, b"", 0o755),
        ("DATA/DEPOT/a/x", File, b"ax same", 0o644),
        ("DATA/DEPOT/a/y", Dir, b"", 0o755),
        ("DATA/DEPOT/a/y/deep", File, b"gone at depth", 0o644),
        ("DATA/DEPOT/a/z", File, b"recut, same bytes", 0o644),
        ("DATA/DEPOT/a-b", Dir, b"", 0o755),
        ("DATA/DEPOT/a-b/f", File, b"same size AAAA", 0o644),
        ("DATA/DEPOT/a.b", Dir, b"", 0o755),
        ("DATA/DEPOT/a.b/f", File, b"mode changes", 0o644),
        ("DATA/DEPOT/old", Dir, b"", 0o755),
        ("DATA/DEPOT/old/setup.exe", File, b"removed product", 0o644),
        ("DATA/WORKBENCH", Dir, b"", 0o755),
        ("DATA/WORKBENCH/p/f", File, b"workbench", 0o644),
        ("CONTROL/checksums", File, b"1", 0o644),
    ];

    /// The newer night: added and removed at several depths, a file re-cut with the same
    /// bytes, one of the same size with other bytes, a mode change, a new product.
    const B: &[Spec] = &[
        ("CONTENT/CONF/opsi.conf", File, b"conf 2", 0o644),
        ("DATA/DEPOT", Dir, b"", 0o755),
        ("DATA/DEPOT/a", Dir, b"", 0o755),
        ("DATA/DEPOT/a/w", File, b"added before", 0o644),
        ("DATA/DEPOT/a/x", File, b"ax same", 0o644),
        ("DATA/DEPOT/a/x-1", File, b"added after", 0o644),
        ("DATA/DEPOT/a/y", Dir, b"", 0o755),
        ("DATA/DEPOT/a/z", File, b"recut, same bytes", 0o644),
        ("DATA/DEPOT/a-b", Dir, b"", 0o755),
        ("DATA/DEPOT/a-b/f", File, b"same size BBBB", 0o644),
        ("DATA/DEPOT/a-b/g/h/i", File, b"added deep", 0o644),
        ("DATA/DEPOT/a.b", Dir, b"", 0o755),
        ("DATA/DEPOT/a.b/f", File, b"mode changes", 0o600),
        ("DATA/DEPOT/new", Dir, b"", 0o755),
        ("DATA/DEPOT/new/setup.exe", File, b"added product", 0o644),
        ("DATA/TFTP/boot", File, b"new part", 0o644),
        ("DATA/WORKBENCH", Dir, b"", 0o755),
        ("DATA/WORKBENCH/p/f", File, b"workbench", 0o644),
        ("CONTROL/checksums", File, b"2", 0o644),
    ];

    /// Sorted streams merged: the same answer as reading every byte into maps, whether the
    /// two nights cut their files alike or not; bytes are compared only where two lists of
    /// equal size differ.
    #[test]
    fn the_merge_answers_as_the_maps_do() {
        // Files of the same size in both: a/x, a/z, a-b/f, a.b/f, WORKBENCH/p/f; cut alike,
        // only a-b/f (other bytes) has another list.
        for (cut_a, cut_b, compares) in [(4, 4, 1), (4, 5, 5), (1000, 3, 5)] {
            let (want, got, compared) = both_ways(A, B, cut_a, cut_b);
            assert_eq!(shown(&got), shown(&want), "cut {cut_a}/{cut_b}");
            assert_eq!(compared, compares, "cut {cut_a}/{cut_b}");
        }
        let (want, _, _) = both_ways(A, B, 4, 4);
        let text = shown(&want);
        for line in [
            "Added DATA/DEPOT/a/w false",
            "Added DATA/DEPOT/a/x-1 false",
            "Removed DATA/DEPOT/a/y/deep false",
            "Changed DATA/DEPOT/a-b/f false",
            "Added DATA/DEPOT/a-b/g/h/i false",
            "Metadata DATA/DEPOT/a.b/f false",
            "Added DATA/TFTP/boot false",
            "Changed a 2 1 0",
            "Added new 1 0 0",
            "Removed old 0 1 0",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        assert!(
            !text.contains("a/z") && !text.contains("WORKBENCH"),
            "{text}"
        );
    }

    /// Snapshots of an older build, bulk data in another order: what breaks the order is
    /// held, and the answer is still the maps' answer, on either side or both.
    #[test]
    fn out_of_order_snapshots_answer_as_the_maps_do() {
        let rev = |s: &[Spec]| -> Vec<Spec> { s.iter().rev().cloned().collect() };
        let swapped = |s: &[Spec]| -> Vec<Spec> {
            let mut v = s.to_vec();
            let n = v.len();
            v.swap(3, n - 3);
            v.swap(5, 9);
            v
        };
        for (a, b) in [
            (rev(A), B.to_vec()),
            (A.to_vec(), rev(B)),
            (rev(A), rev(B)),
            (swapped(A), B.to_vec()),
            (A.to_vec(), swapped(B)),
            (swapped(A), swapped(B)),
            (swapped(B), swapped(A)),
            (rev(B), A.to_vec()),
        ] {
            for (cut_a, cut_b) in [(4, 4), (3, 7)] {
                let (want, got, _) = both_ways(&a, &b, cut_a, cut_b);
                assert_eq!(shown(&got), shown(&want));
            }
        }
    }

    /// In walk order nothing of the bulk data is held; out of it, only what breaks it.
    #[test]
    fn only_what_breaks_the_order_is_held() {
        let held = |specs: &[Spec]| {
            let mut p = SnapshotPrints::new(None);
            for s in specs {
                let (m, mut r) = (member(s), s.2);
                let content = SnapshotPrints::wants_content(&m).then_some(&mut r as &mut dyn Read);
                p.add(&m, &[], content).unwrap();
            }
            p.held_in_memory()
        };
        assert_eq!(held(A), 0);
        assert_eq!(held(B), 0);
        let mut v = A.to_vec();
        v.swap(3, 4); // a/y before a/x
        assert_eq!(held(&v), 1);
    }
}
