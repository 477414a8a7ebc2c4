//! The schema of the index: its DDL (copied in the spec, section "The index") and version.

use rusqlite::{params, Connection, OptionalExtension};

use super::sql_error::SqlContext;
use crate::error::{Error, Result};

/// `PRAGMA user_version` of the schema below; also stored as `meta.schema`.
pub(crate) const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
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

/// The schema version of an index: 0 when it has none (new or emptied).
pub(super) fn user_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .sql()
}

/// Creates the tables of an index without schema, for the repository `repository_id`.
pub(super) fn create(conn: &Connection, repository_id: &str) -> Result<()> {
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
    tx.commit().sql()
}

/// The id of the repository the index was made for (`meta.repository`).
pub(super) fn repository_id(conn: &Connection) -> Result<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE key = 'repository'", [], |r| {
        r.get(0)
    })
    .optional()
    .sql()
}

/// Adds `group_refs` (format version 3's delta groups) to an index made by an older program.
/// Not a schema change: programs that do not know the table ignore it, so they keep reading
/// the index of a version 2 repository (spec: "The index").
pub(super) fn add_group_refs(conn: &Connection) -> Result<()> {
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

/// `PRAGMA quick_check`: reads every page of the index once (no cross-checks of the indexes
/// against their tables, which `integrity_check` adds). 0.1 s on a 31 MB index (spec: "The
/// index").
pub(super) fn check_intact(conn: &Connection) -> Result<()> {
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

/// Empties every table (rebuild-index fills them again from the data files).
pub(super) fn clear(tx: &Connection) -> Result<()> {
    tx.execute_batch("DELETE FROM members; DELETE FROM snapshots; DELETE FROM chunks; DELETE FROM group_refs; DELETE FROM groups; DELETE FROM packs;").sql()
}

/// Records in the index that its repository is encrypted (`meta.encrypted`), so that a
/// `config.json` replaced later by a plain one is refused while this cache exists (spec:
/// "Threat model", downgrade). Not a schema change: older programs ignore the row.
pub(crate) fn remember_encrypted(conn: &Connection) -> Result<()> {
    conn.execute("INSERT OR REPLACE INTO meta VALUES ('encrypted', '1')", [])
        .sql()
        .map(|_| ())
}

/// Whether `remember_encrypted` was called on this index.
pub(crate) fn remembers_encrypted(conn: &Connection) -> Result<bool> {
    conn.query_row("SELECT value FROM meta WHERE key = 'encrypted'", [], |r| {
        r.get::<_, String>(0)
    })
    .optional()
    .sql()
    .map(|v| v.is_some())
}
