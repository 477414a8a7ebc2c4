//! Verify's queries: the packs to read back with their stored bytes, then their groups and
//! chunk rows handed over one pack at a time, so that verify's memory does not grow with the
//! number of chunks. One snapshot's chunk rows are held in a temporary table (temporary
//! tables live in SQLite's temporary files and leave nothing in the index file).

use rusqlite::{params, Connection};

use super::chunks::ChunkAt;
use super::sql_error::SqlContext;
use crate::error::Result;

/// Which chunk rows a verify reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowsToRead {
    /// Every chunk row of the index.
    All,
    /// The rows put into the wanted table (`clear_wanted`, `add_wanted`): one snapshot's.
    Wanted,
}

impl RowsToRead {
    /// The `FROM` clause that yields the chunk rows as `c`.
    fn chunks(self) -> &'static str {
        match self {
            RowsToRead::All => "chunks c",
            RowsToRead::Wanted => "temp.verify_wanted w CROSS JOIN chunks c ON c.id = w.row",
        }
    }
}

/// A group to read back and its chunk rows to check, in offset order.
#[derive(Debug)]
pub(crate) struct GroupRows {
    pub id: i64,
    pub offset: u64,
    pub stored_len: u32,
    pub plain_len: u64,
    pub flags: u8,
    pub chunks: Vec<ChunkAt>,
}

/// Empties (creating it when needed) the table of wanted chunk rows.
pub(crate) fn clear_wanted(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS verify_wanted (row INTEGER PRIMARY KEY);
         DELETE FROM temp.verify_wanted;",
    )
    .sql()
}

/// Adds `rows` (emptied) to the wanted chunk rows, in one transaction, in row order (the
/// table's B-tree then grows at its end).
pub(crate) fn add_wanted(conn: &Connection, rows: &mut Vec<i64>) -> Result<()> {
    rows.sort_unstable();
    rows.dedup();
    let tx = conn.unchecked_transaction().sql()?;
    {
        let mut ins = tx
            .prepare_cached("INSERT OR IGNORE INTO temp.verify_wanted VALUES (?1)")
            .sql()?;
        for row in rows.iter() {
            ins.execute([row]).sql()?;
        }
    }
    tx.commit().sql()?;
    rows.clear();
    Ok(())
}

/// The wanted chunk rows that no indexed group of an indexed pack holds, in row order.
pub(crate) fn wanted_not_indexed(conn: &Connection) -> Result<Vec<i64>> {
    let mut st = conn
        .prepare(
            "SELECT w.row FROM temp.verify_wanted w WHERE NOT EXISTS (
                 SELECT 1 FROM chunks c CROSS JOIN groups g ON g.id = c.grp
                 CROSS JOIN packs p ON p.id = g.pack WHERE c.id = w.row)
             ORDER BY w.row",
        )
        .sql()?;
    let rows = st.query_map([], |r| r.get(0)).sql()?;
    rows.collect::<rusqlite::Result<_>>().sql()
}

/// Every pack holding chunk rows to read, by name, with the stored bytes of its groups
/// that hold some (the bytes verify reads back besides the rest of the file).
pub(crate) fn pack_sizes(conn: &Connection, rows: RowsToRead) -> Result<Vec<(String, u64)>> {
    // chunks has no index on grp: one scan of it (or of the wanted rows) into SQLite's set of
    // the groups in use, which lives in its temporary files past the page cache.
    let mut st = conn
        .prepare(&format!(
            "SELECT p.name, SUM(g.stored_len) FROM groups g CROSS JOIN packs p ON p.id = g.pack
             WHERE g.id IN (SELECT c.grp FROM {})
             GROUP BY g.pack ORDER BY p.name",
            rows.chunks()
        ))
        .sql()?;
    let packs = st
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))
        .sql()?;
    packs.collect::<rusqlite::Result<_>>().sql()
}

