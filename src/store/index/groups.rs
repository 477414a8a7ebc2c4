//! The `groups` table and `group_refs` (the reference chunks of delta groups).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension};

use super::sql_error::{damaged, SqlContext};
use crate::error::Result;
use crate::store::chunker::ChunkId;
use crate::store::pack::{self, GroupEntry};

/// Adds group `g` of pack row `pack`, and its reference chunks when it is a delta group;
/// returns the group's row. Its chunks are the caller's (new rows, or rows re-pointed).
pub(crate) fn insert_group(tx: &Connection, pack: i64, g: &GroupEntry) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO groups (pack, offset, stored_len, plain_len, flags) VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .sql()?
    .execute(params![
        pack,
        g.offset as i64,
        g.stored_len,
        g.plain_len() as i64,
        g.flags
    ])
    .sql()?;
    let grp = tx.last_insert_rowid();
    if g.flags & pack::FLAG_DELTA != 0 {
        tx.prepare_cached("INSERT INTO group_refs (grp, refs) VALUES (?1, ?2)")
            .sql()?
            .execute(params![grp, g.refs.concat()])
            .sql()?;
    }
    Ok(grp)
}

/// The reference chunks of delta group row `grp`.
pub(crate) fn group_refs(conn: &Connection, grp: i64) -> Result<Vec<ChunkId>> {
    let refs: Option<Vec<u8>> = conn
        .prepare_cached("SELECT refs FROM group_refs WHERE grp = ?1")
        .sql()?
        .query_row([grp], |r| r.get(0))
        .optional()
        .sql()?;
    let refs = refs.ok_or_else(|| damaged(&format!("delta group #{grp} has no reference list")))?;
    if refs.len() % 32 != 0 {
        return Err(damaged(&format!("reference list of delta group #{grp}")));
    }
    Ok(refs
        .chunks_exact(32)
        .map(|c| c.try_into().expect("32 bytes"))
        .collect())
}

/// Every delta group's row and its reference list as stored (32-byte ids concatenated).
pub(crate) fn delta_groups(conn: &Connection) -> Result<HashMap<i64, Vec<u8>>> {
    let mut st = conn.prepare("SELECT grp, refs FROM group_refs").sql()?;
    let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).sql()?;
    rows.collect::<rusqlite::Result<_>>().sql()
}

/// The delta groups holding a chunk row greater than `after`, with their reference lists as
/// stored.
pub(crate) fn delta_groups_after(tx: &Connection, after: i64) -> Result<Vec<(i64, Vec<u8>)>> {
    tx.prepare(
        "SELECT grp, refs FROM group_refs
         WHERE grp IN (SELECT DISTINCT grp FROM chunks WHERE id > ?1)",
    )
    .sql()?
    .query_map([after], |r| Ok((r.get(0)?, r.get(1)?)))
    .sql()?
    .collect::<rusqlite::Result<_>>()
    .sql()
}

/// Removes the chunk rows greater than `after` of group row `grp`; returns how many.
pub(crate) fn delete_group_chunks_after(tx: &Connection, grp: i64, after: i64) -> Result<u64> {
    Ok(tx
        .execute(
            "DELETE FROM chunks WHERE grp = ?1 AND id > ?2",
            [grp, after],
        )
        .sql()? as u64)
}

/// Calls `f` with the row, pack row, stored and plain length of every group.
pub(crate) fn for_each_group(
    conn: &Connection,
    mut f: impl FnMut(i64, i64, u64, u64) -> Result<()>,
) -> Result<()> {
    let mut st = conn
        .prepare("SELECT id, pack, stored_len, plain_len FROM groups")
        .sql()?;
    let mut rows = st.query([]).sql()?;
    while let Some(r) = rows.next().sql()? {
        let (id, pack, stored, plain): (i64, i64, i64, i64) = (
            r.get(0).sql()?,
            r.get(1).sql()?,
            r.get(2).sql()?,
            r.get(3).sql()?,
        );
        f(id, pack, stored as u64, plain as u64)?;
    }
    Ok(())
}

/// The greatest group row of pack row `pack` (0 when it has none): groups added later have
/// greater rows.
pub(crate) fn last_group_row(conn: &Connection, pack: i64) -> Result<i64> {
    conn.query_row(
        "SELECT COALESCE(MAX(id), 0) FROM groups WHERE pack = ?1",
        [pack],
        |r| r.get(0),
    )
    .sql()
}

/// Removes the groups of pack row `pack` up to row `upto` (`i64::MAX`: all of them), with
/// their reference lists.
pub(crate) fn delete_groups(tx: &Connection, pack: i64, upto: i64) -> Result<()> {
    tx.execute(
        "DELETE FROM group_refs WHERE grp IN (SELECT id FROM groups WHERE pack = ?1 AND id <= ?2)",
        params![pack, upto],
    )
    .sql()?;
    tx.execute(
        "DELETE FROM groups WHERE pack = ?1 AND id <= ?2",
        params![pack, upto],
    )
    .sql()?;
    Ok(())
}
