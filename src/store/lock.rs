//! The repository lock (`lock` file, fs2/flock). Spec: `store-format/README.md`, section
//! "Locking". The kernel drops a lock when its holder dies, so there are no stale locks.

use std::fs::File;
use std::io;
use std::path::Path;

use crate::error::{Error, Result};
use crate::store::durable;

/// A held lock on the repository; released on drop.
#[derive(Debug)]
pub(crate) struct RepoLock {
    file: File,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum LockKind {
    /// Held by writers of snapshots and by readers: they only add files.
    Shared,
    /// Held by anything that deletes files or rewrites the index.
    Exclusive,
}

impl RepoLock {
    /// Takes the lock, waiting for it if needed. While it waits it says so on stderr, naming
    /// `purpose` (what this process wants to do).
    pub(crate) fn acquire(root: &Path, kind: LockKind, purpose: &str) -> Result<RepoLock> {
        let path = root.join("lock");
        let file = durable::open_or_create(&path)?;
        match try_lock(&file, kind) {
            Ok(()) => return Ok(RepoLock { file }),
            Err(e) if is_contended(&e) => {}
            Err(e) => return Err(Error::io(format!("locking {}", path.display()), e)),
        }
        let holder = match kind {
            LockKind::Shared => {
                "another opsi-backup process is removing data from it or repairing it"
            }
            LockKind::Exclusive => "other opsi-backup processes are using it",
        };
        eprintln!(
            "opsi-backup: waiting to {purpose}: repository {} is locked ({holder})",
            root.display()
        );
        let res = match kind {
            LockKind::Shared => fs2::FileExt::lock_shared(&file),
            LockKind::Exclusive => fs2::FileExt::lock_exclusive(&file),
        };
        res.map_err(|e| Error::io(format!("locking {}", path.display()), e))?;
        Ok(RepoLock { file })
    }

    /// Takes the exclusive lock only if nobody holds any lock now.
    pub(crate) fn try_exclusive(root: &Path) -> Result<Option<RepoLock>> {
        let path = root.join("lock");
        let file = durable::open_or_create(&path)?;
        match try_lock(&file, LockKind::Exclusive) {
            Ok(()) => Ok(Some(RepoLock { file })),
            Err(e) if is_contended(&e) => Ok(None),
            Err(e) => Err(Error::io(format!("locking {}", path.display()), e)),
        }
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        let _ = fs2::FileExt::unlock(&self.file);
    }
}

fn try_lock(file: &File, kind: LockKind) -> io::Result<()> {
    match kind {
        LockKind::Shared => fs2::FileExt::try_lock_shared(file),
        LockKind::Exclusive => fs2::FileExt::try_lock_exclusive(file),
    }
}

fn is_contended(e: &io::Error) -> bool {
    e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
        || e.kind() == io::ErrorKind::WouldBlock
}
