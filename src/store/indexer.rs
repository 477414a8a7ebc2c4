//! Indexing a data file: reads a pack's trailer, or a snapshot file and its metadata stream
//! (through the packs), and records what it says in the index. Used by the commit, recovery
//! and rebuild-index. Spec: `store-format/README.md`, sections "The index" and "Rebuilding
//! the index".

use std::collections::HashMap;

use rusqlite::Connection;

use crate::error::{Error, Result};
use crate::store::chunker::ChunkId;
use crate::store::index::{self, ChunkPlace, NewSnapshot};
use crate::store::pack;
use crate::store::reader::read_snapshot_file_with;
use crate::store::snapshot_info::SnapshotInfo;
use crate::store::storage::Storage;

/// Indexes the pack file `name` from its trailer.
pub(crate) fn index_pack_file(tx: &Connection, storage: &dyn Storage, name: &str) -> Result<bool> {
    index_pack_file_rows(tx, storage, name, &mut |_, _| {})
}

/// `index_pack_file`, telling `rows` the chunk row of each of the pack's chunks (when the
/// pack was not indexed yet).
pub(crate) fn index_pack_file_rows(
    tx: &Connection,
    storage: &dyn Storage,
    name: &str,
    rows: &mut dyn FnMut(&ChunkId, i64),
) -> Result<bool> {
    let (size, groups) = pack::read_trailer(storage, name)?;
    index::insert_pack(tx, name, size, &groups, rows)
}

/// Indexes the snapshot file `id`. Every chunk it names, metadata chunks included, must be
/// indexed already: its metadata stream is read from the packs through `tx`.
pub(crate) fn index_snapshot_file(tx: &Connection, storage: &dyn Storage, id: &str) -> Result<()> {
    index_snapshot_file_rows(tx, storage, id, &|_, _| None, &HashMap::new())
}

/// What indexing needs of a member record: its path. The other fields are skipped, not
/// built (a commit reads back every record of the snapshot it wrote); whoever uses a member
/// reads the whole record, checked.
#[derive(serde::Deserialize)]
struct MemberPath {
    path: String,
}

/// `index_snapshot_file`, taking chunk rows from `known` where it has them (a writer knows
/// those of the chunks it stored and of the parent's it reused) instead of looking each up,
/// and metadata chunks from `fresh` where it holds them (the writer's own, kept since it cut
/// them) instead of reading them from their packs.
pub(crate) fn index_snapshot_file_rows(
    tx: &Connection,
    storage: &dyn Storage,
    id: &str,
    known: &dyn Fn(ChunkPlace<'_>, &ChunkId) -> Option<i64>,
    fresh: &HashMap<ChunkId, Vec<u8>>,
) -> Result<()> {
    let row_of = |place: ChunkPlace<'_>, c: &ChunkId| match known(place, c) {
        Some(row) => Ok(Some(row)),
        None => index::chunk_row(tx, c),
    };
    let mut new = NewSnapshot::begin(tx, id)?;
    let mut rows = Vec::new();
    let file = read_snapshot_file_with(tx, storage, id, fresh, |m: MemberPath, chunks| {
        rows.clear();
        for (n, c) in chunks.iter().enumerate() {
            rows.push(row_of((Some(&m.path), n), c)?.ok_or_else(|| {
                Error::Corrupt(format!(
                    "snapshot {id}: chunk {} of member {} is in no pack",
                    hex::encode(c),
                    m.path
                ))
            })?);
        }
        new.member(&rows)
    })?;
    let mut meta_rows = Vec::with_capacity(file.meta_chunks.len());
    for (n, c) in file.meta_chunks.iter().enumerate() {
        meta_rows.push(row_of((None, n), c)?.ok_or_else(|| {
            Error::Corrupt(format!(
                "snapshot {id}: metadata chunk {} is in no pack",
                hex::encode(c)
            ))
        })?);
    }
    let (h, end) = (file.header.meta, file.end);
    let info = SnapshotInfo {
        id: id.to_string(),
        time: h.time,
        host: h.host,
        backends: h.backends,
        size: end.size,
        added: end.packs_added + file.len,
        members: end.members,
        source: h.source,
        sysinfo: h.sysinfo,
        written: end.written,
    };
    new.finish(&info, &meta_rows)
}
