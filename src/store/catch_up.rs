//! A remote repository's index cache catching up with removals made on another machine
//! (`forget`, `prune`) without a rebuild: the snapshots and packs gone from the bucket are
//! dropped, the new packs and snapshot files indexed, and the chunks that a prune elsewhere
//! moved into new packs re-pointed. Spec: `store-format/README.md`, section "Remote
//! repositories".
//!
//! Snapshots name chunks by index row, so rows are kept and moved, never re-made. The result
//! is the index a rebuild would give (up to row numbers and which copy of a chunk stored
//! twice is indexed) exactly when every chunk that a remaining snapshot uses, or that a
//! remaining delta group refers to, and whose pack is gone, has a copy in a new pack, and
//! every reference chunk of a new pack's delta groups stays indexed. When one has none, this
//! machine cannot tell whether an old pack holds another copy (its
//! trailer's duplicates are not indexed): nothing is written and the caller rebuilds. An
//! unreadable new pack or snapshot file is left to the rebuild too, which reports it.

use std::collections::{BTreeSet, HashMap, HashSet};

use rusqlite::Connection;

use crate::error::Result;
use crate::store::chunker::ChunkId;
use crate::store::index::{self, SqlContext};
use crate::store::indexer;
use crate::store::lock::RepoLock;
use crate::store::pack;
use crate::store::rebuild::{list_packs, list_snapshots};
use crate::store::recovery::drop_unreadable_delta_rows;
use crate::store::storage::Storage;

/// What catching up did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CaughtUp {
    /// Snapshots and packs the bucket no longer has, dropped from the index.
    pub snapshots_dropped: u64,
    pub packs_dropped: u64,
    /// Chunks of dropped packs found again in new packs (a repack elsewhere).
    pub chunks_moved: u64,
    /// Chunks of dropped packs that nothing uses any more, dropped.
    pub chunks_dropped: u64,
    /// New packs and snapshot files indexed.
    pub packs_indexed: u64,
    pub snapshots_indexed: u64,
}

/// Why the cache could not catch up by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CannotTell {
    /// A chunk still needed lay in a removed pack and is in no new one.
    ChunkNotFound(String),
    /// A new pack or snapshot file could not be indexed.
    Unreadable(String),
}

impl std::fmt::Display for CannotTell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CannotTell::ChunkNotFound(c) => {
                write!(
                    f,
                    "chunk {c} of a removed pack is needed and in no new pack"
                )
            }
            CannotTell::Unreadable(what) => write!(f, "{what} cannot be indexed"),
        }
    }
}

