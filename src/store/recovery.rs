//! Cleaning up after interrupted writers. Runs only under the exclusive lock (tried without
//! waiting when a repository is opened). Spec: `store-format/README.md`, section "What a
//! crash leaves behind".

use rusqlite::Connection;

use crate::error::Result;
use crate::logging;
use crate::store::index::{self, SqlContext};
use crate::store::indexer;
use crate::store::lock::RepoLock;
use crate::store::rebuild::{list_packs, list_snapshots};
use crate::store::storage::Storage;

/// What a recovery run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RecoveryReport {
    /// Temporary files (unfinished packs and snapshot files) deleted.
    pub tmp_removed: u64,
    /// Finished packs no snapshot had committed yet, now indexed so later snapshots reuse them.
    pub packs_reused: u64,
    /// Snapshot files whose commit was interrupted after the file was durable, now indexed.
    pub snapshots_completed: u64,
    /// Chunk rows just added for delta groups whose reference chunks are in no pack, dropped
    /// again (`drop_unreadable_delta_rows`).
    pub delta_rows_dropped: u64,
    /// Files under packs/ or snapshots/ that cannot be indexed (damaged); left in place.
    pub unreadable: Vec<String>,
}

/// Deletes `tmp/*`, indexes finished packs and snapshot files the index does not know. The
/// caller holds the exclusive lock (`_lock` proves it).
pub(crate) fn recover(
    storage: &dyn Storage,
    conn: &mut Connection,
    _lock: &RepoLock,
) -> Result<RecoveryReport> {
    let tmp_removed = storage.clean_temp()?;
    let mut report = index_unknown(storage, conn, _lock)?;
    report.tmp_removed = tmp_removed;
    Ok(report)
}

/// `recover` without touching temporary files: indexes the finished packs, then the snapshot
/// files, that the index does not know (a remote repository's cache catching up with what
/// other machines wrote; the caller holds the local exclusive lock and at least the shared
/// one of the repository).
pub(crate) fn index_unknown(
    storage: &dyn Storage,
    conn: &mut Connection,
    _lock: &RepoLock,
) -> Result<RecoveryReport> {
    let mut report = RecoveryReport::default();
    // Snapshot files listed before packs: a snapshot file is published after its packs, so
    // every pack a listed snapshot needs is in the later pack listing, even while another
    // machine is writing.
    let snapshots = list_snapshots(storage)?;
    let mut tx = index::immediate(conn)?;
    let before = index::last_chunk_row(&tx)?;
    for name in list_packs(storage)? {
        if index::pack_known(&tx, &name)? {
            continue;
        }
        let sp = tx.savepoint().sql()?;
        match indexer::index_pack_file(&sp, storage, &name) {
            Ok(_) => {
                sp.commit().sql()?;
                report.packs_reused += 1;
            }
            Err(e) => report.unreadable.push(format!("pack {name}: {e}")),
        }
    }
    if report.packs_reused > 0 {
        report.delta_rows_dropped = drop_unreadable_delta_rows(&tx, before)?;
    }
    for id in snapshots {
        if index::snapshot_known(&tx, &id)? {
            continue;
        }
        let sp = tx.savepoint().sql()?;
        match indexer::index_snapshot_file(&sp, storage, &id) {
            Ok(()) => {
                sp.commit().sql()?;
                report.snapshots_completed += 1;
            }
            Err(e) => report.unreadable.push(format!("snapshot {id}: {e}")),
        }
    }
    tx.commit().sql()?;
    for u in &report.unreadable {
        logging::labelled(
            logging::WARNING,
            "WARNING",
            &format!("{u} (left in place; `verify` and `rebuild-index` report it)"),
        );
    }
    Ok(report)
}

/// A delta group of a pack indexed just now (its chunk rows are those after row `after`) whose
/// reference chunks are not all in the index cannot be read. That is the state an interrupted
/// prune leaves: it re-pointed the used chunks and deleted the rows of the unused ones, then
/// unlinked the pack holding a wholly unused delta group's references but not yet the pack
/// holding the group. No snapshot needs such a group, so its chunks' new rows are dropped
/// again: no writer deduplicates against chunks that cannot be read, and `verify` does not
/// read them. The file stays until prune deletes it (no row points into the group). Dropping
/// rows may leave another group without its references, hence the loop.
pub(crate) fn drop_unreadable_delta_rows(tx: &Connection, after: i64) -> Result<u64> {
    let mut dropped = 0;
    loop {
        let groups = index::delta_groups_after(tx, after)?;
        let mut changed = false;
        for (grp, refs) in groups {
            let mut readable = refs.len() % 32 == 0;
            for id in refs.chunks_exact(32) {
                readable =
                    readable && index::chunk_row(tx, id.try_into().expect("32 bytes"))?.is_some();
            }
            if !readable {
                dropped += index::delete_group_chunks_after(tx, grp, after)?;
                changed = true;
            }
        }
        if !changed {
            return Ok(dropped);
        }
    }
}
