//! Who holds a repository lock: the kinds of lock and the record a holder writes about itself,
//! shared by the local lock (`lock`) and the lock objects of a remote repository
//! (`object_lock`). Spec: `store-format/README.md`, sections "Locking" and "Remote
//! repositories".

use std::io;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum LockKind {
    /// Held by writers of snapshots and by readers: they only add files.
    Shared,
    /// Held by anything that deletes files or rewrites the index.
    Exclusive,
}

/// What a holder writes about itself to `locks/<pid>-<random>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Holder {
    pub(crate) pid: u32,
    pub(crate) host: String,
    /// "shared" or "exclusive".
    pub(crate) kind: String,
    /// What it holds the lock for, e.g. "remove snapshots".
    pub(crate) purpose: String,
    /// Its command line (no secrets are ever passed on one).
    pub(crate) command: String,
    /// Unix seconds when it took the lock.
    pub(crate) since: i64,
}

/// What this process says of itself as the holder of a lock of `kind` for `purpose`.
pub(crate) fn this_holder(kind: LockKind, purpose: &str) -> Holder {
    let mut command: String = std::env::args().collect::<Vec<_>>().join(" ");
    if command.len() > 300 {
        let cut = (0..=300).rev().find(|&i| command.is_char_boundary(i));
        command.truncate(cut.unwrap_or(0));
    }
    Holder {
        pid: std::process::id(),
        host: host_name(),
        kind: match kind {
            LockKind::Shared => "shared",
            LockKind::Exclusive => "exclusive",
        }
        .into(),
        purpose: purpose.into(),
        command,
        since: chrono::Utc::now().timestamp(),
    }
}

pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

pub(crate) fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

pub(crate) fn describe(holders: &[Holder]) -> String {
    if holders.is_empty() {
        return "a process that left no record (an older opsi-backup, or flock(1))".into();
    }
    let one = |h: &Holder| {
        format!(
            "pid {} on {} ({} lock to {}, since {}: {})",
            h.pid,
            h.host,
            h.kind,
            h.purpose,
            crate::logging::local_time(h.since),
            h.command
        )
    };
    holders.iter().map(one).collect::<Vec<_>>().join("; ")
}
