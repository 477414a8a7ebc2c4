//! The repository lock on storage that has no flock: lock objects `locks/<holder id>.json`
//! beside the data, each naming its holder and refreshed while held. Spec:
//! `store-format/README.md`, section "Remote repositories", "Locks".
//!
//! Taking a lock: list `locks/`, and when no live lock conflicts, write one's own, then list
//! again. Writing first and looking after closes the race of two takers: of two that wrote
//! at the same time, each sees the other on its second look, so neither goes on alone; a
//! taker that sees a conflict on the second look withdraws its object and backs off for a
//! random while, so the two do not meet again. Shared locks (writers of snapshots, readers)
//! conflict with exclusive ones only; an exclusive lock (anything that deletes) with any.
//!
//! A holder rewrites its object every `REFRESH`; an object not refreshed for `STALE_AFTER`
//! belongs to a dead or cut-off process and is removed by whoever finds it, as is one of a
//! process of this host that no longer runs. A holder that could not refresh for that long
//! may have lost its lock, and says so.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::logging;
use crate::store::durable;
use crate::store::lock_holder::{self as lock, Holder, LockKind};
use crate::store::storage::Storage;

/// How often a holder rewrites its lock object.
const REFRESH: Duration = Duration::from_secs(60);
/// After how long without a refresh a lock object is taken for stale (ten missed refreshes:
/// a slow server does not cost a live holder its lock).
pub(crate) const STALE_AFTER: i64 = 600;

/// A lock object's content: the holder as a local lock names it, and its refresh time.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    #[serde(flatten)]
    holder: Holder,
    /// Unix seconds of its last refresh.
    refreshed: i64,
}

/// A held lock object; refreshed by a thread, removed on drop.
pub(crate) struct ObjectLock {
    storage: Arc<dyn Storage>,
    key: String,
    stop: Option<mpsc::Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ObjectLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectLock({})", self.key)
    }
}

