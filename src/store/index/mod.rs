//! The SQLite index (`index.sqlite`): a cache of what the pack and snapshot files say, for
//! fast lookups. Spec: `store-format/README.md`, section "The index". Everything here can be
//! rebuilt from the data files (`rebuild.rs`).
//!
//! This module owns the schema and every SQL statement of the store: outside it, the store
//! calls the typed functions below and never writes SQL. It imports only the leaf modules
//! of the store (`chunker`, `pack`, `durable`, `lock`, `snapshot_info`), never the readers of
//! data files (`snapshot`, `reader`): indexing a data file reads it first (`indexer.rs`).

mod chunks;
mod database;
mod groups;
mod id_list;
mod members;
mod packs;
mod prune_queries;
mod schema;
mod snapshots;
mod sql_error;
mod verify_queries;

pub(crate) use chunks::{
    chunk_known, chunk_row, chunk_row_and_group, delete_chunk_rows, for_each_chunk_row,
    last_chunk_row, location, reference, repoint_chunk, stored_share, ChunkAt, GroupAt, Location,
};
#[cfg(test)]
pub(crate) use database::remove;
pub(crate) use database::{
    begin_read, clear, connect, end_read, immediate, move_aside, open, open_read_only, read_tx,
    replace_outdated, Opened,
};
pub(crate) use groups::{
    delete_group_chunks_after, delete_groups, delta_groups, delta_groups_after, for_each_group,
    group_refs, insert_group, last_group_row,
};
pub(crate) use members::{for_each_chunk_list, ChunkLists};
pub(crate) use packs::{
    delete_pack, for_each_pack, insert_pack, insert_pack_moving, insert_pack_row, pack_known,
    pack_row, pack_totals,
};
pub(crate) use prune_queries::{chunk_in_groups, for_each_chunk_of_packs};
#[cfg(test)]
pub(crate) use schema::SCHEMA_VERSION;
pub(crate) use schema::{remember_encrypted, remembers_encrypted};
pub(crate) use snapshots::{
    delete_snapshot, meta_chunk_rows, snapshot, snapshot_known, snapshot_name, snapshot_row,
    snapshot_rows, snapshots, ChunkPlace, NewSnapshot,
};
pub(crate) use sql_error::{damaged, SqlContext};
pub(crate) use verify_queries::{
    add_wanted, clear_wanted, for_each_pack_to_read, pack_sizes, wanted_not_indexed, GroupRows,
    RowsToRead,
};

#[cfg(test)]
pub(super) mod tests {
    use rusqlite::Connection;

    use super::{open, Opened};

    /// A new, empty index in a temporary directory.
    pub(crate) fn new_index() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let Opened::Ready { conn, created } = open(dir.path(), "test").unwrap() else {
            panic!("a new index is current");
        };
        assert!(created);
        (dir, conn)
    }
}
