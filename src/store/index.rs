//! The SQLite index (`index.sqlite`): a cache of what the pack and snapshot files say, for
//! fast lookups. Spec: `store-format/README.md`, section "The index". Everything here can be
//! rebuilt from the data files (`rebuild.rs`).

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Error, IoContext, Result};
use crate::logging;
use crate::member::Member;
use crate::store::chunker::ChunkId;
use crate::store::durable;
use crate::store::lock::RepoLock;
use crate::store::pack::{self, GroupEntry};
use crate::store::snapshot::{self, SnapshotInfo};

/// `PRAGMA user_version` of the schema below; also stored as `meta.schema`.
pub(crate) const SCHEMA_VERSION: i64 = 3;

pub(crate) const SCHEMA: &str = "
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE packs (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE,       -- hex BLAKE3 of the pack file
    size  INTEGER NOT NULL
);
CREATE TABLE groups (
    id         INTEGER PRIMARY KEY,
    pack       INTEGER NOT NULL REFERENCES packs(id),
    offset     INTEGER NOT NULL,      -- of the stored bytes in the pack file
    stored_len INTEGER NOT NULL,
    plain_len  INTEGER NOT NULL,
    flags      INTEGER NOT NULL       -- bit 0: zstd; bit 1: delta (reference chunks in group_refs)
);
CREATE INDEX groups_pack ON groups(pack);
CREATE TABLE chunks (
    id     INTEGER PRIMARY KEY,
    hash   BLOB NOT NULL,             -- 32-byte BLAKE3 of the plain chunk; one row per hash
    grp    INTEGER NOT NULL,          -- groups(id); no foreign key and no index (prune scans)
    offset INTEGER NOT NULL,          -- in the group's plain bytes
    len    INTEGER NOT NULL
);
CREATE INDEX chunks_prefix ON chunks(substr(hash, 1, 8));
CREATE TABLE snapshots (
    id       INTEGER PRIMARY KEY,
    name     TEXT NOT NULL UNIQUE,    -- hex BLAKE3 of the snapshot file
    time     INTEGER NOT NULL,
    host     TEXT NOT NULL,
    backends TEXT NOT NULL,           -- JSON array
    sysinfo  TEXT NOT NULL,           -- JSON array of [key, value]
    source   TEXT NOT NULL,
    size     INTEGER NOT NULL,
    added    INTEGER NOT NULL,
    members  INTEGER NOT NULL,
    written  INTEGER NOT NULL,        -- Unix ns when the file was finished (orders equal times)
    meta_chunks BLOB NOT NULL         -- LEB128 count + row ids of the metadata chunks (zigzag-delta LEB128)
);
CREATE TABLE members (            -- a snapshot's members' chunk lists, in batches of consecutive members
    snapshot INTEGER NOT NULL REFERENCES snapshots(id),
    first    INTEGER NOT NULL,        -- archive position (from 0) of the batch's first member
    count    INTEGER NOT NULL,
    chunks   BLOB NOT NULL,           -- zstd: per member, LEB128 count + chunk row ids (zigzag-delta LEB128)
    PRIMARY KEY (snapshot, first)
) WITHOUT ROWID;
";

/// A delta group's reference chunks, as in its pack trailer. Part of schema 3 since format
/// version 3; `add_group_refs` adds it to older indexes.
const GROUP_REFS: &str = "
CREATE TABLE IF NOT EXISTS group_refs (
    grp   INTEGER PRIMARY KEY,        -- groups(id)
    refs  BLOB NOT NULL               -- their 32-byte ids, concatenated, in prefix order
);
";

fn sql(e: rusqlite::Error) -> Error {
    if is_damage(&e) {
        return Error::IndexDamaged {
            repository: None,
            detail: e.to_string(),
        };
    }
    Error::Repository(format!("repository index (index.sqlite): {e}"))
}

/// Whether SQLite found the database file damaged (or not a database at all).
fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

/// `IndexDamaged` errors of `r` name the repository `root`.
fn in_repository<T>(root: &Path, r: Result<T>) -> Result<T> {
    r.map_err(|e| match e {
        Error::IndexDamaged { detail, .. } => Error::IndexDamaged {
            repository: Some(root.to_path_buf()),
            detail,
        },
        e => e,
    })
}

pub(crate) trait SqlContext<T> {
    fn sql(self) -> Result<T>;
}