impl ObjectLock {
    /// Takes the lock of the repository in `storage` (named `shown` in messages), waiting up
    /// to `wait` while conflicting holders have it.
    pub(crate) fn acquire(
        storage: Arc<dyn Storage>,
        shown: &str,
        kind: LockKind,
        purpose: &str,
        wait: Duration,
    ) -> Result<ObjectLock> {
        let holder = lock::this_holder(kind, purpose);
        let key = format!(
            "locks/{}-{}-{}.json",
            sanitize(&holder.host),
            holder.pid,
            hex::encode(durable::random_bytes::<4>()?)
        );
        let start = Instant::now();
        let mut pause = Duration::from_millis(200);
        let mut warned = false;
        loop {
            let others = live_locks(&*storage, &key)?;
            if !conflicts(kind, &others) {
                write(&*storage, &key, &holder)?;
                let again = live_locks(&*storage, &key)?;
                if !conflicts(kind, &again) {
                    return Ok(ObjectLock::start(storage, key, holder));
                }
                storage.remove(&key)?;
            }
            let waited = start.elapsed();
            let holders: Vec<Holder> = live_locks(&*storage, &key)?
                .into_iter()
                .map(|r| r.holder)
                .collect();
            if waited >= wait {
                return Err(Error::LockBusy(format!(
                    "gave up after waiting {} s to {purpose}: repository {shown} is locked by \
                     {}; wait longer with --lock-wait SECONDS",
                    waited.as_secs(),
                    lock::describe(&holders)
                )));
            }
            if !warned {
                warned = true;
                logging::labelled(
                    logging::WARNING,
                    "opsi-backup",
                    &format!(
                        "waiting up to {} s to {purpose}: repository {shown} is locked by {}",
                        wait.as_secs_f64().ceil(),
                        lock::describe(&holders)
                    ),
                );
            }
            let jitter = Duration::from_millis(
                u64::from(u16::from_le_bytes(durable::random_bytes::<2>()?)) % 300,
            );
            std::thread::sleep((pause + jitter).min(wait - waited));
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }

    fn start(storage: Arc<dyn Storage>, key: String, holder: Holder) -> ObjectLock {
        let (stop, stopped) = mpsc::channel::<()>();
        let (s, k) = (Arc::clone(&storage), key.clone());
        let refresher = std::thread::spawn(move || {
            let mut last_ok = Instant::now();
            loop {
                match stopped.recv_timeout(REFRESH) {
                    Err(RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
                match write(&*s, &k, &holder) {
                    Ok(()) => last_ok = Instant::now(),
                    Err(e) => {
                        let lost = last_ok.elapsed().as_secs() as i64 >= STALE_AFTER;
                        logging::warning(format!(
                            "could not refresh the repository lock {}: {e}{}",
                            s.show(&k),
                            if lost {
                                "; another process may have taken it over as stale"
                            } else {
                                ""
                            }
                        ));
                    }
                }
            }
        });
        ObjectLock {
            storage,
            key,
            stop: Some(stop),
            refresher: Some(refresher),
        }
    }
}

impl Drop for ObjectLock {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        if let Err(e) = self.storage.remove(&self.key) {
            logging::warning(format!(
                "could not remove the repository lock {} ({e}); others take it for stale \
                 after {} minutes",
                self.storage.show(&self.key),
                STALE_AFTER / 60
            ));
        }
    }
}

fn write(storage: &dyn Storage, key: &str, holder: &Holder) -> Result<()> {
    let record = Record {
        holder: holder.clone(),
        refreshed: chrono::Utc::now().timestamp(),
    };
    let bytes = serde_json::to_vec(&record).map_err(|e| Error::Repository(e.to_string()))?;
    storage.replace(key, &bytes)
}

/// Whether a lock of `kind` may be held beside `others`.
fn conflicts(kind: LockKind, others: &[Record]) -> bool {
    match kind {
        LockKind::Exclusive => !others.is_empty(),
        LockKind::Shared => others.iter().any(|r| r.holder.kind == "exclusive"),
    }
}

/// The live lock objects other than `mine`; stale ones (not refreshed for `STALE_AFTER`, or
/// of a process of this host that has ended) are removed. An object that cannot be read
/// (written half by a foreign tool, or removed between list and read) is left alone and not
/// counted.
fn live_locks(storage: &dyn Storage, mine: &str) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for (key, r, stale) in read_locks(storage, mine)? {
        if let Some(why) = stale {
            logging::notice(format!(
                "removing the stale repository lock {} of pid {} on {} ({why}, last refreshed {})",
                storage.show(&key),
                r.holder.pid,
                r.holder.host,
                logging::local_time(r.refreshed)
            ));
            storage.remove(&key)?;
            continue;
        }
        out.push(r);
    }
    out.sort_by_key(|r| (r.holder.since, r.holder.pid));
    Ok(out)
}

/// The holders of the live lock objects, oldest first, read only (monitoring): stale ones
/// are left for the next process that takes a lock.
pub(crate) fn live_holders(storage: &dyn Storage) -> Result<Vec<Holder>> {
    let mut out: Vec<Holder> = read_locks(storage, "")?
        .into_iter()
        .filter(|(_, _, stale)| stale.is_none())
        .map(|(_, r, _)| r.holder)
        .collect();
    out.sort_by_key(|h| (h.since, h.pid));
    Ok(out)
}

/// Every readable lock object but `mine`: its key, its record, and why it is stale (`None`:
/// live). Stale: not refreshed for `STALE_AFTER`, or of a process of this host that has ended.
fn read_locks(
    storage: &dyn Storage,
    mine: &str,
) -> Result<Vec<(String, Record, Option<&'static str>)>> {
    let now = chrono::Utc::now().timestamp();
    let here = lock::host_name();
    let mut out = Vec::new();
    for key in storage.list("locks/")? {
        if key == mine || !key.ends_with(".json") {
            continue;
        }
        let Ok(Some(bytes)) = storage.read_small(&key, 1 << 16) else {
            continue;
        };
        let Ok(r) = serde_json::from_slice::<Record>(&bytes) else {
            continue;
        };
        let stale = if r.holder.host == here && !lock::alive(r.holder.pid) {
            Some("the process has ended")
        } else if now - r.refreshed > STALE_AFTER {
            Some("its holder stopped refreshing it")
        } else {
            None
        };
        out.push((key, r, stale));
    }
    Ok(out)
}

/// A host name as part of a key: letters, digits, `.` and `-` only.
fn sanitize(host: &str) -> String {
    let s: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "host".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::storage::LocalDir;

    fn storage(dir: &std::path::Path) -> Arc<dyn Storage> {
        Arc::new(LocalDir::new(dir))
    }

    /// The protocol is the storage's, not S3's: a directory shows it.
    #[test]
    fn exclusive_excludes_and_shared_share() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        let a = ObjectLock::acquire(
            Arc::clone(&s),
            "R",
            LockKind::Shared,
            "verify",
            Duration::ZERO,
        )
        .unwrap();
        let b = ObjectLock::acquire(
            Arc::clone(&s),
            "R",
            LockKind::Shared,
            "write a snapshot",
            Duration::ZERO,
        )
        .unwrap();
        let start = Instant::now();
        let e = ObjectLock::acquire(
            Arc::clone(&s),
            "R",
            LockKind::Exclusive,
            "prune unused data",
            Duration::from_millis(500),
        )
        .unwrap_err()
        .to_string();
        assert!(start.elapsed() >= Duration::from_millis(500));
        assert!(
            e.contains("gave up after waiting") && e.contains("--lock-wait"),
            "{e}"
        );
        assert!(e.contains("shared lock to verify"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert_eq!(
            s.list("locks/").unwrap().len(),
            2,
            "the loser withdrew its object"
        );
        drop((a, b));
        assert!(s.list("locks/").unwrap().is_empty());
        let x = ObjectLock::acquire(
            Arc::clone(&s),
            "R",
            LockKind::Exclusive,
            "prune",
            Duration::ZERO,
        )
        .unwrap();
        assert!(ObjectLock::acquire(
            Arc::clone(&s),
            "R",
            LockKind::Shared,
            "verify",
            Duration::ZERO
        )
        .is_err());
        drop(x);
    }

    #[test]
    fn stale_and_dead_holders_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let s = storage(dir.path());
        let mut dead = lock::this_holder(LockKind::Exclusive, "prune unused data");
        dead.pid = 1 << 30; // cannot exist: the process has ended
        write(&*s, "locks/dead.json", &dead).unwrap();
        let mut far = lock::this_holder(LockKind::Exclusive, "prune unused data");
        far.host = "elsewhere".into();
        let old = Record {
            holder: far.clone(),
            refreshed: chrono::Utc::now().timestamp() - STALE_AFTER - 5,
        };
        s.replace("locks/old.json", &serde_json::to_vec(&old).unwrap())
            .unwrap();
        let got = ObjectLock::acquire(
            Arc::clone(&s),
            "R",
            LockKind::Exclusive,
            "prune",
            Duration::ZERO,
        )
        .unwrap();
        let left = s.list("locks/").unwrap();
        assert_eq!(left.len(), 1, "only the new holder's object: {left:?}");
        drop(got);
        // A live holder elsewhere, refreshed just now, is respected.
        write(&*s, "locks/live.json", &far).unwrap();
        let e = ObjectLock::acquire(
            Arc::clone(&s),
            "R",
            LockKind::Shared,
            "verify",
            Duration::ZERO,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("on elsewhere"), "{e}");
    }
}
