//! The index file itself: opening it (creating, checking, replacing an outdated one),
//! connections and their transactions, moving a damaged one aside, removing it.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use super::schema::{self, SCHEMA_VERSION};
use super::sql_error::{in_repository, is_damage, sql, SqlContext};
use crate::error::{Error, Result};
use crate::logging;
use crate::store::durable;
use crate::store::lock::RepoLock;

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
    let version = schema::user_version(&conn)?;
    if version != 0 {
        schema::check_intact(&conn)?;
    }
    // An existing file without schema (emptied, or created by a crashed `init`) is rebuilt
    // like a missing one.
    let created = created || version == 0;
    match version {
        0 => schema::create(&conn, repository_id)?,
        SCHEMA_VERSION => {
            let id = schema::repository_id(&conn)?;
            if id.as_deref() != Some(repository_id) {
                return Err(Error::Repository(format!(
                    "{} belongs to another repository; delete it and it is rebuilt from the data files",
                    path.display()
                )));
            }
            schema::add_group_refs(&conn)?;
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

/// Opens an existing index only to read it, for monitoring: no file is created (`None` when
/// there is no index), no schema is added, nothing is written. A damaged index is
/// `Error::IndexDamaged`; one of another schema or repository is `Error::Repository` (the
/// next command that opens the repository rebuilds it).
pub(crate) fn open_read_only(root: &Path, repository_id: &str) -> Result<Option<Connection>> {
    let path = root.join("index.sqlite");
    if !path.exists() {
        return Ok(None);
    }
    in_repository(root, read_only_checked(&path, repository_id)).map(Some)
}

fn read_only_checked(path: &Path, repository_id: &str) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| {
        if is_damage(&e) {
            sql(e)
        } else {
            Error::Repository(format!("{}: {e}", path.display()))
        }
    })?;
    // Readers of a WAL database do not block writers; a checkpoint in progress is short.
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .sql()?;
    let version = schema::user_version(&conn)?;
    if version != SCHEMA_VERSION {
        return Err(Error::Repository(format!(
            "{} has schema version {version}, this opsi-backup knows {SCHEMA_VERSION}; the next \
             command that opens the repository rebuilds it",
            path.display()
        )));
    }
    schema::check_intact(&conn)?;
    if schema::repository_id(&conn)?.as_deref() != Some(repository_id) {
        return Err(Error::Repository(format!(
            "{} belongs to another repository",
            path.display()
        )));
    }
    Ok(conn)
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

/// A write transaction that takes SQLite's write lock at once (a writer waits for another
/// at the start, not halfway through).
pub(crate) fn immediate(conn: &mut Connection) -> Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .sql()
}

/// Begins a read transaction held across many lookups (`end_read` ends it): SQLite then
/// locks once, not for every lookup.
pub(crate) fn begin_read(conn: &Connection) -> Result<()> {
    conn.execute_batch("BEGIN").sql()
}

/// Ends the read transaction of `begin_read`.
pub(crate) fn end_read(conn: &Connection) -> Result<()> {
    conn.execute_batch("COMMIT").sql()
}

/// A read transaction around many lookups, unless the connection is in one already: SQLite
/// then takes and drops its file locks once, not around every statement (reading a
/// snapshot's metadata looks up each of its ~2 KiB chunks twice). Ends when dropped.
pub(crate) struct ReadTx<'c>(Option<&'c Connection>);

/// Starts a `ReadTx` on `conn`.
pub(crate) fn read_tx(conn: &Connection) -> Result<ReadTx<'_>> {
    if !conn.is_autocommit() {
        return Ok(ReadTx(None));
    }
    begin_read(conn)?;
    Ok(ReadTx(Some(conn)))
}

impl Drop for ReadTx<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.0 {
            // A read transaction has nothing to lose; one that cannot end leaves the
            // connection in it, which the next `BEGIN` reports.
            let _ = end_read(conn);
        }
    }
}

/// Empties every table, in the caller's transaction (rebuild-index fills them again).
pub(crate) fn clear(tx: &Transaction<'_>) -> Result<()> {
    schema::clear(tx)
}

/// Renames a damaged `index.sqlite` and its WAL files to `index.sqlite.damaged-<UTC time>`
/// (`-wal`, `-shm`), for inspection; returns the new name. The caller holds the exclusive
/// lock, so no process has the index open.
pub(crate) fn move_aside(root: &Path, _lock: &RepoLock) -> Result<PathBuf> {
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
