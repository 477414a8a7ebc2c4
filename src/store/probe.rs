//! `probe`: what monitoring (`health`) needs to know about a repository, read without the
//! lock and without writing anything: no recovery, no index rebuild, no holder record, not
//! even SQLite's schema upgrade. Spec: `store-format/README.md`, sections "State files" and
//! "Locking".

use std::path::Path;
use std::time::UNIX_EPOCH;

use crate::error::{Error, Result};
use crate::store::config::Config;
use crate::store::index;
use crate::store::last_verify::{self, LastVerify};
use crate::store::lock::{self, Holder};
use crate::store::pending_uploads::Survey;
use crate::store::snapshot_info::SnapshotInfo;
use crate::store::storage::{LocalDir, Storage, CONFIG_KEY};

/// A repository as monitoring sees it.
#[derive(Debug)]
pub(crate) struct Probe {
    /// Committed snapshots, oldest first.
    pub(crate) snapshots: Vec<SnapshotInfo>,
    /// The outcome of the last verify of the whole repository, if any was recorded.
    pub(crate) last_verify: Option<LastVerify>,
    /// Unix seconds when `config.json` was written: when the repository was created.
    pub(crate) created: i64,
    /// Who holds the lock now, by their records (oldest first).
    pub(crate) holders: Vec<Holder>,
    /// On object storage: what this machine's look could not settle or found worth saying
    /// (snapshots its index cache lacks, unfinished uploads). There is no file system whose
    /// free space would mean anything.
    pub(crate) remote: Option<RemoteNotes>,
}

/// What `probe` says of a repository on object storage beyond a local one's figures.
#[derive(Debug)]
pub(crate) struct RemoteNotes {
    /// Snapshot files in the bucket that this machine's index cache does not know (written
    /// by another machine since its last command): their times are unknown here.
    pub(crate) unknown_snapshots: u64,
    /// Snapshots the cache knows that the bucket no longer has (removed elsewhere).
    pub(crate) gone_snapshots: u64,
    /// Unfinished uploads (`pending_uploads`), or why they could not be listed.
    pub(crate) uploads: std::result::Result<Survey, String>,
}

/// Looks at the repository in `root`. No directory or no `config.json` is
/// `Error::NoRepository`; a damaged `config.json` or index is `Error::Corrupt` or
/// `Error::IndexDamaged`; a missing index (rebuilt by the next command) is `Error::Repository`.
pub(crate) fn probe(root: &Path) -> Result<Probe> {
    let meta = match std::fs::metadata(root) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NoRepository(format!(
                "no repository at {}: the directory does not exist",
                root.display()
            )))
        }
        Err(e) => return Err(Error::io(format!("looking at {}", root.display()), e)),
    };
    if !meta.is_dir() {
        return Err(Error::NoRepository(format!(
            "no repository at {}: it is not a directory",
            root.display()
        )));
    }
    // The data files through the storage; the index and the lock records are local.
    let storage = LocalDir::new(root);
    let created = match storage.stat(CONFIG_KEY) {
        Ok(Some(info)) => info
            .modified
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs() as i64),
        Ok(None) => {
            return Err(Error::NoRepository(format!(
                "{} is not an opsi-backup repository (it has no config.json)",
                root.display()
            )))
        }
        Err(e) => {
            return Err(Error::io(
                format!("reading {}", storage.show(CONFIG_KEY)),
                e,
            ))
        }
    };
    let config = Config::load(&storage)?;
    let Some(conn) = index::open_read_only(root, &config.id)? else {
        return Err(Error::Repository(format!(
            "{} has no index.sqlite; the next command that opens the repository rebuilds it",
            root.display()
        )));
    };
    Ok(Probe {
        snapshots: index::snapshots(&conn)?,
        last_verify: last_verify::read(&storage)?,
        created,
        holders: lock::live_holders(root),
        remote: None,
    })
}
