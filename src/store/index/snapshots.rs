//! The `snapshots` table: committed snapshots, their facts and metadata chunks; adding one
//! (`NewSnapshot`, with its members' chunk lists) and removing one.

use rusqlite::{params, Connection, OptionalExtension};

use super::id_list::{decode_ids, encode_ids, push_varint, read_varint};
use super::members::MemberBatch;
use super::sql_error::SqlContext;
use crate::error::{Error, Result};
use crate::store::snapshot_info::SnapshotInfo;

/// Where a chunk is listed: the `n`th chunk of member `path`, or (`None`) a metadata chunk.
pub(crate) type ChunkPlace<'a> = (Option<&'a str>, usize);

pub(crate) fn snapshot_known(conn: &Connection, name: &str) -> Result<bool> {
    let mut st = conn
        .prepare_cached("SELECT 1 FROM snapshots WHERE name = ?1")
        .sql()?;
    st.exists([name]).sql()
}

const INFO_COLUMNS: &str =
    "name, time, host, backends, sysinfo, source, size, added, members, written";

fn info_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SnapshotInfo> {
    let json = |i: usize| -> rusqlite::Result<String> { r.get(i) };
    Ok(SnapshotInfo {
        id: r.get(0)?,
        time: r.get(1)?,
        host: r.get(2)?,
        backends: serde_json::from_str(&json(3)?).unwrap_or_default(),
        sysinfo: serde_json::from_str(&json(4)?).unwrap_or_default(),
        source: r.get(5)?,
        size: r.get::<_, i64>(6)? as u64,
        added: r.get::<_, i64>(7)? as u64,
        members: r.get::<_, i64>(8)? as u64,
        written: r.get(9)?,
    })
}

/// Committed snapshots, oldest first in the order of `snapshot_info::recency`.
pub(crate) fn snapshots(conn: &Connection) -> Result<Vec<SnapshotInfo>> {
    let mut st = conn
        .prepare(&format!("SELECT {INFO_COLUMNS} FROM snapshots"))
        .sql()?;
    let rows = st.query_map([], info_row).sql()?;
    let mut list: Vec<SnapshotInfo> = rows.collect::<rusqlite::Result<_>>().sql()?;
    list.sort_by(|a, b| a.recency().cmp(&b.recency()));
    Ok(list)
}

pub(crate) fn snapshot(conn: &Connection, name: &str) -> Result<Option<SnapshotInfo>> {
    conn.query_row(
        &format!("SELECT {INFO_COLUMNS} FROM snapshots WHERE name = ?1"),
        [name],
        info_row,
    )
    .optional()
    .sql()
}

/// The row id of a snapshot, or an error naming it.
pub(crate) fn snapshot_row(conn: &Connection, name: &str) -> Result<i64> {
    conn.query_row("SELECT id FROM snapshots WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()
    .sql()?
    .ok_or_else(|| Error::Invalid(format!("no snapshot {name} in the repository")))
}

/// The name (id) of snapshot row `row`.
pub(crate) fn snapshot_name(conn: &Connection, row: i64) -> Result<String> {
    conn.query_row("SELECT name FROM snapshots WHERE id = ?1", [row], |r| {
        r.get(0)
    })
    .sql()
}

/// The rows of all snapshots.
pub(crate) fn snapshot_rows(conn: &Connection) -> Result<Vec<i64>> {
    let mut st = conn.prepare("SELECT id FROM snapshots").sql()?;
    let rows = st.query_map([], |r| r.get(0)).sql()?;
    rows.collect::<rusqlite::Result<_>>().sql()
}

/// Removes snapshot row `row` and its members' chunk lists.
pub(crate) fn delete_snapshot(tx: &Connection, row: i64) -> Result<()> {
    tx.execute("DELETE FROM members WHERE snapshot = ?1", [row])
        .sql()?;
    tx.execute("DELETE FROM snapshots WHERE id = ?1", [row])
        .sql()?;
    Ok(())
}

/// The row ids of the metadata chunks of snapshot `snapshot_row`, in stream order.
pub(crate) fn meta_chunk_rows(conn: &Connection, snapshot_row: i64) -> Result<Vec<i64>> {
    let b: Vec<u8> = conn
        .prepare_cached("SELECT meta_chunks FROM snapshots WHERE id = ?1")
        .sql()?
        .query_row([snapshot_row], |r| r.get(0))
        .sql()?;
    let mut at = 0;
    read_varint(&b, &mut at)
        .and_then(|n| decode_ids(&b, &mut at, n))
        .ok_or_else(|| {
            Error::Corrupt("index: metadata chunk list damaged; run rebuild-index".into())
        })
}

/// A snapshot being added, in the caller's transaction: its row comes first (its facts are
/// filled in by `finish`), then its members' chunk lists one member at a time, so that a
/// snapshot of any size is indexed in bounded memory.
pub(crate) struct NewSnapshot<'t> {
    tx: &'t Connection,
    row: i64,
    batch: MemberBatch,
}

impl<'t> NewSnapshot<'t> {
    /// Adds the row of snapshot `name`, its facts still empty.
    pub(crate) fn begin(tx: &'t Connection, name: &str) -> Result<NewSnapshot<'t>> {
        tx.execute(
            "INSERT INTO snapshots (name, time, host, backends, sysinfo, source, size, added, members, written, meta_chunks) VALUES (?1, 0, '', '[]', '[]', '', 0, 0, 0, 0, x'')",
            [name],
        )
        .sql()?;
        Ok(NewSnapshot {
            tx,
            row: tx.last_insert_rowid(),
            batch: MemberBatch::default(),
        })
    }

    /// Adds the chunk rows of the next member.
    pub(crate) fn member(&mut self, rows: &[i64]) -> Result<()> {
        self.batch.push(rows);
        if self.batch.full() {
            self.batch.flush(self.tx, self.row)?;
        }
        Ok(())
    }

    /// Writes the last members' chunk lists, then the snapshot's facts (`info`; its `id` is
    /// the name given to `begin`) and the rows of its metadata chunks.
    pub(crate) fn finish(mut self, info: &SnapshotInfo, meta_rows: &[i64]) -> Result<()> {
        self.batch.flush(self.tx, self.row)?;
        let mut meta_chunks = Vec::new();
        push_varint(&mut meta_chunks, meta_rows.len() as u64);
        encode_ids(meta_rows, &mut meta_chunks);
        self.tx.execute(
            "UPDATE snapshots SET time = ?2, host = ?3, backends = ?4, sysinfo = ?5, source = ?6, size = ?7, added = ?8, members = ?9, written = ?10, meta_chunks = ?11 WHERE id = ?1",
            params![
                self.row,
                info.time,
                info.host,
                serde_json::to_string(&info.backends).expect("json"),
                serde_json::to_string(&info.sysinfo).expect("json"),
                info.source,
                info.size as i64,
                info.added as i64,
                info.members as i64,
                info.written,
                meta_chunks
            ],
        )
        .sql()?;
        Ok(())
    }
}
