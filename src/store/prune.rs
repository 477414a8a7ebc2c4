//! Deleting data: `forget` removes snapshots, `prune` removes the chunks no snapshot needs any
//! more by deleting packs that hold none and rewriting ("repacking") packs that are mostly
//! garbage. Both hold the exclusive lock. Spec: `store-format/README.md`, section "Forgetting
//! and pruning", which gives the order of every step and what a crash at each leaves behind.

use std::collections::{BTreeSet, HashMap, HashSet};

use rusqlite::Connection;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::chunker::ChunkId;
use crate::store::config::ChunkerParams;
use crate::store::index::{self, SqlContext};
use crate::store::lock::RepoLock;
use crate::store::pack::{self, TrailerLayout};
use crate::store::packer::PackDone;
use crate::store::storage::{pack_key, snapshot_key, Storage};
use crate::store::{crash_point, recovery, repack};

/// What `Repository::prune` is asked to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PruneOptions {
    /// Only compute and report what would be done; takes the shared lock and changes nothing.
    pub dry_run: bool,
    /// A pack that holds unused data is rewritten when its used bytes are below this fraction
    /// of its size (0.5: packs that are more than half garbage). 0 never rewrites; packs with
    /// no used chunk at all are always deleted.
    pub repack_threshold: f64,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            repack_threshold: 0.5,
        }
    }
}

/// What `Repository::prune` did (or, with `dry_run`, would do: the byte figures of repacked
/// packs are then estimates).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    /// Snapshots whose chunks were kept.
    pub snapshots: u64,
    pub packs_before: u64,
    /// Packs deleted because no snapshot uses any chunk in them.
    pub packs_deleted: u64,
    /// Packs rewritten (their used chunks copied into new packs) and then deleted.
    pub packs_repacked: u64,
    /// New packs written by the repacking.
    pub packs_written: u64,
    pub packs_after: u64,
    /// Chunks some snapshot uses.
    pub chunks_used: u64,
    /// Chunk rows removed from the index (chunks no snapshot uses).
    pub chunks_deleted: u64,
    /// Bytes of all pack files before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// `bytes_before - bytes_after`.
    pub bytes_freed: u64,
    /// Bytes of the new packs.
    pub bytes_written: u64,
    /// Unused bytes (estimated) left in packs that were not worth rewriting.
    pub unused_bytes_kept: u64,
    /// Unfinished uploads of killed writers aborted (object storage's multipart uploads).
    pub uploads_aborted: u64,
}

/// Removes the snapshots `names` (full ids): their index rows in one transaction, then their
/// files. The caller holds the exclusive lock. Returns how many were removed.
pub(crate) fn forget(
    conn: &mut Connection,
    storage: &dyn Storage,
    names: &[String],
    _lock: &RepoLock,
) -> Result<u64> {
    let names: BTreeSet<&String> = names.iter().collect();
    let tx = index::immediate(conn)?;
    for name in &names {
        let row = index::snapshot_row(&tx, name)?;
        index::delete_snapshot(&tx, row)?;
    }
    crash_point("forget-index-before-commit");
    tx.commit().sql()?;
    crash_point("forget-index-committed");
    for name in &names {
        storage.remove(&snapshot_key(name))?;
        crash_point("forget-file-removed");
    }
    storage.flush_removals("snapshots/")?;
    Ok(names.len() as u64)
}

