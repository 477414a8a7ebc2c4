//! `copy`: a snapshot of one repository written into another, chunk for chunk. The target
//! stores only the chunks it lacks, each fetched from the source (where it is checked as it
//! is read) and checked again on arrival; the snapshot keeps its time, host, backends,
//! system information and source, and names the snapshot it copies (`copy_of`) so that a
//! second copy is skipped. Between repositories whose chunk ids differ (one encrypted, or
//! two with different keys) every chunk is read from the source and re-identified. Spec: `store-format/README.md`, section "Snapshot files".

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::store::lock::LockKind;
use crate::store::reader::{read_snapshot_file, ChunkFetcher};
use crate::store::snapshot::read_snapshot_head;
use crate::store::snapshot_info::SnapshotInfo;
use crate::store::snapshot_writer::SnapshotWriter;
use crate::store::{index, Repository};

/// What one copied snapshot cost.
#[derive(Debug, Clone)]
pub struct Copied {
    /// The new snapshot in the target.
    pub snapshot: SnapshotInfo,
    /// Chunks (and their plain bytes) the target lacked and took from the source.
    pub chunks_sent: u64,
    pub bytes_sent: u64,
}

/// The snapshot a snapshot stands for across repositories: the one `copy_of` names, or
/// itself where it was made.
pub(crate) fn original_of(repo: &Repository, id: &str) -> Result<String> {
    let head = read_snapshot_head(repo.storage(), id)?;
    Ok(head.header.copy_of.unwrap_or_else(|| id.to_string()))
}

/// For every snapshot of `repo`: its original (see `original_of`) → its id here.
pub(crate) fn originals(repo: &Repository) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for s in repo.snapshots()? {
        out.insert(original_of(repo, &s.id)?, s.id);
    }
    Ok(out)
}

/// Refuses to copy a repository into itself (under another path, too: by its id).
pub(crate) fn ensure_distinct(from: &Repository, to: &Repository) -> Result<()> {
    if from.config().id == to.config().id {
        return Err(Error::Repository(format!(
            "{} and {} are the same repository (id {}): nothing to copy",
            from.shown(),
            to.shown(),
            to.config().id
        )));
    }
    Ok(())
}

/// Writes snapshot `snap` of `from` into `to` as a new snapshot (see the module's comment).
/// A failure leaves `to` without the snapshot (its writer's packs are collected as after
/// any aborted backup) and `from` untouched.
pub(crate) fn copy_snapshot(
    from: &Repository,
    snap: &SnapshotInfo,
    to: &Repository,
) -> Result<Copied> {
    ensure_distinct(from, to)?;
    let _lock = from.lock(LockKind::Shared, "copy a snapshot")?;
    // Own connections: a long copy does not block other users of these Repositories.
    let conn = index::connect(&from.index_path())?;
    let head = read_snapshot_head(from.storage(), &snap.id)?;
    let original = head.header.copy_of.unwrap_or_else(|| snap.id.clone());
    let mut writer = SnapshotWriter::new_copy(to, head.header.meta, original)?;
    let mut fetcher = ChunkFetcher::new(&conn, from.storage());
    let (mut chunks_sent, mut bytes_sent) = (0, 0);
    // Repositories that compute chunk ids alike share chunk lists; otherwise (plain and
    // encrypted, or two keys) every chunk is read and given the target's id.
    let same_ids = from
        .storage()
        .crypt()
        .ids()
        .same_as(to.storage().crypt().ids());
    read_snapshot_file(
        &conn,
        from.storage(),
        &snap.id,
        |m: crate::member::Member, ids| {
            let user = format!("member {} of snapshot {}", m.path, snap.id);
            let mut fetch = |id: &_| fetcher.fetch_hash(id, &user);
            let (c, b) = if same_ids {
                writer.add_chunks(&m, &ids, &mut fetch)?
            } else {
                writer.add_translated(&m, &ids, &mut fetch)?
            };
            chunks_sent += c;
            bytes_sent += b;
            Ok(())
        },
    )?;
    let snapshot = writer.commit()?;
    Ok(Copied {
        snapshot,
        chunks_sent,
        bytes_sent,
    })
}
