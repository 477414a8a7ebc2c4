//! The repository lock (`lock` file, fs2/flock) and its holder records (`locks/`). Spec:
//! `store-format/README.md`, section "Locking". The kernel drops a lock when its holder dies,
//! so there are no stale locks; a holder record of a dead process is ignored and removed.
//!
//! Waiting is bounded (`set_lock_wait`, the CLI's `--lock-wait`): a cron job must not hang
//! forever behind a stuck process, and both the waiting message and the timeout name the
//! holders, from their records.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::logging;
use crate::store::durable;
use crate::store::lock_holder::{alive, describe, host_name, this_holder};
pub(crate) use crate::store::lock_holder::{Holder, LockKind};
use crate::store::object_lock::ObjectLock;
use crate::store::storage::Storage;

/// How long a command waits for the lock unless told otherwise: long enough for a nightly
/// prune to finish, short enough that a stuck process does not stop every later cron run.
pub const DEFAULT_LOCK_WAIT: Duration = Duration::from_secs(3600);

static LOCK_WAIT: OnceLock<Duration> = OnceLock::new();

/// Sets how long this process waits for the repository lock (once, before the first lock).
pub fn set_lock_wait(wait: Duration) {
    let _ = LOCK_WAIT.set(wait);
}

fn lock_wait() -> Duration {
    LOCK_WAIT.get().copied().unwrap_or(DEFAULT_LOCK_WAIT)
}

/// A held lock on the repository; released (and its record removed) on drop.
#[derive(Debug)]
pub(crate) struct RepoLock {
    file: File,
    record: Option<PathBuf>,
    /// The lock object of a repository on object storage, held beside the local flock (which
    /// then guards the local index cache among this machine's processes).
    remote: Option<ObjectLock>,
}

/// Where a repository's lock lives: always the flock in the local directory `root` (the
/// repository, or the index cache of a remote one); for a repository on object storage also
/// a lock object there, which other machines see.
#[derive(Clone)]
pub(crate) struct LockSite {
    pub(crate) root: PathBuf,
    pub(crate) remote: Option<(Arc<dyn Storage>, String)>,
}

impl LockSite {
    /// Takes the lock of `kind` here and, for a remote repository, there; waits up to the
    /// configured limit in all.
    pub(crate) fn acquire(&self, kind: LockKind, purpose: &str) -> Result<RepoLock> {
        self.acquire_split(kind, kind, purpose)
    }

    /// `acquire` with another kind for the remote lock: the index cache is rewritten under
    /// the exclusive local lock while the remote repository is only read (shared).
    pub(crate) fn acquire_split(
        &self,
        local: LockKind,
        remote: LockKind,
        purpose: &str,
    ) -> Result<RepoLock> {
        let start = Instant::now();
        let mut lock = RepoLock::acquire_within(&self.root, local, purpose, lock_wait())?;
        if let Some((storage, shown)) = &self.remote {
            let left = lock_wait().saturating_sub(start.elapsed());
            lock.remote = Some(ObjectLock::acquire(
                Arc::clone(storage),
                shown,
                remote,
                purpose,
                left,
            )?);
        }
        Ok(lock)
    }

    /// Takes the exclusive lock only if nobody holds any lock now (locally only: what it is
    /// for, cleaning the local temporary files, is local).
    pub(crate) fn try_exclusive_local(&self, purpose: &str) -> Result<Option<RepoLock>> {
        RepoLock::try_exclusive(&self.root, purpose)
    }
}

impl RepoLock {
    /// Takes the lock, waiting up to the configured limit. While it waits it says so on
    /// stderr, naming `purpose` (what this process wants to do) and the holders.
    pub(crate) fn acquire(root: &Path, kind: LockKind, purpose: &str) -> Result<RepoLock> {
        RepoLock::acquire_within(root, kind, purpose, lock_wait())
    }

