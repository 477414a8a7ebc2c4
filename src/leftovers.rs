//! Temporary files and directories whose names say which process owns them, so that a later run
//! can remove what a run killed with -9 left behind without touching a live run's.
//!
//! The owner tag is `<pid>-<start>-<host>-`: the process id, its start time (clock ticks after
//! boot, field 22 of `/proc/<pid>/stat`) and a hash of the host name. A pid reused by another
//! process has another start time, so an owner counts as alive only when both match. A tag of
//! another host (two servers writing archives to one NFS share) is never judged: its process
//! table is not ours. A name lives through renames, which a lock on
//! an open file would not follow to the inode that now carries the name (a swapped-out tree).
//!
//! Names without a tag (written by versions before this one) are left alone: nothing tells
//! whether their owner still runs.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::logging;

/// The start time of process `pid`, `None` when there is no such process.
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself hold spaces or ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields from 3 on; the start time is field 22.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// This host's name as 8 hex digits (FNV-1a): short, and free of the `-` that separates the
/// parts of a tag.
fn host_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        let name = fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let mut h: u32 = 0x811c_9dc5;
        for b in name.trim().bytes() {
            h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
        format!("{h:08x}")
    })
}

/// This process's tag, `<pid>-<start>-<host>-`.
pub fn own_tag() -> &'static str {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| {
        let pid = std::process::id();
        tag_for(pid, start_time(pid).unwrap_or(0))
    })
}

/// The tag of process `pid` started at `start` on this host (tests make dead owners with it).
pub fn tag_for(pid: u32, start: u64) -> String {
    format!("{pid}-{start}-{}-", host_hash())
}

/// The owner (pid, start, host) of a tag at the beginning of `s`.
fn parse_tag(s: &str) -> Option<(u32, u64, &str)> {
    let mut parts = s.splitn(4, '-');
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    let host = parts.next()?;
    parts.next()?;
    Some((pid, start, host))
}

/// True when the tag at the beginning of `s` names a process of this host that has ended;
/// false for a live owner, another host's and text that is no tag.
pub fn owner_is_dead(s: &str) -> bool {
    parse_tag(s)
        .is_some_and(|(pid, start, host)| host == host_hash() && start_time(pid) != Some(start))
}

/// What a leftover is, from its name.
#[derive(Debug, PartialEq, Eq)]
pub enum Leftover {
    /// `.<name>.opsi-backup-restore-<tag>…`: data a restore staged for `<name>`, or, after a
    /// swap, the old data it replaced. Removed.
    Staged,
    /// `.<name>.opsi-backup-old-<tag>…`: the old `<name>` moved aside by a two-rename swap.
    /// Put back when `<name>` is missing (the run died between the renames), else removed.
    MovedAside(String),
    /// `.opsi-backup-<tag>….partial`: an archive being written. Removed.
    Partial,
}

const STAGED: &str = ".opsi-backup-restore-";
const ASIDE: &str = ".opsi-backup-old-";
const PARTIAL: &str = ".opsi-backup-";

/// The prefix of a restore's staging name for `dest` (a tree or a file).
pub fn staged_prefix(dest: &Path) -> String {
    format!(".{}{STAGED}{}", file_name(dest), own_tag())
}

/// The prefix of the name `dest` is moved aside to by a two-rename swap.
pub fn aside_prefix(dest: &Path) -> String {
    format!(".{}{ASIDE}{}", file_name(dest), own_tag())
}

