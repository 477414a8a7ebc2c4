//! The `chunks` table: where each chunk lies (its group and offset), found by its hash.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::sql_error::SqlContext;
use crate::error::Result;
use crate::store::chunker::ChunkId;
use crate::store::pack;

/// The condition finding the chunk whose hash is `?1`. Hashes are indexed by their first 8
/// bytes only (`chunks_prefix`: a UNIQUE on the whole hash would store it a second time);
/// SQLite uses that index only for this exact expression.
const BY_HASH: &str = "substr(hash, 1, 8) = substr(?1, 1, 8) AND hash = ?1";

/// The row of a chunk in the index, if any.
pub(crate) fn chunk_row(conn: &Connection, id: &ChunkId) -> Result<Option<i64>> {
    let mut st = conn
        .prepare_cached(&format!("SELECT id FROM chunks WHERE {BY_HASH}"))
        .sql()?;
    st.query_row([&id[..]], |r| r.get(0)).optional().sql()
}

/// The row of a chunk in the index and the row of its group, if it is indexed.
pub(crate) fn chunk_row_and_group(conn: &Connection, id: &ChunkId) -> Result<Option<(i64, i64)>> {
    let mut st = conn
        .prepare_cached(&format!("SELECT id, grp FROM chunks WHERE {BY_HASH}"))
        .sql()?;
    st.query_row([&id[..]], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .sql()
}

/// Whether a chunk is in the index (committed, in a durable pack).
pub(crate) fn chunk_known(conn: &Connection, id: &ChunkId) -> Result<bool> {
    Ok(chunk_row(conn, id)?.is_some())
}

/// Adds the row of chunk `id` at `offset` of group row `grp`; returns the new row.
pub(super) fn insert_chunk(
    tx: &Connection,
    id: &ChunkId,
    grp: i64,
    offset: u64,
    len: u32,
) -> Result<i64> {
    tx.prepare_cached("INSERT INTO chunks (hash, grp, offset, len) VALUES (?1, ?2, ?3, ?4)")
        .sql()?
        .execute(params![&id[..], grp, offset as i64, len])
        .sql()?;
    Ok(tx.last_insert_rowid())
}

/// Points the row of chunk `hash` at `offset` of group row `grp` (prune's copy of it).
/// False when the chunk has no row.
pub(crate) fn repoint_chunk(
    tx: &Connection,
    hash: &ChunkId,
    grp: i64,
    offset: u64,
) -> Result<bool> {
    let mut st = tx
        .prepare_cached(&format!(
            "UPDATE chunks SET grp = ?2, offset = ?3 WHERE {BY_HASH}"
        ))
        .sql()?;
    Ok(st.execute(params![&hash[..], grp, offset as i64]).sql()? == 1)
}

/// Removes chunk rows (chunks no snapshot uses).
pub(crate) fn delete_chunk_rows(tx: &Connection, rows: &[i64]) -> Result<()> {
    let mut del = tx
        .prepare_cached("DELETE FROM chunks WHERE id = ?1")
        .sql()?;
    for id in rows {
        del.execute([id]).sql()?;
    }
    Ok(())
}

/// The greatest chunk row id (0 when there is none): rows added later are greater.
pub(crate) fn last_chunk_row(conn: &Connection) -> Result<i64> {
    conn.query_row("SELECT COALESCE(MAX(id), 0) FROM chunks", [], |r| r.get(0))
        .sql()
}

/// Calls `f` with the row, group row and length of every chunk, in one scan of `chunks`.
pub(crate) fn for_each_chunk_row(
    conn: &Connection,
    mut f: impl FnMut(i64, i64, u64) -> Result<()>,
) -> Result<()> {
    let mut st = conn.prepare("SELECT id, grp, len FROM chunks").sql()?;
    let mut rows = st.query([]).sql()?;
    while let Some(r) = rows.next().sql()? {
        let (id, grp, len): (i64, i64, i64) = (r.get(0).sql()?, r.get(1).sql()?, r.get(2).sql()?);
        f(id, grp, len as u64)?;
    }
    Ok(())
}

/// The length and group row of chunk `id` when it can serve as a reference: indexed, in a
/// group that is not a delta group itself (so reading a delta group reads plain groups only).
pub(crate) fn reference(conn: &Connection, id: &ChunkId) -> Result<Option<(u32, i64)>> {
    let found: Option<(u32, i64)> = conn
        .prepare_cached(&format!("SELECT len, grp FROM chunks WHERE {BY_HASH}"))
        .sql()?
        .query_row([&id[..]], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .sql()?;
    let Some((len, grp)) = found else {
        return Ok(None);
    };
    let flags: Option<u8> = conn
        .prepare_cached("SELECT flags FROM groups WHERE id = ?1")
        .sql()?
        .query_row([grp], |r| r.get(0))
        .optional()
        .sql()?;
    Ok(flags
        .filter(|f| f & pack::FLAG_DELTA == 0)
        .map(|_| (len, grp)))
}

/// Where a chunk lies.
#[derive(Debug, Clone)]
pub(crate) struct Location {
    pub hash: ChunkId,
    pub group: i64,
    pub delta: bool,
    pub pack: String,
    pub group_offset: u64,
    pub stored_len: u32,
    pub plain_len: u64,
    pub compressed: bool,
    pub offset: u64,
    pub len: u32,
}

pub(crate) fn location(conn: &Connection, chunk_row: i64) -> Result<Option<Location>> {
    let mut st = conn
        .prepare_cached(
            "SELECT c.hash, p.name, g.offset, g.stored_len, g.plain_len, g.flags, c.offset, c.len, g.id
             FROM chunks c JOIN groups g ON g.id = c.grp JOIN packs p ON p.id = g.pack WHERE c.id = ?1",
        )
        .sql()?;
    st.query_row([chunk_row], |r| {
        let hash: Vec<u8> = r.get(0)?;
        let flags: u8 = r.get(5)?;
        Ok(Location {
            hash: hash.try_into().unwrap_or([0; 32]),
            group: r.get(8)?,
            delta: flags & pack::FLAG_DELTA != 0,
            pack: r.get(1)?,
            group_offset: r.get::<_, i64>(2)? as u64,
            stored_len: r.get(3)?,
            plain_len: r.get::<_, i64>(4)? as u64,
            compressed: flags & pack::FLAG_ZSTD != 0,
            offset: r.get::<_, i64>(6)? as u64,
            len: r.get(7)?,
        })
    })
    .optional()
    .sql()
}

/// A group as a scan of chunks in their groups finds it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GroupAt {
    pub pack: String,
    pub id: i64,
    pub offset: u64,
    pub stored_len: u32,
    pub plain_len: u64,
    pub flags: u8,
}

/// A chunk row in its group: row id, hash, offset in the group's plain bytes, length.
#[derive(Debug, Clone)]
pub(crate) struct ChunkAt {
    pub row: i64,
    pub hash: ChunkId,
    pub offset: u64,
    pub len: u32,
}

/// The columns `located` reads, in its order.
pub(super) const LOCATED_COLUMNS: &str =
    "p.name, g.id, g.offset, g.stored_len, g.plain_len, g.flags, c.id, c.hash, c.offset, c.len";

/// A row of `LOCATED_COLUMNS`.
pub(super) fn located(r: &Row<'_>) -> rusqlite::Result<(GroupAt, ChunkAt)> {
    let hash: Vec<u8> = r.get(7)?;
    Ok((
        GroupAt {
            pack: r.get(0)?,
            id: r.get(1)?,
            offset: r.get::<_, i64>(2)? as u64,
            stored_len: r.get(3)?,
            plain_len: r.get::<_, i64>(4)? as u64,
            flags: r.get(5)?,
        },
        ChunkAt {
            row: r.get(6)?,
            hash: hash.try_into().unwrap_or([0; 32]),
            offset: r.get::<_, i64>(8)? as u64,
            len: r.get(9)?,
        },
    ))
}

/// A chunk's share of the stored bytes of its group: the group's compressed length
/// apportioned by plain length (chunks are compressed together, not one by one).
pub(crate) fn stored_share(conn: &Connection, chunk_row: i64) -> Result<Option<u64>> {
    let mut st = conn
        .prepare_cached(
            "SELECT c.len, g.stored_len, g.plain_len FROM chunks c JOIN groups g ON g.id = c.grp
             WHERE c.id = ?1",
        )
        .sql()?;
    st.query_row([chunk_row], |r| {
        let (len, stored, plain): (i64, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        Ok(if plain <= 0 {
            0
        } else {
            (i128::from(len.max(0)) * i128::from(stored.max(0)) / i128::from(plain)) as u64
        })
    })
    .optional()
    .sql()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::index::tests::new_index;

    #[test]
    fn hash_lookups_use_the_prefix_index() {
        let (_dir, conn) = new_index();
        let plan = |sql: &str| -> String {
            let mut st = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = st
                .query_map([[0u8; 32]], |r| r.get::<_, String>(3))
                .unwrap();
            rows.map(|r| r.unwrap()).collect::<Vec<_>>().join("; ")
        };
        for sql in [
            format!("SELECT id FROM chunks WHERE {BY_HASH}"),
            format!("UPDATE chunks SET grp = 1 WHERE {BY_HASH}"),
        ] {
            let p = plan(&sql);
            assert!(p.contains("USING INDEX chunks_prefix"), "{sql}: {p}");
        }
    }
}