    pub(crate) fn acquire_within(
        root: &Path,
        kind: LockKind,
        purpose: &str,
        wait: Duration,
    ) -> Result<RepoLock> {
        let path = root.join("lock");
        let file = durable::open_or_create(&path)?;
        if take(&file, kind, &path)? {
            return Ok(RepoLock::recorded(root, file, kind, purpose));
        }
        let start = Instant::now();
        logging::labelled(
            logging::WARNING,
            "opsi-backup",
            &format!(
                "waiting up to {} s to {purpose}: repository {} is locked by {}",
                wait.as_secs(),
                root.display(),
                describe(&holders(root))
            ),
        );
        let mut pause = Duration::from_millis(10);
        loop {
            if take(&file, kind, &path)? {
                return Ok(RepoLock::recorded(root, file, kind, purpose));
            }
            let waited = start.elapsed();
            if waited >= wait {
                return Err(Error::LockBusy(format!(
                    "gave up after waiting {} s to {purpose}: repository {} is locked by {}; \
                     wait longer with --lock-wait SECONDS",
                    waited.as_secs(),
                    root.display(),
                    describe(&holders(root))
                )));
            }
            std::thread::sleep(pause.min(wait - waited));
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Takes the exclusive lock only if nobody holds any lock now.
    pub(crate) fn try_exclusive(root: &Path, purpose: &str) -> Result<Option<RepoLock>> {
        let path = root.join("lock");
        let file = durable::open_or_create(&path)?;
        Ok(take(&file, LockKind::Exclusive, &path)?
            .then(|| RepoLock::recorded(root, file, LockKind::Exclusive, purpose)))
    }

    /// Writes this process's holder record. Best effort: a record that cannot be written
    /// (read-only mount for a verify) costs only the holder's name in others' messages.
    fn recorded(root: &Path, file: File, kind: LockKind, purpose: &str) -> RepoLock {
        let record = write_record(root, kind, purpose).ok();
        RepoLock {
            file,
            record,
            remote: None,
        }
    }
}

impl Drop for RepoLock {
    fn drop(&mut self) {
        // The remote lock first: the local one guarded taking it.
        drop(self.remote.take());
        if let Some(r) = &self.record {
            let _ = std::fs::remove_file(r);
        }
        let _ = fs2::FileExt::unlock(&self.file);
    }
}

/// Tries once; false when someone else holds a conflicting lock.
fn take(file: &File, kind: LockKind, path: &Path) -> Result<bool> {
    let res = match kind {
        LockKind::Shared => fs2::FileExt::try_lock_shared(file),
        LockKind::Exclusive => fs2::FileExt::try_lock_exclusive(file),
    };
    match res {
        Ok(()) => Ok(true),
        Err(e) if is_contended(&e) => Ok(false),
        Err(e) => Err(Error::io(format!("locking {}", path.display()), e)),
    }
}

fn is_contended(e: &io::Error) -> bool {
    e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
        || e.kind() == io::ErrorKind::WouldBlock
}

fn write_record(root: &Path, kind: LockKind, purpose: &str) -> io::Result<PathBuf> {
    let dir = root.join("locks");
    // 0700 like every directory of the repository (section "Durability and permissions").
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&dir)?;
    let holder = this_holder(kind, purpose);
    let mut f = tempfile::Builder::new()
        .prefix(&format!("{}-", holder.pid))
        .suffix(".json")
        .tempfile_in(&dir)?;
    f.write_all(&serde_json::to_vec(&holder).map_err(io::Error::other)?)?;
    let (_, path) = f.keep().map_err(|e| e.error)?;
    Ok(path)
}

/// The records of the current holders; records of processes that died on this host are
/// removed (the kernel has already released their flock).
fn holders(root: &Path) -> Vec<Holder> {
    read_holders(root, true)
}

/// The records of the current holders, touching nothing: records of processes that died on
/// this host are skipped, not removed (monitoring must not change the repository).
pub(crate) fn live_holders(root: &Path) -> Vec<Holder> {
    read_holders(root, false)
}

fn read_holders(root: &Path, remove_dead: bool) -> Vec<Holder> {
    let Ok(entries) = std::fs::read_dir(root.join("locks")) else {
        return Vec::new();
    };
    let here = host_name();
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(h) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Holder>(&b).ok())
        else {
            continue;
        };
        if h.host == here && !alive(h.pid) {
            if remove_dead {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        out.push(h);
    }
    out.sort_by_key(|h| (h.since, h.pid));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A second open of the lock file conflicts like another process would (flock locks
    /// belong to the open file description).
    #[test]
    fn waits_a_bounded_time_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let held = RepoLock::acquire_within(
            dir.path(),
            LockKind::Exclusive,
            "prune unused data",
            Duration::ZERO,
        )
        .unwrap();
        let start = Instant::now();
        let e = RepoLock::acquire_within(
            dir.path(),
            LockKind::Shared,
            "write a snapshot",
            Duration::from_millis(300),
        )
        .unwrap_err()
        .to_string();
        assert!(start.elapsed() >= Duration::from_millis(300));
        assert!(start.elapsed() < Duration::from_secs(5));
        let pid = format!("pid {} on {}", std::process::id(), host_name());
        assert!(e.contains(&pid), "{e}");
        assert!(e.contains("exclusive lock to prune unused data"), "{e}");
        assert!(e.contains("--lock-wait"), "{e}");
        drop(held);
        assert_eq!(
            std::fs::read_dir(dir.path().join("locks")).unwrap().count(),
            0,
            "the record goes with the lock"
        );
        // Released: taken at once, and two shared holders are both named.
        let a = RepoLock::acquire_within(dir.path(), LockKind::Shared, "verify", Duration::ZERO)
            .unwrap();
        let _b = RepoLock::acquire_within(
            dir.path(),
            LockKind::Shared,
            "read a snapshot",
            Duration::ZERO,
        )
        .unwrap();
        let named = describe(&holders(dir.path()));
        assert!(
            named.contains("to verify") && named.contains("to read a snapshot"),
            "{named}"
        );
        drop(a);
    }

    #[test]
    fn records_of_dead_processes_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let locks = dir.path().join("locks");
        std::fs::create_dir_all(&locks).unwrap();
        // A pid that cannot exist (above pid_max's upper bound of 2^22).
        let dead = Holder {
            pid: 1 << 30,
            host: host_name(),
            kind: "exclusive".into(),
            purpose: "prune unused data".into(),
            command: "opsi-backup prune".into(),
            since: 0,
        };
        let path = locks.join("dead.json");
        std::fs::write(&path, serde_json::to_vec(&dead).unwrap()).unwrap();
        let mut elsewhere = dead.clone();
        elsewhere.host = format!("{}-other", host_name());
        std::fs::write(
            locks.join("other.json"),
            serde_json::to_vec(&elsewhere).unwrap(),
        )
        .unwrap();
        let h = holders(dir.path());
        assert_eq!(h.len(), 1, "only the other host's record: {h:?}");
        assert!(!path.exists());
    }
}