/// One bit per chunk row id.
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn set(&mut self, i: i64) -> bool {
        match usize::try_from(i).ok().filter(|i| i / 64 < self.0.len()) {
            Some(i) => {
                self.0[i / 64] |= 1 << (i % 64);
                true
            }
            None => false,
        }
    }
    fn get(&self, i: i64) -> bool {
        usize::try_from(i)
            .ok()
            .and_then(|i| self.0.get(i / 64).map(|w| w & (1 << (i % 64)) != 0))
            .unwrap_or(false)
    }
    fn count(&self) -> u64 {
        self.0.iter().map(|w| u64::from(w.count_ones())).sum()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fate {
    Keep,
    Delete,
    Repack,
}

struct PackPlan {
    id: i64,
    name: String,
    size: u64,
    /// Estimated stored bytes of used chunks.
    used: f64,
    /// Whether the pack holds any byte no chunk row of a used chunk points to.
    unused: bool,
    fate: Fate,
}

/// The used chunks and what becomes of every pack.
struct Plan {
    used: Bits,
    unused_rows: Vec<i64>,
    snapshots: u64,
    packs: Vec<PackPlan>,
}

/// Marks every chunk row some snapshot uses and decides, per pack, delete / repack / keep.
fn plan(conn: &Connection, threshold: f64) -> Result<Plan> {
    let (used, snapshots) = mark_used(conn)?;
    let (unused_rows, group_used) = sort_chunk_rows(conn, &used)?;
    let per_pack = pack_use(conn, &group_used)?;
    let mut packs = Vec::new();
    index::for_each_pack(conn, |id, name, size| {
        let (used, unused) = per_pack.get(&id).copied().unwrap_or((0.0, true));
        packs.push(PackPlan {
            id,
            name,
            size,
            used,
            unused,
            fate: fate(used, unused, size, threshold),
        });
        Ok(())
    })?;
    Ok(Plan {
        used,
        unused_rows,
        snapshots,
        packs,
    })
}

/// A snapshot names a chunk row the index does not hold.
fn missing() -> Error {
    Error::Corrupt(
        "index: a snapshot names a chunk the index does not hold; run `rebuild-index` \
         before pruning"
            .into(),
    )
}

/// The chunk rows some snapshot uses (its members', its metadata stream's and the reference
/// chunks of their delta groups), and how many snapshots there are.
fn mark_used(conn: &Connection) -> Result<(Bits, u64)> {
    let max = index::last_chunk_row(conn)?;
    let mut used = Bits::new(max as usize + 1);
    let snapshot_rows = index::snapshot_rows(conn)?;
    for &row in &snapshot_rows {
        index::for_each_chunk_list(conn, row, |ids| {
            for id in ids {
                if !used.set(id) {
                    return Err(missing());
                }
            }
            Ok(())
        })?;
        // The chunks of the snapshot's metadata stream are used like its members' chunks.
        for id in index::meta_chunk_rows(conn, row)? {
            if !used.set(id) {
                return Err(missing());
            }
        }
    }
    mark_references(conn, &mut used).map_err(|e| match e {
        Error::Corrupt(_) => missing(),
        e => e,
    })?;
    Ok((used, snapshot_rows.len() as u64))
}

/// One scan of the chunk rows: the unused ones, and per group the plain bytes of its used
/// chunks. Every used row must be found.
fn sort_chunk_rows(conn: &Connection, used: &Bits) -> Result<(Vec<i64>, HashMap<i64, u64>)> {
    let mut group_used: HashMap<i64, u64> = HashMap::new();
    let mut unused_rows = Vec::new();
    let mut found = 0u64;
    index::for_each_chunk_row(conn, |id, grp, len| {
        if used.get(id) {
            found += 1;
            *group_used.entry(grp).or_default() += len;
        } else {
            unused_rows.push(id);
        }
        Ok(())
    })?;
    if found != used.count() {
        return Err(missing());
    }
    Ok((unused_rows, group_used))
}

/// Per pack row: estimated stored bytes of used chunks, and whether anything is unused.
fn pack_use(
    conn: &Connection,
    group_used: &HashMap<i64, u64>,
) -> Result<HashMap<i64, (f64, bool)>> {
    let mut per_pack: HashMap<i64, (f64, bool)> = HashMap::new();
    index::for_each_group(conn, |id, pack, stored, plain| {
        let u = group_used.get(&id).copied().unwrap_or(0);
        let e = per_pack.entry(pack).or_insert((0.0, false));
        if plain > 0 {
            e.0 += stored as f64 * u as f64 / plain as f64;
        }
        e.1 |= u < plain;
        Ok(())
    })?;
    Ok(per_pack)
}

/// What becomes of a pack of `size` bytes whose used chunks take about `used` of them.
fn fate(used: f64, unused: bool, size: u64, threshold: f64) -> Fate {
    if used == 0.0 {
        Fate::Delete
    } else if unused && used < threshold * size as f64 {
        Fate::Repack
    } else {
        Fate::Keep
    }
}

/// Marks the reference chunks of every delta group that holds a used chunk as used too:
/// reading that group needs them. Repeats until nothing new is marked (references are in
/// plain groups, so one round usually suffices).
fn mark_references(conn: &Connection, used: &mut Bits) -> Result<()> {
    let delta = index::delta_groups(conn)?;
    if delta.is_empty() {
        return Ok(());
    }
    // Delta groups holding a used chunk: one scan of the chunks.
    let mut todo: Vec<i64> = Vec::new();
    index::for_each_chunk_row(conn, |id, grp, _| {
        if used.get(id) && delta.contains_key(&grp) {
            todo.push(grp);
        }
        Ok(())
    })?;
    let mut done: HashSet<i64> = HashSet::new();
    while let Some(grp) = todo.pop() {
        if !done.insert(grp) {
            continue;
        }
        for r in delta[&grp].chunks(32) {
            let id: ChunkId = r
                .try_into()
                .map_err(|_| Error::Corrupt("damaged reference list".into()))?;
            let (row, its) = index::chunk_row_and_group(conn, &id)?
                .ok_or_else(|| Error::Corrupt("reference chunk not indexed".into()))?;
            if used.get(row) {
                continue;
            }
            if !used.set(row) {
                return Err(Error::Corrupt("reference chunk row out of range".into()));
            }
            // A reference in a delta group itself (a copy left by concurrent writers).
            if delta.contains_key(&its) {
                todo.push(its);
            }
        }
    }
    Ok(())
}

/// Runs prune (spec: "Forgetting and pruning"). With `dry_run` the caller holds the shared
/// lock, otherwise the exclusive one.
pub(crate) fn prune(
    conn: &mut Connection,
    storage: &dyn Storage,
    params: &ChunkerParams,
    layout: TrailerLayout,
    opts: PruneOptions,
    lock: &RepoLock,
) -> Result<PruneReport> {
    if !opts.dry_run {
        // Step 1: every durable snapshot file and pack is in the index, tmp/ is empty.
        recover_first(conn, storage, lock)?;
    }
    // Step 2: the plan.
    let plan = plan(conn, opts.repack_threshold)?;
    let mut report = PruneReport::planned(&plan, opts.dry_run);
    if opts.dry_run {
        report.estimate(&plan, params);
        return Ok(report);
    }
    crash_point("prune-planned");
    if report.packs_deleted + report.packs_repacked == 0 && plan.unused_rows.is_empty() {
        report.bytes_after = report.bytes_before;
        report.packs_after = report.packs_before;
        return Ok(report);
    }
    // Step 3: new packs, durable.
    let to_repack: Vec<i64> = plan
        .packs
        .iter()
        .filter(|p| p.fate == Fate::Repack)
        .map(|p| p.id)
        .collect();
    let new = repack::repack(conn, storage, params, layout, &to_repack, |id| {
        plan.used.get(id)
    })?;
    crash_point("prune-repacked");
    report.packs_written = new.len() as u64;
    report.bytes_written = new.iter().map(|p| p.size).sum();
    // Step 4: one transaction.
    let dropped: Vec<&PackPlan> = plan.packs.iter().filter(|p| p.fate != Fate::Keep).collect();
    let new_names: HashSet<&str> = new.iter().map(|p| p.name.as_str()).collect();
    commit_index(conn, storage, &plan.unused_rows, &new, &dropped, &new_names)?;
    // Step 5: the files no index row references any more.
    remove_dropped_packs(storage, &dropped, &new_names)?;
    let (packs_after, bytes_after) = index::pack_totals(conn)?;
    report.packs_after = packs_after;
    report.bytes_after = bytes_after;
    report.bytes_freed = report.bytes_before.saturating_sub(report.bytes_after);
    Ok(report)
}

/// Step 1: recovery, refusing to prune when a snapshot file cannot be indexed (its chunks
/// would look unused).
fn recover_first(conn: &mut Connection, storage: &dyn Storage, lock: &RepoLock) -> Result<()> {
    let rec = recovery::recover(storage, conn, lock)?;
    let bad: Vec<&String> = rec
        .unreadable
        .iter()
        .filter(|u| u.starts_with("snapshot "))
        .collect();
    if !bad.is_empty() {
        return Err(Error::Repository(format!(
            "prune refused: snapshot files that cannot be indexed would lose their data: {}; \
             check them with `verify` and move them out of snapshots/ before pruning",
            bad.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        )));
    }
    Ok(())
}

impl PruneReport {
    /// What the plan says: the figures known before anything is written.
    fn planned(plan: &Plan, dry_run: bool) -> PruneReport {
        let mut report = PruneReport {
            dry_run,
            snapshots: plan.snapshots,
            packs_before: plan.packs.len() as u64,
            chunks_used: plan.used.count(),
            chunks_deleted: plan.unused_rows.len() as u64,
            bytes_before: plan.packs.iter().map(|p| p.size).sum(),
            ..PruneReport::default()
        };
        for p in &plan.packs {
            match p.fate {
                Fate::Delete => report.packs_deleted += 1,
                Fate::Repack => report.packs_repacked += 1,
                Fate::Keep if p.unused => {
                    report.unused_bytes_kept += p.size.saturating_sub(p.used as u64)
                }
                Fate::Keep => {}
            }
        }
        report
    }

    /// A dry run's estimate of the figures the repacking would give.
    fn estimate(&mut self, plan: &Plan, params: &ChunkerParams) {
        let repacked: f64 = plan
            .packs
            .iter()
            .filter(|p| p.fate == Fate::Repack)
            .map(|p| p.used)
            .sum();
        self.bytes_written = repacked as u64;
        self.packs_written = self.bytes_written.div_ceil(params.pack_size.max(1));
        let dropped: u64 = plan
            .packs
            .iter()
            .filter(|p| p.fate != Fate::Keep)
            .map(|p| p.size)
            .sum();
        self.bytes_after = self.bytes_before - dropped + self.bytes_written;
        self.bytes_freed = self.bytes_before.saturating_sub(self.bytes_after);
        self.packs_after =
            self.packs_before - self.packs_deleted - self.packs_repacked + self.packs_written;
    }
}

/// Step 4, in one transaction: deletes the unused chunk rows, indexes the new packs
/// (re-pointing the used chunks' rows into them) and deletes the dropped packs' rows.
fn commit_index(
    conn: &mut Connection,
    storage: &dyn Storage,
    unused_rows: &[i64],
    new: &[PackDone],
    dropped: &[&PackPlan],
    new_names: &HashSet<&str>,
) -> Result<()> {
    let dropped_ids: HashSet<i64> = dropped.iter().map(|p| p.id).collect();
    let tx = index::immediate(conn)?;
    index::delete_chunk_rows(&tx, unused_rows)?;
    // Dropped packs written again byte for byte: their last old group row id.
    let mut old_groups: HashMap<i64, i64> = HashMap::new();
    for p in new {
        index_new_pack(&tx, storage, p, &dropped_ids, &mut old_groups)?;
    }
    crash_point("prune-index-repointed");
    check_groups_unused(&tx, dropped, new_names, &old_groups)?;
    for p in dropped {
        if new_names.contains(p.name.as_str()) {
            // Written again byte for byte: only its old groups go.
            if let Some(&old) = old_groups.get(&p.id) {
                index::delete_groups(&tx, p.id, old)?;
            }
            continue;
        }
        index::delete_groups(&tx, p.id, i64::MAX)?;
        index::delete_pack(&tx, p.id)?;
    }
    crash_point("prune-index-before-commit");
    tx.commit().sql()?;
    crash_point("prune-index-committed");
    Ok(())
}

/// Indexes new pack `p` and re-points the rows of its chunks into it. A pack of the same name
/// among the dropped ones (`dropped_ids`) keeps its row; its last old group row goes into
/// `old_groups`.
fn index_new_pack(
    tx: &Connection,
    storage: &dyn Storage,
    p: &PackDone,
    dropped_ids: &HashSet<i64>,
    old_groups: &mut HashMap<i64, i64>,
) -> Result<()> {
    // A rerun after a crash before the commit writes the same pack again, byte for byte
    // (the earlier copy was indexed by recovery and holds no used chunk row); and used
    // chunks regrouped exactly as they lay can give a pack being dropped again.
    let known = index::pack_row(tx, &p.name)?;
    let (size, groups) = pack::read_trailer(storage, &p.name)?;
    let pack_row = match known {
        Some(id) => {
            if !dropped_ids.contains(&id) {
                return Err(Error::Repository(format!(
                    "prune: rewritten pack {} equals a pack in use; nothing was changed",
                    p.name
                )));
            }
            // The same bytes again: the pack row stays, its new groups are inserted and
            // its old groups deleted once no chunk row points into them.
            old_groups.insert(id, index::last_group_row(tx, id)?);
            id
        }
        None => index::insert_pack_row(tx, &p.name, size)?,
    };
    for g in &groups {
        let grp = index::insert_group(tx, pack_row, g)?;
        let mut off = 0u64;
        for (hash, len) in &g.chunks {
            if !index::repoint_chunk(tx, hash, grp, off)? {
                return Err(Error::Repository(format!(
                    "prune: chunk {} of rewritten pack {} is not in the index; nothing was changed",
                    hex::encode(hash),
                    p.name
                )));
            }
            off += u64::from(*len);
        }
    }
    Ok(())
}

/// Step 5: removes the files of the dropped packs (not those written again), then makes the
/// removals durable.
fn remove_dropped_packs(
    storage: &dyn Storage,
    dropped: &[&PackPlan],
    new_names: &HashSet<&str>,
) -> Result<()> {
    for p in dropped {
        if new_names.contains(p.name.as_str()) {
            continue;
        }
        storage.remove(&pack_key(&p.name))?;
        crash_point("prune-pack-removed");
    }
    storage.flush_removals("packs/")
}

/// Refuses (before the commit) when a chunk row still points into a group about to be deleted:
/// the groups of the dropped packs, except the new groups of a pack written again byte for
/// byte.
fn check_groups_unused(
    tx: &Connection,
    dropped: &[&PackPlan],
    new_names: &HashSet<&str>,
    old_groups: &HashMap<i64, i64>,
) -> Result<()> {
    let groups: Vec<(i64, i64)> = dropped
        .iter()
        .map(|p| {
            let last = match old_groups.get(&p.id) {
                Some(old) if new_names.contains(p.name.as_str()) => *old,
                _ => i64::MAX,
            };
            (p.id, last)
        })
        .collect();
    match index::chunk_in_groups(tx, &groups)? {
        Some((hash, pack)) => Err(Error::Repository(format!(
            "prune: chunk {} still lies in pack {pack}, which is being dropped; nothing was changed",
            hex::encode(hash)
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::error::IoContext;
    use crate::member::{Member, MemberKind, Mtime};
    use crate::sink::MemberSink;
    use crate::store::rebuild::list_packs;
    use crate::store::storage::LocalDir;
    use crate::store::{Repository, SnapshotMeta};
    use std::path::Path;

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if (i / 50_000) % 2 == 0 {
                    b"abcdefgh,()'"[(x % 12) as usize]
                } else {
                    (x >> 24) as u8
                }
            })
            .collect()
    }

    fn file(path: &str, size: usize) -> Member {
        Member {
            path: path.into(),
            kind: MemberKind::File,
            mode: 0o600,
            uid: 0,
            gid: 0,
            uname: "root".into(),
            gname: "root".into(),
            mtime: Mtime {
                secs: 1_764_000_000,
                pax: None,
            },
            size: size as u64,
            raw_header: None,
            stamp: None,
            xattrs: Vec::new(),
        }
    }

    fn meta(time: i64) -> SnapshotMeta {
        SnapshotMeta {
            time,
            host: "srv".into(),
            backends: vec![],
            sysinfo: vec![],
            source: "create".into(),
        }
    }

    #[derive(Default)]
    struct Collect(Vec<(String, Vec<u8>)>);

    impl MemberSink for Collect {
        fn add(&mut self, m: &Member, content: &mut dyn Read) -> Result<()> {
            let mut b = Vec::new();
            content.read_to_end(&mut b).ctx("test read")?;
            self.0.push((m.path.clone(), b));
            Ok(())
        }
    }

    /// Every chunk listed in any pack trailer has its index row pointing into that pack.
    fn no_unused_copies(root: &Path) -> bool {
        let conn = index::connect(&root.join("index.sqlite")).unwrap();
        list_packs(&LocalDir::new(root))
            .unwrap()
            .iter()
            .all(|name| {
                let (_, groups) = pack::read_trailer(&LocalDir::new(root), name).unwrap();
                groups.iter().flat_map(|g| &g.chunks).all(|(h, _)| {
                    let row = index::chunk_row(&conn, h).unwrap();
                    let loc = row.and_then(|row| index::location(&conn, row).unwrap());
                    loc.is_some_and(|l| l.pack == *name)
                })
            })
    }

    #[test]
    fn groups_that_chunk_rows_point_into_are_not_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let index::Opened::Ready { conn, .. } = index::open(dir.path(), "t").unwrap() else {
            panic!("a new index is current");
        };
        let group = pack::GroupEntry {
            offset: 8,
            stored_len: 10,
            flags: 0,
            chunks: vec![([7; 32], 10)],
            refs: Vec::new(),
        };
        assert!(index::insert_pack(&conn, "a", 100, &[group], &mut |_, _| {}).unwrap());
        let a = PackPlan {
            id: 1,
            name: "a".into(),
            size: 100,
            used: 0.0,
            unused: true,
            fate: Fate::Delete,
        };
        let check = || check_groups_unused(&conn, &[&a], &HashSet::new(), &HashMap::new());
        let err = check().unwrap_err().to_string();
        assert!(
            err.contains(&hex::encode([7; 32])) && err.contains("pack a"),
            "{err}"
        );
        conn.execute("DELETE FROM chunks", []).unwrap();
        check().unwrap();
    }

    #[test]
    fn duplicates_and_unused_chunks_are_collected() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let params = ChunkerParams {
            pack_size: 256 * 1024,
            group_size: 32 * 1024,
            ..ChunkerParams::default()
        };
        let repo = Repository::init_with(&root, params).unwrap();
        let (a, b, c) = (noise(400_000, 1), noise(300_000, 2), noise(300_000, 3));
        // Two writers at once both store A: it lands in two packs.
        let mut w1 = repo.begin_snapshot(meta(1)).unwrap();
        let mut w2 = repo.begin_snapshot(meta(2)).unwrap();
        w1.add(&file("A", a.len()), &mut &a[..]).unwrap();
        w2.add(&file("A", a.len()), &mut &a[..]).unwrap();
        w1.add(&file("B", b.len()), &mut &b[..]).unwrap();
        w2.add(&file("C", c.len()), &mut &c[..]).unwrap();
        let s1 = w1.commit().unwrap().id;
        let s2 = w2.commit().unwrap().id;
        assert!(!no_unused_copies(&root), "A is stored twice");

        assert_eq!(repo.forget(std::slice::from_ref(&s1)).unwrap(), 1);
        assert!(!root.join(snapshot_key(&s1)).exists());
        let dry = repo
            .prune(PruneOptions {
                dry_run: true,
                repack_threshold: 1.0,
            })
            .unwrap();
        assert!(dry.bytes_freed > 0 && dry.chunks_deleted > 0, "{dry:?}");
        let before: u64 = list_packs(&LocalDir::new(&root))
            .unwrap()
            .iter()
            .map(|n| std::fs::metadata(root.join(pack_key(n))).unwrap().len())
            .sum();
        let r = repo
            .prune(PruneOptions {
                dry_run: false,
                repack_threshold: 1.0,
            })
            .unwrap();
        assert_eq!(r.bytes_before, before);
        assert!(r.packs_deleted + r.packs_repacked > 0, "{r:?}");
        assert_eq!(r.bytes_freed, r.bytes_before - r.bytes_after);
        let after: u64 = list_packs(&LocalDir::new(&root))
            .unwrap()
            .iter()
            .map(|n| std::fs::metadata(root.join(pack_key(n))).unwrap().len())
            .sum();
        assert_eq!(after, r.bytes_after);
        assert!(no_unused_copies(&root), "duplicates and B are gone");
        // A and C are half text: they compress; B and the second A are gone.
        assert!(after < 700_000 + 20_000, "{after}");

        let mut got = Collect::default();
        repo.replay(&s2, &mut got).unwrap();
        assert_eq!(got.0, vec![("A".to_string(), a), ("C".to_string(), c)]);
        assert!(repo.verify(None).unwrap().is_ok());
        // Nothing left to do; a rebuilt index agrees.
        let again = repo.prune(PruneOptions::default()).unwrap();
        assert_eq!(again.packs_deleted + again.packs_repacked, 0, "{again:?}");
        assert_eq!(again.bytes_freed, 0);
        let rebuilt = repo.rebuild_index().unwrap();
        assert_eq!(rebuilt.snapshots, 1);
        assert!(rebuilt.skipped.is_empty());
        assert!(repo.forget(&["0000".into()]).is_err());
    }
}