impl<T> SqlContext<T> for rusqlite::Result<T> {
    fn sql(self) -> Result<T> {
        self.map_err(sql)
    }
}

/// What `open` found.
pub(crate) enum Opened {
    /// The index; `created` when it was missing and was created empty just now (the caller
    /// rebuilds it from the data files under the exclusive lock).
    Ready { conn: Connection, created: bool },
    /// An index of an older schema (its `user_version`): the caller takes the exclusive lock
    /// and calls `replace_outdated`.
    Outdated(i64),
}

/// Opens (creating when missing) the index. A damaged index is `Error::IndexDamaged`, found
/// before anything is written to it: SQLite's errors while opening, then `PRAGMA quick_check`
/// (spec: "The index", damaged index).
pub(crate) fn open(root: &Path, repository_id: &str) -> Result<Opened> {
    in_repository(root, open_checked(root, repository_id))
}

fn open_checked(root: &Path, repository_id: &str) -> Result<Opened> {
    let path = root.join("index.sqlite");
    let created = !path.exists();
    if created {
        // WAL files beside a missing database belong to a deleted one: SQLite would replay them.
        remove_wal(root)?;
        // SQLite gives -wal and -shm the permissions of the database file.
        drop(durable::open_or_create(&path)?);
    }
    let conn = connect(&path)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .sql()?;
    if version != 0 {
        check_intact(&conn)?;
    }
    // An existing file without schema (emptied, or created by a crashed `init`) is rebuilt
    // like a missing one.
    let created = created || version == 0;
    match version {
        0 => {
            let tx = conn.unchecked_transaction().sql()?;
            tx.execute_batch(SCHEMA).sql()?;
            tx.execute_batch(GROUP_REFS).sql()?;
            tx.execute(
                "INSERT INTO meta VALUES ('schema', ?1), ('repository', ?2)",
                params![SCHEMA_VERSION.to_string(), repository_id],
            )
            .sql()?;
            tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
                .sql()?;
            tx.commit().sql()?;
        }
        SCHEMA_VERSION => {
            let id: Option<String> = conn
                .query_row("SELECT value FROM meta WHERE key = 'repository'", [], |r| {
                    r.get(0)
                })
                .optional()
                .sql()?;
            if id.as_deref() != Some(repository_id) {
                return Err(Error::Repository(format!(
                    "{} belongs to another repository; delete it and it is rebuilt from the data files",
                    path.display()
                )));
            }
            add_group_refs(&conn)?;
        }
        1..SCHEMA_VERSION => return Ok(Opened::Outdated(version)),
        v => {
            let by = if v > SCHEMA_VERSION {
                ": it was written by a newer opsi-backup; use that one, or"
            } else {
                ";"
            };
            return Err(Error::Repository(format!(
                "{} has schema version {v}, this opsi-backup knows {SCHEMA_VERSION}{by} delete the index and it is rebuilt from the data files",
                path.display()
            )));
        }
    }
    Ok(Opened::Ready { conn, created })
}

/// Adds `group_refs` (format version 3's delta groups) to an index made by an older program.
/// Not a schema change: programs that do not know the table ignore it, so they keep reading
/// the index of a version 2 repository (spec: "The index").
fn add_group_refs(conn: &Connection) -> Result<()> {
    let has: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'group_refs')",
            [],
            |r| r.get(0),
        )
        .sql()?;
    if !has {
        conn.execute_batch(GROUP_REFS).sql()?;
    }
    Ok(())
}

/// Replaces an index of an older schema by a new, empty one (`created`), which the caller
/// rebuilds from the data files. The index is a cache of those files (spec: "Format
/// versions"). Returns the connection and whether it was created. The caller holds the
/// exclusive lock (`_lock`), so no writer has the old index open; when another process
/// replaced it while we waited for the lock, that one is kept.
pub(crate) fn replace_outdated(
    root: &Path,
    repository_id: &str,
    _lock: &RepoLock,
) -> Result<(Connection, bool)> {
    let path = root.join("index.sqlite");
    if let Opened::Outdated(v) = open(root, repository_id)? {
        logging::notice(format!(
            "{} has schema version {v}; rebuilding it as version {SCHEMA_VERSION} from the data files",
            path.display()
        ));
        remove(root)?;
    }
    match open(root, repository_id)? {
        Opened::Ready { conn, created } => Ok((conn, created)),
        Opened::Outdated(v) => Err(Error::Repository(format!(
            "{} still has schema version {v} after removing it",
            path.display()
        ))),
    }
}