/// Brings the index up to date with the bucket's listings. The caller holds the local
/// exclusive lock and the repository's shared lock (no prune or forget runs; writers may add
/// packs and snapshot files, which the listings catch or the next open does).
/// `Ok(Err(why))`: nothing was written, the caller rebuilds.
pub(crate) fn catch_up(
    storage: &dyn Storage,
    conn: &mut Connection,
    _lock: &RepoLock,
) -> Result<std::result::Result<CaughtUp, CannotTell>> {
    // Snapshot files first: every pack a listed snapshot needs is in the later pack listing.
    let listed_snapshots: BTreeSet<String> = list_snapshots(storage)?.into_iter().collect();
    let listed_packs: BTreeSet<String> = list_packs(storage)?.into_iter().collect();
    let mut done = CaughtUp::default();
    // Dropped without commit on every early return: a rollback.
    let tx = index::immediate(conn)?;

    for s in index::snapshots(&tx)? {
        if !listed_snapshots.contains(&s.id) {
            index::delete_snapshot(&tx, index::snapshot_row(&tx, &s.id)?)?;
            done.snapshots_dropped += 1;
        }
    }
    let mut known_packs = HashSet::new();
    let mut gone_packs = Vec::new();
    index::for_each_pack(&tx, |row, name, _| {
        if !listed_packs.contains(&name) {
            gone_packs.push(row);
        }
        known_packs.insert(name);
        Ok(())
    })?;
    // The chunk rows in gone packs, and the groups that go with them.
    let mut moving: HashSet<i64> = HashSet::new();
    let mut hashes: HashMap<i64, ChunkId> = HashMap::new();
    let mut gone_groups: HashSet<i64> = HashSet::new();
    index::for_each_chunk_of_packs(&tx, &gone_packs, |g, c| {
        gone_groups.insert(g.id);
        moving.insert(c.row);
        hashes.insert(c.row, c.hash);
        Ok(())
    })?;
    let before = index::last_chunk_row(&tx)?;
    // The reference chunks of the new packs' delta groups: each must stay readable.
    let mut new_refs: HashSet<ChunkId> = HashSet::new();
    for name in listed_packs.iter().filter(|n| !known_packs.contains(*n)) {
        let (size, groups) = match pack::read_trailer(storage, name) {
            Ok(t) => t,
            Err(e) => return Ok(Err(CannotTell::Unreadable(format!("pack {name} ({e})")))),
        };
        for g in groups.iter().filter(|g| g.flags & pack::FLAG_DELTA != 0) {
            new_refs.extend(g.refs.iter().copied());
        }
        let left = moving.len();
        index::insert_pack_moving(&tx, name, size, &groups, &mut moving)?;
        done.chunks_moved += (left - moving.len()) as u64;
        done.packs_indexed += 1;
    }
    if done.packs_indexed > 0 {
        drop_unreadable_delta_rows(&tx, before)?;
    }
    // What stays in `moving` is in no listed pack this machine knows the content of.
    for r in &new_refs {
        match index::chunk_row(&tx, r)? {
            Some(row) if !moving.contains(&row) => {}
            _ => return Ok(Err(CannotTell::ChunkNotFound(hex::encode(r)))),
        }
    }
    if !moving.is_empty() {
        if let Some(row) = needed(&tx, &moving, &hashes, &gone_groups)? {
            return Ok(Err(CannotTell::ChunkNotFound(hex::encode(hashes[&row]))));
        }
        let rows: Vec<i64> = moving.iter().copied().collect();
        index::delete_chunk_rows(&tx, &rows)?;
        done.chunks_dropped = rows.len() as u64;
    }
    for row in &gone_packs {
        index::delete_groups(&tx, *row, i64::MAX)?;
        index::delete_pack(&tx, *row)?;
    }
    done.packs_dropped = gone_packs.len() as u64;
    for id in &listed_snapshots {
        if index::snapshot_known(&tx, id)? {
            continue;
        }
        if let Err(e) = indexer::index_snapshot_file(&tx, storage, id) {
            return Ok(Err(CannotTell::Unreadable(format!("snapshot {id} ({e})"))));
        }
        done.snapshots_indexed += 1;
    }
    tx.commit().sql()?;
    Ok(Ok(done))
}

/// A row of `rows` that a snapshot of the index uses (a member's chunk or a metadata chunk),
/// or that a delta group outside `gone_groups` refers to; `None` when no such row exists.
fn needed(
    tx: &Connection,
    rows: &HashSet<i64>,
    hashes: &HashMap<i64, ChunkId>,
    gone_groups: &HashSet<i64>,
) -> Result<Option<i64>> {
    for snapshot in index::snapshot_rows(tx)? {
        if let Some(r) = index::meta_chunk_rows(tx, snapshot)?
            .into_iter()
            .find(|r| rows.contains(r))
        {
            return Ok(Some(r));
        }
        let mut found = None;
        index::for_each_chunk_list(tx, snapshot, |ids| {
            if found.is_none() {
                found = ids.into_iter().find(|r| rows.contains(r));
            }
            Ok(())
        })?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let by_hash: HashMap<&ChunkId, i64> = rows.iter().map(|r| (&hashes[r], *r)).collect();
    for (grp, refs) in index::delta_groups(tx)? {
        if gone_groups.contains(&grp) {
            continue;
        }
        for id in refs.chunks_exact(32) {
            if let Some(r) = by_hash.get(&<ChunkId>::try_from(id).expect("32 bytes")) {
                return Ok(Some(*r));
            }
        }
    }
    Ok(None)
}
