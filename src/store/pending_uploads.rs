//! Uploads a writer began and never finished: an S3 multipart upload of a writer killed in
//! the middle is never visible as an object, but its parts hold space until it is aborted.
//! `prune` aborts those old enough that no live writer can own them; `verify` and `health`
//! count them. Spec: `store-format/README.md`, section "Remote repositories".

use std::time::{Duration, SystemTime};

use crate::error::Result;
use crate::logging;
use crate::store::lock::RepoLock;
use crate::store::object_lock::STALE_AFTER;
use crate::store::storage::{PendingUpload, Storage};

/// What `survey` found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Survey {
    /// Every unfinished upload below the repository's keys.
    pub total: u64,
    /// Those begun longer ago than `abandoned_after`: the next prune aborts them.
    pub abandoned: u64,
}

/// An upload begun this long ago has no live writer: a writer's lock object is refreshed
/// every minute and taken for stale after `STALE_AFTER` without a refresh, so a writer that
/// has not refreshed for that long has lost its lock (and a writer's upload takes seconds).
/// Builds with the `crash-points` feature take `OPSI_BACKUP_UPLOAD_AGE` (seconds) instead,
/// for tests.
fn abandoned_after() -> Duration {
    #[cfg(feature = "crash-points")]
    if let Some(s) = std::env::var("OPSI_BACKUP_UPLOAD_AGE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Duration::from_secs(s);
    }
    Duration::from_secs(STALE_AFTER.unsigned_abs())
}

/// Whether `u` is old enough to abort, by this machine's clock against the storage's (which
/// must agree within minutes, as for lock objects). An upload of unknown age is kept.
fn abandoned(u: &PendingUpload, now: SystemTime, age: Duration) -> bool {
    u.initiated
        .and_then(|t| now.duration_since(t).ok())
        .is_some_and(|d| d >= age)
}

/// Counts the unfinished uploads (read only: one listing per 1,000 uploads on S3).
pub(crate) fn survey(storage: &dyn Storage) -> Result<Survey> {
    let uploads = storage.pending_uploads()?;
    let (now, age) = (SystemTime::now(), abandoned_after());
    Ok(Survey {
        total: uploads.len() as u64,
        abandoned: uploads.iter().filter(|u| abandoned(u, now, age)).count() as u64,
    })
}

/// Aborts the abandoned uploads (a dry run only counts them). The caller holds the exclusive
/// lock, so no writer of this repository is at work. Returns how many.
pub(crate) fn abort_abandoned(
    storage: &dyn Storage,
    dry_run: bool,
    _lock: &RepoLock,
) -> Result<u64> {
    let (now, age) = (SystemTime::now(), abandoned_after());
    let mut aborted = 0;
    for u in storage.pending_uploads()? {
        if !abandoned(&u, now, age) {
            continue;
        }
        if !dry_run {
            storage.abort_upload(&u)?;
            logging::info(format!(
                "aborted an unfinished upload of {}",
                storage.show(&u.key)
            ));
        }
        aborted += 1;
    }
    Ok(aborted)
}

/// The note verify and health give for `s`; `None` when there is nothing unfinished.
pub(crate) fn note(s: Survey) -> Option<String> {
    match s {
        Survey { total: 0, .. } => None,
        Survey {
            total,
            abandoned: 0,
        } => Some(format!(
            "{total} unfinished upload(s) in progress (a writer at work, or one killed less \
             than {} min ago)",
            abandoned_after().as_secs() / 60
        )),
        Survey { total, abandoned } => Some(format!(
            "{total} unfinished upload(s), {abandoned} of them abandoned by a killed writer \
             (never part of a snapshot; the next prune aborts them and frees their space)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uploads_older_than_the_lock_staleness_are_abandoned() {
        let now = SystemTime::now();
        let age = Duration::from_secs(600);
        let u = |ago: Option<u64>| PendingUpload {
            key: "packs/ab/ab.pack".into(),
            upload_id: "x".into(),
            initiated: ago.map(|s| now - Duration::from_secs(s)),
        };
        assert!(abandoned(&u(Some(601)), now, age));
        assert!(!abandoned(&u(Some(599)), now, age));
        assert!(!abandoned(&u(None), now, age));
        // Begun "in the future" (the storage's clock ahead of ours): kept.
        let ahead = PendingUpload {
            initiated: Some(now + Duration::from_secs(60)),
            ..u(None)
        };
        assert!(!abandoned(&ahead, now, age));
    }
}