/// Calls `f` with each pack of `order` (by its place in `order`) and its groups to read with
/// their chunk rows, in the order of `order`, the groups' offsets and the chunks' offsets; a
/// pack without such rows gets no groups. Stops when `f` returns false. Memory: one pack's
/// rows; SQLite's sorter spills to temporary files (one scan of `chunks`, or of the wanted
/// rows, then the sort).
pub(crate) fn for_each_pack_to_read(
    conn: &Connection,
    order: &[String],
    rows: RowsToRead,
    mut f: impl FnMut(usize, Vec<GroupRows>) -> Result<bool>,
) -> Result<()> {
    conn.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS verify_order (
             pack INTEGER PRIMARY KEY, place INTEGER NOT NULL);
         DELETE FROM temp.verify_order;",
    )
    .sql()?;
    {
        let tx = conn.unchecked_transaction().sql()?;
        {
            let mut ins = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO temp.verify_order SELECT id, ?2 FROM packs WHERE name = ?1",
                )
                .sql()?;
            for (place, name) in order.iter().enumerate() {
                ins.execute(params![name, place as i64]).sql()?;
            }
        }
        tx.commit().sql()?;
    }
    let handed = hand_over(conn, order.len(), rows, &mut f);
    conn.execute_batch("DELETE FROM temp.verify_order").sql()?;
    handed
}

