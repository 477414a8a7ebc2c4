//! The `members` table: each snapshot's members' chunk lists (chunk row ids), in batches of
//! consecutive members.

use rusqlite::{params, Connection};

use super::id_list::{decode_ids, encode_ids, push_varint, read_varint};
use super::sql_error::{damaged, SqlContext};
use crate::error::{IoContext, Result};

/// Consecutive members' chunk lists collected into one `members` row. The members' metadata
/// is not copied here: it is in the snapshot's metadata stream, deduplicated in the packs
/// (a copy cost ~100 KB of index per snapshot of a 1000-client server).
#[derive(Default)]
pub(super) struct MemberBatch {
    first: i64,
    count: i64,
    chunks: Vec<u8>,
}

impl MemberBatch {
    const MAX_MEMBERS: i64 = 256;
    const MAX_CHUNK_BYTES: usize = 1 << 20;

    pub(super) fn push(&mut self, rows: &[i64]) {
        push_varint(&mut self.chunks, rows.len() as u64);
        encode_ids(rows, &mut self.chunks);
        self.count += 1;
    }

    pub(super) fn full(&self) -> bool {
        self.count >= Self::MAX_MEMBERS || self.chunks.len() >= Self::MAX_CHUNK_BYTES
    }

    pub(super) fn flush(&mut self, tx: &Connection, snapshot: i64) -> Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let z = zstd::bulk::compress(&self.chunks, 3).ctx("compressing chunk lists")?;
        let mut ins = tx
            .prepare_cached(
                "INSERT INTO members (snapshot, first, count, chunks) VALUES (?1, ?2, ?3, ?4)",
            )
            .sql()?;
        ins.execute(params![snapshot, self.first, self.count, z])
            .sql()?;
        self.first += self.count;
        self.count = 0;
        self.chunks.clear();
        Ok(())
    }
}

/// The chunk row ids of a snapshot's members, in order, decoded one member at a time.
/// Memory: the compact lists of the whole snapshot (1-3 bytes per chunk).
pub(crate) struct ChunkLists {
    bytes: Vec<u8>,
    at: usize,
    left: u64,
}

impl ChunkLists {
    pub(crate) fn of(conn: &Connection, snapshot_row: i64) -> Result<ChunkLists> {
        let mut st = conn
            .prepare_cached("SELECT count, chunks FROM members WHERE snapshot = ?1 ORDER BY first")
            .sql()?;
        let mut rows = st.query([snapshot_row]).sql()?;
        let mut lists = ChunkLists {
            bytes: Vec::new(),
            at: 0,
            left: 0,
        };
        while let Some(r) = rows.next().sql()? {
            let count: i64 = r.get(0).sql()?;
            let z: Vec<u8> = r.get(1).sql()?;
            let plain = zstd::stream::decode_all(&z[..]).map_err(|_| damaged("chunk lists"))?;
            lists.bytes.extend_from_slice(&plain);
            lists.left += count as u64;
        }
        Ok(lists)
    }

    /// The next member's chunk row ids, or `None` after the last member.
    pub(crate) fn next_member(&mut self) -> Result<Option<Vec<i64>>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let n = read_varint(&self.bytes, &mut self.at).ok_or_else(|| damaged("chunk lists"))?;
        decode_ids(&self.bytes, &mut self.at, n)
            .map(Some)
            .ok_or_else(|| damaged("chunk lists"))
    }

    /// Checks that every member's list was taken: more lists than members is damage.
    pub(crate) fn finish(mut self) -> Result<()> {
        if self.next_member()?.is_some() {
            return Err(damaged("more chunk lists than members"));
        }
        Ok(())
    }
}

/// Calls `f` with the chunk row ids of every member of a snapshot, in order, without reading
/// the members' metadata (prune and verify's chunk sets).
pub(crate) fn for_each_chunk_list(
    conn: &Connection,
    snapshot_row: i64,
    mut f: impl FnMut(Vec<i64>) -> Result<()>,
) -> Result<()> {
    let mut lists = ChunkLists::of(conn, snapshot_row)?;
    while let Some(ids) = lists.next_member()? {
        f(ids)?;
    }
    Ok(())
}