/// `PRAGMA quick_check`: reads every page of the index once (no cross-checks of the indexes
/// against their tables, which `integrity_check` adds). 0.1 s on a 31 MB index (spec: "The
/// index").
fn check_intact(conn: &Connection) -> Result<()> {
    let first: String = conn
        .query_row("PRAGMA quick_check(1)", [], |r| r.get(0))
        .sql()?;
    if first != "ok" {
        return Err(Error::IndexDamaged {
            repository: None,
            detail: format!("quick_check: {first}"),
        });
    }
    Ok(())
}

/// Renames a damaged `index.sqlite` and its WAL files to `index.sqlite.damaged-<UTC time>`
/// (`-wal`, `-shm`), for inspection; returns the new name. The caller holds the exclusive
/// lock, so no process has the index open.
pub(crate) fn move_aside(root: &Path, _lock: &RepoLock) -> Result<std::path::PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let mut name = format!("index.sqlite.damaged-{stamp}");
    let mut n = 1;
    while root.join(&name).exists() {
        n += 1;
        name = format!("index.sqlite.damaged-{stamp}-{n}");
    }
    // The WAL files first: left beside a new index they would be replayed into it.
    for ext in ["-wal", "-shm", ""] {
        let from = root.join(format!("index.sqlite{ext}"));
        let to = root.join(format!("{name}{ext}"));
        match std::fs::rename(&from, &to) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io(format!("moving {} aside", from.display()), e))
            }
            _ => {}
        }
    }
    durable::sync_dir(root)?;
    Ok(root.join(name))
}

/// A new connection to an existing index, set up for WAL and waiting on other writers.
pub(crate) fn connect(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| {
        if is_damage(&e) {
            sql(e)
        } else {
            Error::Repository(format!("{}: {e}", path.display()))
        }
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(600))
        .sql()?;
    conn.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )
    .sql()?;
    Ok(conn)
}

/// The condition finding the chunk whose hash is `?1`. Hashes are indexed by their first 8
/// bytes only (`chunks_prefix`: a UNIQUE on the whole hash would store it a second time);
/// SQLite uses that index only for this exact expression.
pub(crate) const BY_HASH: &str = "substr(hash, 1, 8) = substr(?1, 1, 8) AND hash = ?1";

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

pub(crate) fn pack_known(conn: &Connection, name: &str) -> Result<bool> {
    let mut st = conn
        .prepare_cached("SELECT 1 FROM packs WHERE name = ?1")
        .sql()?;
    st.exists([name]).sql()
}

pub(crate) fn snapshot_known(conn: &Connection, name: &str) -> Result<bool> {
    let mut st = conn
        .prepare_cached("SELECT 1 FROM snapshots WHERE name = ?1")
        .sql()?;
    st.exists([name]).sql()
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
    let mut ins_group = tx.prepare_cached("INSERT INTO groups (pack, offset, stored_len, plain_len, flags) VALUES (?1, ?2, ?3, ?4, ?5)").sql()?;
    let mut ins_chunk = tx
        .prepare_cached("INSERT INTO chunks (hash, grp, offset, len) VALUES (?1, ?2, ?3, ?4)")
        .sql()?;
    for g in groups {
        ins_group
            .execute(params![
                pack,
                g.offset as i64,
                g.stored_len,
                g.plain_len() as i64,
                g.flags
            ])
            .sql()?;
        let grp = tx.last_insert_rowid();
        insert_refs(tx, grp, g)?;
        let mut off = 0u64;
        for (id, len) in &g.chunks {
            let row = match chunk_row(tx, id)? {
                Some(row) => row,
                None => {
                    ins_chunk
                        .execute(params![&id[..], grp, off as i64, len])
                        .sql()?;
                    tx.last_insert_rowid()
                }
            };
            rows(id, row);
            off += u64::from(*len);
        }
    }
    Ok(true)
}

