//! Prune's queries over many packs at once, through temporary tables (they leave nothing in
//! the index file).

use rusqlite::{params, Connection, OptionalExtension};

use super::chunks::{located, ChunkAt, GroupAt, LOCATED_COLUMNS};
use super::sql_error::SqlContext;
use crate::error::Result;

/// Some chunk row pointing into a group of the given packs: each pair is a pack row and the
/// last of its group rows to look at (`i64::MAX`: all). Returns that chunk's hash and its
/// pack's name. `chunks.grp` has no foreign key, whose check would scan `chunks` once per
/// deleted group; this is one scan.
pub(crate) fn chunk_in_groups(
    tx: &Connection,
    groups: &[(i64, i64)],
) -> Result<Option<(Vec<u8>, String)>> {
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS prune_groups (id INTEGER PRIMARY KEY);
         DELETE FROM temp.prune_groups;",
    )
    .sql()?;
    for &(pack, last) in groups {
        tx.execute(
            "INSERT INTO temp.prune_groups SELECT id FROM groups WHERE pack = ?1 AND id <= ?2",
            params![pack, last],
        )
        .sql()?;
    }
    let stray: Option<(Vec<u8>, String)> = tx
        .query_row(
            "SELECT c.hash, p.name FROM chunks c CROSS JOIN groups g ON g.id = c.grp
             CROSS JOIN packs p ON p.id = g.pack
             WHERE c.grp IN (SELECT id FROM temp.prune_groups) LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .sql()?;
    tx.execute_batch("DELETE FROM temp.prune_groups").sql()?;
    Ok(stray)
}

/// Calls `f` with every chunk row of the packs `packs` (rows) and its group, in the order of
/// the packs' names, their groups' offsets and the chunks' offsets.
pub(crate) fn for_each_chunk_of_packs(
    conn: &Connection,
    packs: &[i64],
    mut f: impl FnMut(GroupAt, ChunkAt) -> Result<()>,
) -> Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS repack_packs (id INTEGER PRIMARY KEY);
         DELETE FROM temp.repack_packs;",
    )
    .sql()?;
    {
        let mut ins = conn
            .prepare("INSERT INTO temp.repack_packs VALUES (?1)")
            .sql()?;
        for id in packs {
            ins.execute([id]).sql()?;
        }
    }
    // chunks has no index on grp: one scan of it, ordered by SQLite's sorter (which spills to
    // temporary files), in the order of the packs' names and their groups' offsets.
    let mut st = conn
        .prepare(&format!(
            "SELECT {LOCATED_COLUMNS}
             FROM chunks c CROSS JOIN groups g ON g.id = c.grp CROSS JOIN packs p ON p.id = g.pack
             WHERE g.pack IN (SELECT id FROM temp.repack_packs)
             ORDER BY p.name, g.offset, c.offset, c.id"
        ))
        .sql()?;
    let mut rows = st.query([]).sql()?;
    while let Some(r) = rows.next().sql()? {
        let (g, c) = located(r).sql()?;
        f(g, c)?;
    }
    drop(rows);
    conn.execute_batch("DELETE FROM temp.repack_packs").sql()
}