/// The stream of `for_each_pack_to_read` over the filled `verify_order` table.
fn hand_over(
    conn: &Connection,
    packs: usize,
    rows: RowsToRead,
    f: &mut impl FnMut(usize, Vec<GroupRows>) -> Result<bool>,
) -> Result<()> {
    let mut st = conn
        .prepare(&format!(
            "SELECT o.place, g.id, g.offset, g.stored_len, g.plain_len, g.flags,
                    c.id, c.hash, c.offset, c.len
             FROM {} CROSS JOIN groups g ON g.id = c.grp
             CROSS JOIN temp.verify_order o ON o.pack = g.pack
             ORDER BY o.place, g.offset, g.id, c.offset, c.id",
            rows.chunks()
        ))
        .sql()?;
    let mut found = st.query([]).sql()?;
    // The next place to hand over, and the groups of the pack being collected.
    let mut next = 0;
    let mut groups: Vec<GroupRows> = Vec::new();
    while let Some(r) = found.next().sql()? {
        let place = r.get::<_, i64>(0).sql()? as usize;
        if place >= next {
            // A new pack: the one collected, then those between without rows.
            if !groups.is_empty() && !f(next - 1, std::mem::take(&mut groups))? {
                return Ok(());
            }
            for empty in next..place {
                if !f(empty, Vec::new())? {
                    return Ok(());
                }
            }
            next = place + 1;
        }
        let id: i64 = r.get(1).sql()?;
        if groups.last().is_none_or(|g| g.id != id) {
            groups.push(GroupRows {
                id,
                offset: r.get::<_, i64>(2).sql()? as u64,
                stored_len: r.get(3).sql()?,
                plain_len: r.get::<_, i64>(4).sql()? as u64,
                flags: r.get(5).sql()?,
                chunks: Vec::new(),
            });
        }
        let hash: Vec<u8> = r.get(7).sql()?;
        groups.last_mut().expect("pushed").chunks.push(ChunkAt {
            row: r.get(6).sql()?,
            hash: hash.try_into().unwrap_or([0; 32]),
            offset: r.get::<_, i64>(8).sql()? as u64,
            len: r.get(9).sql()?,
        });
    }
    if !groups.is_empty() && !f(next - 1, groups)? {
        return Ok(());
    }
    for empty in next..packs {
        if !f(empty, Vec::new())? {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::index::tests::new_index;

    /// Adds a group of `pack` at `offset` with chunks at the given plain offsets (inserted in
    /// that order); returns their rows.
    fn group(conn: &Connection, pack: i64, offset: i64, stored: i64, chunks: &[i64]) -> Vec<i64> {
        conn.execute(
            "INSERT INTO groups (pack, offset, stored_len, plain_len, flags) VALUES (?1, ?2, ?3, 1000, 1)",
            params![pack, offset, stored],
        )
        .unwrap();
        let grp = conn.last_insert_rowid();
        chunks
            .iter()
            .map(|&at| {
                conn.execute(
                    "INSERT INTO chunks (hash, grp, offset, len) VALUES (randomblob(32), ?1, ?2, 10)",
                    params![grp, at],
                )
                .unwrap();
                conn.last_insert_rowid()
            })
            .collect()
    }

    fn pack(conn: &Connection, name: &str) -> i64 {
        conn.execute("INSERT INTO packs (name, size) VALUES (?1, 0)", [name])
            .unwrap();
        conn.last_insert_rowid()
    }

    /// A pack as handed over: its place and, per group, its offset and its chunks' offsets.
    type Handed = (usize, Vec<(u64, Vec<u64>)>);

    /// What `for_each_pack_to_read` hands over.
    fn handed(conn: &Connection, order: &[&str], rows: RowsToRead) -> Vec<Handed> {
        let order: Vec<String> = order.iter().map(|s| s.to_string()).collect();
        let mut out = Vec::new();
        for_each_pack_to_read(conn, &order, rows, |place, groups| {
            let groups = groups
                .iter()
                .map(|g| (g.offset, g.chunks.iter().map(|c| c.offset).collect()))
                .collect();
            out.push((place, groups));
            Ok(true)
        })
        .unwrap();
        out
    }

    #[test]
    fn packs_are_handed_over_one_at_a_time_in_the_order_asked() {
        let (_dir, conn) = new_index();
        let (a, b) = (pack(&conn, "aa"), pack(&conn, "bb"));
        pack(&conn, "cc"); // no groups
        group(&conn, a, 500, 70, &[300, 0]);
        let first = group(&conn, a, 0, 30, &[20, 10, 0]);
        group(&conn, b, 0, 5, &[]); // its chunks pruned: nothing to read
        group(&conn, b, 5, 40, &[0]);

        assert_eq!(
            pack_sizes(&conn, RowsToRead::All).unwrap(),
            [("aa".to_string(), 100), ("bb".to_string(), 40)]
        );
        assert_eq!(
            handed(&conn, &["cc", "bb", "aa", "dd"], RowsToRead::All),
            [
                (0, vec![]),
                (1, vec![(5, vec![0])]),
                (2, vec![(0, vec![0, 10, 20]), (500, vec![0, 300])]),
                (3, vec![]),
            ]
        );
        let mut calls = 0;
        for_each_pack_to_read(
            &conn,
            &["bb".into(), "aa".into()],
            RowsToRead::All,
            |_, _| {
                calls += 1;
                Ok(false)
            },
        )
        .unwrap();
        assert_eq!(calls, 1, "false stops the stream");

        // One snapshot's rows: one chunk of the first group, and a row the index lacks.
        clear_wanted(&conn).unwrap();
        add_wanted(&conn, &mut vec![first[1], 9999, first[1]]).unwrap();
        assert_eq!(wanted_not_indexed(&conn).unwrap(), [9999]);
        assert_eq!(
            pack_sizes(&conn, RowsToRead::Wanted).unwrap(),
            [("aa".to_string(), 30)]
        );
        assert_eq!(
            handed(&conn, &["aa"], RowsToRead::Wanted),
            [(0, vec![(0, vec![10])])]
        );
        // Chunk rows of a group that is gone are missing from the index too.
        conn.execute("DELETE FROM groups WHERE pack = ?1", [b])
            .unwrap();
        let lost = conn
            .query_row("SELECT id FROM chunks WHERE offset = 0 AND len = 10 AND grp NOT IN (SELECT id FROM groups)", [], |r| r.get::<_, i64>(0))
            .unwrap();
        add_wanted(&conn, &mut vec![lost]).unwrap();
        assert_eq!(wanted_not_indexed(&conn).unwrap(), [lost, 9999]);
    }
}