/// Records the reference chunks of group row `grp`, when it is a delta group.
pub(crate) fn insert_refs(tx: &Connection, grp: i64, g: &GroupEntry) -> Result<()> {
    if g.flags & pack::FLAG_DELTA != 0 {
        tx.prepare_cached("INSERT INTO group_refs (grp, refs) VALUES (?1, ?2)")
            .sql()?
            .execute(params![grp, g.refs.concat()])
            .sql()?;
    }
    Ok(())
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

/// Indexes the pack file `name` from its trailer.
pub(crate) fn index_pack_file(tx: &Connection, root: &Path, name: &str) -> Result<bool> {
    index_pack_file_rows(tx, root, name, &mut |_, _| {})
}

/// `index_pack_file`, telling `rows` the chunk row of each of the pack's chunks (when the
/// pack was not indexed yet).
pub(crate) fn index_pack_file_rows(
    tx: &Connection,
    root: &Path,
    name: &str,
    rows: &mut dyn FnMut(&ChunkId, i64),
) -> Result<bool> {
    let (size, groups) = pack::read_trailer(&crate::store::packer::pack_path(root, name))?;
    insert_pack(tx, name, size, &groups, rows)
}

/// Indexes the snapshot file `id`. Every chunk it names, metadata chunks included, must be
/// indexed already: its metadata stream is read from the packs through `tx`.
pub(crate) fn index_snapshot_file(tx: &Connection, root: &Path, id: &str) -> Result<()> {
    index_snapshot_file_rows(tx, root, id, &|_, _| None)
}

/// Where a chunk is listed: the `n`th chunk of member `path`, or (`None`) a metadata chunk.
pub(crate) type ChunkPlace<'a> = (Option<&'a str>, usize);

