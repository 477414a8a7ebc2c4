//! The `packs` table, and indexing a whole pack (its groups and chunks) from its trailer.

use std::collections::HashSet;

use rusqlite::{params, Connection, OptionalExtension};

use super::chunks::{chunk_row, insert_chunk};
use super::groups::insert_group;
use super::sql_error::SqlContext;
use crate::error::Result;
use crate::store::chunker::ChunkId;
use crate::store::pack::GroupEntry;

pub(crate) fn pack_known(conn: &Connection, name: &str) -> Result<bool> {
    let mut st = conn
        .prepare_cached("SELECT 1 FROM packs WHERE name = ?1")
        .sql()?;
    st.exists([name]).sql()
}

/// The row of pack `name`, if it is indexed.
pub(crate) fn pack_row(conn: &Connection, name: &str) -> Result<Option<i64>> {
    conn.query_row("SELECT id FROM packs WHERE name = ?1", [name], |r| r.get(0))
        .optional()
        .sql()
}

/// Adds the row of pack `name` alone; returns it. Its groups are the caller's.
pub(crate) fn insert_pack_row(tx: &Connection, name: &str, size: u64) -> Result<i64> {
    tx.execute(
        "INSERT INTO packs (name, size) VALUES (?1, ?2)",
        params![name, size as i64],
    )
    .sql()?;
    Ok(tx.last_insert_rowid())
}

/// Adds a pack and its chunks. Chunks already indexed (stored twice by concurrent writers)
/// keep their first location: SQLite does not enforce unique hashes, this does. `rows` is told
/// each chunk's row (new or first). Returns false when the pack was indexed already.
pub(crate) fn insert_pack(
    tx: &Connection,
    name: &str,
    size: u64,
    groups: &[GroupEntry],
    rows: &mut dyn FnMut(&ChunkId, i64),
) -> Result<bool> {
    insert_pack_into(tx, name, size, groups, rows, None)
}

/// `insert_pack` for an index catching up with a prune made elsewhere: a chunk indexed
/// already whose row is in `moving` (its pack is gone) is re-pointed at its copy in this pack,
/// keeping its row (snapshots name chunks by row), and taken out of `moving`.
pub(crate) fn insert_pack_moving(
    tx: &Connection,
    name: &str,
    size: u64,
    groups: &[GroupEntry],
    moving: &mut HashSet<i64>,
) -> Result<bool> {
    insert_pack_into(tx, name, size, groups, &mut |_, _| {}, Some(moving))
}

fn insert_pack_into(
    tx: &Connection,
    name: &str,
    size: u64,
    groups: &[GroupEntry],
    rows: &mut dyn FnMut(&ChunkId, i64),
    mut moving: Option<&mut HashSet<i64>>,
) -> Result<bool> {
    if tx
        .execute(
            "INSERT OR IGNORE INTO packs (name, size) VALUES (?1, ?2)",
            params![name, size as i64],
        )
        .sql()?
        == 0
    {
        return Ok(false);
    }
    let pack = tx.last_insert_rowid();
    for g in groups {
        let grp = insert_group(tx, pack, g)?;
        let mut off = 0u64;
        for (id, len) in &g.chunks {
            let row = match chunk_row(tx, id)? {
                Some(row) => {
                    if let Some(m) = moving.as_deref_mut() {
                        if m.remove(&row) {
                            tx.prepare_cached(
                                "UPDATE chunks SET grp = ?2, offset = ?3 WHERE id = ?1",
                            )
                            .sql()?
                            .execute(params![row, grp, off as i64])
                            .sql()?;
                        }
                    }
                    row
                }
                None => insert_chunk(tx, id, grp, off, *len)?,
            };
            rows(id, row);
            off += u64::from(*len);
        }
    }
    Ok(true)
}

/// Calls `f` with the row, name and size of every pack, in the order of their names.
pub(crate) fn for_each_pack(
    conn: &Connection,
    mut f: impl FnMut(i64, String, u64) -> Result<()>,
) -> Result<()> {
    let mut st = conn
        .prepare("SELECT id, name, size FROM packs ORDER BY name")
        .sql()?;
    let mut rows = st.query([]).sql()?;
    while let Some(r) = rows.next().sql()? {
        let (id, name, size): (i64, String, i64) =
            (r.get(0).sql()?, r.get(1).sql()?, r.get(2).sql()?);
        f(id, name, size as u64)?;
    }
    Ok(())
}

/// Removes the row of pack row `pack` (its groups are gone already).
pub(crate) fn delete_pack(tx: &Connection, pack: i64) -> Result<()> {
    tx.execute("DELETE FROM packs WHERE id = ?1", [pack])
        .sql()?;
    Ok(())
}

/// How many packs are indexed and their bytes.
pub(crate) fn pack_totals(conn: &Connection) -> Result<(u64, u64)> {
    let (n, bytes): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM packs",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .sql()?;
    Ok((n as u64, bytes as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::index::chunks::{chunk_known, location};
    use crate::store::index::tests::new_index;

    fn group(offset: u64, chunks: &[(u8, u32)]) -> GroupEntry {
        GroupEntry {
            offset,
            stored_len: 100,
            flags: 0,
            chunks: chunks.iter().map(|&(b, len)| ([b; 32], len)).collect(),
            refs: Vec::new(),
        }
    }

    #[test]
    fn a_known_chunk_gets_no_second_row() {
        let (_dir, conn) = new_index();
        // Chunk 2 twice in one pack, then chunks 1 and 2 again in another pack.
        let first = [
            group(8, &[(1, 10), (2, 20)]),
            group(108, &[(2, 20), (3, 5)]),
        ];
        assert!(insert_pack(&conn, "a", 300, &first, &mut |_, _| {}).unwrap());
        assert!(insert_pack(
            &conn,
            "b",
            200,
            &[group(8, &[(2, 20), (1, 10)])],
            &mut |_, _| {}
        )
        .unwrap());
        assert!(!insert_pack(&conn, "a", 300, &first, &mut |_, _| {}).unwrap());
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM chunks", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 3);
        for (b, offset) in [(1u8, 0u64), (2, 10), (3, 20)] {
            let row = chunk_row(&conn, &[b; 32]).unwrap().unwrap();
            let loc = location(&conn, row).unwrap().unwrap();
            assert_eq!((loc.pack.as_str(), loc.offset), ("a", offset), "chunk {b}");
        }
        assert!(chunk_row(&conn, &[4; 32]).unwrap().is_none());
        // Same 8-byte prefix, other hash.
        let mut other = [1u8; 32];
        other[31] = 0;
        assert!(!chunk_known(&conn, &other).unwrap());
    }
}