/// The prefix of a partial archive file (its suffix is `.partial`).
pub fn partial_prefix() -> String {
    format!("{PARTIAL}{}", own_tag())
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Classifies a directory entry's name; `None` for anything that is not a leftover of a dead
/// owner.
pub fn classify(name: &str) -> Option<Leftover> {
    let rest = name.strip_prefix('.')?;
    for (marker, aside) in [(STAGED, false), (ASIDE, true)] {
        if let Some(at) = rest.find(marker) {
            let owner = &rest[at + marker.len()..];
            if !owner_is_dead(owner) {
                return None;
            }
            return Some(if aside {
                Leftover::MovedAside(rest[..at].to_string())
            } else {
                Leftover::Staged
            });
        }
    }
    let owner = name.strip_prefix(PARTIAL)?;
    (name.ends_with(".partial") && owner_is_dead(owner)).then_some(Leftover::Partial)
}

/// Removes (or puts back) the leftovers of dead runs in `dir`, saying what it did. A directory
/// that cannot be listed (missing, unreadable) has nothing to clean; a leftover that cannot be
/// removed is a warning, not a reason to stop the run.
pub fn clean(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut found: Vec<(PathBuf, Leftover)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let kind = classify(e.file_name().to_str()?)?;
            Some((e.path(), kind))
        })
        .collect();
    // Put back before removing, so that a `-restore-` entry never goes before the `-old-` one
    // of the same swap has been looked at.
    found.sort_by_key(|(_, k)| !matches!(k, Leftover::MovedAside(_)));
    for (path, kind) in found {
        if let Leftover::MovedAside(name) = &kind {
            let dest = dir.join(name);
            if fs::symlink_metadata(&dest).is_err() {
                logging::warning(match fs::rename(&path, &dest) {
                    Ok(()) => format!(
                        "Put back {} (moved aside by a restore that did not finish) as {}",
                        path.display(),
                        dest.display()
                    ),
                    Err(e) => format!("cannot put back {}: {e}", path.display()),
                });
                continue;
            }
        }
        logging::warning(match remove_any(&path) {
            Ok(()) => format!(
                "Removed {} (left by an opsi-backup run that did not finish)",
                path.display()
            ),
            Err(e) => format!("cannot remove the leftover {}: {e}", path.display()),
        });
    }
}

/// Removes a file, symlink or whole directory.
pub fn remove_any(p: &Path) -> std::io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pid of a process that has ended.
    fn dead_pid() -> u32 {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    }

    #[test]
    fn own_tag_is_alive_and_a_dead_or_reused_pid_is_not() {
        let me = own_tag();
        assert!(!owner_is_dead(&format!("{me}abc")));
        let pid = std::process::id();
        let start = start_time(pid).unwrap();
        assert!(
            owner_is_dead(&format!("{}abc", tag_for(pid, start + 1))),
            "reused pid"
        );
        assert!(owner_is_dead(&format!("{}abc", tag_for(dead_pid(), start))));
        assert!(
            !owner_is_dead(&format!("{}-{start}-0000beef-abc", dead_pid())),
            "another host's: left alone"
        );
        assert!(!owner_is_dead("abc"), "no tag: left alone");
        assert!(!owner_is_dead("12-x-abc"));
    }

    #[test]
    fn classify_names() {
        let dead = format!("{}-5-{}-", dead_pid(), host_hash());
        assert_eq!(
            classify(&format!(".opsi.opsi-backup-restore-{dead}Xy")),
            Some(Leftover::Staged)
        );
        assert_eq!(
            classify(&format!(".my.dir.opsi-backup-old-{dead}Xy")),
            Some(Leftover::MovedAside("my.dir".into()))
        );
        assert_eq!(
            classify(&format!(".opsi-backup-{dead}Xy.partial")),
            Some(Leftover::Partial)
        );
        assert_eq!(classify(&format!(".opsi-backup-{dead}Xy")), None);
        assert_eq!(
            classify(&format!(".opsi.opsi-backup-restore-{}Xy", own_tag())),
            None
        );
        assert_eq!(classify(".opsi.opsi-backup-restore-Xy"), None, "untagged");
        assert_eq!(classify("opsi"), None);
    }

    #[test]
    fn clean_puts_back_a_missing_destination_and_removes_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let dead = format!("{}-5-{}-", dead_pid(), host_hash());
        let aside = d.path().join(format!(".opsi.opsi-backup-old-{dead}a"));
        fs::create_dir(&aside).unwrap();
        fs::write(aside.join("keep"), "old").unwrap();
        let staged = d.path().join(format!(".opsi.opsi-backup-restore-{dead}b"));
        fs::create_dir(&staged).unwrap();
        let other_aside = d.path().join(format!(".x.opsi-backup-old-{dead}c"));
        fs::write(&other_aside, "stale").unwrap();
        fs::write(d.path().join("x"), "current").unwrap();
        let live = d
            .path()
            .join(format!(".y.opsi-backup-restore-{}d", own_tag()));
        fs::write(&live, "mine").unwrap();
        clean(d.path());
        assert_eq!(
            fs::read_to_string(d.path().join("opsi/keep")).unwrap(),
            "old"
        );
        assert!(!staged.exists() && !other_aside.exists() && !aside.exists());
        assert_eq!(fs::read_to_string(d.path().join("x")).unwrap(), "current");
        assert!(live.exists(), "a live run's staging is kept");
    }
}