/// `index_snapshot_file`, taking chunk rows from `known` where it has them (a writer knows
/// those of the chunks it stored and of the parent's it reused) instead of looking each up.
pub(crate) fn index_snapshot_file_rows(
    tx: &Connection,
    root: &Path,
    id: &str,
    known: &dyn Fn(ChunkPlace, &ChunkId) -> Option<i64>,
) -> Result<()> {
    let row_of = |place: ChunkPlace, c: &ChunkId| match known(place, c) {
        Some(row) => Ok(Some(row)),
        None => chunk_row(tx, c),
    };
    tx.execute(
        "INSERT INTO snapshots (name, time, host, backends, sysinfo, source, size, added, members, written, meta_chunks) VALUES (?1, 0, '', '[]', '[]', '', 0, 0, 0, 0, x'')",
        [id],
    )
    .sql()?;
    let row = tx.last_insert_rowid();
    let mut batch = MemberBatch::default();
    let mut rows = Vec::new();
    let file = snapshot::read_snapshot_file(tx, root, id, |m: Member, chunks| {
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
        batch.push(&rows);
        if batch.full() {
            batch.flush(tx, row)?;
        }
        Ok(())
    })?;
    batch.flush(tx, row)?;
    let mut meta_rows = Vec::with_capacity(file.meta_chunks.len());
    for (n, c) in file.meta_chunks.iter().enumerate() {
        meta_rows.push(row_of((None, n), c)?.ok_or_else(|| {
            Error::Corrupt(format!(
                "snapshot {id}: metadata chunk {} is in no pack",
                hex::encode(c)
            ))
        })?);
    }
    let mut meta_chunks = Vec::new();
    push_varint(&mut meta_chunks, meta_rows.len() as u64);
    encode_ids(&meta_rows, &mut meta_chunks);
    let (h, end) = (file.header.meta, file.end);
    tx.execute(
        "UPDATE snapshots SET time = ?2, host = ?3, backends = ?4, sysinfo = ?5, source = ?6, size = ?7, added = ?8, members = ?9, written = ?10, meta_chunks = ?11 WHERE id = ?1",
        params![
            row,
            h.time,
            h.host,
            serde_json::to_string(&h.backends).expect("json"),
            serde_json::to_string(&h.sysinfo).expect("json"),
            h.source,
            end.size as i64,
            (end.packs_added + file.len) as i64,
            end.members as i64,
            end.written,
            meta_chunks
        ],
    )
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

/// Consecutive members' chunk lists collected into one `members` row. The members' metadata
/// is not copied here: it is in the snapshot's metadata stream, deduplicated in the packs
/// (a copy cost ~100 KB of index per snapshot of a 1000-client server).
#[derive(Default)]
struct MemberBatch {
    first: i64,
    count: i64,
    chunks: Vec<u8>,
}

impl MemberBatch {
    const MAX_MEMBERS: i64 = 256;
    const MAX_CHUNK_BYTES: usize = 1 << 20;

    fn push(&mut self, rows: &[i64]) {
        push_varint(&mut self.chunks, rows.len() as u64);
        encode_ids(rows, &mut self.chunks);
        self.count += 1;
    }

    fn full(&self) -> bool {
        self.count >= Self::MAX_MEMBERS || self.chunks.len() >= Self::MAX_CHUNK_BYTES
    }

    fn flush(&mut self, tx: &Connection, snapshot: i64) -> Result<()> {
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

const INFO_COLUMNS: &str =
    "name, time, host, backends, sysinfo, source, size, added, members, written";

fn info_row(r: &rusqlite::Row) -> rusqlite::Result<SnapshotInfo> {
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

/// All snapshots, oldest first.
/// Committed snapshots, oldest first in the order of `snapshot::recency`.
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

fn damaged(what: &str) -> Error {
    Error::Corrupt(format!(
        "index: member list damaged ({what}); run rebuild-index"
    ))
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

/// Calls `f` with every member of a snapshot, in order, and its chunk row ids: the members
/// come from the snapshot's metadata stream (read from the packs, checked), the row ids from
/// the index, and both must agree member by member.
pub(crate) fn for_each_member(
    conn: &Connection,
    root: &Path,
    snapshot_row: i64,
    mut f: impl FnMut(Member, Vec<i64>) -> Result<()>,
) -> Result<()> {
    let name: String = conn
        .query_row(
            "SELECT name FROM snapshots WHERE id = ?1",
            [snapshot_row],
            |r| r.get(0),
        )
        .sql()?;
    let mut lists = ChunkLists::of(conn, snapshot_row)?;
    snapshot::read_snapshot_file(conn, root, &name, |m, hashes| {
        let ids = lists
            .next_member()?
            .ok_or_else(|| damaged("fewer chunk lists than members"))?;
        if ids.len() != hashes.len() {
            return Err(damaged(&format!("chunk list of {}", m.path)));
        }
        f(m, ids)
    })?;
    if lists.next_member()?.is_some() {
        return Err(damaged("more chunk lists than members"));
    }
    Ok(())
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

/// Appends chunk row ids as LEB128 varints of the zigzag-encoded difference to the previous
/// id (the first to 0): a run of new chunks (consecutive ids) costs one byte per chunk.
pub(crate) fn encode_ids(ids: &[i64], out: &mut Vec<u8>) {
    let mut prev = 0i64;
    for &id in ids {
        let d = id.wrapping_sub(prev);
        prev = id;
        push_varint(out, ((d << 1) ^ (d >> 63)) as u64);
    }
}

fn push_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn read_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Reads `n` ids written by `encode_ids`; `None` when the bytes are damaged.
pub(crate) fn decode_ids(b: &[u8], at: &mut usize, n: u64) -> Option<Vec<i64>> {
    let mut ids = Vec::with_capacity(n.min(1 << 20) as usize);
    let mut prev = 0i64;
    for _ in 0..n {
        let z = read_varint(b, at)?;
        prev = prev.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64));
        ids.push(prev);
    }
    Some(ids)
}

/// Removes `index.sqlite` and its WAL files, these first (a WAL file left beside a new
/// database would be replayed into it).
pub(crate) fn remove(root: &Path) -> Result<()> {
    remove_wal(root)?;
    remove_file(&root.join("index.sqlite"))
}

fn remove_wal(root: &Path) -> Result<()> {
    remove_file(&root.join("index.sqlite-wal"))?;
    remove_file(&root.join("index.sqlite-shm"))
}

fn remove_file(p: &Path) -> Result<()> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", p.display()), e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_index() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let Opened::Ready { conn, created } = open(dir.path(), "test").unwrap() else {
            panic!("a new index is current");
        };
        assert!(created);
        (dir, conn)
    }

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

    #[test]
    fn id_lists_round_trip_compactly() {
        let ids = vec![1, 2, 3, 4, 1000, 5, 6, 7, i64::MAX, 1];
        let mut b = Vec::new();
        encode_ids(&ids, &mut b);
        let mut at = 0;
        assert_eq!(decode_ids(&b, &mut at, ids.len() as u64).unwrap(), ids);
        assert_eq!(at, b.len());
        let mut b = Vec::new();
        encode_ids(&[10, 11, 12, 13], &mut b);
        assert_eq!(b.len(), 4);
        assert!(decode_ids(&[0x80], &mut 0, 1).is_none());
        assert!(decode_ids(&[2], &mut 0, 2).is_none());
    }
}
